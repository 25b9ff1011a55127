//! Reconnect backoff of one outbound peer link (`network.reconnect_backoff_ms_min` /
//! `_max`).
//!
//! Every opening of a peer's replication stream is an attempt. An attempt that the
//! peer has not answered yet holds back the next one for the current delay, which
//! starts at the minimum and doubles with each unanswered attempt up to the maximum;
//! the peer's first answer on a stream resets it. The delay is charged when the stream
//! is opened rather than when it fails, because the link learns of a failure only when
//! its next send finds the stream closed, which can come before the stream's task has
//! seen the error: charging at the opening cannot be raced. Without a backoff a leader
//! would dial an unreachable peer on every heartbeat.

use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    /// What the next unanswered attempt will hold back the one after it.
    delay: Duration,
    /// No attempt before this instant; `None` once the peer has answered.
    retry_at: Option<Instant>,
}

impl Backoff {
    pub(crate) fn new(min_ms: u64, max_ms: u64) -> Self {
        let min = Duration::from_millis(min_ms);
        Backoff {
            min,
            // Validation keeps min <= max; a bad pair must still not shrink the delay.
            max: Duration::from_millis(max_ms).max(min),
            delay: min,
            retry_at: None,
        }
    }

    /// Whether an attempt may start at `now`.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| now >= t)
    }

    /// Records an attempt starting at `now`: the next one waits for the current delay
    /// unless the peer answers first.
    pub(crate) fn attempt(&mut self, now: Instant) {
        self.retry_at = Some(now + self.delay);
        self.delay = self.delay.saturating_mul(2).min(self.max);
    }

    /// The peer answered: the next attempt may start at once, and a failure after it
    /// waits the minimum again.
    pub(crate) fn answered(&mut self) {
        self.delay = self.min;
        self.retry_at = None;
    }

    /// How long an attempt at `now` would still have to wait.
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// The waits after `n` unanswered attempts, each made as soon as allowed.
    fn waits(b: &mut Backoff, n: usize) -> Vec<u64> {
        let mut now = Instant::now();
        (0..n)
            .map(|_| {
                assert!(b.ready(now));
                b.attempt(now);
                let w = b.wait(now);
                assert!(!b.ready(now + w - MS), "ready before the delay passed");
                now += w;
                w.as_millis() as u64
            })
            .collect()
    }

    #[test]
    fn unanswered_attempts_wait_doubling_from_min_to_max() {
        let mut b = Backoff::new(20, 500);
        assert_eq!(waits(&mut b, 7), vec![20, 40, 80, 160, 320, 500, 500]);
    }

    #[test]
    fn an_answer_resets_to_the_minimum_and_allows_an_attempt_at_once() {
        let mut b = Backoff::new(20, 500);
        waits(&mut b, 4);
        let now = Instant::now();
        b.attempt(now);
        assert!(!b.ready(now));
        b.answered();
        assert!(
            b.ready(now),
            "an answered peer is redialled without waiting"
        );
        assert_eq!(waits(&mut b, 2), vec![20, 40]);
    }

    #[test]
    fn a_fresh_link_may_attempt_at_once() {
        let b = Backoff::new(20, 500);
        assert!(b.ready(Instant::now()));
        assert_eq!(b.wait(Instant::now()), Duration::ZERO);
    }

    #[test]
    fn max_below_min_acts_as_min() {
        let mut b = Backoff::new(100, 10);
        assert_eq!(waits(&mut b, 3), vec![100, 100, 100]);
    }
}
