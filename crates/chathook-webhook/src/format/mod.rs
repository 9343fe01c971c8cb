//! Rendering events for an endpoint's flavour, one file per flavour (`wukongim`, `standard`,
//! `tencent`: each owns its after-event bodies and, where it has them, its before-send request and the
//! reading of its verdict). A body is rendered once per delivery and sent unchanged on every attempt.
//!
//! - `wukongim`: `POST {url}?event=<name>` with WuKongIM's raw bodies: `user.onlinestatus` is an array of
//!   `"uid-device_flag-status-conn_id-device_online_count-total_online_count"`, `msg.notify` an array of
//!   message objects, `msg.offline` one message object plus `to_uids`. Events WuKongIM has no webhook for
//!   (groups, profiles) go as `?event=<native name>` with the event's data object.
//! - `standard`: `POST {url}` with `{"type": name, "timestamp": rfc3339, "data": {...}}`; the only
//!   flavour of the operational events (`endpoint.*`, `delivery.exhausted`, `relay.refused`).
//! - `tencent`: Tencent Cloud Chat's callbacks (`tencent`).

pub mod standard;
pub mod tencent;
pub mod wukongim;

pub use wukongim::{render_notify, render_status, status_item};

use chathook_events::{Event, LoggedEvent, Origin};
use serde_json::Value;

use crate::catalog::{self, Route};
use crate::endpoint::{Endpoint, Flavour};
use crate::features::Features;

/// A body ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The event name on the wire.
    pub event: String,
    /// Query string for the URL (without `?`), possibly empty.
    pub query: String,
    pub body: Vec<u8>,
}

/// How `event` travels to an endpoint of `flavour`; `None` when the flavour does not send it.
pub fn route(flavour: Flavour, event: &Event) -> Option<Route> {
    let event = event.inner();
    match (flavour, event) {
        // The engine's own reports: in the standard flavour only.
        (Flavour::Standard, e) if e.kind().is_operational() => Some(Route::Single),
        (_, e) if e.kind().is_operational() => None,
        // Another server's webhook as it came: to its own flavour, and to the standard one.
        (Flavour::Standard, Event::Foreign(_)) => Some(Route::Single),
        (Flavour::Wukongim, Event::Foreign(f)) => {
            (f.origin == Origin::Wukongim).then_some(Route::Single)
        }
        (Flavour::Tencent, Event::Foreign(f)) => {
            (f.origin == Origin::Tencent).then_some(Route::Single)
        }
        // WuKongIM's msg.notify carries persisted messages only.
        (Flavour::Wukongim, Event::MessageSent(m)) if m.header.no_persist => None,
        (Flavour::Wukongim, _) => Some(catalog::entry(event.kind()).wukongim_route),
        (Flavour::Tencent, _) if !tencent::sends(event) => None,
        _ => Some(Route::Single),
    }
}

/// What an endpoint does with a logged event: the one decision push dispatchers and polls share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Not selected, behind a switched-off feature, or not sent in the endpoint's flavour.
    Pass,
    /// Selected, but left out by the endpoint's sources or filters (counted as filtered).
    Filtered,
    /// Sent, this way.
    Send(Route),
}

/// What `endpoint` does with `event` under the feature switches `features`.
pub(crate) fn take(endpoint: &Endpoint, event: &Event, features: &Features) -> Take {
    if !endpoint.selects(event) || !catalog::allowed(features, event.kind()) {
        return Take::Pass;
    }
    if !endpoint.admits(event) {
        return Take::Filtered;
    }
    match route(endpoint.flavour, event) {
        Some(r) => Take::Send(r),
        None => Take::Pass,
    }
}

/// An event's data object, as the native name's payload carries it.
pub(crate) fn event_data(event: &Event) -> Value {
    match serde_json::to_value(event.inner()) {
        Ok(Value::Object(mut o)) => o.remove("data").unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime_serde::re::humantime::format_rfc3339_millis(t).to_string()
}

/// A single-event delivery; `None` when the flavour does not send the event. `sdk_app_id` is
/// `tencent.sdk_app_id` (the tencent flavour names it in every request).
pub fn render_single(flavour: Flavour, logged: &LoggedEvent, sdk_app_id: u64) -> Option<Rendered> {
    let event = logged.event.inner();
    Some(match flavour {
        Flavour::Wukongim => wukongim::render(event),
        Flavour::Tencent => return tencent::render(logged, sdk_app_id),
        Flavour::Standard => standard::render(logged),
    })
}

/// A sample body (batches as one-element batches); `None` when the flavour does not send the event.
pub fn render_sample(flavour: Flavour, logged: &LoggedEvent, sdk_app_id: u64) -> Option<Rendered> {
    route(flavour, &logged.event)?;
    render_single(flavour, logged, sdk_app_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::EventKind;

    fn relayed(event: Event) -> LoggedEvent {
        LoggedEvent {
            position: 3,
            at_ms: 1_700_000_000_000,
            event: Event::relayed("src_a", event),
        }
    }

    #[test]
    fn a_foreign_event_goes_as_it_came_to_its_own_flavour_and_in_data_to_the_standard_one() {
        let tencent = relayed(crate::sample::foreign());
        let Event::Foreign(f) = tencent.event.inner() else {
            unreachable!()
        };
        let own = render_single(Flavour::Tencent, &tencent, 99).unwrap();
        assert_eq!(own.body, f.body.as_bytes());
        assert_eq!(
            own.query,
            "SdkAppid=1400000000&CallbackCommand=Group.CallbackAfterRecallMsg&contenttype=json\
             &ClientIP=203.0.113.7&OptPlatform=RESTAPI"
        );
        assert_eq!(route(Flavour::Wukongim, &tencent.event), None);
        let standard = render_single(Flavour::Standard, &tencent, 99).unwrap();
        let v: Value = serde_json::from_slice(&standard.body).unwrap();
        assert_eq!(v["type"], "tencent.Group.CallbackAfterRecallMsg");
        assert_eq!(v["data"], serde_json::from_str::<Value>(&f.body).unwrap());
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20.000Z");

        let wukongim = relayed(Event::Foreign(Box::new(chathook_events::Foreign {
            origin: Origin::Wukongim,
            command: "msg.stream".into(),
            body: r#"[{"a":1}]"#.into(),
            query: vec![],
        })));
        let own = render_single(Flavour::Wukongim, &wukongim, 99).unwrap();
        assert_eq!(
            (own.query.as_str(), own.body.as_slice()),
            ("event=msg.stream", &br#"[{"a":1}]"#[..])
        );
        assert_eq!(route(Flavour::Tencent, &wukongim.event), None);
    }

    #[test]
    fn a_relayed_event_renders_as_the_event_it_carries() {
        let local = catalog::sample(EventKind::MessageOffline);
        let far = relayed(local.event.clone());
        for flavour in [Flavour::Wukongim, Flavour::Standard] {
            let a = render_single(
                flavour,
                &LoggedEvent {
                    at_ms: far.at_ms,
                    ..local.clone()
                },
                1,
            );
            assert_eq!(a, render_single(flavour, &far, 1), "{flavour:?}");
        }
    }

    #[test]
    fn no_persist_messages_are_left_out_of_msg_notify_only() {
        let mut sent = catalog::sample(EventKind::MessageSent);
        if let Event::MessageSent(m) = &mut sent.event {
            m.header.no_persist = true;
        }
        assert_eq!(route(Flavour::Wukongim, &sent.event), None);
        assert_eq!(route(Flavour::Standard, &sent.event), Some(Route::Single));
    }
}
