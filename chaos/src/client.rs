//! One key-value client over etcd's v3 API and d-engine's client API, with
//! the error classification a history needs: did the request certainly not
//! take effect ([`OpError::definite`]), or is its outcome unknown?
//!
//! A client is bound to one node's client endpoint. etcd forwards proposals
//! to its leader itself; d-engine answers NOT_LEADER, which this client follows
//! (at most twice per op) using the node-id → address map it was given.
//!
//! When membership changes during a run, the launcher's clients share a
//! [`Directory`] instead: node id → channel, and which node holds each slot.
//! A client bound to a slot follows the node that holds it now, and redirects
//! reach nodes that joined after the client was made. Clients in a directory
//! also share one [`Batcher`] per node, so their concurrent operations travel in
//! `Batch` RPCs as the Rust client's do: the chaos suite checks that path too.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use d_engine::client::Batcher;
use d_engine_proto::etcd::etcdserverpb as etcd;
use d_engine_proto::v1 as de;
use tonic::codegen::Bytes;
use tonic::transport::{Channel, Endpoint};

use crate::cluster::TargetKind;

/// How the d-engine clients of a run shared `Batch` RPCs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientBatching {
    /// `Batch` RPCs sent, and the operations in them.
    pub batches: u64,
    pub ops: u64,
    /// Operations sent alone because nothing else was waiting.
    pub alone: u64,
}

/// Batches outstanding per node, as the Rust client's default.
const BATCH_IN_FLIGHT: usize = 4;

/// Connect timeout of the client channels: a dead node fails fast.
const CONNECT_TIMEOUT_MS: u64 = 300;
/// NOT_LEADER redirects followed per d-engine op.
const REDIRECTS_MAX: usize = 2;

/// Read consistency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Consistency {
    Linearizable,
    /// d-engine only: served by the leader within its lease (linearizable while
    /// clocks drift less than the configured margin).
    Lease,
    Serializable,
}

impl Consistency {
    pub fn parse(s: &str) -> Option<Consistency> {
        match s {
            "linearizable" => Some(Consistency::Linearizable),
            "lease" => Some(Consistency::Lease),
            "serializable" => Some(Consistency::Serializable),
            _ => None,
        }
    }

    /// d-engine's level for this consistency.
    fn dengine(self) -> de::ReadConsistency {
        match self {
            Consistency::Linearizable => de::ReadConsistency::Linearizable,
            Consistency::Lease => de::ReadConsistency::Lease,
            Consistency::Serializable => de::ReadConsistency::Serializable,
        }
    }
}

/// Why an op did not return a result.
#[derive(Debug, Clone)]
pub struct OpError {
    /// True when the request certainly did not take effect (refused before
    /// it was sent, or a reply that says so). False: unknown outcome.
    pub definite: bool,
    pub message: String,
}

impl OpError {
    pub fn definite(message: impl Into<String>) -> Self {
        OpError {
            definite: true,
            message: message.into(),
        }
    }
    pub fn unknown(message: impl Into<String>) -> Self {
        OpError {
            definite: false,
            message: message.into(),
        }
    }
}

/// The end of etcd's range of keys starting with `prefix`: the prefix with
/// its last byte below 0xff incremented (empty = no upper bound).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    Vec::new()
}

/// One etcd `Range` of `[key, range_end)` (an empty end: `key` alone).
async fn etcd_range(
    ch: &Channel,
    key: &[u8],
    range_end: Bytes,
    consistency: Consistency,
) -> Result<etcd::RangeResponse, OpError> {
    let req = etcd::RangeRequest {
        key: Bytes::copy_from_slice(key),
        range_end,
        serializable: consistency == Consistency::Serializable,
        ..Default::default()
    };
    Ok(etcd::kv_client::KvClient::new(ch.clone())
        .range(req)
        .await
        .map_err(|s| classify(&s))?
        .into_inner())
}

fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    Ok(Endpoint::from_shared(url.clone())
        .with_context(|| format!("bad endpoint {url}"))?
        .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// A tonic error. A refused connection means the request was never sent;
/// anything else (a reset, a deadline, a server error) may have been applied.
fn classify(status: &tonic::Status) -> OpError {
    let text = format!("{status}");
    let source = std::error::Error::source(status)
        .map(|e| format!("{e:?}"))
        .unwrap_or_default();
    let refused = [&text, &source]
        .iter()
        .any(|s| s.contains("Connection refused") || s.contains("ConnectionRefused"));
    let message = format!("{:?}: {}", status.code(), status.message());
    if refused {
        OpError::definite(format!("connection refused: {message}"))
    } else {
        OpError::unknown(message)
    }
}

async fn timed<T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, OpError>>,
) -> Result<T, OpError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(OpError::unknown("timeout")),
    }
}

