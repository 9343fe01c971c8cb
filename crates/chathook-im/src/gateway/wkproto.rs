//! The binary codec: WuKongIM's wkproto (`chathook-wkproto`) behind the gateway's [`Codec`]. The
//! client's bytes are a stream (a packet may span messages, a message may hold several); the
//! connection's protocol version is its CONNECT's, capped at 5, and decides the fields of every packet
//! after it. With `gateway.encryption` (the default) the CONNECT's key starts an X25519 exchange: SEND
//! payloads are checked against their msgKey and decrypted (a bad one is answered SENDACK reason 9, as
//! WuKongIM v2.2.5 does), and each RECV is encrypted for this connection.

use bytes::Bytes;
use chathook_events::MessageHeader;
use chathook_wkproto::{
    self as wk, Cipher, Connack, Disconnect, Flags, Packet, Recv, Sendack, Setting,
};
use rand::Rng;

use super::close::close_code;
use super::codec::{Broken, Codec, ConnectRequest, Frame, Request, SendFields};
use crate::error::reason;
use crate::messaging::SendAck;
use crate::presence::Delivery;
use crate::SendError;

/// What an answer is to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
    Connect,
    /// A SEND: its sequence number and header flags, which the SENDACK copies.
    Send {
        client_seq: u32,
        flags: Flags,
    },
    Ping,
}

/// A wkproto connection's codec.
pub(super) struct Wkproto {
    /// The protocol version: the CONNECT's, capped at [`wk::LATEST_VERSION`].
    version: u8,
    /// Received bytes that are not a whole packet yet (at most one packet's worth).
    pending: Vec<u8>,
    /// The largest packet body taken (`limits.max_frame_bytes`).
    max_body: usize,
    /// Whether payloads are encrypted (`gateway.encryption`).
    encryption: bool,
    /// The connection's cipher, from its CONNECT on (with encryption on).
    cipher: Option<Cipher>,
    /// The CONNACK's server key and salt, made with the cipher.
    handshake: (String, String),
    /// Scratch for an encrypted payload.
    sealed: Vec<u8>,
}

impl Wkproto {
    pub(super) fn new(max_body: usize, encryption: bool) -> Wkproto {
        Wkproto {
            version: wk::LATEST_VERSION,
            pending: Vec::new(),
            max_body,
            encryption,
            cipher: None,
            handshake: (String::new(), String::new()),
            sealed: Vec::new(),
        }
    }

    fn frame(&self, packet: &Packet) -> Frame {
        let mut out = Vec::new();
        // Strings here are the server's own (ids and reasons under the gateway's limits); a packet that
        // could not be written would be a bug, so it is logged and an empty frame goes nowhere.
        if let Err(e) = wk::encode(packet, self.version, &mut out) {
            tracing::error!(error = %e, "cannot encode a wkproto packet");
        }
        Frame::Binary(Bytes::from(out))
    }

    /// The request a CONNECT makes, and the key exchange it starts.
    fn on_connect(&mut self, c: wk::Connect) -> Request<Tag> {
        self.version = c.version.min(wk::LATEST_VERSION);
        if self.encryption {
            let mut rng = rand::rng();
            let secret: [u8; 32] = rng.random();
            let salt: String = (0..16)
                .map(|_| {
                    const CHARS: &[u8] =
                        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
                    CHARS[rng.random_range(0..CHARS.len())] as char
                })
                .collect();
            match Cipher::server(&c.client_key, secret, &salt) {
                Ok(cipher) => {
                    self.cipher = Some(cipher);
                    self.handshake = (wk::public_key(secret), salt);
                }
                Err(e) => {
                    return Request::Invalid {
                        tag: Some(Tag::Connect),
                        why: format!("clientKey: {e}"),
                    }
                }
            }
        }
        Request::Connect(ConnectRequest {
            tag: Tag::Connect,
            uid: c.uid,
            token: c.token,
            device_flag: c.device_flag,
            device_id: Some(c.device_id).filter(|d| !d.is_empty()),
            client_timestamp: Some(c.client_timestamp),
            platform: None,
        })
    }

    /// The request a SEND makes: its payload checked and decrypted when encryption is on.
    fn on_send(&mut self, s: wk::Send) -> Request<Tag> {
        let tag = Tag::Send {
            client_seq: s.client_seq,
            flags: s.flags,
        };
        let payload = match (&mut self.cipher, self.encryption) {
            (Some(cipher), true) => {
                let key = cipher.send_msg_key(
                    s.client_seq,
                    &s.client_msg_no,
                    &s.channel_id,
                    s.channel_type,
                    &s.payload,
                );
                if key != s.msg_key {
                    return Request::Invalid {
                        tag: Some(tag),
                        why: "msgKey does not match the payload".into(),
                    };
                }
                match cipher.open(&s.payload) {
                    Ok(plain) => plain,
                    Err(e) => {
                        return Request::Invalid {
                            tag: Some(tag),
                            why: format!("payload: {e}"),
                        }
                    }
                }
            }
            _ => s.payload,
        };
        Request::Send {
            tag,
            send: SendFields {
                channel_id: s.channel_id,
                channel_type: s.channel_type,
                client_msg_no: s.client_msg_no,
                header: MessageHeader {
                    no_persist: s.flags.no_persist,
                    red_dot: s.flags.red_dot,
                    sync_once: s.flags.sync_once,
                },
                setting: s.setting.0,
                expire: s.expire,
                payload,
            },
        }
    }

