//! The webhook engine end to end: real receivers on loopback, the real server.

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

pub fn fast_retries(c: &mut chathook::Config) {
    c.webhook.retry_schedule = vec![
        Duration::ZERO,
        Duration::from_millis(100),
        Duration::from_millis(100),
        Duration::from_millis(100),
    ];
    c.webhook.retry_jitter = 0.0;
    c.webhook.msg_notify_interval = Duration::from_millis(50);
}

const IM_EVENTS: [&str; 4] = [
    "user.online",
    "user.offline",
    "message.sent",
    "message.offline",
];

#[tokio::test]
async fn an_endpoints_url_and_description_have_length_limits() {
    let s = TestServer::start().await;
    let at = |n: usize| format!("http://127.0.0.1:9/{}", "p".repeat(n - 19));
    let (st, body) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": at(2049), "events": ["message.sent"]}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("url_too_long")),
        "{body}"
    );
    let (st, body) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": at(2048), "events": ["message.sent"],
            "description": "d".repeat(1025)}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["field"].as_str()),
        (400, Some("description")),
        "{body}"
    );
    let ep = s
        .endpoint(
            json!({"url": at(2048), "events": ["message.sent"], "description": "d".repeat(1024)}),
        )
        .await;
    let (st, body) = s
        .call(
            "PATCH",
            &format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap()),
            Some(json!({"description": "e".repeat(1025)})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("description_too_long"))
    );
}

#[tokio::test]
async fn url_rules_each_have_a_code_and_the_63_character_edge_holds() {
    let s = TestServer::start().await;
    let cases = [
        ("ftp://127.0.0.1/cb", "url_scheme"),
        ("http://exa mple.localhost/cb", "url_space"),
        ("http://a--b.localhost/cb", "url_label_double_hyphen"),
        ("http://-ab.localhost/cb", "url_label_hyphen_edge"),
        ("http://ab-.localhost/cb", "url_label_hyphen_edge"),
        ("http://--.localhost/cb", "url_label_only_hyphens"),
        ("http://127.0.0.1/cb?x=1", "url_forbidden_character"),
        ("http://127.0.0.1/c!b", "url_forbidden_character"),
        ("http://127.0.0.1/c$b", "url_forbidden_character"),
        ("http://127.0.0.1/c&b", "url_forbidden_character"),
        ("http://a_b.localhost/cb", "url_label_characters"),
    ];
    for (url, code) in cases {
        let (st, body) = s.post("/v1/webhooks/endpoints", json!({"url": url})).await;
        assert_eq!(st, 400, "{url}");
        assert_eq!(body["error"]["code"], code, "{url}: {body}");
        assert_eq!(body["error"]["field"], "url");
    }
    let long = format!("http://{}.localhost/cb", "a".repeat(54));
    let (st, body) = s.post("/v1/webhooks/endpoints", json!({"url": long})).await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("url_domain_too_long"))
    );
    let edge = format!("http://{}.localhost/cb", "a".repeat(53));
    let ep = s
        .endpoint(json!({"url": edge, "events": ["message.sent"]}))
        .await;
    assert!(ep["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(ep["flavour"], "standard");
    assert_eq!(ep["timeout_ms"], 5000);
    assert_eq!(ep["max_in_flight"], 32);
    let id = ep["id"].as_str().unwrap();
    let (st, shown) = s
        .call(
            "GET",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown only on create and rotate"
    );
    // unknown events and fields are named
    let (st, body) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "http://127.0.0.1/x", "events": ["nope"]}),
        )
        .await;
    assert_eq!((st, body["error"]["field"].as_str()), (400, Some("events")));
    let (st, body) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "http://127.0.0.1/x", "colour": 1}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("field_unknown"))
    );
}

#[tokio::test]
async fn port_changes_that_are_prefixes_need_confirmation() {
    let s = TestServer::start().await;
    for (from, to, conflict) in [
        (
            "https://a.localhost/cb",
            "https://a.localhost:4433/cb",
            true,
        ),
        (
            "https://a.localhost:443/cb",
            "https://a.localhost:4433/cb",
            true,
        ),
        ("http://a.localhost/cb", "http://a.localhost:8080/cb", true),
        (
            "https://a.localhost/cb",
            "https://a.localhost:8443/cb",
            false,
        ),
        (
            "http://a.localhost:8080/cb",
            "http://a.localhost:8080/other",
            false,
        ),
    ] {
        let ep = s.endpoint(json!({"url": from})).await;
        let path = format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap());
        let (st, body) = s
            .call("PATCH", &path, Some(json!({"url": to})), Some(ADMIN))
            .await;
        if conflict {
            assert_eq!(st, 409, "{from} -> {to}");
            assert_eq!(body["error"]["code"], "port_prefix_conflict");
            let (st, body) = s
                .call(
                    "PATCH",
                    &path,
                    Some(json!({"url": to, "confirm_port_change": true})),
                    Some(ADMIN),
                )
                .await;
            assert_eq!(st, 200, "{body}");
            assert_eq!(body["url"], to);
        } else {
            assert_eq!(st, 200, "{from} -> {to}: {body}");
        }
    }
}

