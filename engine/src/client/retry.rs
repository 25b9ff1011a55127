//! Exponential backoff with jitter between attempts.

use std::time::Duration;

pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
    seed: u64,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9);
        Backoff {
            next: min.max(Duration::from_millis(1)),
            max,
            seed: seed | 1,
        }
    }

    /// The next pause: the current step with ±25% jitter (so clients that failed
    /// together do not retry together), then the step doubles up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        let quarter = base / 4;
        let jitter_ns = self.seed % (2 * quarter.as_nanos() as u64 + 1);
        base - quarter + Duration::from_nanos(jitter_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_maximum_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(
            delays[0] >= Duration::from_micros(7_500) && delays[0] <= Duration::from_micros(12_500)
        );
        for d in &delays[4..] {
            assert!(
                *d >= Duration::from_millis(60) && *d <= Duration::from_millis(100),
                "{d:?}"
            );
        }
    }
}
