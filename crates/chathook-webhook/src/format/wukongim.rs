//! The WuKongIM flavour: `POST {url}?event=<name>` with WuKongIM's raw bodies (`user.onlinestatus`,
//! `msg.notify`, `msg.offline`, and the native data object for events WuKongIM has no webhook for).
//! WuKongIM has no before-send hook. Relay mode reads the same bodies back (`parse`): what a WuKongIM
//! v2.2.5 server sends to its `webhook.httpAddr` becomes the typed events chathook's own IM core
//! produces.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{
    Event, Foreign, Message, MessageHeader, OfflineMessage, Origin, PresenceChange, PresenceReason,
};
use serde::{Deserialize, Serialize};

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

/// Why a WuKongIM webhook body cannot be read (answered with HTTP 400, stored nowhere).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{event}: {reason}")]
pub struct ParseError {
    pub event: String,
    pub reason: String,
}

/// An event read from a WuKongIM webhook, with its de-duplication key (a message's id).
pub type Parsed = (Event, Option<i64>);

/// Reads WuKongIM's webhook `event` with `body` (what v2.2.5 sends): `user.onlinestatus` (an array
/// of status strings), `msg.notify` (an array of messages, each keyed by its id), `msg.offline` (one
/// message with `to_uids`, possibly gzip-compressed). Any other event is kept as it came (a
/// [`chathook_events::Foreign`] event) if its body is JSON.
pub fn parse(event: &str, body: &[u8]) -> Result<Vec<Parsed>, ParseError> {
    let fail = |reason: String| ParseError {
        event: event.to_string(),
        reason,
    };
    match event {
        "user.onlinestatus" => {
            let items: Option<Vec<String>> =
                serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
            items
                .unwrap_or_default()
                .iter()
                .map(|item| parse_status(item).map(|e| (e, None)).map_err(&fail))
                .collect()
        }
        "msg.notify" => {
            let items: Option<Vec<WkIn>> =
                serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
            items
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    let key = m.message_id;
                    let message = m.into_message().map_err(|r| fail(format!("[{i}]: {r}")))?;
                    Ok((Event::MessageSent(message), Some(key)))
                })
                .collect()
        }
        "msg.offline" => {
            let mut m: WkIn = serde_json::from_slice(body).map_err(|e| fail(e.to_string()))?;
            let to_uids = m.offline_recipients().map_err(&fail)?;
            let source_id = m.source_id.unwrap_or(0);
            let message = m.into_message().map_err(&fail)?;
            Ok(vec![(
                Event::MessageOffline(OfflineMessage {
                    message,
                    to_uids,
                    source_id,
                }),
                None,
            )])
        }
        other => {
            let text =
                std::str::from_utf8(body).map_err(|_| fail("the body is not UTF-8".into()))?;
            serde_json::from_str::<serde::de::IgnoredAny>(text)
                .map_err(|e| fail(format!("the body is not JSON: {e}")))?;
            Ok(vec![(
                Event::Foreign(Box::new(Foreign {
                    origin: Origin::Wukongim,
                    command: other.to_string(),
                    body: text.to_string(),
                    query: Vec::new(),
                })),
                None,
            )])
        }
    }
}

/// One `user.onlinestatus` item, `uid-device_flag-online-conn_id-device_online_count-total_online_count`
/// (read from the right: a uid may hold `-`). WuKongIM does not say why a connection went, nor its
/// device level: an offline is `link_closed`, the level 0.
fn parse_status(item: &str) -> Result<Event, String> {
    let bad = || format!("{item:?} is not uid-device_flag-online-conn_id-device_count-total_count");
    let mut parts = item.rsplitn(6, '-');
    let mut number = || -> Result<u64, String> {
        parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or_else(bad)
    };
    let total = number()?;
    let device_count = number()?;
    let conn_id = number()?;
    let online = number()?;
    let device_flag = number()?;
    let uid = parts.next().filter(|u| !u.is_empty()).ok_or_else(bad)?;
    let (Ok(device_flag), Ok(device_count), Ok(total), true) = (
        u8::try_from(device_flag),
        u32::try_from(device_count),
        u32::try_from(total),
        online <= 1,
    ) else {
        return Err(bad());
    };
    let change = PresenceChange {
        uid: uid.to_string(),
        device_flag,
        device_level: 0,
        conn_id,
        device_online_count: device_count,
        total_online_count: total,
        reason: if online == 1 {
            PresenceReason::Login
        } else {
            PresenceReason::LinkClosed
        },
        client: Default::default(),
        kicked_platforms: Vec::new(),
    };
    Ok(if online == 1 {
        Event::UserOnline(change)
    } else {
        Event::UserOffline(change)
    })
}

