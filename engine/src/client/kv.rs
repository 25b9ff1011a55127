//! The key-value client and the retry loop every call goes through.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use d_engine_proto::v1::compare_and_swap_request::Expected;
use d_engine_proto::v1::kv_client::KvClient;
use d_engine_proto::v1::*;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use super::batch::Batcher;
use super::retry::Backoff;
use super::session::SessionPool;
use super::{ClientConfig, ClientError};

pub use d_engine_proto::v1::ReadConsistency;

/// A write the cluster applied: the log index it was applied at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteAck {
    pub index: u64,
}

/// The result of a compare-and-swap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasOutcome {
    pub succeeded: bool,
    /// When the swap did not happen: what the key held (None = absent).
    pub current: Option<Bytes>,
    pub index: u64,
}

/// One page of a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanPage {
    pub items: Vec<(Bytes, Bytes)>,
    /// Set when the range holds more keys: scan again from here.
    pub next_key: Option<Bytes>,
}

/// A connection to a cluster. Cheap to clone; clones share connections and sessions.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    endpoints: Vec<String>,
    channels: Mutex<HashMap<String, Conn>>,
    /// Where the last successful call went, or the last leader hint.
    leader: Mutex<Option<String>>,
    /// Round-robin position among endpoints when no leader is known.
    cursor: Mutex<usize>,
    sessions: SessionPool,
}

/// The way to one node: its channel, and the batcher that shares it among concurrent
/// calls (every call alone when batching is off).
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) channel: Channel,
    pub(crate) batcher: Batcher,
}

/// What every reply carries: a header and maybe an error.
pub(crate) trait Reply {
    fn error(&self) -> Option<&ReplyError>;
    fn header(&self) -> Option<&ResponseHeader>;
}

macro_rules! impl_reply {
    ($($t:ty),* $(,)?) => {$(
        impl Reply for $t {
            fn error(&self) -> Option<&ReplyError> { self.error.as_ref() }
            fn header(&self) -> Option<&ResponseHeader> { self.header.as_ref() }
        }
    )*};
}
impl_reply!(
    PutResponse,
    GetResponse,
    DeleteResponse,
    CompareAndSwapResponse,
    ScanResponse,
    AdminResponse,
    StatusResponse
);

/// Whether an operation changes state: a write whose attempt may have reached the
/// leader has an unknown outcome if the deadline passes; a read never does.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    Read,
    Write,
}

