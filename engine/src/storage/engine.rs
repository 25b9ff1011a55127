//! The `StorageEngine` trait: the durable Raft log plus the hard state.

use crate::core::types::{Entry, HardState, LogIndex, SnapshotMeta, Term};

use super::completion::{Callback, Pending, pending};
use super::error::Result;

/// Durable Raft log and hard state.
///
/// # Model
///
/// The log holds entries `first_index()..=last_index()`. Everything up to
/// `snapshot_meta().last_index` has been folded into a snapshot and purged, so
/// `first_index() == snapshot_meta().last_index + 1` always; an empty log has
/// `last_index() == snapshot_meta().last_index` (0 for a fresh node).
///
/// # Writes are queued
///
/// [`append`](Self::append), [`truncate_suffix`](Self::truncate_suffix) and
/// [`purge_prefix`](Self::purge_prefix) never block on disk: they queue the request and
/// return. Requests are executed **in submission order**; their callbacks are called in
/// that order too, on the backend's thread, once the effect is durable (or failed).
/// Backends merge waiting appends into one write and one fsync (group commit).
/// Exception: a request that cannot even be queued (`Busy`: the bounded queue is
/// full; `Closed`) is reported at once, on the caller's thread, inside the call.
///
/// # Reads
///
/// Reads ([`entries`](Self::entries), [`term`](Self::term), the index getters,
/// [`hard_state`](Self::hard_state)) see the effect of every request whose callback
/// has been called, and never a write that is not yet durable. A request still in
/// flight may or may not be visible; callers that need a value from a queued write
/// wait for its callback first.
///
/// # After a failure
///
/// If a write or fsync fails, the request (and those after it) report an error, and
/// a backend may refuse all later writes ([`StorageError::Failed`]): after a failed
/// fsync the page cache can no longer be trusted, and reopening re-reads the truth.
/// A callback reporting an error means "not known to be durable"; a callback reporting
/// success means durable, always.
///
/// [`StorageError::Failed`]: super::StorageError::Failed
pub trait StorageEngine: Send + Sync + 'static {
    /// Appends `entries` (consecutive indexes, non-decreasing terms) and, if given,
    /// persists `hard_state` together with them. Reports the new last index.
    ///
    /// If `entries[0].index <= last_index()`, the log from that index on is truncated
    /// first (Raft's "conflicting suffix"); `entries[0].index` must be
    /// `> snapshot_meta().last_index` and `<= last_index() + 1`, counting queued appends,
    /// else the request fails with `InvalidRequest` and nothing is written.
    /// `entries` may be empty (a hard-state-only write).
    fn append_with(
        &self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        done: Callback<LogIndex>,
    );

    /// Removes every entry with index `>= from`, durably. A no-op past the last index;
    /// `InvalidRequest` if `from <= snapshot_meta().last_index` (compacted entries are
    /// committed and can never conflict).
    fn truncate_suffix_with(&self, from: LogIndex, done: Callback<()>);

    /// Records `snapshot` as the new compaction point and removes every entry up to
    /// `snapshot.last_index`. Call it only once the state machine's snapshot covering
    /// those entries is durable.
    ///
    /// If the log holds `snapshot.last_index` with term `snapshot.last_term`, the
    /// entries after it are kept; otherwise (a snapshot installed from the leader that
    /// does not match) the whole log is discarded. A snapshot older than the current
    /// one is a no-op.
    fn purge_prefix_with(&self, snapshot: SnapshotMeta, done: Callback<()>);

    /// The last durable hard state (default for a fresh node).
    fn hard_state(&self) -> HardState;

    /// The last compaction point (default, index 0, for a fresh node).
    fn snapshot_meta(&self) -> SnapshotMeta;

    /// `snapshot_meta().last_index + 1`.
    fn first_index(&self) -> LogIndex;

    /// The index of the last durable entry, or the snapshot's last index if the log is
    /// empty.
    fn last_index(&self) -> LogIndex;

    /// The term of entry `index`: the snapshot's `last_term` at its `last_index`,
    /// `Compacted` before it, `Unavailable` after the last index.
    fn term(&self, index: LogIndex) -> Result<Term>;

    /// Entries `lo..hi` (half-open), all or an error: `Compacted` if `lo < first_index()`,
    /// `Unavailable` if `hi > last_index() + 1`. `lo == hi` gives an empty vector.
    fn entries(&self, lo: LogIndex, hi: LogIndex) -> Result<Vec<Entry>>;

    /// True while the backend holds queued writes back because the disk is full,
    /// retrying until space is freed (nothing is lost or acknowledged meanwhile).
    /// The node answers writes with NO_SPACE while it is. Backends that treat a
    /// full disk as a failure keep the default.
    fn waiting_for_space(&self) -> bool {
        false
    }

    /// Queued [`append_with`](Self::append_with) with a handle to wait on or `.await`.
    fn append(&self, entries: Vec<Entry>, hard_state: Option<HardState>) -> Pending<LogIndex> {
        let (cb, p) = pending();
        self.append_with(entries, hard_state, cb);
        p
    }

    /// Queued [`truncate_suffix_with`](Self::truncate_suffix_with) with a handle.
    fn truncate_suffix(&self, from: LogIndex) -> Pending<()> {
        let (cb, p) = pending();
        self.truncate_suffix_with(from, cb);
        p
    }

    /// Queued [`purge_prefix_with`](Self::purge_prefix_with) with a handle.
    fn purge_prefix(&self, snapshot: SnapshotMeta) -> Pending<()> {
        let (cb, p) = pending();
        self.purge_prefix_with(snapshot, cb);
        p
    }

    /// Persists a hard state alone (an append of no entries).
    fn save_hard_state(&self, hard_state: HardState) -> Pending<LogIndex> {
        self.append(Vec::new(), Some(hard_state))
    }
}

