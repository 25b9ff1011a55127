//! When to give up: a deadline, a cancel token, a memory bound, or another
//! partition already found a violation. Giving up yields Unknown, never
//! Illegal, so a slow check can not turn into a false alarm.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

/// A handle to cancel a running check from another thread.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a partition was not decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    Deadline,
    Cancelled,
    MemoryLimit,
    /// Another partition is not linearizable, so the verdict is known.
    OtherPartitionIllegal,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::Deadline => "deadline reached",
            StopReason::Cancelled => "cancelled",
            StopReason::MemoryLimit => "memory limit reached",
            StopReason::OtherPartitionIllegal => "skipped: another partition is not linearizable",
        }
    }
}

/// The stop conditions shared by the workers of one check.
pub struct Stop<'a> {
    pub deadline: Option<Instant>,
    pub cancel: Option<&'a CancelToken>,
    /// Set by the first worker that finds a violation, if the check stops
    /// early.
    pub illegal_found: Option<&'a AtomicBool>,
    /// Bytes held by the tables of all searches, live or suspended.
    pub memory_used: &'a AtomicUsize,
    pub memory_limit_bytes: usize,
}

impl Stop<'_> {
    /// Whether to stop now. A search reports its table size `bytes` (it last
    /// reported `before`), so the limit covers all partitions together.
    pub fn check(&self, before: usize, bytes: usize) -> Option<StopReason> {
        let total = if bytes >= before {
            self.memory_used
                .fetch_add(bytes - before, Ordering::Relaxed)
                + (bytes - before)
        } else {
            self.memory_used
                .fetch_sub(before - bytes, Ordering::Relaxed)
                - (before - bytes)
        };
        if self
            .illegal_found
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Some(StopReason::OtherPartitionIllegal);
        }
        if self.cancel.is_some_and(CancelToken::is_cancelled) {
            return Some(StopReason::Cancelled);
        }
        if total > self.memory_limit_bytes {
            return Some(StopReason::MemoryLimit);
        }
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(StopReason::Deadline);
        }
        None
    }

    /// A finished search gives its bytes back.
    pub fn release(&self, bytes: usize) {
        self.memory_used.fetch_sub(bytes, Ordering::Relaxed);
    }
}
