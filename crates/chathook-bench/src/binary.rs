//! The binary protocol's side of the chat load: WebSocket clients speaking wkproto as WuKongIM's SDKs
//! do (version 2, X25519 + AES, `chathook-wkproto`), a sender keeping a window of SENDs in flight, a
//! receiver answering each RECV with a RECVACK and decrypting its payload for the latency stamp (it does
//! not check the msgKey, so the machine's CPU goes to the server's side of the work).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chathook_wkproto::{self as wk, Cipher, Flags, Packet, Setting};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::chat::SendPlan;
use crate::harness::Ws;

const VERSION: u8 = 2;
const MAX_BODY: usize = 1 << 20;

/// A logged-in binary connection and its cipher.
pub struct BinSocket {
    ws: Ws,
    cipher: Cipher,
}

/// Connects to `ws` and logs in as `uid` (token `uid`) with a CONNECT of version 2.
pub async fn connect(ws: &str, uid: &str) -> anyhow::Result<BinSocket> {
    let addr: std::net::SocketAddr = ws.trim_start_matches("ws://").parse()?;
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut socket, _) = tokio_tungstenite::client_async(ws, stream).await?;
    let secret: [u8; 32] = rand::random();
    let connect = Packet::Connect(wk::Connect {
        version: VERSION,
        device_flag: 0,
        device_id: format!("bench-{uid}"),
        uid: uid.into(),
        token: uid.into(),
        client_timestamp: 0,
        client_key: wk::public_key(secret),
    });
    let mut out = Vec::new();
    wk::encode(&connect, VERSION, &mut out)?;
    socket.send(Message::Binary(out.into())).await?;
    let reply = socket.next().await.context("no CONNACK")??;
    let Some((Packet::Connack(ack), _)) = wk::decode(&reply.into_data(), VERSION, MAX_BODY)? else {
        bail!("the first answer is no CONNACK");
    };
    if ack.reason != 1 {
        bail!("connect refused: reason {}", ack.reason);
    }
    let cipher = Cipher::client(secret, &ack.server_key, &ack.salt)?;
    Ok(BinSocket { ws: socket, cipher })
}

/// Reads packets off a WebSocket stream (each message may end a packet begun in the previous one).
struct Reader {
    rx: SplitStream<Ws>,
    buf: Vec<u8>,
}

impl Reader {
    /// The next packet; `None` when the link ends or stays silent for `idle`.
    async fn next(&mut self, idle: Duration) -> Option<Packet> {
        loop {
            if let Ok(Some((p, used))) = wk::decode(&self.buf, VERSION, MAX_BODY) {
                self.buf.drain(..used);
                return Some(p);
            }
            let msg = tokio::time::timeout(idle, self.rx.next())
                .await
                .ok()??
                .ok()?;
            self.buf.extend_from_slice(&msg.into_data());
        }
    }
}

/// Receives until the link is silent for 3 s: counts RECVs in `received`, acknowledges each, and
/// returns the send-to-receive latencies (microseconds).
pub async fn receive(socket: BinSocket, received: Arc<AtomicU64>, epoch: Instant) -> Vec<u64> {
    let (mut tx, rx) = socket.ws.split();
    let cipher = socket.cipher;
    let mut reader = Reader {
        rx,
        buf: Vec::new(),
    };
    let mut latencies = Vec::new();
    let mut out = Vec::new();
    while let Some(packet) = reader.next(Duration::from_secs(3)).await {
        let Packet::Recv(recv) = packet else { continue };
        if let Some(t) = cipher
            .open(&recv.payload)
            .ok()
            .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
            .and_then(|v| v["t"].as_u64())
        {
            latencies.push((epoch.elapsed().as_micros() as u64).saturating_sub(t));
        }
        received.fetch_add(1, Ordering::Relaxed);
        let ack = Packet::Recvack(wk::Recvack {
            flags: recv.flags,
            message_id: recv.message_id,
            message_seq: recv.message_seq,
        });
        out.clear();
        if wk::encode(&ack, VERSION, &mut out).is_err()
            || tx.send(Message::Binary(out.clone().into())).await.is_err()
        {
            break;
        }
    }
    latencies
}

/// Sends until the deadline with `window` SENDs in flight (a SENDACK frees a slot).
pub async fn send(socket: BinSocket, plan: SendPlan) {
    let (tx, rx) = socket.ws.split();
    let slots = Arc::new(Semaphore::new(plan.window));
    let acks = {
        let slots = slots.clone();
        let mut reader = Reader {
            rx,
            buf: Vec::new(),
        };
        tokio::spawn(async move {
            while let Some(packet) = reader.next(Duration::from_secs(30)).await {
                if matches!(packet, Packet::Sendack(_)) {
                    slots.add_permits(1);
                }
            }
        })
    };
    send_loop(tx, socket.cipher, &slots, &plan).await;
    plan.drain(&slots).await;
    acks.abort();
}

async fn send_loop(
    mut tx: SplitSink<Ws, Message>,
    mut cipher: Cipher,
    slots: &Semaphore,
    plan: &SendPlan,
) {
    let mut ticker = plan.pace.map(tokio::time::interval);
    let mut n = 0u32;
    let mut wire = Vec::new();
    let mut out = Vec::new();
    while plan.next(&mut ticker, slots).await {
        n += 1;
        let client_msg_no = format!("{}-{n}", plan.prefix);
        let payload = json!({"t": plan.epoch.elapsed().as_micros() as u64}).to_string();
        wire.clear();
        cipher.seal(payload.as_bytes(), &mut wire);
        let msg_key = cipher.send_msg_key(
            n,
            &client_msg_no,
            &plan.channel_id,
            plan.channel_type,
            &wire,
        );
        let send = Packet::Send(wk::Send {
            flags: Flags::default(),
            setting: Setting(0),
            client_seq: n,
            client_msg_no,
            stream_no: None,
            channel_id: plan.channel_id.clone(),
            channel_type: plan.channel_type,
            expire: 0,
            msg_key,
            topic: None,
            payload: wire.clone(),
        });
        out.clear();
        if wk::encode(&send, VERSION, &mut out).is_err()
            || tx.send(Message::Binary(out.clone().into())).await.is_err()
        {
            break;
        }
    }
}
