//! Model states numbered by value, and a memo of transitions.
//!
//! With states as small integers the seen-set stores 4 bytes per state, and
//! the model's own (possibly large) states are hashed once each and stored
//! once. The memo of transitions pays when the search revisits (state, op)
//! pairs, as it does when the state is a whole map (about 70% of lookups hit
//! on the single-partition fixtures); when nearly every state is new (string
//! appends in every order: under 20% hits per key on the c50 fixtures) it is
//! pure overhead, so it switches itself off when it does not earn its keep.

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
    memo_on: bool,
    memo_lookups: u64,
    memo_hits: u64,
}

/// Memo lookups between looks at its hit rate.
const MEMO_REVIEW_INTERVAL: u64 = 1 << 14;
/// Below this hit rate (in percent) the memo is dropped.
const MEMO_MIN_HIT_PERCENT: u64 = 40;

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
            memo_on: true,
            memo_lookups: 0,
            memo_hits: 0,
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
        if !self.memo_on {
            return self
                .model
                .step(&self.states[state as usize], input, output)
                .map(|s| self.intern(s));
        }
        let key = (u64::from(state) << 32) | u64::from(op);
        self.memo_lookups += 1;
        if let Some(&next) = self.memo.get(&key) {
            self.memo_hits += 1;
            return (next != NONE).then_some(next);
        }
        let next = match self.model.step(&self.states[state as usize], input, output) {
            Some(s) => self.intern(s),
            None => NONE,
        };
        self.memo.insert(key, next);
        if self.memo_lookups.is_multiple_of(MEMO_REVIEW_INTERVAL)
            && self.memo_hits * 100 < self.memo_lookups * MEMO_MIN_HIT_PERCENT
        {
            self.memo_on = false;
            self.memo = HashMap::default();
        }
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
