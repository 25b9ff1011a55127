//! The client key-value service: validates each request, hands it to the event loop,
//! and turns the outcome into a reply with a typed error.

use d_engine_proto::limits::{
    DEFAULT_SCAN_LIMIT, MAX_BATCH_OPS, MAX_CLIENT_MESSAGE_BYTES, MAX_KEY_BYTES, MAX_SCAN_LIMIT,
    MAX_SCAN_REPLY_BYTES,
};
use d_engine_proto::v1 as pb;
use d_engine_proto::v1::kv_server::Kv;
use prost::Message as _;
use tonic::{Request, Response, Status};

use super::address_book::RESERVED_KEY_PREFIX;
use super::client_context::ClientContext;
use crate::core::{ClientSession, ReadConsistency};
use crate::node::request::{ClientRequest, ReadAnswer, ReadQuery, RequestError};
use crate::storage::{KvCommand, KvResult};

pub(crate) struct KvService {
    pub ctx: ClientContext,
}

type Err = Option<pb::ReplyError>;

impl KvService {
    fn check_key(&self, key: &[u8], write: bool) -> Result<(), Err> {
        use pb::ErrorCode as C;
        if key.is_empty() {
            return Err(self.ctx.error(C::InvalidArgument, "empty key"));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(self.ctx.error(
                C::TooLarge,
                format!("key of {} bytes exceeds {MAX_KEY_BYTES}", key.len()),
            ));
        }
        if write && key[0] == RESERVED_KEY_PREFIX {
            return Err(self.ctx.error(
                C::InvalidArgument,
                "keys starting with byte 0xFF are reserved",
            ));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), Err> {
        if value.len() > self.ctx.value_bytes_max {
            return Err(self.ctx.error(
                pb::ErrorCode::TooLarge,
                format!(
                    "value of {} bytes exceeds {}",
                    value.len(),
                    self.ctx.value_bytes_max
                ),
            ));
        }
        Ok(())
    }

    /// A batch's bounds: MAX_BATCH_OPS operations and MAX_CLIENT_MESSAGE_BYTES encoded.
    /// Only a batch can pass its key and value checks and still exceed the message
    /// bound (a single put of the largest key and value is under it), and tonic lets
    /// through up to twice the bound (see `CLIENT_DECODE_BYTES_MAX`), so the message
    /// bound is checked here.
    fn check_batch_size(&self, r: &pb::BatchRequest) -> Result<(), Err> {
        if r.ops.len() > MAX_BATCH_OPS {
            return Err(self.ctx.error(
                pb::ErrorCode::TooLarge,
                format!("{} operations exceed {MAX_BATCH_OPS}", r.ops.len()),
            ));
        }
        let bytes = r.encoded_len();
        if bytes > MAX_CLIENT_MESSAGE_BYTES {
            return Err(self.ctx.error(
                pb::ErrorCode::TooLarge,
                format!("batch of {bytes} bytes exceeds {MAX_CLIENT_MESSAGE_BYTES}"),
            ));
        }
        Ok(())
    }

    /// Proposes a command; Ok = (applied index, result).
    async fn write(
        &self,
        header: Option<&pb::RequestHeader>,
        cmd: KvCommand,
    ) -> Result<(u64, KvResult), Err> {
        self.ctx.check_cluster(header)?;
        let session = header
            .and_then(|h| h.session)
            .filter(|s| s.client_id != 0)
            .map(|s| ClientSession {
                client_id: s.client_id,
                seq: s.seq,
                lane: s.lane,
            });
        let command = cmd.encode();
        let (index, raw) = self
            .ctx
            .call(header, |reply| ClientRequest::Write {
                session,
                command,
                reply,
            })
            .await
            .map_err(|e| self.outcome_error(e))?;
        let result = KvResult::decode(&raw).map_err(|e| {
            self.ctx
                .error(pb::ErrorCode::Internal, format!("undecodable result: {e}"))
        })?;
        match result {
            KvResult::Rejected { reason } => {
                Err(self.ctx.error(pb::ErrorCode::InvalidArgument, reason))
            }
            KvResult::StaleSequence { last_seq } => Err(self.ctx.error(
                pb::ErrorCode::SessionExpired,
                format!("sequence number superseded (session is at {last_seq})"),
            )),
            KvResult::SessionUnknown { seq } => Err(self.ctx.error(
                pb::ErrorCode::SessionExpired,
                format!("session expired or evicted (write {seq} not applied)"),
            )),
            r => Ok((index, r)),
        }
    }

    async fn read(
        &self,
        header: Option<&pb::RequestHeader>,
        consistency: i32,
        query: ReadQuery,
    ) -> Result<(u64, ReadAnswer), Err> {
        self.ctx.check_cluster(header)?;
        let consistency = match pb::ReadConsistency::try_from(consistency) {
            Ok(pb::ReadConsistency::Linearizable) => ReadConsistency::Linearizable,
            Ok(pb::ReadConsistency::Lease) => ReadConsistency::Lease,
            Ok(pb::ReadConsistency::Serializable) => ReadConsistency::Serializable,
            Err(_) => {
                return Err(self.ctx.error(
                    pb::ErrorCode::InvalidArgument,
                    format!("unknown consistency {consistency}"),
                ));
            }
        };
        tracing::Span::current().record("consistency", tracing::field::debug(consistency));
        self.ctx
            .call(header, |reply| ClientRequest::Read {
                consistency,
                query,
                reply,
            })
            .await
            .map_err(|e| self.outcome_error(e))
    }

    fn outcome_error(&self, e: Option<RequestError>) -> Err {
        match e {
            Some(e) => self.ctx.request_error(e),
            None => self.ctx.error(
                pb::ErrorCode::Timeout,
                "no answer within the request timeout; outcome unknown",
            ),
        }
    }
}

/// Each operation as a plain async function, shared by the single calls and `Batch`.
impl KvService {
    async fn put_op(&self, r: pb::PutRequest) -> pb::PutResponse {
        let outcome = async {
            self.check_key(&r.key, true)?;
            self.check_value(&r.value)?;
            self.write(
                r.header.as_ref(),
                KvCommand::Put {
                    key: r.key,
                    value: r.value,
                },
            )
            .await
        }
        .await;
        match outcome {
            Ok((index, _)) => pb::PutResponse {
                header: self.ctx.header(index),
                error: None,
            },
            Err(error) => pb::PutResponse {
                header: self.ctx.header(0),
                error,
            },
        }
    }

