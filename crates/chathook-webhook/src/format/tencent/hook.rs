//! Tencent's before-send callbacks: the `C2C/Group.CallbackBeforeSendMsg` request, the reading of its
//! verdict (`ErrorCode`), and the payload a rewriting verdict makes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{Outgoing, Verdict};
use serde_json::{json, Value};

use super::{msg_body, platform, query, GROUP_TYPE};
use crate::endpoint::HookKind;
use crate::format::Rendered;

/// The payload a before-send verdict's `MsgBody` and `CloudCustomData` make of `original`; `None` when
/// the verdict changes neither. The reverse of [`msg_body`]: one `TIMTextElem` becomes WuKongIM's text
/// convention, one `TIMCustomElem` its decoded `Data`, a payload that was an array stays an array, and
/// anything else (or custom data) becomes `{"MsgBody": [...], "CloudCustomData": "..."}`.
pub fn rewritten_payload(
    original: &[u8],
    new_body: Option<&Value>,
    new_custom: Option<&str>,
) -> Option<Vec<u8>> {
    if new_body.is_none() && new_custom.is_none() {
        return None;
    }
    let (old_body, old_custom) = msg_body(original);
    let body = new_body.cloned().unwrap_or(old_body);
    let custom = new_custom.map_or(old_custom, str::to_string);
    let elems = body.as_array().cloned().unwrap_or_default();
    if custom.is_empty() && elems.len() == 1 {
        let content = &elems[0]["MsgContent"];
        match elems[0]["MsgType"].as_str() {
            Some("TIMTextElem") if content["Text"].is_string() => {
                let text = json!({"type": 1, "content": content["Text"]});
                return Some(text.to_string().into_bytes());
            }
            Some("TIMCustomElem") => {
                if let Some(bytes) = content["Data"]
                    .as_str()
                    .and_then(|d| STANDARD.decode(d).ok())
                {
                    return Some(bytes);
                }
            }
            _ => {}
        }
    }
    let was_array = matches!(
        serde_json::from_slice::<Value>(original),
        Ok(Value::Array(_))
    );
    let payload = if custom.is_empty() && was_array {
        Value::Array(elems)
    } else {
        json!({"MsgBody": elems, "CloudCustomData": custom})
    };
    Some(payload.to_string().into_bytes())
}

