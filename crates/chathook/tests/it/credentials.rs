//! Wrong credentials slow down: after a few free failures an address (admin keys, login tokens) or a
//! user (login tokens) is blocked for a doubling time, the right credential still works from an address
//! that has not failed, and the block is logged once with the address, never the credential.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::util::*;

const GUESSER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

fn from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip)
        .build()
        .unwrap()
}

async fn overview(client: &reqwest::Client, api: &str, key: &str) -> reqwest::Response {
    client
        .get(format!("{api}/v1/overview"))
        .header("token", key)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn wrong_admin_keys_from_one_address_are_blocked_while_other_addresses_get_in() {
    let s = TestServer::start_with(|c| {
        c.auth.throttle.free_failures = 3;
        c.auth.throttle.base_block_ms = 1_500;
    })
    .await;
    let guesser = from(GUESSER);
    for _ in 0..4 {
        assert_eq!(
            overview(&guesser, &s.api, "wrong-admin-key-00")
                .await
                .status(),
            401
        );
    }
    // Blocked: refused unchecked, the right key too, with Retry-After.
    let blocked = overview(&guesser, &s.api, ADMIN).await;
    assert_eq!(blocked.status(), 429);
    assert_eq!(blocked.headers()["retry-after"], "2");
    let body: serde_json::Value = blocked.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failures", "{body}");
    // Another address is not affected.
    assert_eq!(
        overview(&from(IpAddr::V4(Ipv4Addr::LOCALHOST)), &s.api, ADMIN)
            .await
            .status(),
        200
    );
    // Once the block has passed, the right key works from the guesser's address again.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(overview(&guesser, &s.api, ADMIN).await.status(), 200);
}

#[tokio::test]
async fn wrong_tokens_block_the_guessers_address_and_the_user_only_where_it_failed() {
    let s = TestServer::start_with(|c| c.auth.throttle.free_failures = 3).await;
    s.token("alice", "t-alice", 0, 1).await;
    for _ in 0..4 {
        let mut c = Client::open_from(&s.ws, GUESSER).await;
        assert_eq!(
            c.connect("alice", "guess", 0).await["result"]["reasonCode"],
            2
        );
    }
    // The guesser's address is refused with reason 22, the right token included.
    let mut c = Client::open_from(&s.ws, GUESSER).await;
    let r = c.connect("alice", "t-alice", 0).await;
    assert_eq!(r["result"]["reasonCode"], 22, "{r}");
    // alice herself, from an address that never failed, logs in.
    let mut alice = Client::open(&s.ws).await;
    assert_eq!(
        alice.connect("alice", "t-alice", 0).await["result"]["reasonCode"],
        1
    );
    // A second guesser that fails once for anyone is refused for the blocked user.
    let second = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
    let mut c = Client::open_from(&s.ws, second).await;
    assert_eq!(
        c.connect("bob", "guess", 0).await["result"]["reasonCode"],
        2
    );
    let mut c = Client::open_from(&s.ws, second).await;
    assert_eq!(
        c.connect("alice", "guess", 0).await["result"]["reasonCode"],
        22
    );
}

#[tokio::test]
async fn a_block_is_logged_once_with_the_address_and_never_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stdout.log");
    let mut proc = spawn_binary_logging(&dir.path().join("data"), &log, &[]).await;
    let (api, guesser) = (proc.api.clone(), from(GUESSER));
    let guess = "a-guessed-admin-key-4711";
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(overview(&guesser, &api, guess).await.status().as_u16());
    }
    // Five free failures, the sixth starts the block.
    assert_eq!(&statuses[..6], &[401; 6]);
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    let _ = proc.child.kill();
    let _ = proc.child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<_> = text
        .lines()
        .filter(|l| l.contains("wrong credentials"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains("127.0.0.3"), "{text}");
    assert!(!text.contains(guess) && !text.contains(ADMIN), "{text}");
}
