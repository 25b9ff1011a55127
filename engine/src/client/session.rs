//! Client sessions: one client id per process, and a lane per write in flight.
//!
//! Every `Client` of a process shares the process's client id (drawn at random when the
//! first session is opened). A session is one lane of it: a write checks a lane out of
//! its client's pool for all of its attempts, and the lane's sequence number moves on
//! once the write is answered. The pool grows to the client's peak concurrency, so the
//! cluster's session table holds one record per lane a process has used, not one per
//! write. Lanes are handed out process-wide, so two `Client`s never share one.

use std::sync::Mutex;

use d_engine_proto::v1::ClientSession;

/// Lanes not in use, each with the next sequence number it will send.
pub(crate) struct SessionPool {
    idle: Mutex<Vec<ClientSession>>,
}

impl SessionPool {
    pub(crate) fn new() -> Self {
        SessionPool {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Takes an idle lane, or opens a new one.
    pub(crate) fn checkout(&self) -> ClientSession {
        let reused = self.idle.lock().expect("session pool lock").pop();
        reused.unwrap_or_else(Self::fresh)
    }

    /// A lane never used before in this process, at its first sequence number.
    pub(crate) fn fresh() -> ClientSession {
        /// This process's client id and the next lane to hand out.
        static LANES: Mutex<Option<(u64, u32)>> = Mutex::new(None);
        let mut lanes = LANES.lock().unwrap_or_else(|e| e.into_inner());
        let (client_id, next) = lanes.get_or_insert_with(|| (random_client_id(), 0));
        if *next == u32::MAX {
            // Four billion lanes opened: go on under a new id.
            (*client_id, *next) = (random_client_id(), 0);
        }
        let lane = *next;
        *next += 1;
        ClientSession {
            client_id: *client_id,
            seq: 1,
            lane,
        }
    }

    /// Returns a session after its write finished (whatever the outcome): the next
    /// write on it uses the next sequence number, so a late duplicate of the finished
    /// write can never be applied after it.
    pub(crate) fn checkin(&self, mut s: ClientSession) {
        s.seq += 1;
        self.idle.lock().expect("session pool lock").push(s);
    }
}

/// A client id unlikely to collide with any other client's: 64 bits from the standard
/// library's per-process random hasher keys mixed with the time and a counter.
fn random_client_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_id_per_process_and_a_lane_per_concurrent_write() {
        let (pool, other) = (SessionPool::new(), SessionPool::new());
        let a = pool.checkout();
        let b = pool.checkout();
        let c = other.checkout();
        assert_eq!(a.client_id, b.client_id);
        assert_eq!(a.client_id, c.client_id, "every client of the process");
        let lanes = [a.lane, b.lane, c.lane];
        assert!(lanes[0] != lanes[1] && lanes[1] != lanes[2] && lanes[0] != lanes[2]);
        pool.checkin(a);
        let again = pool.checkout();
        assert_eq!(
            (again.lane, again.seq),
            (a.lane, a.seq + 1),
            "reused, moved on"
        );
    }
}
