//! A key-value store: `get`, `put`, `append`, `delete`, `cas` on string
//! values. A key never written (or deleted) reads as the empty string, as in
//! Porcupine's key-value model; a `get` that returned `nil` is read as "".
//! Checked per key by default; with a single partition the state is the
//! whole map.

use crate::history::Operation;
use crate::model::kv_value::{KvText, KvValue};
use crate::model::{Keyed, Model};
use crate::value::Value;

/// The key-value model.
#[derive(Debug, Clone, Copy, Default)]
pub struct KvModel;

/// Arguments carry their hash (see [`KvValue`]), computed once here.
#[derive(Debug, Clone, PartialEq)]
pub enum KvInput {
    Get {
        key: u32,
    },
    Put {
        key: u32,
        value: KvText,
    },
    Append {
        key: u32,
        value: KvText,
    },
    Delete {
        key: u32,
    },
    Cas {
        key: u32,
        expected: KvText,
        new: KvText,
    },
}

fn text(v: &Value) -> Result<KvText, String> {
    match v {
        Value::Nil => Ok(KvText::new("")),
        Value::Str(s) => Ok(KvText::new(s)),
        Value::Int(i) => Ok(KvText::new(&i.to_string())),
        Value::Bool(b) => Ok(KvText::new(&b.to_string())),
        other => Err(format!("expected a string value, found {other}")),
    }
}

impl Model for KvModel {
    type State = Keyed<KvValue>;
    type Input = KvInput;
    type Output = KvText;

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
            "put" | "write" => Ok(KvInput::Put {
                key,
                value: text(&op.input)?,
            }),
            "append" => Ok(KvInput::Append {
                key,
                value: text(&op.input)?,
            }),
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

    fn decode_output(&self, input: &KvInput, value: &Value) -> Result<KvText, String> {
        // Only a get's result means anything; writes echo their argument.
        match input {
            KvInput::Get { .. } => text(value),
            _ => Ok(KvText::new("")),
        }
    }

    fn step(
        &self,
        state: &Self::State,
        input: &KvInput,
        output: Option<&KvText>,
    ) -> Option<Self::State> {
        let empty = KvValue::default();
        let current = |key| state.get(key).unwrap_or(&empty);
        match input {
            KvInput::Get { key } => match output {
                Some(read) if !current(*key).equals_text(read) => None,
                _ => Some(state.clone()),
            },
            KvInput::Put { key, value } => Some(state.with(*key, KvValue::of(value))),
            KvInput::Append { key, value } => Some(state.with(*key, current(*key).append(value))),
            KvInput::Delete { key } => Some(state.with(*key, KvValue::default())),
            KvInput::Cas { key, expected, new } => {
                if current(*key).equals_text(expected) {
                    Some(state.with(*key, KvValue::of(new)))
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

    fn t(s: &str) -> KvText {
        KvText::new(s)
    }

    #[test]
    fn append_then_get() {
        let m = KvModel;
        let s = m.init();
        let s = m
            .step(
                &s,
                &KvInput::Append {
                    key: 1,
                    value: t("ab"),
                },
                None,
            )
            .unwrap();
        let s = m
            .step(
                &s,
                &KvInput::Append {
                    key: 1,
                    value: t("c"),
                },
                None,
            )
            .unwrap();
        assert!(
            m.step(&s, &KvInput::Get { key: 1 }, Some(&t("abc")))
                .is_some()
        );
        assert!(
            m.step(&s, &KvInput::Get { key: 1 }, Some(&t("ab")))
                .is_none()
        );
        assert!(m.step(&s, &KvInput::Get { key: 2 }, Some(&t(""))).is_some());
        let cas = KvInput::Cas {
            key: 1,
            expected: t("abc"),
            new: t("z"),
        };
        let z = m.step(&s, &cas, Some(&t(""))).unwrap();
        assert!(m.step(&z, &cas, Some(&t(""))).is_none());
        let s = m.step(&s, &KvInput::Delete { key: 1 }, None).unwrap();
        assert_eq!(s, m.init());
    }
}