#[tokio::test]
async fn url_check_lists_every_broken_rule_and_the_port_change_to_confirm() {
    let s = TestServer::start().await;
    let check = |body: Value| {
        let s = &s;
        async move {
            let (st, answer) = s.post("/v1/webhooks/url-check", body).await;
            assert_eq!(st, 200, "{answer}");
            answer
        }
    };
    let answer = check(json!({"url": "ftp://a_b.-c.localhost/x?y"})).await;
    assert_eq!(answer["valid"], false);
    let codes: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "url_scheme",
            "url_forbidden_character",
            "url_label_characters",
            "url_label_hyphen_edge"
        ]
    );
    assert!(answer["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("http://"));
    let answer = check(json!({"url": "http://127.0.0.1:8080/cb"})).await;
    assert_eq!(
        answer,
        json!({"valid": true, "errors": [], "confirm_port_change": null})
    );
    // against an endpoint's URL, a prefix port is flagged before the change is sent
    let ep = s.endpoint(json!({"url": "http://127.0.0.1/cb"})).await;
    let id = ep["id"].as_str().unwrap();
    let answer = check(json!({"url": "http://127.0.0.1:8080/cb", "endpoint_id": id})).await;
    assert_eq!(
        answer["confirm_port_change"],
        json!({"from": 80, "to": 8080})
    );
    let answer = check(json!({"url": "http://127.0.0.1:9000/cb", "endpoint_id": id})).await;
    assert_eq!(answer["confirm_port_change"], Value::Null);
    let (st, body) = s
        .post(
            "/v1/webhooks/url-check",
            json!({"url": "http://a/", "endpoint_id": "ep_none"}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (404, Some("endpoint_not_found"))
    );
    let (st, body) = s.post("/v1/webhooks/url-check", json!({})).await;
    assert_eq!((st, body["error"]["field"].as_str()), (400, Some("url")));
}

#[tokio::test]
async fn wukongim_flavour_bodies_and_batching_by_size_and_interval() {
    let s = TestServer::start_with(|c| {
        c.webhook.msg_notify_max_batch = 5;
        c.webhook.msg_notify_interval = Duration::from_millis(300);
    })
    .await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "flavour": "wukongim", "events": ["msg.notify", "msg.offline", "user.onlinestatus"]})).await;
    let mut alice = s.login("alice", 0).await;
    rcv.wait("online status", LONG, |r| {
        r.iter().any(|r| r.event() == "user.onlinestatus")
    })
    .await;
    let status = rcv.by_event("user.onlinestatus")[0].json();
    let item = status[0].as_str().unwrap();
    let parts: Vec<&str> = item.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[2], parts[4], parts[5]),
        ("alice", "0", "1", "1", "1"),
        "{item}"
    );

    for i in 0..12 {
        alice
            .send_msg("bob", 1, &format!("b{i}"), &format!("n{i}"))
            .await;
    }
    rcv.wait("12 notified", LONG, |r| notify_ids(r).len() >= 12)
        .await;
    let sizes: Vec<usize> = rcv
        .by_event("msg.notify")
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    assert!(sizes.iter().all(|n| *n <= 5), "max batch: {sizes:?}");
    assert!(
        sizes.iter().filter(|n| **n == 5).count() >= 2,
        "full batches flush at once: {sizes:?}"
    );
    let before = rcv.by_event("msg.notify").len();
    alice.send_msg("bob", 1, "late-1", "x").await;
    alice.send_msg("bob", 1, "late-2", "x").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        rcv.by_event("msg.notify").len(),
        before,
        "a short batch waits for the interval"
    );
    rcv.wait("interval flush", LONG, |r| notify_ids(r).len() >= 14)
        .await;
    let last = rcv.by_event("msg.notify").last().unwrap().json();
    assert_eq!(last.as_array().unwrap().len(), 2);
    let m = &last[0];
    assert_eq!(
        m["header"],
        json!({"no_persist": 0, "red_dot": 0, "sync_once": 0})
    );
    assert_eq!(m["message_idstr"], m["message_id"].to_string());
    assert_eq!(m["channel_id"], "bob");
    assert_eq!(m["channel_type"], 1);
    assert!(m["timestamp"].as_i64().unwrap() < 10_000_000_000);

    let offline = rcv.by_event("msg.offline");
    assert_eq!(offline.len(), 14, "one POST per message");
    let o = offline[0].json();
    assert_eq!(o["to_uids"], json!(["bob"]));
    assert!(o.is_object());
    // every request is signed and carries an id
    assert!(rcv.requests().iter().all(|r| r
        .headers
        .get("webhook-signature")
        .is_some_and(|s| s.starts_with("v1,"))));
}

#[tokio::test]
async fn signatures_verify_with_the_standardwebhooks_library_across_a_rotation() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let ep = s.endpoint(json!({"url": rcv.url, "flavour": "standard", "events": ["message.sent", "group.created"]})).await;
    let old_secret = ep["secret"].as_str().unwrap().to_string();
    s.group("g", &["alice"]).await;
    s.rest_send("alice", "bob", 1, "signed").await;
    rcv.wait("two events", LONG, |r| r.len() >= 2).await;
    let (st, rotated) = s
        .post(
            &format!(
                "/v1/webhooks/endpoints/{}/rotate-secret",
                ep["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    let new_secret = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, old_secret);
    s.rest_send("alice", "bob", 1, "after rotation").await;
    rcv.wait("three events", LONG, |r| r.len() >= 3).await;
    let reqs = rcv.requests();
    let standard = reqs[0].json();
    assert_eq!(standard["type"], "group.created");
    assert!(standard["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(standard["data"]["channel_id"], "g");
    assert_eq!(
        reqs[2].headers["webhook-signature"].split(' ').count(),
        2,
        "both secrets sign during the grace period"
    );

    // the third-party library checks every request: the first two with the old secret, the last with both
    let cases: Vec<Value> = reqs
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            let mut secrets = vec![old_secret.clone()];
            if i == 2 {
                secrets.push(new_secret.clone());
            }
            secrets.into_iter().map(move |secret| {
                json!({"secret": secret, "body": String::from_utf8(r.body.clone()).unwrap(),
                       "headers": {"webhook-id": r.headers["webhook-id"], "webhook-timestamp": r.headers["webhook-timestamp"],
                                   "webhook-signature": r.headers["webhook-signature"]}})
            })
        })
        .collect();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
cases = json.load(sys.stdin)
for c in cases:
    Webhook(c["secret"]).verify(c["body"], c["headers"])
tampered = cases[0]
try:
    Webhook(tampered["secret"]).verify(tampered["body"] + " ", tampered["headers"])
    sys.exit("a tampered body verified")
except Exception:
    pass
print(len(cases), "verified")
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&cases).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks (pip install standardwebhooks) refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("4 verified"));
}

