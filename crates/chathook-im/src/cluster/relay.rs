//! Applies every node's commits to this node in log position order: delivers their messages to this
//! node's connections, follows the other nodes' connections from their presence events, and reloads
//! the groups whose members other nodes changed (before the group's next message). Commits
//! come from this node's writer at once and from the other nodes through NATS, in any order; one
//! that does not arrive within `cluster.gap_wait_ms` is read from the database. Orders from other
//! nodes are done as they arrive.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_events::{ChannelType, Event, Message, PresenceChange, PresenceReason};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use super::wire::{CommitRecord, Order, Route, Wire};
use super::CONN_ID_NODE_SHIFT;
use crate::error::reason;
use crate::messaging::Origin;
use crate::presence::{Kick, RemoteConn};
use crate::Im;

/// Most events read back from the database at once.
const READ_BACK_MAX: u64 = 1_000;

/// The state of the relay: every position before `next` has been applied.
pub(super) struct Relay {
    im: Im,
    node_id: u16,
    /// The next log position to apply. Positions before it were applied, or were committed before
    /// this node joined (its view of the other nodes' connections was read at that point).
    next: u64,
    /// Commits that arrived before `next` reached them, by their first position.
    ahead: BTreeMap<u64, Arc<CommitRecord>>,
    /// Since when the relay has been behind the log without moving (none: it is caught up or moving).
    stuck_since: Option<Instant>,
    gap_wait: Duration,
}

impl Relay {
    pub(super) fn new(im: Im, node_id: u16, next: u64, gap_wait: Duration) -> Relay {
        Relay {
            im,
            node_id,
            next,
            ahead: BTreeMap::new(),
            stuck_since: None,
            gap_wait,
        }
    }

