//! An endpoint's delivery statistics over a window: totals, success rate, latency percentiles, and
//! attempts per minute by outcome.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::Json;
use chathook_store::AttemptQuery;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{bad, find, store_error, ApiResult};
use crate::dispatcher::now_ms;
use crate::engine::WebhookEngine;
use crate::format::rfc3339;

#[derive(Deserialize)]
pub(super) struct StatsQuery {
    window: Option<String>,
}

fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    Some(sorted[i])
}

pub(super) async fn stats(
    State(engine): State<WebhookEngine>,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<Value>> {
    find(&engine, &id)?;
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
    let since = now_ms() - window.as_millis() as i64;
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
    let minutes: Vec<Value> = per_minute
        .iter_mut()
        .map(|(m, (s, f, l))| {
            l.sort_unstable();
            json!({"minute": rfc3339(*m), "success": s, "failure": f,
                   "latency_ms": {"p50": percentile(l, 0.5), "p99": percentile(l, 0.99)}})
        })
        .collect();
    Ok(Json(json!({
        "window_seconds": window.as_secs(),
        "attempts": total,
        "successes": ok,
        "failures": total - ok,
        "success_rate": if total == 0 { Value::Null } else { json!(ok as f64 / total as f64) },
        "latency_ms": {"p50": percentile(&latencies, 0.5), "p95": percentile(&latencies, 0.95),
                       "p99": percentile(&latencies, 0.99)},
        "per_minute": minutes,
    })))
}
