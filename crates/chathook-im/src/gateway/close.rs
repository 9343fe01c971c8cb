//! How a connection ends: [`End`] (why, and what the client is told) and the close codes.

use std::time::Duration;

use chathook_events::PresenceReason;

use super::codec::Codec;
use super::transport::FrameSink;
use crate::error::reason;

/// WebSocket close codes used by the gateway.
pub(super) mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// How a session ends: why (for the event log) and what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct End {
    /// The reason the offline event carries.
    pub presence: PresenceReason,
    /// What the client hears, as far as the link allows.
    pub tell: Tell,
}

/// What a client is told as its connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tell {
    /// Nothing can be or needs to be sent (the link broke, or the client closed).
    Nothing,
    /// The link is closed with a code and a reason (a WebSocket close frame).
    Close { code: u16, why: String },
    /// The protocol's disconnect notice (reason code, reason), then the close.
    Disconnect {
        reason_code: u8,
        why: String,
        code: u16,
    },
}

impl End {
    /// The link broke or the client closed it.
    pub(super) fn link_closed() -> End {
        End {
            presence: PresenceReason::LinkClosed,
            tell: Tell::Nothing,
        }
    }

    /// The client broke the protocol: the disconnect notice with the reason, then close with `code`.
    pub(super) fn protocol(code: u16, why: &str) -> End {
        End::disconnect(
            PresenceReason::ProtocolError,
            reason::SYSTEM_ERROR,
            why.to_string(),
            code,
        )
    }

    /// The server ends the connection: the disconnect notice, then close with `code`.
    pub(super) fn disconnect(
        presence: PresenceReason,
        reason_code: u8,
        why: String,
        code: u16,
    ) -> End {
        End {
            presence,
            tell: Tell::Disconnect {
                reason_code,
                why,
                code,
            },
        }
    }

    /// A kick: the disconnect notice (unless it closes without a word), then close.
    pub(super) fn kicked(kick: crate::presence::Kick) -> End {
        if kick.notify {
            return End::disconnect(
                kick.presence_reason,
                kick.reason_code,
                kick.reason,
                close_code::POLICY,
            );
        }
        End {
            presence: kick.presence_reason,
            tell: Tell::Close {
                code: close_code::POLICY,
                why: kick.reason,
            },
        }
    }

    /// The link could not be read: close with `code` and `why`.
    pub(super) fn unreadable(code: u16, why: String) -> End {
        End {
            presence: PresenceReason::ProtocolError,
            tell: Tell::Close { code, why },
        }
    }

    /// Tells the client (as far as the link allows) and returns the reason the event log gets.
    pub(super) async fn tell<C: Codec, K: FrameSink>(
        self,
        codec: &mut C,
        sink: &mut K,
    ) -> PresenceReason {
        match self.tell {
            Tell::Nothing => {}
            Tell::Close { code, why } => sink.close(code, &why).await,
            Tell::Disconnect {
                reason_code,
                why,
                code,
            } => {
                let notice = codec.disconnect(reason_code, &why);
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    if sink.feed(notice).await.is_ok() {
                        let _ = sink.flush().await;
                    }
                })
                .await;
                sink.close(code, &why).await;
            }
        }
        self.presence
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub(super) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