/// The `C2C.CallbackBeforeSendMsg` / `Group.CallbackBeforeSendMsg` request for `m` (it has no seq yet:
/// `MsgSeq` is 0).
pub fn before_send(m: &Outgoing, sdk_app_id: u64, now_ms: i64) -> Rendered {
    let (msg_body, custom) = msg_body(&m.payload);
    let random = random_of(&m.client_msg_no);
    let online_only = u8::from(m.header.no_persist);
    let (command, body) = if m.channel_type == 1 {
        (
            "C2C.CallbackBeforeSendMsg",
            json!({"CallbackCommand": "C2C.CallbackBeforeSendMsg", "From_Account": m.from_uid,
                   "To_Account": m.channel_id, "MsgSeq": 0, "MsgRandom": random,
                   "MsgTime": m.timestamp, "MsgKey": format!("0_{random}_{}", m.timestamp),
                   "MsgId": m.client_msg_no, "OnlineOnlyFlag": online_only, "MsgBody": msg_body,
                   "CloudCustomData": custom, "EventTime": now_ms}),
        )
    } else {
        (
            "Group.CallbackBeforeSendMsg",
            json!({"CallbackCommand": "Group.CallbackBeforeSendMsg", "GroupId": m.channel_id,
                   "Type": GROUP_TYPE, "From_Account": m.from_uid, "Operator_Account": m.from_uid,
                   "Random": random, "MsgId": m.client_msg_no, "OnlineOnlyFlag": online_only,
                   "MsgBody": msg_body, "CloudCustomData": custom, "EventTime": now_ms}),
        )
    };
    Rendered {
        event: command.to_string(),
        query: query(
            sdk_app_id,
            command,
            Some((m.sender.ip.as_str(), platform(&m.sender))),
        ),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

/// A stable 32-bit random for a message without an id yet (from its `client_msg_no`).
fn random_of(client_msg_no: &str) -> u32 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    client_msg_no.hash(&mut h);
    h.finish() as u32
}

/// What Tencent gives a sender whose message a hook rejected with `ErrorCode` 1.
const C2C_REJECTED: i64 = 20006;
const GROUP_REJECTED: i64 = 10016;

/// The code a sender gets whose message the hook rejected with `ErrorCode` 1.
pub fn rejected_code(kind: HookKind) -> i64 {
    match kind {
        HookKind::Person => C2C_REJECTED,
        HookKind::Group => GROUP_REJECTED,
    }
}

/// Tencent's `ErrorCode`: 0 allow (a `MsgBody` or `CloudCustomData` rewrites), 1 reject (20006 or
/// 10016), 2 drop, a code in the pass-through range rejects with that code; anything else fails.
pub fn verdict(kind: HookKind, original: &[u8], answer: &Value) -> Result<Verdict, String> {
    let code = answer
        .get("ErrorCode")
        .and_then(Value::as_i64)
        .ok_or("the answer has no ErrorCode")?;
    let info = answer["ErrorInfo"].as_str().unwrap_or_default().to_string();
    let pass_through = match kind {
        HookKind::Person => 120_001..=130_000,
        HookKind::Group => 10_100..=10_200,
    };
    Ok(match code {
        0 => Verdict::Allow {
            payload: rewritten_payload(
                original,
                answer.get("MsgBody").filter(|b| b.is_array()),
                answer.get("CloudCustomData").and_then(Value::as_str),
            ),
        },
        1 => Verdict::Reject {
            code: rejected_code(kind),
            info,
        },
        2 => Verdict::Drop,
        c if pass_through.contains(&c) => Verdict::Reject { code: c, info },
        c => return Err(format!("ErrorCode {c} is not a verdict")),
    })
}

/// Tencent's answer carrying `verdict` (relay mode answers Tencent's before-send callbacks this way):
/// allow is `ErrorCode` 0 (with `MsgBody` and `CloudCustomData` when the payload was rewritten), a
/// rejection with Tencent's own code for the hook is 1, one with another code passes that code, a drop
/// is 2. What [`verdict`] reads back is `verdict` again.
pub fn answer(kind: HookKind, verdict: &Verdict) -> Value {
    let mut a = json!({"ActionStatus": "OK", "ErrorInfo": "", "ErrorCode": 0});
    match verdict {
        Verdict::Allow { payload: None } => {}
        Verdict::Allow {
            payload: Some(payload),
        } => {
            let (body, custom) = msg_body(payload);
            a["MsgBody"] = body;
            a["CloudCustomData"] = json!(custom);
        }
        Verdict::Reject { code, info } => {
            a["ErrorCode"] = json!(if *code == rejected_code(kind) {
                1
            } else {
                *code
            });
            a["ErrorInfo"] = json!(info);
        }
        Verdict::Drop => a["ErrorCode"] = json!(2),
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_reads_back_as_the_verdict_it_carries() {
        let original = br#"{"type":1,"content":"hi"}"#;
        let rewritten = serde_json::to_vec(&json!({"content": "***", "type": 1})).unwrap();
        for (kind, v) in [
            (HookKind::Person, Verdict::Allow { payload: None }),
            (
                HookKind::Group,
                Verdict::Allow {
                    payload: Some(rewritten),
                },
            ),
            (
                HookKind::Person,
                Verdict::Reject {
                    code: C2C_REJECTED,
                    info: "no".into(),
                },
            ),
            (
                HookKind::Person,
                Verdict::Reject {
                    code: 120_500,
                    info: "banned word".into(),
                },
            ),
            (
                HookKind::Group,
                Verdict::Reject {
                    code: GROUP_REJECTED,
                    info: String::new(),
                },
            ),
            (HookKind::Group, Verdict::Drop),
        ] {
            let a = answer(kind, &v);
            assert_eq!(a["ActionStatus"], "OK");
            assert_eq!(verdict(kind, original, &a).unwrap(), v, "{a}");
        }
    }
}
