//! Message appends, a whole group at once: the writer hands every append of its group here, and they
//! take a fixed number of statements whatever their number (claims of `client_msg_no`, then the
//! channels' seqs, then history, person channels and CMD queues), not a round trip per message.
//!
//! Seqs: each channel's `channel_seqs` row is raised by its number of messages in the group, in one
//! upsert that locks the rows in (channel key, type) order, so that groups of two nodes touching the
//! same channels wait for each other rather than deadlock; a channel's seqs stay gap-free and
//! increasing across nodes. A duplicate `client_msg_no` (in the window, or twice in one group) takes
//! no seq.

use std::collections::HashMap;
use std::sync::Mutex;

use chathook_events::{Event, Message};
use deadpool_postgres::Transaction;
use tokio::sync::oneshot;

use super::pg_error;
use crate::header::header_bits;
use crate::now_ms;
use crate::{AppendOutcome, CommitNote, EventsFor, NewMessage, Snowflake, StoreError};

/// WuKongIM's person channel type.
const PERSON: u8 = 1;

/// Step 1: claims the `client_msg_no`s free in the window (returns the ones claimed).
const CLAIM_KEYS: &str =
    "INSERT INTO client_msgs(from_uid, client_msg_no, created_at, message_id, message_seq)
    SELECT f, k, t, m, 0 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[])
    AS u(f, k, t, m)
    ON CONFLICT (from_uid, client_msg_no) DO UPDATE SET
    created_at = excluded.created_at, message_id = excluded.message_id,
    message_seq = excluded.message_seq
    WHERE client_msgs.created_at < $5
    RETURNING from_uid, client_msg_no";

/// Step 1: the first message of each key claimed within the window.
const FIRST_CLAIMS: &str = "SELECT c.from_uid, c.client_msg_no, c.message_id, c.message_seq
    FROM client_msgs c JOIN UNNEST($1::TEXT[], $2::TEXT[]) AS u(f, k)
    ON c.from_uid = u.f AND c.client_msg_no = u.k";

/// Step 2: raises each channel's seq by its count, rows locked in key order (returns the new
/// last seqs).
const RAISE_SEQS: &str = "INSERT INTO channel_seqs(channel_key, channel_type, last_seq)
    SELECT k, t, n FROM UNNEST($1::TEXT[], $2::SMALLINT[], $3::BIGINT[]) AS u(k, t, n)
    ORDER BY k, t
    ON CONFLICT (channel_key, channel_type) DO UPDATE
    SET last_seq = channel_seqs.last_seq + excluded.last_seq
    RETURNING channel_key, channel_type, last_seq";

/// Step 4: the claims of new messages learn their seqs.
const SET_CLAIM_SEQS: &str = "UPDATE client_msgs c SET message_seq = u.s
    FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BIGINT[]) AS u(f, k, s)
    WHERE c.from_uid = u.f AND c.client_msg_no = u.k";

/// Step 4: the new messages of channel history.
const INSERT_HISTORY: &str =
    "INSERT INTO messages(channel_key, channel_type, message_seq, message_id, client_msg_no,
    from_uid, channel_id, header, setting, expire, timestamp, payload)
    SELECT * FROM UNNEST($1::TEXT[], $2::SMALLINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[],
    $6::TEXT[], $7::TEXT[], $8::SMALLINT[], $9::SMALLINT[], $10::BIGINT[], $11::BIGINT[],
    $12::BYTEA[])";

/// Step 4: a new person channel in both users' conversation lists, once.
const INDEX_PERSON_CHANNELS: &str = "INSERT INTO person_channels(uid, peer, channel_key)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[]) ON CONFLICT DO NOTHING";

/// One queued append and where its outcome goes.
pub(super) struct Append {
    pub message: NewMessage,
    pub dedup_window_secs: u64,
    pub events: EventsFor<Message>,
    pub answer: oneshot::Sender<AppendOutcome>,
}

