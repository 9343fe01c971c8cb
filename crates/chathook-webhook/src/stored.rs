//! An endpoint as the store keeps it: its JSON document with the secrets sealed (the signing secret,
//! the previous one during a rotation, the Tencent sign token), each bound to the endpoint and the
//! field. Reading opens them; a document stored in clear by an older version, or sealed under an
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
    Ok((e, stale))
}
