//! Who is online: every authenticated connection, per user and device flag.
//!
//! Owns the live connection handles (each with its bounded outbound queue and control channel) and the
//! counts WuKongIM's `user.onlinestatus` carries. Lookups take one shard lock of a concurrent map; there
//! is no global lock on the message path. Presence never writes to storage: the gateway does that. In a
//! cluster, the counts and the online checks also cover the other nodes' connections (`remote`).

mod remote;

pub use remote::{RemoteConn, RemotePresence};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use tokio::sync::mpsc;

use chathook_events::{ClientInfo, Message, PresenceReason};

/// A frame queued for one connection.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A message to deliver as a `recv` notification.
    Recv(Arc<Delivery>),
}

/// A message as a group of recipients sees it, shared between their connections. The gateway renders
/// the frame once, on first use, whatever the number of connections.
#[derive(Debug)]
pub struct Delivery {
    pub message: Arc<Message>,
    /// The channel id these recipients see (for a person channel, the other party).
    pub channel_id: String,
    /// The rendered `recv` frame.
    pub frame: OnceLock<Utf8Bytes>,
}

impl Delivery {
    /// What holding this delivery costs one connection, in bytes, counted against
    /// `limits.outbound_queue_bytes` from the moment it is queued until its `recvack`: the payload
    /// twice (the message, and the frame with it in base64) and the strings around it.
    pub fn cost(&self) -> usize {
        let m = &self.message;
        m.payload.len() * 7 / 3
            + self.channel_id.len()
            + m.client_msg_no.len()
            + m.from_uid.len()
            + 256
    }
}

/// An order to close a connection, with the reason the client and the event log are told.
#[derive(Debug, Clone)]
pub struct Kick {
    pub reason_code: u8,
    pub reason: String,
    pub presence_reason: PresenceReason,
    /// Whether the client hears the protocol's disconnect notice before the close (not for
    /// `/conn/remove`, which closes without a word, as WuKongIM's does).
    pub notify: bool,
    /// Narrows a kick by device flag to connections with (`same`) or without this device id.
    pub device: Option<DeviceMatch>,
}

/// A device id a kick picks connections by (WuKongIM's login kick: a primary login tells the other
/// devices and silently closes an older connection of its own device; a secondary login closes only
/// that).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeviceMatch {
    pub device_id: String,
    /// True: connections with this device id; false: the others (those without an id included).
    pub same: bool,
}

impl DeviceMatch {
    /// Whether a connection with `device_id` is picked.
    pub fn picks(&self, device_id: Option<&str>) -> bool {
        (device_id == Some(self.device_id.as_str())) == self.same
    }
}

/// One authenticated connection as the rest of the server sees it.
#[derive(Debug)]
pub struct ConnHandle {
    pub conn_id: u64,
    pub uid: String,
    /// The id the client gave its device (WuKongIM's `deviceId`), when it gave one.
    pub device_id: Option<String>,
    pub device_flag: u8,
    pub device_level: u8,
    /// The client's address and platform, for the events the connection causes.
    pub client: Arc<ClientInfo>,
    pub outbound: mpsc::Sender<Outbound>,
    pub control: mpsc::Sender<Kick>,
    /// Bytes of the deliveries queued for this connection or sent and awaiting their `recvack`
    /// ([`Delivery::cost`] each): reserved before a delivery is queued, released when it is
    /// acknowledged or given up; never above the limit it was reserved under.
    pub buffered: AtomicUsize,
}

