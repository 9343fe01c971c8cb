//! The decoder against hostile bytes: random and truncated input never panics, a frame is never taken
//! before all of it is there, nothing past the frame limit is read, and any packet written reads back.

use chathook_wkproto::*;
use proptest::prelude::*;

const MAX: usize = 1024;

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9é]{0,12}"
}

fn packet() -> impl Strategy<Value = Packet> {
    let flags = (0u8..16).prop_map(Flags::from_bits);
    let setting = prop_oneof![
        Just(0u8),
        Just(Setting::TOPIC),
        Just(Setting::STREAM),
        Just(0x80)
    ];
    prop_oneof![
        (text(), text(), any::<i64>(), any::<u8>()).prop_map(|(uid, token, ts, flag)| {
            Packet::Connect(Connect {
                version: 2,
                device_flag: flag,
                device_id: "d".into(),
                uid,
                token,
                client_timestamp: ts,
                client_key: "k".into(),
            })
        }),
        (
            flags.clone(),
            setting.clone(),
            any::<u32>(),
            text(),
            text(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(flags, setting, seq, no, channel, ct, payload)| {
                let setting = Setting(setting);
                Packet::Send(Send {
                    flags,
                    setting,
                    client_seq: seq,
                    client_msg_no: no,
                    stream_no: setting.has(Setting::STREAM).then(|| "s".to_string()),
                    channel_id: channel,
                    channel_type: ct,
                    expire: 0,
                    msg_key: "m".into(),
                    topic: setting.has(Setting::TOPIC).then(|| "t".to_string()),
                    payload,
                })
            }),
        (
            flags.clone(),
            any::<i64>(),
            any::<u32>(),
            any::<i32>(),
            text(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(flags, id, seq, ts, from, payload)| {
                Packet::Recv(Recv {
                    flags,
                    setting: Setting(0),
                    msg_key: "m".into(),
                    from_uid: from.clone(),
                    channel_id: from,
                    channel_type: 2,
                    expire: 0,
                    client_msg_no: "n".into(),
                    stream: None,
                    message_id: id,
                    message_seq: seq,
                    timestamp: ts,
                    topic: None,
                    payload,
                })
            }),
        (flags, any::<i64>(), any::<u32>()).prop_map(|(flags, id, seq)| Packet::Recvack(Recvack {
            flags,
            message_id: id,
            message_seq: seq
        })),
        (any::<u8>(), text()).prop_map(|(reason, reason_text)| Packet::Disconnect(Disconnect {
            reason,
            reason_text
        })),
        Just(Packet::Ping),
        Just(Packet::Pong),
    ]
}

/// What a connection of `version` can carry of `p`: stream fields only from version 2 to 4.
fn as_version(mut p: Packet, version: u8) -> Packet {
    if let Packet::Send(s) = &mut p {
        if version >= 5 {
            s.stream_no = None;
        }
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_and_never_read_past_a_frame(bytes in proptest::collection::vec(any::<u8>(), 0..1500), version in 0u8..8) {
        if let Ok(Some((_, used))) = decode(&bytes, version, MAX) {
            prop_assert!(used <= bytes.len() && used <= 1 + 4 + MAX);
        }
    }

    #[test]
    fn every_packet_reads_back_and_no_prefix_of_it_is_taken(p in packet(), version in 2u8..=5) {
        let mut wire = Vec::new();
        encode(&p, version, &mut wire).unwrap();
        let (back, used) = decode(&wire, version, MAX).unwrap().unwrap();
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(back, as_version(p, version));
        for cut in 1..wire.len() {
            prop_assert_eq!(decode(&wire[..cut], version, MAX), Ok(None), "a prefix of {} bytes", cut);
        }
    }
}

#[test]
fn a_length_over_the_limit_is_refused_before_its_body_arrives() {
    // SEND saying 2,000 bytes follow, with none of them here
    assert_eq!(
        decode(&[0x30, 0xd0, 0x0f], 2, MAX),
        Err(DecodeError::TooLarge {
            len: 2000,
            max: MAX
        })
    );
    assert_eq!(
        decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], 2, usize::MAX),
        Err(DecodeError::LengthTooLong)
    );
}

#[test]
fn a_body_cut_inside_a_field_names_the_field_and_unknown_types_are_refused() {
    // a RECVACK whose length says 3: the message id does not fit
    assert_eq!(
        decode(&[0x60, 0x03, 0, 0, 0], 2, MAX),
        Err(DecodeError::Truncated { field: "messageId" })
    );
    assert_eq!(
        decode(&[0xc0, 0x00], 2, MAX),
        Err(DecodeError::UnknownType(12))
    );
    assert_eq!(decode(&[0x00], 2, MAX), Err(DecodeError::UnknownType(0)));
    // invalid UTF-8 in a string
    assert_eq!(
        decode(&[0x90, 0x04, 0x01, 0x00, 0x01, 0xff], 2, MAX),
        Err(DecodeError::NotUtf8 { field: "reason" })
    );
}

#[test]
fn a_string_too_long_for_its_length_field_is_not_written() {
    let p = Packet::Disconnect(Disconnect {
        reason: 1,
        reason_text: "x".repeat(70_000),
    });
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        encode(&p, 2, &mut out),
        Err(EncodeError::StringTooLong {
            field: "reason",
            ..
        })
    ));
    assert_eq!(out, [1, 2, 3], "nothing half-written");
}
