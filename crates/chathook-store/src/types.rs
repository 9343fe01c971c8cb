//! Plain records passed across the storage traits.

use std::collections::BTreeMap;

use chathook_events::{Message, MessageHeader};

/// A device token, stored as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub uid: String,
    pub device_flag: u8,
    /// The token's keyed hash ([`crate::sealing::Sealer::token_hash`]; the unkeyed SHA-256 of older
    /// versions until the token is next used).
    pub token_hash: Vec<u8>,
    /// 1 primary, 0 secondary.
    pub device_level: u8,
}

/// A user's profile (chathook's extension; WuKongIM keeps none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub uid: String,
    pub name: String,
    pub avatar: String,
    pub custom: BTreeMap<String, String>,
}

/// A channel's flags as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelFlags {
    pub channel_id: String,
    pub channel_type: u8,
    pub large: bool,
    pub ban: bool,
    pub disband: bool,
    /// Members' online changes become `group.member_online_status` events.
    pub live: bool,
}

/// A stored channel with its lists. A person channel's record belongs to one user (`channel_id` = the
/// uid): its lists say who may send to that user, its `ban` bans that user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub flags: ChannelFlags,
    pub subscribers: Vec<String>,
    pub blacklist: Vec<String>,
    pub whitelist: Vec<String>,
}

impl ChannelFlags {
    /// A channel with every flag off.
    pub fn new(channel_id: impl Into<String>, channel_type: u8) -> Self {
        ChannelFlags {
            channel_id: channel_id.into(),
            channel_type,
            large: false,
            ban: false,
            disband: false,
            live: false,
        }
    }
}

/// A channel's uid lists other than its subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidList {
    /// These users may not send to the channel.
    Blacklist,
    /// When enforced, only these users may send to the channel.
    Whitelist,
}

/// How a write changes a channel's subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberChange {
    /// Add these uids; with `reset`, they replace the existing subscribers.
    Add {
        uids: Vec<String>,
        reset: bool,
    },
    Remove {
        uids: Vec<String>,
    },
}

/// How a write changes a uid list (blacklist or whitelist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChange {
    Add(Vec<String>),
    Remove(Vec<String>),
    Set(Vec<String>),
}

/// What a channel write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelDiff {
    /// The channel did not exist before.
    pub created: bool,
    /// `disband` went from false to true.
    pub dismissed: bool,
    /// Subscribers that were not members before.
    pub added: Vec<String>,
    /// Members that are gone.
    pub removed: Vec<String>,
    /// The channel after the write.
    pub channel: ChannelRecord,
}

impl ChannelDiff {
    /// What an upsert did, from the channel before it (if any) and after it.
    pub fn of_upsert(
        before: Option<&ChannelRecord>,
        added: Vec<String>,
        removed: Vec<String>,
        channel: ChannelRecord,
    ) -> ChannelDiff {
        let disband = channel.flags.disband;
        ChannelDiff {
            // A deleted group (kept as disbanded) that is set up again counts as created.
            created: before.is_none_or(|b| b.flags.disband && !disband),
            dismissed: disband && !before.is_some_and(|b| b.flags.disband),
            added,
            removed,
            channel,
        }
    }

    /// What a subscriber change of an existing channel did.
    pub fn of_subscribers(
        added: Vec<String>,
        removed: Vec<String>,
        channel: ChannelRecord,
    ) -> Self {
        ChannelDiff {
            created: false,
            dismissed: false,
            added,
            removed,
            channel,
        }
    }
}

/// A message before the store gives it an id, a sequence number and a timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The storage key of the channel: the group id, or the two uids of a person channel joined by `@`.
    pub channel_key: String,
    pub channel_id: String,
    pub channel_type: u8,
    pub client_msg_no: String,
    pub from_uid: String,
    pub header: MessageHeader,
    pub setting: u8,
    pub expire: u32,
    pub payload: Vec<u8>,
    /// A CMD (`sync_once`, persisted) message goes to these users' CMD queues instead of channel
    /// history; empty for every other message.
    pub cmd_recipients: Vec<String>,
    /// What the commit's observer learns of the message beyond its events (a cluster node's route
    /// for its relay): carried with the commit when the message is stored, never written (a store
    /// without an observer drops it).
    pub note: Option<CommitNote>,
}

