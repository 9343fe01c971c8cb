//! The connect phase: the first request must be `connect` and come within `limits.connect_timeout_ms`;
//! its token is checked, the IM core registers the connection, and only then does the client hear
//! "connected". Every refusal is told to the client (the protocol's connect answer with a reason code,
//! or an error answer) and followed by a close with the reason.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::close::close_code;
use super::codec::{Codec, ConnectRequest, Frame, Request};
use super::session::Link;
use super::transport::{write_within, FrameSink, Inbound, LinkBroken};
use chathook_events::{ClientInfo, PresenceReason};
use chathook_http::throttle::Verdict;

use crate::error::reason;
use crate::usersig::UserSigError;
use crate::{Im, Login, OpenConnection};

/// Runs the connect phase from the client's `first` bytes; `None` when the client was refused (and
/// told) or went away. Requests that came after `connect` in the same bytes are left in `pending`.
pub(super) async fn connect<C, K, S>(
    im: &Im,
    codec: &mut C,
    sink: &mut K,
    stream: &mut S,
    first: Bytes,
    link: &Link,
    pending: &mut Vec<Request<C::Tag>>,
) -> Option<OpenConnection>
where
    C: Codec,
    K: FrameSink,
    S: Stream<Item = Inbound> + Unpin,
{
    let request = first_request(im, codec, sink, stream, first, link, pending).await?;
    let params = match request {
        Request::Connect(params) => params,
        Request::Invalid { tag, why } => {
            let answer = tag.and_then(|tag| codec.invalid(tag, &why));
            refuse(im, sink, answer, &why).await;
            return None;
        }
        _ => {
            refuse(im, sink, None, "the first request must be connect").await;
            return None;
        }
    };
    let ip = link.peer.ip().to_canonical();
    let login = match login(im, ip, &params).await {
        Ok(login) => login,
        Err((reason_code, why)) => {
            let answer = codec.connect_refused(params.tag, reason_code, &why);
            refuse(im, sink, Some(answer), &why).await;
            return None;
        }
    };
    let open = match im.open_connection(login).await {
        Ok(open) => open,
        Err(refused) => {
            let why = refused.to_string();
            let answer = codec.connect_refused(params.tag, refused.reason_code(), &why);
            refuse(im, sink, Some(answer), &why).await;
            return None;
        }
    };
    let time_diff = params.client_timestamp.map_or(0, |t| now_ms() - t);
    let connected = codec.connected(params.tag, time_diff, im.config().node_id);
    match write(im, sink, connected).await {
        Ok(()) => Some(open),
        Err(LinkBroken) => {
            im.close_connection(&open.handle, PresenceReason::LinkClosed)
                .await;
            None
        }
    }
}

/// The first request, read on from `first` until one is whole, by the link's deadline; on a timeout,
/// a broken frame or an unreadable link the client is told and `None` returned.
async fn first_request<C, K, S>(
    im: &Im,
    codec: &mut C,
    sink: &mut K,
    stream: &mut S,
    first: Bytes,
    link: &Link,
    pending: &mut Vec<Request<C::Tag>>,
) -> Option<Request<C::Tag>>
where
    C: Codec,
    K: FrameSink,
    S: Stream<Item = Inbound> + Unpin,
{
    let mut chunk = Some(first);
    loop {
        if let Some(bytes) = chunk.take() {
            if let Err(broken) = codec.decode(&bytes, pending) {
                sink.close(broken.code, &broken.why).await;
                return None;
            }
            if !pending.is_empty() {
                return Some(pending.remove(0));
            }
        }
        match tokio::time::timeout_at(link.deadline.into(), stream.next()).await {
            Ok(Some(Inbound::Data(bytes))) => chunk = Some(bytes),
            Ok(Some(Inbound::Alive)) => {}
            Ok(Some(Inbound::Unreadable { code, why })) => {
                sink.close(code, &why).await;
                return None;
            }
            Ok(None) => return None,
            Err(_) => {
                let within = im.config().limits.connect_timeout_ms;
                let why = format!("connect must come within {within} ms");
                sink.close(close_code::POLICY, &why).await;
                return None;
            }
        }
    }
}

/// Checks the login (throttle, token or UserSig); `Err` is the reason code and words for the client.
async fn login<T>(im: &Im, ip: IpAddr, params: &ConnectRequest<T>) -> Result<Login, (u8, String)> {
    if let Verdict::Blocked(wait) = im.throttle().check(ip, Some(&params.uid)) {
        let why = format!(
            "too many failed logins: try again in {} ms",
            wait.as_millis()
        );
        return Err((reason::RATE_LIMIT, why));
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
                return Err((reason::AUTH_FAIL, why));
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "token lookup failed");
            let why = "the server cannot check the token";
            return Err((reason::SYSTEM_ERROR, why.into()));
        }
    };
    im.throttle().succeeded(ip);
    Ok(Login {
        uid: params.uid.clone(),
        device_flag: params.device_flag,
        device_level,
        device_id: params.device_id.clone(),
        client: ClientInfo {
            ip: ip.to_string(),
            platform: platform(params.platform.as_deref(), params.device_flag),
        },
    })
}

/// Writes one frame within `gateway.write_timeout_ms`.
async fn write<K: FrameSink>(im: &Im, sink: &mut K, frame: Frame) -> Result<(), LinkBroken> {
    let limit = Duration::from_millis(im.config().gateway.write_timeout_ms);
    write_within(sink, frame, limit).await
}

/// Refuses the connect: its answer (when the protocol has one), then the close with `why`.
async fn refuse<K: FrameSink>(im: &Im, sink: &mut K, answer: Option<Frame>, why: &str) {
    if let Some(answer) = answer {
        let _ = write(im, sink, answer).await;
    }
    sink.close(close_code::POLICY, why).await;
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
