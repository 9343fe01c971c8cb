//! Device tokens, user profiles and system uids in PostgreSQL.

use async_trait::async_trait;

use super::{pg_error, PgStore};
use crate::{EventsFor, Profile, StoreError, TokenRecord, UserStore};

#[async_trait]
impl UserStore for PgStore {
    async fn system_uids(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT uid FROM system_uids ORDER BY uid", &[])
            .await
            .map_err(pg_error)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn change_system_uids(
        &self,
        uids: Vec<String>,
        remove: bool,
    ) -> Result<Vec<String>, StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let sql = if remove {
                    "DELETE FROM system_uids WHERE uid = ANY($1)"
                } else {
                    "INSERT INTO system_uids(uid) SELECT * FROM UNNEST($1::TEXT[]) ON CONFLICT DO NOTHING"
                };
                tx.execute(sql, &[&uids]).await.map_err(pg_error)?;
                Ok(Vec::new())
            })
        })
        .await?;
        self.system_uids().await
    }

    async fn set_token(&self, token: TokenRecord) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO tokens(uid, device_flag, token_hash, device_level) VALUES ($1, $2, $3, $4)
             ON CONFLICT (uid, device_flag) DO UPDATE SET token_hash = excluded.token_hash,
             device_level = excluded.device_level",
            vec![
                Box::new(token.uid),
                Box::new(i16::from(token.device_flag)),
                Box::new(token.token_hash),
                Box::new(i16::from(token.device_level)),
            ],
        )
        .await?;
        Ok(())
    }

    async fn token(&self, uid: &str, device_flag: u8) -> Result<Option<TokenRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT token_hash, device_level FROM tokens WHERE uid = $1 AND device_flag = $2",
                &[&uid, &i16::from(device_flag)],
            )
            .await
            .map_err(pg_error)?;
        Ok(row.map(|r| TokenRecord {
            uid: uid.to_string(),
            device_flag,
            token_hash: r.get(0),
            device_level: r.get::<_, i16>(1) as u8,
        }))
    }

    async fn remove_tokens(&self, uid: &str, device_flag: Option<u8>) -> Result<(), StoreError> {
        // every device flag when none is given
        self.execute(
            "DELETE FROM tokens WHERE uid = $1 AND ($2::SMALLINT IS NULL OR device_flag = $2)",
            vec![
                Box::new(uid.to_string()),
                Box::new(device_flag.map(i16::from)),
            ],
        )
        .await?;
        Ok(())
    }

    async fn profile(&self, uid: &str) -> Result<Option<Profile>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT name, avatar, custom FROM profiles WHERE uid = $1",
                &[&uid],
            )
            .await
            .map_err(pg_error)?;
        row.map(|r| {
            let custom = serde_json::from_value(r.get(2))
                .map_err(|e| StoreError::Corrupt(format!("profile of {uid}: {e}")))?;
            Ok(Profile {
                uid: uid.to_string(),
                name: r.get(0),
                avatar: r.get(1),
                custom,
            })
        })
        .transpose()
    }

    async fn set_profile(
        &self,
        profile: Profile,
        events: EventsFor<Profile>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let custom = serde_json::to_value(&profile.custom)
                    .map_err(|e| StoreError::Storage(e.to_string()))?;
                tx.execute(
                    "INSERT INTO profiles(uid, name, avatar, custom) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (uid) DO UPDATE SET name = excluded.name, avatar = excluded.avatar,
                     custom = excluded.custom",
                    &[&profile.uid, &profile.name, &profile.avatar, &custom],
                )
                .await
                .map_err(pg_error)?;
                Ok(events(&profile))
            })
        })
        .await?;
        Ok(())
    }
}
