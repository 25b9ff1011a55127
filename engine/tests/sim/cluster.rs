//! The simulated cluster: nodes, storage, state machines, network, clients.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use d_engine::core::rng::Rng;
use d_engine::core::{
    Action, ClientSession, ConfChange, Entry, Event, LogIndex, Message, NodeId, Proposal, Raft,
    RaftConfig, ReadConsistency, Restored, Role, SendWhen, SnapshotMeta, Term,
};

use super::invariants::Invariants;
use super::network::Network;
use super::storage::{Op, StateMachine, Storage};

/// The client id every simulated client shares (each is a lane of it).
const SIM_CLIENT_ID: u64 = 7;

/// How much slower a slow clock runs. A lease of `L` leader ticks then lasts up to
/// `4 L` simulated ticks, while a follower refuses votes for at least
/// `election_timeout_ticks_min` simulated ticks: the drift margin must make
/// `4 (min - margin) <= min`.
pub const SLOW_CLOCK_FACTOR: u64 = 4;

pub struct SimNode {
    pub id: NodeId,
    pub raft: Option<Raft>,
    pub storage: Storage,
    pub sm: StateMachine,
    /// Messages waiting for storage to sync past a barrier.
    pub held: Vec<(u64, NodeId, Message)>,
    /// A slow clock ticks only every `SLOW_CLOCK_FACTOR`-th simulated tick (bounded
    /// clock drift); the others tick once per simulated tick.
    pub slow: bool,
    pub incarnation: u64,
    /// Runtime notifications (applied, snapshot built) not yet delivered to the core.
    pub later: Vec<Event>,
}

impl SimNode {
    pub fn alive(&self) -> bool {
        self.raft.is_some()
    }
    pub fn raft(&self) -> &Raft {
        self.raft.as_ref().expect("node is up")
    }
}

/// A client with at most one outstanding write, retried with the same seq.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: u64,
    pub seq: u64,
    pub waiting: Option<Waiting>,
    pub acked: u64,
}

#[derive(Clone, Debug)]
pub struct Waiting {
    pub node: NodeId,
    pub req: u64,
    pub since: u64,
    pub accepted: Option<(LogIndex, Term)>,
    pub failed: bool,
}

/// What happened during a run (to show the simulation exercises each feature).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub elections: u64,
    pub crashes: u64,
    pub snapshots_built: u64,
    pub snapshots_installed: u64,
    pub config_changes: u64,
    pub transfers: u64,
    pub reads_ok: u64,
    pub truncations: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.elections += o.elections;
        self.crashes += o.crashes;
        self.snapshots_built += o.snapshots_built;
        self.snapshots_installed += o.snapshots_installed;
        self.config_changes += o.config_changes;
        self.transfers += o.transfers;
        self.reads_ok += o.reads_ok;
        self.truncations += o.truncations;
    }
}

pub struct Cluster {
    pub stats: Stats,
    pub cfg: RaftConfig,
    pub seed: u64,
    pub rng: Rng,
    pub now: u64,
    pub nodes: BTreeMap<NodeId, SimNode>,
    pub net: Network,
    /// Snapshot data by (index, term): the state machine image.
    pub snaps: HashMap<(LogIndex, Term), StateMachine>,
    pub inv: Invariants,
    pub clients: Vec<Client>,
    next_req: u64,
    /// Human-readable lines for scenario output.
    pub out: Vec<String>,
    pub verbose: bool,
    pub stop_on_violation: bool,
    /// Deliver `Applied` / `SnapshotBuilt` on a later tick, as an asynchronous runtime.
    pub async_notify: bool,
    /// One snapshot install in this many fails (a corrupt image, a full disk): the
    /// old state stays and the core is told. 0: never. Drawn from a generator of its
    /// own, so it changes no other random choice of a seed.
    pub install_fail_one_in: u64,
    install_rng: Rng,
}

impl Cluster {
    pub fn new(n: u64, cfg: RaftConfig, seed: u64) -> Cluster {
        let mut c = Cluster {
            stats: Stats::default(),
            cfg,
            seed,
            rng: Rng::new(seed),
            install_fail_one_in: 4,
            install_rng: Rng::new(seed ^ 0xFA11_0000_0000),
            now: 0,
            nodes: BTreeMap::new(),
            net: Network::default(),
            snaps: HashMap::new(),
            inv: Invariants::default(),
            clients: Vec::new(),
            next_req: 0,
            out: Vec::new(),
            verbose: false,
            stop_on_violation: true,
            async_notify: false,
        };
        let voters: Vec<NodeId> = (1..=n).collect();
        for &id in &voters {
            let restored = Restored::bootstrap(voters.iter().copied());
            c.add_node(id, restored);
        }
        c
    }

