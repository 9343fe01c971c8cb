//! The services a run starts beside the server (throwaway PostgreSQL clusters, NATS servers) and their
//! one rule: every one is stopped when the run ends, whether it ends well, with an error, or with
//! Ctrl-C. Scenarios start them here, never directly, so that `stop_all` knows them.

use std::sync::{Arc, Mutex};

use chathook_testkit::{Nats, Postgres};

/// Every service started so far (they stop on drop too, but a static is never dropped).
#[derive(Default)]
struct Started {
    postgres: Vec<Arc<Postgres>>,
    nats: Vec<Arc<Nats>>,
}

static STARTED: Mutex<Started> = Mutex::new(Started {
    postgres: Vec::new(),
    nats: Vec::new(),
});

fn started() -> std::sync::MutexGuard<'static, Started> {
    STARTED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a throwaway PostgreSQL cluster (flushing its commits to disk when `fsync`), stopped by
/// [`stop_all`].
pub fn postgres(fsync: bool) -> anyhow::Result<Arc<Postgres>> {
    let pg = Arc::new(Postgres::start_with_fsync(fsync).map_err(|e| anyhow::anyhow!("{e}"))?);
    started().postgres.push(pg.clone());
    Ok(pg)
}

/// Starts a NATS server, stopped by [`stop_all`].
pub fn nats() -> anyhow::Result<Arc<Nats>> {
    let nats = Arc::new(Nats::start().map_err(|e| anyhow::anyhow!("{e}"))?);
    started().nats.push(nats.clone());
    Ok(nats)
}

/// Stops every service started so far.
pub fn stop_all() {
    let mut all = started();
    for pg in all.postgres.drain(..) {
        pg.stop();
    }
    for nats in all.nats.drain(..) {
        nats.stop();
    }
}

/// Stops every service and exits when the run is interrupted (Ctrl-C).
pub fn stop_on_interrupt() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping the services this run started");
            stop_all();
            std::process::exit(130);
        }
    });
}
