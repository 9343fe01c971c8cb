//! How an endpoint proves itself to its receiver beyond the signatures: static headers (an API
//! gateway's key), HTTP basic credentials, and TLS settings (a client certificate and key for mutual
//! TLS, a CA to trust for a private receiver). It owns the checks each setting passes, the masking
//! of secret values in API answers (the stored secrets are sealed by `stored`; the client that
//! presents a certificate is built by `client`), and how a masked value in a change keeps the stored
//! one. It never sends anything.

use std::collections::BTreeMap;

use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use crate::client::error_chain;

/// What a secret value shows as in API answers; sent back in a change, it keeps the stored value.
pub const MASK: &str = "********";
/// The most static headers an endpoint sends.
pub const MAX_HEADERS: usize = 20;
/// The longest static header value, in bytes.
pub const MAX_HEADER_VALUE_BYTES: usize = 4096;
/// The longest basic username or password, in bytes.
pub const MAX_BASIC_BYTES: usize = 256;
/// The largest PEM document (certificate chain, key or CA bundle), in bytes.
pub const MAX_PEM_BYTES: usize = 64 * 1024;

/// Headers chathook sets itself, which a static header may not replace.
const RESERVED: [&str; 9] = [
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "user-agent",
    "te",
    "upgrade",
];

/// An endpoint's receiver authentication; empty by default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReceiverAuth {
    /// Sent with every request; the values are secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// `Authorization: Basic ...` with every request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    /// TLS towards the receiver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
}

/// HTTP basic credentials (the password is a secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// TLS towards a receiver: a client certificate with its key (mutual TLS), and a CA to trust beside
/// the system's roots. PEM text; the key is a secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// The client certificate (and its chain), PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    /// The client certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// A CA certificate (or bundle) to trust for this receiver, PEM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// A setting that does not pass its check: the field it names (`headers.X-Api-Key`, `tls.client_key`),
/// a stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct AuthError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

fn error(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> AuthError {
    AuthError {
        field: field.into(),
        code,
        message: message.into(),
    }
}

impl ReceiverAuth {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.basic_auth.is_none() && self.tls.is_none()
    }

    /// The settings as API answers show them: header values, the basic password and the client key
    /// replaced by [`MASK`].
    pub fn masked(&self) -> ReceiverAuth {
        ReceiverAuth {
            headers: self
                .headers
                .keys()
                .map(|name| (name.clone(), MASK.to_string()))
                .collect(),
            basic_auth: self.basic_auth.as_ref().map(|b| BasicAuth {
                username: b.username.clone(),
                password: MASK.into(),
            }),
            tls: self.tls.as_ref().map(|t| ClientTls {
                client_key: t.client_key.as_ref().map(|_| MASK.to_string()),
                ..t.clone()
            }),
        }
    }

    /// Each secret value given as [`MASK`] takes the value `stored` has in its place; a mask with
    /// nothing stored there is an error.
    pub fn keep_masked(&mut self, stored: &ReceiverAuth) -> Result<(), AuthError> {
        let masked_without_value = |field: String| {
            error(
                field,
                "masked_value_unknown",
                format!("{MASK} keeps the stored value, and none is stored here"),
            )
        };
        for (name, value) in self.headers.iter_mut() {
            if value == MASK {
                let kept = stored
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone());
                *value = kept.ok_or_else(|| masked_without_value(format!("headers.{name}")))?;
            }
        }
        if let Some(basic) = self.basic_auth.as_mut().filter(|b| b.password == MASK) {
            basic.password = stored
                .basic_auth
                .as_ref()
                .map(|b| b.password.clone())
                .ok_or_else(|| masked_without_value("basic_auth.password".into()))?;
        }
        if let Some(tls) = self.tls.as_mut() {
            if tls.client_key.as_deref() == Some(MASK) {
                tls.client_key = stored.tls.as_ref().and_then(|t| t.client_key.clone());
                if tls.client_key.is_none() {
                    return Err(masked_without_value("tls.client_key".into()));
                }
            }
        }
        Ok(())
    }

    /// Checks every setting; `https` says whether the endpoint's URL is `https://` (TLS settings need
    /// it).
    pub fn check(&self, https: bool) -> Result<(), AuthError> {
        check_headers(&self.headers, self.basic_auth.is_some())?;
        if let Some(basic) = &self.basic_auth {
            check_basic(basic)?;
        }
        if let Some(tls) = &self.tls {
            if !https {
                return Err(error(
                    "tls",
                    "tls_needs_https",
                    "TLS settings need an https:// URL",
                ));
            }
            check_tls(tls)?;
        }
        Ok(())
    }

    /// The static headers and the basic credentials as request headers (checked on the way in, so
    /// none is expected to fail; one that does is left out).
    pub fn request_headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        let basic = self.basic_auth.as_ref().and_then(|b| {
            use base64::Engine;
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", b.username, b.password));
            let mut value = HeaderValue::from_str(&format!("Basic {token}")).ok()?;
            value.set_sensitive(true);
            Some((reqwest::header::AUTHORIZATION, value))
        });
        self.headers
            .iter()
            .filter_map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                let mut value = HeaderValue::from_str(value).ok()?;
                value.set_sensitive(true);
                Some((name, value))
            })
            .chain(basic)
    }
}

