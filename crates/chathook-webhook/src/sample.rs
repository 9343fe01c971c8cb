//! Sample events of every kind, for the catalog (`GET /v1/webhooks/event-types`, `POST .../test`).

use std::collections::BTreeMap;

use chathook_events::{
    ClientInfo, EndpointNotice, Event, ExhaustedNotice, Foreign, GroupChange, GroupRef,
    LiveMemberStatus, Message, MessageHeader, OfflineMessage, Origin, PresenceChange,
    PresenceReason, ProfileChange, RelayRefusalNotice,
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

fn endpoint_notice(failures: u32, error: &str, reason: &str, failing: bool) -> Box<EndpointNotice> {
    Box::new(EndpointNotice {
        endpoint_id: "ep_0123456789abcdef01234567".into(),
        url: "https://push.example.com/webhooks".into(),
        description: "offline push".into(),
        consecutive_failures: failures,
        last_error: error.into(),
        reason: reason.into(),
        failing_since_ms: failing.then_some(AT_MS - 60_000),
    })
}

pub fn endpoint_failing() -> Event {
    Event::EndpointFailing(endpoint_notice(4, "HTTP 503", "", true))
}

pub fn endpoint_recovered() -> Event {
    Event::EndpointRecovered(endpoint_notice(0, "", "", true))
}

pub fn endpoint_breaker_open() -> Event {
    Event::EndpointBreakerOpen(endpoint_notice(10, "connection failed", "", true))
}

pub fn endpoint_disabled() -> Event {
    Event::EndpointDisabled(endpoint_notice(
        31,
        "HTTP 410",
        "the endpoint answered 410 Gone",
        true,
    ))
}

pub fn endpoint_enabled() -> Event {
    Event::EndpointEnabled(endpoint_notice(0, "", "operator", false))
}

pub fn delivery_exhausted() -> Event {
    Event::DeliveryExhausted(Box::new(ExhaustedNotice {
        endpoint_id: "ep_0123456789abcdef01234567".into(),
        url: "https://push.example.com/webhooks".into(),
        count: 3,
        first_at_ms: AT_MS - 120_000,
        last_at_ms: AT_MS,
        last_delivery_id: "evt_1042".into(),
        last_event: "message.offline".into(),
        last_error: "HTTP 500".into(),
    }))
}

pub fn relay_refused() -> Event {
    Event::RelayRefused(Box::new(RelayRefusalNotice {
        source_id: "src_0123456789abcdef01234567".into(),
        description: "WuKongIM production".into(),
        count: 42,
        reasons: BTreeMap::from([
            ("secret_wrong".to_string(), 40),
            ("sign_stale".to_string(), 2),
        ]),
        from_ms: AT_MS - 60_000,
        until_ms: AT_MS,
    }))
}
