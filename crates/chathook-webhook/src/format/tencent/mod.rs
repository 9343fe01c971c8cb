//! The `tencent` flavour: Tencent Cloud Chat's after-event callbacks. Each event becomes one
//! `CallbackCommand` with Tencent's field names and types, posted to
//! `{url}?SdkAppid=..&CallbackCommand=..&contenttype=json&ClientIP=..&OptPlatform=..` (the `Sign` and
//! `RequestTime` of an endpoint with a sign token are added per attempt by the client).
//!
//! Message bodies become `MsgBody` elements: a payload that is a JSON `MsgBody` array passes through
//! (an object `{"MsgBody": [...], "CloudCustomData": "..."}` too, with its custom data); WuKongIM's text
//! convention `{"type":1,"content":...}` becomes a `TIMTextElem`; anything else a `TIMCustomElem` whose
//! `Data` is the payload in base64.
//!
//! `hook` holds the before-send request and the reading of its verdict; `parse` reads Tencent's
//! callbacks back (relay mode).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chathook_events::{
    ClientInfo, Event, Foreign, GroupChange, LoggedEvent, Message, Origin, PresenceChange,
    PresenceReason,
};
use serde_json::{json, Value};

use super::Rendered;

mod hook;
mod parse;

pub use hook::{answer, before_send, rejected_code, rewritten_payload, verdict};
pub use parse::{parse, ParseError, Parsed, Request};

/// The group type every chathook group is shown as (chathook groups have no Tencent type).
const GROUP_TYPE: &str = "Public";

/// `(MsgBody, CloudCustomData)` of a payload.
pub fn msg_body(payload: &[u8]) -> (Value, String) {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Array(elems)) if elems.iter().all(is_element) => {
            (Value::Array(elems), String::new())
        }
        Ok(Value::Object(o)) => {
            if let Some(Value::Array(elems)) = o.get("MsgBody").filter(|b| {
                b.as_array()
                    .is_some_and(|elems| elems.iter().all(is_element))
            }) {
                let custom = o
                    .get("CloudCustomData")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return (Value::Array(elems.clone()), custom.to_string());
            }
            match (o.get("type").and_then(Value::as_i64), o.get("content")) {
                (Some(1), Some(Value::String(text))) => (
                    json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": text}}]),
                    String::new(),
                ),
                _ => (custom_elem(payload), String::new()),
            }
        }
        _ => (custom_elem(payload), String::new()),
    }
}

fn is_element(e: &Value) -> bool {
    e.get("MsgType").is_some_and(Value::is_string) && e.get("MsgContent").is_some()
}

