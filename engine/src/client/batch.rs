//! Sharing one `Batch` RPC among concurrent calls to the same node.
//!
//! Every call costs a node (and the caller) far more in per-message work — HTTP/2
//! framing, a syscall or two each way, task wake-ups — than in Raft work, which the
//! node already batches. A [`Batcher`] sends concurrent calls to one endpoint together:
//!
//! ```text
//!  callers ──► queue ──► dispatcher task ──► Batch RPC (≤ in_flight at once) ──► replies
//! ```
//!
//! The dispatcher never waits to fill a batch. It takes the first queued call, waits
//! for one of `in_flight` slots, then takes whatever else queued meanwhile (up to the
//! size bounds) and sends. Under load, calls that arrive while the slots are busy share
//! the next message. A caller that finds nothing queued and a slot free sends its call
//! itself, on its own RPC: a lone caller pays no hop through the dispatcher. With
//! `in_flight` 0 every call goes alone (batching off), and so does any operation
//! larger than [`BATCH_OP_BYTES_MAX`].
//!
//! Each operation keeps its own header (session, timeout) and gets its own result,
//! exactly as a single call would; the node runs a batch's operations independently,
//! so batching changes no semantics. A transport failure fails every call of that
//! batch with the same status, which callers treat like a failed single call (the
//! outcome of a write is unknown).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use d_engine_proto::limits::{
    MAX_BATCH_OPS, MAX_BATCH_REPLY_BYTES, MAX_CLIENT_MESSAGE_BYTES, MAX_VALUE_BYTES,
};
use d_engine_proto::v1::kv_client::KvClient;
use d_engine_proto::v1::{
    BatchOp, BatchRequest, CompareAndSwapRequest, CompareAndSwapResponse, DeleteRequest,
    DeleteResponse, GetRequest, GetResponse, PutRequest, PutResponse, batch_op, batch_result,
};
use prost::Message;
use std::sync::atomic::AtomicUsize;

use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::Status;
use tonic::transport::Channel;

/// Operations whose encoding is larger than this go alone on their own RPC: batching
/// gains them nothing, and alone they meet the node's size check exactly as sent.
pub const BATCH_OP_BYTES_MAX: usize = 64 * 1024;

/// A batch's request stays this far under the node's message bound (framing).
const REQUEST_BYTES_MAX: usize = MAX_CLIENT_MESSAGE_BYTES - 64 * 1024;

/// What one queued call may add to a reply: a read or a compare-and-swap may return a
/// whole value; a put or delete returns a header.
fn reply_cost(op: &batch_op::Op) -> usize {
    match op {
        batch_op::Op::Get(_) | batch_op::Op::CompareAndSwap(_) => MAX_VALUE_BYTES + 1024,
        batch_op::Op::Put(_) | batch_op::Op::Delete(_) => 256,
    }
}

struct Queued {
    op: BatchOp,
    bytes: usize,
    reply_bytes: usize,
    reply: oneshot::Sender<Result<batch_result::Result, Status>>,
}

/// Counters of what a [`Batcher`] sent.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// `Batch` RPCs sent.
    pub batches: AtomicU64,
    /// Calls sent in them.
    pub ops: AtomicU64,
    /// Calls sent alone on their own RPC because nothing else was waiting.
    pub alone: AtomicU64,
}

/// Sends concurrent calls to one endpoint as shared `Batch` RPCs. Cheap to clone; the
/// dispatcher task ends when the last clone is dropped.
#[derive(Clone)]
pub struct Batcher {
    /// None when batching is off: every call goes alone.
    queue: Option<mpsc::UnboundedSender<Queued>>,
    /// Calls queued and not yet taken into a batch.
    queued: Arc<AtomicUsize>,
    /// One permit per batch (or lone call) outstanding.
    slots: Arc<Semaphore>,
    /// For calls sent alone: tonic's default limits, exactly as a plain single call,
    /// so an oversized request reaches the node and gets its TOO_LARGE answer (a
    /// client-side encoding limit would reset the stream instead).
    alone: KvClient<Channel>,
    stats: Arc<BatchStats>,
}

impl Batcher {
    /// Starts the dispatcher on the current tokio runtime. At most `in_flight` batches
    /// are outstanding at once; 0 turns batching off (no dispatcher, every call alone,
    /// and then no runtime is needed to create it).
    pub fn spawn(channel: Channel, in_flight: usize) -> Batcher {
        let stats = Arc::new(BatchStats::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let slots = Arc::new(Semaphore::new(in_flight));
        let alone = KvClient::new(channel.clone());
        let client = KvClient::new(channel)
            .max_decoding_message_size(MAX_BATCH_REPLY_BYTES + MAX_CLIENT_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_CLIENT_MESSAGE_BYTES);
        let queue = (in_flight > 0).then(|| {
            let (queue, rx) = mpsc::unbounded_channel();
            tokio::spawn(dispatch(
                client.clone(),
                rx,
                slots.clone(),
                queued.clone(),
                stats.clone(),
            ));
            queue
        });
        Batcher {
            queue,
            queued,
            slots,
            alone,
            stats,
        }
    }

    /// False once the dispatcher is gone (its runtime stopped): make a new one.
    pub fn is_alive(&self) -> bool {
        self.queue.as_ref().is_none_or(|q| !q.is_closed())
    }

    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }

