//! The local cluster launcher: N real node processes on 127.0.0.1, used by
//! chaos and by the bench crate. This API is kept stable.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};
//! let spec = ClusterSpec::new(TargetKind::Etcd, 3, "/tmp/run1".into());
//! let mut cluster = LocalCluster::start(spec).await?; // ready: leader + write/read round trip
//! let endpoints = cluster.client_endpoints();          // ["127.0.0.1:PORT", ...], direct
//! let leader = cluster.leader().await;                  // Some(node index)
//! cluster.kill(0).await?;                               // SIGKILL
//! cluster.restart(0).await?;                            // same ports, same data dir
//! cluster.pause(1)?; cluster.resume(1)?;                // SIGSTOP / SIGCONT
//! cluster.graceful_restart(2).await?;                   // SIGTERM, wait, start
//! let rss = cluster.peak_rss_kib(0);                    // max VmHWM seen, across restarts
//! cluster.stop().await;                                 // or just drop it: children are killed
//! # Ok(()) }
//! ```
//!
//! - Nodes are indexed `0..n`; their ids are `1..=n` ([`LocalCluster::endpoint_by_id`]).
//!   An index is a *slot*: d-engine membership churn ([`LocalCluster::start_joining`],
//!   [`LocalCluster::assign_slot`], [`LocalCluster::retire`]) can put a node
//!   with a fresh id (never a reused one) and a fresh data dir in a slot, and
//!   every per-index call then acts on that node. d-engine clients from
//!   [`LocalCluster::client`] follow their slot's node and learn joined nodes.
//! - `dir/nodeI/` (I = id) holds the node's data dir (`data/`), its log
//!   (`node.log`, appended across restarts) and for d-engine `config.toml`.
//! - Client endpoints are always direct. With `proxied`, every peer link goes
//!   through a [`crate::proxy::Proxy`] controlled by [`LocalCluster::net`].
//! - No stray processes: `Drop` SIGKILLs every child; each child also has
//!   `PR_SET_PDEATHSIG = SIGKILL` (it dies when the harness dies) and its own
//!   process group (a terminal Ctrl-C reaches only the harness, which cleans up).
//! - etcd: `extra` pairs become `--key=value` flags. d-engine: dotted config keys
//!   (`("raft.election_timeout_ms_min", "300")`) merged into `config.toml`.

mod dengine;
pub use dengine::binary as dengine_binary;
mod etcd;
pub mod netns;
pub mod process;

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Child;

use crate::client::{Consistency, Directory, KvClient};
use crate::proxy::{NetControl, Proxy};
use process::NodeCommand;

/// Which system the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Dengine,
    Etcd,
}

impl TargetKind {
    pub fn parse(s: &str) -> Option<TargetKind> {
        match s {
            "dengine" | "d-engine" => Some(TargetKind::Dengine),
            "etcd" => Some(TargetKind::Etcd),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Dengine => "dengine",
            TargetKind::Etcd => "etcd",
        }
    }
}

/// What to launch.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub kind: TargetKind,
    pub nodes: usize,
    /// Root of the per-node directories; created if missing.
    pub dir: PathBuf,
    /// Route every peer link through a fault-injecting proxy.
    pub proxied: bool,
    /// d-engine, as root: every node in its own network namespace, faults by
    /// nftables ([`netns`]); overrides `proxied`.
    pub netns: bool,
    /// The node binary (d-engine: see `dengine::binary` for the fallbacks;
    /// etcd: `$ETCD_BIN`, else `etcd` on the PATH).
    pub binary: Option<PathBuf>,
    /// Extra config keys (see the module docs).
    pub extra: Vec<(String, String)>,
    /// Bound on waiting for the cluster to be ready.
    pub ready_timeout: Duration,
}

impl ClusterSpec {
    pub fn new(kind: TargetKind, nodes: usize, dir: PathBuf) -> Self {
        ClusterSpec {
            kind,
            nodes,
            dir,
            proxied: false,
            netns: false,
            binary: None,
            extra: Vec::new(),
            ready_timeout: READY_TIMEOUT,
        }
    }
}

