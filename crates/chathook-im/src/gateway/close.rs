//! How a connection ends on the wire: the close codes, what a frame the WebSocket layer could not read
//! means, the `disconnect` notification and the close frame with its reason.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes};
use chathook_events::PresenceReason;
use futures_util::SinkExt;

use super::Sink;
use crate::error::reason;

/// WebSocket close codes used by the gateway.
pub(super) mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// Why a connection ends, with what the client is told.
pub(super) enum End {
    /// Nothing can be or needs to be sent (the link broke, or the client closed).
    Quiet(PresenceReason),
    /// A close frame with a code and a reason.
    Close(PresenceReason, u16, String),
    /// A `disconnect` notification (reason code, reason), then a close frame with the code.
    Disconnect(PresenceReason, u8, String, u16),
}

impl End {
    /// The client broke the protocol: `disconnect` with the reason, then close with `code`.
    pub(super) fn protocol(code: u16, why: &str) -> End {
        End::Disconnect(
            PresenceReason::ProtocolError,
            reason::SYSTEM_ERROR,
            why.to_string(),
            code,
        )
    }

    /// Tells the client (as far as the link allows) and returns the reason the event log gets.
    pub(super) async fn tell(self, sink: &mut Sink, kind: super::FrameKind) -> PresenceReason {
        match self {
            End::Quiet(r) => r,
            End::Close(r, code, why) => {
                close(sink, code, &why).await;
                r
            }
            End::Disconnect(r, reason_code, why, code) => {
                let frame = super::protocol::disconnect_frame(reason_code, &why);
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    sink.send(kind.message(frame.into())),
                )
                .await;
                close(sink, code, &why).await;
                r
            }
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

/// Sends a close frame with a reason (cut to the 123 bytes a close frame allows).
pub(super) async fn close(sink: &mut Sink, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(truncate(reason, 123)),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        sink.send(WsMessage::Close(Some(frame))),
    )
    .await;
}

/// `s` cut to at most `max` bytes on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
