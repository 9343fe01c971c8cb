//! HTTP errors: WuKongIM's shape on its routes (`{"status":400,"msg":...}` plus our `code` and `field`),
//! DESIGN's shape on `/v1` routes (`{"error":{"code","message","field"}}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer, rendered in WuKongIM's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    /// A 400 about one request field.
    pub fn field(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
            field: Some(field.to_string()),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Renders this error in the `/v1` shape.
    pub fn v1(self) -> V1Error {
        V1Error(self)
    }
}

/// An error on WuKongIM's routes, as sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct WkErrorBody {
    /// The HTTP status again (WuKongIM's convention).
    pub status: u16,
    pub msg: String,
    /// A stable code for programs.
    pub code: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = WkErrorBody {
            status: self.status.as_u16(),
            msg: self.message,
            code: self.code.to_string(),
            field: self.field,
        };
        (self.status, Json(body)).into_response()
    }
}

/// An error in the `/v1` shape.
#[derive(Debug)]
pub struct V1Error(pub ApiError);

/// An error on `/v1` routes, as sent: `{"error": {"code", "message", "field"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct V1ErrorBody {
    pub error: V1ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct V1ErrorDetail {
    /// A stable code for programs.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = V1ErrorBody {
            error: V1ErrorDetail {
                code: e.code.to_string(),
                message: e.message,
                field: e.field,
            },
        };
        (e.status, Json(body)).into_response()
    }
}

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> Self {
        V1Error(e)
    }
}
