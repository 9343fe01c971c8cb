//! Channels, their subscribers and their blacklists and whitelists in PostgreSQL. A write locks the
//! channel's row first, so two nodes changing one channel take turns and each sees the other's result.

use async_trait::async_trait;
use tokio_postgres::GenericClient;

use super::{pg_error, PgStore};
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
async fn write_flags(c: &impl GenericClient, flags: &ChannelFlags) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO channels(channel_id, channel_type, large, ban, disband, live)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (channel_id, channel_type) DO UPDATE SET large = excluded.large,
         ban = excluded.ban, disband = excluded.disband, live = excluded.live",
        &[
            &flags.channel_id,
            &i16::from(flags.channel_type),
            &flags.large,
            &flags.ban,
            &flags.disband,
            &flags.live,
        ],
    )
    .await
    .map_err(pg_error)?;
    Ok(())
}

/// The channel with its lists; with `lock`, its row stays locked until the transaction ends.
async fn load_channel(
    c: &impl GenericClient,
    id: &str,
    channel_type: u8,
    lock: bool,
) -> Result<Option<ChannelRecord>, StoreError> {
    let sql = if lock {
        "SELECT large, ban, disband, live FROM channels
         WHERE channel_id = $1 AND channel_type = $2 FOR UPDATE"
    } else {
        "SELECT large, ban, disband, live FROM channels WHERE channel_id = $1 AND channel_type = $2"
    };
    let ty = i16::from(channel_type);
    let Some(row) = c.query_opt(sql, &[&id, &ty]).await.map_err(pg_error)? else {
        return Ok(None);
    };
    let flags = ChannelFlags {
        channel_id: id.to_string(),
        channel_type,
        large: row.get(0),
        ban: row.get(1),
        disband: row.get(2),
        live: row.get(3),
    };
    Ok(Some(ChannelRecord {
        flags,
        subscribers: uid_list(c, "subscribers", id, channel_type).await?,
        blacklist: uid_list(c, "blacklist", id, channel_type).await?,
        whitelist: uid_list(c, "whitelist", id, channel_type).await?,
    }))
}