fn custom_elem(payload: &[u8]) -> Value {
    json!([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": STANDARD.encode(payload), "Desc": "", "Ext": "", "Sound": ""}}])
}

/// `MsgRandom` (Tencent's client random; here the low 32 bits of the message id).
fn msg_random(m: &Message) -> u32 {
    (m.message_id & 0xffff_ffff) as u32
}

/// The query string of a command (without `Sign`/`RequestTime`).
fn query(sdk_app_id: u64, command: &str, client: Option<(&str, &str)>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("SdkAppid", &sdk_app_id.to_string())
        .append_pair("CallbackCommand", command)
        .append_pair("contenttype", "json");
    if let Some((ip, platform)) = client {
        q.append_pair("ClientIP", ip)
            .append_pair("OptPlatform", platform);
    }
    q.finish()
}

/// The platform of a message's sender or a connection, as `OptPlatform` names it.
fn platform(client: &ClientInfo) -> &str {
    if client.platform.is_empty() {
        "Unknown"
    } else {
        &client.platform
    }
}

/// `State.StateChange`'s `Action` and `Reason`; `None` for a connection a newer login replaced
/// (Tencent reports those only as the new login's `KickedDevice`).
fn state_change(online: bool, reason: PresenceReason) -> Option<(&'static str, &'static str)> {
    if online {
        return Some(("Login", "Register"));
    }
    Some(match reason {
        PresenceReason::Kicked => return None,
        PresenceReason::Logout => ("Logout", "Unregister"),
        PresenceReason::HeartbeatTimeout => ("Disconnect", "TimeOut"),
        _ => ("Disconnect", "LinkClose"),
    })
}

/// Whether the tencent flavour sends `event` at all.
pub fn sends(event: &Event) -> bool {
    if event.kind().is_operational() {
        return false;
    }
    match event.inner() {
        Event::MessageOffline(_) => false,
        Event::UserOffline(c) => state_change(false, c.reason).is_some(),
        _ => true,
    }
}

/// Renders `logged` as Tencent's callback; `None` when the flavour does not send it.
pub fn render(logged: &LoggedEvent, sdk_app_id: u64) -> Option<Rendered> {
    let at = logged.at_ms;
    // A callback relayed from a Tencent app names that app again.
    let sdk_app_id = match &logged.event {
        Event::Relayed(r) => r.sdk_app_id.unwrap_or(sdk_app_id),
        _ => sdk_app_id,
    };
    let (command, client, mut body) = match logged.event.inner() {
        Event::Foreign(f) => return foreign(f),
        Event::Relayed(_) => return None, // `inner` never answers a relayed event
        // Operational events go to the standard flavour only.
        Event::EndpointFailing(_)
        | Event::EndpointRecovered(_)
        | Event::EndpointBreakerOpen(_)
        | Event::EndpointDisabled(_)
        | Event::EndpointEnabled(_)
        | Event::DeliveryExhausted(_)
        | Event::RelayRefused(_) => return None,
        Event::UserOnline(c) => state(c, true, at)?,
        Event::UserOffline(c) => state(c, false, at)?,
        Event::MessageSent(m) => sent(m, at),
        Event::MessageOffline(_) => return None,
        Event::GroupCreated(g) => (
            "Group.CallbackAfterCreateGroup",
            rest(),
            json!({"GroupId": g.channel_id, "Type": GROUP_TYPE, "Owner_Account": "",
                   "Operator_Account": "", "Name": g.channel_id, "MemberList": members(g),
                   "EventTime": at}),
        ),
        Event::GroupMemberAdded(g) => (
            "Group.CallbackAfterNewMemberJoin",
            rest(),
            json!({"GroupId": g.channel_id, "Type": GROUP_TYPE, "JoinType": "Invited",
                   "Operator_Account": "", "NewMemberList": members(g), "EventTime": at}),
        ),
        Event::GroupMemberRemoved(g) => (
            "Group.CallbackAfterMemberExit",
            rest(),
            json!({"GroupId": g.channel_id, "Type": GROUP_TYPE, "ExitType": "Kicked",
                   "Operator_Account": "", "ExitMemberList": members(g), "EventTime": at}),
        ),
        Event::GroupDismissed(g) => (
            "Group.CallbackAfterGroupDestroyed",
            rest(),
            json!({"GroupId": g.channel_id, "Type": GROUP_TYPE, "Owner_Account": "",
                   "Name": g.channel_id, "MemberList": [], "EventTime": at}),
        ),
        Event::GroupMemberOnlineStatus(s) => (
            "Group.CallbackOnMemberStateChange",
            None,
            json!({"GroupId": s.channel_id,
                   "EventType": if s.online { "Online" } else { "Offline" },
                   "EventCause": if s.online { "Login" } else { "Logout" },
                   "MemberList": [{"Member_Account": s.uid}], "EventTime": at}),
        ),
        Event::ProfileChanged(p) => {
            let mut items = vec![
                json!({"Tag": "Tag_Profile_IM_Nick", "Value": p.name}),
                json!({"Tag": "Tag_Profile_IM_Image", "Value": p.avatar}),
            ];
            items.extend(
                p.custom
                    .iter()
                    .map(|(k, v)| json!({"Tag": format!("Tag_Profile_Custom_{k}"), "Value": v})),
            );
            (
                "Profile.CallbackPortraitSet",
                rest(),
                json!({"Operator_Account": p.uid, "From_Account": p.uid, "ProfileItem": items,
                       "EventTime": at}),
            )
        }
    };
    body["CallbackCommand"] = json!(command);
    Some(Rendered {
        event: command.to_string(),
        query: query(
            sdk_app_id,
            command,
            client.as_ref().map(|(ip, p)| (ip.as_str(), p.as_str())),
        ),
        body: serde_json::to_vec(&body).unwrap_or_default(),
    })
}

/// Another Tencent app's callback as it came: its own query (`Sign` and `RequestTime` are added per
/// attempt, under this endpoint's token) and body. `None` for another origin's.
fn foreign(f: &Foreign) -> Option<Rendered> {
    if f.origin != Origin::Tencent {
        return None;
    }
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &f.query {
        q.append_pair(k, v);
    }
    Some(Rendered {
        event: f.command.clone(),
        query: q.finish(),
        body: f.body.clone().into_bytes(),
    })
}

type Parts = (&'static str, Option<(String, String)>, Value);

/// Group and profile changes come from the REST API.
fn rest() -> Option<(String, String)> {
    Some((String::new(), ClientInfo::REST_API.to_string()))
}

fn members(g: &GroupChange) -> Value {
    Value::Array(
        g.uids
            .iter()
            .map(|u| json!({"Member_Account": u}))
            .collect(),
    )
}

fn state(c: &PresenceChange, online: bool, at: i64) -> Option<Parts> {
    let (action, reason) = state_change(online, c.reason)?;
    // State.StateChange spells iOS in capitals, as Tencent does (every other command: iOS).
    let platform = match platform(&c.client) {
        "iOS" => "IOS",
        p => p,
    };
    let mut body = json!({"EventTime": at,
        "Info": {"Action": action, "To_Account": c.uid, "Reason": reason}});
    if online && !c.kicked_platforms.is_empty() {
        body["KickedDevice"] = c
            .kicked_platforms
            .iter()
            .map(|p| json!({"Platform": p}))
            .collect();
    }
    Some((
        "State.StateChange",
        Some((c.client.ip.clone(), platform.to_string())),
        body,
    ))
}

fn sent(m: &Message, at: i64) -> Parts {
    let (msg_body, custom) = msg_body(&m.payload);
    let random = msg_random(m);
    let online_only = u8::from(m.header.no_persist);
    let client = Some((m.sender.ip.clone(), platform(&m.sender).to_string()));
    if m.channel_type == 1 {
        let body = json!({
            "From_Account": m.from_uid,
            "To_Account": m.channel_id,
            "MsgSeq": m.message_seq,
            "MsgRandom": random,
            "MsgTime": m.timestamp,
            "MsgKey": format!("{}_{}_{}", m.message_seq, random, m.timestamp),
            "MsgId": m.client_msg_no,
            "OnlineOnlyFlag": online_only,
            "SendMsgResult": 0,
            "ErrorInfo": "send msg succeed",
            "UnreadMsgNum": 0,
            "MsgBody": msg_body,
            "CloudCustomData": custom,
            "EventTime": at,
        });
        ("C2C.CallbackAfterSendMsg", client, body)
    } else {
        let body = json!({
            "GroupId": m.channel_id,
            "Type": GROUP_TYPE,
            "From_Account": m.from_uid,
            "Operator_Account": m.from_uid,
            "Random": random,
            "MsgSeq": m.message_seq,
            "MsgTime": m.timestamp,
            "MsgId": m.client_msg_no,
            "OnlineOnlyFlag": online_only,
            "MsgBody": msg_body,
            "CloudCustomData": custom,
            "EventTime": at,
        });
        ("Group.CallbackAfterSendMsg", client, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use chathook_events::EventKind;

    fn parse(r: &Rendered) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn payloads_map_to_msg_body_elements() {
        let (body, custom) = msg_body(br#"{"type":1,"content":"hi"}"#);
        assert_eq!(
            body,
            json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "hi"}}])
        );
        assert_eq!(custom, "");
        let elems = json!([{"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1, "Data": "x"}}]);
        assert_eq!(msg_body(elems.to_string().as_bytes()).0, elems);
        let wrapped = json!({"MsgBody": elems, "CloudCustomData": "level=3"});
        assert_eq!(
            msg_body(wrapped.to_string().as_bytes()),
            (elems.clone(), "level=3".to_string())
        );
        let (custom_elem, _) = msg_body(&[0, 159, 146, 150]);
        assert_eq!(custom_elem[0]["MsgType"], "TIMCustomElem");
        assert_eq!(
            STANDARD
                .decode(custom_elem[0]["MsgContent"]["Data"].as_str().unwrap())
                .unwrap(),
            vec![0, 159, 146, 150]
        );
        // an array that is not elements is an opaque payload
        assert_eq!(msg_body(b"[1,2]").0[0]["MsgType"], "TIMCustomElem");
    }

    #[test]
    fn verdict_bodies_map_back_to_payloads() {
        let text = br#"{"type":1,"content":"hi"}"#;
        assert_eq!(rewritten_payload(text, None, None), None);
        let masked = json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "**"}}]);
        assert_eq!(
            rewritten_payload(text, Some(&masked), None).unwrap(),
            br#"{"content":"**","type":1}"#.to_vec()
        );
        let custom = json!([{"MsgType": "TIMCustomElem", "MsgContent": {"Data": STANDARD.encode([1u8, 2, 3])}}]);
        assert_eq!(
            rewritten_payload(text, Some(&custom), None).unwrap(),
            vec![1, 2, 3]
        );
        let with_data: Value =
            serde_json::from_slice(&rewritten_payload(text, None, Some("level=3")).unwrap())
                .unwrap();
        assert_eq!(with_data["CloudCustomData"], "level=3");
        assert_eq!(with_data["MsgBody"][0]["MsgContent"]["Text"], "hi");
        let two = json!([{"MsgType": "TIMTextElem", "MsgContent": {"Text": "a"}},
                         {"MsgType": "TIMFaceElem", "MsgContent": {"Index": 1}}]);
        let was_array = two.to_string();
        assert_eq!(
            serde_json::from_slice::<Value>(
                &rewritten_payload(was_array.as_bytes(), Some(&two), None).unwrap()
            )
            .unwrap(),
            two
        );
    }

    #[test]
    fn a_c2c_message_and_its_query() {
        let r = render(&catalog::sample(EventKind::MessageSent), 1_400_000_000).unwrap();
        assert_eq!(r.event, "C2C.CallbackAfterSendMsg");
        assert_eq!(
            r.query,
            "SdkAppid=1400000000&CallbackCommand=C2C.CallbackAfterSendMsg&contenttype=json\
             &ClientIP=203.0.113.7&OptPlatform=iOS"
        );
        let v = parse(&r);
        assert_eq!(v["CallbackCommand"], "C2C.CallbackAfterSendMsg");
        assert_eq!(
            (v["From_Account"].as_str(), v["To_Account"].as_str()),
            (Some("alice"), Some("bob"))
        );
        let (seq, random, time) = (
            v["MsgSeq"].as_u64().unwrap(),
            v["MsgRandom"].as_u64().unwrap(),
            v["MsgTime"].as_i64().unwrap(),
        );
        assert_eq!(v["MsgKey"], format!("{seq}_{random}_{time}"));
        assert_eq!(v["MsgBody"][0]["MsgContent"]["Text"], "hello");
        assert!(v["EventTime"].is_i64() && v["OnlineOnlyFlag"] == 0);
    }

    #[test]
    fn state_changes_spell_ios_in_capitals_and_name_kicked_devices() {
        let mut online = catalog::sample(EventKind::UserOnline);
        if let Event::UserOnline(c) = &mut online.event {
            c.kicked_platforms = vec!["Android".into()];
        }
        let r = render(&online, 7).unwrap();
        assert!(
            r.query.ends_with("&ClientIP=203.0.113.7&OptPlatform=IOS"),
            "{}",
            r.query
        );
        let v = parse(&r);
        assert_eq!(
            v["Info"],
            json!({"Action": "Login", "To_Account": "alice", "Reason": "Register"})
        );
        assert_eq!(v["KickedDevice"], json!([{"Platform": "Android"}]));
        let mut kicked = catalog::sample(EventKind::UserOffline);
        if let Event::UserOffline(c) = &mut kicked.event {
            c.reason = PresenceReason::Kicked;
        }
        assert!(
            render(&kicked, 7).is_none(),
            "a kicked connection is told as the new login's KickedDevice"
        );
        let off = parse(&render(&catalog::sample(EventKind::UserOffline), 7).unwrap());
        assert_eq!(off["Info"]["Action"], "Disconnect");
        assert_eq!(off["Info"]["Reason"], "LinkClose");
    }

    #[test]
    fn a_live_group_member_change_carries_no_client() {
        let r = render(&catalog::sample(EventKind::GroupMemberOnlineStatus), 7).unwrap();
        assert_eq!(
            r.query,
            "SdkAppid=7&CallbackCommand=Group.CallbackOnMemberStateChange&contenttype=json"
        );
        assert_eq!(parse(&r)["EventType"], "Online");
    }
}
