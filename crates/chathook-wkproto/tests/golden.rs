//! The reference's worked example (`wukongim-binary.md` section 5, checked there against SDK 1.0.4's own
//! code): keys, cipher, msgKeys and every packet, byte for byte, both ways.

use chathook_wkproto::*;

const CLIENT_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const SALT: &str = "abcdefghij123456";
const PLAIN: &str = r#"{"content":"hi","type":1}"#;
const WIRE_PAYLOAD: &str = "GEFkdb0rIFxKuMy7RTR2opBohhBoFc9Azv4YV+9Srbo=";
const SEND_KEY: &str = "a06380a47e28a91a4690ecd03b01852a";
const RECV_KEY: &str = "a5798f7760b353994e688c10e2333949";
const CLIENT_KEY: &str = "hlF7wMOf6Ha3ZGy1407gPa9xzLrWdFDBapcK2MvAPn4=";
const SERVER_KEY: &str = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=";
const MESSAGE_ID: i64 = 123_456_789_012_345;

fn server_secret() -> [u8; 32] {
    std::array::from_fn(|i| i as u8 + 1)
}

/// Hex with spaces and `"text"` pieces, as the reference writes frames.
fn bytes(spec: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, chunk) in spec.split('"').enumerate() {
        if i % 2 == 1 {
            out.extend_from_slice(chunk.as_bytes());
            continue;
        }
        let hex: String = chunk.chars().filter(char::is_ascii_hexdigit).collect();
        for at in (0..hex.len()).step_by(2) {
            out.push(u8::from_str_radix(&hex[at..at + 2], 16).unwrap());
        }
    }
    out
}

fn round_trip(packet: Packet, version: u8, wire: &[u8]) {
    let mut out = vec![0xEE]; // encoding appends
    encode(&packet, version, &mut out).unwrap();
    assert_eq!(&out[1..], wire, "encoded {packet:?}");
    let (decoded, used) = decode(wire, version, 1 << 20).unwrap().unwrap();
    assert_eq!(used, wire.len());
    assert_eq!(decoded, packet);
}

#[test]
fn both_sides_derive_the_reference_keys() {
    assert_eq!(public_key(*CLIENT_SECRET), CLIENT_KEY);
    assert_eq!(public_key(server_secret()), SERVER_KEY);
    let server = Cipher::server(CLIENT_KEY, server_secret(), SALT).unwrap();
    let client = Cipher::client(*CLIENT_SECRET, SERVER_KEY, SALT).unwrap();
    assert_eq!(
        server.key_and_iv(),
        (*b"4989ad64ccaf943d", *b"abcdefghij123456")
    );
    assert_eq!(client.key_and_iv(), server.key_and_iv());
}

#[test]
fn a_payload_is_sealed_as_the_sdk_seals_it_and_opened_again() {
    let mut c = Cipher::server(CLIENT_KEY, server_secret(), SALT).unwrap();
    let mut wire = b"kept".to_vec();
    c.seal(PLAIN.as_bytes(), &mut wire);
    assert_eq!(&wire[4..], WIRE_PAYLOAD.as_bytes());
    assert_eq!(c.open(WIRE_PAYLOAD.as_bytes()).unwrap(), PLAIN.as_bytes());
    assert_eq!(c.open(b"not base64!"), Err(CipherError::PayloadNotBase64));
    assert_eq!(
        c.open(b"AAAAAAAAAAAAAAAAAAAAAA=="),
        Err(CipherError::BadPadding)
    );
}

#[test]
fn send_and_recv_msg_keys_match_the_reference() {
    let mut c = Cipher::client(*CLIENT_SECRET, SERVER_KEY, SALT).unwrap();
    assert_eq!(
        c.send_msg_key(1, "c0ffee", "ben", 1, WIRE_PAYLOAD.as_bytes()),
        SEND_KEY
    );
    assert_eq!(
        c.recv_msg_key(
            MESSAGE_ID,
            7,
            "c0ffee",
            1_700_000_000,
            "ann",
            "ann",
            1,
            WIRE_PAYLOAD.as_bytes()
        ),
        RECV_KEY
    );
}

#[test]
fn connect_version_2() {
    let device = "d41d8cd98f00b204e9800998ecf8427eW";
    let wire = bytes(&format!(
        "10 68 | 02 | 01 | 0021 \"{device}\" | 0003 \"ann\" | 0006 \"tk-ann\" | 0000018bcfe56800 | 002c \"{CLIENT_KEY}\""
    ));
    let packet = Packet::Connect(Connect {
        version: 2,
        device_flag: 1,
        device_id: device.into(),
        uid: "ann".into(),
        token: "tk-ann".into(),
        client_timestamp: 1_700_000_000_000,
        client_key: CLIENT_KEY.into(),
    });
    round_trip(packet, 2, &wire);
}

