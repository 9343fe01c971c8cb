//! Relay mode reads Tencent Cloud Chat's callbacks back: the after-event commands the tencent flavour
//! renders become the same typed events chathook's IM core produces; the before-send commands become
//! the message a hook judges; any other command is kept as it came (a `Foreign` event with its query).
//! `EventTime` may be a number or a string, as Tencent's examples show both.

use std::collections::BTreeMap;
use std::sync::Arc;

use chathook_events::{
    ClientInfo, Event, Foreign, GroupChange, GroupRef, LiveMemberStatus, Message, MessageHeader,
    Origin, Outgoing, PresenceChange, PresenceReason, ProfileChange,
};
use serde_json::Value;

use super::rewritten_payload;
use crate::endpoint::HookKind;

/// A Tencent callback as it arrived.
pub struct Request<'a> {
    /// The query parameters in order (`Sign` and `RequestTime` included; they are left out of what
    /// is kept).
    pub query: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `CallbackCommand` from the query (or, missing there, the body's).
    pub fn command(&self) -> Option<String> {
        self.param("CallbackCommand")
            .map(str::to_string)
            .or_else(|| {
                serde_json::from_slice::<Value>(self.body)
                    .ok()?
                    .get("CallbackCommand")?
                    .as_str()
                    .map(str::to_string)
            })
    }

    /// The sender's client: `ClientIP` and `OptPlatform`.
    fn client(&self) -> Arc<ClientInfo> {
        Arc::new(ClientInfo {
            ip: self.param("ClientIP").unwrap_or_default().to_string(),
            platform: match self.param("OptPlatform").unwrap_or_default() {
                "IOS" => "iOS".to_string(),
                "Unknown" => String::new(),
                p => p.to_string(),
            },
        })
    }
}

/// What a callback is.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// After-events (and foreign commands), to store.
    Events(Vec<Event>),
    /// A before-send callback: the message to judge, answered at once.
    BeforeSend(HookKind, Outgoing),
}

/// Why a callback cannot be read (HTTP 400, stored nowhere).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{command}: {reason}")]
pub struct ParseError {
    pub command: String,
    pub reason: String,
}

/// Reads a Tencent callback.
pub fn parse(req: &Request<'_>) -> Result<Parsed, ParseError> {
    let command = req.command().unwrap_or_default();
    let fail = |reason: String| ParseError {
        command: command.clone(),
        reason,
    };
    if command.is_empty() {
        return Err(fail("CallbackCommand is missing".into()));
    }
    let body: Value =
        serde_json::from_slice(req.body).map_err(|e| fail(format!("the body is not JSON: {e}")))?;
    if !body.is_object() {
        return Err(fail("the body is not a JSON object".into()));
    }
    if let Some(kind) = HookKind::from_name(&command).filter(|k| k.tencent_command() == command) {
        return outgoing(kind, &body, req)
            .map(|m| Parsed::BeforeSend(kind, m))
            .map_err(fail);
    }
    let events = match command.as_str() {
        "State.StateChange" => vec![state(&body, req).map_err(fail)?],
        "C2C.CallbackAfterSendMsg" => {
            vec![Event::MessageSent(message(1, &body, req).map_err(fail)?)]
        }
        "Group.CallbackAfterSendMsg" => {
            vec![Event::MessageSent(message(2, &body, req).map_err(fail)?)]
        }
        "Group.CallbackAfterCreateGroup" => vec![Event::GroupCreated(
            group(&body, "MemberList").map_err(fail)?,
        )],
        "Group.CallbackAfterNewMemberJoin" => {
            vec![Event::GroupMemberAdded(
                group(&body, "NewMemberList").map_err(fail)?,
            )]
        }
        "Group.CallbackAfterMemberExit" => {
            vec![Event::GroupMemberRemoved(
                group(&body, "ExitMemberList").map_err(fail)?,
            )]
        }
        "Group.CallbackAfterGroupDestroyed" => vec![Event::GroupDismissed(GroupRef {
            channel_id: text(&body, "GroupId").map_err(fail)?,
        })],
        "Group.CallbackOnMemberStateChange" => member_states(&body).map_err(fail)?,
        "Profile.CallbackPortraitSet" => vec![Event::ProfileChanged(profile(&body).map_err(fail)?)],
        _ => vec![Event::Foreign(Box::new(Foreign {
            origin: Origin::Tencent,
            command: command.clone(),
            body: String::from_utf8_lossy(req.body).into_owned(),
            query: req
                .query
                .iter()
                .filter(|(k, _)| k != "Sign" && k != "RequestTime")
                .cloned()
                .collect(),
        }))],
    };
    Ok(Parsed::Events(events))
}

