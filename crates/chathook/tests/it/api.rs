//! The REST API: admin-key auth on every route, WuKongIM's envelopes, errors that name the field,
//! online status, profiles, health and metrics.

use serde_json::{json, Value};

use crate::util::*;

/// Every route the server has: the API modules' own lists, plus paths no route serves.
fn all_routes() -> Vec<(String, String)> {
    chathook_im::api::ROUTES
        .iter()
        .chain(chathook_webhook::api::ROUTES.iter())
        .chain(chathook::ROUTES.iter())
        .map(|(m, p)| {
            (
                m.to_string(),
                p.replace("{uid}", "alice")
                    .replace("{id}", "ep_x")
                    .replace("{delivery_id}", "d_x")
                    .replace("{attempt_id}", "1"),
            )
        })
        .chain([
            ("GET".to_string(), "/no/such/route".to_string()),
            ("DELETE".to_string(), "/".to_string()),
        ])
        .collect()
}

#[tokio::test]
async fn every_route_needs_the_admin_key() {
    let s = TestServer::start().await;
    // a user's own token is no admin key
    s.token("alice", "alice-user-token", 0, 1).await;
    for (method, path) in all_routes() {
        if chathook_webhook::api::is_poll_path(&path) {
            // Its own credential, the endpoint's poll token (polling.rs): the admin key opens nothing.
            for key in [None, Some(ADMIN)] {
                let (st, body) = s.call(&method, &path, None, key).await;
                assert_eq!(
                    (st, &body["error"]["code"]),
                    (401, &json!("unauthorized")),
                    "{path}"
                );
            }
            continue;
        }
        for key in [None, Some("wrong-key"), Some("alice-user-token")] {
            let (st, body) = s.call(&method, &path, Some(json!({})), key).await;
            assert_eq!(st, 401, "{method} {path} with {key:?}");
            assert_eq!(body["code"], "unauthorized");
            assert_eq!(body["status"], 401);
        }
        // with the key, no route answers 401 (or 404 for want of the route itself)
        let (st, _) = s.call(&method, &path, Some(json!({})), Some(ADMIN)).await;
        assert_ne!(st, 401, "{method} {path}");
        if !path.starts_with("/no/") && path != "/" {
            assert!(st != 405, "{method} {path} is not routed");
        }
    }
    // Authorization: Bearer works as well as the token header
    let resp = reqwest::Client::new()
        .post(format!("{}/user/onlinestatus", s.api))
        .bearer_auth(ADMIN)
        .json(&json!(["alice"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // only health and metrics are open
    assert_eq!(s.call("GET", "/health", None, None).await.0, 200);
    assert_eq!(s.call("GET", "/metrics", None, None).await.0, 200);
    assert_eq!(
        chathook::auth::PUBLIC_PATHS,
        ["/health", "/metrics", "/openapi.json"]
    );
}

#[tokio::test]
async fn the_openapi_document_is_public_and_describes_the_routes_made_from_it() {
    let s = TestServer::start().await;
    let (st, doc) = s.call("GET", "/openapi.json", None, None).await;
    assert_eq!(st, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let mut described: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    described.sort();
    let mut routed: Vec<(String, String)> = chathook_im::api::ROUTES
        .iter()
        .chain(chathook_webhook::api::ROUTES.iter())
        .chain(chathook::ROUTES.iter())
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routed.sort();
    assert_eq!(described, routed);
    // errors are described in the shape the server sends
    let create = &doc["paths"]["/v1/webhooks/endpoints"]["post"];
    assert_eq!(
        create["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/V1ErrorBody"
    );
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

#[tokio::test]
async fn the_console_files_are_served_without_the_key_and_carry_no_data() {
    let s = TestServer::start().await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{}{path}", s.api)).send();
    let r = get("/console").await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/console/");
    for (path, media_type, needle) in [
        (
            "/console/",
            "text/html",
            "<script type=\"module\" src=\"/console/app.js\">",
        ),
        ("/console/app.js", "text/javascript", "import"),
        ("/console/console.css", "text/css", "body"),
    ] {
        let r = get(path).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        // A strict policy: no inline script or style, no framing, no guessed media types.
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        for rule in [
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(rule), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(r.headers()["x-frame-options"], "DENY", "{path}");
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with(media_type), "{path}: {ct}");
        assert!(r.text().await.unwrap().contains(needle), "{path}");
    }
    // its icon, where browsers ask for it, without the key
    let icon = get("/favicon.ico").await.unwrap();
    assert_eq!(icon.status(), 200);
    assert_eq!(icon.headers()["content-type"], "image/svg+xml");
    // a name that is not one of its files is no public path
    assert_eq!(get("/console/admin.key").await.unwrap().status(), 401);
    assert_eq!(get("/console/../v1/overview").await.unwrap().status(), 401);
    // the overview is data: it needs the key
    assert_eq!(s.call("GET", "/v1/overview", None, None).await.0, 401);
    // every answer, errors included, says its media type is not to be guessed
    for path in ["/v1/overview", "/health", "/no/such/route"] {
        let r = get(path).await.unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let _alice = s.login("alice", 0).await;
    s.rest_send("bob", "carol", 1, "hi").await;
    let (st, o) = s.call("GET", "/v1/overview", None, Some(ADMIN)).await;
    assert_eq!(st, 200, "{o}");
    assert_eq!(
        (o["users_online"].as_u64(), o["connections"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(o["messages_sent"], 1);
    assert!(o["events"].as_u64().unwrap() >= 2, "online and sent: {o}");
    assert_eq!(
        o["endpoints"],
        json!({"total": 0, "enabled": 0, "delivering": 0, "breaker_open": 0, "disabled": 0})
    );
    assert!(
        o.get("nodes").is_none(),
        "a single server lists no nodes: {o}"
    );
}

#[tokio::test]
async fn open_mode_accepts_keyless_calls_only_from_the_listed_networks() {
    // loopback is listed by default: a backend that sends no key (as TSDD does) is served
    let open = TestServer::start_with(|c| c.auth.open = true).await;
    let (st, body) = open
        .call("POST", "/user/onlinestatus", Some(json!([])), None)
        .await;
    assert_eq!((st, body), (200, json!({"status": 200})));
    // a wrong key is still refused
    let (st, _) = open
        .call(
            "POST",
            "/user/onlinestatus",
            Some(json!([])),
            Some("wrong-key"),
        )
        .await;
    assert_eq!(st, 401);
    // a caller outside the listed networks still needs the key
    let elsewhere = TestServer::start_with(|c| {
        c.auth.open = true;
        c.auth.open_networks = vec!["10.0.0.0/8".parse().unwrap()];
    })
    .await;
    let (st, _) = elsewhere
        .call("POST", "/user/onlinestatus", Some(json!([])), None)
        .await;
    assert_eq!(st, 401);
    let (st, _) = elsewhere
        .call("POST", "/user/onlinestatus", Some(json!([])), Some(ADMIN))
        .await;
    assert_eq!(st, 200);
    // and without open mode, loopback needs it too
    let closed = TestServer::start().await;
    assert_eq!(
        closed
            .call("POST", "/user/onlinestatus", Some(json!([])), None)
            .await
            .0,
        401
    );
}

#[tokio::test]
async fn bad_requests_are_400_naming_the_field() {
    let s = TestServer::start().await;
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        ("/user/token", json!({"token": "x"}), "uid", "field_missing"),
        (
            "/user/token",
            json!({"uid": "", "token": "x"}),
            "uid",
            "uid_empty",
        ),
        (
            "/user/token",
            json!({"uid": "a@b", "token": "x"}),
            "uid",
            "uid_invalid",
        ),
        (
            "/user/token",
            json!({"uid": "a", "token": ""}),
            "token",
            "token_empty",
        ),
        (
            "/user/token",
            json!({"uid": "a", "token": "x", "device_flag": "web"}),
            "device_flag",
            "field_invalid",
        ),
        (
            "/user/token",
            json!({"uid": "a", "token": "x", "device_level": 2}),
            "device_level",
            "device_level_invalid",
        ),
        (
            "/user/device_quit",
            json!({"uid": "a", "device_flag": -5}),
            "device_flag",
            "device_flag_invalid",
        ),
        (
            "/channel",
            json!({"channel_type": 2}),
            "channel_id",
            "field_missing",
        ),
        (
            "/channel",
            json!({"channel_id": "g", "channel_type": 2, "ban": 2}),
            "ban",
            "field_invalid",
        ),
        (
            "/channel",
            json!({"channel_id": "g/x", "channel_type": 2}),
            "channel_id",
            "channel_id_invalid",
        ),
        (
            "/channel",
            json!({"channel_id": "g", "channel_type": 1}),
            "channel_type",
            "channel_type_unsupported",
        ),
        (
            "/channel/subscriber_add",
            json!({"channel_id": "nope", "channel_type": 2, "subscribers": ["a"]}),
            "channel_id",
            "channel_not_found",
        ),
        (
            "/channel/subscriber_add",
            json!({"channel_id": "nope", "channel_type": 2, "subscribers": []}),
            "subscribers",
            "subscribers_empty",
        ),
        (
            "/channel/blacklist_add",
            json!({"channel_id": "nope", "channel_type": 2, "uids": []}),
            "uids",
            "uids_empty",
        ),
        (
            "/message/send",
            json!({"channel_id": "b", "channel_type": 1, "from_uid": "a"}),
            "payload",
            "field_missing",
        ),
        (
            "/message/send",
            json!({"channel_id": "b", "channel_type": 1, "from_uid": "a", "payload": "%%%"}),
            "payload",
            "payload_not_base64",
        ),
        (
            "/message/send",
            json!({"channel_id": "", "channel_type": 1, "payload": "e30="}),
            "channel_id",
            "channel_id_empty",
        ),
        (
            "/message/send",
            json!({"channel_id": "b", "channel_type": 1, "payload": "e30=", "subscribers": ["c"],
                   "header": {"sync_once": 1}}),
            "subscribers",
            "subscribers_with_channel",
        ),
        (
            "/message/send",
            json!({"channel_id": "", "channel_type": 1, "payload": "e30=", "subscribers": ["c"]}),
            "header.sync_once",
            "subscribers_need_sync_once",
        ),
        (
            "/channel/subscriber_add",
            json!({"channel_id": "nope", "channel_type": 2, "subscribers": ["a"], "temp_subscriber": 1}),
            "temp_subscriber",
            "temp_subscriber_unsupported",
        ),
        (
            "/channel/whitelist_add",
            json!({"channel_id": "nope", "channel_type": 2, "uids": ["a"]}),
            "channel_id",
            "channel_not_found",
        ),
        (
            "/message/syncack",
            json!({"uid": "a", "last_message_seq": 0}),
            "last_message_seq",
            "last_message_seq_zero",
        ),
        (
            "/message/sync",
            json!({"message_seq": 0}),
            "uid",
            "field_missing",
        ),
        (
            "/message/send",
            json!({"channel_id": "b", "channel_type": 9, "from_uid": "a", "payload": "e30="}),
            "channel_type",
            "channel_type_unsupported",
        ),
        (
            "/message/send",
            json!({"channel_id": "b", "channel_type": 1, "from_uid": "a", "payload": "e30=", "header": {"red_dot": true}}),
            "header.red_dot",
            "field_invalid",
        ),
        (
            "/channel/messagesync",
            json!({"login_uid": "a", "channel_id": "b", "channel_type": 1, "pull_mode": 3}),
            "pull_mode",
            "pull_mode_invalid",
        ),
        (
            "/channel/messagesync",
            json!({"channel_id": "b", "channel_type": 1}),
            "login_uid",
            "field_missing",
        ),
        (
            "/user/onlinestatus",
            json!({"uids": ["a"]}),
            "",
            "field_invalid",
        ),
    ];
    for (path, body, field, code) in cases {
        let (st, reply) = s.post(path, body.clone()).await;
        assert_eq!(st, 400, "{path} {body} -> {reply}");
        assert_eq!(reply["status"], 400, "{reply}");
        assert!(
            reply["msg"].as_str().is_some_and(|m| !m.is_empty()),
            "{reply}"
        );
        assert_eq!(reply["code"], code, "{path} {body} -> {reply}");
        if !field.is_empty() {
            assert_eq!(reply["field"], field, "{path} {body} -> {reply}");
        }
    }
    // not JSON at all
    let resp = reqwest::Client::new()
        .post(format!("{}/user/token", s.api))
        .header("token", ADMIN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "json_invalid");
    // a message followed by more data: refused, and nothing stored
    s.token("tail", "t-tail", 0, 0).await;
    let send = json!({"from_uid": "tail", "channel_id": "other", "channel_type": 1,
                      "payload": b64("{\"type\":1}")});
    let resp = reqwest::Client::new()
        .post(format!("{}/message/send", s.api))
        .header("token", ADMIN)
        .body(format!("{send} {{\"from_uid\":\"x\"}}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "json_invalid", "{body}");
    let page = s.sync("tail", "other", 1, (0, 0), 100, 0).await;
    assert!(seqs(&page).is_empty(), "{page}");
    // nothing partial was written by the refused group
    let (st, _) = s
        .post(
            "/channel/subscriber_add",
            json!({"channel_id": "g", "channel_type": 2, "subscribers": ["a"]}),
        )
        .await;
    assert_eq!(st, 400, "the refused /channel calls created nothing");
}

#[tokio::test]
async fn online_status_answers_a_bare_array_with_one_entry_per_connection() {
    let s = TestServer::start().await;
    let _a = s.login("alice", 0).await;
    let _b = s.login("alice", 1).await;
    let _c = s.login("alice", 1).await;
    let _d = s.login("bob", 0).await;
    let (st, body) = s
        .post("/user/onlinestatus", json!(["alice", "bob", "dave"]))
        .await;
    assert_eq!(st, 200);
    let mut rows: Vec<(String, u64)> = body
        .as_array()
        .unwrap_or_else(|| panic!("a bare array, as WuKongIM answers: {body}"))
        .iter()
        .map(|r| {
            assert_eq!(r["online"], 1, "{r}");
            assert_eq!(
                r.as_object().unwrap().len(),
                3,
                "uid, device_flag, online: {r}"
            );
            (
                r["uid"].as_str().unwrap().to_string(),
                r["device_flag"].as_u64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("alice".into(), 0),
            ("alice".into(), 1),
            ("alice".into(), 1),
            ("bob".into(), 0)
        ]
    );
    // an empty request is answered with WuKongIM's plain OK
    let (st, body) = s.post("/user/onlinestatus", json!([])).await;
    assert_eq!((st, body), (200, json!({"status": 200})));
}

#[tokio::test]
async fn profiles_round_trip_with_v1_errors() {
    let s = TestServer::start().await;
    let (st, body) = s
        .call("GET", "/v1/users/alice/profile", None, Some(ADMIN))
        .await;
    assert_eq!(st, 404);
    assert_eq!(body["error"]["code"], "profile_not_found");
    let put = json!({"name": "Alice", "avatar": "a.png", "custom": {"lang": "fr"}});
    let (st, body) = s
        .call("PUT", "/v1/users/alice/profile", Some(put), Some(ADMIN))
        .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = s
        .call("GET", "/v1/users/alice/profile", None, Some(ADMIN))
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        body,
        json!({"uid": "alice", "name": "Alice", "avatar": "a.png", "custom": {"lang": "fr"}})
    );
    let (st, body) = s
        .call(
            "PUT",
            "/v1/users/alice/profile",
            Some(json!({"custom": {"n": 1}})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(body["error"]["field"], "custom.n");
    let (st, body) = s
        .call(
            "PUT",
            "/v1/users/alice/profile",
            Some(json!({"nick": "x"})),
            Some(ADMIN),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (400, Some("field_unknown"))
    );
    let (st, body) = s
        .call(
            "PUT",
            "/v1/users/alice/profile",
            Some(json!({"name": "x".repeat(5000)})),
            Some(ADMIN),
        )
        .await;
    assert_eq!((st, body["error"]["field"].as_str()), (400, Some("name")));
}

#[tokio::test]
async fn metrics_count_connections_messages_and_events() {
    let s = TestServer::start().await;
    let mut a = s.login("alice", 0).await;
    a.send_msg("bob", 1, "m1", "x").await;
    let text = s.metrics().await;
    for needle in [
        "chathook_connections 1",
        "chathook_messages_sent_total{channel_type=\"1\"} 1",
        "chathook_events_total{type=\"message.sent\"} 1",
        "chathook_events_total{type=\"message.offline\"} 1",
        "chathook_events_total{type=\"user.online\"} 1",
        "chathook_store_commits_total",
        "chathook_event_log_head",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}
