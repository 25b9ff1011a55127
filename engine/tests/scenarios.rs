//! Scenario scripts with golden output: `engine/testdata/*.txt` are scripts, each
//! `*.golden` beside it the expected output. `REWRITE=1 cargo test -p d-engine --test
//! scenarios` rewrites the goldens (review the diff before committing).
//!
//! Commands (node ids are numbers; the network is manual: messages move only on
//! `deliver` / `stabilize`):
//! ```text
//! config key=value …        before add-nodes: lease_reads, pre_vote, check_quorum,
//!                           max_entries_per_msg, snapshot_every, trailing, seed
//! add-nodes N               a new cluster with voters 1..=N
//! campaign ID               start an election at ID
//! tick N [ID…]              tick the given nodes (default: all live) N times
//! run N                     N times: tick every live node, then stabilize
//! flow N [drop=ID,…]        N times: sync every node, then deliver
//! deliver [drop=ID,…]       deliver every queued message once (dropping those to/from IDs)
//! sync [ID…]                make pending storage writes durable
//! stabilize                 sync and deliver until nothing moves
//! propose ID DATA [seq=N]   a client write at ID (seq=N: a retry of write N)
//! read ID linearizable|lease|serializable
//! partition A,B|C,D         cut both directions between the groups
//! oneway A B                drop messages from A to B
//! heal
//! crash ID / restart ID
//! slow ID                   ID's clock ticks at a quarter of the rate
//! transfer LEADER TARGET
//! add-learner LEADER ID…  / promote LEADER ID… / remove LEADER ID…
//! snapshot ID               build a snapshot now
//! status
//! ```

#[path = "sim/mod.rs"]
mod simlib;

use std::fmt::Write as _;

use bytes::Bytes;
use d_engine::core::{
    ClientSession, ConfChange, Event, NodeId, Proposal, RaftConfig, ReadConsistency, Restored,
    SnapshotPolicy,
};
use simlib::cluster::Cluster;

struct Runner {
    cfg: RaftConfig,
    seed: u64,
    c: Option<Cluster>,
    next_req: u64,
}

fn ids(args: &[&str]) -> Vec<NodeId> {
    args.iter()
        .flat_map(|a| a.split(','))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().expect("node id"))
        .collect()
}

impl Runner {
    fn cluster(&mut self) -> &mut Cluster {
        self.c.as_mut().expect("add-nodes first")
    }