/// A client bound to one node.
#[derive(Clone)]
pub enum KvClient {
    Etcd(Channel),
    Dengine(DengineClient),
}

/// d-engine client state: the bound node and how to reach the others.
#[derive(Clone)]
pub struct DengineClient {
    home: Channel,
    /// node id → client channel, for NOT_LEADER redirects.
    peers: HashMap<u64, Channel>,
    /// When set, `home` and `peers` come from the directory: (directory, slot).
    dir: Option<(Arc<Directory>, usize)>,
}

/// Where the nodes of a d-engine cluster are, kept up to date by the launcher
/// as nodes join and leave (see the module docs).
#[derive(Debug, Default)]
pub struct Directory {
    inner: RwLock<DirInner>,
}

#[derive(Default)]
struct DirInner {
    /// slot → node id.
    slots: Vec<u64>,
    /// node id → client channel.
    channels: HashMap<u64, Channel>,
    /// node id → the batcher every workload client shares for that node (made on
    /// first use, inside the runtime).
    batchers: HashMap<u64, Batcher>,
    /// Every batcher made in the run, for the statistics.
    made: Vec<Batcher>,
}

impl std::fmt::Debug for DirInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirInner")
            .field("slots", &self.slots)
            .field("nodes", &self.channels.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Directory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, DirInner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, DirInner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `id` serves clients at `endpoint`.
    pub fn insert(&self, id: u64, endpoint: &str) -> anyhow::Result<()> {
        let ch = channel(endpoint)?;
        self.write().channels.insert(id, ch);
        Ok(())
    }

    /// Node `id` left the cluster.
    pub fn remove(&self, id: u64) {
        let mut inner = self.write();
        inner.channels.remove(&id);
        inner.batchers.remove(&id);
    }

    /// The batcher for node `id`, shared by every client of the run, so concurrent
    /// operations to one node travel in `Batch` RPCs as with the Rust client.
    fn batcher(&self, id: u64) -> Option<Batcher> {
        if let Some(b) = self.read().batchers.get(&id).filter(|b| b.is_alive()) {
            return Some(b.clone());
        }
        let mut inner = self.write();
        if let Some(b) = inner.batchers.get(&id).filter(|b| b.is_alive()) {
            return Some(b.clone());
        }
        let ch = inner.channels.get(&id)?.clone();
        let b = Batcher::spawn(ch, BATCH_IN_FLIGHT);
        inner.batchers.insert(id, b.clone());
        inner.made.push(b.clone());
        Some(b)
    }

    /// What the clients' batchers sent over the run.
    pub fn batching(&self) -> ClientBatching {
        use std::sync::atomic::Ordering::Relaxed;
        let mut total = ClientBatching::default();
        for b in &self.read().made {
            total.batches += b.stats().batches.load(Relaxed);
            total.ops += b.stats().ops.load(Relaxed);
            total.alone += b.stats().alone.load(Relaxed);
        }
        total
    }

    fn home_id(&self, slot: usize) -> Option<u64> {
        self.read().slots.get(slot).copied().filter(|&id| id != 0)
    }

    /// Node `id` holds `slot` now.
    pub fn set_slot(&self, slot: usize, id: u64) {
        let mut inner = self.write();
        if inner.slots.len() <= slot {
            inner.slots.resize(slot + 1, 0);
        }
        inner.slots[slot] = id;
    }

    fn home(&self, slot: usize) -> Option<Channel> {
        let inner = self.read();
        inner.channels.get(inner.slots.get(slot)?).cloned()
    }

    fn node(&self, id: u64) -> Option<Channel> {
        self.read().channels.get(&id).cloned()
    }
}

/// A d-engine membership as a node reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipView {
    pub voters: Vec<u64>,
    pub voters_outgoing: Vec<u64>,
    pub learners: Vec<u64>,
}

/// A d-engine membership change.
#[derive(Debug, Clone)]
pub enum AdminOp {
    /// (id, address every member dials).
    AddLearner(u64, String),
    Promote(u64),
    Remove(u64),
}

