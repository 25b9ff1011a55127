//! Wing–Gong linearizability search over one partition, in Lowe's form.
//!
//! Calls and returns sit in a doubly linked list in real-time order. The
//! search walks the list: at a call it tries to linearize that op next (the
//! model accepts it and the resulting (set, state) configuration is new),
//! then *lifts* the op's call and return out of the list and starts over from
//! the head; at a return it has hit an op that must already be linearized, so
//! it backtracks: pops the last op, *unlifts* it and tries the entry after
//! it. An op without a return (unknown outcome) never blocks anything, so the
//! history is linearizable once every return is gone.

use crate::checker::hash::mix64;
use crate::checker::linearized::Linearized;
use crate::checker::seen::SeenSet;
use crate::checker::states::StateTable;
use crate::checker::stop::{Stop, StopReason};
use crate::model::Model;

/// One op of the partition, as the search sees it.
pub struct SearchOp<'a, M: Model> {
    /// Index into the caller's operation list (reported back).
    pub id: usize,
    /// Real-time position of the call.
    pub call: usize,
    /// Real-time position of the return; `None` = never returns.
    pub ret: Option<usize>,
    pub input: &'a M::Input,
    pub output: Option<&'a M::Output>,
}

/// What the search found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchVerdict {
    Linearizable,
    Illegal,
    Unknown(StopReason),
}

pub struct SearchOutcome {
    pub verdict: SearchVerdict,
    /// The longest sequence of ops linearized at once (caller's ids, in
    /// linearization order). Filled when the verdict is `Illegal`.
    pub longest: Vec<usize>,
    /// Ops that could not be placed after `longest`.
    pub unplaceable: Vec<usize>,
    /// Configurations explored.
    pub explored: u64,
}

const HEAD: usize = 0;
/// How many loop turns between looks at the clock and the cancel flag.
const STOP_CHECK_INTERVAL: u32 = 1 << 10;

/// The call/return list. Node 0 is the head sentinel and node `n + 1` the
/// tail sentinel; node `1..=n` are entries in real-time order.
struct Entries {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Local op number of each entry.
    op: Vec<u32>,
    /// For a call entry, its return entry (0 if the op never returns); for a
    /// return entry, `RETURN`.
    partner: Vec<u32>,
}

const RETURN: u32 = u32::MAX;

