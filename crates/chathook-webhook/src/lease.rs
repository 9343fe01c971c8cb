//! In a cluster, each endpoint's dispatcher runs on one node at a time: the node holding the
//! endpoint's lease in the shared database (named `webhook:<endpoint id>`). Endpoints are spread over
//! the live nodes (those whose heartbeat is at most two thirds of `cluster.lease_ms` old) by rendezvous
//! hashing: each endpoint goes to the live node with the highest hash of (endpoint, node), so a node
//! joining or leaving moves only its own share. Every round (a third of `cluster.lease_ms`, at most a
//! second) each node takes or renews the leases of its share; one it holds but is no longer its share
//! is handed over (its dispatcher stopped, the lease given up the round after). A node that cannot
//! renew stops its dispatchers before its leases can expire; when a node dies, its endpoints fall to
//! the others' shares once it stops counting as live, and are taken when their leases expire, from the
//! durable cursor (what was delivered after it is delivered again, with the same ids). Each round also
//! follows what other nodes changed: the endpoints, their health, the feature switches. `Run` starts
//! and stops an endpoint's dispatcher as its lease comes and goes (always held on a node alone).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chathook_events::StartAt;
use chathook_store::{ClusterStore, StoreError};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::{Context, Dispatcher};
use crate::endpoint::Endpoint;
use crate::health::Health;

/// What the lease loop needs of the shared database: a small view of a [`ClusterStore`], so that the
/// loop can be tried against a fake one.
#[async_trait]
pub(crate) trait LeaseBook: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> u16;
    /// The nodes whose last heartbeat is at most `window_ms` old, this one included.
    async fn live_nodes(&self, window_ms: i64) -> Result<Vec<u16>, StoreError>;
    /// Takes or renews each named lease that is free, expired or already this node's; the names this
    /// node holds now.
    async fn acquire_leases(
        &self,
        names: Vec<String>,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError>;
    /// Gives up leases this node holds.
    async fn release_leases(&self, names: Vec<String>) -> Result<(), StoreError>;
}

/// The lease book of a real cluster: its shared database.
struct SharedDatabase(Arc<dyn ClusterStore>);

#[async_trait]
impl LeaseBook for SharedDatabase {
    fn node_id(&self) -> u16 {
        self.0.node_id()
    }
    async fn live_nodes(&self, window_ms: i64) -> Result<Vec<u16>, StoreError> {
        self.0.live_nodes(window_ms).await
    }
    async fn acquire_leases(
        &self,
        names: Vec<String>,
        ttl_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        self.0.acquire_leases(names, ttl_ms).await
    }
    async fn release_leases(&self, names: Vec<String>) -> Result<(), StoreError> {
        self.0.release_leases(names).await
    }
}

/// What the lease loop needs of the engine (which implements it): the endpoints it knows, a switch
/// per endpoint saying whether this node runs its dispatcher, and following what other nodes changed.
#[async_trait]
pub(crate) trait LeaseHolder: Send + Sync {
    /// The ids of the endpoints known, and whether this node now runs each one's dispatcher.
    fn leased(&self) -> Vec<(String, bool)>;
    /// Lets (or stops) this node run `id`'s dispatcher.
    fn set_leased(&self, id: &str, held: bool);
    /// Takes the endpoints, health and switches other nodes stored (logging what fails).
    async fn follow(&self);
}

