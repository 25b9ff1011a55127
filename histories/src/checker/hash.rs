//! A small, fast, non-cryptographic hasher for the checker's tables. The
//! keys are our own (op numbers, state ids, model states), not attacker
//! supplied, so SipHash's flood resistance buys nothing and costs a lot.

use std::hash::{BuildHasher, Hasher};

/// Odd multiplier with well-spread bits (from the Fx family of hashes).
const SEED: u64 = 0xf135_7aea_2e62_a9c5;

/// Multiply-rotate hasher over 8-byte words.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash ^ word).wrapping_mul(SEED).rotate_left(26);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8-byte chunk")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(buf));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// `BuildHasher` for `HashMap`s keyed by the checker's own data.
#[derive(Default, Clone, Copy)]
pub struct FastBuildHasher;

impl BuildHasher for FastBuildHasher {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

/// SplitMix64: turns small integers into well-mixed 64-bit values. Used to
/// give each op a random-looking bit pattern so a set of ops hashes as the
/// XOR of its members, which can be updated in O(1) when one op is added or
/// removed.
#[inline]
pub fn mix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::Hash;

    fn h<T: Hash>(v: T) -> u64 {
        FastBuildHasher.hash_one(v)
    }

    #[test]
    fn distinguishes_nearby_inputs() {
        assert_ne!(h("abc"), h("abd"));
        assert_ne!(h(1u32), h(2u32));
        assert_ne!(mix64(1), mix64(2));
        assert_eq!(h("same"), h("same"));
    }
}
