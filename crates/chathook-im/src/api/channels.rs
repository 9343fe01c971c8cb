//! `/channel` and its subscriber and blacklist routes (WuKongIM's bodies).

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{check_uid, ok, Flag};
use crate::Im;
use chathook_http::ApiError;
use chathook_http::WkJson;
use chathook_store::{ChannelFlags, ListChange, SubscriberChange};

#[derive(Deserialize)]
pub(super) struct ChannelCreateReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    large: Flag,
    #[serde(default)]
    ban: Flag,
    #[serde(default)]
    disband: Flag,
    #[serde(default)]
    reset: Flag,
    /// chathook's extension: members' online changes become events.
    #[serde(default)]
    live: Flag,
    #[serde(default)]
    subscribers: Vec<String>,
}

fn check_uids(field: &str, uids: &[String]) -> Result<(), ApiError> {
    uids.iter().try_for_each(|u| check_uid(field, u))
}

pub(super) async fn upsert(
    State(im): State<Im>,
    WkJson(req): WkJson<ChannelCreateReq>,
) -> Result<Json<Value>, ApiError> {
    check_uids("subscribers", &req.subscribers)?;
    let flags = ChannelFlags {
        channel_id: req.channel_id,
        channel_type: req.channel_type,
        large: req.large.0,
        ban: req.ban.0,
        disband: req.disband.0,
        live: req.live.0,
    };
    im.upsert_channel(flags, req.subscribers, req.reset.0)
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub(super) struct SubscriberReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    reset: Flag,
    /// Accepted for WuKongIM compatibility; chathook keeps no temporary subscribers.
    #[serde(default)]
    #[allow(dead_code)]
    temp_subscriber: Flag,
    #[serde(default)]
    subscribers: Vec<String>,
}

pub(super) async fn subscriber_add(
    State(im): State<Im>,
    WkJson(req): WkJson<SubscriberReq>,
) -> Result<Json<Value>, ApiError> {
    check_uids("subscribers", &req.subscribers)?;
    let change = SubscriberChange::Add {
        uids: req.subscribers,
        reset: req.reset.0,
    };
    im.change_subscribers(&req.channel_id, req.channel_type, change)
        .await?;
    Ok(ok())
}

pub(super) async fn subscriber_remove(
    State(im): State<Im>,
    WkJson(req): WkJson<SubscriberReq>,
) -> Result<Json<Value>, ApiError> {
    let change = SubscriberChange::Remove {
        uids: req.subscribers,
    };
    im.change_subscribers(&req.channel_id, req.channel_type, change)
        .await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub(super) struct ChannelRefReq {
    channel_id: String,
    channel_type: u8,
}

pub(super) async fn delete(
    State(im): State<Im>,
    WkJson(req): WkJson<ChannelRefReq>,
) -> Result<Json<Value>, ApiError> {
    im.delete_channel(&req.channel_id, req.channel_type).await?;
    Ok(ok())
}

#[derive(Deserialize)]
pub(super) struct BlacklistReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    uids: Vec<String>,
}

async fn blacklist(
    im: Im,
    req: BlacklistReq,
    change: fn(Vec<String>) -> ListChange,
    allow_empty: bool,
) -> Result<Json<Value>, ApiError> {
    if req.uids.is_empty() && !allow_empty {
        return Err(ApiError::field(
            "uids",
            "uids_empty",
            "uids must not be empty",
        ));
    }
    check_uids("uids", &req.uids)?;
    im.change_blacklist(&req.channel_id, req.channel_type, change(req.uids))
        .await?;
    Ok(ok())
}

pub(super) async fn blacklist_add(
    State(im): State<Im>,
    WkJson(req): WkJson<BlacklistReq>,
) -> Result<Json<Value>, ApiError> {
    blacklist(im, req, ListChange::Add, false).await
}

pub(super) async fn blacklist_remove(
    State(im): State<Im>,
    WkJson(req): WkJson<BlacklistReq>,
) -> Result<Json<Value>, ApiError> {
    blacklist(im, req, ListChange::Remove, false).await
}

pub(super) async fn blacklist_set(
    State(im): State<Im>,
    WkJson(req): WkJson<BlacklistReq>,
) -> Result<Json<Value>, ApiError> {
    blacklist(im, req, ListChange::Set, true).await
}
