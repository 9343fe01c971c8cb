//! An endpoint's delivery filters: which messages, channels and users it takes among the events it
//! selects. Each list narrows one dimension and an empty list means all; a filter that does not concern
//! an event (a channel filter on a presence change) lets it through. What a filter leaves out moves the
//! endpoint's cursor like a delivered event, never counts as a failure, and is counted as filtered.

use chathook_events::Event;
use serde::{Deserialize, Serialize};

/// The most entries one filter list holds.
pub const MAX_ENTRIES: usize = 100;
/// The longest id (channel id, uid, prefix) a filter holds, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// The filters of an endpoint; empty lists mean all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Filters {
    /// Messages and group events of these channel types (1 person, 2 group, 11/12 WuKongIM's agent
    /// channels...).
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::nullable::null_as_empty"
    )]
    pub channel_types: Vec<u8>,
    /// Messages and group events of these channels: an id, or a prefix ending in `*`. A person
    /// channel's id is the recipient's uid, as the sender addressed it.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::nullable::null_as_empty"
    )]
    pub channel_ids: Vec<String>,
    /// Messages from these senders.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::nullable::null_as_empty"
    )]
    pub from_uids: Vec<String>,
    /// Presence changes (online, offline, a live group member's status) and profile changes of these
    /// users.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::nullable::null_as_empty"
    )]
    pub uids: Vec<String>,
    /// Messages whose payload is a JSON object with one of these `type`s (WuKongIM apps' text 1,
    /// image 2...); a payload without one is left out.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::nullable::null_as_empty"
    )]
    pub payload_types: Vec<i64>,
}

/// Whether `id` is `pattern`, or starts with its prefix when it ends in `*`.
pub fn id_matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        *self == Filters::default()
    }

    /// The broken rule, as (field, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let too_many = |field: &'static str, n: usize| {
            (n > MAX_ENTRIES).then(|| {
                (
                    field,
                    format!("{field} holds at most {MAX_ENTRIES} entries"),
                )
            })
        };
        for (field, n) in [
            ("channel_types", self.channel_types.len()),
            ("channel_ids", self.channel_ids.len()),
            ("from_uids", self.from_uids.len()),
            ("uids", self.uids.len()),
            ("payload_types", self.payload_types.len()),
        ] {
            if let Some(broken) = too_many(field, n) {
                return Err(broken);
            }
        }
        if self.channel_types.contains(&0) {
            return Err(("channel_types", "channel types are 1 to 255".into()));
        }
        for (field, ids) in [
            ("channel_ids", &self.channel_ids),
            ("from_uids", &self.from_uids),
            ("uids", &self.uids),
        ] {
            if let Some(bad) = ids.iter().find(|i| i.is_empty() || i.len() > MAX_ID_BYTES) {
                return Err((
                    field,
                    format!("{bad:?}: an entry holds 1 to {MAX_ID_BYTES} bytes"),
                ));
            }
        }
        Ok(())
    }

    /// Whether `event` (the event itself, not a relay wrapper) passes every filter that concerns it.
    pub fn matches(&self, event: &Event) -> bool {
        if self.is_empty() {
            return true;
        }
        match event.inner() {
            Event::MessageSent(m) => self.message(m),
            Event::MessageOffline(o) => self.message(&o.message),
            Event::UserOnline(c) | Event::UserOffline(c) => self.user(&c.uid),
            Event::ProfileChanged(p) => self.user(&p.uid),
            Event::GroupMemberOnlineStatus(s) => {
                self.user(&s.uid) && self.channel(2, &s.channel_id)
            }
            Event::GroupCreated(g) | Event::GroupMemberAdded(g) | Event::GroupMemberRemoved(g) => {
                self.channel(2, &g.channel_id)
            }
            Event::GroupDismissed(g) => self.channel(2, &g.channel_id),
            // Another server's webhook as it came, and the engine's own reports: no filter concerns them.
            _ => true,
        }
    }

    fn channel(&self, channel_type: u8, channel_id: &str) -> bool {
        (self.channel_types.is_empty() || self.channel_types.contains(&channel_type))
            && (self.channel_ids.is_empty()
                || self.channel_ids.iter().any(|p| id_matches(p, channel_id)))
    }

    fn user(&self, uid: &str) -> bool {
        self.uids.is_empty() || self.uids.iter().any(|u| u == uid)
    }

    fn message(&self, m: &chathook_events::Message) -> bool {
        self.channel(m.channel_type, &m.channel_id)
            && (self.from_uids.is_empty() || self.from_uids.contains(&m.from_uid))
            && (self.payload_types.is_empty()
                || payload_type(&m.payload).is_some_and(|t| self.payload_types.contains(&t)))
    }
}

