//! Secrets at rest: what must never sit in the database in clear (webhook signing secrets, Tencent
//! sign tokens) is sealed with AES-256-GCM under the server's secrets key, bound to where it belongs
//! (the associated data names the record and the field, so a sealed value cannot be moved to another);
//! users' login tokens are stored as keyed hashes (HMAC-SHA-256 under a key derived from it). The key is
//! kept apart from the database (its own file, or a setting); earlier keys may be listed for a
//! rotation: values sealed or hashed under them still open, and callers write them again under the
//! current key. It never logs a secret or a key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of a sealed value (and the format's version).
const SEALED: &str = "sealed:v1:";
/// Bytes of a secrets key.
pub const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;

/// Why a sealed value does not open.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a sealed value is not valid base64 or too short")]
    Malformed,
    #[error(
        "a sealed value opens under none of the secrets keys (secrets.key, secrets.previous_keys)"
    )]
    WrongKey,
    #[error("a secrets key must be {KEY_BYTES} bytes in standard base64")]
    BadKey,
}

/// One secrets key: its cipher and the key its token hashes are made with.
#[derive(Clone)]
struct Key {
    cipher: Aes256Gcm,
    /// HMAC key for users' token hashes, derived so that the same bytes never serve two purposes.
    token_key: [u8; 32],
}

impl Key {
    fn new(bytes: &[u8; KEY_BYTES]) -> Key {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(bytes).expect("HMAC takes any key");
        mac.update(b"chathook user token hashes v1");
        Key {
            cipher: Aes256Gcm::new(bytes.into()),
            token_key: mac.finalize().into_bytes().into(),
        }
    }
}

/// The server's secrets keys: the current one seals and hashes; earlier ones only open and verify.
#[derive(Clone)]
pub struct Sealer {
    current: Key,
    previous: Vec<Key>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer({} previous keys)", self.previous.len())
    }
}

/// What opening a stored value gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub value: String,
    /// Stored in clear or under an earlier key: write it again.
    pub stale: bool,
}

impl Sealer {
    /// A sealer from the current key and earlier ones, each as standard base64.
    pub fn from_base64(current: &str, previous: &[String]) -> Result<Sealer, SealError> {
        let key = |b64: &str| -> Result<Key, SealError> {
            let bytes = STANDARD.decode(b64.trim()).map_err(|_| SealError::BadKey)?;
            let bytes: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| SealError::BadKey)?;
            Ok(Key::new(&bytes))
        };
        Ok(Sealer {
            current: key(current)?,
            previous: previous.iter().map(|k| key(k)).collect::<Result<_, _>>()?,
        })
    }

    /// A new random key, as standard base64.
    pub fn generate_key() -> String {
        let mut bytes = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// A short public fingerprint of the current key (to tell whether nodes share one; it reveals
    /// nothing of the key).
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.current.token_key);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `value` for the place `context` names (e.g. `webhook:<id>:secret`).
    pub fn seal(&self, context: &str, value: &str) -> String {
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: value.as_bytes(),
            aad: context.as_bytes(),
        };
        let sealed = self
            .current
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .expect("AES-GCM seals any message of this size");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED}{}", STANDARD.encode(bytes))
    }

    /// Opens a stored value sealed for `context`; a value stored in clear (before sealing existed) is
    /// taken as it is, and marked stale.
    pub fn open(&self, context: &str, stored: &str) -> Result<Opened, SealError> {
        let Some(b64) = stored.strip_prefix(SEALED) else {
            return Ok(Opened {
                value: stored.to_string(),
                stale: true,
            });
        };
        let bytes = STANDARD.decode(b64).map_err(|_| SealError::Malformed)?;
        if bytes.len() < NONCE_BYTES + 16 {
            return Err(SealError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        for (i, key) in std::iter::once(&self.current)
            .chain(&self.previous)
            .enumerate()
        {
            let payload = Payload {
                msg: sealed,
                aad: context.as_bytes(),
            };
            if let Ok(clear) = key.cipher.decrypt(Nonce::from_slice(nonce), payload) {
                let value = String::from_utf8(clear).map_err(|_| SealError::Malformed)?;
                return Ok(Opened {
                    value,
                    stale: i > 0,
                });
            }
        }
        Err(SealError::WrongKey)
    }

    /// Whether `stored` is a sealed value (not clear text).
    pub fn is_sealed(stored: &str) -> bool {
        stored.starts_with(SEALED)
    }

    /// The hash a user's token is stored as (keyed under the current key).
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        keyed_hash(&self.current.token_key, token)
    }

    /// Whether `token` matches a stored hash: under the current key (`Some(false)`), or under an
    /// earlier key or as the unkeyed SHA-256 of older versions (`Some(true)`: stale, store it again);
    /// `None` when it does not match.
    pub fn verify_token(&self, token: &str, stored: &[u8]) -> Option<bool> {
        if same_bytes(&self.token_hash(token), stored) {
            return Some(false);
        }
        let earlier = self
            .previous
            .iter()
            .any(|k| same_bytes(&keyed_hash(&k.token_key, token), stored));
        let unkeyed = same_bytes(&Sha256::digest(token.as_bytes()), stored);
        (earlier || unkeyed).then_some(true)
    }
}

