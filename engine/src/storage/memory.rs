//! In-memory backends for tests and the deterministic simulator.
//!
//! Every write is "durable" as soon as it is applied, and callbacks are called inline,
//! before the submitting method returns. [`MemStorageEngine::reopen`] and
//! [`MemStateMachine::restart`] model a process restart over the same "disk".

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use super::completion::Callback;
use super::engine::{PurgePlan, StorageEngine, check_append, check_truncate, plan_purge};
use super::error::{Result, StorageError};
use super::kv::{KvState, LockedKv};
use super::state_machine::{
    SNAPSHOT_CHUNK_BYTES, Snapshot, StateMachine, chunks_of, collect_chunks,
};
use crate::core::types::{Entry, HardState, LogIndex, SnapshotMeta, Term};

#[derive(Default)]
struct MemLog {
    hard_state: HardState,
    snapshot: SnapshotMeta,
    entries: VecDeque<Entry>,
}

impl MemLog {
    fn last_index(&self) -> LogIndex {
        self.entries
            .back()
            .map_or(self.snapshot.last_index, |e| e.index)
    }

    fn term(&self, index: LogIndex) -> Result<Term> {
        let first = self.snapshot.last_index + 1;
        if index == self.snapshot.last_index {
            return Ok(self.snapshot.last_term);
        }
        if index < first {
            return Err(StorageError::Compacted { index, first });
        }
        self.entries
            .get((index - first) as usize)
            .map(|e| e.term)
            .ok_or(StorageError::Unavailable {
                index,
                last: self.last_index(),
            })
    }

    fn truncate(&mut self, from: LogIndex) -> Result<()> {
        if !check_truncate(from, self.snapshot.last_index, self.last_index())? {
            return Ok(());
        }
        let keep = (from - self.snapshot.last_index - 1) as usize;
        self.entries.truncate(keep);
        Ok(())
    }

    fn append(&mut self, entries: Vec<Entry>, hs: Option<HardState>) -> Result<LogIndex> {
        check_append(&entries, self.snapshot.last_index, self.last_index(), |i| {
            self.term(i).ok()
        })?;
        if let Some(first) = entries.first() {
            self.truncate(first.index)?;
        }
        self.entries.extend(entries);
        if let Some(hs) = hs {
            self.hard_state = hs;
        }
        Ok(self.last_index())
    }

    fn purge(&mut self, snap: SnapshotMeta) {
        match plan_purge(&snap, self.snapshot.last_index, |i| self.term(i).ok()) {
            PurgePlan::Nothing => return,
            PurgePlan::KeepSuffix => {
                let n = (snap.last_index - self.snapshot.last_index) as usize;
                self.entries.drain(..n);
            }
            PurgePlan::DiscardLog => self.entries.clear(),
        }
        self.snapshot = snap;
    }
}

/// A [`StorageEngine`] in memory. Clones share the same log.
#[derive(Clone, Default)]
pub struct MemStorageEngine {
    log: Arc<Mutex<MemLog>>,
}

impl MemStorageEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new engine over the same data, as after a restart.
    pub fn reopen(&self) -> Self {
        self.clone()
    }

    fn lock(&self) -> MutexGuard<'_, MemLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StorageEngine for MemStorageEngine {
    fn append_with(
        &self,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
        done: Callback<LogIndex>,
    ) {
        let r = self.lock().append(entries, hard_state);
        done(r)
    }

    fn truncate_suffix_with(&self, from: LogIndex, done: Callback<()>) {
        let r = self.lock().truncate(from);
        done(r)
    }

    fn purge_prefix_with(&self, snapshot: SnapshotMeta, done: Callback<()>) {
        self.lock().purge(snapshot);
        done(Ok(()))
    }

    fn hard_state(&self) -> HardState {
        self.lock().hard_state
    }

    fn snapshot_meta(&self) -> SnapshotMeta {
        self.lock().snapshot.clone()
    }

    fn first_index(&self) -> LogIndex {
        self.lock().snapshot.last_index + 1
    }

    fn last_index(&self) -> LogIndex {
        self.lock().last_index()
    }

    fn term(&self, index: LogIndex) -> Result<Term> {
        self.lock().term(index)
    }

    fn entries(&self, lo: LogIndex, hi: LogIndex) -> Result<Vec<Entry>> {
        let log = self.lock();
        let first = log.snapshot.last_index + 1;
        check_range(lo, hi, first, log.last_index())?;
        let start = (lo - first) as usize;
        Ok(log
            .entries
            .range(start..start + (hi - lo) as usize)
            .cloned()
            .collect())
    }
}

