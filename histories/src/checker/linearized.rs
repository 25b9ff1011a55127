//! The set of linearized ops, with a compact canonical key for the seen-set.
//!
//! In a long history almost every configuration the search meets has all
//! early ops linearized and none of the late ones: the set is a run of ones,
//! a short window of mixed bits around the search front, then zeros. Storing
//! the whole bitset per configuration would cost `n / 8` bytes each (12 KB
//! at 100,000 ops); storing (length of the run of full words, the window)
//! costs a few words. Ops that never return (unknown outcome) may be
//! linearized at any point, so they get their own words at the end, kept
//! whole, instead of stretching the window.

/// A linearized-op set; bit `i` is op `i` in the search's numbering, where
/// ops with a return come first.
pub struct Linearized {
    words: Vec<u64>,
    /// Words `0..ret_words` hold ops with a return; the rest, ops without.
    ret_words: usize,
    /// Words `0..lo` are all ones: `lo` is the first word that is not.
    lo: usize,
    /// Words `hi..ret_words` are all zero (`hi >= lo`, and is the least
    /// such bound).
    hi: usize,
    /// XOR of the members' op hashes, kept up to date in O(1).
    hash: u64,
}

impl Linearized {
    /// A set over `returning` ops with a return and `open` ops without; bits
    /// `0..returning` are the former, `open_base()..` the latter.
    pub fn new(returning: usize, open: usize) -> Self {
        let ret_words = returning.div_ceil(64);
        Linearized {
            words: vec![0; ret_words + open.div_ceil(64)],
            ret_words,
            lo: 0,
            hi: 0,
            hash: 0,
        }
    }

    /// The bit of the first op without a return.
    pub fn open_base(&self) -> usize {
        self.ret_words * 64
    }

    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Adds `bit`, whose op hash is `op_hash`. It must not be in the set.
    #[inline]
    pub fn insert(&mut self, bit: usize, op_hash: u64) {
        let (w, b) = (bit / 64, 1u64 << (bit % 64));
        debug_assert_eq!(self.words[w] & b, 0, "bit {bit} already set");
        self.words[w] |= b;
        self.hash ^= op_hash;
        if w >= self.ret_words {
            return;
        }
        if w >= self.hi {
            self.hi = w + 1;
        }
        while self.lo < self.ret_words && self.words[self.lo] == u64::MAX {
            self.lo += 1;
        }
        self.hi = self.hi.max(self.lo);
    }

    /// Removes `bit`, which must be in the set.
    #[inline]
    pub fn remove(&mut self, bit: usize, op_hash: u64) {
        let (w, b) = (bit / 64, 1u64 << (bit % 64));
        debug_assert_ne!(self.words[w] & b, 0, "bit {bit} not set");
        self.words[w] &= !b;
        self.hash ^= op_hash;
        if w >= self.ret_words {
            return;
        }
        if w < self.lo {
            self.lo = w;
        }
        while self.hi > self.lo && self.words[self.hi - 1] == 0 {
            self.hi -= 1;
        }
    }

    /// The canonical key: equal sets give equal keys. (`lo`, the words
    /// between the run of ones and the zeros, the open-op words.)
    #[inline]
    pub fn key(&self) -> (u32, &[u64], &[u64]) {
        (
            self.lo as u32,
            &self.words[self.lo..self.hi],
            &self.words[self.ret_words..],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key as it should be, computed from scratch.
    fn expected_key(set: &Linearized) -> (u32, Vec<u64>, Vec<u64>) {
        let ret = &set.words[..set.ret_words];
        let lo = ret.iter().position(|&w| w != u64::MAX).unwrap_or(ret.len());
        let hi = ret
            .iter()
            .rposition(|&w| w != 0)
            .map_or(0, |i| i + 1)
            .max(lo);
        (
            lo as u32,
            ret[lo..hi].to_vec(),
            set.words[set.ret_words..].to_vec(),
        )
    }

    #[test]
    fn key_is_canonical_under_random_updates() {
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (returning, open) = (300, 70);
        let mut set = Linearized::new(returning, open);
        let bits: Vec<usize> = (0..returning)
            .chain((0..open).map(|i| set.open_base() + i))
            .collect();
        let mut member = vec![false; bits.len()];
        for step in 0..20_000 {
            // Bias towards low bits so the run of ones grows and shrinks.
            let i = if next() % 3 == 0 {
                (next() % 80) as usize
            } else {
                (next() as usize) % bits.len()
            };
            if member[i] {
                set.remove(bits[i], i as u64 + 1);
            } else {
                set.insert(bits[i], i as u64 + 1);
            }
            member[i] = !member[i];
            let (lo, mid, open_words) = set.key();
            let (elo, emid, eopen) = expected_key(&set);
            assert_eq!(
                (lo, mid, open_words),
                (elo, &emid[..], &eopen[..]),
                "step {step}"
            );
            let hash = member
                .iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .fold(0, |h, (i, _)| h ^ (i as u64 + 1));
            assert_eq!(set.hash(), hash);
        }
    }
}
