//! `/channel`, `/channel/info` and the subscriber, blacklist and whitelist routes (WuKongIM's bodies).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_uid, ok, query_param, Flag};
use crate::Im;
use chathook_http::ApiError;
use chathook_http::WkJson;
use chathook_store::{ChannelFlags, ListChange, SubscriberChange, UidList};

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
    /// WuKongIM refuses temporary subscribers on this route (400); so does chathook.
    #[serde(default)]
    temp_subscriber: Flag,
    #[serde(default)]
    subscribers: Vec<String>,
}

pub(super) async fn subscriber_add(
    State(im): State<Im>,
    WkJson(req): WkJson<SubscriberReq>,
) -> Result<Json<Value>, ApiError> {
    if req.temp_subscriber.0 {
        return Err(ApiError::field(
            "temp_subscriber",
            "temp_subscriber_unsupported",
            "temp_subscriber must be 0: temporary subscribers are not supported on this route",
        ));
    }
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
pub(super) struct ChannelInfoReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    large: Flag,
    #[serde(default)]
    ban: Flag,
    #[serde(default)]
    disband: Flag,
    /// chathook's extension: members' online changes become events.
    #[serde(default)]
    live: Flag,
}

/// `POST /channel/info`: a channel's flags, for a group or a person channel (`ban: 1` on a person
/// channel bans that user).
pub(super) async fn info(
    State(im): State<Im>,
    WkJson(req): WkJson<ChannelInfoReq>,
) -> Result<Json<Value>, ApiError> {
    let flags = ChannelFlags {
        channel_id: req.channel_id,
        channel_type: req.channel_type,
        large: req.large.0,
        ban: req.ban.0,
        disband: req.disband.0,
        live: req.live.0,
    };
    im.set_channel_info(flags).await?;
    Ok(ok())
}

/// The body of the blacklist and whitelist routes. On a person channel `channel_id` is the user whose
/// list it is.
#[derive(Deserialize)]
pub(super) struct ListReq {
    channel_id: String,
    channel_type: u8,
    #[serde(default)]
    uids: Vec<String>,
}

async fn change_list(
    im: Im,
    req: ListReq,
    list: UidList,
    change: fn(Vec<String>) -> ListChange,
) -> Result<Json<Value>, ApiError> {
    let change = change(req.uids);
    let (ListChange::Add(uids) | ListChange::Remove(uids) | ListChange::Set(uids)) = &change;
    if uids.is_empty() && !matches!(change, ListChange::Set(_)) {
        return Err(ApiError::field(
            "uids",
            "uids_empty",
            "uids must not be empty",
        ));
    }
    check_uids("uids", uids)?;
    im.change_list(&req.channel_id, req.channel_type, list, change)
        .await?;
    Ok(ok())
}

/// One handler per (list, change) pair, as the router wants them.
macro_rules! list_route {
    ($name:ident, $list:expr, $change:expr) => {
        pub(super) async fn $name(
            State(im): State<Im>,
            WkJson(req): WkJson<ListReq>,
        ) -> Result<Json<Value>, ApiError> {
            change_list(im, req, $list, $change).await
        }
    };
}

list_route!(blacklist_add, UidList::Blacklist, ListChange::Add);
list_route!(blacklist_remove, UidList::Blacklist, ListChange::Remove);
list_route!(blacklist_set, UidList::Blacklist, ListChange::Set);
list_route!(whitelist_add, UidList::Whitelist, ListChange::Add);
list_route!(whitelist_remove, UidList::Whitelist, ListChange::Remove);
list_route!(whitelist_set, UidList::Whitelist, ListChange::Set);

/// `GET /channel/whitelist?channel_id=&channel_type=`: the bare array of uids.
pub(super) async fn whitelist(
    State(im): State<Im>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let channel_id: String = query_param(&q, "channel_id")?;
    let channel_type: u8 = query_param(&q, "channel_type")?;
    let channel = im
        .channel(&channel_id, channel_type)
        .await
        .map_err(super::error::store_error)?;
    let uids = channel
        .map(|c| c.record.whitelist.clone())
        .unwrap_or_default();
    Ok(Json(json!(uids)))
}
