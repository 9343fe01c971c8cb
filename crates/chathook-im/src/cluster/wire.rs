//! What nodes send each other over NATS, on one subject per sending node (`chathook.node.<id>`), so
//! that a node's commits and orders reach every other node in the order it sent them. JSON: the
//! events are the event log's own form.

use std::sync::Arc;

use chathook_events::{Event, PresenceReason};
use serde::{Deserialize, Serialize};

use crate::messaging::Origin;

/// The subject a node publishes on.
pub(crate) fn subject(node_id: u16) -> String {
    format!("chathook.node.{node_id}")
}

/// What every node subscribes to: every node's subject.
pub(crate) const ALL_NODES: &str = "chathook.node.*";

/// One message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Wire {
    Commit(Arc<CommitRecord>),
    Order(Order),
}

/// The events one commit of `node` appended, from log position `first` on, and how to deliver its
/// messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommitRecord {
    pub node: u16,
    pub first: u64,
    pub events: Arc<[Event]>,
    /// The delivery of each message of the commit that the sending node knew of (a commit read back
    /// from the database instead has none: its messages go to the recipients their channel names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

impl CommitRecord {
    /// The position after the record's last event.
    pub fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    pub fn route(&self, message_id: i64) -> Option<&Route> {
        self.routes.iter().find(|r| r.message_id == message_id)
    }
}

/// How a message is delivered: what the event does not say.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Route {
    pub message_id: i64,
    /// Where it came from (a backend's message is not delivered to the sender's connections; a
    /// client's is not delivered back to the connection that sent it).
    pub origin: Origin,
    /// A CMD message to listed users (REST `subscribers`): its recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<Vec<String>>,
}

/// What a node asks of the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "order", rename_all = "snake_case")]
pub(crate) enum Order {
    /// A channel was written: drop it from the cache and reload its live-group index.
    ChannelChanged {
        channel_id: String,
        channel_type: u8,
    },
    /// The system uids changed: reload them.
    SystemUidsChanged,
    /// Close connections of `uid` held by the receiving node: one (`conn_id`), or those with
    /// `device_flag` (all when `None`) except `keep`.
    Kick {
        uid: String,
        conn_id: Option<u64>,
        device_flag: Option<u8>,
        keep: Option<u64>,
        reason_code: u8,
        reason: String,
        presence_reason: PresenceReason,
        /// Whether the client hears the disconnect notice (absent from older nodes: yes).
        #[serde(default = "yes")]
        notify: bool,
        /// Narrows the kick by device id (absent from older nodes: no narrowing).
        #[serde(default)]
        device: Option<crate::presence::DeviceMatch>,
    },
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::GroupRef;

    #[test]
    fn a_commit_round_trips_with_its_routes() {
        let record = CommitRecord {
            node: 3,
            first: 41,
            events: vec![Event::GroupDismissed(GroupRef {
                channel_id: "g".into(),
            })]
            .into(),
            routes: vec![Route {
                message_id: 7,
                origin: Origin::Backend,
                listed: Some(vec!["a".into()]),
            }],
        };
        let text = serde_json::to_string(&Wire::Commit(Arc::new(record))).unwrap();
        let Wire::Commit(back) = serde_json::from_str(&text).unwrap() else {
            panic!("not a commit: {text}");
        };
        assert_eq!((back.node, back.first, back.end()), (3, 41, 42));
        assert!(
            matches!(back.route(7), Some(Route { origin: Origin::Backend, listed: Some(l), .. }) if l == &["a"])
        );
        assert!(back.route(8).is_none());
    }
}
