//! Before-send hooks: the endpoint that judges each channel type's messages (at most one per hook),
//! the call and the failure policy. The request and the reading of the verdict are the flavour's
//! (`format::tencent`: `C2C/Group.CallbackBeforeSendMsg`; `format::standard`: the envelope of
//! `message.before_send.person/group`). A hook is never retried:
//! a timeout (`hook_timeout_ms`, at most 2 s), a failed connection, an answer other than HTTP 200, a
//! body that does not parse or a code the flavour does not define follow the endpoint's `on_failure`
//! (`allow` by default, Tencent's fail-open). Every attempt is in the attempt log and the metrics.

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use chathook_events::{BeforeSend, Outgoing, Verdict};
use serde_json::Value;

use crate::client::AttemptResult;
use crate::clock::now_ms;
use crate::dispatcher::attempt::{self, Delivery};
use crate::dispatcher::Context;
use crate::endpoint::{new_id, Endpoint, Flavour, HookKind, OnFailure};
use crate::format::{standard, tencent, Rendered};

/// Which endpoint answers each hook; kept by the engine as endpoints change.
#[derive(Default)]
pub(crate) struct HookSlots {
    /// `[person, group]`.
    slots: RwLock<[Option<Arc<Endpoint>>; 2]>,
}

fn index(kind: HookKind) -> usize {
    match kind {
        HookKind::Person => 0,
        HookKind::Group => 1,
    }
}

impl HookSlots {
    /// Puts every hook of `endpoints` in its slot (the engine keeps them unique).
    pub fn fill<'a>(&self, endpoints: impl Iterator<Item = &'a Arc<Endpoint>>) {
        let mut next: [Option<Arc<Endpoint>>; 2] = [None, None];
        for e in endpoints {
            for kind in &e.before_send {
                next[index(*kind)] = Some(e.clone());
            }
        }
        if let Ok(mut slots) = self.slots.write() {
            *slots = next;
        }
    }

    fn get(&self, kind: HookKind) -> Option<Arc<Endpoint>> {
        self.slots.read().ok()?[index(kind)].clone()
    }
}

/// The before-send hook the IM core asks.
pub(crate) struct Hooks {
    pub ctx: Arc<Context>,
    pub slots: Arc<HookSlots>,
}

impl Hooks {
    /// The endpoint judging `channel_type`, when it is enabled and not disabled by the server.
    fn judge_for(&self, channel_type: u8) -> Option<(HookKind, Arc<Endpoint>)> {
        let kind = HookKind::for_channel_type(channel_type)?;
        let endpoint = self.slots.get(kind)?;
        self.ctx
            .health
            .get(&endpoint.id)
            .active(&endpoint)
            .then_some((kind, endpoint))
    }
}

#[async_trait]
impl BeforeSend for Hooks {
    fn judges(&self, channel_type: u8) -> bool {
        self.judge_for(channel_type).is_some()
    }

    async fn judge(&self, m: &Outgoing) -> Verdict {
        self.judge_within(m, None).await
    }
}

impl Hooks {
    /// The verdict on `m`, the hook's timeout cut to `cap` when given (relay mode answers another
    /// server within its own deadline); past it, the endpoint's `on_failure` decides.
    pub(crate) async fn judge_within(
        &self,
        m: &Outgoing,
        cap: Option<std::time::Duration>,
    ) -> Verdict {
        let Some((kind, mut endpoint)) = self.judge_for(m.channel_type) else {
            return Verdict::Allow { payload: None };
        };
        if let Some(cap) = cap {
            let cap_ms = cap.as_millis() as u64;
            if cap_ms < endpoint.hook_timeout_ms {
                let mut capped = (*endpoint).clone();
                capped.hook_timeout_ms = cap_ms.max(1);
                endpoint = Arc::new(capped);
            }
        }
        let rendered = render(endpoint.flavour, kind, m, self.ctx.tencent_app);
        let delivery = Delivery::one_off(new_id("hook"), rendered);
        let (_, result) = attempt::send_hook(
            &self.ctx.deliverer,
            &self.ctx.attempts,
            &endpoint,
            &delivery,
        )
        .await;
        let verdict = read_verdict(endpoint.flavour, kind, &m.payload, &result);
        let outcome = match &verdict {
            Ok(Verdict::Allow { .. }) => "allow",
            Ok(Verdict::Reject { .. }) => "reject",
            Ok(Verdict::Drop) => "drop",
            Err(_) => "failure",
        };
        self.ctx
            .metrics
            .count_attempt(&endpoint.id, &delivery.event, outcome, result.latency);
        match verdict {
            Ok(v) => v,
            Err(why) => {
                tracing::warn!(endpoint = %endpoint.id, %why, policy = ?endpoint.on_failure, "before-send hook failed");
                match endpoint.on_failure {
                    OnFailure::Allow => Verdict::Allow { payload: None },
                    OnFailure::Reject => Verdict::Reject {
                        code: tencent::rejected_code(kind),
                        info: format!("the before-send hook failed: {why}"),
                    },
                }
            }
        }
    }
}

