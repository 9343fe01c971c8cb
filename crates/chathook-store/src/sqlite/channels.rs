//! Channels, their subscribers and their blacklists and whitelists in the embedded store.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::SqliteStore;
use crate::{
    ChannelDiff, ChannelFlags, ChannelRecord, ChannelStore, EventsFor, ListChange, StoreError,
    SubscriberChange, UidList,
};

fn table(list: UidList) -> &'static str {
    match list {
        UidList::Blacklist => "blacklist",
        UidList::Whitelist => "whitelist",
    }
}

/// Inserts or updates a channel's flags.
fn write_flags(conn: &Connection, flags: &ChannelFlags) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO channels(channel_id, channel_type, large, ban, disband, live)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(channel_id, channel_type) DO UPDATE SET large = excluded.large,
         ban = excluded.ban, disband = excluded.disband, live = excluded.live",
    )?
    .execute(params![
        flags.channel_id,
        flags.channel_type,
        flags.large,
        flags.ban,
        flags.disband,
        flags.live
    ])?;
    Ok(())
}

fn load_channel(
    conn: &Connection,
    id: &str,
    channel_type: u8,
) -> Result<Option<ChannelRecord>, StoreError> {
    let flags = conn
        .prepare_cached(
            "SELECT large, ban, disband, live FROM channels WHERE channel_id = ?1 AND channel_type = ?2",
        )?
        .query_row(params![id, channel_type], |r| {
            Ok(ChannelFlags {
                channel_id: id.to_string(),
                channel_type,
                large: r.get(0)?,
                ban: r.get(1)?,
                disband: r.get(2)?,
                live: r.get(3)?,
            })
        })
        .optional()?;
    let Some(flags) = flags else { return Ok(None) };
    let subscribers = uid_list(conn, "subscribers", id, channel_type)?;
    let blacklist = uid_list(conn, "blacklist", id, channel_type)?;
    let whitelist = uid_list(conn, "whitelist", id, channel_type)?;
    Ok(Some(ChannelRecord {
        flags,
        subscribers,
        blacklist,
        whitelist,
    }))
}

