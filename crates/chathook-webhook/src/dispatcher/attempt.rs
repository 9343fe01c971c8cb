//! One delivery and its attempts: what a delivery carries, sending it once (signed, timed and written
//! to the attempt log, the same way for the dispatcher and for `POST .../test`), and settling a
//! dispatcher's attempt: a retried delivery that succeeded leaves the retry table, a failure is parked
//! for its next attempt on the retry schedule or dead-lettered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_events::LoggedEvent;
use chathook_store::{AttemptRecord, PendingDelivery, WebhookStore};
use rand::Rng;

use crate::attempt_log::AttemptLog;
use crate::client::{AttemptResult, Deliverer, Request, TencentRules};
use crate::clock::now_ms;
use crate::config::WebhookConfig;
use crate::endpoint::{Endpoint, Flavour, LOCAL_SOURCE};
use crate::format::Rendered;
use crate::metrics::{endpoint_label, WebhookMetrics};

/// A delivery ready to attempt.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Stable across attempts: the receiver's de-duplication key (`webhook-id`).
    pub id: String,
    /// The event name on the wire.
    pub event: String,
    pub query: String,
    pub body: Arc<[u8]>,
    /// Log positions it covers (fresh deliveries only; a parked one is in the retry table).
    pub positions: Vec<u64>,
    /// Attempts already made.
    pub attempts: u32,
    pub event_at_ms: i64,
    /// Came from the retry table.
    pub parked: bool,
    /// Where its events came from: `local`, a relay source's id, or several joined with `,`.
    pub source: String,
}

impl Delivery {
    /// The delivery of one logged event.
    pub fn single(logged: &LoggedEvent, r: Rendered) -> Delivery {
        Delivery {
            id: format!("evt_{}", logged.position),
            event: r.event,
            query: r.query,
            body: r.body.into(),
            positions: vec![logged.position],
            attempts: 0,
            event_at_ms: logged.at_ms,
            parked: false,
            source: logged.event.source().unwrap_or(LOCAL_SOURCE).to_string(),
        }
    }

    /// A batch; its id names the first and last log positions it carries.
    pub fn batch(
        prefix: &str,
        positions: Vec<u64>,
        r: Rendered,
        event_at_ms: i64,
        source: String,
    ) -> Delivery {
        let first = positions.first().copied().unwrap_or(0);
        let last = positions.last().copied().unwrap_or(0);
        Delivery {
            id: format!("{prefix}_{first}_{last}"),
            event: r.event,
            query: r.query,
            body: r.body.into(),
            positions,
            attempts: 0,
            event_at_ms,
            parked: false,
            source,
        }
    }

    /// A delivery parked in the retry table.
    pub fn parked(p: PendingDelivery) -> Delivery {
        Delivery {
            id: p.delivery_id,
            event: p.event,
            query: p.query,
            body: p.body.into(),
            positions: Vec::new(),
            attempts: p.attempts,
            event_at_ms: p.event_at_ms,
            parked: true,
            source: p.source,
        }
    }

    /// A one-off delivery of `r` under `id` (test sends).
    pub fn one_off(id: String, r: Rendered) -> Delivery {
        Delivery {
            id,
            event: r.event,
            query: r.query,
            body: r.body.into(),
            positions: Vec::new(),
            attempts: 0,
            event_at_ms: now_ms(),
            parked: false,
            source: LOCAL_SOURCE.to_string(),
        }
    }
}

/// Sends `delivery` to `endpoint` once and writes the attempt to the attempt log.
pub(crate) async fn send(
    deliverer: &Deliverer,
    attempts: &AttemptLog,
    endpoint: &Endpoint,
    delivery: &Delivery,
) -> (i64, AttemptResult) {
    send_as(deliverer, attempts, endpoint, delivery, false).await
}

/// Sends a before-send hook's request once (within `hook_timeout_ms`; the caller reads the verdict
/// from the answer) and writes the attempt to the attempt log.
pub(crate) async fn send_hook(
    deliverer: &Deliverer,
    attempts: &AttemptLog,
    endpoint: &Endpoint,
    delivery: &Delivery,
) -> (i64, AttemptResult) {
    send_as(deliverer, attempts, endpoint, delivery, true).await
}

