//! The one typed enum of domain events, with the native event names as serde tags.

use serde::{Deserialize, Serialize};

use crate::Message;

/// A state change that the outside world may want to hear about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// A device connection authenticated.
    #[serde(rename = "user.online")]
    UserOnline(PresenceChange),
    /// A device connection ended.
    #[serde(rename = "user.offline")]
    UserOffline(PresenceChange),
    /// A user's profile was written.
    #[serde(rename = "user.profile_changed")]
    ProfileChanged(ProfileChange),
    /// Every accepted message.
    #[serde(rename = "message.sent")]
    MessageSent(Message),
    /// A message some of whose recipients had no primary connection.
    #[serde(rename = "message.offline")]
    MessageOffline(OfflineMessage),
    #[serde(rename = "group.created")]
    GroupCreated(GroupChange),
    #[serde(rename = "group.member_added")]
    GroupMemberAdded(GroupChange),
    #[serde(rename = "group.member_removed")]
    GroupMemberRemoved(GroupChange),
    #[serde(rename = "group.dismissed")]
    GroupDismissed(GroupRef),
    /// A member of a live group went online or offline.
    #[serde(rename = "group.member_online_status")]
    GroupMemberOnlineStatus(LiveMemberStatus),
}

impl Event {
    /// The native event name (the `standard` webhook flavour's `type`).
    pub fn name(&self) -> &'static str {
        match self {
            Event::UserOnline(_) => "user.online",
            Event::UserOffline(_) => "user.offline",
            Event::ProfileChanged(_) => "user.profile_changed",
            Event::MessageSent(_) => "message.sent",
            Event::MessageOffline(_) => "message.offline",
            Event::GroupCreated(_) => "group.created",
            Event::GroupMemberAdded(_) => "group.member_added",
            Event::GroupMemberRemoved(_) => "group.member_removed",
            Event::GroupDismissed(_) => "group.dismissed",
            Event::GroupMemberOnlineStatus(_) => "group.member_online_status",
        }
    }

    /// Every native event name, in a stable order.
    pub const NAMES: [&'static str; 10] = [
        "user.online",
        "user.offline",
        "user.profile_changed",
        "message.sent",
        "message.offline",
        "group.created",
        "group.member_added",
        "group.member_removed",
        "group.dismissed",
        "group.member_online_status",
    ];
}

/// Why a connection went online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceReason {
    /// The connection authenticated (online events).
    Login,
    /// The backend quit the device (`/user/device_quit`).
    Logout,
    /// The client or the network closed the connection.
    LinkClosed,
    /// No frame arrived within the heartbeat timeout.
    HeartbeatTimeout,
    /// A newer login or a token change replaced the connection.
    Kicked,
    /// The server stopped before the connection ended: reported on the next start after a crash.
    ServerRestart,
    /// The server is shutting down gracefully.
    ServerShutdown,
    /// The connection broke a protocol rule or a limit and was closed.
    ProtocolError,
}

/// One connection's presence change, with the counts WuKongIM's `user.onlinestatus` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    pub uid: String,
    /// 0 app, 1 web, 2 pc.
    pub device_flag: u8,
    pub conn_id: u64,
    /// The user's connections with this device flag, after the change.
    pub device_online_count: u32,
    /// The user's connections on all devices, after the change.
    pub total_online_count: u32,
    pub reason: PresenceReason,
}

/// A message and the recipients that had no primary (`device_level` 1) connection when it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfflineMessage {
    pub message: Message,
    pub to_uids: Vec<String>,
    /// The node that accepted the message (WuKongIM's `source_id`).
    #[serde(default)]
    pub source_id: u64,
}

/// A group and the members a change concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChange {
    pub channel_id: String,
    pub uids: Vec<String>,
}

/// A group, named alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    pub channel_id: String,
}

/// A live group's member going online or offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveMemberStatus {
    pub channel_id: String,
    pub uid: String,
    pub device_flag: u8,
    pub online: bool,
}

/// A user's profile after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileChange {
    pub uid: String,
    pub name: String,
    pub avatar: String,
    pub custom: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_serde_tags() {
        let e = Event::GroupDismissed(GroupRef {
            channel_id: "g".into(),
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], e.name());
        assert!(Event::NAMES.contains(&e.name()));
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
