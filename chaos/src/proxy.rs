//! The fault-injecting TCP proxy that sits on peer links.
//!
//! Every peer connection of a proxied cluster goes through a [`Proxy`] in the
//! harness: it accepts on `127.0.0.1:port` and forwards to the real peer port.
//! The faults live in one shared [`NetControl`] table indexed by *directed*
//! link `(from, to)`; the nemesis edits the table and the proxies obey it at
//! once, including on connections that are already open.
//!
//! **Who is talking.** A connection is dialed by node `src` towards node `dst`.
//! Bytes from the dialer to the target travel on link `src → dst`, the replies
//! on link `dst → src`. d-engine gets one proxy per directed link, so `src` is
//! fixed ([`Source::Fixed`]). etcd names its peers by member id, derived from the
//! peer URLs of `--initial-cluster`, which must be the same on every node, so
//! etcd gets one proxy per destination and the proxy reads `src` from the
//! `X-Server-From` header that etcd's rafthttp puts on every peer request
//! ([`Source::EtcdHeader`]); the launcher maps member ids to node indices once
//! the cluster is up. A connection whose source is unknown is never faulted.
//!
//! **Nodes that join later.** A d-engine node added as a learner registers one
//! address that every member dials, so its inbound proxy cannot be per link:
//! it finds the dialer by the connecting socket ([`Source::Dialer`]): the
//! socket's inode from `/proc/net/tcp`, then the node process holding it
//! (pids from [`NetControl::set_pid`]). Proxies name nodes by their launch
//! index (never reused); the fault table is indexed by *slot* (the node
//! indices of the schedule), and [`NetControl::set_slot`] says which launched
//! node holds which slot, so a node that replaced another inherits its slot's
//! faults. A node in no slot (a learner being added) is never faulted.
//!
//! **Fault model.** TCP cannot lose bytes silently, so:
//! - *blocked* (partition, one way or both): bytes read in a blocked direction
//!   are discarded (a blackhole: the sender sees no error, the receiver no
//!   data, timeouts fire as in a real partition). The connection is *poisoned*:
//!   its byte stream has a hole, so when the link heals the proxy closes it
//!   and the peers reconnect. With [`PartitionStyle::Refuse`] a connection with
//!   a blocked direction is closed at once instead (new ones too), which is
//!   how a crashed host or a firewall REJECT looks.
//! - *delay* + *jitter*: each chunk is forwarded `delay ± jitter` ms after it
//!   was read, never before an earlier chunk of the same direction (order is
//!   kept, so jitter shows up as bursts, as on a real queue).
//! - *loss* `p`: each chunk, with probability `p`, resets the whole connection
//!   instead of being forwarded: the peers see a broken connection and must
//!   reconnect and resend, which is what loss looks like above TCP.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::prng::Rng;

/// Size of one forwarded chunk.
const CHUNK_BYTES_MAX: usize = 64 * 1024;
/// Chunks queued per direction while a delay is in force (backpressure beyond).
const DELAY_QUEUE_CHUNKS_MAX: usize = 256;
/// Longest HTTP request head the etcd source sniffer reads.
const SNIFF_BYTES_MAX: usize = 16 * 1024;
/// How long the sniffer waits for a request head before giving up.
const SNIFF_TIMEOUT_MS: u64 = 5_000;

/// Faults on one directed link.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LinkFault {
    /// Partitioned: bytes on this link are discarded.
    pub blocked: bool,
    /// Added one-way delay, milliseconds.
    pub delay_ms: u64,
    /// Uniform jitter around `delay_ms`, milliseconds.
    pub jitter_ms: u64,
    /// Probability per chunk of resetting the connection.
    pub loss: f64,
}

impl LinkFault {
    pub fn is_clear(&self) -> bool {
        *self == LinkFault::default()
    }
}

/// How a partition treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartitionStyle {
    /// Discard bytes and keep the connection open (timeouts, like a real
    /// network partition). The default.
    #[default]
    Blackhole,
    /// Close connections that cross the partition, and new ones at once.
    Refuse,
}

/// Counters, for tests and the summary.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub bytes_forwarded: AtomicU64,
    pub bytes_dropped: AtomicU64,
    pub resets: AtomicU64,
}

/// The shared fault table of an `n`-node cluster.
#[derive(Debug)]
pub struct NetControl {
    n: usize,
    inner: Mutex<Inner>,
    /// Bumped on every change so open connections re-evaluate themselves.
    generation: watch::Sender<u64>,
    pub stats: ProxyStats,
}

