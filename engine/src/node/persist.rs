//! Ordering writes to storage and the messages that must wait for them.
//!
//! Every write the core asks for gets a sequence number when it is queued to
//! storage; storage completes them in order. A message marked `AfterPersist` is held
//! until every write queued before it is durable: that is what makes a vote, or a
//! follower's acknowledgement, safe to send.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::core::{LogIndex, Message, NodeId, Term};

/// What completing a write yields: the log position now durable, the messages
/// released, and for each write completed its latency and entry count.
pub(crate) type Completed = (
    Option<(LogIndex, Term)>,
    Vec<(NodeId, Message)>,
    Vec<(Duration, usize)>,
);

/// One queued write: the last log position it makes durable, when it was queued, how
/// many entries it carries, and its tracing span (closed when the write is durable).
struct Mark {
    seq: u64,
    last: (LogIndex, Term),
    at: Instant,
    entries: usize,
    _span: tracing::Span,
}

#[derive(Default)]
pub(crate) struct PersistQueue {
    /// Writes queued so far, and how many of them storage reported durable.
    pub issued: u64,
    pub durable: u64,
    /// For each queued write: the last log position it makes durable, when it was
    /// queued and how many entries it carries.
    marks: VecDeque<Mark>,
    /// Messages waiting for the write with the given sequence number.
    held: VecDeque<(u64, NodeId, Message)>,
    /// The last entry queued for writing.
    pub last: (LogIndex, Term),
}

impl PersistQueue {
    /// A queue for a log whose last durable entry is `last`.
    pub(crate) fn starting_at(last: (LogIndex, Term)) -> Self {
        PersistQueue {
            last,
            ..Default::default()
        }
    }

    /// Records a new write ending at `last` and returns its sequence number.
    pub(crate) fn issue(&mut self, last: (LogIndex, Term), entries: usize) -> u64 {
        self.issued += 1;
        self.last = last;
        let span =
            tracing::debug_span!("log_write", seq = self.issued, entries, last_index = last.0);
        self.marks.push_back(Mark {
            seq: self.issued,
            last,
            at: Instant::now(),
            entries,
            _span: span,
        });
        self.issued
    }

    /// True if nothing queued is still waiting for storage.
    pub(crate) fn all_durable(&self) -> bool {
        self.durable == self.issued
    }

    /// Writes handed to storage and not yet reported durable.
    pub(crate) fn in_flight(&self) -> u64 {
        self.issued - self.durable
    }

    /// Holds `msg` until the writes queued so far are durable.
    pub(crate) fn hold(&mut self, to: NodeId, msg: Message) {
        self.held.push_back((self.issued, to, msg));
    }

    /// Storage finished write `seq` (and so every earlier one): returns the log position
    /// now durable and the messages that may go.
    pub(crate) fn complete(&mut self, seq: u64) -> Completed {
        debug_assert!(
            seq == self.durable + 1,
            "storage completed writes out of order"
        );
        self.durable = seq;
        let mut durable_pos = None;
        let mut writes = Vec::new();
        while self.marks.front().is_some_and(|m| m.seq <= seq) {
            let m = self.marks.pop_front().expect("checked non-empty");
            durable_pos = Some(m.last);
            writes.push((m.at.elapsed(), m.entries));
        }
        let mut ready = Vec::new();
        while self.held.front().is_some_and(|h| h.0 <= seq) {
            let (_, to, msg) = self.held.pop_front().expect("checked non-empty");
            ready.push((to, msg));
        }
        (durable_pos, ready, writes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Body;

    fn msg(t: u64) -> Message {
        Message {
            term: t,
            body: Body::VoteResp { granted: true },
        }
    }

    #[test]
    fn held_messages_leave_only_after_the_writes_before_them() {
        let mut q = PersistQueue::default();
        let a = q.issue((5, 1), 1);
        q.hold(2, msg(1));
        let b = q.issue((7, 1), 2);
        q.hold(3, msg(2));
        let (pos, ready, writes) = q.complete(a);
        assert_eq!(writes.len(), 1);
        assert_eq!(pos, Some((5, 1)));
        assert_eq!(ready, vec![(2, msg(1))]);
        assert!(!q.all_durable());
        let (pos, ready, _) = q.complete(b);
        assert_eq!(pos, Some((7, 1)));
        assert_eq!(ready, vec![(3, msg(2))]);
        assert!(q.all_durable());
    }
}
