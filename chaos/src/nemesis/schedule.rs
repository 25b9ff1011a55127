//! The seeded fault schedule: a pure function of (seed, nodes, families,
//! duration, timing).

use std::time::Duration;

use serde::Serialize;

use super::{Family, Fault, MembershipOp, Partition, Step, Targets, ring_reach};
use crate::prng::Rng;

/// Quiet gaps and fault windows, in milliseconds (inclusive ranges).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub gap_ms: (u64, u64),
    pub fault_ms: (u64, u64),
}

impl Timing {
    /// Windows long enough for elections to happen inside them (etcd's
    /// default election timeout is 1 s), short enough for several per run.
    pub fn for_duration(total: Duration) -> Timing {
        if total < Duration::from_secs(30) {
            Timing {
                gap_ms: (500, 1500),
                fault_ms: (1500, 3500),
            }
        } else {
            Timing {
                gap_ms: (1000, 3000),
                fault_ms: (2000, 6000),
            }
        }
    }
}

/// The faults of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub seed: u64,
    pub nodes: usize,
    pub steps: Vec<Step>,
}

impl Schedule {
    /// Same arguments, same schedule. The last window ends before `total`.
    pub fn generate(
        seed: u64,
        nodes: usize,
        families: &[Family],
        total: Duration,
        timing: &Timing,
    ) -> Schedule {
        let mut rng = Rng::new(seed);
        let total_ms = total.as_millis() as u64;
        let mut steps = Vec::new();
        let mut t = 0;
        if !families.is_empty() && nodes > 0 {
            loop {
                t += rng.range(timing.gap_ms.0, timing.gap_ms.1);
                let duration_ms = rng.range(timing.fault_ms.0, timing.fault_ms.1);
                if t + duration_ms > total_ms {
                    break;
                }
                let family = *rng.pick(families);
                steps.push(Step {
                    at_ms: t,
                    duration_ms,
                    fault: fault(&mut rng, family, nodes),
                });
                t += duration_ms;
            }
        }
        Schedule { seed, nodes, steps }
    }

    /// Counts of steps by `kind`.
    pub fn counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut out = std::collections::BTreeMap::new();
        for s in &self.steps {
            *out.entry(s.fault.kind()).or_default() += 1;
        }
        out
    }
}

fn shuffled(rng: &mut Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut v);
    v
}

fn targets(rng: &mut Rng, n: usize) -> Targets {
    let roll = rng.below(100);
    let order = shuffled(rng, n);
    let minority = (n - 1) / 2;
    match roll {
        0..35 => Targets::One(order[0]),
        35..70 => Targets::Leader,
        70..90 if minority > 0 => Targets::Minority(sorted(&order[..minority])),
        _ => Targets::Majority(sorted(&order[..n / 2 + 1])),
    }
}

fn sorted(nodes: &[usize]) -> Vec<usize> {
    let mut v = nodes.to_vec();
    v.sort_unstable();
    v
}

fn partition(rng: &mut Rng, n: usize) -> Partition {
    let mut shapes = vec!["isolate-one", "isolate-leader", "halves", "one-way"];
    if n >= 3 {
        shapes.push("bridge");
    }
    if ring_reach(n) * 2 + 1 < n {
        shapes.push("majorities-ring");
    }
    let order = shuffled(rng, n);
    match *rng.pick(&shapes) {
        "isolate-one" => Partition::IsolateOne(order[0]),
        "isolate-leader" => Partition::IsolateLeader,
        "halves" => Partition::Halves(order),
        "bridge" => Partition::Bridge(order),
        "majorities-ring" => Partition::MajoritiesRing(order),
        _ => Partition::OneWay {
            node: order[0],
            inbound: rng.chance(0.5),
        },
    }
}

fn fault(rng: &mut Rng, family: Family, n: usize) -> Fault {
    match family {
        Family::Kill => Fault::Kill(targets(rng, n)),
        Family::Restart => Fault::GracefulRestart(targets(rng, n)),
        Family::Pause => Fault::Pause(targets(rng, n)),
        Family::Partition => Fault::Partition(partition(rng, n)),
        Family::Delay => {
            let delay_ms = rng.range(20, 200);
            Fault::Delay {
                delay_ms,
                jitter_ms: rng.range(0, delay_ms / 2),
            }
        }
        Family::Loss => Fault::Loss {
            p: *rng.pick(&[0.01, 0.05, 0.1]),
        },
        Family::Membership => {
            let replace = rng.below(100) < 60;
            let slot = rng.below(n as u64) as usize;
            Fault::Membership(if replace {
                MembershipOp::Replace { slot }
            } else {
                MembershipOp::TransferLeader(slot)
            })
        }
    }
}
