//! A pool of client sessions, each used by one write at a time.

use std::sync::Mutex;

use d_engine_proto::v1::ClientSession;

/// Sessions not in use, each with the next sequence number it will send.
pub(crate) struct SessionPool {
    idle: Mutex<Vec<ClientSession>>,
}

impl SessionPool {
    pub(crate) fn new() -> Self {
        SessionPool {
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Takes an idle session, or opens a new one with a fresh random client id.
    pub(crate) fn checkout(&self) -> ClientSession {
        let reused = self.idle.lock().expect("session pool lock").pop();
        reused.unwrap_or_else(Self::fresh)
    }

    /// A new session: a fresh random client id, at its first sequence number.
    pub(crate) fn fresh() -> ClientSession {
        ClientSession {
            client_id: random_client_id(),
            seq: 1,
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
    fn concurrent_writes_get_distinct_sessions_and_sequence_numbers_grow() {
        let pool = SessionPool::new();
        let a = pool.checkout();
        let b = pool.checkout();
        assert_ne!(a.client_id, b.client_id);
        pool.checkin(a);
        let again = pool.checkout();
        assert_eq!((again.client_id, again.seq), (a.client_id, a.seq + 1));
    }
}
