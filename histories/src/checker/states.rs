//! Model states numbered by value, and a memo of transitions.
//!
//! The search revisits the same (state, op) pairs many times while it
//! backtracks; with states as small integers a step is one table lookup
//! after the first time, the seen-set stores 4 bytes per state, and the
//! model's own (possibly large) states are hashed once each and stored once.

use std::collections::HashMap;
use std::hash::BuildHasher;

use crate::checker::hash::FastBuildHasher;
use crate::model::Model;

/// Marks "no state": an op the model refuses (in the memo), the end of a
/// hash chain.
const NONE: u32 = u32::MAX;

pub struct StateTable<'m, M: Model> {
    model: &'m M,
    states: Vec<M::State>,
    /// State hash → the last state id with that hash; `same_hash[id]` links
    /// to the previous one. Keeping hashes rather than states as keys stores
    /// every state once and never rehashes a state when the table grows.
    by_hash: HashMap<u64, u32, FastBuildHasher>,
    same_hash: Vec<u32>,
    memo: HashMap<u64, u32, FastBuildHasher>,
}

impl<'m, M: Model> StateTable<'m, M> {
    /// The id of the initial state.
    pub const INIT: u32 = 0;

    pub fn new(model: &'m M) -> Self {
        let mut table = StateTable {
            model,
            states: Vec::new(),
            by_hash: HashMap::default(),
            same_hash: Vec::new(),
            memo: HashMap::default(),
        };
        table.intern(model.init());
        table
    }

    fn intern(&mut self, state: M::State) -> u32 {
        let hash = FastBuildHasher.hash_one(&state);
        let head = self.by_hash.get(&hash).copied().unwrap_or(NONE);
        let mut id = head;
        while id != NONE {
            if self.states[id as usize] == state {
                return id;
            }
            id = self.same_hash[id as usize];
        }
        let id = self.states.len() as u32;
        assert!(id < NONE, "more than 2^32 - 1 distinct model states");
        self.states.push(state);
        self.same_hash.push(head);
        self.by_hash.insert(hash, id);
        id
    }

    /// The state after op number `op` (`input`/`output`) from `state`, or
    /// `None` if the model refuses it.
    #[inline]
    pub fn step(
        &mut self,
        state: u32,
        op: u32,
        input: &M::Input,
        output: Option<&M::Output>,
    ) -> Option<u32> {
        let key = (u64::from(state) << 32) | u64::from(op);
        if let Some(&next) = self.memo.get(&key) {
            return (next != NONE).then_some(next);
        }
        let next = match self.model.step(&self.states[state as usize], input, output) {
            Some(s) => self.intern(s),
            None => NONE,
        };
        self.memo.insert(key, next);
        (next != NONE).then_some(next)
    }

    /// Bytes held by the tables (a model state counts its inline size; what
    /// it points to is the model's business).
    pub fn bytes(&self) -> usize {
        self.memo.capacity() * 16
            + self.by_hash.capacity() * 16
            + self.same_hash.capacity() * 4
            + self.states.capacity() * std::mem::size_of::<M::State>()
    }
}
