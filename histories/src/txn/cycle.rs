//! Cycles: strongly connected components first, then in each a shortest
//! cycle (breadth-first) for each anomaly class, in three layers: data
//! edges only, then with process order, then with real time. A cycle found
//! in a later layer must use that layer's edges, so it is a `-process` or
//! `-realtime` anomaly and never a repeat of a data cycle.

use std::collections::HashMap;
use std::collections::VecDeque;

use crate::checker::hash::FastBuildHasher;
use crate::txn::anomaly::{Anomaly, AnomalyKind, CycleStep, Findings};
use crate::txn::budget::Budget;
use crate::txn::explain::{Explain, cycle_sentence, edge_reason};
use crate::txn::graph::{ALL, DATA, EdgeKind, Graph, Kinds, PROCESS, REALTIME, RW, WR, WW};
use crate::txn::history::TxnHistory;
use crate::txn::scc::components;

/// First edges tried per class and component, spread over the component.
const TRIES_MAX: usize = 32;
/// States one class search may visit: anomalies are short cycles, and a
/// fruitless search in a component of a million transactions must not cost
/// a pass over all of it. The one search that guarantees a cycle per
/// component is not bounded.
const STATES_MAX: usize = 4096;

/// What a search looks for: a cycle that starts with a `first` edge,
/// continues over `allowed` edges, uses a `need` edge somewhere (if set),
/// and a second rw edge (if `extra_rw`).
#[derive(Debug, Clone, Copy)]
struct Spec {
    first: Kinds,
    allowed: Kinds,
    need: Kinds,
    extra_rw: bool,
}

/// The searches of one layer: G0, G1c, G-single, G2-item shapes.
fn specs(extra: Kinds, need: Kinds) -> [Spec; 4] {
    let spec = |first, allowed, extra_rw| Spec {
        first,
        allowed: allowed | extra,
        need,
        extra_rw,
    };
    [
        spec(WW, WW, false),
        spec(WR, WW | WR, false),
        spec(RW, WW | WR, false),
        spec(RW, DATA, true),
    ]
}

/// A cycle: each node with the label of the edge leaving it.
type Cycle = Vec<(u32, EdgeKind)>;

/// Finds cycles and adds them to `found`. Returns false if the budget ran
/// out first.
pub fn find_cycles(
    h: &TxnHistory,
    graph: &Graph,
    data: &dyn Explain,
    found: &mut Findings,
    budget: &mut Budget,
) -> bool {
    let Some(all) = components(graph, ALL, &mut || budget.expired()) else {
        return false;
    };
    if all.members.is_empty() {
        return true;
    }
    let mut any = false;
    for (mask, extra, need) in [
        (DATA, 0, 0),
        (DATA | PROCESS, PROCESS, PROCESS),
        (ALL, PROCESS | REALTIME, REALTIME),
    ] {
        let comps = if mask == ALL {
            None
        } else {
            match components(graph, mask, &mut || budget.expired()) {
                Some(c) => Some(c),
                None => return false,
            }
        };
        let comps = comps.as_ref().unwrap_or(&all);
        for (c, members) in comps.members.iter().enumerate() {
            let search = Search {
                graph,
                of: &comps.of,
                comp: c as u32,
                states_max: STATES_MAX,
                tries_max: TRIES_MAX,
            };
            let mut cycles = search.per_class(members, &specs(extra, need), budget);
            if cycles.is_empty() && !any {
                let generic = Spec {
                    first: mask,
                    allowed: mask,
                    need: 0,
                    extra_rw: false,
                };
                // Inside a component every edge closes a cycle, so the
                // first try succeeds.
                let unbounded = Search {
                    states_max: usize::MAX,
                    tries_max: 1,
                    ..search
                };
                cycles.extend(unbounded.shortest(members, generic, budget));
            }
            for cycle in cycles {
                any = true;
                found.add_cycle(describe(h, data, &cycle));
            }
            if budget.stopped.is_some() {
                return false;
            }
        }
    }
    true
}

/// Breadth-first searches inside one component.
#[derive(Clone, Copy)]
struct Search<'g> {
    graph: &'g Graph,
    of: &'g [u32],
    comp: u32,
    states_max: usize,
    tries_max: usize,
}

