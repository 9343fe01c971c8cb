//! One endpoint's dispatcher: reads the event log from the endpoint's durable cursor, renders and
//! batches what the endpoint selected, delivers with its own in-flight limit, rate limit and circuit
//! breaker, parks failures durably for retry (or dead-letters them), and advances the cursor only past
//! events that were delivered or parked.
//!
//! Isolation: each endpoint has its own task, slots and queue; a slow endpoint fills only its own slots.
//! The chat path never waits on this: the dispatcher only reads the log.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_events::{Event, LoggedEvent, Message};
use chathook_store::{AttemptRecord, PendingDelivery};
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::client::{AttemptResult, Request};
use crate::endpoint::{Endpoint, Gap, LogRelease};
use crate::engine::Shared;
use crate::format::{self, Route};
use crate::metrics::endpoint_label;

/// How long a stopping dispatcher waits for its in-flight attempts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A delivery ready to attempt.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub id: String,
    pub event: String,
    pub query: String,
    pub body: Arc<[u8]>,
    /// Log positions it covers (fresh deliveries only).
    pub positions: Vec<u64>,
    /// Attempts already made.
    pub attempts: u32,
    pub event_at_ms: i64,
    /// Came from the retry table.
    pub parked: bool,
}

/// What a finished delivery task reports.
struct Done {
    delivery: Delivery,
    result: AttemptResult,
    /// Parking a failure failed: the positions stay outstanding (redelivered after a restart).
    park_failed: bool,
    /// The failure was parked for a retry at this time.
    retry_at: Option<Instant>,
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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

struct Breaker {
    consecutive_failures: u32,
    open: bool,
    probe_delay: Duration,
    probe_at: Instant,
    /// The delivery probing the open breaker, if one is in flight.
    probe: Option<String>,
}

struct Batch {
    positions: Vec<u64>,
    started: Option<Instant>,
    bytes: usize,
}

impl Batch {
    fn new() -> Self {
        Batch {
            positions: Vec::new(),
            started: None,
            bytes: 0,
        }
    }
}

/// Events read but not yet rendered into batches, by route.
struct Batches {
    notify: Batch,
    notify_messages: Vec<Arc<LoggedEvent>>,
    status: Batch,
    status_items: Vec<String>,
}

pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    endpoint: watch::Receiver<Arc<Endpoint>>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
    consumer: String,
    read_pos: u64,
    acked: u64,
    outstanding: BTreeSet<u64>,
    ready: VecDeque<Delivery>,
    inflight: JoinSet<Done>,
    inflight_parked: HashSet<String>,
    batches: Batches,
    breaker: Breaker,
    tokens: f64,
    tokens_at: Instant,
    /// When the retry table next has a delivery due: `None` while none is waiting (as far as this
    /// dispatcher knows: its own failures and a wake from the API set it). An idle endpoint with nothing
    /// to retry sleeps until the event log, the API or its own attempts wake it.
    retry_due: Option<Instant>,
    /// When the retry queue's gauges were last refreshed.
    gauges_at: Instant,
    /// Deliveries wait in the retry table: the oldest-pending gauge is refreshed every second.
    retries_waiting: bool,
}

impl Dispatcher {
    pub(crate) async fn start(
        shared: Arc<Shared>,
        endpoint: watch::Receiver<Arc<Endpoint>>,
        wake: Arc<Notify>,
        stop: watch::Receiver<bool>,
        start_at: chathook_events::StartAt,
    ) -> Result<Dispatcher, chathook_events::EventLogError> {
        let consumer = endpoint.borrow().consumer_name();
        let acked = shared.log.register_consumer(&consumer, start_at).await?;
        Ok(Dispatcher {
            shared,
            endpoint,
            wake,
            stop,
            consumer,
            read_pos: acked,
            acked,
            outstanding: BTreeSet::new(),
            ready: VecDeque::new(),
            inflight: JoinSet::new(),
            inflight_parked: HashSet::new(),
            batches: Batches {
                notify: Batch::new(),
                notify_messages: Vec::new(),
                status: Batch::new(),
                status_items: Vec::new(),
            },
            breaker: Breaker {
                consecutive_failures: 0,
                open: false,
                probe_delay: Duration::ZERO,
                probe_at: Instant::now(),
                probe: None,
            },
            tokens: 0.0,
            tokens_at: Instant::now(),
            // Look once at start: deliveries parked before a restart.
            retry_due: Some(Instant::now()),
            // Refresh the gauges (and learn whether retries wait) on the first pass.
            gauges_at: Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
            retries_waiting: false,
        })
    }

