//! How endpoints reach their receivers (issue 23, points 5 and 6): static headers and basic credentials
//! that arrive and never show in answers, mutual TLS against a real receiver that requires a client
//! certificate, a retry schedule per endpoint, throttling answers that pause an endpoint,
//! `webhook.https_only` and `webhook.proxy`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

const MASK: &str = "********";

async fn patch(s: &TestServer, id: &str, body: Value) -> (u16, Value) {
    s.call(
        "PATCH",
        &format!("/v1/webhooks/endpoints/{id}"),
        Some(body),
        Some(ADMIN),
    )
    .await
}

async fn show(s: &TestServer, id: &str) -> Value {
    let (st, v) = s
        .call(
            "GET",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    v
}

/// POSTs a test delivery to endpoint `id`; the attempt it made.
async fn test_send(s: &TestServer, id: &str) -> Value {
    let (st, attempt) = s
        .post(&format!("/v1/webhooks/endpoints/{id}/test"), json!({}))
        .await;
    assert_eq!(st, 200, "{attempt}");
    attempt
}

#[tokio::test]
async fn static_headers_and_basic_credentials_arrive_and_answers_show_them_masked() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"],
            "headers": {"X-Api-Key": "key-abc-123"},
            "basic_auth": {"username": "hook", "password": "pw-xyz-789"}}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    let (_, list) = s
        .call("GET", "/v1/webhooks/endpoints", None, Some(ADMIN))
        .await;
    for shown in [&ep, &show(&s, &id).await, &list["data"][0]] {
        assert_eq!(shown["headers"], json!({"X-Api-Key": MASK}), "{shown}");
        assert_eq!(
            shown["basic_auth"],
            json!({"username": "hook", "password": MASK})
        );
        let text = shown.to_string();
        assert!(!text.contains("key-abc-123") && !text.contains("pw-xyz-789"));
    }

    s.rest_send("alice", "bob", 1, "one").await;
    rcv.wait("the first message", LONG, |r| r.len() == 1).await;
    let first = &rcv.requests()[0];
    assert_eq!(first.headers["x-api-key"], "key-abc-123");
    // base64("hook:pw-xyz-789")
    assert_eq!(first.headers["authorization"], "Basic aG9vazpwdy14eXotNzg5");

    // A masked value in a change keeps what is stored; a new header joins it.
    let (st, v) = patch(
        &s,
        &id,
        json!({"headers": {"X-Api-Key": MASK, "X-Tenant": "t-1"}, "basic_auth": null}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["headers"], json!({"X-Api-Key": MASK, "X-Tenant": MASK}));
    assert_eq!(v["basic_auth"], Value::Null);
    s.rest_send("alice", "bob", 1, "two").await;
    rcv.wait("the second message", LONG, |r| r.len() == 2).await;
    let second = &rcv.requests()[1];
    assert_eq!(
        (
            second.headers["x-api-key"].as_str(),
            second.headers["x-tenant"].as_str()
        ),
        ("key-abc-123", "t-1")
    );
    assert!(!second.headers.contains_key("authorization"));

    // null removes every header.
    let (st, v) = patch(&s, &id, json!({"headers": null})).await;
    assert_eq!((st, &v["headers"]), (200, &json!({})), "{v}");
    s.rest_send("alice", "bob", 1, "three").await;
    rcv.wait("the third message", LONG, |r| r.len() == 3).await;
    assert!(!rcv.requests()[2].headers.contains_key("x-api-key"));
}

