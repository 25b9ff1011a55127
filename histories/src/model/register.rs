//! Registers: `read` / `write`, and with `cas` enabled compare-and-set
//! (value `[expected new]`). A cas that found another value completes as
//! `fail` in a well-formed history, so an `ok` cas must have matched.

use crate::history::Operation;
use crate::model::{Keyed, Model};
use crate::value::Value;

/// The register models. Ops with a `key` are independent registers.
#[derive(Debug, Clone, Copy)]
pub struct RegisterModel {
    cas: bool,
}

impl RegisterModel {
    /// Read / write.
    pub fn register() -> Self {
        RegisterModel { cas: false }
    }

    /// Read / write / cas.
    pub fn cas_register() -> Self {
        RegisterModel { cas: true }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RegisterInput {
    Read {
        key: u32,
    },
    Write {
        key: u32,
        value: Value,
    },
    Cas {
        key: u32,
        expected: Value,
        new: Value,
    },
}

impl Model for RegisterModel {
    type State = Keyed<Value>;
    type Input = RegisterInput;
    type Output = Value;

    fn name(&self) -> &'static str {
        if self.cas { "cas-register" } else { "register" }
    }

    fn init(&self) -> Keyed<Value> {
        Keyed::default()
    }

    fn decode_input(&self, op: &Operation) -> Result<RegisterInput, String> {
        let key = op.key_id;
        match op.f.as_str() {
            "read" | "r" => Ok(RegisterInput::Read { key }),
            "write" | "w" => Ok(RegisterInput::Write {
                key,
                value: op.input.clone(),
            }),
            "cas" if self.cas => match &op.input {
                Value::List(pair) if pair.len() == 2 => Ok(RegisterInput::Cas {
                    key,
                    expected: pair[0].clone(),
                    new: pair[1].clone(),
                }),
                other => Err(format!("cas needs [expected new], found {other}")),
            },
            other => Err(format!(
                "unknown operation {other:?} for the {} model",
                self.name()
            )),
        }
    }

    fn decode_output(&self, _input: &RegisterInput, value: &Value) -> Result<Value, String> {
        Ok(value.clone())
    }

    fn step(
        &self,
        state: &Keyed<Value>,
        input: &RegisterInput,
        output: Option<&Value>,
    ) -> Option<Keyed<Value>> {
        let current = |key| state.get(key).unwrap_or(&Value::Nil);
        match input {
            RegisterInput::Read { key } => match output {
                Some(read) if read != current(*key) => None,
                _ => Some(state.clone()),
            },
            RegisterInput::Write { key, value } => Some(state.with(*key, value.clone())),
            RegisterInput::Cas { key, expected, new } => {
                if current(*key) == expected {
                    Some(state.with(*key, new.clone()))
                } else if output.is_none() {
                    // Unknown outcome: the cas may simply have failed.
                    Some(state.clone())
                } else {
                    None
                }
            }
        }
    }

    fn is_read_only(&self, input: &RegisterInput) -> bool {
        matches!(input, RegisterInput::Read { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics() {
        let m = RegisterModel::cas_register();
        let s0 = m.init();
        let w = RegisterInput::Write {
            key: 0,
            value: 1.into(),
        };
        let s1 = m.step(&s0, &w, None).unwrap();
        let cas = RegisterInput::Cas {
            key: 0,
            expected: 1.into(),
            new: 4.into(),
        };
        let s2 = m.step(&s1, &cas, Some(&Value::Nil)).unwrap();
        assert!(m.step(&s2, &cas, Some(&Value::Nil)).is_none());
        assert_eq!(m.step(&s2, &cas, None), Some(s2.clone()));
        let read = RegisterInput::Read { key: 0 };
        assert!(m.step(&s2, &read, Some(&4.into())).is_some());
        assert!(m.step(&s2, &read, Some(&1.into())).is_none());
        assert!(m.step(&s0, &read, Some(&Value::Nil)).is_some());
    }
}
