//! `/channel`, `/channel/info` and the subscriber, blacklist and whitelist routes (WuKongIM's bodies).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::{check_uid, ok, query_param, Flag, Status};
use crate::Im;
use chathook_http::WkJson;
use chathook_http::{ApiError, WkErrorBody};
use chathook_store::{ChannelFlags, ListChange, SubscriberChange, UidList};

#[derive(Deserialize, ToSchema)]
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

#[utoipa::path(post, path = "/channel", tag = "channels", request_body = ChannelCreateReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn upsert(
    State(im): State<Im>,
    WkJson(req): WkJson<ChannelCreateReq>,
) -> Result<Json<Status>, ApiError> {
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

#[derive(Deserialize, ToSchema)]
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

#[utoipa::path(post, path = "/channel/subscriber_add", tag = "channels", request_body = SubscriberReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn subscriber_add(
    State(im): State<Im>,
    WkJson(req): WkJson<SubscriberReq>,
) -> Result<Json<Status>, ApiError> {
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

#[utoipa::path(post, path = "/channel/subscriber_remove", tag = "channels", request_body = SubscriberReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn subscriber_remove(
    State(im): State<Im>,
    WkJson(req): WkJson<SubscriberReq>,
) -> Result<Json<Status>, ApiError> {
    let change = SubscriberChange::Remove {
        uids: req.subscribers,
    };
    im.change_subscribers(&req.channel_id, req.channel_type, change)
        .await?;
    Ok(ok())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ChannelRefReq {
    channel_id: String,
    channel_type: u8,
}

#[utoipa::path(post, path = "/channel/delete", tag = "channels", request_body = ChannelRefReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn delete(
    State(im): State<Im>,
    WkJson(req): WkJson<ChannelRefReq>,
) -> Result<Json<Status>, ApiError> {
    im.delete_channel(&req.channel_id, req.channel_type).await?;
    Ok(ok())
}

#[derive(Deserialize, ToSchema)]
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
#[utoipa::path(post, path = "/channel/info", tag = "channels", request_body = ChannelInfoReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn info(
    State(im): State<Im>,
    WkJson(req): WkJson<ChannelInfoReq>,
) -> Result<Json<Status>, ApiError> {
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
#[derive(Deserialize, ToSchema)]
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
) -> Result<Json<Status>, ApiError> {
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
    ($name:ident, $path:literal, $list:expr, $change:expr) => {
        #[utoipa::path(post, path = $path, tag = "channels", request_body = ListReq,
                    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
        pub(super) async fn $name(
            State(im): State<Im>,
            WkJson(req): WkJson<ListReq>,
        ) -> Result<Json<Status>, ApiError> {
            change_list(im, req, $list, $change).await
        }
    };
}

list_route!(
    blacklist_add,
    "/channel/blacklist_add",
    UidList::Blacklist,
    ListChange::Add
);
list_route!(
    blacklist_remove,
    "/channel/blacklist_remove",
    UidList::Blacklist,
    ListChange::Remove
);
list_route!(
    blacklist_set,
    "/channel/blacklist_set",
    UidList::Blacklist,
    ListChange::Set
);
list_route!(
    whitelist_add,
    "/channel/whitelist_add",
    UidList::Whitelist,
    ListChange::Add
);
list_route!(
    whitelist_remove,
    "/channel/whitelist_remove",
    UidList::Whitelist,
    ListChange::Remove
);
list_route!(
    whitelist_set,
    "/channel/whitelist_set",
    UidList::Whitelist,
    ListChange::Set
);

/// `GET /channel/whitelist?channel_id=&channel_type=`: the bare array of uids.
#[utoipa::path(get, path = "/channel/whitelist", tag = "channels",
    params(("channel_id" = String, Query), ("channel_type" = u8, Query)),
    responses((status = 200, body = Vec<String>), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn whitelist(
    State(im): State<Im>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Vec<String>>, ApiError> {
    let channel_id: String = query_param(&q, "channel_id")?;
    let channel_type: u8 = query_param(&q, "channel_type")?;
    let channel = im
        .channel(&channel_id, channel_type)
        .await
        .map_err(super::error::store_error)?;
    let uids = channel
        .map(|c| c.record.whitelist.clone())
        .unwrap_or_default();
    Ok(Json(uids))
}