/// What a group's appends leave for the commit.
pub(super) struct AppendedAll {
    /// Each append's events, in the group's order (none for a duplicate).
    pub events: Vec<Vec<Event>>,
    /// The notes of the stored messages, with their ids ([`crate::Committed::notes`]).
    pub notes: Vec<(i64, CommitNote)>,
}

/// What became of one append before its events are built.
enum Planned {
    /// Stored (or, for `no_persist`, only announced) with this message.
    New(Message),
    /// The same sender's `client_msg_no` within the window: the first message's id and seq.
    Stored { message_id: i64, message_seq: u64 },
    /// The same key earlier in this group: that append's outcome.
    SameAs(usize),
}

/// A CMD message (`sync_once`, persisted): it goes to its recipients' CMD queues.
fn is_cmd(m: &NewMessage) -> bool {
    m.header.sync_once && !m.header.no_persist
}

/// A message stored in channel history (with a seq).
fn in_history(m: &NewMessage) -> bool {
    !m.header.no_persist && !is_cmd(m)
}

/// Each append's plan so far (`None`: not decided yet).
type Plans = Vec<Option<Planned>>;
/// The next seq of each channel (key, type) with new messages in the group.
type NextSeqs<'a> = HashMap<(&'a str, i16), i64>;

/// Appends `appends` inside `tx`; each one's events, in order (answers are sent once all statements
/// ran; the caller learns of the commit from its job). The steps, each its own function: claim the
/// `client_msg_no`s, raise the channels' seqs, plan the new messages, write history, then the outcomes
/// and the events they cause.
pub(super) async fn append_all(
    tx: &Transaction<'_>,
    ids: &Mutex<Snowflake>,
    appends: Vec<Append>,
) -> Result<AppendedAll, StoreError> {
    let now_secs = now_ms() / 1000;
    let window = appends.first().map_or(0, |a| a.dedup_window_secs as i64);
    // The messages apart from their callbacks (which are `Send` but not `Sync`).
    let (mut messages, callbacks): (Vec<NewMessage>, Vec<_>) = appends
        .into_iter()
        .map(|a| (a.message, (a.events, a.answer)))
        .unzip();
    let message_ids: Vec<i64> = {
        let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        messages.iter().map(|_| ids.next_at(now)).collect()
    };
    let mut plans = claim_keys(tx, &messages, &message_ids, now_secs, window).await?;
    let mut next_seq = raise_seqs(tx, &messages, &plans).await?;
    plan_new(&messages, &message_ids, &mut plans, &mut next_seq, now_secs)?;
    write_history(tx, &messages, &plans).await?;
    let outcomes = outcomes(&messages, plans)?;
    for (message, outcome) in messages.iter().zip(&outcomes) {
        if let (true, AppendOutcome::Stored(m)) = (is_cmd(message), outcome) {
            super::cmd_queue::enqueue(&**tx, m, &message.cmd_recipients).await?;
        }
    }
    let mut all = AppendedAll {
        events: Vec::with_capacity(outcomes.len()),
        notes: Vec::new(),
    };
    let each = callbacks.into_iter().zip(&mut messages).zip(outcomes);
    for (((caused_by, answer), message), outcome) in each {
        let caused = match &outcome {
            AppendOutcome::Stored(m) => {
                if let Some(note) = message.note.take() {
                    all.notes.push((m.message_id, note));
                }
                caused_by(m)
            }
            AppendOutcome::Duplicate { .. } => Vec::new(),
        };
        all.events.push(caused);
        let _ = answer.send(outcome);
    }
    Ok(all)
}

