//! `/conversation/sync`, `/conversation/syncMessages`, `/conversation/channels` and
//! `/conversations/setUnread|clearUnread|delete` (WuKongIM's bodies; the sync answers are bare arrays).

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
pub(super) struct UidReq {
    uid: String,
}

/// A conversation's channel, as its user sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct ConversationChannel {
    channel_id: String,
    channel_type: u8,
}

/// `POST /conversation/channels`: the channels of the user's conversations, a bare array (what
/// WuKongIM's plugins ask its API for).
#[utoipa::path(post, path = "/conversation/channels", tag = "conversations", request_body = UidReq,
    responses((status = 200, body = Vec<ConversationChannel>), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn channels(
    State(im): State<Im>,
    WkJson(req): WkJson<UidReq>,
) -> Result<Json<Vec<ConversationChannel>>, ApiError> {
    check_uid("uid", &req.uid)?;
    let query = ConversationQuery {
        uid: req.uid,
        version: 0,
        client_seqs: Default::default(),
        // (a sync of no message answers no conversation, as WuKongIM's does: one each, unused)
        msg_count: 1,
        only_unread: false,
        exclude_channel_types: Vec::new(),
        page: 0,
        page_size: 0,
    };
    let conversations = im.sync_conversations(&query).await.map_err(store_error)?;
    Ok(Json(
        conversations
            .into_iter()
            .map(|c| ConversationChannel {
                channel_id: c.channel_id,
                channel_type: c.channel_type,
            })
            .collect(),
    ))
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

#[derive(Deserialize, ToSchema)]
pub(super) struct RecentReq {
    uid: String,
    #[serde(default)]
    channels: Vec<RecentChannelReq>,
    /// Messages per channel (0: 15, as WuKongIM).
    #[serde(default)]
    msg_count: usize,
    /// 1: each channel's newest messages from `last_msg_seq` on, newest first; 0: the oldest ones
    /// from `last_msg_seq` on, oldest first.
    #[serde(default)]
    order_by_last: super::Flag,
}

#[derive(Deserialize, ToSchema)]
pub(super) struct RecentChannelReq {
    /// As `uid` sees it (for a person channel, the other user).
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    last_msg_seq: u64,
}

/// One channel's recent messages.
#[derive(Serialize, ToSchema)]
pub(super) struct ChannelRecent {
    channel_id: String,
    channel_type: u8,
    messages: Vec<MessageResp>,
}

/// Most channels one `/conversation/syncMessages` call may name.
const MAX_RECENT_CHANNELS: usize = 1000;

/// `POST /conversation/syncMessages`: for each named channel of `uid`, up to `msg_count` messages from
/// its `last_msg_seq` on (the newest first with `order_by_last`, else the oldest first), under one
/// byte budget (`limits.sync_max_bytes`: a channel gets at least one message while some is left, none
/// after).
#[utoipa::path(post, path = "/conversation/syncMessages", tag = "conversations", request_body = RecentReq,
    responses((status = 200, body = Vec<ChannelRecent>), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn sync_messages(
    State(im): State<Im>,
    WkJson(req): WkJson<RecentReq>,
) -> Result<Json<Vec<ChannelRecent>>, ApiError> {
    check_uid("uid", &req.uid)?;
    if req.channels.len() > MAX_RECENT_CHANNELS {
        return Err(ApiError::field(
            "channels",
            "too_many_channels",
            format!("at most {MAX_RECENT_CHANNELS} channels"),
        ));
    }
    let limits = &im.config().limits;
    let count = match req.msg_count {
        0 => 15,
        n => n.min(limits.sync_max_limit),
    };
    let mut budget = limits.sync_max_bytes;
    let mut out = Vec::with_capacity(req.channels.len());
    for (i, c) in req.channels.into_iter().enumerate() {
        let key = super::history::channel_key(&req.uid, &c.channel_id, c.channel_type).map_err(
            |mut e| {
                e.field = e.field.map(|f| format!("channels[{i}].{f}"));
                e
            },
        )?;
        // once the budget is spent, the remaining channels answer no messages
        let mut messages = match budget {
            0 => Vec::new(),
            left => {
                recent(
                    &im,
                    key,
                    c.channel_type,
                    c.last_msg_seq,
                    count,
                    left,
                    req.order_by_last.0,
                )
                .await?
            }
        };
        budget = budget.saturating_sub(messages.iter().map(chathook_store::stored_bytes).sum());
        if req.order_by_last.0 {
            messages.sort_by_key(|m| std::cmp::Reverse(m.message_seq));
        }
        out.push(ChannelRecent {
            channel_id: c.channel_id,
            channel_type: c.channel_type,
            messages: messages.iter().map(MessageResp::of).collect(),
        });
    }
    Ok(Json(out))
}

/// Up to `count` messages of a channel from seq `from` on: its newest (`newest`) or its oldest.
async fn recent(
    im: &Im,
    channel_key: String,
    channel_type: u8,
    from: u64,
    count: usize,
    max_bytes: usize,
    newest: bool,
) -> Result<Vec<chathook_events::Message>, ApiError> {
    let (start_seq, end_seq, pull_mode) = if newest {
        // down from the newest, to `from` included (the end is excluded; 0 is no bound)
        (0, from.saturating_sub(1), chathook_store::PullMode::Down)
    } else {
        (from, 0, chathook_store::PullMode::Up)
    };
    let page = im
        .store()
        .sync(chathook_store::SyncQuery {
            channel_key,
            channel_type,
            start_seq,
            end_seq,
            limit: count,
            max_bytes,
            pull_mode,
            now: super::history::unix_now(),
        })
        .await
        .map_err(store_error)?;
    Ok(page.messages)
}
