//! The send's first stage, admit: the request's sizes, its channel, its sender's rights (a client's send:
//! bans, blacklists, membership, whitelists; a backend's: only bans and disbands), and who receives it.
//! Nothing is written here.

use std::sync::Arc;

use chathook_events::ChannelType;
use chathook_store::person_channel_key;

use super::{Origin, Recipients, SendRequest, MAX_CHANNEL_ID_BYTES};
use crate::channels::CachedChannel;
use crate::config::Limits as LimitsConfig;
use crate::error::SendError;
use crate::Im;

/// A send that passed its checks: what it is, where it goes, who receives it.
pub(super) struct Admitted {
    pub req: SendRequest,
    /// The type its seqs and counters go by (person for a CMD to listed users).
    pub channel_type: ChannelType,
    /// The key its seqs count under (empty for a CMD to listed users, which have no history).
    pub channel_key: String,
    pub recipients: Recipients,
    /// A backend's CMD to listed `subscribers` (no channel, no before-send hook).
    pub to_subscribers: bool,
}

/// The request's sizes against `limits`: the client message number and channel id, the payload (not
/// empty, not over `max_payload_bytes`).
pub(super) fn check_sizes(req: &SendRequest, limits: &LimitsConfig) -> Result<(), SendError> {
    for (field, value, limit) in [
        (
            "client_msg_no",
            &req.client_msg_no,
            limits.max_client_msg_no_bytes,
        ),
        ("channel_id", &req.channel_id, MAX_CHANNEL_ID_BYTES),
    ] {
        if value.len() > limit {
            let size = value.len();
            return Err(SendError::TooLong { field, size, limit });
        }
    }
    if req.payload.is_empty() {
        return Err(SendError::EmptyPayload);
    }
    if req.payload.len() > limits.max_payload_bytes {
        return Err(SendError::PayloadTooLarge {
            size: req.payload.len(),
            limit: limits.max_payload_bytes,
        });
    }
    Ok(())
}

/// The channel type a send goes by: a send to listed `subscribers` goes through a person channel
/// whatever type it names (Go backends send WuKongIM's zero value, 0, and WuKongIM ignores it there).
pub(super) fn channel_type_of(req: &SendRequest) -> Result<ChannelType, SendError> {
    if req.channel_id.is_empty() {
        return Ok(ChannelType::Person);
    }
    ChannelType::from_u8(req.channel_type)
        .ok_or(SendError::UnsupportedChannelType(req.channel_type))
}

/// A client's send to a group: not blacklisted (4), a subscriber (3), and on the whitelist when the group
/// has one (13).
fn check_group_sender(channel: &CachedChannel, from_uid: &str) -> Result<(), SendError> {
    if channel.is_blacklisted(from_uid) {
        return Err(SendError::Blacklisted);
    }
    if !channel.is_member(from_uid) {
        return Err(SendError::NotMember);
    }
    if channel.has_whitelist() && !channel.is_whitelisted(from_uid) {
        return Err(SendError::NotWhitelisted);
    }
    Ok(())
}

impl Im {
    /// Admits a send: every check it must pass, and its recipients.
    pub(super) async fn admit(&self, mut req: SendRequest) -> Result<Admitted, SendError> {
        check_sizes(&req, &self.config().limits)?;
        let to_subscribers = req.channel_id.is_empty();
        let channel_type = channel_type_of(&req)?;
        // The backend (and a system uid) speaks for the sender: WuKongIM checks only bans and disbands.
        let from_client =
            matches!(req.origin, Origin::Connection(_)) && !self.is_system_uid(&req.from_uid);
        if from_client {
            self.check_sender_not_banned(&req.from_uid).await?;
        }
        let (channel_key, recipients) = if to_subscribers {
            // A CMD message to listed users (REST `subscribers`): each sees it from the sender.
            let uids = req.subscribers.take().ok_or(SendError::EmptyChannelId)?;
            req.channel_id = req.from_uid.clone();
            req.channel_type = ChannelType::Person.as_u8();
            (String::new(), Recipients::Listed(uids))
        } else if channel_type == ChannelType::Person {
            if from_client {
                self.check_person_lists(&req.from_uid, &req.channel_id)
                    .await?;
            }
            let mut r = vec![req.channel_id.clone()];
            if !req.from_uid.is_empty() && req.from_uid != req.channel_id {
                r.push(req.from_uid.clone());
            }
            let key = person_channel_key(&req.from_uid, &req.channel_id);
            (key, Recipients::Listed(r))
        } else {
            let recipients = self.group_recipients(&req, from_client).await?;
            (req.channel_id.clone(), recipients)
        };
        Ok(Admitted {
            req,
            channel_type,
            channel_key,
            recipients,
            to_subscribers,
        })
    }

