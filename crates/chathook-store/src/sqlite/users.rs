//! Device tokens, user profiles and system uids in the embedded store.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::{EventsFor, Profile, StoreError, TokenRecord, UserStore};

#[async_trait]
impl UserStore for SqliteStore {
    async fn system_uids(&self) -> Result<Vec<String>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT uid FROM system_uids ORDER BY uid")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn change_system_uids(
        &self,
        uids: Vec<String>,
        remove: bool,
    ) -> Result<Vec<String>, StoreError> {
        self.write(move |ctx| {
            let sql = if remove {
                "DELETE FROM system_uids WHERE uid = ?1"
            } else {
                "INSERT OR IGNORE INTO system_uids(uid) VALUES (?1)"
            };
            let mut stmt = ctx.conn.prepare_cached(sql)?;
            for uid in &uids {
                stmt.execute(params![uid])?;
            }
            let mut all = ctx
                .conn
                .prepare_cached("SELECT uid FROM system_uids ORDER BY uid")?;
            let rows = all.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    async fn set_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.write(move |ctx| {
            ctx.conn.execute(
                "INSERT INTO tokens(uid, device_flag, token_hash, device_level) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(uid, device_flag) DO UPDATE SET token_hash = excluded.token_hash,
                 device_level = excluded.device_level",
                params![token.uid, token.device_flag, token.token_hash, token.device_level],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, uid: &str, device_flag: u8) -> Result<Option<TokenRecord>, StoreError> {
        let uid = uid.to_string();
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT token_hash, device_level FROM tokens WHERE uid = ?1 AND device_flag = ?2",
                )?
                .query_row(params![uid, device_flag], |r| {
                    Ok(TokenRecord {
                        uid: uid.clone(),
                        device_flag,
                        token_hash: r.get(0)?,
                        device_level: r.get(1)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn remove_tokens(&self, uid: &str, device_flag: Option<u8>) -> Result<(), StoreError> {
        let uid = uid.to_string();
        self.write(move |ctx| {
            match device_flag {
                Some(flag) => ctx.conn.execute(
                    "DELETE FROM tokens WHERE uid = ?1 AND device_flag = ?2",
                    params![uid, flag],
                )?,
                None => ctx
                    .conn
                    .execute("DELETE FROM tokens WHERE uid = ?1", params![uid])?,
            };
            Ok(())
        })
        .await
    }

    async fn profile(&self, uid: &str) -> Result<Option<Profile>, StoreError> {
        let uid = uid.to_string();
        self.read(move |conn| {
            let row = conn
                .prepare_cached("SELECT name, avatar, custom FROM profiles WHERE uid = ?1")?
                .query_row(params![uid], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .optional()?;
            row.map(|(name, avatar, custom)| {
                let custom = serde_json::from_str(&custom)
                    .map_err(|e| StoreError::Corrupt(format!("profile of {uid}: {e}")))?;
                Ok(Profile {
                    uid: uid.clone(),
                    name,
                    avatar,
                    custom,
                })
            })
            .transpose()
        })
        .await
    }

    async fn set_profile(
        &self,
        profile: Profile,
        events: EventsFor<Profile>,
    ) -> Result<(), StoreError> {
        self.write_logged(move |ctx| {
            let custom = serde_json::to_string(&profile.custom)
                .map_err(|e| StoreError::Storage(e.to_string()))?;
            ctx.conn.execute(
                "INSERT INTO profiles(uid, name, avatar, custom) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(uid) DO UPDATE SET name = excluded.name, avatar = excluded.avatar,
                 custom = excluded.custom",
                params![profile.uid, profile.name, profile.avatar, custom],
            )?;
            let events = events(&profile);
            Ok(((), events))
        })
        .await
    }
}
