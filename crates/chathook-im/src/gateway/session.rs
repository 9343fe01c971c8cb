//! One connection after `connect`: the frame loop (requests, acks and resends, heartbeat, kicks and
//! shutdown) until the connection ends, then the offline report through the IM core.
//!
//! Backpressure: at most `max_inflight_sends` sends are processed at once (reading pauses beyond), the
//! outbound queue is bounded, writes time out, and unacknowledged `recv`s are capped.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::stream::{FuturesOrdered, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use chathook_events::PresenceReason;

use super::close::{close_code, truncate, unreadable, End};
use super::connect::{connect, Connected};
use super::protocol::{self, rpc_code, Request, RequestError, SendParams};
use super::{FrameKind, Sink};
use crate::error::reason;
use crate::messaging::{Origin, SendRequest};
use crate::presence::{ConnHandle, Delivery, Kick, Outbound};
use crate::{Im, PayloadFormat};

type PendingReply = Pin<Box<dyn std::future::Future<Output = String> + Send>>;

/// Runs one connection to its end.
pub(super) async fn run(
    socket: WebSocket,
    im: Im,
    peer: std::net::SocketAddr,
    listened: Option<chathook_http::listen::ConnHandle>,
    _permit: OwnedSemaphorePermit,
) {
    let (mut sink, mut stream) = socket.split();
    let Some(Connected { open, kind }) = connect(&im, peer, &mut sink, &mut stream).await else {
        return;
    };
    // Logged in: the listener never closes this connection to make room for another.
    if let Some(listened) = listened {
        listened.authenticated();
    }
    let (mut outbound, mut control) = (open.outbound, open.control);
    let mut session = Session {
        bucket: Bucket::new(im.config().limits.sends_per_sec),
        im: im.clone(),
        conn: open.handle,
        sink,
        kind,
        unacked: BTreeMap::new(),
        last_seen: Instant::now(),
    };
    let end = session
        .frame_loop(&mut stream, &mut outbound, &mut control)
        .await;
    let reason = end.tell(&mut session.sink, kind).await;
    im.close_connection(&session.conn, reason).await;
}

