//! Tencent Cloud Chat compatibility, checked against Tencent's own tools: UserSigs made by the official
//! generator (PyPI `tls-sig-api-v2`, installed by `.ci/run`) log a client in; expired ones, another
//! app's, another user's and badly signed ones are refused with the reason.

use std::process::Command;

use chathook::config::TencentConfig;

use crate::util::*;

const APP: u64 = 1_400_000_000;
const KEY: &str = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e";

/// A UserSig from Tencent's generator: `TLSSigAPIv2(app, key).gen_sig(uid, expire)`.
fn user_sig(app: u64, key: &str, uid: &str, expire: i64) -> String {
    let script = format!(
        "import TLSSigAPIv2; print(TLSSigAPIv2.TLSSigAPIv2({app}, {key:?}).gen_sig({uid:?}, {expire}))"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "tls-sig-api-v2 (pip install tls-sig-api-v2) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn tencent_server() -> TestServer {
    TestServer::start_with(|c| {
        c.tencent = TencentConfig {
            sdk_app_id: APP,
            secret_key: Some(KEY.into()),
        }
    })
    .await
}

#[tokio::test]
async fn a_user_sig_from_tencents_generator_logs_in_and_bad_ones_are_refused_with_the_reason() {
    let s = tencent_server().await;
    let good = user_sig(APP, KEY, "alice", 86_400);
    let mut alice = Client::open(&s.ws).await;
    let reply = alice.connect("alice", &good, 0).await;
    assert_eq!(reply["result"]["reasonCode"], 1, "{reply}");
    // a UserSig login is a primary device: a message to alice is not "offline"
    s.rest_send("bob", "alice", 1, "hello").await;
    assert!(alice.recv(LONG, true).await.is_some());

    let cases = [
        (user_sig(APP, KEY, "alice", -60), "alice", "expired"),
        (
            user_sig(APP + 1, KEY, "alice", 86_400),
            "alice",
            "another app",
        ),
        (good.clone(), "mallory", "another user"),
        (
            user_sig(APP, "not the app's key", "alice", 86_400),
            "alice",
            "signature",
        ),
    ];
    for (sig, uid, why) in cases {
        let mut c = Client::open(&s.ws).await;
        let reply = c.connect(uid, &sig, 0).await;
        assert_eq!(reply["result"]["reasonCode"], 2, "{why}: {reply}");
        let reason = reply["result"]["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{why}: {reason}");
        let closed = c.closed(LONG).await;
        assert!(closed.reason.contains(why), "{why}: {closed:?}");
    }
    // something that is no UserSig is a wrong token, as without the Tencent settings
    let mut c = Client::open(&s.ws).await;
    let reply = c.connect("alice", "no-such-token", 0).await;
    assert_eq!(reply["result"]["reasonCode"], 2);
    assert!(reply["result"]["reason"]
        .as_str()
        .unwrap()
        .contains("wrong uid, token"));
}

#[tokio::test]
async fn without_a_secret_key_a_user_sig_is_just_a_wrong_token() {
    let s = TestServer::start().await;
    let mut c = Client::open(&s.ws).await;
    let reply = c
        .connect("alice", &user_sig(APP, KEY, "alice", 86_400), 0)
        .await;
    assert_eq!(reply["result"]["reasonCode"], 2, "{reply}");
}
