//! A small sorted map from key number to value, the state of the built-in
//! models. Per-key partitions hold one entry; a single partition over many
//! keys holds them all. Keys at their default value are left out, so "never
//! written" and "written back to the default" are the same state.

/// State of a keyed model: `(key_id, value)` sorted by key, defaults omitted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Keyed<V> {
    entries: Vec<(u32, V)>,
}

impl<V: Clone + PartialEq + Default> Keyed<V> {
    /// The value of `key`, `None` meaning the default.
    pub fn get(&self, key: u32) -> Option<&V> {
        self.entries
            .binary_search_by_key(&key, |(k, _)| *k)
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// A copy with `key` set to `value`.
    pub fn with(&self, key: u32, value: V) -> Self {
        let mut entries = self.entries.clone();
        match entries.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) if value == V::default() => {
                entries.remove(i);
            }
            Ok(i) => entries[i].1 = value,
            Err(_) if value == V::default() => {}
            Err(i) => entries.insert(i, (key, value)),
        }
        Keyed { entries }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_omitted() {
        let a: Keyed<i64> = Keyed::default();
        let b = a.with(3, 7).with(1, 2);
        assert_eq!(b.get(3), Some(&7));
        assert_eq!(b.get(2), None);
        assert_eq!(b.with(3, 0).with(1, 0), a);
    }
}