/// Something a writer of the store hands, through a commit, to the commit's observer: opaque to the
/// store, which only carries it from [`NewMessage::note`] to [`Committed::notes`] in memory.
#[derive(Clone)]
pub struct CommitNote(pub std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl CommitNote {
    /// The note as the type its writer gave it, if it is one.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl std::fmt::Debug for CommitNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitNote")
    }
}

/// Two notes are equal when they are the same note.
impl PartialEq for CommitNote {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CommitNote {}

/// The store's answer to an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The message was accepted (and stored unless `no_persist`).
    Stored(Message),
    /// The sender already sent this `client_msg_no`: the first message's ids, nothing new written.
    Duplicate {
        message_id: i64,
        message_seq: u64,
        client_msg_no: String,
    },
}

/// WuKongIM's `pull_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullMode {
    /// 0: from `start` towards older messages.
    Down,
    /// 1: from `start` towards newer messages.
    Up,
}

/// One page request of a channel's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncQuery {
    pub channel_key: String,
    pub channel_type: u8,
    /// Included in the page (0 = from the newest, or from the oldest when pulling up).
    pub start_seq: u64,
    /// Excluded from the page (0 = no bound).
    pub end_seq: u64,
    pub limit: usize,
    /// Bytes of messages a page may hold ([`Message`]s' [`stored_bytes`]); the page ends early, with
    /// `more`, when the next one would pass it (the first message is always taken).
    pub max_bytes: usize,
    pub pull_mode: PullMode,
    /// Unix seconds used to hide expired messages.
    pub now: i64,
}

/// What a message weighs in a page: its payload and strings, and a fixed part for the rest.
pub fn stored_bytes(m: &Message) -> usize {
    m.payload.len() + m.client_msg_no.len() + m.from_uid.len() + m.channel_id.len() + 128
}

/// A page being filled from rows read in the pull direction (a down pull's come newest first): at
/// most `limit` messages and `max_bytes` of them. The reader stops as soon as [`PageBuilder::offer`]
/// says the page is full, so no more rows are held than the page needs.
#[derive(Debug)]
pub struct PageBuilder {
    /// Messages taken, in the order they were read.
    messages: Vec<Message>,
    /// Their [`stored_bytes`] together.
    bytes: usize,
    limit: usize,
    max_bytes: usize,
    pull_mode: PullMode,
    /// A row was offered that the page could not take: more lie beyond it.
    more: bool,
    /// The budget holds even for the first message (else a page takes one message whatever it weighs,
    /// so that paging always moves on).
    strict: bool,
}

impl PageBuilder {
    pub fn new(query: &SyncQuery) -> PageBuilder {
        PageBuilder::with(query.limit.max(1), query.max_bytes, query.pull_mode)
    }

    /// A page of at most `limit` messages and `max_bytes` of them, read in `pull_mode`'s order.
    pub fn with(limit: usize, max_bytes: usize, pull_mode: PullMode) -> PageBuilder {
        PageBuilder {
            messages: Vec::new(),
            bytes: 0,
            limit,
            max_bytes,
            pull_mode,
            more: false,
            strict: false,
        }
    }

    /// Makes the budget hold for the first message too.
    pub fn strict(mut self) -> PageBuilder {
        self.strict = true;
        self
    }

    /// Takes the next row's message if it fits; false when the page is full (stop reading).
    pub fn offer(&mut self, message: Message) -> bool {
        let weight = stored_bytes(&message);
        let counted = self.strict || !self.messages.is_empty();
        let over = counted && self.bytes + weight > self.max_bytes;
        if self.messages.len() >= self.limit || over {
            self.more = true;
            return false;
        }
        self.bytes += weight;
        self.messages.push(message);
        true
    }

    /// The page, oldest first.
    pub fn finish(mut self) -> SyncPage {
        if self.pull_mode == PullMode::Down {
            self.messages.reverse();
        }
        SyncPage {
            messages: self.messages,
            more: self.more,
        }
    }
}

/// Messages of one channel to look up (WuKongIM's `/messages`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageLookup {
    pub channel_key: String,
    pub channel_type: u8,
    pub seqs: Vec<u64>,
    pub message_ids: Vec<i64>,
    pub client_msg_nos: Vec<String>,
    /// Bytes of messages the answer may hold ([`stored_bytes`]).
    pub max_bytes: usize,
}

