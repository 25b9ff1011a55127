//! Generated list-append histories for benches and tests: simulated clients
//! whose transactions each take effect at one instant between invocation
//! and completion, so the history is strict serializable by construction.

use crate::synth::Rng;
use crate::txn::history::{Mop, TxnHistory, TxnMeta};

/// A client's transaction in flight.
struct Open {
    call: u64,
    /// Filled in when the transaction takes effect.
    mops: Option<Vec<Mop>>,
    /// Planned ops: (key, is_append).
    plan: Vec<(u32, bool)>,
}

/// `n_txns` transactions of 1 to 4 micro-ops (half appends, half reads)
/// over `n_keys` keys from `n_clients` concurrent clients.
pub fn list_append(seed: u64, n_txns: usize, n_keys: usize, n_clients: usize) -> TxnHistory {
    let mut rng = Rng::new(seed);
    let mut h = TxnHistory {
        keys: (0..n_keys).map(|k| k.to_string()).collect(),
        ..TxnHistory::default()
    };
    let mut state: Vec<Vec<i64>> = vec![Vec::new(); n_keys];
    let mut open: Vec<Option<Open>> = (0..n_clients).map(|_| None).collect();
    let (mut invoked, mut clock) = (0, 0u64);
    while invoked < n_txns || open.iter().any(Option::is_some) {
        let c = rng.below(n_clients as u64) as usize;
        match open[c].take() {
            None if invoked < n_txns => {
                invoked += 1;
                let len = 1 + rng.below(4) as usize;
                let plan = (0..len)
                    .map(|_| (rng.below(n_keys as u64) as u32, rng.chance(50)))
                    .collect();
                open[c] = Some(Open {
                    call: clock,
                    mops: None,
                    plan,
                });
            }
            None => continue,
            Some(mut txn) if txn.mops.is_none() => {
                txn.mops = Some(apply(&mut h, &mut state, &txn.plan));
                open[c] = Some(txn);
                continue;
            }
            Some(txn) => {
                let meta = TxnMeta::ok(c as u64, txn.call, clock);
                h.push_txn(meta, &txn.mops.expect("applied"));
            }
        }
        clock += 1;
    }
    h
}

/// Runs a transaction against the store at one instant.
fn apply(h: &mut TxnHistory, state: &mut [Vec<i64>], plan: &[(u32, bool)]) -> Vec<Mop> {
    plan.iter()
        .map(|&(key, append)| {
            let list = &mut state[key as usize];
            if append {
                let value = list.len() as i64 + 1;
                list.push(value);
                Mop::Append { key, value }
            } else {
                Mop::Read {
                    key,
                    seen: h.push_list(list),
                }
            }
        })
        .collect()
}