/// Validates a read range `lo..hi` against the log `first..=last`.
pub(crate) fn check_range(
    lo: LogIndex,
    hi: LogIndex,
    first: LogIndex,
    last: LogIndex,
) -> Result<()> {
    if lo > hi {
        return Err(StorageError::InvalidRequest(format!(
            "empty-or-reversed range {lo}..{hi}"
        )));
    }
    if lo == hi {
        return Ok(());
    }
    if lo < first {
        return Err(StorageError::Compacted { index: lo, first });
    }
    if hi > last + 1 {
        return Err(StorageError::Unavailable {
            index: hi - 1,
            last,
        });
    }
    Ok(())
}

/// A [`StateMachine`] in memory; "durable" snapshots are kept in memory too.
#[derive(Default)]
pub struct MemStateMachine {
    state: LockedKv,
    durable: Arc<Mutex<Option<(SnapshotMeta, Bytes)>>>,
}

impl MemStateMachine {
    pub fn new() -> Self {
        Self::default()
    }

    /// A new state machine over the same durable snapshots, as after a restart: it
    /// starts from the newest built or installed snapshot.
    pub fn restart(&self) -> Result<Self> {
        let durable = self.durable.clone();
        let state = match &*durable.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((_, image)) => KvState::decode_image(image).map_err(|e| StorageError::Decode {
                what: "snapshot image",
                reason: e.0,
            })?,
            None => KvState::default(),
        };
        Ok(MemStateMachine {
            state: LockedKv::new(state),
            durable,
        })
    }

    fn snapshot_of(meta: SnapshotMeta, image: Bytes) -> Snapshot {
        Snapshot {
            meta,
            size_bytes: image.len() as u64,
            checksum: super::kv::image_checksum(&image).unwrap_or(0),
            chunks: chunks_of(image, SNAPSHOT_CHUNK_BYTES),
        }
    }
}

impl StateMachine for MemStateMachine {
    fn apply(&self, entries: &[Entry]) -> Result<Vec<Bytes>> {
        self.state.apply(entries)
    }

    fn applied(&self) -> SnapshotMeta {
        self.state.applied()
    }

    fn durable_meta(&self) -> SnapshotMeta {
        self.durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(m, _)| m.clone())
            .unwrap_or_default()
    }

    fn build_snapshot(&self) -> Result<Snapshot> {
        let (meta, image) = self.state.image();
        let image = Bytes::from(image);
        *self.durable.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((meta.clone(), image.clone()));
        Ok(Self::snapshot_of(meta, image))
    }

    fn current_snapshot(&self) -> Result<Option<Snapshot>> {
        let cur = self
            .durable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok(cur.map(|(m, i)| Self::snapshot_of(m, i)))
    }

    fn install_snapshot(
        &self,
        meta: &SnapshotMeta,
        chunks: &mut dyn Iterator<Item = Result<Bytes>>,
    ) -> Result<()> {
        let image = collect_chunks(chunks, u64::MAX)?;
        let state = decode_checked(&image, meta)?;
        *self.durable.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((meta.clone(), Bytes::from(image)));
        self.state.replace(state);
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.state.get(key))
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>, limit: usize) -> Result<Vec<(Bytes, Bytes)>> {
        Ok(self.state.range(start, end, limit))
    }
}

/// Decodes an image and checks that it is the snapshot `meta` announced.
pub(crate) fn decode_checked(image: &[u8], meta: &SnapshotMeta) -> Result<KvState> {
    let state = KvState::decode_image(image).map_err(|e| StorageError::Decode {
        what: "snapshot image",
        reason: e.0,
    })?;
    if state.applied.last_index != meta.last_index || state.applied.last_term != meta.last_term {
        return Err(StorageError::Decode {
            what: "snapshot image",
            reason: format!(
                "image covers index {} term {}, expected index {} term {}",
                state.applied.last_index, state.applied.last_term, meta.last_index, meta.last_term
            ),
        });
    }
    Ok(state)
}
