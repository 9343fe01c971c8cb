//! The WebSocket link: the client's messages as [`Inbound`] chunks, frames written as messages (a
//! JSON-RPC client's text in the kind it speaks, every wkproto packet its own binary message), close
//! frames with their reason, and the first message, read under `limits.connect_timeout_ms`, which
//! picks the protocol (JSON-RPC when it starts with `{`, wkproto otherwise).

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::close::{close_code, truncate};
use super::codec::Frame;
use super::jsonrpc::JsonRpc;
use super::transport::{FrameSink, Inbound, LinkBroken};
use super::wkproto::Wkproto;
use crate::Im;

/// The kind of WebSocket message a client speaks; a JSON-RPC client is answered in the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Text,
    Binary,
}

/// The writing half of a WebSocket.
pub(super) struct WsSink {
    sink: SplitSink<WebSocket, WsMessage>,
    /// The kind text frames go out as.
    kind: FrameKind,
}

impl FrameSink for WsSink {
    async fn feed(&mut self, frame: Frame) -> Result<(), LinkBroken> {
        let msg = match (frame, self.kind) {
            (Frame::Text(t), FrameKind::Text) => WsMessage::Text(t),
            (Frame::Text(t), FrameKind::Binary) => WsMessage::Binary(t.into()),
            (Frame::Binary(b), _) => WsMessage::Binary(b),
        };
        self.sink.feed(msg).await.map_err(|_| LinkBroken)
    }

    async fn flush(&mut self) -> Result<(), LinkBroken> {
        self.sink.flush().await.map_err(|_| LinkBroken)
    }

    async fn close(&mut self, code: u16, why: &str) {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from(truncate(why, 123)),
        };
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.sink.send(WsMessage::Close(Some(frame))),
        )
        .await;
    }
}

/// The reading half of a WebSocket as [`Inbound`] chunks; a close frame ends it.
pub(super) struct WsInbound {
    stream: SplitStream<WebSocket>,
    /// `limits.max_frame_bytes`, for the reason given when a message is over it.
    max_frame_bytes: usize,
}

impl Stream for WsInbound {
    type Item = Inbound;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Inbound>> {
        let max = self.max_frame_bytes;
        self.stream.poll_next_unpin(cx).map(|item| match item {
            Some(Ok(WsMessage::Text(t))) => Some(Inbound::Data(t.into())),
            Some(Ok(WsMessage::Binary(b))) => Some(Inbound::Data(b)),
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => Some(Inbound::Alive),
            Some(Ok(WsMessage::Close(_))) | None => None,
            Some(Err(e)) => {
                unreadable(&e, max).map(|(code, why)| Inbound::Unreadable { code, why })
            }
        })
    }
}

/// Runs one upgraded WebSocket to its end: the first message picks the protocol, then the session.
pub(super) async fn run(
    socket: WebSocket,
    im: Im,
    peer: SocketAddr,
    listened: Option<chathook_http::listen::ConnHandle>,
    _permit: OwnedSemaphorePermit,
) {
    let (sink, stream) = socket.split();
    let max_frame_bytes = im.config().limits.max_frame_bytes;
    let mut stream = WsInbound {
        stream,
        max_frame_bytes,
    };
    let mut sink = WsSink {
        sink,
        kind: FrameKind::Text,
    };
    let within = Duration::from_millis(im.config().limits.connect_timeout_ms);
    let deadline = Instant::now() + within;
    let Some((first, kind)) = first_message(&mut sink, &mut stream, deadline, within).await else {
        return;
    };
    sink.kind = kind;
    let link = super::session::Link {
        peer,
        listened,
        deadline,
    };
    let gateway = &im.config().gateway;
    if is_json(&first) {
        let codec = JsonRpc::new(gateway.payload_format, max_frame_bytes);
        super::session::run(im, codec, sink, stream, first, link).await;
    } else {
        let codec = Wkproto::new(max_frame_bytes, gateway.encryption);
        super::session::run(im, codec, sink, stream, first, link).await;
    }
}

/// Whether a connection's first bytes are JSON-RPC: their first byte after JSON whitespace is `{`, as
/// WuKongIM tells the two protocols apart (no wkproto packet starts so: 0x7B would be a PING with
/// flags, which no client sends).
pub(super) fn is_json(first: &[u8]) -> bool {
    first
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .is_some_and(|b| *b == b'{')
}

/// The first data message and its kind, by the deadline; on a timeout or an unreadable message the
/// client is told and `None` returned.
async fn first_message(
    sink: &mut WsSink,
    stream: &mut WsInbound,
    deadline: Instant,
    within: Duration,
) -> Option<(Bytes, FrameKind)> {
    let first = tokio::time::timeout_at(deadline.into(), async {
        loop {
            match stream.stream.next().await {
                Some(Ok(WsMessage::Text(t))) => return Ok((t.into(), FrameKind::Text)),
                Some(Ok(WsMessage::Binary(b))) => return Ok((b, FrameKind::Binary)),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return Err(None),
                Some(Err(e)) => return Err(unreadable(&e, stream.max_frame_bytes)),
            }
        }
    })
    .await;
    match first {
        Ok(Ok(first)) => Some(first),
        Err(_) => {
            let why = format!("connect must come within {} ms", within.as_millis());
            sink.close(close_code::POLICY, &why).await;
            None
        }
        // the link is gone: nothing to tell
        Ok(Err(None)) => None,
        Ok(Err(Some((code, why)))) => {
            sink.close(code, &why).await;
            None
        }
    }
}

/// The close code and reason for a frame the WebSocket layer could not read, or `None` when the
/// link itself broke (nothing can be sent then). The layer's errors are only known by their text.
pub(super) fn unreadable(e: &axum::Error, max_frame_bytes: usize) -> Option<(u16, String)> {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") {
        Some((
            close_code::TOO_BIG,
            format!("frame larger than limits.max_frame_bytes ({max_frame_bytes} bytes)"),
        ))
    } else if text.contains("UTF-8") {
        Some((
            close_code::INVALID_DATA,
            "a text frame is not valid UTF-8".to_string(),
        ))
    } else if text.contains("protocol error") && !text.contains("without closing handshake") {
        Some((close_code::PROTOCOL, text))
    } else {
        None
    }
}
