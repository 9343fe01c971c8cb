//! The real binary as a child process, for tests where a process must die or run under limits.

use std::time::Duration;

use super::*;

/// The real binary, running.
pub struct Proc {
    pub child: std::process::Child,
    pub api: String,
    pub ws: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the real binary on `dir` and waits until it answers.
pub async fn spawn_binary(dir: &std::path::Path) -> Proc {
    spawn_binary_with(dir, &[]).await
}

/// Starts the real binary on `dir` with more settings (`CHATHOOK_*` variables).
pub async fn spawn_binary_with(dir: &std::path::Path, settings: &[(&str, String)]) -> Proc {
    spawn_binary_under(&[], dir, settings).await
}

/// Starts the real binary through a wrapper command (`prlimit --nofile=...`, empty for none).
pub async fn spawn_binary_under(
    wrapper: &[&str],
    dir: &std::path::Path,
    settings: &[(&str, String)],
) -> Proc {
    launch(wrapper, dir, settings, None).await
}

/// Starts the real binary with its log (warnings and above) written to `log`.
pub async fn spawn_binary_logging(
    dir: &std::path::Path,
    log: &std::path::Path,
    settings: &[(&str, String)],
) -> Proc {
    launch(&[], dir, settings, Some(log)).await
}

async fn launch(
    wrapper: &[&str],
    dir: &std::path::Path,
    settings: &[(&str, String)],
    log: Option<&std::path::Path>,
) -> Proc {
    let (api_port, ws_port) = (free_port(), free_port());
    let binary = env!("CARGO_BIN_EXE_chathook");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => std::process::Command::new(binary),
    };
    // The test's settings last: they may replace these.
    let mut child = command
        .env("CHATHOOK_ADMIN_KEY", ADMIN)
        .env("CHATHOOK_SECRETS__KEY", SECRETS_KEY)
        .env("RUST_LOG", "warn")
        .env("CHATHOOK_GATEWAY__TCP_ADDR", "127.0.0.1:0")
        .envs(settings.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CHATHOOK_API_ADDR", format!("127.0.0.1:{api_port}"))
        .env("CHATHOOK_WS_ADDR", format!("127.0.0.1:{ws_port}"))
        .env("CHATHOOK_DATA_DIR", dir)
        .stdout(match log {
            Some(path) => std::fs::File::create(path).expect("the log file").into(),
            None => std::process::Stdio::null(),
        })
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn chathook");
    let api = format!("http://127.0.0.1:{api_port}");
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{api}/health")).await {
            if r.status() == 200 {
                return Proc {
                    child,
                    api,
                    ws: format!("ws://127.0.0.1:{ws_port}"),
                };
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("chathook did not start");
}

/// Sends `sig` (`-TERM`, `-KILL`...) to a child.
pub fn signal(child: &std::process::Child, sig: &str) {
    let status = std::process::Command::new("kill")
        .arg(sig)
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