#[derive(Debug)]
struct Inner {
    links: Vec<LinkFault>,
    style: PartitionStyle,
    /// etcd member id (as in `X-Server-From`, lowercase hex) → node index.
    members: HashMap<String, usize>,
    /// Launched node → the slot it holds (identity until a node is replaced).
    slot_of: Vec<Option<usize>>,
    /// Launched node → the pid of its running process, for [`Source::Dialer`].
    pids: Vec<Option<u32>>,
}

impl NetControl {
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(NetControl {
            n,
            inner: Mutex::new(Inner {
                links: vec![LinkFault::default(); n * n],
                style: PartitionStyle::default(),
                members: HashMap::new(),
                slot_of: (0..n).map(Some).collect(),
                pids: vec![None; n],
            }),
            generation: watch::channel(0).0,
            stats: ProxyStats::default(),
        })
    }

    pub fn nodes(&self) -> usize {
        self.n
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn link(&self, from: usize, to: usize) -> LinkFault {
        self.lock().links[from * self.n + to]
    }

    pub fn set_link(&self, from: usize, to: usize, fault: LinkFault) {
        assert!(
            from < self.n && to < self.n,
            "link {from}->{to} outside a {}-node cluster",
            self.n
        );
        self.lock().links[from * self.n + to] = fault;
        self.bump();
    }

    /// Applies `f` to every directed link at once (one generation bump).
    pub fn update_all(&self, mut f: impl FnMut(usize, usize, &mut LinkFault)) {
        {
            let mut inner = self.lock();
            for from in 0..self.n {
                for to in 0..self.n {
                    if from != to {
                        f(from, to, &mut inner.links[from * self.n + to]);
                    }
                }
            }
        }
        self.bump();
    }

    /// Blocks every link between nodes of different groups (`group[i]` is
    /// node i's group). Links inside a group are left as they are.
    pub fn partition(&self, group: &[usize]) {
        assert_eq!(group.len(), self.n);
        self.update_all(|from, to, l| {
            if group[from] != group[to] {
                l.blocked = true;
            }
        });
    }

    /// Clears every fault.
    pub fn heal(&self) {
        self.update_all(|_, _, l| *l = LinkFault::default());
    }

    pub fn set_style(&self, style: PartitionStyle) {
        self.lock().style = style;
        self.bump();
    }

    pub fn style(&self) -> PartitionStyle {
        self.lock().style
    }

    /// Tells etcd proxies which node a member id (hex, as etcd prints it) is.
    pub fn set_member(&self, member_id_hex: &str, node: usize) {
        self.lock()
            .members
            .insert(member_id_hex.to_ascii_lowercase(), node);
        self.bump();
    }

    /// Says which slot launched node `node` holds (`None`: none, never faulted).
    pub fn set_slot(&self, node: usize, slot: Option<usize>) {
        {
            let mut inner = self.lock();
            if inner.slot_of.len() <= node {
                inner.slot_of.resize(node + 1, None);
            }
            inner.slot_of[node] = slot;
        }
        self.bump();
    }

    /// Records the pid of launched node `node` (`None` when it is down).
    pub fn set_pid(&self, node: usize, pid: Option<u32>) {
        let mut inner = self.lock();
        if inner.pids.len() <= node {
            inner.pids.resize(node + 1, None);
        }
        inner.pids[node] = pid;
    }

    fn slot(inner: &Inner, node: usize) -> Option<usize> {
        inner.slot_of.get(node).copied().flatten()
    }

    /// The slots of a connection's two ends, if both hold one.
    fn resolve(&self, src: &Source, dst: usize) -> Option<(usize, usize)> {
        let inner = self.lock();
        let s = match src {
            Source::Fixed(i) => *i,
            Source::EtcdHeader | Source::Dialer => return None,
            Source::Member(id) => *inner.members.get(id)?,
        };
        Some((Self::slot(&inner, s)?, Self::slot(&inner, dst)?))
    }

    fn pids(&self) -> Vec<Option<u32>> {
        self.lock().pids.clone()
    }

    /// True when no link has any fault.
    pub fn is_clear(&self) -> bool {
        self.lock().links.iter().all(LinkFault::is_clear)
    }
}

