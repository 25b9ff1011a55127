//! The records arranged for checking: writes as invoke/complete pairs, and
//! each watcher's stream cut into segments (one per `watch` record).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use crate::error::HistoryError;
use crate::watch::format::{
    EventType, EventsRecord, Filter, Numbered, WatchEvent, WatchOpen, WatchRecord, WriteOp,
    WriteRecord, WriteType,
};

/// What became of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Applied, every op at this revision.
    Ok(i64),
    /// Certainly not applied.
    Fail,
    /// Unknown (`info`, or never completed).
    Info,
}

/// One write, invocation and completion together.
#[derive(Debug, Clone)]
pub struct Write {
    pub process: u64,
    pub ops: Vec<WriteOp>,
    pub outcome: Outcome,
    pub invoke_ns: u64,
    /// When the client learnt the outcome (`None`: never).
    pub complete_ns: Option<u64>,
    /// The line of the invocation.
    pub line: usize,
}

impl Write {
    pub fn has_put(&self) -> bool {
        self.ops.iter().any(|op| matches!(op, WriteOp::Put { .. }))
    }
}

/// One watch response.
#[derive(Debug, Clone)]
pub struct Response {
    pub line: usize,
    pub revision: i64,
    pub events: Vec<WatchEvent>,
    pub time_ns: u64,
}

/// What a segment received, in order.
#[derive(Debug, Clone)]
pub enum Item {
    Events(Response),
    Progress {
        line: usize,
        revision: i64,
        time_ns: u64,
    },
}

/// One opening of a watcher's stream and what it received until the next.
#[derive(Debug, Clone)]
pub struct Segment {
    pub watcher: u64,
    pub prefix: String,
    pub start_revision: i64,
    pub prev_kv: bool,
    pub no_put: bool,
    pub no_delete: bool,
    /// The line of the `watch` record.
    pub line: usize,
    /// Whether this is not the watcher's first segment.
    pub resumed: bool,
    pub items: Vec<Item>,
}

impl Segment {
    /// Whether an event of this kind on this key belongs in the stream.
    pub fn wants(&self, kind: EventType, key: &str) -> bool {
        key.starts_with(&self.prefix)
            && match kind {
                EventType::Put => !self.no_put,
                EventType::Delete => !self.no_delete,
            }
    }

    pub fn responses(&self) -> impl Iterator<Item = &Response> {
        self.items.iter().filter_map(|item| match item {
            Item::Events(r) => Some(r),
            Item::Progress { .. } => None,
        })
    }
}

/// The whole history.
#[derive(Debug, Clone, Default)]
pub struct WatchHistory {
    pub writes: Vec<Write>,
    /// In the order they were opened.
    pub segments: Vec<Segment>,
    pub watchers: usize,
    pub events: usize,
}

/// Arranges the records. Errors are records that make no sense (a
/// completion without an invocation, events for a stream never opened).
pub fn arrange(records: &[Numbered]) -> Result<WatchHistory, HistoryError> {
    let mut h = WatchHistory::default();
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    // watcher -> index of its open segment, if open.
    let mut open: BTreeMap<u64, Option<usize>> = BTreeMap::new();
    for Numbered { line, record } in records {
        let line = *line;
        match record {
            WatchRecord::Write(w) => add_write(&mut h, &mut pending, w, line)?,
            WatchRecord::Watch(w) => {
                let resumed = open.contains_key(&w.watcher);
                open.insert(w.watcher, Some(h.segments.len()));
                h.segments.push(segment(w, line, resumed));
            }
            WatchRecord::Events(e) => {
                let s = open_segment(&open, e.watcher, line)?;
                h.events += e.events.len();
                h.segments[s].items.push(Item::Events(response(e, line)));
            }
            WatchRecord::Progress(p) => {
                let s = open_segment(&open, p.watcher, line)?;
                h.segments[s].items.push(Item::Progress {
                    line,
                    revision: p.revision,
                    time_ns: p.time_ns,
                });
            }
            WatchRecord::Cancel(c) => close(&mut open, c.watcher, line)?,
            WatchRecord::End(e) => close(&mut open, e.watcher, line)?,
        }
    }
    h.watchers = open.len();
    Ok(h)
}

fn add_write(
    h: &mut WatchHistory,
    pending: &mut BTreeMap<u64, usize>,
    w: &WriteRecord,
    line: usize,
) -> Result<(), HistoryError> {
    if w.kind == WriteType::Invoke {
        if let Some(&i) = pending.get(&w.process) {
            let earlier = h.writes[i].line;
            return Err(HistoryError::new(
                line,
                format!(
                    "process {} invokes a write while its write of line {earlier} is outstanding",
                    w.process
                ),
            ));
        }
        pending.insert(w.process, h.writes.len());
        h.writes.push(Write {
            process: w.process,
            ops: w.ops.clone(),
            outcome: Outcome::Info,
            invoke_ns: w.time_ns,
            complete_ns: None,
            line,
        });
        return Ok(());
    }
    let Some(i) = pending.remove(&w.process) else {
        return Err(HistoryError::new(
            line,
            format!("process {} completes a write it never invoked", w.process),
        ));
    };
    let write = &mut h.writes[i];
    write.complete_ns = Some(w.time_ns);
    write.outcome = match (w.kind, w.revision) {
        (WriteType::Ok, Some(rev)) => Outcome::Ok(rev),
        (WriteType::Ok, None) => {
            return Err(HistoryError::new(line, "an ok write without a revision"));
        }
        (WriteType::Fail, _) => Outcome::Fail,
        _ => Outcome::Info,
    };
    Ok(())
}

fn segment(w: &WatchOpen, line: usize, resumed: bool) -> Segment {
    Segment {
        watcher: w.watcher,
        prefix: w.prefix.clone(),
        start_revision: w.start_revision,
        prev_kv: w.prev_kv,
        no_put: w.filters.contains(&Filter::NoPut),
        no_delete: w.filters.contains(&Filter::NoDelete),
        line,
        resumed,
        items: Vec::new(),
    }
}

fn response(e: &EventsRecord, line: usize) -> Response {
    Response {
        line,
        revision: e.revision,
        events: e.events.clone(),
        time_ns: e.time_ns,
    }
}

fn open_segment(
    open: &BTreeMap<u64, Option<usize>>,
    watcher: u64,
    line: usize,
) -> Result<usize, HistoryError> {
    open.get(&watcher).copied().flatten().ok_or_else(|| {
        HistoryError::new(
            line,
            format!("watcher {watcher} receives on a stream that is not open"),
        )
    })
}

fn close(
    open: &mut BTreeMap<u64, Option<usize>>,
    watcher: u64,
    line: usize,
) -> Result<(), HistoryError> {
    match open.entry(watcher) {
        Entry::Occupied(mut o) => {
            o.insert(None);
            Ok(())
        }
        Entry::Vacant(_) => Err(HistoryError::new(
            line,
            format!("watcher {watcher} closes a stream it never opened"),
        )),
    }
}