fn normalize(addr: &str) -> String {
    if addr.starts_with("http://") || addr.starts_with("https://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

impl Client {
    /// Creates a client. Connections are opened lazily, on first use, so this does not
    /// wait for (or require) any node to be up.
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.endpoints.is_empty() {
            return Err(ClientError::Config("no endpoints given".into()));
        }
        let endpoints: Vec<String> = config.endpoints.iter().map(|e| normalize(e)).collect();
        for e in &endpoints {
            Endpoint::from_shared(e.clone())
                .map_err(|err| ClientError::Config(format!("bad endpoint {e}: {err}")))?;
        }
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                endpoints,
                channels: Mutex::new(HashMap::new()),
                leader: Mutex::new(None),
                cursor: Mutex::new(0),
                sessions: SessionPool::new(),
            }),
        })
    }

    fn request_header(&self, session: Option<ClientSession>) -> Option<RequestHeader> {
        let c = &self.inner.config;
        Some(RequestHeader {
            cluster_id: c.cluster_id,
            session,
            timeout_ms: c.attempt_timeout.as_millis().min(u32::MAX as u128) as u32,
        })
    }

    /// Runs a write with a session checked out for all of its attempts.
    async fn write<R, F, Fut>(&self, attempt: F) -> Result<R, ClientError>
    where
        R: Reply,
        F: Fn(Conn, Option<RequestHeader>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let sessions = &self.inner.sessions;
        let mut session = self.inner.config.sessions.then(|| sessions.checkout());
        let header = self.request_header(session);
        let mut result = self
            .inner
            .execute(OpKind::Write, |ch| attempt(ch, header))
            .await;
        if let Err(ClientError::Server {
            code: ErrorCode::SessionExpired,
            maybe_applied: false,
            ..
        }) = &result
        {
            // The cluster dropped this session (idle or evicted) and applied nothing:
            // no attempt of this write can have taken effect. Open a new session and
            // send it again; the old one is not returned to the pool.
            session = Some(SessionPool::fresh());
            let header = self.request_header(session);
            result = self
                .inner
                .execute(OpKind::Write, |ch| attempt(ch, header))
                .await;
        }
        if let Some(s) = session {
            sessions.checkin(s);
        }
        result
    }

    pub async fn put(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<WriteAck, ClientError> {
        let (key, value) = (key.into(), value.into());
        let r = self
            .write(|ch, header| {
                let req = PutRequest {
                    header,
                    key: key.clone(),
                    value: value.clone(),
                };
                async move { ch.batcher.put(req).await.map(tonic::Response::new) }
            })
            .await?;
        Ok(WriteAck {
            index: applied_index(&r),
        })
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<bool, ClientError> {
        let key = key.into();
        let r = self
            .write(|ch, header| {
                let req = DeleteRequest {
                    header,
                    key: key.clone(),
                };
                async move { ch.batcher.delete(req).await.map(tonic::Response::new) }
            })
            .await?;
        Ok(r.existed)
    }

    /// Sets `key` to `new` if it holds `expected` (`None` = if it is absent).
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        new: impl Into<Bytes>,
    ) -> Result<CasOutcome, ClientError> {
        let (key, new) = (key.into(), new.into());
        let expected = Some(match expected {
            Some(v) => Expected::ExpectedValue(v),
            None => Expected::ExpectAbsent(true),
        });
        let r = self
            .write(|ch, header| {
                let req = CompareAndSwapRequest {
                    header,
                    key: key.clone(),
                    expected: expected.clone(),
                    new_value: new.clone(),
                };
                async move {
                    ch.batcher
                        .compare_and_swap(req)
                        .await
                        .map(tonic::Response::new)
                }
            })
            .await?;
        Ok(CasOutcome {
            succeeded: r.succeeded,
            current: r.current_found.then(|| r.current_value.clone()),
            index: applied_index(&r),
        })
    }

    /// Reads `key` at the given consistency; `None` if it is absent.
    pub async fn get(
        &self,
        key: impl Into<Bytes>,
        consistency: ReadConsistency,
    ) -> Result<Option<Bytes>, ClientError> {
        let key = key.into();
        let header = self.request_header(None);
        let r = self
            .inner
            .execute(OpKind::Read, |ch| {
                let req = GetRequest {
                    header,
                    key: key.clone(),
                    consistency: consistency as i32,
                };
                async move { ch.batcher.get(req).await.map(tonic::Response::new) }
            })
            .await?;
        Ok(r.found.then_some(r.value))
    }

    /// Keys with `prefix` (or in `[start, end)` when `prefix` is empty), at most `limit`.
    pub async fn scan(
        &self,
        prefix: impl Into<Bytes>,
        start: impl Into<Bytes>,
        end: impl Into<Bytes>,
        limit: u32,
        consistency: ReadConsistency,
    ) -> Result<ScanPage, ClientError> {
        let (prefix, start, end) = (prefix.into(), start.into(), end.into());
        let header = self.request_header(None);
        let r = self
            .inner
            .execute(OpKind::Read, |ch| {
                let req = ScanRequest {
                    header,
                    prefix: prefix.clone(),
                    start: start.clone(),
                    end: end.clone(),
                    limit,
                    consistency: consistency as i32,
                };
                async move { KvClient::new(ch.channel).scan(req).await }
            })
            .await?;
        Ok(ScanPage {
            items: r.items.into_iter().map(|kv| (kv.key, kv.value)).collect(),
            next_key: r.more.then_some(r.next_key),
        })
    }
}

fn applied_index(r: &impl Reply) -> u64 {
    r.header().map_or(0, |h| h.applied_index)
}

/// What to do after one attempt.
enum Verdict<R> {
    Done(R),
    Fail(ClientError),
    /// Try again; `redirect` = go to the new leader at once, without backing off.
    Retry {
        reason: String,
        maybe_applied: bool,
        redirect: bool,
    },
}