impl Search<'_> {
    /// The shortest cycle of each class the specs find.
    fn per_class(&self, members: &[u32], specs: &[Spec], budget: &mut Budget) -> Vec<Cycle> {
        let mut best: HashMap<AnomalyKind, Cycle> = HashMap::new();
        for &spec in specs {
            if let Some(cycle) = self.shortest(members, spec, budget) {
                let labels: Vec<EdgeKind> = cycle.iter().map(|c| c.1).collect();
                let kind = AnomalyKind::of_cycle(&labels);
                if best.get(&kind).is_none_or(|b| b.len() > cycle.len()) {
                    best.insert(kind, cycle);
                }
            }
        }
        let mut out: Vec<(AnomalyKind, Cycle)> = best.into_iter().collect();
        out.sort_by_key(|(k, _)| *k);
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// The shortest cycle matching `spec` over up to `tries_max` first edges.
    fn shortest(&self, members: &[u32], spec: Spec, budget: &mut Budget) -> Option<Cycle> {
        let mut best: Option<Cycle> = None;
        let mut tries = 0;
        let step = (members.len() / self.tries_max).max(1);
        for &a in members.iter().step_by(step) {
            for (b, k) in self.graph.out(a) {
                if k & spec.first == 0 || self.of[b as usize] != self.comp {
                    continue;
                }
                let label = EdgeKind::preferred(k & spec.first).expect("kinds meet first");
                if let Some(path) = self.path(b, a, label, spec, budget) {
                    let mut cycle = vec![(a, label)];
                    cycle.extend(path);
                    if best.as_ref().is_none_or(|c| c.len() > cycle.len()) {
                        best = Some(cycle);
                    }
                }
                tries += 1;
                if tries == self.tries_max || budget.stopped.is_some() {
                    return best;
                }
            }
        }
        best
    }

    /// A shortest path `from` ->* `to` that completes `spec` after a first
    /// edge labelled `first`, as (node, label of its outgoing edge).
    fn path(
        &self,
        from: u32,
        to: u32,
        first: EdgeKind,
        spec: Spec,
        budget: &mut Budget,
    ) -> Option<Cycle> {
        const RW_DONE: u8 = 1;
        const NEED_DONE: u8 = 2;
        let mut start = 0;
        if !spec.extra_rw {
            start |= RW_DONE;
        }
        if spec.need == 0 || first.bit() & spec.need != 0 {
            start |= NEED_DONE;
        }
        let mut parent: HashMap<(u32, u8), (u32, u8, EdgeKind), FastBuildHasher> =
            HashMap::default();
        let mut queue = VecDeque::from([(from, start)]);
        let mut reached = None;
        while let Some((u, flags)) = queue.pop_front() {
            if u == to && flags == RW_DONE | NEED_DONE {
                reached = Some((u, flags));
                break;
            }
            if u == to {
                continue;
            }
            if budget.expired() || parent.len() > self.states_max {
                return None;
            }
            for (v, k) in self.graph.out(u) {
                let k = k & spec.allowed;
                if k == 0 || self.of[v as usize] != self.comp {
                    continue;
                }
                let (label, gained) = if flags & NEED_DONE == 0 && k & spec.need != 0 {
                    (
                        EdgeKind::preferred(k & spec.need).expect("need met"),
                        NEED_DONE,
                    )
                } else if flags & RW_DONE == 0 && k & RW != 0 {
                    (EdgeKind::Rw, RW_DONE)
                } else {
                    (EdgeKind::preferred(k).expect("kinds allowed"), 0)
                };
                let next = (v, flags | gained);
                if next != (from, start) && !parent.contains_key(&next) {
                    parent.insert(next, (u, flags, label));
                    queue.push_back(next);
                }
            }
        }
        let mut at = reached?;
        let mut path = Vec::new();
        while at != (from, start) {
            let (u, flags, label) = parent[&at];
            path.push((u, label));
            at = (u, flags);
        }
        path.reverse();
        Some(path)
    }
}

/// A cycle as an anomaly, with the reason for each edge.
fn describe(h: &TxnHistory, data: &dyn Explain, cycle: &Cycle) -> Anomaly {
    let labels: Vec<EdgeKind> = cycle.iter().map(|c| c.1).collect();
    let kind = AnomalyKind::of_cycle(&labels);
    let steps: Vec<CycleStep> = cycle
        .iter()
        .enumerate()
        .map(|(i, &(from, label))| {
            let to = cycle[(i + 1) % cycle.len()].0;
            CycleStep {
                from: from as usize,
                to: to as usize,
                kind: label,
                why: edge_reason(h, data, from as usize, to as usize, label),
            }
        })
        .collect();
    Anomaly {
        kind,
        txns: cycle.iter().map(|c| c.0 as usize).collect(),
        explanation: cycle_sentence(kind, &steps),
        steps,
    }
}
