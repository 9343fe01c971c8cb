//! How the server's listeners accept and serve connections, with limits a hostile client cannot get
//! around: a request's headers must arrive within `header_timeout_ms`, a connection between requests
//! may idle `idle_timeout_ms`, every connection takes a place under the caps of [`admission`] (all
//! listeners together, per source address, unauthenticated), the accepted total stays below the
//! process's descriptor limit by `reserved_descriptors`, and the listen backlog is the system's.
//!
//! It serves any axum [`Router`] (the API, the WebSocket gateway), and raw streams ([`serve_streams`],
//! the gateway's TCP port); a handler marks its connection authenticated through its [`ConnHandle`]
//! (in a request's extensions). Flow: `socket` (bind, the
//! descriptor limit) -> [`serve`] (accept, admit) -> `io` (the socket with its `conn` state) -> hyper,
//! with a watchdog per connection enforcing the timeouts.

pub mod admission;
mod conn;
mod io;
mod socket;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

pub use admission::{Admission, Caps, Refusal};
pub use conn::ConnHandle;
pub use socket::{bind, descriptor_limit, system_backlog};

use conn::Conn;
pub use io::Guarded;

/// The listeners' limits (`[listen]`); every one has a test at its edge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ListenConfig {
    /// A request's headers must be complete this long after its first byte (the first request's:
    /// after the connection is accepted), in milliseconds.
    pub header_timeout_ms: u64,
    /// A connection with no request in flight is closed after this long, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Connections from one source address, all listeners together; 0: no cap (behind a proxy or a
    /// carrier NAT, many clients share one address).
    pub max_per_address: usize,
    /// Networks `max_per_address` does not apply to (CIDR): loopback by default; add a proxy's address
    /// here when clients reach the server through it.
    pub per_address_exempt: Vec<ipnet::IpNet>,
    /// Connections that have not authenticated (no admin key or gateway `connect` yet), all listeners
    /// together; at the cap the oldest of them is closed to make room.
    pub max_unauthenticated: usize,
    /// Descriptors kept for the store, outgoing webhooks and logs: accepted connections stop at the
    /// process's descriptor limit minus these (the oldest unauthenticated one making room, as above).
    pub reserved_descriptors: usize,
    /// Listen backlog of each listener; 0: the system's limit (`net.core.somaxconn`).
    pub backlog: u32,
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            header_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            max_per_address: 1_024,
            per_address_exempt: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
            max_unauthenticated: 10_000,
            reserved_descriptors: 256,
            backlog: 0,
        }
    }
}

impl ListenConfig {
    /// The caps under a descriptor limit of `descriptors`.
    pub fn caps(&self, descriptors: u64) -> Caps {
        let total = (descriptors as usize)
            .saturating_sub(self.reserved_descriptors)
            .max(1);
        Caps {
            total,
            per_address: self.max_per_address,
            exempt: self.per_address_exempt.clone(),
            unauthenticated: self.max_unauthenticated.min(total).max(1),
        }
    }
}

/// What every listener of one server shares: admission and the timeouts.
#[derive(Debug)]
pub struct ConnLimits {
    pub admission: Arc<Admission>,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnLimits {
    pub fn new(config: &ListenConfig, descriptors: u64) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            admission: Admission::new(config.caps(descriptors)),
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            idle_timeout: Duration::from_millis(config.idle_timeout_ms),
        })
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, lets each connection
/// finish its request in flight, and returns when all are closed.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Arc<ConnLimits>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (open_tx, open_rx) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        // Refused: the socket is dropped, which closes it at once.
        let Ok(conn) = limits.admission.admit(peer.ip().to_canonical()) else {
            continue;
        };
        let task = Connection {
            app: app.clone(),
            limits: limits.clone(),
            peer,
            stop: stop_rx.clone(),
            _open: open_rx.clone(),
        };
        tokio::spawn(task.run(tcp, conn));
    }
    drop(open_rx);
    stop_tx.send_replace(true);
    open_tx.closed().await;
    Ok(())
}