    /// Adds a node (a founding member, or an empty node joining later).
    pub fn add_node(&mut self, id: NodeId, restored: Restored) {
        let storage = Storage {
            snapshot: restored.snapshot.clone(),
            hs: restored.hard_state,
            ..Default::default()
        };
        let raft = Raft::new(id, self.cfg.clone(), self.seed ^ (id << 32), restored)
            .expect("valid config");
        self.nodes.insert(
            id,
            SimNode {
                id,
                raft: Some(raft),
                storage,
                sm: StateMachine::default(),
                held: Vec::new(),
                slow: false,
                incarnation: 0,
                later: Vec::new(),
            },
        );
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    pub fn alive_ids(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.alive())
            .map(|n| n.id)
            .collect()
    }

    /// The leader with the highest term among live nodes.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.alive() && n.raft().role() == Role::Leader)
            .max_by_key(|n| n.raft().term())
            .map(|n| n.id)
    }

    pub fn violated(&self) -> bool {
        self.inv.violation.is_some()
    }

    // ----- driving one node -----

    /// Feeds an event to a node and performs the resulting actions, including the
    /// follow-up events they cause (applied, snapshot built/installed). Invariants are
    /// checked after every step.
    pub fn step(&mut self, id: NodeId, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(ev) = queue.pop_front() {
            let Some(node) = self.nodes.get_mut(&id) else {
                return;
            };
            let Some(raft) = node.raft.as_mut() else {
                return;
            };
            raft.step(ev);
            let actions = raft.take_actions();
            for a in actions {
                self.perform(id, a, &mut queue);
            }
            self.inv.after_step(&self.nodes, id);
        }
    }

    fn perform(&mut self, id: NodeId, action: Action, queue: &mut VecDeque<Event>) {
        let node = self.nodes.get_mut(&id).expect("node");
        match action {
            Action::PersistHardState(hs) => node.storage.push(Op::HardState(hs)),
            Action::PersistEntries {
                truncate_from,
                entries,
            } => {
                self.inv.on_persist_entries(id, node.raft(), &entries);
                self.stats.truncations += truncate_from.is_some() as u64;
                node.storage.push(Op::Entries {
                    truncate_from,
                    entries,
                });
            }
            Action::Send { to, msg, when } => {
                let barrier = node.storage.barrier();
                if when == SendWhen::AfterPersist && barrier > 0 {
                    node.held.push((barrier, to, msg));
                } else {
                    self.log_send(id, to, &msg);
                    self.net.send(&mut self.rng, self.now, id, to, msg);
                }
            }
            Action::Apply { entries } => {
                let last = entries.last().map(|e| e.index).unwrap_or(0);
                for e in &entries {
                    self.apply_one(id, e);
                }
                self.notify(id, Event::Applied { index: last }, queue);
            }
            Action::ProposeResult { id: req, result } => self.on_propose_result(id, req, result),
            Action::ReadResult { id: req, result } => {
                let applied = node.sm.applied;
                self.stats.reads_ok += result.is_ok() as u64;
                if self.verbose {
                    self.out.push(format!("  {id}: read {req} -> {result:?}"));
                }
                self.inv.on_read_result(req, id, result, applied);
            }
            Action::MembershipResult { id: req, result } => {
                self.stats.config_changes += result.is_ok() as u64;
                self.note(format!("  {id}: membership change {req} -> {result:?}"));
            }
            Action::TransferResult { result } => {
                self.stats.transfers += result.is_ok() as u64;
                self.note(format!("  {id}: transfer -> {result:?}"));
            }
            Action::TakeSnapshot { .. } => {
                self.stats.snapshots_built += 1;
                let sm = node.sm.clone();
                let last = sm.applied;
                self.snaps.entry((last, sm.applied_term)).or_insert(sm);
                self.notify(id, Event::SnapshotBuilt { last_index: last }, queue);
            }
            Action::SaveSnapshotMeta(meta) => {
                if self.verbose {
                    self.out
                        .push(format!("  {id}: snapshot at {}", meta.last_index));
                }
                node.storage.push(Op::SnapshotMeta(meta));
            }
            Action::CompactLog { upto } => node.storage.push(Op::Compact(upto)),
            Action::InstallSnapshot {
                meta, keep_suffix, ..
            } => self.install_snapshot(id, meta, keep_suffix, queue),
            Action::RoleChanged { role, term, leader } => {
                self.stats.elections += (role == Role::Leader) as u64;
                if self.verbose {
                    self.out
                        .push(format!("  {id}: {role:?} term={term} leader={leader:?}"));
                }
            }
        }
    }

    fn notify(&mut self, id: NodeId, ev: Event, queue: &mut VecDeque<Event>) {
        if self.async_notify {
            self.nodes.get_mut(&id).expect("node").later.push(ev);
        } else {
            queue.push_back(ev);
        }
    }

    fn note(&mut self, line: String) {
        if self.verbose {
            self.out.push(line);
        }
    }

    fn log_send(&mut self, _from: NodeId, _to: NodeId, _msg: &Message) {}

    fn install_snapshot(
        &mut self,
        id: NodeId,
        meta: SnapshotMeta,
        keep_suffix: bool,
        queue: &mut VecDeque<Event>,
    ) {
        // Earlier writes are synced first, as a real installation would order them.
        self.sync(id, usize::MAX, queue);
        if self.install_fail_one_in > 0 && self.install_rng.chance(1, self.install_fail_one_in) {
            self.note(format!(
                "  {id}: snapshot install {} failed",
                meta.last_index
            ));
            queue.push_back(Event::SnapshotInstallFailed { meta });
            return;
        }
        let data = self
            .snaps
            .get(&(meta.last_index, meta.last_term))
            .cloned()
            .expect("snapshot data exists");
        let node = self.nodes.get_mut(&id).expect("node");
        node.storage.install(&meta, keep_suffix);
        self.stats.snapshots_installed += 1;
        node.sm = data;
        if self.verbose {
            self.out.push(format!(
                "  {id}: installed snapshot {}/{}",
                meta.last_index, meta.last_term
            ));
        }
        queue.push_back(Event::SnapshotInstalled { meta });
    }

    fn apply_one(&mut self, id: NodeId, e: &Entry) {
        let node = self.nodes.get_mut(&id).expect("node");
        let expected = node.sm.applied + 1;
        let r = node.sm.apply(e);
        self.inv.on_apply(id, e, expected, &r);
        if self.verbose
            && let d_engine::core::EntryPayload::Config(m) = &e.payload
        {
            self.out.push(format!(
                "  {id}: apply {}/{} config voters={:?} outgoing={:?} learners={:?}",
                e.index, e.term, m.voters, m.voters_outgoing, m.learners
            ));
        }
        let Some(op) = r.op else {
            self.check_dropped(id, e);
            return;
        };
        let at = self.nodes[&id].raft().term();
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == op.0) {
            let mine = c.waiting.as_ref().is_some_and(|w| w.node == id) && c.seq == op.1;
            if mine {
                c.waiting = None;
                c.acked = op.1;
                self.inv.on_ack(op, e.index, e.term, at);
                if self.verbose {
                    self.out.push(format!(
                        "  {id}: ack client {} seq {} at {}",
                        op.0, op.1, e.index
                    ));
                }
                return;
            }
        }
        self.check_dropped(id, e);
    }

    /// A different entry was applied where a client's proposal was accepted: dropped.
    fn check_dropped(&mut self, id: NodeId, e: &Entry) {
        for c in &mut self.clients {
            if let Some(w) = c.waiting.as_mut()
                && w.node == id
                && w.accepted.is_some_and(|(i, t)| i == e.index && t != e.term)
            {
                w.failed = true;
            }
        }
    }

    fn on_propose_result(
        &mut self,
        id: NodeId,
        req: u64,
        result: Result<(LogIndex, Term), d_engine::core::ProposeError>,
    ) {
        if self.verbose {
            self.out
                .push(format!("  {id}: propose {req} -> {result:?}"));
        }
        for c in &mut self.clients {
            if let Some(w) = c.waiting.as_mut()
                && w.req == req
            {
                match result {
                    Ok(at) => w.accepted = Some(at),
                    Err(_) => w.failed = true,
                }
            }
        }
    }

    // ----- clients -----

    pub fn add_clients(&mut self, n: u64) {
        for _ in 0..n {
            let id = self.clients.len() as u64 + 1;
            self.clients.push(Client {
                id,
                seq: 0,
                waiting: None,
                acked: 0,
            });
        }
    }

    /// Client `ci` (index into `clients`) sends its next write (or retries the current
    /// one) to `node`.
    pub fn client_send(&mut self, ci: usize, node: NodeId) {
        self.next_req += 1;
        let req = self.next_req;
        let c = &mut self.clients[ci];
        if c.waiting.is_none() {
            c.seq += 1;
        }
        c.waiting = Some(Waiting {
            node,
            req,
            since: self.now,
            accepted: None,
            failed: false,
        });
        // Every simulated client is a lane of one client process, as the Rust
        // client's concurrent writes are: sessions are told apart by lane alone.
        let session = ClientSession {
            client_id: SIM_CLIENT_ID,
            seq: c.seq,
            lane: c.id as u32,
        };
        let data = Bytes::from(format!("c{}s{}", c.id, c.seq));
        let p = Proposal {
            id: req,
            session: Some(session),
            data,
        };
        self.step(node, Event::Propose(vec![p]));
    }

    pub fn read(&mut self, node: NodeId, consistency: ReadConsistency) -> u64 {
        self.next_req += 1;
        let req = self.next_req;
        let max_commit = self.inv.max_commit();
        self.inv.on_read_issue(req, node, consistency, max_commit);
        self.step(
            node,
            Event::Read {
                id: req,
                consistency,
            },
        );
        req
    }

    pub fn change_membership(&mut self, node: NodeId, changes: Vec<ConfChange>) {
        self.next_req += 1;
        let req = self.next_req;
        let addresses = Default::default();
        self.step(
            node,
            Event::ChangeMembership {
                id: req,
                changes,
                addresses,
            },
        );
    }

    // ----- storage, crashes -----

    /// Syncs up to `n` pending writes of a node and reports them to its core.
    pub fn sync(&mut self, id: NodeId, n: usize, queue: &mut VecDeque<Event>) {
        let node = self.nodes.get_mut(&id).expect("node");
        if node.storage.pending.is_empty() {
            return;
        }
        let last = node.storage.sync(n);
        let synced = node.storage.synced_seq;
        let (ready, held): (Vec<_>, Vec<_>) =
            node.held.drain(..).partition(|(b, _, _)| *b <= synced);
        node.held = held;
        if let Some((index, term)) = last {
            queue.push_back(Event::Persisted { index, term });
        }
        for (_, to, msg) in ready {
            self.log_send(id, to, &msg);
            self.net.send(&mut self.rng, self.now, id, to, msg);
        }
    }

    pub fn sync_node(&mut self, id: NodeId, n: usize) {
        let mut q = VecDeque::new();
        self.sync(id, n, &mut q);
        for ev in q {
            self.step(id, ev);
        }
    }

    pub fn crash(&mut self, id: NodeId) {
        self.note(format!("  {id}: CRASH at tick {}", self.now));
        let node = self.nodes.get_mut(&id).expect("node");
        node.raft = None;
        node.later.clear();
        self.stats.crashes += 1;
        node.storage.crash();
        node.held.clear();
        self.inv.on_crash(id);
    }

    pub fn restart(&mut self, id: NodeId) {
        let seed = self.seed;
        let cfg = self.cfg.clone();
        let node = self.nodes.get_mut(&id).expect("node");
        if node.alive() {
            return;
        }
        node.incarnation += 1;
        if self.verbose {
            self.out.push(format!(
                "  {id}: RESTART hs={:?} durable last={:?}",
                node.storage.hs,
                node.storage.entries.keys().last()
            ));
        }
        let snap = node.storage.snapshot.clone();
        node.sm = if snap.last_index == 0 {
            StateMachine::default()
        } else {
            self.snaps[&(snap.last_index, snap.last_term)].clone()
        };
        let restored = Restored {
            hard_state: node.storage.hs,
            snapshot: snap,
            entries: node.storage.entries.values().cloned().collect(),
            applied: node.sm.applied,
        };
        let rseed = seed ^ (id << 32) ^ (node.incarnation << 48);
        node.raft = Some(Raft::new(id, cfg, rseed, restored).expect("valid config"));
        self.inv.after_step(&self.nodes, id);
    }

    // ----- time -----

    /// One simulated tick: clocks, due messages, storage syncs (random subsets unless
    /// `sync_all`).
    pub fn tick(&mut self) {
        self.now += 1;
        for id in self.alive_ids() {
            let slow = self.nodes[&id].slow;
            if !slow || self.now.is_multiple_of(SLOW_CLOCK_FACTOR) {
                self.step(id, Event::Tick);
            }
        }
        self.deliver_due();
        for id in self.alive_ids() {
            if !self.nodes[&id].later.is_empty() && self.rng.chance(1, 2) {
                let evs = std::mem::take(&mut self.nodes.get_mut(&id).expect("node").later);
                for ev in evs {
                    self.step(id, ev);
                }
            }
        }
        for id in self.alive_ids() {
            let pending = self.nodes[&id].storage.pending.len();
            if pending > 0 && self.rng.chance(1, 2) {
                let n = self.rng.range(1, pending as u64 + 1) as usize;
                self.sync_node(id, n);
            }
        }
    }

    pub fn deliver_due(&mut self) {
        let due = self.net.take_due(&mut self.rng, self.now);
        for m in due {
            self.deliver(m.from, m.to, m.msg);
        }
    }

    pub fn deliver(&mut self, from: NodeId, to: NodeId, msg: Message) {
        if self.net.is_blocked(from, to) {
            return;
        }
        if self.nodes.get(&to).is_some_and(|n| n.alive()) {
            if self.verbose {
                self.out.push(format!("  {from}->{to} {msg} (delivered)"));
            }
            self.step(to, Event::Message { from, msg });
        }
    }
}
