//! Operational events: what the webhook engine reports about its own endpoints and relay sources (an
//! endpoint failing, recovering, paused by its breaker, disabled or enabled; deliveries dead-lettered;
//! a relay source refusing requests). They are logged and delivered like every event, to the endpoints
//! that select them, never to the endpoint they concern. Only the data lives here; the webhook engine
//! decides when each is due.

use serde::{Deserialize, Serialize};

/// An endpoint's change of state (`endpoint.failing`, `recovered`, `breaker_open`, `disabled`,
/// `enabled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointNotice {
    pub endpoint_id: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Failed attempts in a row when it was noticed (0 when it does not apply).
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The last failed attempt's error (empty when it does not apply).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_error: String,
    /// Why it changed: the server's reason for a disable, who enabled it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Unix ms since when it has been failing, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
}

/// Deliveries of one endpoint whose retry schedule ran out (`delivery.exhausted`): the first at once,
/// then those of each window together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExhaustedNotice {
    pub endpoint_id: String,
    pub url: String,
    /// Deliveries dead-lettered since the last notice.
    pub count: u64,
    /// Unix ms of the first and the last of them.
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    /// The last one's delivery id (`webhook-id`), event name and error.
    pub last_delivery_id: String,
    pub last_event: String,
    pub last_error: String,
}

/// A relay source's ingest refusing many requests in a window (`relay.refused`): a rotated URL still
/// in use, a wrong token, a skewed clock, an address outside the source's networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayRefusalNotice {
    pub source_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Requests refused in the window, in all.
    pub count: u64,
    /// How many for each reason (`secret_wrong`, `sign_wrong`, `sign_stale`...).
    pub reasons: std::collections::BTreeMap<String, u64>,
    /// The window, in unix ms.
    pub from_ms: i64,
    pub until_ms: i64,
}
