//! Client sessions: the rule the apply layer follows so that a retried write is
//! applied at most once.
//!
//! A client numbers its writes `seq = 1, 2, 3, …` and has at most one write outstanding
//! (it retries the same `seq` until it gets an answer, then moves on). The state machine
//! keeps, per client, the highest `seq` applied; a command whose `seq` is not above it is
//! a duplicate (a retry of something already applied) and is skipped. The table is part
//! of the replicated state: it must be stored in snapshots and restored with them.

use std::collections::BTreeMap;

use super::types::ClientSession;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSessions {
    last_seq: BTreeMap<u64, u64>,
}

impl ClientSessions {
    /// Decides whether a command carrying `session` takes effect, and records it if so.
    pub fn admit(&mut self, session: ClientSession) -> bool {
        let last = self.last_seq.entry(session.client_id).or_insert(0);
        if session.seq > *last {
            *last = session.seq;
            true
        } else {
            false
        }
    }

    /// Highest applied sequence number of a client.
    pub fn last_seq(&self, client_id: u64) -> u64 {
        self.last_seq.get(&client_id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_skipped() {
        let mut s = ClientSessions::default();
        let a = ClientSession {
            client_id: 1,
            seq: 1,
        };
        assert!(s.admit(a));
        assert!(!s.admit(a));
        assert!(s.admit(ClientSession {
            client_id: 1,
            seq: 2
        }));
        assert!(s.admit(ClientSession {
            client_id: 2,
            seq: 1
        }));
        assert_eq!(s.last_seq(1), 2);
    }
}
