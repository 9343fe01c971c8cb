//! `/conversation/sync` and `/conversations/setUnread|clearUnread|delete` (WuKongIM's bodies; the sync
//! answer is a bare array).

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::store_error;
use super::history::MessageResp;
use super::{check_uid, ok, Status};
use crate::conversations::{parse_client_seqs, ConversationQuery};
use crate::Im;
use chathook_http::{ApiError, WkErrorBody, WkJson};

#[derive(Deserialize, ToSchema)]
pub(super) struct ConversationSyncReq {
    uid: String,
    #[serde(default)]
    version: i64,
    #[serde(default)]
    last_msg_seqs: String,
    #[serde(default)]
    msg_count: usize,
    #[serde(default)]
    only_unread: super::Flag,
    #[serde(default)]
    exclude_channel_types: Vec<u8>,
    #[serde(default)]
    page: usize,
    #[serde(default)]
    page_size: usize,
}

/// One conversation, as WuKongIM's `/conversation/sync` lists it.
#[derive(Serialize, ToSchema)]
pub(super) struct ConversationResp {
    channel_id: String,
    channel_type: u8,
    unread: u64,
    timestamp: i64,
    last_msg_seq: u64,
    last_client_msg_no: String,
    /// Always 0.
    offset_msg_seq: u64,
    readed_to_msg_seq: u64,
    /// The newest message's timestamp in nanoseconds.
    version: i64,
    /// Newest first.
    recents: Vec<MessageResp>,
}

/// `POST /conversation/sync`: the user's conversations, a bare array.
#[utoipa::path(post, path = "/conversation/sync", tag = "conversations", request_body = ConversationSyncReq,
    responses((status = 200, body = Vec<ConversationResp>), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn sync(
    State(im): State<Im>,
    WkJson(req): WkJson<ConversationSyncReq>,
) -> Result<Json<Vec<ConversationResp>>, ApiError> {
    check_uid("uid", &req.uid)?;
    let query = ConversationQuery {
        uid: req.uid,
        version: req.version,
        client_seqs: parse_client_seqs(&req.last_msg_seqs),
        msg_count: req.msg_count,
        only_unread: req.only_unread.0,
        exclude_channel_types: req.exclude_channel_types,
        page: req.page,
        page_size: req.page_size,
    };
    let conversations = im.sync_conversations(&query).await.map_err(store_error)?;
    let out = conversations
        .iter()
        .map(|c| ConversationResp {
            channel_id: c.channel_id.clone(),
            channel_type: c.channel_type,
            unread: c.unread,
            timestamp: c.timestamp,
            last_msg_seq: c.last_msg_seq,
            last_client_msg_no: c.last_client_msg_no.clone(),
            offset_msg_seq: 0,
            readed_to_msg_seq: c.readed_to_msg_seq,
            version: c.version,
            recents: c.recents.iter().map(MessageResp::of).collect(),
        })
        .collect();
    Ok(Json(out))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ConversationReq {
    uid: String,
    channel_id: String,
    channel_type: u8,
    /// `/conversations/setUnread` only.
    #[serde(default)]
    unread: u64,
}

impl ConversationReq {
    fn check(&self) -> Result<(), ApiError> {
        check_uid("uid", &self.uid)?;
        if self.channel_id.is_empty() {
            return Err(ApiError::field(
                "channel_id",
                "channel_id_empty",
                "channel_id must not be empty",
            ));
        }
        if self.channel_type == 0 {
            return Err(ApiError::field(
                "channel_type",
                "channel_type_unsupported",
                "channel_type must not be 0",
            ));
        }
        Ok(())
    }
}

/// `POST /conversations/setUnread`.
#[utoipa::path(post, path = "/conversations/setUnread", tag = "conversations", request_body = ConversationReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn set_unread(
    State(im): State<Im>,
    WkJson(req): WkJson<ConversationReq>,
) -> Result<Json<Status>, ApiError> {
    req.check()?;
    im.set_unread(&req.uid, &req.channel_id, req.channel_type, req.unread)
        .await
        .map_err(store_error)?;
    Ok(ok())
}

/// `POST /conversations/clearUnread`.
#[utoipa::path(post, path = "/conversations/clearUnread", tag = "conversations", request_body = ConversationReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn clear_unread(
    State(im): State<Im>,
    WkJson(req): WkJson<ConversationReq>,
) -> Result<Json<Status>, ApiError> {
    req.check()?;
    im.clear_unread(&req.uid, &req.channel_id, req.channel_type)
        .await
        .map_err(store_error)?;
    Ok(ok())
}

/// `POST /conversations/delete`.
#[utoipa::path(post, path = "/conversations/delete", tag = "conversations", request_body = ConversationReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn delete(
    State(im): State<Im>,
    WkJson(req): WkJson<ConversationReq>,
) -> Result<Json<Status>, ApiError> {
    req.check()?;
    im.delete_conversation(&req.uid, &req.channel_id, req.channel_type)
        .await
        .map_err(store_error)?;
    Ok(ok())
}
