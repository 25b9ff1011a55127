//! A small simulated store with revisions, writers and watchers (resumes,
//! progress notifications, prev_kv, filters), which writes valid
//! `watch.jsonl` histories from a seed; and mutations that each break one
//! guarantee, for the tests.

use std::collections::{BTreeMap, BTreeSet};

use crate::synth::Rng;
use crate::watch::format::{
    CancelRecord, EndRecord, EventType, EventsRecord, Filter, ProgressRecord, WatchEvent,
    WatchOpen, WatchRecord, WriteOp, WriteRecord, WriteType,
};
use crate::watch::report::Guarantee;

const KEYS: [&str; 6] = ["w/k0", "w/k1", "w/k2", "w/k3", "w/k4", "x/k0"];

/// What will become of a write.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    Ok,
    Fail,
    InfoApplied,
    InfoLost,
}

struct Pending {
    ops: Vec<WriteOp>,
    fate: Fate,
    /// The header revision, once applied.
    revision: Option<i64>,
}

struct Watcher {
    id: u64,
    open: WatchOpen,
    /// The next revision to deliver; `None` while the stream is closed.
    next: Option<i64>,
    resume_from: i64,
}

/// The simulated store and its clients.
struct Sim {
    rng: Rng,
    seed: u64,
    time: u64,
    revision: i64,
    /// key → (value, create revision, version).
    store: BTreeMap<String, (String, i64, i64)>,
    /// Committed revisions in order, each with its events (prev_value set).
    log: Vec<(i64, Vec<WatchEvent>)>,
    writers: Vec<Option<Pending>>,
    watchers: Vec<Watcher>,
    values: u64,
    out: Vec<WatchRecord>,
}

/// A valid history of about `steps` records.
pub fn history(seed: u64, steps: usize) -> Vec<WatchRecord> {
    let mut sim = Sim {
        rng: Rng::new(seed),
        seed,
        time: 0,
        revision: 1,
        store: BTreeMap::new(),
        log: Vec::new(),
        writers: (0..3).map(|_| None).collect(),
        watchers: Vec::new(),
        values: 0,
        out: Vec::new(),
    };
    let first = 1 + sim.rng.below(3);
    for id in 0..first {
        sim.add_watcher(id, 1);
    }
    for _ in 0..steps {
        sim.step();
    }
    sim.finish();
    sim.out
}

impl Sim {
    fn now(&mut self) -> u64 {
        self.time += 1 + self.rng.below(50);
        self.time
    }

    fn step(&mut self) {
        match self.rng.below(10) {
            0..=3 => self.write_step(),
            4..=7 => self.watch_step(),
            8 if self.watchers.len() < 4 => {
                // From an old revision, the next one, or "now" (0).
                let from = self.rng.below(self.revision as u64 + 2) as i64;
                self.add_watcher(self.watchers.len() as u64, from);
            }
            _ => self.resume_step(),
        }
    }

    fn add_watcher(&mut self, id: u64, from: i64) {
        let prefix = if self.rng.chance(20) { "w/k1" } else { "w/" };
        let filters = match self.rng.below(10) {
            0 => vec![Filter::NoPut],
            1 => vec![Filter::NoDelete],
            _ => Vec::new(),
        };
        let open = WatchOpen {
            watcher: id,
            prefix: prefix.into(),
            start_revision: from,
            prev_kv: self.rng.chance(60),
            filters,
            time_ns: self.now(),
        };
        self.out.push(WatchRecord::Watch(open.clone()));
        self.watchers.push(Watcher {
            id,
            open,
            next: Some(if from > 0 { from } else { self.revision + 1 }),
            resume_from: from,
        });
    }

    fn write_step(&mut self) {
        let p = self.rng.below(self.writers.len() as u64) as usize;
        match &self.writers[p] {
            None => self.invoke(p),
            // Applied some time between invocation and completion.
            Some(w) if w.revision.is_none() && matches!(w.fate, Fate::Ok | Fate::InfoApplied) => {
                let ops = w.ops.clone();
                let revision = self.apply(&ops);
                if let Some(w) = &mut self.writers[p] {
                    w.revision = Some(revision);
                }
            }
            Some(_) => self.complete(p),
        }
    }

