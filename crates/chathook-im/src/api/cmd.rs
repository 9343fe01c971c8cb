//! The CMD queue for backends: `/message/sync` hands a user's queued CMD (`sync_once`) messages out,
//! `/message/syncack` removes them.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::store_error;
use super::history::{unix_now, MessageResp};
use super::{check_uid, ok, Status};
use crate::Im;
use chathook_http::WkJson;
use chathook_http::{ApiError, WkErrorBody};

#[derive(Deserialize, ToSchema)]
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
#[utoipa::path(post, path = "/message/sync", tag = "messages", request_body = CmdSyncReq,
    responses((status = 200, body = Vec<MessageResp>), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn cmd_sync(
    State(im): State<Im>,
    WkJson(req): WkJson<CmdSyncReq>,
) -> Result<Json<Vec<MessageResp>>, ApiError> {
    check_uid("uid", &req.uid)?;
    let max = im.config().limits.sync_max_limit;
    let limit = match req.limit {
        0 => DEFAULT_CMD_SYNC_LIMIT.min(max),
        n => n.min(max),
    };
    let messages = im
        .store()
        .cmd_messages(
            &req.uid,
            req.message_seq,
            limit,
            im.config().limits.sync_max_bytes,
            unix_now(),
        )
        .await
        .map_err(store_error)?;
    Ok(Json(messages.iter().map(MessageResp::of).collect()))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct CmdSyncAckReq {
    uid: String,
    last_message_seq: u64,
}

/// `POST /message/syncack`: removes the user's queued CMD messages up to `last_message_seq`.
#[utoipa::path(post, path = "/message/syncack", tag = "messages", request_body = CmdSyncAckReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn cmd_sync_ack(
    State(im): State<Im>,
    WkJson(req): WkJson<CmdSyncAckReq>,
) -> Result<Json<Status>, ApiError> {
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
