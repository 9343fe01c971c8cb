//! The REST API a business backend calls: WuKongIM's routes and bodies (`users`, `channels`, `messages`
//! for sends, `history` for reads, `cmd` for the CMD queue, `conversations`, `route`) and chathook's
//! `/v1` profile routes, each described for the OpenAPI document. Authentication is the binary's job:
//! it wraps this router with the admin-key check.

mod channels;
mod cmd;
mod conversations;
pub mod error;
mod history;
mod messages;
mod route;
mod users;

use axum::extract::DefaultBodyLimit;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Im;
use chathook_http::ApiError;

/// Every route of [`router`], as (method, path), for tests that must visit each one.
pub const ROUTES: [(&str, &str); 39] = [
    ("POST", "/user/token"),
    ("POST", "/user/device_quit"),
    ("POST", "/user/onlinestatus"),
    ("POST", "/user/systemuids_add"),
    ("POST", "/user/systemuids_remove"),
    ("GET", "/user/systemuids"),
    ("POST", "/conn/kick"),
    ("POST", "/conn/remove"),
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
    ("POST", "/message"),
    ("POST", "/messages/deleteRange"),
    ("GET", "/channel/max_message_seq"),
    ("POST", "/message/sync"),
    ("POST", "/message/syncack"),
    ("POST", "/conversation/sync"),
    ("POST", "/conversation/syncMessages"),
    ("POST", "/conversation/channels"),
    ("POST", "/conversations/setUnread"),
    ("POST", "/conversations/clearUnread"),
    ("POST", "/conversations/delete"),
];

/// Every IM route (admin-key protected by the caller), each with its OpenAPI description (`utoipa`).
pub fn router(im: Im) -> OpenApiRouter {
    let body_limit = im.config().limits.max_http_body_bytes;
    OpenApiRouter::new()
        .routes(routes!(users::update_token))
        .routes(routes!(users::device_quit))
        .routes(routes!(users::online_status))
        .routes(routes!(users::system_uids_add))
        .routes(routes!(users::system_uids_remove))
        .routes(routes!(users::system_uids))
        .routes(routes!(users::kick))
        .routes(routes!(users::remove))
        .routes(routes!(route::route))
        .routes(routes!(route::route_batch))
        .routes(routes!(users::get_profile, users::put_profile))
        .routes(routes!(channels::upsert))
        .routes(routes!(channels::subscriber_add))
        .routes(routes!(channels::subscriber_remove))
        .routes(routes!(channels::delete))
        .routes(routes!(channels::blacklist_add))
        .routes(routes!(channels::blacklist_remove))
        .routes(routes!(channels::blacklist_set))
        .routes(routes!(channels::whitelist_add))
        .routes(routes!(channels::whitelist_remove))
        .routes(routes!(channels::whitelist_set))
        .routes(routes!(channels::whitelist))
        .routes(routes!(channels::info))
        .routes(routes!(messages::send))
        .routes(routes!(messages::send_batch))
        .routes(routes!(history::sync))
        .routes(routes!(history::find))
        .routes(routes!(history::find_one))
        .routes(routes!(history::delete_range))
        .routes(routes!(history::max_message_seq))
        .routes(routes!(cmd::cmd_sync))
        .routes(routes!(cmd::cmd_sync_ack))
        .routes(routes!(conversations::sync))
        .routes(routes!(conversations::sync_messages))
        .routes(routes!(conversations::channels))
        .routes(routes!(conversations::set_unread))
        .routes(routes!(conversations::clear_unread))
        .routes(routes!(conversations::delete))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(im)
}

/// WuKongIM's `{"status": N}` answer: 200 for done; some refusals answer HTTP 200 with another
/// status (19 for a banned user's token).
#[derive(Serialize, ToSchema)]
pub(crate) struct Status {
    status: i64,
}

/// `{"status":200}`.
pub(crate) fn ok() -> axum::Json<Status> {
    axum::Json(Status { status: 200 })
}

/// WuKongIM's `{"status":200,"data":...}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct WithData<T> {
    status: i64,
    data: T,
}

/// `{"status":200,"data":...}`.
pub(crate) fn ok_data<T>(data: T) -> axum::Json<WithData<T>> {
    axum::Json(WithData { status: 200, data })
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

impl utoipa::PartialSchema for Flag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .enum_values(Some([0, 1]))
            .description(Some("0 or 1"))
            .into()
    }
}

impl ToSchema for Flag {}

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
/// storage key), no whitespace or control characters, and no invisible formatting characters (bidi
/// overrides and isolates, zero-width characters) that would let one uid pass for another on screen.
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
            .any(|c| c == '@' || c.is_whitespace() || c.is_control() || is_invisible(c))
    {
        return Err(ApiError::field(
            field,
            "uid_invalid",
            format!(
                "{field} must be at most 128 bytes without '@', spaces, control characters, \
                 bidi overrides or zero-width characters"
            ),
        ));
    }
    Ok(())
}

/// Unicode formatting characters that change how text shows without showing themselves: the soft
/// hyphen, bidi marks, embeddings, overrides and isolates, zero-width spaces and joiners, the word
/// joiner and invisible operators, the byte-order mark and interlinear annotation marks.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_with_bidi_overrides_or_zero_width_characters_are_refused() {
        for uid in [
            "admin\u{202E}nimda",
            "al\u{200B}ice",
            "bob\u{200D}",
            "\u{FEFF}carol",
            "dave\u{2066}x\u{2069}",
            "eve\u{00AD}",
        ] {
            let e = check_uid("uid", uid).unwrap_err();
            assert_eq!(e.code, "uid_invalid", "{uid:?}");
        }
        for uid in ["alice", "用户一", "zoë_42", "a-b.c:d"] {
            assert!(check_uid("uid", uid).is_ok(), "{uid:?}");
        }
    }
}