    async fn delete_op(&self, r: pb::DeleteRequest) -> pb::DeleteResponse {
        let outcome = async {
            self.check_key(&r.key, true)?;
            self.write(r.header.as_ref(), KvCommand::Delete { key: r.key })
                .await
        }
        .await;
        match outcome {
            Ok((index, KvResult::Deleted { existed })) => pb::DeleteResponse {
                header: self.ctx.header(index),
                error: None,
                existed,
            },
            Ok((index, other)) => pb::DeleteResponse {
                header: self.ctx.header(index),
                error: self.ctx.error(
                    pb::ErrorCode::Internal,
                    format!("unexpected result {other:?}"),
                ),
                existed: false,
            },
            Err(error) => pb::DeleteResponse {
                header: self.ctx.header(0),
                error,
                existed: false,
            },
        }
    }

    async fn cas_op(&self, r: pb::CompareAndSwapRequest) -> pb::CompareAndSwapResponse {
        let outcome = async {
            self.check_key(&r.key, true)?;
            self.check_value(&r.new_value)?;
            let expected = match r.expected {
                Some(pb::compare_and_swap_request::Expected::ExpectedValue(v)) => Some(v),
                Some(pb::compare_and_swap_request::Expected::ExpectAbsent(true)) => None,
                _ => {
                    return Err(self.ctx.error(
                        pb::ErrorCode::InvalidArgument,
                        "cas needs expected_value or expect_absent",
                    ));
                }
            };
            let cmd = KvCommand::CompareAndSwap {
                key: r.key,
                expected,
                new: r.new_value,
            };
            self.write(r.header.as_ref(), cmd).await
        }
        .await;
        let mut resp = pb::CompareAndSwapResponse {
            header: self.ctx.header(0),
            ..Default::default()
        };
        match outcome {
            Ok((index, KvResult::Cas { swapped, current })) => {
                resp.header = self.ctx.header(index);
                resp.succeeded = swapped;
                resp.current_found = current.is_some();
                resp.current_value = current.unwrap_or_default();
            }
            Ok((_, other)) => {
                resp.error = self.ctx.error(
                    pb::ErrorCode::Internal,
                    format!("unexpected result {other:?}"),
                )
            }
            Err(error) => resp.error = error,
        }
        resp
    }

    async fn get_op(&self, r: pb::GetRequest) -> pb::GetResponse {
        let outcome = async {
            self.check_key(&r.key, false)?;
            self.read(r.header.as_ref(), r.consistency, ReadQuery::Get(r.key))
                .await
        }
        .await;
        let mut resp = pb::GetResponse {
            header: self.ctx.header(0),
            ..Default::default()
        };
        match outcome {
            Ok((index, ReadAnswer::Value(v))) => {
                resp.header = self.ctx.header(index);
                resp.found = v.is_some();
                resp.value = v.unwrap_or_default();
            }
            Ok(_) => {
                resp.error = self
                    .ctx
                    .error(pb::ErrorCode::Internal, "unexpected read answer")
            }
            Err(error) => resp.error = error,
        }
        resp
    }