    fn invoke(&mut self, p: usize) {
        let n = 1 + self.rng.below(3) as usize;
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        while keys.len() < n {
            keys.insert(KEYS[self.rng.below(KEYS.len() as u64) as usize]);
        }
        let mut ops = Vec::new();
        for key in keys {
            if self.rng.chance(70) {
                self.values += 1;
                let value = format!("{}-{}", self.seed, self.values);
                ops.push(WriteOp::Put {
                    key: key.into(),
                    value,
                });
            } else {
                ops.push(WriteOp::Delete { key: key.into() });
            }
        }
        let fate = match self.rng.below(10) {
            0 => Fate::Fail,
            1 => Fate::InfoApplied,
            2 => Fate::InfoLost,
            _ => Fate::Ok,
        };
        let time_ns = self.now();
        self.out
            .push(write_record(p, WriteType::Invoke, &ops, None, time_ns));
        self.writers[p] = Some(Pending {
            ops,
            fate,
            revision: None,
        });
    }

    fn complete(&mut self, p: usize) {
        let Some(mut w) = self.writers[p].take() else {
            return;
        };
        if w.revision.is_none() && w.fate == Fate::Ok {
            w.revision = Some(self.apply(&w.ops));
        }
        let time_ns = self.now();
        let record = match w.fate {
            Fate::Ok => write_record(p, WriteType::Ok, &w.ops, w.revision, time_ns),
            Fate::Fail => write_record(p, WriteType::Fail, &w.ops, None, time_ns),
            _ => write_record(p, WriteType::Info, &w.ops, None, time_ns),
        };
        self.out.push(record);
    }

    /// Applies a write; returns the header revision (unchanged if the
    /// write changed nothing, as etcd does).
    fn apply(&mut self, ops: &[WriteOp]) -> i64 {
        let rev = self.revision + 1;
        let mut events = Vec::new();
        for op in ops {
            let key = op.key().to_owned();
            let prev = self.store.get(&key).cloned();
            let prev_value = Some(prev.as_ref().map(|p| p.0.clone()));
            match op {
                WriteOp::Put { value, .. } => {
                    let (create, version) = prev.map_or((rev, 1), |p| (p.1, p.2 + 1));
                    self.store
                        .insert(key.clone(), (value.clone(), create, version));
                    events.push(WatchEvent {
                        kind: EventType::Put,
                        key,
                        value: Some(value.clone()),
                        mod_revision: rev,
                        create_revision: Some(create),
                        version: Some(version),
                        prev_value,
                    });
                }
                WriteOp::Delete { .. } if prev.is_some() => {
                    self.store.remove(&key);
                    events.push(WatchEvent {
                        kind: EventType::Delete,
                        key,
                        value: None,
                        mod_revision: rev,
                        create_revision: None,
                        version: None,
                        prev_value,
                    });
                }
                WriteOp::Delete { .. } => {}
            }
        }
        if !events.is_empty() {
            self.revision = rev;
            self.log.push((rev, events));
        }
        self.revision
    }

    fn watch_step(&mut self) {
        if self.watchers.is_empty() {
            return;
        }
        let i = self.rng.below(self.watchers.len() as u64) as usize;
        let Some(next) = self.watchers[i].next else {
            return;
        };
        match self.rng.below(10) {
            0 => self.cancel(i),
            1 | 2 => {
                let (watcher, time_ns) = (self.watchers[i].id, self.now());
                self.out.push(WatchRecord::Progress(ProgressRecord {
                    watcher,
                    revision: next - 1,
                    time_ns,
                }));
            }
            _ => self.deliver(i, next),
        }
    }

    /// Sends the next one to three revisions the watcher wants, as one
    /// response.
    fn deliver(&mut self, i: usize, next: i64) {
        let from = self.log.partition_point(|(rev, _)| *rev < next);
        let take = 1 + self.rng.below(3) as usize;
        let w = &self.watchers[i];
        let mut events = Vec::new();
        let mut last = next - 1;
        for (rev, evs) in self.log[from..].iter().take(take) {
            last = *rev;
            for e in evs.iter().filter(|e| wants(&w.open, e)) {
                let mut e = e.clone();
                if !w.open.prev_kv {
                    e.prev_value = None;
                }
                events.push(e);
            }
        }
        let (watcher, revision) = (w.id, self.revision);
        self.watchers[i].next = Some(last + 1);
        if !events.is_empty() {
            let time_ns = self.now();
            self.out.push(WatchRecord::Events(EventsRecord {
                watcher,
                revision,
                events,
                time_ns,
            }));
        }
    }

