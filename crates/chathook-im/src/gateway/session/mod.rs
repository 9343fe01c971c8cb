//! One connection after `connect`: the loop over requests, acks and resends, heartbeat, kicks and
//! shutdown until the connection ends, then the offline report through the IM core. It knows the wire
//! only through a [`Codec`] and the link only through [`Inbound`] and a [`FrameSink`], so it runs the
//! same over any protocol and transport, and its tests drive it through channels.
//!
//! Backpressure: at most `max_inflight_sends` sends are processed at once (reading pauses beyond), the
//! outbound queue is bounded, writes time out, and unacknowledged `recv`s are capped.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

use chathook_events::PresenceReason;

use super::close::{close_code, End};
use super::codec::{Codec, Frame, Request, SendFields};
use super::connect::connect;
use super::transport::{write_within, FrameSink, Inbound, LinkBroken};
use crate::error::reason;
use crate::messaging::{Origin, SendAck, SendRequest};
use crate::presence::{ConnHandle, Kick, Outbound};
use crate::{Im, SendError};

/// A send in flight: its tag and, when done, its result.
type PendingSend<T> =
    Pin<Box<dyn std::future::Future<Output = (T, Result<SendAck, SendError>)> + Send>>;

/// What a session knows of its link beyond the bytes.
pub(super) struct Link {
    pub peer: SocketAddr,
    /// The listener's handle, told when the client has logged in (so it is never evicted to make room).
    pub listened: Option<chathook_http::listen::ConnHandle>,
    /// When `connect` must have come by.
    pub deadline: Instant,
}

/// Runs one connection to its end: the connect phase from the client's `first` bytes, then the loop.
pub(super) async fn run<C, K, S>(
    im: Im,
    mut codec: C,
    mut sink: K,
    mut stream: S,
    first: Bytes,
    link: Link,
) where
    C: Codec,
    K: FrameSink,
    S: Stream<Item = Inbound> + Unpin + Send,
{
    let mut pending = Vec::new();
    let Some(open) = connect(
        &im,
        &mut codec,
        &mut sink,
        &mut stream,
        first,
        &link,
        &mut pending,
    )
    .await
    else {
        return;
    };
    // Logged in: the listener never closes this connection to make room for another.
    if let Some(listened) = &link.listened {
        listened.authenticated();
    }
    let conn = open.handle.clone();
    let (mut codec, mut sink, end) = serve(im.clone(), codec, sink, open, stream, pending).await;
    let reason = end.tell(&mut codec, &mut sink).await;
    im.close_connection(&conn, reason).await;
}

/// Runs the loop of a logged-in connection until it ends; hands back the codec and the sink, so the
/// caller can tell the client how it ended.
pub(super) async fn serve<C, K, S>(
    im: Im,
    codec: C,
    sink: K,
    open: crate::OpenConnection,
    mut stream: S,
    mut pending: Vec<Request<C::Tag>>,
) -> (C, K, End)
where
    C: Codec,
    K: FrameSink,
    S: Stream<Item = Inbound> + Unpin + Send,
{
    let (mut outbound, mut control) = (open.outbound, open.control);
    let mut session = Session {
        bucket: Bucket::new(im.config().limits.sends_per_sec),
        im,
        conn: open.handle,
        codec,
        sink,
        unacked: BTreeMap::new(),
        last_seen: Instant::now(),
        requests: Vec::new(),
    };
    let mut inflight = FuturesOrdered::new();
    let end = match session.on_requests(&mut pending, &mut inflight).await {
        Ok(()) => {
            session
                .frame_loop(&mut stream, &mut outbound, &mut control, &mut inflight)
                .await
        }
        Err(end) => end,
    };
    (session.codec, session.sink, end)
}

/// A `recv` waiting for its `recvack`.
struct Unacked {
    /// A stored CMD (`sync_once`) message: a primary device's `recvack` takes it off the user's
    /// `/message/sync` queue, as WuKongIM's moves the CMD read position.
    cmd: bool,
    /// Its [`crate::presence::Delivery::cost`], reserved on the connection until it is acknowledged.
    cost: usize,
    frame: Frame,
    sent_at: Instant,
    resends: u32,
}

/// Sends per second allowed on one connection (0 = no limit).
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Bucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        if self.rate == 0.0 {
            return true;
        }
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Session<C: Codec, K: FrameSink> {
    im: Im,
    /// This connection as presence knows it.
    conn: Arc<ConnHandle>,
    /// The wire protocol's state.
    codec: C,
    sink: K,
    /// `recv`s written and not yet acknowledged, by message id.
    unacked: BTreeMap<i64, Unacked>,
    /// The connection's send rate limit.
    bucket: Bucket,
    /// When the client last sent anything (the heartbeat).
    last_seen: Instant,
    /// Scratch for the requests decoded from one chunk (kept to reuse its allocation).
    requests: Vec<Request<C::Tag>>,
}

