//! d-engine over its client gRPC service (`dengine.v1.Kv`), spoken directly rather than
//! through `d_engine::client`, so the bench builds while the engine crate changes. The
//! leader handling is deliberately minimal: writes and linearizable/lease reads go to the
//! last known leader (or round-robin while none is known); a `NOT_LEADER` reply that
//! names the leader's address is followed, at most once per endpoint per call.
//! Serializable reads go round-robin to any node. Writes carry no client session, so a
//! retried write could apply twice; the bench never retries one (it follows a redirect
//! only after a `NOT_LEADER` reply, which means "not applied").

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use d_engine_proto::v1::compare_and_swap_request::Expected;
use d_engine_proto::v1::kv_client::KvClient;
use d_engine_proto::v1::{
    CompareAndSwapRequest, ErrorCode, GetRequest, PutRequest, ReadConsistency, ReplyError,
};
use tonic::transport::Channel;

use super::{CasResult, Consistency, ErrorKind, Target, TargetError, call, lazy_channel};

/// A connection to a d-engine cluster.
pub struct DengineTarget {
    endpoints: Vec<String>,
    /// Channels by address: the given endpoints and any leader address learnt.
    clients: Mutex<HashMap<String, KvClient<Channel>>>,
    leader: Mutex<Option<String>>,
    next: AtomicUsize,
}

/// Where a call may be served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Leader,
    Any,
}

impl DengineTarget {
    /// Prepares channels to `endpoints`; connects lazily.
    pub fn new(endpoints: &[String]) -> Result<DengineTarget, TargetError> {
        if endpoints.is_empty() {
            return Err(TargetError::new(
                ErrorKind::Other,
                "no d-engine endpoints given",
            ));
        }
        let mut clients = HashMap::new();
        for e in endpoints {
            clients.insert(e.clone(), KvClient::new(lazy_channel(e)?));
        }
        Ok(DengineTarget {
            endpoints: endpoints.to_vec(),
            clients: Mutex::new(clients),
            leader: Mutex::new(None),
            next: AtomicUsize::new(0),
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

    fn client(&self, addr: &str) -> Result<KvClient<Channel>, TargetError> {
        let mut map = self.clients.lock().expect("clients lock");
        if let Some(c) = map.get(addr) {
            return Ok(c.clone());
        }
        let c = KvClient::new(lazy_channel(addr)?);
        map.insert(addr.to_string(), c.clone());
        Ok(c)
    }

    /// Runs `attempt` against the right node, following NOT_LEADER hints a bounded
    /// number of times. `attempt` returns the reply's error (if any) and its value.
    async fn routed<T, F, Fut>(&self, route: Route, attempt: F) -> Result<T, TargetError>
    where
        F: Fn(KvClient<Channel>) -> Fut,
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
        | ErrorCode::Unavailable
        | ErrorCode::ShuttingDown
        | ErrorCode::Transferring => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    };
    TargetError::new(kind, format!("{code:?}: {}", err.message))
}

impl Target for DengineTarget {
    async fn put(&self, key: Bytes, value: Bytes) -> Result<(), TargetError> {
        self.routed(Route::Leader, |mut c| {
            let req = PutRequest {
                header: None,
                key: key.clone(),
                value: value.clone(),
            };
            async move { call(c.put(req)).await.map(|r| (r.error, ())) }
        })
        .await
    }

    async fn get(&self, key: Bytes, c: Consistency) -> Result<Option<Bytes>, TargetError> {
        let (route, level) = match c {
            Consistency::Linearizable => (Route::Leader, ReadConsistency::Linearizable),
            Consistency::Lease => (Route::Leader, ReadConsistency::Lease),
            Consistency::Serializable => (Route::Any, ReadConsistency::Serializable),
        };
        self.routed(route, |mut client| {
            let req = GetRequest {
                header: None,
                key: key.clone(),
                consistency: level as i32,
            };
            async move {
                call(client.get(req))
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
        self.routed(Route::Leader, |mut c| {
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
                call(c.compare_and_swap(req)).await.map(|r| {
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