    fn endpoint(&self) -> Arc<Endpoint> {
        self.endpoint.borrow().clone()
    }

    /// Runs until stopped; in-flight attempts are awaited so their outcome is recorded.
    pub(crate) async fn run(mut self) {
        let mut last_ack = Instant::now();
        loop {
            if *self.stop.borrow() {
                break;
            }
            self.shared.metrics.dispatcher_wakeups.inc();
            let endpoint = self.endpoint();
            let active = endpoint.enabled;
            if !active {
                self.release_log_when_held_too_long(&endpoint).await;
            } else if endpoint.log_released.is_some() {
                self.resume_log(&endpoint).await;
            }
            if active {
                self.flush_due_batches(&endpoint, false);
                self.poll_retries(&endpoint).await;
                self.start_ready(&endpoint);
                if self.can_read(&endpoint) {
                    if let Err(e) = self.read(&endpoint).await {
                        tracing::error!(endpoint = %endpoint.id, error = %e, "cannot read the event log");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    self.start_ready(&endpoint);
                }
            }
            if last_ack.elapsed() >= Duration::from_millis(50) || self.inflight.is_empty() {
                self.ack().await;
                last_ack = Instant::now();
            }
            // Wake on the next commit whenever there is room for it.
            let wait_for_log = active && self.has_room(&endpoint);
            let deadline = self.next_deadline(&endpoint);
            let log = self.shared.log.clone();
            let read_pos = self.read_pos;
            tokio::select! {
                Some(done) = self.inflight.join_next(), if !self.inflight.is_empty() => {
                    if let Ok(done) = done {
                        self.finish(done).await;
                    }
                    while let Some(Ok(done)) = self.inflight.try_join_next() {
                        self.finish(done).await;
                    }
                }
                _ = log.wait_beyond(read_pos), if wait_for_log => {}
                _ = tokio::time::sleep_until(deadline.into()) => {}
                _ = self.endpoint.changed() => {}
                _ = self.wake.notified() => { self.retry_due = Some(Instant::now()); }
                _ = self.stop.changed() => {}
            }
        }
        // Let in-flight attempts finish for a moment; the rest are abandoned unacknowledged, so their
        // events are delivered again after the restart.
        let grace = tokio::time::sleep(SHUTDOWN_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                next = self.inflight.join_next() => match next {
                    Some(Ok(done)) => self.finish(done).await,
                    Some(Err(_)) => {}
                    None => break,
                },
                _ = &mut grace => {
                    self.inflight.abort_all();
                    break;
                }
            }
        }
        self.ack().await;
    }

    /// Whether there is room to take more events (whether or not any are waiting).
    fn has_room(&self, endpoint: &Endpoint) -> bool {
        !self.breaker.open
            && self.ready.len() < endpoint.max_in_flight as usize
            && self.inflight.len() < endpoint.max_in_flight as usize
    }

    fn can_read(&self, endpoint: &Endpoint) -> bool {
        self.has_room(endpoint) && self.shared.log.head() > self.read_pos
    }

    fn next_deadline(&self, endpoint: &Endpoint) -> Instant {
        // Nothing periodic: with nothing batched, parked or probing, only a wake-up ends the wait.
        let mut next = Instant::now() + Duration::from_secs(3600);
        let cfg = &self.shared.config;
        if let Some(s) = self.batches.notify.started {
            next = next.min(s + cfg.msg_notify_interval);
        }
        if let Some(s) = self.batches.status.started {
            next = next.min(s + cfg.online_status_interval);
        }
        if let Some(due) = self.retry_due.filter(|_| self.has_room(endpoint)) {
            next = next.min(due.max(Instant::now() + Duration::from_millis(1)));
        }
        if self.retries_waiting {
            next = next.min(self.gauges_at + Duration::from_secs(1));
        }
        if !endpoint.enabled && endpoint.log_released.is_none() {
            let left = self.hold_deadline_ms(endpoint) - now_ms();
            next = next.min(Instant::now() + Duration::from_millis(left.max(0) as u64));
        }
        if self.breaker.open {
            next = next.min(self.breaker.probe_at);
        }
        if !self.ready.is_empty() && endpoint.rate_limit_per_s.is_some() {
            next = next.min(Instant::now() + Duration::from_millis(5));
        }
        next
    }

