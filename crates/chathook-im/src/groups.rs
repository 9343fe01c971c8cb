//! Channel management for backends: groups (create or update, subscribers, delete) and the flags and
//! lists every channel has (`/channel/info`, blacklist, whitelist), person channels included: a person
//! channel's record is one user's (`channel_id` = the uid). Each write appends its group events in the
//! same commit and refreshes the channel cache. A ban on a user's person channel ends their sessions.

use chathook_events::{ChannelType, Event, GroupChange, GroupRef, PresenceReason};
use std::sync::Arc;

use chathook_store::{
    ChannelDiff, ChannelFlags, ChannelRecord, ListChange, StoreError, SubscriberChange, UidList,
};

use crate::channels::CachedChannel;
use crate::error::{reason, ChannelError};
use crate::presence::Kick;
use crate::Im;

/// Channel ids: non-empty, and only characters that are safe in URLs and keys.
pub fn valid_channel_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= crate::messaging::MAX_CHANNEL_ID_BYTES
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'))
}

fn group_events(diff: &ChannelDiff) -> Vec<Event> {
    if diff.channel.flags.channel_type != ChannelType::Group.as_u8() {
        return Vec::new();
    }
    let id = &diff.channel.flags.channel_id;
    let mut events = Vec::new();
    if diff.created {
        events.push(Event::GroupCreated(GroupChange {
            channel_id: id.clone(),
            uids: diff.channel.subscribers.clone(),
        }));
    } else if !diff.added.is_empty() {
        events.push(Event::GroupMemberAdded(GroupChange {
            channel_id: id.clone(),
            uids: diff.added.clone(),
        }));
    }
    if !diff.removed.is_empty() {
        events.push(Event::GroupMemberRemoved(GroupChange {
            channel_id: id.clone(),
            uids: diff.removed.clone(),
        }));
    }
    if diff.dismissed {
        events.push(Event::GroupDismissed(GroupRef {
            channel_id: id.clone(),
        }));
    }
    events
}

impl Im {
    /// A group: the only type with subscribers.
    fn check_channel(&self, id: &str, channel_type: u8) -> Result<(), ChannelError> {
        if !valid_channel_id(id) {
            return Err(ChannelError::BadChannelId);
        }
        if channel_type != ChannelType::Group.as_u8() {
            return Err(ChannelError::UnsupportedChannelType(channel_type));
        }
        Ok(())
    }

    /// A group or a person channel (flags and lists).
    fn check_any_channel(&self, id: &str, channel_type: u8) -> Result<ChannelType, ChannelError> {
        if !valid_channel_id(id) {
            return Err(ChannelError::BadChannelId);
        }
        ChannelType::from_u8(channel_type).ok_or(ChannelError::UnsupportedChannelType(channel_type))
    }

    async fn check_size(
        &self,
        id: &str,
        channel_type: u8,
        change: &SubscriberChange,
    ) -> Result<(), ChannelError> {
        let SubscriberChange::Add { uids, reset } = change else {
            return Ok(());
        };
        let limit = self.config().limits.group_max_members;
        let mut members: std::collections::HashSet<&str> =
            uids.iter().map(String::as_str).collect();
        let current = if *reset {
            None
        } else {
            self.channels().get(self.store(), id, channel_type).await?
        };
        if let Some(ch) = &current {
            members.extend(ch.record.subscribers.iter().map(String::as_str));
        }
        if members.len() > limit {
            return Err(ChannelError::TooManyMembers {
                size: members.len(),
                limit,
            });
        }
        Ok(())
    }

    /// After a channel write: this node's cache forgets the channel (and indexes `after`), and so do
    /// the other nodes'.
    fn channel_written(&self, id: &str, channel_type: u8, after: Option<&ChannelRecord>) {
        self.channels().invalidate(id, channel_type, after);
        self.tell_other_nodes(crate::cluster::wire::Order::ChannelChanged {
            channel_id: id.to_string(),
            channel_type,
        });
    }

    fn after_write(&self, diff: &ChannelDiff) {
        let f = &diff.channel.flags;
        self.channel_written(&f.channel_id, f.channel_type, Some(&diff.channel));
        self.metrics().count_events(&group_events(diff));
    }

    /// `POST /channel`: creates or updates a group with its subscribers.
    pub async fn upsert_channel(
        &self,
        flags: ChannelFlags,
        subscribers: Vec<String>,
        reset: bool,
    ) -> Result<ChannelDiff, ChannelError> {
        self.check_channel(&flags.channel_id, flags.channel_type)?;
        let change = SubscriberChange::Add {
            uids: subscribers,
            reset,
        };
        self.check_size(&flags.channel_id, flags.channel_type, &change)
            .await?;
        self.write_channel(flags, change).await
    }

