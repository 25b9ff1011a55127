//! The replicated client-session table, bounded in count and in idle time.
//!
//! Each session (a client's lane, `(client_id, lane)`: see
//! [`ClientSession`](crate::core::ClientSession)) numbers its writes `seq = 1, 2, 3, …`
//! with one outstanding at a time; the table keeps, per session, the last applied `seq`, what it answered and the log
//! index it was applied at. Every rule here is decided by the entries being applied,
//! never by a clock or a node's configuration, so every replica keeps and evicts
//! exactly the same sessions (the bounds are constants for that reason: a per-node
//! setting would let replicas disagree on whether a retry is a duplicate).
//!
//! - Idle expiry: a session unused for more than [`SESSION_IDLE_ENTRIES_MAX`] log
//!   entries is dropped when an entry past that point is applied.
//! - Count: beyond [`SESSIONS_MAX`] records, the least recently used is dropped.
//! - A write naming a session the table does not hold with `seq > 1` belongs to a
//!   session that expired or was evicted: it is not applied, and answered
//!   [`KvResult::SessionUnknown`] (the client opens a new session; on a first attempt
//!   nothing can have been applied, so it may resend at once).
//! - Results kept for replay are small: a failed compare-and-swap changed nothing and
//!   is kept as "no effect" (a retry runs it again, which is linearizable: the first
//!   answer was never seen), and a successful one without its value (the retry's own
//!   `expected` is that value). So a record is a few dozen bytes, whatever the values.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::kv::{KvCommand, KvResult};
use crate::core::{LogIndex, SessionKey};

/// Most client sessions kept; the least recently used goes first beyond it.
pub const SESSIONS_MAX: usize = 65_536;
/// A session not used for more log entries than this expires.
pub const SESSION_IDLE_ENTRIES_MAX: u64 = 1 << 20;

/// The last write of one client: applying `(client_id, seq)` again returns what
/// [`SessionTable::check`] rebuilds from `last_result` instead of applying twice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    pub last_seq: u64,
    /// The encoded [`KvResult`] to replay; empty: the write had no effect and a retry
    /// runs it again.
    pub last_result: Bytes,
    /// The log index the write was applied at (for idle expiry and eviction order).
    pub last_index: LogIndex,
}

/// What the table decides for a command before it is executed.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// Execute the command (new session, a newer sequence number, or a retry of a
    /// write that had no effect).
    Execute,
    /// Already applied (or refused): answer with this result, do not execute.
    Answer(Bytes),
}

#[derive(Clone, Debug, Default)]
pub struct SessionTable {
    records: BTreeMap<SessionKey, SessionRecord>,
    /// `(last_index, session)` of every record: the eviction order.
    by_age: BTreeSet<(LogIndex, SessionKey)>,
    /// While a batch is applied (see [`SessionTable::begin`]): the record each changed
    /// client id had before its first change, so a batch that fails to persist can be
    /// undone without copying the whole table first.
    undo: Option<BTreeMap<SessionKey, Option<SessionRecord>>>,
}

/// Two tables are equal when they hold the same records (the journal is scratch).
impl PartialEq for SessionTable {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl Eq for SessionTable {}

impl SessionTable {
    pub fn get(&self, key: SessionKey) -> Option<&SessionRecord> {
        self.records.get(&key)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SessionKey, &SessionRecord)> {
        self.records.iter()
    }

    /// Inserts or replaces a record (loading a snapshot or a database).
    pub fn insert(&mut self, client_id: SessionKey, rec: SessionRecord) {
        self.journal(client_id);
        if let Some(old) = self.records.insert(client_id, rec.clone()) {
            self.by_age.remove(&(old.last_index, client_id));
        }
        self.by_age.insert((rec.last_index, client_id));
    }

    fn remove(&mut self, client_id: SessionKey) {
        self.journal(client_id);
        if let Some(old) = self.records.remove(&client_id) {
            self.by_age.remove(&(old.last_index, client_id));
        }
    }

    fn journal(&mut self, client_id: SessionKey) {
        if let Some(undo) = &mut self.undo
            && !undo.contains_key(&client_id)
        {
            undo.insert(client_id, self.records.get(&client_id).cloned());
        }
    }

    /// Starts recording changes, for [`SessionTable::rollback`].
    pub fn begin(&mut self) {
        self.undo = Some(BTreeMap::new());
    }

    /// Keeps every change since [`SessionTable::begin`].
    pub fn commit(&mut self) {
        self.undo = None;
    }