    /// Reads the next events and turns those the endpoint selected into deliveries or batch entries.
    async fn read(&mut self, endpoint: &Endpoint) -> Result<(), chathook_events::EventLogError> {
        let events = self
            .shared
            .log
            .read_after(self.read_pos, self.shared.config.read_batch)
            .await?;
        let features = *self.shared.features.borrow();
        for logged in events {
            self.read_pos = logged.position;
            let kind = logged.event.kind();
            if !endpoint.events.contains(&kind) || !features.allows(kind) {
                continue;
            }
            let Some(route) = format::route(endpoint.flavour, &logged.event) else {
                continue;
            };
            self.outstanding.insert(logged.position);
            match route {
                Route::Single => {
                    let r = format::render_single(endpoint.flavour, &logged);
                    self.ready.push_back(Delivery {
                        id: format!("evt_{}", logged.position),
                        event: r.event,
                        query: r.query,
                        body: r.body.into(),
                        positions: vec![logged.position],
                        attempts: 0,
                        event_at_ms: logged.at_ms,
                        parked: false,
                    });
                }
                Route::Notify => {
                    let size = match &logged.event {
                        Event::MessageSent(m) => m.payload.len() * 4 / 3 + 320,
                        _ => 320,
                    };
                    let shared = self.shared.clone();
                    let cfg = &shared.config;
                    if self.batches.notify.bytes + size > cfg.max_body_bytes
                        && !self.batches.notify.positions.is_empty()
                    {
                        self.flush_notify();
                    }
                    let b = &mut self.batches.notify;
                    b.started.get_or_insert_with(Instant::now);
                    b.positions.push(logged.position);
                    b.bytes += size;
                    self.batches.notify_messages.push(Arc::new(logged));
                    if self.batches.notify.positions.len() >= cfg.msg_notify_max_batch {
                        self.flush_notify();
                    }
                }
                Route::Status => {
                    let item = match &logged.event {
                        Event::UserOnline(c) => format::status_item(c, true),
                        Event::UserOffline(c) => format::status_item(c, false),
                        _ => continue,
                    };
                    let b = &mut self.batches.status;
                    b.started.get_or_insert_with(Instant::now);
                    b.positions.push(logged.position);
                    b.bytes += item.len() + 3;
                    self.batches.status_items.push(item);
                    if self.batches.status.positions.len()
                        >= self.shared.config.msg_notify_max_batch
                        || self.batches.status.bytes >= self.shared.config.max_body_bytes
                    {
                        self.flush_status();
                    }
                }
            }
        }
        self.flush_due_batches(endpoint, true);
        Ok(())
    }

    fn flush_due_batches(&mut self, _endpoint: &Endpoint, after_read: bool) {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        if self
            .batches
            .notify
            .started
            .is_some_and(|s| s.elapsed() >= cfg.msg_notify_interval)
        {
            self.flush_notify();
        }
        let status_due = self.batches.status.started.is_some_and(|s| {
            s.elapsed() >= cfg.online_status_interval
                || (after_read && cfg.online_status_interval.is_zero())
        });
        if status_due {
            self.flush_status();
        }
    }

    fn flush_notify(&mut self) {
        let batch = std::mem::replace(&mut self.batches.notify, Batch::new());
        let events = std::mem::take(&mut self.batches.notify_messages);
        if batch.positions.is_empty() {
            return;
        }
        let messages: Vec<&Message> = events
            .iter()
            .filter_map(|e| match &e.event {
                Event::MessageSent(m) => Some(m),
                _ => None,
            })
            .collect();
        let at = events.first().map_or(0, |e| e.at_ms);
        self.push_batch("msg", batch.positions, format::render_notify(&messages), at);
    }

