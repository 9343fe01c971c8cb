//! Operational events (issue 23, point 1): the engine reports its own endpoints failing, recovering,
//! paused, disabled and enabled, dead letters and relay refusal spikes as events, delivered in the
//! standard flavour to the endpoints that select them (never to the endpoint they concern), logged,
//! and listed for the console.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

const OPS_EVENTS: [&str; 7] = [
    "endpoint.failing",
    "endpoint.recovered",
    "endpoint.breaker_open",
    "endpoint.disabled",
    "endpoint.enabled",
    "delivery.exhausted",
    "relay.refused",
];

/// The operational events a standard receiver got, as (type, data).
fn reports(r: &Receiver) -> Vec<(String, Value)> {
    r.requests()
        .iter()
        .map(|q| q.json())
        .filter(|v| OPS_EVENTS.iter().any(|k| v["type"].as_str() == Some(k)))
        .map(|v| (v["type"].as_str().unwrap().to_string(), v["data"].clone()))
        .collect()
}

fn of_type<'a>(all: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, d)| d)
        .collect()
}

/// A server whose failed deliveries retry at once a few times, then every 200 ms, with no breaker in
/// the way.
async fn server(tune: impl FnOnce(&mut chathook::Config)) -> TestServer {
    TestServer::start_with(|c| {
        let mut schedule = vec![Duration::ZERO; 6];
        schedule.extend([Duration::from_millis(200); 20]);
        c.webhook.retry_schedule = schedule;
        c.webhook.retry_jitter = 0.0;
        c.webhook.breaker_failures = 1000;
        tune(c);
    })
    .await
}

