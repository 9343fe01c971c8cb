//! The connections other nodes of a cluster hold, as this node knows them: loaded from the database
//! when the node joins, then kept by the other nodes' presence events in log order (`cluster::relay`).
//! Only counted and listed here; never delivered to (each node delivers to its own connections).

use dashmap::DashMap;
use serde::Serialize;

/// A connection held by another node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteConn {
    pub node_id: u16,
    pub conn_id: u64,
    pub device_flag: u8,
    pub device_level: u8,
}

/// Other nodes' connections by user.
#[derive(Debug, Default)]
pub struct RemotePresence {
    users: DashMap<String, Vec<RemoteConn>>,
}

impl RemotePresence {
    /// Replaces everything with `conns` (uid, connection).
    pub fn reset(&self, conns: impl IntoIterator<Item = (String, RemoteConn)>) {
        self.users.clear();
        for (uid, conn) in conns {
            self.add(&uid, conn);
        }
    }

    /// Adds a connection (again: replaced).
    pub fn add(&self, uid: &str, conn: RemoteConn) {
        let mut conns = self.users.entry(uid.to_string()).or_default();
        conns.retain(|c| c.conn_id != conn.conn_id);
        conns.push(conn);
    }

    pub fn remove(&self, uid: &str, conn_id: u64) {
        self.users.remove_if_mut(uid, |_, conns| {
            conns.retain(|c| c.conn_id != conn_id);
            conns.is_empty()
        });
    }

    /// Forgets every connection of `node`; those it held.
    pub fn remove_node(&self, node_id: u16) -> usize {
        let mut removed = 0;
        self.users.retain(|_, conns| {
            let before = conns.len();
            conns.retain(|c| c.node_id != node_id);
            removed += before - conns.len();
            !conns.is_empty()
        });
        removed
    }

    /// (connections with `device_flag`, all connections) of `uid`.
    pub fn counts(&self, uid: &str, device_flag: u8) -> (u32, u32) {
        self.users.get(uid).map_or((0, 0), |conns| {
            let device = conns
                .iter()
                .filter(|c| c.device_flag == device_flag)
                .count();
            (device as u32, conns.len() as u32)
        })
    }

    pub fn has_primary(&self, uid: &str) -> bool {
        self.users.get(uid).is_some_and(|c| {
            c.iter()
                .any(|c| c.device_level == crate::DEVICE_LEVEL_PRIMARY)
        })
    }

    pub fn connections(&self, uid: &str) -> Vec<RemoteConn> {
        self.users.get(uid).map(|c| c.clone()).unwrap_or_default()
    }

    pub fn is_online(&self, uid: &str) -> bool {
        self.users.contains_key(uid)
    }

    /// Users with a connection on another node, and whether each also has one here is for the caller.
    pub fn users(&self) -> Vec<String> {
        self.users.iter().map(|e| e.key().clone()).collect()
    }

    /// Connections on other nodes.
    pub fn len(&self) -> usize {
        self.users.iter().map(|e| e.value().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(conn_id: u64, device_flag: u8, device_level: u8) -> RemoteConn {
        RemoteConn {
            node_id: 2,
            conn_id,
            device_flag,
            device_level,
        }
    }

    #[test]
    fn counts_and_primaries_follow_adds_and_removes() {
        let r = RemotePresence::default();
        r.add("a", conn(1, 0, 0));
        r.add("a", conn(2, 1, 1));
        r.add("a", conn(2, 1, 1));
        assert_eq!(r.counts("a", 0), (1, 2));
        assert_eq!(r.counts("a", 1), (1, 2));
        assert!(r.has_primary("a"));
        r.remove("a", 2);
        assert!(!r.has_primary("a"));
        assert_eq!(r.counts("a", 1), (0, 1));
        r.remove("a", 1);
        assert!(!r.is_online("a") && r.is_empty());
        r.reset([("b".to_string(), conn(3, 2, 0))]);
        assert_eq!((r.len(), r.users()), (1, vec!["b".to_string()]));
        r.add("c", conn(4, 0, 0));
        r.add(
            "c",
            RemoteConn {
                node_id: 5,
                ..conn(6, 0, 0)
            },
        );
        assert_eq!(r.remove_node(2), 2);
        assert_eq!(r.connections("c").len(), 1);
        assert!(!r.is_online("b"));
    }
}
