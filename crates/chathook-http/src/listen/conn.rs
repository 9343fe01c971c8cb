//! One accepted connection as its listener sees it: whether it has authenticated, whether it has been
//! evicted, and when it must be closed for taking too long to send a request. It owns the timing rules
//! of an HTTP connection (header and idle timeouts); what a request *means* is the router's.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use super::admission::Admission;

/// "No byte read yet" in [`Conn::first_byte_ms`].
const NONE: u64 = u64::MAX;

/// A connection's state, shared by its I/O, its watchdog and the requests it carries (as a
/// [`ConnHandle`] in their extensions). Dropping the last reference returns its place to admission.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Order of acceptance: the oldest unauthenticated connection is evicted first.
    pub(crate) id: u64,
    /// The peer's address, for the per-address count.
    pub(crate) ip: IpAddr,
    /// When it was accepted; every `*_ms` field counts milliseconds from here.
    accepted: Instant,
    /// Set once, when the peer has proven who it is (the admin key, or a gateway `connect`); an
    /// authenticated connection is never evicted.
    authenticated: AtomicBool,
    /// Set once, when admission takes the connection's place for a newcomer: reads end, writes fail.
    evicted: AtomicBool,
    /// The task reading the connection, woken on eviction.
    pub(crate) reader: AtomicWaker,
    /// The watchdog, woken on eviction.
    pub(crate) wake: Notify,
    /// Requests being answered: from the arrival of a request's head to the end of its response body.
    busy: AtomicUsize,
    /// Whether a request has been answered (the first request's head has the header timeout from
    /// acceptance; later ones get the idle timeout before their first byte).
    served: AtomicBool,
    /// When the connection last became idle (accepted, or a response ended).
    idle_since_ms: AtomicU64,
    /// When the first byte was read since it became idle; [`NONE`] while none was.
    first_byte_ms: AtomicU64,
    /// Where the connection's place is returned.
    admission: Arc<Admission>,
}

impl Conn {
    pub(crate) fn new(id: u64, ip: IpAddr, admission: Arc<Admission>) -> Conn {
        Conn {
            id,
            ip,
            accepted: Instant::now(),
            authenticated: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            wake: Notify::new(),
            busy: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(0),
            first_byte_ms: AtomicU64::new(NONE),
            admission,
        }
    }

    fn now_ms(&self) -> u64 {
        self.accepted.elapsed().as_millis() as u64
    }

    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    pub(crate) fn is_busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// Ends the connection: its reader sees the end of the stream, its writer an error.
    pub(crate) fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.reader.wake();
        self.wake.notify_one();
    }

    /// Bytes were read.
    pub(crate) fn on_read(&self) {
        if !self.is_busy() && self.first_byte_ms.load(Ordering::Relaxed) == NONE {
            self.first_byte_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A request's head arrived.
    pub(crate) fn request_started(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    /// A response's body ended (or was dropped).
    pub(crate) fn request_ended(&self) {
        self.served.store(true, Ordering::Relaxed);
        self.idle_since_ms.store(self.now_ms(), Ordering::Relaxed);
        self.first_byte_ms.store(NONE, Ordering::Relaxed);
        self.busy.fetch_sub(1, Ordering::AcqRel);
    }

    /// When the connection must be closed if nothing changes, or `None` while a request is answered
    /// (the watchdog looks again after `idle`). A request's head must be complete `header` after its
    /// first byte, or after acceptance for the first request; between requests the connection may sit
    /// `idle` before the next one begins.
    pub(crate) fn deadline(&self, header: Duration, idle: Duration) -> Option<Instant> {
        if self.is_busy() {
            return None;
        }
        let first_byte = self.first_byte_ms.load(Ordering::Relaxed);
        let at = if first_byte != NONE {
            Duration::from_millis(first_byte) + header
        } else if self.served.load(Ordering::Relaxed) {
            Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed)) + idle
        } else {
            header
        };
        Some(self.accepted + at)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.admission.release(self);
    }
}

/// What a handler sees of its connection (in the request's extensions): it marks the connection
/// authenticated once the peer has proven who it is, so admission never evicts it.
#[derive(Debug, Clone)]
pub struct ConnHandle(pub(crate) Arc<Conn>);

impl ConnHandle {
    /// The peer has proven who it is (the admin key was right, or a gateway `connect` succeeded).
    pub fn authenticated(&self) {
        if !self.0.authenticated.swap(true, Ordering::AcqRel) {
            self.0.admission.on_authenticated(&self.0);
        }
    }
}
