//! The admin key: where it comes from (config, or generated once into the data dir with mode 0600) and
//! the middleware that requires it on server API calls, as WuKongIM's `token` header or as
//! `Authorization: Bearer`; in WuKongIM's open mode (`auth.open`), calls without a key from the
//! configured networks pass too. The key is never logged.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chathook_http::listen::ConnHandle;
use chathook_http::throttle::{Throttle, Verdict};
use rand::RngCore;
use serde_json::json;

/// File in the data dir that holds a generated admin key.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The shortest admin key accepted, from any source: guessing at thousands of tries a second must not
/// get anywhere.
pub const MIN_ADMIN_KEY_CHARS: usize = 16;

/// The key from the config, or the one stored in (or newly generated into) `data_dir`.
pub fn resolve_admin_key(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(key) = configured {
        let key = key.trim();
        anyhow::ensure!(
            key.chars().count() >= MIN_ADMIN_KEY_CHARS,
            "admin_key: must be at least {MIN_ADMIN_KEY_CHARS} characters"
        );
        return Ok(key.to_string());
    }
    let path: PathBuf = data_dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        let key = std::fs::read_to_string(&path)?.trim().to_string();
        anyhow::ensure!(
            key.chars().count() >= MIN_ADMIN_KEY_CHARS,
            "{} holds a key of {} characters: an admin key needs at least {MIN_ADMIN_KEY_CHARS} \
             (remove the file to have one generated)",
            path.display(),
            key.chars().count()
        );
        tracing::info!(path = %path.display(), "using the admin key stored in the data dir");
        return Ok(key);
    }
    crate::data_dir::create(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &key)?;
    tracing::info!(path = %path.display(), "generated an admin key; read it from this file");
    Ok(key)
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(key.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    std::fs::write(path, key)
}

/// What the middleware checks: the admin key, and in open mode the networks that need none.
#[derive(Clone)]
pub struct AdminKey {
    pub key: Arc<str>,
    /// `Some` in open mode: a call without a key from one of these networks passes.
    pub open_networks: Option<Arc<[ipnet::IpNet]>>,
    /// Wrong keys by address (shared with the gateway's logins).
    pub throttle: Arc<Throttle>,
}

fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("token").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 429 while the caller's address is blocked for wrong keys, with `Retry-After` in seconds.
fn too_many_failures(wait: std::time::Duration) -> Response {
    let message = format!(
        "too many wrong admin keys from this address: try again in {} ms",
        wait.as_millis()
    );
    let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, retry_after.to_string())],
        Json(
            json!({"status": 429, "msg": message, "code": "too_many_failures",
                    "error": {"code": "too_many_failures", "message": message}}),
        ),
    )
        .into_response()
}

/// The only paths served without the admin key.
pub const PUBLIC_PATHS: [&str; 3] = ["/health", "/metrics", "/openapi.json"];

/// Refuses a request without the admin key with 401 and a JSON body, whatever its path (unknown paths
/// too), except [`PUBLIC_PATHS`], the console's own files (they carry no data), relay ingest and poll
/// routes (their own credentials) and, in open mode,
/// key-less calls from the open networks. A wrong key is refused in open mode too.
pub async fn require_admin_key(
    State(key): State<AdminKey>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    // Relay ingest URLs carry their own credential (the path secret), a poll its endpoint's token.
    let own_credential = path.starts_with("/relay/") || chathook_webhook::api::is_poll_path(path);
    if PUBLIC_PATHS.contains(&path) || crate::console::is_console_path(path) || own_credential {
        return next.run(request).await;
    }
    let given = presented(request.headers());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    if given.is_none() {
        let open = key.open_networks.as_deref().zip(peer);
        if open.is_some_and(|(nets, ip)| nets.iter().any(|n| n.contains(&ip))) {
            return next.run(request).await;
        }
    }
    if let (Some(_), Some(ip)) = (given, peer) {
        if let Verdict::Blocked(wait) = key.throttle.check(ip, None) {
            return too_many_failures(wait);
        }
    }
    match given {
        Some(given) if same(given.as_bytes(), key.key.as_bytes()) => {
            if let Some(ip) = peer {
                key.throttle.succeeded(ip);
            }
            // The listener never closes a connection that has shown the key to make room for another.
            if let Some(conn) = request.extensions().get::<ConnHandle>() {
                conn.authenticated();
            }
            next.run(request).await
        }
        given => {
            if let (Some(_), Some(ip)) = (given, peer) {
                key.throttle.failed(ip, None);
            }
            let message = if given.is_none() {
                "the admin key is required: send it as the `token` header or `Authorization: Bearer`"
            } else {
                "the admin key is wrong"
            };
            (
                StatusCode::UNAUTHORIZED,
                Json(
                    json!({"status": 401, "msg": message, "code": "unauthorized",
                            "error": {"code": "unauthorized", "message": message}}),
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_key_shorter_than_sixteen_characters_is_refused_from_the_config_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let short = resolve_admin_key(Some("fifteen-chars!!"), dir.path()).unwrap_err();
        assert!(short.to_string().contains("admin_key"), "{short}");
        assert_eq!(
            resolve_admin_key(Some(" sixteen-chars!!! "), dir.path()).unwrap(),
            "sixteen-chars!!!"
        );
        std::fs::write(dir.path().join(ADMIN_KEY_FILE), "abc\n").unwrap();
        let file = resolve_admin_key(None, dir.path()).unwrap_err();
        assert!(file.to_string().contains("admin.key"), "{file}");
        assert!(file.to_string().contains("at least 16"), "{file}");
    }

    #[test]
    fn a_generated_admin_key_is_long_enough_and_stored_privately() {
        let dir = tempfile::tempdir().unwrap();
        let key = resolve_admin_key(None, dir.path()).unwrap();
        assert_eq!(key.len(), 64);
        assert_eq!(resolve_admin_key(None, dir.path()).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(ADMIN_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
