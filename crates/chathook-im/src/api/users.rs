//! `/user/*` and `/conn/kick` (WuKongIM) and `/v1/users/{uid}/profile` (chathook).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::store_error;
use super::{check_uid, ok, Status};
use crate::Im;
use chathook_http::{ApiError, V1Error, V1ErrorBody, WkErrorBody};
use chathook_http::{V1Json, WkJson};

#[derive(Deserialize, ToSchema)]
pub(super) struct UpdateTokenReq {
    uid: String,
    token: String,
    #[serde(default)]
    device_flag: u8,
    #[serde(default)]
    device_level: u8,
}

/// Registers a user's token for a device; a banned user gets status 19 (HTTP 200), as in WuKongIM.
#[utoipa::path(post, path = "/user/token", tag = "users", request_body = UpdateTokenReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn update_token(
    State(im): State<Im>,
    WkJson(req): WkJson<UpdateTokenReq>,
) -> Result<Json<Status>, ApiError> {
    check_uid("uid", &req.uid)?;
    if req.token.is_empty() {
        return Err(ApiError::field(
            "token",
            "token_empty",
            "token must not be empty",
        ));
    }
    if req.device_level > 1 {
        return Err(ApiError::field(
            "device_level",
            "device_level_invalid",
            "device_level must be 0 (secondary) or 1 (primary)",
        ));
    }
    // A banned user (person channel with `ban: 1`) gets no token: WuKongIM answers HTTP 200 with status 19.
    let own = im
        .channel(&req.uid, chathook_events::ChannelType::Person.as_u8())
        .await
        .map_err(store_error)?;
    if own.is_some_and(|c| c.record.flags.ban) {
        return Ok(Json(Status {
            status: i64::from(crate::error::reason::BAN),
        }));
    }
    im.set_token(&req.uid, &req.token, req.device_flag, req.device_level)
        .await
        .map_err(store_error)?;
    Ok(ok())
}

#[derive(Deserialize, ToSchema)]
pub(super) struct DeviceQuitReq {
    uid: String,
    /// -1 = every device.
    #[serde(default)]
    device_flag: i16,
}

/// Logs a user's devices out (all with `device_flag` -1) and removes their tokens.
#[utoipa::path(post, path = "/user/device_quit", tag = "users", request_body = DeviceQuitReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn device_quit(
    State(im): State<Im>,
    WkJson(req): WkJson<DeviceQuitReq>,
) -> Result<Json<Status>, ApiError> {
    check_uid("uid", &req.uid)?;
    let flag = match req.device_flag {
        -1 => None,
        f @ 0..=255 => Some(f as u8),
        _ => {
            return Err(ApiError::field(
                "device_flag",
                "device_flag_invalid",
                "device_flag must be -1 (all devices) or 0..=255",
            ))
        }
    };
    im.device_quit(&req.uid, flag).await.map_err(store_error)?;
    Ok(ok())
}

/// One online connection, as `/user/onlinestatus` lists it.
#[derive(Serialize, ToSchema)]
pub(super) struct OnlineConnection {
    uid: String,
    device_flag: u8,
    /// Always 1.
    online: u8,
}

/// `/user/onlinestatus`'s answer: the connections, bare; `{"status":200}` for an empty request.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum OnlineStatus {
    Connections(Vec<OnlineConnection>),
    Empty(Status),
}

/// Body: a JSON array of uids. Answer (bare, as WuKongIM gives it): one `{uid, device_flag, online}` per
/// connection of each online uid, on every node; an empty request answers `{"status":200}`.
#[utoipa::path(post, path = "/user/onlinestatus", tag = "users", request_body = Vec<String>,
    responses((status = 200, body = OnlineStatus), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn online_status(
    State(im): State<Im>,
    WkJson(uids): WkJson<Vec<String>>,
) -> Result<Json<OnlineStatus>, ApiError> {
    if uids.is_empty() {
        return Ok(Json(OnlineStatus::Empty(ok().0)));
    }
    let mut out = Vec::new();
    for uid in &uids {
        for conn in im.presence().connections(uid) {
            out.push(OnlineConnection {
                uid: conn.uid.clone(),
                device_flag: conn.device_flag,
                online: 1,
            });
        }
        // In a cluster: the other nodes' connections too.
        for conn in im.presence().remote().connections(uid) {
            out.push(OnlineConnection {
                uid: uid.clone(),
                device_flag: conn.device_flag,
                online: 1,
            });
        }
    }
    Ok(Json(OnlineStatus::Connections(out)))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct SystemUidsReq {
    uids: Vec<String>,
}

async fn change_system_uids(
    im: Im,
    req: SystemUidsReq,
    remove: bool,
) -> Result<Json<Status>, ApiError> {
    if req.uids.is_empty() {
        return Err(ApiError::field(
            "uids",
            "uids_empty",
            "uids must not be empty",
        ));
    }
    req.uids.iter().try_for_each(|u| check_uid("uids", u))?;
    im.change_system_uids(req.uids, remove)
        .await
        .map_err(store_error)?;
    Ok(ok())
}

/// `POST /user/systemuids_add`: these uids' client sends skip the sender checks.
#[utoipa::path(post, path = "/user/systemuids_add", tag = "users", request_body = SystemUidsReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn system_uids_add(
    State(im): State<Im>,
    WkJson(req): WkJson<SystemUidsReq>,
) -> Result<Json<Status>, ApiError> {
    change_system_uids(im, req, false).await
}

/// `POST /user/systemuids_remove`.
#[utoipa::path(post, path = "/user/systemuids_remove", tag = "users", request_body = SystemUidsReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn system_uids_remove(
    State(im): State<Im>,
    WkJson(req): WkJson<SystemUidsReq>,
) -> Result<Json<Status>, ApiError> {
    change_system_uids(im, req, true).await
}

