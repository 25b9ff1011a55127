//! The randomized schedule: a safety phase with faults, then a healed liveness phase.

use d_engine::core::rng::Rng;
use d_engine::core::{
    Bugs, ConfChange, Event, NodeId, RaftConfig, ReadConsistency, Restored, Role, SnapshotPolicy,
};

use super::cluster::Cluster;
use super::network::NetConfig;

#[derive(Clone, Debug)]
pub struct SimParams {
    pub nodes: u64,
    pub safety_ticks: u64,
    pub liveness_ticks: u64,
    pub clients: u64,
    pub cfg: RaftConfig,
    pub net: NetConfig,
    /// Per-10k-tick rates of faults.
    pub crash_rate: u64,
    pub partition_rate: u64,
    pub member_rate: u64,
    pub slow_clocks: bool,
    pub async_notify: bool,
}

/// Derives everything about a run from its seed.
pub fn params_for_seed(seed: u64, bugs: Bugs) -> SimParams {
    let mut r = Rng::new(seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5151);
    let nodes = [3, 5, 7][(seed % 3) as usize];
    let no_check_quorum = r.chance(1, 5);
    let cfg = RaftConfig {
        election_timeout_ticks_min: 20,
        election_timeout_ticks_max: 40,
        heartbeat_interval_ticks: 3,
        max_inflight_msgs: [1, 4, 16][r.range(0, 3) as usize],
        max_inflight_bytes: 1 << 20,
        max_entries_per_msg: [1, 3, 64][r.range(0, 3) as usize],
        max_bytes_per_msg: 1 << 16,
        pre_vote: r.range(0, 5) != 0,
        check_quorum: !no_check_quorum,
        lease_reads: !no_check_quorum,
        // Slow clocks run at quarter speed: a lease of (min - margin) leader ticks
        // must end before min follower ticks (see SLOW_CLOCK_FACTOR).
        lease_drift_margin_ticks: 15,
        learner_promotion: d_engine::core::LearnerPromotion {
            max_lag_entries: 5,
            sustained_ticks: 5,
        },
        learner_auto_promote: r.chance(1, 3),
        snapshot_policy: if r.chance(1, 4) {
            SnapshotPolicy::Never
        } else {
            SnapshotPolicy::EveryEntries(r.range(5, 60))
        },
        compaction_trailing_entries: r.range(0, 20),
        transfer_timeout_ticks: 40,
        max_pending_reads: 1000,
        // Tight bounds in some runs, so BUSY refusals, a throttled apply queue and
        // snapshots by log bytes happen under faults too.
        max_uncommitted_entries: [4, 64, 65_536][r.range(0, 3) as usize],
        max_uncommitted_bytes: [256, 1 << 20][r.range(0, 2) as usize],
        max_apply_entries: [1, 3, 8_192][r.range(0, 3) as usize],
        max_apply_bytes: [64, 1 << 20][r.range(0, 2) as usize],
        snapshot_log_bytes: [0, 600, 1 << 20][r.range(0, 3) as usize],
        // From a generator of its own, so adding it changed no other draw of a seed.
        snapshot_interval_ticks: [0, 0, 50, 400][Rng::new(seed ^ 0x1717).range(0, 4) as usize],
        bugs,
    };
    let net = NetConfig {
        delay_min: 1,
        delay_max: r.range(1, 6),
        loss: [0, 10, 50][r.range(0, 3) as usize],
        dup: [0, 10, 50][r.range(0, 3) as usize],
    };
    SimParams {
        nodes,
        safety_ticks: 3000,
        liveness_ticks: 3000,
        clients: 4,
        cfg,
        net,
        crash_rate: r.range(20, 120),
        partition_rate: r.range(50, 200),
        member_rate: r.range(10, 60),
        slow_clocks: r.chance(2, 3),
        async_notify: r.chance(1, 2),
    }
}

/// After healing, some node must lead within this many ticks.
const LEADER_BOUND_TICKS: u64 = 600;

pub struct Outcome {
    pub stats: super::cluster::Stats,
    pub acked: usize,
    pub ticks: u64,
}

pub fn replay_command(seed: u64) -> String {
    format!(
        "SIM_SEED={seed} cargo test -p d-engine --release --test sim simulation -- --nocapture  (SIM_TRACE=1 for a trace)"
    )
}

pub fn run_seed(seed: u64, bugs: Bugs) -> Result<Outcome, String> {
    let p = params_for_seed(seed, bugs);
    run(seed, &p)
}

/// Like [`run_seed`] with adjusted parameters (a harsher profile for bug hunting).
pub fn run_seed_with(
    seed: u64,
    bugs: Bugs,
    tweak: impl Fn(&mut SimParams),
) -> Result<Outcome, String> {
    let mut p = params_for_seed(seed, bugs);
    tweak(&mut p);
    run(seed, &p)
}

