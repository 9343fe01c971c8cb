//! Endpoints defined in the config file (`[[webhook.endpoints]]` and WuKongIM's `httpAddr` with
//! `focusEvents`): read-only, with stable ids and secrets so their cursors survive restarts.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::EventKind;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::catalog;
use crate::config::{ConfigEndpoint, WebhookConfig};
use crate::endpoint::{check_secret, Endpoint, Flavour};
use crate::filters::Filters;
use crate::url_rules::check_url;

/// WuKongIM's agent channels: one-to-one with an agent, and a group with agents.
const AGENT_CHANNEL: u8 = 11;
const AGENT_GROUP_CHANNEL: u8 = 12;

fn stable_id(url: &str, flavour: Flavour) -> String {
    let digest = Sha256::digest(format!("{url}|{flavour:?}").as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("cfg_{hex}")
}

fn derived_secret(seed: &str, url: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(seed.as_bytes()).expect("any key length");
    mac.update(url.as_bytes());
    format!("whsec_{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Resolves event names (native or WuKongIM's) to kinds, without repeats; `Err(name)` for an
/// unknown one.
pub fn resolve_events(names: &[String]) -> Result<Vec<EventKind>, String> {
    let mut out: Vec<EventKind> = Vec::new();
    for n in names {
        for kind in catalog::resolve(n).ok_or_else(|| n.clone())? {
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
    }
    Ok(out)
}

/// The config file's endpoints; `Err` names the broken setting.
pub(crate) fn from_config(config: &WebhookConfig, seed: &str) -> Result<Vec<Endpoint>, String> {
    // Each with the text its stable id is made from (its URL; WuKongIM's agent webhook's is marked, so
    // that it may share its URL with httpAddr).
    let mut defs: Vec<(ConfigEndpoint, String)> = config
        .endpoints
        .iter()
        .map(|d| (d.clone(), d.url.clone()))
        .collect();
    let wukongim_events = || {
        if config.focus_events.is_empty() {
            catalog::wukongim_own()
                .into_iter()
                .map(|k| k.name().to_string())
                .collect()
        } else {
            config.focus_events.clone()
        }
    };
    let wukongim = |url: &String, description: &str, filters| ConfigEndpoint {
        url: url.clone(),
        flavour: Flavour::Wukongim,
        events: wukongim_events(),
        secret: None,
        description: description.into(),
        sign_token: None,
        filters,
    };
    if let Some(addr) = config.http_addr.as_ref().filter(|a| !a.is_empty()) {
        defs.push((
            wukongim(addr, "webhook.httpAddr", Filters::default()),
            addr.clone(),
        ));
    }
    if let Some(addr) = config.agent_http_addr.as_ref().filter(|a| !a.is_empty()) {
        let agent_channels = Filters {
            channel_types: vec![AGENT_CHANNEL, AGENT_GROUP_CHANNEL],
            ..Filters::default()
        };
        let def = wukongim(addr, "agent.webhook.httpAddr", agent_channels);
        defs.push((def, format!("agent:{addr}")));
    }
    let mut out = Vec::new();
    for (i, (d, id_from)) in defs.into_iter().enumerate() {
        let key = format!("webhook.endpoints[{i}]");
        check_url(&d.url).map_err(|e| format!("{key}.url: {e}"))?;
        let events =
            resolve_events(&d.events).map_err(|n| format!("{key}.events: unknown event {n:?}"))?;
        let secret = match d.secret {
            Some(s) => {
                check_secret(&s).map_err(|e| format!("{key}.secret: {e}"))?;
                s
            }
            None => derived_secret(seed, &d.url),
        };
        d.filters
            .check()
            .map_err(|(field, message)| format!("{key}.filters.{field}: {message}"))?;
        let mut e = Endpoint::new(
            stable_id(&id_from, d.flavour),
            d.url,
            d.flavour,
            events,
            secret,
        );
        e.description = d.description;
        e.sign_token = d.sign_token;
        e.filters = d.filters;
        e.message_channel_types = catalog::message_channel_types(&d.events);
        // The engine sets the time it first loaded the endpoint.
        e.read_only = true;
        out.push(e);
    }
    Ok(out)
}