/// Default bound on start-up (leader elected and a write/read round trip).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on a node's exit after SIGTERM before it is SIGKILLed.
const GRACEFUL_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Peak-RSS sampling period.
const RSS_SAMPLE_PERIOD: Duration = Duration::from_millis(250);
/// Per-request bound of the launcher's own probes.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Why a start attempt failed: a node that exited is worth another try.
enum StartError {
    Exited(anyhow::Error),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Other(e)
    }
}

/// One node's place in the cluster (built by the per-target `layout`).
pub(super) struct Node {
    pub(super) id: u64,
    pub(super) client_addr: String,
    pub(super) dir: PathBuf,
    pub(super) log: PathBuf,
    pub(super) command: NodeCommand,
    pub(super) child: Option<Child>,
    pub(super) paused: bool,
}

/// Shared with the RSS sampler task: (pid if running, peak KiB) per launched node.
type RssTable = Arc<Mutex<Vec<(Option<u32>, u64)>>>;

/// A node started by [`LocalCluster::start_joining`], not in a slot yet.
#[derive(Debug, Clone)]
pub struct Joining {
    /// Its launch index (for [`LocalCluster::assign_slot`] and [`LocalCluster::retire`]).
    pub node: usize,
    pub id: u64,
    /// The address every member dials (to register with AddLearner).
    pub addr: String,
}

/// A running local cluster. See the module docs.
pub struct LocalCluster {
    spec: ClusterSpec,
    /// Every node ever launched, by launch index; `slots` says which count.
    nodes: Vec<Node>,
    /// slot → launch index.
    slots: Vec<usize>,
    /// Launched nodes that are members but hold no slot (a learner being
    /// added, or a node whose replacement could not finish).
    extras: Vec<usize>,
    net: Option<Arc<NetControl>>,
    proxies: Vec<Proxy>,
    rss: RssTable,
    sampler: tokio::task::JoinHandle<()>,
    /// d-engine: where the nodes are, shared with every client.
    directory: Option<Arc<Directory>>,
    /// `--net netns`: dropped after the nodes are killed (see `Drop`).
    netns: Option<netns::Netns>,
}

/// First port of the kernel's ephemeral range (outgoing connections take
/// their local ports there).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free TCP port on 127.0.0.1 for a node to listen on. Chosen at random
/// *below* the ephemeral range: a port from `bind(0)` is released before the
/// node binds it, and meanwhile any outgoing connection on the machine may
/// take it as its local port. Checked by binding; another program can still
/// win the race, which [`LocalCluster::start`] survives by retrying.
pub(super) fn free_port() -> anyhow::Result<u16> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    const LOW: u16 = 10_000;
    let high = ephemeral_low();
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut rng = crate::prng::Rng::new(crate::prng::Rng::seed_from_time() ^ seq);
    if high > LOW + 1000 {
        for _ in 0..100 {
            let port = rng.range(u64::from(LOW), u64::from(high) - 1) as u16;
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(port);
            }
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("no free port")?
        .local_addr()?
        .port())
}

