//! Reading history: `/channel/messagesync`, `/messages` and `/channel/max_message_seq`, with WuKongIM's
//! message object (`MessageResp`). Every answer is bare JSON, as WuKongIM gives it.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::store_error;
use super::{check_uid, query_param};
use crate::Im;
use chathook_events::{ChannelType, Message};
use chathook_http::WkJson;
use chathook_http::{ApiError, WkErrorBody};
use chathook_store::{person_channel_key, MessageLookup, PullMode, SyncQuery};

#[derive(Deserialize, ToSchema)]
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

/// A page of channel history, bare as WuKongIM answers it.
#[derive(Serialize, ToSchema)]
pub(super) struct MessagePage {
    start_message_seq: u64,
    end_message_seq: u64,
    /// 1 when more messages follow in the pull direction.
    more: u8,
    messages: Vec<MessageResp>,
}

/// A channel's history from a seq, down or up.
#[utoipa::path(post, path = "/channel/messagesync", tag = "messages", request_body = SyncReq,
    responses((status = 200, body = MessagePage), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn sync(
    State(im): State<Im>,
    WkJson(req): WkJson<SyncReq>,
) -> Result<Json<MessagePage>, ApiError> {
    check_uid("login_uid", &req.login_uid)?;
    let channel_key = channel_key(&req.login_uid, &req.channel_id, req.channel_type)?;
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
            max_bytes: im.config().limits.sync_max_bytes,
            pull_mode,
            now,
        })
        .await
        .map_err(store_error)?;
    // Bare, as WuKongIM answers it (backends read the body straight into their struct).
    Ok(Json(MessagePage {
        start_message_seq: req.start_message_seq,
        end_message_seq: req.end_message_seq,
        more: u8::from(page.more),
        messages: page.messages.iter().map(MessageResp::of).collect(),
    }))
}

