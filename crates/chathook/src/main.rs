//! `chathook`: runs the server, or prints its effective configuration.
//!
//! Run with `cargo run --release` (the embedded store goes to `./chathook-data`).

use std::path::PathBuf;

use anyhow::Context;
use std::io::IsTerminal;

use chathook::config::{Config, LogFormat, Overrides};
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// jemalloc: the server allocates and frees many small buffers per message (requests, bodies,
/// events); glibc's malloc spent about a tenth of its CPU on them.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "chathook",
    version,
    about = "A WuKongIM-compatible IM server whose events reach your backend through webhooks"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// HTTP API address (overrides `api_addr`).
    #[arg(long, global = true)]
    api_addr: Option<String>,
    /// TCP gateway address (overrides `gateway.tcp_addr`; `off` turns it off).
    #[arg(long, global = true)]
    tcp_addr: Option<String>,
    /// WebSocket address (overrides `ws_addr`).
    #[arg(long, global = true)]
    ws_addr: Option<String>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Node id encoded in message ids (overrides `node_id`).
    #[arg(long, global = true)]
    node_id: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the effective configuration, secrets masked.
    Config,
}

/// The log on standard output in the configured form; colours only on a terminal.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stdout().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Plain text on standard error while the configuration loads (it may warn before the log's form is
/// known).
fn loading_log() -> impl tracing::Subscriber {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .finish()
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let overrides = Overrides {
        api_addr: cli.api_addr,
        ws_addr: cli.ws_addr,
        tcp_addr: cli.tcp_addr,
        data_dir: cli.data_dir,
        node_id: cli.node_id,
    };
    let loaded = tracing::subscriber::with_default(loading_log(), || {
        Config::load(cli.config.as_deref(), &overrides)
    });
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("chathook: invalid configuration: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(config.log.format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Config => {
            print!("{}", config.to_masked_toml());
            std::process::ExitCode::SUCCESS
        }
        Command::Serve => match serve(config) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("chathook: {e:#}");
                std::process::ExitCode::FAILURE
            }
        },
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let backlog = config.listen.backlog;
        let api = chathook_http::listen::bind(config.api_addr, backlog)
            .with_context(|| format!("cannot listen on api_addr {}", config.api_addr))?;
        let ws = chathook_http::listen::bind(config.ws_addr, backlog)
            .with_context(|| format!("cannot listen on ws_addr {}", config.ws_addr))?;
        chathook::run(config, api, ws, shutdown_signal()).await
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
