//! A WuKongIM JSON-RPC client over WebSocket, as an app would speak it, with what it saw of its end.

use std::time::Duration;

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A `recv` payload (standard base64 on the wire) as the JSON it carries.
pub fn payload_json(payload: &Value) -> Value {
    let text = payload.as_str().expect("a recv payload is a base64 string");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("standard base64");
    serde_json::from_slice(&bytes).expect("the payload is JSON")
}

/// True for WuKongIM's answer to `ping`: a plain response with an empty result and no method.
pub fn is_pong(frame: &Value) -> bool {
    frame.get("method").is_none() && frame["result"] == json!({}) && frame["id"].is_string()
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WuKongIM JSON-RPC client.
pub struct Client {
    pub ws: Ws,
    next_id: u64,
    /// Frames that arrived while waiting for something else.
    pub inbox: Vec<Value>,
    /// Speaks JSON-RPC in binary WebSocket frames instead of text frames.
    pub binary: bool,
    /// Frames read whose kind (text or binary) differed from the client's.
    pub other_kind_frames: usize,
}

/// How a connection ended, as the client saw it.
#[derive(Debug)]
pub struct Closed {
    pub disconnect: Option<Value>,
    pub code: Option<CloseCode>,
    pub reason: String,
}

impl Client {
    pub async fn open(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("ws connect");
        Client::of(ws)
    }

    fn of(ws: Ws) -> Client {
        Client {
            ws,
            next_id: 0,
            inbox: Vec::new(),
            binary: false,
            other_kind_frames: 0,
        }
    }

    /// A client whose connection comes from the loopback address `from` (127.0.0.2, ...).
    pub async fn open_from(url: &str, from: std::net::IpAddr) -> Client {
        let host = url.trim_start_matches("ws://");
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::new(from, 0)).unwrap();
        let tcp = socket
            .connect(host.parse().expect("ws://ip:port"))
            .await
            .unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("ws connect");
        Client::of(ws)
    }

    /// A client that sends its JSON-RPC frames as binary WebSocket frames.
    pub async fn open_binary(url: &str) -> Client {
        Client {
            binary: true,
            ..Client::open(url).await
        }
    }

    pub async fn connect(&mut self, uid: &str, token: &str, flag: u8) -> Value {
        self.request(
            "connect",
            json!({"uid": uid, "token": token, "deviceFlag": flag}),
        )
        .await
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        let frame = if self.binary {
            Message::Binary(text.into_bytes().into())
        } else {
            Message::Text(text.into())
        };
        self.ws.send(frame).await.expect("ws send");
    }

    /// Sends a request and waits for the response with its id.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send_text(
            json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}).to_string(),
        )
        .await;
        self.wait_for(|f| f["id"] == id.as_str())
            .await
            .expect("a response")
    }

    pub async fn notify(&mut self, method: &str, params: Value) {
        self.send_text(json!({"jsonrpc": "2.0", "method": method, "params": params}).to_string())
            .await;
    }

    pub async fn send_msg(
        &mut self,
        channel: &str,
        channel_type: u8,
        client_msg_no: &str,
        content: &str,
    ) -> Value {
        self.request(
            "send",
            json!({"clientMsgNo": client_msg_no, "channelId": channel, "channelType": channel_type,
                   "payload": {"type": 1, "content": content}}),
        )
        .await
    }

    /// Sends a text message without waiting for its result; returns the request id.
    pub async fn send_msg_nowait(
        &mut self,
        channel: &str,
        channel_type: u8,
        client_msg_no: &str,
        content: &str,
    ) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send_text(
            json!({"jsonrpc": "2.0", "method": "send", "id": id,
                   "params": {"clientMsgNo": client_msg_no, "channelId": channel, "channelType": channel_type,
                              "payload": {"type": 1, "content": content}}})
            .to_string(),
        )
        .await;
        id
    }

    /// The response to the request `id`.
    pub async fn wait_result(&mut self, id: &str) -> Value {
        if let Some(i) = self.inbox.iter().position(|f| f["id"] == id) {
            return self.inbox.remove(i);
        }
        self.wait_for(|f| f["id"] == id).await.expect("a response")
    }

    /// The next text frame (from the inbox first), or None on close or after `timeout`.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Value> {
        if !self.inbox.is_empty() {
            return Some(self.inbox.remove(0));
        }
        self.read(timeout).await
    }

    async fn read(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    self.other_kind_frames += usize::from(self.binary);
                    return serde_json::from_str(&t).ok();
                }
                Ok(Some(Ok(Message::Binary(b)))) => {
                    self.other_kind_frames += usize::from(!self.binary);
                    return serde_json::from_slice(&b).ok();
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                _ => return None,
            }
        }
    }

    /// Waits for a frame matching `pred`, keeping the others in the inbox.
    pub async fn wait_for(&mut self, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(i) = self.inbox.iter().position(&pred) {
            return Some(self.inbox.remove(i));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read(left).await?;
            if pred(&frame) {
                return Some(frame);
            }
            self.inbox.push(frame);
        }
    }

    /// The next `recv` notification within `timeout`, acknowledged when `ack`.
    pub async fn recv(&mut self, timeout: Duration, ack: bool) -> Option<Value> {
        let frame = if let Some(i) = self.inbox.iter().position(|f| f["method"] == "recv") {
            Some(self.inbox.remove(i))
        } else {
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.read(left).await {
                    None => break None,
                    Some(f) if f["method"] == "recv" => break Some(f),
                    Some(f) => self.inbox.push(f),
                }
            }
        }?;
        if ack {
            let p = &frame["params"];
            self.notify(
                "recvack",
                json!({"messageId": p["messageId"], "messageSeq": p["messageSeq"]}),
            )
            .await;
        }
        Some(frame)
    }

    /// Reads until the server closes; returns the disconnect notification and the close frame.
    pub async fn closed(&mut self, timeout: Duration) -> Closed {
        let mut disconnect = self
            .inbox
            .iter()
            .find(|f| f["method"] == "disconnect")
            .cloned();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    if v["method"] == "disconnect" {
                        disconnect = Some(v);
                    }
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Closed {
                        disconnect,
                        code: frame.as_ref().map(|f| f.code),
                        reason: frame.map(|f| f.reason.to_string()).unwrap_or_default(),
                    }
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) | Ok(None) => {
                    return Closed {
                        disconnect,
                        code: None,
                        reason: String::new(),
                    }
                }
                Err(_) => panic!("the server did not close the connection within {timeout:?}"),
            }
        }
    }
}