/// What a node says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStatus {
    /// The node's own id (etcd: member id).
    pub id: u64,
    /// The leader it believes in (0 = none).
    pub leader: u64,
    pub term: u64,
}

impl NodeStatus {
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.id
    }
}

impl KvClient {
    /// A lazily connected client for `endpoint` (`host:port` or a URL).
    /// `by_id` maps d-engine node ids to client endpoints (ignored for etcd).
    pub fn connect(
        kind: TargetKind,
        endpoint: &str,
        by_id: &[(u64, String)],
    ) -> anyhow::Result<KvClient> {
        let ch = channel(endpoint)?;
        Ok(match kind {
            TargetKind::Etcd => KvClient::Etcd(ch),
            TargetKind::Dengine => {
                let mut peers = HashMap::new();
                for (id, ep) in by_id {
                    peers.insert(*id, channel(ep)?);
                }
                KvClient::Dengine(DengineClient {
                    home: ch,
                    peers,
                    dir: None,
                })
            }
        })
    }

    /// A d-engine client bound to whichever node holds `slot` in `dir`.
    pub fn in_directory(dir: Arc<Directory>, slot: usize) -> KvClient {
        let home = dir.home(slot).unwrap_or_else(|| {
            // Never used: `home()` looks the slot up on every request.
            Endpoint::from_static("http://127.0.0.1:1").connect_lazy()
        });
        KvClient::Dengine(DengineClient {
            home,
            peers: HashMap::new(),
            dir: Some((dir, slot)),
        })
    }

