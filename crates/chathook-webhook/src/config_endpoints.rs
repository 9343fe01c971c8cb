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
use crate::url_rules::check_url;

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
    let mut defs: Vec<ConfigEndpoint> = config.endpoints.clone();
    if let Some(addr) = config.http_addr.as_ref().filter(|a| !a.is_empty()) {
        let events = if config.focus_events.is_empty() {
            catalog::wukongim_own()
                .into_iter()
                .map(|k| k.name().to_string())
                .collect()
        } else {
            config.focus_events.clone()
        };
        defs.push(ConfigEndpoint {
            url: addr.clone(),
            flavour: Flavour::Wukongim,
            events,
            secret: None,
            description: "webhook.httpAddr".into(),
            sign_token: None,
        });
    }
    let mut out = Vec::new();
    for (i, d) in defs.into_iter().enumerate() {
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
        let mut e = Endpoint::new(
            stable_id(&d.url, d.flavour),
            d.url,
            d.flavour,
            events,
            secret,
        );
        e.description = d.description;
        e.sign_token = d.sign_token;
        e.message_channel_types = catalog::message_channel_types(&d.events);
        // The engine sets the time it first loaded the endpoint.
        e.read_only = true;
        out.push(e);
    }
    Ok(out)
}