#[tokio::test]
async fn an_outage_then_recovery_delivers_every_event_once_by_id() {
    let s = TestServer::start_with(|c| {
        fast_retries(c);
        c.webhook.retry_schedule = vec![Duration::ZERO; 1]
            .into_iter()
            .chain(vec![Duration::from_millis(300); 20])
            .collect();
        // every event is attempted during the outage (the breaker has its own test)
        c.webhook.breaker_failures = 1000;
    })
    .await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    rcv.set(Mode::Status(500));
    let mut sent = HashSet::new();
    for i in 0..20 {
        let (_, b) = s.rest_send("alice", "bob", 1, &format!("{i}")).await;
        sent.insert(b["data"]["message_id"].as_i64().unwrap());
    }
    rcv.wait("failures", LONG, |r| r.len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    rcv.set(Mode::Ok);
    let ok_ids = |reqs: &[Recorded]| -> HashSet<i64> {
        reqs.iter()
            .filter(|r| r.at > std::time::Instant::now() - Duration::from_secs(3600))
            .map(|r| r.json()["data"]["message_id"].as_i64().unwrap())
            .collect()
    };
    rcv.wait(
        "all delivered after the outage",
        Duration::from_secs(10),
        |r| ok_ids(r).len() >= 20,
    )
    .await;
    assert_eq!(ok_ids(&rcv.requests()), sent);
    // each delivery kept its id across attempts: one id per message
    let mut ids_per_message: HashMap<i64, HashSet<String>> = HashMap::new();
    for r in rcv.requests() {
        ids_per_message
            .entry(r.json()["data"]["message_id"].as_i64().unwrap())
            .or_default()
            .insert(r.id());
    }
    assert!(
        ids_per_message.values().all(|ids| ids.len() == 1),
        "{ids_per_message:?}"
    );
    assert_eq!(ids_per_message.len(), 20);
}

#[tokio::test]
async fn dead_letters_and_replay() {
    let s = TestServer::start_with(|c| {
        c.webhook.retry_schedule = vec![Duration::ZERO, Duration::from_millis(50)];
        c.webhook.retry_jitter = 0.0;
        c.webhook.breaker_failures = 1000;
    })
    .await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    rcv.set(Mode::Status(500));
    for i in 0..3 {
        s.rest_send("alice", "bob", 1, &format!("{i}")).await;
    }
    let path = format!("/v1/webhooks/endpoints/{id}/dead-letters");
    let dead = s
        .poll(&path, |b| b["data"].as_array().unwrap().len() == 3)
        .await;
    assert_eq!(rcv.requests().len(), 6, "two attempts each, then nothing");
    let first = &dead["data"][0];
    assert_eq!(first["attempts"], 2);
    assert_eq!(first["last_error"], "HTTP 500");
    rcv.set(Mode::Ok);
    let one = first["delivery_id"].as_str().unwrap();
    let (st, _) = s.post(&format!("{path}/{one}/replay"), json!({})).await;
    assert_eq!(st, 202);
    rcv.wait("replayed one", LONG, |r| r.len() == 7).await;
    assert_eq!(rcv.requests()[6].id(), one);
    let (st, body) = s.post(&format!("{path}/{one}/replay"), json!({})).await;
    assert_eq!(st, 404, "{body}");
    let (st, body) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/replay"),
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((st, body["replayed"].as_u64()), (202, Some(2)));
    rcv.wait("replayed the rest", LONG, |r| r.len() == 9).await;
    let (_, body) = s.call("GET", &path, None, Some(ADMIN)).await;
    assert!(body["data"].as_array().unwrap().is_empty());
    let (st, _) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/replay"),
            json!({"since": "yesterday"}),
        )
        .await;
    assert_eq!(st, 400);
}

#[tokio::test]
async fn the_breaker_opens_then_probes_then_closes_and_the_api_shows_it() {
    let s = TestServer::start_with(|c| {
        fast_retries(c);
        c.webhook.retry_schedule = vec![Duration::ZERO; 1]
            .into_iter()
            .chain(vec![Duration::from_millis(50); 50])
            .collect();
        c.webhook.breaker_failures = 3;
        c.webhook.breaker_probe_delay = Duration::from_millis(300);
        c.webhook.breaker_max_probe_delay = Duration::from_millis(300);
    })
    .await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"], "max_in_flight": 1}))
        .await;
    assert_eq!(ep["breaker_open"], false);
    let path = format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap());
    rcv.set(Mode::Status(503));
    for i in 0..10 {
        s.rest_send("alice", "bob", 1, &format!("{i}")).await;
    }
    rcv.wait("three failures", LONG, |r| r.len() >= 3).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let during = rcv.requests().len();
    // open: about one probe every 300 ms instead of an attempt every 50 ms
    assert!(during <= 3 + 5, "{during} attempts while open");
    let metrics = s.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("chathook_webhook_breaker_open{") && l.ends_with(" 1")),
        "{metrics}"
    );
    let (_, shown) = s.call("GET", &path, None, Some(ADMIN)).await;
    assert_eq!(shown["breaker_open"], true, "{shown}");
    // the overview counts it apart from the delivering ones
    let (_, overview) = s.call("GET", "/v1/overview", None, Some(ADMIN)).await;
    assert_eq!(
        overview["endpoints"],
        json!({"total": 1, "enabled": 1, "delivering": 0, "breaker_open": 1, "disabled": 0})
    );
    rcv.set(Mode::Ok);
    rcv.wait("everything after closing", Duration::from_secs(10), |r| {
        r.iter()
            .filter(|x| x.at > std::time::Instant::now() - Duration::from_secs(60))
            .count()
            > 0
            && {
                let ids: HashSet<String> = r.iter().map(|x| x.id()).collect();
                ids.len() >= 10
            }
    })
    .await;
    let metrics = s.metrics().await;
    assert!(metrics
        .lines()
        .any(|l| l.starts_with("chathook_webhook_breaker_open{") && l.ends_with(" 0")));
    let (_, shown) = s.call("GET", &path, None, Some(ADMIN)).await;
    assert_eq!(shown["breaker_open"], false, "{shown}");
    let (_, overview) = s.call("GET", "/v1/overview", None, Some(ADMIN)).await;
    assert_eq!(overview["endpoints"]["delivering"], 1, "{overview}");
    // one the operator disables is counted as disabled
    s.call("PATCH", &path, Some(json!({"enabled": false})), Some(ADMIN))
        .await;
    let (_, overview) = s.call("GET", "/v1/overview", None, Some(ADMIN)).await;
    assert_eq!(
        (
            overview["endpoints"]["delivering"].as_u64(),
            overview["endpoints"]["disabled"].as_u64()
        ),
        (Some(0), Some(1)),
        "{overview}"
    );
}