/// A `recv` waiting for its `recvack`.
struct Unacked {
    /// Its [`crate::presence::Delivery::cost`], reserved on the connection until it is acknowledged.
    cost: usize,
    frame: Utf8Bytes,
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

struct Session {
    im: Im,
    /// This connection as presence knows it.
    conn: Arc<ConnHandle>,
    sink: Sink,
    /// The frame kind the client speaks (text or binary); every frame written uses it.
    kind: FrameKind,
    /// `recv`s written and not yet acknowledged, by message id.
    unacked: BTreeMap<i64, Unacked>,
    /// The connection's send rate limit.
    bucket: Bucket,
    /// When the client last sent a frame (the heartbeat).
    last_seen: Instant,
}

impl Session {
    async fn write(&mut self, msg: WsMessage) -> Result<(), ()> {
        let limit = Duration::from_millis(self.im.config().gateway.write_timeout_ms);
        match tokio::time::timeout(limit, self.sink.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn frame_loop(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        outbound: &mut mpsc::Receiver<Outbound>,
        control: &mut mpsc::Receiver<Kick>,
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
        let mut inflight: FuturesOrdered<PendingReply> = FuturesOrdered::new();
        let max_inflight = cfg.limits.max_inflight_sends.max(1);
        loop {
            tokio::select! {
                biased;
                _ = &mut stopping => {
                    return End::Disconnect(PresenceReason::ServerShutdown, reason::SYSTEM_ERROR,
                        "the server is shutting down".into(), close_code::GOING_AWAY);
                }
                Some(kick) = control.recv() => {
                    return End::Disconnect(kick.presence_reason, kick.reason_code, kick.reason, close_code::POLICY);
                }
                Some(reply) = inflight.next(), if !inflight.is_empty() => {
                    if self.write_replies(reply, &mut inflight).await.is_err() {
                        return End::Quiet(PresenceReason::LinkClosed);
                    }
                }
                Some(out) = outbound.recv() => {
                    if let Err(end) = self.deliver(out, outbound).await {
                        return end;
                    }
                }
                frame = stream.next(), if inflight.len() < max_inflight => {
                    self.last_seen = Instant::now();
                    match self.on_frame(frame, &mut inflight).await {
                        Ok(()) => {}
                        Err(end) => return end,
                    }
                }
                _ = tick.tick() => {
                    if self.last_seen.elapsed() > heartbeat {
                        return End::Disconnect(PresenceReason::HeartbeatTimeout, reason::SYSTEM_ERROR,
                            format!("no frame for {} ms (heartbeat timeout)", heartbeat.as_millis()),
                            close_code::POLICY);
                    }
                    if self.resend_overdue(ack_timeout, cfg.gateway.max_resends).await.is_err() {
                        return End::Quiet(PresenceReason::LinkClosed);
                    }
                }
            }
        }
    }

    /// Writes a `send` result and every other one already finished (they finish a commit group at a
    /// time) with a single flush.
    async fn write_replies(
        &mut self,
        first: String,
        inflight: &mut FuturesOrdered<PendingReply>,
    ) -> Result<(), ()> {
        let limit = Duration::from_millis(self.im.config().gateway.write_timeout_ms);
        let mut next = Some(first);
        while let Some(reply) = next.take() {
            let fed = tokio::time::timeout(limit, self.sink.feed(self.kind.message(reply.into())));
            if !matches!(fed.await, Ok(Ok(()))) {
                return Err(());
            }
            next = inflight.next().now_or_never().flatten();
        }
        match tokio::time::timeout(limit, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Writes queued `recv`s (this one and whatever else is ready) with a single flush.
    async fn deliver(
        &mut self,
        first: Outbound,
        outbound: &mut mpsc::Receiver<Outbound>,
    ) -> Result<(), End> {
        let max_unacked = self.im.config().limits.max_unacked;
        let limit = Duration::from_millis(self.im.config().gateway.write_timeout_ms);
        let mut next = Some(first);
        let mut batch = 0;
        while let Some(Outbound::Recv(delivery)) = next.take() {
            let frame = render(&delivery, self.im.config().gateway.payload_format);
            if self.unacked.len() >= max_unacked {
                return Err(End::Disconnect(
                    PresenceReason::ProtocolError,
                    reason::SYSTEM_ERROR,
                    format!("more than {max_unacked} recv notifications left without recvack"),
                    close_code::POLICY,
                ));
            }
            let replaced = self.unacked.insert(
                delivery.message.message_id,
                Unacked {
                    cost: delivery.cost(),
                    frame: frame.clone(),
                    sent_at: Instant::now(),
                    resends: 0,
                },
            );
            if let Some(old) = replaced {
                self.conn.release(old.cost);
            }
            let fed = tokio::time::timeout(limit, self.sink.feed(self.kind.message(frame))).await;
            if !matches!(fed, Ok(Ok(()))) {
                return Err(End::Quiet(PresenceReason::LinkClosed));
            }
            batch += 1;
            if batch < 256 {
                next = outbound.try_recv().ok();
            }
        }
        match tokio::time::timeout(limit, self.sink.flush()).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(End::Quiet(PresenceReason::LinkClosed)),
        }
    }

    async fn resend_overdue(&mut self, ack_timeout: Duration, max_resends: u32) -> Result<(), ()> {
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
            self.sink
                .feed(self.kind.message(frame))
                .await
                .map_err(|_| ())?;
        }
        self.sink.flush().await.map_err(|_| ())
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<WsMessage, axum::Error>>,
        inflight: &mut FuturesOrdered<PendingReply>,
    ) -> Result<(), End> {
        let bytes: bytes::Bytes = match frame {
            None | Some(Ok(WsMessage::Close(_))) => {
                return Err(End::Quiet(PresenceReason::LinkClosed))
            }
            Some(Err(e)) => {
                let limit = self.im.config().limits.max_frame_bytes;
                return Err(match unreadable(&e, limit) {
                    Some((code, why)) => End::Close(PresenceReason::ProtocolError, code, why),
                    None => End::Quiet(PresenceReason::LinkClosed),
                });
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => return Ok(()),
            // A JSON-RPC client may use binary frames: they carry the same JSON.
            Some(Ok(WsMessage::Binary(b))) => b,
            Some(Ok(WsMessage::Text(t))) => t.into(),
        };
        for incoming in protocol::parse_frames(&bytes) {
            let Ok(incoming) = incoming else {
                return Err(End::protocol(
                    close_code::POLICY,
                    "malformed JSON-RPC frame",
                ));
            };
            self.on_request(incoming.id, incoming.request, inflight)
                .await?;
        }
        Ok(())
    }

    async fn on_request(
        &mut self,
        id: Value,
        request: Result<Request, RequestError>,
        inflight: &mut FuturesOrdered<PendingReply>,
    ) -> Result<(), End> {
        match request {
            Ok(Request::Send(params)) => {
                if !self.bucket.take() {
                    let limit = self.im.config().limits.sends_per_sec;
                    let e = crate::SendError::RateLimited(limit);
                    self.im
                        .metrics()
                        .sends_refused
                        .get_or_create(&vec![("reason".to_string(), e.code().to_string())])
                        .inc();
                    return self.reply(send_refusal(&id, &e)).await;
                }
                inflight.push_back(self.send(id, params));
                Ok(())
            }
            Ok(Request::RecvAck(ack)) => {
                let acked = ack.message_id().and_then(|id| self.unacked.remove(&id));
                if let Some(acked) = acked {
                    self.conn.release(acked.cost);
                }
                Ok(())
            }
            Ok(Request::Ping) => self.reply(protocol::pong_frame(&id)).await,
            Ok(Request::Disconnect) => Err(End::Quiet(PresenceReason::LinkClosed)),
            Ok(Request::Connect(_)) => Err(End::protocol(close_code::POLICY, "already connected")),
            // Wrong params are answered and the connection stays, as WuKongIM does.
            Err(RequestError::BadParams(why)) if !id.is_null() => {
                self.reply(protocol::error_frame(&id, rpc_code::INVALID_PARAMS, &why))
                    .await
            }
            Err(RequestError::BadParams(_)) => Ok(()),
            Err(RequestError::UnknownMethod(method)) => {
                let why = format!("unknown method {:?}", truncate(&method, 40));
                if !id.is_null() {
                    let _ = self
                        .reply(protocol::error_frame(&id, rpc_code::METHOD_NOT_FOUND, &why))
                        .await;
                }
                Err(End::protocol(close_code::POLICY, &why))
            }
            Err(RequestError::NoMethod) => Err(End::protocol(
                close_code::POLICY,
                "a JSON-RPC frame needs a method",
            )),
        }
    }

    async fn reply(&mut self, text: String) -> Result<(), End> {
        self.write(self.kind.message(text.into()))
            .await
            .map_err(|_| End::Quiet(PresenceReason::LinkClosed))
    }

    /// The future that sends a message and renders the `send` result.
    fn send(&self, id: Value, params: SendParams) -> PendingReply {
        let im = self.im.clone();
        let request = SendRequest {
            from_uid: self.conn.uid.clone(),
            channel_id: params.channel_id,
            channel_type: params.channel_type,
            client_msg_no: params.client_msg_no,
            header: params.header.unwrap_or_default().into(),
            setting: params.setting.unwrap_or_default().to_byte(),
            expire: params.expire,
            payload: protocol::payload_bytes(&params.payload),
            subscribers: None,
            origin: Origin::Connection(self.conn.conn_id),
            client: self.conn.client.clone(),
            skip_before_send: false,
        };
        Box::pin(async move {
            match im.send(request).await {
                Ok(ack) => protocol::result_frame(
                    &id,
                    json!({"messageId": ack.message_id.to_string(), "messageSeq": ack.message_seq,
                           "clientMsgNo": ack.client_msg_no, "reasonCode": reason::SUCCESS}),
                ),
                Err(e) => {
                    if e.is_internal() {
                        tracing::error!(error = %e, "send failed");
                    }
                    send_refusal(&id, &e)
                }
            }
        })
    }
}

fn send_refusal(id: &Value, e: &crate::SendError) -> String {
    let mut result = json!({"messageId": "0", "messageSeq": 0, "reasonCode": e.reason_code(),
                            "reason": e.to_string(), "code": e.code()});
    if let crate::SendError::RejectedByHook { code, info } = e {
        // the before-send hook's code and text (Tencent's ErrorCode and ErrorInfo), for the app
        result["errorCode"] = json!(code);
        result["errorInfo"] = json!(info);
    }
    protocol::result_frame(id, result)
}

fn render(delivery: &Delivery, format: PayloadFormat) -> Utf8Bytes {
    delivery
        .frame
        .get_or_init(|| {
            Utf8Bytes::from(protocol::recv_frame(
                &delivery.message,
                &delivery.channel_id,
                format,
            ))
        })
        .clone()
}