/// A list's uids in the order they were added.
async fn uid_list(
    c: &impl GenericClient,
    table: &str,
    id: &str,
    channel_type: u8,
) -> Result<Vec<String>, StoreError> {
    let rows = c
        .query(
            &format!(
                "SELECT uid FROM {table} WHERE channel_id = $1 AND channel_type = $2 ORDER BY seq"
            ),
            &[&id, &i16::from(channel_type)],
        )
        .await
        .map_err(pg_error)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Applies a subscriber change; returns (added, removed).
async fn apply_subscribers(
    c: &impl GenericClient,
    id: &str,
    channel_type: u8,
    change: &SubscriberChange,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let ty = i16::from(channel_type);
    let before = uid_list(c, "subscribers", id, channel_type).await?;
    let mut added = Vec::new();
    let mut removed = Vec::new();
    match change {
        SubscriberChange::Add { uids, reset } => {
            if *reset {
                c.execute(
                    "DELETE FROM subscribers WHERE channel_id = $1 AND channel_type = $2",
                    &[&id, &ty],
                )
                .await
                .map_err(pg_error)?;
                removed = before
                    .iter()
                    .filter(|u| !uids.contains(u))
                    .cloned()
                    .collect();
            }
            for uid in uids {
                let fresh = c
                    .execute(
                        "INSERT INTO subscribers(channel_id, channel_type, uid) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                        &[&id, &ty, uid],
                    )
                    .await
                    .map_err(pg_error)?
                    > 0;
                if fresh && !before.contains(uid) && !added.contains(uid) {
                    added.push(uid.clone());
                }
            }
        }
        SubscriberChange::Remove { uids } => {
            for uid in uids {
                let gone = c
                    .execute(
                        "DELETE FROM subscribers WHERE channel_id = $1 AND channel_type = $2 AND uid = $3",
                        &[&id, &ty, uid],
                    )
                    .await
                    .map_err(pg_error)?;
                if gone > 0 {
                    removed.push(uid.clone());
                }
            }
        }
    }
    Ok((added, removed))
}

#[async_trait]
impl ChannelStore for PgStore {
    async fn channel(
        &self,
        id: &str,
        channel_type: u8,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let client = self.client().await?;
        load_channel(&**client, id, channel_type, false).await
    }

    async fn live_channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        let client = self.client().await?;
        let ids = client
            .query(
                "SELECT channel_id, channel_type FROM channels WHERE live",
                &[],
            )
            .await
            .map_err(pg_error)?;
        let mut out = Vec::with_capacity(ids.len());
        for row in ids {
            let (id, ty): (String, i16) = (row.get(0), row.get(1));
            if let Some(ch) = load_channel(&**client, &id, ty as u8, false).await? {
                out.push(ch);
            }
        }
        Ok(out)
    }

    async fn upsert_channel(
        &self,
        flags: ChannelFlags,
        subscribers: SubscriberChange,
        events: EventsFor<ChannelDiff>,
    ) -> Result<ChannelDiff, StoreError> {
        self.write_with(move |tx| {
            Box::pin(async move {
                let (id, ty) = (flags.channel_id.clone(), flags.channel_type);
                let before = load_channel(tx, &id, ty, true).await?;
                write_flags(tx, &flags).await?;
                let (added, removed) = apply_subscribers(tx, &id, ty, &subscribers).await?;
                let channel = load_channel(tx, &id, ty, false)
                    .await?
                    .ok_or_else(|| StoreError::Storage("channel vanished during upsert".into()))?;
                let diff = ChannelDiff::of_upsert(before.as_ref(), added, removed, channel);
                let caused = events(&diff);
                Ok((diff, caused))
            })
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
        self.write_with(move |tx| {
            Box::pin(async move {
                if load_channel(tx, &id, channel_type, true).await?.is_none() {
                    return Ok((None, Vec::new()));
                }
                let (added, removed) = apply_subscribers(tx, &id, channel_type, &change).await?;
                let channel = load_channel(tx, &id, channel_type, false)
                    .await?
                    .ok_or_else(|| StoreError::Storage("channel vanished".into()))?;
                let diff = ChannelDiff::of_subscribers(added, removed, channel);
                let caused = events(&diff);
                Ok((Some(diff), caused))
            })
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
        self.write_with(move |tx| {
            Box::pin(async move {
                if load_channel(tx, &id, channel_type, true).await?.is_none() {
                    if !create_missing {
                        return Ok((None, Vec::new()));
                    }
                    write_flags(tx, &ChannelFlags::new(id.as_str(), channel_type)).await?;
                }
                let table = table(list);
                let ty = i16::from(channel_type);
                let (uids, delete) = match &change {
                    ListChange::Add(u) => (u, false),
                    ListChange::Remove(u) => (u, true),
                    ListChange::Set(u) => {
                        tx.execute(
                            &format!("DELETE FROM {table} WHERE channel_id = $1 AND channel_type = $2"),
                            &[&id, &ty],
                        )
                        .await
                        .map_err(pg_error)?;
                        (u, false)
                    }
                };
                let sql = if delete {
                    format!(
                        "DELETE FROM {table} WHERE channel_id = $1 AND channel_type = $2 AND uid = $3"
                    )
                } else {
                    format!(
                        "INSERT INTO {table}(channel_id, channel_type, uid) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING"
                    )
                };
                for uid in uids {
                    tx.execute(&sql, &[&id, &ty, uid]).await.map_err(pg_error)?;
                }
                Ok((load_channel(tx, &id, channel_type, false).await?, Vec::new()))
            })
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
        self.write_with(move |tx| {
            Box::pin(async move {
                let Some(before) = load_channel(tx, &id, channel_type, true).await? else {
                    return Ok((false, Vec::new()));
                };
                let ty = i16::from(channel_type);
                for table in ["subscribers", "blacklist", "whitelist"] {
                    tx.execute(
                        &format!("DELETE FROM {table} WHERE channel_id = $1 AND channel_type = $2"),
                        &[&id, &ty],
                    )
                    .await
                    .map_err(pg_error)?;
                }
                tx.execute(
                    "UPDATE channels SET disband = TRUE WHERE channel_id = $1 AND channel_type = $2",
                    &[&id, &ty],
                )
                .await
                .map_err(pg_error)?;
                Ok((true, events(&before)))
            })
        })
        .await
    }
}
