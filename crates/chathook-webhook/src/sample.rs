//! Sample events of every kind, for the catalog (`GET /v1/webhooks/event-types`, `POST .../test`).

use std::collections::BTreeMap;

use chathook_events::{
    ClientInfo, Event, Foreign, GroupChange, GroupRef, LiveMemberStatus, Message, MessageHeader,
    OfflineMessage, Origin, PresenceChange, PresenceReason, ProfileChange,
};

/// The time of every sample (unix ms).
pub const AT_MS: i64 = 1_732_600_000_000;

fn message() -> Message {
    Message {
        message_id: 7_398_521_000_000_001,
        client_msg_no: "sample-1".into(),
        message_seq: 1,
        from_uid: "alice".into(),
        channel_id: "bob".into(),
        channel_type: 1,
        header: MessageHeader {
            red_dot: true,
            ..Default::default()
        },
        setting: 0,
        expire: 0,
        timestamp: AT_MS / 1000,
        payload: br#"{"type":1,"content":"hello"}"#.to_vec(),
        sender: std::sync::Arc::new(ClientInfo {
            ip: "203.0.113.7".into(),
            platform: "iOS".into(),
        }),
    }
}

fn presence(reason: PresenceReason, count: u32) -> PresenceChange {
    PresenceChange {
        uid: "alice".into(),
        device_flag: 0,
        device_level: 1,
        conn_id: 42,
        device_online_count: count,
        total_online_count: count,
        reason,
        client: ClientInfo {
            ip: "203.0.113.7".into(),
            platform: "iOS".into(),
        },
        kicked_platforms: Vec::new(),
    }
}

fn group() -> GroupChange {
    GroupChange {
        channel_id: "group-1".into(),
        uids: vec!["alice".into(), "bob".into()],
    }
}

pub fn user_online() -> Event {
    Event::UserOnline(presence(PresenceReason::Login, 1))
}

pub fn user_offline() -> Event {
    Event::UserOffline(presence(PresenceReason::LinkClosed, 0))
}

pub fn profile_changed() -> Event {
    Event::ProfileChanged(ProfileChange {
        uid: "alice".into(),
        name: "Alice".into(),
        avatar: "https://example.com/a.png".into(),
        custom: BTreeMap::from([("lang".to_string(), "en".to_string())]),
    })
}

pub fn message_sent() -> Event {
    Event::MessageSent(message())
}

pub fn message_offline() -> Event {
    Event::MessageOffline(OfflineMessage {
        message: message(),
        to_uids: vec!["bob".into()],
        source_id: 1,
    })
}

pub fn group_created() -> Event {
    Event::GroupCreated(group())
}

pub fn group_member_added() -> Event {
    Event::GroupMemberAdded(group())
}

pub fn group_member_removed() -> Event {
    Event::GroupMemberRemoved(group())
}

pub fn group_dismissed() -> Event {
    Event::GroupDismissed(GroupRef {
        channel_id: "group-1".into(),
    })
}

pub fn group_member_online_status() -> Event {
    Event::GroupMemberOnlineStatus(LiveMemberStatus {
        channel_id: "group-1".into(),
        uid: "alice".into(),
        device_flag: 0,
        online: true,
    })
}

/// A Tencent app's recall callback, relayed as it came.
pub fn foreign() -> Event {
    Event::Foreign(Box::new(Foreign {
        origin: Origin::Tencent,
        command: "Group.CallbackAfterRecallMsg".into(),
        body: r#"{"CallbackCommand":"Group.CallbackAfterRecallMsg","GroupId":"group-1","Type":"Public","Operator_Account":"alice","MsgSeqList":[{"MsgSeq":7}],"EventTime":1700000000000}"#.into(),
        query: vec![
            ("SdkAppid".into(), "1400000000".into()),
            ("CallbackCommand".into(), "Group.CallbackAfterRecallMsg".into()),
            ("contenttype".into(), "json".into()),
            ("ClientIP".into(), "203.0.113.7".into()),
            ("OptPlatform".into(), "RESTAPI".into()),
        ],
    }))
}
