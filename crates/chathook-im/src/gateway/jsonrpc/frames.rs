//! WuKongIM's JSON-RPC 2.0 frames: what clients send and what the server writes.
//!
//! Payload mapping: a `send` payload given as a JSON object (or any non-string JSON value) is stored as
//! its compact JSON text; a string is decoded as standard base64 when it is valid base64 (the JS SDK's
//! form) and stored as its UTF-8 bytes otherwise. A `recv` payload is the standard base64 of the stored
//! bytes (WuKongIM >= 2.2.3); with `gateway.payload_format = "json"` (clients written for WuKongIM <= 2.2.2)
//! it is the stored bytes as a JSON value when they are valid JSON, and their base64 string when not.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use chathook_events::{Message, MessageHeader};

use crate::config::PayloadFormat;

/// The protocol version reported as `serverVersion` in `connect` results (WuKongIM's latest, 5).
pub const PROTOCOL_VERSION: u8 = 5;

/// A frame from a client, before its method is known.
#[derive(Debug, Deserialize)]
struct InFrame<'a> {
    #[serde(default)]
    method: Option<String>,
    /// Ids are strings in WuKongIM's protocol; numbers are accepted and echoed as given.
    #[serde(default)]
    id: Option<Value>,
    /// Kept as raw text and parsed once, into the method's own params type.
    #[serde(default, borrow)]
    params: Option<&'a RawValue>,
}

/// A client's request with its params parsed (once) into the method's type.
#[derive(Debug)]
pub enum Request {
    Connect(ConnectParams),
    Send(SendParams),
    RecvAck(RecvAckParams),
    Ping,
    Disconnect,
}

/// Why a well-formed JSON-RPC frame is not a request the server can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The frame names no method.
    NoMethod,
    /// A method the server does not offer.
    UnknownMethod(String),
    /// A known method whose params are missing or have the wrong shape.
    BadParams(String),
}

/// One JSON-RPC frame from a client: its id (`Null` for notifications) and what it asks.
#[derive(Debug)]
pub struct Incoming {
    pub id: Value,
    pub request: Result<Request, RequestError>,
}

/// The frame is not JSON-RPC at all (not a JSON object): the connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// Parses the JSON-RPC frames a WebSocket message holds (text or binary: one or more JSON objects in a
/// row, as WuKongIM reads a byte stream).
pub fn parse_frames(bytes: &[u8]) -> impl Iterator<Item = Result<Incoming, Malformed>> + '_ {
    serde_json::Deserializer::from_slice(bytes)
        .into_iter::<InFrame<'_>>()
        .map(|frame| frame.map(InFrame::into_incoming).map_err(|_| Malformed))
}