/// A message as a before-send hook of `kind` is asked about it, for examples and test requests.
fn sample(kind: HookKind) -> Outgoing {
    let (channel_type, channel_id) = match kind {
        HookKind::Person => (1, "bob"),
        HookKind::Group => (2, "g1"),
    };
    Outgoing {
        from_uid: "alice".into(),
        channel_id: channel_id.into(),
        channel_type,
        client_msg_no: "c1".into(),
        header: Default::default(),
        payload: br#"{"type":1,"content":"hello"}"#.to_vec(),
        timestamp: 1_700_000_000,
        sender: Arc::new(chathook_events::ClientInfo {
            ip: "203.0.113.7".into(),
            platform: "Android".into(),
        }),
    }
}

/// A test request of the hook `kind` in `flavour` (the sample message); `None` for a flavour without
/// before-send hooks (WuKongIM's).
pub(crate) fn render_sample(flavour: Flavour, kind: HookKind, sdk_app_id: u64) -> Option<Rendered> {
    (flavour != Flavour::Wukongim).then(|| render(flavour, kind, &sample(kind), sdk_app_id))
}

/// The request for `m` in `flavour`.
fn render(flavour: Flavour, kind: HookKind, m: &Outgoing, sdk_app_id: u64) -> Rendered {
    match flavour {
        Flavour::Tencent => tencent::before_send(m, sdk_app_id, now_ms()),
        _ => standard::before_send(kind, m, now_ms()),
    }
}

/// The verdict an answer gives; `Err` says why it gives none (the failure policy decides).
fn read_verdict(
    flavour: Flavour,
    kind: HookKind,
    original: &[u8],
    result: &AttemptResult,
) -> Result<Verdict, String> {
    if result.status != Some(200) {
        return Err(if result.error.is_empty() {
            format!("HTTP {}", result.status.unwrap_or(0))
        } else {
            result.error.clone()
        });
    }
    let answer: Value =
        serde_json::from_slice(&result.body).map_err(|_| "the answer is not JSON".to_string())?;
    if flavour == Flavour::Tencent {
        tencent::verdict(kind, original, &answer)
    } else {
        standard::verdict(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> AttemptResult {
        AttemptResult {
            success: true,
            status: Some(200),
            body: body.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn tencent(kind: HookKind, body: &str) -> Result<Verdict, String> {
        read_verdict(
            Flavour::Tencent,
            kind,
            br#"{"type":1,"content":"hi"}"#,
            &ok(body),
        )
    }

    #[test]
    fn tencent_codes_and_their_ranges() {
        assert_eq!(
            tencent(HookKind::Person, r#"{"ErrorCode":0}"#),
            Ok(Verdict::Allow { payload: None })
        );
        assert_eq!(
            tencent(HookKind::Person, r#"{"ErrorCode":1,"ErrorInfo":"no"}"#),
            Ok(Verdict::Reject {
                code: 20006,
                info: "no".into()
            })
        );
        assert_eq!(
            tencent(HookKind::Group, r#"{"ErrorCode":1}"#),
            Ok(Verdict::Reject {
                code: 10016,
                info: String::new()
            })
        );
        assert_eq!(
            tencent(HookKind::Group, r#"{"ErrorCode":2}"#),
            Ok(Verdict::Drop)
        );
        for (kind, inside, outside) in [
            (HookKind::Person, [120_001, 130_000], [120_000, 130_001]),
            (HookKind::Group, [10_100, 10_200], [10_099, 10_201]),
        ] {
            for c in inside {
                let body = format!(r#"{{"ErrorCode":{c},"ErrorInfo":"why"}}"#);
                assert_eq!(
                    tencent(kind, &body),
                    Ok(Verdict::Reject {
                        code: c,
                        info: "why".into()
                    })
                );
            }
            for c in outside {
                assert!(
                    tencent(kind, &format!(r#"{{"ErrorCode":{c}}}"#)).is_err(),
                    "{c}"
                );
            }
        }
        assert!(tencent(HookKind::Person, "not json").is_err());
        let non_200 = AttemptResult {
            status: Some(500),
            ..ok(r#"{"ErrorCode":0}"#)
        };
        assert!(read_verdict(Flavour::Tencent, HookKind::Person, b"x", &non_200).is_err());
    }

    #[test]
    fn standard_actions() {
        let std = |body: &str| read_verdict(Flavour::Standard, HookKind::Group, b"x", &ok(body));
        assert_eq!(
            std(r#"{"action":"allow","payload":"aGk="}"#),
            Ok(Verdict::Allow {
                payload: Some(b"hi".to_vec())
            })
        );
        assert_eq!(
            std(r#"{"action":"reject","code":42,"reason":"spam"}"#),
            Ok(Verdict::Reject {
                code: 42,
                info: "spam".into()
            })
        );
        assert_eq!(std(r#"{"action":"drop"}"#), Ok(Verdict::Drop));
        assert!(std(r#"{"action":"maybe"}"#).is_err());
        assert!(std(r#"{"action":"allow","payload":"%%"}"#).is_err());
    }
}
