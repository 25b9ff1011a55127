//! The watch validator: checks what watchers received against what was
//! written, guarantee by guarantee (etcd's robustness suite found eight of
//! its seventeen bugs in watch).
//!
//! * ordered: a watcher's revisions never go back, and strictly increase
//!   between responses (an equal one is reported as unique or atomic);
//! * unique: no (revision, key) twice to one watcher, resumes included;
//! * atomic: one revision's matching events in one response;
//! * reliable: every delivered event matches a write that may have applied
//!   (else a phantom), watchers agree at each (revision, key), no stream
//!   gets an event on a key (or of a kind) it does not watch, and each
//!   segment delivers every committed event from its start revision to the
//!   highest revision it is known to cover;
//! * resumable: no event below a segment's start revision;
//! * bookmarkable: no event at or below a progress notification's revision
//!   after it, and progress never ahead of writes invoked after it;
//! * prev_kv: the previous value is the key's value just before, where the
//!   committed history of the key is complete;
//! * header: a response's header revision is at least its events'.
//!
//! Only what is certain is reported: writes of unknown outcome that no
//! watcher saw may or may not have applied, and only make checks skip. A
//! deadline or the record budget yields Unknown, never a violation that is
//! not there.
//!
//! ```
//! use d_engine_histories::txn::ModelVerdict;
//! use d_engine_histories::watch::{WatchOptions, check_bytes};
//! let text = br#"{"kind":"write","process":1,"type":"invoke","ops":[{"op":"put","key":"w/a","value":"1"}],"time_ns":1}
//! {"kind":"write","process":1,"type":"ok","ops":[{"op":"put","key":"w/a","value":"1"}],"revision":2,"time_ns":2}
//! {"kind":"watch","watcher":1,"prefix":"w/","start_revision":1,"time_ns":3}
//! {"kind":"progress","watcher":1,"revision":2,"time_ns":4}"#;
//! let report = check_bytes("watch.jsonl", text, &WatchOptions::default()).unwrap();
//! assert_eq!(report.verdict, ModelVerdict::Invalid);
//! assert!(report.violations[0].message.contains("missed put w/a = \"1\" at revision 2"));
//! ```

pub mod committed;
pub mod format;
pub mod history;
pub mod html;
pub mod prevkv;
pub mod progress;
pub mod reliable;
pub mod report;
pub mod stream;
pub mod synth;

use std::time::{Duration, Instant};

use crate::checker::{CancelToken, StopReason};
use crate::error::HistoryError;
use crate::txn::budget::Budget;

pub use format::{
    CancelRecord, EndRecord, EventType, EventsRecord, Filter, Numbered, ProgressRecord, WatchEvent,
    WatchOpen, WatchRecord, WatchWriter, WriteOp, WriteRecord, WriteType, numbered,
    read_watch_jsonl, read_watch_numbered,
};
pub use report::{Guarantee, Violation, WatchReport};

/// Bounds of one check.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub timeout: Option<Duration>,
    pub cancel: Option<CancelToken>,
    /// More records than this: Unknown without checking (the memory bound).
    pub max_records: usize,
    /// Violations kept with their explanation (all are counted).
    pub keep_violations: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            timeout: None,
            cancel: None,
            max_records: 20_000_000,
            keep_violations: 1000,
        }
    }
}

/// Reads and checks one `watch.jsonl`.
pub fn check_bytes(
    file: &str,
    bytes: &[u8],
    options: &WatchOptions,
) -> Result<WatchReport, HistoryError> {
    check_numbered(file, &read_watch_numbered(bytes)?, options)
}

/// Checks records numbered as lines `1..` (see [`numbered`]).
pub fn check(
    file: &str,
    records: &[WatchRecord],
    options: &WatchOptions,
) -> Result<WatchReport, HistoryError> {
    check_numbered(file, &numbered(records), options)
}

/// Checks records with their line numbers. Errors are histories that make
/// no sense (see [`history::arrange`]).
pub fn check_numbered(
    file: &str,
    records: &[Numbered],
    options: &WatchOptions,
) -> Result<WatchReport, HistoryError> {
    let started = Instant::now();
    let mut findings = report::Findings::new(options.keep_violations);
    let mut budget = Budget::new(
        options.timeout.and_then(|t| started.checked_add(t)),
        options.cancel.clone(),
    );
    if records.len() > options.max_records {
        budget.stop(StopReason::MemoryLimit);
    }
    let h = history::arrange(records)?;
    if budget.stopped.is_none() {
        let committed = committed::build(&h, &mut findings, &mut budget);
        if budget.stopped.is_none() {
            stream::check(&h.segments, &mut findings);
            progress::check(&h.segments, &h.writes, &mut findings);
            prevkv::check(&h.segments, &committed, &mut findings);
            reliable::check(&h.segments, &committed, &mut findings, &mut budget);
        }
    }
    let stopped = budget.stopped;
    Ok(WatchReport {
        file: file.to_owned(),
        verdict: WatchReport::verdict_of(&findings, stopped),
        watchers: h.watchers,
        segments: h.segments.len(),
        events: h.events,
        writes: h.writes.len(),
        elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        by_guarantee: findings
            .counts
            .iter()
            .map(|(g, n)| (g.as_str(), *n))
            .collect(),
        violations: findings.kept,
        stopped,
    })
}