#[tokio::test]
async fn a_hanging_endpoint_slows_neither_chat_nor_other_endpoints() {
    let s = TestServer::start().await;
    let hanging = Receiver::start().await;
    hanging.set(Mode::Hang);
    let healthy = Receiver::start().await;
    s.endpoint(
        json!({"url": hanging.url, "events": IM_EVENTS, "max_in_flight": 4, "timeout_ms": 10000}),
    )
    .await;
    s.endpoint(json!({"url": healthy.url, "events": IM_EVENTS}))
        .await;
    let mut alice = s.login("alice", 0).await;
    let mut bob = s.login("bob", 0).await;
    for i in 0..150 {
        let r = alice.send_msg("bob", 1, &format!("h{i}"), "x").await;
        assert_eq!(r["result"]["reasonCode"], 1);
    }
    for _ in 0..150 {
        assert!(
            bob.recv(LONG, true).await.is_some(),
            "chat flows while an endpoint hangs"
        );
    }
    healthy
        .wait("the healthy endpoint gets everything", LONG, |r| {
            r.iter()
                .filter(|x| x.json()["type"] == "message.sent")
                .count()
                >= 150
        })
        .await;
    assert!(
        hanging.requests().len() <= 4,
        "the hanging endpoint holds only its own {} slots",
        hanging.requests().len()
    );
}

#[tokio::test]
async fn gone_disables_and_retry_after_is_honoured() {
    let s = TestServer::start_with(fast_retries).await;
    let gone = Receiver::start().await;
    gone.set(Mode::Status(410));
    let ep = s
        .endpoint(json!({"url": gone.url, "events": ["message.sent"]}))
        .await;
    s.rest_send("alice", "bob", 1, "x").await;
    gone.wait("one attempt", LONG, |r| !r.is_empty()).await;
    let path = format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap());
    let body = s.poll(&path, |b| b["enabled"] == false).await;
    assert!(body["disabled_reason"].as_str().unwrap().contains("410"));
    s.rest_send("alice", "bob", 1, "y").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gone.requests().len(), 1, "a disabled endpoint gets nothing");
    // re-enabled, it catches up with what waited
    gone.set(Mode::Ok);
    let (st, _) = s
        .call("PATCH", &path, Some(json!({"enabled": true})), Some(ADMIN))
        .await;
    assert_eq!(st, 200);
    gone.wait("caught up", LONG, |r| {
        r.iter()
            .filter(|x| x.json()["type"] == "message.sent")
            .map(|x| x.id())
            .collect::<HashSet<_>>()
            .len()
            >= 2
    })
    .await;

    let busy = Receiver::start().await;
    busy.set(Mode::RetryAfter(429, 1));
    s.endpoint(json!({"url": busy.url, "events": ["message.sent"]}))
        .await;
    s.rest_send("alice", "bob", 1, "z").await;
    busy.wait("first attempt", LONG, |r| !r.is_empty()).await;
    busy.set(Mode::Ok);
    busy.wait("second attempt", LONG, |r| r.len() >= 2).await;
    let reqs = busy.requests();
    let gap = reqs[1].at.duration_since(reqs[0].at);
    assert!(
        gap >= Duration::from_millis(900),
        "Retry-After: 1 was not honoured ({gap:?}; the schedule says 100 ms)"
    );
}

