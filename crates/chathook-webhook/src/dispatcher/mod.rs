//! One endpoint's dispatcher: reads the event log from the endpoint's durable cursor, renders and
//! batches what the endpoint selected, delivers with its own in-flight limit, rate limit and circuit
//! breaker, pauses when the receiver throttles, parks failures durably for retry (or dead-letters
//! them), and advances the cursor only past events that were delivered or parked.
//!
//! Isolation: each endpoint has its own task, slots and queue; a slow endpoint fills only its own slots.
//! The chat path never waits on this: the dispatcher only reads the log. The parts: `cursor` (positions),
//! `batcher` (msg.notify and user.onlinestatus batches), `breaker` (the circuit breaker), `throttle` (the
//! pause a throttling answer asks for), `exhausted` (dead letters counted into `delivery.exhausted`),
//! `attempt` (one delivery, sent, logged and settled). Operational events go out through `notices`.

pub(crate) mod attempt;
mod batcher;
mod breaker;
mod cursor;
mod exhausted;
mod throttle;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chathook_events::{EndpointNotice, Event, EventLog};
use chathook_store::{PendingDelivery, WebhookStore};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::attempt_log::AttemptLog;
use crate::catalog::Route;
use crate::client::AttemptResult;
use crate::client::Deliverer;
use crate::clock::now_ms;
use crate::config::WebhookConfig;
use crate::endpoint::{Endpoint, LOCAL_SOURCE};
use crate::features::Features;
use crate::format;
use crate::health::{Gap, Health, HealthBook, LogRelease, ServerDisable};
use crate::metrics::{endpoint_label, WebhookMetrics};
use crate::notices::{self, Notices};
use attempt::{Delivery, Settled};
use batcher::Batcher;
use breaker::Breaker;
use cursor::Cursor;
use exhausted::{DeadLetter, ExhaustedWindow};
use throttle::Throttle;

/// How long a stopping dispatcher waits for its in-flight attempts.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// The durable cursor moves at most this often (and at shutdown): one store commit per endpoint per
/// interval, not one per event, so an endpoint that skips or delivers every event does not add a
/// commit beside each message. After a crash, at most this much is delivered again (same ids).
const ACK_INTERVAL: Duration = Duration::from_millis(50);

/// What a finished delivery task reports.
struct Done {
    delivery: Delivery,
    result: AttemptResult,
    settled: Settled,
}

/// What dispatchers use, and all they may reach: the log, the store, the HTTP client, the attempt log,
/// the switches, the metrics and the endpoints' health (never the engine's registry of endpoints).
pub(crate) struct Context {
    pub log: Arc<dyn EventLog>,
    pub store: Arc<dyn WebhookStore>,
    pub config: WebhookConfig,
    pub deliverer: Deliverer,
    pub features: watch::Sender<Features>,
    pub metrics: WebhookMetrics,
    pub attempts: AttemptLog,
    pub health: HealthBook,
    /// `tencent.sdk_app_id`, named in every request of the tencent flavour.
    pub tencent_app: u64,
    /// Seals the endpoints' secrets in the documents the store keeps (`stored`).
    pub sealer: chathook_store::sealing::Sealer,
    /// Logs operational events (and keeps the console's recent notices).
    pub notices: Notices,
}

