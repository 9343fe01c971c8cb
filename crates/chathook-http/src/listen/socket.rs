//! Listening sockets and descriptors: a listener with the backlog asked for (the system's limit by
//! default, so a burst of connects is not dropped at 128), and the process's descriptor limit raised
//! to its hard maximum and reported, for admission's budget.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// The system's cap on a listen backlog (`net.core.somaxconn`; 4096 when it cannot be read).
pub fn system_backlog() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// Listens on `addr` with `backlog` (0: [`system_backlog`]).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(if backlog == 0 {
        system_backlog()
    } else {
        backlog
    })
}

/// Raises the soft limit on open descriptors to the hard one and returns it (unlimited counts as
/// 1,048,576; 1,024 when it cannot be read).
pub fn descriptor_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    const UNLIMITED: u64 = 1 << 20;
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    limit.current.unwrap_or(UNLIMITED).min(UNLIMITED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_burst_of_connects_beyond_128_is_queued_by_the_systems_backlog() {
        let listener = bind("127.0.0.1:0".parse().unwrap(), 0).unwrap();
        let addr = listener.local_addr().unwrap();
        // Nothing accepts: each connect completes only if the backlog has room for it. With the old
        // backlog of 128 the rest would wait for SYN retries (a second and more).
        let burst = (system_backlog() as usize).min(600);
        let connects = (0..burst).map(|_| tokio::net::TcpStream::connect(addr));
        let all = tokio::time::timeout(
            Duration::from_millis(900),
            futures_util::future::join_all(connects),
        )
        .await
        .expect("every connect of the burst was queued");
        assert!(all.iter().all(Result::is_ok));
    }
}
