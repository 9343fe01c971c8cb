//! `abuse`: what an attack on the listeners costs the legitimate clients. REST senders run once alone
//! and once while 5,000 idle sockets and 200 slow-loris clients (a header byte a second, on both ports)
//! hold on; the figures are the senders' rate and p99 in each run, the share of the rate kept (the goal
//! is at least 80 %), and the server's descriptors and memory under the attack.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::chat::rest_senders;
use crate::harness::start_server;
use crate::Figures;

/// Idle sockets and slow-loris clients of the attack.
const IDLE: usize = 5_000;
const LORIS: usize = 200;

pub async fn abuse(bin: &Path, seconds: u64, clients: usize) -> anyhow::Result<Vec<Figures>> {
    // Both ends of every attacking socket live here.
    let want = (IDLE + LORIS) as u64 * 2 + 2_000;
    if rlimit::setrlimit(rlimit::Resource::NOFILE, want, want).is_err() {
        rlimit::increase_nofile_limit(want)?;
    }
    let server = start_server(bin, &[]).await?;
    let calm = rest_senders(&server.api, seconds, clients).await?;
    let attack = Attack::start(&server.api, &server.ws).await?;
    let (descriptors, rss) = (descriptors(server.child.id()), server.rss_bytes());
    let stormy = rest_senders(&server.api, seconds, clients).await?;
    let held = attack.stop();
    let kept = stormy.value / calm.value.max(1.0) * 100.0;
    println!(
        "abuse: {held} attacking sockets held during the run; the senders kept {kept:.0} % of their rate \
         (goal: 80 %)"
    );
    Ok(vec![
        Figures::new(
            "abuse: sends/s without the attack",
            calm.value,
            calm.p50_ms,
            calm.p99_ms,
            calm.total,
        ),
        Figures::new(
            "abuse: sends/s under the attack",
            stormy.value,
            stormy.p50_ms,
            stormy.p99_ms,
            stormy.total,
        ),
        Figures::new("abuse: rate kept under the attack, %", kept, None, None, 0),
        Figures::new(
            "abuse: server descriptors under the attack",
            descriptors as f64,
            None,
            None,
            0,
        ),
        Figures::new(
            "abuse: server RSS MiB under the attack",
            rss as f64 / 1048576.0,
            None,
            None,
            0,
        ),
    ])
}

/// The attacking sockets: idle ones, and slow-loris clients trickling a header byte a second.
struct Attack {
    idle: Vec<TcpStream>,
    loris: Vec<tokio::task::JoinHandle<()>>,
}

impl Attack {
    async fn start(api: &str, ws: &str) -> anyhow::Result<Attack> {
        let addr = |url: &str| -> anyhow::Result<SocketAddr> {
            Ok(url.rsplit("//").next().unwrap_or_default().parse()?)
        };
        let (api, ws) = (addr(api)?, addr(ws)?);
        let mut idle = Vec::with_capacity(IDLE);
        for n in 0..IDLE {
            // From addresses of their own (1,000 each), apart from the senders' 127.0.0.1.
            let from = IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (n / 1_000) as u8));
            let to = if n % 2 == 0 { api } else { ws };
            if let Ok(s) = connect_from(from, to).await {
                idle.push(s);
            }
        }
        let loris = (0..LORIS)
            .map(|n| {
                let to = if n % 2 == 0 { api } else { ws };
                tokio::spawn(async move {
                    let from = IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1));
                    // Reconnects whenever the server closes it, as a patient attacker would.
                    loop {
                        let Ok(mut s) = connect_from(from, to).await else {
                            return;
                        };
                        let _ = s.write_all(b"GET / HTTP/1.1\r\n").await;
                        while s.write_all(b"x").await.is_ok() {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                })
            })
            .collect();
        Ok(Attack { idle, loris })
    }

    /// Ends the attack; how many idle sockets it still held open.
    fn stop(self) -> usize {
        for l in &self.loris {
            l.abort();
        }
        self.idle.len() + self.loris.len()
    }
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// Open descriptors of a process.
fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}
