//! A WuKongIM binary-protocol (wkproto) client over WebSocket or TCP, as the app SDKs speak it: a CONNECT of
//! the chosen version with an X25519 key, SENDs encrypted with their msgKey, RECVs checked against
//! theirs and decrypted (then acknowledged), PING. Built on `chathook-wkproto`, as the gateway is; the
//! SDK itself runs in `sdk_js.rs`.

use std::collections::VecDeque;
use std::time::Duration;

use chathook_wkproto::{self as wk, Cipher, Connack, Flags, Packet, Recv, Sendack, Setting};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The gateway's two links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ws,
    Tcp,
}

/// Where a binary client connects: a WebSocket URL or a TCP `host:port`.
#[derive(Debug, Clone, Copy)]
pub enum Dial<'a> {
    Ws(&'a str),
    Tcp(&'a str),
}

/// The link under a binary client.
enum Link {
    Ws(Box<Ws>),
    Tcp(TcpStream),
}

/// What a link delivered.
enum Read {
    /// Bytes (one WebSocket message, or what one TCP read returned).
    Bytes(Vec<u8>),
    /// A WebSocket text message, a ping: nothing for the protocol.
    Other,
    /// The end: the close frame's code and reason, when there was one.
    Closed(Option<(u16, String)>),
}

impl Link {
    async fn open(dial: Dial<'_>) -> Link {
        match dial {
            Dial::Ws(url) => Link::Ws(Box::new(
                tokio_tungstenite::connect_async(url)
                    .await
                    .expect("connect")
                    .0,
            )),
            Dial::Tcp(addr) => Link::Tcp(TcpStream::connect(addr).await.expect("connect")),
        }
    }

    async fn write(&mut self, bytes: Vec<u8>) {
        match self {
            Link::Ws(ws) => ws
                .send(Message::Binary(bytes.into()))
                .await
                .expect("ws send"),
            Link::Tcp(tcp) => tcp.write_all(&bytes).await.expect("tcp write"),
        }
    }

    async fn read(&mut self) -> Read {
        match self {
            Link::Ws(ws) => match ws.next().await {
                Some(Ok(Message::Binary(b))) => Read::Bytes(b.to_vec()),
                Some(Ok(Message::Close(frame))) => {
                    Read::Closed(frame.map(|f| (f.code.into(), f.reason.to_string())))
                }
                Some(Ok(_)) => Read::Other,
                Some(Err(_)) | None => Read::Closed(None),
            },
            Link::Tcp(tcp) => {
                let mut buf = vec![0; 64 * 1024];
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => Read::Closed(None),
                    Ok(n) => {
                        buf.truncate(n);
                        Read::Bytes(buf)
                    }
                }
            }
        }
    }
}

/// A RECV as the client read it: the packet and its decrypted payload.
#[derive(Debug, Clone)]
pub struct Got {
    pub recv: Recv,
    pub payload: Vec<u8>,
}

/// A connected (or refused) binary client.
pub struct BinClient {
    link: Link,
    /// The protocol version it spoke in CONNECT.
    pub version: u8,
    /// The CONNACK it got.
    pub connack: Connack,
    cipher: Option<Cipher>,
    /// Bytes of a packet not read whole yet.
    buf: Vec<u8>,
    /// Packets read while waiting for another.
    queued: VecDeque<Packet>,
    client_seq: u32,
    /// How many WebSocket messages held more than one packet (the SDK breaks on those).
    pub multi_packet_messages: usize,
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Default)]
pub struct BinClosed {
    pub disconnect: Option<wk::Disconnect>,
    pub code: Option<u16>,
    pub reason: String,
}

impl BinClient {
    /// Connects over WebSocket with a CONNECT of `version` (`encrypt`: with a key, as the SDKs do).
    pub async fn connect(
        url: &str,
        uid: &str,
        token: &str,
        device_flag: u8,
        version: u8,
        encrypt: bool,
    ) -> BinClient {
        BinClient::connect_to(Dial::Ws(url), uid, token, device_flag, version, encrypt).await
    }

