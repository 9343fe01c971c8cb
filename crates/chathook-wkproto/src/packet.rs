//! The packets and their bodies, by protocol version (reference `wukongim-binary.md` section 4): which
//! fields a version carries is decided here and nowhere else.

use crate::wire::{put_i32, put_i64, put_str, put_u32, put_u64, put_u8, Reader};
use crate::{DecodeError, EncodeError};

/// Packet types: the high nibble of the fixed header.
pub mod kind {
    pub const CONNECT: u8 = 1;
    pub const CONNACK: u8 = 2;
    pub const SEND: u8 = 3;
    pub const SENDACK: u8 = 4;
    pub const RECV: u8 = 5;
    pub const RECVACK: u8 = 6;
    pub const PING: u8 = 7;
    pub const PONG: u8 = 8;
    pub const DISCONNECT: u8 = 9;
    pub const SUB: u8 = 10;
    pub const SUBACK: u8 = 11;
}

/// The newest protocol version; a connection's version is its CONNECT's, capped at this.
pub const LATEST_VERSION: u8 = 5;

/// The fixed header's low nibble on SEND, SENDACK, RECV and RECVACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags {
    pub dup: bool,
    pub sync_once: bool,
    pub red_dot: bool,
    pub no_persist: bool,
}

impl Flags {
    pub fn from_bits(bits: u8) -> Flags {
        Flags {
            dup: bits & 0x08 != 0,
            sync_once: bits & 0x04 != 0,
            red_dot: bits & 0x02 != 0,
            no_persist: bits & 0x01 != 0,
        }
    }

    pub fn bits(self) -> u8 {
        (self.dup as u8) << 3
            | (self.sync_once as u8) << 2
            | (self.red_dot as u8) << 1
            | self.no_persist as u8
    }
}

/// The setting byte of SEND and RECV (WuKongIMGoProto's bits: the stream bit is 0x02, where SDK
/// 1.0.4 put it at 0x04; plain messages use 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Setting(pub u8);

impl Setting {
    pub const RECEIPT: u8 = 0x80;
    pub const SIGNAL: u8 = 0x20;
    pub const NO_ENCRYPT: u8 = 0x10;
    pub const TOPIC: u8 = 0x08;
    pub const STREAM: u8 = 0x02;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// CONNECT (client to server). Its layout is the same in every version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: u8,
    pub device_flag: u8,
    pub device_id: String,
    pub uid: String,
    pub token: String,
    /// The client's clock, unix milliseconds.
    pub client_timestamp: i64,
    /// Standard base64 of the client's X25519 public key.
    pub client_key: String,
}

/// CONNACK (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connack {
    /// Sent (header bit 0) to clients of version 4 and up: the connection's version.
    pub server_version: Option<u8>,
    /// Server clock minus client clock, milliseconds.
    pub time_diff: i64,
    pub reason: u8,
    /// Standard base64 of the server's X25519 public key (empty on a refusal).
    pub server_key: String,
    /// The cipher's IV, 16 ASCII characters (empty on a refusal).
    pub salt: String,
    /// Sent when `server_version` is 4 or more.
    pub node_id: Option<u64>,
}

impl Connack {
    /// The CONNACK a connection of `version` expects: WuKongIM sends the server-version byte only to
    /// clients above version 3, and the node id from version 4 (SDK 1.0.4, version 2, reads neither).
    pub fn for_version(
        version: u8,
        time_diff: i64,
        reason: u8,
        server_key: String,
        salt: String,
        node_id: u64,
    ) -> Connack {
        Connack {
            server_version: (version > 3).then_some(version),
            time_diff,
            reason,
            server_key,
            salt,
            node_id: (version >= 4).then_some(node_id),
        }
    }
}

/// SEND (client to server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub flags: Flags,
    pub setting: Setting,
    pub client_seq: u32,
    pub client_msg_no: String,
    /// Versions 2 to 4, with the stream bit.
    pub stream_no: Option<String>,
    pub channel_id: String,
    pub channel_type: u8,
    /// Version 3 and up (0 otherwise).
    pub expire: u32,
    pub msg_key: String,
    /// With the topic bit.
    pub topic: Option<String>,
    /// As on the wire: base64 of the encrypted payload, or the plain payload without encryption.
    pub payload: Vec<u8>,
}

