//! The send's second stage, judge: while a before-send hook judges the channel's type, the send takes
//! its channel's turn (so that seqs follow send order), the hook's verdict lets it through (with its
//! payload, or the one the hook gave), refuses it, or drops it (acknowledged, never stored); then it
//! waits for the sends before it to have their seqs.

use chathook_events::{Outgoing, Verdict};

use super::admit::Admitted;
use super::SendAck;
use crate::error::SendError;
use crate::turns::Turn;
use crate::Im;

/// A send on its way to the store, holding its channel's turn while a hook judges the channel.
pub(super) struct Judged<'a> {
    pub admitted: Admitted,
    /// Its place in the channel's line (`None` when no hook judges the channel type); its turn has
    /// come (every earlier send of the channel has its seq).
    pub turn: Option<Turn<'a>>,
}

/// What the judging decided.
// Moved once per send and never kept: boxing the large variant would add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(super) enum Judgement<'a> {
    Send(Judged<'a>),
    /// The hook dropped it: acknowledged with an id of its own, nobody receives it.
    Dropped(SendAck),
}

/// What a verdict does to a message whose payload was `payload`: the payload to send (the hook's
/// replacement or the original), or `None` to drop it, or a refusal.
pub(super) fn apply(verdict: Verdict, payload: Vec<u8>) -> Result<Option<Vec<u8>>, SendError> {
    match verdict {
        Verdict::Allow { payload: replaced } => Ok(Some(replaced.unwrap_or(payload))),
        Verdict::Reject { code, info } => Err(SendError::RejectedByHook { code, info }),
        Verdict::Drop => Ok(None),
    }
}

impl Im {
    /// Judges an admitted send (a backend's CMD to listed users and `skip_before_send` pass unjudged,
    /// the latter still in the channel's line).
    pub(super) async fn judge(&self, mut a: Admitted) -> Result<Judgement<'_>, SendError> {
        let hook = self
            .before_send()
            .filter(|h| !a.to_subscribers && h.judges(a.req.channel_type));
        let mut turn = hook.as_ref().map(|_| {
            self.turns()
                .take((a.req.channel_type, a.channel_key.clone()))
        });
        if let Some(hook) = hook.filter(|_| !a.req.skip_before_send) {
            let req = &mut a.req;
            let outgoing = Outgoing {
                from_uid: req.from_uid.clone(),
                channel_id: req.channel_id.clone(),
                channel_type: req.channel_type,
                client_msg_no: req.client_msg_no.clone(),
                header: req.header,
                payload: std::mem::take(&mut req.payload),
                timestamp: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                sender: req.client.clone(),
            };
            let verdict = hook.judge(&outgoing).await;
            match apply(verdict, outgoing.payload)? {
                Some(payload) => req.payload = payload,
                None => {
                    let message_id = self.store().reserve_message_id().await?;
                    return Ok(Judgement::Dropped(SendAck {
                        message_id,
                        message_seq: 0,
                        client_msg_no: std::mem::take(&mut req.client_msg_no),
                    }));
                }
            }
        }
        if let Some(turn) = &mut turn {
            turn.wait().await;
        }
        Ok(Judgement::Send(Judged { admitted: a, turn }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_keeps_or_replaces_the_payload_refuses_or_drops() {
        let original = b"original".to_vec();
        assert_eq!(
            apply(Verdict::Allow { payload: None }, original.clone()).ok(),
            Some(Some(original.clone()))
        );
        assert_eq!(
            apply(
                Verdict::Allow {
                    payload: Some(b"new".to_vec())
                },
                original.clone()
            )
            .ok(),
            Some(Some(b"new".to_vec()))
        );
        assert_eq!(apply(Verdict::Drop, original.clone()).ok(), Some(None));
        let refused = apply(
            Verdict::Reject {
                code: 120_001,
                info: "no".into(),
            },
            original,
        );
        assert!(matches!(
            refused,
            Err(SendError::RejectedByHook { code: 120_001, .. })
        ));
    }
}
