//! The listeners' limits against hostile clients: header and idle timeouts, the per-address cap, the
//! unauthenticated cap (the oldest unauthenticated connection makes room), and, on the real binary, a
//! descriptor-limited server that keeps answering while an attacker holds sockets, and slow-loris
//! clients closed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::util::*;

/// Where the attacker's connections come from, so that the tests' own clients (127.0.0.1) are apart.
const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn addr(url: &str) -> SocketAddr {
    url.rsplit("//")
        .next()
        .and_then(|a| a.parse().ok())
        .expect("an address")
}

/// A raw TCP connection to `url`'s address from the loopback address `from`.
async fn raw(url: &str, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr(url)).await.expect("tcp connect")
}

/// Whether the server closes `stream` within `within` (an end of stream or a reset; bytes it sends
/// first are read and dropped).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends a GET on a kept-alive connection and returns the status line's code (0: no answer).
async fn get(stream: &mut TcpStream, path: &str, key: Option<&str>) -> u16 {
    let key = key.map(|k| format!("token: {k}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nhost: test\r\n{key}\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    read_answer(stream).await
}

/// Reads one HTTP answer (head and `content-length` body) and returns its status (0: none).
async fn read_answer(stream: &mut TcpStream) -> u16 {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let head_end = got.windows(4).position(|w| w == b"\r\n\r\n");
        if let Some(end) = head_end {
            let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
            }
        }
        match tokio::time::timeout(LONG, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return 0,
        }
    }
}

/// Writes `bytes` one at a time, `gap` apart; false once the server has closed the connection.
async fn trickle(stream: &mut TcpStream, bytes: &[u8], gap: Duration) -> bool {
    for b in bytes {
        if stream.write_all(&[*b]).await.is_err() {
            return false;
        }
        tokio::time::sleep(gap).await;
    }
    true
}

