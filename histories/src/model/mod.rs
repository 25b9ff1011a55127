//! Sequential specifications the checker tests histories against.
//!
//! A model is a pure state machine: `step(state, input, output)` says whether
//! an operation with that input could have returned that output in that state,
//! and what the state is afterwards. The checker never mutates states; it
//! clones, hashes and compares them, so keep them small.

mod keyed;
mod kv;
mod kv_value;
mod register;

pub use keyed::Keyed;
pub use kv::{KvInput, KvModel};
pub use kv_value::{KvText, KvValue};
pub use register::{RegisterInput, RegisterModel};

use std::hash::Hash;

use crate::history::Operation;
use crate::value::Value;

/// A sequential specification. Implement it to check histories of your own
/// data type.
///
/// ```
/// use d_engine_histories::{Model, Operation, Value};
///
/// /// A counter: `add n` (result ignored) and `read` (result = the sum).
/// struct Counter;
///
/// enum Op { Add(i64), Read }
///
/// impl Model for Counter {
///     type State = i64;
///     type Input = Op;
///     type Output = i64;
///     fn name(&self) -> &'static str { "counter" }
///     fn init(&self) -> i64 { 0 }
///     fn decode_input(&self, op: &Operation) -> Result<Op, String> {
///         match op.f.as_str() {
///             "add" => op.input.as_int().map(Op::Add).ok_or_else(|| "add needs an integer".into()),
///             "read" => Ok(Op::Read),
///             other => Err(format!("unknown operation {other}")),
///         }
///     }
///     fn decode_output(&self, _input: &Op, value: &Value) -> Result<i64, String> {
///         Ok(value.as_int().unwrap_or(0))
///     }
///     fn step(&self, state: &i64, input: &Op, output: Option<&i64>) -> Option<i64> {
///         match input {
///             Op::Add(n) => Some(state + n),
///             Op::Read => (output.is_none() || output == Some(state)).then_some(*state),
///         }
///     }
///     fn is_read_only(&self, input: &Op) -> bool { matches!(input, Op::Read) }
/// }
/// ```
pub trait Model: Sync {
    /// The state. `Hash` and `Eq` are how the checker recognises a state it
    /// has seen; two states that are `Eq` must behave the same.
    type State: Clone + Eq + Hash + Send;
    type Input: Send + Sync;
    type Output: Send + Sync;

    /// Short name for verdicts and reports.
    fn name(&self) -> &'static str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Reads an operation's argument. An error (an unknown `f`, a value of the
    /// wrong shape) makes the whole history unreadable.
    fn decode_input(&self, op: &Operation) -> Result<Self::Input, String>;

    /// Reads the result of an `ok` operation.
    fn decode_output(&self, input: &Self::Input, value: &Value) -> Result<Self::Output, String>;

    /// Applies `input` to `state`. `output` is `None` when the outcome is
    /// unknown (`info`): then any result is acceptable, and `step` should
    /// return `Some` unless the op cannot happen at all in `state`.
    /// Returns `None` if the op cannot return `output` in `state`.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Which independent sub-history the op belongs to (P-compositionality).
    /// Ops in different partitions are checked apart. The default is one
    /// partition per `key`, Jepsen's "independent" convention; return a
    /// constant if ops of different keys interact.
    fn partition(&self, op: &Operation, _input: &Self::Input) -> u64 {
        u64::from(op.key_id)
    }

    /// True if the op never changes the state (when `step` accepts it, it
    /// returns a state equal to the one it was given). Read-only ops with an
    /// unknown outcome constrain nothing, so the checker drops them, and the
    /// checker skips hashing the state after a read.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }
}

/// The built-in models, by their command-line names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Register,
    CasRegister,
    Kv,
}

impl ModelKind {
    pub fn parse(name: &str) -> Option<ModelKind> {
        Some(match name {
            "register" => ModelKind::Register,
            "cas-register" => ModelKind::CasRegister,
            "kv" => ModelKind::Kv,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
        }
    }

    /// Picks a model from the operation names a history uses.
    pub fn guess(ops: &[Operation]) -> ModelKind {
        let uses = |name: &str| ops.iter().any(|op| op.f == name);
        if ["get", "put", "append", "delete"].iter().any(|f| uses(f)) {
            ModelKind::Kv
        } else if uses("cas") {
            ModelKind::CasRegister
        } else {
            ModelKind::Register
        }
    }
}