impl ConnHandle {
    /// Reserves `cost` bytes for a delivery; false (nothing reserved) when that would pass `limit`.
    pub fn reserve(&self, cost: usize, limit: usize) -> bool {
        let before = self.buffered.fetch_add(cost, Ordering::AcqRel);
        if before + cost > limit {
            self.buffered.fetch_sub(cost, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Returns the bytes of a delivery that was acknowledged, given up, or never queued.
    pub fn release(&self, cost: usize) {
        self.buffered.fetch_sub(cost, Ordering::AcqRel);
    }

    /// Asks the connection to close; a second order while one is pending is ignored.
    pub fn kick(&self, kick: Kick) {
        let _ = self.control.try_send(kick);
    }
}

/// Connection counts of one user after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub device: u32,
    pub total: u32,
}

/// The registry of online connections.
#[derive(Debug, Default)]
pub struct Presence {
    users: DashMap<String, Vec<Arc<ConnHandle>>>,
    /// Other nodes' connections (empty on a node that runs alone).
    remote: RemotePresence,
}

impl Presence {
    /// Adds a connection unless the user already has `max_per_user`; returns the counts after.
    pub fn add(&self, handle: Arc<ConnHandle>, max_per_user: usize) -> Option<Counts> {
        let mut conns = self.users.entry(handle.uid.clone()).or_default();
        if conns.len() >= max_per_user {
            return None;
        }
        let flag = handle.device_flag;
        let uid = handle.uid.clone();
        conns.push(handle);
        let here = counts_of(&conns, flag);
        drop(conns);
        Some(self.with_remote(&uid, flag, here))
    }

    /// `here` (this node's counts of `uid`) plus the other nodes'.
    fn with_remote(&self, uid: &str, device_flag: u8, here: Counts) -> Counts {
        let (device, total) = self.remote.counts(uid, device_flag);
        Counts {
            device: here.device + device,
            total: here.total + total,
        }
    }

    /// The user's counts over every node, for a connection with `device_flag`.
    pub fn counts(&self, uid: &str, device_flag: u8) -> Counts {
        let here = self.users.get(uid).map_or(
            Counts {
                device: 0,
                total: 0,
            },
            |c| counts_of(&c, device_flag),
        );
        self.with_remote(uid, device_flag, here)
    }

    /// The other nodes' connections.
    pub fn remote(&self) -> &RemotePresence {
        &self.remote
    }

    /// Removes a connection; returns the counts after, or `None` if it was not registered.
    pub fn remove(&self, uid: &str, conn_id: u64, device_flag: u8) -> Option<Counts> {
        let mut counts = None;
        self.users.remove_if_mut(uid, |_, conns| {
            if let Some(i) = conns.iter().position(|c| c.conn_id == conn_id) {
                conns.swap_remove(i);
                counts = Some(counts_of(conns, device_flag));
            }
            conns.is_empty()
        });
        counts.map(|here| self.with_remote(uid, device_flag, here))
    }

    /// Calls `f` with each connection of `uid` (under the user's shard lock: `f` must not block).
    pub fn for_each(&self, uid: &str, mut f: impl FnMut(&Arc<ConnHandle>)) {
        if let Some(conns) = self.users.get(uid) {
            conns.iter().for_each(&mut f);
        }
    }

    /// The connections of `uid` (cloned handles).
    pub fn connections(&self, uid: &str) -> Vec<Arc<ConnHandle>> {
        self.users.get(uid).map(|c| c.clone()).unwrap_or_default()
    }

    pub fn is_online(&self, uid: &str) -> bool {
        self.users.contains_key(uid) || self.remote.is_online(uid)
    }

    /// The user has a primary (`device_level` 1) connection, on any node.
    pub fn has_primary(&self, uid: &str) -> bool {
        self.users.get(uid).is_some_and(|conns| {
            conns
                .iter()
                .any(|c| c.device_level == crate::DEVICE_LEVEL_PRIMARY)
        }) || self.remote.has_primary(uid)
    }

    /// Users with at least one connection, on any node.
    pub fn users_online(&self) -> usize {
        let elsewhere = self.remote.users();
        let only_elsewhere = elsewhere
            .iter()
            .filter(|u| !self.users.contains_key(u.as_str()))
            .count();
        self.users.len() + only_elsewhere
    }

    /// Connections held by this node.
    pub fn connections_here(&self) -> usize {
        self.users.iter().map(|e| e.value().len()).sum()
    }

    /// Every connection (for shutdown).
    pub fn all(&self) -> Vec<Arc<ConnHandle>> {
        self.users.iter().flat_map(|e| e.value().clone()).collect()
    }
}

fn counts_of(conns: &[Arc<ConnHandle>], device_flag: u8) -> Counts {
    Counts {
        device: conns
            .iter()
            .filter(|c| c.device_flag == device_flag)
            .count() as u32,
        total: conns.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(conn_id: u64, uid: &str, flag: u8) -> Arc<ConnHandle> {
        let (tx, _) = mpsc::channel(1);
        let (ctl, _) = mpsc::channel(1);
        Arc::new(ConnHandle {
            conn_id,
            uid: uid.into(),
            device_id: None,
            device_flag: flag,
            device_level: 0,
            client: Arc::default(),
            outbound: tx,
            control: ctl,
            buffered: AtomicUsize::new(0),
        })
    }

    #[test]
    fn counts_follow_adds_and_removes() {
        let p = Presence::default();
        assert_eq!(
            p.add(handle(1, "a", 0), 8),
            Some(Counts {
                device: 1,
                total: 1
            })
        );
        assert_eq!(
            p.add(handle(2, "a", 1), 8),
            Some(Counts {
                device: 1,
                total: 2
            })
        );
        assert_eq!(
            p.add(handle(3, "a", 0), 8),
            Some(Counts {
                device: 2,
                total: 3
            })
        );
        assert_eq!(
            p.remove("a", 1, 0),
            Some(Counts {
                device: 1,
                total: 2
            })
        );
        assert_eq!(p.remove("a", 1, 0), None);
        let flags: Vec<u8> = p.connections("a").iter().map(|c| c.device_flag).collect();
        assert_eq!(flags.len(), 2);
        assert!(flags.contains(&0) && flags.contains(&1));
        p.remove("a", 2, 1);
        p.remove("a", 3, 0);
        assert!(!p.is_online("a"));
    }

    #[test]
    fn per_user_limit_is_enforced() {
        let p = Presence::default();
        assert!(p.add(handle(1, "a", 0), 1).is_some());
        assert!(p.add(handle(2, "a", 0), 1).is_none());
        assert!(p.add(handle(3, "b", 0), 1).is_some());
    }
}
