//! Channels as the message path sees them: a read-through cache of stored groups and the index of
//! live-group memberships.
//!
//! The cache is invalidated (never patched) after a write, and a load that raced with a write does not
//! fill the cache, so a stale record cannot outlive the write that replaced it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;

use chathook_events::ChannelType;
use chathook_store::{ChannelRecord, Store, StoreError};

/// A stored channel with its lists indexed for the message path's membership checks.
#[derive(Debug)]
pub struct CachedChannel {
    pub record: ChannelRecord,
    members: HashSet<String>,
    blacklisted: HashSet<String>,
    whitelisted: HashSet<String>,
}

impl CachedChannel {
    fn new(record: ChannelRecord) -> Self {
        CachedChannel {
            members: record.subscribers.iter().cloned().collect(),
            blacklisted: record.blacklist.iter().cloned().collect(),
            whitelisted: record.whitelist.iter().cloned().collect(),
            record,
        }
    }

    pub fn is_member(&self, uid: &str) -> bool {
        self.members.contains(uid)
    }

    pub fn is_blacklisted(&self, uid: &str) -> bool {
        self.blacklisted.contains(uid)
    }

    pub fn is_whitelisted(&self, uid: &str) -> bool {
        self.whitelisted.contains(uid)
    }

    /// The whitelist has at least one entry.
    pub fn has_whitelist(&self) -> bool {
        !self.whitelisted.is_empty()
    }
}

type Cache = DashMap<String, Option<Arc<CachedChannel>>>;

/// Read-through cache of stored channels.
#[derive(Default)]
pub struct Channels {
    /// Person channels (by uid) and groups (by id): one map per type, so that a hit looks the id up
    /// as a `&str`, with no key to allocate on the message path. A miss is cached as `None`.
    persons: Cache,
    groups: Cache,
    generation: AtomicU64,
    /// uid -> live groups the user belongs to.
    live: RwLock<HashMap<String, BTreeSet<String>>>,
}

impl Channels {
    /// The cache of a channel type (other types are not cached).
    fn cache(&self, channel_type: u8) -> Option<&Cache> {
        match ChannelType::from_u8(channel_type)? {
            ChannelType::Person => Some(&self.persons),
            ChannelType::Group => Some(&self.groups),
        }
    }

    /// The channel, from the cache or the store (`None` when it does not exist).
    pub async fn get(
        &self,
        store: &dyn Store,
        id: &str,
        channel_type: u8,
    ) -> Result<Option<Arc<CachedChannel>>, StoreError> {
        let cache = self.cache(channel_type);
        if let Some(hit) = cache.and_then(|c| c.get(id)) {
            return Ok(hit.clone());
        }
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = store
            .channel(id, channel_type)
            .await?
            .map(|r| Arc::new(CachedChannel::new(r)));
        if let Some(cache) = cache {
            if self.generation.load(Ordering::Acquire) == generation {
                cache.insert(id.to_string(), loaded.clone());
            }
        }
        Ok(loaded)
    }

    /// Forgets a channel after a write and updates the live index from the written record.
    pub fn invalidate(&self, id: &str, channel_type: u8, after: Option<&ChannelRecord>) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = self.cache(channel_type) {
            cache.remove(id);
        }
        if channel_type == ChannelType::Group.as_u8() {
            self.index_live(id, after);
        }
    }

    /// Forgets a channel another node wrote, and indexes it again from the store.
    pub async fn reload(
        &self,
        store: &dyn Store,
        id: &str,
        channel_type: u8,
    ) -> Result<(), StoreError> {
        self.invalidate(id, channel_type, None);
        if channel_type == ChannelType::Group.as_u8() {
            let record = store.channel(id, channel_type).await?;
            self.index_live(id, record.as_ref());
        }
        Ok(())
    }

    /// Rebuilds the live index from every live group (at start).
    pub fn load_live(&self, live: &[ChannelRecord]) {
        for ch in live {
            self.index_live(&ch.flags.channel_id, Some(ch));
        }
    }

    fn index_live(&self, id: &str, record: Option<&ChannelRecord>) {
        let Ok(mut live) = self.live.write() else {
            return;
        };
        live.retain(|_, groups| {
            groups.remove(id);
            !groups.is_empty()
        });
        if let Some(ch) = record.filter(|c| c.flags.live && !c.flags.disband) {
            for uid in &ch.subscribers {
                live.entry(uid.clone()).or_default().insert(id.to_string());
            }
        }
    }

    /// The live groups `uid` belongs to.
    pub fn live_groups_of(&self, uid: &str) -> Vec<String> {
        self.live
            .read()
            .ok()
            .and_then(|l| l.get(uid).map(|g| g.iter().cloned().collect()))
            .unwrap_or_default()
    }
}