/// Accepts raw TCP connections (no HTTP: the gateway's TCP port) under the same admission as the other
/// listeners, and hands each admitted one to `handle` with its peer address and its [`ConnHandle`]
/// (the handler marks it authenticated; until then a newcomer may evict it, which ends its reads).
/// Stops accepting when `shutdown` completes; the connections are their handlers' to end.
pub async fn serve_streams<H, F>(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    shutdown: impl Future<Output = ()> + Send,
    handle: H,
) -> std::io::Result<()>
where
    H: Fn(Guarded, SocketAddr, ConnHandle) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(shutdown);
    loop {
        let (mut tcp, peer) = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
        };
        let Ok(conn) = limits.admission.admit(peer.ip().to_canonical()) else {
            continue;
        };
        crate::no_delay(&mut tcp);
        let io = Guarded {
            tcp,
            conn: conn.clone(),
        };
        tokio::spawn(handle(io, peer, ConnHandle(conn)));
    }
}

/// An accept that failed: out of descriptors (logged once a second, and a pause so the loop does not
/// spin while none is free), or a connection that died in the queue.
async fn accept_failed(e: std::io::Error) {
    let exhausted = matches!(e.raw_os_error(), Some(23 | 24)); // ENFILE, EMFILE
    if !exhausted {
        return;
    }
    if once_a_second() {
        tracing::error!(error = %e, "accept failed: out of descriptors (listen.reserved_descriptors)");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// True at most once a second (for log lines a flood would repeat).
fn once_a_second() -> bool {
    static LAST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
        return false;
    }
    *last = Some(Instant::now());
    true
}

/// One accepted connection's task.
struct Connection {
    app: Router,
    limits: Arc<ConnLimits>,
    peer: SocketAddr,
    /// Turns true when the server stops: finish the request in flight, then close.
    stop: watch::Receiver<bool>,
    /// Held while the connection is open; the server's stop waits for every one.
    _open: watch::Receiver<()>,
}

impl Connection {
    /// Serves HTTP/1 or HTTP/2 (upgrades included) until the peer closes, the watchdog ends it, or
    /// the server stops.
    async fn run(mut self, mut tcp: TcpStream, conn: Arc<Conn>) {
        crate::no_delay(&mut tcp);
        let (app, peer, handle) = (self.app.clone(), self.peer, conn.clone());
        let service = hyper::service::service_fn(move |request| {
            tracked(app.clone(), peer, handle.clone(), request)
        });
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // The watchdog times headers and idleness; hyper's own timer would close idle keep-alive
        // connections at the header timeout.
        builder.http1().header_read_timeout(None);
        let io = TokioIo::new(Guarded {
            tcp,
            conn: conn.clone(),
        });
        let served = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(served);
        let watchdog = watchdog(&conn, self.limits.header_timeout, self.limits.idle_timeout);
        tokio::pin!(watchdog);
        let mut stopping = *self.stop.borrow();
        if stopping {
            served.as_mut().graceful_shutdown();
        }
        loop {
            tokio::select! {
                _ = served.as_mut() => return,
                // Dropping the connection closes it.
                _ = &mut watchdog => return,
                _ = self.stop.wait_for(|s| *s), if !stopping => {
                    stopping = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Completes when the connection is to be closed: evicted, or past its deadline ([`Conn::deadline`]).
async fn watchdog(conn: &Conn, header: Duration, idle: Duration) {
    loop {
        if conn.is_evicted() {
            return;
        }
        let wake = match conn.deadline(header, idle) {
            Some(at) if at <= Instant::now() => {
                tracing::debug!(ip = %conn.ip, "connection closed: headers or idle timeout");
                return;
            }
            Some(at) => at,
            // A request is being answered: look again later.
            None => Instant::now() + idle,
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake.into()) => {}
            _ = conn.wake.notified() => {}
        }
    }
}

/// Answers one request through the router, with the peer's address and the connection's handle in its
/// extensions; the connection counts as busy until the response's body is done.
async fn tracked(
    mut app: Router,
    peer: SocketAddr,
    conn: Arc<Conn>,
    mut request: Request<Incoming>,
) -> Result<Response, Infallible> {
    conn.request_started();
    let busy = Busy(conn.clone());
    request.extensions_mut().insert(ConnectInfo(peer));
    request.extensions_mut().insert(ConnHandle(conn));
    let response = app.call(request).await?;
    Ok(response.map(|body| Body::new(TrackedBody { body, _busy: busy })))
}

/// Marks the end of a request when dropped (its response sent, or the connection gone).
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that holds its request's [`Busy`] until it is sent or dropped.
struct TrackedBody {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for TrackedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
