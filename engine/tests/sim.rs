//! Deterministic simulation of the Raft core.
//!
//! `cargo test -p d-engine --release --test sim` runs the default seed count (plus the
//! tests proving the checker catches deliberately broken cores); `SIM_SEEDS=N` runs N
//! seeds, `SIM_SEED=S` replays one seed, `SIM_TRACE=1` prints the tail of the event
//! trace of a failing run. Every failure prints its seed and the one-line command that
//! replays it, e.g.
//! `SIM_SEED=42 cargo test -p d-engine --release --test sim simulation -- --nocapture`.

#[path = "sim/mod.rs"]
mod simlib;

use d_engine::core::Bugs;
use simlib::driver::{SimParams, replay_command, run_seed, run_seed_with};

const DEFAULT_SEEDS: u64 = 1000;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn simulation() {
    let seeds: Vec<u64> = match env_u64("SIM_SEED") {
        Some(s) => vec![s],
        None => (0..env_u64("SIM_SEEDS").unwrap_or(DEFAULT_SEEDS)).collect(),
    };
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut acked = 0;
    let mut stats = simlib::cluster::Stats::default();
    for &seed in &seeds {
        let r = std::panic::catch_unwind(|| run_seed(seed, Bugs::default()))
            .unwrap_or_else(|p| Err(format!("panic: {}", panic_text(&p))));
        match r {
            Ok(o) => {
                acked += o.acked;
                stats.add(&o.stats);
            }
            Err(e) => {
                eprintln!(
                    "seed {seed} FAILED: {e}\n  replay: {}",
                    replay_command(seed)
                );
                failures.push(seed);
            }
        }
    }
    eprintln!(
        "simulated {} seeds in {:.1?}: {} acknowledged writes, {} failures",
        seeds.len(),
        started.elapsed(),
        acked,
        failures.len()
    );
    eprintln!("{stats:?}");
    assert!(failures.is_empty(), "failing seeds: {failures:?}");
}

/// Runs seeds with a rule-breaking switch until the checker fires; returns the message.
fn find_violation(
    bugs: Bugs,
    max_seeds: u64,
    tweak: impl Fn(&mut SimParams),
) -> Option<(u64, String)> {
    let found = (0..max_seeds).find_map(|seed| match run_seed_with(seed, bugs, &tweak) {
        Err(e) if e.contains("safety violation") => Some((seed, e)),
        _ => None,
    });
    if let Some((seed, _)) = &found {
        // The same schedule without the switch is fine: the switch is what broke it.
        let clean = run_seed_with(*seed, Bugs::default(), &tweak);
        assert!(
            clean.is_ok(),
            "seed {seed} fails even without the bug: {:?}",
            clean.err()
        );
    }
    found
}

/// Figure 8, scripted on a manual network (the same story as
/// `testdata/11_figure8.txt`): an entry of term 1 reaches a majority under leader 1 of
/// term 3 and is later overwritten by leader 5 of term 4. Returns the checker's verdict.
fn figure8_run(bugs: Bugs) -> Option<String> {
    use d_engine::core::{Event, NodeId, RaftConfig};
    use simlib::cluster::Cluster;
    let cfg = RaftConfig {
        max_entries_per_msg: 1,
        pre_vote: false,
        check_quorum: false,
        bugs,
        ..RaftConfig::default()
    };
    let mut c = Cluster::new(5, cfg, 1);
    c.net.manual = true;
    c.add_clients(1);
    fn flow(c: &mut Cluster, rounds: usize, drop: &[NodeId]) {
        for _ in 0..rounds {
            for id in c.alive_ids() {
                c.sync_node(id, usize::MAX);
            }
            for m in std::mem::take(&mut c.net.queue) {
                if !drop.contains(&m.from) && !drop.contains(&m.to) {
                    c.deliver(m.from, m.to, m.msg);
                }
            }
        }
    }
    c.step(1, Event::Campaign);
    flow(&mut c, 10, &[]);
    c.client_send(0, 1);
    flow(&mut c, 2, &[3, 4, 5]);
    c.crash(1);
    c.step(5, Event::Campaign);
    flow(&mut c, 2, &[1, 2]);
    c.sync_node(5, usize::MAX);
    c.crash(5);
    flow(&mut c, 1, &[1, 2, 3, 4, 5]);
    // (c) 1 restarts; its first campaign (term 2) fails, the second (term 3) wins with
    // 3 and 4, which then receive entry 2 (term 1) alone: 1, 3 and 4 hold it. The
    // correct core does not commit it; the buggy one does (and applies it).
    c.restart(1);
    c.step(1, Event::Campaign);
    flow(&mut c, 3, &[5]);
    c.step(1, Event::Campaign);
    flow(&mut c, 6, &[2, 5]);
    c.crash(1);
    flow(&mut c, 1, &[1, 2, 3, 4, 5]);
    // (d) 5 (last entry 2/2) wins term 4 with 3 and 4 and overwrites entry 2.
    c.restart(5);
    c.step(5, Event::Campaign);
    flow(&mut c, 3, &[1]);
    if c.leader() != Some(5) {
        c.step(5, Event::Campaign);
    }
    flow(&mut c, 14, &[1]);
    assert_eq!(c.leader(), Some(5), "the story went as planned");
    c.inv.violation.clone()
}

#[test]
fn figure8_is_safe() {
    assert_eq!(figure8_run(Bugs::default()), None);
}

