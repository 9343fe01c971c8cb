//! Operational events' one owner: the engine's reports about its own endpoints and relay sources are
//! built here, appended to the event log (durable, delivered like every event to the standard-flavour
//! endpoints that select them, never to the endpoint they concern), and kept for the console as
//! recent notices: the last [`MAX_NOTICES`], newest first, in the store's `webhook.notices` setting.
//! Each node writes the notices of the dispatchers it runs; two nodes writing in the same instant may
//! lose one of the two from the console's list (never from the log).
//!
//! It never decides when a notice is due: the dispatcher (failing, recovered, breaker, disable,
//! exhausted), the engine (enabled) and the relay (refusals) do.

use std::sync::Arc;

use chathook_events::{EndpointNotice, Event, EventLog};
use chathook_store::{StoreError, WebhookStore};
use serde::{Deserialize, Serialize};

use crate::clock::now_ms;
use crate::endpoint::Endpoint;
use crate::format::{event_data, rfc3339};

/// The most notices the console's list keeps.
pub const MAX_NOTICES: usize = 100;
const KEY: &str = "webhook.notices";

/// A notice as the console lists it: the standard envelope and the event's log position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Notice {
    /// The event's name (`endpoint.failing`...).
    #[serde(rename = "type")]
    pub kind: String,
    /// When it was made, RFC 3339.
    pub timestamp: String,
    /// Its position in the event log (0 when it could not be logged).
    pub position: u64,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Appends operational events to the log and keeps the recent ones.
#[derive(Clone)]
pub(crate) struct Notices {
    log: Arc<dyn EventLog>,
    store: Arc<dyn WebhookStore>,
    /// One read-modify-write of the recent list at a time on this node.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl Notices {
    pub fn new(log: Arc<dyn EventLog>, store: Arc<dyn WebhookStore>) -> Notices {
        Notices {
            log,
            store,
            writing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Logs `event` and lists it among the recent notices. A failure is logged, not returned: a
    /// report must never stop the delivery it reports on.
    pub async fn emit(&self, event: Event) {
        debug_assert!(event.kind().is_operational());
        let kind = event.name();
        let data = event_data(&event);
        let position = match self.log.append(vec![event]).await {
            Ok(position) => position,
            Err(e) => {
                tracing::error!(error = %e, kind, "cannot log an operational event");
                0
            }
        };
        tracing::info!(kind, position, "operational event");
        let notice = Notice {
            kind: kind.to_string(),
            timestamp: rfc3339(now_ms()),
            position,
            data,
        };
        if let Err(e) = self.remember(notice).await {
            tracing::error!(error = %e, "cannot keep a notice for the console");
        }
    }

    async fn remember(&self, notice: Notice) -> Result<(), StoreError> {
        let _one_at_a_time = self.writing.lock().await;
        let mut list = self.recent().await?;
        list.insert(0, notice);
        list.truncate(MAX_NOTICES);
        let text = serde_json::to_string(&list).unwrap_or_else(|_| "[]".into());
        self.store.put_setting(KEY, text).await
    }

    /// The recent notices, newest first.
    pub async fn recent(&self) -> Result<Vec<Notice>, StoreError> {
        Ok(self
            .store
            .setting(KEY)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default())
    }
}

/// An endpoint's notice with nothing but who it is; the caller fills in the rest.
pub(crate) fn about(endpoint: &Endpoint) -> EndpointNotice {
    EndpointNotice {
        endpoint_id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        consecutive_failures: 0,
        last_error: String::new(),
        reason: String::new(),
        failing_since_ms: None,
    }
}