    /// A d-engine membership change, sent to the bound node and following
    /// NOT_LEADER redirects. Ok: the change committed (its log index).
    pub async fn admin(&self, op: &AdminOp, timeout: Duration) -> Result<u64, OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(_) => Err(OpError::definite("etcd: no membership driver")),
                KvClient::Dengine(c) => c.admin(op).await,
            }
        })
        .await
    }

    /// The membership as this d-engine node sees it, with its role.
    pub async fn membership(
        &self,
        timeout: Duration,
    ) -> Result<(NodeStatus, MembershipView), OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(_) => Err(OpError::definite("etcd: no membership view")),
                KvClient::Dengine(c) => c.membership().await,
            }
        })
        .await
    }

    pub async fn get(
        &self,
        key: &[u8],
        consistency: Consistency,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(ch) => {
                    let resp = etcd_range(ch, key, Bytes::new(), consistency).await?;
                    Ok(resp.kvs.into_iter().next().map(|kv| kv.value.to_vec()))
                }
                KvClient::Dengine(c) => c.get(key, consistency).await,
            }
        })
        .await
    }

    pub async fn put(&self, key: &[u8], value: &[u8], timeout: Duration) -> Result<(), OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(ch) => {
                    let req = etcd::PutRequest {
                        key: Bytes::copy_from_slice(key),
                        value: Bytes::copy_from_slice(value),
                        ..Default::default()
                    };
                    etcd::kv_client::KvClient::new(ch.clone())
                        .put(req)
                        .await
                        .map_err(|s| classify(&s))?;
                    Ok(())
                }
                KvClient::Dengine(c) => c.put(key, value).await,
            }
        })
        .await
    }

    /// Compare-and-set: `expected = None` means "the key is absent".
    /// `Ok(false)`: the comparison failed and nothing was written.
    pub async fn cas(
        &self,
        key: &[u8],
        expected: Option<&[u8]>,
        new: &[u8],
        timeout: Duration,
    ) -> Result<bool, OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(ch) => {
                    use etcd::compare::{CompareResult, CompareTarget, TargetUnion};
                    let compare = match expected {
                        // A key that does not exist has version 0.
                        None => etcd::Compare {
                            result: CompareResult::Equal as i32,
                            target: CompareTarget::Version as i32,
                            key: Bytes::copy_from_slice(key),
                            target_union: Some(TargetUnion::Version(0)),
                            range_end: Bytes::new(),
                        },
                        Some(v) => etcd::Compare {
                            result: CompareResult::Equal as i32,
                            target: CompareTarget::Value as i32,
                            key: Bytes::copy_from_slice(key),
                            target_union: Some(TargetUnion::Value(Bytes::copy_from_slice(v))),
                            range_end: Bytes::new(),
                        },
                    };
                    let put = etcd::PutRequest {
                        key: Bytes::copy_from_slice(key),
                        value: Bytes::copy_from_slice(new),
                        ..Default::default()
                    };
                    let req = etcd::TxnRequest {
                        compare: vec![compare],
                        success: vec![etcd::RequestOp {
                            request: Some(etcd::request_op::Request::RequestPut(put)),
                        }],
                        failure: Vec::new(),
                    };
                    let resp = etcd::kv_client::KvClient::new(ch.clone())
                        .txn(req)
                        .await
                        .map_err(|s| classify(&s))?
                        .into_inner();
                    Ok(resp.succeeded)
                }
                KvClient::Dengine(c) => c.cas(key, expected, new).await,
            }
        })
        .await
    }

    /// One etcd `Txn` (compares, then success or failure ops), as sent.
    /// d-engine has no multi-key transactions yet: a definite error.
    pub async fn etcd_txn(
        &self,
        req: etcd::TxnRequest,
        timeout: Duration,
    ) -> Result<etcd::TxnResponse, OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(ch) => Ok(etcd::kv_client::KvClient::new(ch.clone())
                    .txn(req)
                    .await
                    .map_err(|s| classify(&s))?
                    .into_inner()),
                KvClient::Dengine(_) => Err(OpError::definite(
                    "d-engine has no multi-key transactions yet",
                )),
            }
        })
        .await
    }

    /// The etcd channel of this client (`None` for d-engine).
    pub fn etcd_channel(&self) -> Option<Channel> {
        match self {
            KvClient::Etcd(ch) => Some(ch.clone()),
            KvClient::Dengine(_) => None,
        }
    }

    /// Every key with `prefix` and its value, in key order, read at one
    /// revision (etcd: one `Range`; d-engine: a prefix scan).
    pub async fn scan_prefix(
        &self,
        prefix: &[u8],
        consistency: Consistency,
        timeout: Duration,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(ch) => {
                    let end = Bytes::from(prefix_end(prefix));
                    let resp = etcd_range(ch, prefix, end, consistency).await?;
                    Ok(resp
                        .kvs
                        .into_iter()
                        .map(|kv| (kv.key.to_vec(), kv.value.to_vec()))
                        .collect())
                }
                KvClient::Dengine(c) => c.scan_prefix(prefix, consistency).await,
            }
        })
        .await
    }

    /// Asks this node (the leader) to hand leadership to node `target_id`.
    /// d-engine only.
    pub async fn transfer_leader(&self, target_id: u64, timeout: Duration) -> Result<(), OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(_) => {
                    Err(OpError::definite("etcd: leader transfer is not supported"))
                }
                KvClient::Dengine(c) => {
                    let req = de::TransferLeaderRequest {
                        header: None,
                        target: target_id,
                    };
                    let resp = de::cluster_admin_client::ClusterAdminClient::new(c.home()?)
                        .transfer_leader(req)
                        .await
                        .map_err(|s| classify(&s))?
                        .into_inner();
                    match reply_error(resp.error)? {
                        None => Ok(()),
                        Some(leader) => {
                            Err(OpError::definite(format!("NOT_LEADER (leader {leader})")))
                        }
                    }
                }
            }
        })
        .await
    }

    /// The node's view of leadership.
    pub async fn status(&self, timeout: Duration) -> Result<NodeStatus, OpError> {
        timed(timeout, async {
            match self {
                KvClient::Etcd(ch) => {
                    let resp = etcd::maintenance_client::MaintenanceClient::new(ch.clone())
                        .status(etcd::StatusRequest {})
                        .await
                        .map_err(|s| classify(&s))?
                        .into_inner();
                    let header = resp.header.unwrap_or_default();
                    Ok(NodeStatus {
                        id: header.member_id,
                        leader: resp.leader,
                        term: resp.raft_term,
                    })
                }
                KvClient::Dengine(c) => c.status().await,
            }
        })
        .await
    }
}

/// Maps a d-engine reply error to an outcome: `Ok(None)` = success,
/// `Ok(Some(leader))` = NOT_LEADER (not applied; retry at `leader`).
fn reply_error(err: Option<de::ReplyError>) -> Result<Option<u64>, OpError> {
    use de::ErrorCode as C;
    let Some(err) = err else { return Ok(None) };
    let code = C::try_from(err.code).unwrap_or(C::Internal);
    let message = format!("{}: {}", code.as_str_name(), err.message);
    match code {
        C::Ok => Ok(None),
        C::NotLeader => Ok(Some(err.leader_id)),
        // These say the request was refused before it was applied.
        C::TooLarge
        | C::Busy
        | C::WrongCluster
        | C::InvalidArgument
        | C::ShuttingDown
        | C::Transferring
        | C::NoSpace
        | C::MembershipChangeInProgress => Err(OpError::definite(message)),
        // TIMEOUT, UNAVAILABLE (a proposal may be in the log already),
        // SESSION_EXPIRED, INTERNAL: unknown.
        _ => Err(OpError::unknown(message)),
    }
}

