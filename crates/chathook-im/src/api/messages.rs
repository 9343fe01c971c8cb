//! Sending from a backend: `/message/send` and `/message/sendbatch`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_uid, ok, ok_data};
use crate::error::SendError;
use crate::messaging::{Origin, SendRequest};
use crate::Im;
use chathook_events::{ChannelType, ClientInfo, MessageHeader};
use chathook_http::ApiError;
use chathook_http::WkJson;

#[derive(Deserialize, Default)]
struct HeaderReq {
    #[serde(default)]
    no_persist: super::Flag,
    #[serde(default)]
    red_dot: super::Flag,
    #[serde(default)]
    sync_once: super::Flag,
}

#[derive(Deserialize)]
pub(super) struct MessageSendReq {
    #[serde(default)]
    header: HeaderReq,
    #[serde(default)]
    client_msg_no: String,
    #[serde(default)]
    from_uid: String,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    expire: u32,
    #[serde(default)]
    subscribers: Option<Vec<String>>,
    payload: String,
    /// chathook's addition: the message does not pass the before-send hook.
    #[serde(default)]
    skip_before_send: bool,
}

/// The client of a REST call: its peer address, and the platform Tencent calls `RESTAPI`.
fn rest_client(peer: SocketAddr) -> Arc<ClientInfo> {
    Arc::new(ClientInfo {
        ip: peer.ip().to_canonical().to_string(),
        platform: ClientInfo::REST_API.into(),
    })
}

/// A send the before-send hook refused: WuKongIM's error shape plus the hook's code and text
/// (`error_code`, `error_info`: Tencent's `ErrorCode` and `ErrorInfo`).
fn rejected_by_hook(e: &SendError) -> Option<Response> {
    let SendError::RejectedByHook { code, info } = e else {
        return None;
    };
    let body = json!({"status": 400, "msg": e.to_string(), "code": e.code(), "field": null,
                      "error_code": code, "error_info": info});
    Some((StatusCode::BAD_REQUEST, Json(body)).into_response())
}

pub(super) async fn send(
    State(im): State<Im>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    WkJson(req): WkJson<MessageSendReq>,
) -> Result<Response, ApiError> {
    // An empty from_uid is the system account, on every channel type.
    if !req.from_uid.is_empty() {
        check_uid("from_uid", &req.from_uid)?;
    }
    let subscribers = req.subscribers.filter(|s| !s.is_empty());
    let to_subscribers = subscribers.is_some();
    match (&subscribers, req.channel_id.is_empty()) {
        (None, true) => {
            return Err(ApiError::field(
                "channel_id",
                "channel_id_empty",
                "channel_id must not be empty (or give subscribers for a CMD message)",
            ))
        }
        (Some(_), false) => {
            return Err(ApiError::field(
                "subscribers",
                "subscribers_with_channel",
                "subscribers may be given only with an empty channel_id",
            ))
        }
        (Some(uids), true) => {
            if !req.header.sync_once.0 {
                return Err(ApiError::field(
                    "header.sync_once",
                    "subscribers_need_sync_once",
                    "a message to subscribers must be a CMD message: header.sync_once = 1",
                ));
            }
            uids.iter().try_for_each(|u| check_uid("subscribers", u))?;
        }
        (None, false) => {
            if req.channel_type == ChannelType::Person.as_u8() {
                check_uid("channel_id", &req.channel_id)?;
            }
        }
    }
    let payload = decode_payload(&req.payload)?;
    let client_msg_no = if req.client_msg_no.is_empty() || to_subscribers {
        new_client_msg_no()
    } else {
        req.client_msg_no
    };
    let ack = im
        .send(SendRequest {
            from_uid: req.from_uid,
            channel_id: req.channel_id,
            channel_type: req.channel_type,
            client_msg_no,
            header: req.header.into_header(),
            setting: 0,
            expire: req.expire,
            payload,
            subscribers,
            origin: Origin::Backend,
            client: rest_client(peer),
            skip_before_send: req.skip_before_send,
        })
        .await;
    let ack = match ack {
        Ok(ack) => ack,
        Err(e) => return rejected_by_hook(&e).ok_or_else(|| e.into()),
    };
    if to_subscribers {
        // WuKongIM answers a send to subscribers with a bare OK.
        return Ok(ok().into_response());
    }
    Ok(ok_data(
        json!({"message_id": ack.message_id, "client_msg_no": ack.client_msg_no,
                      "message_seq": ack.message_seq}),
    )
    .into_response())
}

#[derive(Deserialize)]
pub(super) struct SendBatchReq {
    #[serde(default)]
    header: HeaderReq,
    from_uid: String,
    subscribers: Vec<String>,
    payload: String,
    /// chathook's addition: the messages do not pass the before-send hook.
    #[serde(default)]
    skip_before_send: bool,
}

/// Most recipients of one `/message/sendbatch`.
const MAX_BATCH_RECIPIENTS: usize = 10_000;

/// `POST /message/sendbatch`: one person message from `from_uid` to each subscriber. Answered bare:
/// `{fail_uids, reason}`, the reasons in the same order as the uids.
pub(super) async fn send_batch(
    State(im): State<Im>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    WkJson(req): WkJson<SendBatchReq>,
) -> Result<Json<Value>, ApiError> {
    check_uid("from_uid", &req.from_uid)?;
    if req.subscribers.is_empty() {
        return Err(ApiError::field(
            "subscribers",
            "subscribers_empty",
            "subscribers must not be empty",
        ));
    }
    if req.subscribers.len() > MAX_BATCH_RECIPIENTS {
        return Err(ApiError::field(
            "subscribers",
            "too_many_subscribers",
            format!("at most {MAX_BATCH_RECIPIENTS} subscribers"),
        ));
    }
    req.subscribers
        .iter()
        .try_for_each(|u| check_uid("subscribers", u))?;
    let payload = decode_payload(&req.payload)?;
    let header = req.header.into_header();
    let client = rest_client(peer);
    let sends = req.subscribers.iter().map(|to| {
        im.send(SendRequest {
            from_uid: req.from_uid.clone(),
            channel_id: to.clone(),
            channel_type: ChannelType::Person.as_u8(),
            client_msg_no: new_client_msg_no(),
            header,
            setting: 0,
            expire: 0,
            payload: payload.clone(),
            subscribers: None,
            origin: Origin::Backend,
            client: client.clone(),
            skip_before_send: req.skip_before_send,
        })
    });
    let results = futures_util::future::join_all(sends).await;
    let (mut fail_uids, mut reasons) = (Vec::new(), Vec::new());
    for (uid, result) in req.subscribers.iter().zip(results) {
        if let Err(e) = result {
            fail_uids.push(uid.clone());
            reasons.push(e.to_string());
        }
    }
    Ok(Json(json!({"fail_uids": fail_uids, "reason": reasons})))
}

/// WuKongIM's generated `client_msg_no`: a UUID and a trailing 0.
fn new_client_msg_no() -> String {
    format!("{}0", uuid::Uuid::new_v4().simple())
}

fn decode_payload(payload: &str) -> Result<Vec<u8>, ApiError> {
    STANDARD.decode(payload.as_bytes()).map_err(|e| {
        ApiError::field(
            "payload",
            "payload_not_base64",
            format!("payload must be standard base64: {e}"),
        )
    })
}

impl HeaderReq {
    fn into_header(self) -> MessageHeader {
        MessageHeader {
            no_persist: self.no_persist.0,
            red_dot: self.red_dot.0,
            sync_once: self.sync_once.0,
        }
    }
}
