//! chathook's HTTP conventions, shared by every API: the error envelopes (WuKongIM's
//! `{"status":400,"msg":...}` on its routes, `{"error":{"code","message","field"}}` on `/v1`) and JSON
//! bodies whose parse errors name the offending field. It knows no domain types.

mod error;
mod extract;

pub use error::{ApiError, V1Error};
pub use extract::{parse, V1Json, WkJson};
