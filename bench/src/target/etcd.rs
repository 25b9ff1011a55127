//! etcd over its v3 gRPC API (the subset in `d_engine_proto::etcd`).
//!
//! Every member accepts every request (etcd forwards proposals to its leader itself),
//! so calls go round-robin over the endpoints. Linearizable reads are etcd's default
//! ReadIndex reads; serializable reads set `serializable`. etcd has no lease reads.
//! CAS is a `Txn`: compare the value (or `create_revision == 0` for "absent"), put on
//! success, read the key back on failure.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use d_engine_proto::etcd::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use d_engine_proto::etcd::etcdserverpb::kv_client::KvClient;
use d_engine_proto::etcd::etcdserverpb::maintenance_client::MaintenanceClient;
use d_engine_proto::etcd::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest, request_op,
    response_op,
};
use tonic::transport::Channel;

use super::{CasResult, Consistency, ErrorKind, Target, TargetError, call, lazy_channel};

/// A connection to an etcd cluster (one HTTP/2 channel per endpoint).
pub struct EtcdTarget {
    endpoints: Vec<String>,
    kv: Vec<KvClient<Channel>>,
    maintenance: Vec<MaintenanceClient<Channel>>,
    next: AtomicUsize,
}

impl EtcdTarget {
    /// Prepares channels to `endpoints` (`host:port` or URLs); connects lazily.
    pub fn new(endpoints: &[String]) -> Result<EtcdTarget, TargetError> {
        if endpoints.is_empty() {
            return Err(TargetError::new(
                ErrorKind::Other,
                "no etcd endpoints given",
            ));
        }
        let mut kv = Vec::new();
        let mut maintenance = Vec::new();
        for e in endpoints {
            let ch = lazy_channel(e)?;
            kv.push(KvClient::new(ch.clone()));
            maintenance.push(MaintenanceClient::new(ch));
        }
        Ok(EtcdTarget {
            endpoints: endpoints.to_vec(),
            kv,
            maintenance,
            next: AtomicUsize::new(0),
        })
    }

    fn kv(&self) -> KvClient<Channel> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.kv.len();
        self.kv[i].clone()
    }
}

impl Target for EtcdTarget {
    async fn put(&self, key: Bytes, value: Bytes) -> Result<(), TargetError> {
        let req = PutRequest {
            key,
            value,
            ..Default::default()
        };
        call(self.kv().put(req)).await.map(|_| ())
    }

    async fn get(&self, key: Bytes, c: Consistency) -> Result<Option<Bytes>, TargetError> {
        let serializable = match c {
            Consistency::Linearizable => false,
            Consistency::Serializable => true,
            Consistency::Lease => {
                return Err(TargetError::new(
                    ErrorKind::Other,
                    "etcd has no lease reads (use linearizable or serializable)",
                ));
            }
        };
        let req = RangeRequest {
            key,
            serializable,
            ..Default::default()
        };
        let resp = call(self.kv().range(req)).await?;
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
    }

    async fn cas(
        &self,
        key: Bytes,
        expected: Option<Bytes>,
        new: Bytes,
    ) -> Result<CasResult, TargetError> {
        let compare = match expected {
            Some(v) => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Value as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::Value(v)),
                ..Default::default()
            },
            None => Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                ..Default::default()
            },
        };
        let put = RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.clone(),
                value: new,
                ..Default::default()
            })),
        };
        let read = RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key,
                ..Default::default()
            })),
        };
        let req = TxnRequest {
            compare: vec![compare],
            success: vec![put],
            failure: vec![read],
        };
        let resp = call(self.kv().txn(req)).await?;
        let current = if resp.succeeded {
            None
        } else {
            resp.responses.into_iter().find_map(|r| match r.response {
                Some(response_op::Response::ResponseRange(rr)) => {
                    rr.kvs.into_iter().next().map(|kv| kv.value)
                }
                _ => None,
            })
        };
        Ok(CasResult {
            succeeded: resp.succeeded,
            current,
        })
    }

    /// One `Txn` with no compares: the ranges, then the puts.
    async fn txn(&self, reads: Vec<Bytes>, writes: Vec<(Bytes, Bytes)>) -> Result<(), TargetError> {
        let ranges = reads.into_iter().map(|key| RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key,
                ..Default::default()
            })),
        });
        let puts = writes.into_iter().map(|(key, value)| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key,
                value,
                ..Default::default()
            })),
        });
        let req = TxnRequest {
            compare: Vec::new(),
            success: ranges.chain(puts).collect(),
            failure: Vec::new(),
        };
        call(self.kv().txn(req)).await.map(|_| ())
    }

    /// Asks every member for its status, so an unreachable endpoint is named.
    async fn probe(&self) -> Result<(), TargetError> {
        for (i, m) in self.maintenance.iter().enumerate() {
            let mut m = m.clone();
            call(m.status(StatusRequest {})).await.map_err(|e| {
                TargetError::new(
                    e.kind,
                    format!("etcd endpoint {} did not answer: {}", self.endpoints[i], e),
                )
            })?;
        }
        Ok(())
    }
}
