//! WuKongIM's binary protocol, wkproto, as WuKongIM v2.2.5 serves it and its app SDKs speak it
//! (`reference/wukongim-binary.md`): the packets and which fields each protocol version carries
//! ([`packet`]), framing on a byte stream ([`frame`]), the primitives of a body ([`wire`]), and the
//! connection's X25519 + AES cipher ([`cipher`]).
//!
//! Bytes in, packets out: this crate does no I/O and draws no randomness (the caller passes a
//! connection's secret and salt), so the gateway, the tests' binary client and the bench's load
//! generator share it, and the reference's worked example is checked byte for byte. It must never
//! panic on input: every malformed frame is a [`DecodeError`] naming what was wrong.

pub mod cipher;
pub mod frame;
pub mod packet;
mod wire;

pub use cipher::{public_key, Cipher};
pub use frame::{decode, encode};
pub use packet::{
    kind, Connack, Connect, Disconnect, Flags, Packet, Recv, RecvStream, Recvack, Send, Sendack,
    Setting, Sub, Suback, LATEST_VERSION,
};
pub use wire::MAX_REMAINING_LENGTH;

/// A frame that cannot be read. Its `Display` is the reason a connection is closed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("packet type {0} is not a wkproto packet")]
    UnknownType(u8),
    #[error("the remaining length takes more than 4 bytes")]
    LengthTooLong,
    #[error("a packet of {len} bytes is over the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("the packet ends inside {field}")]
    Truncated { field: &'static str },
    #[error("{field} is not UTF-8")]
    NotUtf8 { field: &'static str },
}

/// A packet that cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{field} is {len} bytes; a string holds at most 65535")]
    StringTooLong { field: &'static str, len: usize },
    #[error("a body of {len} bytes is longer than a remaining length can say")]
    TooLarge { len: usize },
}

/// A key exchange or payload that does not work out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("the key is not base64")]
    KeyNotBase64,
    #[error("the key is shorter than 32 bytes")]
    KeyTooShort,
    #[error("the salt is shorter than 16 bytes")]
    SaltTooShort,
    #[error("the payload is not base64")]
    PayloadNotBase64,
    #[error("the payload does not decrypt (bad padding)")]
    BadPadding,
}
