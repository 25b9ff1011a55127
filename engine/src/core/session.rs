//! Client sessions: the rule the apply layer follows so that a retried write is
//! applied at most once.
//!
//! Each lane of a client (`(client_id, lane)`: see [`ClientSession`]) numbers its writes
//! `seq = 1, 2, 3, …` and has at most one write outstanding (it retries the same `seq`
//! until it gets an answer, then moves on). The state machine keeps, per lane, the
//! highest `seq` applied; a command whose `seq` is not above it is
//! a duplicate (a retry of something already applied) and is skipped. The table is part
//! of the replicated state: it must be stored in snapshots and restored with them.

use std::collections::BTreeMap;

use super::types::{ClientSession, SessionKey};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSessions {
    last_seq: BTreeMap<SessionKey, u64>,
}

impl ClientSessions {
    /// Decides whether a command carrying `session` takes effect, and records it if so.
    pub fn admit(&mut self, session: ClientSession) -> bool {
        let last = self.last_seq.entry(session.key()).or_insert(0);
        if session.seq > *last {
            *last = session.seq;
            true
        } else {
            false
        }
    }

    /// Highest applied sequence number of a session.
    pub fn last_seq(&self, key: SessionKey) -> u64 {
        self.last_seq.get(&key).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_skipped() {
        let mut s = ClientSessions::default();
        let session = |client_id, lane, seq| ClientSession {
            client_id,
            seq,
            lane,
        };
        let a = session(1, 0, 1);
        assert!(s.admit(a));
        assert!(!s.admit(a));
        assert!(s.admit(session(1, 0, 2)));
        assert!(s.admit(session(2, 0, 1)));
        assert!(s.admit(session(1, 1, 1)), "another lane of the same client");
        assert_eq!(s.last_seq((1, 0)), 2);
        assert_eq!(s.last_seq((1, 1)), 1);
    }
}