    fn cancel(&mut self, i: usize) {
        let time_ns = self.now();
        let w = &mut self.watchers[i];
        w.resume_from = w.next.take().unwrap_or(w.resume_from);
        self.out.push(WatchRecord::Cancel(CancelRecord {
            watcher: w.id,
            reason: "simulated disconnect".into(),
            time_ns,
        }));
    }

    fn resume_step(&mut self) {
        let closed: Vec<usize> = (0..self.watchers.len())
            .filter(|&i| self.watchers[i].next.is_none())
            .collect();
        if closed.is_empty() {
            return;
        }
        let i = closed[self.rng.below(closed.len() as u64) as usize];
        if self.rng.chance(10) {
            // Compacted past where it stopped: it resumes later, with a gap.
            self.watchers[i].resume_from = self.revision + 1;
        }
        let time_ns = self.now();
        let w = &mut self.watchers[i];
        w.open.start_revision = w.resume_from;
        w.open.time_ns = time_ns;
        w.next = Some(w.resume_from);
        self.out.push(WatchRecord::Watch(w.open.clone()));
    }

    /// Completes the writes and ends the open streams.
    fn finish(&mut self) {
        for p in 0..self.writers.len() {
            self.complete(p);
        }
        for i in 0..self.watchers.len() {
            if self.watchers[i].next.is_some() {
                let (watcher, time_ns) = (self.watchers[i].id, self.now());
                self.out
                    .push(WatchRecord::End(EndRecord { watcher, time_ns }));
            }
        }
    }
}

fn wants(open: &WatchOpen, e: &WatchEvent) -> bool {
    let filtered = match e.kind {
        EventType::Put => open.filters.contains(&Filter::NoPut),
        EventType::Delete => open.filters.contains(&Filter::NoDelete),
    };
    e.key.starts_with(&open.prefix) && !filtered
}

fn write_record(
    p: usize,
    kind: WriteType,
    ops: &[WriteOp],
    revision: Option<i64>,
    time_ns: u64,
) -> WatchRecord {
    WatchRecord::Write(WriteRecord {
        process: p as u64,
        kind,
        ops: ops.to_vec(),
        revision,
        error: matches!(kind, WriteType::Fail | WriteType::Info).then(|| "timeout".into()),
        time_ns,
    })
}

/// One way to break a valid history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutation {
    /// Drop an event of an ok write that a later record of its segment covers.
    Drop,
    /// Send a response twice.
    Duplicate,
    /// Cut a response between two events of one revision.
    Split,
    /// Swap two responses of one segment.
    Swap,
    /// Change a prev_value where the key's history is complete.
    PrevValue,
    /// Raise a progress notification to the revision of a later write.
    RaiseProgress,
    /// Change a put's value to one no write wrote.
    Phantom,
    /// Raise a segment's start revision above its first event.
    RaiseStart,
}

impl Mutation {
    pub const ALL: [Mutation; 8] = [
        Mutation::Drop,
        Mutation::Duplicate,
        Mutation::Split,
        Mutation::Swap,
        Mutation::PrevValue,
        Mutation::RaiseProgress,
        Mutation::Phantom,
        Mutation::RaiseStart,
    ];

    /// The class of violation that shows it (see [`Violation`](crate::watch::Violation)).
    pub fn class(self) -> &'static str {
        match self {
            Mutation::Drop => "missed",
            Mutation::Duplicate => "duplicate",
            Mutation::Split => "split",
            Mutation::Swap => "backwards",
            Mutation::PrevValue => "prev-value",
            Mutation::RaiseProgress => "progress-ahead",
            Mutation::Phantom => "phantom",
            Mutation::RaiseStart => "too-early",
        }
    }

    /// The guarantee the mutation breaks.
    pub fn breaks(self) -> Guarantee {
        match self {
            Mutation::Drop => Guarantee::Reliable,
            Mutation::Duplicate => Guarantee::Unique,
            Mutation::Split => Guarantee::Atomic,
            Mutation::Swap => Guarantee::Ordered,
            Mutation::PrevValue => Guarantee::PrevKv,
            Mutation::RaiseProgress => Guarantee::Bookmarkable,
            Mutation::Phantom => Guarantee::Reliable,
            Mutation::RaiseStart => Guarantee::Resumable,
        }
    }
}