/// The operations endpoint: every operational event.
async fn operations(s: &TestServer) -> (Receiver, String) {
    let ops = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": ops.url, "events": OPS_EVENTS}))
        .await;
    (ops, ep["id"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn an_endpoint_failing_four_times_is_reported_once_and_its_recovery_once() {
    let s = server(|_| {}).await;
    let (ops, _) = operations(&s).await;
    let push = Receiver::start().await;
    push.set(Mode::Status(500));
    let ep = s
        .endpoint(json!({"url": push.url, "events": ["message.sent"], "description": "push"}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    for i in 0..2 {
        s.rest_send("alice", "bob", 1, &format!("m{i}")).await;
    }
    push.wait("eight failed attempts", LONG, |r| r.len() >= 8)
        .await;
    ops.wait("endpoint.failing", LONG, |_| !reports(&ops).is_empty())
        .await;
    push.set(Mode::Ok);
    ops.wait("endpoint.recovered", LONG, |_| {
        !of_type(&reports(&ops), "endpoint.recovered").is_empty()
    })
    .await;
    tokio::time::sleep(SHORT).await;
    let all = reports(&ops);
    let failing = of_type(&all, "endpoint.failing");
    assert_eq!(failing.len(), 1, "once per run of failures: {all:?}");
    assert_eq!(
        (
            failing[0]["endpoint_id"].as_str(),
            failing[0]["url"].as_str(),
            failing[0]["description"].as_str(),
            failing[0]["consecutive_failures"].as_u64(),
            failing[0]["last_error"].as_str(),
        ),
        (
            Some(id.as_str()),
            Some(push.url.as_str()),
            Some("push"),
            Some(4),
            Some("HTTP 500")
        )
    );
    assert!(failing[0]["failing_since_ms"].is_i64());
    let recovered = of_type(&all, "endpoint.recovered");
    assert_eq!(recovered.len(), 1, "{all:?}");
    assert_eq!(recovered[0]["endpoint_id"], id.as_str());
    // Standard Webhooks: signed, with the envelope's fields.
    let req = ops
        .requests()
        .into_iter()
        .find(|r| r.json()["type"] == "endpoint.failing")
        .unwrap();
    assert!(req.headers.contains_key("webhook-signature"));
    assert!(req.json()["timestamp"].is_string());

    // Durable: in the event log, and listed for the console, newest first.
    s.wait_event("endpoint.failing in the log", |e| {
        e.event.name() == "endpoint.failing"
    })
    .await;
    let notices = s
        .poll("/v1/webhooks/notices", |b| {
            b["data"].as_array().is_some_and(|a| a.len() >= 2)
        })
        .await;
    assert_eq!(notices["data"][0]["type"], "endpoint.recovered");
    assert_eq!(notices["data"][1]["type"], "endpoint.failing");
    assert_eq!(notices["data"][1]["data"]["endpoint_id"], id.as_str());
    assert!(notices["data"][1]["position"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn an_endpoint_never_receives_the_reports_about_itself() {
    let s = server(|_| {}).await;
    let own = Receiver::start().await;
    own.set(Mode::Status(500));
    let ep = s
        .endpoint(json!({"url": own.url, "events": ["message.sent", "endpoint.failing", "endpoint.recovered"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    s.rest_send("alice", "bob", 1, "x").await;
    s.poll("/v1/webhooks/notices", |b| {
        b["data"][0]["data"]["endpoint_id"] == id.as_str()
    })
    .await;
    own.set(Mode::Ok);
    s.poll("/v1/webhooks/notices", |b| {
        b["data"][0]["type"] == "endpoint.recovered"
    })
    .await;
    tokio::time::sleep(SHORT).await;
    assert!(reports(&own).is_empty(), "{:?}", reports(&own));
}

#[tokio::test]
async fn a_disabled_endpoint_is_reported_with_why_and_again_when_enabled() {
    let s = server(|_| {}).await;
    let (ops, _) = operations(&s).await;
    let gone = Receiver::start().await;
    gone.set(Mode::Status(410));
    let ep = s
        .endpoint(json!({"url": gone.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    s.rest_send("alice", "bob", 1, "x").await;
    ops.wait("endpoint.disabled", LONG, |_| {
        !of_type(&reports(&ops), "endpoint.disabled").is_empty()
    })
    .await;
    let all = reports(&ops);
    let disabled = of_type(&all, "endpoint.disabled");
    assert_eq!(disabled[0]["endpoint_id"], id.as_str());
    assert_eq!(disabled[0]["reason"], "the endpoint answered 410 Gone");
    assert_eq!(disabled[0]["last_error"], "HTTP 410");

    gone.set(Mode::Ok);
    let (st, v) = s
        .call(
            "PATCH",
            &format!("/v1/webhooks/endpoints/{id}"),
            Some(json!({"enabled": true})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    ops.wait("endpoint.enabled", LONG, |_| {
        !of_type(&reports(&ops), "endpoint.enabled").is_empty()
    })
    .await;
    let all = reports(&ops);
    let enabled = of_type(&all, "endpoint.enabled");
    assert_eq!(
        (enabled.len(), enabled[0]["endpoint_id"].as_str()),
        (1, Some(id.as_str()))
    );
    // An endpoint already delivering is not reported as enabled again.
    s.call(
        "PATCH",
        &format!("/v1/webhooks/endpoints/{id}"),
        Some(json!({"enabled": true})),
        Some(ADMIN),
    )
    .await;
    tokio::time::sleep(SHORT).await;
    assert_eq!(of_type(&reports(&ops), "endpoint.enabled").len(), 1);
}

#[tokio::test]
async fn dead_letters_are_reported_at_once_then_counted_per_window() {
    let s = server(|c| c.webhook.exhausted_notice_window = Duration::from_millis(700)).await;
    let (ops, _) = operations(&s).await;
    let dead = Receiver::start().await;
    dead.set(Mode::Status(500));
    let ep = s
        .endpoint(json!({"url": dead.url, "events": ["message.sent"], "retry_schedule": [0]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        s.rest_send("alice", "bob", 1, &format!("d{i}")).await;
    }
    ops.wait("every dead letter reported", LONG, |_| {
        let all = reports(&ops);
        let total: u64 = of_type(&all, "delivery.exhausted")
            .iter()
            .map(|d| d["count"].as_u64().unwrap())
            .sum();
        total == 3
    })
    .await;
    let all = reports(&ops);
    let exhausted = of_type(&all, "delivery.exhausted");
    assert_eq!(exhausted[0]["count"], 1, "the first at once: {all:?}");
    assert!(exhausted.len() <= 3);
    for e in &exhausted {
        assert_eq!(e["endpoint_id"], id.as_str());
        assert_eq!(e["last_error"], "HTTP 500");
        assert_eq!(e["last_event"], "message.sent");
        assert!(e["last_delivery_id"].as_str().unwrap().starts_with("evt_"));
    }
}

#[tokio::test]
async fn a_relay_source_refusing_many_requests_is_reported_with_its_reasons() {
    let s = server(|c| {
        c.relay.refused_notice_after = 3;
        c.relay.refused_notice_window = Duration::from_millis(300);
    })
    .await;
    let (ops, _) = operations(&s).await;
    let (st, source) = s
        .post(
            "/v1/relay/sources",
            json!({"kind": "wukongim", "description": "wk prod"}),
        )
        .await;
    assert_eq!(st, 201, "{source}");
    let url = source["ingest_url"].as_str().unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    for _ in 0..4 {
        let st = reqwest::Client::new()
            .post(format!("{base}/AAAA?event=msg.notify"))
            .body("[]")
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(st, 404);
    }
    ops.wait("relay.refused", LONG, |_| {
        !of_type(&reports(&ops), "relay.refused").is_empty()
    })
    .await;
    let all = reports(&ops);
    let refused = of_type(&all, "relay.refused");
    assert_eq!(
        (
            refused[0]["source_id"].as_str(),
            refused[0]["description"].as_str(),
            refused[0]["count"].as_u64(),
            &refused[0]["reasons"]
        ),
        (
            source["id"].as_str(),
            Some("wk prod"),
            Some(4),
            &json!({"secret_wrong": 4})
        )
    );
    // Quiet windows report nothing more.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(of_type(&reports(&ops), "relay.refused").len(), 1);
}

#[tokio::test]
async fn operational_events_need_the_standard_flavour_and_are_in_the_catalog() {
    let s = TestServer::start().await;
    let (st, v) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "http://127.0.0.1:9/x", "flavour": "wukongim", "events": ["endpoint.failing"]}),
        )
        .await;
    assert_eq!(
        (
            st,
            v["error"]["field"].as_str(),
            v["error"]["code"].as_str()
        ),
        (400, Some("events"), Some("operational_flavour")),
        "{v}"
    );
    let (_, types) = s
        .call("GET", "/v1/webhooks/event-types", None, Some(ADMIN))
        .await;
    let names: Vec<&str> = types["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for kind in OPS_EVENTS {
        assert!(names.contains(&kind), "{kind} in {names:?}");
    }
    let (st, v) = s
        .call("GET", "/v1/webhooks/notices?limit=0", None, Some(ADMIN))
        .await;
    assert_eq!((st, v["error"]["field"].as_str()), (400, Some("limit")));
}
