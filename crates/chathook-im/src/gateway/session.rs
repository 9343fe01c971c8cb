//! One WebSocket connection from `connect` to close: authentication within the deadline, presence
//! registration (durably, before the connect result), the frame loop, acks and resends, heartbeat,
//! kicks and shutdown, and the offline report at the end.
//!
//! Backpressure: at most `max_inflight_sends` sends are processed at once (reading pauses beyond), the
//! outbound queue is bounded, writes time out, and unacknowledged `recv`s are capped.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use chathook_events::{PresenceChange, PresenceReason};
use chathook_store::ConnRecord;

use super::protocol::{self, rpc_code, ConnectParams, InFrame, RecvAckParams, SendParams};
use crate::error::reason;
use crate::messaging::{Origin, SendRequest};
use crate::presence::{ConnHandle, Counts, Delivery, Kick, Outbound};
use crate::users::kicked;
use crate::{Im, DEVICE_LEVEL_PRIMARY};

/// WebSocket close codes used by the gateway.
mod close_code {
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const UNSUPPORTED: u16 = 1003;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
}

/// The close code and reason for a frame the WebSocket layer could not read, or `None` when the
/// link itself broke (nothing can be sent then). The layer's errors are only known by their text.
fn unreadable(e: &axum::Error, max_frame_bytes: usize) -> Option<(u16, String)> {
    let text = e.to_string();
    if text.contains("too long") || text.contains("Space limit") {
        Some((
            close_code::TOO_BIG,
            format!("frame larger than limits.max_frame_bytes ({max_frame_bytes} bytes)"),
        ))
    } else if text.contains("UTF-8") {
        Some((
            close_code::INVALID_DATA,
            "a text frame is not valid UTF-8".to_string(),
        ))
    } else if text.contains("protocol error") && !text.contains("without closing handshake") {
        Some((close_code::PROTOCOL, text))
    } else {
        None
    }
}

type Sink = SplitSink<WebSocket, WsMessage>;
type PendingReply = Pin<Box<dyn std::future::Future<Output = String> + Send>>;

/// Runs one connection to its end.
pub(super) async fn run(socket: WebSocket, im: Im, _permit: OwnedSemaphorePermit) {
    let (mut sink, mut stream) = socket.split();
    let Some(login) = authenticate(&im, &mut sink, &mut stream).await else {
        return;
    };
    let limits = &im.config().limits;
    let conn_id = im.next_conn_id();
    let (outbound, outbound_rx) = mpsc::channel(limits.outbound_queue.max(1));
    let (control, control_rx) = mpsc::channel(4);
    let handle = Arc::new(ConnHandle {
        conn_id,
        uid: login.uid.clone(),
        device_flag: login.device_flag,
        device_level: login.device_level,
        outbound,
        control,
    });
    let Some(counts) = im.presence().add(handle, limits.connections_per_user) else {
        let why = format!(
            "too many connections for this user (limits.connections_per_user = {})",
            limits.connections_per_user
        );
        refuse(&mut sink, &login.id, reason::NOT_ALLOW_SEND, &why).await;
        return;
    };
    if login.device_level == DEVICE_LEVEL_PRIMARY {
        im.kick_device(
            &login.uid,
            Some(login.device_flag),
            Some(conn_id),
            kicked("another primary login with the same device flag"),
        );
    }
    let events = im.presence_events(change(&login, conn_id, counts, PresenceReason::Login), true);
    let record = ConnRecord {
        conn_id,
        uid: login.uid.clone(),
        device_flag: login.device_flag,
        connected_at_ms: now_ms(),
    };
    let counted = events.clone();
    if let Err(e) = im.store().record_online(record, events).await {
        tracing::error!(error = %e, "cannot record a connection as online");
        im.presence().remove(&login.uid, conn_id, login.device_flag);
        refuse(
            &mut sink,
            &login.id,
            reason::SYSTEM_ERROR,
            "the server cannot record the login",
        )
        .await;
        return;
    }
    im.metrics().count_events(&counted);
    im.metrics().connections.inc();
    let time_diff = login.client_timestamp.map_or(0, |t| now_ms() - t);
    let connected = protocol::result_frame(
        &login.id,
        json!({"serverKey": "", "salt": "", "timeDiff": time_diff, "reasonCode": reason::SUCCESS,
               "serverVersion": im.config().server_version, "nodeId": im.config().node_id}),
    );
    let mut session = Session {
        im: im.clone(),
        conn_id,
        uid: login.uid.clone(),
        sink,
        unacked: BTreeMap::new(),
        bucket: Bucket::new(limits.sends_per_sec),
        last_seen: Instant::now(),
    };
    let reason = match session.write(WsMessage::Text(connected.into())).await {
        Ok(()) => session.run(stream, outbound_rx, control_rx).await,
        Err(_) => PresenceReason::LinkClosed,
    };
    im.metrics().connections.dec();
    let counts = im
        .presence()
        .remove(&login.uid, conn_id, login.device_flag)
        .unwrap_or(Counts {
            device: 0,
            total: 0,
        });
    let events = im.presence_events(change(&login, conn_id, counts, reason), false);
    im.metrics().count_events(&events);
    if let Err(e) = im.store().record_offline(conn_id, events).await {
        tracing::error!(error = %e, conn_id, "cannot record a connection as offline");
    }
}