/// 1. Claims of client_msg_no: the first of a key in the group claims it; a key claimed within the
///    window stays with its first message. The plans of the appends that are duplicates.
async fn claim_keys(
    tx: &Transaction<'_>,
    messages: &[NewMessage],
    message_ids: &[i64],
    now_secs: i64,
    window: i64,
) -> Result<Plans, StoreError> {
    let mut plans: Vec<Option<Planned>> = (0..messages.len()).map(|_| None).collect();
    let mut first_of_key: HashMap<(&str, &str), usize> = HashMap::new();
    let mut claiming = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        if m.client_msg_no.is_empty() {
            continue;
        }
        match first_of_key.get(&(m.from_uid.as_str(), m.client_msg_no.as_str())) {
            Some(&j) => plans[i] = Some(Planned::SameAs(j)),
            None => {
                first_of_key.insert((&m.from_uid, &m.client_msg_no), i);
                claiming.push(i);
            }
        }
    }
    if !claiming.is_empty() {
        let from: Vec<&str> = claiming
            .iter()
            .map(|&i| messages[i].from_uid.as_str())
            .collect();
        let keys: Vec<&str> = claiming
            .iter()
            .map(|&i| messages[i].client_msg_no.as_str())
            .collect();
        let at: Vec<i64> = claiming.iter().map(|_| now_secs).collect();
        let mids: Vec<i64> = claiming.iter().map(|&i| message_ids[i]).collect();
        let claimed: std::collections::HashSet<(String, String)> = tx
            .query(
                &tx.prepare_cached(CLAIM_KEYS).await.map_err(pg_error)?,
                &[&from, &keys, &at, &mids, &(now_secs - window)],
            )
            .await
            .map_err(pg_error)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let taken: Vec<usize> = claiming
            .iter()
            .copied()
            .filter(|&i| {
                let m = &messages[i];
                !claimed.contains(&(m.from_uid.clone(), m.client_msg_no.clone()))
            })
            .collect();
        take_firsts(tx, messages, &taken, &mut plans).await?;
    }
    Ok(plans)
}

/// The appends in `taken` (their key was claimed within the window) answer with the first message's id
/// and seq.
async fn take_firsts(
    tx: &Transaction<'_>,
    messages: &[NewMessage],
    taken: &[usize],
    plans: &mut Plans,
) -> Result<(), StoreError> {
    if taken.is_empty() {
        return Ok(());
    }
    let from: Vec<&str> = taken
        .iter()
        .map(|&i| messages[i].from_uid.as_str())
        .collect();
    let keys: Vec<&str> = taken
        .iter()
        .map(|&i| messages[i].client_msg_no.as_str())
        .collect();
    let rows = tx
        .query(
            &tx.prepare_cached(FIRST_CLAIMS).await.map_err(pg_error)?,
            &[&from, &keys],
        )
        .await
        .map_err(pg_error)?;
    let firsts: HashMap<(String, String), (i64, i64)> = rows
        .iter()
        .map(|r| ((r.get(0), r.get(1)), (r.get(2), r.get(3))))
        .collect();
    for &i in taken {
        let m = &messages[i];
        let (message_id, seq) = firsts
            .get(&(m.from_uid.clone(), m.client_msg_no.clone()))
            .copied()
            .ok_or_else(|| StoreError::Storage("a claimed client_msg_no vanished".into()))?;
        plans[i] = Some(Planned::Stored {
            message_id,
            message_seq: seq as u64,
        });
    }
    Ok(())
}

/// 2. Seqs: each channel's row raised by its count of new messages, rows locked in key order; the
///    first new seq of each channel.
async fn raise_seqs<'a>(
    tx: &Transaction<'_>,
    messages: &'a [NewMessage],
    plans: &Plans,
) -> Result<NextSeqs<'a>, StoreError> {
    let mut counts: HashMap<(&str, i16), i64> = HashMap::new();
    for (i, m) in messages.iter().enumerate() {
        if plans[i].is_none() && in_history(m) {
            *counts
                .entry((m.channel_key.as_str(), i16::from(m.channel_type)))
                .or_default() += 1;
        }
    }
    let mut next_seq: HashMap<(&str, i16), i64> = HashMap::new();
    if !counts.is_empty() {
        let mut channels: Vec<((&str, i16), i64)> = counts.into_iter().collect();
        channels.sort();
        let keys: Vec<&str> = channels.iter().map(|c| c.0 .0).collect();
        let types: Vec<i16> = channels.iter().map(|c| c.0 .1).collect();
        let adds: Vec<i64> = channels.iter().map(|c| c.1).collect();
        let rows = tx
            .query(
                &tx.prepare_cached(RAISE_SEQS).await.map_err(pg_error)?,
                &[&keys, &types, &adds],
            )
            .await
            .map_err(pg_error)?;
        let lasts: HashMap<(String, i16), i64> = rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        for ((key, ty), n) in channels {
            let last = lasts.get(&(key.to_string(), ty)).copied().ok_or_else(|| {
                StoreError::Storage("a channel's seq row was not returned".into())
            })?;
            next_seq.insert((key, ty), last - n + 1);
        }
    }
    Ok(next_seq)
}

