//! The JSON-RPC codec: WuKongIM's JSON-RPC 2.0 ([`frames`]) behind the gateway's [`Codec`]. A
//! WebSocket message holds one or more JSON objects in a row, as WuKongIM reads a byte stream; every
//! answer carries its request's id. A `recv` frame is the same for every connection that gets the
//! message, so it is rendered once per delivery and shared.

pub mod frames;

use axum::extract::ws::Utf8Bytes;
use serde_json::{json, Value};

use self::frames::{rpc_code, Request as RpcRequest, RequestError};
use super::close::{close_code, truncate};
use super::codec::{Broken, Codec, ConnectRequest, Frame, Request, SendFields};
use crate::config::PayloadFormat;
use crate::error::reason;
use crate::messaging::SendAck;
use crate::presence::Delivery;
use crate::SendError;

/// A JSON-RPC connection's codec.
pub(super) struct JsonRpc {
    /// How `recv` payloads are written (`gateway.payload_format`).
    format: PayloadFormat,
    /// The start of a frame whose end has not arrived (a TCP read, or a WebSocket message, may end
    /// inside one); never longer than `max_frame_bytes`.
    tail: Vec<u8>,
    /// `limits.max_frame_bytes`.
    max_frame_bytes: usize,
}

impl JsonRpc {
    pub(super) fn new(format: PayloadFormat, max_frame_bytes: usize) -> JsonRpc {
        JsonRpc {
            format,
            tail: Vec::new(),
            max_frame_bytes,
        }
    }
}

fn text(s: String) -> Frame {
    Frame::Text(Utf8Bytes::from(s))
}

impl Codec for JsonRpc {
    type Tag = Value;

    fn decode(&mut self, bytes: &[u8], out: &mut Vec<Request<Value>>) -> Result<(), Broken> {
        let malformed = || Broken {
            code: close_code::POLICY,
            why: "malformed JSON-RPC frame".into(),
        };
        let mut push =
            |incoming: frames::Incoming| out.push(request(incoming.id, incoming.request));
        if self.tail.is_empty() {
            let taken = frames::parse_stream(bytes, &mut push).map_err(|_| malformed())?;
            self.tail.extend_from_slice(&bytes[taken..]);
        } else {
            self.tail.extend_from_slice(bytes);
            let taken = frames::parse_stream(&self.tail, &mut push).map_err(|_| malformed())?;
            self.tail.drain(..taken);
        }
        // whitespace between frames is no frame
        if self.tail.iter().all(u8::is_ascii_whitespace) {
            self.tail.clear();
        }
        if self.tail.len() > self.max_frame_bytes {
            return Err(Broken {
                code: close_code::TOO_BIG,
                why: format!(
                    "frame larger than limits.max_frame_bytes ({} bytes)",
                    self.max_frame_bytes
                ),
            });
        }
        Ok(())
    }

    fn connected(&mut self, tag: Value, time_diff: i64, node_id: u16) -> Frame {
        text(frames::connected_frame(&tag, time_diff, node_id))
    }

    fn connect_refused(&mut self, tag: Value, reason_code: u8, why: &str) -> Frame {
        text(frames::result_frame(
            &tag,
            json!({"reasonCode": reason_code, "reason": why}),
        ))
    }

    fn send_result(&mut self, tag: Value, result: &Result<SendAck, SendError>) -> Frame {
        text(match result {
            Ok(ack) => frames::result_frame(
                &tag,
                json!({"messageId": ack.message_id.to_string(), "messageSeq": ack.message_seq,
                       "clientMsgNo": ack.client_msg_no, "reasonCode": reason::SUCCESS}),
            ),
            Err(e) => send_refusal(&tag, e),
        })
    }

    fn recv(&mut self, delivery: &Delivery, own: bool) -> Frame {
        let format = self.format;
        if own && delivery.message.header.red_dot {
            // the sender's other devices: their own copy, without the red dot (not the shared frame)
            let mut message = (*delivery.message).clone();
            message.header.red_dot = false;
            return text(frames::recv_frame(&message, &delivery.channel_id, format));
        }
        Frame::Text(
            delivery
                .frame
                .get_or_init(|| {
                    Utf8Bytes::from(frames::recv_frame(
                        &delivery.message,
                        &delivery.channel_id,
                        format,
                    ))
                })
                .clone(),
        )
    }

    fn pong(&mut self, tag: Value) -> Frame {
        text(frames::pong_frame(&tag))
    }

    fn invalid(&mut self, tag: Value, why: &str) -> Option<Frame> {
        Some(text(frames::error_frame(
            &tag,
            rpc_code::INVALID_PARAMS,
            why,
        )))
    }

    fn refused(&mut self, tag: Value, why: &str) -> Option<Frame> {
        Some(text(frames::error_frame(
            &tag,
            rpc_code::METHOD_NOT_FOUND,
            why,
        )))
    }

    fn disconnect(&mut self, reason_code: u8, why: &str) -> Frame {
        text(frames::disconnect_frame(reason_code, why))
    }
}

/// A parsed frame as the session sees it.
fn request(id: Value, parsed: Result<RpcRequest, RequestError>) -> Request<Value> {
    let tag = (!id.is_null()).then_some(id);
    match parsed {
        Ok(RpcRequest::Connect(p)) => Request::Connect(ConnectRequest {
            tag: tag.unwrap_or(Value::Null),
            uid: p.uid,
            token: p.token,
            device_flag: p.device_flag,
            device_id: p.device_id.filter(|d| !d.is_empty()),
            client_timestamp: p.client_timestamp,
            platform: p.platform,
        }),
        Ok(RpcRequest::Send(p)) => Request::Send {
            tag: tag.unwrap_or(Value::Null),
            send: SendFields {
                channel_id: p.channel_id,
                channel_type: p.channel_type,
                client_msg_no: p.client_msg_no,
                header: p.header.unwrap_or_default().into(),
                setting: p.setting.unwrap_or_default().to_byte(),
                expire: p.expire,
                payload: frames::payload_bytes(&p.payload),
            },
        },
        Ok(RpcRequest::RecvAck(ack)) => Request::RecvAck {
            message_id: ack.message_id(),
        },
        Ok(RpcRequest::Ping) => Request::Ping {
            tag: tag.unwrap_or(Value::Null),
        },
        Ok(RpcRequest::Disconnect) => Request::Disconnect,
        Err(RequestError::BadParams(why)) => Request::Invalid { tag, why },
        Err(RequestError::UnknownMethod(method)) => Request::Refused {
            tag,
            why: format!("unknown method {:?}", truncate(&method, 40)),
        },
        Err(RequestError::NoMethod) => Request::Refused {
            tag: None,
            why: "a JSON-RPC frame needs a method".into(),
        },
    }
}

/// A refused send's result: WuKongIM's reason code, and chathook's code and words.
fn send_refusal(id: &Value, e: &SendError) -> String {
    let mut result = json!({"messageId": "0", "messageSeq": 0, "reasonCode": e.reason_code(),
                            "reason": e.to_string(), "code": e.code()});
    if let SendError::RejectedByHook { code, info } = e {
        // the before-send hook's code and text (Tencent's ErrorCode and ErrorInfo), for the app
        result["errorCode"] = json!(code);
        result["errorInfo"] = json!(info);
    }
    frames::result_frame(id, result)
}
