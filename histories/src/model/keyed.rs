//! A small sorted map from key number to value, the state of the built-in
//! models. Per-key partitions hold one entry; a single partition over many
//! keys holds them all. Keys at their default value are left out, so "never
//! written" and "written back to the default" are the same state.
//!
//! The entry with the smallest key is stored inline: per-key states (the
//! common case, millions of them in a hard search) then never allocate.

/// State of a keyed model: `(key_id, value)` sorted by key, defaults omitted.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Keyed<V> {
    first: Option<(u32, V)>,
    rest: Vec<(u32, V)>,
}

impl<V> Default for Keyed<V> {
    fn default() -> Self {
        Keyed {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<V: Clone + PartialEq + Default> Keyed<V> {
    /// The value of `key`, `None` meaning the default.
    pub fn get(&self, key: u32) -> Option<&V> {
        match &self.first {
            Some((k, v)) if *k == key => Some(v),
            _ => self
                .rest
                .binary_search_by_key(&key, |(k, _)| *k)
                .ok()
                .map(|i| &self.rest[i].1),
        }
    }

    /// A copy with `key` set to `value`.
    pub fn with(&self, key: u32, value: V) -> Self {
        let is_default = value == V::default();
        // Fast path: at most one key, and it is this one (or there is none).
        if self.rest.is_empty() && self.first.as_ref().is_none_or(|(k, _)| *k == key) {
            return Keyed {
                first: (!is_default).then_some((key, value)),
                rest: Vec::new(),
            };
        }
        let mut all: Vec<(u32, V)> = self
            .first
            .iter()
            .cloned()
            .chain(self.rest.iter().cloned())
            .collect();
        match all.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) if is_default => {
                all.remove(i);
            }
            Ok(i) => all[i].1 = value,
            Err(_) if is_default => {}
            Err(i) => all.insert(i, (key, value)),
        }
        let mut it = all.into_iter();
        let first = it.next();
        Keyed {
            first,
            rest: it.collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_omitted_and_order_is_canonical() {
        let a: Keyed<i64> = Keyed::default();
        let b = a.with(3, 7).with(1, 2).with(5, 1);
        assert_eq!(b.get(3), Some(&7));
        assert_eq!(b.get(1), Some(&2));
        assert_eq!(b.get(5), Some(&1));
        assert_eq!(b.get(2), None);
        assert_eq!(b, a.with(5, 1).with(1, 2).with(3, 7));
        assert_eq!(b.with(3, 0).with(1, 0).with(5, 0), a);
        assert_eq!(a.with(4, 4).with(4, 0), a);
    }
}
