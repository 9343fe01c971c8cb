//! Sample events of every type, for `GET /v1/webhooks/event-types` and `POST .../test`.

use std::collections::BTreeMap;

use chathook_events::{
    Event, GroupChange, GroupRef, LiveMemberStatus, LoggedEvent, Message, MessageHeader,
    OfflineMessage, PresenceChange, PresenceReason, ProfileChange,
};

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
        timestamp: 1_732_600_000,
        payload: br#"{"type":1,"content":"hello"}"#.to_vec(),
    }
}

/// A sample of `name` (a native name), at position 0.
pub fn event(name: &str) -> LoggedEvent {
    let presence = |reason| PresenceChange {
        uid: "alice".into(),
        device_flag: 0,
        conn_id: 42,
        device_online_count: 1,
        total_online_count: 1,
        reason,
    };
    let group = || GroupChange {
        channel_id: "group-1".into(),
        uids: vec!["alice".into(), "bob".into()],
    };
    let event = match name {
        "user.online" => Event::UserOnline(presence(PresenceReason::Login)),
        "user.offline" => Event::UserOffline(PresenceChange {
            device_online_count: 0,
            total_online_count: 0,
            ..presence(PresenceReason::LinkClosed)
        }),
        "user.profile_changed" => Event::ProfileChanged(ProfileChange {
            uid: "alice".into(),
            name: "Alice".into(),
            avatar: "https://example.com/a.png".into(),
            custom: BTreeMap::from([("lang".to_string(), "en".to_string())]),
        }),
        "message.offline" => Event::MessageOffline(OfflineMessage {
            message: message(),
            to_uids: vec!["bob".into()],
            source_id: 1,
        }),
        "group.created" => Event::GroupCreated(group()),
        "group.member_added" => Event::GroupMemberAdded(group()),
        "group.member_removed" => Event::GroupMemberRemoved(group()),
        "group.dismissed" => Event::GroupDismissed(GroupRef {
            channel_id: "group-1".into(),
        }),
        "group.member_online_status" => Event::GroupMemberOnlineStatus(LiveMemberStatus {
            channel_id: "group-1".into(),
            uid: "alice".into(),
            device_flag: 0,
            online: true,
        }),
        _ => Event::MessageSent(message()),
    };
    LoggedEvent {
        position: 0,
        at_ms: 1_732_600_000_000,
        event,
    }
}
