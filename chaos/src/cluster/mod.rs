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
pub mod process;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Child;

use crate::client::{Consistency, KvClient};
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

/// Shared with the RSS sampler task: (pid if running, peak KiB) per node.
type RssTable = Arc<Mutex<Vec<(Option<u32>, u64)>>>;

/// A running local cluster. See the module docs.
pub struct LocalCluster {
    spec: ClusterSpec,
    nodes: Vec<Node>,
    net: Option<Arc<NetControl>>,
    _proxies: Vec<Proxy>,
    rss: RssTable,
    sampler: tokio::task::JoinHandle<()>,
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
                        let _ = std::fs::remove_dir_all(node_dir(&spec, id).join("data"));
                    }
                }
                Err(StartError::Exited(e) | StartError::Other(e)) => return Err(e),
            }
        }
    }

    async fn start_once(spec: ClusterSpec) -> Result<LocalCluster, StartError> {
        let n = spec.nodes;
        let net = spec.proxied.then(|| NetControl::new(n));
        let (nodes, proxies) = match spec.kind {
            TargetKind::Etcd => etcd::layout(&spec, net.as_ref()).await?,
            TargetKind::Dengine => dengine::layout(&spec, net.as_ref()).await?,
        };
        let rss: RssTable = Arc::new(Mutex::new(vec![(None, 0); n]));
        let sampler = tokio::spawn(sample_rss(rss.clone()));
        let mut cluster = LocalCluster {
            spec,
            nodes,
            net,
            _proxies: proxies,
            rss,
            sampler,
        };
        for i in 0..n {
            cluster.spawn(i)?;
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        std::fs::create_dir_all(&node.dir)?;
        let child = process::spawn_guarded(&node.command, &node.log)?;
        self.rss.lock().unwrap_or_else(|e| e.into_inner())[i].0 = child.id();
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

    /// A client bound to node `i`.
    pub fn client(&self, i: usize) -> anyhow::Result<KvClient> {
        KvClient::connect(
            self.spec.kind,
            &self.nodes[i].client_addr,
            &self.endpoint_by_id(),
        )
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client endpoints (`127.0.0.1:port`, never proxied), by node index.
    pub fn client_endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.client_addr.clone()).collect()
    }

    /// (node id, direct client endpoint): what d-engine clients need to follow
    /// NOT_LEADER redirects without going through the proxies.
    pub fn endpoint_by_id(&self) -> Vec<(u64, String)> {
        self.nodes
            .iter()
            .map(|n| (n.id, n.client_addr.clone()))
            .collect()
    }

    /// The fault table of the peer proxies (`None` unless `proxied`).
    pub fn net(&self) -> Option<&Arc<NetControl>> {
        self.net.as_ref()
    }

    /// Node `i`'s log file.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.nodes[i].log.clone()
    }

    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.pid(i).is_some()
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// The largest VmHWM seen for node `i` over all its incarnations, in KiB.
    pub fn peak_rss_kib(&self, i: usize) -> u64 {
        let mut table = self.rss.lock().unwrap_or_else(|e| e.into_inner());
        sample_into(&mut table[i]);
        table[i].1
    }

    /// The node a majority follows, by index: each running node is asked
    /// for its view, and a node that claims leadership with the highest term
    /// wins.
    pub async fn leader(&self) -> Option<usize> {
        let probes = (0..self.nodes.len())
            .filter(|&i| self.is_running(i) && !self.nodes[i].paused)
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

    /// SIGKILL node `i` and reap it. Resumes nothing: a paused node dies too.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        self.peak_rss_kib(i);
        if let Some(mut child) = self.nodes[i].child.take() {
            if let Some(pid) = child.id() {
                process::signal(pid, libc::SIGKILL)?;
            }
            child.wait().await?;
        }
        self.rss.lock().unwrap_or_else(|e| e.into_inner())[i].0 = None;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// Starts node `i` again (same ports, data dir and log), killing it first
    /// if it is still running.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        if self.nodes[i].child.is_some() {
            self.kill(i).await?;
        }
        self.spawn(i)
    }

    /// SIGSTOP.
    pub fn pause(&mut self, i: usize) -> anyhow::Result<()> {
        let pid = self
            .pid(i)
            .with_context(|| format!("node {i} is not running"))?;
        process::signal(pid, libc::SIGSTOP)?;
        self.nodes[i].paused = true;
        Ok(())
    }

    /// SIGCONT.
    pub fn resume(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(pid) = self.pid(i) {
            process::signal(pid, libc::SIGCONT)?;
        }
        self.nodes[i].paused = false;
        Ok(())
    }

    /// SIGTERM (graceful shutdown) and wait for the exit; SIGKILL after a
    /// bound. The node stays down until [`LocalCluster::restart`].
    pub async fn terminate(&mut self, i: usize) -> anyhow::Result<()> {
        self.peak_rss_kib(i);
        if let Some(mut child) = self.nodes[i].child.take() {
            if let Some(pid) = child.id() {
                if self.nodes[i].paused {
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
        self.rss.lock().unwrap_or_else(|e| e.into_inner())[i].0 = None;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// [`LocalCluster::terminate`], then start again.
    pub async fn graceful_restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.terminate(i).await?;
        self.spawn(i)
    }

    /// Heals the network, resumes paused nodes and starts stopped ones.
    pub async fn heal(&mut self) -> anyhow::Result<()> {
        if let Some(net) = &self.net {
            net.heal();
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused {
                self.resume(i)?;
            }
            if !self.is_running(i) {
                self.spawn(i)?;
            }
        }
        Ok(())
    }

    /// Kills every node and waits for them to be reaped.
    pub async fn stop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.kill(i).await;
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