    /// Queues a rendered batch; its id names the first and last log positions it carries.
    fn push_batch(
        &mut self,
        prefix: &str,
        positions: Vec<u64>,
        r: format::Rendered,
        event_at_ms: i64,
    ) {
        let first = positions.first().copied().unwrap_or(0);
        let last = positions.last().copied().unwrap_or(0);
        self.ready.push_back(Delivery {
            id: format!("{prefix}_{first}_{last}"),
            event: r.event,
            query: r.query,
            body: r.body.into(),
            event_at_ms,
            positions,
            attempts: 0,
            parked: false,
        });
    }

    fn flush_status(&mut self) {
        let batch = std::mem::replace(&mut self.batches.status, Batch::new());
        let items = std::mem::take(&mut self.batches.status_items);
        if batch.positions.is_empty() {
            return;
        }
        self.push_batch(
            "sts",
            batch.positions,
            format::render_status(&items),
            now_ms(),
        );
    }

    /// Unix ms at which a disabled endpoint stops holding the event log.
    fn hold_deadline_ms(&self, endpoint: &Endpoint) -> i64 {
        let since = endpoint.disabled_at.unwrap_or(endpoint.updated_at);
        let hold = self.shared.config.hold_disabled.as_millis();
        since.saturating_add(i64::try_from(hold).unwrap_or(i64::MAX))
    }

    /// A disabled endpoint stops holding the event log once `webhook.hold_disabled` has passed.
    async fn release_log_when_held_too_long(&mut self, endpoint: &Endpoint) {
        if endpoint.log_released.is_some() || now_ms() < self.hold_deadline_ms(endpoint) {
            return;
        }
        if let Err(e) = self.shared.log.set_holding(&self.consumer, false).await {
            tracing::error!(endpoint = %endpoint.id, error = %e, "cannot release the event log");
            return;
        }
        tracing::info!(endpoint = %endpoint.id, "disabled for webhook.hold_disabled: no longer holding the event log");
        let mut next = endpoint.clone();
        next.log_released = Some(LogRelease {
            position: self.acked,
            at_ms: now_ms(),
        });
        self.shared.replace_endpoint(endpoint, next).await;
    }

