//! Rendering events for an endpoint's flavour. A body is rendered once per delivery and sent unchanged
//! on every attempt.
//!
//! - `wukongim`: `POST {url}?event=<name>` with WuKongIM's raw bodies: `user.onlinestatus` is an array of
//!   `"uid-device_flag-status-conn_id-device_online_count-total_online_count"`, `msg.notify` an array of
//!   message objects, `msg.offline` one message object plus `to_uids`. Events WuKongIM has no webhook for
//!   (groups, profiles) go as `?event=<native name>` with the event's data object.
//! - `standard`: `POST {url}` with `{"type": name, "timestamp": rfc3339, "data": {...}}`.
//! - `tencent`: Tencent Cloud Chat's callbacks (`tencent`).

pub mod tencent;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{Event, LoggedEvent, Message, PresenceChange};
use serde::Serialize;
use serde_json::Value;

use crate::catalog;
use crate::endpoint::Flavour;

/// A body ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// The event name on the wire.
    pub event: String,
    /// Query string for the URL (without `?`), possibly empty.
    pub query: String,
    pub body: Vec<u8>,
}

/// How an event travels to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One delivery per event.
    Single,
    /// Batched into `msg.notify`.
    Notify,
    /// Batched into `user.onlinestatus`.
    Status,
}

/// How `event` travels to an endpoint of `flavour`; `None` when the flavour does not send it.
pub fn route(flavour: Flavour, event: &Event) -> Option<Route> {
    match (flavour, event) {
        // WuKongIM's msg.notify carries persisted messages only.
        (Flavour::Wukongim, Event::MessageSent(m)) if m.header.no_persist => None,
        (Flavour::Wukongim, _) => Some(catalog::entry(event.kind()).wukongim_route),
        (Flavour::Tencent, _) if !tencent::sends(event) => None,
        _ => Some(Route::Single),
    }
}

/// WuKongIM's `MessageResp`.
#[derive(Serialize)]
struct WkMessage<'a> {
    header: WkHeader,
    setting: u8,
    message_id: i64,
    message_idstr: String,
    client_msg_no: &'a str,
    message_seq: u64,
    from_uid: &'a str,
    channel_id: &'a str,
    channel_type: u8,
    expire: u32,
    timestamp: i64,
    payload: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_uids: Option<&'a [String]>,
    /// msg.offline: the node that accepted the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    source_id: Option<u64>,
}

#[derive(Serialize)]
struct WkHeader {
    no_persist: u8,
    red_dot: u8,
    sync_once: u8,
}