    /// Puts back every record changed since [`SessionTable::begin`].
    pub fn rollback(&mut self) {
        let Some(undo) = self.undo.take() else {
            return;
        };
        for (id, old) in undo {
            if let Some(cur) = self.records.remove(&id) {
                self.by_age.remove(&(cur.last_index, id));
            }
            if let Some(rec) = old {
                self.by_age.insert((rec.last_index, id));
                self.records.insert(id, rec);
            }
        }
    }

    /// Drops sessions idle for too long as of entry `index`; reports each dropped one.
    pub fn expire(&mut self, index: LogIndex, dropped: &mut dyn FnMut(SessionKey)) {
        while let Some(&(last, id)) = self.by_age.first() {
            if index.saturating_sub(last) <= SESSION_IDLE_ENTRIES_MAX {
                break;
            }
            self.remove(id);
            dropped(id);
        }
    }

    /// Decides what a command `cmd` of session `key` with `seq` does.
    pub fn check(&self, key: SessionKey, seq: u64, cmd: &[u8]) -> SessionCheck {
        match self.records.get(&key) {
            None if seq > 1 => SessionCheck::Answer(KvResult::SessionUnknown { seq }.encode()),
            None => SessionCheck::Execute,
            Some(r) if seq > r.last_seq => SessionCheck::Execute,
            Some(r) if seq < r.last_seq => SessionCheck::Answer(
                KvResult::StaleSequence {
                    last_seq: r.last_seq,
                }
                .encode(),
            ),
            Some(r) if r.last_result.is_empty() => SessionCheck::Execute,
            Some(r) => SessionCheck::Answer(replay(&r.last_result, cmd)),
        }
    }

    /// Records that `seq` of session `client_id` was executed at `index` with
    /// `result`, and drops the least recently used sessions beyond [`SESSIONS_MAX`].
    pub fn record(
        &mut self,
        client_id: SessionKey,
        seq: u64,
        index: LogIndex,
        result: &Bytes,
        dropped: &mut dyn FnMut(SessionKey),
    ) {
        let rec = SessionRecord {
            last_seq: seq,
            last_result: kept_result(result),
            last_index: index,
        };
        self.insert(client_id, rec);
        while self.records.len() > SESSIONS_MAX {
            let Some(&(_, oldest)) = self.by_age.first() else {
                break;
            };
            self.remove(oldest);
            dropped(oldest);
        }
    }
}

impl<'a> IntoIterator for &'a SessionTable {
    type Item = (&'a SessionKey, &'a SessionRecord);
    type IntoIter = std::collections::btree_map::Iter<'a, SessionKey, SessionRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.iter()
    }
}

impl FromIterator<(SessionKey, SessionRecord)> for SessionTable {
    fn from_iter<I: IntoIterator<Item = (SessionKey, SessionRecord)>>(iter: I) -> Self {
        let mut t = SessionTable::default();
        for (id, rec) in iter {
            t.insert(id, rec);
        }
        t
    }
}

/// What a session keeps of a result: see the module docs.
fn kept_result(result: &Bytes) -> Bytes {
    match KvResult::decode(result) {
        Ok(KvResult::Cas { swapped: false, .. }) => Bytes::new(),
        Ok(KvResult::Cas {
            swapped: true,
            current: Some(_),
        }) => KvResult::Cas {
            swapped: true,
            current: None,
        }
        .encode(),
        _ => result.clone(),
    }
}

