//! Conversation lists, as WuKongIM's `/conversation/sync` gives them: each of a user's channels with
//! its newest message, the unread count and the newest `msg_count` messages, derived at sync time from
//! the channel's history and the user's read and delete positions (see
//! [`chathook_store::ConversationStore`]): the message path writes nothing per recipient.
//!
//! Unread is the newest seq minus the read position, or minus the user's own newest message when that
//! is later (a user has read what came before their own message); it is exact up to
//! `messages.unread_scan_max` unread messages.

use std::collections::HashMap;

use chathook_events::{ChannelType, Message};
use chathook_store::{person_channel_key, ConversationRecord, PullMode, StoreError, SyncQuery};

use crate::Im;

/// What a `/conversation/sync` asks for.
#[derive(Debug, Clone, Default)]
pub struct ConversationQuery {
    pub uid: String,
    /// Nonzero: only conversations with messages after the user's read position.
    pub version: i64,
    /// What the client already has: (channel id, channel type) -> its newest seq.
    pub client_seqs: HashMap<(String, u8), u64>,
    /// Newest messages per conversation (WuKongIM answers nothing when 0).
    pub msg_count: usize,
    pub only_unread: bool,
    /// Types left out, unless the client named the channel in `client_seqs`.
    pub exclude_channel_types: Vec<u8>,
    /// 1-based page of the conversation list (0: the whole list) and its size.
    pub page: usize,
    pub page_size: usize,
}

/// One conversation in a `/conversation/sync` answer.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub channel_id: String,
    pub channel_type: u8,
    pub unread: u64,
    /// The newest message's timestamp (unix seconds).
    pub timestamp: i64,
    pub last_msg_seq: u64,
    pub last_client_msg_no: String,
    pub readed_to_msg_seq: u64,
    /// The newest message's timestamp in nanoseconds.
    pub version: i64,
    /// Newest first.
    pub recents: Vec<Message>,
}

/// Parses WuKongIM's `last_msg_seqs`: `channelID:channelType:seq|...` (malformed entries are skipped).
pub fn parse_client_seqs(text: &str) -> HashMap<(String, u8), u64> {
    text.split('|')
        .filter_map(|item| {
            let mut parts = item.split(':');
            let (id, ty, seq) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            Some(((id.to_string(), ty.parse().ok()?), seq.parse().ok()?))
        })
        .collect()
}

/// Largest page of the conversation list (WuKongIM's).
const MAX_PAGE_SIZE: usize = 500;
const DEFAULT_PAGE_SIZE: usize = 100;

impl Im {
    /// `POST /conversation/sync`.
    pub async fn sync_conversations(
        &self,
        q: &ConversationQuery,
    ) -> Result<Vec<Conversation>, StoreError> {
        let mut records = self.store().conversations(&q.uid).await?;
        // Conversations with no history yet, and the system's (no uid), are not listed.
        records.retain(|r| r.last.is_some() && !r.channel_id.is_empty());
        records.sort_by_key(|r| {
            let last = r.last.as_ref();
            std::cmp::Reverse(last.map_or((0, 0), |m| (m.timestamp, m.message_id)))
        });
        if q.page > 0 {
            let size = match q.page_size {
                0 => DEFAULT_PAGE_SIZE,
                n => n.min(MAX_PAGE_SIZE),
            };
            records = records
                .into_iter()
                .skip((q.page - 1).saturating_mul(size))
                .take(size)
                .collect();
        }
        if q.msg_count == 0 {
            return Ok(Vec::new());
        }
        // One budget for the recent messages of the whole answer (each conversation still gets its
        // newest message, so none is listed without one).
        let mut left = self.config().limits.sync_max_bytes;
        let mut out = Vec::new();
        for record in records {
            if let Some(c) = self.conversation(q, record, left).await? {
                let used: usize = c.recents.iter().map(chathook_store::stored_bytes).sum();
                left = left.saturating_sub(used);
                out.push(c);
            }
        }
        Ok(out)
    }

