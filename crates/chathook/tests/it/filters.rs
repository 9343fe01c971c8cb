//! Endpoint filters (issue 23): each list narrows one dimension of what an endpoint takes; what a
//! filter leaves out is passed over, never a failure, and counted in the endpoint's stats.

use std::time::Duration;

use serde_json::{json, Value};

use crate::util::*;

/// An event as a test names it: `(type, from_uid or uid, channel_id)`.
type Seen = (String, String, String);

/// What a standard receiver got, sorted.
fn got(r: &Receiver) -> Vec<Seen> {
    let mut v: Vec<Seen> = r
        .requests()
        .iter()
        .map(|q| {
            let v = q.json();
            let d = &v["data"];
            let who = d["from_uid"]
                .as_str()
                .or(d["uid"].as_str())
                .unwrap_or_default();
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                who.to_string(),
                d["channel_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn sent(from: &str, channel: &str) -> Seen {
    ("message.sent".into(), from.into(), channel.into())
}

fn online(uid: &str) -> Seen {
    ("user.online".into(), uid.into(), String::new())
}

#[tokio::test]
async fn each_filter_narrows_its_own_dimension_and_what_it_leaves_out_is_counted() {
    let s = TestServer::start().await;
    s.group("team-a", &["carol", "dave"]).await;
    s.group("other", &["alice", "dave"]).await;
    let cases: Vec<(Value, Vec<Seen>)> = vec![
        (
            json!({"channel_types": [2]}),
            vec![
                online("alice"),
                online("bob"),
                sent("alice", "other"),
                sent("carol", "team-a"),
            ],
        ),
        (
            json!({"channel_ids": ["team-*"]}),
            vec![online("alice"), online("bob"), sent("carol", "team-a")],
        ),
        (
            json!({"from_uids": ["alice"]}),
            vec![
                online("alice"),
                online("bob"),
                sent("alice", "bob"),
                sent("alice", "other"),
            ],
        ),
        (
            json!({"uids": ["bob"]}),
            vec![
                online("bob"),
                sent("alice", "bob"),
                sent("alice", "other"),
                sent("carol", "team-a"),
            ],
        ),
        (
            json!({"payload_types": [2]}),
            vec![online("alice"), online("bob"), sent("carol", "team-a")],
        ),
        (
            json!({"channel_types": [2], "from_uids": ["alice"], "uids": null}),
            vec![online("alice"), online("bob"), sent("alice", "other")],
        ),
    ];
    let mut receivers = Vec::new();
    for (filters, expected) in cases {
        let r = Receiver::start().await;
        let ep = s
            .endpoint(json!({"url": r.url, "flavour": "standard", "events": ["message.sent", "user.online"],
                             "filters": filters}))
            .await;
        receivers.push((r, ep, expected));
    }
    // an endpoint taking only a relay source's events gets none of the IM core's
    let relay_only = Receiver::start().await;
    let quiet = s
        .endpoint(json!({"url": relay_only.url, "flavour": "standard", "events": ["message.sent", "user.online"],
                         "sources": ["src_elsewhere"]}))
        .await;

    let _alice = s.login("alice", 0).await;
    let _bob = s.login("bob", 0).await;
    assert_eq!(s.rest_send("alice", "bob", 1, "hi bob").await.0, 200);
    assert_eq!(s.rest_send("alice", "other", 2, "hi group").await.0, 200);
    let image = b64(&json!({"type": 2, "url": "https://img.example/a.png"}).to_string());
    let (st, body) = s
        .post("/message/send", json!({"from_uid": "carol", "channel_id": "team-a", "channel_type": 2, "payload": image}))
        .await;
    assert_eq!(st, 200, "{body}");

    for (r, _, expected) in &receivers {
        r.wait("the filtered events", Duration::from_secs(20), |q| {
            q.len() >= expected.len()
        })
        .await;
    }
    // a moment for anything a filter wrongly let through
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (r, ep, expected) in &receivers {
        let mut expected = expected.clone();
        expected.sort();
        assert_eq!(got(r), expected, "filters {}", ep["filters"]);
        // stats: 5 events selected, those not delivered were filtered, and no failure
        let id = ep["id"].as_str().unwrap();
        let stats = s
            .poll(
                &format!("/v1/webhooks/endpoints/{id}/stats?window=1h"),
                |v| v["filtered"].is_u64(),
            )
            .await;
        assert_eq!(stats["filtered"], 5 - expected.len() as u64, "{stats}");
        assert_eq!(stats["failures"], 0);
    }
    assert!(relay_only.requests().is_empty());
    let id = quiet["id"].as_str().unwrap();
    let stats = s
        .poll(
            &format!("/v1/webhooks/endpoints/{id}/stats?window=1h"),
            |v| v["filtered"] == 5,
        )
        .await;
    assert_eq!(stats["attempts"], 0);
}

#[tokio::test]
async fn filters_are_checked_shown_changed_and_cleared() {
    let s = TestServer::start().await;
    let r = Receiver::start().await;
    let (st, bad) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": r.url, "events": ["message.sent"], "filters": {"channel_types": [0]}}),
        )
        .await;
    assert_eq!(
        (st, bad["error"]["field"].clone()),
        (400, json!("filters.channel_types")),
        "{bad}"
    );
    let (st, bad) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": r.url, "events": ["message.sent"], "filters": {"rooms": ["x"]}}),
        )
        .await;
    assert_eq!(st, 400, "{bad}");
    let too_many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let (st, bad) = s
        .post(
            "/v1/webhooks/endpoints",
            json!({"url": r.url, "events": ["message.sent"], "filters": {"from_uids": too_many}}),
        )
        .await;
    assert_eq!(
        (st, bad["error"]["field"].clone()),
        (400, json!("filters.from_uids"))
    );

    let ep = s
        .endpoint(json!({"url": r.url, "events": ["message.sent"], "filters": {"channel_ids": ["g*"], "payload_types": [1, 2]}}))
        .await;
    assert_eq!(
        ep["filters"],
        json!({"channel_ids": ["g*"], "payload_types": [1, 2]})
    );
    let id = ep["id"].as_str().unwrap();
    let path = format!("/v1/webhooks/endpoints/{id}");
    let (st, changed) = s
        .call(
            "PATCH",
            &path,
            Some(json!({"filters": {"uids": ["alice"]}})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, changed["filters"].clone()),
        (200, json!({"uids": ["alice"]})),
        "a change replaces every filter"
    );
    let (_, cleared) = s
        .call("PATCH", &path, Some(json!({"filters": null})), Some(ADMIN))
        .await;
    assert_eq!(cleared["filters"], json!({}));
}

#[tokio::test]
async fn wukongims_agent_webhook_is_an_endpoint_of_agent_channels_only() {
    let agent = Receiver::start().await;
    let main = Receiver::start().await;
    let (agent_url, main_url) = (agent.url.clone(), main.url.clone());
    let s = TestServer::start_with(move |c| {
        c.webhook.http_addr = Some(main_url);
        c.webhook.agent_http_addr = Some(agent_url);
        c.webhook.msg_notify_interval = Duration::from_millis(50);
    })
    .await;
    let (_, list) = s
        .call("GET", "/v1/webhooks/endpoints", None, Some(ADMIN))
        .await;
    let agent_ep = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["description"] == "agent.webhook.httpAddr")
        .expect("an endpoint for agent.webhook.httpAddr")
        .clone();
    assert_eq!(agent_ep["filters"], json!({"channel_types": [11, 12]}));
    assert_eq!(agent_ep["read_only"], true);
    // a WuKongIM relay source brings agent-channel messages (chathook's own IM core has none)
    let (st, src) = s
        .post("/v1/relay/sources", json!({"kind": "wukongim"}))
        .await;
    assert_eq!(st, 201);
    let message = |id: i64, channel_type: u8| {
        json!({"header": {"no_persist": 0, "red_dot": 1, "sync_once": 0}, "message_id": id,
               "message_seq": 1, "from_uid": "u1", "channel_id": "u1@agent-a", "channel_type": channel_type,
               "timestamp": 1_700_000_000, "payload": b64("hi")})
    };
    let resp = reqwest::Client::new()
        .post(format!(
            "{}?event=msg.notify",
            src["ingest_url"].as_str().unwrap()
        ))
        .json(&json!([message(1, 11), message(2, 1), message(3, 12)]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    agent
        .wait("the agent messages", Duration::from_secs(20), |r| {
            notify_ids(r).len() >= 2
        })
        .await;
    main.wait("every message", Duration::from_secs(20), |r| {
        notify_ids(r).len() >= 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(notify_ids(&agent.requests()), [1, 3]);
}
