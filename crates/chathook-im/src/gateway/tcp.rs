//! The TCP link (`gateway.tcp_addr`, WuKongIM's `addr`, port 5100): the same two protocols as the
//! WebSocket port over a plain byte stream, told apart the same way by the first bytes (JSON-RPC values
//! back to back, or wkproto packets). Connections are admitted under the listeners' shared caps, count
//! against `limits.max_connections`, and must send `connect` within `limits.connect_timeout_ms`. A TCP
//! connection has no close frame: it ends by closing, after the protocol's disconnect notice.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use chathook_http::listen::{ConnHandle, ConnLimits, Guarded};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWriteExt, BufWriter, WriteHalf};
use tokio::net::TcpListener;
use tokio_util::io::ReaderStream;

use super::codec::Frame;
use super::jsonrpc::JsonRpc;
use super::session::{self, Link};
use super::transport::{FrameSink, Inbound, LinkBroken};
use super::wkproto::Wkproto;
use super::ws::is_json;
use crate::Im;

/// Serves the gateway's TCP port on `listener` until `shutdown` completes; sessions are ended by
/// [`Im::shutdown`].
pub async fn serve(
    listener: TcpListener,
    im: Im,
    limits: Arc<ConnLimits>,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    chathook_http::listen::serve_streams(listener, limits, shutdown, move |io, peer, handle| {
        run(io, peer, handle, im.clone())
    })
    .await
}

/// The writing half, buffered: frames are fed into the buffer and written by `flush`.
struct TcpSink {
    writer: BufWriter<WriteHalf<Guarded>>,
}

impl FrameSink for TcpSink {
    async fn feed(&mut self, frame: Frame) -> Result<(), LinkBroken> {
        let bytes = match &frame {
            Frame::Text(t) => t.as_bytes(),
            Frame::Binary(b) => b.as_ref(),
        };
        self.writer.write_all(bytes).await.map_err(|_| LinkBroken)
    }

    async fn flush(&mut self) -> Result<(), LinkBroken> {
        self.writer.flush().await.map_err(|_| LinkBroken)
    }

    async fn close(&mut self, _code: u16, _why: &str) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.writer.flush().await;
            let _ = self.writer.shutdown().await;
        })
        .await;
    }
}

/// The reading half as [`Inbound`] chunks; a read error ends it like a close.
fn inbound(
    reader: tokio::io::ReadHalf<Guarded>,
    chunk: usize,
) -> impl Stream<Item = Inbound> + Unpin + Send {
    let mut reads = ReaderStream::with_capacity(reader, chunk);
    futures_util::stream::poll_fn(move |cx| match reads.poll_next_unpin(cx) {
        Poll::Ready(Some(Ok(bytes))) => Poll::Ready(Some(Inbound::Data(bytes))),
        Poll::Ready(_) => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
}

/// Runs one TCP connection to its end: the first bytes pick the protocol, then the session.
async fn run(io: Guarded, peer: SocketAddr, handle: ConnHandle, im: Im) {
    let Ok(_permit) = im.sessions().clone().try_acquire_owned() else {
        // limits.max_connections reached: closed at once, as the WebSocket port answers 503
        return;
    };
    if *im.shutdown_signal().borrow() {
        return;
    }
    let (reader, writer) = tokio::io::split(io);
    let config = im.config();
    let mut stream = inbound(reader, config.gateway.read_buffer_bytes.max(512));
    let sink = TcpSink {
        writer: BufWriter::new(writer),
    };
    let within = Duration::from_millis(config.limits.connect_timeout_ms);
    let deadline = Instant::now() + within;
    let first = match tokio::time::timeout_at(deadline.into(), stream.next()).await {
        Ok(Some(Inbound::Data(first))) => first,
        // silent past the deadline, or gone
        _ => return,
    };
    let link = Link {
        peer,
        listened: Some(handle),
        deadline,
    };
    let max_frame_bytes = config.limits.max_frame_bytes;
    if is_json(&first) {
        let codec = JsonRpc::new(config.gateway.payload_format, max_frame_bytes);
        session::run(im.clone(), codec, sink, stream, first, link).await;
    } else {
        let codec = Wkproto::new(max_frame_bytes, config.gateway.encryption);
        session::run(im.clone(), codec, sink, stream, first, link).await;
    }
}