pub fn run(seed: u64, p: &SimParams) -> Result<Outcome, String> {
    let mut c = Cluster::new(p.nodes, p.cfg.clone(), seed);
    c.verbose = std::env::var("SIM_TRACE").is_ok();
    c.net.cfg = p.net.clone();
    c.async_notify = p.async_notify;
    c.add_clients(p.clients);
    let max_id = p.nodes + 3;
    for _ in 0..p.safety_ticks {
        chaos(&mut c, p, max_id);
        drive_clients(&mut c, true);
        c.tick();
        if let Some(v) = &c.inv.violation {
            if c.verbose {
                for l in c.out.iter().rev().take(400).rev() {
                    eprintln!("{l}");
                }
                eprintln!("{}", status_line(&c));
            }
            return Err(format!("safety violation at tick {}: {v}", c.now));
        }
    }
    liveness(&mut c, p)
}

fn pick(c: &mut Cluster, v: &[NodeId]) -> Option<NodeId> {
    if v.is_empty() {
        None
    } else {
        Some(v[c.rng.range(0, v.len() as u64) as usize])
    }
}

fn chaos(c: &mut Cluster, p: &SimParams, max_id: NodeId) {
    let alive = c.alive_ids();
    if c.rng.chance(p.crash_rate, 10_000)
        && let Some(id) = pick(c, &alive)
    {
        c.crash(id);
        if c.rng.chance(1, 2) {
            // A bounce: killed and restarted at once (messages to it are still in flight).
            c.restart(id);
        }
    }
    for id in c.ids() {
        if !c.nodes[&id].alive() && c.rng.chance(1, 40) {
            c.restart(id);
        }
    }
    if c.rng.chance(p.partition_rate, 10_000) {
        partition(c);
    }
    if c.rng.chance(p.partition_rate, 20_000) {
        c.net.heal();
    }
    if c.rng.chance(p.member_rate, 10_000) {
        membership(c, max_id);
    }
    if c.rng.chance(30, 10_000)
        && let Some(l) = c.leader()
    {
        let voters: Vec<NodeId> = c.nodes[&l]
            .raft()
            .membership()
            .voters
            .iter()
            .copied()
            .collect();
        if let Some(t) = pick(c, &voters) {
            c.step(l, Event::TransferLeader { target: t });
        }
    }
    if c.rng.chance(80, 10_000)
        && let Some(id) = pick(c, &alive)
    {
        c.step(id, Event::SnapshotNow);
    }
    if p.slow_clocks && c.rng.chance(100, 10_000) {
        let ids = c.ids();
        if let Some(id) = pick(c, &ids) {
            let n = c.nodes.get_mut(&id).expect("node");
            n.slow = !n.slow;
        }
    }
    if c.rng.chance(2, 10) {
        let ids = c.alive_ids();
        let target = if c.rng.chance(3, 4) {
            c.leader()
        } else {
            pick(c, &ids)
        };
        if let Some(id) = target {
            let cons = [
                ReadConsistency::Linearizable,
                ReadConsistency::Lease,
                ReadConsistency::Serializable,
            ][c.rng.range(0, 3) as usize];
            c.read(id, cons);
        }
    }
}

fn partition(c: &mut Cluster) {
    c.net.heal();
    let ids = c.ids();
    match c.rng.range(0, 3) {
        0 => {
            // Isolate the leader (or anyone).
            let l = c.leader().or_else(|| pick(c, &ids)).expect("nodes");
            let rest: Vec<NodeId> = ids.iter().copied().filter(|&x| x != l).collect();
            c.net.partition(&[l], &rest);
        }
        1 => {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for id in ids {
                if c.rng.chance(1, 2) {
                    a.push(id)
                } else {
                    b.push(id)
                }
            }
            c.net.partition(&a, &b);
        }
        _ => {
            // One-way: some links drop in one direction only.
            for _ in 0..c.rng.range(1, 4) {
                let (x, y) = (pick(c, &ids).expect("n"), pick(c, &ids).expect("n"));
                if x != y {
                    c.net.blocked.insert((x, y));
                }
            }
        }
    }
}

