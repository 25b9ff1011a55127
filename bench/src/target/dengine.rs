//! d-engine over its client gRPC service (`dengine.v1.Kv`), spoken directly rather than
//! through `d_engine::client`, so the bench builds while the engine crate changes. The
//! leader handling is deliberately minimal: writes and linearizable/lease reads go to the
//! last known leader (or round-robin while none is known); a `NOT_LEADER` reply that
//! names the leader's address is followed, at most once per endpoint per call.
//! Serializable reads go round-robin to any node. Writes carry no client session, so a
//! retried write could apply twice; the bench never retries one (it follows a redirect
//! only after a `NOT_LEADER` reply, which means "not applied").
//!
//! Like the Rust client (`d_engine::client`), the target sends concurrent calls to one
//! node together on `Batch` RPCs through the client's [`Batcher`], unless batching is
//! off (`batch_in_flight` 0): each call is still its own operation with its own
//! result, timed from its own send to its own reply.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use d_engine::client::Batcher;
use d_engine_proto::v1::compare_and_swap_request::Expected;
use d_engine_proto::v1::{
    ClientSession, CompareAndSwapRequest, CompareAndSwapResponse, ErrorCode, GetRequest,
    GetResponse, PutRequest, PutResponse, ReadConsistency, ReplyError, RequestHeader,
};
use tonic::transport::Channel;

use super::{BatchingStats, CasResult, Consistency, ErrorKind, Target, TargetError, lazy_channel};

/// The way to one node: its batcher (made on first use, inside the runtime; with
/// batching off it sends every call alone).
#[derive(Clone)]
struct Link {
    channel: Channel,
    batcher: Option<Batcher>,
}

impl Link {
    fn batcher(&self) -> Result<&Batcher, TargetError> {
        self.batcher
            .as_ref()
            .ok_or_else(|| TargetError::new(ErrorKind::Other, "no batcher for this node"))
    }

    async fn put(self, req: PutRequest) -> Result<PutResponse, TargetError> {
        let r = self.batcher()?.put(req).await;
        r.map_err(|s| TargetError::from_status(&s))
    }

    async fn get(self, req: GetRequest) -> Result<GetResponse, TargetError> {
        let r = self.batcher()?.get(req).await;
        r.map_err(|s| TargetError::from_status(&s))
    }

    async fn cas(self, req: CompareAndSwapRequest) -> Result<CompareAndSwapResponse, TargetError> {
        let r = self.batcher()?.compare_and_swap(req).await;
        r.map_err(|s| TargetError::from_status(&s))
    }
}

/// A connection to a d-engine cluster.
pub struct DengineTarget {
    endpoints: Vec<String>,
    /// Links by address: the given endpoints and any leader address learnt.
    clients: Mutex<HashMap<String, Link>>,
    /// Batches outstanding per node; 0 = every call on its own RPC.
    batch_in_flight: usize,
    /// Every batcher made, for the statistics.
    batchers: Mutex<Vec<Batcher>>,
    leader: Mutex<Option<String>>,
    next: AtomicUsize,
    /// When set, every put carries a session of its own: client ids from here up.
    fresh_sessions: Option<AtomicU64>,
}

/// Where a call may be served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Leader,
    Any,
}

impl DengineTarget {
    /// Prepares channels to `endpoints`; connects lazily. With `batch_in_flight` > 0,
    /// concurrent calls to a node share `Batch` RPCs, at most that many outstanding.
    pub fn new(endpoints: &[String], batch_in_flight: usize) -> Result<DengineTarget, TargetError> {
        if endpoints.is_empty() {
            return Err(TargetError::new(
                ErrorKind::Other,
                "no d-engine endpoints given",
            ));
        }
        let mut clients = HashMap::new();
        for e in endpoints {
            clients.insert(
                e.clone(),
                Link {
                    channel: lazy_channel(e)?,
                    batcher: None,
                },
            );
        }
        Ok(DengineTarget {
            endpoints: endpoints.to_vec(),
            clients: Mutex::new(clients),
            batch_in_flight,
            batchers: Mutex::new(Vec::new()),
            leader: Mutex::new(None),
            next: AtomicUsize::new(0),
            fresh_sessions: None,
        })
    }

    /// Every put opens a session of its own (see `RunOptions::dengine_fresh_sessions`).
    /// Ids start from a per-process value so two runs do not reuse each other's.
    pub fn with_fresh_sessions(mut self, on: bool) -> Self {
        let base = (std::process::id() as u64) << 40 | 1;
        self.fresh_sessions = on.then(|| AtomicU64::new(base));
        self
    }

    /// The header of a put: a new session (sequence 1) when asked for.
    fn put_header(&self) -> Option<RequestHeader> {
        let ids = self.fresh_sessions.as_ref()?;
        Some(RequestHeader {
            cluster_id: 0,
            session: Some(ClientSession {
                client_id: ids.fetch_add(1, Ordering::Relaxed),
                seq: 1,
                lane: 0,
            }),
            timeout_ms: 0,
        })
    }