    fn run(&mut self, line: &str, out: &mut String) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (cmd, args) = (words[0], &words[1..]);
        match cmd {
            "config" => self.config(args),
            "add-nodes" => {
                let mut c = Cluster::new(args[0].parse().expect("n"), self.cfg.clone(), self.seed);
                c.verbose = true;
                c.net.manual = true;
                c.stop_on_violation = false;
                self.c = Some(c);
            }
            "campaign" => self.cluster().step(ids(args)[0], Event::Campaign),
            "tick" => self.tick(args),
            "flow" => {
                for _ in 0..args[0].parse::<u64>().expect("count") {
                    self.run("sync", out);
                    self.deliver(&args[1..]);
                }
            }
            "run" => {
                for _ in 0..args[0].parse::<u64>().expect("count") {
                    self.tick(&["1"]);
                    self.stabilize();
                }
            }
            "deliver" => self.deliver(args),
            "sync" => {
                let c = self.cluster();
                let targets = if args.is_empty() {
                    c.alive_ids()
                } else {
                    ids(args)
                };
                for id in targets {
                    c.sync_node(id, usize::MAX);
                }
            }
            "stabilize" => self.stabilize(),
            "propose" => {
                self.next_req += 1;
                let req = self.next_req;
                // `seq=N` sends a retry of an earlier write (same client session).
                let seq = args
                    .iter()
                    .find_map(|a| a.strip_prefix("seq="))
                    .map_or(req, |v| v.parse().expect("seq"));
                let p = Proposal {
                    id: 1000 + req,
                    session: Some(ClientSession {
                        client_id: 99,
                        seq,
                        lane: 0,
                    }),
                    data: Bytes::from(args[1].to_string()),
                };
                self.cluster()
                    .step(ids(&args[..1])[0], Event::Propose(vec![p]));
            }
            "read" => {
                let cons = match args[1] {
                    "linearizable" => ReadConsistency::Linearizable,
                    "lease" => ReadConsistency::Lease,
                    _ => ReadConsistency::Serializable,
                };
                self.cluster().read(ids(&args[..1])[0], cons);
            }
            "partition" => {
                let (a, b) = line["partition".len()..].split_once('|').expect("A|B");
                let (a, b) = (ids(&[a.trim()]), ids(&[b.trim()]));
                self.cluster().net.partition(&a, &b);
            }
            "oneway" => {
                let v = ids(args);
                self.cluster().net.blocked.insert((v[0], v[1]));
            }
            "heal" => self.cluster().net.heal(),
            "crash" => self.cluster().crash(ids(args)[0]),
            "restart" => self.cluster().restart(ids(args)[0]),
            "slow" => {
                self.cluster()
                    .nodes
                    .get_mut(&ids(args)[0])
                    .expect("node")
                    .slow = true
            }
            "transfer" => {
                let v = ids(args);
                self.cluster()
                    .step(v[0], Event::TransferLeader { target: v[1] });
            }
            "add-learner" | "promote" | "remove" => self.membership(cmd, args),
            "snapshot" => self.cluster().step(ids(args)[0], Event::SnapshotNow),
            "status" => self.status(out),
            other => panic!("unknown command {other}"),
        }
        let c = self.c.as_mut();
        if let Some(c) = c {
            for l in c.out.drain(..) {
                let _ = writeln!(out, "{l}");
            }
            if let Some(v) = c.inv.violation.take() {
                let _ = writeln!(out, "  INVARIANT VIOLATED: {v}");
            }
        }
    }

    fn config(&mut self, args: &[&str]) {
        for kv in args {
            let (k, v) = kv.split_once('=').expect("key=value");
            let n: u64 = v.parse().unwrap_or(0);
            match k {
                "lease_reads" => self.cfg.lease_reads = v == "true",
                "pre_vote" => self.cfg.pre_vote = v == "true",
                "check_quorum" => self.cfg.check_quorum = v == "true",
                "margin" => self.cfg.lease_drift_margin_ticks = n,
                "max_entries_per_msg" => self.cfg.max_entries_per_msg = n as usize,
                "snapshot_every" => self.cfg.snapshot_policy = SnapshotPolicy::EveryEntries(n),
                "trailing" => self.cfg.compaction_trailing_entries = n,
                "seed" => self.seed = n,
                _ => panic!("unknown config {k}"),
            }
        }
    }

    fn membership(&mut self, cmd: &str, args: &[&str]) {
        let v = ids(args);
        let (leader, nodes) = (v[0], &v[1..]);
        let c = self.cluster();
        let changes = nodes
            .iter()
            .map(|&n| match cmd {
                "add-learner" => {
                    if !c.nodes.contains_key(&n) {
                        c.add_node(n, Restored::joining());
                    }
                    ConfChange::AddLearner(n)
                }
                "promote" => ConfChange::Promote(n),
                _ => ConfChange::Remove(n),
            })
            .collect();
        c.change_membership(leader, changes);
    }

    fn tick(&mut self, args: &[&str]) {
        let n: u64 = args[0].parse().expect("count");
        let c = self.cluster();
        let targets = if args.len() > 1 {
            ids(&args[1..])
        } else {
            c.alive_ids()
        };
        for _ in 0..n {
            c.now += 1;
            for &id in &targets {
                let slow = c.nodes[&id].slow;
                if !slow || c.now.is_multiple_of(simlib::cluster::SLOW_CLOCK_FACTOR) {
                    c.step(id, Event::Tick);
                }
            }
        }
    }

    fn deliver(&mut self, args: &[&str]) {
        let drop: Vec<NodeId> = args
            .iter()
            .filter_map(|a| a.strip_prefix("drop="))
            .flat_map(|a| ids(&[a]))
            .collect();
        let c = self.cluster();
        let msgs = std::mem::take(&mut c.net.queue);
        for m in msgs {
            if drop.contains(&m.to) || drop.contains(&m.from) {
                c.out
                    .push(format!("  {}->{} {} (dropped)", m.from, m.to, m.msg));
                continue;
            }
            c.deliver(m.from, m.to, m.msg);
        }
    }

    fn stabilize(&mut self) {
        let c = self.cluster();
        for _ in 0..1000 {
            let mut moved = false;
            for id in c.alive_ids() {
                if !c.nodes[&id].storage.pending.is_empty() {
                    c.sync_node(id, usize::MAX);
                    moved = true;
                }
            }
            let msgs = std::mem::take(&mut c.net.queue);
            moved |= !msgs.is_empty();
            for m in msgs {
                c.deliver(m.from, m.to, m.msg);
            }
            if !moved {
                return;
            }
        }
        panic!("stabilize did not converge");
    }

    fn status(&mut self, out: &mut String) {
        let c = self.cluster();
        for n in c.nodes.values() {
            let Some(r) = &n.raft else {
                let _ = writeln!(out, "  {}: down", n.id);
                continue;
            };
            let m = r.membership();
            let _ = writeln!(
                out,
                "  {}: {:?} term={} vote={:?} leader={:?} last={} commit={} applied={} ops={} snap={} voters={:?}{}{}",
                n.id,
                r.role(),
                r.term(),
                r.hard_state().voted_for,
                r.leader(),
                r.log().last_index(),
                r.commit_index(),
                n.sm.applied,
                n.sm.effective.len(),
                r.snapshot_meta().last_index,
                m.voters,
                if m.is_joint() {
                    format!(" outgoing={:?}", m.voters_outgoing)
                } else {
                    String::new()
                },
                if m.learners.is_empty() {
                    String::new()
                } else {
                    format!(" learners={:?}", m.learners)
                },
            );
        }
    }
}

fn run_script(script: &str) -> String {
    let mut r = Runner {
        cfg: RaftConfig::default(),
        seed: 1,
        c: None,
        next_req: 0,
    };
    let mut out = String::new();
    for line in script.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            let _ = writeln!(out, "{line}");
            continue;
        }
        let _ = writeln!(out, "> {line}");
        r.run(line, &mut out);
    }
    out
}

#[test]
fn scenarios() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let rewrite = std::env::var("REWRITE").is_ok();
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    let mut failed = Vec::new();
    for path in scripts {
        let script = std::fs::read_to_string(&path).expect("read script");
        let got = run_script(&script);
        let golden = path.with_extension("golden");
        if rewrite {
            std::fs::write(&golden, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(got.lines().count().min(want.lines().count()));
            eprintln!(
                "{}: output differs from golden at line {} (REWRITE=1 to accept)\n  got:  {:?}\n  want: {:?}",
                path.display(),
                line + 1,
                got.lines().nth(line),
                want.lines().nth(line)
            );
            failed.push(path.clone());
        }
        assert!(
            !got.contains("INVARIANT VIOLATED"),
            "{}: invariant violated",
            path.display()
        );
    }
    assert!(failed.is_empty(), "scenario goldens differ: {failed:?}");
}