/// Applies `m` at a place chosen by `rng`; false if the history has no
/// place for it.
pub fn mutate(records: &mut Vec<WatchRecord>, m: Mutation, rng: &mut Rng) -> bool {
    let places = places(records, m);
    if places.is_empty() {
        return false;
    }
    let (at, j) = places[rng.below(places.len() as u64) as usize];
    apply(records, m, at, j);
    true
}

/// The segment of each record (a number per `watch` record), if any.
fn segment_ids(records: &[WatchRecord]) -> Vec<Option<usize>> {
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut next = 0;
    records
        .iter()
        .map(|r| match r {
            WatchRecord::Watch(w) => {
                open.insert(w.watcher, next);
                next += 1;
                Some(next - 1)
            }
            WatchRecord::Events(e) => open.get(&e.watcher).copied(),
            WatchRecord::Progress(p) => open.get(&p.watcher).copied(),
            _ => None,
        })
        .collect()
}

/// Where `m` can go: (record, event or second record).
fn places(records: &[WatchRecord], m: Mutation) -> Vec<(usize, usize)> {
    let ids = segment_ids(records);
    let ok = ok_puts(records);
    let dirty = dirty_keys(records);
    let mut out = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match (m, r) {
            (Mutation::Duplicate, WatchRecord::Events(_)) => out.push((i, 0)),
            (Mutation::Split, WatchRecord::Events(e)) => {
                for j in 1..e.events.len() {
                    if e.events[j].mod_revision == e.events[j - 1].mod_revision {
                        out.push((i, j));
                    }
                }
            }
            (Mutation::Swap, WatchRecord::Events(_)) => {
                if let Some(j) = next_in_segment(records, &ids, i) {
                    out.push((i, j));
                }
            }
            (Mutation::Drop, WatchRecord::Events(e)) => {
                for (j, ev) in e.events.iter().enumerate() {
                    let from_ok = ev.value.as_ref().is_some_and(|v| ok.contains(v.as_str()));
                    if from_ok && covered_later(records, &ids, i, ev.mod_revision) {
                        out.push((i, j));
                    }
                }
            }
            (Mutation::PrevValue, WatchRecord::Events(e)) => {
                for (j, ev) in e.events.iter().enumerate() {
                    if ev.prev_value.is_some() && !dirty.contains(ev.key.as_str()) {
                        out.push((i, j));
                    }
                }
            }
            (Mutation::Phantom, WatchRecord::Events(e)) => {
                for (j, ev) in e.events.iter().enumerate() {
                    if ev.kind == EventType::Put {
                        out.push((i, j));
                    }
                }
            }
            (Mutation::RaiseStart, WatchRecord::Watch(_)) => {
                if let Some(rev) = first_event(records, &ids, i) {
                    out.push((i, rev as usize + 1));
                }
            }
            (Mutation::RaiseProgress, WatchRecord::Progress(p)) => {
                if let Some(rev) = later_ok_put(records, p.time_ns) {
                    out.push((i, rev as usize));
                }
            }
            _ => {}
        }
    }
    out
}

fn apply(records: &mut Vec<WatchRecord>, m: Mutation, at: usize, j: usize) {
    match m {
        Mutation::Duplicate => {
            let copy = records[at].clone();
            records.insert(at + 1, copy);
        }
        Mutation::Swap => {
            let (WatchRecord::Events(a), WatchRecord::Events(b)) =
                (records[at].clone(), records[j].clone())
            else {
                return;
            };
            set_events(&mut records[at], b.events, b.revision);
            set_events(&mut records[j], a.events, a.revision);
        }
        Mutation::RaiseProgress => {
            if let WatchRecord::Progress(p) = &mut records[at] {
                p.revision = j as i64;
            }
        }
        Mutation::RaiseStart => {
            if let WatchRecord::Watch(w) = &mut records[at] {
                w.start_revision = j as i64;
            }
        }
        _ => {
            let WatchRecord::Events(e) = &mut records[at] else {
                return;
            };
            match m {
                Mutation::Split => {
                    let mut second = e.clone();
                    second.events = e.events.split_off(j);
                    records.insert(at + 1, WatchRecord::Events(second));
                }
                Mutation::Drop => {
                    e.events.remove(j);
                    if e.events.is_empty() {
                        records.remove(at);
                    }
                }
                Mutation::Phantom => e.events[j].value = Some("no-such-value".into()),
                _ => e.events[j].prev_value = Some(Some("not-a-value".into())),
            }
        }
    }
}