    /// Runs until the server shuts down.
    pub(super) async fn run(
        mut self,
        mut local: mpsc::Receiver<Arc<CommitRecord>>,
        mut inbox: async_nats::Subscriber,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.gap_wait / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stop.borrow_and_update() {
                break;
            }
            tokio::select! {
                Some(record) = local.recv() => self.accept(record),
                Some(message) = inbox.next() => self.receive(&message.payload).await,
                _ = tick.tick() => {}
                _ = stop.changed() => {}
            }
            self.apply_ready().await;
            self.read_back_when_stuck().await;
        }
    }

    async fn receive(&mut self, payload: &[u8]) {
        match serde_json::from_slice::<Wire>(payload) {
            Ok(Wire::Commit(record)) if record.node != self.node_id => self.accept(record),
            Ok(Wire::Commit(_)) => {}
            Ok(Wire::Order(order)) => self.obey(order).await,
            Err(e) => tracing::warn!(error = %e, "an unreadable message from another node"),
        }
    }

    fn accept(&mut self, record: Arc<CommitRecord>) {
        if record.end() > self.next {
            self.ahead.entry(record.first).or_insert(record);
        }
    }

    /// Applies the commits that continue from `next`.
    async fn apply_ready(&mut self) {
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() > self.next {
                break;
            }
            let record = entry.remove();
            if record.end() > self.next {
                self.apply(&record).await;
            }
        }
    }

    /// Reads from the database what has not arrived within `gap_wait`: up to the first commit that
    /// is waiting, or up to the head the database announced.
    async fn read_back_when_stuck(&mut self) {
        let head = self.im.store().head();
        if self.ahead.is_empty() && head < self.next {
            self.stuck_since = None;
            return;
        }
        let since = *self.stuck_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.gap_wait {
            return;
        }
        let until = self.ahead.keys().next().copied().unwrap_or(head + 1);
        let limit = until.saturating_sub(self.next).clamp(1, READ_BACK_MAX) as usize;
        let events = match self.im.store().read_after(self.next - 1, limit).await {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the event log back");
                return;
            }
        };
        let Some(first) = events.first().map(|e| e.position) else {
            return;
        };
        if first > self.next {
            tracing::warn!(
                from = self.next,
                to = first,
                "log positions were removed before this node applied them"
            );
            self.next = first;
        }
        tracing::debug!(
            from = first,
            count = events.len(),
            "read commits back from the database"
        );
        let record = CommitRecord {
            node: u16::MAX,
            first,
            events: events.into_iter().map(|e| e.event).collect(),
            routes: Vec::new(),
        };
        self.apply(&record).await;
        self.apply_ready().await;
    }

    async fn apply(&mut self, record: &CommitRecord) {
        let skip = self.next.saturating_sub(record.first) as usize;
        let theirs = record.node != self.node_id;
        for event in record.events.iter().skip(skip) {
            match event {
                Event::MessageSent(m) => self.deliver(m, record.route(m.message_id)).await,
                Event::UserOnline(c) => self.followed_online(c),
                Event::UserOffline(c) => self.followed_offline(c),
                // Another node changed a group's members: the cache takes it here, in log order, so
                // the group's next messages reach the members as they are then.
                Event::GroupCreated(g)
                | Event::GroupMemberAdded(g)
                | Event::GroupMemberRemoved(g)
                    if theirs =>
                {
                    self.reload_group(&g.channel_id).await
                }
                Event::GroupDismissed(g) if theirs => self.reload_group(&g.channel_id).await,
                _ => {}
            }
        }
        self.next = record.end();
        self.stuck_since = None;
    }

    /// Delivers a message to this node's connections of its recipients.
    async fn deliver(&self, message: &Message, route: Option<&Route>) {
        // Read back from the database: delivered to every connection of the recipients.
        let origin = route.map_or(Origin::Connection(0), |r| r.origin);
        let message = Arc::new(message.clone());
        if let Some(listed) = route.and_then(|r| r.listed.as_ref()) {
            self.im.fan_out(message, listed, origin);
            return;
        }
        if message.channel_type == ChannelType::Group.as_u8() {
            let channel = self
                .im
                .channels()
                .get(self.im.store(), &message.channel_id, message.channel_type)
                .await;
            match channel {
                Ok(Some(channel)) => {
                    self.im
                        .fan_out(message.clone(), &channel.record.subscribers, origin)
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, channel = %message.channel_id, "cannot load a group to deliver to")
                }
            }
            return;
        }
        let mut recipients = vec![message.channel_id.clone()];
        if !message.from_uid.is_empty() && message.from_uid != message.channel_id {
            recipients.push(message.from_uid.clone());
        }
        self.im.fan_out(message, &recipients, origin);
    }

    async fn reload_group(&self, channel_id: &str) {
        let group = ChannelType::Group.as_u8();
        if let Err(e) = self
            .im
            .channels()
            .reload(self.im.store(), channel_id, group)
            .await
        {
            tracing::warn!(error = %e, channel = %channel_id, "cannot reload a group another node changed");
        }
    }

    fn holds(&self, conn_id: u64) -> bool {
        conn_id >> CONN_ID_NODE_SHIFT == u64::from(self.node_id)
    }

    fn followed_online(&self, change: &PresenceChange) {
        if self.holds(change.conn_id) {
            return;
        }
        self.im.presence().remote().add(
            &change.uid,
            RemoteConn {
                node_id: (change.conn_id >> CONN_ID_NODE_SHIFT) as u16,
                conn_id: change.conn_id,
                device_flag: change.device_flag,
                device_level: change.device_level,
            },
        );
    }

    fn followed_offline(&self, change: &PresenceChange) {
        if !self.holds(change.conn_id) {
            self.im
                .presence()
                .remote()
                .remove(&change.uid, change.conn_id);
        } else if change.reason == PresenceReason::NodeLost {
            // Another node took this one for dead: its clients are told to connect again.
            self.im.kick_here(
                &change.uid,
                Some(change.conn_id),
                None,
                None,
                Kick {
                    reason_code: reason::SYSTEM_ERROR,
                    reason: "this node was taken for lost; connect again".into(),
                    presence_reason: PresenceReason::NodeLost,
                    notify: true,
                    device: None,
                },
            );
        }
    }

    /// Does what another node asked.
    async fn obey(&self, order: Order) {
        match order {
            Order::ChannelChanged {
                channel_id,
                channel_type,
            } => {
                if let Err(e) = self
                    .im
                    .channels()
                    .reload(self.im.store(), &channel_id, channel_type)
                    .await
                {
                    tracing::warn!(error = %e, channel = %channel_id, "cannot reload a channel another node changed");
                }
            }
            Order::SystemUidsChanged => {
                if let Err(e) = self.im.reload_system_uids().await {
                    tracing::warn!(error = %e, "cannot reload the system uids");
                }
            }
            Order::Kick {
                uid,
                conn_id,
                device_flag,
                keep,
                reason_code,
                reason,
                presence_reason,
                notify,
                device,
            } => {
                self.im.kick_here(
                    &uid,
                    conn_id,
                    device_flag,
                    keep,
                    Kick {
                        reason_code,
                        reason,
                        presence_reason,
                        notify,
                        device,
                    },
                );
            }
        }
    }
}
