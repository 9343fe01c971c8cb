//! The REST API a business backend calls: WuKongIM's routes and bodies (`users`, `channels`, `messages`
//! for sends, `history` for reads, `cmd` for the CMD queue, `conversations`, `route`) and chathook's `/v1` profile routes. Authentication is the binary's job: it wraps this
//! router with the admin-key check.

mod channels;
mod cmd;
mod conversations;
pub mod error;
mod history;
mod messages;
mod route;
mod users;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

use crate::Im;
use chathook_http::ApiError;

/// Every route of [`router`], as (method, path), for tests that must visit each one.
pub const ROUTES: [(&str, &str); 34] = [
    ("POST", "/user/token"),
    ("POST", "/user/device_quit"),
    ("POST", "/user/onlinestatus"),
    ("POST", "/user/systemuids_add"),
    ("POST", "/user/systemuids_remove"),
    ("GET", "/user/systemuids"),
    ("POST", "/conn/kick"),
    ("GET", "/route"),
    ("POST", "/route/batch"),
    ("GET", "/v1/users/{uid}/profile"),
    ("PUT", "/v1/users/{uid}/profile"),
    ("POST", "/channel"),
    ("POST", "/channel/info"),
    ("POST", "/channel/subscriber_add"),
    ("POST", "/channel/subscriber_remove"),
    ("POST", "/channel/delete"),
    ("POST", "/channel/blacklist_add"),
    ("POST", "/channel/blacklist_remove"),
    ("POST", "/channel/blacklist_set"),
    ("POST", "/channel/whitelist_add"),
    ("POST", "/channel/whitelist_remove"),
    ("POST", "/channel/whitelist_set"),
    ("GET", "/channel/whitelist"),
    ("POST", "/message/send"),
    ("POST", "/message/sendbatch"),
    ("POST", "/channel/messagesync"),
    ("POST", "/messages"),
    ("GET", "/channel/max_message_seq"),
    ("POST", "/message/sync"),
    ("POST", "/message/syncack"),
    ("POST", "/conversation/sync"),
    ("POST", "/conversations/setUnread"),
    ("POST", "/conversations/clearUnread"),
    ("POST", "/conversations/delete"),
];

/// Every IM route (admin-key protected by the caller).
pub fn router(im: Im) -> Router {
    let body_limit = im.config().limits.max_http_body_bytes;
    Router::new()
        .route("/user/token", post(users::update_token))
        .route("/user/device_quit", post(users::device_quit))
        .route("/user/onlinestatus", post(users::online_status))
        .route("/user/systemuids_add", post(users::system_uids_add))
        .route("/user/systemuids_remove", post(users::system_uids_remove))
        .route("/user/systemuids", get(users::system_uids))
        .route("/conn/kick", post(users::kick))
        .route("/route", get(route::route))
        .route("/route/batch", post(route::route_batch))
        .route(
            "/v1/users/{uid}/profile",
            get(users::get_profile).put(users::put_profile),
        )
        .route("/channel", post(channels::upsert))
        .route("/channel/subscriber_add", post(channels::subscriber_add))
        .route(
            "/channel/subscriber_remove",
            post(channels::subscriber_remove),
        )
        .route("/channel/delete", post(channels::delete))
        .route("/channel/blacklist_add", post(channels::blacklist_add))
        .route(
            "/channel/blacklist_remove",
            post(channels::blacklist_remove),
        )
        .route("/channel/blacklist_set", post(channels::blacklist_set))
        .route("/channel/whitelist_add", post(channels::whitelist_add))
        .route(
            "/channel/whitelist_remove",
            post(channels::whitelist_remove),
        )
        .route("/channel/whitelist_set", post(channels::whitelist_set))
        .route("/channel/whitelist", get(channels::whitelist))
        .route("/channel/info", post(channels::info))
        .route("/message/send", post(messages::send))
        .route("/message/sendbatch", post(messages::send_batch))
        .route("/channel/messagesync", post(history::sync))
        .route("/messages", post(history::find))
        .route("/channel/max_message_seq", get(history::max_message_seq))
        .route("/message/sync", post(cmd::cmd_sync))
        .route("/message/syncack", post(cmd::cmd_sync_ack))
        .route("/conversation/sync", post(conversations::sync))
        .route("/conversations/setUnread", post(conversations::set_unread))
        .route(
            "/conversations/clearUnread",
            post(conversations::clear_unread),
        )
        .route("/conversations/delete", post(conversations::delete))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(im)
}

/// `{"status":200}`.
pub(crate) fn ok() -> axum::Json<Value> {
    axum::Json(json!({"status": 200}))
}

/// `{"status":200,"data":...}`.
pub(crate) fn ok_data(data: Value) -> axum::Json<Value> {
    axum::Json(json!({"status": 200, "data": data}))
}

/// WuKongIM's 0/1 integer flags; anything else is refused with the field named by the caller.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match u8::deserialize(d)? {
            0 => Ok(Flag(false)),
            1 => Ok(Flag(true)),
            n => Err(serde::de::Error::custom(format!("must be 0 or 1, got {n}"))),
        }
    }
}

/// A required query-string parameter parsed as `T`; a missing or bad one is a 400 naming it.
pub(crate) fn query_param<T: std::str::FromStr>(
    query: &std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<T, ApiError> {
    let raw = query
        .get(name)
        .ok_or_else(|| ApiError::field(name, "query_missing", format!("the query needs {name}")))?;
    raw.parse().map_err(|_| {
        ApiError::field(
            name,
            "query_invalid",
            format!("{name} has an invalid value {raw:?}"),
        )
    })
}

/// User ids: non-empty, at most 128 bytes, no `@` (it joins the two users of a person channel's
/// storage key) and no whitespace or control characters.
pub(crate) fn check_uid(field: &str, uid: &str) -> Result<(), ApiError> {
    if uid.is_empty() {
        return Err(ApiError::field(
            field,
            "uid_empty",
            format!("{field} must not be empty"),
        ));
    }
    if uid.len() > 128
        || uid
            .chars()
            .any(|c| c == '@' || c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::field(
            field,
            "uid_invalid",
            format!("{field} must be at most 128 bytes without '@', spaces or control characters"),
        ));
    }
    Ok(())
}
