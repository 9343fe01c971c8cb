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
use rand::RngCore;
use serde_json::json;

/// File in the data dir that holds a generated admin key.
pub const ADMIN_KEY_FILE: &str = "admin.key";

/// The key from the config, or the one stored in (or newly generated into) `data_dir`.
pub fn resolve_admin_key(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<String> {
    if let Some(key) = configured {
        return Ok(key.trim().to_string());
    }
    let path: PathBuf = data_dir.join(ADMIN_KEY_FILE);
    if path.exists() {
        let key = std::fs::read_to_string(&path)?.trim().to_string();
        anyhow::ensure!(!key.is_empty(), "{} is empty", path.display());
        tracing::info!(path = %path.display(), "using the admin key stored in the data dir");
        return Ok(key);
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &key)?;
    tracing::info!(path = %path.display(), "generated an admin key; read it from this file");
    Ok(key)
}

#[cfg(unix)]
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
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
fn write_private(path: &Path, key: &str) -> std::io::Result<()> {
    std::fs::write(path, key)
}

/// What the middleware checks: the admin key, and in open mode the networks that need none.
#[derive(Clone)]
pub struct AdminKey {
    pub key: Arc<str>,
    /// `Some` in open mode: a call without a key from one of these networks passes.
    pub open_networks: Option<Arc<[ipnet::IpNet]>>,
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

/// The only paths served without the admin key.
pub const PUBLIC_PATHS: [&str; 3] = ["/health", "/metrics", "/openapi.json"];

/// Refuses a request without the admin key with 401 and a JSON body, whatever its path (unknown paths
/// too), except [`PUBLIC_PATHS`], the console's own files (they carry no data) and, in open mode,
/// key-less calls from the open networks. A wrong key is refused in open mode too.
pub async fn require_admin_key(
    State(key): State<AdminKey>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if PUBLIC_PATHS.contains(&path) || crate::console::is_console_path(path) {
        return next.run(request).await;
    }
    let given = presented(request.headers());
    if given.is_none() {
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let open = key.open_networks.as_deref().zip(peer);
        if open.is_some_and(|(nets, ip)| nets.iter().any(|n| n.contains(&ip))) {
            return next.run(request).await;
        }
    }
    match given {
        Some(given) if same(given.as_bytes(), key.key.as_bytes()) => next.run(request).await,
        given => {
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