    fn sendack(&self, tag: Tag, message_id: i64, message_seq: u64, reason: u8) -> Frame {
        let (client_seq, flags) = match tag {
            Tag::Send { client_seq, flags } => (client_seq, flags),
            _ => (0, Flags::default()),
        };
        self.frame(&Packet::Sendack(Sendack {
            flags,
            message_id,
            client_seq,
            message_seq: message_seq as u32,
            reason,
        }))
    }
}

impl Codec for Wkproto {
    type Tag = Tag;

    fn decode(&mut self, bytes: &[u8], out: &mut Vec<Request<Tag>>) -> Result<(), Broken> {
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        let result = loop {
            match wk::decode(&self.pending[at..], self.version, self.max_body) {
                Ok(Some((packet, used))) => {
                    at += used;
                    let request = match packet {
                        Packet::Connect(c) => self.on_connect(c),
                        Packet::Send(s) => self.on_send(s),
                        Packet::Recvack(r) => Request::RecvAck {
                            message_id: Some(r.message_id),
                        },
                        Packet::Ping => Request::Ping { tag: Tag::Ping },
                        Packet::Disconnect(_) => Request::Disconnect,
                        // WuKongIM v2.2.5 answers no SUB, and a client has no business sending the
                        // server's packets: neither changes anything.
                        _ => continue,
                    };
                    out.push(request);
                }
                Ok(None) => break Ok(()),
                Err(e) => {
                    break Err(Broken {
                        code: close_code::POLICY,
                        why: e.to_string(),
                    })
                }
            }
        };
        self.pending.drain(..at);
        result
    }

    fn connected(&mut self, _tag: Tag, time_diff: i64, node_id: u16) -> Frame {
        let (server_key, salt) = std::mem::take(&mut self.handshake);
        let connack = Connack::for_version(
            self.version,
            time_diff,
            reason::SUCCESS,
            server_key,
            salt,
            u64::from(node_id),
        );
        self.frame(&Packet::Connack(connack))
    }

    fn connect_refused(&mut self, _tag: Tag, reason_code: u8, _why: &str) -> Frame {
        // chathook answers a refused CONNECT (WuKongIM sends nothing), so that SDKs stop retrying;
        // the layout stays the version's, with no key and no salt.
        let connack = Connack::for_version(
            self.version,
            0,
            reason_code,
            String::new(),
            String::new(),
            0,
        );
        self.frame(&Packet::Connack(connack))
    }

    fn send_result(&mut self, tag: Tag, result: &Result<SendAck, SendError>) -> Frame {
        match result {
            Ok(ack) => self.sendack(tag, ack.message_id, ack.message_seq, reason::SUCCESS),
            Err(e) => self.sendack(tag, 0, 0, e.reason_code()),
        }
    }

    fn recv(&mut self, delivery: &Delivery, own: bool) -> Frame {
        let m = &delivery.message;
        let timestamp = m.timestamp as i32;
        let mut recv = Recv {
            flags: Flags {
                dup: false,
                sync_once: m.header.sync_once,
                red_dot: m.header.red_dot && !own,
                no_persist: m.header.no_persist,
            },
            setting: Setting(m.setting),
            msg_key: String::new(),
            from_uid: m.from_uid.clone(),
            channel_id: delivery.channel_id.clone(),
            channel_type: m.channel_type,
            expire: m.expire,
            client_msg_no: m.client_msg_no.clone(),
            stream: None,
            message_id: m.message_id,
            message_seq: m.message_seq as u32,
            timestamp,
            topic: None,
            payload: Vec::new(),
        };
        match (&mut self.cipher, self.encryption) {
            (Some(cipher), true) => {
                self.sealed.clear();
                cipher.seal(&m.payload, &mut self.sealed);
                recv.msg_key = cipher.recv_msg_key(
                    m.message_id,
                    recv.message_seq,
                    &m.client_msg_no,
                    timestamp,
                    &m.from_uid,
                    &delivery.channel_id,
                    m.channel_type,
                    &self.sealed,
                );
                recv.payload = self.sealed.clone();
            }
            _ => recv.payload = m.payload.clone(),
        }
        self.frame(&Packet::Recv(recv))
    }

    fn pong(&mut self, _tag: Tag) -> Frame {
        Frame::Binary(Bytes::from_static(&[wk::kind::PONG << 4]))
    }

    fn invalid(&mut self, tag: Tag, _why: &str) -> Option<Frame> {
        match tag {
            Tag::Send { .. } => Some(self.sendack(tag, 0, 0, reason::PAYLOAD_DECODE_ERROR)),
            Tag::Connect => Some(self.connect_refused(tag, reason::CLIENT_KEY_IS_EMPTY, "")),
            Tag::Ping => None,
        }
    }

    fn refused(&mut self, _tag: Tag, _why: &str) -> Option<Frame> {
        None
    }

    fn disconnect(&mut self, reason_code: u8, why: &str) -> Frame {
        self.frame(&Packet::Disconnect(Disconnect {
            reason: reason_code,
            reason_text: why.to_string(),
        }))
    }
}