impl Inner {
    /// Runs `attempt` against the leader (or the next endpoint), retrying until the
    /// deadline. A NOT_LEADER reply with a hint is followed immediately; anything else
    /// retryable waits an exponentially growing, jittered pause first.
    pub(crate) async fn execute<R, F, Fut>(
        &self,
        kind: OpKind,
        attempt: F,
    ) -> Result<R, ClientError>
    where
        R: Reply,
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.config.deadline;
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut maybe_applied = false;
        let mut redirects = 0;
        loop {
            let target = self.pick_target();
            let conn = self.conn(&target)?;
            let budget = self
                .config
                .attempt_timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            let outcome = tokio::time::timeout(budget, attempt(conn)).await;
            let (reason, redirect) = match self.judge(kind, &target, outcome) {
                Verdict::Done(r) => return Ok(r),
                Verdict::Fail(e) => return Err(e.after_attempts(maybe_applied)),
                Verdict::Retry {
                    reason,
                    maybe_applied: m,
                    redirect,
                } => {
                    maybe_applied |= m;
                    (reason, redirect)
                }
            };
            // Follow up to a few redirects in a row without pausing; a redirect loop
            // (nodes disagreeing during an election) falls back to backing off.
            let pause = if redirect && redirects < 3 {
                redirects += 1;
                Duration::ZERO
            } else {
                redirects = 0;
                backoff.next_delay()
            };
            if Instant::now() + pause >= deadline {
                return Err(if maybe_applied {
                    ClientError::Timeout { last: reason }
                } else {
                    ClientError::Unavailable { last: reason }
                });
            }
            tokio::time::sleep(pause).await;
        }
    }

    fn judge<R: Reply>(
        &self,
        kind: OpKind,
        target: &str,
        outcome: Result<Result<tonic::Response<R>, tonic::Status>, tokio::time::error::Elapsed>,
    ) -> Verdict<R> {
        let write = kind == OpKind::Write;
        let reply = match outcome {
            Err(_) => {
                self.forget_leader(target);
                return Verdict::Retry {
                    reason: format!("{target}: attempt timed out"),
                    maybe_applied: write,
                    redirect: false,
                };
            }
            Ok(Err(status)) => {
                self.forget_leader(target);
                // The request may have reached the node before the transport failed.
                return Verdict::Retry {
                    reason: format!("{target}: {status}"),
                    maybe_applied: write,
                    redirect: false,
                };
            }
            Ok(Ok(resp)) => resp.into_inner(),
        };
        let Some(err) = reply.error().filter(|e| e.code != ErrorCode::Ok as i32) else {
            *self.leader.lock().expect("leader lock") = Some(target.to_string());
            return Verdict::Done(reply);
        };
        let code = ErrorCode::try_from(err.code).unwrap_or(ErrorCode::Internal);
        let reason = format!("{target}: {code:?}: {}", err.message);
        match code {
            ErrorCode::Ok => unreachable!("filtered above"),
            ErrorCode::NotLeader => {
                let hint = (!err.leader_addr.is_empty()).then(|| normalize(&err.leader_addr));
                let redirect = hint.as_deref().is_some_and(|h| h != target);
                *self.leader.lock().expect("leader lock") = hint;
                Verdict::Retry {
                    reason,
                    maybe_applied: false,
                    redirect,
                }
            }
            ErrorCode::NoSpace => {
                // Not done. Another node, the leader named if any, may have room.
                let hint = (!err.leader_addr.is_empty()).then(|| normalize(&err.leader_addr));
                let redirect = hint.as_deref().is_some_and(|h| h != target);
                if redirect {
                    *self.leader.lock().expect("leader lock") = hint;
                } else {
                    self.forget_leader(target);
                }
                Verdict::Retry {
                    reason,
                    maybe_applied: false,
                    redirect,
                }
            }
            ErrorCode::Busy | ErrorCode::Transferring => Verdict::Retry {
                reason,
                maybe_applied: false,
                redirect: false,
            },
            // The server sends these only for requests it never handed to Raft (a
            // write already in the log gets TIMEOUT when the node stops), so they are
            // safe to retry as "not applied".
            ErrorCode::Unavailable | ErrorCode::ShuttingDown => {
                self.forget_leader(target);
                Verdict::Retry {
                    reason,
                    maybe_applied: false,
                    redirect: false,
                }
            }
            ErrorCode::Timeout => Verdict::Retry {
                reason,
                maybe_applied: write,
                redirect: false,
            },
            ErrorCode::TooLarge => Verdict::Fail(ClientError::TooLarge(err.message.clone())),
            ErrorCode::InvalidArgument => {
                Verdict::Fail(ClientError::InvalidArgument(err.message.clone()))
            }
            ErrorCode::WrongCluster => {
                Verdict::Fail(ClientError::WrongCluster(err.message.clone()))
            }
            ErrorCode::MembershipChangeInProgress
            | ErrorCode::SessionExpired
            | ErrorCode::Internal => Verdict::Fail(ClientError::Server {
                code,
                message: err.message.clone(),
                maybe_applied: write && code == ErrorCode::Internal,
            }),
        }
    }

    /// The known leader, else the next endpoint in turn.
    fn pick_target(&self) -> String {
        if let Some(l) = self.leader.lock().expect("leader lock").clone() {
            return l;
        }
        let mut cursor = self.cursor.lock().expect("cursor lock");
        let target = self.endpoints[*cursor % self.endpoints.len()].clone();
        *cursor += 1;
        target
    }

    fn forget_leader(&self, target: &str) {
        let mut leader = self.leader.lock().expect("leader lock");
        if leader.as_deref() == Some(target) {
            *leader = None;
        }
    }

    /// A lazily connecting channel to `addr`, shared by every call to it.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, ClientError> {
        self.conn(addr).map(|c| c.channel)
    }

    /// The channel to `addr` and its batcher. Must run inside a tokio runtime when
    /// batching is on (the batcher's dispatcher is spawned on first use, and again if
    /// the runtime it ran on has stopped).
    pub(crate) fn conn(&self, addr: &str) -> Result<Conn, ClientError> {
        let mut channels = self.channels.lock().expect("channels lock");
        if let Some(c) = channels.get(addr)
            && c.batcher.is_alive()
        {
            return Ok(c.clone());
        }
        let channel = match channels.get(addr) {
            Some(c) => c.channel.clone(),
            None => Endpoint::from_shared(addr.to_string())
                .map_err(|e| ClientError::Config(format!("bad address {addr}: {e}")))?
                .connect_timeout(self.config.connect_timeout)
                .tcp_nodelay(true)
                .connect_lazy(),
        };
        let batcher = Batcher::spawn(channel.clone(), self.config.batch_in_flight);
        let conn = Conn { channel, batcher };
        channels.insert(addr.to_string(), conn.clone());
        Ok(conn)
    }
}