#[tokio::test]
async fn receiver_settings_that_break_a_rule_are_refused_naming_the_field() {
    let s = TestServer::start().await;
    let rcv = Receiver::start().await;
    let cases = [
        (
            json!({"headers": {"webhook-id": "x"}}),
            "headers.webhook-id",
            "header_reserved",
        ),
        (
            json!({"headers": {"Bad Name": "x"}}),
            "headers.Bad Name",
            "header_name_invalid",
        ),
        (
            json!({"headers": {"X-A": "line\nbreak"}}),
            "headers.X-A",
            "header_value_invalid",
        ),
        (
            json!({"headers": {"X-A": MASK}}),
            "headers.X-A",
            "masked_value_unknown",
        ),
        (
            json!({"headers": {"Authorization": "Bearer t"}, "basic_auth": {"username": "u", "password": "p"}}),
            "headers.Authorization",
            "header_conflict",
        ),
        (
            json!({"basic_auth": {"username": "a:b", "password": "p"}}),
            "basic_auth.username",
            "basic_username_invalid",
        ),
        (
            json!({"tls": {"ca_cert": "-----BEGIN CERTIFICATE-----"}}),
            "tls",
            "tls_needs_https",
        ),
        (
            json!({"retry_schedule": []}),
            "retry_schedule",
            "retry_schedule_invalid",
        ),
        (
            json!({"retry_schedule": [0, 604801]}),
            "retry_schedule",
            "retry_schedule_invalid",
        ),
    ];
    for (extra, field, code) in cases {
        let body = merged(json!({"url": rcv.url, "events": ["message.sent"]}), &extra);
        let (st, v) = s.post("/v1/webhooks/endpoints", body).await;
        assert_eq!(
            (st, refusal(&v)),
            (400, (Some(field), Some(code))),
            "{extra}: {v}"
        );
    }
    // TLS settings on an https:// URL whose PEM does not parse name the PEM.
    let (st, v) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "https://receiver.example.com/hook",
                "tls": {"ca_cert": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"}}),
        )
        .await;
    assert_eq!(
        (st, v["error"]["field"].as_str()),
        (400, Some("tls.ca_cert")),
        "{v}"
    );
    // A Go backend's null for the header map is no headers.
    let ep = s
        .endpoint(json!({"url": rcv.url, "headers": null, "retry_schedule": null}))
        .await;
    assert_eq!(
        (&ep["headers"], &ep["retry_schedule"]),
        (&json!({}), &Value::Null)
    );
}

#[tokio::test]
async fn a_receiver_that_requires_a_client_certificate_accepts_the_endpoint_with_one_and_refuses_it_without(
) {
    let s = TestServer::start().await;
    let tls = TlsReceiver::start().await;
    let client = tls.client_cert();
    let with = s
        .endpoint(json!({"url": tls.url, "events": ["message.sent"],
            "headers": {"X-Api-Key": "over-tls"},
            "tls": {"client_cert": client.cert, "client_key": client.key, "ca_cert": tls.ca_pem}}))
        .await;
    // The key never shows; the certificates (public) do.
    assert_eq!(with["tls"]["client_key"], MASK);
    assert_eq!(with["tls"]["client_cert"], client.cert.as_str());
    assert!(!with.to_string().contains("PRIVATE KEY"));
    let without = s
        .endpoint(json!({"url": tls.url, "events": ["message.sent"],
            "tls": {"ca_cert": tls.ca_pem}}))
        .await;

    let attempt = test_send(&s, with["id"].as_str().unwrap()).await;
    assert_eq!(
        (attempt["success"].as_bool(), attempt["status"].as_u64()),
        (Some(true), Some(200)),
        "{attempt}"
    );
    assert_eq!(tls.requests().len(), 1);
    assert_eq!(tls.requests()[0]["x-api-key"], "over-tls");

    let attempt = test_send(&s, without["id"].as_str().unwrap()).await;
    assert_eq!(attempt["success"], false, "{attempt}");
    assert!(!attempt["error"].as_str().unwrap().is_empty());
    assert_eq!(tls.requests().len(), 1, "nothing reached the receiver");
    assert!(tls.refused() >= 1, "the handshake was refused");

    // A masked key in a change keeps the stored one: still accepted.
    let id = with["id"].as_str().unwrap();
    let (st, v) = patch(
        &s,
        id,
        json!({"tls": {"client_cert": client.cert, "client_key": MASK, "ca_cert": tls.ca_pem}}),
    )
    .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(test_send(&s, id).await["success"], true);
    // Without the CA, the receiver's certificate is not trusted.
    let (st, _) = patch(&s, id, json!({"tls": null})).await;
    assert_eq!(st, 200);
    assert_eq!(test_send(&s, id).await["success"], false);
    assert_eq!(tls.requests().len(), 2);
}

#[tokio::test]
async fn each_endpoint_retries_on_its_own_schedule_then_dead_letters() {
    let s = TestServer::start_with(|c| {
        c.webhook.retry_jitter = 0.0;
        c.webhook.breaker_failures = 1000;
    })
    .await;
    let rcv = Receiver::start().await;
    rcv.set(Mode::Status(500));
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"], "retry_schedule": [0, 0, 1]}))
        .await;
    assert_eq!(ep["retry_schedule"], json!([0, 0, 1]));
    let id = ep["id"].as_str().unwrap().to_string();
    s.rest_send("alice", "bob", 1, "doomed").await;
    let path = format!("/v1/webhooks/endpoints/{id}/dead-letters");
    let dead = s
        .poll(&path, |b| b["data"].as_array().unwrap().len() == 1)
        .await;
    assert_eq!(dead["data"][0]["attempts"], 3);
    let reqs = rcv.requests();
    assert_eq!(reqs.len(), 3, "three attempts, then nothing");
    assert!(
        reqs[2].at.duration_since(reqs[1].at) >= Duration::from_millis(950),
        "the third attempt waited its second"
    );
    // null follows the server's schedule again.
    let (st, v) = patch(&s, &id, json!({"retry_schedule": null})).await;
    assert_eq!((st, &v["retry_schedule"]), (200, &Value::Null));
}