/// 3. The new messages, with their seqs (history only) and ids.
fn plan_new<'a>(
    messages: &'a [NewMessage],
    message_ids: &[i64],
    plans: &mut Plans,
    next_seq: &mut NextSeqs<'a>,
    now_secs: i64,
) -> Result<(), StoreError> {
    for (i, m) in messages.iter().enumerate() {
        if plans[i].is_some() {
            continue;
        }
        let seq = if in_history(m) {
            let next = next_seq
                .get_mut(&(m.channel_key.as_str(), i16::from(m.channel_type)))
                .ok_or_else(|| StoreError::Storage("a channel without a seq".into()))?;
            *next += 1;
            *next - 1
        } else {
            0
        };
        plans[i] = Some(Planned::New(Message {
            message_id: message_ids[i],
            client_msg_no: m.client_msg_no.clone(),
            message_seq: seq as u64,
            from_uid: m.from_uid.clone(),
            channel_id: m.channel_id.clone(),
            channel_type: m.channel_type,
            header: m.header,
            setting: m.setting,
            expire: m.expire,
            timestamp: now_secs,
            payload: Vec::new(),
            sender: Default::default(),
        }));
    }
    Ok(())
}

/// 4. Claims learn their seqs; history and person channels are written: three statements pipelined
///    in one round trip.
async fn write_history(
    tx: &Transaction<'_>,
    messages: &[NewMessage],
    plans: &Plans,
) -> Result<(), StoreError> {
    let new: Vec<(usize, &Message)> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Some(Planned::New(m)) => Some((i, m)),
            _ => None,
        })
        .collect();
    let history: Vec<(usize, &Message)> = new
        .iter()
        .copied()
        .filter(|(i, _)| in_history(&messages[*i]))
        .collect();
    tokio::try_join!(
        set_claim_seqs(tx, &new),
        insert_history(tx, messages, &history),
        index_person_channels(tx, messages, &history),
    )
    .map_err(pg_error)?;
    Ok(())
}

/// The claims of new messages with a seq and a `client_msg_no` learn their seq.
async fn set_claim_seqs(
    tx: &Transaction<'_>,
    new: &[(usize, &Message)],
) -> Result<u64, tokio_postgres::Error> {
    let claims: Vec<&Message> = new
        .iter()
        .map(|(_, m)| *m)
        .filter(|m| m.message_seq > 0 && !m.client_msg_no.is_empty())
        .collect();
    if claims.is_empty() {
        return Ok(0);
    }
    let from: Vec<&str> = claims.iter().map(|m| m.from_uid.as_str()).collect();
    let keys: Vec<&str> = claims.iter().map(|m| m.client_msg_no.as_str()).collect();
    let seqs: Vec<i64> = claims.iter().map(|m| m.message_seq as i64).collect();
    tx.execute(
        &tx.prepare_cached(SET_CLAIM_SEQS).await?,
        &[&from, &keys, &seqs],
    )
    .await
}

