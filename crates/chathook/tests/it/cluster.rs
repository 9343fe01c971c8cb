//! Several nodes on one PostgreSQL and one NATS, both started for the test: messages reach
//! connections on every node, in seq order when senders of one channel are on different nodes;
//! presence, tokens and kicks are cluster-wide; NATS going away costs speed, not messages.

use std::time::Duration;

use chathook::config::Backend;
use chathook_testkit::{Nats, Postgres};
use serde_json::json;

use crate::ordering::{assert_in_order, pipelined_sends, received_seqs};
use crate::util::*;

/// A shared database and NATS for the nodes of one test.
pub(crate) struct Shared {
    /// Held for its lifetime: the database stops when the test ends.
    _pg: Postgres,
    pub nats: Option<Nats>,
    pub url: String,
}

impl Shared {
    pub(crate) fn start(name: &str) -> Shared {
        let pg = Postgres::start().unwrap();
        let url = pg.database(name).unwrap();
        Shared {
            _pg: pg,
            nats: Some(Nats::start().unwrap()),
            url,
        }
    }

    /// Node `node_id`'s settings.
    pub(crate) fn node(&self, node_id: u16) -> impl FnOnce(&mut chathook::Config) + '_ {
        let nats = self.nats.as_ref().map(Nats::url).unwrap_or_default();
        move |c| {
            c.node_id = node_id;
            c.storage.backend = Backend::Postgres;
            c.storage.postgres_url = Some(self.url.clone());
            c.storage.postgres_max_connections = 4;
            c.cluster.nats_url = nats;
            c.cluster.heartbeat_ms = 100;
            c.cluster.node_timeout_ms = 1_000;
            c.cluster.gap_wait_ms = 100;
            c.cluster.lease_ms = 3_000;
            c.limits.sends_per_sec = 0;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_cross_nodes_one_to_one_in_groups_and_from_the_backend() {
    let shared = Shared::start("crossing");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let mut alice = a.login("alice", 0).await;
    let mut bob = b.login("bob", 0).await;
    // 1:1 from node A to node B and back
    let ack = alice.send_msg("bob", 1, "m-1", "hello bob").await;
    assert_eq!(ack["result"]["messageSeq"], 1, "{ack}");
    let got = bob.recv(LONG, true).await.expect("bob on node B receives");
    assert_eq!(got["params"]["channelId"], "alice");
    assert_eq!(
        payload_json(&got["params"]["payload"]),
        json!({"type": 1, "content": "hello bob"})
    );
    let ack = bob.send_msg("alice", 1, "m-2", "hello alice").await;
    assert_eq!(ack["result"]["messageSeq"], 2, "{ack}");
    let got = alice
        .recv(LONG, true)
        .await
        .expect("alice on node A receives");
    assert_eq!(got["params"]["messageSeq"], 2);
    // a group made through node A, members on both nodes, a sender on B
    a.group("g1", &["alice", "bob", "carol"]).await;
    let mut carol = a.login("carol", 1).await;
    let ack = bob.send_msg("g1", 2, "g-1", "to all").await;
    assert_eq!(ack["result"]["messageSeq"], 1, "{ack}");
    for (who, c) in [("alice", &mut alice), ("carol", &mut carol)] {
        let got = c
            .recv(LONG, true)
            .await
            .unwrap_or_else(|| panic!("{who} gets it"));
        assert_eq!(got["params"]["channelId"], "g1");
    }
    assert!(
        bob.recv(SHORT, true).await.is_none(),
        "not echoed to the sending connection"
    );
    // a member added through node B is reached on node A (node A's cache follows)
    b.post_ok(
        "/channel/subscriber_add",
        json!({"channel_id": "g1", "channel_type": 2, "subscribers": ["dave"]}),
    )
    .await;
    let mut dave = a.login("dave", 0).await;
    // a backend's send through node B: to every connection, the sender's own ones excepted
    let (st, body) = b
        .post(
            "/message/send",
            json!({"header": {"red_dot": 1}, "from_uid": "alice", "channel_id": "g1",
                   "channel_type": 2, "payload": b64("{\"type\":1}")}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    for (who, c) in [
        ("bob", &mut bob),
        ("carol", &mut carol),
        ("dave", &mut dave),
    ] {
        let got = c
            .recv(LONG, true)
            .await
            .unwrap_or_else(|| panic!("{who} gets the backend's"));
        assert_eq!(got["params"]["messageSeq"], 2, "{who}: {got}");
    }
    assert!(
        alice.recv(SHORT, true).await.is_none(),
        "the sender's connections skipped"
    );
    // a CMD message to listed subscribers through node A reaches bob on node B
    let (st, body) = a
        .post(
            "/message/send",
            json!({"header": {"sync_once": 1}, "from_uid": "sys", "channel_id": "",
                   "channel_type": 1, "subscribers": ["bob"], "payload": b64("{\"cmd\":1}")}),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let got = bob.recv(LONG, true).await.expect("bob gets the CMD");
    assert_eq!(got["params"]["fromUid"], "sys");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_of_one_channel_on_two_nodes_every_connection_in_seq_order() {
    let shared = Shared::start("order");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    a.group("g", &["s1", "s2", "s3", "s4", "r1", "r2"]).await;
    let per_sender = 25;
    let mut receivers = [a.login("r1", 0).await, b.login("r2", 0).await];
    let mut senders = vec![
        a.login("s1", 0).await,
        b.login("s2", 0).await,
        a.login("s3", 0).await,
        b.login("s4", 0).await,
    ];
    let tasks: Vec<_> = senders
        .drain(..)
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                pipelined_sends(&mut c, "g", 2, &format!("s{i}"), per_sender).await;
                c
            })
        })
        .collect();
    let total = per_sender * tasks.len();
    for (i, r) in receivers.iter_mut().enumerate() {
        let seqs = received_seqs(r, "g", total).await;
        assert_in_order(&seqs, total, &format!("receiver on node {}", i + 1));
        assert_eq!(seqs.first(), Some(&1));
        assert_eq!(seqs.last(), Some(&(total as u64)), "gap-free: {seqs:?}");
    }
    for t in tasks {
        t.await.unwrap();
    }
    // the same seen by the history
    let page = a.sync("r1", "g", 2, (0, 0), 1_000, 0).await;
    assert_eq!(seqs(&page), (1..=total as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_tokens_and_kicks_are_cluster_wide() {
    let shared = Shared::start("presence");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    // a token registered through node A works on node B
    a.token("erin", "tok-e", 1, 1).await;
    let mut on_b = Client::open(&b.ws).await;
    let r = on_b.connect("erin", "tok-e", 1).await;
    assert_eq!(r["result"]["reasonCode"], 1, "{r}");
    // her second device, on node A, is counted with the first
    let _on_a = a.login("erin", 0).await;
    let online = a
        .wait_event("erin's second online", |e| {
            matches!(&e.event, chathook_events::Event::UserOnline(c)
                if c.uid == "erin" && c.device_flag == 0)
        })
        .await;
    let chathook_events::Event::UserOnline(change) = online.event else {
        unreachable!()
    };
    assert_eq!(
        (change.device_online_count, change.total_online_count),
        (1, 2)
    );
    // connection ids carry the node id
    assert_eq!(change.conn_id >> 40, 1, "{}", change.conn_id);
    // /user/onlinestatus through either node lists both connections (node B once it applied
    // node A's commit)
    for node in [&a, &b] {
        eventually("erin's two connections", LONG, || async {
            let (st, body) = node.post("/user/onlinestatus", json!(["erin"])).await;
            assert_eq!(st, 200);
            let mut flags: Vec<u64> = body
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["device_flag"].as_u64().unwrap())
                .collect();
            flags.sort();
            match flags == [0, 1] {
                true => Ok(()),
                false => Err(body.to_string()),
            }
        })
        .await;
    }
    // erin's primary device is on node B: a message to her through node A is not "offline"
    let (st, _) = a.rest_send("frank", "erin", 1, "hi").await;
    assert_eq!(st, 200);
    assert!(on_b.recv(LONG, true).await.is_some());
    let offline = a.events().await.into_iter().any(|e| {
        matches!(&e.event, chathook_events::Event::MessageOffline(o) if o.to_uids.contains(&"erin".to_string()))
    });
    assert!(!offline, "erin counted online through node B");
    // the backend quits her web device through node A: node B closes it
    a.post_ok(
        "/user/device_quit",
        json!({"uid": "erin", "device_flag": 1}),
    )
    .await;
    let closed = on_b.closed(LONG).await;
    assert!(closed.disconnect.is_some() || closed.code.is_some());
    eventually("erin online once, on node B", LONG, || async {
        let (_, body) = a.post("/user/onlinestatus", json!(["erin"])).await;
        match body.as_array().map(|a| a.len()) {
            Some(1) => Ok(()),
            _ => Err(body.to_string()),
        }
    })
    .await;
    // a ban through node A ends gus's session on node B with reason 19, and node B refuses him
    let mut gus = b.login("gus", 0).await;
    a.post_ok(
        "/channel/info",
        json!({"channel_id": "gus", "channel_type": 1, "ban": 1}),
    )
    .await;
    let closed = gus.closed(LONG).await;
    let disconnect = closed.disconnect.expect("a disconnect notification");
    assert_eq!(disconnect["params"]["reasonCode"], 19, "{disconnect}");
    let mut again = Client::open(&b.ws).await;
    let r = again.connect("gus", "tok-gus-0", 0).await;
    assert_eq!(r["result"]["reasonCode"], 19, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_nats_messages_still_arrive_from_the_database() {
    let mut shared = Shared::start("nonats");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let mut alice = a.login("alice", 0).await;
    let mut bob = b.login("bob", 0).await;
    let mut carol = a.login("carol", 0).await;
    // node A knows group g (it delivered to it) before NATS goes
    a.group("g", &["alice", "bob"]).await;
    bob.send_msg("g", 2, "g-1", "first").await;
    assert!(alice.recv(LONG, true).await.is_some());
    drop(shared.nats.take());
    for i in 1..=5 {
        let ack = alice
            .send_msg("bob", 1, &format!("n-{i}"), "still here")
            .await;
        assert_eq!(ack["result"]["messageSeq"], i, "{ack}");
    }
    let seqs = received_seqs(&mut bob, "alice", 5).await;
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    // carol joins through node B (its order to reload the group is lost with NATS): node A takes
    // the change from the log before the group's next message, and carol on node A gets it
    b.post_ok(
        "/channel/subscriber_add",
        json!({"channel_id": "g", "channel_type": 2, "subscribers": ["carol"]}),
    )
    .await;
    bob.send_msg("g", 2, "g-2", "welcome").await;
    let got = carol
        .recv(LONG, true)
        .await
        .expect("carol gets the group's message");
    assert_eq!(got["params"]["messageSeq"], 2, "{got}");
}

/// Node `node_id` as the real binary, in `dir`, with the settings of [`Shared::node`].
async fn spawn_node(shared: &Shared, node_id: u16, dir: &std::path::Path) -> Proc {
    let nats = shared.nats.as_ref().map(Nats::url).unwrap_or_default();
    spawn_binary_with(
        dir,
        &[
            ("CHATHOOK_NODE_ID", node_id.to_string()),
            ("CHATHOOK_STORAGE__BACKEND", "postgres".into()),
            ("CHATHOOK_STORAGE__POSTGRES_URL", shared.url.clone()),
            ("CHATHOOK_STORAGE__POSTGRES_MAX_CONNECTIONS", "4".into()),
            ("CHATHOOK_CLUSTER__NATS_URL", nats),
            ("CHATHOOK_CLUSTER__HEARTBEAT_MS", "100".into()),
            ("CHATHOOK_CLUSTER__NODE_TIMEOUT_MS", "1000".into()),
            ("CHATHOOK_CLUSTER__LEASE_MS", "1500".into()),
            ("CHATHOOK_LIMITS__SENDS_PER_SEC", "0".into()),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_reported_lost_and_its_endpoint_taken_over_with_no_event_missing() {
    let shared = Shared::start("killed");
    let rcv = Receiver::start().await;
    // node 3 (a process) starts alone and takes the endpoint's lease
    let dir = tempfile::tempdir().unwrap();
    let mut doomed = spawn_node(&shared, 3, dir.path()).await;
    // an endpoint that stays node 3's once node 1 joins (endpoints are spread over the live nodes)
    let http = reqwest::Client::new();
    loop {
        let endpoint = admin_post(
            &doomed.api,
            "/v1/webhooks/endpoints",
            json!({"url": rcv.url, "flavour": "standard", "events": ["message.sent", "user.offline"]}),
        )
        .await;
        let id = endpoint["id"].as_str().expect("an endpoint id").to_string();
        if chathook_webhook::share_of(&id, &[1, 3]) == Some(3) {
            break;
        }
        let gone = http
            .delete(format!("{}/v1/webhooks/endpoints/{id}", doomed.api))
            .header("token", ADMIN)
            .send()
            .await
            .unwrap();
        assert!(gone.status().is_success());
    }
    admin_post(
        &doomed.api,
        "/user/token",
        json!({"uid": "alice", "token": "ta", "device_flag": 0}),
    )
    .await;
    let mut alice = Client::open(&doomed.ws).await;
    assert_eq!(
        alice.connect("alice", "ta", 0).await["result"]["reasonCode"],
        1
    );
    let first = alice.send_msg("bob", 1, "first", "x").await;
    assert_eq!(first["result"]["messageSeq"], 1, "{first}");
    rcv.wait("node 3 delivers", LONG, |r| !r.is_empty()).await;
    // node 1 joins; messages go through it while node 3 is killed
    let a = TestServer::start_with(shared.node(1)).await;
    let (_, online) = a.post("/user/onlinestatus", json!(["alice"])).await;
    assert_eq!(
        online,
        json!([{"uid": "alice", "device_flag": 0, "online": 1}]),
        "node 1 found alice on node 3 when it joined"
    );
    let mut bob = a.login("bob", 0).await;
    let mut acked = vec![first["result"]["messageId"].as_str().unwrap().to_string()];
    for i in 0..40 {
        if i == 10 {
            doomed.child.kill().unwrap();
            doomed.child.wait().unwrap();
        }
        let ack = bob.send_msg("alice", 1, &format!("b{i}"), "y").await;
        assert_eq!(ack["result"]["reasonCode"], 1, "{ack}");
        acked.push(ack["result"]["messageId"].as_str().unwrap().to_string());
    }
    // node 1 reports alice offline (node_lost) and takes the endpoint over: every message's event
    // arrives, and the offline one
    rcv.wait(
        "every message and the offline event",
        Duration::from_secs(15),
        |reqs| {
            let ids: std::collections::HashSet<String> = reqs
                .iter()
                .filter(|r| r.json()["type"] == "message.sent")
                .map(|r| r.json()["data"]["message_id"].to_string())
                .collect();
            let lost = reqs.iter().any(|r| {
                let j = r.json();
                j["type"] == "user.offline"
                    && j["data"]["uid"] == "alice"
                    && j["data"]["reason"] == "node_lost"
            });
            lost && acked.iter().all(|id| ids.contains(id))
        },
    )
    .await;
    // a delivery id is never reused for another event
    let mut by_id = std::collections::HashMap::new();
    for r in rcv.requests() {
        let previous = by_id.insert(r.id(), r.body.clone());
        assert!(
            previous.is_none_or(|b| b == r.body),
            "one id, two bodies: {}",
            r.id()
        );
    }
    let (_, online) = a.post("/user/onlinestatus", json!(["alice"])).await;
    assert_eq!(online, json!([]), "alice is no longer counted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_delivers_to_an_endpoint_and_batches_msg_notify_for_the_whole_cluster() {
    let shared = Shared::start("batching");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let rcv = Receiver::start().await;
    // created through node B; settings changed through node A reach whichever node delivers
    let endpoint = b
        .endpoint(json!({"url": rcv.url, "flavour": "wukongim", "events": ["msg.notify"]}))
        .await;
    let id = endpoint["id"].as_str().unwrap().to_string();
    let (st, body) = a
        .call(
            "PATCH",
            &format!("/v1/webhooks/endpoints/{id}"),
            Some(json!({"description": "through node A"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 200, "{body}");
    let mut ids = Vec::new();
    for i in 0..30 {
        let node = if i % 2 == 0 { &a } else { &b };
        let (st, body) = node.rest_send("u1", "u2", 1, &format!("n{i}")).await;
        assert_eq!(st, 200, "{body}");
        ids.push(body["data"]["message_id"].as_i64().unwrap());
    }
    rcv.wait("all 30 in msg.notify", LONG, |reqs| {
        notify_ids(reqs).len() >= 30
    })
    .await;
    tokio::time::sleep(SHORT).await;
    let reqs = rcv.requests();
    let mut got = notify_ids(&reqs);
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "each message once, from one node");
    assert!(
        reqs.len() < 30,
        "batched across the nodes' messages: {} requests",
        reqs.len()
    );
    let (_, after) = b
        .call(
            "GET",
            &format!("/v1/webhooks/endpoints/{id}"),
            None,
            Some(ADMIN),
        )
        .await;
    assert_eq!(after["description"], "through node A", "{after}");
}

#[tokio::test]
async fn the_cluster_settings_are_checked_and_an_unreachable_nats_stops_the_start() {
    let mut config = chathook::Config::default();
    config.cluster.nats_url = "nats://127.0.0.1:4222".into();
    let e = config.validate().unwrap_err().to_string();
    assert!(
        e.contains("cluster.nats_url") && e.contains("postgres"),
        "{e}"
    );
    config.storage.backend = Backend::Postgres;
    config.storage.postgres_url = Some("host=127.0.0.1".into());
    config.cluster.node_timeout_ms = config.cluster.heartbeat_ms;
    let e = config.validate().unwrap_err().to_string();
    assert!(e.contains("cluster.node_timeout_ms"), "{e}");
    config.cluster.node_timeout_ms = 10_000;
    config.cluster.nats_url = "nats://user:pw-9c2e@127.0.0.1:4222".into();
    assert!(config.validate().is_ok());
    assert!(
        !config.to_masked_toml().contains("pw-9c2e"),
        "NATS credentials masked"
    );
    // nothing listens where NATS should be: the start fails and names the setting
    let pg = Postgres::start().unwrap();
    let url = pg.database("nonats").unwrap();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.storage.backend = Backend::Postgres;
    config.storage.postgres_url = Some(url);
    config.cluster.nats_url = format!("nats://127.0.0.1:{port}");
    let e = start_refused(config).await;
    assert!(e.contains("cluster.nats_url"), "{e}");
}

/// Which node holds each webhook lease, by endpoint id.
async fn lease_holders(url: &str) -> std::collections::BTreeMap<String, u16> {
    let (db, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    db.query("SELECT name, node_id FROM leases", &[])
        .await
        .unwrap()
        .iter()
        .filter_map(|r| {
            let name: String = r.get(0);
            let node: i32 = r.get(1);
            Some((name.strip_prefix("webhook:")?.to_string(), node as u16))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_spread_over_the_nodes_and_move_when_one_stops() {
    let shared = Shared::start("spread");
    let a = TestServer::start_with(shared.node(1)).await;
    let mut b = TestServer::start_with(shared.node(2)).await;
    let rcv = Receiver::start().await;
    let mut ids = Vec::new();
    for _ in 0..8 {
        let e = a
            .endpoint(json!({"url": rcv.url, "flavour": "standard", "events": ["message.sent"]}))
            .await;
        ids.push(e["id"].as_str().unwrap().to_string());
    }
    let expected: std::collections::BTreeMap<String, u16> = ids
        .iter()
        .map(|id| (id.clone(), chathook_webhook::share_of(id, &[1, 2]).unwrap()))
        .collect();
    assert!(
        expected.values().any(|&n| n == 1) && expected.values().any(|&n| n == 2),
        "eight endpoints over two nodes: {expected:?}"
    );
    // each endpoint's lease ends up with the node whose share it is
    let (expected, url) = (&expected, &shared.url);
    eventually(
        "each lease with its share's node",
        Duration::from_secs(15),
        || async move {
            let holders = lease_holders(url).await;
            if &holders == expected {
                Ok(())
            } else {
                Err(format!("{holders:?}, expected {expected:?}"))
            }
        },
    )
    .await;
    // every endpoint delivers, whichever node holds it
    let (st, _) = a.rest_send("u1", "u2", 1, "to all").await;
    assert_eq!(st, 200);
    rcv.wait("all eight endpoints", LONG, |reqs| reqs.len() >= 8)
        .await;
    // node 2 stops: it gives its leases up and node 1 takes them
    b.stop().await;
    eventually(
        "node 1 holding every lease",
        Duration::from_secs(15),
        || async move {
            let holders = lease_holders(url).await;
            if holders.len() == 8 && holders.values().all(|&n| n == 1) {
                Ok(())
            } else {
                Err(format!("{holders:?}"))
            }
        },
    )
    .await;
    let (st, _) = a.rest_send("u1", "u2", 1, "again").await;
    assert_eq!(st, 200);
    rcv.wait("sixteen deliveries", LONG, |reqs| reqs.len() >= 16)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_sums_every_nodes_connections_messages_and_attempts_and_lists_the_nodes() {
    let shared = Shared::start("overview");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let rcv = Receiver::start().await;
    a.endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let _alice = a.login("alice", 0).await;
    let _bob = b.login("bob", 0).await;
    let _carol = b.login("carol", 1).await;
    for (node, text) in [(&a, "one"), (&a, "two"), (&b, "three")] {
        let (st, body) = node.rest_send("alice", "bob", 1, text).await;
        assert_eq!(st, 200, "{body}");
    }
    rcv.wait("three deliveries", LONG, |reqs| reqs.len() >= 3)
        .await;
    // whichever node delivers and whichever is asked, the figures are the cluster's
    for (name, node) in [("A", &a), ("B", &b)] {
        let what = format!("node {name}'s overview to count the cluster");
        let o = eventually(&what, LONG, || async move {
            let (_, o) = node.call("GET", "/v1/overview", None, Some(ADMIN)).await;
            let summed = o["connections"] == 3
                && o["messages_sent"] == 3
                && o["attempts"]["succeeded"].as_u64() >= Some(3);
            if summed {
                Ok(o)
            } else {
                Err(o.to_string())
            }
        })
        .await;
        assert_eq!(o["users_online"], 3, "{o}");
        let nodes = o["nodes"].as_array().expect("a node list in a cluster");
        let per_node: Vec<(u64, u64, u64)> = nodes
            .iter()
            .map(|n| {
                let num = |k: &str| n[k].as_u64().unwrap();
                (num("node"), num("connections"), num("messages_sent"))
            })
            .collect();
        assert_eq!(per_node, [(1, 1, 2), (2, 2, 1)], "asked node {name}: {o}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_clients_on_two_nodes_exchange_messages_with_json_rpc_ones() {
    let shared = Shared::start("binary");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let mut ann = a.login_binary("ann", 1, 2).await;
    let mut ben = b.login_binary_on(Transport::Tcp, "ben", 1, 5).await;
    let mut cid = b.login("cid", 0).await;
    let ack = ann
        .send("ben", 1, br#"{"type":1,"content":"across"}"#)
        .await;
    assert_eq!(ack.reason, 1);
    let got = ben
        .recv(LONG, true)
        .await
        .expect("ben on node B (TCP) receives");
    assert_eq!(
        (got.recv.message_id, got.recv.channel_id.as_str()),
        (ack.message_id, "ann")
    );
    a.group("g", &["ann", "ben", "cid"]).await;
    let sent = cid.send_msg("g", 2, "c-1", "to the group").await;
    for c in [&mut ann, &mut ben] {
        let got = c.recv(LONG, true).await.expect("a binary member receives");
        assert_eq!(
            got.recv.message_id.to_string(),
            sent["result"]["messageId"].as_str().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_kick_by_device_id_crosses_nodes() {
    let shared = Shared::start("devices");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    a.token("ann", "tk", 1, 1).await;
    let dial = |s: &TestServer| s.ws.clone();
    let mut on_a =
        BinClient::connect_device(Dial::Ws(&dial(&a)), "ann", "tk", 1, 2, true, "device-a").await;
    assert_eq!(on_a.connack.reason, 1);
    let mut on_b =
        BinClient::connect_device(Dial::Ws(&dial(&b)), "ann", "tk", 1, 2, true, "device-b").await;
    assert_eq!(on_b.connack.reason, 1);
    let closed = on_a.closed(LONG).await;
    assert_eq!(
        closed.disconnect.map(|d| d.reason),
        Some(12),
        "told on node A"
    );
    // device B again, through node A: node B's older connection closes without a word
    let again =
        BinClient::connect_device(Dial::Ws(&dial(&a)), "ann", "tk", 1, 2, true, "device-b").await;
    assert_eq!(again.connack.reason, 1);
    let closed = on_b.closed(LONG).await;
    assert!(closed.disconnect.is_none(), "{closed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_through_either_node_is_applied_by_the_node_delivering_the_endpoint() {
    let shared = Shared::start("seek");
    let a = TestServer::start_with(shared.node(1)).await;
    let b = TestServer::start_with(shared.node(2)).await;
    let rcv = Receiver::start().await;
    let ep = a
        .endpoint(json!({"url": rcv.url, "events": ["message.sent"]}))
        .await;
    let id = ep["id"].as_str().unwrap().to_string();
    for i in 0..3 {
        let (st, body) = a.rest_send("u1", "u2", 1, &format!("s{i}")).await;
        assert_eq!(st, 200, "{body}");
    }
    rcv.wait("the three messages", LONG, |r| r.len() == 3).await;
    let mut first: Vec<String> = rcv.requests().iter().map(Recorded::id).collect();
    first.sort();
    // One of the two nodes does not deliver the endpoint: both are asked in turn.
    for (round, node) in [&a, &b].into_iter().enumerate() {
        let (st, v) = node
            .post(
                &format!("/v1/webhooks/endpoints/{id}/seek"),
                json!({"to": "oldest"}),
            )
            .await;
        assert_eq!((st, &v["applied"]), (200, &json!(true)), "{v}");
        let want = 3 * (round + 2);
        rcv.wait("the messages again", Duration::from_secs(10), |r| {
            r.len() >= want
        })
        .await;
        let mut again: Vec<String> = rcv.requests()[want - 3..want]
            .iter()
            .map(Recorded::id)
            .collect();
        again.sort();
        assert_eq!(again, first, "delivered again with the same ids");
    }
}
