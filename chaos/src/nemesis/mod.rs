//! Nemeses: a seeded schedule of faults ([`Schedule`]) and the executor that
//! applies it to a [`crate::cluster::LocalCluster`] ([`Executor`]), logging every
//! fault window to `nemesis.jsonl` in the histories crate's format.
//!
//! ```text
//! seed ──Schedule::generate──▶ [Step { at_ms, duration_ms, fault }]   (pure: same seed, same steps)
//!                                   │
//!                 Executor::run ────┤ apply fault ─ sleep duration ─ undo ─ log NemesisEvent
//!                                   ▼
//!                              Executor::heal: clear the network, resume, restart
//! ```
//!
//! Faults are sequential (one window at a time, separated by quiet gaps), so
//! each window in the log explains the latencies and errors around it.
//! "The leader" is resolved when the step runs; every other target is chosen
//! at generation time, so the schedule itself is a function of the seed.
//!
//! Membership churn is target-specific: a target supports it by providing a
//! [`MembershipDriver`]; the schedule emits [`Fault::Membership`] steps only
//! when the family is enabled, and a run refuses the family for a target that
//! has no driver ([`membership::driver_for`]: d-engine has one, etcd not).
//! A membership step is logged as its phases (add-learner, promote, remove,
//! or transfer), each with its own start and end; nodes are named by id in
//! the log (`n5`), since a slot's node changes when it is replaced.

mod exec;
pub mod membership;
mod schedule;

pub use exec::{Executor, MembershipDriver, MembershipFuture, NO_DELAY, Phase};
pub use schedule::{Schedule, Timing};

use serde::Serialize;

/// A family of faults, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// SIGKILL, then restart after the window.
    Kill,
    /// SIGTERM (graceful shutdown), then restart after the window.
    Restart,
    /// SIGSTOP, then SIGCONT after the window.
    Pause,
    /// Network partitions through the proxies.
    Partition,
    /// Added latency and jitter on peer links.
    Delay,
    /// Connection resets on peer links.
    Loss,
    /// Add/remove/promote members, transfer leadership.
    Membership,
}

impl Family {
    pub const ALL: [Family; 7] = [
        Family::Kill,
        Family::Restart,
        Family::Pause,
        Family::Partition,
        Family::Delay,
        Family::Loss,
        Family::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Family::Kill => "kill",
            Family::Restart => "restart",
            Family::Pause => "pause",
            Family::Partition => "partition",
            Family::Delay => "delay",
            Family::Loss => "loss",
            Family::Membership => "membership",
        }
    }

    /// Parses `kill,pause,partition` or `all`. `all` means every family
    /// except membership; ask for membership by name.
    pub fn parse_list(text: &str) -> anyhow::Result<Vec<Family>> {
        Family::parse_list_with(text, false)
    }

    /// [`Family::parse_list`], where `all` includes membership when
    /// `membership` is true (the target has a membership driver).
    pub fn parse_list_with(text: &str, membership: bool) -> anyhow::Result<Vec<Family>> {
        let mut out = Vec::new();
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            if word == "all" {
                out.extend(
                    Family::ALL
                        .iter()
                        .copied()
                        .filter(|f| membership || *f != Family::Membership),
                );
            } else if word == "none" {
            } else {
                let f = Family::ALL
                    .iter()
                    .copied()
                    .find(|f| f.name() == word)
                    .ok_or_else(|| anyhow::anyhow!("unknown nemesis {word:?} (kill, restart, pause, partition, delay, loss, membership, all, none)"))?;
                out.push(f);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub fn needs_proxy(self) -> bool {
        matches!(self, Family::Partition | Family::Delay | Family::Loss)
    }
}

/// Which nodes a process fault hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Targets {
    One(usize),
    /// Resolved when the step runs.
    Leader,
    Minority(Vec<usize>),
    Majority(Vec<usize>),
}

/// The shape of a partition. Every shape is a set of blocked directed links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Partition {
    IsolateOne(usize),
    /// Resolved when the step runs.
    IsolateLeader,
    /// `order[..n/2]` against the rest.
    Halves(Vec<usize>),
    /// Nodes on a ring in this order, each connected only to its nearest
    /// neighbours, so each sees a majority but no two see the same one.
    MajoritiesRing(Vec<usize>),
    /// Two halves that only the middle node of `order` connects.
    Bridge(Vec<usize>),
    /// Node `node` cannot receive (`inbound`) or cannot send.
    OneWay {
        node: usize,
        inbound: bool,
    },
}

impl Partition {
    pub fn name(&self) -> &'static str {
        match self {
            Partition::IsolateOne(_) => "isolate-one",
            Partition::IsolateLeader => "isolate-leader",
            Partition::Halves(_) => "halves",
            Partition::MajoritiesRing(_) => "majorities-ring",
            Partition::Bridge(_) => "bridge",
            Partition::OneWay { .. } => "one-way",
        }
    }

    /// The directed links `(from, to)` to block in an `n`-node cluster;
    /// `leader` resolves [`Partition::IsolateLeader`].
    pub fn blocked_links(&self, n: usize, leader: usize) -> Vec<(usize, usize)> {
        let all = || {
            (0..n)
                .flat_map(move |a| (0..n).map(move |b| (a, b)))
                .filter(|(a, b)| a != b)
        };
        match self {
            Partition::IsolateOne(x) => all().filter(|(a, b)| a == x || b == x).collect(),
            Partition::IsolateLeader => all()
                .filter(|(a, b)| *a == leader || *b == leader)
                .collect(),
            Partition::Halves(order) => {
                let side = side_of(order, |pos| pos < n / 2);
                all().filter(|(a, b)| side[*a] != side[*b]).collect()
            }
            Partition::MajoritiesRing(order) => {
                let mut pos = vec![0; n];
                for (p, &node) in order.iter().enumerate() {
                    pos[node] = p;
                }
                let reach = ring_reach(n);
                all()
                    .filter(|(a, b)| {
                        let d = pos[*a].abs_diff(pos[*b]);
                        d.min(n - d) > reach
                    })
                    .collect()
            }
            Partition::Bridge(order) => {
                let mid = n / 2;
                // 0 = left half, 1 = the bridge, 2 = right half.
                let mut side = vec![0; n];
                for (p, &node) in order.iter().enumerate() {
                    side[node] = usize::from(p >= mid) + usize::from(p > mid);
                }
                all()
                    .filter(|(a, b)| side[*a] + side[*b] == 2 && side[*a] != 1)
                    .collect()
            }
            Partition::OneWay { node, inbound } => all()
                .filter(|(a, b)| if *inbound { b == node } else { a == node })
                .collect(),
        }
    }
}

