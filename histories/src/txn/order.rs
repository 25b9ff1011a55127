//! Process-order and real-time edges.
//!
//! Real time: T1 -> T2 when T1 committed before T2 was invoked. All such
//! pairs would be quadratic; the sweep below adds only edges from the
//! *frontier*, the committed transactions no later-invoked commit follows
//! yet. Every real-time pair stays reachable (T1 leaves the frontier only
//! when some T3 that T1 precedes completes, and T3 precedes T2 in turn), and
//! since frontier members overlap pairwise in time, there are at most as
//! many as there are concurrent processes.
//!
//! Failed transactions did not happen and get no edges; a transaction with
//! an unknown outcome may have taken effect at any time after its
//! invocation, so it has incoming edges only.

use std::collections::HashMap;

use crate::checker::hash::FastBuildHasher;
use crate::history::Status;
use crate::txn::graph::{EdgeList, PROCESS, REALTIME};
use crate::txn::history::TxnHistory;

/// Adds process-order edges and (if `realtime`) real-time edges to `edges`.
pub fn add_order_edges(history: &TxnHistory, realtime: bool, edges: &mut EdgeList) {
    let txns = &history.txns;
    let mut completions: Vec<(u64, u32)> = txns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.status == Status::Ok)
        .filter_map(|(i, t)| t.ret.map(|r| (r, i as u32)))
        .collect();
    completions.sort_unstable();
    let mut next_completion = 0;
    // (completion position, txn), committed and not yet followed.
    let mut frontier: Vec<(u64, u32)> = Vec::new();
    let mut last_of_process: HashMap<u64, u32, FastBuildHasher> = HashMap::default();
    let mut order: Vec<u32> = (0..txns.len() as u32).collect();
    order.sort_by_key(|&t| txns[t as usize].call);
    for t in order {
        let txn = &txns[t as usize];
        if txn.status == Status::Fail {
            continue;
        }
        while let Some(&(ret, done)) = completions.get(next_completion) {
            if ret >= txn.call {
                break;
            }
            let call = txns[done as usize].call;
            frontier.retain(|&(r, _)| r >= call);
            frontier.push((ret, done));
            next_completion += 1;
        }
        let before = last_of_process.insert(txn.process, t);
        let before = before.filter(|&b| txns[b as usize].status == Status::Ok);
        let mut linked = false;
        if realtime {
            for &(_, f) in &frontier {
                let same = Some(f) == before;
                linked |= same;
                edges.add(f, t, if same { REALTIME | PROCESS } else { REALTIME });
            }
        }
        if let Some(b) = before.filter(|_| !linked) {
            edges.add(b, t, PROCESS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::graph::Graph;
    use crate::txn::history::TxnMeta;

    #[test]
    fn frontier_keeps_real_time_reachable() {
        // p0: T0 [0,1]  T2 [4,5]
        // p1: T1 [2,3]       T3 [6,7]
        let mut h = TxnHistory::default();
        for (p, c, r) in [(0, 0, 1), (1, 2, 3), (0, 4, 5), (1, 6, 7)] {
            h.push_txn(TxnMeta::ok(p, c, r), &[]);
        }
        let mut e = EdgeList::default();
        add_order_edges(&h, true, &mut e);
        let g = Graph::build(4, e);
        assert_eq!(g.kinds_between(0, 1), REALTIME);
        assert_eq!(
            g.kinds_between(0, 2),
            PROCESS,
            "real time is implied through T1"
        );
        assert_eq!(g.kinds_between(1, 2), REALTIME);
        assert_eq!(g.kinds_between(2, 3), REALTIME);
        assert_eq!(g.kinds_between(1, 3), PROCESS);
    }
}
