//! Relay mode: another IM server's webhooks in, verified, parsed into the same events chathook's own
//! IM core produces (marked with their source) and appended to the event log, where every endpoint
//! takes them like its own. `source` owns a source and its secrets, `ingest` the HTTP entry point,
//! `refusals` reports refusal spikes;
//! this module keeps the registry of sources and the step from a verified request to a durable
//! commit. The answer to the sending server is given only after that commit.

pub mod counters;
pub mod ingest;
pub(crate) mod refusals;
pub mod source;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chathook_events::{Event, Outgoing, Verdict};
use chathook_store::sealing::Sealer;
use chathook_store::{Ingested, RelayStore, StoreError};

use crate::clock::now_ms;
use crate::config::RelayConfig;
use crate::hooks::Hooks;
use counters::Counters;
use source::{Source, StoredSourceError};

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Stored(#[from] StoredSourceError),
}

/// The relay sources and their ingest. Cloning shares it.
#[derive(Clone)]
pub struct Relay {
    store: Arc<dyn RelayStore>,
    /// The before-send hooks, which answer Tencent's before-send callbacks.
    hooks: Arc<Hooks>,
    sealer: Sealer,
    config: RelayConfig,
    /// The base of ingest URLs (`public_url`, or the API's address).
    base_url: String,
    /// The sources by id, as last read from the store.
    sources: Arc<RwLock<HashMap<String, Arc<Source>>>>,
    /// What each source's ingest saw on this node.
    counters: Counters,
    /// When a request that matched no source last made the sources be read again.
    miss_reloaded: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

/// How often a request that matches no source may make the sources be read from the store again.
const MISS_RELOAD_INTERVAL: Duration = Duration::from_millis(250);

impl Relay {
    /// Loads the stored sources.
    pub(crate) async fn start(
        store: Arc<dyn RelayStore>,
        hooks: Arc<Hooks>,
        metrics: crate::metrics::WebhookMetrics,
        sealer: Sealer,
        config: RelayConfig,
        api_base: String,
    ) -> Result<Relay, RelayError> {
        let base_url = config
            .public_url
            .clone()
            .unwrap_or(api_base)
            .trim_end_matches('/')
            .to_string();
        let relay = Relay {
            store,
            hooks,
            sealer,
            config,
            base_url,
            sources: Arc::default(),
            counters: Counters::new(metrics),
            miss_reloaded: Arc::default(),
        };
        relay.reload().await?;
        Ok(relay)
    }

    /// Reads the sources as the store has them (another node may have changed them).
    pub async fn reload(&self) -> Result<(), RelayError> {
        let mut fresh = HashMap::new();
        for (id, doc) in self.store.relay_sources().await? {
            let s = source::open(&self.sealer, &id, &doc)?;
            fresh.insert(id, Arc::new(s));
        }
        if let Ok(mut sources) = self.sources.write() {
            *sources = fresh;
        }
        Ok(())
    }

    /// What each source's ingest saw on this node.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// Where `s` takes its webhooks.
    pub fn ingest_url(&self, s: &Source) -> String {
        format!("{}/relay/{}/{}", self.base_url, s.id, s.secret)
    }

    /// Every source, by creation.
    pub fn list(&self) -> Vec<Arc<Source>> {
        let mut list: Vec<Arc<Source>> = self
            .sources
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        list
    }

    pub fn get(&self, id: &str) -> Option<Arc<Source>> {
        self.sources.read().ok()?.get(id).cloned()
    }

    /// Stores a new or changed source.
    pub async fn put(&self, s: Source) -> Result<(), RelayError> {
        self.store
            .put_relay_source(&s.id, source::seal(&self.sealer, &s))
            .await?;
        if let Ok(mut sources) = self.sources.write() {
            sources.insert(s.id.clone(), Arc::new(s));
        }
        Ok(())
    }

    /// Forgets a source and its de-duplication keys; whether it existed.
    pub async fn delete(&self, id: &str) -> Result<bool, RelayError> {
        let existed = self.store.delete_relay_source(id).await?;
        if let Ok(mut sources) = self.sources.write() {
            sources.remove(id);
        }
        self.counters.forget(id);
        Ok(existed)
    }

    /// The source `id` if `secret` is its path secret now. A miss reads the store again (another node
    /// may have just created or rotated it), at most once a [`MISS_RELOAD_INTERVAL`], so that requests
    /// with made-up URLs cannot make every request a database read.
    pub(crate) async fn authenticate(&self, id: &str, secret: &str) -> Option<Arc<Source>> {
        let now = now_ms();
        if let Some(s) = self.get(id).filter(|s| s.admits_secret(secret, now)) {
            return Some(s);
        }
        let due = {
            let mut last = self.miss_reloaded.lock().unwrap_or_else(|p| p.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= MISS_RELOAD_INTERVAL);
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if !due {
            return None;
        }
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "cannot read the relay sources");
        }
        self.get(id).filter(|s| s.admits_secret(secret, now))
    }

    /// Appends what `source` reported, durably, leaving out messages it re-sent within the window.
    /// `sdk_app_id` is the Tencent app that sent them, if any.
    pub(crate) async fn commit(
        &self,
        source: &Source,
        parsed: Vec<(Event, Option<i64>)>,
        sdk_app_id: Option<u64>,
    ) -> Result<Ingested, StoreError> {
        let events = parsed
            .into_iter()
            .map(|(e, key)| {
                let mut relayed = Event::relayed(&source.id, e);
                if let Event::Relayed(r) = &mut relayed {
                    r.sdk_app_id = sdk_app_id;
                }
                (relayed, key)
            })
            .collect();
        let since = now_ms() - self.config.dedup_window.as_millis() as i64;
        self.store.relay_ingest(&source.id, events, since).await
    }

    /// The before-send verdict on `m`, within `source`'s deadline (past it, the hook endpoint's
    /// `on_failure` decides; without a hook endpoint, allow).
    pub(crate) async fn judge(&self, source: &Source, m: &Outgoing) -> Verdict {
        let deadline = Duration::from_millis(source.hook_deadline_ms);
        self.hooks.judge_within(m, Some(deadline)).await
    }

    /// Forgets de-duplication keys older than the window, every `interval`, until `stop`.
    pub(crate) async fn prune(self, interval: Duration, stop: tokio_util::sync::CancellationToken) {
        loop {
            let before = now_ms() - self.config.dedup_window.as_millis() as i64;
            if let Err(e) = self.store.prune_relay_keys(before).await {
                tracing::warn!(error = %e, "cannot prune the relay's de-duplication keys");
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
