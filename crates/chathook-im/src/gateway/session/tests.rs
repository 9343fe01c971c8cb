//! The session loop driven through channels, with no socket: a real IM core on a throwaway SQLite
//! store, the JSON-RPC codec, a sink that records frames (or stalls), and inbound chunks from a channel.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use chathook_events::{ClientInfo, Message, MessageHeader, PresenceReason};
use chathook_store::{SqliteOptions, SqliteStore};
use futures_util::stream::poll_fn;
use serde_json::Value;
use tokio::sync::mpsc;

use super::serve;
use crate::config::PayloadFormat;
use crate::gateway::close::{End, Tell};
use crate::gateway::codec::Frame;
use crate::gateway::jsonrpc::JsonRpc;
use crate::gateway::transport::{FrameSink, Inbound, LinkBroken};
use crate::presence::{ConnHandle, Delivery, Kick, Outbound};
use crate::{Im, ImConfig, ImMetrics, Login};

/// Records what the session writes; with `stall` set, never finishes a write.
#[derive(Clone, Default)]
struct Recorder {
    frames: Arc<Mutex<Vec<Value>>>,
    closed: Arc<Mutex<Option<(u16, String)>>>,
    stall: bool,
}

impl FrameSink for Recorder {
    async fn feed(&mut self, frame: Frame) -> Result<(), LinkBroken> {
        if self.stall {
            std::future::pending::<()>().await;
        }
        let Frame::Text(text) = frame else {
            panic!("a JSON-RPC session writes text frames");
        };
        let value = serde_json::from_str(text.as_str()).map_err(|_| LinkBroken)?;
        self.frames.lock().unwrap().push(value);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), LinkBroken> {
        Ok(())
    }

    async fn close(&mut self, code: u16, why: &str) {
        *self.closed.lock().unwrap() = Some((code, why.to_string()));
    }
}

impl Recorder {
    fn methods(&self) -> Vec<String> {
        let frames = self.frames.lock().unwrap();
        frames
            .iter()
            .map(|f| f["method"].as_str().unwrap_or("result").to_string())
            .collect()
    }
}

/// A running session: its IM core, its connection, the client's side of the link and the outcome.
struct Running {
    _dir: tempfile::TempDir,
    im: Im,
    conn: Arc<ConnHandle>,
    client: mpsc::UnboundedSender<Inbound>,
    sink: Recorder,
    ended: tokio::task::JoinHandle<End>,
}

async fn start(configure: impl FnOnce(&mut ImConfig), stall: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(SqliteOptions::new(dir.path())).unwrap();
    let mut config = ImConfig::default();
    configure(&mut config);
    let sealer = chathook_store::sealing::Sealer::from_base64(
        &chathook_store::sealing::Sealer::generate_key(),
        &[],
    )
    .unwrap();
    let im = Im::start(Arc::new(store), config, sealer, ImMetrics::default())
        .await
        .unwrap();
    let open = im
        .open_connection(Login {
            uid: "ann".into(),
            device_flag: 1,
            device_level: 1,
            device_id: None,
            client: ClientInfo::default(),
        })
        .await
        .unwrap();
    let conn = open.handle.clone();
    let (client, mut inbound) = mpsc::unbounded_channel();
    let stream = poll_fn(move |cx| inbound.poll_recv(cx));
    let sink = Recorder {
        stall,
        ..Recorder::default()
    };
    let codec = JsonRpc::new(PayloadFormat::Base64, 1 << 20);
    let session_sink = sink.clone();
    let session_im = im.clone();
    let ended = tokio::spawn(async move {
        let (_, _, end) = serve(session_im, codec, session_sink, open, stream, Vec::new()).await;
        end
    });
    Running {
        _dir: dir,
        im,
        conn,
        client,
        sink,
        ended,
    }
}

fn delivery(message_id: i64) -> Outbound {
    let message = Message {
        message_id,
        client_msg_no: format!("c{message_id}"),
        message_seq: message_id as u64,
        from_uid: "ben".into(),
        channel_id: "ann".into(),
        channel_type: 1,
        header: MessageHeader::default(),
        setting: 0,
        expire: 0,
        timestamp: 1_700_000_000,
        payload: b"{}".to_vec(),
        sender: Default::default(),
    };
    Outbound::Recv(Arc::new(Delivery {
        message: Arc::new(message),
        channel_id: "ben".into(),
        frame: OnceLock::new(),
    }))
}

fn data(json: &str) -> Inbound {
    Inbound::Data(Bytes::copy_from_slice(json.as_bytes()))
}

async fn ended(r: Running) -> End {
    tokio::time::timeout(Duration::from_secs(5), r.ended)
        .await
        .expect("the session ends")
        .unwrap()
}

