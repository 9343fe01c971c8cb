//! Garbage in: random and malformed JSON on every REST route and random frames on the gateway. No
//! panic, every reply a clear error, the server still serving afterwards. Bounded case counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Map, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::util::*;

const CASES: u32 = 48;

/// Field names the routes read, so random objects reach past the first check.
const FIELDS: [&str; 24] = [
    "uid",
    "token",
    "device_flag",
    "device_level",
    "channel_id",
    "channel_type",
    "subscribers",
    "reset",
    "ban",
    "disband",
    "live",
    "uids",
    "from_uid",
    "payload",
    "header",
    "client_msg_no",
    "expire",
    "login_uid",
    "start_message_seq",
    "end_message_seq",
    "limit",
    "pull_mode",
    "name",
    "custom",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        (0u64..3).prop_map(|n| json!(n)),
        ".{0,12}".prop_map(Value::String),
        "[a-z]{1,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(FIELDS.to_vec()), inner), 0..8).prop_map(
                |kv| {
                    Value::Object(
                        kv.into_iter()
                            .map(|(k, v)| (k.to_string(), v))
                            .collect::<Map<_, _>>(),
                    )
                }
            ),
        ]
    })
}

/// A raw body: random JSON, broken JSON, deep JSON or plain bytes.
fn raw_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => json_value().prop_map(|v| { let mut t = v.to_string(); t.pop(); t.into_bytes() }),
        1 => (1usize..400).prop_map(|d| format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

/// A runner with a fixed seed, so CI runs the same cases every time (set PROPTEST_RANDOM=1 for new ones).
fn runner() -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    let config = RunnerConfig {
        cases,
        ..RunnerConfig::default()
    };
    if std::env::var_os("PROPTEST_RANDOM").is_some() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}

fn panics() -> Arc<AtomicUsize> {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current()
            .name()
            .is_some_and(|n| n.contains("tokio") || n.contains("chathook"))
        {
            seen.fetch_add(1, Ordering::SeqCst);
        }
        previous(info);
    }));
    count
}

