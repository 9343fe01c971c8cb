//! An endpoint's delivery statistics over a window: totals, success rate, latency percentiles, and
//! attempts per minute by outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use chathook_http::{V1ErrorBody, V1Query};
use chathook_store::AttemptQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{bad, find, store_error, ApiResult};
use crate::clock::now_ms;
use crate::engine::WebhookEngine;
use crate::format::rfc3339;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct StatsQuery {
    /// A duration like `1h` or `30m` (default 1 hour, at most 31 days).
    window: Option<String>,
}

/// Attempts over a window.
#[derive(Serialize, ToSchema)]
pub(super) struct Stats {
    window_seconds: u64,
    /// The window's start (RFC 3339, the server's clock): the left edge of a chart.
    since: String,
    /// The window's end, the time of the answer: the right edge of a chart.
    until: String,
    attempts: u64,
    successes: u64,
    failures: u64,
    /// `null` when there was no attempt.
    success_rate: Option<f64>,
    latency_ms: Percentiles,
    /// Minutes with attempts, oldest first.
    per_minute: Vec<Minute>,
    /// Events the endpoint selected but its sources or filters left out (on the node answering, since
    /// it started; not limited to the window).
    filtered: u64,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Percentiles {
    p50: Option<u32>,
    p95: Option<u32>,
    p99: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Minute {
    /// The minute's start.
    minute: String,
    success: u64,
    failure: u64,
    latency_ms: MinuteLatency,
}

#[derive(Serialize, ToSchema)]
pub(super) struct MinuteLatency {
    p50: Option<u32>,
    p99: Option<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

/// Success rate, latency percentiles and attempts per minute over a window.
#[utoipa::path(get, path = "/v1/webhooks/endpoints/{id}/stats", tag = "deliveries",
    params(("id" = String, Path, description = "The endpoint's id"), StatsQuery),
    responses((status = 200, body = Stats), (status = "4XX", body = V1ErrorBody)))]
pub(super) async fn stats(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    V1Query(q): V1Query<StatsQuery>,
) -> ApiResult<Json<Stats>> {
    find(&engine, &id).await?;
    let window = match q.window.as_deref() {
        None | Some("") => Duration::from_secs(3600),
        Some(w) => humantime_serde::re::humantime::parse_duration(w).map_err(|e| {
            bad(
                "window",
                "window_invalid",
                format!("window must be a duration like 1h: {e}"),
            )
        })?,
    };
    if window > Duration::from_secs(31 * 24 * 3600) || window.is_zero() {
        return Err(bad(
            "window",
            "window_out_of_range",
            "window must be between 1s and 31 days",
        ));
    }
    let until = now_ms();
    let since = until - window.as_millis() as i64;
    let filtered = engine.metrics().filtered_of(&id);
    let rows = engine
        .store()
        .attempts(AttemptQuery {
            endpoint_id: id,
            since_ms: Some(since),
            limit: 500_000,
            ..Default::default()
        })
        .await
        .map_err(store_error)?;
    let total = rows.len();
    let ok = rows.iter().filter(|(_, a)| a.success).count();
    let mut latencies: Vec<u32> = rows.iter().map(|(_, a)| a.latency_ms).collect();
    latencies.sort_unstable();
    // minute -> (successes, failures, latencies)
    let mut per_minute: BTreeMap<i64, (u64, u64, Vec<u32>)> = BTreeMap::new();
    for (_, a) in &rows {
        let slot = per_minute.entry(a.at_ms / 60_000 * 60_000).or_default();
        if a.success {
            slot.0 += 1;
        } else {
            slot.1 += 1;
        }
        slot.2.push(a.latency_ms);
    }
    let per_minute = per_minute
        .iter_mut()
        .map(|(m, (s, f, l))| {
            l.sort_unstable();
            Minute {
                minute: rfc3339(*m),
                success: *s,
                failure: *f,
                latency_ms: MinuteLatency {
                    p50: percentile(l, 0.5),
                    p99: percentile(l, 0.99),
                },
            }
        })
        .collect();
    Ok(Json(Stats {
        window_seconds: window.as_secs(),
        since: rfc3339(since),
        until: rfc3339(until),
        attempts: total as u64,
        successes: ok as u64,
        failures: (total - ok) as u64,
        success_rate: (total > 0).then(|| ok as f64 / total as f64),
        latency_ms: Percentiles {
            p50: percentile(&latencies, 0.5),
            p95: percentile(&latencies, 0.95),
            p99: percentile(&latencies, 0.99),
        },
        per_minute,
        filtered,
    }))
}
