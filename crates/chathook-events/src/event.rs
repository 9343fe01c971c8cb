//! The one typed enum of domain events, with the native event names as serde tags.

use serde::{Deserialize, Serialize};

use crate::{ClientInfo, Message};

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
    /// Which kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::UserOnline(_) => EventKind::UserOnline,
            Event::UserOffline(_) => EventKind::UserOffline,
            Event::ProfileChanged(_) => EventKind::ProfileChanged,
            Event::MessageSent(_) => EventKind::MessageSent,
            Event::MessageOffline(_) => EventKind::MessageOffline,
            Event::GroupCreated(_) => EventKind::GroupCreated,
            Event::GroupMemberAdded(_) => EventKind::GroupMemberAdded,
            Event::GroupMemberRemoved(_) => EventKind::GroupMemberRemoved,
            Event::GroupDismissed(_) => EventKind::GroupDismissed,
            Event::GroupMemberOnlineStatus(_) => EventKind::GroupMemberOnlineStatus,
        }
    }

    /// The native event name (the `standard` webhook flavour's `type`).
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }
}

/// The kinds of [`Event`], without their data: what endpoints select and catalogs describe. Stored
/// and shown by native name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    UserOnline,
    UserOffline,
    ProfileChanged,
    MessageSent,
    MessageOffline,
    GroupCreated,
    GroupMemberAdded,
    GroupMemberRemoved,
    GroupDismissed,
    GroupMemberOnlineStatus,
}

impl EventKind {
    /// Every kind, in a stable order (the order of the declaration, so `ALL[k as usize] == k`).
    pub const ALL: [EventKind; 10] = [
        EventKind::UserOnline,
        EventKind::UserOffline,
        EventKind::ProfileChanged,
        EventKind::MessageSent,
        EventKind::MessageOffline,
        EventKind::GroupCreated,
        EventKind::GroupMemberAdded,
        EventKind::GroupMemberRemoved,
        EventKind::GroupDismissed,
        EventKind::GroupMemberOnlineStatus,
    ];

    /// The native name, as the event log stores it in `type` (a test holds the serde tags of
    /// [`Event`] to these).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::UserOnline => "user.online",
            EventKind::UserOffline => "user.offline",
            EventKind::ProfileChanged => "user.profile_changed",
            EventKind::MessageSent => "message.sent",
            EventKind::MessageOffline => "message.offline",
            EventKind::GroupCreated => "group.created",
            EventKind::GroupMemberAdded => "group.member_added",
            EventKind::GroupMemberRemoved => "group.member_removed",
            EventKind::GroupDismissed => "group.dismissed",
            EventKind::GroupMemberOnlineStatus => "group.member_online_status",
        }
    }

    /// The kind a native name stands for.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventKind::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event kind {name:?}")))
    }
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
    /// The node holding the connection stopped answering (a cluster of nodes): another node reported
    /// its connections offline after `cluster.node_timeout`.
    NodeLost,
}

/// One connection's presence change, with the counts WuKongIM's `user.onlinestatus` carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    pub uid: String,
    /// 0 app, 1 web, 2 pc.
    pub device_flag: u8,
    /// 1 for a primary device, else 0 (the token's `device_level`).
    #[serde(default)]
    pub device_level: u8,
    pub conn_id: u64,
    /// The user's connections with this device flag, after the change.
    pub device_online_count: u32,
    /// The user's connections on all devices, after the change.
    pub total_online_count: u32,
    pub reason: PresenceReason,
    /// The connection's client.
    #[serde(default, skip_serializing_if = "ClientInfo::is_unknown")]
    pub client: ClientInfo,
    /// On an online event: the platforms of the connections this login replaced (kicked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kicked_platforms: Vec<String>,
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
    fn kinds_are_declared_in_order_and_named_once() {
        for (i, k) in EventKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i);
            assert_eq!(EventKind::from_name(k.name()), Some(*k));
            let json = serde_json::to_string(k).unwrap();
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), *k);
        }
        assert_eq!(EventKind::from_name("msg.offline"), None);
        assert!(serde_json::from_str::<EventKind>("\"nope\"").is_err());
    }

    #[test]
    fn the_serde_tag_of_a_group_event_is_its_kind_name() {
        let e = Event::GroupDismissed(GroupRef {
            channel_id: "g".into(),
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], e.kind().name());
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
