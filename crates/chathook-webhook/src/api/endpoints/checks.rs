//! The checks an endpoint's settings pass on create and change, each refusal naming its field: URL
//! rules (and `webhook.https_only`), events and hooks, filters and sources, limits and timeouts, the
//! receiver's authentication, the retry schedule.

use chathook_events::EventKind;

use super::super::{bad, ApiResult};
use crate::catalog;
use crate::config_endpoints::resolve_events;
use crate::endpoint::{Endpoint, Flavour, HookKind, MAX_HOOK_TIMEOUT_MS};
use crate::filters::Filters;
use crate::receiver_auth::{AuthError, ReceiverAuth};
use crate::url_rules::check_url;

/// What an endpoint's `events` select.
pub(super) struct Selection {
    pub kinds: Vec<EventKind>,
    /// The before-send hooks it answers (`message.before_send.person`/`group`, or Tencent's
    /// `C2C`/`Group.CallbackBeforeSendMsg`).
    pub hooks: Vec<HookKind>,
    /// Foreign events by name (`tencent.<Command>`, `wukongim.<event>`, or a prefix ending in `*`).
    pub foreign: Vec<String>,
}

/// The longest foreign event name (or prefix) an endpoint selects, in bytes.
const MAX_FOREIGN_NAME_BYTES: usize = 128;

/// A foreign event's name or prefix: `tencent.` or `wukongim.` and letters, digits, `.`, `_`, `-`,
/// optionally ending in `*`.
pub(super) fn foreign_name(n: &str) -> Option<String> {
    let rest = n
        .strip_prefix("tencent.")
        .or_else(|| n.strip_prefix("wukongim."))?;
    let rest = rest.strip_suffix('*').unwrap_or(rest);
    let fine = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    (fine && n.len() <= MAX_FOREIGN_NAME_BYTES).then(|| n.to_string())
}

pub(super) fn check_events(names: &[String], flavour: Flavour) -> ApiResult<Selection> {
    let mut hooks: Vec<HookKind> = Vec::new();
    let mut foreign: Vec<String> = Vec::new();
    let mut rest = Vec::new();
    for n in names {
        match HookKind::from_name(n) {
            Some(h) if !hooks.contains(&h) => hooks.push(h),
            Some(_) => {}
            None if catalog::resolve(n).is_none() && foreign_name(n).is_some() => {
                if !foreign.contains(n) {
                    foreign.push(n.clone());
                }
            }
            // A tencent endpoint names Tencent's other commands as Tencent does (`Sns.CallbackFriendAdd`).
            None if flavour == Flavour::Tencent
                && catalog::resolve(n).is_none()
                && n.contains(".Callback")
                && foreign_name(&format!("tencent.{n}")).is_some() =>
            {
                let name = format!("tencent.{n}");
                if !foreign.contains(&name) {
                    foreign.push(name);
                }
            }
            None => rest.push(n.clone()),
        }
    }
    if !hooks.is_empty() && flavour == Flavour::Wukongim {
        return Err(bad(
            "events",
            "before_send_flavour",
            "before-send hooks need the tencent or standard flavour (WuKongIM has none)",
        ));
    }
    let kinds = resolve_events(&rest).map_err(|n| {
        bad(
            "events",
            "event_unknown",
            format!("unknown event {n:?}; see GET /v1/webhooks/event-types"),
        )
    })?;
    Ok(Selection {
        kinds,
        hooks,
        foreign,
    })
}

/// An endpoint's `filters`, checked; a broken one names its field (`filters.<list>`).
pub(super) fn check_filters(filters: Filters) -> ApiResult<Filters> {
    filters
        .check()
        .map_err(|(field, message)| bad(&format!("filters.{field}"), "filter_invalid", message))?;
    Ok(filters)
}

/// The longest list of `sources` an endpoint keeps.
const MAX_SOURCES: usize = 64;

