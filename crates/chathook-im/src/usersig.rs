//! Tencent Cloud Chat's UserSig (TLS-Sig API v2), accepted at `connect` in place of a registered token
//! when `tencent.secret_key` is set: URL-safe base64 (`*`, `-`, `_` for `+`, `/`, `=`) of a zlib stream
//! holding a JSON document whose `TLS.sig` is the base64 HMAC-SHA256, keyed by the secret key, of the
//! lines `TLS.identifier:`, `TLS.sdkappid:`, `TLS.time:`, `TLS.expire:` (and `TLS.userbuf:` when
//! present), each ending in a newline. Verified by inflating and parsing, never by comparing bytes
//! (generators differ in compression and key order).

use std::io::Read;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// The largest UserSig accepted, encoded and inflated (real ones are a few hundred bytes).
const MAX_SIG_BYTES: usize = 4096;

/// The app and key UserSigs are checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct UserSigKey {
    pub sdk_app_id: u64,
    pub secret_key: String,
}

impl std::fmt::Debug for UserSigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the key never reaches a log
        f.debug_struct("UserSigKey")
            .field("sdk_app_id", &self.sdk_app_id)
            .field("secret_key", &"********")
            .finish()
    }
}

/// Why a UserSig was refused; the message is what the client is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserSigError {
    #[error("the UserSig is malformed: {0}")]
    Malformed(&'static str),
    #[error("the UserSig expired at {expired_at} (unix seconds)")]
    Expired { expired_at: i64 },
    #[error("the UserSig was made for another app (SDKAppID {0})")]
    OtherApp(u64),
    #[error("the UserSig was made for another user")]
    OtherIdentifier,
    #[error("the UserSig's signature does not match")]
    BadSignature,
}

#[derive(Deserialize)]
struct Document {
    #[serde(rename = "TLS.ver")]
    version: String,
    #[serde(rename = "TLS.identifier")]
    identifier: String,
    #[serde(rename = "TLS.sdkappid")]
    sdk_app_id: u64,
    #[serde(rename = "TLS.expire")]
    expire: i64,
    #[serde(rename = "TLS.time")]
    time: i64,
    #[serde(rename = "TLS.sig")]
    sig: String,
    #[serde(rename = "TLS.userbuf")]
    userbuf: Option<String>,
}

impl UserSigKey {
    /// Checks `user_sig` for `uid` at `now` (unix seconds).
    pub fn verify(&self, user_sig: &str, uid: &str, now: i64) -> Result<(), UserSigError> {
        if user_sig.len() > MAX_SIG_BYTES {
            return Err(UserSigError::Malformed("too long"));
        }
        let standard: String = user_sig
            .chars()
            .map(|c| match c {
                '*' => '+',
                '-' => '/',
                '_' => '=',
                c => c,
            })
            .collect();
        let compressed = STANDARD
            .decode(standard)
            .map_err(|_| UserSigError::Malformed("not URL-safe base64"))?;
        let mut json = Vec::new();
        flate2::read::ZlibDecoder::new(compressed.as_slice())
            .take(MAX_SIG_BYTES as u64 + 1)
            .read_to_end(&mut json)
            .map_err(|_| UserSigError::Malformed("not a zlib stream"))?;
        if json.len() > MAX_SIG_BYTES {
            return Err(UserSigError::Malformed("too long"));
        }
        let doc: Document = serde_json::from_slice(&json)
            .map_err(|_| UserSigError::Malformed("not a TLS-Sig v2 document"))?;
        if doc.version != "2.0" {
            return Err(UserSigError::Malformed("not version 2.0"));
        }
        let mut lines = format!(
            "TLS.identifier:{}\nTLS.sdkappid:{}\nTLS.time:{}\nTLS.expire:{}\n",
            doc.identifier, doc.sdk_app_id, doc.time, doc.expire
        );
        if let Some(userbuf) = &doc.userbuf {
            lines.push_str(&format!("TLS.userbuf:{userbuf}\n"));
        }
        let claimed = STANDARD
            .decode(&doc.sig)
            .map_err(|_| UserSigError::Malformed("TLS.sig is not base64"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret_key.as_bytes())
            .map_err(|_| UserSigError::BadSignature)?;
        mac.update(lines.as_bytes());
        mac.verify_slice(&claimed)
            .map_err(|_| UserSigError::BadSignature)?;
        // Signed by our key: now its claims can be believed.
        if doc.sdk_app_id != self.sdk_app_id {
            return Err(UserSigError::OtherApp(doc.sdk_app_id));
        }
        if doc.identifier != uid {
            return Err(UserSigError::OtherIdentifier);
        }
        let expired_at = doc.time.saturating_add(doc.expire);
        if now > expired_at {
            return Err(UserSigError::Expired { expired_at });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

    fn key() -> UserSigKey {
        UserSigKey {
            sdk_app_id: 1_400_000_000,
            secret_key: KEY.into(),
        }
    }

    /// A UserSig made as the documented algorithm says (the integration tests use Tencent's own
    /// generator).
    fn make(app: u64, uid: &str, time: i64, expire: i64, secret: &str) -> String {
        let lines = format!(
            "TLS.identifier:{uid}\nTLS.sdkappid:{app}\nTLS.time:{time}\nTLS.expire:{expire}\n"
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(lines.as_bytes());
        let sig = STANDARD.encode(mac.finalize().into_bytes());
        let doc = serde_json::json!({"TLS.ver": "2.0", "TLS.identifier": uid, "TLS.sdkappid": app,
            "TLS.expire": expire, "TLS.time": time, "TLS.sig": sig});
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(doc.to_string().as_bytes()).unwrap();
        STANDARD
            .encode(z.finish().unwrap())
            .replace('+', "*")
            .replace('/', "-")
            .replace('=', "_")
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let now = 1_700_000_000;
        let good = make(1_400_000_000, "alice", now - 10, 86_400, KEY);
        assert_eq!(key().verify(&good, "alice", now), Ok(()));
        assert_eq!(
            key().verify(&good, "bob", now),
            Err(UserSigError::OtherIdentifier)
        );
        // the last second of validity, then one past it
        assert_eq!(key().verify(&good, "alice", now - 10 + 86_400), Ok(()));
        assert_eq!(
            key().verify(&good, "alice", now - 10 + 86_401),
            Err(UserSigError::Expired {
                expired_at: now - 10 + 86_400
            })
        );
        let other_app = make(1_400_000_001, "alice", now, 60, KEY);
        assert_eq!(
            key().verify(&other_app, "alice", now),
            Err(UserSigError::OtherApp(1_400_000_001))
        );
        let other_key = make(1_400_000_000, "alice", now, 60, "another key");
        assert_eq!(
            key().verify(&other_key, "alice", now),
            Err(UserSigError::BadSignature)
        );
        assert!(matches!(
            key().verify("not a sig", "alice", now),
            Err(UserSigError::Malformed(_))
        ));
        assert!(matches!(
            key().verify(&"A".repeat(MAX_SIG_BYTES + 1), "alice", now),
            Err(UserSigError::Malformed(_))
        ));
    }

    #[test]
    fn the_key_is_not_in_debug_output() {
        assert!(!format!("{:?}", key()).contains(KEY));
    }
}