pub(crate) struct Dispatcher {
    ctx: Arc<Context>,
    /// The endpoint's settings (the operator's).
    endpoint: watch::Receiver<Arc<Endpoint>>,
    /// The endpoint's health (changed through `ctx.health`, by this dispatcher or the API).
    health: watch::Receiver<Arc<Health>>,
    wake: Arc<Notify>,
    /// Cancelled when the dispatcher must stop (the endpoint's worker, a lost lease, or shutdown).
    stop: CancellationToken,
    /// The name of its cursor in the event log.
    consumer: String,
    cursor: Cursor,
    /// Deliveries waiting for a slot (parked ones go first).
    ready: VecDeque<Delivery>,
    /// Attempts in flight, at most the endpoint's `max_in_flight`.
    inflight: JoinSet<Done>,
    /// Ids of parked deliveries in `ready` or in flight (not loaded twice).
    inflight_parked: HashSet<String>,
    batcher: Batcher,
    breaker: Breaker,
    /// The pause after a throttling answer: nothing new starts while it holds.
    throttle: Throttle,
    /// Dead letters counted towards the next `delivery.exhausted`.
    exhausted: ExhaustedWindow,
    /// The rate limit's token bucket: tokens left, and when it was last filled.
    tokens: f64,
    tokens_at: Instant,
    /// When the retry table next has a delivery due: `None` while none is waiting (as far as this
    /// dispatcher knows: its own failures and a wake from the API set it). An idle endpoint with nothing
    /// to retry sleeps until the event log, the API or its own attempts wake it.
    retry_due: Option<Instant>,
    /// When the retry queue's gauges were last refreshed.
    gauges_at: Instant,
    /// When the durable cursor last moved (it moves at most every `ACK_INTERVAL`).
    acked_at: Instant,
    /// Deliveries wait in the retry table: the oldest-pending gauge is refreshed every second.
    retries_waiting: bool,
}

impl Dispatcher {
    pub(crate) async fn start(
        ctx: Arc<Context>,
        endpoint: watch::Receiver<Arc<Endpoint>>,
        health: watch::Receiver<Arc<Health>>,
        wake: Arc<Notify>,
        stop: CancellationToken,
        start_at: chathook_events::StartAt,
    ) -> Result<Dispatcher, chathook_events::EventLogError> {
        let (consumer, id) = {
            let e = endpoint.borrow();
            (e.consumer_name(), e.id.clone())
        };
        let mut acked = ctx.log.register_consumer(&consumer, start_at).await?;
        // A seek asked for (on any node) is applied before anything is read.
        let seek = health.borrow().seek;
        if let Some(request) = seek {
            ctx.log.seek_consumer(&consumer, request.position).await?;
            acked = request.position;
            tracing::info!(endpoint = %id, position = request.position, "cursor moved by a seek");
            ctx.health
                .update(&id, |h| {
                    if h.seek == Some(request) {
                        h.seek = None;
                    }
                })
                .await;
        }
        Ok(Dispatcher {
            ctx,
            endpoint,
            health,
            wake,
            stop,
            consumer,
            cursor: Cursor::new(acked),
            ready: VecDeque::new(),
            inflight: JoinSet::new(),
            inflight_parked: HashSet::new(),
            batcher: Batcher::new(),
            breaker: Breaker::new(),
            throttle: Throttle::default(),
            exhausted: ExhaustedWindow::default(),
            tokens: 0.0,
            tokens_at: Instant::now(),
            // Look once at start: deliveries parked before a restart.
            retry_due: Some(Instant::now()),
            // Move the cursor, refresh the gauges (and learn whether retries wait) on the first pass.
            acked_at: Instant::now()
                .checked_sub(ACK_INTERVAL)
                .unwrap_or_else(Instant::now),
            gauges_at: Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(Instant::now),
            retries_waiting: false,
        })
    }

    fn endpoint(&self) -> Arc<Endpoint> {
        self.endpoint.borrow().clone()
    }

    fn health(&self) -> Arc<Health> {
        self.health.borrow().clone()
    }

