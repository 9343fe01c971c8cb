//! Sending from a backend: `/message/send` and `/message/sendbatch`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{check_uid, ok, ok_data, Status, WithData};
use crate::error::SendError;
use crate::messaging::{Origin, SendRequest};
use crate::Im;
use chathook_events::{ChannelType, ClientInfo, MessageHeader};
use chathook_http::WkJson;
use chathook_http::{ApiError, WkErrorBody};

#[derive(Deserialize, Default, ToSchema)]
pub(super) struct HeaderReq {
    #[serde(default)]
    no_persist: super::Flag,
    #[serde(default)]
    red_dot: super::Flag,
    #[serde(default)]
    sync_once: super::Flag,
}

#[derive(Deserialize, ToSchema)]
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
    /// Standard base64.
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

/// A refused send: WuKongIM's error shape; when the before-send hook refused it, also the hook's code
/// and text (Tencent's `ErrorCode` and `ErrorInfo`).
#[derive(Serialize, ToSchema)]
pub(super) struct SendRefusal {
    #[serde(flatten)]
    error: WkErrorBody,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_info: Option<String>,
}

fn rejected_by_hook(e: &SendError) -> Option<Response> {
    let SendError::RejectedByHook { code, info } = e else {
        return None;
    };
    let body = SendRefusal {
        error: WkErrorBody {
            status: 400,
            msg: e.to_string(),
            code: e.code().to_string(),
            field: None,
        },
        error_code: Some(*code),
        error_info: Some(info.clone()),
    };
    Some((StatusCode::BAD_REQUEST, Json(body)).into_response())
}

/// A stored message's ids.
#[derive(Serialize, ToSchema)]
pub(super) struct Sent {
    message_id: i64,
    client_msg_no: String,
    message_seq: u64,
}

/// `/message/send`'s answer: the message's ids, or a bare OK for a CMD message to subscribers.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum SendAnswer {
    Sent(WithData<Sent>),
    ToSubscribers(Status),
}

/// Sends a message as a backend (from `from_uid`, or the system when empty).
#[utoipa::path(post, path = "/message/send", tag = "messages", request_body = MessageSendReq,
    responses((status = 200, body = SendAnswer),
              (status = 400, body = SendRefusal, description = "with error_code and error_info when the before-send hook refused it"),
              (status = "4XX", body = WkErrorBody)))]
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
        return Ok(Json(SendAnswer::ToSubscribers(ok().0)).into_response());
    }
    let sent = ok_data(Sent {
        message_id: ack.message_id,
        client_msg_no: ack.client_msg_no,
        message_seq: ack.message_seq,
    });
    Ok(Json(SendAnswer::Sent(sent.0)).into_response())
}

#[derive(Deserialize, ToSchema)]
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

/// The recipients a batch send failed for, each with its reason (same order).
#[derive(Serialize, ToSchema)]
pub(super) struct BatchSent {
    fail_uids: Vec<String>,
    reason: Vec<String>,
}

/// `POST /message/sendbatch`: one person message from `from_uid` to each subscriber. Answered bare:
/// `{fail_uids, reason}`, the reasons in the same order as the uids.
#[utoipa::path(post, path = "/message/sendbatch", tag = "messages", request_body = SendBatchReq,
    responses((status = 200, body = BatchSent), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn send_batch(
    State(im): State<Im>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    WkJson(req): WkJson<SendBatchReq>,
) -> Result<Json<BatchSent>, ApiError> {
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
    Ok(Json(BatchSent {
        fail_uids,
        reason: reasons,
    }))
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
