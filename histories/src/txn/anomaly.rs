//! Anomaly classes, consistency models, and which classes rule out which
//! models (Adya's phenomena as Elle classifies them).

use serde::Serialize;

use crate::txn::graph::EdgeKind;

/// An anomaly class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum AnomalyKind {
    /// A cycle of write dependencies (ww) only.
    G0,
    /// A committed read of a value written by a failed transaction.
    G1a,
    /// A committed read of a value its writer later overwrote itself.
    G1b,
    /// A cycle of ww and wr edges with at least one wr.
    G1c,
    /// A cycle with exactly one anti-dependency (rw).
    GSingle,
    /// A cycle with two or more anti-dependencies (rw), e.g. write skew.
    G2Item,
    G0Process,
    G1cProcess,
    GSingleProcess,
    G2ItemProcess,
    G0Realtime,
    G1cRealtime,
    GSingleRealtime,
    G2ItemRealtime,
    /// A read that disagrees with the transaction's own earlier reads or
    /// writes of the key.
    Internal,
    /// Two reads of a key that are not prefixes of one another.
    IncompatibleOrder,
    /// A read holding the same appended value twice.
    DuplicateElements,
    /// A read of a value no transaction wrote.
    GarbageRead,
}

impl AnomalyKind {
    pub fn as_str(self) -> &'static str {
        use AnomalyKind::*;
        match self {
            G0 => "G0",
            G1a => "G1a",
            G1b => "G1b",
            G1c => "G1c",
            GSingle => "G-single",
            G2Item => "G2-item",
            G0Process => "G0-process",
            G1cProcess => "G1c-process",
            GSingleProcess => "G-single-process",
            G2ItemProcess => "G2-item-process",
            G0Realtime => "G0-realtime",
            G1cRealtime => "G1c-realtime",
            GSingleRealtime => "G-single-realtime",
            G2ItemRealtime => "G2-item-realtime",
            Internal => "internal",
            IncompatibleOrder => "incompatible-order",
            DuplicateElements => "duplicate-elements",
            GarbageRead => "garbage-read",
        }
    }

    /// The class of a cycle with these edge labels: by the number of rw
    /// edges, then whether process or real-time edges were needed.
    pub fn of_cycle(labels: &[EdgeKind]) -> AnomalyKind {
        use AnomalyKind::*;
        let rw = labels.iter().filter(|&&k| k == EdgeKind::Rw).count();
        let wr = labels.contains(&EdgeKind::Wr);
        let base = match rw {
            0 if wr => 1,
            0 => 0,
            1 => 2,
            _ => 3,
        };
        let table = if labels.contains(&EdgeKind::Realtime) {
            [G0Realtime, G1cRealtime, GSingleRealtime, G2ItemRealtime]
        } else if labels.contains(&EdgeKind::Process) {
            [G0Process, G1cProcess, GSingleProcess, G2ItemProcess]
        } else {
            [G0, G1c, GSingle, G2Item]
        };
        table[base]
    }

    /// Whether the class is a cycle (as opposed to a bad read).
    pub fn is_cycle(self) -> bool {
        use AnomalyKind::*;
        !matches!(
            self,
            G1a | G1b | Internal | IncompatibleOrder | DuplicateElements | GarbageRead
        )
    }
}

/// The consistency models a history can be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    StrictSerializable,
    Serializable,
    SnapshotIsolation,
    RepeatableRead,
    ReadCommitted,
    ReadUncommitted,
}

impl Consistency {
    pub const ALL: [Consistency; 6] = [
        Consistency::StrictSerializable,
        Consistency::Serializable,
        Consistency::SnapshotIsolation,
        Consistency::RepeatableRead,
        Consistency::ReadCommitted,
        Consistency::ReadUncommitted,
    ];