/// The messages a lookup found, each once, within its byte budget.
#[derive(Debug)]
pub struct Found {
    page: PageBuilder,
    /// Ids taken, so that a message named twice is kept once.
    ids: std::collections::HashSet<i64>,
}

impl Found {
    pub fn new(max_bytes: usize) -> Found {
        Found {
            page: PageBuilder::with(usize::MAX, max_bytes, PullMode::Up),
            ids: std::collections::HashSet::new(),
        }
    }

    /// Keeps a found message (not one kept already) while the budget lasts.
    pub fn keep(&mut self, message: Option<Message>) {
        if let Some(m) = message {
            if !self.ids.contains(&m.message_id) {
                let id = m.message_id;
                if self.page.offer(m) {
                    self.ids.insert(id);
                }
            }
        }
    }

    pub fn finish(self) -> SyncPage {
        self.page.finish()
    }
}

/// One page of history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPage {
    pub messages: Vec<Message>,
    /// More messages lie beyond this page in the pull direction.
    pub more: bool,
}

/// One of a user's conversations as stored: the channel, the user's positions in it, its newest message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRecord {
    pub channel_key: String,
    /// The channel as the user sees it (for a person channel, the other user).
    pub channel_id: String,
    pub channel_type: u8,
    /// The user has read up to this seq.
    pub read_seq: u64,
    /// The user deleted the conversation at this seq (messages up to it are not shown again).
    pub deleted_seq: u64,
    /// The channel's newest stored message.
    pub last: Option<Message>,
}

/// A connection recorded as online.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnRecord {
    pub conn_id: u64,
    pub uid: String,
    pub device_flag: u8,
    /// 1 for a primary device (WuKongIM's `device_level`), else 0. Kept by the shared store only (other
    /// nodes count a user's primary devices from it); the embedded store answers 0.
    pub device_level: u8,
    /// Unix milliseconds.
    pub connected_at_ms: i64,
}

/// The storage key of the person channel between two users: the same whichever of them sends.
pub fn person_channel_key(a: &str, b: &str) -> String {
    if a <= b {
        format!("{a}@{b}")
    } else {
        format!("{b}@{a}")
    }
}

/// A webhook delivery that failed at least once: waiting for its next attempt, or dead-lettered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// Stable id: the `webhook-id` of every attempt.
    pub delivery_id: String,
    pub endpoint_id: String,
    /// The event name on the wire (native or the flavour's).
    pub event: String,
    /// Query string appended to the endpoint's URL (without `?`), e.g. `event=msg.notify`.
    pub query: String,
    /// The rendered body, sent unchanged on every attempt.
    pub body: Vec<u8>,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix ms of the next attempt.
    pub next_at_ms: i64,
    /// Unix ms of the (first) event the delivery carries.
    pub event_at_ms: i64,
    pub last_error: String,
    pub dead: bool,
    /// Unix ms at which it was dead-lettered (0 while alive).
    pub dead_at_ms: i64,
    /// Where its events came from: `local` (this server's IM core), a relay source's id, or several
    /// joined with `,` (a batch); empty in rows older than relay mode.
    pub source: String,
}

/// One HTTP attempt of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub endpoint_id: String,
    pub delivery_id: String,
    pub event: String,
    /// Unix ms at which the attempt started.
    pub at_ms: i64,
    pub success: bool,
    /// HTTP status, when a response came.
    pub status: Option<u16>,
    pub latency_ms: u32,
    pub error: String,
    /// The first 1 KiB of the response body.
    pub response: String,
    /// The start of the request body (at most 16 KiB). Lists of attempts leave it empty; one attempt
    /// read by its id has it.
    pub request: String,
    /// Where the delivery's events came from (as [`PendingDelivery::source`]).
    pub source: String,
}

/// A page request of the attempt log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptQuery {
    pub endpoint_id: String,
    pub success: Option<bool>,
    pub event: Option<String>,
    /// Only attempts strictly older than this attempt id.
    pub before_id: Option<i64>,
    /// Only attempts strictly newer than this attempt id.
    pub after_id: Option<i64>,
    /// Only attempts at or after this unix ms.
    pub since_ms: Option<i64>,
    pub limit: usize,
}