    /// Connects over `dial` with a CONNECT of `version` (`encrypt`: with a key, as the SDKs do), from a
    /// new device id, as SDK 1.0.4 makes one on every connect.
    pub async fn connect_to(
        dial: Dial<'_>,
        uid: &str,
        token: &str,
        device_flag: u8,
        version: u8,
        encrypt: bool,
    ) -> BinClient {
        let device_id = format!("{:032x}W", rand::random::<u128>());
        BinClient::connect_device(dial, uid, token, device_flag, version, encrypt, &device_id).await
    }

    /// [`BinClient::connect_to`] from the device `device_id`.
    pub async fn connect_device(
        dial: Dial<'_>,
        uid: &str,
        token: &str,
        device_flag: u8,
        version: u8,
        encrypt: bool,
        device_id: &str,
    ) -> BinClient {
        let link = Link::open(dial).await;
        let secret: [u8; 32] = rand::random();
        let connect = Packet::Connect(wk::Connect {
            version,
            device_flag,
            device_id: device_id.into(),
            uid: uid.into(),
            token: token.into(),
            client_timestamp: 1_700_000_000_000,
            client_key: if encrypt {
                wk::public_key(secret)
            } else {
                String::new()
            },
        });
        let mut c = BinClient {
            link,
            version,
            connack: Connack::for_version(version, 0, 0, String::new(), String::new(), 0),
            cipher: None,
            buf: Vec::new(),
            queued: VecDeque::new(),
            client_seq: 0,
            multi_packet_messages: 0,
        };
        c.write(&connect).await;
        match c.next(Duration::from_secs(5)).await {
            Some(Packet::Connack(ack)) => {
                if encrypt && ack.reason == 1 {
                    c.cipher =
                        Some(Cipher::client(secret, &ack.server_key, &ack.salt).expect("keys"));
                }
                c.connack = ack;
            }
            other => panic!("expected a CONNACK, got {other:?}"),
        }
        c
    }

    /// Writes one packet as one WebSocket binary message.
    pub async fn write(&mut self, packet: &Packet) {
        let mut out = Vec::new();
        wk::encode(packet, self.version, &mut out).expect("encode");
        self.write_raw(out).await;
    }

    /// Writes raw bytes (one binary message on WebSocket).
    pub async fn write_raw(&mut self, bytes: Vec<u8>) {
        self.link.write(bytes).await;
    }

    /// A SEND of `payload` (encrypted with its msgKey when the connection is), without waiting.
    pub async fn send_packet(&mut self, channel_id: &str, channel_type: u8, payload: &[u8]) -> u32 {
        let packet = self.send_of(channel_id, channel_type, payload);
        self.write(&packet).await;
        self.client_seq
    }

    /// The SEND packet for `payload`: the next client seq, a fresh client message number.
    pub fn send_of(&mut self, channel_id: &str, channel_type: u8, payload: &[u8]) -> Packet {
        self.client_seq += 1;
        let client_msg_no = format!("bin-{}-{}", self.client_seq, rand::random::<u32>());
        let (wire, msg_key) = match &mut self.cipher {
            Some(cipher) => {
                let mut wire = Vec::new();
                cipher.seal(payload, &mut wire);
                let key = cipher.send_msg_key(
                    self.client_seq,
                    &client_msg_no,
                    channel_id,
                    channel_type,
                    &wire,
                );
                (wire, key)
            }
            None => (payload.to_vec(), String::new()),
        };
        Packet::Send(wk::Send {
            flags: Flags {
                red_dot: true,
                ..Flags::default()
            },
            setting: Setting(0),
            client_seq: self.client_seq,
            client_msg_no,
            stream_no: None,
            channel_id: channel_id.into(),
            channel_type,
            expire: 0,
            msg_key,
            topic: None,
            payload: wire,
        })
    }

    /// Sends `payload` and waits for its SENDACK.
    pub async fn send(&mut self, channel_id: &str, channel_type: u8, payload: &[u8]) -> Sendack {
        let seq = self.send_packet(channel_id, channel_type, payload).await;
        self.sendack(seq).await
    }

    /// The SENDACK of `client_seq` (other packets stay queued).
    pub async fn sendack(&mut self, client_seq: u32) -> Sendack {
        let found = self
            .wait_for(
                Duration::from_secs(5),
                |p| matches!(p, Packet::Sendack(a) if a.client_seq == client_seq),
            )
            .await;
        match found {
            Some(Packet::Sendack(a)) => a,
            other => panic!("no SENDACK for {client_seq}: {other:?}"),
        }
    }

