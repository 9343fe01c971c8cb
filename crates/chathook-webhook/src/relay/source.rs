//! A relay source: another IM server (WuKongIM or a Tencent Cloud Chat app) whose webhooks chathook
//! takes in. The model, its ingest path secret, and its document as the store keeps it (the path
//! secrets and the Tencent sign token sealed, each bound to the source and the field).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chathook_store::sealing::{SealError, Sealer};
use ipnet::IpNet;
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Which server's webhooks a source takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// WuKongIM's `webhook.httpAddr` (`POST ?event=`).
    Wukongim,
    /// A Tencent Cloud Chat app's callback URL.
    Tencent,
}

/// A relay source as stored (secrets in clear here; sealed only in the document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    pub id: String,
    pub kind: SourceKind,
    pub description: String,
    /// The ingest URL's path secret: the credential of every ingest request.
    pub secret: String,
    /// The path secret before the last rotation and until when (unix ms) it still works.
    #[serde(default)]
    pub previous_secret: Option<(String, i64)>,
    /// Tencent: the callback token that `Sign` is made with.
    #[serde(default)]
    pub sign_token: Option<String>,
    /// Tencent: the only `SdkAppid` taken (`None`: any).
    #[serde(default)]
    pub sdk_app_id: Option<u64>,
    /// When not empty, the only networks ingest requests may come from.
    #[serde(default)]
    pub allowed_networks: Vec<IpNet>,
    /// Tencent: how far `RequestTime` may be from now, in seconds.
    pub max_skew_s: u64,
    /// Tencent: how long a before-send callback may wait for the hook's verdict (under Tencent's 2 s).
    #[serde(default = "default_hook_deadline_ms")]
    pub hook_deadline_ms: u64,
    /// Unix ms.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Tencent's `RequestTime` window by default, in seconds.
pub const DEFAULT_MAX_SKEW_S: u64 = 60;

/// How long a before-send callback waits for the hook by default, in milliseconds.
pub const DEFAULT_HOOK_DEADLINE_MS: u64 = 1_500;

fn default_hook_deadline_ms() -> u64 {
    DEFAULT_HOOK_DEADLINE_MS
}

impl Source {
    /// Whether `given` is this source's path secret now (the previous one until its grace ends);
    /// compared in constant time.
    pub fn admits_secret(&self, given: &str, now_ms: i64) -> bool {
        use subtle::ConstantTimeEq;
        let current: bool = self.secret.as_bytes().ct_eq(given.as_bytes()).into();
        let previous = self.previous_secret.as_ref().is_some_and(|(old, until)| {
            *until > now_ms && bool::from(old.as_bytes().ct_eq(given.as_bytes()))
        });
        current | previous
    }

    /// Whether a Tencent request signed `sign` at `request_time` (unix seconds) is good now: the
    /// source's token makes that `Sign` (compared in constant time) and the time is within
    /// `max_skew_s`. Without a token every request is good.
    pub fn admits_sign(
        &self,
        sign: Option<&str>,
        request_time: Option<&str>,
        now_ms: i64,
    ) -> Result<(), SignRefusal> {
        use subtle::ConstantTimeEq;
        let Some(token) = &self.sign_token else {
            return Ok(());
        };
        let (Some(sign), Some(time)) = (sign, request_time) else {
            return Err(SignRefusal::Missing);
        };
        let time: i64 = time.parse().map_err(|_| SignRefusal::Wrong)?;
        let expected = crate::signing::tencent_sign(token, time);
        if !bool::from(
            expected
                .as_bytes()
                .ct_eq(sign.to_ascii_lowercase().as_bytes()),
        ) {
            return Err(SignRefusal::Wrong);
        }
        if (now_ms / 1000 - time).unsigned_abs() > self.max_skew_s {
            return Err(SignRefusal::Stale);
        }
        Ok(())
    }

    /// Whether a request from `ip` may reach this source.
    pub fn admits_peer(&self, ip: std::net::IpAddr) -> bool {
        self.allowed_networks.is_empty() || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }
}

/// Why a Tencent request's signature is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignRefusal {
    /// No `Sign` or no `RequestTime`.
    Missing,
    /// `Sign` is not the token's.
    Wrong,
    /// `RequestTime` is further from now than `max_skew_s`.
    Stale,
}

impl SignRefusal {
    pub fn reason(self) -> &'static str {
        match self {
            SignRefusal::Missing => "sign_missing",
            SignRefusal::Wrong => "sign_wrong",
            SignRefusal::Stale => "sign_stale",
        }
    }
}

/// A new path secret: 32 random bytes, URL-safe base64 (43 characters).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn context(id: &str, field: &str) -> String {
    format!("relay:{id}:{field}")
}

/// The document to store for `s`.
pub(crate) fn seal(sealer: &Sealer, s: &Source) -> String {
    let mut sealed = s.clone();
    sealed.secret = sealer.seal(&context(&s.id, "secret"), &s.secret);
    if let Some((previous, until)) = &s.previous_secret {
        sealed.previous_secret = Some((
            sealer.seal(&context(&s.id, "previous_secret"), previous),
            *until,
        ));
    }
    if let Some(token) = &s.sign_token {
        sealed.sign_token = Some(sealer.seal(&context(&s.id, "sign_token"), token));
    }
    serde_json::to_string(&sealed).unwrap_or_default()
}

