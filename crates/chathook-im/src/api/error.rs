//! How the IM core's errors become HTTP answers.

use axum::http::StatusCode;
use chathook_http::ApiError;
use chathook_store::StoreError;

use crate::error::{ChannelError, SendError};

/// A storage failure as an HTTP answer: 503 when the disk is full or read-only, 500 otherwise.
pub fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "storage error in an API call");
    let (status, code) = match e {
        StoreError::Unwritable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unwritable"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
    };
    ApiError {
        status,
        code,
        message: "the server could not complete the request".into(),
        field: None,
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::Store(s) => store_error(s),
            other => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: other.code(),
                message: other.to_string(),
                field: other.field().map(str::to_string),
            },
        }
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        let (code, field) = match &e {
            ChannelError::BadChannelId => ("channel_id_invalid", Some("channel_id")),
            ChannelError::UnsupportedChannelType(_) => {
                ("channel_type_unsupported", Some("channel_type"))
            }
            ChannelError::NotFound => ("channel_not_found", Some("channel_id")),
            ChannelError::TooManyMembers { .. } => ("group_too_large", Some("subscribers")),
            ChannelError::NoSubscribers => ("subscribers_empty", Some("subscribers")),
            ChannelError::Store(_) => ("storage_error", None),
        };
        match e {
            ChannelError::Store(s) => store_error(s),
            other => ApiError {
                status: StatusCode::BAD_REQUEST,
                code,
                message: other.to_string(),
                field: field.map(str::to_string),
            },
        }
    }
}