/// WuKongIM's `MessageResp` as it arrives (a Go server: `null` for empty lists and strings omitted).
#[derive(Deserialize)]
struct WkIn {
    #[serde(default)]
    header: Option<WkHeaderIn>,
    #[serde(default)]
    setting: Option<u8>,
    message_id: i64,
    #[serde(default)]
    client_msg_no: Option<String>,
    #[serde(default)]
    message_seq: Option<u64>,
    #[serde(default)]
    from_uid: Option<String>,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    expire: Option<u32>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    payload: Option<String>,
    #[serde(default)]
    to_uids: Option<Vec<String>>,
    #[serde(default)]
    compress: Option<String>,
    #[serde(default)]
    compress_to_uids: Option<String>,
    #[serde(default)]
    source_id: Option<u64>,
}

#[derive(Deserialize, Default)]
struct WkHeaderIn {
    #[serde(default)]
    no_persist: u8,
    #[serde(default)]
    red_dot: u8,
    #[serde(default)]
    sync_once: u8,
}

/// The most uids a compressed `to_uids` may hold once inflated, in bytes of JSON.
const MAX_INFLATED_UIDS_BYTES: u64 = 16 * 1024 * 1024;

impl WkIn {
    fn into_message(self) -> Result<Message, String> {
        let payload = STANDARD
            .decode(self.payload.unwrap_or_default())
            .map_err(|_| "payload is not standard base64".to_string())?;
        let header = self.header.unwrap_or_default();
        Ok(Message {
            message_id: self.message_id,
            client_msg_no: self.client_msg_no.unwrap_or_default(),
            message_seq: self.message_seq.unwrap_or(0),
            from_uid: self.from_uid.unwrap_or_default(),
            channel_id: self.channel_id,
            channel_type: self.channel_type,
            header: MessageHeader {
                no_persist: header.no_persist == 1,
                red_dot: header.red_dot == 1,
                sync_once: header.sync_once == 1,
            },
            setting: self.setting.unwrap_or(0),
            expire: self.expire.unwrap_or(0),
            timestamp: self.timestamp.unwrap_or(0),
            payload,
            sender: Default::default(),
        })
    }