impl<C: Codec, K: FrameSink> Session<C, K> {
    fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.im.config().gateway.write_timeout_ms)
    }

    /// Writes one frame and flushes it, within the write timeout.
    async fn write(&mut self, frame: Frame) -> Result<(), End> {
        let limit = self.write_timeout();
        Ok(write_within(&mut self.sink, frame, limit).await?)
    }

    /// Queues one frame, within the write timeout.
    async fn feed(&mut self, frame: Frame) -> Result<(), End> {
        let limit = self.write_timeout();
        match tokio::time::timeout(limit, self.sink.feed(frame)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::link_closed()),
        }
    }

    async fn flush(&mut self) -> Result<(), End> {
        let limit = self.write_timeout();
        match tokio::time::timeout(limit, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::link_closed()),
        }
    }

    async fn frame_loop<S: Stream<Item = Inbound> + Unpin>(
        &mut self,
        stream: &mut S,
        outbound: &mut mpsc::Receiver<Outbound>,
        control: &mut mpsc::Receiver<Kick>,
        inflight: &mut FuturesOrdered<PendingSend<C::Tag>>,
    ) -> End {
        let cfg = self.im.config().clone();
        let heartbeat = Duration::from_millis(cfg.gateway.heartbeat_timeout_ms);
        let ack_timeout = Duration::from_millis(cfg.gateway.ack_timeout_ms);
        let tick_every = (ack_timeout / 2)
            .min(heartbeat / 4)
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(tick_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.im.shutdown_signal();
        let mut stopping = std::pin::pin!(async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        });
        let max_inflight = cfg.limits.max_inflight_sends.max(1);
        loop {
            let step = tokio::select! {
                biased;
                _ = &mut stopping => Err(End::disconnect(PresenceReason::ServerShutdown,
                    reason::SYSTEM_ERROR, "the server is shutting down".into(), close_code::GOING_AWAY)),
                Some(kick) = control.recv() => Err(End::kicked(kick)),
                Some(done) = inflight.next(), if !inflight.is_empty() => {
                    self.write_results(done, inflight).await
                }
                Some(out) = outbound.recv() => self.deliver(out, outbound).await,
                inbound = stream.next(), if inflight.len() < max_inflight => {
                    self.last_seen = Instant::now();
                    self.on_inbound(inbound, inflight).await
                }
                _ = tick.tick() => self.on_tick(heartbeat, ack_timeout, cfg.gateway.max_resends).await,
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// The heartbeat check and the resend of `recv`s whose ack is overdue.
    async fn on_tick(
        &mut self,
        heartbeat: Duration,
        ack_timeout: Duration,
        max_resends: u32,
    ) -> Result<(), End> {
        if self.last_seen.elapsed() > heartbeat {
            return Err(End::disconnect(
                PresenceReason::HeartbeatTimeout,
                reason::SYSTEM_ERROR,
                format!(
                    "no frame for {} ms (heartbeat timeout)",
                    heartbeat.as_millis()
                ),
                close_code::POLICY,
            ));
        }
        self.resend_overdue(ack_timeout, max_resends).await
    }

    /// Writes a send's result and every other one already finished (they finish a commit group at a
    /// time) with a single flush.
    async fn write_results(
        &mut self,
        first: (C::Tag, Result<SendAck, SendError>),
        inflight: &mut FuturesOrdered<PendingSend<C::Tag>>,
    ) -> Result<(), End> {
        let mut next = Some(first);
        while let Some((tag, result)) = next.take() {
            let frame = self.codec.send_result(tag, &result);
            self.feed(frame).await?;
            next = inflight.next().now_or_never().flatten();
        }
        self.flush().await
    }

    /// Writes queued `recv`s (this one and whatever else is ready) with a single flush.
    async fn deliver(
        &mut self,
        first: Outbound,
        outbound: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), End> {
        let max_unacked = self.im.config().limits.max_unacked;
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(Outbound::Recv(delivery)) = next.take() {
            if self.unacked.len() >= max_unacked {
                return Err(End::disconnect(
                    PresenceReason::ProtocolError,
                    reason::SYSTEM_ERROR,
                    format!("more than {max_unacked} recv notifications left without recvack"),
                    close_code::POLICY,
                ));
            }
            let own = delivery.message.from_uid == self.conn.uid;
            let frame = self.codec.recv(&delivery, own);
            let replaced = self.unacked.insert(
                delivery.message.message_id,
                Unacked {
                    cmd: delivery.message.header.sync_once && !delivery.message.header.no_persist,
                    cost: delivery.cost(),
                    frame: frame.clone(),
                    sent_at: Instant::now(),
                    resends: 0,
                },
            );
            if let Some(old) = replaced {
                self.conn.release(old.cost);
            }
            self.feed(frame).await?;
            batch += 1;
            if batch < 256 {
                next = outbound.try_recv().ok();
            }
        }
        self.flush().await
    }

    async fn resend_overdue(&mut self, ack_timeout: Duration, max_resends: u32) -> Result<(), End> {
        let now = Instant::now();
        let mut due = Vec::new();
        let conn = &self.conn;
        self.unacked.retain(|_, u| {
            if now.duration_since(u.sent_at) < ack_timeout {
                return true;
            }
            if u.resends >= max_resends {
                conn.release(u.cost);
                return false;
            }
            u.resends += 1;
            u.sent_at = now;
            due.push(u.frame.clone());
            true
        });
        if due.is_empty() {
            return Ok(());
        }
        self.im.metrics().resends.inc_by(due.len() as u64);
        for frame in due {
            self.feed(frame).await?;
        }
        self.flush().await
    }

    async fn on_inbound(
        &mut self,
        inbound: Option<Inbound>,
        inflight: &mut FuturesOrdered<PendingSend<C::Tag>>,
    ) -> Result<(), End> {
        let bytes = match inbound {
            None => return Err(End::link_closed()),
            Some(Inbound::Alive) => return Ok(()),
            Some(Inbound::Unreadable { code, why }) => return Err(End::unreadable(code, why)),
            Some(Inbound::Data(bytes)) => bytes,
        };
        let mut requests = std::mem::take(&mut self.requests);
        let decoded = self.codec.decode(&bytes, &mut requests);
        let handled = match decoded {
            Ok(()) => self.on_requests(&mut requests, inflight).await,
            Err(broken) => Err(End::protocol(broken.code, &broken.why)),
        };
        requests.clear();
        self.requests = requests;
        handled
    }

    async fn on_requests(
        &mut self,
        requests: &mut Vec<Request<C::Tag>>,
        inflight: &mut FuturesOrdered<PendingSend<C::Tag>>,
    ) -> Result<(), End> {
        for request in requests.drain(..) {
            self.on_request(request, inflight).await?;
        }
        Ok(())
    }

    async fn on_request(
        &mut self,
        request: Request<C::Tag>,
        inflight: &mut FuturesOrdered<PendingSend<C::Tag>>,
    ) -> Result<(), End> {
        match request {
            Request::Send { tag, send } => {
                if !self.bucket.take() {
                    let limit = self.im.config().limits.sends_per_sec;
                    let refused = Err(SendError::RateLimited(limit));
                    if let Err(e) = &refused {
                        self.im
                            .metrics()
                            .sends_refused
                            .get_or_create(&vec![("reason".to_string(), e.code().to_string())])
                            .inc();
                    }
                    let frame = self.codec.send_result(tag, &refused);
                    return self.write(frame).await;
                }
                inflight.push_back(self.send(tag, send));
                Ok(())
            }
            Request::RecvAck { message_id } => {
                let Some((id, acked)) =
                    message_id.and_then(|id| Some((id, self.unacked.remove(&id)?)))
                else {
                    return Ok(());
                };
                self.conn.release(acked.cost);
                if acked.cmd && self.conn.device_level == 1 {
                    self.dequeue_cmd(id);
                }
                Ok(())
            }
            Request::Ping { tag } => {
                let frame = self.codec.pong(tag);
                self.write(frame).await
            }
            Request::Disconnect => Err(End::link_closed()),
            Request::Connect(_) => Err(End::protocol(close_code::POLICY, "already connected")),
            Request::Invalid { tag, why } => match tag.and_then(|t| self.codec.invalid(t, &why)) {
                Some(answer) => self.write(answer).await,
                None => Ok(()),
            },
            Request::Refused { tag, why } => {
                if let Some(answer) = tag.and_then(|t| self.codec.refused(t, &why)) {
                    let _ = self.write(answer).await;
                }
                Err(End::protocol(close_code::POLICY, &why))
            }
        }
    }

    /// Takes an acknowledged CMD message off this user's `/message/sync` queue (in the background: the
    /// loop never waits on a write).
    fn dequeue_cmd(&self, message_id: i64) {
        let (im, uid) = (self.im.clone(), self.conn.uid.clone());
        tokio::spawn(async move {
            if let Err(e) = im.store().remove_cmd_message(&uid, message_id).await {
                tracing::warn!(error = %e, "cannot take an acknowledged CMD message off its queue");
            }
        });
    }

    /// The future that sends a message; it yields the request's tag with the result.
    fn send(&self, tag: C::Tag, send: SendFields) -> PendingSend<C::Tag> {
        let im = self.im.clone();
        let request = SendRequest {
            from_uid: self.conn.uid.clone(),
            channel_id: send.channel_id,
            channel_type: send.channel_type,
            client_msg_no: send.client_msg_no,
            header: send.header,
            setting: send.setting,
            expire: send.expire,
            payload: send.payload,
            subscribers: None,
            origin: Origin::Connection(self.conn.conn_id),
            client: self.conn.client.clone(),
            skip_before_send: false,
        };
        Box::pin(async move {
            let result = im.send(request).await;
            if let Err(e) = &result {
                if e.is_internal() {
                    tracing::error!(error = %e, "send failed");
                }
            }
            (tag, result)
        })
    }
}

impl From<LinkBroken> for End {
    fn from(_: LinkBroken) -> End {
        End::link_closed()
    }
}

#[cfg(test)]
mod tests;
