//! The standard flavour: `POST {url}` with `{"type": name, "timestamp": rfc3339, "data": {...}}` for
//! every event, and for the before-send hooks the same envelope of `message.before_send.person/group`,
//! answered `{"action": "allow"|"reject"|"drop", ...}`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{Event, Foreign, LoggedEvent, Outgoing, Verdict};
use serde_json::{json, Value};

use super::{event_data, rfc3339, Rendered};
use crate::endpoint::HookKind;

/// The request for one event.
pub fn render(logged: &LoggedEvent) -> Rendered {
    let event = logged.event.inner();
    if let Event::Foreign(f) = event {
        return foreign(f, logged.at_ms);
    }
    let body = json!({
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

/// Another server's webhook: `type` is `tencent.<Command>` or `wukongim.<event>`, `data` the body as
/// it came (valid JSON: the relay stores nothing else).
fn foreign(f: &Foreign, at_ms: i64) -> Rendered {
    let name = f.name();
    let head = json!({"type": name, "timestamp": rfc3339(at_ms)}).to_string();
    // `{"type":..,"timestamp":..}` with `,"data":<body>` spliced in before the closing brace.
    let mut body = head.into_bytes();
    body.pop();
    body.extend_from_slice(b",\"data\":");
    body.extend_from_slice(f.body.as_bytes());
    body.push(b'}');
    Rendered {
        event: name,
        query: String::new(),
        body,
    }
}

/// The before-send request about `m`, at `now_ms`.
pub fn before_send(kind: HookKind, m: &Outgoing, now_ms: i64) -> Rendered {
    let body = json!({
        "type": kind.name(),
        "timestamp": rfc3339(now_ms),
        "data": {
            "from_uid": m.from_uid,
            "channel_id": m.channel_id,
            "channel_type": m.channel_type,
            "client_msg_no": m.client_msg_no,
            "header": {"no_persist": m.header.no_persist, "red_dot": m.header.red_dot,
                       "sync_once": m.header.sync_once},
            "payload": STANDARD.encode(&m.payload),
            "timestamp": m.timestamp,
            "sender": *m.sender,
        },
    });
    Rendered {
        event: kind.name().to_string(),
        query: String::new(),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// The standard answer: `{"action": "allow"|"reject"|"drop", "code", "reason", "payload"}` (`payload`
/// in base64, replacing the message's on allow; `code` defaults to 1 on reject).
pub fn verdict(answer: &Value) -> Result<Verdict, String> {
    match answer.get("action").and_then(Value::as_str) {
        Some("allow") => {
            let payload = match answer.get("payload") {
                None | Some(Value::Null) => None,
                Some(Value::String(b64)) => Some(
                    STANDARD
                        .decode(b64)
                        .map_err(|_| "payload is not base64".to_string())?,
                ),
                Some(_) => return Err("payload must be a base64 string".into()),
            };
            Ok(Verdict::Allow { payload })
        }
        Some("reject") => Ok(Verdict::Reject {
            code: answer.get("code").and_then(Value::as_i64).unwrap_or(1),
            info: answer["reason"].as_str().unwrap_or_default().to_string(),
        }),
        Some("drop") => Ok(Verdict::Drop),
        _ => Err("action must be allow, reject or drop".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use chathook_events::EventKind;

    #[test]
    fn standard_envelope() {
        let r = render(&catalog::sample(EventKind::GroupCreated));
        assert_eq!(r.query, "");
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["type"], "group.created");
        assert_eq!(v["timestamp"], "2024-11-26T05:46:40.000Z");
        assert_eq!(v["data"]["channel_id"], "group-1");
    }
}