#[tokio::test]
async fn a_throttling_answer_pauses_the_endpoint_for_its_retry_after() {
    let s = TestServer::start_with(|c| {
        c.webhook.retry_schedule = vec![
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(1),
        ];
        c.webhook.retry_jitter = 0.0;
        c.webhook.breaker_failures = 1000;
    })
    .await;
    let rcv = Receiver::start().await;
    rcv.set(Mode::RetryAfter(502, 2));
    let ep = s
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    s.rest_send("alice", "bob", 1, "first").await;
    rcv.wait("the 502", LONG, |r| r.len() == 1).await;
    let attempts = format!("/v1/webhooks/endpoints/{id}/attempts");
    s.poll(&attempts, |b| {
        b["data"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    rcv.set(Mode::Ok);
    // Sent while the endpoint is paused: it waits with the retried one.
    s.rest_send("alice", "bob", 1, "second").await;
    rcv.wait("both delivered", LONG, |r| r.len() == 3).await;
    let reqs = rcv.requests();
    for later in &reqs[1..] {
        assert!(
            later.at.duration_since(reqs[0].at) >= Duration::from_millis(1900),
            "nothing went out during the two seconds the 502 asked for"
        );
    }

    // 504 without Retry-After pauses too (for the backoff's first second).
    rcv.set(Mode::Status(504));
    s.rest_send("alice", "bob", 1, "third").await;
    rcv.wait("the 504", LONG, |r| r.len() == 4).await;
    s.poll(&attempts, |b| {
        b["data"].as_array().is_some_and(|a| a.len() >= 4)
    })
    .await;
    rcv.set(Mode::Ok);
    s.rest_send("alice", "bob", 1, "fourth").await;
    rcv.wait("the rest delivered", LONG, |r| r.len() == 6).await;
    let reqs = rcv.requests();
    assert!(reqs[4].at.duration_since(reqs[3].at) >= Duration::from_millis(950));
}

#[tokio::test]
async fn https_only_refuses_http_urls_in_the_api_and_the_config_file() {
    let s = TestServer::start_with(|c| c.webhook.https_only = true).await;
    let (st, v) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": "http://receiver.example.com/hook"}),
        )
        .await;
    assert_eq!(
        (
            st,
            v["error"]["field"].as_str(),
            v["error"]["code"].as_str()
        ),
        (400, Some("url"), Some("url_https_required")),
        "{v}"
    );
    let ep = s
        .endpoint(json!({"url": "https://receiver.example.com/hook"}))
        .await;
    let (st, v) = patch(
        &s,
        ep["id"].as_str().unwrap(),
        json!({"url": "http://receiver.example.com/hook"}),
    )
    .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("url_https_required"))
    );

    let tmp = tempfile::tempdir().unwrap();
    let mut config = test_config(tmp.path());
    config.webhook.https_only = true;
    config.webhook.http_addr = Some("http://127.0.0.1:9/hook".into());
    let error = start_refused(config).await;
    assert!(error.contains("webhook.https_only"), "{error}");
}

#[tokio::test]
async fn deliveries_go_through_the_configured_proxy_with_its_credentials() {
    let proxy = Receiver::start().await;
    let base = proxy.url.trim_end_matches("/hook").to_string();
    let with_user = base.replace("http://", "http://relay-user:relay-pass@");
    let s = TestServer::start_with(|c| c.webhook.proxy = Some(with_user)).await;
    // The receiver's name resolves nowhere: only the proxy reaches it.
    let ep = s
        .endpoint(json!({"url": "http://receiver.example.com/hook", "events": ["message.sent"]}))
        .await;
    s.rest_send("alice", "bob", 1, "via proxy").await;
    proxy
        .wait("the proxied request", LONG, |r| r.len() == 1)
        .await;
    let got = &proxy.requests()[0];
    assert_eq!(got.headers["host"], "receiver.example.com");
    // base64("relay-user:relay-pass")
    assert_eq!(
        got.headers["proxy-authorization"],
        "Basic cmVsYXktdXNlcjpyZWxheS1wYXNz"
    );
    assert_eq!(got.json()["data"]["channel_id"], "bob", "{:?}", got.json());
    assert!(ep["id"].is_string());
}