    /// The next RECV, its msgKey checked and its payload decrypted; acknowledged with `ack`.
    pub async fn recv(&mut self, timeout: Duration, ack: bool) -> Option<Got> {
        let Packet::Recv(recv) = self
            .wait_for(timeout, |p| matches!(p, Packet::Recv(_)))
            .await?
        else {
            unreachable!()
        };
        let payload = match &mut self.cipher {
            Some(cipher) => {
                let key = cipher.recv_msg_key(
                    recv.message_id,
                    recv.message_seq,
                    &recv.client_msg_no,
                    recv.timestamp,
                    &recv.from_uid,
                    &recv.channel_id,
                    recv.channel_type,
                    &recv.payload,
                );
                assert_eq!(key, recv.msg_key, "the RECV's msgKey checks out");
                cipher.open(&recv.payload).expect("the RECV decrypts")
            }
            None => recv.payload.clone(),
        };
        if ack {
            let ack = Packet::Recvack(wk::Recvack {
                flags: recv.flags,
                message_id: recv.message_id,
                message_seq: recv.message_seq,
            });
            self.write(&ack).await;
        }
        Some(Got { recv, payload })
    }

    /// PING, then waits for the PONG.
    pub async fn ping(&mut self) -> bool {
        self.write(&Packet::Ping).await;
        self.wait_for(Duration::from_secs(5), |p| matches!(p, Packet::Pong))
            .await
            .is_some()
    }

    /// The first packet (queued or read within `timeout`) that `want` accepts; the others stay queued.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        want: impl Fn(&Packet) -> bool,
    ) -> Option<Packet> {
        if let Some(i) = self.queued.iter().position(&want) {
            return self.queued.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let p = self.read(left).await?;
            if want(&p) {
                return Some(p);
            }
            self.queued.push_back(p);
        }
    }

    /// The next packet, queued or read.
    pub async fn next(&mut self, timeout: Duration) -> Option<Packet> {
        if let Some(p) = self.queued.pop_front() {
            return Some(p);
        }
        self.read(timeout).await
    }

    /// Reads until one packet is whole (`None` on timeout or close).
    async fn read(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((p, used)) = wk::decode(&self.buf, self.version, 1 << 20).expect("a packet")
            {
                self.buf.drain(..used);
                return Some(p);
            }
            let read = tokio::time::timeout_at(deadline, self.link.read())
                .await
                .ok()?;
            match read {
                Read::Bytes(b) => {
                    let ws = matches!(self.link, Link::Ws(_));
                    if ws && (!self.buf.is_empty() || !one_packet(&b, self.version)) {
                        self.multi_packet_messages += 1;
                    }
                    self.buf.extend_from_slice(&b);
                }
                Read::Closed(_) => return None,
                Read::Other => {}
            }
        }
    }

    /// Reads until the server ends the connection: its DISCONNECT and close frame, if any.
    pub async fn closed(&mut self, timeout: Duration) -> BinClosed {
        let mut out = BinClosed::default();
        let deadline = tokio::time::Instant::now() + timeout;
        while let Some(p) = self.queued.pop_front() {
            if let Packet::Disconnect(d) = p {
                out.disconnect = Some(d);
            }
        }
        loop {
            let Ok(read) = tokio::time::timeout_at(deadline, self.link.read()).await else {
                return out;
            };
            match read {
                Read::Bytes(b) => {
                    self.buf.extend_from_slice(&b);
                    while let Ok(Some((p, used))) = wk::decode(&self.buf, self.version, 1 << 20) {
                        self.buf.drain(..used);
                        if let Packet::Disconnect(d) = p {
                            out.disconnect = Some(d);
                        }
                    }
                }
                Read::Closed(frame) => {
                    if let Some((code, reason)) = frame {
                        out.code = Some(code);
                        out.reason = reason;
                    }
                    return out;
                }
                Read::Other => {}
            }
        }
    }
}

/// Whether `bytes` is exactly one whole packet.
fn one_packet(bytes: &[u8], version: u8) -> bool {
    matches!(wk::decode(bytes, version, 1 << 20), Ok(Some((_, used))) if used == bytes.len())
}
