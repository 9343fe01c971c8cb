//! An endpoint as the store keeps it: its JSON document with the secrets sealed (the signing secret,
//! the previous one during a rotation, the Tencent sign token, a polling endpoint's token, and the
//! receiver's: static header
//! values, the basic password, the TLS client key), each bound to the endpoint and the field. Reading opens them; a document stored in clear by an older version, or sealed under an
//! earlier secrets key, reads as stale so that the engine writes it again. Nothing else of the engine
//! sees a sealed value.

use chathook_store::sealing::{SealError, Sealer};

use crate::endpoint::Endpoint;

fn context(id: &str, field: &str) -> String {
    format!("webhook:{id}:{field}")
}

/// The document to store for `e`.
pub(crate) fn seal(sealer: &Sealer, e: &Endpoint) -> String {
    let mut sealed = e.clone();
    sealed.secret = sealer.seal(&context(&e.id, "secret"), &e.secret);
    if let Some((previous, until)) = &e.previous_secret {
        let previous = sealer.seal(&context(&e.id, "previous_secret"), previous);
        sealed.previous_secret = Some((previous, *until));
    }
    if let Some(token) = &e.sign_token {
        sealed.sign_token = Some(sealer.seal(&context(&e.id, "sign_token"), token));
    }
    if let Some(token) = sealed.poll_token.as_mut() {
        *token = sealer.seal(&context(&e.id, "poll_token"), token);
    }
    for (name, value) in sealed.auth.headers.iter_mut() {
        *value = sealer.seal(&context(&e.id, &format!("header:{name}")), value);
    }
    if let Some(basic) = sealed.auth.basic_auth.as_mut() {
        basic.password = sealer.seal(&context(&e.id, "basic_password"), &basic.password);
    }
    if let Some(key) = sealed.auth.tls.as_mut().and_then(|t| t.client_key.as_mut()) {
        *key = sealer.seal(&context(&e.id, "client_key"), key);
    }
    serde_json::to_string(&sealed).unwrap_or_default()
}

/// Why a stored endpoint cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error("endpoint {id}: the document does not parse: {error}")]
    Unreadable { id: String, error: String },
    #[error("endpoint {id}: {error}")]
    Sealed { id: String, error: SealError },
}

/// The endpoint stored as `document` under `id`, and whether it should be written again (stale).
pub(crate) fn open(
    sealer: &Sealer,
    id: &str,
    document: &str,
) -> Result<(Endpoint, bool), StoredError> {
    let mut e: Endpoint =
        serde_json::from_str(document).map_err(|error| StoredError::Unreadable {
            id: id.to_string(),
            error: error.to_string(),
        })?;
    let sealed = |error| StoredError::Sealed {
        id: id.to_string(),
        error,
    };
    let mut stale = false;
    let opened = sealer
        .open(&context(id, "secret"), &e.secret)
        .map_err(sealed)?;
    stale |= opened.stale;
    e.secret = opened.value;
    if let Some((previous, until)) = e.previous_secret.take() {
        let opened = sealer
            .open(&context(id, "previous_secret"), &previous)
            .map_err(sealed)?;
        stale |= opened.stale;
        e.previous_secret = Some((opened.value, until));
    }
    if let Some(token) = e.sign_token.take() {
        let opened = sealer
            .open(&context(id, "sign_token"), &token)
            .map_err(sealed)?;
        stale |= opened.stale;
        e.sign_token = Some(opened.value);
    }
    let mut open_field = |field: &str, value: &mut String| -> Result<(), StoredError> {
        let opened = sealer.open(&context(id, field), value).map_err(sealed)?;
        stale |= opened.stale;
        *value = opened.value;
        Ok(())
    };
    if let Some(token) = e.poll_token.as_mut() {
        open_field("poll_token", token)?;
    }
    for (name, value) in e.auth.headers.iter_mut() {
        open_field(&format!("header:{name}"), value)?;
    }
    if let Some(basic) = e.auth.basic_auth.as_mut() {
        open_field("basic_password", &mut basic.password)?;
    }
    if let Some(key) = e.auth.tls.as_mut().and_then(|t| t.client_key.as_mut()) {
        open_field("client_key", key)?;
    }
    Ok((e, stale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver_auth::{BasicAuth, ClientTls};

    #[test]
    fn receiver_secrets_are_sealed_in_the_document_and_open_back() {
        let sealer = Sealer::from_base64(&Sealer::generate_key(), &[]).unwrap();
        let mut e = Endpoint::new(
            "ep_1".into(),
            "https://x".into(),
            crate::Flavour::Standard,
            vec![],
            "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0".into(),
        );
        e.auth
            .headers
            .insert("X-Api-Key".into(), "key-value-1".into());
        e.auth.basic_auth = Some(BasicAuth {
            username: "hook".into(),
            password: "basic-pass-1".into(),
        });
        e.auth.tls = Some(ClientTls {
            client_key: Some("client-key-pem-1".into()),
            ..ClientTls::default()
        });
        let doc = seal(&sealer, &e);
        for secret in ["key-value-1", "basic-pass-1", "client-key-pem-1"] {
            assert!(!doc.contains(secret), "{secret} in {doc}");
        }
        assert!(doc.contains("X-Api-Key") && doc.contains("hook"));
        let (opened, stale) = open(&sealer, "ep_1", &doc).unwrap();
        assert_eq!((opened, stale), (e, false));
    }
}