fn check_headers(headers: &BTreeMap<String, String>, basic: bool) -> Result<(), AuthError> {
    if headers.len() > MAX_HEADERS {
        return Err(error(
            "headers",
            "too_many_headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in headers {
        let field = format!("headers.{name}");
        let lower = name.to_ascii_lowercase();
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(error(
                field,
                "header_name_invalid",
                "not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)",
            ));
        }
        if RESERVED.contains(&lower.as_str())
            || lower.starts_with("webhook-")
            || lower.starts_with("proxy-")
        {
            return Err(error(
                field,
                "header_reserved",
                format!(
                    "{name} is set by chathook (as are webhook-*, proxy-* and the body's headers)"
                ),
            ));
        }
        if basic && lower == "authorization" {
            return Err(error(
                field,
                "header_conflict",
                "Authorization comes from basic_auth; set one or the other",
            ));
        }
        if seen.contains(&lower) {
            return Err(error(
                field,
                "header_duplicate",
                "header names are case-insensitive; this one is given twice",
            ));
        }
        seen.push(lower);
        if value.len() > MAX_HEADER_VALUE_BYTES {
            return Err(error(
                field,
                "header_value_too_long",
                format!("at most {MAX_HEADER_VALUE_BYTES} bytes"),
            ));
        }
        if HeaderValue::from_str(value).is_err() || value.is_empty() {
            return Err(error(
                field,
                "header_value_invalid",
                "a header value is visible ASCII and spaces, not empty, with no line breaks",
            ));
        }
    }
    Ok(())
}

fn check_basic(basic: &BasicAuth) -> Result<(), AuthError> {
    if basic.username.is_empty() || basic.username.contains(':') {
        return Err(error(
            "basic_auth.username",
            "basic_username_invalid",
            "the username is not empty and has no ':'",
        ));
    }
    for (field, value) in [
        ("basic_auth.username", &basic.username),
        ("basic_auth.password", &basic.password),
    ] {
        if value.len() > MAX_BASIC_BYTES || value.chars().any(char::is_control) {
            return Err(error(
                field,
                "basic_invalid",
                format!("at most {MAX_BASIC_BYTES} bytes, no control characters"),
            ));
        }
    }
    Ok(())
}

fn check_tls(tls: &ClientTls) -> Result<(), AuthError> {
    for (field, pem) in [
        ("tls.client_cert", &tls.client_cert),
        ("tls.client_key", &tls.client_key),
        ("tls.ca_cert", &tls.ca_cert),
    ] {
        if pem.as_ref().is_some_and(|p| p.len() > MAX_PEM_BYTES) {
            return Err(error(
                field,
                "pem_too_large",
                format!("at most {MAX_PEM_BYTES} bytes"),
            ));
        }
    }
    match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => {
            if !cert.contains("-----BEGIN CERTIFICATE-----") {
                return Err(error(
                    "tls.client_cert",
                    "pem_invalid",
                    "no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
            if !key.contains("PRIVATE KEY-----") {
                return Err(error(
                    "tls.client_key",
                    "pem_invalid",
                    "no PEM private key (-----BEGIN PRIVATE KEY-----)",
                ));
            }
            let identity = identity(tls).map_err(|e| error("tls.client_cert", "pem_invalid", e))?;
            // What the client is built with at delivery: refused here rather than at each attempt.
            reqwest::Client::builder()
                .identity(identity)
                .build()
                .map_err(|e| error("tls.client_cert", "pem_invalid", error_chain(&e)))?;
        }
        (Some(_), None) => {
            return Err(error(
                "tls.client_key",
                "tls_key_missing",
                "a client certificate needs its key",
            ))
        }
        (None, Some(_)) => {
            return Err(error(
                "tls.client_cert",
                "tls_cert_missing",
                "a client key needs its certificate",
            ))
        }
        (None, None) => {}
    }
    if let Some(ca) = &tls.ca_cert {
        let roots = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
            .map_err(|e| error("tls.ca_cert", "pem_invalid", e.to_string()))?;
        if roots.is_empty() {
            return Err(error(
                "tls.ca_cert",
                "pem_invalid",
                "no PEM certificate (-----BEGIN CERTIFICATE-----)",
            ));
        }
        let mut b = reqwest::Client::builder();
        for root in roots {
            b = b.add_root_certificate(root);
        }
        b.build()
            .map_err(|e| error("tls.ca_cert", "pem_invalid", error_chain(&e)))?;
    }
    if tls.client_cert.is_none() && tls.ca_cert.is_none() {
        return Err(error(
            "tls",
            "tls_empty",
            "give a client certificate with its key, a CA, or both (or null for none)",
        ));
    }
    Ok(())
}

/// The client identity of `tls` (certificate chain and key), when it has one.
pub(crate) fn identity(tls: &ClientTls) -> Result<reqwest::Identity, String> {
    let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) else {
        return Err("no client certificate".into());
    };
    let mut pem = Vec::with_capacity(cert.len() + key.len() + 1);
    pem.extend_from_slice(key.as_bytes());
    pem.push(b'\n');
    pem.extend_from_slice(cert.as_bytes());
    reqwest::Identity::from_pem(&pem).map_err(|e| format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(headers: &[(&str, &str)]) -> ReceiverAuth {
        ReceiverAuth {
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            ..ReceiverAuth::default()
        }
    }

    #[test]
    fn answers_show_header_names_and_the_username_but_never_a_secret_value() {
        let mut a = auth(&[("X-Api-Key", "k-123")]);
        a.basic_auth = Some(BasicAuth {
            username: "hook".into(),
            password: "pw".into(),
        });
        let shown = serde_json::to_string(&a.masked()).unwrap();
        assert!(shown.contains("X-Api-Key") && shown.contains("hook"));
        assert!(!shown.contains("k-123") && !shown.contains("\"pw\""));
    }

    #[test]
    fn a_masked_value_in_a_change_keeps_the_stored_one_and_is_refused_where_none_is_stored() {
        let stored = auth(&[("X-Api-Key", "k-123")]);
        let mut change = auth(&[("x-api-key", MASK), ("X-Other", "o")]);
        change.keep_masked(&stored).unwrap();
        assert_eq!(change.headers["x-api-key"], "k-123");
        let mut unknown = auth(&[("X-New", MASK)]);
        let e = unknown.keep_masked(&stored).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.code),
            ("headers.X-New", "masked_value_unknown")
        );
    }

    #[test]
    fn header_checks_name_the_header_that_breaks_them() {
        let cases = [
            (auth(&[("Bad Name", "v")]), "header_name_invalid"),
            (auth(&[("webhook-id", "v")]), "header_reserved"),
            (auth(&[("Content-Type", "v")]), "header_reserved"),
            (auth(&[("X-A", "line\nbreak")]), "header_value_invalid"),
            (auth(&[("X-A", "")]), "header_value_invalid"),
            (auth(&[("X-A", "v"), ("x-a", "w")]), "header_duplicate"),
        ];
        for (a, code) in cases {
            let e = a.check(true).unwrap_err();
            assert_eq!(e.code, code, "{a:?}");
            assert!(e.field.starts_with("headers."), "{e:?}");
        }
        assert!(auth(&[("X-Api-Key", "k")]).check(false).is_ok());
    }

    #[test]
    fn basic_auth_and_an_authorization_header_are_one_or_the_other() {
        let mut a = auth(&[("Authorization", "Bearer t")]);
        assert!(a.check(false).is_ok());
        a.basic_auth = Some(BasicAuth {
            username: "u".into(),
            password: "p".into(),
        });
        assert_eq!(a.check(false).unwrap_err().code, "header_conflict");
        a.headers.clear();
        let sent: Vec<_> = a.request_headers().collect();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].1.to_str().unwrap(), "Basic dTpw");
    }

    #[test]
    fn tls_settings_need_https_and_pem_that_parses() {
        let a = ReceiverAuth {
            tls: Some(ClientTls {
                ca_cert: Some("not pem".into()),
                ..ClientTls::default()
            }),
            ..ReceiverAuth::default()
        };
        assert_eq!(a.check(false).unwrap_err().code, "tls_needs_https");
        let e = a.check(true).unwrap_err();
        assert_eq!((e.field.as_str(), e.code), ("tls.ca_cert", "pem_invalid"));
        let half = ReceiverAuth {
            tls: Some(ClientTls {
                client_cert: Some("-----BEGIN CERTIFICATE-----".into()),
                ..ClientTls::default()
            }),
            ..ReceiverAuth::default()
        };
        assert_eq!(half.check(true).unwrap_err().code, "tls_key_missing");
    }
}