/// The answer to a retry, rebuilt from what was kept and the retried command.
fn replay(kept: &Bytes, cmd: &[u8]) -> Bytes {
    match (KvResult::decode(kept), KvCommand::decode(cmd)) {
        (
            Ok(KvResult::Cas { swapped: true, .. }),
            Ok(KvCommand::CompareAndSwap { expected, .. }),
        ) => KvResult::Cas {
            swapped: true,
            current: expected,
        }
        .encode(),
        _ => kept.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written() -> Bytes {
        KvResult::Written.encode()
    }

    #[test]
    fn retries_are_answered_from_the_record_and_older_ones_refused() {
        let mut t = SessionTable::default();
        assert_eq!(t.check((1, 0), 1, &[]), SessionCheck::Execute);
        t.record((1, 0), 1, 10, &written(), &mut |_| {});
        assert_eq!(t.check((1, 0), 1, &[]), SessionCheck::Answer(written()));
        assert_eq!(t.check((1, 0), 2, &[]), SessionCheck::Execute);
        t.record((1, 0), 2, 11, &written(), &mut |_| {});
        let stale = KvResult::StaleSequence { last_seq: 2 }.encode();
        assert_eq!(t.check((1, 0), 1, &[]), SessionCheck::Answer(stale));
    }

    #[test]
    fn the_lanes_of_one_client_are_sessions_of_their_own() {
        let mut t = SessionTable::default();
        t.record((1, 0), 5, 10, &written(), &mut |_| {});
        assert_eq!(t.check((1, 1), 1, &[]), SessionCheck::Execute, "a new lane");
        t.record((1, 1), 1, 11, &written(), &mut |_| {});
        assert_eq!(t.check((1, 0), 6, &[]), SessionCheck::Execute);
        assert_eq!(t.check((1, 1), 1, &[]), SessionCheck::Answer(written()));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn an_unknown_session_past_its_first_write_is_refused() {
        let t = SessionTable::default();
        let unknown = KvResult::SessionUnknown { seq: 5 }.encode();
        assert_eq!(t.check((9, 0), 5, &[]), SessionCheck::Answer(unknown));
    }

    #[test]
    fn idle_sessions_expire_by_log_index_and_the_count_is_bounded() {
        let mut t = SessionTable::default();
        t.record((1, 0), 1, 1, &written(), &mut |_| {});
        t.record((2, 0), 1, 5, &written(), &mut |_| {});
        let mut dropped = Vec::new();
        t.expire(1 + SESSION_IDLE_ENTRIES_MAX, &mut |id| dropped.push(id));
        assert!(dropped.is_empty(), "exactly at the bound is not idle yet");
        t.expire(2 + SESSION_IDLE_ENTRIES_MAX, &mut |id| dropped.push(id));
        assert_eq!(dropped, vec![(1, 0)]);
        assert!(t.get((1, 0)).is_none() && t.get((2, 0)).is_some());

        let mut t = SessionTable::default();
        let mut dropped = Vec::new();
        for id in 0..SESSIONS_MAX as u64 + 3 {
            t.record((id, 0), 1, id + 1, &written(), &mut |d| dropped.push(d));
        }
        assert_eq!(t.len(), SESSIONS_MAX);
        assert_eq!(
            dropped,
            vec![(0, 0), (1, 0), (2, 0)],
            "the least recently used go first"
        );
        // Using a session makes it the most recent.
        t.record((3, 0), 2, 1 << 40, &written(), &mut |d| dropped.push(d));
        t.record((1 << 50, 0), 1, (1 << 40) + 1, &written(), &mut |d| {
            dropped.push(d)
        });
        assert_eq!(dropped, vec![(0, 0), (1, 0), (2, 0), (4, 0)]);
    }

    #[test]
    fn a_rolled_back_batch_leaves_the_table_as_it_was() {
        let mut t = SessionTable::default();
        t.record((1, 0), 1, 1, &written(), &mut |_| {});
        t.record((2, 0), 1, 2, &written(), &mut |_| {});
        let before = t.clone();
        t.begin();
        t.record((1, 0), 2, 3, &written(), &mut |_| {});
        t.record((3, 0), 1, 4, &written(), &mut |_| {});
        t.expire(5 + SESSION_IDLE_ENTRIES_MAX, &mut |_| {});
        assert!(t.is_empty());
        t.rollback();
        assert_eq!(t, before);
        assert_eq!(
            t.by_age, before.by_age,
            "the eviction order is restored too"
        );
        t.begin();
        t.record((4, 0), 1, 9, &written(), &mut |_| {});
        t.commit();
        t.rollback();
        assert!(t.get((4, 0)).is_some(), "a committed batch stays");
    }

    #[test]
    fn kept_results_stay_small_whatever_the_value() {
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let mut t = SessionTable::default();
        let failed = KvResult::Cas {
            swapped: false,
            current: Some(big.clone()),
        }
        .encode();
        t.record((1, 0), 1, 1, &failed, &mut |_| {});
        assert!(t.get((1, 0)).unwrap().last_result.is_empty());
        assert_eq!(
            t.check((1, 0), 1, &[]),
            SessionCheck::Execute,
            "a no-effect retry runs"
        );

        let swapped = KvResult::Cas {
            swapped: true,
            current: Some(big.clone()),
        }
        .encode();
        t.record((1, 0), 2, 2, &swapped, &mut |_| {});
        assert!(t.get((1, 0)).unwrap().last_result.len() < 16);
        let cmd = KvCommand::CompareAndSwap {
            key: Bytes::from_static(b"k"),
            expected: Some(big),
            new: Bytes::from_static(b"n"),
        }
        .encode();
        assert_eq!(t.check((1, 0), 2, &cmd), SessionCheck::Answer(swapped));
    }
}
