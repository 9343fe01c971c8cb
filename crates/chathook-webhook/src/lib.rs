//! The webhook engine of chathook: endpoints, feature switches, and durable at-least-once delivery of
//! the event log to each endpoint in its flavour (WuKongIM's bodies, or the Standard Webhooks envelope),
//! signed, retried on a schedule, dead-lettered, observable.
//!
//! It consumes `chathook-events` (the event log's consumer API) and keeps its own state through
//! `chathook-store`'s `WebhookStore`; it never imports the IM core, so it can relay another server's
//! events too. Flow: `engine` (endpoints, one `dispatcher` task each; in a cluster under a `lease`) ->
//! `format` (render once per delivery) -> `client` (sign, send; `guard` checks each address) -> attempt log and
//! metrics.

pub mod api;
mod attempt_log;
mod catalog;
pub mod client;
mod clock;
pub mod config;
mod config_endpoints;
mod dispatcher;
pub mod endpoint;
mod engine;
pub mod features;
pub mod filters;
pub mod format;
pub mod guard;
pub mod health;
mod hooks;
mod lease;
pub mod metrics;
pub mod notices;
mod nullable;
pub mod receiver_auth;
pub mod relay;
mod sample;
pub mod signing;
mod stored;
pub mod url_rules;

pub use config::RelayConfig;
pub use config::WebhookConfig;
pub use endpoint::{Endpoint, Flavour};
pub use engine::{EngineError, StartFrom, WebhookEngine};
pub use features::Features;
pub use lease::{share_of, Leasing};
pub use metrics::WebhookMetrics;
pub use relay::Relay;
