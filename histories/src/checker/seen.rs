//! The set of (linearized ops, state) configurations already explored: the
//! cache that keeps Wing–Gong search from re-exploring the same subtree.
//!
//! An open-addressing table whose keys live in one flat arena (`words`
//! bitset words plus one word for the state id per entry), so an insert is
//! one probe sequence and no allocation, and memory is a few words per entry.
//! Each slot also holds 32 bits of the entry's hash: a probe that meets
//! another key is then rejected without touching the arena, which matters
//! because the table is far larger than the CPU caches.

/// Configurations seen so far in one partition.
pub struct SeenSet {
    words: usize,
    arena: Vec<u64>,
    /// Full hashes, read only when the table grows.
    hashes: Vec<u64>,
    /// `(entry number + 1) << 32 | hash >> 32`; 0 marks an empty slot.
    slots: Vec<u64>,
    shift: u32,
}

const INITIAL_SLOTS_LOG2: u32 = 10;

impl SeenSet {
    pub fn new(words: usize) -> Self {
        SeenSet {
            words,
            arena: Vec::new(),
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

    /// Adds (`bits`, `state`) whose hash is `hash`; false if it was there.
    pub fn insert(&mut self, hash: u64, bits: &[u64], state: u32) -> bool {
        debug_assert_eq!(bits.len(), self.words);
        let stride = self.words + 1;
        let mask = self.slots.len() - 1;
        let tag = hash >> 32;
        let mut i = self.slot_of(hash);
        loop {
            let slot = self.slots[i];
            if slot == 0 {
                break;
            }
            if slot & 0xffff_ffff == tag {
                let e = ((slot >> 32) - 1) as usize;
                let key = &self.arena[e * stride..(e + 1) * stride];
                if key[self.words] == u64::from(state) && key[..self.words] == *bits {
                    return false;
                }
            }
            i = (i + 1) & mask;
        }
        let e = self.hashes.len();
        assert!(
            e < u32::MAX as usize - 1,
            "seen-set entry count overflows u32"
        );
        self.hashes.push(hash);
        self.arena.extend_from_slice(bits);
        self.arena.push(u64::from(state));
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
        self.arena.capacity() * 8 + self.hashes.capacity() * 8 + self.slots.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_reports_duplicates_across_growth() {
        let mut s = SeenSet::new(2);
        for i in 0..2000u64 {
            // A deliberately poor hash: many collisions must still be exact.
            assert!(s.insert(i % 7, &[i, !i], (i % 3) as u32));
        }
        for i in 0..2000u64 {
            assert!(!s.insert(i % 7, &[i, !i], (i % 3) as u32));
            assert!(s.insert(i % 7, &[i, !i], 5));
        }
        assert_eq!(s.len(), 4000);
    }
}
