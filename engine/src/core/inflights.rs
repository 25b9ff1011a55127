//! Bounded window of appends sent to one follower but not yet acknowledged.

use std::collections::VecDeque;

use super::types::LogIndex;

/// In-flight appends, each recorded by its last index and payload bytes.
#[derive(Clone, Debug, Default)]
pub struct Inflights {
    window: VecDeque<(LogIndex, u64)>,
    bytes: u64,
}

impl Inflights {
    pub fn add(&mut self, last_index: LogIndex, bytes: u64) {
        debug_assert!(self.window.back().is_none_or(|&(i, _)| i < last_index));
        self.window.push_back((last_index, bytes));
        self.bytes += bytes;
    }

    /// Forget every append whose last index is `<= index` (acknowledged).
    pub fn free_to(&mut self, index: LogIndex) {
        while let Some(&(i, b)) = self.window.front() {
            if i > index {
                break;
            }
            self.bytes -= b;
            self.window.pop_front();
        }
    }

    pub fn reset(&mut self) {
        self.window.clear();
        self.bytes = 0;
    }

    pub fn is_full(&self, max_msgs: usize, max_bytes: u64) -> bool {
        self.window.len() >= max_msgs || self.bytes >= max_bytes
    }

    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_by_count_and_bytes() {
        let mut f = Inflights::default();
        f.add(1, 10);
        f.add(3, 10);
        assert!(f.is_full(2, 100));
        assert!(f.is_full(10, 20));
        f.free_to(2);
        assert_eq!(f.len(), 1);
        assert!(!f.is_full(2, 20));
        f.free_to(3);
        assert!(f.is_empty());
    }
}
