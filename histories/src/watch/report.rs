//! What a watch check found: violations by guarantee, the verdict, the
//! verdict line and the JSON report.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checker::StopReason;
use crate::txn::ModelVerdict;

/// The guarantees of a watch stream (etcd's names where it has them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Revisions never go back, and strictly increase between responses.
    Ordered,
    /// No (revision, key) twice to one watcher.
    Unique,
    /// One revision's events in one response.
    Atomic,
    /// Every committed event in a covered range delivered; no phantoms;
    /// watchers agree.
    Reliable,
    /// A resumed stream starts where it was asked to.
    Resumable,
    /// Progress notifications are true and not ahead of the store.
    Bookmarkable,
    /// prev_kv is the key's value just before the event.
    PrevKv,
    /// A response's header revision is at least its events' revisions.
    Header,
}

impl Guarantee {
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::Ordered => "ordered",
            Guarantee::Unique => "unique",
            Guarantee::Atomic => "atomic",
            Guarantee::Reliable => "reliable",
            Guarantee::Resumable => "resumable",
            Guarantee::Bookmarkable => "bookmarkable",
            Guarantee::PrevKv => "prev_kv",
            Guarantee::Header => "header",
        }
    }
}

/// One broken guarantee, explained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub guarantee: Guarantee,
    /// Finer than the guarantee: `missed`, `phantom`, `disagree`,
    /// `progress-ahead`, `after-progress`, … (one per check).
    pub class: &'static str,
    pub watcher: u64,
    pub revision: i64,
    pub key: String,
    /// The record that shows it (1-based).
    pub line: usize,
    pub message: String,
}

/// Violations as they are found: all counted, the first `keep` kept.
#[derive(Debug, Default)]
pub struct Findings {
    pub kept: Vec<Violation>,
    pub counts: BTreeMap<Guarantee, usize>,
    pub keep: usize,
}

impl Findings {
    pub fn new(keep: usize) -> Findings {
        Findings {
            keep,
            ..Findings::default()
        }
    }

    pub fn push(&mut self, v: Violation) {
        *self.counts.entry(v.guarantee).or_default() += 1;
        if self.kept.len() < self.keep {
            self.kept.push(v);
        }
    }

    pub fn total(&self) -> usize {
        self.counts.values().sum()
    }
}

/// One history's watch verdict.
#[derive(Debug, Clone, Serialize)]
pub struct WatchReport {
    pub file: String,
    pub verdict: ModelVerdict,
    pub watchers: usize,
    pub segments: usize,
    pub events: usize,
    pub writes: usize,
    pub elapsed_ms: f64,
    pub by_guarantee: BTreeMap<&'static str, usize>,
    /// The first violations (all are counted in `by_guarantee`).
    pub violations: Vec<Violation>,
    pub stopped: Option<StopReason>,
}

impl WatchReport {
    /// A proven violation decides even a check that stopped early.
    pub fn verdict_of(findings: &Findings, stopped: Option<StopReason>) -> ModelVerdict {
        if findings.total() > 0 {
            ModelVerdict::Invalid
        } else if stopped.is_some() {
            ModelVerdict::Unknown
        } else {
            ModelVerdict::Valid
        }
    }

    /// `FILE: watch: invalid, violates reliable ×2 (3 watchers, …)`.
    pub fn verdict_line(&self) -> String {
        let file = &self.file;
        let sizes = format!(
            "{} watchers, {} segments, {} events, {} writes, {:.1} ms",
            self.watchers, self.segments, self.events, self.writes, self.elapsed_ms
        );
        let found: Vec<String> = self
            .by_guarantee
            .iter()
            .map(|(g, n)| format!("{g} ×{n}"))
            .collect();
        match self.verdict {
            ModelVerdict::Invalid => {
                format!(
                    "{file}: watch: invalid, violates {} ({sizes})",
                    found.join(", ")
                )
            }
            ModelVerdict::Unknown => {
                let why = self.stopped.map_or("stopped", StopReason::describe);
                format!("{file}: watch: unknown ({why}; {sizes})")
            }
            ModelVerdict::Valid if self.watchers == 0 => {
                format!(
                    "{file}: watch: valid (no watch streams; {} writes)",
                    self.writes
                )
            }
            ModelVerdict::Valid => format!("{file}: watch: valid ({sizes}; no violations)"),
        }
    }
}