#[tokio::test]
async fn a_client_silent_past_the_heartbeat_timeout_is_disconnected_for_it() {
    let r = start(|c| c.gateway.heartbeat_timeout_ms = 100, false).await;
    let end = ended(r).await;
    assert_eq!(end.presence, PresenceReason::HeartbeatTimeout);
    assert!(matches!(end.tell, Tell::Disconnect { ref why, .. } if why.contains("heartbeat")));
}

#[tokio::test]
async fn a_ping_is_answered_and_keeps_the_connection_alive() {
    let r = start(|c| c.gateway.heartbeat_timeout_ms = 200, false).await;
    for i in 0..6 {
        r.client
            .send(data(&format!(r#"{{"id":"{i}","method":"ping"}}"#)))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert!(
        !r.ended.is_finished(),
        "pings every 60 ms keep a 200 ms heartbeat"
    );
    assert_eq!(r.sink.frames.lock().unwrap().len(), 6, "each ping answered");
    r.client.send(data(r#"{"method":"disconnect"}"#)).unwrap();
    assert_eq!(ended(r).await, End::link_closed());
}

#[tokio::test]
async fn an_unacknowledged_recv_is_sent_again_until_max_resends_and_an_ack_stops_it() {
    let r = start(
        |c| {
            c.gateway.ack_timeout_ms = 150;
            c.gateway.max_resends = 2;
            c.gateway.heartbeat_timeout_ms = 10_000;
        },
        false,
    )
    .await;
    r.conn.outbound.send(delivery(1)).await.unwrap();
    r.conn.outbound.send(delivery(2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    r.client
        .send(data(
            r#"{"method":"recvack","params":{"messageId":"2","messageSeq":2}}"#,
        ))
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let ids: Vec<String> = r
        .sink
        .frames
        .lock()
        .unwrap()
        .iter()
        .map(|f| f["params"]["messageId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        ["1", "2", "1", "1"],
        "1 sent, then twice again; 2 acknowledged"
    );
    assert_eq!(r.im.metrics().resends.get(), 2);
    assert!(!r.ended.is_finished());
}

#[tokio::test]
async fn more_recvs_without_recvack_than_the_limit_end_the_session() {
    let r = start(
        |c| {
            c.limits.max_unacked = 2;
            c.gateway.heartbeat_timeout_ms = 10_000;
        },
        false,
    )
    .await;
    for id in 1..=3 {
        r.conn.outbound.send(delivery(id)).await.unwrap();
    }
    let sink = r.sink.clone();
    let end = ended(r).await;
    assert_eq!(end.presence, PresenceReason::ProtocolError);
    assert!(
        matches!(end.tell, Tell::Disconnect { ref why, .. } if why.contains("more than 2 recv"))
    );
    assert_eq!(sink.methods(), ["recv", "recv"]);
}

#[tokio::test]
async fn a_consumer_that_stops_reading_is_dropped_at_the_write_timeout() {
    let r = start(
        |c| {
            c.gateway.write_timeout_ms = 50;
            c.gateway.heartbeat_timeout_ms = 10_000;
        },
        true,
    )
    .await;
    r.conn.outbound.send(delivery(1)).await.unwrap();
    assert_eq!(ended(r).await, End::link_closed());
}

#[tokio::test]
async fn a_kick_ends_the_session_with_its_reason_and_code() {
    let r = start(|c| c.gateway.heartbeat_timeout_ms = 10_000, false).await;
    r.conn.kick(Kick {
        reason_code: 12,
        reason: "login in other device".into(),
        presence_reason: PresenceReason::Kicked,
        notify: true,
        device: None,
    });
    let end = ended(r).await;
    assert_eq!(end.presence, PresenceReason::Kicked);
    assert!(matches!(
        end.tell,
        Tell::Disconnect {
            reason_code: 12,
            ..
        }
    ));
}

#[tokio::test]
async fn a_send_is_answered_with_its_id_and_a_garbled_frame_ends_the_session() {
    let r = start(|c| c.gateway.heartbeat_timeout_ms = 10_000, false).await;
    r.client
        .send(data(
            r#"{"id":"s1","method":"send","params":{"channelId":"ben","channelType":1,"clientMsgNo":"m1","payload":"e30="}}"#,
        ))
        .unwrap();
    for _ in 0..100 {
        if !r.sink.frames.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = r.sink.frames.lock().unwrap()[0].clone();
    assert_eq!(answer["id"], "s1", "{answer}");
    assert_eq!(answer["result"]["reasonCode"], 1, "{answer}");
    assert_eq!(answer["result"]["messageSeq"], 1, "{answer}");
    r.client.send(data("{not json")).unwrap();
    let end = ended(r).await;
    assert_eq!(end.presence, PresenceReason::ProtocolError);
    assert!(
        matches!(end.tell, Tell::Disconnect { ref why, .. } if why == "malformed JSON-RPC frame")
    );
}
