//! `RaftLog`: the in-memory log from the compaction point to the last index.
//!
//! Storage holds the durable copy; the core keeps in memory every entry after the
//! compaction point (`start`), which trails the latest snapshot by a configurable window.
//! Besides the entries it tracks the four cursors the algorithm needs:
//! `stable <= last`, `applied <= committed`, and entries are handed to the state
//! machine only up to `min(committed, stable)`.

use super::types::{Entry, EntryPayload, LogIndex, Membership, SnapshotMeta, Term};

/// What one entry is counted as in the byte bounds: its payload plus a fixed
/// allowance for index, term and framing.
pub fn entry_bytes(e: &Entry) -> u64 {
    e.payload_len() as u64 + 32
}

#[derive(Clone, Debug, Default)]
pub struct RaftLog {
    /// Every index `<= start` is compacted; `start_term` is the term of entry `start`.
    start: LogIndex,
    start_term: Term,
    /// The configuration in force at `start`.
    start_membership: Membership,
    /// `entries[k].index == start + 1 + k`.
    entries: Vec<Entry>,
    /// Running total of [`entry_bytes`]: `cum_bytes[k]` counts every entry up to and
    /// including `entries[k]`, from an origin where `start` stands at `base_bytes`.
    /// Differences give the bytes of any range in O(1) (uncommitted bytes, bytes
    /// since the last snapshot, bytes handed to the state machine and not applied).
    cum_bytes: Vec<u64>,
    base_bytes: u64,
    /// Highest index known committed.
    pub committed: LogIndex,
    /// Highest index known durable in local storage.
    pub stable: LogIndex,
    /// Highest index the state machine reported applied.
    pub applied: LogIndex,
    /// Highest index already handed out in an `Apply` action.
    pub apply_sent: LogIndex,
}