async fn send_as(
    deliverer: &Deliverer,
    attempts: &AttemptLog,
    endpoint: &Endpoint,
    delivery: &Delivery,
    hook: bool,
) -> (i64, AttemptResult) {
    let at_ms = now_ms();
    let timeout_ms = if hook {
        endpoint.hook_timeout_ms
    } else {
        endpoint.timeout_ms
    };
    let result = deliverer
        .send(Request {
            url: &endpoint.url,
            query: &delivery.query,
            delivery_id: &delivery.id,
            body: delivery.body.clone(),
            secrets: endpoint.signing_secrets(at_ms),
            timeout: Duration::from_millis(timeout_ms),
            tencent: (endpoint.flavour == Flavour::Tencent).then_some(TencentRules {
                sign_token: endpoint.sign_token.as_deref(),
                error_code: !hook,
            }),
            auth: &endpoint.auth,
        })
        .await;
    let record = AttemptRecord {
        endpoint_id: endpoint.id.clone(),
        delivery_id: delivery.id.clone(),
        event: delivery.event.clone(),
        at_ms,
        success: result.success,
        status: result.status,
        latency_ms: latency_ms(result.latency),
        error: result.error.clone(),
        response: result.response.clone(),
        request: logged_request(&delivery.body),
        source: delivery.source.clone(),
    };
    if hook {
        attempts.record_lingering(record);
    } else {
        attempts.record(record);
    }
    (at_ms, result)
}

/// How much of a request body the attempt log keeps.
pub(crate) const LOGGED_REQUEST_BYTES: usize = 16 * 1024;

/// The start of `body` as text, for the attempt log.
fn logged_request(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(LOGGED_REQUEST_BYTES)]).into_owned()
}

/// Whole milliseconds of `latency`, saturating.
pub(crate) fn latency_ms(latency: Duration) -> u32 {
    latency.as_millis().min(u128::from(u32::MAX)) as u32
}

/// The delay before attempt number `attempts` (0-based), with jitter; `None` when the schedule is spent.
pub(crate) fn retry_delay(schedule: &[Duration], jitter: f64, attempts: u32) -> Option<Duration> {
    let base = *schedule.get(attempts as usize)?;
    if jitter == 0.0 || base.is_zero() {
        return Some(base);
    }
    let factor = 1.0 + rand::rng().random_range(-jitter..=jitter);
    Some(base.mul_f64(factor.max(0.0)))
}

/// Where a dispatcher's attempt left its delivery.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Settled {
    /// Delivered, or parked for later: its positions are done with.
    Done,
    /// Dead-lettered (its schedule ran out): its positions are done with.
    Dead,
    /// Parked for a retry at this time.
    RetryAt(Instant),
    /// A failure could not be parked: its positions stay outstanding (read again after a restart),
    /// and the dispatcher retries it from memory meanwhile.
    NotParked,
}