/// How a proxy learns which node dialed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Every connection comes from this node (one proxy per directed link).
    Fixed(usize),
    /// Read the `X-Server-From` header of the first HTTP request.
    EtcdHeader,
    /// Resolved from a header: an etcd member id in lowercase hex.
    Member(String),
    /// Whichever node process holds the connecting socket (see the module docs).
    Dialer,
}

/// One listening proxy. Dropping it stops accepting and cuts its connections.
pub struct Proxy {
    addr: SocketAddr,
    _tasks: JoinSet<()>,
}

impl Proxy {
    /// Listens on `127.0.0.1:0` (or `listen` if given) and forwards every
    /// connection to `target`, node `dst`.
    pub async fn start(
        listen: Option<SocketAddr>,
        target: SocketAddr,
        dst: usize,
        source: Source,
        ctl: Arc<NetControl>,
    ) -> io::Result<Proxy> {
        let bind = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let mut tasks = JoinSet::new();
        tasks.spawn(accept_loop(listener, target, dst, source, ctl));
        Ok(Proxy {
            addr,
            _tasks: tasks,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    dst: usize,
    source: Source,
    ctl: Arc<NetControl>,
) {
    // Owned here so that aborting this task (dropping the Proxy) drops every
    // connection task with it.
    let mut conns = JoinSet::new();
    let mut seq = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else {
                    // Out of descriptors, most likely: do not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                seq += 1;
                ctl.stats.connections.fetch_add(1, Ordering::Relaxed);
                let seed = seq ^ ((dst as u64) << 48) ^ Rng::seed_from_time();
                conns.spawn(serve_conn(client, target, dst, source.clone(), ctl.clone(), seed));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Reads the HTTP request head and returns the `X-Server-From` member id.
async fn sniff_etcd_source(client: &mut TcpStream) -> io::Result<(Source, Vec<u8>)> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_millis(SNIFF_TIMEOUT_MS);
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < SNIFF_BYTES_MAX {
        let n = tokio::time::timeout_at(deadline.into(), client.read(&mut buf))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request head"))??;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head);
    let from = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("x-server-from")
            .then(|| value.trim().to_ascii_lowercase())
    });
    Ok((from.map_or(Source::EtcdHeader, Source::Member), head))
}

/// The faults that apply to one connection right now: (dialer → target,
/// target → dialer), or `None` when the source is unknown.
fn conn_faults(ctl: &NetControl, src: &Source, dst: usize) -> Option<(LinkFault, LinkFault)> {
    let (s, d) = ctl.resolve(src, dst)?;
    (s != d).then(|| (ctl.link(s, d), ctl.link(d, s)))
}

/// The inode of the IPv4 TCP socket whose local end is `local` and remote end
/// `remote`, from `/proc/net/tcp` (addresses there are in host byte order).
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let parse = |field: &str| -> Option<SocketAddr> {
        let (ip, port) = field.split_once(':')?;
        let ip = u32::from_str_radix(ip, 16).ok()?;
        let port = u16::from_str_radix(port, 16).ok()?;
        Some(SocketAddr::from((ip.to_ne_bytes(), port)))
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && parse(f[1])? == local && parse(f[2])? == remote)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

/// The launched node whose process holds the socket that dialed `proxy` from
/// `peer` (see [`Source::Dialer`]).
fn dialer_of(ctl: &NetControl, peer: SocketAddr, proxy: SocketAddr) -> Option<usize> {
    let inode = socket_inode(peer, proxy)?;
    let wanted = format!("socket:[{inode}]");
    ctl.pids().iter().enumerate().find_map(|(node, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", (*pid)?)).ok()?;
        fds.flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == &*wanted))
            .then_some(node)
    })
}

async fn serve_conn(
    mut client: TcpStream,
    target: SocketAddr,
    dst: usize,
    source: Source,
    ctl: Arc<NetControl>,
    seed: u64,
) {
    let _ = client.set_nodelay(true);
    let (src, prefix) = match source {
        Source::EtcdHeader => match sniff_etcd_source(&mut client).await {
            Ok(found) => found,
            Err(_) => return,
        },
        Source::Dialer => {
            let found = match (client.peer_addr(), client.local_addr()) {
                (Ok(peer), Ok(local)) => dialer_of(&ctl, peer, local),
                _ => None,
            };
            (found.map_or(Source::Dialer, Source::Fixed), Vec::new())
        }
        other => (other, Vec::new()),
    };
    let refused = |ctl: &NetControl| {
        ctl.style() == PartitionStyle::Refuse
            && conn_faults(ctl, &src, dst).is_some_and(|(a, b)| a.blocked || b.blocked)
    };
    if refused(&ctl) {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let (crd, cwr) = client.into_split();
    let (srd, swr) = server.into_split();
    let poisoned = Arc::new(AtomicBool::new(false));
    let mut generation = ctl.generation.subscribe();
    let up = pump(crd, swr, prefix, &ctl, &src, dst, true, &poisoned, seed);
    let down = pump(
        srd,
        cwr,
        Vec::new(),
        &ctl,
        &src,
        dst,
        false,
        &poisoned,
        seed.rotate_left(17),
    );
    let watch = async {
        loop {
            if generation.changed().await.is_err() {
                return;
            }
            if refused(&ctl) {
                return;
            }
            // A poisoned stream has a hole in it: once the link heals, cut it
            // so the peers reconnect with a clean stream.
            let healed = conn_faults(&ctl, &src, dst).is_none_or(|(a, b)| !a.blocked && !b.blocked);
            if healed && poisoned.load(Ordering::Relaxed) {
                return;
            }
        }
    };
    tokio::pin!(up, down, watch);
    let (mut up_done, mut down_done) = (false, false);
    // Runs until both directions end or the connection is cut; dropping the
    // halves closes both sockets.
    loop {
        tokio::select! {
            r = &mut up, if !up_done => { up_done = true; if r.is_err() { break } }
            r = &mut down, if !down_done => { down_done = true; if r.is_err() { break } }
            _ = &mut watch => break,
        }
        if up_done && down_done {
            break;
        }
    }
}

/// Why a pump stopped early: the connection must be cut.
struct Cut;

/// Forwards one direction of a connection. `upstream` = dialer → target.
#[allow(clippy::too_many_arguments)]
async fn pump(
    mut rd: OwnedReadHalf,
    mut wr: OwnedWriteHalf,
    prefix: Vec<u8>,
    ctl: &NetControl,
    src: &Source,
    dst: usize,
    upstream: bool,
    poisoned: &AtomicBool,
    seed: u64,
) -> Result<(), Cut> {
    let mut rng = Rng::new(seed);
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAY_QUEUE_CHUNKS_MAX);
    let reader = async move {
        let mut last_due = Instant::now();
        let mut pending = (!prefix.is_empty()).then_some(prefix);
        loop {
            let chunk = match pending.take() {
                Some(p) => p,
                None => {
                    let mut buf = vec![0u8; CHUNK_BYTES_MAX];
                    let n = rd.read(&mut buf).await.map_err(|_| Cut)?;
                    if n == 0 {
                        return Ok(());
                    }
                    buf.truncate(n);
                    buf
                }
            };
            let fault =
                conn_faults(ctl, src, dst).map(|(up, down)| if upstream { up } else { down });
            let fault = fault.unwrap_or_default();
            if fault.blocked {
                poisoned.store(true, Ordering::Relaxed);
                ctl.stats
                    .bytes_dropped
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                continue;
            }
            if fault.loss > 0.0 && rng.chance(fault.loss) {
                ctl.stats.resets.fetch_add(1, Ordering::Relaxed);
                return Err(Cut);
            }
            let mut delay = fault.delay_ms as i64;
            if fault.jitter_ms > 0 {
                delay += rng.range(0, 2 * fault.jitter_ms) as i64 - fault.jitter_ms as i64;
            }
            let due = (Instant::now() + Duration::from_millis(delay.max(0) as u64)).max(last_due);
            last_due = due;
            if tx.send((due, chunk)).await.is_err() {
                return Err(Cut);
            }
        }
    };
    let writer = async {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            wr.write_all(&chunk).await.map_err(|_| Cut)?;
            ctl.stats
                .bytes_forwarded
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        // The reader saw EOF: pass the half-close on.
        let _ = wr.shutdown().await;
        Ok::<(), Cut>(())
    };
    tokio::pin!(reader, writer);
    tokio::select! {
        r = &mut reader => match r {
            // EOF: let the writer drain what is queued, then half-close.
            Ok(()) => writer.await,
            Err(cut) => Err(cut),
        },
        // The writer only ends early on a write error (the queue closes
        // only after the reader has returned).
        w = &mut writer => w.and(Err(Cut)),
    }
}
