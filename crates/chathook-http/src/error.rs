//! HTTP errors: WuKongIM's shape on its routes (`{"status":400,"msg":...}` plus our `code` and `field`),
//! DESIGN's shape on `/v1` routes (`{"error":{"code","message","field"}}`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"status": self.status.as_u16(), "msg": self.message, "code": self.code,
                          "field": self.field});
        (self.status, Json(body)).into_response()
    }
}

/// An error in the `/v1` shape.
#[derive(Debug)]
pub struct V1Error(pub ApiError);

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let e = self.0;
        let body = json!({"error": {"code": e.code, "message": e.message, "field": e.field}});
        (e.status, Json(body)).into_response()
    }
}

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> Self {
        V1Error(e)
    }
}