impl RaftLog {
    /// A log restored from storage: everything after the snapshot is durable.
    pub fn restore(snapshot: &SnapshotMeta, entries: Vec<Entry>, applied: LogIndex) -> Self {
        let start = snapshot.last_index;
        let entries: Vec<Entry> = entries.into_iter().filter(|e| e.index > start).collect();
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(e.index, start + 1 + k as u64, "restored log has a gap");
        }
        let mut cum_bytes = Vec::with_capacity(entries.len());
        let mut total = 0;
        for e in &entries {
            total += entry_bytes(e);
            cum_bytes.push(total);
        }
        let mut log = RaftLog {
            start,
            start_term: snapshot.last_term,
            start_membership: snapshot.membership.clone(),
            entries,
            cum_bytes,
            base_bytes: 0,
            committed: start,
            stable: 0,
            applied: start,
            apply_sent: start,
        };
        log.stable = log.last_index();
        let applied = applied.clamp(start, log.last_index());
        log.committed = applied;
        log.applied = applied;
        log.apply_sent = applied;
        log
    }

    pub fn first_index(&self) -> LogIndex {
        self.start + 1
    }

    /// The compaction point: entries up to here are only in snapshots.
    pub fn start_index(&self) -> LogIndex {
        self.start
    }

    pub fn last_index(&self) -> LogIndex {
        self.start + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.start_term, |e| e.term)
    }

    /// Term of entry `i`, or `None` if compacted away or beyond the end.
    pub fn term(&self, i: LogIndex) -> Option<Term> {
        if i == self.start {
            Some(self.start_term)
        } else if i < self.start || i > self.last_index() {
            None
        } else {
            Some(self.entries[(i - self.start - 1) as usize].term)
        }
    }

    pub fn entry(&self, i: LogIndex) -> Option<&Entry> {
        if i <= self.start || i > self.last_index() {
            None
        } else {
            Some(&self.entries[(i - self.start - 1) as usize])
        }
    }

    /// Entries `lo..=hi` limited by count and bytes; at least one if the range is non-empty.
    pub fn slice(&self, lo: LogIndex, hi: LogIndex, max_n: usize, max_bytes: u64) -> Vec<Entry> {
        if lo > hi || lo <= self.start {
            return Vec::new();
        }
        let hi = hi
            .min(self.last_index())
            .min(lo.saturating_add(max_n as u64 - 1));
        if hi < lo {
            return Vec::new();
        }
        let (a, b) = ((lo - self.start - 1) as usize, (hi - self.start) as usize);
        let mut bytes = 0u64;
        let mut out = Vec::with_capacity(b.saturating_sub(a));
        for e in &self.entries[a..b] {
            bytes += e.payload_len() as u64;
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(e.clone());
        }
        out
    }

    /// Candidate's log is at least as up to date as ours (Raft §5.4.1).
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Appends entries directly after the last index (leader path).
    pub fn append(&mut self, entries: &[Entry]) {
        for e in entries {
            debug_assert_eq!(e.index, self.last_index() + 1);
            let total = self.cum_at(self.last_index()) + entry_bytes(e);
            self.entries.push(e.clone());
            self.cum_bytes.push(total);
        }
    }

    /// Removes every entry `>= from`. Never touches committed entries.
    pub fn truncate_from(&mut self, from: LogIndex) {
        assert!(from > self.committed, "truncating committed entry {from}");
        if from <= self.last_index() {
            let keep = (from - self.start - 1) as usize;
            self.entries.truncate(keep);
            self.cum_bytes.truncate(keep);
        }
        self.stable = self.stable.min(from - 1);
    }

    /// The running byte total at index `i` (clamped to the entries held).
    fn cum_at(&self, i: LogIndex) -> u64 {
        if i <= self.start || self.entries.is_empty() {
            return self.base_bytes;
        }
        let k = ((i - self.start - 1) as usize).min(self.cum_bytes.len() - 1);
        self.cum_bytes[k]
    }

    /// Bytes of the entries in `(after, upto]` that this log holds.
    pub fn bytes_between(&self, after: LogIndex, upto: LogIndex) -> u64 {
        self.cum_at(upto).saturating_sub(self.cum_at(after))
    }

    /// First index in `entries` whose term differs from ours (or that we lack).
    pub fn find_conflict(&self, entries: &[Entry]) -> Option<LogIndex> {
        entries
            .iter()
            .find(|e| self.term(e.index) != Some(e.term))
            .map(|e| e.index)
    }

    /// Fast backtracking hint: the first index of the term that entry `i` carries.
    pub fn first_index_of_term_at(&self, i: LogIndex) -> LogIndex {
        let Some(t) = self.term(i) else { return i };
        let mut j = i;
        while j > self.start + 1 && self.term(j - 1) == Some(t) {
            j -= 1;
        }
        j
    }

    /// Leader side of fast backtracking: the last index holding term `t`, if any.
    pub fn last_index_of_term(&self, t: Term) -> Option<LogIndex> {
        let mut i = self.last_index();
        while i > self.start {
            match self.term(i) {
                Some(x) if x == t => return Some(i),
                Some(x) if x < t => return None,
                _ => i -= 1,
            }
        }
        None
    }

    /// Drops entries `<= upto` (which must be applied), keeping their last term.
    pub fn compact(&mut self, upto: LogIndex) {
        if upto <= self.start {
            return;
        }
        assert!(upto <= self.applied, "compacting unapplied entries");
        self.start_membership = self.membership_at(upto);
        self.start_term = self.term(upto).expect("compaction point in log");
        self.base_bytes = self.cum_at(upto);
        self.entries.drain(..(upto - self.start) as usize);
        self.cum_bytes.drain(..(upto - self.start) as usize);
        self.start = upto;
    }

    /// Replaces the log by a snapshot. Entries after the snapshot are kept only if the
    /// log agrees with the snapshot at its last index.
    pub fn install_snapshot(&mut self, meta: &SnapshotMeta) {
        let keep = self.term(meta.last_index) == Some(meta.last_term);
        if keep {
            self.base_bytes = self.cum_at(meta.last_index);
            let n = (meta.last_index - self.start) as usize;
            self.entries.drain(..n);
            self.cum_bytes.drain(..n);
        } else {
            self.entries.clear();
            self.cum_bytes.clear();
            self.base_bytes = 0;
        }
        self.start = meta.last_index;
        self.start_term = meta.last_term;
        self.start_membership = meta.membership.clone();
        self.committed = self.committed.max(meta.last_index);
        self.stable = if keep {
            self.stable.max(meta.last_index)
        } else {
            meta.last_index
        };
        self.applied = meta.last_index;
        self.apply_sent = meta.last_index;
    }

    /// The configuration in force at index `i` (the latest config entry `<= i`).
    pub fn membership_at(&self, i: LogIndex) -> Membership {
        let mut j = i.min(self.last_index());
        while j > self.start {
            if let Some(Entry {
                payload: EntryPayload::Config(m),
                ..
            }) = self.entry(j)
            {
                return m.clone();
            }
            j -= 1;
        }
        self.start_membership.clone()
    }

    /// Index of the latest config entry `<= i`, or the compaction point if none.
    pub fn membership_index_at(&self, i: LogIndex) -> LogIndex {
        let mut j = i.min(self.last_index());
        while j > self.start {
            if matches!(
                self.entry(j).map(|e| &e.payload),
                Some(EntryPayload::Config(_))
            ) {
                return j;
            }
            j -= 1;
        }
        self.start
    }

    /// Entries ready to hand to the state machine: committed, durable, not yet handed out.
    pub fn next_to_apply(&self, max_n: usize, max_bytes: u64) -> Vec<Entry> {
        let hi = self.committed.min(self.stable);
        if hi <= self.apply_sent || max_n == 0 {
            return Vec::new();
        }
        self.slice(self.apply_sent + 1, hi, max_n, max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(k, &t)| Entry {
                term: t,
                index: k as u64 + 1,
                payload: EntryPayload::Noop,
            })
            .collect();
        RaftLog::restore(&SnapshotMeta::default(), entries, 0)
    }

    #[test]
    fn terms_and_hints() {
        let l = log_with_terms(&[1, 1, 2, 2, 2, 4]);
        assert_eq!(l.last_index(), 6);
        assert_eq!(l.term(0), Some(0));
        assert_eq!(l.term(7), None);
        assert_eq!(l.first_index_of_term_at(5), 3);
        assert_eq!(l.last_index_of_term(2), Some(5));
        assert_eq!(l.last_index_of_term(3), None);
        assert!(l.is_up_to_date(1, 5));
        assert!(!l.is_up_to_date(9, 3));
    }

    fn cmd(index: LogIndex, len: usize) -> Entry {
        Entry {
            term: 1,
            index,
            payload: EntryPayload::Command {
                session: None,
                data: vec![0u8; len].into(),
            },
        }
    }

    #[test]
    fn byte_totals_follow_append_truncate_compact_and_install() {
        let mut l = RaftLog::restore(&SnapshotMeta::default(), vec![cmd(1, 100)], 0);
        l.append(&[cmd(2, 200), cmd(3, 300)]);
        let b = |n: u64| n + 32;
        assert_eq!(l.bytes_between(0, 3), b(100) + b(200) + b(300));
        assert_eq!(l.bytes_between(1, 2), b(200));
        assert_eq!(l.bytes_between(3, 9), 0, "beyond the end counts nothing");
        l.truncate_from(3);
        assert_eq!(l.bytes_between(0, 3), b(100) + b(200));
        l.append(&[cmd(3, 5)]);
        assert_eq!(l.bytes_between(2, 3), b(5));
        l.committed = 2;
        l.applied = 2;
        l.compact(2);
        assert_eq!(l.bytes_between(2, 3), b(5));
        assert_eq!(
            l.bytes_between(0, 3),
            b(5),
            "compacted entries count nothing"
        );
        let meta = SnapshotMeta {
            last_index: 3,
            last_term: 1,
            membership: Membership::default(),
        };
        l.install_snapshot(&meta);
        l.append(&[cmd(4, 7)]);
        assert_eq!(l.bytes_between(3, 4), b(7));
        let other = SnapshotMeta {
            last_index: 10,
            last_term: 2,
            membership: Membership::default(),
        };
        l.install_snapshot(&other);
        l.append(&[cmd(11, 1)]);
        assert_eq!(l.bytes_between(0, 11), b(1));
    }

    #[test]
    fn compaction_keeps_terms() {
        let mut l = log_with_terms(&[1, 1, 2, 2]);
        l.committed = 3;
        l.applied = 3;
        l.compact(2);
        assert_eq!(l.term(2), Some(1));
        assert_eq!(l.term(1), None);
        assert_eq!(l.first_index(), 3);
        assert_eq!(l.slice(1, 4, 10, 100).len(), 0);
        assert_eq!(l.slice(3, 4, 10, 100).len(), 2);
    }
}