    /// Runs until stopped; in-flight attempts are awaited so their outcome is recorded.
    pub(crate) async fn run(mut self) {
        loop {
            if self.stop.is_cancelled() {
                break;
            }
            self.ctx.metrics.dispatcher_wakeups.inc();
            let endpoint = self.endpoint();
            let health = self.health();
            if health.seek.is_some() {
                // Ends this run (its attempts in flight finish); the next one starts from the seek.
                break;
            }
            // A polling endpoint's consumer reads for itself (`api::poll`): nothing to send.
            let active = health.active(&endpoint) && endpoint.pushes();
            if !health.active(&endpoint) {
                self.release_log_when_held_too_long(&endpoint, &health)
                    .await;
            } else if health.log_released.is_some() {
                self.resume_log(&endpoint, &health).await;
            }
            if active {
                self.flush_due_batches(false);
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
            if self.acked_at.elapsed() >= ACK_INTERVAL {
                self.ack().await;
            }
            self.report_exhausted_window().await;
            // Wake on the next commit whenever there is room for it.
            let wait_for_log = active && self.has_room(&endpoint);
            let deadline = self.next_deadline(&endpoint, &health);
            let log = self.ctx.log.clone();
            let read_pos = self.cursor.read_pos;
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
                _ = self.health.changed() => {}
                _ = self.wake.notified() => { self.retry_due = Some(Instant::now()); }
                _ = self.stop.cancelled() => {}
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
        !self.breaker.is_open()
            && !self.throttle.holds(Instant::now())
            && self.ready.len() < endpoint.max_in_flight as usize
            && self.inflight.len() < endpoint.max_in_flight as usize
    }

    fn can_read(&self, endpoint: &Endpoint) -> bool {
        self.has_room(endpoint) && self.ctx.log.head() > self.cursor.read_pos
    }

    fn next_deadline(&self, endpoint: &Endpoint, health: &Health) -> Instant {
        // Nothing periodic: with nothing batched, parked or probing, only a wake-up ends the wait.
        let mut next = Instant::now() + Duration::from_secs(3600);
        if let Some(due) = self.batcher.next_due(&self.batch_limits()) {
            next = next.min(due);
        }
        if let Some(due) = self.retry_due.filter(|_| self.has_room(endpoint)) {
            next = next.min(due.max(Instant::now() + Duration::from_millis(1)));
        }
        if self.retries_waiting {
            next = next.min(self.gauges_at + Duration::from_secs(1));
        }
        if self.cursor.ack_candidate().is_some() {
            next = next.min(self.acked_at + ACK_INTERVAL);
        }
        if let Some(deadline) = self
            .hold_deadline_ms(endpoint, health)
            .filter(|_| health.log_released.is_none())
        {
            let left = deadline - now_ms();
            next = next.min(Instant::now() + Duration::from_millis(left.max(0) as u64));
        }
        if self.breaker.is_open() {
            next = next.min(self.breaker.probe_at());
        }
        if let Some(until) = self.throttle.until().filter(|u| *u > Instant::now()) {
            next = next.min(until);
        }
        if let Some(due) = self.exhausted.deadline() {
            next = next.min(due);
        }
        if !self.ready.is_empty() && endpoint.rate_limit_per_s.is_some() {
            next = next.min(Instant::now() + Duration::from_millis(5));
        }
        next
    }

    fn batch_limits(&self) -> batcher::Limits {
        let cfg = &self.ctx.config;
        batcher::Limits {
            notify_interval: cfg.msg_notify_interval,
            status_interval: cfg.online_status_interval,
            max_batch: cfg.msg_notify_max_batch,
            max_bytes: cfg.max_body_bytes,
        }
    }

    /// Reads the next events and turns those the endpoint selected into deliveries or batch entries.
    async fn read(&mut self, endpoint: &Endpoint) -> Result<(), chathook_events::EventLogError> {
        let events = self
            .ctx
            .log
            .read_after(self.cursor.read_pos, self.ctx.config.read_batch)
            .await?;
        let features = *self.ctx.features.borrow();
        let limits = self.batch_limits();
        for logged in events {
            let route = match format::take(endpoint, &logged.event, &features) {
                format::Take::Send(route) => route,
                format::Take::Pass => {
                    self.cursor.read(logged.position);
                    continue;
                }
                // Left out by its sources or filters: passed over like a delivered event, and counted.
                format::Take::Filtered => {
                    self.ctx.metrics.count_filtered(&endpoint.id);
                    self.cursor.read(logged.position);
                    continue;
                }
            };
            self.cursor.hold(logged.position);
            match route {
                Route::Single => {
                    match format::render_single(endpoint.flavour, &logged, self.ctx.tencent_app) {
                        Some(r) => self.ready.push_back(Delivery::single(&logged, r)),
                        None => self.cursor.release(&[logged.position]),
                    }
                }
                Route::Notify => {
                    let ready = self.batcher.add_message(logged, &limits);
                    self.ready.extend(ready);
                }
                Route::Status => {
                    let item = match logged.event.inner() {
                        Event::UserOnline(c) => format::status_item(c, true),
                        Event::UserOffline(c) => format::status_item(c, false),
                        _ => {
                            self.cursor.release(&[logged.position]);
                            continue;
                        }
                    };
                    let source = logged.event.source().unwrap_or(LOCAL_SOURCE);
                    let ready = self
                        .batcher
                        .add_status(logged.position, item, source, &limits);
                    self.ready.extend(ready);
                }
            }
        }
        self.flush_due_batches(true);
        Ok(())
    }

    fn flush_due_batches(&mut self, after_read: bool) {
        let ready = self
            .batcher
            .due(Instant::now(), &self.batch_limits(), after_read);
        self.ready.extend(ready);
    }

    /// Unix ms at which a disabled endpoint stops holding the event log (`None` while enabled).
    fn hold_deadline_ms(&self, endpoint: &Endpoint, health: &Health) -> Option<i64> {
        let since = health.disabled_since(endpoint)?;
        let hold = self.ctx.config.hold_disabled.as_millis();
        Some(since.saturating_add(i64::try_from(hold).unwrap_or(i64::MAX)))
    }

    /// A disabled endpoint stops holding the event log once `webhook.hold_disabled` has passed.
    async fn release_log_when_held_too_long(&mut self, endpoint: &Endpoint, health: &Health) {
        let due = self
            .hold_deadline_ms(endpoint, health)
            .is_some_and(|deadline| now_ms() >= deadline);
        if health.log_released.is_some() || !due {
            return;
        }
        if let Err(e) = self.ctx.log.set_holding(&self.consumer, false).await {
            tracing::error!(endpoint = %endpoint.id, error = %e, "cannot release the event log");
            return;
        }
        tracing::info!(endpoint = %endpoint.id, "disabled for webhook.hold_disabled: no longer holding the event log");
        let release = LogRelease {
            position: self.cursor.acked,
            at_ms: now_ms(),
        };
        self.ctx
            .health
            .update(&endpoint.id, |h| h.log_released = Some(release))
            .await;
    }

    /// An endpoint enabled again after it stopped holding the log resumes from its cursor when those
    /// events are still stored, and otherwise from the oldest stored event, recording what it missed.
    async fn resume_log(&mut self, endpoint: &Endpoint, health: &Health) {
        let Some(release) = health.log_released.clone() else {
            return;
        };
        let oldest = match self.ctx.log.oldest().await {
            Ok(oldest) => oldest,
            Err(e) => {
                tracing::error!(endpoint = %endpoint.id, error = %e, "cannot read the event log");
                return;
            }
        };
        // The first event still stored (the next one to come, when the log is empty).
        let (first_stored, until_ms) = oldest.unwrap_or((self.ctx.log.head() + 1, now_ms()));
        let mut gap = health.gap.clone();
        if first_stored > self.cursor.read_pos + 1 {
            let (first, last) = (self.cursor.read_pos + 1, first_stored - 1);
            gap = Some(Gap {
                first_position: first,
                last_position: last,
                count: last - first + 1,
                from_ms: release.at_ms,
                until_ms,
            });
            self.cursor.skip_to(last);
            match self.ctx.log.ack(&self.consumer, last).await {
                Ok(()) => self.cursor.acked(last),
                Err(e) => {
                    tracing::error!(endpoint = %endpoint.id, error = %e, "cannot move the cursor past the gap")
                }
            }
            tracing::warn!(endpoint = %endpoint.id, first, last, "events removed while the endpoint was disabled are skipped");
        }
        if let Err(e) = self.ctx.log.set_holding(&self.consumer, true).await {
            tracing::error!(endpoint = %endpoint.id, error = %e, "cannot hold the event log again");
            return;
        }
        self.ctx
            .health
            .update(&endpoint.id, |h| {
                h.log_released = None;
                h.gap = gap;
            })
            .await;
    }

    /// When the next parked delivery after `now` (unix ms) is due, from the retry table. `now` must be
    /// the time the due deliveries were loaded for, so that none falls between the two reads.
    async fn next_retry_due(&self, endpoint_id: &str, now: i64) -> Option<Instant> {
        match self.ctx.store.next_due(endpoint_id, now).await {
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
        if self.throttle.holds(Instant::now()) {
            return;
        }
        let due = self.retry_due.is_some_and(|d| d <= Instant::now());
        if !due && !self.breaker.is_open() {
            return;
        }
        let free = (endpoint.max_in_flight as usize)
            .saturating_sub(self.inflight.len() + self.ready.len());
        if free == 0 {
            return;
        }
        let (now, limit) = if self.breaker.is_open() {
            if !self.breaker.may_probe(Instant::now()) {
                return;
            }
            // Probe with the oldest parked delivery, due or not.
            (i64::MAX, 1)
        } else {
            (now_ms(), free)
        };
        let due = match self
            .ctx
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
        if !self.breaker.is_open() {
            self.retry_due = if loaded >= limit + self.inflight_parked.len() {
                // Maybe more are due: look again as soon as there is room.
                Some(Instant::now())
            } else {
                self.next_retry_due(&endpoint.id, now).await
            };
        }
        for p in fresh {
            self.inflight_parked.insert(p.delivery_id.clone());
            let delivery = Delivery::parked(p);
            if self.breaker.is_open() {
                self.breaker.probing(&delivery.id);
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
        if self.throttle.holds(Instant::now()) {
            return;
        }
        if self.breaker.is_open() {
            // One fresh delivery may probe when nothing parked is left to probe with.
            if self.breaker.may_probe(Instant::now()) && self.inflight.is_empty() {
                if let Some(d) = self.ready.pop_front() {
                    self.breaker.probing(&d.id);
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
        let ctx = self.ctx.clone();
        let endpoint = endpoint.clone();
        self.inflight.spawn(async move {
            let (_, result) =
                attempt::send(&ctx.deliverer, &ctx.attempts, &endpoint, &delivery).await;
            let settled = attempt::settle(
                &*ctx.store,
                &ctx.config,
                &ctx.metrics,
                &endpoint,
                &delivery,
                &result,
            )
            .await;
            Done {
                delivery,
                result,
                settled,
            }
        });
    }

    async fn finish(&mut self, done: Done) {
        let endpoint = self.endpoint();
        let health = self.health();
        let Done {
            delivery,
            result,
            settled,
        } = done;
        if let Settled::RetryAt(at) = settled {
            self.retry_due = Some(self.retry_due.map_or(at, |due| due.min(at)));
            self.retries_waiting = true;
        }
        if delivery.parked {
            self.inflight_parked.remove(&delivery.id);
            self.ctx
                .metrics
                .retries
                .get_or_create(&endpoint_label(&endpoint.id))
                .inc();
        }
        let outcome = if result.success { "success" } else { "failure" };
        self.ctx
            .metrics
            .count_attempt(&endpoint.id, &delivery.event, outcome, result.latency);
        if settled == Settled::Dead {
            self.report_dead_letter(&endpoint, &delivery, &result).await;
        }
        let delivery_id = delivery.id.clone();
        if settled == Settled::NotParked {
            // Keep the positions outstanding: the events are read again after a restart. Retry the
            // delivery from memory meanwhile.
            let mut again = delivery;
            again.attempts += 1;
            self.ready.push_back(again);
        } else {
            self.cursor.release(&delivery.positions);
        }
        self.throttle
            .record(result.throttled, result.retry_after, Instant::now());
        let cfg = &self.ctx.config;
        let change = self.breaker.record(
            &delivery_id,
            result.success,
            cfg.breaker_failures,
            cfg.breaker_probe_delay,
            cfg.breaker_max_probe_delay,
        );
        self.breaker_changed(&endpoint, &health, &result, change)
            .await;
        self.record_health(&endpoint, &health, &result).await;
    }

    /// Follows a change of the breaker: its gauge, the log, `endpoint.breaker_open`, and the fresh
    /// deliveries that go back to the log while it is open.
    async fn breaker_changed(
        &mut self,
        endpoint: &Endpoint,
        health: &Health,
        result: &AttemptResult,
        change: breaker::Change,
    ) {
        let breaker_gauge = self
            .ctx
            .metrics
            .breaker_open
            .get_or_create(&endpoint_label(&endpoint.id))
            .clone();
        match change {
            breaker::Change::Closed => {
                tracing::info!(endpoint = %endpoint.id, "circuit breaker closed");
                breaker_gauge.set(0);
            }
            breaker::Change::Opened => {
                tracing::warn!(endpoint = %endpoint.id, failures = self.breaker.consecutive_failures(), "circuit breaker opened");
                breaker_gauge.set(1);
                // Deliveries waiting for a slot go back to the log: they are read again once it closes.
                self.requeue_ready();
                let notice = self.failure_notice(endpoint, health, result);
                self.ctx
                    .notices
                    .emit(Event::EndpointBreakerOpen(Box::new(notice)))
                    .await;
            }
            breaker::Change::None => {}
        }
    }

    /// An endpoint notice of the failure `result`, with the failures in a row and since when.
    fn failure_notice(
        &self,
        endpoint: &Endpoint,
        health: &Health,
        result: &AttemptResult,
    ) -> EndpointNotice {
        EndpointNotice {
            consecutive_failures: self.breaker.consecutive_failures(),
            last_error: result.error.clone(),
            failing_since_ms: Some(health.failing_since.unwrap_or_else(now_ms)),
            ..notices::about(endpoint)
        }
    }

    /// Counts a dead letter towards `delivery.exhausted` (sent at once for the first of a window).
    async fn report_dead_letter(
        &mut self,
        endpoint: &Endpoint,
        delivery: &Delivery,
        result: &AttemptResult,
    ) {
        let dead = DeadLetter {
            delivery_id: &delivery.id,
            event: &delivery.event,
            error: &result.error,
        };
        let window = self.ctx.config.exhausted_notice_window;
        if let Some(n) = self
            .exhausted
            .dead_lettered(endpoint, dead, Instant::now(), window)
        {
            self.ctx
                .notices
                .emit(Event::DeliveryExhausted(Box::new(n)))
                .await;
        }
    }

    /// Reports the dead letters an ended `delivery.exhausted` window counted.
    async fn report_exhausted_window(&mut self) {
        let window = self.ctx.config.exhausted_notice_window;
        if let Some(n) = self.exhausted.due(Instant::now(), window) {
            self.ctx
                .notices
                .emit(Event::DeliveryExhausted(Box::new(n)))
                .await;
        }
    }

    /// What an attempt's outcome does to the endpoint's health: a success ends a run of failures
    /// (`endpoint.recovered` when it was reported failing); a failure starts or continues one
    /// (`endpoint.failing` at `webhook.failing_notice_after` in a row) and may disable the endpoint
    /// (`endpoint.disabled`).
    async fn record_health(
        &mut self,
        endpoint: &Endpoint,
        health: &Health,
        result: &AttemptResult,
    ) {
        let ctx = self.ctx.clone();
        if result.success {
            if health.failing_reported {
                let notice = EndpointNotice {
                    failing_since_ms: health.failing_since,
                    ..notices::about(endpoint)
                };
                ctx.notices
                    .emit(Event::EndpointRecovered(Box::new(notice)))
                    .await;
            }
            if health.failing_since.is_some() || health.failing_reported {
                ctx.health
                    .update(&endpoint.id, |h| {
                        h.failing_since = None;
                        h.failing_reported = false;
                    })
                    .await;
            }
            return;
        }
        let cfg = &ctx.config;
        let report_failing = cfg.failing_notice_after > 0
            && self.breaker.consecutive_failures() == cfg.failing_notice_after
            && !health.failing_reported;
        if report_failing {
            let notice = self.failure_notice(endpoint, health, result);
            ctx.notices
                .emit(Event::EndpointFailing(Box::new(notice)))
                .await;
        }
        let now = now_ms();
        let since = health.failing_since.unwrap_or(now);
        let disable = health
            .disable_reason(result.gone, now, cfg.disable_after)
            .filter(|_| health.server_disabled.is_none());
        if health.failing_since.is_some() && disable.is_none() && !report_failing {
            return;
        }
        if let Some(reason) = &disable {
            tracing::warn!(endpoint = %endpoint.id, %reason, "endpoint disabled");
            let notice = EndpointNotice {
                reason: reason.clone(),
                ..self.failure_notice(endpoint, health, result)
            };
            ctx.notices
                .emit(Event::EndpointDisabled(Box::new(notice)))
                .await;
        }
        ctx.health
            .update(&endpoint.id, |h| {
                h.failing_since.get_or_insert(since);
                h.failing_reported |= report_failing;
                if let Some(reason) = disable {
                    h.server_disabled
                        .get_or_insert(ServerDisable { reason, at_ms: now });
                }
            })
            .await;
    }

    /// Drops fresh deliveries not yet started and rewinds reading to just before the oldest of them, so
    /// that nothing waits in memory while the breaker is open.
    fn requeue_ready(&mut self) {
        let mut dropped: Vec<u64> = Vec::new();
        for d in self.ready.drain(..) {
            if d.parked {
                // Still in the retry table: polled again once the breaker closes.
                self.inflight_parked.remove(&d.id);
                continue;
            }
            dropped.extend(&d.positions);
        }
        dropped.extend(self.batcher.drop_all());
        self.cursor.release(&dropped);
        if let Some(oldest) = dropped.iter().min() {
            // Events between the rewind point and the old read position are read again; those still
            // in flight stay outstanding, so a second copy is possible (at-least-once, same id).
            self.cursor.rewind_to(oldest - 1);
        }
    }

    /// Moves the durable cursor up to the last event before the oldest outstanding one.
    async fn ack(&mut self) {
        self.acked_at = Instant::now();
        if let Some(candidate) = self.cursor.ack_candidate() {
            match self.ctx.log.ack(&self.consumer, candidate).await {
                Ok(()) => self.cursor.acked(candidate),
                Err(e) => {
                    tracing::error!(consumer = %self.consumer, error = %e, "cannot advance the cursor")
                }
            }
        }
        let depth = self.ctx.log.head().saturating_sub(self.cursor.acked);
        let id = self.endpoint.borrow().id.clone();
        let labels = endpoint_label(&id);
        self.ctx
            .metrics
            .queue_depth
            .get_or_create(&labels)
            .set(depth as i64);
        if self.gauges_at.elapsed() >= Duration::from_secs(1) {
            self.gauges_at = Instant::now();
            if let Ok((live, _, oldest)) = self.ctx.store.pending_summary(&id).await {
                self.retries_waiting = live > 0;
                let age = oldest.map_or(0, |at| (now_ms() - at).max(0) / 1000);
                self.ctx
                    .metrics
                    .oldest_pending_age_seconds
                    .get_or_create(&labels)
                    .set(age);
            }
        }
    }
}
