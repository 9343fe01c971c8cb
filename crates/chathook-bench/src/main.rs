//! chathook's benchmarks and full-size drills: each scenario starts the real server binary on loopback
//! with a temporary data dir, drives it with its own load generator and receivers for a bounded time,
//! and prints a table and one JSON line of figures.
//!
//! Run with `cargo run --release -p chathook-bench -- all` (it builds the release server if needed, or
//! uses `CHATHOOK_BINARY`); `--postgres` runs every scenario on PostgreSQL (a throwaway cluster).

mod abuse;
mod binary;
mod chat;
mod cluster;
mod crash;
mod drill;
mod harness;
mod hook;
mod idle;
mod relay;
mod services;
mod webhooks;

use clap::{Parser, ValueEnum};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(about = "chathook benchmarks and drills")]
struct Args {
    scenario: Scenario,
    /// Seconds of load per measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// 1:1 sender/receiver pairs (fanout) or concurrent HTTP clients (rest).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Sends each WebSocket sender keeps in flight.
    #[arg(long, default_value_t = 32)]
    window: usize,
    /// Events queued before the webhook and notify scenarios measure their delivery.
    #[arg(long, default_value_t = 40_000)]
    events: u64,
    /// Connection counts at which the idle scenario measures memory.
    #[arg(long, value_delimiter = ',', default_values_t = [10_000, 25_000, 50_000])]
    idle_steps: Vec<usize>,
    /// Messages in the crash drill and the cluster drill.
    #[arg(long, default_value_t = 100_000)]
    crash_messages: u64,
    /// Every server on PostgreSQL (a throwaway cluster this run starts) instead of the embedded store.
    #[arg(long)]
    postgres: bool,
    /// With `--postgres`: the throwaway cluster flushes each commit to disk (`fsync=on`, as in
    /// production; off by default, as in the tests).
    #[arg(long)]
    postgres_fsync: bool,
    /// The webhook and notify scenarios' endpoints carry filters that every message passes (each
    /// evaluated), to measure what filtering costs.
    #[arg(long)]
    filters: bool,
    /// The webhook lease (and node timeout) of the cluster drill, in milliseconds.
    #[arg(long, default_value_t = 3_000)]
    lease_ms: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// Messages WebSocket to WebSocket: 1:1 pairs and a 100-member group, with latency.
    Fanout,
    /// Messages through `POST /message/send`.
    Rest,
    /// Unbatched webhook deliveries beside a bare keep-alive POST loop.
    Webhook,
    /// The durable path end to end: REST sends to offline users, one msg.offline POST each.
    Offline,
    /// Messages through msg.notify batches.
    Notify,
    /// Server memory with 10k, 25k and 50k idle connections.
    Idle,
    /// Chat and a healthy endpoint, without and with an endpoint that answers after 10 s.
    Isolation,
    /// Before-send hook overhead: the latency a hook that allows everything adds, and messages/s through it.
    Hook,
    /// kill -9 in the middle of N messages: nothing lost.
    Crash,
    /// Three nodes on PostgreSQL and NATS; kill -9 of the endpoint's node half way: nothing lost.
    Cluster,
    /// REST senders alone and beside 5,000 idle sockets and 200 slow-loris clients.
    Abuse,
    /// WuKongIM msg.notify batches of 100 into a relay source, delivered as unbatched standard webhooks.
    Relay,
    /// Every scenario.
    All,
}

/// One measured figure.
pub struct Figures {
    name: std::borrow::Cow<'static, str>,
    value: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    total: u64,
}

impl Figures {
    pub fn new(
        name: impl Into<std::borrow::Cow<'static, str>>,
        value: f64,
        p50_ms: Option<f64>,
        p99_ms: Option<f64>,
        total: u64,
    ) -> Self {
        Figures {
            name: name.into(),
            value,
            p50_ms,
            p99_ms,
            total,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    services::stop_on_interrupt();
    let result = run(args).await;
    // Whatever the outcome: a throwaway PostgreSQL or NATS must not outlive the run.
    services::stop_all();
    result
}

async fn run(args: Args) -> anyhow::Result<()> {
    let bin = harness::binary()?;
    if args.postgres {
        harness::use_postgres(args.postgres_fsync)?;
    }
    let want = |s: Scenario| args.scenario == s || args.scenario == Scenario::All;
    let filters = args.filters.then(webhooks::passing_filters);
    let mut figures = Vec::new();
    if want(Scenario::Fanout) {
        figures.extend(chat::fanout(&bin, args.seconds, args.clients, args.window).await?);
    }
    if want(Scenario::Rest) {
        figures.extend(chat::rest(&bin, args.seconds, args.clients).await?);
    }
    if want(Scenario::Webhook) {
        figures.extend(webhooks::unbatched(&bin, args.seconds, args.events, &filters).await?);
    }
    if want(Scenario::Offline) {
        figures.extend(webhooks::offline(&bin, args.seconds, args.events).await?);
    }
    if want(Scenario::Notify) {
        figures.push(webhooks::notify(&bin, args.events * 5, &filters).await?);
    }
    if want(Scenario::Isolation) {
        figures.extend(webhooks::isolation(&bin, args.seconds).await?);
    }
    if want(Scenario::Idle) {
        figures.extend(idle::idle(&bin, &args.idle_steps).await?);
    }
    if want(Scenario::Hook) {
        figures.extend(hook::hook(&bin, args.seconds, args.clients, args.window).await?);
    }
    if want(Scenario::Crash) {
        figures.extend(crash::crash(&bin, args.crash_messages).await?);
    }
    if want(Scenario::Abuse) {
        figures.extend(abuse::abuse(&bin, args.seconds, args.clients).await?);
    }
    if want(Scenario::Relay) {
        figures.extend(relay::relay(&bin, args.seconds).await?);
    }
    if want(Scenario::Cluster) {
        figures.extend(cluster::cluster(&bin, args.crash_messages, args.lease_ms).await?);
    }
    println!(
        "{:<44} {:>14} {:>10} {:>10} {:>10}",
        "scenario", "value", "p50 ms", "p99 ms", "total"
    );
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    for f in &figures {
        println!(
            "{:<44} {:>14.0} {:>10} {:>10} {:>10}",
            f.name,
            f.value,
            fmt(f.p50_ms),
            fmt(f.p99_ms),
            f.total
        );
    }
    let line: Vec<Value> = figures
        .iter()
        .map(|f| json!({"scenario": f.name, "value": f.value.round(), "p50_ms": f.p50_ms, "p99_ms": f.p99_ms, "total": f.total}))
        .collect();
    println!(
        "{}",
        json!({"chathook_bench": line, "seconds": args.seconds, "clients": args.clients})
    );
    Ok(())
}