    /// A group's subscribers, after its flags and (a client's send) the sender's rights.
    async fn group_recipients(
        &self,
        req: &SendRequest,
        from_client: bool,
    ) -> Result<Recipients, SendError> {
        let channel: Option<Arc<CachedChannel>> = self
            .channels()
            .get(self.store(), &req.channel_id, req.channel_type)
            .await?;
        match channel {
            // WuKongIM stores a backend's send to a group it does not know.
            None if !from_client => Ok(Recipients::Listed(Vec::new())),
            None => Err(SendError::ChannelNotFound),
            Some(channel) => {
                if channel.record.flags.disband {
                    return Err(SendError::Disbanded);
                }
                if channel.record.flags.ban {
                    return Err(SendError::Banned);
                }
                if from_client {
                    check_group_sender(&channel, &req.from_uid)?;
                }
                Ok(Recipients::Group(channel))
            }
        }
    }

    /// A sender whose own person channel is banned may not send (reason 19).
    async fn check_sender_not_banned(&self, from_uid: &str) -> Result<(), SendError> {
        if self.is_banned(from_uid).await? {
            return Err(SendError::Banned);
        }
        Ok(())
    }

    /// The recipient's person channel lists: a blacklisted sender is refused (4); with
    /// `messages.person_whitelist`, so is a sender not on the recipient's whitelist (13).
    async fn check_person_lists(&self, from_uid: &str, to_uid: &str) -> Result<(), SendError> {
        let theirs = self
            .channels()
            .get(self.store(), to_uid, ChannelType::Person.as_u8())
            .await?;
        if theirs.as_ref().is_some_and(|c| c.is_blacklisted(from_uid)) {
            return Err(SendError::Blacklisted);
        }
        if self.config().messages.person_whitelist
            && !theirs.as_ref().is_some_and(|c| c.is_whitelisted(from_uid))
        {
            return Err(SendError::NotWhitelisted);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chathook_events::{ClientInfo, MessageHeader};

    fn request(channel_id: &str, channel_type: u8, payload: &[u8]) -> SendRequest {
        SendRequest {
            from_uid: "alice".into(),
            channel_id: channel_id.into(),
            channel_type,
            client_msg_no: String::new(),
            header: MessageHeader::default(),
            setting: 0,
            expire: 0,
            payload: payload.to_vec(),
            subscribers: None,
            origin: Origin::Backend,
            client: Arc::new(ClientInfo::default()),
            skip_before_send: false,
        }
    }

    #[test]
    fn sizes_past_their_limits_are_refused_naming_the_field() {
        let limits = LimitsConfig {
            max_payload_bytes: 4,
            max_client_msg_no_bytes: 3,
            ..LimitsConfig::default()
        };
        assert!(check_sizes(&request("bob", 1, b"1234"), &limits).is_ok());
        assert!(matches!(
            check_sizes(&request("bob", 1, b"12345"), &limits),
            Err(SendError::PayloadTooLarge { size: 5, limit: 4 })
        ));
        assert!(matches!(
            check_sizes(&request("bob", 1, b""), &limits),
            Err(SendError::EmptyPayload)
        ));
        let mut long = request("bob", 1, b"x");
        long.client_msg_no = "abcd".into();
        assert!(matches!(
            check_sizes(&long, &limits),
            Err(SendError::TooLong {
                field: "client_msg_no",
                size: 4,
                limit: 3
            })
        ));
        let far = request(&"c".repeat(MAX_CHANNEL_ID_BYTES + 1), 1, b"x");
        assert!(matches!(
            check_sizes(&far, &limits),
            Err(SendError::TooLong {
                field: "channel_id",
                ..
            })
        ));
    }

    #[test]
    fn a_send_to_listed_subscribers_goes_by_person_whatever_type_it_names() {
        assert_eq!(
            channel_type_of(&request("", 0, b"x")).ok(),
            Some(ChannelType::Person)
        );
        assert_eq!(
            channel_type_of(&request("g1", 2, b"x")).ok(),
            Some(ChannelType::Group)
        );
        assert!(matches!(
            channel_type_of(&request("g1", 9, b"x")),
            Err(SendError::UnsupportedChannelType(9))
        ));
    }
}
