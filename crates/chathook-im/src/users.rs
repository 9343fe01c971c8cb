//! Users: device tokens (stored as keyed hashes, `chathook_store::sealing`), logins and kicks, device
//! quits, online status and profiles.

use std::collections::BTreeMap;

use chathook_events::{Event, PresenceReason, ProfileChange};
use chathook_store::{Profile, StoreError, TokenRecord};

use crate::connections::kicked;
use crate::error::reason;
use crate::presence::Kick;
use crate::Im;

/// The primary device level: a login kicks the user's other connections with the same device flag.
pub const DEVICE_LEVEL_PRIMARY: u8 = 1;

impl Im {
    /// Stores a device token. A primary device's new token kicks that device flag's connections.
    pub async fn set_token(
        &self,
        uid: &str,
        token: &str,
        device_flag: u8,
        device_level: u8,
    ) -> Result<(), StoreError> {
        self.store()
            .set_token(TokenRecord {
                uid: uid.to_string(),
                device_flag,
                token_hash: self.sealer().token_hash(token),
                device_level,
            })
            .await?;
        if device_level == DEVICE_LEVEL_PRIMARY {
            self.kick_device(
                uid,
                Some(device_flag),
                None,
                kicked("the device's token changed"),
            );
        }
        Ok(())
    }

    /// The device level of a valid token, `None` when the token is wrong or unknown.
    pub async fn verify_token(
        &self,
        uid: &str,
        token: &str,
        device_flag: u8,
    ) -> Result<Option<u8>, StoreError> {
        let Some(stored) = self.store().token(uid, device_flag).await? else {
            return Ok(None);
        };
        let Some(stale) = self.sealer().verify_token(token, &stored.token_hash) else {
            return Ok(None);
        };
        // Hashed by an older version or under an earlier secrets key: stored again under the current
        // one, now that the token is known.
        if stale {
            let again = TokenRecord {
                token_hash: self.sealer().token_hash(token),
                ..stored.clone()
            };
            if let Err(e) = self.store().set_token(again).await {
                tracing::warn!(error = %e, "cannot store a token's hash again under the current key");
            }
        }
        Ok(Some(stored.device_level))
    }

    /// Logs a device (or, with `None`, every device) out: its tokens are removed and its connections closed.
    pub async fn device_quit(&self, uid: &str, device_flag: Option<u8>) -> Result<(), StoreError> {
        self.store().remove_tokens(uid, device_flag).await?;
        self.kick_device(
            uid,
            device_flag,
            None,
            Kick {
                reason_code: reason::CONNECT_KICK,
                reason: "the device was logged out".into(),
                presence_reason: PresenceReason::Logout,
                notify: true,
                device: None,
            },
        );
        Ok(())
    }

    pub async fn profile(&self, uid: &str) -> Result<Option<Profile>, StoreError> {
        self.store().profile(uid).await
    }

    /// Replaces a profile and appends `user.profile_changed` in the same commit.
    pub async fn set_profile(
        &self,
        uid: &str,
        name: String,
        avatar: String,
        custom: BTreeMap<String, String>,
    ) -> Result<Profile, StoreError> {
        let profile = Profile {
            uid: uid.to_string(),
            name,
            avatar,
            custom,
        };
        self.store()
            .set_profile(
                profile.clone(),
                Box::new(|p: &Profile| {
                    vec![Event::ProfileChanged(ProfileChange {
                        uid: p.uid.clone(),
                        name: p.name.clone(),
                        avatar: p.avatar.clone(),
                        custom: p.custom.clone(),
                    })]
                }),
            )
            .await?;
        self.metrics()
            .events
            .get_or_create(&vec![("type".into(), "user.profile_changed".into())])
            .inc();
        Ok(profile)
    }
}
