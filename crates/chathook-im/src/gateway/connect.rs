//! The connect phase: the first frame must be `connect` and come within `limits.connect_timeout_ms`;
//! its token is checked, the IM core registers the connection, and only then does the client hear
//! "connected". Every refusal is told to the client (a `connect` result with a reason code, or an error
//! response) and followed by a close frame with the reason.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use super::close::{close, close_code, unreadable};
use super::protocol::{self, rpc_code, ConnectParams, Request, RequestError};
use super::{FrameKind, Sink};
use chathook_events::ClientInfo;
use chathook_http::throttle::Verdict;

use crate::error::reason;
use crate::usersig::UserSigError;
use crate::{Im, Login, OpenConnection};

/// A connection that passed `connect` and is registered.
pub(super) struct Connected {
    pub open: OpenConnection,
    /// The kind of frame the client spoke `connect` in; every answer uses the same.
    pub kind: FrameKind,
}

/// Runs the connect phase; `None` when the client was refused (and told) or went away.
pub(super) async fn connect(
    im: &Im,
    peer: SocketAddr,
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
) -> Option<Connected> {
    let (bytes, kind) = first_frame(im, sink, stream).await?;
    let Some(Ok(incoming)) = protocol::parse_frames(&bytes).next() else {
        close(sink, close_code::POLICY, "malformed JSON-RPC frame").await;
        return None;
    };
    let id = incoming.id;
    let params: ConnectParams = match incoming.request {
        Ok(Request::Connect(p)) => p,
        Err(RequestError::BadParams(why)) => {
            let frame = protocol::error_frame(&id, rpc_code::INVALID_PARAMS, &why);
            let _ = sink.send(kind.message(frame.into())).await;
            close(sink, close_code::POLICY, &why).await;
            return None;
        }
        _ => {
            let why = "the first request must be connect";
            close(sink, close_code::POLICY, why).await;
            return None;
        }
    };
    let ip = peer.ip().to_canonical();
    if let Verdict::Blocked(wait) = im.throttle().check(ip, Some(&params.uid)) {
        let why = format!(
            "too many failed logins: try again in {} ms",
            wait.as_millis()
        );
        refuse(sink, kind, &id, reason::RATE_LIMIT, &why).await;
        return None;
    }
    let device_level = match im
        .verify_token(&params.uid, &params.token, params.device_flag)
        .await
    {
        Ok(Some(level)) => level,
        Ok(None) => match user_sig_login(im, &params.uid, &params.token) {
            Ok(level) => level,
            Err(why) => {
                im.throttle().failed(ip, Some(&params.uid));
                refuse(sink, kind, &id, reason::AUTH_FAIL, &why).await;
                return None;
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            let why = "the server cannot check the token";
            refuse(sink, kind, &id, reason::SYSTEM_ERROR, why).await;
            return None;
        }
    };
    im.throttle().succeeded(ip);
    let client = ClientInfo {
        ip: ip.to_string(),
        platform: platform(params.platform.as_deref(), params.device_flag),
    };
    let login = Login {
        uid: params.uid,
        device_flag: params.device_flag,
        device_level,
        client,
    };
    let open = match im.open_connection(login).await {
        Ok(open) => open,
        Err(refused) => {
            let why = refused.to_string();
            refuse(sink, kind, &id, refused.reason_code(), &why).await;
            return None;
        }
    };
    let time_diff = params.client_timestamp.map_or(0, |t| now_ms() - t);
    let connected = protocol::connected_frame(&id, time_diff, im.config().node_id);
    let limit = Duration::from_millis(im.config().gateway.write_timeout_ms);
    match tokio::time::timeout(limit, sink.send(kind.message(connected.into()))).await {
        Ok(Ok(())) => Some(Connected { open, kind }),
        _ => {
            im.close_connection(&open.handle, chathook_events::PresenceReason::LinkClosed)
                .await;
            None
        }
    }
}

/// The platforms a client may name at `connect` (`platform`), in Tencent Cloud Chat's words.
pub const PLATFORMS: [&str; 8] = [
    "iOS", "Android", "Web", "Windows", "Mac", "iPad", "Linux", "Unknown",
];

/// The client's platform: the one it named (matched without regard to case), or else what its
/// device flag says (1 web: `Web`; 0 app and 2 PC do not tell which: `Unknown`).
fn platform(named: Option<&str>, device_flag: u8) -> String {
    let known = named.and_then(|n| PLATFORMS.iter().find(|p| p.eq_ignore_ascii_case(n)));
    match (known, device_flag) {
        (Some(p), _) => p.to_string(),
        (None, 1) => "Web".into(),
        (None, _) => "Unknown".into(),
    }
}

/// With `tencent.secret_key` set, a token that is no registered token may be a Tencent UserSig: a
/// valid one logs the user in as a primary device (Tencent has no device levels, and its users are
/// online wherever they connect). `Err` is the reason the client is told.
fn user_sig_login(im: &Im, uid: &str, token: &str) -> Result<u8, String> {
    const WRONG: &str = "authentication failed: wrong uid, token or device flag";
    let Some(key) = &im.config().usersig else {
        return Err(WRONG.into());
    };
    match key.verify(token, uid, now_ms() / 1000) {
        Ok(()) => Ok(1),
        // not a UserSig at all: a wrong token
        Err(UserSigError::Malformed(_)) => Err(WRONG.into()),
        Err(e) => Err(format!("authentication failed: {e}")),
    }
}

/// The first data frame within the deadline; on a timeout or an unreadable frame the client is told.
async fn first_frame(
    im: &Im,
    sink: &mut Sink,
    stream: &mut SplitStream<WebSocket>,
) -> Option<(bytes::Bytes, FrameKind)> {
    let deadline = Duration::from_millis(im.config().limits.connect_timeout_ms);
    let first = tokio::time::timeout(deadline, async {
        loop {
            match stream.next().await {
                Some(Ok(WsMessage::Text(t))) => return Ok((t.into(), FrameKind::Text)),
                Some(Ok(WsMessage::Binary(b))) => return Ok((b, FrameKind::Binary)),
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(WsMessage::Close(_))) | None => return Err(None),
                Some(Err(e)) => return Err(unreadable(&e, im.config().limits.max_frame_bytes)),
            }
        }
    })
    .await;
    match first {
        Ok(Ok(frame)) => Some(frame),
        Err(_) => {
            let why = format!("connect must come within {} ms", deadline.as_millis());
            close(sink, close_code::POLICY, &why).await;
            None
        }
        // the link is gone: nothing to tell
        Ok(Err(None)) => None,
        Ok(Err(Some((code, why)))) => {
            close(sink, code, &why).await;
            None
        }
    }
}

/// Answers `connect` with a refusal (WuKongIM style: a result whose reasonCode is not 1) and closes.
async fn refuse(sink: &mut Sink, kind: FrameKind, id: &Value, reason_code: u8, why: &str) {
    let frame = protocol::result_frame(id, json!({"reasonCode": reason_code, "reason": why}));
    let _ = sink.send(kind.message(frame.into())).await;
    close(sink, close_code::POLICY, why).await;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
