//! The set of (linearized ops, state) configurations already explored: the
//! cache that keeps Wing–Gong search from re-exploring the same subtree.
//!
//! An open-addressing table whose keys live in one flat arena, so an insert
//! is one probe sequence and no allocation. A key is the compact form of the
//! linearized set (see [`Linearized::key`]) and the state id, a few words
//! per entry however long the history. Each slot also holds 32 bits of the
//! entry's hash: a probe that meets another key is then rejected without
//! touching the arena, which matters because the table is far larger than
//! the CPU caches.

use crate::checker::linearized::Linearized;

/// Configurations seen so far in one partition.
pub struct SeenSet {
    /// Per entry: `state | lo << 32`, the window length, the window words,
    /// the open-op words.
    arena: Vec<u64>,
    /// Where each entry starts in the arena.
    starts: Vec<usize>,
    /// Full hashes, read only when the table grows.
    hashes: Vec<u64>,
    /// `(entry number + 1) << 32 | hash >> 32`; 0 marks an empty slot.
    slots: Vec<u64>,
    shift: u32,
}

const INITIAL_SLOTS_LOG2: u32 = 10;

impl SeenSet {
    pub fn new() -> Self {
        SeenSet {
            arena: Vec::new(),
            starts: Vec::new(),
            hashes: Vec::new(),
            slots: vec![0; 1 << INITIAL_SLOTS_LOG2],
            shift: 64 - INITIAL_SLOTS_LOG2,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Fibonacci hashing: the top bits of a multiply are well mixed even when
    /// `hash` differs only in a few bits.
    #[inline]
    fn slot_of(&self, hash: u64) -> usize {
        (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    #[inline]
    fn matches(&self, e: usize, head: u64, mid: &[u64], open: &[u64]) -> bool {
        let at = self.starts[e];
        let a = &self.arena[at..];
        a[0] == head
            && a[1] == mid.len() as u64
            && a[2..2 + mid.len()] == *mid
            && a[2 + mid.len()..2 + mid.len() + open.len()] == *open
    }

    /// Adds (`set`, `state`) whose hash is `hash`; false if it was there.
    pub fn insert(&mut self, hash: u64, set: &Linearized, state: u32) -> bool {
        let (lo, mid, open) = set.key();
        let head = u64::from(state) | u64::from(lo) << 32;
        let mask = self.slots.len() - 1;
        let tag = hash >> 32;
        let mut i = self.slot_of(hash);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            if slot & 0xffff_ffff == tag
                && self.matches(((slot >> 32) - 1) as usize, head, mid, open)
            {
                return false;
            }
            i = (i + 1) & mask;
        }
        let e = self.hashes.len();
        assert!(
            e < u32::MAX as usize - 1,
            "seen-set entry count overflows u32"
        );
        self.hashes.push(hash);
        self.starts.push(self.arena.len());
        self.arena.push(head);
        self.arena.push(mid.len() as u64);
        self.arena.extend_from_slice(mid);
        self.arena.extend_from_slice(open);
        self.slots[i] = ((e as u64 + 1) << 32) | tag;
        // Keep the load under a half so probe sequences stay short.
        if self.hashes.len() * 2 > self.slots.len() {
            self.grow();
        }
        true
    }

    fn grow(&mut self) {
        let n = self.slots.len() * 2;
        self.shift -= 1;
        self.slots = vec![0; n];
        let mask = n - 1;
        for (e, &hash) in self.hashes.iter().enumerate() {
            let mut i = self.slot_of(hash);
            while self.slots[i] != 0 {
                i = (i + 1) & mask;
            }
            self.slots[i] = ((e as u64 + 1) << 32) | (hash >> 32);
        }
    }

    /// Bytes held, for the memory bound.
    pub fn bytes(&self) -> usize {
        (self.arena.capacity() + self.starts.capacity() + self.hashes.capacity() + self.slots.len())
            * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_reports_duplicates_across_growth() {
        let mut s = SeenSet::new();
        let mut set = Linearized::new(200, 10);
        let bits: Vec<usize> = (0..11).map(|i| i * 19).collect();
        for i in 0..2000u32 {
            // A deliberately poor hash: many collisions must still be exact.
            let mut members = Vec::new();
            for (k, &b) in bits.iter().enumerate() {
                if i >> k & 1 == 1 {
                    set.insert(b, 1);
                    members.push((b, 1));
                }
            }
            assert!(s.insert(u64::from(i % 7), &set, i % 3));
            assert!(!s.insert(u64::from(i % 7), &set, i % 3));
            assert!(s.insert(u64::from(i % 7), &set, 5));
            for (b, h) in members {
                set.remove(b, h);
            }
        }
        assert_eq!(s.len(), 4000);
    }
}