/// The shared database, the lease length, and the leases this node holds.
#[derive(Clone)]
pub struct Leasing {
    book: Arc<dyn LeaseBook>,
    lease: Duration,
    /// The lease names this node held after its last round (given up at shutdown).
    held: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Leasing {
    pub fn new(store: Arc<dyn ClusterStore>, lease: Duration) -> Leasing {
        Leasing::with_book(Arc::new(SharedDatabase(store)), lease)
    }

    fn with_book(book: Arc<dyn LeaseBook>, lease: Duration) -> Leasing {
        Leasing {
            book,
            lease,
            held: Arc::default(),
        }
    }

    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// Gives up every lease this node holds (its dispatchers have stopped).
    pub(crate) async fn release_all(&self) {
        let held = self.held.lock().map(|h| h.clone()).unwrap_or_default();
        if let Err(e) = self.book.release_leases(held).await {
            tracing::warn!(error = %e, "cannot release the webhook leases; they expire instead");
        }
    }
}

fn lease_name(endpoint_id: &str) -> String {
    format!("webhook:{endpoint_id}")
}

/// The live node an endpoint goes to: the highest hash of (endpoint, node) (rendezvous hashing; the
/// same answer on every node, in every version). `None` without live nodes.
pub fn share_of(endpoint_id: &str, live: &[u16]) -> Option<u16> {
    live.iter().copied().max_by_key(|node| {
        let digest = Sha256::new()
            .chain_update(endpoint_id.as_bytes())
            .chain_update(node.to_be_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        (u64::from_be_bytes(first), *node)
    })
}

/// What an endpoint's dispatcher is started from (see `Dispatcher::start`), each time this node may run
/// it: alone, from the start; in a cluster, each time it takes the endpoint's lease.
pub(crate) struct Run {
    pub ctx: Arc<Context>,
    pub endpoint: watch::Receiver<Arc<Endpoint>>,
    pub health: watch::Receiver<Arc<Health>>,
    pub wake: Arc<Notify>,
    pub start: StartAt,
}

impl Run {
    /// Runs the dispatcher whenever `lease` says this node may, until `stop` is cancelled; a
    /// dispatcher stopped by a lost lease lets its in-flight attempts end and moves its cursor before
    /// it goes.
    pub(crate) async fn while_leased(
        self,
        stop: CancellationToken,
        mut lease: watch::Receiver<bool>,
    ) {
        loop {
            loop {
                if stop.is_cancelled() {
                    return;
                }
                if *lease.borrow_and_update() {
                    break;
                }
                tokio::select! {
                    changed = lease.changed() => if changed.is_err() { return },
                    _ = stop.cancelled() => return,
                }
            }
            // Cancelled by `stop` too (a child), or alone when the lease goes.
            let run_stop = stop.child_token();
            let dispatcher = Dispatcher::start(
                self.ctx.clone(),
                self.endpoint.clone(),
                self.health.clone(),
                self.wake.clone(),
                run_stop.clone(),
                self.start,
            )
            .await;
            let dispatcher = match dispatcher {
                Ok(d) => d,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start a dispatcher; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let mut running = tokio::spawn(dispatcher.run());
            let finished = loop {
                tokio::select! {
                    _ = &mut running => break true,
                    _ = stop.cancelled() => break false,
                    changed = lease.changed() => if changed.is_err() || !*lease.borrow() { break false },
                }
            };
            run_stop.cancel();
            if !finished {
                let _ = running.await;
            }
        }
    }
}

/// Holds leases and follows other nodes' changes, one round every third of the lease (at most a
/// second), until `stop` is cancelled.
pub(crate) async fn hold(holder: impl LeaseHolder, leasing: Leasing, stop: CancellationToken) {
    let round = (leasing.lease / 3).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut tick = tokio::time::interval(round);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = Rounds::new(leasing);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        holder.follow().await;
        rounds.round(&holder).await;
    }
}

/// The lease loop's memory from one round to the next.
struct Rounds {
    leasing: Leasing,
    /// This node.
    me: u16,
    /// The live nodes as last read (this node alone until the database answers).
    live: Vec<u16>,
    /// When the leases were last renewed: a node that cannot renew for two thirds of a lease stops
    /// its dispatchers before the leases can expire.
    renewed_at: Option<Instant>,
    /// Leases whose dispatchers this node stopped last round: given up this round (the dispatcher has
    /// had a round to let its attempts end).
    handed_over: Vec<String>,
}

impl Rounds {
    fn new(leasing: Leasing) -> Rounds {
        let me = leasing.book.node_id();
        Rounds {
            leasing,
            me,
            live: vec![me],
            renewed_at: None,
            handed_over: Vec::new(),
        }
    }

    /// One round: reads the live nodes, hands over what is no longer this node's share, gives up what
    /// was handed over last round, and takes or renews the share.
    async fn round(&mut self, holder: &impl LeaseHolder) {
        let window_ms = (self.leasing.lease * 2 / 3).as_millis() as i64;
        match self.leasing.book.live_nodes(window_ms).await {
            Ok(nodes) => self.live = nodes,
            Err(e) => tracing::warn!(error = %e, "cannot read which nodes are live"),
        }
        let endpoints = holder.leased();
        let (share, handing) = self.split(holder, &endpoints);
        let release: Vec<String> = std::mem::replace(&mut self.handed_over, handing)
            .into_iter()
            .filter(|name| !share.contains(name))
            .collect();
        if !release.is_empty() {
            if let Err(e) = self.leasing.book.release_leases(release).await {
                tracing::warn!(error = %e, "cannot give leases up; they expire instead");
            }
        }
        match self
            .leasing
            .book
            .acquire_leases(share, self.leasing.lease_ms())
            .await
        {
            Ok(held) => self.took(holder, endpoints, held),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the webhook leases");
                // Stop before they can expire, so that two nodes never deliver to one endpoint.
                let lease = self.leasing.lease;
                if self
                    .renewed_at
                    .is_none_or(|at| at.elapsed() >= lease * 2 / 3)
                {
                    for (id, _) in endpoints {
                        holder.set_leased(&id, false);
                    }
                }
            }
        }
    }

    /// This node's share of `endpoints` (lease names), and the leases it holds that are not its share
    /// any more (their dispatchers stopped now).
    fn split(
        &self,
        holder: &impl LeaseHolder,
        endpoints: &[(String, bool)],
    ) -> (Vec<String>, Vec<String>) {
        let mut share = Vec::new();
        let mut handing = Vec::new();
        for (id, held) in endpoints {
            if share_of(id, &self.live) == Some(self.me) {
                share.push(lease_name(id));
            } else if *held {
                tracing::info!(endpoint = %id, "handing this endpoint over to another node");
                holder.set_leased(id, false);
                handing.push(lease_name(id));
            }
        }
        (share, handing)
    }

    /// Runs the dispatchers of the leases this node holds now, stops the others.
    fn took(
        &mut self,
        holder: &impl LeaseHolder,
        endpoints: Vec<(String, bool)>,
        held: Vec<String>,
    ) {
        self.renewed_at = Some(Instant::now());
        let held: HashSet<String> = held.into_iter().collect();
        for (id, had) in endpoints {
            let has = held.contains(&lease_name(&id));
            if has && !had {
                tracing::info!(endpoint = %id, "delivering to this endpoint from this node");
            } else if had && !has && !self.handed_over.contains(&lease_name(&id)) {
                tracing::warn!(endpoint = %id, "another node took this endpoint's lease");
            }
            holder.set_leased(&id, has);
        }
        // Those being handed over are still this node's until the next round gives them up.
        if let Ok(mut mine) = self.leasing.held.lock() {
            *mine = held
                .into_iter()
                .chain(self.handed_over.iter().cloned())
                .collect();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A shared database in memory: the live nodes, and which node holds each lease (leases never
    /// expire here; a test frees them by hand).
    #[derive(Default)]
    struct FakeBook {
        me: u16,
        live: Mutex<Vec<u16>>,
        leases: Arc<Mutex<HashMap<String, u16>>>,
        /// The database does not answer.
        down: Mutex<bool>,
        released: Mutex<Vec<String>>,
    }

    fn unreachable() -> StoreError {
        StoreError::Storage("the database does not answer".into())
    }

    #[async_trait]
    impl LeaseBook for FakeBook {
        fn node_id(&self) -> u16 {
            self.me
        }
        async fn live_nodes(&self, _window_ms: i64) -> Result<Vec<u16>, StoreError> {
            if *self.down.lock().unwrap() {
                return Err(unreachable());
            }
            Ok(self.live.lock().unwrap().clone())
        }
        async fn acquire_leases(
            &self,
            names: Vec<String>,
            _ttl_ms: i64,
        ) -> Result<Vec<String>, StoreError> {
            if *self.down.lock().unwrap() {
                return Err(unreachable());
            }
            let mut leases = self.leases.lock().unwrap();
            Ok(names
                .into_iter()
                .filter(|n| *leases.entry(n.clone()).or_insert(self.me) == self.me)
                .collect())
        }
        async fn release_leases(&self, names: Vec<String>) -> Result<(), StoreError> {
            let mut leases = self.leases.lock().unwrap();
            for n in &names {
                if leases.get(n) == Some(&self.me) {
                    leases.remove(n);
                }
            }
            self.released.lock().unwrap().extend(names);
            Ok(())
        }
    }

    /// The engine's side: which endpoints this node runs.
    #[derive(Default)]
    struct FakeHolder {
        running: Mutex<HashMap<String, bool>>,
    }

    #[async_trait]
    impl LeaseHolder for FakeHolder {
        fn leased(&self) -> Vec<(String, bool)> {
            let mut v: Vec<_> = self.running.lock().unwrap().clone().into_iter().collect();
            v.sort();
            v
        }
        fn set_leased(&self, id: &str, held: bool) {
            self.running.lock().unwrap().insert(id.into(), held);
        }
        async fn follow(&self) {}
    }

    impl FakeHolder {
        fn with(ids: &[String]) -> FakeHolder {
            let h = FakeHolder::default();
            for id in ids {
                h.set_leased(id, false);
            }
            h
        }
        fn runs(&self, id: &str) -> bool {
            self.running.lock().unwrap()[id]
        }
    }

    const LEASE: Duration = Duration::from_secs(3);

    fn node(me: u16, live: &[u16]) -> (Arc<FakeBook>, Rounds) {
        let book = Arc::new(FakeBook {
            me,
            live: Mutex::new(live.to_vec()),
            ..FakeBook::default()
        });
        let rounds = Rounds::new(Leasing::with_book(book.clone(), LEASE));
        (book, rounds)
    }

    fn ids() -> Vec<String> {
        (0..40).map(|i| format!("ep_{i}")).collect()
    }

    #[tokio::test]
    async fn a_node_alone_runs_every_endpoint_once_it_holds_their_leases() {
        let (book, mut rounds) = node(1, &[1]);
        let holder = FakeHolder::with(&ids());
        rounds.round(&holder).await;
        assert!(ids().iter().all(|id| holder.runs(id)));
        assert_eq!(book.leases.lock().unwrap().len(), ids().len());
        assert_eq!(rounds.leasing.held.lock().unwrap().len(), ids().len());
    }

    #[tokio::test]
    async fn a_joining_node_gets_its_share_handed_over_and_given_up_the_round_after() {
        let (book, mut rounds) = node(1, &[1]);
        let holder = FakeHolder::with(&ids());
        rounds.round(&holder).await;
        // node 2 joins: its share stops here at once, its leases go the next round
        *book.live.lock().unwrap() = vec![1, 2];
        rounds.round(&holder).await;
        let theirs: Vec<String> = ids()
            .into_iter()
            .filter(|id| share_of(id, &[1, 2]) == Some(2))
            .collect();
        assert!(!theirs.is_empty());
        for id in ids() {
            assert_eq!(holder.runs(&id), !theirs.contains(&id), "{id}");
        }
        assert!(
            book.released.lock().unwrap().is_empty(),
            "given up too early"
        );
        rounds.round(&holder).await;
        let released: HashSet<String> = book.released.lock().unwrap().iter().cloned().collect();
        let expected: HashSet<String> = theirs.iter().map(|id| lease_name(id)).collect();
        assert_eq!(released, expected);
        // node 2 takes them
        let (_, mut other) = node(2, &[1, 2]);
        other.leasing.book = Arc::new(FakeBook {
            me: 2,
            live: Mutex::new(vec![1, 2]),
            leases: book.leases.clone(),
            ..FakeBook::default()
        });
        let holder2 = FakeHolder::with(&ids());
        other.round(&holder2).await;
        for id in ids() {
            assert_eq!(holder2.runs(&id), theirs.contains(&id), "{id}");
        }
    }

    #[tokio::test]
    async fn a_lease_another_node_holds_is_not_run_here() {
        let (book, mut rounds) = node(1, &[1]);
        book.leases.lock().unwrap().insert(lease_name("ep_3"), 9);
        let holder = FakeHolder::with(&ids());
        rounds.round(&holder).await;
        assert!(!holder.runs("ep_3"));
        assert!(holder.runs("ep_4"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_that_cannot_renew_stops_its_dispatchers_before_the_leases_expire() {
        let (book, mut rounds) = node(1, &[1]);
        let holder = FakeHolder::with(&ids());
        rounds.round(&holder).await;
        *book.down.lock().unwrap() = true;
        tokio::time::advance(LEASE / 3).await;
        rounds.round(&holder).await;
        assert!(ids().iter().all(|id| holder.runs(id)), "stopped too early");
        tokio::time::advance(LEASE / 3).await;
        rounds.round(&holder).await;
        assert!(ids().iter().all(|id| !holder.runs(id)));
        // the database answers again: the leases are still this node's, the dispatchers run again
        *book.down.lock().unwrap() = false;
        rounds.round(&holder).await;
        assert!(ids().iter().all(|id| holder.runs(id)));
    }

    #[test]
    fn endpoints_spread_over_the_live_nodes_and_a_leaving_node_moves_only_its_own() {
        let ids: Vec<String> = (0..300).map(|i| format!("ep_{i}")).collect();
        let three = [1, 2, 3];
        let mut counts = std::collections::HashMap::new();
        for id in &ids {
            *counts.entry(share_of(id, &three).unwrap()).or_insert(0) += 1;
        }
        assert!(counts.values().all(|&n| n > 60), "{counts:?}");
        // node 3 leaves: its endpoints move, the others stay where they were
        for id in &ids {
            let before = share_of(id, &three).unwrap();
            let after = share_of(id, &[1, 2]).unwrap();
            if before != 3 {
                assert_eq!(before, after, "{id}");
            }
        }
        assert_eq!(share_of("x", &[]), None);
        assert_eq!(share_of("x", &[7]), Some(7));
    }
}