    fn round_robin(&self) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len();
        self.endpoints[i].clone()
    }

    fn pick(&self, route: Route) -> String {
        if route == Route::Leader
            && let Some(l) = self.leader.lock().expect("leader lock").clone()
        {
            return l;
        }
        self.round_robin()
    }

    fn client(&self, addr: &str) -> Result<Link, TargetError> {
        let mut map = self.clients.lock().expect("clients lock");
        if let Some(c) = map.get(addr)
            && c.batcher.as_ref().is_some_and(Batcher::is_alive)
        {
            return Ok(c.clone());
        }
        let channel = match map.get(addr) {
            Some(c) => c.channel.clone(),
            None => lazy_channel(addr)?,
        };
        // The batcher shares the channel: one connection per node either way.
        let b = Batcher::spawn(channel.clone(), self.batch_in_flight);
        self.batchers.lock().expect("batchers lock").push(b.clone());
        let link = Link {
            channel,
            batcher: Some(b),
        };
        map.insert(addr.to_string(), link.clone());
        Ok(link)
    }

    /// Runs `attempt` against the right node, following NOT_LEADER hints a bounded
    /// number of times. `attempt` returns the reply's error (if any) and its value.
    async fn routed<T, F, Fut>(&self, route: Route, attempt: F) -> Result<T, TargetError>
    where
        F: Fn(Link) -> Fut,
        Fut: Future<Output = Result<(Option<ReplyError>, T), TargetError>>,
    {
        let mut addr = self.pick(route);
        let mut last = None;
        for _ in 0..=self.endpoints.len() {
            let result = attempt(self.client(&addr)?).await;
            let (err, value) = match result {
                Ok(r) => r,
                Err(e) => {
                    self.forget_leader(&addr);
                    return Err(e);
                }
            };
            let Some(err) = err.filter(|e| e.code != ErrorCode::Ok as i32) else {
                if route == Route::Leader {
                    *self.leader.lock().expect("leader lock") = Some(addr);
                }
                return Ok(value);
            };
            let classified = classify(&err);
            if classified.kind != ErrorKind::NotLeader {
                return Err(classified);
            }
            self.forget_leader(&addr);
            addr = if err.leader_addr.is_empty() {
                self.round_robin()
            } else {
                err.leader_addr.clone()
            };
            last = Some(classified);
        }
        Err(last.unwrap_or_else(|| TargetError::new(ErrorKind::NotLeader, "no leader found")))
    }

    fn forget_leader(&self, addr: &str) {
        let mut l = self.leader.lock().expect("leader lock");
        if l.as_deref() == Some(addr) {
            *l = None;
        }
    }
}

/// A typed reply error → an error kind.
fn classify(err: &ReplyError) -> TargetError {
    let code = ErrorCode::try_from(err.code).unwrap_or(ErrorCode::Internal);
    let kind = match code {
        ErrorCode::NotLeader => ErrorKind::NotLeader,
        ErrorCode::Timeout => ErrorKind::Timeout,
        ErrorCode::TooLarge => ErrorKind::TooLarge,
        ErrorCode::Busy
        | ErrorCode::NoSpace
        | ErrorCode::Unavailable
        | ErrorCode::ShuttingDown
        | ErrorCode::Transferring => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    TargetError::new(kind, format!("{code:?}: {}", err.message))
}

impl Target for DengineTarget {
    fn batching(&self) -> Option<BatchingStats> {
        if self.batch_in_flight == 0 {
            return None;
        }
        let mut stats = BatchingStats {
            in_flight: self.batch_in_flight,
            batches: 0,
            ops: 0,
            alone: 0,
        };
        for b in self.batchers.lock().expect("batchers lock").iter() {
            stats.batches += b.stats().batches.load(Ordering::Relaxed);
            stats.ops += b.stats().ops.load(Ordering::Relaxed);
            stats.alone += b.stats().alone.load(Ordering::Relaxed);
        }
        Some(stats)
    }

    async fn put(&self, key: Bytes, value: Bytes) -> Result<(), TargetError> {
        // One header for every attempt: a redirected resend is the same session write.
        let header = self.put_header();
        self.routed(Route::Leader, |c| {
            let req = PutRequest {
                header,
                key: key.clone(),
                value: value.clone(),
            };
            async move { c.put(req).await.map(|r| (r.error, ())) }
        })
        .await
    }

    async fn get(&self, key: Bytes, c: Consistency) -> Result<Option<Bytes>, TargetError> {
        let (route, level) = match c {
            Consistency::Linearizable => (Route::Leader, ReadConsistency::Linearizable),
            Consistency::Lease => (Route::Leader, ReadConsistency::Lease),
            Consistency::Serializable => (Route::Any, ReadConsistency::Serializable),
        };
        self.routed(route, |client| {
            let req = GetRequest {
                header: None,
                key: key.clone(),
                consistency: level as i32,
            };
            async move {
                client
                    .get(req)
                    .await
                    .map(|r| (r.error, r.found.then_some(r.value)))
            }
        })
        .await
    }

    async fn cas(
        &self,
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> Result<CasResult, TargetError> {
        self.routed(Route::Leader, |c| {
            let req = CompareAndSwapRequest {
                header: None,
                key: key.clone(),
                expected: Some(match &expected {
                    Some(v) => Expected::ExpectedValue(v.clone()),
                    None => Expected::ExpectAbsent(true),
                }),
                new_value: new.clone(),
            };
            async move {
                c.cas(req).await.map(|r| {
                    let current = r.current_found.then_some(r.current_value);
                    let result = CasResult {
                        succeeded: r.succeeded,
                        current: if r.succeeded { None } else { current },
                    };
                    (r.error, result)
                })
            }
        })
        .await
    }
}