/// Parses the JSON-RPC frames at the front of `bytes` (a byte stream: values back to back, as WuKongIM
/// reads both its ports), handing each to `each`; the bytes they took, the rest being the start of a
/// frame still to come.
pub fn parse_stream(bytes: &[u8], mut each: impl FnMut(Incoming)) -> Result<usize, Malformed> {
    let mut frames = serde_json::Deserializer::from_slice(bytes).into_iter::<InFrame<'_>>();
    let mut taken = 0;
    loop {
        match frames.next() {
            Some(Ok(frame)) => {
                each(frame.into_incoming());
                taken = frames.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => return Ok(taken),
            Some(Err(_)) => return Err(Malformed),
            None => return Ok(bytes.len()),
        }
    }
}

impl InFrame<'_> {
    fn into_incoming(self) -> Incoming {
        let id = self.id.unwrap_or(Value::Null);
        let request = match self.method.as_deref() {
            None => Err(RequestError::NoMethod),
            Some("connect") => typed(self.params, "connect").map(Request::Connect),
            Some("send") => typed(self.params, "send").map(Request::Send),
            Some("recvack") => typed(self.params, "recvack").map(Request::RecvAck),
            Some("ping") => Ok(Request::Ping),
            Some("disconnect") => Ok(Request::Disconnect),
            Some(other) => Err(RequestError::UnknownMethod(other.to_string())),
        };
        Incoming { id, request }
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    params: Option<&RawValue>,
    method: &str,
) -> Result<T, RequestError> {
    let raw = params.ok_or_else(|| RequestError::BadParams(format!("{method} needs params")))?;
    serde_json::from_str(raw.get())
        .map_err(|e| RequestError::BadParams(format!("invalid {method} params: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectParams {
    pub uid: String,
    pub token: String,
    #[serde(default)]
    pub device_flag: u8,
    #[serde(default)]
    pub device_id: Option<String>,
    #[serde(default)]
    pub client_timestamp: Option<i64>,
    /// chathook's addition: the client's platform in Tencent Cloud Chat's words (`iOS`, `Android`,
    /// `Web`, `Windows`, `Mac`, `iPad`, `Linux`), for the webhooks that name it.
    #[serde(default)]
    pub platform: Option<String>,
}

/// Header flags as JSON-RPC carries them (booleans; false flags are left out when written, as WuKongIM does).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RpcHeader {
    #[serde(skip_serializing_if = "is_false")]
    pub no_persist: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub red_dot: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub sync_once: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub dup: bool,
}

impl From<RpcHeader> for MessageHeader {
    fn from(h: RpcHeader) -> Self {
        MessageHeader {
            no_persist: h.no_persist,
            red_dot: h.red_dot,
            sync_once: h.sync_once,
        }
    }
}

/// WuKongIM's setting byte as JSON-RPC carries it: an object of booleans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RpcSetting {
    #[serde(skip_serializing_if = "is_false")]
    pub receipt: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub signal: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub stream: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub topic: bool,
}

/// The setting byte's bits (wkproto `Setting`).
mod setting_bit {
    pub const RECEIPT: u8 = 1 << 7;
    pub const SIGNAL: u8 = 1 << 5;
    pub const TOPIC: u8 = 1 << 3;
    pub const STREAM: u8 = 1 << 1;
}

impl RpcSetting {
    pub fn to_byte(self) -> u8 {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        bit(self.receipt, setting_bit::RECEIPT)
            | bit(self.signal, setting_bit::SIGNAL)
            | bit(self.topic, setting_bit::TOPIC)
            | bit(self.stream, setting_bit::STREAM)
    }

    pub fn from_byte(byte: u8) -> Self {
        RpcSetting {
            receipt: byte & setting_bit::RECEIPT != 0,
            signal: byte & setting_bit::SIGNAL != 0,
            stream: byte & setting_bit::STREAM != 0,
            topic: byte & setting_bit::TOPIC != 0,
        }
    }
}

fn is_false(v: &bool) -> bool {
    !*v
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    #[serde(default)]
    pub client_msg_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    /// Standard base64 (WuKongIM >= 2.2.3 and its SDKs) or, as older servers took it, a JSON value.
    pub payload: Box<RawValue>,
    #[serde(default)]
    pub header: Option<RpcHeader>,
    #[serde(default)]
    pub setting: Option<RpcSetting>,
    #[serde(default)]
    pub expire: u32,
}

/// `recvack` params; `messageId` may be a string or a number.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecvAckParams {
    pub message_id: Value,
    #[serde(default)]
    pub message_seq: u64,
}

impl RecvAckParams {
    pub fn message_id(&self) -> Option<i64> {
        match &self.message_id {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
}

/// Turns a `send` payload into the stored bytes (see the module doc).
pub fn payload_bytes(payload: &RawValue) -> Vec<u8> {
    match serde_json::from_str::<String>(payload.get()) {
        Ok(s) => match STANDARD.decode(s.as_bytes()) {
            Ok(bytes) => bytes,
            Err(_) => s.into_bytes(),
        },
        // Any other JSON value: its text as sent, compacted.
        Err(_) => serde_json::from_str::<Value>(payload.get())
            .and_then(|v| serde_json::to_vec(&v))
            .unwrap_or_default(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecvParams<'a> {
    /// Always present (the official Python client refuses a `recv` without it).
    header: RpcHeader,
    #[serde(skip_serializing_if = "Option::is_none")]
    setting: Option<RpcSetting>,
    message_id: String,
    message_seq: u64,
    timestamp: i64,
    channel_id: &'a str,
    channel_type: u8,
    from_uid: &'a str,
    client_msg_no: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    expire: u32,
    payload: PayloadOut<'a>,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Serialize)]
#[serde(untagged)]
enum PayloadOut<'a> {
    Json(&'a RawValue),
    Base64(String),
}

#[derive(Serialize)]
struct Notification<'a, P: Serialize> {
    jsonrpc: &'static str,
    method: &'a str,
    params: P,
}

/// Renders the `recv` notification of `message` as seen in `channel_id`.
pub fn recv_frame(message: &Message, channel_id: &str, format: PayloadFormat) -> String {
    let raw: Option<&RawValue> = match format {
        PayloadFormat::Base64 => None,
        PayloadFormat::Json => std::str::from_utf8(&message.payload)
            .ok()
            .and_then(|t| serde_json::from_str(t).ok()),
    };
    let payload = match raw {
        Some(r) => PayloadOut::Json(r),
        None => PayloadOut::Base64(STANDARD.encode(&message.payload)),
    };
    let h = message.header;
    let params = RecvParams {
        header: RpcHeader {
            no_persist: h.no_persist,
            red_dot: h.red_dot,
            sync_once: h.sync_once,
            dup: false,
        },
        setting: (message.setting != 0).then(|| RpcSetting::from_byte(message.setting)),
        message_id: message.message_id.to_string(),
        message_seq: message.message_seq,
        timestamp: message.timestamp,
        channel_id,
        channel_type: message.channel_type,
        from_uid: &message.from_uid,
        client_msg_no: &message.client_msg_no,
        expire: message.expire,
        payload,
    };
    serde_json::to_string(&Notification {
        jsonrpc: "2.0",
        method: "recv",
        params,
    })
    .unwrap_or_default()
}

/// A JSON-RPC success response.
pub fn result_frame(id: &Value, result: Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// The successful `connect` result: WuKongIM's fields for JSON-RPC (no `serverKey` or `salt`).
pub fn connected_frame(id: &Value, time_diff: i64, node_id: u16) -> String {
    result_frame(
        id,
        serde_json::json!({"serverVersion": PROTOCOL_VERSION, "timeDiff": time_diff,
            "reasonCode": crate::error::reason::SUCCESS, "nodeId": node_id}),
    )
}

/// A JSON-RPC error response.
pub fn error_frame(id: &Value, code: i64, message: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
        .to_string()
}

/// The server's `disconnect` notification.
pub fn disconnect_frame(reason_code: u8, reason: &str) -> String {
    serde_json::json!({"jsonrpc": "2.0", "method": "disconnect",
        "params": {"reasonCode": reason_code, "reason": reason}})
    .to_string()
}

/// The answer to `ping`: a plain response with the request's id and an empty result. A response that
/// also names a method is refused by WuKongIM's official Python client.
pub fn pong_frame(id: &Value) -> String {
    result_frame(id, serde_json::json!({}))
}

/// JSON-RPC's standard error codes.
pub mod rpc_code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Message {
        Message {
            message_id: 42,
            client_msg_no: "c1".into(),
            message_seq: 7,
            from_uid: "alice".into(),
            channel_id: "bob".into(),
            channel_type: 1,
            header: MessageHeader {
                red_dot: true,
                ..Default::default()
            },
            setting: 0,
            expire: 0,
            timestamp: 1_700_000_000,
            payload: payload.to_vec(),
            sender: Default::default(),
        }
    }

    fn recv(m: &Message, format: PayloadFormat) -> Value {
        serde_json::from_str(&recv_frame(m, "alice", format)).unwrap()
    }

    #[test]
    fn recv_payload_is_base64_unless_the_json_form_is_set() {
        let m = message(br#"{"type":1}"#);
        let f = recv(&m, PayloadFormat::Base64);
        assert_eq!(f["method"], "recv");
        assert_eq!(f["params"]["payload"], STANDARD.encode(br#"{"type":1}"#));
        assert_eq!(f["params"]["messageId"], "42");
        assert_eq!(f["params"]["channelId"], "alice");
        let f = recv(&m, PayloadFormat::Json);
        assert_eq!(f["params"]["payload"], serde_json::json!({"type": 1}));
        let f = recv(&message(&[0xff, 0]), PayloadFormat::Json);
        assert_eq!(f["params"]["payload"], "/wA=");
    }

    #[test]
    fn recv_header_is_always_an_object_and_setting_an_object_or_absent() {
        let mut m = message(b"x");
        m.header = MessageHeader::default();
        let f = recv(&m, PayloadFormat::Base64);
        assert_eq!(f["params"]["header"], serde_json::json!({}));
        assert!(f["params"].get("setting").is_none());
        m.header.red_dot = true;
        m.setting = RpcSetting {
            receipt: true,
            topic: true,
            ..Default::default()
        }
        .to_byte();
        let f = recv(&m, PayloadFormat::Base64);
        assert_eq!(f["params"]["header"], serde_json::json!({"redDot": true}));
        assert_eq!(
            f["params"]["setting"],
            serde_json::json!({"receipt": true, "topic": true})
        );
    }

    #[test]
    fn setting_bits_round_trip() {
        for byte in [0u8, 0x80, 0x20, 0x08, 0x02, 0xaa] {
            assert_eq!(RpcSetting::from_byte(byte).to_byte(), byte & 0xaa);
        }
    }

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    #[test]
    fn send_payload_forms() {
        assert_eq!(payload_bytes(&raw(r#"{ "a": 1 }"#)), br#"{"a":1}"#);
        assert_eq!(
            payload_bytes(&raw(&format!("\"{}\"", STANDARD.encode("{}")))),
            b"{}"
        );
        assert_eq!(payload_bytes(&raw("\"héllo!\"")), "héllo!".as_bytes());
    }

    #[test]
    fn ping_is_answered_with_a_plain_response() {
        let f: Value = serde_json::from_str(&pong_frame(&Value::from("7"))).unwrap();
        assert_eq!(
            f,
            serde_json::json!({"jsonrpc": "2.0", "id": "7", "result": {}})
        );
    }

    #[test]
    fn frames_parse_once_into_typed_requests() {
        let text = br#"{"id":"1","method":"ping"}{"method":"recvack","params":{"messageId":"9"}}
            {"id":"2","method":"send","params":{"channelId":"g"}}{"id":"3","method":"nope"}{"id":"4"}"#;
        let got: Vec<_> = parse_frames(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(got.len(), 5);
        assert!(matches!(got[0].request, Ok(Request::Ping)));
        assert!(matches!(&got[1].request, Ok(Request::RecvAck(a)) if a.message_id() == Some(9)));
        assert!(matches!(&got[2].request, Err(RequestError::BadParams(e)) if e.contains("send")));
        assert_eq!(
            got[3].request.as_ref().unwrap_err(),
            &RequestError::UnknownMethod("nope".into())
        );
        assert_eq!(
            got[4].request.as_ref().unwrap_err(),
            &RequestError::NoMethod
        );
        assert!(parse_frames(b"{not json").next().unwrap().is_err());
        assert!(parse_frames(b"[1]").next().unwrap().is_err());
    }
}