#[test]
fn checker_catches_commit_of_previous_term_entries() {
    let bugs = Bugs {
        commit_previous_term: true,
        ..Bugs::default()
    };
    let v = figure8_run(bugs).expect("the Figure 8 bug went unnoticed");
    eprintln!("{v}");
}

/// The same bug found by random search (slow; run with `--ignored`).
#[test]
#[ignore]
fn random_search_catches_commit_of_previous_term_entries() {
    let bugs = Bugs {
        commit_previous_term: true,
        ..Bugs::default()
    };
    let harsh = |p: &mut SimParams| {
        p.cfg.max_entries_per_msg = 1;
        p.crash_rate = 200;
        p.partition_rate = 300;
    };
    let (seed, e) = find_violation(bugs, 5000, harsh).expect("the Figure 8 bug went unnoticed");
    eprintln!("seed {seed}: {e}");
}

/// Node 2 votes for 1 in term 1, crashes and restarts; then 3 campaigns in term 1.
/// Returns the checker's verdict.
fn vote_restart_run(bugs: Bugs) -> Option<String> {
    use d_engine::core::{Event, RaftConfig, Role};
    use simlib::cluster::Cluster;
    let cfg = RaftConfig {
        pre_vote: false,
        check_quorum: false,
        bugs,
        ..RaftConfig::default()
    };
    let mut c = Cluster::new(3, cfg, 1);
    c.net.manual = true;
    let deliver = |c: &mut Cluster, drop: u64| {
        for id in c.alive_ids() {
            c.sync_node(id, usize::MAX);
        }
        for m in std::mem::take(&mut c.net.queue) {
            if m.from != drop && m.to != drop {
                c.deliver(m.from, m.to, m.msg);
            }
        }
    };
    c.step(1, Event::Campaign);
    deliver(&mut c, 3);
    deliver(&mut c, 3);
    assert_eq!(c.nodes[&1].raft().role(), Role::Leader);
    c.crash(2);
    c.restart(2);
    c.step(3, Event::Campaign);
    deliver(&mut c, 1);
    deliver(&mut c, 1);
    c.inv.violation.clone()
}

#[test]
fn vote_survives_restart() {
    assert_eq!(vote_restart_run(Bugs::default()), None);
}

#[test]
fn checker_catches_unpersisted_vote() {
    let bugs = Bugs {
        skip_vote_persist: true,
        ..Bugs::default()
    };
    let v = vote_restart_run(bugs).expect("the unpersisted vote went unnoticed");
    assert!(v.contains("election safety"), "{v}");
}

/// The same bug found by random search.
#[test]
fn random_search_catches_unpersisted_vote() {
    let bugs = Bugs {
        skip_vote_persist: true,
        ..Bugs::default()
    };
    let harsh = |p: &mut SimParams| {
        p.crash_rate = 300;
        p.cfg.check_quorum = false;
        p.cfg.lease_reads = false;
    };
    let (seed, e) = find_violation(bugs, 3000, harsh).expect("the unpersisted vote went unnoticed");
    eprintln!("seed {seed}: {e}");
}

/// A directed run: the leader's clock runs slow, it is isolated, the others elect a new
/// leader and commit; meanwhile the old leader is asked for lease reads. Returns the
/// checker's verdict.
fn stale_lease_run(bugs: Bugs) -> Option<String> {
    use d_engine::core::{Event, ReadConsistency, Role};
    use simlib::cluster::Cluster;
    let mut cfg = simlib::driver::params_for_seed(0, bugs).cfg;
    cfg.check_quorum = true;
    cfg.lease_reads = true;
    let mut c = Cluster::new(3, cfg, 7);
    c.verbose = std::env::var("SIM_TRACE").is_ok();
    c.step(1, Event::Campaign);
    for _ in 0..50 {
        c.tick();
    }
    assert_eq!(c.leader(), Some(1));
    c.nodes.get_mut(&1).expect("node").slow = true;
    // Let a heartbeat round confirm the lease, then cut the leader off.
    for _ in 0..8 {
        c.tick();
    }
    c.net.partition(&[1], &[2, 3]);
    for _ in 0..200 {
        c.tick();
        if c.nodes[&1].raft().role() == Role::Leader {
            if c.verbose {
                c.out.push(format!(
                    "tick {} node1 ticks={} maxcommit={}",
                    c.now,
                    c.nodes[&1].raft().ticks(),
                    c.inv.max_commit()
                ));
            }
            c.read(1, ReadConsistency::Lease);
        }
        if c.inv.violation.is_some() {
            break;
        }
    }
    for l in &c.out {
        if l.contains("read") || l.contains("Leader") || l.contains("PreCand") {
            eprintln!("{l}");
        }
    }
    assert!(
        c.leader().is_some_and(|l| l != 1),
        "a new leader was elected"
    );
    c.inv.violation.clone()
}

#[test]
fn stale_leader_lease_read_is_safe_with_margin() {
    assert_eq!(stale_lease_run(Bugs::default()), None);
}

#[test]
fn checker_catches_stale_lease_read_without_margin() {
    let bugs = Bugs {
        lease_without_drift_margin: true,
        ..Bugs::default()
    };
    let v = stale_lease_run(bugs).expect("stale lease read went unnoticed");
    assert!(v.contains("linearizable reads"), "{v}");
}