    /// `to_uids`, or with `compress: "gzip"` the JSON array gzipped in `compress_to_uids`.
    fn offline_recipients(&mut self) -> Result<Vec<String>, String> {
        match self.compress.as_deref() {
            None | Some("") => Ok(self.to_uids.take().unwrap_or_default()),
            Some("gzip") => {
                let packed = STANDARD
                    .decode(self.compress_to_uids.take().unwrap_or_default())
                    .map_err(|_| "compress_to_uids is not standard base64".to_string())?;
                let mut text = Vec::new();
                let inflater = flate2::read::GzDecoder::new(packed.as_slice());
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(inflater, MAX_INFLATED_UIDS_BYTES + 1),
                    &mut text,
                )
                .map_err(|e| format!("compress_to_uids is not gzip: {e}"))?;
                if text.len() as u64 > MAX_INFLATED_UIDS_BYTES {
                    return Err("compress_to_uids inflates beyond 16 MiB".into());
                }
                serde_json::from_slice(&text)
                    .map_err(|e| format!("compress_to_uids is not a JSON array of uids: {e}"))
            }
            Some(other) => Err(format!("unknown compress {other:?} (gzip is known)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::EventKind;
    use serde_json::Value;

    #[test]
    fn a_msg_notify_batch_as_wukongim_sends_it_reads_as_message_events_keyed_by_id() {
        // v2.2.5's MessageResp, stream fields and all, with a Go `null`.
        let body = br#"[{"header":{"no_persist":0,"red_dot":1,"sync_once":0},"setting":0,
            "message_id":1833405337402101760,"message_idstr":"1833405337402101760","client_msg_no":"c-1",
            "stream_idstr":"0","message_seq":7,"from_uid":"alice","channel_id":"bob","channel_type":1,
            "expire":0,"timestamp":1700000000,"payload":"aGk="},
            {"header":null,"message_id":2,"channel_id":"g1","channel_type":2,"payload":null}]"#;
        let parsed = parse("msg.notify", body).unwrap();
        assert_eq!(parsed.len(), 2);
        let (Event::MessageSent(m), Some(key)) = &parsed[0] else {
            panic!("{parsed:?}")
        };
        assert_eq!(*key, 1833405337402101760);
        assert_eq!(
            (
                m.message_seq,
                m.from_uid.as_str(),
                m.channel_id.as_str(),
                m.channel_type
            ),
            (7, "alice", "bob", 1)
        );
        assert!(m.header.red_dot && !m.header.no_persist);
        assert_eq!(
            (m.timestamp, m.payload.as_slice()),
            (1700000000, &b"hi"[..])
        );
        assert_eq!(parsed[1].1, Some(2));
    }

    #[test]
    fn what_the_wukongim_flavour_renders_reads_back_as_the_same_events() {
        for kind in [EventKind::MessageSent, EventKind::MessageOffline] {
            let sample = catalog::sample(kind).event;
            let r = render(&sample);
            let parsed = parse(&r.event, &r.body).unwrap();
            let mut expected = sample.clone();
            // the sender's client is not in WuKongIM's bodies
            match &mut expected {
                Event::MessageSent(m) => m.sender = Default::default(),
                Event::MessageOffline(o) => o.message.sender = Default::default(),
                _ => {}
            }
            assert_eq!(parsed[0].0, expected, "{kind}");
        }
        let Event::UserOnline(c) = catalog::sample(EventKind::UserOnline).event else {
            unreachable!()
        };
        let item = status_item(&c, true);
        let parsed = parse("user.onlinestatus", &serde_json::to_vec(&[&item]).unwrap()).unwrap();
        let Event::UserOnline(back) = &parsed[0].0 else {
            panic!("{parsed:?}")
        };
        assert_eq!(status_item(back, true), item);
    }

    #[test]
    fn status_items_read_from_the_right_so_a_uid_may_hold_dashes() {
        let parsed = parse("user.onlinestatus", br#"["u-1-x-1-0-42-0-3"]"#).unwrap();
        let Event::UserOffline(c) = &parsed[0].0 else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (
                c.uid.as_str(),
                c.device_flag,
                c.conn_id,
                c.device_online_count,
                c.total_online_count
            ),
            ("u-1-x", 1, 42, 0, 3)
        );
        assert_eq!(c.reason, PresenceReason::LinkClosed);
        assert!(parse("user.onlinestatus", br#"null"#).unwrap().is_empty());
        for bad in [
            r#"["alice-0-2-1-1-1"]"#,
            r#"["-0-1-1-1-1"]"#,
            r#"["alice-1-1"]"#,
            r#"[1]"#,
        ] {
            assert!(parse("user.onlinestatus", bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_compressed_to_uids_is_inflated() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"["bob","carol"]"#).unwrap();
        let packed = STANDARD.encode(gz.finish().unwrap());
        let body = format!(
            r#"{{"message_id":5,"channel_id":"g1","channel_type":2,"payload":"","to_uids":[],
               "compress":"gzip","compress_to_uids":"{packed}","source_id":1001}}"#
        );
        let parsed = parse("msg.offline", body.as_bytes()).unwrap();
        let Event::MessageOffline(o) = &parsed[0].0 else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (o.to_uids.clone(), o.source_id),
            (vec!["bob".to_string(), "carol".into()], 1001)
        );
        let broken = r#"{"message_id":5,"channel_id":"g","channel_type":2,"compress":"gzip","compress_to_uids":"AAAA"}"#;
        assert!(parse("msg.offline", broken.as_bytes()).is_err());
    }

    #[test]
    fn an_unknown_event_is_kept_as_it_came_and_a_broken_body_is_refused() {
        let parsed = parse("msg.stream", br#"{"b": [1, 2]}"#).unwrap();
        let Event::Foreign(f) = &parsed[0].0 else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (f.name().as_str(), f.body.as_str()),
            ("wukongim.msg.stream", r#"{"b": [1, 2]}"#)
        );
        assert!(parse("msg.stream", b"{nope").is_err());
        let e = parse("msg.notify", br#"[{"message_id":"x"}]"#).unwrap_err();
        assert_eq!(e.event, "msg.notify");
        assert!(parse(
            "msg.notify",
            br#"[{"message_id":1,"channel_id":"g","channel_type":2,"payload":"%%"}]"#
        )
        .unwrap_err()
        .reason
        .contains("base64"));
    }

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