    pub fn parse(name: &str) -> Option<Consistency> {
        Consistency::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::StrictSerializable => "strict-serializable",
            Consistency::Serializable => "serializable",
            Consistency::SnapshotIsolation => "snapshot-isolation",
            Consistency::RepeatableRead => "repeatable-read",
            Consistency::ReadCommitted => "read-committed",
            Consistency::ReadUncommitted => "read-uncommitted",
        }
    }

    /// Whether a history with an anomaly of class `kind` can satisfy this
    /// model. Following Adya and Elle: read uncommitted (PL-1) rules out G0;
    /// read committed (PL-2) also G1a, G1b, G1c; repeatable read (PL-2.99,
    /// item level) also G-single and G2-item; snapshot isolation rules out
    /// G0, G1 and G-single but allows G2-item (write skew); serializable
    /// rules out every data cycle; strict serializable also the cycles that
    /// need process or real-time order. Bad reads (garbage, duplicates,
    /// incompatible orders, internal inconsistency) no model allows.
    pub fn rules_out(self, kind: AnomalyKind) -> bool {
        use AnomalyKind::*;
        use Consistency::*;
        match kind {
            Internal | IncompatibleOrder | DuplicateElements | GarbageRead => true,
            G0 => true,
            G1a | G1b | G1c => self != ReadUncommitted,
            GSingle => matches!(
                self,
                StrictSerializable | Serializable | SnapshotIsolation | RepeatableRead
            ),
            G2Item => matches!(self, StrictSerializable | Serializable | RepeatableRead),
            _ => self == StrictSerializable,
        }
    }
}

/// One step of a cycle: `from -> to` because of `kind`, and the data that
/// prove it.
#[derive(Debug, Clone, Serialize)]
pub struct CycleStep {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    pub why: String,
}

/// One anomaly found.
#[derive(Debug, Clone, Serialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    /// The transactions involved (for a cycle: in cycle order).
    pub txns: Vec<usize>,
    /// For a cycle: its edges, the last one closing it.
    pub steps: Vec<CycleStep>,
    /// A sentence saying what happened.
    pub explanation: String,
}

/// How many anomalies of one class are kept with their explanation; the
/// rest are only counted (a broken database can produce millions).
pub const EXAMPLES_PER_KIND: usize = 8;

/// The anomalies found so far: counts of all, examples of the first few.
#[derive(Debug, Default, Clone)]
pub struct Findings {
    pub examples: Vec<Anomaly>,
    pub counts: std::collections::BTreeMap<AnomalyKind, usize>,
}

impl Findings {
    /// Counts one anomaly; builds its description (with `describe`) only
    /// if it is kept as an example.
    pub fn add(&mut self, kind: AnomalyKind, txns: &[usize], describe: impl FnOnce() -> String) {
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        if *n <= EXAMPLES_PER_KIND {
            self.examples.push(Anomaly {
                kind,
                txns: txns.to_vec(),
                steps: Vec::new(),
                explanation: describe(),
            });
        }
    }

    /// Keeps a cycle, unless a shorter one of its class is already kept
    /// in full number.
    pub fn add_cycle(&mut self, anomaly: Anomaly) {
        let n = self.counts.entry(anomaly.kind).or_insert(0);
        *n += 1;
        if *n <= EXAMPLES_PER_KIND {
            self.examples.push(anomaly);
        }
    }

    pub fn count(&self, kind: AnomalyKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AnomalyKind::*;
    use EdgeKind::*;

    #[test]
    fn classes_of_cycles() {
        assert_eq!(AnomalyKind::of_cycle(&[Ww, Ww]), G0);
        assert_eq!(AnomalyKind::of_cycle(&[Ww, Wr]), G1c);
        assert_eq!(AnomalyKind::of_cycle(&[Rw, Wr]), GSingle);
        assert_eq!(AnomalyKind::of_cycle(&[Rw, Rw]), G2Item);
        assert_eq!(AnomalyKind::of_cycle(&[Rw, Process]), GSingleProcess);
        assert_eq!(AnomalyKind::of_cycle(&[Ww, Process, Realtime]), G0Realtime);
    }

    #[test]
    fn write_skew_is_allowed_by_snapshot_isolation_only_among_the_strong() {
        assert!(!Consistency::SnapshotIsolation.rules_out(G2Item));
        assert!(Consistency::Serializable.rules_out(G2Item));
        assert!(Consistency::SnapshotIsolation.rules_out(GSingle));
        assert!(!Consistency::Serializable.rules_out(GSingleRealtime));
        assert!(Consistency::StrictSerializable.rules_out(GSingleRealtime));
        assert!(!Consistency::ReadUncommitted.rules_out(G1a));
        assert_eq!(
            Consistency::parse("read-committed"),
            Some(Consistency::ReadCommitted)
        );
    }
}
