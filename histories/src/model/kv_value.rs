//! Key-value string values as persistent ropes with a rolling hash.
//!
//! The search creates a new state for every order of appends it explores;
//! with plain strings each one costs a copy and a hash of the whole value
//! (values grow to kilobytes) and stays in memory. Here an append is one small
//! node pointing at the previous value, and the hash of the concatenation is
//! computed from the parts in O(1): `H(a ++ b) = H(a) * B^|b| + H(b)`.
//! Equality compares length and hash, then the bytes, so collisions cost time
//! but never a wrong answer.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The base of the polynomial hash (odd, so multiplication is invertible
/// modulo 2^64).
const BASE: u64 = 0x0000_0100_0000_01b3;

/// A string argument or result with its hash, computed once when decoded.
#[derive(Debug, Clone)]
pub struct KvText {
    text: Arc<str>,
    hash: u64,
    /// `BASE^len`, what appending this text multiplies the old hash by.
    pow: u64,
}

impl KvText {
    pub fn new(text: &str) -> Self {
        let (mut hash, mut pow) = (0u64, 1u64);
        for &b in text.as_bytes() {
            hash = hash.wrapping_mul(BASE).wrapping_add(u64::from(b) + 1);
            pow = pow.wrapping_mul(BASE);
        }
        KvText {
            text: Arc::from(text),
            hash,
            pow,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for KvText {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

/// One appended piece and everything before it.
struct Piece {
    text: Arc<str>,
    prev: Option<Arc<Piece>>,
}

impl Drop for Piece {
    /// Unlinks the chain iteratively: a value built from 100,000 appends
    /// would overflow the stack if each node dropped the next recursively.
    fn drop(&mut self) {
        let mut prev = self.prev.take();
        while let Some(node) = prev {
            match Arc::try_unwrap(node) {
                Ok(mut piece) => prev = piece.prev.take(),
                Err(_) => break,
            }
        }
    }
}

/// A key's value.
#[derive(Clone, Default)]
pub struct KvValue {
    len: usize,
    hash: u64,
    last: Option<Arc<Piece>>,
}

impl KvValue {
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value `text` (a put).
    pub fn of(text: &KvText) -> Self {
        if text.text.is_empty() {
            return KvValue::default();
        }
        KvValue {
            len: text.text.len(),
            hash: text.hash,
            last: Some(Arc::new(Piece {
                text: text.text.clone(),
                prev: None,
            })),
        }
    }

    /// This value with `text` appended.
    pub fn append(&self, text: &KvText) -> Self {
        if text.text.is_empty() {
            return self.clone();
        }
        KvValue {
            len: self.len + text.text.len(),
            hash: self.hash.wrapping_mul(text.pow).wrapping_add(text.hash),
            last: Some(Arc::new(Piece {
                text: text.text.clone(),
                prev: self.last.clone(),
            })),
        }
    }

    /// The pieces from the last to the first.
    fn pieces_rev(&self) -> impl Iterator<Item = &[u8]> {
        let mut node = self.last.as_deref();
        std::iter::from_fn(move || {
            let piece = node?;
            node = piece.prev.as_deref();
            Some(piece.text.as_bytes())
        })
    }

    /// Whether the value reads as `text`.
    pub fn equals_text(&self, text: &KvText) -> bool {
        self.len == text.text.len()
            && self.hash == text.hash
            && same_bytes_rev(self.pieces_rev(), std::iter::once(text.text.as_bytes()))
    }

    pub fn to_text(&self) -> String {
        let mut parts: Vec<&[u8]> = self.pieces_rev().collect();
        parts.reverse();
        String::from_utf8(parts.concat()).expect("pieces are whole UTF-8 strings")
    }
}

/// Compares two byte sequences given as pieces from the end, without
/// joining them. The caller has checked the lengths are equal.
fn same_bytes_rev<'a>(
    mut a: impl Iterator<Item = &'a [u8]>,
    mut b: impl Iterator<Item = &'a [u8]>,
) -> bool {
    let (mut x, mut y): (&[u8], &[u8]) = (&[], &[]);
    loop {
        while x.is_empty() {
            match a.next() {
                Some(p) => x = p,
                None => return y.is_empty() && b.all(<[u8]>::is_empty),
            }
        }
        while y.is_empty() {
            match b.next() {
                Some(p) => y = p,
                None => return false,
            }
        }
        let n = x.len().min(y.len());
        if x[x.len() - n..] != y[y.len() - n..] {
            return false;
        }
        x = &x[..x.len() - n];
        y = &y[..y.len() - n];
    }
}

impl PartialEq for KvValue {
    fn eq(&self, other: &Self) -> bool {
        if self.len != other.len || self.hash != other.hash {
            return false;
        }
        let shared = match (&self.last, &other.last) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        shared || same_bytes_rev(self.pieces_rev(), other.pieces_rev())
    }
}

impl Eq for KvValue {}

impl Hash for KvValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash ^ self.len as u64);
    }
}

impl fmt::Debug for KvValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_content_is_equal_whatever_the_pieces() {
        let t = KvText::new;
        let a = KvValue::of(&t("ab")).append(&t("cd")).append(&t("e"));
        let b = KvValue::default().append(&t("a")).append(&t("bcde"));
        let c = KvValue::of(&t("abcdf"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.equals_text(&t("abcde")));
        assert!(!a.equals_text(&t("abcd")));
        assert_eq!(a.to_text(), "abcde");
        assert_eq!(KvValue::of(&t("")), KvValue::default());
        use std::hash::BuildHasher;
        let h = |v: &KvValue| crate::checker::hash::FastBuildHasher.hash_one(v);
        assert_eq!(h(&a), h(&b));
    }

    #[test]
    fn long_chains_drop_without_recursion() {
        let piece = KvText::new("x");
        let mut v = KvValue::default();
        for _ in 0..200_000 {
            v = v.append(&piece);
        }
        assert_eq!(v.len, 200_000);
        drop(v);
    }
}