impl Entries {
    fn build<M: Model>(ops: &[SearchOp<'_, M>]) -> Entries {
        let mut events: Vec<(usize, u32, bool)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.call, i as u32, true));
            if let Some(r) = op.ret {
                debug_assert!(r > op.call, "a return precedes its call");
                events.push((r, i as u32, false));
            }
        }
        events.sort_unstable_by_key(|e| e.0);
        let n = events.len();
        let mut e = Entries {
            next: (1..=n as u32 + 1).chain([0]).collect(),
            prev: [0].into_iter().chain(0..=n as u32).collect(),
            op: vec![0; n + 2],
            partner: vec![0; n + 2],
        };
        let mut call_node = vec![0u32; ops.len()];
        for (k, &(_, op, is_call)) in events.iter().enumerate() {
            let node = k as u32 + 1;
            e.op[node as usize] = op;
            if is_call {
                call_node[op as usize] = node;
            } else {
                e.partner[node as usize] = RETURN;
                e.partner[call_node[op as usize] as usize] = node;
            }
        }
        e
    }

    #[inline]
    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p as usize] = n;
        self.prev[n as usize] = p;
    }

    #[inline]
    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p as usize] = node as u32;
        self.prev[n as usize] = node as u32;
    }

    /// Takes a call and its return out of the list.
    #[inline]
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.partner[call] as usize;
        if ret != 0 {
            self.unlink(ret);
        }
    }

    /// Puts them back, in the reverse order of `lift`.
    #[inline]
    fn unlift(&mut self, call: usize) {
        let ret = self.partner[call] as usize;
        if ret != 0 {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// The search over one partition, resumable: [`Search::run`] works for a
/// bounded number of steps, so a pool can interleave partitions and find a
/// quickly refutable one without first finishing a hard one.
pub struct Search<'a, 'm, M: Model> {
    ops: &'a [SearchOp<'a, M>],
    entries: Entries,
    /// The linearized ops, by bit (see `bit_of`).
    set: Linearized,
    /// Each op's bit in `set`: ops with a return first, in call order, so
    /// the set is a run of ones and a short window (see [`Linearized`]).
    bit_of: Vec<u32>,
    /// Random-looking bits per op; the set's hash is the XOR over members.
    op_hash: Vec<u64>,
    seen: SeenSet,
    states: StateTable<'m, M>,
    state: u32,
    /// Linearized calls with the state before each.
    stack: Vec<(u32, u32)>,
    /// Return entries still in the list.
    remaining: usize,
    best: Best,
    explored: u64,
    node: usize,
    /// Table bytes last added to the shared memory count.
    reported_bytes: usize,
}

impl<'a, 'm, M: Model> Search<'a, 'm, M> {
    pub fn new(model: &'m M, ops: &'a [SearchOp<'a, M>]) -> Self {
        let entries = Entries::build(ops);
        let returning = ops.iter().filter(|o| o.ret.is_some()).count();
        let set = Linearized::new(returning, ops.len() - returning);
        let (mut next_ret, mut next_open) = (0, set.open_base());
        let bit_of = ops
            .iter()
            .map(|o| {
                let counter = if o.ret.is_some() {
                    &mut next_ret
                } else {
                    &mut next_open
                };
                *counter += 1;
                (*counter - 1) as u32
            })
            .collect();
        let node = entries.next[HEAD] as usize;
        Search {
            ops,
            entries,
            set,
            bit_of,
            op_hash: (0..ops.len() as u64).map(mix64).collect(),
            seen: SeenSet::new(),
            states: StateTable::new(model),
            state: StateTable::<M>::INIT,
            stack: Vec::with_capacity(ops.len()),
            remaining: returning,
            best: Best::default(),
            explored: 0,
            node,
            reported_bytes: 0,
        }
    }

    /// Searches for at most about `budget` steps. `None`: not finished yet.
    pub fn run(&mut self, budget: u64, stop: &Stop<'_>) -> Option<SearchOutcome> {
        let mut left = budget;
        let verdict = loop {
            if self.remaining == 0 {
                break SearchVerdict::Linearizable;
            }
            if left.is_multiple_of(u64::from(STOP_CHECK_INTERVAL)) {
                let bytes = self.seen.bytes() + self.states.bytes();
                let reason = stop.check(self.reported_bytes, bytes);
                self.reported_bytes = bytes;
                if let Some(reason) = reason {
                    break SearchVerdict::Unknown(reason);
                }
                if left == 0 {
                    return None;
                }
            }
            left -= 1;
            if let Some(verdict) = self.turn() {
                break verdict;
            }
        };
        stop.release(self.reported_bytes);
        self.reported_bytes = 0;
        let ids = |ops: &[u32]| ops.iter().map(|&op| self.ops[op as usize].id).collect();
        let (longest, unplaceable) = if verdict == SearchVerdict::Illegal {
            (ids(&self.best.ops), ids(&self.best.stuck))
        } else {
            (Vec::new(), Vec::new())
        };
        Some(SearchOutcome {
            verdict,
            longest,
            unplaceable,
            explored: self.explored,
        })
    }

    /// One step at the current list entry; `Some` when the search is over.
    #[inline]
    fn turn(&mut self) -> Option<SearchVerdict> {
        let node = self.node;
        let partner = self.entries.partner[node];
        if partner != RETURN {
            let op = self.entries.op[node] as usize;
            let o = &self.ops[op];
            if let Some(next_state) = self.states.step(self.state, op as u32, o.input, o.output) {
                let bit = self.bit_of[op] as usize;
                self.set.insert(bit, self.op_hash[op]);
                let key_hash = self.set.hash() ^ mix64(u64::from(next_state));
                if self.seen.insert(key_hash, &self.set, next_state) {
                    self.explored += 1;
                    self.stack.push((node as u32, self.state));
                    self.state = next_state;
                    self.entries.lift(node);
                    if partner != 0 {
                        self.remaining -= 1;
                    }
                    self.node = self.entries.next[HEAD] as usize;
                    return None;
                }
                self.set.remove(bit, self.op_hash[op]);
            }
            self.node = self.entries.next[node] as usize;
        } else {
            // A return: its op must be linearized before anything later, and
            // every candidate before it failed, so undo the last choice.
            if self.stack.len() > self.best.len {
                self.best.record(
                    &self.stack,
                    &self.entries,
                    self.ops,
                    &mut self.states,
                    self.state,
                    node,
                );
            }
            let Some((call, prev_state)) = self.stack.pop() else {
                return Some(SearchVerdict::Illegal);
            };
            let call = call as usize;
            let op = self.entries.op[call] as usize;
            self.set.remove(self.bit_of[op] as usize, self.op_hash[op]);
            self.state = prev_state;
            self.entries.unlift(call);
            if self.entries.partner[call] != 0 {
                self.remaining += 1;
            }
            self.node = self.entries.next[call] as usize;
        }
        None
    }
}

/// The deepest point the search reached, for the report.
#[derive(Default)]
struct Best {
    len: usize,
    ops: Vec<u32>,
    stuck: Vec<u32>,
}

impl Best {
    /// Called when the search is about to backtrack from `ret_node` at a
    /// depth not reached before. Recording only here (not on every push)
    /// keeps the cost off the common path of a linearizable history.
    fn record<M: Model>(
        &mut self,
        stack: &[(u32, u32)],
        entries: &Entries,
        ops: &[SearchOp<'_, M>],
        states: &mut StateTable<'_, M>,
        state: u32,
        ret_node: usize,
    ) {
        self.len = stack.len();
        self.ops = stack
            .iter()
            .map(|&(call, _)| entries.op[call as usize])
            .collect();
        self.stuck.clear();
        // Every call before the blocking return was a candidate; those the
        // model refuses are the ops that cannot be placed here.
        let mut node = entries.next[HEAD] as usize;
        while node != ret_node {
            if entries.partner[node] != RETURN {
                let op = entries.op[node];
                let o = &ops[op as usize];
                if states.step(state, op, o.input, o.output).is_none() {
                    self.stuck.push(op);
                }
            }
            node = entries.next[node] as usize;
        }
        let blocking = entries.op[ret_node];
        if !self.stuck.contains(&blocking) {
            self.stuck.push(blocking);
        }
    }
}