fn wk_message<'a>(m: &'a Message, offline: Option<(&'a [String], u64)>) -> WkMessage<'a> {
    WkMessage {
        header: WkHeader {
            no_persist: u8::from(m.header.no_persist),
            red_dot: u8::from(m.header.red_dot),
            sync_once: u8::from(m.header.sync_once),
        },
        setting: m.setting,
        message_id: m.message_id,
        message_idstr: m.message_id.to_string(),
        client_msg_no: &m.client_msg_no,
        message_seq: m.message_seq,
        from_uid: &m.from_uid,
        channel_id: &m.channel_id,
        channel_type: m.channel_type,
        expire: m.expire,
        timestamp: m.timestamp,
        payload: STANDARD.encode(&m.payload),
        to_uids: offline.map(|(uids, _)| uids),
        source_id: offline.map(|(_, source)| source),
    }
}

fn wukongim_query(event: &str) -> String {
    format!("event={event}")
}

/// One `msg.notify` body.
pub fn render_notify(messages: &[&Message]) -> Rendered {
    let items: Vec<WkMessage<'_>> = messages.iter().map(|m| wk_message(m, None)).collect();
    Rendered {
        event: "msg.notify".into(),
        query: wukongim_query("msg.notify"),
        body: serde_json::to_vec(&items).unwrap_or_default(),
    }
}

/// One `user.onlinestatus` item.
pub fn status_item(change: &PresenceChange, online: bool) -> String {
    format!(
        "{}-{}-{}-{}-{}-{}",
        change.uid,
        change.device_flag,
        u8::from(online),
        change.conn_id,
        change.device_online_count,
        change.total_online_count
    )
}

/// One `user.onlinestatus` body.
pub fn render_status(items: &[String]) -> Rendered {
    Rendered {
        event: "user.onlinestatus".into(),
        query: wukongim_query("user.onlinestatus"),
        body: serde_json::to_vec(items).unwrap_or_default(),
    }
}

fn event_data(event: &Event) -> Value {
    match serde_json::to_value(event) {
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
    let event = &logged.event;
    Some(match flavour {
        Flavour::Wukongim => match event {
            Event::MessageOffline(o) => Rendered {
                event: "msg.offline".into(),
                query: wukongim_query("msg.offline"),
                body: serde_json::to_vec(&wk_message(&o.message, Some((&o.to_uids, o.source_id))))
                    .unwrap_or_default(),
            },
            Event::MessageSent(m) => render_notify(&[m]),
            Event::UserOnline(c) => render_status(&[status_item(c, true)]),
            Event::UserOffline(c) => render_status(&[status_item(c, false)]),
            other => {
                let name = catalog::entry(other.kind()).wukongim;
                Rendered {
                    event: name.into(),
                    query: wukongim_query(name),
                    body: serde_json::to_vec(&event_data(other)).unwrap_or_default(),
                }
            }
        },
        Flavour::Tencent => return tencent::render(logged, sdk_app_id),
        Flavour::Standard => {
            let body = serde_json::json!({
                "type": event.name(),
                "timestamp": rfc3339(logged.at_ms),
                "data": event_data(event),
            });
            Rendered {
                event: event.name().into(),
                query: String::new(),
                body: serde_json::to_vec(&body).unwrap_or_default(),
            }
        }
    })
}

/// A sample body (batches as one-element batches); `None` when the flavour does not send the event.
pub fn render_sample(flavour: Flavour, logged: &LoggedEvent, sdk_app_id: u64) -> Option<Rendered> {
    render_single(flavour, logged, sdk_app_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::EventKind;

    #[test]
    fn wukongim_bodies() {
        let online = render_single(
            Flavour::Wukongim,
            &catalog::sample(EventKind::UserOnline),
            0,
        )
        .unwrap();
        assert_eq!(online.query, "event=user.onlinestatus");
        let items: Vec<String> = serde_json::from_slice(&online.body).unwrap();
        assert_eq!(items, vec!["alice-0-1-42-1-1"]);

        let offline = render_single(
            Flavour::Wukongim,
            &catalog::sample(EventKind::MessageOffline),
            0,
        )
        .unwrap();
        assert_eq!(offline.query, "event=msg.offline");
        let v: Value = serde_json::from_slice(&offline.body).unwrap();
        assert!(v.is_object());
        assert_eq!(v["to_uids"], serde_json::json!(["bob"]));
        assert_eq!(v["source_id"], 1);
        assert_eq!(
            v["header"],
            serde_json::json!({"no_persist": 0, "red_dot": 1, "sync_once": 0})
        );
        assert_eq!(v["message_idstr"], v["message_id"].to_string());
        assert_eq!(
            STANDARD.decode(v["payload"].as_str().unwrap()).unwrap(),
            br#"{"type":1,"content":"hello"}"#
        );
        assert_eq!(v["timestamp"], 1_732_600_000);

        let notify = render_single(
            Flavour::Wukongim,
            &catalog::sample(EventKind::MessageSent),
            0,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&notify.body).unwrap();
        assert!(v.is_array() && v[0]["to_uids"].is_null() && v[0]["source_id"].is_null());
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

    #[test]
    fn standard_envelope() {
        let r = render_single(
            Flavour::Standard,
            &catalog::sample(EventKind::GroupCreated),
            0,
        )
        .unwrap();
        assert_eq!(r.query, "");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "group.created");
        assert_eq!(v["timestamp"], "2024-11-26T05:46:40.000Z");
        assert_eq!(v["data"]["channel_id"], "group-1");
    }
}