fn set_events(record: &mut WatchRecord, events: Vec<WatchEvent>, revision: i64) {
    if let WatchRecord::Events(e) = record {
        e.events = events;
        e.revision = revision;
    }
}

/// The next response of record `i`'s segment, if no progress lies between.
fn next_in_segment(records: &[WatchRecord], ids: &[Option<usize>], i: usize) -> Option<usize> {
    for j in i + 1..records.len() {
        if ids[j] != ids[i] {
            continue;
        }
        return match &records[j] {
            WatchRecord::Events(_) => Some(j),
            _ => None,
        };
    }
    None
}

/// The revision of the first event of the segment record `i` opens.
fn first_event(records: &[WatchRecord], ids: &[Option<usize>], i: usize) -> Option<i64> {
    (i + 1..records.len())
        .filter(|&j| ids[j] == ids[i])
        .find_map(|j| match &records[j] {
            WatchRecord::Events(e) => e.events.first().map(|e| e.mod_revision),
            _ => None,
        })
}

/// Whether a record after `i` in its segment covers `rev`.
fn covered_later(records: &[WatchRecord], ids: &[Option<usize>], i: usize, rev: i64) -> bool {
    (i + 1..records.len()).any(|j| {
        ids[j] == ids[i]
            && match &records[j] {
                WatchRecord::Events(e) => !e.events.is_empty(),
                WatchRecord::Progress(p) => p.revision >= rev,
                _ => false,
            }
    })
}

/// The values put by ok writes.
fn ok_puts(records: &[WatchRecord]) -> BTreeSet<&str> {
    let mut out = BTreeSet::new();
    for r in records {
        if let WatchRecord::Write(w) = r
            && w.kind == WriteType::Ok
        {
            for op in &w.ops {
                if let WriteOp::Put { value, .. } = op {
                    out.insert(value.as_str());
                }
            }
        }
    }
    out
}

/// Keys a write of unknown outcome touches that no watcher saw it apply.
fn dirty_keys(records: &[WatchRecord]) -> BTreeSet<&str> {
    let mut seen = BTreeSet::new();
    for r in records {
        if let WatchRecord::Events(e) = r {
            seen.extend(e.events.iter().filter_map(|e| e.value.as_deref()));
        }
    }
    let mut outcome: BTreeMap<u64, WriteType> = BTreeMap::new();
    let mut last_ops: BTreeMap<u64, &[WriteOp]> = BTreeMap::new();
    let mut dirty = BTreeSet::new();
    for r in records {
        let WatchRecord::Write(w) = r else { continue };
        outcome.insert(w.process, w.kind);
        last_ops.insert(w.process, &w.ops);
        if w.kind == WriteType::Info && !applied_seen(&w.ops, &seen) {
            dirty.extend(w.ops.iter().map(WriteOp::key));
        }
    }
    for (p, kind) in outcome {
        if kind == WriteType::Invoke && !applied_seen(last_ops[&p], &seen) {
            dirty.extend(last_ops[&p].iter().map(WriteOp::key));
        }
    }
    dirty
}

fn applied_seen(ops: &[WriteOp], seen: &BTreeSet<&str>) -> bool {
    ops.iter()
        .any(|op| matches!(op, WriteOp::Put { value, .. } if seen.contains(value.as_str())))
}

/// The revision of an ok write with a put invoked after `time_ns`.
fn later_ok_put(records: &[WatchRecord], time_ns: u64) -> Option<i64> {
    let mut invoked: BTreeMap<u64, u64> = BTreeMap::new();
    for r in records {
        let WatchRecord::Write(w) = r else { continue };
        match w.kind {
            WriteType::Invoke => {
                invoked.insert(w.process, w.time_ns);
            }
            WriteType::Ok
                if invoked.get(&w.process).is_some_and(|&t| t > time_ns)
                    && w.ops.iter().any(|op| matches!(op, WriteOp::Put { .. })) =>
            {
                return w.revision;
            }
            _ => {}
        }
    }
    None
}