/// Why a stored source cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredSourceError {
    #[error("relay source {id}: the document does not parse: {error}")]
    Unreadable { id: String, error: String },
    #[error("relay source {id}: {error}")]
    Sealed { id: String, error: SealError },
}

/// The source stored as `document` under `id`.
pub(crate) fn open(sealer: &Sealer, id: &str, document: &str) -> Result<Source, StoredSourceError> {
    let mut s: Source =
        serde_json::from_str(document).map_err(|error| StoredSourceError::Unreadable {
            id: id.to_string(),
            error: error.to_string(),
        })?;
    let open = |field: &str, value: &str| {
        sealer
            .open(&context(id, field), value)
            .map(|o| o.value)
            .map_err(|error| StoredSourceError::Sealed {
                id: id.to_string(),
                error,
            })
    };
    s.secret = open("secret", &s.secret)?;
    if let Some((previous, until)) = s.previous_secret.take() {
        s.previous_secret = Some((open("previous_secret", &previous)?, until));
    }
    if let Some(token) = s.sign_token.take() {
        s.sign_token = Some(open("sign_token", &token)?);
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Source {
        Source {
            id: "src_1".into(),
            kind: SourceKind::Tencent,
            description: String::new(),
            secret: new_secret(),
            previous_secret: None,
            sign_token: Some("token".into()),
            sdk_app_id: Some(1400000000),
            allowed_networks: vec!["10.0.0.0/8".parse().unwrap()],
            max_skew_s: DEFAULT_MAX_SKEW_S,
            hook_deadline_ms: DEFAULT_HOOK_DEADLINE_MS,
            created_at: 1,
            updated_at: 1,
        }
    }

    #[test]
    fn the_document_keeps_no_secret_in_clear_and_opens_to_the_same_source() {
        let sealer = Sealer::from_base64(&Sealer::generate_key(), &[]).unwrap();
        let mut s = source();
        s.previous_secret = Some(("old-secret".into(), 5));
        let doc = seal(&sealer, &s);
        assert!(
            !doc.contains(&s.secret) && !doc.contains("old-secret") && !doc.contains("\"token\"")
        );
        assert_eq!(open(&sealer, "src_1", &doc).unwrap(), s);
        // bound to the source: another id does not open it
        assert!(open(&sealer, "src_2", &doc).is_err());
    }

    #[test]
    fn the_previous_secret_works_until_its_grace_ends() {
        let mut s = source();
        let old = std::mem::replace(&mut s.secret, new_secret());
        s.previous_secret = Some((old.clone(), 1_000));
        assert!(s.admits_secret(&s.secret.clone(), 999));
        assert!(s.admits_secret(&old, 999));
        assert!(!s.admits_secret(&old, 1_000));
        assert!(!s.admits_secret("", 0));
        assert!(!s.admits_secret(&s.secret[..10], 0));
    }

    #[test]
    fn a_tencent_sign_is_the_tokens_within_the_skew() {
        let mut s = source();
        s.sign_token = Some("xxxxyyyy".into());
        let now_ms = 1_669_872_112_000;
        // Tencent's documented example
        let sign = "17773bc3b3d8bc4ef8e6ae1cdb5e8ebb4e6ba0b4b5c4e9f7ad16aeb2fb1fa4061";
        let good = crate::signing::tencent_sign("xxxxyyyy", 1_669_872_112);
        assert!(
            good.starts_with("17773bc3") && good.ends_with("d484061"),
            "{good}"
        );
        assert_eq!(
            s.admits_sign(Some(&good), Some("1669872112"), now_ms),
            Ok(())
        );
        assert_eq!(
            s.admits_sign(Some(&good.to_uppercase()), Some("1669872112"), now_ms),
            Ok(())
        );
        assert_eq!(
            s.admits_sign(Some(sign), Some("1669872112"), now_ms),
            Err(SignRefusal::Wrong)
        );
        assert_eq!(
            s.admits_sign(None, Some("1669872112"), now_ms),
            Err(SignRefusal::Missing)
        );
        assert_eq!(
            s.admits_sign(Some(&good), None, now_ms),
            Err(SignRefusal::Missing)
        );
        assert_eq!(
            s.admits_sign(Some(&good), Some("1669872112"), now_ms + 61_000),
            Err(SignRefusal::Stale)
        );
        assert_eq!(
            s.admits_sign(Some(&good), Some("1669872112"), now_ms + 60_000),
            Ok(())
        );
        s.sign_token = None;
        assert_eq!(s.admits_sign(None, None, now_ms), Ok(()));
    }

    #[test]
    fn allowed_networks_limit_the_peers() {
        let mut s = source();
        assert!(s.admits_peer("10.1.2.3".parse().unwrap()));
        assert!(!s.admits_peer("192.0.2.1".parse().unwrap()));
        s.allowed_networks.clear();
        assert!(s.admits_peer("192.0.2.1".parse().unwrap()));
    }
}
