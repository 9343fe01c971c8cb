//! The CMD queue for backends: `/message/sync` hands a user's queued CMD (`sync_once`) messages out,
//! `/message/syncack` removes them.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::error::store_error;
use super::history::{message_resp, unix_now};
use super::{check_uid, ok};
use crate::Im;
use chathook_http::ApiError;
use chathook_http::WkJson;

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
