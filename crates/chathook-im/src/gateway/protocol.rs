//! WuKongIM's JSON-RPC 2.0 protocol: the frames clients send and the frames the server writes.
//!
//! Payload mapping: a `send` payload given as a JSON object (or any non-string JSON value) is stored as
//! its compact JSON text; a string is decoded as standard base64 when it is valid base64 (the JS SDK's
//! form) and stored as its UTF-8 bytes otherwise. A `recv` payload is the stored bytes as a JSON value
//! when they are valid JSON, and their standard base64 string when they are not.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use chathook_events::{Message, MessageHeader};

/// A frame from a client, before its method is known.
#[derive(Debug, Deserialize)]
pub struct InFrame {
    #[serde(default)]
    pub method: Option<String>,
    /// Ids are strings in WuKongIM's protocol; numbers are accepted and echoed as given.
    #[serde(default)]
    pub id: Option<Value>,
    /// Kept as raw text and parsed once, into the method's own params type.
    #[serde(default)]
    pub params: Option<Box<RawValue>>,
}

impl InFrame {
    /// The params as the method's type; `None` when the frame has none.
    pub fn params<T: serde::de::DeserializeOwned>(&self) -> Option<serde_json::Result<T>> {
        self.params
            .as_ref()
            .map(|raw| serde_json::from_str(raw.get()))
    }
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
}

/// Header flags as JSON-RPC carries them (booleans).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RpcHeader {
    pub no_persist: bool,
    pub red_dot: bool,
    pub sync_once: bool,
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

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendParams {
    #[serde(default)]
    pub client_msg_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub payload: Value,
    #[serde(default)]
    pub header: Option<RpcHeader>,
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
pub fn payload_bytes(payload: &Value) -> Vec<u8> {
    match payload {
        Value::String(s) => STANDARD
            .decode(s.as_bytes())
            .unwrap_or_else(|_| s.as_bytes().to_vec()),
        other => serde_json::to_vec(other).unwrap_or_default(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecvParams<'a> {
    header: RpcHeader,
    setting: u8,
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
pub fn recv_frame(message: &Message, channel_id: &str) -> String {
    let text = std::str::from_utf8(&message.payload).ok();
    let raw: Option<&RawValue> = text.and_then(|t| serde_json::from_str(t).ok());
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
        setting: message.setting,
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

/// The answer to `ping`: a response with the request's id that also names `pong`, which satisfies both
/// the SDKs (matching by id) and WuKongIM's documented sample (`{"method":"pong"}`).
pub fn pong_frame(id: &Value) -> String {
    serde_json::json!({"jsonrpc": "2.0", "method": "pong", "id": id, "result": {}}).to_string()
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
        }
    }

    #[test]
    fn json_payload_is_embedded_and_binary_is_base64() {
        let f: Value =
            serde_json::from_str(&recv_frame(&message(br#"{"type":1}"#), "alice")).unwrap();
        assert_eq!(f["method"], "recv");
        assert_eq!(f["params"]["payload"], serde_json::json!({"type": 1}));
        assert_eq!(f["params"]["messageId"], "42");
        assert_eq!(f["params"]["channelId"], "alice");
        assert_eq!(f["params"]["header"]["redDot"], true);
        let f: Value = serde_json::from_str(&recv_frame(&message(&[0xff, 0]), "alice")).unwrap();
        assert_eq!(f["params"]["payload"], "/wA=");
    }

    #[test]
    fn send_payload_forms() {
        assert_eq!(payload_bytes(&serde_json::json!({"a": 1})), br#"{"a":1}"#);
        assert_eq!(payload_bytes(&Value::String(STANDARD.encode("{}"))), b"{}");
        assert_eq!(
            payload_bytes(&Value::String("héllo!".into())),
            "héllo!".as_bytes()
        );
    }
}