/// SENDACK (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sendack {
    /// Copied from the SEND, as WuKongIM does.
    pub flags: Flags,
    pub message_id: i64,
    pub client_seq: u32,
    pub message_seq: u32,
    pub reason: u8,
}

/// A RECV's stream fields (versions 2 to 4 with the stream bit; WuKongIMGoProto's current layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvStream {
    pub flag: u8,
    pub no: String,
    pub id: u64,
}

/// RECV (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recv {
    pub flags: Flags,
    pub setting: Setting,
    pub msg_key: String,
    pub from_uid: String,
    /// As the receiver sees it (for a person channel, the other party).
    pub channel_id: String,
    pub channel_type: u8,
    /// Version 3 and up (0 otherwise).
    pub expire: u32,
    pub client_msg_no: String,
    pub stream: Option<RecvStream>,
    pub message_id: i64,
    pub message_seq: u32,
    /// Unix seconds.
    pub timestamp: i32,
    pub topic: Option<String>,
    /// As on the wire (see [`Send::payload`]).
    pub payload: Vec<u8>,
}

/// RECVACK (client to server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recvack {
    /// The RECV's flags, copied by the SDK.
    pub flags: Flags,
    pub message_id: i64,
    pub message_seq: u32,
}

/// DISCONNECT (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    pub reason: u8,
    pub reason_text: String,
}

/// SUB (client to server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sub {
    pub setting: u8,
    pub sub_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    /// 0 subscribe, 1 unsubscribe.
    pub action: u8,
    pub param: String,
}

/// SUBACK (server to client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suback {
    pub sub_no: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub action: u8,
    pub reason: u8,
}

/// Every packet, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    Connack(Connack),
    Send(Send),
    Sendack(Sendack),
    Recv(Recv),
    Recvack(Recvack),
    Ping,
    Pong,
    Disconnect(Disconnect),
    Sub(Sub),
    Suback(Suback),
}

impl Packet {
    /// The packet's type (the fixed header's high nibble).
    pub fn kind(&self) -> u8 {
        match self {
            Packet::Connect(_) => kind::CONNECT,
            Packet::Connack(_) => kind::CONNACK,
            Packet::Send(_) => kind::SEND,
            Packet::Sendack(_) => kind::SENDACK,
            Packet::Recv(_) => kind::RECV,
            Packet::Recvack(_) => kind::RECVACK,
            Packet::Ping => kind::PING,
            Packet::Pong => kind::PONG,
            Packet::Disconnect(_) => kind::DISCONNECT,
            Packet::Sub(_) => kind::SUB,
            Packet::Suback(_) => kind::SUBACK,
        }
    }

    /// The fixed header's low nibble.
    pub(crate) fn flag_bits(&self) -> u8 {
        match self {
            Packet::Send(p) => p.flags.bits(),
            Packet::Sendack(p) => p.flags.bits(),
            Packet::Recv(p) => p.flags.bits(),
            Packet::Recvack(p) => p.flags.bits(),
            Packet::Connack(p) => p.server_version.is_some() as u8,
            _ => 0,
        }
    }

