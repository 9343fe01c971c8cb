//! `/message/send`, `/channel/messagesync` and the CMD queue's `/message/sync` and `/message/syncack`,
//! with WuKongIM's message object (`MessageResp`).

use axum::extract::State;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::store_error;
use super::{check_uid, ok, ok_data};
use crate::messaging::{Origin, SendRequest};
use crate::Im;
use chathook_events::{ChannelType, Message, MessageHeader};
use chathook_http::ApiError;
use chathook_http::WkJson;
use chathook_store::{person_channel_key, PullMode, SyncQuery};

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
}

pub(super) async fn send(
    State(im): State<Im>,
    WkJson(req): WkJson<MessageSendReq>,
) -> Result<Json<Value>, ApiError> {
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
    let payload = STANDARD.decode(req.payload.as_bytes()).map_err(|e| {
        ApiError::field(
            "payload",
            "payload_not_base64",
            format!("payload must be standard base64: {e}"),
        )
    })?;
    let client_msg_no = if req.client_msg_no.is_empty() || to_subscribers {
        // WuKongIM makes one: a UUID and a trailing 0.
        format!("{}0", uuid::Uuid::new_v4().simple())
    } else {
        req.client_msg_no
    };
    let ack = im
        .send(SendRequest {
            from_uid: req.from_uid,
            channel_id: req.channel_id,
            channel_type: req.channel_type,
            client_msg_no,
            header: MessageHeader {
                no_persist: req.header.no_persist.0,
                red_dot: req.header.red_dot.0,
                sync_once: req.header.sync_once.0,
            },
            setting: 0,
            expire: req.expire,
            payload,
            subscribers,
            origin: Origin::Backend,
        })
        .await?;
    if to_subscribers {
        // WuKongIM answers a send to subscribers with a bare OK.
        return Ok(ok());
    }
    Ok(ok_data(
        json!({"message_id": ack.message_id, "client_msg_no": ack.client_msg_no,
                      "message_seq": ack.message_seq}),
    ))
}

#[derive(Deserialize)]
pub(super) struct SyncReq {
    login_uid: String,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    start_message_seq: u64,
    #[serde(default)]
    end_message_seq: u64,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    pull_mode: u8,
}

/// Page size when the request gives none.
const DEFAULT_SYNC_LIMIT: usize = 100;

pub(super) async fn sync(
    State(im): State<Im>,
    WkJson(req): WkJson<SyncReq>,
) -> Result<Json<Value>, ApiError> {
    check_uid("login_uid", &req.login_uid)?;
    if req.channel_id.is_empty() {
        return Err(ApiError::field(
            "channel_id",
            "channel_id_empty",
            "channel_id must not be empty",
        ));
    }
    let channel_key = match ChannelType::from_u8(req.channel_type) {
        Some(ChannelType::Person) => person_channel_key(&req.login_uid, &req.channel_id),
        Some(ChannelType::Group) => req.channel_id.clone(),
        None => {
            return Err(ApiError::field(
                "channel_type",
                "channel_type_unsupported",
                format!(
                    "channel_type {} is not supported (1 person, 2 group)",
                    req.channel_type
                ),
            ))
        }
    };
    let pull_mode = match req.pull_mode {
        0 => PullMode::Down,
        1 => PullMode::Up,
        n => {
            return Err(ApiError::field(
                "pull_mode",
                "pull_mode_invalid",
                format!("pull_mode must be 0 (down) or 1 (up), got {n}"),
            ))
        }
    };
    let max = im.config().limits.sync_max_limit;
    let limit = match req.limit {
        0 => DEFAULT_SYNC_LIMIT.min(max),
        n => n.min(max),
    };
    let now = unix_now();
    let page = im
        .store()
        .sync(SyncQuery {
            channel_key,
            channel_type: req.channel_type,
            start_seq: req.start_message_seq,
            end_seq: req.end_message_seq,
            limit,
            pull_mode,
            now,
        })
        .await
        .map_err(store_error)?;
    let messages: Vec<Value> = page.messages.iter().map(message_resp).collect();
    // Bare, as WuKongIM answers it (backends read the body straight into their struct).
    Ok(Json(json!({
        "start_message_seq": req.start_message_seq,
        "end_message_seq": req.end_message_seq,
        "more": u8::from(page.more),
        "messages": messages,
    })))
}

#[derive(Deserialize)]
pub(super) struct CmdSyncReq {
    uid: String,
    /// The last queue position the caller has (0: from the start).
    #[serde(default)]
    message_seq: u64,
    #[serde(default)]
    limit: usize,
}

/// Page size of `/message/sync` when the request gives none (WuKongIM's).
const DEFAULT_CMD_SYNC_LIMIT: usize = 200;

/// `POST /message/sync`: the user's queued CMD messages after `message_seq`, a bare array; each
/// `message_seq` is the message's queue position, to acknowledge with `/message/syncack`.
pub(super) async fn cmd_sync(
    State(im): State<Im>,
    WkJson(req): WkJson<CmdSyncReq>,
) -> Result<Json<Value>, ApiError> {
    check_uid("uid", &req.uid)?;
    let max = im.config().limits.sync_max_limit;
    let limit = match req.limit {
        0 => DEFAULT_CMD_SYNC_LIMIT.min(max),
        n => n.min(max),
    };
    let messages = im
        .store()
        .cmd_messages(&req.uid, req.message_seq, limit, unix_now())
        .await
        .map_err(store_error)?;
    Ok(Json(Value::Array(
        messages.iter().map(message_resp).collect(),
    )))
}

#[derive(Deserialize)]
pub(super) struct CmdSyncAckReq {
    uid: String,
    last_message_seq: u64,
}

/// `POST /message/syncack`: removes the user's queued CMD messages up to `last_message_seq`.
pub(super) async fn cmd_sync_ack(
    State(im): State<Im>,
    WkJson(req): WkJson<CmdSyncAckReq>,
) -> Result<Json<Value>, ApiError> {
    check_uid("uid", &req.uid)?;
    if req.last_message_seq == 0 {
        return Err(ApiError::field(
            "last_message_seq",
            "last_message_seq_zero",
            "last_message_seq must not be 0",
        ));
    }
    im.store()
        .ack_cmd_messages(&req.uid, req.last_message_seq)
        .await
        .map_err(store_error)?;
    Ok(ok())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// WuKongIM's `MessageResp`. For a person channel `channel_id` is the member who is not the sender,
/// whoever asks (as the sender addressed it), and the system account shows as `from_uid: ""`.
pub fn message_resp(m: &Message) -> Value {
    json!({
        "header": {"no_persist": u8::from(m.header.no_persist), "red_dot": u8::from(m.header.red_dot),
                   "sync_once": u8::from(m.header.sync_once)},
        "setting": m.setting,
        "message_id": m.message_id,
        "message_idstr": m.message_id.to_string(),
        "client_msg_no": m.client_msg_no,
        "message_seq": m.message_seq,
        "from_uid": m.from_uid,
        "channel_id": m.channel_id,
        "channel_type": m.channel_type,
        "expire": m.expire,
        "timestamp": m.timestamp,
        "payload": STANDARD.encode(&m.payload),
    })
}
