//! When the transactional checker gives up: a deadline or a cancel token.
//! Work is polled in steps, so the clock is read once per thousand or so.

use std::time::Instant;

use crate::checker::{CancelToken, StopReason};

/// The stop conditions of one check.
#[derive(Debug)]
pub struct Budget {
    deadline: Option<Instant>,
    cancel: Option<CancelToken>,
    steps: u32,
    /// Most edges the memory bound leaves room for.
    pub edges_max: usize,
    /// Why the check stopped, once it has.
    pub stopped: Option<StopReason>,
}

impl Budget {
    pub fn new(deadline: Option<Instant>, cancel: Option<CancelToken>) -> Budget {
        Budget {
            deadline,
            cancel,
            steps: 0,
            edges_max: usize::MAX,
            stopped: None,
        }
    }

    /// Whether to stop; cheap enough to call per transaction.
    #[inline]
    pub fn expired(&mut self) -> bool {
        if self.stopped.is_some() {
            return true;
        }
        self.steps += 1;
        if self.steps < 1024 {
            return false;
        }
        self.steps = 0;
        self.poll()
    }

    fn poll(&mut self) -> bool {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            self.stopped = Some(StopReason::Cancelled);
        } else if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stopped = Some(StopReason::Deadline);
        }
        self.stopped.is_some()
    }

    /// Whether `edges` edges break the memory bound (and if so, stops).
    #[inline]
    pub fn too_many_edges(&mut self, edges: usize) -> bool {
        if edges > self.edges_max {
            self.stop(StopReason::MemoryLimit);
        }
        self.stopped.is_some()
    }

    /// Stops the check for a reason of the caller's (the memory bound).
    pub fn stop(&mut self, reason: StopReason) {
        self.stopped.get_or_insert(reason);
    }
}
