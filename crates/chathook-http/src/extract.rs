//! JSON bodies and query strings whose errors name the field: `serde_path_to_error` gives the path of
//! the value that failed; missing and unknown fields are named by serde's message.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, V1Error};

/// A JSON body for WuKongIM routes; errors come in WuKongIM's shape.
pub struct WkJson<T>(pub T);

/// A JSON body for `/v1` routes; errors come in DESIGN's shape.
pub struct V1Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for WkJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(req, state).await?;
        parse_null_as_absent(&bytes).map(WkJson)
    }
}

/// A request's body within `limits.max_http_body_bytes`.
async fn body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    {
        Bytes::from_request(req, state).await.map_err(|e| ApiError {
            status: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            },
            code: if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "body_unreadable"
            },
            message: format!("{e} (limits.max_http_body_bytes)"),
            field: None,
        })
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for V1Json<T> {
    type Rejection = V1Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(req, state).await.map_err(V1Error)?;
        parse(&bytes).map(V1Json).map_err(V1Error)
    }
}

/// A query string for `/v1` routes; errors come in DESIGN's shape, naming the parameter.
pub struct V1Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for V1Query<T> {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(V1Query)
            .map_err(|err| {
                let path = err.path().to_string();
                let message = err.into_inner().to_string();
                let field = match path.as_str() {
                    "." => backticked(&message).map(str::to_string),
                    p => Some(p.to_string()),
                };
                let message = match &field {
                    Some(f) if !message.contains('`') => format!("{f}: {message}"),
                    _ => message,
                };
                V1Error(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    code: "query_invalid",
                    message,
                    field,
                })
            })
    }
}

/// Parses a JSON body, naming the offending field on error.
/// [`parse`], with `null` taken as absent wherever a body has it, as a Go backend sends `null` for an
/// empty slice or map (WuKongIM's routes accept it). The body is read as it is first; only when that
/// fails is it read again without its null members (so the common case costs nothing more). A required
/// field given as null is then reported missing, by name.
pub fn parse_null_as_absent<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = parse(bytes);
    let Err(e) = &first else {
        return first;
    };
    if e.code == "json_invalid" || e.code == "body_missing" {
        return first;
    }
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return first;
    };
    if !drop_nulls(&mut value) {
        return first;
    }
    let Ok(bytes) = serde_json::to_vec(&value) else {
        return first;
    };
    parse(&bytes)
}

/// Removes every `null` member of every object in `value`; whether there was one.
fn drop_nulls(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => {
            let before = map.len();
            map.retain(|_, v| !v.is_null());
            let mut dropped = map.len() != before;
            for v in map.values_mut() {
                dropped |= drop_nulls(v);
            }
            dropped
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |d, v| drop_nulls(v) | d),
        _ => false,
    }
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "body_missing",
            message: "a JSON body is required".into(),
            field: None,
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        let named = backticked(&message);
        let field = match (path.as_str(), named) {
            (".", Some(name)) => Some(name.to_string()),
            (".", None) => None,
            (p, Some(name)) if message.starts_with("missing field") => Some(format!("{p}.{name}")),
            (p, _) => Some(p.to_string()),
        };
        let code = if inner.is_syntax() || inner.is_eof() {
            "json_invalid"
        } else if message.starts_with("missing field") {
            "field_missing"
        } else if message.starts_with("unknown field") {
            "field_unknown"
        } else {
            "field_invalid"
        };
        let message = match &field {
            Some(f) if code == "field_invalid" => format!("{f}: {message}"),
            _ => message,
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message,
            field,
        }
    })?;
    // Anything but white space after the value: a second document, or garbage a proxy may read
    // differently.
    de.end().map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        code: "json_invalid",
        message: format!("data after the JSON value: {e}"),
        field: None,
    })?;
    Ok(value)
}

fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Req {
        uid: String,
        #[serde(default)]
        device_flag: u8,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u8,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Req>(br#"{"device_flag":0}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("field_missing", Some("uid")));
        let e = parse::<Req>(br#"{"uid":"a","device_flag":"x"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("field_invalid", Some("device_flag"))
        );
        let e = parse::<Req>(br#"{"uid":"a","device_flag":300}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("device_flag"));
        let e = parse::<Req>(br#"{"uid":"a","inner":{"n":-1}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("inner.n"));
        let e = parse::<Req>(br#"{"uid":"a","x":1}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("field_unknown", Some("x")));
        let e = parse::<Req>(b"{not json").unwrap_err();
        assert_eq!(e.code, "json_invalid");
    }

    #[test]
    fn data_after_the_json_value_is_refused_and_white_space_is_not() {
        for body in [
            &br#"{"uid":"a"}{"uid":"b"}"#[..],
            br#"{"uid":"a"} x"#,
            br#"{"uid":"a"}]"#,
        ] {
            let e = parse::<Req>(body).unwrap_err();
            assert_eq!(e.code, "json_invalid", "{}", String::from_utf8_lossy(body));
            assert!(e.message.contains("after the JSON value"), "{}", e.message);
        }
        assert!(parse::<Req>(b"{\"uid\":\"a\"} \r\n\t").is_ok());
    }
}