#[tokio::test]
async fn request_headers_trickled_past_the_header_timeout_are_cut_off_and_in_time_are_answered() {
    let s = TestServer::start_with(|c| c.listen.header_timeout_ms = 600).await;
    // Headers complete in about 250 ms: answered.
    let mut on_time = raw(&s.api, HOME).await;
    let request = b"GET /health HTTP/1.1\r\nhost: a\r\n\r\n";
    assert!(trickle(&mut on_time, request, Duration::from_millis(7)).await);
    assert_eq!(read_answer(&mut on_time).await, 200);

    // A slow-loris client: one header byte every 50 ms, never done.
    let mut loris = raw(&s.api, HOME).await;
    let started = Instant::now();
    let endless = b"GET /health HTTP/1.1\r\nx-a: ".repeat(10);
    let finished = trickle(&mut loris, &endless, Duration::from_millis(50)).await;
    assert!(
        !finished || closed_within(&mut loris, SHORT).await,
        "the server kept a slow-loris connection open for {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() >= Duration::from_millis(550));
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_at_the_header_timeout_on_both_ports() {
    let s = TestServer::start_with(|c| {
        c.listen.header_timeout_ms = 500;
        c.limits.connect_timeout_ms = 60_000;
    })
    .await;
    for url in [&s.api, &s.ws] {
        let mut idle = raw(url, HOME).await;
        let started = Instant::now();
        assert!(closed_within(&mut idle, LONG).await, "{url}");
        assert!(started.elapsed() >= Duration::from_millis(450), "{url}");
    }
}

#[tokio::test]
async fn a_kept_alive_connection_may_idle_up_to_the_idle_timeout_between_requests() {
    let s = TestServer::start_with(|c| {
        c.listen.header_timeout_ms = 300;
        c.listen.idle_timeout_ms = 1_200;
    })
    .await;
    let mut kept = raw(&s.api, HOME).await;
    assert_eq!(get(&mut kept, "/health", None).await, 200);
    // Longer than the header timeout, shorter than the idle one: the connection is still there.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get(&mut kept, "/health", None).await, 200);
    let idle_from = Instant::now();
    assert!(closed_within(&mut kept, LONG).await);
    assert!(idle_from.elapsed() >= Duration::from_millis(1_100));
}

#[tokio::test]
async fn connections_over_the_per_address_cap_are_refused_while_other_addresses_get_in() {
    let s = TestServer::start_with(|c| {
        c.listen.max_per_address = 3;
        c.listen.per_address_exempt = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(raw(&s.api, ATTACKER).await);
    }
    // Both listeners count together: the fourth, on the gateway's port, is closed at once.
    let mut fourth = raw(&s.ws, ATTACKER).await;
    assert!(closed_within(&mut fourth, SHORT).await);
    let mut home = raw(&s.api, HOME).await;
    assert_eq!(get(&mut home, "/health", None).await, 200);
    // The exempt address is not capped.
    let mut many = Vec::new();
    for _ in 0..5 {
        many.push(raw(&s.api, HOME).await);
    }
    assert_eq!(get(&mut many[4], "/health", None).await, 200);
    // A place comes back when one of the three closes.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = raw(&s.api, ATTACKER).await;
    assert_eq!(get(&mut again, "/health", None).await, 200);
}

#[tokio::test]
async fn at_the_unauthenticated_cap_the_oldest_unauthenticated_connection_makes_room() {
    let s = TestServer::start_with(|c| {
        c.listen.max_unauthenticated = 4;
        c.listen.max_per_address = 0;
    })
    .await;
    s.token("alice", "t-alice", 0, 1).await;
    // An admin connection that has shown the key, and a logged-in client: never evicted.
    let mut admin = raw(&s.api, HOME).await;
    assert_eq!(get(&mut admin, "/v1/overview", Some(ADMIN)).await, 200);
    let mut alice = Client::open(&s.ws).await;
    assert_eq!(
        alice.connect("alice", "t-alice", 0).await["result"]["reasonCode"],
        1
    );
    // A WebSocket that never logs in, then idle sockets filling the rest of the cap.
    let mut anonymous = Client::open(&s.ws).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(raw(&s.api, ATTACKER).await);
    }
    // A newcomer gets in: the oldest unauthenticated (the anonymous WebSocket) is closed for it.
    let mut newcomer = raw(&s.api, HOME).await;
    assert_eq!(get(&mut newcomer, "/health", None).await, 200);
    anonymous.closed(LONG).await;
    // Twenty more push out the idle ones in turn; the authenticated two stay.
    for _ in 0..20 {
        idle.push(raw(&s.api, ATTACKER).await);
    }
    assert!(closed_within(&mut idle[0], LONG).await);
    assert_eq!(get(&mut admin, "/v1/overview", Some(ADMIN)).await, 200);
    let reply = alice.request("ping", json!({})).await;
    assert!(is_pong(&reply), "{reply}");
}

/// `prlimit` around the binary, for the descriptor tests.
fn nofile(n: u64) -> String {
    format!("--nofile={n}:{n}")
}

#[tokio::test]
async fn under_a_descriptor_limit_the_binary_keeps_serving_while_an_attacker_holds_sockets() {
    // The attacker opens more sockets than the server has descriptors; this process needs them too.
    let _ = chathook_http::listen::descriptor_limit();
    let dir = tempfile::tempdir().unwrap();
    let limit = nofile(512);
    let mut proc = spawn_binary_under(
        &["prlimit", limit.as_str(), "--"],
        dir.path(),
        &[("CHATHOOK_LISTEN__MAX_PER_ADDRESS", "0".into())],
    )
    .await;
    let receiver = Receiver::start().await;
    let mut attack = Vec::new();
    for i in 0..700 {
        let url = if i % 2 == 0 { &proc.api } else { &proc.ws };
        attack.push(raw(url, ATTACKER).await);
    }
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/health", proc.api)).send().await;
    assert_eq!(health.map(|r| r.status().as_u16()).ok(), Some(200));
    // The admin API, a client's login and send, and an outgoing webhook all still work.
    let endpoint = admin_post(
        &proc.api,
        "/v1/webhooks/endpoints",
        json!({"url": receiver.url, "events": ["message.sent"]}),
    )
    .await;
    assert!(endpoint["id"].is_string(), "{endpoint}");
    for (uid, token) in [("alice", "t-alice"), ("bob", "t-bob")] {
        admin_post(
            &proc.api,
            "/user/token",
            json!({"uid": uid, "token": token, "device_flag": 0}),
        )
        .await;
    }
    let mut alice = Client::open(&proc.ws).await;
    assert_eq!(
        alice.connect("alice", "t-alice", 0).await["result"]["reasonCode"],
        1
    );
    let sent = alice.send_msg("bob", 1, "m1", "hello under attack").await;
    assert_eq!(sent["result"]["reasonCode"], 1, "{sent}");
    receiver
        .wait("the message's webhook", LONG, |r| {
            r.iter().any(|r| r.json()["type"] == "message.sent")
        })
        .await;
    assert!(proc.child.try_wait().unwrap().is_none(), "the server died");
    drop(attack);
    let _ = proc.child.kill();
    let _ = proc.child.wait();
}

#[tokio::test]
async fn the_binary_closes_slow_loris_clients_and_answers_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = spawn_binary_with(
        dir.path(),
        &[("CHATHOOK_LISTEN__HEADER_TIMEOUT_MS", "800".into())],
    )
    .await;
    let lorises: Vec<_> = (0..50)
        .map(|_| {
            let api = proc.api.clone();
            tokio::spawn(async move {
                let mut s = raw(&api, ATTACKER).await;
                let endless = b"POST /message/send HTTP/1.1\r\nx-a: ".repeat(20);
                let finished = trickle(&mut s, &endless, Duration::from_millis(100)).await;
                !finished || closed_within(&mut s, SHORT).await
            })
        })
        .collect();
    let http = reqwest::Client::new();
    let health = http.get(format!("{}/health", proc.api)).send().await;
    assert_eq!(health.map(|r| r.status().as_u16()).ok(), Some(200));
    for loris in lorises {
        assert!(loris.await.unwrap(), "a slow-loris client was kept");
    }
    let _ = proc.child.kill();
    let _ = proc.child.wait();
}