impl DengineClient {
    fn home(&self) -> Result<Channel, OpError> {
        match &self.dir {
            None => Ok(self.home.clone()),
            Some((dir, slot)) => dir
                .home(*slot)
                .ok_or_else(|| OpError::definite(format!("slot {slot} has no node"))),
        }
    }

    /// The directory's batcher for the node `target(leader)` picks, when this client
    /// is bound to a directory.
    fn batcher(&self, leader: Option<u64>) -> Option<Batcher> {
        let (dir, slot) = self.dir.as_ref()?;
        let id = match leader {
            None => dir.home_id(*slot)?,
            Some(id) => id,
        };
        dir.batcher(id)
    }

    /// Sends `op` to the node `target(leader)` picks: through the shared batcher in a
    /// directory, else alone.
    async fn send(
        &self,
        leader: Option<u64>,
        op: de::batch_op::Op,
    ) -> Result<de::batch_result::Result, OpError> {
        let channel = self.target(leader)?;
        // Outside a directory: this call alone, on its own RPC.
        let batcher = self
            .batcher(leader)
            .unwrap_or_else(|| Batcher::spawn(channel, 0));
        batcher.call(op).await.map_err(|s| classify(&s))
    }

    fn target(&self, leader: Option<u64>) -> Result<Channel, OpError> {
        match leader {
            None => self.home(),
            Some(0) => Err(OpError::definite("NOT_LEADER with no known leader")),
            Some(id) => match &self.dir {
                None => self.peers.get(&id).cloned(),
                Some((dir, _)) => dir.node(id),
            }
            .ok_or_else(|| OpError::definite(format!("NOT_LEADER: unknown leader {id}"))),
        }
    }

    async fn admin(&self, op: &AdminOp) -> Result<u64, OpError> {
        let mut leader = None;
        for _ in 0..=REDIRECTS_MAX {
            let mut admin = de::cluster_admin_client::ClusterAdminClient::new(self.target(leader)?);
            let resp = match op {
                AdminOp::AddLearner(id, addr) => {
                    let learners = vec![de::NodeAddress {
                        id: *id,
                        addr: addr.clone(),
                    }];
                    admin
                        .add_learner(de::AddLearnerRequest {
                            header: None,
                            learners,
                        })
                        .await
                }
                AdminOp::Promote(id) => {
                    admin
                        .promote(de::PromoteRequest {
                            header: None,
                            node_ids: vec![*id],
                        })
                        .await
                }
                AdminOp::Remove(id) => {
                    admin
                        .remove_node(de::RemoveNodeRequest {
                            header: None,
                            node_ids: vec![*id],
                        })
                        .await
                }
            }
            .map_err(|s| classify(&s))?
            .into_inner();
            match reply_error(resp.error)? {
                None => return Ok(resp.index),
                Some(l) => leader = Some(l),
            }
        }
        Err(OpError::definite("NOT_LEADER: too many redirects"))
    }

    async fn membership(&self) -> Result<(NodeStatus, MembershipView), OpError> {
        let resp = de::cluster_admin_client::ClusterAdminClient::new(self.home()?)
            .status(de::StatusRequest { header: None })
            .await
            .map_err(|s| classify(&s))?
            .into_inner();
        let m = resp.membership.clone().unwrap_or_default();
        let view = MembershipView {
            voters: m.voters,
            voters_outgoing: m.voters_outgoing,
            learners: m.learners,
        };
        Ok((status_of(&resp), view))
    }

    async fn get(&self, key: &[u8], consistency: Consistency) -> Result<Option<Vec<u8>>, OpError> {
        let level = consistency.dengine();
        let mut leader = None;
        for _ in 0..=REDIRECTS_MAX {
            let req = de::GetRequest {
                header: None,
                key: Bytes::copy_from_slice(key),
                consistency: level as i32,
            };
            let de::batch_result::Result::Get(resp) =
                self.send(leader, de::batch_op::Op::Get(req)).await?
            else {
                return Err(OpError::unknown("a reply of the wrong kind"));
            };
            match reply_error(resp.error)? {
                None => return Ok(resp.found.then(|| resp.value.to_vec())),
                Some(l) => leader = Some(l),
            }
        }
        Err(OpError::definite("NOT_LEADER: too many redirects"))
    }