/// The storage key of the channel `login_uid` asks about (a person channel is keyed by both users).
pub(super) fn channel_key(
    login_uid: &str,
    channel_id: &str,
    channel_type: u8,
) -> Result<String, ApiError> {
    if channel_id.is_empty() {
        return Err(ApiError::field(
            "channel_id",
            "channel_id_empty",
            "channel_id must not be empty",
        ));
    }
    match ChannelType::from_u8(channel_type) {
        Some(ChannelType::Person) => {
            check_uid("login_uid", login_uid)?;
            Ok(person_channel_key(login_uid, channel_id))
        }
        Some(ChannelType::Group) => Ok(channel_id.to_string()),
        None => Err(ApiError::field(
            "channel_type",
            "channel_type_unsupported",
            format!("channel_type {channel_type} is not supported (1 person, 2 group)"),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
pub(super) struct MessagesReq {
    #[serde(default)]
    login_uid: String,
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    message_seqs: Vec<u64>,
    #[serde(default)]
    message_ids: Vec<i64>,
    #[serde(default)]
    client_msg_nos: Vec<String>,
}

/// Most lookups one `/messages` call may ask for.
const MAX_LOOKUPS: usize = 1000;

/// `POST /messages`: messages of one channel by seqs, ids or client_msg_nos; answered like a sync page.
#[utoipa::path(post, path = "/messages", tag = "messages", request_body = MessagesReq,
    responses((status = 200, body = MessagePage), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn find(
    State(im): State<Im>,
    WkJson(req): WkJson<MessagesReq>,
) -> Result<Json<MessagePage>, ApiError> {
    let channel_key = channel_key(&req.login_uid, &req.channel_id, req.channel_type)?;
    let asked = req.message_seqs.len() + req.message_ids.len() + req.client_msg_nos.len();
    if asked > MAX_LOOKUPS {
        return Err(ApiError::field(
            "message_seqs",
            "too_many_lookups",
            format!("at most {MAX_LOOKUPS} seqs, ids and client_msg_nos together"),
        ));
    }
    let found = im
        .store()
        .find_messages(MessageLookup {
            channel_key,
            channel_type: req.channel_type,
            seqs: req.message_seqs,
            message_ids: req.message_ids,
            client_msg_nos: req.client_msg_nos,
            max_bytes: im.config().limits.sync_max_bytes,
        })
        .await
        .map_err(store_error)?;
    // `more: 1` when found messages were left out for the byte budget: ask again for the rest.
    Ok(Json(MessagePage {
        start_message_seq: 0,
        end_message_seq: 0,
        more: u8::from(found.more),
        messages: found.messages.iter().map(MessageResp::of).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct MessageReq {
    /// Required for a person channel (it is keyed by both users).
    #[serde(default)]
    login_uid: String,
    channel_id: String,
    channel_type: u8,
    /// One of `message_id` and `client_msg_no`.
    #[serde(default)]
    message_id: i64,
    #[serde(default)]
    client_msg_no: String,
}

/// `POST /message`'s answer: the message bare, or WuKongIM's `{"status":404}` (HTTP 200) when there is
/// none.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum OneMessage {
    Found(MessageResp),
    Missing(super::Status),
}

/// `POST /message`: one message of a channel by its id (or else its client_msg_no).
#[utoipa::path(post, path = "/message", tag = "messages", request_body = MessageReq,
    responses((status = 200, body = OneMessage), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn find_one(
    State(im): State<Im>,
    WkJson(req): WkJson<MessageReq>,
) -> Result<Json<OneMessage>, ApiError> {
    let channel_key = channel_key(&req.login_uid, &req.channel_id, req.channel_type)?;
    let (message_ids, client_msg_nos) = match (req.message_id, req.client_msg_no) {
        (0, no) if no.is_empty() => (vec![], vec![]),
        (0, no) => (vec![], vec![no]),
        (id, _) => (vec![id], vec![]),
    };
    let found = im
        .store()
        .find_messages(MessageLookup {
            channel_key,
            channel_type: req.channel_type,
            seqs: Vec::new(),
            message_ids,
            client_msg_nos,
            max_bytes: im.config().limits.sync_max_bytes,
        })
        .await
        .map_err(store_error)?;
    Ok(Json(match found.messages.first() {
        Some(m) => OneMessage::Found(MessageResp::of(m)),
        None => OneMessage::Missing(super::Status { status: 404 }),
    }))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct DeleteRangeReq {
    /// Required for a person channel.
    #[serde(default)]
    login_uid: String,
    channel_id: String,
    channel_type: u8,
    /// The first seq deleted (at least 1).
    start_msg_seq: u64,
    /// The last seq deleted (at least `start_msg_seq`).
    end_msg_seq: u64,
}

/// `POST /messages/deleteRange`: deletes a channel's messages from `start_msg_seq` to `end_msg_seq`
/// (both included) from its history, as WuKongIM does; the channel's seqs go on after its newest.
#[utoipa::path(post, path = "/messages/deleteRange", tag = "messages", request_body = DeleteRangeReq,
    responses((status = 200, body = super::Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn delete_range(
    State(im): State<Im>,
    WkJson(req): WkJson<DeleteRangeReq>,
) -> Result<Json<super::Status>, ApiError> {
    let channel_key = channel_key(&req.login_uid, &req.channel_id, req.channel_type)?;
    if req.start_msg_seq == 0 {
        return Err(ApiError::field(
            "start_msg_seq",
            "start_msg_seq_zero",
            "start_msg_seq must be at least 1",
        ));
    }
    if req.end_msg_seq < req.start_msg_seq {
        return Err(ApiError::field(
            "end_msg_seq",
            "end_before_start",
            "end_msg_seq must not be below start_msg_seq",
        ));
    }
    im.store()
        .delete_range(
            &channel_key,
            req.channel_type,
            req.start_msg_seq,
            req.end_msg_seq,
        )
        .await
        .map_err(store_error)?;
    Ok(super::ok())
}

/// A channel's newest seq.
#[derive(Serialize, ToSchema)]
pub(super) struct MaxSeq {
    message_seq: u64,
}

/// `GET /channel/max_message_seq?channel_id=&channel_type=[&login_uid=]`: `{message_seq}`.
#[utoipa::path(get, path = "/channel/max_message_seq", tag = "messages",
    params(("channel_id" = String, Query), ("channel_type" = u8, Query),
           ("login_uid" = Option<String>, Query, description = "for a person channel: the other member")),
    responses((status = 200, body = MaxSeq), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn max_message_seq(
    State(im): State<Im>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<MaxSeq>, ApiError> {
    let channel_id: String = query_param(&q, "channel_id")?;
    let channel_type: u8 = query_param(&q, "channel_type")?;
    let login_uid = q.get("login_uid").map(String::as_str).unwrap_or_default();
    let key = channel_key(login_uid, &channel_id, channel_type)?;
    let seq = im
        .store()
        .last_seq(&key, channel_type)
        .await
        .map_err(store_error)?;
    Ok(Json(MaxSeq { message_seq: seq }))
}

pub(super) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// WuKongIM's `MessageResp`. For a person channel `channel_id` is the member who is not the sender,
/// whoever asks (as the sender addressed it), and the system account shows as `from_uid: ""`.
#[derive(Serialize, ToSchema)]
pub(super) struct MessageResp {
    header: HeaderResp,
    setting: u8,
    message_id: i64,
    message_idstr: String,
    client_msg_no: String,
    message_seq: u64,
    from_uid: String,
    channel_id: String,
    channel_type: u8,
    expire: u32,
    /// Unix seconds.
    timestamp: i64,
    /// Standard base64.
    payload: String,
}

/// The header flags, 0/1 integers.
#[derive(Serialize, ToSchema)]
pub(super) struct HeaderResp {
    no_persist: u8,
    red_dot: u8,
    sync_once: u8,
}

impl MessageResp {
    pub(super) fn of(m: &Message) -> MessageResp {
        MessageResp {
            header: HeaderResp {
                no_persist: u8::from(m.header.no_persist),
                red_dot: u8::from(m.header.red_dot),
                sync_once: u8::from(m.header.sync_once),
            },
            setting: m.setting,
            message_id: m.message_id,
            message_idstr: m.message_id.to_string(),
            client_msg_no: m.client_msg_no.clone(),
            message_seq: m.message_seq,
            from_uid: m.from_uid.clone(),
            channel_id: m.channel_id.clone(),
            channel_type: m.channel_type,
            expire: m.expire,
            timestamp: m.timestamp,
            payload: STANDARD.encode(&m.payload),
        }
    }
}
