//! What a session hears from a client and says to it, whatever the wire protocol. A [`Codec`] turns the
//! bytes a client sent into [`Request`]s and the session's answers into [`Frame`]s; `jsonrpc` speaks
//! WuKongIM's JSON-RPC 2.0, `wkproto` its binary protocol. A codec holds its connection's wire state (a partial frame, a cipher) and
//! never does I/O: the session loop and the connect phase know only this module's types.

use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use chathook_events::MessageHeader;

use crate::messaging::SendAck;
use crate::presence::Delivery;
use crate::SendError;

/// A frame to write: text (JSON-RPC's, known to be UTF-8, so a WebSocket text message needs no second
/// check) or binary (wkproto's; each one its own WebSocket message).
#[derive(Debug, Clone)]
pub(super) enum Frame {
    Text(Utf8Bytes),
    Binary(Bytes),
}

/// What a client sends to log in.
#[derive(Debug)]
pub(super) struct ConnectRequest<T> {
    /// What the answer carries.
    pub tag: T,
    pub uid: String,
    pub token: String,
    pub device_flag: u8,
    /// The id the client gives its device (empty ones are none).
    pub device_id: Option<String>,
    /// The client's clock, unix milliseconds.
    pub client_timestamp: Option<i64>,
    /// The client's platform in Tencent Cloud Chat's words, when it names one.
    pub platform: Option<String>,
}

/// A message as a client sends it, before the IM core has it.
#[derive(Debug)]
pub(super) struct SendFields {
    pub channel_id: String,
    pub channel_type: u8,
    /// Empty: the server makes one.
    pub client_msg_no: String,
    pub header: MessageHeader,
    pub setting: u8,
    pub expire: u32,
    /// The stored bytes (decrypted, decoded).
    pub payload: Vec<u8>,
}

/// One request from a client, with the tag its answer must carry (JSON-RPC: the request's id).
#[derive(Debug)]
pub(super) enum Request<T> {
    Connect(ConnectRequest<T>),
    Send {
        tag: T,
        send: SendFields,
    },
    RecvAck {
        /// `None` when the client named no readable message id (nothing to acknowledge).
        message_id: Option<i64>,
    },
    Ping {
        tag: T,
    },
    Disconnect,
    /// A request the server cannot act on: answered when it has a tag, and the connection stays (as
    /// WuKongIM does with wrong params).
    Invalid {
        tag: Option<T>,
        why: String,
    },
    /// A request that ends the connection: answered first when it has a tag.
    Refused {
        tag: Option<T>,
        why: String,
    },
}

/// The client broke the wire protocol: the connection ends with this close code and reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Broken {
    pub code: u16,
    pub why: String,
}

/// One wire protocol's side of a connection.
pub(super) trait Codec: Send + 'static {
    /// What ties an answer to its request.
    type Tag: Send + 'static;

    /// Appends the requests in `bytes` (a WebSocket message, or what a TCP read returned) to `out`.
    fn decode(&mut self, bytes: &[u8], out: &mut Vec<Request<Self::Tag>>) -> Result<(), Broken>;
    /// The answer to a `connect` that logged the client in.
    fn connected(&mut self, tag: Self::Tag, time_diff: i64, node_id: u16) -> Frame;
    /// The answer to a refused `connect` (a reason code other than success).
    fn connect_refused(&mut self, tag: Self::Tag, reason_code: u8, why: &str) -> Frame;
    /// The answer to a send.
    fn send_result(&mut self, tag: Self::Tag, result: &Result<SendAck, SendError>) -> Frame;
    /// A message for the client; `own` when the client is the message's sender (another of its
    /// devices), whose copy carries no red dot, as WuKongIM's push does.
    fn recv(&mut self, delivery: &Delivery, own: bool) -> Frame;
    fn pong(&mut self, tag: Self::Tag) -> Frame;
    /// The answer to a [`Request::Invalid`], when the protocol has one.
    fn invalid(&mut self, tag: Self::Tag, why: &str) -> Option<Frame>;
    /// The answer to a [`Request::Refused`], when the protocol has one.
    fn refused(&mut self, tag: Self::Tag, why: &str) -> Option<Frame>;
    /// The server's notice that it ends the connection.
    fn disconnect(&mut self, reason_code: u8, why: &str) -> Frame;
}