fn text(body: &Value, field: &str) -> Result<String, String> {
    body.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("{field} is missing or not a string"))
}

/// A number, or a string of digits (Tencent's examples give both).
fn number(body: &Value, field: &str) -> Option<i64> {
    match body.get(field)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// `State.StateChange`: a login is online; `Logout` and `Disconnect` offline (`TimeOut` a heartbeat
/// timeout). Tencent names no device or connection: the flag comes from `OptPlatform` (Web 1,
/// desktops 2, else 0), the connection id is 0 and the counts are unknown (0).
fn state(body: &Value, req: &Request<'_>) -> Result<Event, String> {
    let info = body.get("Info").ok_or("Info is missing")?;
    let uid = text(info, "To_Account")?;
    let action = info
        .get("Action")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let reason = info
        .get("Reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let client = req.client();
    let device_flag = match client.platform.as_str() {
        "Web" => 1,
        "Windows" | "Mac" | "macOS" => 2,
        _ => 0,
    };
    let change = |reason| PresenceChange {
        uid: uid.clone(),
        device_flag,
        device_level: 0,
        conn_id: 0,
        device_online_count: 0,
        total_online_count: 0,
        reason,
        client: (*client).clone(),
        kicked_platforms: Vec::new(),
    };
    Ok(match (action, reason) {
        ("Login", _) => Event::UserOnline(PresenceChange {
            kicked_platforms: body
                .get("KickedDevice")
                .and_then(Value::as_array)
                .map(|d| {
                    d.iter()
                        .filter_map(|p| p["Platform"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            ..change(PresenceReason::Login)
        }),
        ("Logout", _) => Event::UserOffline(change(PresenceReason::Logout)),
        ("Disconnect", "TimeOut") => Event::UserOffline(change(PresenceReason::HeartbeatTimeout)),
        ("Disconnect", _) => Event::UserOffline(change(PresenceReason::LinkClosed)),
        (other, _) => {
            return Err(format!(
                "Info.Action {other:?} is not Login, Logout or Disconnect"
            ))
        }
    })
}

/// The payload `MsgBody` and `CloudCustomData` make (the reverse of the flavour's `msg_body`).
fn payload(body: &Value) -> Result<Vec<u8>, String> {
    let elems = body
        .get("MsgBody")
        .filter(|b| b.is_array())
        .ok_or("MsgBody is missing or not an array")?;
    let custom = body.get("CloudCustomData").and_then(Value::as_str);
    Ok(rewritten_payload(b"", Some(elems), custom).unwrap_or_default())
}

/// A 63-bit id for a message Tencent names by its key (`MsgKey`, or the group and its seq).
fn message_id(key: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> 1) as i64
}

fn message(channel_type: u8, body: &Value, req: &Request<'_>) -> Result<Message, String> {
    let from_uid = body
        .get("From_Account")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let seq = number(body, "MsgSeq").unwrap_or(0).max(0) as u64;
    let (channel_id, key) = if channel_type == 1 {
        let to = text(body, "To_Account")?;
        let key = body.get("MsgKey").and_then(Value::as_str).map_or_else(
            || {
                format!(
                    "c2c:{from_uid}:{to}:{seq}:{}",
                    number(body, "MsgRandom").unwrap_or(0)
                )
            },
            str::to_string,
        );
        (to, key)
    } else {
        let group = text(body, "GroupId")?;
        let key = format!("group:{group}:{seq}");
        (group, key)
    };
    Ok(Message {
        message_id: message_id(&key),
        client_msg_no: body
            .get("MsgId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        message_seq: seq,
        from_uid,
        channel_id,
        channel_type,
        header: MessageHeader {
            no_persist: number(body, "OnlineOnlyFlag") == Some(1),
            red_dot: true,
            sync_once: false,
        },
        setting: 0,
        expire: 0,
        timestamp: number(body, "MsgTime").unwrap_or(0),
        payload: payload(body)?,
        sender: req.client(),
    })
}

/// The message of a before-send callback.
fn outgoing(kind: HookKind, body: &Value, req: &Request<'_>) -> Result<Outgoing, String> {
    let channel_id = match kind {
        HookKind::Person => text(body, "To_Account")?,
        HookKind::Group => text(body, "GroupId")?,
    };
    Ok(Outgoing {
        from_uid: body
            .get("From_Account")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        channel_id,
        channel_type: match kind {
            HookKind::Person => 1,
            HookKind::Group => 2,
        },
        client_msg_no: body
            .get("MsgId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        header: MessageHeader {
            no_persist: number(body, "OnlineOnlyFlag") == Some(1),
            red_dot: true,
            sync_once: false,
        },
        payload: payload(body)?,
        timestamp: number(body, "MsgTime").unwrap_or(0),
        sender: req.client(),
    })
}

fn members(body: &Value, list: &str) -> Result<Vec<String>, String> {
    match body.get(list) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|m| text(m, "Member_Account")).collect(),
        Some(_) => Err(format!("{list} is not an array")),
    }
}

fn group(body: &Value, list: &str) -> Result<GroupChange, String> {
    Ok(GroupChange {
        channel_id: text(body, "GroupId")?,
        uids: members(body, list)?,
    })
}

/// One event per member of `Group.CallbackOnMemberStateChange`.
fn member_states(body: &Value) -> Result<Vec<Event>, String> {
    let channel_id = text(body, "GroupId")?;
    let online = match body.get("EventType").and_then(Value::as_str) {
        Some("Online") => true,
        Some("Offline") => false,
        _ => return Err("EventType is not Online or Offline".into()),
    };
    Ok(members(body, "MemberList")?
        .into_iter()
        .map(|uid| {
            Event::GroupMemberOnlineStatus(LiveMemberStatus {
                channel_id: channel_id.clone(),
                uid,
                device_flag: 0,
                online,
            })
        })
        .collect())
}

/// `Profile.CallbackPortraitSet`: the nick, the image and custom tags (`Tag_Profile_Custom_*`).
fn profile(body: &Value) -> Result<ProfileChange, String> {
    let uid = text(body, "From_Account").or_else(|_| text(body, "Operator_Account"))?;
    let mut p = ProfileChange {
        uid,
        name: String::new(),
        avatar: String::new(),
        custom: BTreeMap::new(),
    };
    for item in body
        .get("ProfileItem")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let tag = item["Tag"].as_str().unwrap_or_default();
        let value = match &item["Value"] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        match tag {
            "Tag_Profile_IM_Nick" => p.name = value,
            "Tag_Profile_IM_Image" => p.avatar = value,
            t => {
                if let Some(key) = t.strip_prefix("Tag_Profile_Custom_") {
                    p.custom.insert(key.to_string(), value);
                }
            }
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog;
    use crate::format::tencent::render;
    use chathook_events::{EventKind, LoggedEvent};

    fn json_of(bytes: &[u8]) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    fn query_of(r: &crate::format::Rendered) -> Vec<(String, String)> {
        url::form_urlencoded::parse(r.query.as_bytes())
            .into_owned()
            .collect()
    }

    /// What the flavour renders of `logged`, read back.
    fn round_trip(logged: &LoggedEvent) -> Vec<Event> {
        let r = render(logged, 1400000000).unwrap();
        let q = query_of(&r);
        match parse(&Request {
            query: &q,
            body: &r.body,
        })
        .unwrap()
        {
            Parsed::Events(events) => events,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_command_the_flavour_renders_reads_back_as_its_event() {
        for kind in [
            EventKind::GroupCreated,
            EventKind::GroupMemberAdded,
            EventKind::GroupMemberRemoved,
            EventKind::GroupDismissed,
            EventKind::GroupMemberOnlineStatus,
            EventKind::ProfileChanged,
        ] {
            let sample = catalog::sample(kind);
            assert_eq!(round_trip(&sample), vec![sample.event], "{kind}");
        }
        for kind in [EventKind::UserOnline, EventKind::UserOffline] {
            let sample = catalog::sample(kind);
            let back = round_trip(&sample);
            let (Event::UserOnline(c) | Event::UserOffline(c)) = &back[0] else {
                panic!("{back:?}")
            };
            assert_eq!(back[0].kind(), kind);
            assert_eq!(c.uid, "alice");
            assert_eq!(c.client.ip, "203.0.113.7");
        }
    }

    #[test]
    fn a_sent_message_reads_back_with_its_payload_seq_and_sender() {
        let sample = catalog::sample(EventKind::MessageSent);
        let Event::MessageSent(m) = &sample.event else {
            unreachable!()
        };
        let back = round_trip(&sample);
        let Event::MessageSent(b) = &back[0] else {
            panic!("{back:?}")
        };
        assert_eq!(
            (
                &b.from_uid,
                &b.channel_id,
                b.channel_type,
                b.message_seq,
                b.timestamp
            ),
            (
                &m.from_uid,
                &m.channel_id,
                m.channel_type,
                m.message_seq,
                m.timestamp
            )
        );
        assert_eq!(json_of(&b.payload), json_of(&m.payload));
        assert_eq!(b.sender, m.sender);
        // the same message read twice has the same id
        assert_eq!(round_trip(&sample), back);
    }

    #[test]
    fn tencent_documented_bodies_read_with_string_event_times() {
        let q = vec![
            ("SdkAppid".to_string(), "1400000000".to_string()),
            (
                "CallbackCommand".into(),
                "Group.CallbackAfterNewMemberJoin".into(),
            ),
            ("contenttype".into(), "json".into()),
        ];
        let body = br#"{"CallbackCommand":"Group.CallbackAfterNewMemberJoin","GroupId":"@TGS#2J4SZEAEL",
            "Type":"Public","JoinType":"Apply","Operator_Account":"leckie",
            "NewMemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":"1670574414123"}"#;
        let Parsed::Events(e) = parse(&Request { query: &q, body }).unwrap() else {
            panic!()
        };
        assert_eq!(
            e,
            [Event::GroupMemberAdded(GroupChange {
                channel_id: "@TGS#2J4SZEAEL".into(),
                uids: vec!["jared".into(), "tommy".into()]
            })]
        );
    }

    #[test]
    fn an_unknown_command_is_kept_with_its_query_but_the_signature() {
        let q = vec![
            ("SdkAppid".to_string(), "1400000000".to_string()),
            ("CallbackCommand".into(), "Sns.CallbackFriendAdd".into()),
            ("Sign".into(), "abc".into()),
            ("RequestTime".into(), "1".into()),
        ];
        let body = br#"{"CallbackCommand":"Sns.CallbackFriendAdd","PairList":[]}"#;
        let Parsed::Events(e) = parse(&Request { query: &q, body }).unwrap() else {
            panic!()
        };
        let Event::Foreign(f) = &e[0] else {
            panic!("{e:?}")
        };
        assert_eq!(f.name(), "tencent.Sns.CallbackFriendAdd");
        assert_eq!(f.body.as_bytes(), body);
        assert_eq!(f.query.len(), 2);
    }

    #[test]
    fn a_before_send_callback_is_the_message_to_judge_and_broken_ones_are_refused() {
        let m = Outgoing {
            from_uid: "alice".into(),
            channel_id: "bob".into(),
            channel_type: 1,
            client_msg_no: "c1".into(),
            header: Default::default(),
            payload: br#"{"type":1,"content":"hello"}"#.to_vec(),
            timestamp: 1_700_000_000,
            sender: Arc::new(ClientInfo {
                ip: "203.0.113.7".into(),
                platform: "Android".into(),
            }),
        };
        let r = super::super::before_send(&m, 1400000000, 1);
        let q = query_of(&r);
        let request = Request {
            query: &q,
            body: &r.body,
        };
        let Parsed::BeforeSend(kind, mut parsed) = parse(&request).unwrap() else {
            panic!("not a before-send")
        };
        // the text convention's keys come back in another order
        assert_eq!(json_of(&parsed.payload), json_of(&m.payload));
        parsed.payload = m.payload.clone();
        let mut expected = m.clone();
        expected.header.red_dot = true;
        assert_eq!((kind, parsed), (HookKind::Person, expected));

        let q = vec![(
            "CallbackCommand".to_string(),
            "State.StateChange".to_string(),
        )];
        for bad in [
            &b"nope"[..],
            b"[]",
            br#"{"Info":{"Action":"Jump","To_Account":"a"}}"#,
            br#"{}"#,
        ] {
            assert!(
                parse(&Request {
                    query: &q,
                    body: bad
                })
                .is_err(),
                "{bad:?}"
            );
        }
        assert!(
            parse(&Request {
                query: &[],
                body: b"{}"
            })
            .is_err(),
            "no command"
        );
    }
}