    /// Runs every operation of a batch concurrently, each exactly as a single call
    /// would; results come back in request order.
    async fn batch_op(&self, r: pb::BatchRequest) -> pb::BatchResponse {
        use pb::{batch_op::Op, batch_result::Result as R};
        if let Err(error) = self.check_batch_size(&r) {
            return pb::BatchResponse {
                error,
                results: Vec::new(),
            };
        }
        if let Some(i) = r.ops.iter().position(|o| o.op.is_none()) {
            return pb::BatchResponse {
                error: self.ctx.error(
                    pb::ErrorCode::InvalidArgument,
                    format!("operation {i} of the batch has no kind"),
                ),
                results: Vec::new(),
            };
        }
        let ops = r.ops.into_iter().filter_map(|o| o.op).map(|op| async move {
            pb::BatchResult {
                result: Some(match op {
                    Op::Put(r) => R::Put(self.put_op(r).await),
                    Op::Get(r) => R::Get(self.get_op(r).await),
                    Op::Delete(r) => R::Delete(self.delete_op(r).await),
                    Op::CompareAndSwap(r) => R::CompareAndSwap(self.cas_op(r).await),
                }),
            }
        });
        pb::BatchResponse {
            error: None,
            results: futures_util::future::join_all(ops).await,
        }
    }
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        Ok(Response::new(self.put_op(req.into_inner()).await))
    }

    async fn get(&self, req: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        Ok(Response::new(self.get_op(req.into_inner()).await))
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteRequest>,
    ) -> Result<Response<pb::DeleteResponse>, Status> {
        Ok(Response::new(self.delete_op(req.into_inner()).await))
    }

    async fn compare_and_swap(
        &self,
        req: Request<pb::CompareAndSwapRequest>,
    ) -> Result<Response<pb::CompareAndSwapResponse>, Status> {
        Ok(Response::new(self.cas_op(req.into_inner()).await))
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchResponse>, Status> {
        Ok(Response::new(self.batch_op(req.into_inner()).await))
    }

    async fn scan(
        &self,
        req: Request<pb::ScanRequest>,
    ) -> Result<Response<pb::ScanResponse>, Status> {
        let r = req.into_inner();
        let outcome = async {
            let limit = match r.limit {
                0 => DEFAULT_SCAN_LIMIT,
                n if n > MAX_SCAN_LIMIT => {
                    return Err(self.ctx.error(
                        pb::ErrorCode::InvalidArgument,
                        format!("limit {n} exceeds {MAX_SCAN_LIMIT}"),
                    ));
                }
                n => n,
            } as usize;
            if !r.prefix.is_empty() && (!r.start.is_empty() || !r.end.is_empty()) {
                return Err(self.ctx.error(
                    pb::ErrorCode::InvalidArgument,
                    "give either a prefix or a range, not both",
                ));
            }
            if !r.end.is_empty() && r.end <= r.start {
                return Err(self.ctx.error(
                    pb::ErrorCode::InvalidArgument,
                    "range end must be after its start",
                ));
            }
            // One more than asked, to know whether more remain.
            let query = ReadQuery::Scan {
                start: r.start.clone(),
                end: (!r.end.is_empty()).then(|| r.end.clone()),
                prefix: (!r.prefix.is_empty()).then(|| r.prefix.clone()),
                limit: limit + 1,
            };
            let (index, answer) = self.read(r.header.as_ref(), r.consistency, query).await?;
            Ok((index, answer, limit))
        }
        .await;
        let mut resp = pb::ScanResponse {
            header: self.ctx.header(0),
            ..Default::default()
        };
        match outcome {
            Ok((index, ReadAnswer::Items(items), limit)) => {
                resp.header = self.ctx.header(index);
                let mut bytes = 0usize;
                for (key, value) in items {
                    bytes += key.len() + value.len();
                    if resp.items.len() == limit || bytes > MAX_SCAN_REPLY_BYTES {
                        resp.more = true;
                        resp.next_key = key;
                        break;
                    }
                    resp.items.push(pb::KeyValue { key, value });
                }
                // Keys of the engine's reserved space are not the client's business.
                resp.items
                    .retain(|kv| kv.key.first() != Some(&RESERVED_KEY_PREFIX));
            }
            Ok(_) => {
                resp.error = self
                    .ctx
                    .error(pb::ErrorCode::Internal, "unexpected read answer")
            }
            Err(error) => resp.error = error,
        }
        Ok(Response::new(resp))
    }
}
