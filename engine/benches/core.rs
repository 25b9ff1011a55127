//! Throughput of the pure core: 3 in-memory nodes, batched proposals, no I/O.
//! Every persist completes at once, messages are delivered at once, the state machine
//! applies at once; what is measured is the core's own cost per committed entry.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use d_engine::core::{
    Action, Event, LogIndex, Message, NodeId, Proposal, Raft, RaftConfig, Restored, Role,
    SnapshotPolicy,
};

struct Cluster {
    nodes: Vec<Raft>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    actions: Vec<Action>,
    next_id: u64,
}

impl Cluster {
    fn new() -> Cluster {
        let cfg = RaftConfig {
            snapshot_policy: SnapshotPolicy::EveryEntries(200_000),
            compaction_trailing_entries: 10_000,
            max_inflight_msgs: 1024,
            ..RaftConfig::default()
        };
        let nodes = (1..=3)
            .map(|id| Raft::new(id, cfg.clone(), 1, Restored::bootstrap([1, 2, 3])).unwrap())
            .collect();
        let mut c = Cluster {
            nodes,
            queue: VecDeque::new(),
            actions: Vec::new(),
            next_id: 0,
        };
        c.step(1, Event::Campaign);
        c.pump();
        assert_eq!(c.nodes[0].role(), Role::Leader);
        c
    }

    fn step(&mut self, id: NodeId, ev: Event) {
        let k = (id - 1) as usize;
        self.nodes[k].step(ev);
        let mut actions = std::mem::take(&mut self.actions);
        self.nodes[k].drain_actions_into(&mut actions);
        let mut follow = Vec::new();
        for a in actions.drain(..) {
            match a {
                Action::PersistEntries { entries, .. } => {
                    let l = entries.last().expect("non-empty");
                    follow.push(Event::Persisted {
                        index: l.index,
                        term: l.term,
                    });
                }
                Action::Send { to, msg, .. } => self.queue.push_back((id, to, msg)),
                Action::Apply { entries } => follow.push(Event::Applied {
                    index: entries.last().expect("non-empty").index,
                }),
                Action::TakeSnapshot { index } => {
                    follow.push(Event::SnapshotBuilt { last_index: index })
                }
                _ => {}
            }
        }
        self.actions = actions;
        for ev in follow {
            self.step(id, ev);
        }
    }

    fn pump(&mut self) {
        while let Some((from, to, msg)) = self.queue.pop_front() {
            self.step(to, Event::Message { from, msg });
        }
    }

    /// Proposes `batches` batches of `batch` entries and runs until all are committed.
    fn run(&mut self, batches: usize, batch: usize, data: &Bytes) -> LogIndex {
        for _ in 0..batches {
            let ps = (0..batch)
                .map(|_| {
                    self.next_id += 1;
                    Proposal {
                        id: self.next_id,
                        session: None,
                        data: data.clone(),
                    }
                })
                .collect();
            self.step(1, Event::Propose(ps));
        }
        self.pump();
        let leader = &self.nodes[0];
        assert_eq!(leader.commit_index(), leader.log().last_index());
        leader.commit_index()
    }
}

fn bench(c: &mut Criterion) {
    let data = Bytes::from(vec![7u8; 16]);
    let mut g = c.benchmark_group("core");
    for &(batches, batch) in &[(4usize, 256usize), (1, 1024)] {
        g.throughput(Throughput::Elements((batches * batch) as u64));
        let name = format!("commit_3_nodes_{batches}x{batch}");
        g.bench_function(name, |b| {
            let mut cl = Cluster::new();
            b.iter(|| cl.run(batches, batch, &data));
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
