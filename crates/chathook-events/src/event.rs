//! The one typed enum of domain events, with the native event names as serde tags.

use serde::{Deserialize, Serialize};

use crate::operational::{EndpointNotice, ExhaustedNotice, RelayRefusalNotice};
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
    /// Another IM server's webhook that has no typed event here, kept as it came (relay mode; always
    /// inside [`Event::Relayed`]).
    #[serde(rename = "foreign")]
    Foreign(Box<Foreign>),
    /// An event that a relay source (another IM server's webhooks) reported, not this server's IM
    /// core: the IM core never acts on it, the webhook engine delivers it like its own.
    #[serde(rename = "relayed")]
    Relayed(Box<Relayed>),
    /// Operational: an endpoint failed `webhook.failing_notice_after` times in a row (once per run of
    /// failures).
    #[serde(rename = "endpoint.failing")]
    EndpointFailing(Box<EndpointNotice>),
    /// Operational: the first success of an endpoint that was reported failing.
    #[serde(rename = "endpoint.recovered")]
    EndpointRecovered(Box<EndpointNotice>),
    /// Operational: an endpoint's circuit breaker opened.
    #[serde(rename = "endpoint.breaker_open")]
    EndpointBreakerOpen(Box<EndpointNotice>),
    /// Operational: the server disabled an endpoint (with why).
    #[serde(rename = "endpoint.disabled")]
    EndpointDisabled(Box<EndpointNotice>),
    /// Operational: an endpoint the server disabled was enabled again.
    #[serde(rename = "endpoint.enabled")]
    EndpointEnabled(Box<EndpointNotice>),
    /// Operational: deliveries of an endpoint were dead-lettered.
    #[serde(rename = "delivery.exhausted")]
    DeliveryExhausted(Box<ExhaustedNotice>),
    /// Operational: a relay source's ingest refused many requests.
    #[serde(rename = "relay.refused")]
    RelayRefused(Box<RelayRefusalNotice>),
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
            Event::Foreign(_) => EventKind::Foreign,
            Event::Relayed(r) => r.event.kind(),
            Event::EndpointFailing(_) => EventKind::EndpointFailing,
            Event::EndpointRecovered(_) => EventKind::EndpointRecovered,
            Event::EndpointBreakerOpen(_) => EventKind::EndpointBreakerOpen,
            Event::EndpointDisabled(_) => EventKind::EndpointDisabled,
            Event::EndpointEnabled(_) => EventKind::EndpointEnabled,
            Event::DeliveryExhausted(_) => EventKind::DeliveryExhausted,
            Event::RelayRefused(_) => EventKind::RelayRefused,
        }
    }

    /// The endpoint an operational event is about (it is never delivered to that endpoint).
    pub fn concerns_endpoint(&self) -> Option<&str> {
        match self {
            Event::EndpointFailing(n)
            | Event::EndpointRecovered(n)
            | Event::EndpointBreakerOpen(n)
            | Event::EndpointDisabled(n)
            | Event::EndpointEnabled(n) => Some(&n.endpoint_id),
            Event::DeliveryExhausted(n) => Some(&n.endpoint_id),
            _ => None,
        }
    }

    /// The event itself: a relayed event's inner one, any other as it is.
    pub fn inner(&self) -> &Event {
        match self {
            Event::Relayed(r) => r.event.inner(),
            other => other,
        }
    }

    /// The relay source that reported it; `None` for this server's own events.
    pub fn source(&self) -> Option<&str> {
        match self {
            Event::Relayed(r) => Some(&r.source),
            _ => None,
        }
    }

    /// Marks `event` as reported by the relay source `source`.
    pub fn relayed(source: &str, event: Event) -> Event {
        Event::Relayed(Box::new(Relayed {
            source: source.to_string(),
            event,
            sdk_app_id: None,
        }))
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
    Foreign,
    EndpointFailing,
    EndpointRecovered,
    EndpointBreakerOpen,
    EndpointDisabled,
    EndpointEnabled,
    DeliveryExhausted,
    RelayRefused,
}

impl EventKind {
    /// Every kind, in a stable order (the order of the declaration, so `ALL[k as usize] == k`).
    pub const ALL: [EventKind; 18] = [
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
        EventKind::Foreign,
        EventKind::EndpointFailing,
        EventKind::EndpointRecovered,
        EventKind::EndpointBreakerOpen,
        EventKind::EndpointDisabled,
        EventKind::EndpointEnabled,
        EventKind::DeliveryExhausted,
        EventKind::RelayRefused,
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
            EventKind::Foreign => "foreign",
            EventKind::EndpointFailing => "endpoint.failing",
            EventKind::EndpointRecovered => "endpoint.recovered",
            EventKind::EndpointBreakerOpen => "endpoint.breaker_open",
            EventKind::EndpointDisabled => "endpoint.disabled",
            EventKind::EndpointEnabled => "endpoint.enabled",
            EventKind::DeliveryExhausted => "delivery.exhausted",
            EventKind::RelayRefused => "relay.refused",
        }
    }

    /// Whether it is an operational event (about the webhook engine's own endpoints and sources).
    pub const fn is_operational(self) -> bool {
        matches!(
            self,
            EventKind::EndpointFailing
                | EventKind::EndpointRecovered
                | EventKind::EndpointBreakerOpen
                | EventKind::EndpointDisabled
                | EventKind::EndpointEnabled
                | EventKind::DeliveryExhausted
                | EventKind::RelayRefused
        )
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

/// The IM server a relayed webhook came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Wukongim,
    Tencent,
}

impl Origin {
    /// `wukongim` or `tencent`: the prefix of its foreign events' names.
    pub fn name(self) -> &'static str {
        match self {
            Origin::Wukongim => "wukongim",
            Origin::Tencent => "tencent",
        }
    }
}

/// Another IM server's webhook that chathook has no typed event for, as it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Foreign {
    pub origin: Origin,
    /// WuKongIM's `?event=` or Tencent's `CallbackCommand`.
    pub command: String,
    /// The body as it came (JSON text), delivered unchanged.
    pub body: String,
    /// Tencent's query parameters but `Sign` and `RequestTime` (which each delivery signs anew), in
    /// the order they came.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<(String, String)>,
}

impl Foreign {
    /// The name endpoints select it by, and the `standard` flavour's `type`: `tencent.<Command>` or
    /// `wukongim.<event>`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.origin.name(), self.command)
    }
}

/// An event reported by a relay source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relayed {
    /// The relay source's id.
    pub source: String,
    pub event: Event,
    /// The Tencent app that sent it (`SdkAppid`), named again when it is delivered in Tencent's flavour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk_app_id: Option<u64>,
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
    fn a_relayed_event_has_the_kind_of_what_it_carries_and_names_its_source() {
        let inner = Event::GroupDismissed(GroupRef {
            channel_id: "g".into(),
        });
        let e = Event::relayed("src_1", inner.clone());
        assert_eq!(e.kind(), EventKind::GroupDismissed);
        assert_eq!(e.inner(), &inner);
        assert_eq!(e.source(), Some("src_1"));
        assert_eq!(inner.source(), None);
        let back: Event = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        let foreign = Foreign {
            origin: Origin::Tencent,
            command: "Group.CallbackAfterRecallMsg".into(),
            body: "{}".into(),
            query: vec![],
        };
        assert_eq!(foreign.name(), "tencent.Group.CallbackAfterRecallMsg");
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
