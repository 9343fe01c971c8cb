//! Relay refusal spikes as `relay.refused` notices: every `relay.refused_notice_window`, each source's
//! refusals on this node are compared with the window before; a source that refused at least
//! `relay.refused_notice_after` requests in the window is reported with its count by reason (a rotated
//! URL still in use, a wrong token, a skewed clock). Quiet windows report nothing.

use std::collections::{BTreeMap, HashMap};

use chathook_events::{Event, RelayRefusalNotice};
use tokio_util::sync::CancellationToken;

use super::Relay;
use crate::clock::now_ms;
use crate::notices::Notices;

/// Each source's refusals by reason at the last look.
type Seen = HashMap<String, BTreeMap<String, u64>>;

/// Looks at every source's refusals each window until `stop`.
pub(crate) async fn watch(relay: Relay, notices: Notices, stop: CancellationToken) {
    let window = relay.config().refused_notice_window;
    let mut seen = Seen::new();
    let mut from_ms = now_ms();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(window) => {}
            _ = stop.cancelled() => return,
        }
        let until_ms = now_ms();
        for notice in spikes(&relay, &mut seen, from_ms, until_ms) {
            notices.emit(Event::RelayRefused(Box::new(notice))).await;
        }
        from_ms = until_ms;
    }
}

/// The sources whose refusals since `seen` reach the threshold, as notices; `seen` moves on.
fn spikes(relay: &Relay, seen: &mut Seen, from_ms: i64, until_ms: i64) -> Vec<RelayRefusalNotice> {
    let threshold = relay.config().refused_notice_after;
    let mut out = Vec::new();
    let sources = relay.list();
    for source in &sources {
        let now = relay.counters().view(&source.id).refused;
        let before = seen
            .insert(source.id.clone(), now.clone())
            .unwrap_or_default();
        let reasons: BTreeMap<String, u64> = now
            .into_iter()
            .map(|(reason, n)| {
                let delta = n.saturating_sub(before.get(&reason).copied().unwrap_or(0));
                (reason, delta)
            })
            .filter(|(_, delta)| *delta > 0)
            .collect();
        let count: u64 = reasons.values().sum();
        if threshold > 0 && count >= threshold {
            out.push(RelayRefusalNotice {
                source_id: source.id.clone(),
                description: source.description.clone(),
                count,
                reasons,
                from_ms,
                until_ms,
            });
        }
    }
    seen.retain(|id, _| sources.iter().any(|s| &s.id == id));
    out
}