    /// Writes a channel's flags and subscriber change with its group events, then refreshes the cache.
    async fn write_channel(
        &self,
        flags: ChannelFlags,
        change: SubscriberChange,
    ) -> Result<ChannelDiff, ChannelError> {
        let diff = self
            .store()
            .upsert_channel(flags, change, Box::new(group_events))
            .await?;
        self.after_write(&diff);
        Ok(diff)
    }

    /// `POST /channel/subscriber_add|_remove`.
    pub async fn change_subscribers(
        &self,
        id: &str,
        channel_type: u8,
        change: SubscriberChange,
    ) -> Result<ChannelDiff, ChannelError> {
        self.check_channel(id, channel_type)?;
        let (SubscriberChange::Add { uids, .. } | SubscriberChange::Remove { uids }) = &change;
        if uids.is_empty() {
            return Err(ChannelError::NoSubscribers);
        }
        self.check_size(id, channel_type, &change).await?;
        let diff = self
            .store()
            .change_subscribers(id, channel_type, change, Box::new(group_events))
            .await?
            .ok_or(ChannelError::NotFound)?;
        self.after_write(&diff);
        Ok(diff)
    }

    /// `POST /channel/blacklist_*` and `/channel/whitelist_*`. A group must exist; a person channel's
    /// record is created on its first list.
    pub async fn change_list(
        &self,
        id: &str,
        channel_type: u8,
        list: UidList,
        change: ListChange,
    ) -> Result<ChannelRecord, ChannelError> {
        let kind = self.check_any_channel(id, channel_type)?;
        let record = self
            .store()
            .change_list(id, channel_type, list, change, kind == ChannelType::Person)
            .await?
            .ok_or(ChannelError::NotFound)?;
        self.channel_written(id, channel_type, Some(&record));
        Ok(record)
    }

    /// `POST /channel/info`: sets a channel's flags (a group's or a person channel's), creating it when
    /// missing; its subscribers and lists stay. Banning a user (their person channel) ends their
    /// sessions on every node with reason 19; their connects are refused until the ban is lifted.
    pub async fn set_channel_info(&self, flags: ChannelFlags) -> Result<ChannelDiff, ChannelError> {
        let kind = self.check_any_channel(&flags.channel_id, flags.channel_type)?;
        let unchanged = SubscriberChange::Add {
            uids: Vec::new(),
            reset: false,
        };
        let banned = (kind == ChannelType::Person && flags.ban).then(|| flags.channel_id.clone());
        let diff = self.write_channel(flags, unchanged).await?;
        // After the write (and the cache's refresh): a login racing the ban either is kicked here or
        // finds the ban when it checks.
        if let Some(uid) = banned {
            let kick = Kick {
                reason_code: reason::BAN,
                reason: "the user is banned".into(),
                presence_reason: PresenceReason::Kicked,
                notify: true,
                device: None,
            };
            self.kick_device(&uid, None, None, kick);
        }
        Ok(diff)
    }

    /// Whether `uid` is banned (their person channel carries `ban`).
    pub(crate) async fn is_banned(&self, uid: &str) -> Result<bool, StoreError> {
        let own = self
            .channels()
            .get(self.store(), uid, ChannelType::Person.as_u8())
            .await?;
        Ok(own.is_some_and(|c| c.record.flags.ban))
    }

    /// The stored record of a channel (`None` when it has none).
    pub async fn channel(
        &self,
        id: &str,
        channel_type: u8,
    ) -> Result<Option<Arc<CachedChannel>>, StoreError> {
        self.channels().get(self.store(), id, channel_type).await
    }

    /// `POST /channel/delete`: the group's members and lists are removed and it is marked disbanded (a
    /// send to it is told "disbanded"); history stays.
    pub async fn delete_channel(&self, id: &str, channel_type: u8) -> Result<(), ChannelError> {
        self.check_channel(id, channel_type)?;
        let deleted = self
            .store()
            .delete_channel(
                id,
                channel_type,
                Box::new(|ch: &ChannelRecord| {
                    vec![Event::GroupDismissed(GroupRef {
                        channel_id: ch.flags.channel_id.clone(),
                    })]
                }),
            )
            .await?;
        if !deleted {
            return Err(ChannelError::NotFound);
        }
        self.channel_written(id, channel_type, None);
        self.metrics()
            .events
            .get_or_create(&vec![("type".into(), "group.dismissed".into())])
            .inc();
        Ok(())
    }
}