    /// An endpoint enabled again after it stopped holding the log resumes from its cursor when those
    /// events are still stored, and otherwise from the oldest stored event, recording what it missed.
    async fn resume_log(&mut self, endpoint: &Endpoint) {
        let Some(release) = endpoint.log_released.clone() else {
            return;
        };
        let oldest = match self.shared.log.oldest().await {
            Ok(oldest) => oldest,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.id, error = %e, "cannot read the event log");
                return;
            }
        };
        // The first event still stored (the next one to come, when the log is empty).
        let (first_stored, until_ms) = oldest.unwrap_or((self.shared.log.head() + 1, now_ms()));
        let mut gap = endpoint.gap.clone();
        if first_stored > self.read_pos + 1 {
            let (first, last) = (self.read_pos + 1, first_stored - 1);
            gap = Some(Gap {
                first_position: first,
                last_position: last,
                count: last - first + 1,
                from_ms: release.at_ms,
                until_ms,
            });
            self.read_pos = last;
            match self.shared.log.ack(&self.consumer, last).await {
                Ok(()) => self.acked = self.acked.max(last),
                Err(e) => {
                    tracing::error!(endpoint = %endpoint.id, error = %e, "cannot move the cursor past the gap")
                }
            }
            tracing::warn!(endpoint = %endpoint.id, first, last, "events removed while the endpoint was disabled are skipped");
        }
        if let Err(e) = self.shared.log.set_holding(&self.consumer, true).await {
            tracing::error!(endpoint = %endpoint.id, error = %e, "cannot hold the event log again");
            return;
        }
        let mut next = endpoint.clone();
        next.log_released = None;
        next.gap = gap;
        self.shared.replace_endpoint(endpoint, next).await;
    }

    /// When the next parked delivery after `now` (unix ms) is due, from the retry table. `now` must be
    /// the time the due deliveries were loaded for, so that none falls between the two reads.
    async fn next_retry_due(&self, endpoint_id: &str, now: i64) -> Option<Instant> {
        match self.shared.store.next_due(endpoint_id, now).await {
            Ok(due) => {
                due.map(|at| Instant::now() + Duration::from_millis((at - now).max(0) as u64))
            }
            Err(e) => {
                tracing::error!(endpoint = %endpoint_id, error = %e, "cannot read the retry table");
                Some(Instant::now() + Duration::from_secs(1))
            }
        }
    }

    /// Loads parked deliveries that are due (or one to probe an open breaker).
    async fn poll_retries(&mut self, endpoint: &Endpoint) {
        let due = self.retry_due.is_some_and(|d| d <= Instant::now());
        if !due && !self.breaker.open {
            return;
        }
        let free = (endpoint.max_in_flight as usize)
            .saturating_sub(self.inflight.len() + self.ready.len());
        if free == 0 {
            return;
        }
        let (now, limit) = if self.breaker.open {
            if self.breaker.probe.is_some() || Instant::now() < self.breaker.probe_at {
                return;
            }
            // Probe with the oldest parked delivery, due or not.
            (i64::MAX, 1)
        } else {
            (now_ms(), free)
        };
        let due = match self
            .shared
            .store
            .due_deliveries(&endpoint.id, now, limit + self.inflight_parked.len())
            .await
        {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.id, error = %e, "cannot load deliveries to retry");
                return;
            }
        };
        let loaded = due.len();
        let fresh: Vec<PendingDelivery> = due
            .into_iter()
            .filter(|p| !self.inflight_parked.contains(&p.delivery_id))
            .take(limit)
            .collect();
        if !self.breaker.open {
            self.retry_due = if loaded >= limit + self.inflight_parked.len() {
                // Maybe more are due: look again as soon as there is room.
                Some(Instant::now())
            } else {
                self.next_retry_due(&endpoint.id, now).await
            };
        }
        for p in fresh {
            self.inflight_parked.insert(p.delivery_id.clone());
            let delivery = Delivery {
                id: p.delivery_id,
                event: p.event,
                query: p.query,
                body: p.body.into(),
                positions: Vec::new(),
                attempts: p.attempts,
                event_at_ms: p.event_at_ms,
                parked: true,
            };
            if self.breaker.open {
                self.breaker.probe = Some(delivery.id.clone());
                self.spawn(endpoint, delivery);
            } else {
                self.ready.push_front(delivery);
            }
        }
    }

    fn take_token(&mut self, endpoint: &Endpoint) -> bool {
        let Some(rate) = endpoint.rate_limit_per_s.filter(|r| *r > 0) else {
            return true;
        };
        let rate = f64::from(rate);
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.tokens_at).as_secs_f64() * rate).min(rate);
        self.tokens_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn start_ready(&mut self, endpoint: &Endpoint) {
        if self.breaker.open {
            // One fresh delivery may probe when nothing parked is left to probe with.
            if self.breaker.probe.is_none()
                && Instant::now() >= self.breaker.probe_at
                && self.inflight.is_empty()
            {
                if let Some(d) = self.ready.pop_front() {
                    self.breaker.probe = Some(d.id.clone());
                    self.spawn(endpoint, d);
                }
            }
            return;
        }
        while self.inflight.len() < endpoint.max_in_flight as usize && !self.ready.is_empty() {
            if !self.take_token(endpoint) {
                break;
            }
            if let Some(d) = self.ready.pop_front() {
                self.spawn(endpoint, d);
            }
        }
    }

    fn spawn(&mut self, endpoint: &Endpoint, delivery: Delivery) {
        let shared = self.shared.clone();
        let endpoint = endpoint.clone();
        self.inflight.spawn(async move {
            let now = now_ms();
            let result = shared
                .deliverer
                .send(Request {
                    url: &endpoint.url,
                    query: &delivery.query,
                    delivery_id: &delivery.id,
                    body: delivery.body.clone(),
                    secrets: endpoint.signing_secrets(now),
                    timeout: Duration::from_millis(endpoint.timeout_ms),
                })
                .await;
            shared.record_attempt(AttemptRecord {
                endpoint_id: endpoint.id.clone(),
                delivery_id: delivery.id.clone(),
                event: delivery.event.clone(),
                at_ms: now,
                success: result.success,
                status: result.status,
                latency_ms: result.latency.as_millis().min(u128::from(u32::MAX)) as u32,
                error: result.error.clone(),
                response: result.response.clone(),
            });
            let mut park_failed = false;
            let mut retry_at = None;
            if result.success {
                if delivery.parked {
                    if let Err(e) = shared.store.complete_deliveries(&endpoint.id, vec![delivery.id.clone()]).await {
                        tracing::error!(error = %e, "cannot mark a retried delivery done; it will be sent again");
                    }
                }
            } else {
                let attempts = delivery.attempts + 1;
                let cfg = &shared.config;
                let delay = result
                    .retry_after
                    .map(|d| d.min(Duration::from_secs(3600)))
                    .or_else(|| retry_delay(&cfg.retry_schedule, cfg.retry_jitter, attempts));
                let dead = delay.is_none() && !result.gone;
                let next = now_ms() + delay.unwrap_or(Duration::ZERO).as_millis() as i64;
                let parked = PendingDelivery {
                    delivery_id: delivery.id.clone(),
                    endpoint_id: endpoint.id.clone(),
                    event: delivery.event.clone(),
                    query: delivery.query.clone(),
                    body: delivery.body.to_vec(),
                    attempts: if result.gone { delivery.attempts } else { attempts },
                    next_at_ms: next,
                    event_at_ms: delivery.event_at_ms,
                    last_error: result.error.clone(),
                    dead,
                    dead_at_ms: if dead { now_ms() } else { 0 },
                };
                if let Err(e) = shared.store.park_deliveries(vec![parked]).await {
                    tracing::error!(error = %e, "cannot park a failed delivery; it stays in the queue");
                    park_failed = true;
                } else if !dead {
                    retry_at = Some(Instant::now() + delay.unwrap_or(Duration::ZERO));
                }
                if dead {
                    shared.metrics.dead_letters.get_or_create(&endpoint_label(&endpoint.id)).inc();
                }
            }
            Done {
                delivery,
                result,
                park_failed,
                retry_at,
            }
        });
    }

    async fn finish(&mut self, done: Done) {
        let endpoint = self.endpoint();
        let Done {
            delivery,
            result,
            park_failed,
            retry_at,
        } = done;
        if let Some(at) = retry_at {
            self.retry_due = Some(self.retry_due.map_or(at, |due| due.min(at)));
            self.retries_waiting = true;
        }
        if delivery.parked {
            self.inflight_parked.remove(&delivery.id);
            self.shared
                .metrics
                .retries
                .get_or_create(&endpoint_label(&endpoint.id))
                .inc();
        }
        let mut labels = endpoint_label(&endpoint.id);
        labels.push(("event".into(), delivery.event.clone()));
        labels.push((
            "outcome".into(),
            if result.success { "success" } else { "failure" }.into(),
        ));
        self.shared.metrics.deliveries.get_or_create(&labels).inc();
        self.shared
            .metrics
            .attempt_latency
            .get_or_create(&endpoint_label(&endpoint.id))
            .observe(result.latency.as_secs_f64());
        let delivery_id = delivery.id.clone();
        if park_failed {
            // Keep the positions outstanding: the events are read again after a restart. Retry the
            // delivery from memory meanwhile.
            let mut again = delivery;
            again.attempts += 1;
            self.ready.push_back(again);
        } else {
            for p in &delivery.positions {
                self.outstanding.remove(p);
            }
        }
        let was_probe = self.breaker.probe.as_deref() == Some(delivery_id.as_str());
        if was_probe {
            self.breaker.probe = None;
        }
        if result.success {
            if self.breaker.open {
                tracing::info!(endpoint = %endpoint.id, "circuit breaker closed");
            }
            self.breaker.consecutive_failures = 0;
            self.breaker.open = false;
            self.breaker.probe_delay = Duration::ZERO;
            self.shared
                .metrics
                .breaker_open
                .get_or_create(&endpoint_label(&endpoint.id))
                .set(0);
            if endpoint.failing_since.is_some() {
                self.shared.mark_failing(&endpoint.id, None, None).await;
            }
        } else {
            self.breaker.consecutive_failures += 1;
            let shared = self.shared.clone();
            let cfg = &shared.config;
            if self.breaker.open {
                // Only a failed probe pushes the next one back; attempts that were already in flight
                // when the breaker opened do not.
                if was_probe {
                    self.breaker.probe_delay =
                        (self.breaker.probe_delay * 2).min(cfg.breaker_max_probe_delay);
                    self.breaker.probe_at = Instant::now() + self.breaker.probe_delay;
                }
            } else if self.breaker.consecutive_failures >= cfg.breaker_failures {
                tracing::warn!(endpoint = %endpoint.id, failures = self.breaker.consecutive_failures, "circuit breaker opened");
                self.breaker.open = true;
                self.breaker.probe_delay = cfg.breaker_probe_delay;
                self.breaker.probe_at = Instant::now() + cfg.breaker_probe_delay;
                self.shared
                    .metrics
                    .breaker_open
                    .get_or_create(&endpoint_label(&endpoint.id))
                    .set(1);
                // Deliveries waiting for a slot go back to the log: they are read again once it closes.
                self.requeue_ready();
            }
            let now = now_ms();
            if result.gone {
                self.shared
                    .mark_failing(
                        &endpoint.id,
                        Some(now),
                        Some("the endpoint answered 410 Gone".into()),
                    )
                    .await;
            } else {
                let since = endpoint.failing_since.unwrap_or(now);
                let too_long = now - since >= cfg.disable_after.as_millis() as i64;
                if endpoint.failing_since.is_none() || too_long {
                    let reason = too_long.then(|| {
                        format!("failing without a success since {}", format::rfc3339(since))
                    });
                    self.shared
                        .mark_failing(&endpoint.id, Some(since), reason)
                        .await;
                }
            }
        }
    }

    /// Drops fresh deliveries not yet started and rewinds reading to just before the oldest of them, so
    /// that nothing waits in memory while the breaker is open.
    fn requeue_ready(&mut self) {
        let mut rewind: Option<u64> = None;
        for d in self.ready.drain(..) {
            if d.parked {
                // Still in the retry table: polled again once the breaker closes.
                self.inflight_parked.remove(&d.id);
                continue;
            }
            if let Some(first) = d.positions.first() {
                rewind = Some(rewind.map_or(*first, |r: u64| r.min(*first)));
            }
            for p in &d.positions {
                self.outstanding.remove(p);
            }
        }
        for p in self
            .batches
            .notify
            .positions
            .iter()
            .chain(&self.batches.status.positions)
        {
            rewind = Some(rewind.map_or(*p, |r: u64| r.min(*p)));
            self.outstanding.remove(p);
        }
        self.batches = Batches {
            notify: Batch::new(),
            notify_messages: Vec::new(),
            status: Batch::new(),
            status_items: Vec::new(),
        };
        if let Some(r) = rewind {
            // Events between the rewind point and the old read position are read again; those still
            // in flight stay outstanding, so a second copy is possible (at-least-once, same id).
            self.read_pos = r - 1;
        }
    }

    /// Moves the durable cursor up to the last event before the oldest outstanding one.
    async fn ack(&mut self) {
        let candidate = match self.outstanding.first() {
            Some(p) => p - 1,
            None => self.read_pos,
        };
        let candidate = candidate.min(self.read_pos);
        if candidate > self.acked {
            match self.shared.log.ack(&self.consumer, candidate).await {
                Ok(()) => self.acked = candidate,
                Err(e) => {
                    tracing::error!(consumer = %self.consumer, error = %e, "cannot advance the cursor")
                }
            }
        }
        let depth = self.shared.log.head().saturating_sub(self.acked);
        let id = self.endpoint.borrow().id.clone();
        let labels = endpoint_label(&id);
        self.shared
            .metrics
            .queue_depth
            .get_or_create(&labels)
            .set(depth as i64);
        if self.gauges_at.elapsed() >= Duration::from_secs(1) {
            self.gauges_at = Instant::now();
            if let Ok((live, _, oldest)) = self.shared.store.pending_summary(&id).await {
                self.retries_waiting = live > 0;
                let age = oldest.map_or(0, |at| (now_ms() - at).max(0) / 1000);
                self.shared
                    .metrics
                    .oldest_pending_age_seconds
                    .get_or_create(&labels)
                    .set(age);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