    /// Appends the body for a connection of `version`.
    pub(crate) fn encode_body(&self, version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Packet::Connect(p) => {
                put_u8(out, p.version);
                put_u8(out, p.device_flag);
                put_str(out, &p.device_id, "deviceId")?;
                put_str(out, &p.uid, "uid")?;
                put_str(out, &p.token, "token")?;
                put_i64(out, p.client_timestamp);
                put_str(out, &p.client_key, "clientKey")?;
            }
            Packet::Connack(p) => {
                if let Some(v) = p.server_version {
                    put_u8(out, v);
                }
                put_i64(out, p.time_diff);
                put_u8(out, p.reason);
                put_str(out, &p.server_key, "serverKey")?;
                put_str(out, &p.salt, "salt")?;
                if let (Some(v), Some(node)) = (p.server_version, p.node_id) {
                    if v >= 4 {
                        put_u64(out, node);
                    }
                }
            }
            Packet::Send(p) => encode_send(p, version, out)?,
            Packet::Sendack(p) => {
                put_i64(out, p.message_id);
                put_u32(out, p.client_seq);
                put_u32(out, p.message_seq);
                put_u8(out, p.reason);
            }
            Packet::Recv(p) => encode_recv(p, version, out)?,
            Packet::Recvack(p) => {
                put_i64(out, p.message_id);
                put_u32(out, p.message_seq);
            }
            Packet::Ping | Packet::Pong => {}
            Packet::Disconnect(p) => {
                put_u8(out, p.reason);
                put_str(out, &p.reason_text, "reason")?;
            }
            Packet::Sub(p) => {
                put_u8(out, p.setting);
                put_str(out, &p.sub_no, "subNo")?;
                put_str(out, &p.channel_id, "channelId")?;
                put_u8(out, p.channel_type);
                put_u8(out, p.action);
                put_str(out, &p.param, "param")?;
            }
            Packet::Suback(p) => {
                put_str(out, &p.sub_no, "subNo")?;
                put_str(out, &p.channel_id, "channelId")?;
                put_u8(out, p.channel_type);
                put_u8(out, p.action);
                put_u8(out, p.reason);
            }
        }
        Ok(())
    }

    /// Reads a body of type `kind` with header flags `bits`, for a connection of `version`.
    pub(crate) fn decode_body(
        kind: u8,
        bits: u8,
        version: u8,
        body: &[u8],
    ) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(body);
        let flags = Flags::from_bits(bits);
        Ok(match kind {
            kind::CONNECT => Packet::Connect(Connect {
                version: r.u8("version")?,
                device_flag: r.u8("deviceFlag")?,
                device_id: r.string("deviceId")?,
                uid: r.string("uid")?,
                token: r.string("token")?,
                client_timestamp: r.i64("clientTimestamp")?,
                client_key: r.string("clientKey")?,
            }),
            kind::CONNACK => {
                let server_version = if bits & 1 != 0 {
                    Some(r.u8("serverVersion")?)
                } else {
                    None
                };
                Packet::Connack(Connack {
                    server_version,
                    time_diff: r.i64("timeDiff")?,
                    reason: r.u8("reasonCode")?,
                    server_key: r.string("serverKey")?,
                    salt: r.string("salt")?,
                    node_id: match server_version {
                        Some(v) if v >= 4 => Some(r.u64("nodeId")?),
                        _ => None,
                    },
                })
            }
            kind::SEND => Packet::Send(decode_send(&mut r, flags, version)?),
            kind::SENDACK => Packet::Sendack(Sendack {
                flags,
                message_id: r.i64("messageId")?,
                client_seq: r.u32("clientSeq")?,
                message_seq: r.u32("messageSeq")?,
                reason: r.u8("reasonCode")?,
            }),
            kind::RECV => Packet::Recv(decode_recv(&mut r, flags, version)?),
            kind::RECVACK => Packet::Recvack(Recvack {
                flags,
                message_id: r.i64("messageId")?,
                message_seq: r.u32("messageSeq")?,
            }),
            kind::PING => Packet::Ping,
            kind::PONG => Packet::Pong,
            kind::DISCONNECT => Packet::Disconnect(Disconnect {
                reason: r.u8("reasonCode")?,
                reason_text: r.string("reason")?,
            }),
            kind::SUB => Packet::Sub(Sub {
                setting: r.u8("setting")?,
                sub_no: r.string("subNo")?,
                channel_id: r.string("channelId")?,
                channel_type: r.u8("channelType")?,
                action: r.u8("action")?,
                param: r.string("param")?,
            }),
            kind::SUBACK => Packet::Suback(Suback {
                sub_no: r.string("subNo")?,
                channel_id: r.string("channelId")?,
                channel_type: r.u8("channelType")?,
                action: r.u8("action")?,
                reason: r.u8("reasonCode")?,
            }),
            other => return Err(DecodeError::UnknownType(other)),
        })
    }
}

/// Stream fields ride in SEND and RECV only from version 2 to 4.
fn has_stream(setting: Setting, version: u8) -> bool {
    setting.has(Setting::STREAM) && (2..5).contains(&version)
}