fn uid_list(
    conn: &Connection,
    table: &str,
    id: &str,
    channel_type: u8,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT uid FROM {table} WHERE channel_id = ?1 AND channel_type = ?2 ORDER BY rowid"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![id, channel_type], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Applies a subscriber change; returns (added, removed).
fn apply_subscribers(
    conn: &Connection,
    id: &str,
    channel_type: u8,
    change: &SubscriberChange,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let before = uid_list(conn, "subscribers", id, channel_type)?;
    let mut added = Vec::new();
    let mut removed = Vec::new();
    match change {
        SubscriberChange::Add { uids, reset } => {
            if *reset {
                conn.execute(
                    "DELETE FROM subscribers WHERE channel_id = ?1 AND channel_type = ?2",
                    params![id, channel_type],
                )?;
                removed = before
                    .iter()
                    .filter(|u| !uids.contains(u))
                    .cloned()
                    .collect();
            }
            let mut insert = conn.prepare_cached(
                "INSERT OR IGNORE INTO subscribers(channel_id, channel_type, uid) VALUES (?1, ?2, ?3)",
            )?;
            for uid in uids {
                let fresh = insert.execute(params![id, channel_type, uid])? > 0;
                if fresh && !before.contains(uid) && !added.contains(uid) {
                    added.push(uid.clone());
                }
            }
        }
        SubscriberChange::Remove { uids } => {
            let mut delete = conn.prepare_cached(
                "DELETE FROM subscribers WHERE channel_id = ?1 AND channel_type = ?2 AND uid = ?3",
            )?;
            for uid in uids {
                if delete.execute(params![id, channel_type, uid])? > 0 {
                    removed.push(uid.clone());
                }
            }
        }
    }
    Ok((added, removed))
}

#[async_trait]
impl ChannelStore for SqliteStore {
    async fn channel(
        &self,
        id: &str,
        channel_type: u8,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let id = id.to_string();
        self.read(move |conn| load_channel(conn, &id, channel_type))
            .await
    }

    async fn live_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        self.read(|conn| {
            let ids = conn
                .prepare("SELECT channel_id, channel_type FROM channels WHERE live = 1")?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u8>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut out = Vec::with_capacity(ids.len());
            for (id, ty) in ids {
                if let Some(ch) = load_channel(conn, &id, ty)? {
                    out.push(ch);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn upsert_channel(
        &self,
        flags: ChannelFlags,
        subscribers: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<ChannelDiff, StoreError> {
        self.write_logged(move |ctx| {
            let before = load_channel(ctx.conn, &flags.channel_id, flags.channel_type)?;
            write_flags(ctx.conn, &flags)?;
            let (added, removed) = apply_subscribers(
                ctx.conn,
                &flags.channel_id,
                flags.channel_type,
                &subscribers,
            )?;
            let channel = load_channel(ctx.conn, &flags.channel_id, flags.channel_type)?
                .ok_or_else(|| StoreError::Storage("channel vanished during upsert".into()))?;
            let diff = ChannelDiff::of_upsert(before.as_ref(), added, removed, channel);
            let events = events(&diff);
            Ok((diff, events))
        })
        .await
    }

    async fn change_subscribers(
        &self,
        id: &str,
        channel_type: u8,
        change: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<Option<ChannelDiff>, StoreError> {
        let id = id.to_string();
        self.write_logged(move |ctx| {
            if load_channel(ctx.conn, &id, channel_type)?.is_none() {
                return Ok((None, Vec::new()));
            }
            let (added, removed) = apply_subscribers(ctx.conn, &id, channel_type, &change)?;
            let channel = load_channel(ctx.conn, &id, channel_type)?
                .ok_or_else(|| StoreError::Storage("channel vanished".into()))?;
            let diff = ChannelDiff::of_subscribers(added, removed, channel);
            let events = events(&diff);
            Ok((Some(diff), events))
        })
        .await
    }

    async fn change_list(
        &self,
        id: &str,
        channel_type: u8,
        list: UidList,
        change: ListChange,
        create_missing: bool,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let id = id.to_string();
        self.write(move |ctx| {
            if load_channel(ctx.conn, &id, channel_type)?.is_none() {
                if !create_missing {
                    return Ok(None);
                }
                write_flags(ctx.conn, &ChannelFlags::new(id.as_str(), channel_type))?;
            }
            let table = table(list);
            let (uids, delete) = match &change {
                ListChange::Add(u) => (u, false),
                ListChange::Remove(u) => (u, true),
                ListChange::Set(u) => {
                    ctx.conn.execute(
                        &format!("DELETE FROM {table} WHERE channel_id = ?1 AND channel_type = ?2"),
                        params![id, channel_type],
                    )?;
                    (u, false)
                }
            };
            let sql = if delete {
                format!("DELETE FROM {table} WHERE channel_id = ?1 AND channel_type = ?2 AND uid = ?3")
            } else {
                format!(
                    "INSERT OR IGNORE INTO {table}(channel_id, channel_type, uid) VALUES (?1, ?2, ?3)"
                )
            };
            let mut stmt = ctx.conn.prepare_cached(&sql)?;
            for uid in uids {
                stmt.execute(params![id, channel_type, uid])?;
            }
            load_channel(ctx.conn, &id, channel_type)
        })
        .await
    }

    async fn delete_channel(
        &self,
        id: &str,
        channel_type: u8,
        events: EventsFor<ChannelRecord>,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write_logged(move |ctx| {
            let Some(before) = load_channel(ctx.conn, &id, channel_type)? else {
                return Ok((false, Vec::new()));
            };
            for table in ["subscribers", "blacklist", "whitelist"] {
                ctx.conn.execute(
                    &format!("DELETE FROM {table} WHERE channel_id = ?1 AND channel_type = ?2"),
                    params![id, channel_type],
                )?;
            }
            ctx.conn.execute(
                "UPDATE channels SET disband = 1 WHERE channel_id = ?1 AND channel_type = ?2",
                params![id, channel_type],
            )?;
            let events = events(&before);
            Ok((true, events))
        })
        .await
    }
}