fn change(login: &Login, conn_id: u64, counts: Counts, reason: PresenceReason) -> PresenceChange {
    PresenceChange {
        uid: login.uid.clone(),
        device_flag: login.device_flag,
        conn_id,
        device_online_count: counts.device,
        total_online_count: counts.total,
        reason,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A client that passed `connect`.
struct Login {
    id: Value,
    uid: String,
    device_flag: u8,
    device_level: u8,
    client_timestamp: Option<i64>,
}

/// Waits for `connect` within the deadline and checks the token; on failure the client is told and closed.
async fn authenticate(
    im: &Im,
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
) -> Option<Login> {
    let deadline = Duration::from_millis(im.config().limits.connect_timeout_ms);
    let first = tokio::time::timeout(deadline, async {
        loop {
            match stream.next().await {
                Some(Ok(WsMessage::Text(t))) => return Ok(t.to_string()),
                Some(Ok(WsMessage::Binary(_))) => {
                    return Err(Some((
                        close_code::UNSUPPORTED,
                        "binary frames are not supported".to_string(),
                    )))
                }
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return Err(None),
                Some(Err(e)) => return Err(unreadable(&e, im.config().limits.max_frame_bytes)),
            }
        }
    })
    .await;
    let text = match first {
        Err(_) => {
            let why = format!("connect must come within {} ms", deadline.as_millis());
            close(sink, close_code::POLICY, &why).await;
            return None;
        }
        // the link is gone: nothing to tell
        Ok(Err(None)) => return None,
        Ok(Err(Some((code, why)))) => {
            close(sink, code, &why).await;
            return None;
        }
        Ok(Ok(text)) => text,
    };
    let Ok(frame) = serde_json::from_str::<InFrame>(&text) else {
        close(sink, close_code::POLICY, "malformed JSON-RPC frame").await;
        return None;
    };
    let id = frame.id.clone().unwrap_or(Value::Null);
    if frame.method.as_deref() != Some("connect") {
        close(
            sink,
            close_code::POLICY,
            "the first request must be connect",
        )
        .await;
        return None;
    }
    let params: ConnectParams = match frame.params() {
        Some(Ok(p)) => p,
        Some(Err(e)) => {
            let why = format!("invalid connect params: {e}");
            let _ = write_text(
                sink,
                protocol::error_frame(&id, rpc_code::INVALID_PARAMS, &why),
            )
            .await;
            close(sink, close_code::POLICY, "invalid connect params").await;
            return None;
        }
        None => {
            let _ = write_text(
                sink,
                protocol::error_frame(&id, rpc_code::INVALID_PARAMS, "connect needs params"),
            )
            .await;
            close(sink, close_code::POLICY, "connect needs params").await;
            return None;
        }
    };
    match im
        .verify_token(&params.uid, &params.token, params.device_flag)
        .await
    {
        Ok(Some(device_level)) => Some(Login {
            id,
            uid: params.uid,
            device_flag: params.device_flag,
            device_level,
            client_timestamp: params.client_timestamp,
        }),
        Ok(None) => {
            refuse(
                sink,
                &id,
                reason::AUTH_FAIL,
                "authentication failed: wrong uid, token or device flag",
            )
            .await;
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            refuse(
                sink,
                &id,
                reason::SYSTEM_ERROR,
                "the server cannot check the token",
            )
            .await;
            None
        }
    }
}

/// Answers `connect` with a refusal (WuKongIM style: a result whose reasonCode is not 1) and closes.
async fn refuse(sink: &mut Sink, id: &Value, reason_code: u8, why: &str) {
    let frame = protocol::result_frame(id, json!({"reasonCode": reason_code, "reason": why}));
    let _ = write_text(sink, frame).await;
    close(sink, close_code::POLICY, why).await;
}

async fn write_text(sink: &mut Sink, text: String) -> Result<(), axum::Error> {
    sink.send(WsMessage::Text(text.into())).await
}

/// Sends a close frame with a reason (cut to the 123 bytes a close frame allows).
async fn close(sink: &mut Sink, code: u16, reason: &str) {
    // A close frame's reason holds at most 123 bytes.
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(truncate(reason, 123)),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        sink.send(WsMessage::Close(Some(frame))),
    )
    .await;
}

/// A `recv` waiting for its `recvack`.
struct Unacked {
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

/// Why the frame loop ends, with what the client is told.
enum End {
    Quiet(PresenceReason),
    Close(PresenceReason, u16, String),
    Disconnect(PresenceReason, u8, String, u16),
}

struct Session {
    im: Im,
    conn_id: u64,
    uid: String,
    sink: Sink,
    unacked: BTreeMap<i64, Unacked>,
    bucket: Bucket,
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

    async fn run(
        &mut self,
        mut stream: SplitStream<WebSocket>,
        mut outbound: mpsc::Receiver<Outbound>,
        mut control: mpsc::Receiver<Kick>,
    ) -> PresenceReason {
        let end = self
            .frame_loop(&mut stream, &mut outbound, &mut control)
            .await;
        match end {
            End::Quiet(r) => r,
            End::Close(r, code, why) => {
                close(&mut self.sink, code, &why).await;
                r
            }
            End::Disconnect(r, reason_code, why, code) => {
                let _ = self
                    .write(WsMessage::Text(
                        protocol::disconnect_frame(reason_code, &why).into(),
                    ))
                    .await;
                close(&mut self.sink, code, &why).await;
                r
            }
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
            let fed = tokio::time::timeout(limit, self.sink.feed(WsMessage::Text(reply.into())));
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
            let frame = render(&delivery);
            if self.unacked.len() >= max_unacked {
                return Err(End::Disconnect(
                    PresenceReason::ProtocolError,
                    reason::SYSTEM_ERROR,
                    format!("more than {max_unacked} recv notifications left without recvack"),
                    close_code::POLICY,
                ));
            }
            self.unacked.insert(
                delivery.message.message_id,
                Unacked {
                    frame: frame.clone(),
                    sent_at: Instant::now(),
                    resends: 0,
                },
            );
            let fed = tokio::time::timeout(limit, self.sink.feed(WsMessage::Text(frame))).await;
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
        self.unacked.retain(|_, u| {
            if now.duration_since(u.sent_at) < ack_timeout {
                return true;
            }
            if u.resends >= max_resends {
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
                .feed(WsMessage::Text(frame))
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
        let text = match frame {
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
            Some(Ok(WsMessage::Binary(_))) => {
                return Err(protocol_error(
                    close_code::UNSUPPORTED,
                    "binary frames are not supported: send JSON-RPC text frames",
                ))
            }
            Some(Ok(WsMessage::Text(t))) => t,
        };
        let Ok(mut frame) = serde_json::from_str::<InFrame>(text.as_str()) else {
            return Err(protocol_error(
                close_code::POLICY,
                "malformed JSON-RPC frame",
            ));
        };
        let id = frame.id.take().unwrap_or(Value::Null);
        match frame.method.as_deref() {
            Some("send") => {
                let params = match frame.params::<SendParams>() {
                    Some(Ok(p)) => p,
                    Some(Err(e)) => {
                        return self
                            .reply(protocol::error_frame(
                                &id,
                                rpc_code::INVALID_PARAMS,
                                &format!("invalid send params: {e}"),
                            ))
                            .await;
                    }
                    None => {
                        return self
                            .reply(protocol::error_frame(
                                &id,
                                rpc_code::INVALID_PARAMS,
                                "send needs params",
                            ))
                            .await;
                    }
                };
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
            Some("recvack") => {
                if let Some(Ok(ack)) = frame.params::<RecvAckParams>() {
                    if let Some(message_id) = ack.message_id() {
                        self.unacked.remove(&message_id);
                    }
                }
                Ok(())
            }
            Some("ping") => self.reply(protocol::pong_frame(&id)).await,
            Some("disconnect") => Err(End::Quiet(PresenceReason::LinkClosed)),
            Some("connect") => Err(protocol_error(close_code::POLICY, "already connected")),
            Some(other) => {
                let why = format!("unknown method {:?}", truncate(other, 40));
                if !id.is_null() {
                    let _ = self
                        .reply(protocol::error_frame(&id, rpc_code::METHOD_NOT_FOUND, &why))
                        .await;
                }
                Err(protocol_error(close_code::POLICY, &why))
            }
            None => Err(protocol_error(
                close_code::POLICY,
                "a JSON-RPC frame needs a method",
            )),
        }
    }

    async fn reply(&mut self, text: String) -> Result<(), End> {
        self.write(WsMessage::Text(text.into()))
            .await
            .map_err(|_| End::Quiet(PresenceReason::LinkClosed))
    }

    /// The future that sends a message and renders the `send` result.
    fn send(&self, id: Value, params: SendParams) -> PendingReply {
        let im = self.im.clone();
        let request = SendRequest {
            from_uid: self.uid.clone(),
            channel_id: params.channel_id,
            channel_type: params.channel_type,
            client_msg_no: params.client_msg_no,
            header: params.header.unwrap_or_default().into(),
            setting: 0,
            expire: params.expire,
            payload: protocol::payload_bytes(&params.payload),
            subscribers: None,
            origin: Origin::Connection(self.conn_id),
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
    protocol::result_frame(
        id,
        json!({"messageId": "0", "messageSeq": 0, "reasonCode": e.reason_code(),
               "reason": e.to_string(), "code": e.code()}),
    )
}

fn protocol_error(code: u16, why: &str) -> End {
    End::Disconnect(
        PresenceReason::ProtocolError,
        reason::SYSTEM_ERROR,
        why.to_string(),
        code,
    )
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn render(delivery: &Delivery) -> Utf8Bytes {
    delivery
        .frame
        .get_or_init(|| {
            Utf8Bytes::from(protocol::recv_frame(
                &delivery.message,
                &delivery.channel_id,
            ))
        })
        .clone()
}