fn keyed_hash(key: &[u8; 32], token: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Compares two byte strings in time independent of where they differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_base64(&Sealer::generate_key(), &[]).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_under_its_key_and_in_its_place() {
        let s = sealer();
        let sealed = s.seal("webhook:ep_1:secret", "whsec_abc");
        assert!(Sealer::is_sealed(&sealed));
        assert!(!sealed.contains("whsec_abc"));
        assert_eq!(
            s.open("webhook:ep_1:secret", &sealed).unwrap(),
            Opened {
                value: "whsec_abc".into(),
                stale: false
            }
        );
        assert_eq!(
            s.open("webhook:ep_2:secret", &sealed),
            Err(SealError::WrongKey)
        );
        assert_eq!(
            sealer().open("webhook:ep_1:secret", &sealed),
            Err(SealError::WrongKey)
        );
        // Two seals of one value differ (a fresh nonce each).
        assert_ne!(sealed, s.seal("webhook:ep_1:secret", "whsec_abc"));
    }

    #[test]
    fn after_a_rotation_old_values_open_and_are_marked_stale() {
        let old_key = Sealer::generate_key();
        let old = Sealer::from_base64(&old_key, &[]).unwrap();
        let sealed = old.seal("c", "v");
        let hash = old.token_hash("t");
        let rotated = Sealer::from_base64(&Sealer::generate_key(), &[old_key]).unwrap();
        assert_eq!(
            rotated.open("c", &sealed).unwrap(),
            Opened {
                value: "v".into(),
                stale: true
            }
        );
        assert_eq!(rotated.verify_token("t", &hash), Some(true));
        assert_eq!(rotated.verify_token("x", &hash), None);
        assert_eq!(
            rotated.verify_token("t", &rotated.token_hash("t")),
            Some(false)
        );
    }

    #[test]
    fn clear_values_and_unkeyed_hashes_of_older_versions_are_accepted_as_stale() {
        let s = sealer();
        assert_eq!(
            s.open("c", "whsec_plain").unwrap(),
            Opened {
                value: "whsec_plain".into(),
                stale: true
            }
        );
        let unkeyed = Sha256::digest(b"t").to_vec();
        assert_eq!(s.verify_token("t", &unkeyed), Some(true));
        assert_ne!(s.token_hash("t"), unkeyed, "the stored hash is keyed");
    }

    #[test]
    fn a_key_must_be_32_bytes_of_base64() {
        assert_eq!(
            Sealer::from_base64("c2hvcnQ=", &[]).unwrap_err(),
            SealError::BadKey
        );
        assert_eq!(
            Sealer::from_base64("not base64!", &[]).unwrap_err(),
            SealError::BadKey
        );
    }
}
