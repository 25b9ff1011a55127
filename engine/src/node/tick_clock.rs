//! Raft time from the monotonic clock.
//!
//! The core counts time in ticks, and its lease reads are safe only if a tick stands
//! for at least `tick_ms` of real time. A timer cannot promise that: tokio's interval
//! skips missed ticks, the event loop serves the timer last, and a paused or starved
//! process (SIGSTOP, a long GC-like stall, a slow disk holding the loop) processes a
//! tick long after it was due. A leader that counted only the ticks it saw would keep
//! its lease for longer than the followers wait before electing another leader.
//!
//! So the loop asks this clock, before handling anything, how many ticks are due by
//! the monotonic clock, and steps the core that many times first. After a pause the
//! core sees all of that time pass (its lease ends, its election timer fires) before it
//! handles a single read that arrived meanwhile.

use std::time::{Duration, Instant};

pub(crate) struct TickClock {
    start: Instant,
    tick: Duration,
    /// Ticks of real time accounted for so far.
    done: u64,
    /// Most ticks stepped at once: past a few election timeouts every timer in the
    /// core has expired, and more ticks change nothing but cost time.
    catch_up_max: u64,
}

impl TickClock {
    pub(crate) fn new(start: Instant, tick: Duration, catch_up_max: u64) -> Self {
        TickClock {
            start,
            tick: tick.max(Duration::from_millis(1)),
            done: 0,
            catch_up_max: catch_up_max.max(1),
        }
    }

    /// Ticks to step now so that the core's count catches up with the time elapsed
    /// (capped at `catch_up_max`; the rest is dropped, see there).
    pub(crate) fn due(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        let total = (elapsed.as_nanos() / self.tick.as_nanos()) as u64;
        let due = total.saturating_sub(self.done);
        self.done = self.done.max(total);
        due.min(self.catch_up_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_follow_elapsed_time_not_timer_wakeups() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut c = TickClock::new(t0, ms(10), 1000);
        assert_eq!(c.due(t0 + ms(9)), 0);
        assert_eq!(c.due(t0 + ms(10)), 1);
        assert_eq!(c.due(t0 + ms(10)), 0, "a tick is counted once");
        // Woken late (a pause of 2 s): every tick of the pause is due at once.
        assert_eq!(c.due(t0 + ms(2_015)), 200);
        assert_eq!(c.due(t0 + ms(2_020)), 1);
        // Time going backwards (it cannot, but an Instant from before) changes nothing.
        assert_eq!(c.due(t0 + ms(5)), 0);
    }

    #[test]
    fn a_very_long_pause_is_capped() {
        let t0 = Instant::now();
        let mut c = TickClock::new(t0, Duration::from_millis(10), 50);
        assert_eq!(c.due(t0 + Duration::from_secs(3600)), 50);
        assert_eq!(c.due(t0 + Duration::from_secs(3600)), 0);
    }
}
