//! The link under a session: a stream of [`Inbound`] chunks from the client and a [`FrameSink`] for the
//! frames to it. The session loop and the connect phase know only these, so a WebSocket (`ws`), a
//! raw TCP connection or a test's channels can carry a session alike.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use super::codec::Frame;

/// What the link delivers; the end of the stream is the link closing.
#[derive(Debug)]
pub(super) enum Inbound {
    /// Bytes from the client (a WebSocket message's payload, or what a read returned).
    Data(Bytes),
    /// Proof of life without data (a WebSocket ping or pong).
    Alive,
    /// Something the link could not read (a frame over the size limit, a text frame that is not
    /// UTF-8): the connection ends with this close code and reason.
    Unreadable { code: u16, why: String },
}

/// The link broke while writing: nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LinkBroken;

/// Where a session's frames go.
pub(super) trait FrameSink: Send {
    /// Queues a frame (written by the next `flush` at the latest).
    fn feed(&mut self, frame: Frame) -> impl Future<Output = Result<(), LinkBroken>> + Send;
    /// Writes everything queued.
    fn flush(&mut self) -> impl Future<Output = Result<(), LinkBroken>> + Send;
    /// Ends the link, telling the client `code` and `why` where the transport can (a WebSocket close
    /// frame; TCP just closes).
    fn close(&mut self, code: u16, why: &str) -> impl Future<Output = ()> + Send;
}

/// Writes one frame and flushes it, all within `limit` (a slower link counts as broken).
pub(super) async fn write_within<K: FrameSink>(
    sink: &mut K,
    frame: Frame,
    limit: Duration,
) -> Result<(), LinkBroken> {
    let written = tokio::time::timeout(limit, async {
        sink.feed(frame).await?;
        sink.flush().await
    });
    written.await.unwrap_or(Err(LinkBroken))
}