/// The new messages of channel history, one statement for all.
async fn insert_history(
    tx: &Transaction<'_>,
    messages: &[NewMessage],
    history: &[(usize, &Message)],
) -> Result<u64, tokio_postgres::Error> {
    if history.is_empty() {
        return Ok(0);
    }
    let keys: Vec<&str> = history
        .iter()
        .map(|(i, _)| messages[*i].channel_key.as_str())
        .collect();
    let types: Vec<i16> = history
        .iter()
        .map(|(_, m)| i16::from(m.channel_type))
        .collect();
    let seqs: Vec<i64> = history.iter().map(|(_, m)| m.message_seq as i64).collect();
    let mids: Vec<i64> = history.iter().map(|(_, m)| m.message_id).collect();
    let nos: Vec<&str> = history
        .iter()
        .map(|(_, m)| m.client_msg_no.as_str())
        .collect();
    let froms: Vec<&str> = history.iter().map(|(_, m)| m.from_uid.as_str()).collect();
    let chans: Vec<&str> = history.iter().map(|(_, m)| m.channel_id.as_str()).collect();
    let headers: Vec<i16> = history
        .iter()
        .map(|(_, m)| header_bits(&m.header) as i16)
        .collect();
    let settings: Vec<i16> = history.iter().map(|(_, m)| i16::from(m.setting)).collect();
    let expires: Vec<i64> = history.iter().map(|(_, m)| i64::from(m.expire)).collect();
    let times: Vec<i64> = history.iter().map(|(_, m)| m.timestamp).collect();
    let payloads: Vec<&[u8]> = history
        .iter()
        .map(|(i, _)| messages[*i].payload.as_slice())
        .collect();
    tx.execute(
        &tx.prepare_cached(INSERT_HISTORY).await?,
        &[
            &keys, &types, &seqs, &mids, &nos, &froms, &chans, &headers, &settings, &expires,
            &times, &payloads,
        ],
    )
    .await
}

/// A new person channel: both users' conversation lists learn of it, once.
async fn index_person_channels(
    tx: &Transaction<'_>,
    messages: &[NewMessage],
    history: &[(usize, &Message)],
) -> Result<u64, tokio_postgres::Error> {
    let (mut uids, mut peers, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    for (i, m) in history {
        if m.message_seq == 1 && m.channel_type == PERSON {
            for (uid, peer) in [(&m.from_uid, &m.channel_id), (&m.channel_id, &m.from_uid)] {
                uids.push(uid.as_str());
                peers.push(peer.as_str());
                keys.push(messages[*i].channel_key.as_str());
            }
        }
    }
    if uids.is_empty() {
        return Ok(0);
    }
    tx.execute(
        &tx.prepare_cached(INDEX_PERSON_CHANNELS).await?,
        &[&uids, &peers, &keys],
    )
    .await
}

/// 5. Outcomes, in order: a new message stored (with its payload), or the first message's for a
///    duplicate.
fn outcomes(messages: &[NewMessage], plans: Plans) -> Result<Vec<AppendOutcome>, StoreError> {
    let mut outcomes: Vec<AppendOutcome> = Vec::with_capacity(messages.len());
    for (i, plan) in plans.into_iter().enumerate() {
        let outcome = match plan {
            Some(Planned::New(mut m)) => {
                m.payload = messages[i].payload.clone();
                AppendOutcome::Stored(m)
            }
            Some(Planned::Stored {
                message_id,
                message_seq,
            }) => AppendOutcome::Duplicate {
                message_id,
                message_seq,
                client_msg_no: messages[i].client_msg_no.clone(),
            },
            Some(Planned::SameAs(j)) => {
                let (message_id, message_seq) = match &outcomes[j] {
                    AppendOutcome::Stored(m) => (m.message_id, m.message_seq),
                    AppendOutcome::Duplicate {
                        message_id,
                        message_seq,
                        ..
                    } => (*message_id, *message_seq),
                };
                AppendOutcome::Duplicate {
                    message_id,
                    message_seq,
                    client_msg_no: messages[i].client_msg_no.clone(),
                }
            }
            None => return Err(StoreError::Storage("an append without a plan".into())),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}
