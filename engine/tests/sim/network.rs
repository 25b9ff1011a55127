//! Simulated network: seeded delay, loss, duplication and reordering; partitions as a
//! set of blocked directed links (so one-way partitions are possible).

use std::collections::BTreeSet;

use d_engine::core::rng::Rng;
use d_engine::core::{Message, NodeId};

#[derive(Clone, Debug)]
pub struct InFlight {
    pub from: NodeId,
    pub to: NodeId,
    pub msg: Message,
    pub deliver_at: u64,
    pub seq: u64,
}

#[derive(Clone, Debug)]
pub struct NetConfig {
    pub delay_min: u64,
    pub delay_max: u64,
    /// Per mille.
    pub loss: u64,
    pub dup: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            delay_min: 1,
            delay_max: 3,
            loss: 0,
            dup: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct Network {
    pub cfg: NetConfig,
    /// Manual mode (scenarios): no delay, no loss; delivered by explicit commands.
    pub manual: bool,
    pub queue: Vec<InFlight>,
    pub blocked: BTreeSet<(NodeId, NodeId)>,
    next_seq: u64,
}

impl Network {
    pub fn send(&mut self, rng: &mut Rng, now: u64, from: NodeId, to: NodeId, msg: Message) {
        if self.blocked.contains(&(from, to)) {
            return;
        }
        if self.manual {
            self.push(from, to, msg, now);
            return;
        }
        if rng.chance(self.cfg.loss, 1000) {
            return;
        }
        if rng.chance(self.cfg.dup, 1000) {
            let d = rng.range(self.cfg.delay_min, self.cfg.delay_max + 1);
            self.push(from, to, msg.clone(), now + d);
        }
        let d = rng.range(self.cfg.delay_min, self.cfg.delay_max + 1);
        self.push(from, to, msg, now + d);
    }

    fn push(&mut self, from: NodeId, to: NodeId, msg: Message, deliver_at: u64) {
        self.next_seq += 1;
        self.queue.push(InFlight {
            from,
            to,
            msg,
            deliver_at,
            seq: self.next_seq,
        });
    }

    /// Removes and returns the messages due at `now`, in a seeded random order.
    pub fn take_due(&mut self, rng: &mut Rng, now: u64) -> Vec<InFlight> {
        let mut due = Vec::new();
        let mut k = 0;
        while k < self.queue.len() {
            if self.queue[k].deliver_at <= now {
                due.push(self.queue.swap_remove(k));
            } else {
                k += 1;
            }
        }
        due.sort_by_key(|m| m.seq);
        for i in (1..due.len()).rev() {
            let j = rng.range(0, i as u64 + 1) as usize;
            due.swap(i, j);
        }
        due
    }

    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.blocked.contains(&(from, to))
    }

    /// Cuts both directions between the two groups.
    pub fn partition(&mut self, a: &[NodeId], b: &[NodeId]) {
        for &x in a {
            for &y in b {
                self.blocked.insert((x, y));
                self.blocked.insert((y, x));
            }
        }
    }

    pub fn heal(&mut self) {
        self.blocked.clear();
    }
}