/// `GET /user/systemuids`: the bare array of system uids.
#[utoipa::path(get, path = "/user/systemuids", tag = "users",
    responses((status = 200, body = Vec<String>), (status = "5XX", body = WkErrorBody)))]
pub(super) async fn system_uids(State(im): State<Im>) -> Result<Json<Vec<String>>, ApiError> {
    let uids = im.store().system_uids().await.map_err(store_error)?;
    Ok(Json(uids))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct KickReq {
    uid: String,
    /// WuKongIM's `node_id` and `op_node_id` (cluster fields) are ignored: one node here.
    conn_id: u64,
}

/// `POST /conn/kick`: the connection `conn_id` of `uid` (the id `user.onlinestatus` carries) is told
/// it was kicked (reason 12) and closed. An unknown connection is not an error, as in WuKongIM.
#[utoipa::path(post, path = "/conn/kick", tag = "users", request_body = KickReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn kick(
    State(im): State<Im>,
    WkJson(req): WkJson<KickReq>,
) -> Result<Json<Status>, ApiError> {
    req.check()?;
    im.kick_connection(&req.uid, req.conn_id);
    Ok(ok())
}

/// `POST /conn/remove`: the connection `conn_id` of `uid` is closed without a word (no disconnect
/// notice, unlike `/conn/kick`), as WuKongIM's is. An unknown connection is not an error.
#[utoipa::path(post, path = "/conn/remove", tag = "users", request_body = KickReq,
    responses((status = 200, body = Status), (status = "4XX", body = WkErrorBody)))]
pub(super) async fn remove(
    State(im): State<Im>,
    WkJson(req): WkJson<KickReq>,
) -> Result<Json<Status>, ApiError> {
    req.check()?;
    im.remove_connection(&req.uid, req.conn_id);
    Ok(ok())
}

impl KickReq {
    fn check(&self) -> Result<(), ApiError> {
        check_uid("uid", &self.uid)?;
        if self.conn_id == 0 {
            return Err(ApiError::field(
                "conn_id",
                "conn_id_zero",
                "conn_id must not be 0",
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProfileReq {
    #[serde(default)]
    name: String,
    #[serde(default)]
    avatar: String,
    #[serde(default)]
    custom: BTreeMap<String, String>,
}

const MAX_PROFILE_FIELD: usize = 4096;

/// A user's profile.
#[derive(Serialize, ToSchema)]
pub(super) struct ProfileView {
    uid: String,
    name: String,
    avatar: String,
    custom: BTreeMap<String, String>,
}

impl ProfileView {
    fn of(p: chathook_store::Profile) -> ProfileView {
        ProfileView {
            uid: p.uid,
            name: p.name,
            avatar: p.avatar,
            custom: p.custom,
        }
    }
}

/// A user's profile.
#[utoipa::path(get, path = "/v1/users/{uid}/profile", tag = "users",
    params(("uid" = String, Path, description = "The user")),
    responses((status = 200, body = ProfileView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn get_profile(
    State(im): State<Im>,
    Path(uid): Path<String>,
) -> Result<Json<ProfileView>, V1Error> {
    check_uid("uid", &uid)?;
    match im.profile(&uid).await.map_err(|e| store_error(e).v1())? {
        Some(p) => Ok(Json(ProfileView::of(p))),
        None => Err(ApiError::not_found("profile_not_found", format!("{uid} has no profile")).v1()),
    }
}

/// Sets a user's profile (a `user.profile_changed` event follows).
#[utoipa::path(put, path = "/v1/users/{uid}/profile", tag = "users",
    params(("uid" = String, Path, description = "The user")),
    request_body = ProfileReq,
    responses((status = 200, body = ProfileView), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn put_profile(
    State(im): State<Im>,
    Path(uid): Path<String>,
    V1Json(req): V1Json<ProfileReq>,
) -> Result<Json<ProfileView>, V1Error> {
    check_uid("uid", &uid)?;
    for (field, value) in [("name", &req.name), ("avatar", &req.avatar)] {
        if value.len() > MAX_PROFILE_FIELD {
            return Err(ApiError::field(
                field,
                "field_too_long",
                format!("{field} is longer than {MAX_PROFILE_FIELD} bytes"),
            )
            .v1());
        }
    }
    if req.custom.len() > 64
        || req
            .custom
            .iter()
            .any(|(k, v)| k.len() > 64 || v.len() > MAX_PROFILE_FIELD)
    {
        return Err(ApiError::field(
            "custom",
            "field_too_long",
            format!("custom holds at most 64 keys of at most 64 bytes, values of at most {MAX_PROFILE_FIELD}"),
        )
        .v1());
    }
    let profile = im
        .set_profile(&uid, req.name, req.avatar, req.custom)
        .await
        .map_err(|e| store_error(e).v1())?;
    Ok(Json(ProfileView::of(profile)))
}