fn side_of(order: &[usize], left: impl Fn(usize) -> bool) -> Vec<bool> {
    let mut side = vec![false; order.len()];
    for (p, &node) in order.iter().enumerate() {
        side[node] = left(p);
    }
    side
}

/// How far along the ring a node reaches so that it sees a majority.
pub(crate) fn ring_reach(n: usize) -> usize {
    let majority = n / 2 + 1;
    (majority - 1).div_ceil(2)
}

/// A membership change (see [`MembershipDriver`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MembershipOp {
    /// Transfer leadership to the node in this slot.
    TransferLeader(usize),
    /// Churn that keeps the cluster's size: start a node with a fresh id and
    /// an empty data dir, add it as a learner, promote it once it caught up,
    /// then remove the node in `slot` (another voter), so the voter count is
    /// n, n + 1, n and quorum is never at risk. The new node takes the slot.
    Replace { slot: usize },
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    Kill(Targets),
    GracefulRestart(Targets),
    Pause(Targets),
    Partition(Partition),
    /// Delay and jitter on every peer link.
    Delay {
        delay_ms: u64,
        jitter_ms: u64,
    },
    /// Reset probability per chunk on every peer link.
    Loss {
        p: f64,
    },
    Membership(MembershipOp),
}

impl Fault {
    /// The `kind` written to `nemesis.jsonl`.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill(_) => "kill",
            Fault::GracefulRestart(_) => "restart",
            Fault::Pause(_) => "pause",
            Fault::Partition(_) => "partition",
            Fault::Delay { .. } => "delay",
            Fault::Loss { .. } => "loss",
            Fault::Membership(_) => "membership",
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Fault::Kill(_) => Family::Kill,
            Fault::GracefulRestart(_) => Family::Restart,
            Fault::Pause(_) => Family::Pause,
            Fault::Partition(_) => Family::Partition,
            Fault::Delay { .. } => Family::Delay,
            Fault::Loss { .. } => Family::Loss,
            Fault::Membership(_) => Family::Membership,
        }
    }
}

/// One scheduled fault window, in milliseconds from the start of the run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub at_ms: u64,
    pub duration_ms: u64,
    pub fault: Fault,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(links: &[(usize, usize)], a: usize, b: usize) -> bool {
        links.contains(&(a, b)) && links.contains(&(b, a))
    }

    #[test]
    fn partition_shapes_block_the_right_links() {
        let iso = Partition::IsolateOne(1).blocked_links(3, 0);
        assert_eq!(iso.len(), 4);
        assert!(sym(&iso, 0, 1) && sym(&iso, 1, 2) && !iso.contains(&(0, 2)));

        // Ring 0-1-2-3-4-0: each node reaches 1 step each way.
        let ring = Partition::MajoritiesRing(vec![0, 1, 2, 3, 4]).blocked_links(5, 0);
        assert!(
            sym(&ring, 0, 2)
                && sym(&ring, 0, 3)
                && !ring.contains(&(0, 1))
                && !ring.contains(&(0, 4))
        );
        for a in 0..5 {
            let sees = 1
                + (0..5)
                    .filter(|&b| b != a && !ring.contains(&(a, b)))
                    .count();
            assert_eq!(sees, 3, "node {a} sees a bare majority");
        }

        // Bridge: {3,1} - 0 - {4,2}.
        let bridge = Partition::Bridge(vec![3, 1, 0, 4, 2]).blocked_links(5, 0);
        assert!(
            sym(&bridge, 3, 4)
                && sym(&bridge, 1, 2)
                && !bridge.contains(&(0, 3))
                && !bridge.contains(&(2, 0))
        );
        assert!(!bridge.contains(&(3, 1)));
        assert_eq!(bridge.len(), 8);

        let halves = Partition::Halves(vec![2, 0, 1]).blocked_links(3, 0);
        assert!(sym(&halves, 2, 0) && sym(&halves, 2, 1) && !halves.contains(&(0, 1)));

        let inbound = Partition::OneWay {
            node: 0,
            inbound: true,
        }
        .blocked_links(3, 0);
        assert_eq!(inbound, vec![(1, 0), (2, 0)]);
        let leader = Partition::IsolateLeader.blocked_links(3, 2);
        assert!(sym(&leader, 2, 0) && sym(&leader, 2, 1));
    }

    #[test]
    fn families_parse() {
        assert_eq!(
            Family::parse_list("kill,pause").unwrap(),
            vec![Family::Kill, Family::Pause]
        );
        assert_eq!(Family::parse_list("all").unwrap().len(), 6);
        assert!(
            Family::parse_list("all,membership")
                .unwrap()
                .contains(&Family::Membership)
        );
        assert!(Family::parse_list("explode").is_err());
        assert_eq!(Family::parse_list_with("all", true).unwrap().len(), 7);
    }
}
