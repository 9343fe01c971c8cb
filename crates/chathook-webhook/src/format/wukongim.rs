//! The WuKongIM flavour: `POST {url}?event=<name>` with WuKongIM's raw bodies (`user.onlinestatus`,
//! `msg.notify`, `msg.offline`, and the native data object for events WuKongIM has no webhook for).
//! WuKongIM has no before-send hook.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{Event, Message, PresenceChange};
use serde::Serialize;

use super::{event_data, Rendered};
use crate::catalog;

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

fn query(event: &str) -> String {
    format!("event={event}")
}

/// One `msg.notify` body.
pub fn render_notify(messages: &[&Message]) -> Rendered {
    let items: Vec<WkMessage<'_>> = messages.iter().map(|m| wk_message(m, None)).collect();
    Rendered {
        event: "msg.notify".into(),
        query: query("msg.notify"),
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
        query: query("user.onlinestatus"),
        body: serde_json::to_vec(items).unwrap_or_default(),
    }
}

/// The request for one event.
pub fn render(event: &Event) -> Rendered {
    match event {
        Event::MessageOffline(o) => Rendered {
            event: "msg.offline".into(),
            query: query("msg.offline"),
            body: serde_json::to_vec(&wk_message(&o.message, Some((&o.to_uids, o.source_id))))
                .unwrap_or_default(),
        },
        Event::MessageSent(m) => render_notify(&[m]),
        Event::UserOnline(c) => render_status(&[status_item(c, true)]),
        Event::UserOffline(c) => render_status(&[status_item(c, false)]),
        // Another WuKongIM's webhook as it came (`route` sends only those of WuKongIM's origin).
        Event::Foreign(f) => Rendered {
            event: f.command.clone(),
            query: query(&f.command),
            body: f.body.clone().into_bytes(),
        },
        Event::Relayed(r) => render(&r.event),
        other => {
            let name = catalog::entry(other.kind()).wukongim;
            Rendered {
                event: name.into(),
                query: query(name),
                body: serde_json::to_vec(&event_data(other)).unwrap_or_default(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::EventKind;
    use serde_json::Value;

    #[test]
    fn wukongim_bodies() {
        let online = render(&catalog::sample(EventKind::UserOnline).event);
        assert_eq!(online.query, "event=user.onlinestatus");
        let items: Vec<String> = serde_json::from_slice(&online.body).unwrap();
        assert_eq!(items, vec!["alice-0-1-42-1-1"]);

        let offline = render(&catalog::sample(EventKind::MessageOffline).event);
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

        let notify = render(&catalog::sample(EventKind::MessageSent).event);
        let v: Value = serde_json::from_slice(&notify.body).unwrap();
        assert!(v.is_array() && v[0]["to_uids"].is_null() && v[0]["source_id"].is_null());
    }
}