#[tokio::test]
async fn feature_switches_gate_events_and_show_as_inactive() {
    let s = TestServer::start().await;
    let (st, f) = s.call("GET", "/v1/features", None, Some(ADMIN)).await;
    assert_eq!(st, 200);
    assert_eq!(
        f,
        json!({"online_status_notify": true, "profile_change_subscription": false, "live_group_member_status": false})
    );
    let (st, _) = s
        .call(
            "PUT",
            "/v1/features",
            Some(json!({"online_status_notify": false})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    let rcv = Receiver::start().await;
    let ep = s.endpoint(json!({"url": rcv.url, "events": ["user.online", "user.profile_changed", "message.sent"]})).await;
    let inactive: Vec<&str> = ep["inactive_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["feature"].as_str().unwrap())
        .collect();
    assert_eq!(
        inactive,
        vec!["online_status_notify", "profile_change_subscription"]
    );
    let _a = s.login("alice", 0).await;
    s.call(
        "PUT",
        "/v1/users/alice/profile",
        Some(json!({"name": "A"})),
        Some(ADMIN),
    )
    .await;
    s.rest_send("alice", "bob", 1, "x").await;
    rcv.wait("message", LONG, |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let types: Vec<String> = rcv
        .requests()
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types, vec!["message.sent"]);
    let (st, _) = s
        .call(
            "PUT",
            "/v1/features",
            Some(json!({"online_status_notify": true, "profile_change_subscription": true})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200);
    let _b = s.login("bob", 0).await;
    s.call(
        "PUT",
        "/v1/users/bob/profile",
        Some(json!({"name": "B"})),
        Some(ADMIN),
    )
    .await;
    rcv.wait("gated events now flow", LONG, |r| r.len() >= 3)
        .await;
    let (st, body) = s
        .call(
            "PUT",
            "/v1/features",
            Some(json!({"online": true})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("field_unknown"))
    );
}

#[tokio::test]
async fn test_sends_attempts_page_and_stats_summarise() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "flavour": "wukongim", "events": []}))
        .await;
    let id = ep["id"].as_str().unwrap();
    // native names and the flavours' own, as an endpoint's events take them
    for (event, wire) in [
        ("message.offline", "msg.offline"),
        ("msg.offline", "msg.offline"),
        ("user.onlinestatus", "user.onlinestatus"),
        ("user.online", "user.onlinestatus"),
        ("group.created", "group.created"),
    ] {
        let (st, attempt) = s
            .post(
                &format!("/v1/webhooks/endpoints/{id}/test"),
                json!({"event": event}),
            )
            .await;
        assert_eq!(st, 200, "{attempt}");
        assert_eq!(attempt["success"], true);
        assert_eq!(attempt["status"], 200);
        assert_eq!(attempt["event"], wire);
    }
    rcv.set(Mode::Status(502));
    let (_, attempt) = s
        .post(&format!("/v1/webhooks/endpoints/{id}/test"), json!({}))
        .await;
    assert_eq!(
        (attempt["success"].as_bool(), attempt["error"].as_str()),
        (Some(false), Some("HTTP 502"))
    );
    assert_eq!(rcv.requests().len(), 6);
    assert_eq!(rcv.requests()[0].json()["to_uids"], json!(["bob"]));
    let (st, _) = s
        .post(
            &format!("/v1/webhooks/endpoints/{id}/test"),
            json!({"event": "nope"}),
        )
        .await;
    assert_eq!(st, 400);

    let path = format!("/v1/webhooks/endpoints/{id}/attempts");
    s.poll(&path, |p| p["data"].as_array().unwrap().len() == 6)
        .await;
    let (_, page) = s
        .call("GET", &format!("{path}?limit=3"), None, Some(ADMIN))
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 3);
    assert_eq!(page["data"][0]["success"], false, "newest first");
    let before = page["next_before"].as_i64().unwrap();
    let (_, next) = s
        .call(
            "GET",
            &format!("{path}?limit=3&before={before}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(next["data"].as_array().unwrap().len(), 3);
    let (_, failed) = s
        .call("GET", &format!("{path}?status=failure"), None, Some(ADMIN))
        .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
    assert_eq!(failed["data"][0]["response"], "no");
    let (_, by_event) = s
        .call(
            "GET",
            &format!("{path}?event=msg.offline"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(by_event["data"].as_array().unwrap().len(), 2);
    let (st, _) = s
        .call("GET", &format!("{path}?status=maybe"), None, Some(ADMIN))
        .await;
    assert_eq!(st, 400);

    let (st, stats) = s
        .call(
            "GET",
            &format!("/v1/webhooks/endpoints/{id}/stats?window=1h"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200, "{stats}");
    assert_eq!(stats["attempts"], 6);
    // the window's edges, on the server's clock, an hour apart
    let edge = |k: &str| {
        humantime_serde::re::humantime::parse_rfc3339(stats[k].as_str().unwrap())
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(edge("until") - edge("since"), 3_600_000, "{stats}");
    let rate = stats["success_rate"].as_f64().unwrap();
    assert!((rate - 5.0 / 6.0).abs() < 0.001, "{stats}");
    assert!(stats["latency_ms"]["p99"].is_u64());
    let per_minute: u64 = stats["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["success"].as_u64().unwrap() + m["failure"].as_u64().unwrap())
        .sum();
    assert_eq!(per_minute, 6);
    let minute = &stats["per_minute"][0];
    assert!(
        minute["latency_ms"]["p50"].as_u64().unwrap()
            <= minute["latency_ms"]["p99"].as_u64().unwrap(),
        "{minute}"
    );

    let (st, types) = s
        .call("GET", "/v1/webhooks/event-types", None, Some(ADMIN))
        .await;
    assert_eq!(st, 200);
    let list = types["data"].as_array().unwrap();
    assert_eq!(
        list.len(),
        18,
        "eleven kinds of events and seven operational ones"
    );
    let foreign = list.iter().find(|t| t["name"] == "foreign").unwrap();
    assert_eq!(
        foreign["examples"]["standard"]["type"],
        "tencent.Group.CallbackAfterRecallMsg"
    );
    let hooks = types["before_send"].as_array().unwrap();
    assert_eq!(
        hooks
            .iter()
            .map(|h| h["flavours"]["tencent"][0].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["C2C.CallbackBeforeSendMsg", "Group.CallbackBeforeSendMsg"]
    );
    assert_eq!(hooks[1]["name"], "message.before_send.group");
    assert_eq!(
        hooks[0]["examples"]["tencent"]["CallbackCommand"],
        "C2C.CallbackBeforeSendMsg"
    );
    assert_eq!(
        hooks[0]["examples"]["standard"]["type"],
        "message.before_send.person"
    );
    let sent = list.iter().find(|t| t["name"] == "message.sent").unwrap();
    assert_eq!(sent["flavours"]["wukongim"], "msg.notify");
    assert!(sent["examples"]["wukongim"].is_array());
    assert_eq!(sent["examples"]["standard"]["type"], "message.sent");
    let online = list.iter().find(|t| t["name"] == "user.online").unwrap();
    assert_eq!(online["feature"], "online_status_notify");
}

#[tokio::test]
async fn metadata_addresses_are_refused_by_default() {
    let s = TestServer::start().await;
    let ep = s
        .endpoint(json!({"url": "http://169.254.169.254/latest", "events": []}))
        .await;
    let (_, attempt) = s
        .post(
            &format!("/v1/webhooks/endpoints/{}/test", ep["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(attempt["success"], false);
    assert!(
        attempt["error"].as_str().unwrap().contains("blocked"),
        "{attempt}"
    );
    // a name resolving to a blocked network is refused at connect time as well
    let s2 = TestServer::start_with(|c| {
        c.webhook.blocked_networks = vec!["127.0.0.0/8".parse().unwrap()]
    })
    .await;
    let rcv = Receiver::start().await;
    let by_name = rcv.url.replace("127.0.0.1", "localhost");
    let ep = s2.endpoint(json!({"url": by_name, "events": []})).await;
    let (_, attempt) = s2
        .post(
            &format!("/v1/webhooks/endpoints/{}/test", ep["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(attempt["success"], false, "{attempt}");
    assert!(rcv.requests().is_empty());
}

#[tokio::test]
async fn rate_limit_spaces_deliveries() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "events": ["message.sent"], "rate_limit_per_s": 10}))
        .await;
    for i in 0..25 {
        s.rest_send("alice", "bob", 1, &format!("{i}")).await;
    }
    rcv.wait("all", Duration::from_secs(10), |r| r.len() >= 25)
        .await;
    let reqs = rcv.requests();
    let span = reqs[24].at.duration_since(reqs[0].at);
    assert!(
        span >= Duration::from_millis(1300),
        "25 deliveries at 10/s took only {span:?}"
    );
}

#[tokio::test]
async fn config_file_endpoints_with_wukongim_keys_are_read_only() {
    let rcv = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chathook.toml");
    std::fs::write(
        &file,
        format!(
            "[webhook]\nhttpAddr = \"{}\"\nfocusEvents = [\"msg.offline\"]\nmsgNotifyEventPushInterval = \"100ms\"\nmsgNotifyEventCountPerPush = 7\n",
            rcv.url
        ),
    )
    .unwrap();
    let config = chathook::Config::load(Some(&file), &Default::default()).unwrap();
    assert_eq!(config.webhook.msg_notify_max_batch, 7);
    assert_eq!(
        config.webhook.msg_notify_interval,
        Duration::from_millis(100)
    );
    let webhook = config.webhook.clone();
    let s = TestServer::start_with(move |c| c.webhook = webhook).await;
    let (_, list) = s
        .call("GET", "/v1/webhooks/endpoints", None, Some(ADMIN))
        .await;
    let ep = &list["data"][0];
    assert_eq!(ep["read_only"], true);
    assert_eq!(ep["flavour"], "wukongim");
    // created when first loaded, not in 1970, and the same after a restart
    let created = ep["created_at"].as_str().unwrap().to_string();
    assert!(
        created.starts_with("20") && !created.starts_with("1970"),
        "{created}"
    );
    assert_eq!(ep["events"], json!(["message.offline"]));
    let path = format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap());
    assert_eq!(
        s.call("PATCH", &path, Some(json!({"enabled": false})), Some(ADMIN))
            .await
            .0,
        409
    );
    assert_eq!(s.call("DELETE", &path, None, Some(ADMIN)).await.0, 409);
    s.rest_send("alice", "bob", 1, "x").await;
    rcv.wait("msg.offline", LONG, |r| {
        r.iter().any(|x| x.event() == "msg.offline")
    })
    .await;
    let webhook = config.webhook.clone();
    let s = s.restart(move |c| c.webhook = webhook).await;
    let (_, list) = s
        .call("GET", "/v1/webhooks/endpoints", None, Some(ADMIN))
        .await;
    assert_eq!(list["data"][0]["created_at"], created.as_str());
}

#[tokio::test]
async fn deleting_an_endpoint_stops_its_deliveries_and_frees_its_cursor() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap();
    s.rest_send("alice", "bob", 1, "x").await;
    rcv.wait("one", LONG, |r| r.len() == 1).await;
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 204);
    assert_eq!(
        s.call(
            "GET",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN)
        )
        .await
        .0,
        404
    );
    s.rest_send("alice", "bob", 1, "y").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(rcv.requests().len(), 1);
    assert!(s
        .server()
        .store()
        .consumer_position(&format!("webhook:{id}"))
        .await
        .is_err());
}

#[tokio::test]
async fn an_endpoint_failing_longer_than_disable_after_is_disabled() {
    let s = TestServer::start_with(|c| {
        fast_retries(c);
        c.webhook.retry_schedule = vec![Duration::ZERO; 1]
            .into_iter()
            .chain(vec![Duration::from_millis(100); 30])
            .collect();
        c.webhook.disable_after = Duration::from_millis(400);
        c.webhook.breaker_failures = 1000;
    })
    .await;
    let rcv = Receiver::start().await;
    rcv.set(Mode::Status(500));
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    s.rest_send("alice", "bob", 1, "x").await;
    let path = format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap());
    let body = s.poll(&path, |b| b["enabled"] == false).await;
    assert!(
        body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failing"),
        "{body}"
    );
    assert!(body["failing_since"].is_string());
    assert_eq!(
        body["queue"]["retrying"], 1,
        "the delivery waits, it is not dropped"
    );
}

#[tokio::test]
async fn msg_notify_batches_stop_before_max_body_bytes() {
    let s = TestServer::start_with(|c| {
        c.webhook.max_body_bytes = 2_000;
        c.webhook.msg_notify_interval = Duration::from_millis(200);
    })
    .await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "flavour": "wukongim", "events": ["msg.notify"]}))
        .await;
    let text = "x".repeat(300);
    for i in 0..10 {
        s.rest_send("alice", "bob", 1, &format!("{i}{text}")).await;
    }
    rcv.wait("all ten", LONG, |r| notify_ids(r).len() >= 10)
        .await;
    for r in rcv.by_event("msg.notify") {
        assert!(r.body.len() <= 2_000, "a {} byte body", r.body.len());
    }
    assert!(rcv.by_event("msg.notify").len() >= 4);
}

#[tokio::test]
async fn attempt_retention_is_enforced_and_metrics_are_exported_until_the_endpoint_is_deleted() {
    let s = TestServer::start_with(|c| {
        c.webhook.attempt_retention = Duration::from_millis(300);
        c.webhook.attempt_prune_interval = Duration::from_millis(100);
    })
    .await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap();
    s.rest_send("alice", "bob", 1, "x").await;
    let path = format!("/v1/webhooks/endpoints/{id}/attempts");
    s.poll(&path, |p| p["data"].as_array().unwrap().len() == 1)
        .await;
    let needles = [
        format!("chathook_webhook_deliveries_total{{endpoint=\"{id}\",event=\"message.sent\",outcome=\"success\"}} 1"),
        format!("chathook_webhook_attempt_latency_seconds_count{{endpoint=\"{id}\"}} 1"),
        // the depth follows the durable cursor, which moves at most every 50 ms
        format!("chathook_webhook_queue_depth{{endpoint=\"{id}\"}} 0"),
    ];
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = s.metrics().await;
        if needles.iter().all(|n| metrics.contains(n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for needle in &needles {
        assert!(metrics.contains(needle), "missing {needle} in\n{metrics}");
    }
    s.poll(&path, |p| p["data"].as_array().unwrap().is_empty())
        .await;
    // A deleted endpoint's series leave /metrics.
    let (st, _) = s
        .call(
            "DELETE",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert!(st == 200 || st == 204, "{st}");
    let metrics = s.metrics().await;
    assert!(
        !metrics.contains(&format!("endpoint=\"{id}\"")),
        "a deleted endpoint's series:\n{metrics}"
    );
}

#[tokio::test]
async fn online_statuses_batch_by_their_own_interval() {
    let s =
        TestServer::start_with(|c| c.webhook.online_status_interval = Duration::from_millis(400))
            .await;
    let rcv = Receiver::start().await;
    s.endpoint(json!({"url": rcv.url, "flavour": "wukongim", "events": ["user.onlinestatus"]}))
        .await;
    let a = s.login("alice", 0).await;
    let _b = s.login("bob", 1).await;
    drop(a);
    rcv.wait("a status batch", LONG, |r| !r.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let batches = rcv.by_event("user.onlinestatus");
    let items: Vec<String> = batches
        .iter()
        .flat_map(|r| serde_json::from_slice::<Vec<String>>(&r.body).unwrap())
        .collect();
    assert!(
        batches.len() < items.len(),
        "{} POSTs for {} statuses",
        batches.len(),
        items.len()
    );
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("bob-1-1-") && i.ends_with("-1-1")),
        "{items:?}"
    );
    assert!(
        items.iter().any(|i| i.starts_with("alice-0-0-")),
        "{items:?}"
    );
}

/// Opens `path` as a Server-Sent Events stream; yields each event's `data` JSON.
async fn sse(s: &TestServer, path: &str) -> tokio::sync::mpsc::Receiver<Value> {
    use futures_util::StreamExt;
    let response = reqwest::Client::new()
        .get(format!("{}{path}", s.api))
        .header("token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let (tx, rx) = tokio::sync::mpsc::channel(100);
    tokio::spawn(async move {
        let mut body = response.bytes_stream();
        let mut text = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = text.find("\n\n") {
                let event: String = text.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                    assert!(event.contains("event: attempt\n"), "{event}");
                    if tx.send(serde_json::from_str(data).unwrap()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test]
async fn the_attempt_log_streams_live_with_its_filters() {
    let mut s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap();
    // an attempt made before the stream opens is not sent again
    s.rest_send("alice", "bob", 1, "before").await;
    rcv.wait("the first delivery", LONG, |r| r.len() == 1).await;
    let base = format!("/v1/webhooks/endpoints/{id}/attempts");
    let (_, listed) = s.call("GET", &base, None, Some(ADMIN)).await;
    let first_id = listed["data"][0]["id"].as_i64().unwrap();
    let mut all = sse(&s, &format!("{base}/stream")).await;
    let mut failures = sse(&s, &format!("{base}/stream?status=failure")).await;
    let mut replayed = sse(&s, &format!("{base}/stream?after=0")).await;
    s.rest_send("alice", "bob", 1, "live").await;
    let next = tokio::time::timeout(LONG, all.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (next["success"].as_bool(), next["status"].as_u64()),
        (Some(true), Some(200))
    );
    assert_eq!(next["event"], "message.sent");
    assert!(next["id"].as_i64().unwrap() > first_id, "{next}");
    rcv.set(Mode::Status(500));
    s.rest_send("alice", "bob", 1, "fails").await;
    let failed = tokio::time::timeout(LONG, failures.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failed["success"].as_bool(), failed["status"].as_u64()),
        (Some(false), Some(500))
    );
    let next = tokio::time::timeout(LONG, all.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next["id"], failed["id"],
        "the unfiltered stream has it too, in order"
    );
    // `after=0` starts from the oldest
    let oldest = tokio::time::timeout(LONG, replayed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(oldest["id"].as_i64(), Some(first_id));
    // one attempt opens to the request it sent (the list leaves it out)
    let (st, one) = s
        .call("GET", &format!("{base}/{}", next["id"]), None, Some(ADMIN))
        .await;
    assert_eq!(st, 200, "{one}");
    assert_eq!(one["id"], next["id"]);
    assert!(next.get("request").is_none());
    let request: Value = serde_json::from_str(one["request"].as_str().unwrap()).unwrap();
    assert_eq!(request["type"], "message.sent");
    assert_eq!(request["data"]["channel_id"], "bob");
    for missing in ["999999", "x"] {
        let (st, body) = s
            .call("GET", &format!("{base}/{missing}"), None, Some(ADMIN))
            .await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (404, Some("attempt_not_found"))
        );
    }
    // a query parameter that does not parse is named, in the JSON error shape
    for (query, field) in [("limit=-1", "limit"), ("before=x", "before")] {
        let (st, body) = s
            .call("GET", &format!("{base}?{query}"), None, Some(ADMIN))
            .await;
        assert_eq!(
            (st, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{body}"
        );
        assert_eq!(body["error"]["code"], "query_invalid");
    }
    let (st, body) = s
        .call(
            "GET",
            &format!("{base}/stream?after=9223372036854775808"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, body["error"]["field"].as_str()),
        (400, Some("after")),
        "{body}"
    );
    // bad filters are named; an unknown endpoint is 404
    let (st, body) = s
        .call(
            "GET",
            &format!("{base}/stream?status=maybe"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!((st, body["error"]["field"].as_str()), (400, Some("status")));
    let (st, _) = s
        .call(
            "GET",
            "/v1/webhooks/endpoints/ep_none/attempts/stream",
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 404);
    // the stream ends when the server stops (a graceful stop does not wait on it)
    s.server.take().unwrap().stop().await;
    assert!(
        tokio::time::timeout(LONG, async { while all.recv().await.is_some() {} })
            .await
            .is_ok()
    );
}

/// The value of an unlabelled counter in the `/metrics` text.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in /metrics"))
}

#[tokio::test]
async fn idle_endpoints_do_not_wake_and_a_retry_wakes_at_its_due_time() {
    let s = TestServer::start_with(|c| {
        // the retry comes well after the receiver is healthy again (a failed retry would dead-letter)
        c.webhook.retry_schedule = vec![
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(1),
        ];
        c.webhook.retry_jitter = 0.0;
    })
    .await;
    let rcv = Receiver::start().await;
    for _ in 0..100 {
        s.endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
            .await;
    }
    // let each dispatcher make its first pass (a look at the retry table, the gauges)
    tokio::time::sleep(Duration::from_millis(300)).await;
    let name = "chathook_webhook_dispatcher_wakeups_total";
    let before = counter(&s.metrics().await, name);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = counter(&s.metrics().await, name) - before;
    assert!(
        idle < 10,
        "100 idle endpoints woke {idle} times in a second (a poll every 200 ms would be 500)"
    );
    // a failed delivery is retried at its due time, with nothing polling in between
    rcv.set(Mode::Status(500));
    s.rest_send("alice", "bob", 1, "retry me").await;
    rcv.wait("the first attempts", LONG, |r| r.len() >= 100)
        .await;
    rcv.set(Mode::Ok);
    // every endpoint retries its own delivery of the event: one endpoint's success must not
    // complete the others' (they share the delivery id)
    rcv.wait("the retries", LONG, |r| r.len() >= 200).await;
}

#[tokio::test]
async fn an_endpoint_moves_its_cursor_in_steps_not_a_commit_beside_each_event() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    // every message event is read and skipped: only the cursor moves
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["user.online"]}))
        .await;
    let id = ep["id"].as_str().unwrap();
    caught_up(&s, id).await;
    let name = "chathook_store_commits_total";
    let before = counter(&s.metrics().await, name);
    let started = std::time::Instant::now();
    const SENDS: u64 = 30;
    for i in 0..SENDS {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    caught_up(&s, id).await;
    let elapsed = started.elapsed();
    let commits = counter(&s.metrics().await, name) - before;
    // one commit per send, and the cursor's at most every 50 ms (one beside each send would double it)
    let cursor_steps = elapsed.as_millis() as u64 / 50 + 2;
    assert!(
        commits <= SENDS + cursor_steps,
        "{commits} commits for {SENDS} sends in {elapsed:?}"
    );
    assert!(rcv.requests().is_empty());
}

fn prune_everything_every_second(c: &mut chathook::Config) {
    c.events.retention_hours = 0;
    c.events.prune_interval_secs = 1;
}

async fn patch_enabled(s: &TestServer, id: &str, enabled: bool) -> Value {
    let (st, ep) = s
        .call(
            "PATCH",
            &format!("/v1/webhooks/endpoints/{id}"),
            Some(json!({"enabled": enabled})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200, "{ep}");
    ep
}

/// Waits until the endpoint's cursor has reached the head of the log.
async fn caught_up(s: &TestServer, id: &str) -> u64 {
    let store = s.server().store();
    let consumer = chathook_webhook::endpoint::consumer_name(id);
    for _ in 0..200 {
        if store.consumer_position(&consumer).await.unwrap() == store.head() {
            return store.head();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the endpoint's cursor never reached the head");
}

#[tokio::test]
async fn a_disabled_endpoint_holds_the_log_then_lets_retention_go_and_shows_the_gap() {
    let s = TestServer::start_with(|c| {
        prune_everything_every_second(c);
        c.webhook.hold_disabled = Duration::from_millis(300);
    })
    .await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    assert_eq!(ep["holds_event_log"], true);
    s.rest_send("alice", "bob", 1, "m1").await;
    rcv.wait("m1", LONG, |r| r.len() == 1).await;
    let cursor = caught_up(&s, &id).await;
    let ep = patch_enabled(&s, &id, false).await;
    assert!(ep["disabled_at"].is_string(), "{ep}");
    for i in 2..=6 {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    let missed_head = s.server().store().head();
    // after hold_disabled the endpoint lets go, and retention removes what it never took
    let released = s
        .poll(&format!("/v1/webhooks/endpoints/{id}"), |e| {
            e["holds_event_log"] == false
        })
        .await;
    assert!(released["gap"].is_null());
    let m = eventually("retention to empty the log", LONG, || async {
        let m = s.metrics().await;
        if counter(&m, "chathook_event_log_events") == 0 {
            Ok(m)
        } else {
            Err(m)
        }
    })
    .await;
    assert_eq!(
        counter(&m, "chathook_event_log_held_from"),
        missed_head,
        "nobody holds the log"
    );
    // enabled again: it resumes after the gap, which stays visible
    patch_enabled(&s, &id, true).await;
    let resumed = s
        .poll(&format!("/v1/webhooks/endpoints/{id}"), |e| {
            !e["gap"].is_null()
        })
        .await;
    let gap = &resumed["gap"];
    assert_eq!(gap["first_position"], cursor + 1);
    assert_eq!(gap["last_position"], missed_head);
    assert_eq!(gap["count"], missed_head - cursor);
    assert!(gap["from"].is_string() && gap["until"].is_string(), "{gap}");
    assert_eq!(resumed["holds_event_log"], true);
    s.rest_send("alice", "bob", 1, "m7").await;
    rcv.wait("m7", LONG, |r| r.len() == 2).await;
    let contents: Vec<String> = rcv
        .requests()
        .iter()
        .map(|r| r.json()["data"]["client_msg_no"].to_string())
        .collect();
    assert_eq!(
        contents.len(),
        2,
        "m2..m6 were never delivered: {contents:?}"
    );
}

#[tokio::test]
async fn a_disabled_endpoint_within_hold_disabled_keeps_its_events_and_gets_them_when_enabled() {
    let s = TestServer::start_with(prune_everything_every_second).await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "flavour": "standard", "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    patch_enabled(&s, &id, false).await;
    for i in 1..=3 {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    // retention runs meanwhile, but the disabled endpoint still holds the log
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(counter(&s.metrics().await, "chathook_event_log_events") > 0);
    patch_enabled(&s, &id, true).await;
    rcv.wait("the three missed messages", LONG, |r| r.len() == 3)
        .await;
    let (_, ep) = s
        .call(
            "GET",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert!(ep["gap"].is_null(), "{ep}");
}

#[tokio::test]
async fn operator_changes_and_failure_updates_never_overwrite_each_other() {
    let s = TestServer::start_with(|c| {
        fast_retries(c);
        c.webhook.retry_schedule = vec![Duration::ZERO; 1]
            .into_iter()
            .chain(vec![Duration::from_millis(20); 60])
            .collect();
        c.webhook.disable_after = Duration::from_secs(3600);
        c.webhook.breaker_failures = 100_000;
    })
    .await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let path = format!("/v1/webhooks/endpoints/{}", ep["id"].as_str().unwrap());
    for i in 0..20 {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    rcv.wait("the first deliveries", LONG, |r| r.len() >= 20)
        .await;
    // The receiver flips between failing and healthy while the operator edits the endpoint: every
    // flip is a health update (failing since / healthy again) racing an operator's PATCH.
    for round in 0..30 {
        rcv.set(if round % 2 == 0 {
            Mode::Status(500)
        } else {
            Mode::Ok
        });
        s.rest_send("alice", "bob", 1, &format!("r{round}")).await;
        let (st, body) = s
            .call(
                "PATCH",
                &path,
                Some(json!({"description": format!("edit {round}")})),
                Some(ADMIN),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rcv.set(Mode::Status(500));
    s.rest_send("alice", "bob", 1, "last").await;
    s.poll(&path, |b| b["failing_since"].is_string()).await;
    let (st, _) = s
        .call("PATCH", &path, Some(json!({"enabled": false})), Some(ADMIN))
        .await;
    assert_eq!(st, 200);
    // failures still in flight when it was disabled update its health, not its settings
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = s.restart(|_| {}).await;
    let (_, body) = s.call("GET", &path, None, Some(ADMIN)).await;
    assert_eq!(body["enabled"], false, "{body}");
    assert_eq!(body["description"], "edit 29", "{body}");
    assert!(
        body["disabled_reason"].is_null(),
        "the operator disabled it: {body}"
    );
    assert!(
        body["failing_since"].is_string(),
        "its health survived: {body}"
    );
    // enabling it forgets the failures
    let (_, body) = s
        .call("PATCH", &path, Some(json!({"enabled": true})), Some(ADMIN))
        .await;
    assert_eq!(body["enabled"], true, "{body}");
    assert!(body["failing_since"].is_null(), "{body}");
}