    /// One conversation of the list, with at most `max_bytes` of recent messages (its newest always).
    async fn conversation(
        &self,
        q: &ConversationQuery,
        record: ConversationRecord,
        max_bytes: usize,
    ) -> Result<Option<Conversation>, StoreError> {
        let Some(last) = record.last else {
            return Ok(None);
        };
        let key = (record.channel_id.clone(), record.channel_type);
        let client_seq = q.client_seqs.get(&key).copied().unwrap_or(0);
        if q.exclude_channel_types.contains(&record.channel_type) && client_seq == 0 {
            return Ok(None);
        }
        if client_seq != 0 && client_seq >= last.message_seq {
            return Ok(None);
        }
        // Recents start after what the client has, else after the read position when asked for news.
        let mut from = if client_seq != 0 {
            client_seq + 1
        } else if q.version > 0 || q.only_unread {
            record.read_seq + 1
        } else {
            0
        };
        if record.deleted_seq > 0 && record.deleted_seq >= from {
            from = record.deleted_seq + 1;
        }
        let mut unread = last.message_seq.saturating_sub(record.read_seq);
        let mut readed_to = record.read_seq;
        let own = self
            .store()
            .own_last_seq(
                &record.channel_key,
                record.channel_type,
                &q.uid,
                record.read_seq,
                self.config().messages.unread_scan_max,
            )
            .await?;
        if own > record.read_seq && last.message_seq - own < unread {
            unread = last.message_seq - own;
            readed_to = own;
        }
        if last.from_uid == q.uid {
            unread = 0;
            readed_to = last.message_seq;
        }
        if q.only_unread && unread == 0 {
            return Ok(None);
        }
        let page = self
            .store()
            .sync(SyncQuery {
                channel_key: record.channel_key,
                channel_type: record.channel_type,
                start_seq: 0,
                end_seq: from.saturating_sub(1),
                limit: q.msg_count.min(self.config().limits.sync_max_limit),
                max_bytes,
                pull_mode: PullMode::Down,
                now: unix_now(),
            })
            .await?;
        let mut recents = page.messages;
        recents.reverse();
        if recents.is_empty() {
            return Ok(None);
        }
        Ok(Some(Conversation {
            channel_id: record.channel_id,
            channel_type: record.channel_type,
            unread,
            timestamp: last.timestamp,
            last_msg_seq: last.message_seq,
            last_client_msg_no: last.client_msg_no.clone(),
            readed_to_msg_seq: readed_to,
            version: last.timestamp.saturating_mul(1_000_000_000),
            recents,
        }))
    }

    /// The storage key and newest seq of `uid`'s conversation with `channel_id`.
    async fn conversation_key(
        &self,
        uid: &str,
        channel_id: &str,
        channel_type: u8,
    ) -> Result<(String, u64), StoreError> {
        let key = match ChannelType::from_u8(channel_type) {
            Some(ChannelType::Person) => person_channel_key(uid, channel_id),
            _ => channel_id.to_string(),
        };
        let last = self.store().last_seq(&key, channel_type).await?;
        Ok((key, last))
    }

    /// `POST /conversations/setUnread`: the read position moves to `unread` messages before the newest
    /// (never back, as in WuKongIM).
    pub async fn set_unread(
        &self,
        uid: &str,
        channel_id: &str,
        channel_type: u8,
        unread: u64,
    ) -> Result<(), StoreError> {
        let (key, last) = self.conversation_key(uid, channel_id, channel_type).await?;
        let read = if unread > last {
            last.saturating_sub(1)
        } else {
            last - unread
        };
        self.store()
            .mark_conversation(uid, &key, channel_type, read, 0)
            .await
    }

    /// `POST /conversations/clearUnread`: everything up to the newest message is read.
    pub async fn clear_unread(
        &self,
        uid: &str,
        channel_id: &str,
        channel_type: u8,
    ) -> Result<(), StoreError> {
        let (key, last) = self.conversation_key(uid, channel_id, channel_type).await?;
        self.store()
            .mark_conversation(uid, &key, channel_type, last, 0)
            .await
    }

    /// `POST /conversations/delete`: the conversation leaves the list until a newer message arrives.
    pub async fn delete_conversation(
        &self,
        uid: &str,
        channel_id: &str,
        channel_type: u8,
    ) -> Result<(), StoreError> {
        let (key, last) = self.conversation_key(uid, channel_id, channel_type).await?;
        self.store()
            .mark_conversation(uid, &key, channel_type, 0, last)
            .await
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_seqs_parse_like_wukongim() {
        let seqs = parse_client_seqs("g1:2:10|bob:1:3|bad|x:y:1|a:1:2:3|");
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[&("g1".to_string(), 2)], 10);
        assert_eq!(seqs[&("bob".to_string(), 1)], 3);
    }
}