    /// Every key with `prefix`, page after page (`more`, `next_key`). The
    /// pages are separate reads: a set workload only ever adds keys, so
    /// their union is still a valid read of the set (each element seen was
    /// present, and each page misses nothing acknowledged before it began).
    async fn scan_prefix(
        &self,
        prefix: &[u8],
        consistency: Consistency,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, OpError> {
        let level = consistency.dengine();
        let mut out = Vec::new();
        let mut leader = None;
        let mut start = Vec::new();
        let mut redirects = 0;
        loop {
            let mut kv = de::kv_client::KvClient::new(self.target(leader)?);
            let req = de::ScanRequest {
                header: None,
                start: Bytes::from(start.clone()),
                end: if start.is_empty() {
                    Bytes::new()
                } else {
                    Bytes::from(prefix_end(prefix))
                },
                prefix: if start.is_empty() {
                    Bytes::copy_from_slice(prefix)
                } else {
                    Bytes::new()
                },
                limit: 0,
                consistency: level as i32,
            };
            let resp = kv.scan(req).await.map_err(|s| classify(&s))?.into_inner();
            if let Some(l) = reply_error(resp.error)? {
                redirects += 1;
                if redirects > REDIRECTS_MAX {
                    return Err(OpError::definite("NOT_LEADER: too many redirects"));
                }
                leader = Some(l);
                continue;
            }
            out.extend(
                resp.items
                    .into_iter()
                    .map(|i| (i.key.to_vec(), i.value.to_vec())),
            );
            if !resp.more {
                return Ok(out);
            }
            start = resp.next_key.to_vec();
        }
    }

    async fn put(&self, key: &[u8], value: &[u8]) -> Result<(), OpError> {
        let mut leader = None;
        for _ in 0..=REDIRECTS_MAX {
            let req = de::PutRequest {
                header: None,
                key: Bytes::copy_from_slice(key),
                value: Bytes::copy_from_slice(value),
            };
            let de::batch_result::Result::Put(resp) =
                self.send(leader, de::batch_op::Op::Put(req)).await?
            else {
                return Err(OpError::unknown("a reply of the wrong kind"));
            };
            match reply_error(resp.error)? {
                None => return Ok(()),
                Some(l) => leader = Some(l),
            }
        }
        Err(OpError::definite("NOT_LEADER: too many redirects"))
    }

    async fn cas(&self, key: &[u8], expected: Option<&[u8]>, new: &[u8]) -> Result<bool, OpError> {
        use de::compare_and_swap_request::Expected;
        let mut leader = None;
        for _ in 0..=REDIRECTS_MAX {
            let req = de::CompareAndSwapRequest {
                header: None,
                key: Bytes::copy_from_slice(key),
                expected: Some(match expected {
                    None => Expected::ExpectAbsent(true),
                    Some(v) => Expected::ExpectedValue(Bytes::copy_from_slice(v)),
                }),
                new_value: Bytes::copy_from_slice(new),
            };
            let de::batch_result::Result::CompareAndSwap(resp) = self
                .send(leader, de::batch_op::Op::CompareAndSwap(req))
                .await?
            else {
                return Err(OpError::unknown("a reply of the wrong kind"));
            };
            match reply_error(resp.error)? {
                None => return Ok(resp.succeeded),
                Some(l) => leader = Some(l),
            }
        }
        Err(OpError::definite("NOT_LEADER: too many redirects"))
    }

    async fn status(&self) -> Result<NodeStatus, OpError> {
        let resp = de::cluster_admin_client::ClusterAdminClient::new(self.home()?)
            .status(de::StatusRequest { header: None })
            .await
            .map_err(|s| classify(&s))?
            .into_inner();
        Ok(status_of(&resp))
    }
}

fn status_of(resp: &de::StatusResponse) -> NodeStatus {
    let header = resp.header.unwrap_or_default();
    let leader = if resp.role == de::Role::Leader as i32 {
        header.node_id
    } else {
        header.leader_id
    };
    NodeStatus {
        id: header.node_id,
        leader,
        term: header.term,
    }
}