/// Settles a dispatcher's attempt of `delivery` that gave `result`.
pub(crate) async fn settle(
    store: &dyn WebhookStore,
    config: &WebhookConfig,
    metrics: &WebhookMetrics,
    endpoint: &Endpoint,
    delivery: &Delivery,
    result: &AttemptResult,
) -> Settled {
    if result.success {
        if delivery.parked {
            if let Err(e) = store
                .complete_deliveries(&endpoint.id, vec![delivery.id.clone()])
                .await
            {
                tracing::error!(error = %e, "cannot mark a retried delivery done; it will be sent again");
            }
        }
        return Settled::Done;
    }
    let attempts = delivery.attempts + 1;
    let schedule = endpoint.retry_schedule(&config.retry_schedule);
    let delay = result
        .retry_after
        .or_else(|| retry_delay(&schedule, config.retry_jitter, attempts));
    let dead = delay.is_none() && !result.gone;
    let now = now_ms();
    let parked = PendingDelivery {
        delivery_id: delivery.id.clone(),
        endpoint_id: endpoint.id.clone(),
        event: delivery.event.clone(),
        query: delivery.query.clone(),
        body: delivery.body.to_vec(),
        attempts: if result.gone {
            delivery.attempts
        } else {
            attempts
        },
        next_at_ms: now + delay.unwrap_or(Duration::ZERO).as_millis() as i64,
        event_at_ms: delivery.event_at_ms,
        last_error: result.error.clone(),
        dead,
        dead_at_ms: if dead { now } else { 0 },
        source: delivery.source.clone(),
    };
    if let Err(e) = store.park_deliveries(vec![parked]).await {
        tracing::error!(error = %e, "cannot park a failed delivery; it stays in the queue");
        return Settled::NotParked;
    }
    if dead {
        metrics
            .dead_letters
            .get_or_create(&endpoint_label(&endpoint.id))
            .inc();
        return Settled::Dead;
    }
    Settled::RetryAt(Instant::now() + delay.unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Rendered;
    use crate::guard::NetworkGuard;
    use chathook_store::{AttemptQuery, SqliteOptions, SqliteStore};
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn the_schedule_with_jitter() {
        let s = [
            Duration::ZERO,
            Duration::from_secs(5),
            Duration::from_secs(300),
        ];
        assert_eq!(retry_delay(&s, 0.2, 0), Some(Duration::ZERO));
        for _ in 0..100 {
            let d = retry_delay(&s, 0.2, 1).unwrap();
            assert!(
                d >= Duration::from_secs(4) && d <= Duration::from_secs(6),
                "{d:?}"
            );
        }
        assert_eq!(retry_delay(&s, 0.0, 2), Some(Duration::from_secs(300)));
        assert_eq!(retry_delay(&s, 0.2, 3), None);
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<SqliteStore>,
        log: AttemptLog,
        endpoint: Endpoint,
        config: WebhookConfig,
    }

    /// A store, an attempt log and an endpoint whose URL refuses connections (a port just closed).
    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(SqliteOptions::new(dir.path())).unwrap());
        let (log, _) = AttemptLog::start(store.clone(), Counter::default());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut endpoint = Endpoint::new(
            "ep_1".into(),
            format!("http://127.0.0.1:{port}/hook"),
            crate::Flavour::Standard,
            vec![],
            crate::endpoint::new_secret(),
        );
        endpoint.timeout_ms = 1000;
        let config = WebhookConfig {
            retry_schedule: vec![Duration::ZERO, Duration::from_secs(60)],
            retry_jitter: 0.0,
            ..WebhookConfig::default()
        };
        Fixture {
            _dir: dir,
            store,
            log,
            endpoint,
            config,
        }
    }

    fn rendered() -> Rendered {
        Rendered {
            event: "message.sent".into(),
            query: String::new(),
            body: b"{}".to_vec(),
        }
    }

    #[tokio::test]
    async fn a_failed_attempt_is_logged_then_parked_on_the_schedule_then_dead_lettered() {
        let f = fixture().await;
        let deliverer =
            Deliverer::new(NetworkGuard::new(vec![], vec![]), Default::default()).unwrap();
        let metrics = WebhookMetrics::default();
        let mut delivery = Delivery::one_off("evt_5".into(), rendered());
        delivery.positions = vec![5];

        let (_, result) = send(&deliverer, &f.log, &f.endpoint, &delivery).await;
        assert!(!result.success && !result.error.is_empty());
        let settled = settle(
            &*f.store,
            &f.config,
            &metrics,
            &f.endpoint,
            &delivery,
            &result,
        )
        .await;
        let Settled::RetryAt(at) = settled else {
            panic!("{settled:?}")
        };
        assert!(
            at > Instant::now() + Duration::from_secs(50),
            "the schedule's second step"
        );
        let parked = f.store.due_deliveries("ep_1", i64::MAX, 10).await.unwrap();
        assert_eq!((parked.len(), parked[0].attempts), (1, 1));

        // the schedule is spent after the second attempt: dead-lettered
        let retried = Delivery::parked(parked[0].clone());
        let (_, result) = send(&deliverer, &f.log, &f.endpoint, &retried).await;
        let settled = settle(
            &*f.store,
            &f.config,
            &metrics,
            &f.endpoint,
            &retried,
            &result,
        )
        .await;
        assert_eq!(settled, Settled::Dead);
        assert!(f
            .store
            .due_deliveries("ep_1", i64::MAX, 10)
            .await
            .unwrap()
            .is_empty());

        f.log.flush().await;
        let logged = f
            .store
            .attempts(AttemptQuery {
                endpoint_id: "ep_1".into(),
                limit: 10,
                ..AttemptQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(logged.len(), 2);
        assert!(logged
            .iter()
            .all(|(_, a)| a.delivery_id == "evt_5" && !a.success));
    }
}
