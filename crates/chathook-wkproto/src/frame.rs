//! Framing: a packet on the wire is a fixed header byte (`type << 4 | flags`), its body's length as a
//! varint, then the body; PING and PONG are the header byte alone. [`decode`] takes packets off the
//! front of a byte stream (a packet may arrive in pieces), [`encode`] appends one to a buffer the
//! caller reuses.

use crate::packet::{kind, Packet};
use crate::wire::{varint, varint_bytes, MAX_REMAINING_LENGTH};
use crate::{DecodeError, EncodeError};

/// Takes the first packet off `buf` for a connection of `version`: `Ok(None)` while it is incomplete,
/// else the packet and how many bytes it took. A body longer than `max_body` bytes is refused as
/// soon as its length is read, before anything is buffered for it.
pub fn decode(
    buf: &[u8],
    version: u8,
    max_body: usize,
) -> Result<Option<(Packet, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (packet_kind, bits) = (first >> 4, first & 0x0f);
    match packet_kind {
        kind::PING => return Ok(Some((Packet::Ping, 1))),
        kind::PONG => return Ok(Some((Packet::Pong, 1))),
        kind::CONNECT..=kind::SUBACK => {}
        other => return Err(DecodeError::UnknownType(other)),
    }
    let Some((len, len_bytes)) = varint(&buf[1..])? else {
        return Ok(None);
    };
    if len > max_body {
        return Err(DecodeError::TooLarge { len, max: max_body });
    }
    let start = 1 + len_bytes;
    let Some(body) = buf.get(start..start + len) else {
        return Ok(None);
    };
    let packet = Packet::decode_body(packet_kind, bits, version, body)?;
    Ok(Some((packet, start + len)))
}

/// Appends `packet` as a connection of `version` reads it.
pub fn encode(packet: &Packet, version: u8, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let header = packet.kind() << 4 | packet.flag_bits();
    out.push(header);
    if matches!(packet, Packet::Ping | Packet::Pong) {
        return Ok(());
    }
    // The body goes after room for the longest length; then the length is written and the body
    // moved up to meet it (one copy within the buffer, no second allocation).
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let body_at = out.len();
    if let Err(e) = packet.encode_body(version, out) {
        out.truncate(len_at - 1);
        return Err(e);
    }
    let len = out.len() - body_at;
    if len > MAX_REMAINING_LENGTH {
        out.truncate(len_at - 1);
        return Err(EncodeError::TooLarge { len });
    }
    let (bytes, n) = varint_bytes(len);
    out[len_at..len_at + n].copy_from_slice(&bytes[..n]);
    out.copy_within(body_at.., len_at + n);
    out.truncate(len_at + n + len);
    Ok(())
}
