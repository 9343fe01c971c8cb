//! The primitives of a packet's body, all big-endian: integers, strings (a u16 byte length, then UTF-8
//! bytes), and the payload (every byte left). The reader never reads past the body it was given and
//! names the field it could not read; the writer refuses a string longer than a u16 can count.

use crate::{DecodeError, EncodeError};

/// Reads a packet's body front to back.
pub(crate) struct Reader<'a> {
    /// The packet's body (the bytes after the fixed header and the remaining length).
    buf: &'a [u8],
    /// How many bytes of `buf` were read; never more than `buf.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or(DecodeError::Truncated { field })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(field)?[0])
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = u16::from_be_bytes(self.array(field)?) as usize;
        let bytes = self.take(len, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8 { field })
    }

    /// Every byte not read yet (a payload has no length of its own).
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = &self.buf[self.pos..];
        self.pos = self.buf.len();
        rest
    }
}

pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_i32(out: &mut Vec<u8>, v: i32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str, field: &'static str) -> Result<(), EncodeError> {
    let len = u16::try_from(s.len()).map_err(|_| EncodeError::StringTooLong {
        field,
        len: s.len(),
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// The largest remaining length four varint bytes can say (WuKongIM's decoders stop at four).
pub const MAX_REMAINING_LENGTH: usize = (1 << 28) - 1;

/// `len` (at most [`MAX_REMAINING_LENGTH`]) as an MQTT-style varint: seven bits a byte, least
/// significant first, bit 7 = more; the bytes and how many of them count.
pub(crate) fn varint_bytes(mut len: usize) -> ([u8; 4], usize) {
    let mut out = [0u8; 4];
    for (i, slot) in out.iter_mut().enumerate() {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 || i == 3 {
            *slot = byte;
            return (out, i + 1);
        }
        *slot = byte | 0x80;
    }
    (out, 4)
}

#[cfg(test)]
fn put_varint(out: &mut Vec<u8>, len: usize) {
    let (bytes, n) = varint_bytes(len);
    out.extend_from_slice(&bytes[..n]);
}

/// Reads a varint at the start of `buf`: `Ok(None)` while it is incomplete, else the value and the
/// bytes it took. More than four bytes is an error.
pub(crate) fn varint(buf: &[u8]) -> Result<Option<(usize, usize)>, DecodeError> {
    let mut value = 0usize;
    for (i, byte) in buf.iter().take(4).enumerate() {
        value |= ((byte & 0x7f) as usize) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::LengthTooLong)
    } else {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_take_one_byte_up_to_127_and_four_at_most() {
        for (len, bytes) in [
            (0usize, 1usize),
            (127, 1),
            (128, 2),
            (16_383, 2),
            (16_384, 3),
            (2_097_151, 3),
            (2_097_152, 4),
            (MAX_REMAINING_LENGTH, 4),
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, len);
            assert_eq!(out.len(), bytes, "{len}");
            assert_eq!(varint(&out).unwrap(), Some((len, bytes)));
            assert_eq!(varint(&out[..bytes - 1]).unwrap(), None, "{len} incomplete");
        }
        assert_eq!(
            varint(&[0x80, 0x80, 0x80, 0x80, 0x01]),
            Err(DecodeError::LengthTooLong)
        );
    }

    #[test]
    fn a_string_is_its_u16_length_then_its_bytes_and_the_reader_names_a_short_field() {
        let mut out = Vec::new();
        put_str(&mut out, "ann", "uid").unwrap();
        assert_eq!(out, [0, 3, b'a', b'n', b'n']);
        assert_eq!(Reader::new(&out).string("uid").unwrap(), "ann");
        assert_eq!(
            Reader::new(&out[..4]).string("uid"),
            Err(DecodeError::Truncated { field: "uid" })
        );
        assert_eq!(
            put_str(&mut out, &"x".repeat(65_536), "payload"),
            Err(EncodeError::StringTooLong {
                field: "payload",
                len: 65_536
            })
        );
    }
}