#[test]
fn connack_to_a_version_2_client_has_no_server_version_and_no_node_id() {
    let wire = bytes(&format!(
        "20 49 | 000000000000002a | 01 | 002c \"{SERVER_KEY}\" | 0010 \"{SALT}\""
    ));
    let packet = Connack::for_version(2, 42, 1, SERVER_KEY.into(), SALT.into(), 9);
    assert_eq!((packet.server_version, packet.node_id), (None, None));
    round_trip(Packet::Connack(packet), 2, &wire);
}

#[test]
fn connack_from_version_4_carries_the_version_byte_and_the_node_id() {
    for version in [4u8, 5] {
        let wire = bytes(&format!(
            "21 52 | {version:02x} | 000000000000002a | 01 | 002c \"{SERVER_KEY}\" | 0010 \"{SALT}\" | 0000000000000009"
        ));
        let packet = Connack::for_version(version, 42, 1, SERVER_KEY.into(), SALT.into(), 9);
        round_trip(Packet::Connack(packet), version, &wire);
    }
    // version 3: neither (WuKongIM sends the byte only above 3)
    let packet = Connack::for_version(3, 42, 1, SERVER_KEY.into(), SALT.into(), 9);
    assert_eq!((packet.server_version, packet.node_id), (None, None));
}

fn send(expire: u32) -> Packet {
    Packet::Send(Send {
        flags: Flags {
            red_dot: true,
            ..Flags::default()
        },
        setting: Setting(0),
        client_seq: 1,
        client_msg_no: "c0ffee".into(),
        stream_no: None,
        channel_id: "ben".into(),
        channel_type: 1,
        expire,
        msg_key: SEND_KEY.into(),
        topic: None,
        payload: WIRE_PAYLOAD.as_bytes().to_vec(),
    })
}

#[test]
fn send_version_2_as_the_sdk_emits_it_and_version_3_with_expire() {
    let wire = bytes(&format!(
        "32 61 | 00 | 00000001 | 0006 \"c0ffee\" | 0003 \"ben\" | 01 | 0020 \"{SEND_KEY}\" | \"{WIRE_PAYLOAD}\""
    ));
    round_trip(send(0), 2, &wire);
    let wire = bytes(&format!(
        "32 65 | 00 | 00000001 | 0006 \"c0ffee\" | 0003 \"ben\" | 01 | 00000e10 | 0020 \"{SEND_KEY}\" | \"{WIRE_PAYLOAD}\""
    ));
    round_trip(send(3600), 3, &wire);
}

#[test]
fn sendack_copies_the_send_flags() {
    let wire = bytes("42 11 | 00007048860ddf79 | 00000001 | 00000007 | 01");
    let packet = Packet::Sendack(Sendack {
        flags: Flags {
            red_dot: true,
            ..Flags::default()
        },
        message_id: MESSAGE_ID,
        client_seq: 1,
        message_seq: 7,
        reason: 1,
    });
    round_trip(packet, 2, &wire);
}

#[test]
fn recv_to_ben_as_the_sdk_accepts_it() {
    let mut server = Cipher::server(CLIENT_KEY, server_secret(), SALT).unwrap();
    let mut payload = Vec::new();
    server.seal(PLAIN.as_bytes(), &mut payload);
    let msg_key = server.recv_msg_key(
        MESSAGE_ID,
        7,
        "c0ffee",
        1_700_000_000,
        "ann",
        "ann",
        1,
        &payload,
    );
    let wire = bytes(&format!(
        "52 72 | 00 | 0020 \"{RECV_KEY}\" | 0003 \"ann\" | 0003 \"ann\" | 01 | 0006 \"c0ffee\" | 00007048860ddf79 | 00000007 | 6553f100 | \"{WIRE_PAYLOAD}\""
    ));
    let packet = Packet::Recv(Recv {
        flags: Flags {
            red_dot: true,
            ..Flags::default()
        },
        setting: Setting(0),
        msg_key,
        from_uid: "ann".into(),
        channel_id: "ann".into(),
        channel_type: 1,
        expire: 0,
        client_msg_no: "c0ffee".into(),
        stream: None,
        message_id: MESSAGE_ID,
        message_seq: 7,
        timestamp: 1_700_000_000,
        topic: None,
        payload,
    });
    round_trip(packet, 2, &wire);
}

#[test]
fn recvack_and_ping_and_pong() {
    let wire = bytes("62 0c | 00007048860ddf79 | 00000007");
    let packet = Packet::Recvack(Recvack {
        flags: Flags {
            red_dot: true,
            ..Flags::default()
        },
        message_id: MESSAGE_ID,
        message_seq: 7,
    });
    round_trip(packet, 2, &wire);
    round_trip(Packet::Ping, 2, &[0x70]);
    round_trip(Packet::Pong, 2, &[0x80]);
}

#[test]
fn disconnect_carries_its_reason() {
    let wire = bytes("90 18 | 0c | 0015 \"login in other device\"");
    let packet = Packet::Disconnect(Disconnect {
        reason: 12,
        reason_text: "login in other device".into(),
    });
    round_trip(packet, 2, &wire);
}
