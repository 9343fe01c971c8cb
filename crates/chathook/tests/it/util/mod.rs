//! Test harness, one file per concept: the server in-process (`server`), the JSON-RPC client
//! (`jsonrpc`), the binary-protocol client (`binary`), the webhook receivers (`receiver`, and `tls_receiver` for mutual TLS), the real binary as a process (`process`), and
//! [`eventually`] for every "wait until" a test needs.

#![allow(dead_code)]

mod binary;
mod jsonrpc;
mod process;
mod receiver;
mod server;
mod tls_receiver;

use std::future::Future;
use std::time::Duration;

pub use binary::*;
pub use jsonrpc::*;
pub use process::*;
pub use receiver::*;
pub use server::*;
pub use tls_receiver::*;

pub const ADMIN: &str = "test-admin-key-123";
/// The secrets key of the tests' servers (nodes of one cluster must share one).
pub const SECRETS_KEY: &str = "Y2hhdGhvb2stdGVzdC1zZWNyZXRzLWtleS0wMDAwMDA=";

pub const SHORT: Duration = Duration::from_millis(300);
pub const LONG: Duration = Duration::from_secs(5);

/// Runs `check` every 20 ms until it answers `Ok`, and returns that; after `timeout`, panics naming
/// `what` and the last `Err` (what the check saw instead).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match check().await {
            Ok(done) => return done,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