/// What a restarted node reads back: the durable hard state, the compaction point and
/// every entry after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredLog {
    pub hard_state: HardState,
    pub snapshot: SnapshotMeta,
    pub entries: Vec<Entry>,
}

/// Reads everything the core needs at start-up (blocking: call before the event loop
/// starts or from a blocking task).
pub fn recover(engine: &dyn StorageEngine) -> Result<RecoveredLog> {
    let snapshot = engine.snapshot_meta();
    let entries = engine.entries(engine.first_index(), engine.last_index() + 1)?;
    Ok(RecoveredLog {
        hard_state: engine.hard_state(),
        snapshot,
        entries,
    })
}

/// The truncate rule of every backend: `InvalidRequest` into the compacted prefix
/// (compacted entries are committed and never conflict); `Ok(false)`, nothing to do,
/// past the last index; `Ok(true)`: remove `from..`.
pub(crate) fn check_truncate(
    from: LogIndex,
    snapshot_last: LogIndex,
    last_index: LogIndex,
) -> Result<bool> {
    if from <= snapshot_last {
        return Err(super::error::StorageError::InvalidRequest(format!(
            "truncate from {from} into the compacted prefix (snapshot at {snapshot_last})"
        )));
    }
    Ok(from <= last_index)
}

/// What a purge to a new compaction point does, the same in every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PurgePlan {
    /// Not newer than the current compaction point: a no-op.
    Nothing,
    /// The log holds the point's entry with its term: drop up to it, keep the rest.
    KeepSuffix,
    /// The point does not continue this log (a snapshot from the leader): drop it all.
    DiscardLog,
}

/// Plans a purge to `snap` of a log compacted at `snapshot_last`; `term_at(i)` is the
/// term of the log's entry `i`, if it holds one.
pub(crate) fn plan_purge(
    snap: &SnapshotMeta,
    snapshot_last: LogIndex,
    term_at: impl Fn(LogIndex) -> Option<Term>,
) -> PurgePlan {
    if snap.last_index <= snapshot_last {
        PurgePlan::Nothing
    } else if term_at(snap.last_index) == Some(snap.last_term) {
        PurgePlan::KeepSuffix
    } else {
        PurgePlan::DiscardLog
    }
}

/// Checks an append request against the log's shape, shared by every backend:
/// consecutive indexes, non-decreasing terms, no gap after the log and nothing inside
/// the compacted prefix. `term_before(i)` gives the term of entry `i` (for `i` in
/// `snapshot_last..=last_index`).
pub(crate) fn check_append(
    entries: &[Entry],
    snapshot_last: LogIndex,
    last_index: LogIndex,
    term_before: impl Fn(LogIndex) -> Option<Term>,
) -> Result<()> {
    use super::error::StorageError::InvalidRequest;
    let Some(first) = entries.first() else {
        return Ok(());
    };
    if first.index <= snapshot_last {
        return Err(InvalidRequest(format!(
            "append at index {} inside the compacted prefix (snapshot at {snapshot_last})",
            first.index
        )));
    }
    if first.index > last_index + 1 {
        return Err(InvalidRequest(format!(
            "append at index {} leaves a gap after last index {last_index}",
            first.index
        )));
    }
    if let Some(prev) = term_before(first.index - 1)
        && first.term < prev
    {
        return Err(InvalidRequest(format!(
            "entry {} has term {} below the previous entry's term {prev}",
            first.index, first.term
        )));
    }
    for w in entries.windows(2) {
        if w[1].index != w[0].index + 1 || w[1].term < w[0].term {
            return Err(InvalidRequest(format!(
                "entries not consecutive with non-decreasing terms at index {} (term {}) -> {} (term {})",
                w[0].index, w[0].term, w[1].index, w[1].term
            )));
        }
    }
    Ok(())
}