/// The `type` of a JSON object payload, read without parsing the rest of it.
fn payload_type(payload: &[u8]) -> Option<i64> {
    #[derive(Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: i64,
    }
    serde_json::from_slice::<Typed>(payload)
        .ok()
        .map(|t| t.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::{GroupRef, Message, PresenceChange, PresenceReason};

    fn message(channel_type: u8, channel_id: &str, from: &str, payload: &str) -> Event {
        Event::MessageSent(Message {
            message_id: 1,
            client_msg_no: String::new(),
            message_seq: 1,
            from_uid: from.into(),
            channel_id: channel_id.into(),
            channel_type,
            header: Default::default(),
            setting: 0,
            expire: 0,
            timestamp: 0,
            payload: payload.as_bytes().to_vec(),
            sender: Default::default(),
        })
    }

    fn online(uid: &str) -> Event {
        Event::UserOnline(PresenceChange {
            uid: uid.into(),
            device_flag: 0,
            device_level: 1,
            conn_id: 1,
            device_online_count: 1,
            total_online_count: 1,
            reason: PresenceReason::Login,
            client: Default::default(),
            kicked_platforms: vec![],
        })
    }

    #[test]
    fn no_filter_takes_everything() {
        let f = Filters::default();
        assert!(f.matches(&message(1, "bob", "alice", "x")));
        assert!(f.matches(&online("alice")));
    }

    #[test]
    fn each_message_filter_narrows_its_own_dimension() {
        let text = r#"{"type":1,"content":"hi"}"#;
        let m = message(2, "team-a", "alice", text);
        let by = |f: Filters| f.matches(&m);
        assert!(by(Filters {
            channel_types: vec![2],
            ..Default::default()
        }));
        assert!(!by(Filters {
            channel_types: vec![1, 11],
            ..Default::default()
        }));
        assert!(by(Filters {
            channel_ids: vec!["team-a".into()],
            ..Default::default()
        }));
        assert!(by(Filters {
            channel_ids: vec!["team-*".into()],
            ..Default::default()
        }));
        assert!(!by(Filters {
            channel_ids: vec!["team".into(), "x*".into()],
            ..Default::default()
        }));
        assert!(by(Filters {
            from_uids: vec!["alice".into()],
            ..Default::default()
        }));
        assert!(!by(Filters {
            from_uids: vec!["bob".into()],
            ..Default::default()
        }));
        assert!(by(Filters {
            payload_types: vec![1],
            ..Default::default()
        }));
        assert!(!by(Filters {
            payload_types: vec![2],
            ..Default::default()
        }));
        let not_json = message(2, "team-a", "alice", "\u{1}binary");
        assert!(!Filters {
            payload_types: vec![1],
            ..Default::default()
        }
        .matches(&not_json));
        // every dimension at once must hold
        let all = Filters {
            channel_types: vec![2],
            channel_ids: vec!["team-*".into()],
            from_uids: vec!["alice".into()],
            payload_types: vec![1],
            uids: vec!["nobody".into()],
        };
        assert!(all.matches(&m), "uids do not concern messages");
        assert!(!Filters {
            from_uids: vec!["carol".into()],
            ..all
        }
        .matches(&m));
    }

    #[test]
    fn user_filters_take_presence_and_let_unconcerned_events_through() {
        let f = Filters {
            uids: vec!["alice".into()],
            ..Default::default()
        };
        assert!(f.matches(&online("alice")));
        assert!(!f.matches(&online("bob")));
        let channels = Filters {
            channel_ids: vec!["g1".into()],
            ..Default::default()
        };
        assert!(
            channels.matches(&online("bob")),
            "a channel filter does not concern presence"
        );
        assert!(channels.matches(&Event::GroupDismissed(GroupRef {
            channel_id: "g1".into()
        })));
        assert!(!channels.matches(&Event::GroupDismissed(GroupRef {
            channel_id: "g2".into()
        })));
        let relayed = Event::relayed("src", online("bob"));
        assert!(
            !f.matches(&relayed),
            "a relayed event is filtered as what it carries"
        );
    }

    #[test]
    fn limits_are_checked_with_the_field_named() {
        let mut f = Filters {
            channel_ids: vec!["x".into(); MAX_ENTRIES + 1],
            ..Default::default()
        };
        assert_eq!(f.check().unwrap_err().0, "channel_ids");
        f.channel_ids = vec!["x".repeat(MAX_ID_BYTES + 1)];
        assert_eq!(f.check().unwrap_err().0, "channel_ids");
        f.channel_ids = vec![];
        f.channel_types = vec![0];
        assert_eq!(f.check().unwrap_err().0, "channel_types");
        f.channel_types = vec![1, 2, 11, 12];
        assert!(f.check().is_ok());
        let parsed: Filters =
            serde_json::from_str(r#"{"channel_ids": null, "uids": ["a"]}"#).unwrap();
        assert_eq!(parsed.uids, ["a"]);
        assert!(serde_json::from_str::<Filters>(r#"{"nope": 1}"#).is_err());
    }
}