    /// Sends `op` in the next batch (or alone, when nothing else waits and a slot is
    /// free) and waits for its own result.
    pub async fn call(&self, op: batch_op::Op) -> Result<batch_result::Result, Status> {
        let op = BatchOp { op: Some(op) };
        let bytes = op.encoded_len() + 8;
        let op = op.op.expect("just set");
        let Some(queue) = self.queue.as_ref().filter(|_| bytes <= BATCH_OP_BYTES_MAX) else {
            self.stats.alone.fetch_add(1, Ordering::Relaxed);
            return alone(self.alone.clone(), op).await;
        };
        // Tokio's semaphore hands released permits to queued waiters first, so this
        // never overtakes a batch the dispatcher is waiting to send.
        if self.queued.load(Ordering::Acquire) == 0
            && let Ok(slot) = self.slots.clone().try_acquire_owned()
        {
            self.stats.alone.fetch_add(1, Ordering::Relaxed);
            let result = alone(self.alone.clone(), op).await;
            drop(slot);
            return result;
        }
        let reply_bytes = reply_cost(&op);
        let op = BatchOp { op: Some(op) };
        let (reply, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::AcqRel);
        queue
            .send(Queued {
                op,
                bytes,
                reply_bytes,
                reply,
            })
            .map_err(|_| Status::unavailable("the batch dispatcher has stopped"))?;
        rx.await
            .map_err(|_| Status::unavailable("the batch dispatcher dropped the call"))?
    }
}

macro_rules! typed_call {
    ($name:ident, $req:ty, $resp:ty, $arm:ident) => {
        /// One call (see [`Batcher::call`]), typed.
        pub async fn $name(&self, req: $req) -> Result<$resp, Status> {
            match self.call(batch_op::Op::$arm(req)).await? {
                batch_result::Result::$arm(r) => Ok(r),
                _ => Err(Status::internal("a batch result of the wrong kind")),
            }
        }
    };
}

impl Batcher {
    typed_call!(put, PutRequest, PutResponse, Put);
    typed_call!(get, GetRequest, GetResponse, Get);
    typed_call!(delete, DeleteRequest, DeleteResponse, Delete);
    typed_call!(
        compare_and_swap,
        CompareAndSwapRequest,
        CompareAndSwapResponse,
        CompareAndSwap
    );
}

/// One call on its own RPC, its reply in the batch's terms.
async fn alone(
    mut client: KvClient<Channel>,
    op: batch_op::Op,
) -> Result<batch_result::Result, Status> {
    use batch_op::Op;
    use batch_result::Result as R;
    Ok(match op {
        Op::Put(r) => R::Put(client.put(r).await?.into_inner()),
        Op::Get(r) => R::Get(client.get(r).await?.into_inner()),
        Op::Delete(r) => R::Delete(client.delete(r).await?.into_inner()),
        Op::CompareAndSwap(r) => R::CompareAndSwap(client.compare_and_swap(r).await?.into_inner()),
    })
}

async fn dispatch(
    client: KvClient<Channel>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    slots: Arc<Semaphore>,
    queued: Arc<AtomicUsize>,
    stats: Arc<BatchStats>,
) {
    let mut carried: Option<Queued> = None;
    loop {
        let first = match carried.take() {
            Some(q) => q,
            None => match rx.recv().await {
                Some(q) => q,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (mut bytes, mut reply_bytes) = (first.bytes, first.reply_bytes);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_OPS {
            let Ok(q) = rx.try_recv() else { break };
            if bytes + q.bytes > REQUEST_BYTES_MAX
                || reply_bytes + q.reply_bytes > MAX_BATCH_REPLY_BYTES
            {
                carried = Some(q);
                break;
            }
            bytes += q.bytes;
            reply_bytes += q.reply_bytes;
            batch.push(q);
        }
        queued.fetch_sub(batch.len(), Ordering::AcqRel);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats.ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let mut client = client.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut replies = Vec::with_capacity(batch.len());
            let mut ops = Vec::with_capacity(batch.len());
            for q in batch {
                ops.push(q.op);
                replies.push(q.reply);
            }
            let outcome = client.batch(BatchRequest { ops }).await;
            deliver(replies, outcome.map(|r| r.into_inner()));
        });
    }
}

/// Hands each caller its own result, or the batch's failure.
fn deliver(
    replies: Vec<oneshot::Sender<Result<batch_result::Result, Status>>>,
    outcome: Result<d_engine_proto::v1::BatchResponse, Status>,
) {
    let resp = match outcome {
        Ok(r) => r,
        Err(status) => {
            for r in replies {
                let _ = r.send(Err(status.clone()));
            }
            return;
        }
    };
    if let Some(e) = resp.error.filter(|e| e.code != 0) {
        // The node refused the batch as a whole; this client never builds such a
        // batch, so it is a protocol mismatch: report it to every caller.
        let status = Status::internal(format!("batch refused: {}", e.message));
        for r in replies {
            let _ = r.send(Err(status.clone()));
        }
        return;
    }
    if resp.results.len() != replies.len() {
        let status = Status::internal(format!(
            "batch of {} operations got {} results",
            replies.len(),
            resp.results.len()
        ));
        for r in replies {
            let _ = r.send(Err(status.clone()));
        }
        return;
    }
    for (reply, result) in replies.into_iter().zip(resp.results) {
        let _ = reply.send(
            result
                .result
                .ok_or_else(|| Status::internal("a batch result without a kind")),
        );
    }
}