fn membership(c: &mut Cluster, max_id: NodeId) {
    let Some(l) = c.leader() else { return };
    let m = c.nodes[&l].raft().membership().clone();
    let mut changes = Vec::new();
    match c.rng.range(0, 4) {
        0 => {
            // Add up to two learners (new nodes start empty).
            for id in 1..=max_id {
                if !m.members().contains(&id) && changes.len() < 2 && c.rng.chance(1, 2) {
                    if !c.nodes.contains_key(&id) {
                        c.add_node(id, Restored::joining());
                    }
                    changes.push(ConfChange::AddLearner(id));
                }
            }
        }
        1 => changes.extend(m.learners.iter().map(|&id| ConfChange::Promote(id))),
        2 => {
            if m.voters.len() > 3 {
                let v: Vec<NodeId> = m.voters.iter().copied().collect();
                if let Some(id) = pick(c, &v) {
                    changes.push(ConfChange::Remove(id));
                }
            }
        }
        _ => {
            // Mixed: promote everyone caught up and remove one voter at once.
            changes.extend(m.learners.iter().map(|&id| ConfChange::Promote(id)));
            if m.voters.len() > 3 {
                let v: Vec<NodeId> = m.voters.iter().copied().collect();
                if let Some(id) = pick(c, &v) {
                    changes.push(ConfChange::Remove(id));
                }
            }
        }
    }
    if !changes.is_empty() {
        c.change_membership(l, changes);
    }
}

fn drive_clients(c: &mut Cluster, new_ops: bool) {
    for ci in 0..c.clients.len() {
        let (idle, retry) = match &c.clients[ci].waiting {
            None => (true, false),
            Some(w) => (false, w.failed || c.now - w.since > 80),
        };
        let go = (idle && new_ops && c.rng.chance(1, 3)) || retry;
        if !go {
            continue;
        }
        let alive = c.alive_ids();
        let target = if c.rng.chance(4, 5) { c.leader() } else { None };
        let target = target.or_else(|| pick(c, &alive));
        if let Some(n) = target {
            c.client_send(ci, n);
        }
    }
}

fn liveness(c: &mut Cluster, p: &SimParams) -> Result<Outcome, String> {
    c.net.heal();
    c.net.cfg.loss = 0;
    for id in c.ids() {
        c.nodes.get_mut(&id).expect("node").slow = false;
        c.restart(id);
    }
    let start = c.now;
    let mut leader_at = None;
    while c.now - start < p.liveness_ticks {
        drive_clients(c, false);
        c.tick();
        if let Some(v) = &c.inv.violation {
            return Err(format!(
                "safety violation at tick {} (liveness phase): {v}",
                c.now
            ));
        }
        let Some(l) = c.leader() else {
            if leader_at.is_none() && c.now - start > LEADER_BOUND_TICKS {
                return Err(format!(
                    "liveness: no leader within {LEADER_BOUND_TICKS} ticks after healing; {}",
                    status_line(c)
                ));
            }
            continue;
        };
        leader_at.get_or_insert(c.now - start);
        if converged(c, l) {
            let members: Vec<NodeId> = c.nodes[&l]
                .raft()
                .membership()
                .members()
                .into_iter()
                .collect();
            c.inv.check_acks_applied(&c.nodes, &members);
            if let Some(v) = &c.inv.violation {
                return Err(format!("after liveness: {v}"));
            }
            return Ok(Outcome {
                stats: c.stats.clone(),
                acked: c.inv.acked().len(),
                ticks: c.now,
            });
        }
    }
    let status = status_line(c);
    if c.verbose {
        for l in c.out.iter().rev().take(200).rev() {
            eprintln!("{l}");
        }
    }
    match leader_at {
        None => Err(format!(
            "liveness: no leader within {} ticks after healing; {status}",
            p.liveness_ticks
        )),
        Some(_) => Err(format!(
            "liveness: not converged within {} ticks after healing; {status}",
            p.liveness_ticks
        )),
    }
}

/// Every client answered, every member applied everything the leader committed.
fn converged(c: &Cluster, l: NodeId) -> bool {
    if c.clients.iter().any(|cl| cl.waiting.is_some()) {
        return false;
    }
    let lr = c.nodes[&l].raft();
    if lr.commit_index() < lr.log().last_index() || lr.membership().is_joint() {
        return false;
    }
    let commit = lr.commit_index();
    lr.membership().members().iter().all(|id| {
        c.nodes
            .get(id)
            .is_some_and(|n| n.alive() && n.sm.applied >= commit)
    })
}

pub fn status_line(c: &Cluster) -> String {
    let mut s = String::new();
    for n in c.nodes.values() {
        match &n.raft {
            None => s.push_str(&format!("[{} down] ", n.id)),
            Some(r) => s.push_str(&format!(
                "[{} {:?} t{} commit={} last={} applied={} voters={:?}{}] ",
                n.id,
                r.role(),
                r.term(),
                r.commit_index(),
                r.log().last_index(),
                n.sm.applied,
                r.membership().voters,
                if r.membership().is_joint() {
                    " joint"
                } else {
                    ""
                }
            )),
        }
    }
    let waiting: Vec<_> = c
        .clients
        .iter()
        .filter_map(|cl| cl.waiting.as_ref().map(|w| (cl.id, cl.seq, w.node)))
        .collect();
    s.push_str(&format!("waiting clients {waiting:?}"));
    let _ = Role::Leader;
    s
}
