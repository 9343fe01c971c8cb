//! Admission: whether an accepted connection may stay, shared by every listener of the server. It owns
//! the counts (all connections, per source address, unauthenticated) and the one rule that keeps the
//! server reachable under a flood: at a cap, the oldest unauthenticated connection makes room for the
//! newcomer, so `/health`, an admin call or a real client always gets in; a connection is refused only
//! when its address is over its own cap, or every place is held by authenticated peers.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::conn::Conn;

/// How many connections may be open, as resolved at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// Every accepted connection, all listeners together (the descriptor budget).
    pub total: usize,
    /// Connections from one address; 0: no cap.
    pub per_address: usize,
    /// Addresses the per-address cap does not apply to.
    pub exempt: Vec<ipnet::IpNet>,
    /// Connections that have not authenticated yet.
    pub unauthenticated: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address holds `Caps::per_address` connections already.
    PerAddress,
    /// Every place is held and no unauthenticated connection can make room.
    Full,
}

/// The counts behind one lock; taken once per accept, authentication and close, never per message.
#[derive(Debug, Default)]
struct Counts {
    /// Connections admitted and not yet dropped (evicted ones count until they are gone).
    total: usize,
    /// Admitted connections per address; an address leaves the map at zero.
    per_address: HashMap<IpAddr, usize>,
    /// Unauthenticated connections not yet evicted, oldest first (by id).
    unauthenticated: BTreeMap<u64, Weak<Conn>>,
}

/// The shared admission of a server's listeners.
#[derive(Debug)]
pub struct Admission {
    caps: Caps,
    counts: Mutex<Counts>,
    next_id: AtomicU64,
    /// When a refusal was last logged (one line per second at most).
    last_log: Mutex<Option<Instant>>,
}

impl Admission {
    pub fn new(caps: Caps) -> Arc<Admission> {
        Arc::new(Admission {
            caps,
            counts: Mutex::default(),
            next_id: AtomicU64::new(1),
            last_log: Mutex::new(None),
        })
    }

    pub fn caps(&self) -> &Caps {
        &self.caps
    }

    /// Connections open now (evicted ones included until they are closed).
    pub fn open(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, evicting the oldest unauthenticated one if a cap is reached.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Arc<Conn>, Refusal> {
        let mut counts = self.lock();
        let from_ip = counts.per_address.get(&ip).copied().unwrap_or(0);
        let capped = self.caps.per_address > 0 && !self.caps.exempt.iter().any(|n| n.contains(&ip));
        if capped && from_ip >= self.caps.per_address {
            drop(counts);
            self.log_refusal(ip, Refusal::PerAddress);
            return Err(Refusal::PerAddress);
        }
        // Evicted connections count until they are gone: a flood cannot overshoot by more than the
        // evictions still closing.
        let full = counts.total >= self.caps.total
            || counts.unauthenticated.len() >= self.caps.unauthenticated;
        if full && !Self::evict_oldest(&mut counts) {
            drop(counts);
            self.log_refusal(ip, Refusal::Full);
            return Err(Refusal::Full);
        }
        let conn = Arc::new(Conn::new(
            self.next_id.fetch_add(1, Ordering::Relaxed),
            ip,
            self.clone(),
        ));
        counts.total += 1;
        *counts.per_address.entry(ip).or_insert(0) += 1;
        counts
            .unauthenticated
            .insert(conn.id, Arc::downgrade(&conn));
        Ok(conn)
    }

    /// Evicts the oldest unauthenticated connection with no request in flight (or the oldest of all
    /// when every one is busy). False when there is none.
    fn evict_oldest(counts: &mut Counts) -> bool {
        let victim = counts
            .unauthenticated
            .iter()
            .find(|(_, c)| c.upgrade().is_some_and(|c| !c.is_busy()))
            .or_else(|| counts.unauthenticated.iter().next())
            .map(|(id, c)| (*id, c.clone()));
        let Some((id, conn)) = victim else {
            return false;
        };
        counts.unauthenticated.remove(&id);
        if let Some(conn) = conn.upgrade() {
            conn.evict();
        }
        true
    }

    pub(crate) fn on_authenticated(&self, conn: &Conn) {
        self.lock().unauthenticated.remove(&conn.id);
    }

    /// A connection is gone: its place returns.
    pub(crate) fn release(&self, conn: &Conn) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        counts.unauthenticated.remove(&conn.id);
        if let Some(n) = counts.per_address.get_mut(&conn.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_address.remove(&conn.ip);
            }
        }
    }

    fn log_refusal(&self, ip: IpAddr, why: Refusal) {
        let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
            return;
        }
        *last = Some(Instant::now());
        match why {
            Refusal::PerAddress => tracing::warn!(
                %ip,
                cap = self.caps.per_address,
                "connection refused: too many from this address (listen.max_per_address)"
            ),
            Refusal::Full => tracing::warn!(
                %ip,
                cap = self.caps.total,
                "connection refused: every place is held by authenticated peers (listen.reserved_descriptors)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listen::ConnHandle;

    fn caps(total: usize, per_address: usize, unauthenticated: usize) -> Caps {
        Caps {
            total,
            per_address,
            exempt: vec!["10.0.0.9/32".parse().unwrap()],
            unauthenticated,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_over_its_cap_is_refused_until_one_of_its_connections_closes() {
        let admission = Admission::new(caps(100, 2, 100));
        let a = admission.admit(ip("10.0.0.1")).unwrap();
        let _b = admission.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::PerAddress
        );
        assert!(admission.admit(ip("10.0.0.2")).is_ok());
        let exempt: Vec<_> = (0..5).map(|_| admission.admit(ip("10.0.0.9"))).collect();
        assert!(exempt.iter().all(Result::is_ok));
        drop(a);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn at_the_total_cap_the_oldest_idle_unauthenticated_connection_makes_room() {
        let admission = Admission::new(caps(3, 0, 100));
        let first = admission.admit(ip("10.0.0.1")).unwrap();
        let second = admission.admit(ip("10.0.0.1")).unwrap();
        let third = admission.admit(ip("10.0.0.1")).unwrap();
        ConnHandle(first.clone()).authenticated();
        second.request_started();
        let fourth = admission.admit(ip("10.0.0.2")).unwrap();
        // The first is authenticated and the second busy: the third, idle, goes.
        assert!(!first.is_evicted() && !second.is_evicted());
        assert!(third.is_evicted());
        assert!(!fourth.is_evicted());
        assert_eq!(
            admission.open(),
            4,
            "the evicted one counts until it is closed"
        );
        drop(third);
        assert_eq!(admission.open(), 3);
    }

    #[test]
    fn when_every_place_is_held_by_authenticated_peers_a_newcomer_is_refused() {
        let admission = Admission::new(caps(2, 0, 100));
        let held: Vec<_> = (0..2)
            .map(|_| admission.admit(ip("10.0.0.1")).unwrap())
            .collect();
        for conn in &held {
            ConnHandle(conn.clone()).authenticated();
        }
        assert_eq!(admission.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Full);
    }

    #[test]
    fn the_unauthenticated_cap_evicts_the_oldest_unauthenticated_even_below_the_total() {
        let admission = Admission::new(caps(100, 0, 2));
        let a = admission.admit(ip("10.0.0.1")).unwrap();
        let b = admission.admit(ip("10.0.0.1")).unwrap();
        let c = admission.admit(ip("10.0.0.1")).unwrap();
        assert!(a.is_evicted());
        assert!(!b.is_evicted() && !c.is_evicted());
    }
}
