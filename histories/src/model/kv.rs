//! A key-value store: `get`, `put`, `append`, `delete`, `cas` on string
//! values. A key never written (or deleted) reads as the empty string, as in
//! Porcupine's key-value model; a `get` that returned `nil` is read as "".
//! Checked per key by default; with a single partition the state is the
//! whole map.

use std::sync::Arc;

use crate::history::Operation;
use crate::model::{Keyed, Model};
use crate::value::Value;

/// The key-value model.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

/// Values are shared strings: states are cloned on every step and the
/// strings grow with appends, so a clone must not copy them.
#[derive(Debug, Clone, PartialEq)]
pub enum KvInput {
    Get { key: u32 },
    Put { key: u32, value: Arc<str> },
    Append { key: u32, value: Arc<str> },
    Delete { key: u32 },
    Cas { key: u32, expected: Arc<str>, new: Arc<str> },
}

fn text(v: &Value) -> Result<Arc<str>, String> {
    match v {
        Value::Nil => Ok(Arc::from("")),
        Value::Str(s) => Ok(Arc::from(s.as_str())),
        Value::Int(i) => Ok(Arc::from(i.to_string())),
        Value::Bool(b) => Ok(Arc::from(b.to_string())),
        other => Err(format!("expected a string value, found {other}")),
    }
}

impl Model for KvModel {
    type State = Keyed<Arc<str>>;
    type Input = KvInput;
    type Output = Arc<str>;

    fn name(&self) -> &'static str {
        "kv"
    }

    fn init(&self) -> Self::State {
        Keyed::default()
    }

    fn decode_input(&self, op: &Operation) -> Result<KvInput, String> {
        let key = op.key_id;
        if op.key.is_none() {
            return Err(format!("{} without a key", op.f));
        }
        match op.f.as_str() {
            "get" | "read" => Ok(KvInput::Get { key }),
            "put" | "write" => Ok(KvInput::Put { key, value: text(&op.input)? }),
            "append" => Ok(KvInput::Append { key, value: text(&op.input)? }),
            "delete" => Ok(KvInput::Delete { key }),
            "cas" => match &op.input {
                Value::List(pair) if pair.len() == 2 => Ok(KvInput::Cas {
                    key,
                    expected: text(&pair[0])?,
                    new: text(&pair[1])?,
                }),
                other => Err(format!("cas needs [expected new], found {other}")),
            },
            other => Err(format!("unknown operation {other:?} for the kv model")),
        }
    }

    fn decode_output(&self, _input: &KvInput, value: &Value) -> Result<Arc<str>, String> {
        text(value)
    }

    fn step(&self, state: &Self::State, input: &KvInput, output: Option<&Arc<str>>) -> Option<Self::State> {
        let current = |key| state.get(key).map_or("", |s: &Arc<str>| s);
        match input {
            KvInput::Get { key } => match output {
                Some(read) if **read != *current(*key) => None,
                _ => Some(state.clone()),
            },
            KvInput::Put { key, value } => Some(state.with(*key, value.clone())),
            KvInput::Append { key, value } => {
                if value.is_empty() {
                    return Some(state.clone());
                }
                let old = current(*key);
                let mut s = String::with_capacity(old.len() + value.len());
                s.push_str(old);
                s.push_str(value);
                Some(state.with(*key, Arc::from(s)))
            }
            KvInput::Delete { key } => Some(state.with(*key, Arc::from(""))),
            KvInput::Cas { key, expected, new } => {
                if *current(*key) == **expected {
                    Some(state.with(*key, new.clone()))
                } else if output.is_none() {
                    Some(state.clone())
                } else {
                    None
                }
            }
        }
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Get { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_then_get() {
        let m = KvModel;
        let s = m.init();
        let s = m.step(&s, &KvInput::Append { key: 1, value: "ab".into() }, None).unwrap();
        let s = m.step(&s, &KvInput::Append { key: 1, value: "c".into() }, None).unwrap();
        assert!(m.step(&s, &KvInput::Get { key: 1 }, Some(&"abc".into())).is_some());
        assert!(m.step(&s, &KvInput::Get { key: 1 }, Some(&"ab".into())).is_none());
        assert!(m.step(&s, &KvInput::Get { key: 2 }, Some(&"".into())).is_some());
        let s = m.step(&s, &KvInput::Delete { key: 1 }, None).unwrap();
        assert_eq!(s, m.init());
    }
}