/// Attempts at starting a cluster when a node dies during start-up (a port
/// taken by someone else between our check and the node's bind).
const START_ATTEMPTS: usize = 3;

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl LocalCluster {
    /// Starts the cluster and waits until it is ready (bounded by
    /// `spec.ready_timeout`). On failure every started process is killed.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<LocalCluster> {
        if spec.nodes == 0 {
            bail!("a cluster needs at least one node");
        }
        std::fs::create_dir_all(&spec.dir)
            .with_context(|| format!("cannot create {}", spec.dir.display()))?;
        let mut attempt = 1;
        loop {
            match Self::start_once(spec.clone()).await {
                Ok(cluster) => return Ok(cluster),
                Err(StartError::Exited(e)) if attempt < START_ATTEMPTS => {
                    eprintln!("chaos: {e:#}; retrying with fresh ports (attempt {attempt})");
                    attempt += 1;
                    for id in 1..=spec.nodes as u64 {
                        wipe_unless_in_use(&node_dir(&spec, id).join("data"))?;
                    }
                }
                Err(StartError::Exited(e) | StartError::Other(e)) => return Err(e),
            }
        }
    }

    async fn start_once(spec: ClusterSpec) -> Result<LocalCluster, StartError> {
        let n = spec.nodes;
        // With netns the table only records the faults; nftables enforces them.
        let net = (spec.proxied || spec.netns).then(|| NetControl::new(n));
        let mut ns = None;
        let (nodes, proxies) = match spec.kind {
            TargetKind::Etcd if spec.netns => {
                return Err(anyhow::anyhow!("--net netns is not supported for etcd yet").into());
            }
            TargetKind::Etcd => etcd::layout(&spec, net.as_ref()).await?,
            TargetKind::Dengine if spec.netns => {
                let mut created = netns::Netns::create()?;
                let nodes = dengine::layout_netns(&spec, &mut created)?;
                ns = Some(created);
                (nodes, Vec::new())
            }
            TargetKind::Dengine => dengine::layout(&spec, net.as_ref()).await?,
        };
        let directory = match spec.kind {
            TargetKind::Dengine => {
                let dir = Arc::new(Directory::default());
                for (slot, node) in nodes.iter().enumerate() {
                    dir.insert(node.id, &node.client_addr)?;
                    dir.set_slot(slot, node.id);
                }
                Some(dir)
            }
            TargetKind::Etcd => None,
        };
        let rss: RssTable = Arc::new(Mutex::new(vec![(None, 0); n]));
        let sampler = tokio::spawn(sample_rss(rss.clone()));
        let mut cluster = LocalCluster {
            spec,
            nodes,
            slots: (0..n).collect(),
            extras: Vec::new(),
            net,
            proxies,
            rss,
            sampler,
            directory,
            netns: ns,
        };
        for i in 0..n {
            cluster.spawn_node(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    /// Starts launched node `p` (its process is not running).
    fn spawn_node(&mut self, p: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[p];
        std::fs::create_dir_all(&node.dir)?;
        let child = process::spawn_guarded(&node.command, &node.log)?;
        self.rss.lock().unwrap_or_else(|e| e.into_inner())[p].0 = child.id();
        if let Some(net) = &self.net {
            net.set_pid(p, child.id());
        }
        node.child = Some(child);
        node.paused = false;
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), StartError> {
        let deadline = Instant::now() + self.spec.ready_timeout;
        loop {
            for i in 0..self.nodes.len() {
                if let Some(child) = self.nodes[i].child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    return Err(StartError::Exited(anyhow::anyhow!(
                        "node {} exited during start-up ({status}); see {}",
                        self.nodes[i].id,
                        self.nodes[i].log.display()
                    )));
                }
            }
            let last_err = match self.probe_round_trip().await {
                Ok(()) => break,
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(StartError::Other(anyhow::anyhow!(
                    "{} cluster not ready after {:?}: {last_err:#}; logs under {}",
                    self.spec.kind.name(),
                    self.spec.ready_timeout,
                    self.spec.dir.display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Some(net) = &self.net
            && self.spec.kind == TargetKind::Etcd
        {
            // etcd proxies identify the dialing node by member id.
            for i in 0..self.nodes.len() {
                let client = self.client(i)?;
                let status = client
                    .status(PROBE_TIMEOUT)
                    .await
                    .map_err(|e| anyhow::anyhow!(e.message))?;
                net.set_member(&format!("{:x}", status.id), i);
            }
        }
        Ok(())
    }

    /// A leader exists and a write then a linearizable read through it agree.
    async fn probe_round_trip(&self) -> anyhow::Result<()> {
        let leader = self.leader().await.context("no leader yet")?;
        let client = self.client(leader)?;
        let value = format!("{:?}", Instant::now());
        client
            .put(b"__chaos_ready", value.as_bytes(), PROBE_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        let got = client
            .get(b"__chaos_ready", Consistency::Linearizable, PROBE_TIMEOUT)
            .await
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if got.as_deref() != Some(value.as_bytes()) {
            bail!("round trip read {got:?}, wrote {value:?}");
        }
        Ok(())
    }

    /// A client bound to slot `i` (d-engine: to whichever node holds it).
    pub fn client(&self, i: usize) -> anyhow::Result<KvClient> {
        match &self.directory {
            Some(dir) => Ok(KvClient::in_directory(dir.clone(), i)),
            None => KvClient::connect(
                self.spec.kind,
                &self.nodes[self.slots[i]].client_addr,
                &self.endpoint_by_id(),
            ),
        }
    }

    /// d-engine: how the clients shared `Batch` RPCs so far.
    pub fn client_batching(&self) -> Option<crate::client::ClientBatching> {
        self.directory.as_ref().map(|d| d.batching())
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    /// The number of slots (the cluster size the schedule knows).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The id of the node in slot `i`.
    pub fn node_id(&self, i: usize) -> u64 {
        self.nodes[self.slots[i]].id
    }

    /// Launch indices of the current members: every slot, then the extras.
    fn members(&self) -> Vec<usize> {
        self.slots
            .iter()
            .chain(self.extras.iter())
            .copied()
            .collect()
    }

    /// Client endpoints (`127.0.0.1:port`, never proxied), by slot.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|&p| self.nodes[p].client_addr.clone())
            .collect()
    }

    /// (node id, direct client endpoint) of every member: what d-engine
    /// clients need to follow NOT_LEADER redirects without the proxies.
    pub fn endpoint_by_id(&self) -> Vec<(u64, String)> {
        self.members()
            .into_iter()
            .map(|p| (self.nodes[p].id, self.nodes[p].client_addr.clone()))
            .collect()
    }

    /// The fault table of the peer proxies (`None` unless `proxied`).
    pub fn net(&self) -> Option<&Arc<NetControl>> {
        self.net.as_ref()
    }

    /// Edits the link fault table (indexed by slot) and puts it in force:
    /// the proxies obey at once. Fails when the cluster has no network control.
    pub fn update_links(
        &mut self,
        f: impl FnMut(usize, usize, &mut crate::proxy::LinkFault),
    ) -> anyhow::Result<()> {
        let net = self
            .net
            .as_ref()
            .context("network faults need a proxied cluster")?;
        net.update_all(f);
        self.sync_netns()
    }

    /// `--net netns`: rewrites the nftables rules of every slot's node from
    /// the fault table (a node in no slot gets none and is never a target).
    fn sync_netns(&mut self) -> anyhow::Result<()> {
        let (Some(ns), Some(net)) = (self.netns.as_mut(), self.net.as_ref()) else {
            return Ok(());
        };
        for (a, &pa) in self.slots.iter().enumerate() {
            let peers: Vec<(u64, crate::proxy::LinkFault)> = self
                .slots
                .iter()
                .enumerate()
                .filter(|&(b, _)| b != a)
                .map(|(b, &pb)| (self.nodes[pb].id, net.link(a, b)))
                .collect();
            ns.apply(self.nodes[pa].id, &peers)?;
        }
        Ok(())
    }

    /// Whether added delay (and jitter) can be injected: not with netns.
    pub fn supports_delay(&self) -> bool {
        self.net.is_some() && self.netns.is_none()
    }

    /// The network namespaces, with `--net netns`.
    pub fn netns(&self) -> Option<&netns::Netns> {
        self.netns.as_ref()
    }

    /// Slot `i`'s node's log file.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[self.slots[i]].log.clone()
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.node_pid(self.slots[i])
    }

    fn node_pid(&self, p: usize) -> Option<u32> {
        self.nodes[p].child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.pid(i).is_some()
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[self.slots[i]].paused
    }

    /// The largest VmHWM seen for slot `i`'s node over all its incarnations, in KiB.
    pub fn peak_rss_kib(&self, i: usize) -> u64 {
        let p = self.slots[i];
        let mut table = self.rss.lock().unwrap_or_else(|e| e.into_inner());
        sample_into(&mut table[p]);
        table[p].1
    }

    /// The slot whose node a majority follows: each running node is asked
    /// for its view, and a node that claims leadership with the highest term
    /// wins. `None` also when the leader holds no slot.
    pub async fn leader(&self) -> Option<usize> {
        let probes = (0..self.len())
            .filter(|&i| self.is_running(i) && !self.is_paused(i))
            .map(|i| async move {
                let client = self.client(i).ok()?;
                client.status(PROBE_TIMEOUT).await.ok().map(|s| (i, s))
            });
        let statuses: Vec<_> = crate::util::join_all(probes)
            .await
            .into_iter()
            .flatten()
            .collect();
        statuses
            .iter()
            .filter(|(_, s)| s.is_leader())
            .max_by_key(|(_, s)| s.term)
            .map(|(i, _)| *i)
    }

    /// SIGKILL slot `i`'s node and reap it. Resumes nothing: a paused node dies too.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill_node(self.slots[i]).await
    }

    async fn kill_node(&mut self, p: usize) -> anyhow::Result<()> {
        self.sample_peak(p);
        if let Some(mut child) = self.nodes[p].child.take() {
            if let Some(pid) = child.id() {
                process::signal(pid, libc::SIGKILL)?;
            }
            child.wait().await?;
        }
        self.mark_down(p);
        Ok(())
    }

    /// Reaps every node process that has exited on its own (crash, `kill -9` from
    /// outside, a fatal error) and returns its id and exit status. Each is then down,
    /// as after [`LocalCluster::kill`]; without this a dead node stays a zombie until
    /// the cluster is dropped.
    pub fn reap_exited(&mut self) -> Vec<(u64, std::process::ExitStatus)> {
        let mut exited = Vec::new();
        for p in 0..self.nodes.len() {
            let status = match self.nodes[p].child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => continue,
            };
            self.nodes[p].child = None;
            self.mark_down(p);
            exited.push((self.nodes[p].id, status));
        }
        exited
    }

    fn sample_peak(&self, p: usize) {
        sample_into(&mut self.rss.lock().unwrap_or_else(|e| e.into_inner())[p]);
    }

    fn mark_down(&mut self, p: usize) {
        self.rss.lock().unwrap_or_else(|e| e.into_inner())[p].0 = None;
        if let Some(net) = &self.net {
            net.set_pid(p, None);
        }
        self.nodes[p].paused = false;
    }

    /// Starts slot `i`'s node again (same ports, data dir and log), killing
    /// it first if it is still running.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        let p = self.slots[i];
        if self.nodes[p].child.is_some() {
            self.kill_node(p).await?;
        }
        self.spawn_node(p)
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        let pid = self
            .pid(i)
            .with_context(|| format!("node {i} is not running"))?;
        process::signal(pid, libc::SIGSTOP)?;
        self.nodes[self.slots[i]].paused = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        self.resume_node(self.slots[i])
    }

    fn resume_node(&mut self, p: usize) -> anyhow::Result<()> {
        if let Some(pid) = self.node_pid(p) {
            process::signal(pid, libc::SIGCONT)?;
        }
        self.nodes[p].paused = false;
        Ok(())
    }

    /// SIGTERM (graceful shutdown) and wait for the exit; SIGKILL after a
    /// bound. The node stays down until [`LocalCluster::restart`].
    pub async fn terminate(&mut self, i: usize) -> anyhow::Result<()> {
        let p = self.slots[i];
        self.sample_peak(p);
        if let Some(mut child) = self.nodes[p].child.take() {
            if let Some(pid) = child.id() {
                if self.nodes[p].paused {
                    process::signal(pid, libc::SIGCONT)?;
                }
                process::signal(pid, libc::SIGTERM)?;
            }
            if tokio::time::timeout(GRACEFUL_EXIT_TIMEOUT, child.wait())
                .await
                .is_err()
            {
                if let Some(pid) = child.id() {
                    process::signal(pid, libc::SIGKILL)?;
                }
                child.wait().await?;
            }
        }
        self.mark_down(p);
        Ok(())
    }

    /// [`LocalCluster::terminate`], then start again.
    pub async fn graceful_restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.terminate(i).await?;
        self.spawn_node(self.slots[i])
    }

    /// Heals the network, resumes paused members and starts stopped ones.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(net) = &self.net {
            net.heal();
        }
        self.sync_netns()?;
        for p in self.members() {
            if self.nodes[p].paused {
                self.resume_node(p)?;
            }
            if self.node_pid(p).is_none() {
                self.spawn_node(p)?;
            }
        }
        Ok(())
    }

    /// Starts a d-engine node with the next unused id and a fresh data dir,
    /// configured to join the current members as a learner. It holds no slot
    /// (and no link of it is faulted) until [`LocalCluster::assign_slot`];
    /// the caller registers it with AddLearner at `Joining::addr`.
    pub async fn start_joining(&mut self) -> anyhow::Result<Joining> {
        if self.spec.kind != TargetKind::Dengine {
            bail!(
                "{}: nodes cannot join a running cluster here",
                self.spec.kind.name()
            );
        }
        // Ids are never reused: a node that left never comes back, and a new
        // one never finds old data.
        let id = self.nodes.iter().map(|n| n.id).max().unwrap_or(0) + 1;
        let p = self.nodes.len();
        let members: Vec<(usize, u64, String)> = self
            .members()
            .into_iter()
            .map(|q| (q, self.nodes[q].id, self.nodes[q].client_addr.clone()))
            .collect();
        let (node, proxies, registered) = dengine::joining(
            &self.spec,
            p,
            id,
            &members,
            self.net.as_ref(),
            self.netns.as_mut(),
        )
        .await?;
        wipe_unless_in_use(&node.dir.join("data"))?;
        if let Some(net) = &self.net {
            net.set_slot(p, None);
        }
        if let Some(dir) = &self.directory {
            dir.insert(id, &node.client_addr)?;
        }
        self.nodes.push(node);
        self.proxies.extend(proxies);
        self.rss
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((None, 0));
        self.extras.push(p);
        self.spawn_node(p)?;
        Ok(Joining {
            node: p,
            id,
            addr: registered,
        })
    }

    /// Puts launched node `node` (an extra) in slot `slot`; returns the node
    /// that held it, which becomes an extra (retire it once it left).
    pub fn assign_slot(&mut self, slot: usize, node: usize) -> usize {
        let old = std::mem::replace(&mut self.slots[slot], node);
        self.extras.retain(|&q| q != node);
        self.extras.push(old);
        if let Some(net) = &self.net {
            net.set_slot(old, None);
            net.set_slot(node, Some(slot));
        }
        if let Some(dir) = &self.directory {
            dir.set_slot(slot, self.nodes[node].id);
        }
        if let Err(e) = self.sync_netns() {
            eprintln!("chaos: nftables after a slot change: {e:#}");
        }
        old
    }

    /// Stops launched node `node` for good (it must hold no slot): it is no
    /// longer a member, clients forget it, heal never restarts it.
    pub async fn retire(&mut self, node: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.slots.contains(&node),
            "node {} holds a slot",
            self.nodes[node].id
        );
        self.extras.retain(|&q| q != node);
        if let Some(dir) = &self.directory {
            dir.remove(self.nodes[node].id);
        }
        self.kill_node(node).await?;
        if let Some(ns) = self.netns.as_mut() {
            ns.remove_node(self.nodes[node].id)?;
        }
        Ok(())
    }

    /// The launch index of the node with id `id`.
    pub fn node_by_id(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    /// The id of launched node `node`.
    pub fn id_of(&self, node: usize) -> u64 {
        self.nodes[node].id
    }

    /// (id, client bound to it directly) of every member: slots, then extras.
    pub fn member_clients(&self) -> anyhow::Result<Vec<(u64, KvClient)>> {
        let by_id = self.endpoint_by_id();
        self.members()
            .into_iter()
            .filter(|&p| self.node_pid(p).is_some() && !self.nodes[p].paused)
            .map(|p| {
                let n = &self.nodes[p];
                Ok((
                    n.id,
                    KvClient::connect(self.spec.kind, &n.client_addr, &by_id)?,
                ))
            })
            .collect()
    }

    /// Ids of the extras (members in no slot).
    pub fn extra_ids(&self) -> Vec<u64> {
        self.extras.iter().map(|&p| self.nodes[p].id).collect()
    }

    /// Every node directory ever used (`dir/nodeI`), retired nodes included.
    pub fn node_dirs(&self) -> Vec<PathBuf> {
        self.nodes.iter().map(|n| n.dir.clone()).collect()
    }

    /// Kills every node and waits for them to be reaped.
    pub async fn stop(&mut self) {
        for p in 0..self.nodes.len() {
            let _ = self.kill_node(p).await;
        }
        self.sampler.abort();
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.sampler.abort();
        for node in &mut self.nodes {
            if let Some(child) = node.child.as_mut() {
                if let Some(pid) = child.id() {
                    let _ = process::signal(pid, libc::SIGKILL);
                }
                // Reap now if we can; otherwise tokio reaps it in the background.
                let _ = child.try_wait();
            }
        }
    }
}