#[test]
fn random_bodies_on_every_rest_route_get_clear_errors() {
    let panicked = panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(TestServer::start());
    let http = reqwest::Client::new();
    // Endpoint creation and change are left out: a random URL could make the server resolve names.
    let routes: Vec<(&str, String)> = chathook_im::api::ROUTES
        .iter()
        .chain(chathook_webhook::api::ROUTES.iter())
        .chain(chathook::ROUTES.iter())
        .filter(|(m, p)| !(*p == "/v1/webhooks/endpoints" && *m == "POST") && *m != "PATCH")
        .map(|(m, p)| {
            (
                *m,
                p.replace("{uid}", "alice")
                    .replace("{id}", "ep_x")
                    .replace("{delivery_id}", "d_x")
                    .replace("{attempt_id}", "1"),
            )
        })
        .collect();
    let mut runner = runner();
    runner
        .run(
            &(prop::sample::select(routes), raw_body()),
            |((method, path), body)| {
                let (status, reply) = rt.block_on(async {
                    let resp = http
                        .request(method.parse().unwrap(), format!("{}{}", s.api, path))
                        .header("token", ADMIN)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    (status, resp.text().await.unwrap_or_default())
                });
                prop_assert!(status < 500, "{method} {path} answered {status}: {reply}");
                if status >= 400 {
                    let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
                    let code = v["code"].as_str().or(v["error"]["code"].as_str());
                    prop_assert!(
                        code.is_some_and(|c| !c.is_empty()),
                        "{method} {path}: no error code in {reply}"
                    );
                }
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(async {
        assert_eq!(s.call("GET", "/health", None, None).await.0, 200);
        let (st, _) = s.rest_send("alice", "bob", 1, "still serving").await;
        assert_eq!(st, 200);
    });
    assert_eq!(panicked.load(Ordering::SeqCst), 0, "a server task panicked");
}

/// After the garbage: no server task panicked, and `uid` still logs in and gets a pong.
fn still_serving(rt: &tokio::runtime::Runtime, s: &TestServer, uid: &str, panicked: &AtomicUsize) {
    rt.block_on(async {
        let mut c = Client::open(&s.ws).await;
        let token = format!("{uid}-token");
        assert_eq!(c.connect(uid, &token, 0).await["result"]["reasonCode"], 1);
        assert!(is_pong(&c.request("ping", json!({})).await));
    });
    assert_eq!(panicked.load(Ordering::SeqCst), 0, "a server task panicked");
}

fn ws_frame() -> impl Strategy<Value = Message> {
    let method = prop::sample::select(vec![
        "connect",
        "send",
        "recvack",
        "ping",
        "disconnect",
        "subscribe",
        "recv",
        "",
    ]);
    prop_oneof![
        3 => (method, json_value(), prop::option::of(json_value())).prop_map(|(m, params, id)| {
            let mut frame = json!({"method": m, "params": params});
            if let Some(id) = id { frame["id"] = id; }
            Message::Text(frame.to_string().into())
        }),
        2 => (prop::sample::select(vec!["bob", "", "g"]), any::<u8>(), json_value()).prop_map(|(ch, ty, payload)| {
            Message::Text(json!({"method": "send", "id": "1", "params": {"channelId": ch, "channelType": ty,
                "clientMsgNo": "x", "payload": payload}}).to_string().into())
        }),
        1 => ".{0,40}".prop_map(|t| Message::Text(t.into())),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(|b| Message::Binary(b.into())),
        1 => (1usize..300).prop_map(|d| Message::Text(format!("{}{}", "{\"a\":".repeat(d), "}".repeat(d)).into())),
    ]
}

#[test]
fn random_frames_never_crash_the_gateway() {
    let panicked = panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(TestServer::start_with(|c| c.limits.max_frame_bytes = 4096));
    rt.block_on(s.token("fuzz", "fuzz-token", 0, 0));
    let mut runner = runner();
    runner
        .run(&prop::collection::vec(ws_frame(), 1..5), |frames| {
            rt.block_on(async {
                let mut c = Client::open(&s.ws).await;
                let r = c.connect("fuzz", "fuzz-token", 0).await;
                assert_eq!(r["result"]["reasonCode"], 1);
                for f in frames {
                    if c.ws.send(f).await.is_err() {
                        break;
                    }
                }
                // whatever came back is JSON-RPC: a response, a notification or a close with a reason
                while let Some(frame) = c.next_frame(Duration::from_millis(100)).await {
                    assert!(
                        frame.get("id").is_some() || frame.get("method").is_some(),
                        "{frame}"
                    );
                    if let Some(code) = frame["result"]["reasonCode"].as_u64() {
                        assert!(code >= 1);
                    }
                }
            });
            Ok(())
        })
        .unwrap();
    still_serving(&rt, &s, "fuzz", &panicked);
}

/// A frame the client library refuses to send, written as raw bytes before or after `connect`: a text
/// frame whose payload is not UTF-8, or a header no client may send (reserved bits, a reserved opcode,
/// no mask).
#[derive(Debug, Clone)]
enum RawFrame {
    InvalidUtf8Text(Vec<u8>),
    ReservedBits(u8),
    ReservedOpcode(u8),
    Unmasked,
}

impl RawFrame {
    fn bytes(&self) -> Vec<u8> {
        let (first, payload, masked) = match self {
            RawFrame::InvalidUtf8Text(p) => (0x81, p.clone(), true),
            RawFrame::ReservedBits(rsv) => (0x81 | (rsv << 4), b"{}".to_vec(), true),
            RawFrame::ReservedOpcode(op) => (0x80 | op, b"{}".to_vec(), true),
            RawFrame::Unmasked => (0x81, br#"{"method":"ping","id":1}"#.to_vec(), false),
        };
        let mut out = vec![first, payload.len() as u8 | if masked { 0x80 } else { 0 }];
        if masked {
            let key = [0x12, 0x34, 0x56, 0x78];
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        } else {
            out.extend_from_slice(&payload);
        }
        out
    }

    /// The close code the server must answer with.
    fn close_code(&self) -> u16 {
        match self {
            RawFrame::InvalidUtf8Text(_) => 1007,
            _ => 1002,
        }
    }
}

fn raw_frame() -> impl Strategy<Value = RawFrame> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 1..100)
            .prop_filter("not UTF-8", |b| std::str::from_utf8(b).is_err())
            .prop_map(RawFrame::InvalidUtf8Text),
        1 => (1u8..8).prop_map(RawFrame::ReservedBits),
        1 => prop::sample::select(vec![3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]).prop_map(RawFrame::ReservedOpcode),
        1 => Just(RawFrame::Unmasked),
    ]
}

#[test]
fn malformed_raw_frames_get_a_close_frame_with_a_reason() {
    use tokio::io::AsyncWriteExt;
    let panicked = panics();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(TestServer::start());
    rt.block_on(s.token("raw", "raw-token", 0, 0));
    let mut runner = runner();
    runner
        .run(&(raw_frame(), any::<bool>()), |(frame, logged_in)| {
            rt.block_on(async {
                let mut c = Client::open(&s.ws).await;
                if logged_in {
                    let r = c.connect("raw", "raw-token", 0).await;
                    assert_eq!(r["result"]["reasonCode"], 1);
                }
                let tcp = c.ws.get_mut();
                tcp.write_all(&frame.bytes()).await.unwrap();
                tcp.flush().await.unwrap();
                let closed = c.closed(LONG).await;
                assert_eq!(
                    closed.code.map(u16::from),
                    Some(frame.close_code()),
                    "{frame:?}: {closed:?}"
                );
                assert!(
                    !closed.reason.is_empty(),
                    "{frame:?}: a close needs a reason"
                );
            });
            Ok(())
        })
        .unwrap();
    still_serving(&rt, &s, "raw", &panicked);
}
