//! A connection's cipher (reference `wukongim-binary.md` section 5): X25519 between the client's key
//! (CONNECT) and the server's (CONNACK); AES-128-CBC with PKCS#7 padding whose key is the first 16
//! characters of the lowercase hex MD5 of base64(shared secret) and whose IV is the CONNACK's salt, both
//! as ASCII bytes; payloads travel as standard base64 of the ciphertext; a msgKey is the hex MD5 of
//! base64(AES(verity string)). The randomness (secret, salt) comes from the caller, so that this crate
//! does no I/O and the worked example can be checked byte for byte.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::Aes128;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use md5::{Digest, Md5};
use x25519_dalek::{PublicKey, StaticSecret};

use crate::CipherError;

/// The cipher of one connection, with its scratch buffers (so that sealing a payload and computing
/// its msgKey allocate nothing once the buffers have grown).
pub struct Cipher {
    /// The AES key: 16 ASCII hex digits.
    key: [u8; 16],
    /// The AES key's schedule, computed once.
    aes: Aes128,
    /// The IV of every packet (CBC with a fixed IV, as WuKongIM does).
    iv: [u8; 16],
    /// Ciphertext before base64.
    scratch: Vec<u8>,
    /// The verity string of a msgKey.
    verity: Vec<u8>,
    /// base64 of the encrypted verity string.
    sealed_verity: Vec<u8>,
}

/// Standard base64 of the X25519 public key of `secret` (a CONNECT's `clientKey`, a CONNACK's `serverKey`).
pub fn public_key(secret: [u8; 32]) -> String {
    STANDARD.encode(PublicKey::from(&StaticSecret::from(secret)).as_bytes())
}

impl Cipher {
    /// The server's side: the CONNECT's `clientKey` (base64; its first 32 bytes are the key), this
    /// connection's fresh `secret` and `salt` (16 ASCII characters).
    pub fn server(client_key: &str, secret: [u8; 32], salt: &str) -> Result<Cipher, CipherError> {
        let peer = STANDARD
            .decode(client_key)
            .map_err(|_| CipherError::KeyNotBase64)?;
        Cipher::agree(secret, &peer, salt)
    }

    /// The client's side: its `secret` and the CONNACK's `serverKey` and `salt` (its first 16 characters).
    pub fn client(secret: [u8; 32], server_key: &str, salt: &str) -> Result<Cipher, CipherError> {
        let peer = STANDARD
            .decode(server_key)
            .map_err(|_| CipherError::KeyNotBase64)?;
        Cipher::agree(secret, &peer, salt)
    }

    fn agree(secret: [u8; 32], peer: &[u8], salt: &str) -> Result<Cipher, CipherError> {
        let peer: [u8; 32] = peer
            .get(..32)
            .and_then(|k| k.try_into().ok())
            .ok_or(CipherError::KeyTooShort)?;
        let shared = StaticSecret::from(secret).diffie_hellman(&PublicKey::from(peer));
        let digest = Md5::digest(STANDARD.encode(shared.as_bytes()).as_bytes());
        let mut key = [0u8; 16];
        key.copy_from_slice(&hex(&digest).as_bytes()[..16]);
        let iv: [u8; 16] = salt
            .as_bytes()
            .get(..16)
            .and_then(|s| s.try_into().ok())
            .ok_or(CipherError::SaltTooShort)?;
        Ok(Cipher {
            key,
            aes: Aes128::new(&key.into()),
            iv,
            scratch: Vec::new(),
            verity: Vec::new(),
            sealed_verity: Vec::new(),
        })
    }

    /// The AES key (16 ASCII hex digits) and IV, as agreed (to check against the reference's example).
    pub fn key_and_iv(&self) -> ([u8; 16], [u8; 16]) {
        (self.key, self.iv)
    }

    /// Appends base64(AES(`plain`)) to `out`.
    pub fn seal(&mut self, plain: &[u8], out: &mut Vec<u8>) {
        encrypt(&self.aes, &self.iv, plain, &mut self.scratch);
        append_base64(&self.scratch, out);
    }

    /// The plaintext of a sealed payload.
    pub fn open(&self, wire: &[u8]) -> Result<Vec<u8>, CipherError> {
        let mut data = STANDARD
            .decode(wire)
            .map_err(|_| CipherError::PayloadNotBase64)?;
        let dec = cbc::Decryptor::<Aes128>::inner_iv_init(self.aes.clone(), &self.iv.into());
        let len = dec
            .decrypt_padded_mut::<Pkcs7>(&mut data)
            .map_err(|_| CipherError::BadPadding)?
            .len();
        data.truncate(len);
        Ok(data)
    }

    /// A SEND's msgKey: over `{clientSeq}{clientMsgNo}{channelId}{channelType}{wire payload}`.
    pub fn send_msg_key(
        &mut self,
        client_seq: u32,
        client_msg_no: &str,
        channel_id: &str,
        channel_type: u8,
        wire_payload: &[u8],
    ) -> String {
        use std::io::Write;
        self.verity.clear();
        let _ = write!(
            self.verity,
            "{client_seq}{client_msg_no}{channel_id}{channel_type}"
        );
        self.verity.extend_from_slice(wire_payload);
        self.msg_key()
    }

    /// A RECV's msgKey: over `{messageId}{messageSeq}{clientMsgNo}{timestamp}{fromUid}{channelId}
    /// {channelType}{wire payload}`, the channel as the receiver sees it.
    #[allow(clippy::too_many_arguments)]
    pub fn recv_msg_key(
        &mut self,
        message_id: i64,
        message_seq: u32,
        client_msg_no: &str,
        timestamp: i32,
        from_uid: &str,
        channel_id: &str,
        channel_type: u8,
        wire_payload: &[u8],
    ) -> String {
        use std::io::Write;
        self.verity.clear();
        let _ = write!(
            self.verity,
            "{message_id}{message_seq}{client_msg_no}{timestamp}{from_uid}{channel_id}{channel_type}"
        );
        self.verity.extend_from_slice(wire_payload);
        self.msg_key()
    }

    /// hex(MD5(base64(AES(verity)))).
    fn msg_key(&mut self) -> String {
        encrypt(&self.aes, &self.iv, &self.verity, &mut self.scratch);
        self.sealed_verity.clear();
        append_base64(&self.scratch, &mut self.sealed_verity);
        hex(&Md5::digest(&self.sealed_verity))
    }
}

/// AES-128-CBC with PKCS#7 of `plain` into `out` (replacing what it held).
fn encrypt(aes: &Aes128, iv: &[u8; 16], plain: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.resize(plain.len() / 16 * 16 + 16, 0);
    let enc = cbc::Encryptor::<Aes128>::inner_iv_init(aes.clone(), iv.into());
    let len = enc
        .encrypt_padded_b2b_mut::<Pkcs7>(plain, out)
        .map(|c| c.len())
        .unwrap_or(0);
    out.truncate(len);
}

fn append_base64(data: &[u8], out: &mut Vec<u8>) {
    let at = out.len();
    out.resize(at + base64::encoded_len(data.len(), true).unwrap_or(0), 0);
    let written = STANDARD.encode_slice(data, &mut out[at..]).unwrap_or(0);
    out.truncate(at + written);
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}