fn sample_into(entry: &mut (Option<u32>, u64)) {
    if let Some(kib) = entry.0.and_then(process::vm_hwm_kib) {
        entry.1 = entry.1.max(kib);
    }
}

async fn sample_rss(table: RssTable) {
    loop {
        {
            let mut t = table.lock().unwrap_or_else(|e| e.into_inner());
            t.iter_mut().for_each(sample_into);
        }
        tokio::time::sleep(RSS_SAMPLE_PERIOD).await;
    }
}

pub(super) fn node_dir(spec: &ClusterSpec, id: u64) -> PathBuf {
    spec.dir.join(format!("node{id}"))
}

/// The stores of a d-engine data directory that hold a lock (see the node's
/// `open_backends`).
const LOCKED_STORES: [&str; 3] = ["storage", "state_machine", "rocksdb-state"];

/// Removes a node's data directory, unless a live process holds one of its stores'
/// locks: a node started by hand (or left from another run) on the same directory
/// must never lose its data to a retried start.
fn wipe_unless_in_use(data: &Path) -> anyhow::Result<()> {
    for store in LOCKED_STORES {
        if let Ok(Some(pid)) = d_engine::storage::dir_lock::holder(&data.join(store)) {
            anyhow::bail!(
                "{} is in use by another process (pid {pid}); not wiping it",
                data.display()
            );
        }
    }
    match std::fs::remove_dir_all(data) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", data.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod wipe_tests {
    use super::*;

    #[test]
    fn a_data_dir_in_use_is_not_wiped_and_a_free_one_is() {
        let root = std::env::temp_dir().join(format!("chaos-wipe-{}", std::process::id()));
        let data = root.join("data");
        let store = data.join("storage");
        std::fs::create_dir_all(&store).unwrap();
        let lock = d_engine::storage::DirLock::acquire(&store).unwrap();
        let e = wipe_unless_in_use(&data).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e:#}");
        assert!(store.is_dir(), "a held directory is kept");
        drop(lock);
        wipe_unless_in_use(&data).unwrap();
        assert!(!data.exists());
        wipe_unless_in_use(&data).unwrap();
        let _ = std::fs::remove_dir_all(&root);
    }
}