/// An endpoint's `sources`: relay source ids or `local`, at most [`MAX_SOURCES`].
pub(super) fn check_sources(sources: Vec<String>) -> ApiResult<Vec<String>> {
    if sources.len() > MAX_SOURCES {
        return Err(bad(
            "sources",
            "too_many_sources",
            format!("sources lists at most {MAX_SOURCES} sources"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for s in sources {
        let fine = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !fine {
            return Err(bad(
                "sources",
                "source_invalid",
                format!("{s:?} is not a source id (relay source ids, or \"local\")"),
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

pub(super) fn check_hook_timeout(timeout_ms: Option<u64>) -> ApiResult<()> {
    if timeout_ms.is_some_and(|t| !(1..=MAX_HOOK_TIMEOUT_MS).contains(&t)) {
        return Err(bad(
            "hook_timeout_ms",
            "hook_timeout_out_of_range",
            format!("hook_timeout_ms must be between 1 and {MAX_HOOK_TIMEOUT_MS}"),
        ));
    }
    Ok(())
}

pub(super) fn check_limits(
    timeout_ms: Option<u64>,
    max_in_flight: Option<u32>,
    rate: Option<u32>,
) -> ApiResult<()> {
    if timeout_ms.is_some_and(|t| !(100..=60_000).contains(&t)) {
        return Err(bad(
            "timeout_ms",
            "timeout_out_of_range",
            "timeout_ms must be between 100 and 60000",
        ));
    }
    if max_in_flight.is_some_and(|m| !(1..=1024).contains(&m)) {
        return Err(bad(
            "max_in_flight",
            "max_in_flight_out_of_range",
            "max_in_flight must be between 1 and 1024",
        ));
    }
    if rate == Some(0) {
        return Err(bad(
            "rate_limit_per_s",
            "rate_limit_out_of_range",
            "rate_limit_per_s must be at least 1 (or null)",
        ));
    }
    Ok(())
}

/// `url` checked against the URL rules and, under `webhook.https_only`, its scheme.
pub(super) fn url_checked(url: &str, https_only: bool) -> ApiResult<url::Url> {
    let parsed = check_url(url).map_err(|e| bad("url", e.code, e.message))?;
    if https_only && parsed.scheme() != "https" {
        return Err(bad(
            "url",
            "url_https_required",
            "this server delivers only to https:// URLs (webhook.https_only)",
        ));
    }
    Ok(parsed)
}

/// The receiver's settings checked for an endpoint at `url`; a value given as the mask keeps the one
/// `stored` has.
pub(super) fn check_auth(
    mut auth: ReceiverAuth,
    stored: &ReceiverAuth,
    url: &str,
) -> ApiResult<ReceiverAuth> {
    let refused = |e: AuthError| bad(&e.field, e.code, e.message);
    auth.keep_masked(stored).map_err(refused)?;
    let https = url.to_ascii_lowercase().starts_with("https://");
    auth.check(https).map_err(refused)?;
    Ok(auth)
}

/// The most steps an endpoint's retry schedule has.
pub(super) const MAX_RETRY_STEPS: usize = 30;
/// The longest step of a retry schedule, in seconds (a week).
pub(super) const MAX_RETRY_STEP_S: u64 = 7 * 24 * 3600;

/// An endpoint's own retry schedule: 1 to [`MAX_RETRY_STEPS`] delays of at most a week, in seconds.
pub(super) fn check_retry_schedule(schedule: &[u64]) -> ApiResult<()> {
    if schedule.is_empty() || schedule.len() > MAX_RETRY_STEPS {
        return Err(bad(
            "retry_schedule",
            "retry_schedule_invalid",
            format!(
                "retry_schedule holds 1 to {MAX_RETRY_STEPS} delays in seconds (or null for the server's)"
            ),
        ));
    }
    if let Some(step) = schedule.iter().find(|s| **s > MAX_RETRY_STEP_S) {
        return Err(bad(
            "retry_schedule",
            "retry_schedule_invalid",
            format!("a retry delay is at most {MAX_RETRY_STEP_S} seconds (a week); {step} is not"),
        ));
    }
    Ok(())
}

/// Operational events (`endpoint.*`, `delivery.exhausted`, `relay.refused`) go to standard-flavour
/// endpoints only.
pub(super) fn check_operational(events: &[EventKind], flavour: Flavour) -> ApiResult<()> {
    if flavour != Flavour::Standard && events.iter().any(|k| k.is_operational()) {
        return Err(bad(
            "events",
            "operational_flavour",
            "operational events (endpoint.*, delivery.exhausted, relay.refused) need the standard flavour",
        ));
    }
    Ok(())
}

/// A polling endpoint has no URL, receiver settings, retry schedule or before-send hook: its consumer
/// fetches its events.
pub(super) fn check_polling(e: &Endpoint) -> ApiResult<()> {
    if e.pushes() {
        return Ok(());
    }
    let (field, what) = if !e.url.is_empty() {
        ("url", "a URL")
    } else if !e.before_send.is_empty() {
        ("events", "a before-send hook")
    } else if !e.auth.headers.is_empty() {
        ("headers", "headers")
    } else if e.auth.basic_auth.is_some() {
        ("basic_auth", "basic credentials")
    } else if e.auth.tls.is_some() {
        ("tls", "TLS settings")
    } else if e.retry_schedule.is_some() {
        ("retry_schedule", "a retry schedule")
    } else {
        return Ok(());
    };
    Err(bad(
        field,
        "polling_endpoint",
        format!("a polling endpoint has no {what}: its consumer fetches its events (GET .../poll)"),
    ))
}
