//! Model states numbered by value, and a memo of transitions.
//!
//! The search revisits the same (state, op) pairs many times while it
//! backtracks; with states as small integers a step is one table lookup
//! after the first time, the seen-set stores 4 bytes per state, and the
//! model's own (possibly large) states are hashed once each.

use std::collections::HashMap;

use crate::checker::hash::FastBuildHasher;
use crate::model::Model;

/// Marks "the op cannot be applied in this state" in the memo.
const ILLEGAL: u32 = u32::MAX;

pub struct StateTable<'m, M: Model> {
    model: &'m M,
    states: Vec<M::State>,
    ids: HashMap<M::State, u32, FastBuildHasher>,
    memo: HashMap<u64, u32, FastBuildHasher>,
}

impl<'m, M: Model> StateTable<'m, M> {
    pub fn new(model: &'m M) -> Self {
        let mut table = StateTable {
            model,
            states: Vec::new(),
            ids: HashMap::default(),
            memo: HashMap::default(),
        };
        table.intern(model.init());
        table
    }

    /// The id of the initial state.
    pub const INIT: u32 = 0;

    fn intern(&mut self, state: M::State) -> u32 {
        if let Some(&id) = self.ids.get(&state) {
            return id;
        }
        let id = self.states.len() as u32;
        assert!(id < ILLEGAL, "more than 2^32 - 1 distinct model states");
        self.states.push(state.clone());
        self.ids.insert(state, id);
        id
    }

    /// The state after op number `op` (`input`/`output`) from `state`, or
    /// `None` if the model refuses it.
    #[inline]
    pub fn step(&mut self, state: u32, op: u32, input: &M::Input, output: Option<&M::Output>) -> Option<u32> {
        let key = (u64::from(state) << 32) | u64::from(op);
        if let Some(&next) = self.memo.get(&key) {
            return (next != ILLEGAL).then_some(next);
        }
        let next = match self.model.step(&self.states[state as usize], input, output) {
            Some(s) => self.intern(s),
            None => ILLEGAL,
        };
        self.memo.insert(key, next);
        (next != ILLEGAL).then_some(next)
    }

    /// Rough bytes held by the memo and the id table (states themselves are
    /// model-defined and not counted).
    pub fn bytes(&self) -> usize {
        self.memo.capacity() * 16 + self.ids.capacity() * (std::mem::size_of::<M::State>() + 8) + self.states.capacity() * std::mem::size_of::<M::State>()
    }
}