fn encode_send(p: &Send, version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    put_u8(out, p.setting.0);
    put_u32(out, p.client_seq);
    put_str(out, &p.client_msg_no, "clientMsgNo")?;
    if has_stream(p.setting, version) {
        put_str(out, p.stream_no.as_deref().unwrap_or(""), "streamNo")?;
    }
    put_str(out, &p.channel_id, "channelId")?;
    put_u8(out, p.channel_type);
    if version >= 3 {
        put_u32(out, p.expire);
    }
    put_str(out, &p.msg_key, "msgKey")?;
    if p.setting.has(Setting::TOPIC) {
        put_str(out, p.topic.as_deref().unwrap_or(""), "topic")?;
    }
    out.extend_from_slice(&p.payload);
    Ok(())
}

fn decode_send(r: &mut Reader<'_>, flags: Flags, version: u8) -> Result<Send, DecodeError> {
    let setting = Setting(r.u8("setting")?);
    let client_seq = r.u32("clientSeq")?;
    let client_msg_no = r.string("clientMsgNo")?;
    let stream_no = if has_stream(setting, version) {
        Some(r.string("streamNo")?)
    } else {
        None
    };
    let channel_id = r.string("channelId")?;
    let channel_type = r.u8("channelType")?;
    let expire = if version >= 3 { r.u32("expire")? } else { 0 };
    let msg_key = r.string("msgKey")?;
    let topic = if setting.has(Setting::TOPIC) {
        Some(r.string("topic")?)
    } else {
        None
    };
    Ok(Send {
        flags,
        setting,
        client_seq,
        client_msg_no,
        stream_no,
        channel_id,
        channel_type,
        expire,
        msg_key,
        topic,
        payload: r.rest().to_vec(),
    })
}

fn encode_recv(p: &Recv, version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    put_u8(out, p.setting.0);
    put_str(out, &p.msg_key, "msgKey")?;
    put_str(out, &p.from_uid, "fromUid")?;
    put_str(out, &p.channel_id, "channelId")?;
    put_u8(out, p.channel_type);
    if version >= 3 {
        put_u32(out, p.expire);
    }
    put_str(out, &p.client_msg_no, "clientMsgNo")?;
    if has_stream(p.setting, version) {
        let stream = p.stream.as_ref();
        put_u8(out, stream.map_or(0, |s| s.flag));
        put_str(out, stream.map_or("", |s| &s.no), "streamNo")?;
        put_u64(out, stream.map_or(0, |s| s.id));
    }
    put_i64(out, p.message_id);
    put_u32(out, p.message_seq);
    put_i32(out, p.timestamp);
    if p.setting.has(Setting::TOPIC) {
        put_str(out, p.topic.as_deref().unwrap_or(""), "topic")?;
    }
    out.extend_from_slice(&p.payload);
    Ok(())
}

fn decode_recv(r: &mut Reader<'_>, flags: Flags, version: u8) -> Result<Recv, DecodeError> {
    let setting = Setting(r.u8("setting")?);
    let msg_key = r.string("msgKey")?;
    let from_uid = r.string("fromUid")?;
    let channel_id = r.string("channelId")?;
    let channel_type = r.u8("channelType")?;
    let expire = if version >= 3 { r.u32("expire")? } else { 0 };
    let client_msg_no = r.string("clientMsgNo")?;
    let stream = if has_stream(setting, version) {
        Some(RecvStream {
            flag: r.u8("streamFlag")?,
            no: r.string("streamNo")?,
            id: r.u64("streamId")?,
        })
    } else {
        None
    };
    let message_id = r.i64("messageId")?;
    let message_seq = r.u32("messageSeq")?;
    let timestamp = r.i32("timestamp")?;
    let topic = if setting.has(Setting::TOPIC) {
        Some(r.string("topic")?)
    } else {
        None
    };
    Ok(Recv {
        flags,
        setting,
        msg_key,
        from_uid,
        channel_id,
        channel_type,
        expire,
        client_msg_no,
        stream,
        message_id,
        message_seq,
        timestamp,
        topic,
        payload: r.rest().to_vec(),
    })
}
