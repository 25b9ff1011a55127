//! Internal consistency: within one transaction, a read of a key must agree
//! with what the transaction itself read and wrote to it before.

use crate::txn::anomaly::{AnomalyKind, Findings};
use crate::txn::explain::list_text;
use crate::txn::history::{Mop, Seen, TxnHistory};

/// Whether some key is used twice in `mops` (else nothing can disagree).
fn repeats_a_key(mops: &[Mop]) -> bool {
    mops.iter()
        .enumerate()
        .any(|(i, m)| mops[..i].iter().any(|n| n.key() == m.key()))
}

/// List-append: after its own appends a transaction must read them at the
/// end of the list, after what it read before (if it read before).
pub fn check_list(h: &TxnHistory, t: usize, found: &mut Findings) {
    let mops = h.mops(t);
    if !repeats_a_key(mops) {
        return;
    }
    // Per key: the whole list if known, else the suffix own appends made.
    let mut state: Vec<(u32, Option<Vec<i64>>, Vec<i64>)> = Vec::new();
    for m in mops {
        let key = m.key();
        let at = match state.iter().position(|s| s.0 == key) {
            Some(at) => at,
            None => {
                state.push((key, None, Vec::new()));
                state.len() - 1
            }
        };
        let (_, known, suffix) = &mut state[at];
        match *m {
            Mop::Append { value, .. } => match known {
                Some(list) => list.push(value),
                None => suffix.push(value),
            },
            Mop::Read { seen, .. } if seen != Seen::Unknown => {
                let read = h.list(seen);
                let expected = match known {
                    Some(list) => (list.as_slice() != read).then(|| list_text(list)),
                    None => (!read.ends_with(suffix))
                        .then(|| format!("a list ending in {}", list_text(suffix))),
                };
                if let Some(expected) = expected {
                    found.add(AnomalyKind::Internal, &[t], || {
                        format!(
                            "{} read key {} as {}, but its own earlier operations {} imply {expected}",
                            h.name(t),
                            h.keys[key as usize],
                            list_text(read),
                            h.mops_text(t)
                        )
                    });
                }
                *known = Some(read.to_vec());
                suffix.clear();
            }
            _ => {}
        }
    }
}

/// Registers: a read returns the transaction's own last write of the key,
/// or what it last read of it.
pub fn check_register(h: &TxnHistory, t: usize, found: &mut Findings) {
    let mops = h.mops(t);
    if !repeats_a_key(mops) {
        return;
    }
    let mut state: Vec<(u32, Seen)> = Vec::new();
    for m in mops {
        let key = m.key();
        let now = match *m {
            Mop::Write { value, .. } => Seen::Value(value),
            Mop::Read { seen, .. } if seen != Seen::Unknown => seen,
            _ => continue,
        };
        match state.iter_mut().find(|s| s.0 == key) {
            Some(s) => {
                if matches!(m, Mop::Read { .. }) && s.1 != now {
                    let expected = h.seen_text(s.1);
                    found.add(AnomalyKind::Internal, &[t], || {
                        format!(
                            "{} read key {} as {}, but its own earlier operations {} imply {expected}",
                            h.name(t),
                            h.keys[key as usize],
                            h.seen_text(now),
                            h.mops_text(t)
                        )
                    });
                }
                s.1 = now;
            }
            None => state.push((key, now)),
        }
    }
}
