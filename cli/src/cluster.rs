//! `dengine cluster start|stop|restart`: a local cluster of `dengine serve` processes.
//!
//! `start` runs in the foreground: it launches the nodes (each with its own config,
//! data directory and log under `--dir`), prints their endpoints, reports any node
//! that dies, and keeps them running until Ctrl-C, SIGTERM or `dengine cluster stop
//! --dir DIR`; then it stops every node. Its pid is in `DIR/cluster.pid`, the
//! endpoints in `DIR/endpoints`, node N's files in `DIR/nodeN/` (`config.toml`,
//! `data/`, `node.log`).
//!
//! `restart` starts one node again in the background from the config `start` wrote.
//! `stop` stops whatever runs on the directory, whoever started it: the `start`
//! process, then every process still holding a node's data directory (the storage
//! lock file names its holder's pid).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use d_engine::config::Config;
use d_engine::storage::dir_lock;
use d_engine_chaos::cluster::process::{is_alive, signal};
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind, dengine_binary};

#[derive(clap::Args)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub op: ClusterOp,
}

#[derive(clap::Subcommand)]
pub enum ClusterOp {
    /// Start N nodes and keep them running until stopped.
    Start {
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Where each node keeps its config, data and log.
        #[arg(long)]
        dir: PathBuf,
        /// Extra node config keys, e.g. --set raft.election_timeout_ms_min=500.
        #[arg(long = "set", value_parser = parse_key_value)]
        extra: Vec<(String, String)>,
    },
    /// Stop every node of --dir, whoever started it, and the `cluster start` process.
    Stop {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Start node NODE (its id) of --dir again, in the background, from the config
    /// `cluster start` wrote; a running one is stopped first.
    Restart {
        #[arg(long)]
        dir: PathBuf,
        node: u64,
    },
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

pub fn run(args: ClusterArgs) -> anyhow::Result<u8> {
    match args.op {
        ClusterOp::Start { nodes, dir, extra } => start(nodes, &dir, extra),
        ClusterOp::Stop { dir } => stop(&dir),
        ClusterOp::Restart { dir, node } => restart(&dir, node),
    }
}

fn start(nodes: usize, dir: &Path, extra: Vec<(String, String)>) -> anyhow::Result<u8> {
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let pid_file = dir.join("cluster.pid");
    if let Ok(pid) = std::fs::read_to_string(&pid_file)
        && Path::new(&format!("/proc/{}", pid.trim())).exists()
    {
        bail!(
            "a cluster is already running from {} (pid {})",
            dir.display(),
            pid.trim()
        );
    }
    // Nodes left running (restarted by hand, or from a `start` that was killed) hold
    // the data directories; the launcher would see its nodes refused and retry with
    // the data directories wiped.
    for node in node_files(dir)? {
        if let Some(pid) = node_pid(&node) {
            bail!(
                "node {} of {} is still running (pid {pid}); stop it first: dengine cluster stop --dir {}",
                node.id,
                dir.display(),
                dir.display()
            );
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut spec = ClusterSpec::new(TargetKind::Dengine, nodes, dir.to_path_buf());
        spec.extra = extra;
        let mut cluster = LocalCluster::start(spec)
            .await
            .context("starting the cluster")?;
        let endpoints = cluster.client_endpoints().join(",");
        std::fs::write(dir.join("endpoints"), format!("{endpoints}\n"))?;
        std::fs::write(&pid_file, format!("{}\n", std::process::id()))?;
        println!("cluster of {nodes} nodes running; endpoints: {endpoints}");
        println!("  dengine status --endpoints {endpoints}");
        println!("  dengine kv --endpoints {endpoints} put hello world");
        println!(
            "stop with Ctrl-C or: dengine cluster stop --dir {}",
            dir.display()
        );
        watch(&mut cluster, dir).await;
        println!("stopping");
        cluster.stop().await;
        // Nodes restarted with `cluster restart` are not our children.
        stop_lock_holders(dir)?;
        let _ = std::fs::remove_file(&pid_file);
        Ok(0)
    })
}

/// Waits for Ctrl-C or SIGTERM, meanwhile reaping and reporting any node that exits.
async fn watch(cluster: &mut LocalCluster, dir: &Path) {
    let stop = crate::signals::terminated();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {
                for (id, status) in cluster.reap_exited() {
                    eprintln!(
                        "node {id} exited ({status}); log: {}; restart it with: dengine cluster restart --dir {} {id}",
                        dir.join(format!("node{id}")).join("node.log").display(),
                        dir.display()
                    );
                }
            }
        }
    }
}

/// Node N's files, as `cluster start` lays them out (`DIR/nodeN/`).
struct NodeFiles {
    id: u64,
    config: PathBuf,
    log: PathBuf,
}

/// Every node directory of `dir` with a config, by id.
fn node_files(dir: &Path) -> anyhow::Result<Vec<NodeFiles>> {
    let listing = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    let mut nodes = Vec::new();
    for entry in listing {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("node"))
            .and_then(|n| n.parse().ok());
        if let Some(id) = id
            && path.join("config.toml").is_file()
        {
            nodes.push(NodeFiles {
                id,
                config: path.join("config.toml"),
                log: path.join("node.log"),
            });
        }
    }
    nodes.sort_by_key(|n| n.id);
    Ok(nodes)
}

/// The stores of a node's data directory that take a lock (see the node's
/// `open_backends`): the file log, the file state machine, the RocksDB state machine.
const LOCKED_STORES: [&str; 3] = ["storage", "state_machine", "rocksdb-state"];

/// The pid of the process using the node's data directory, if one does.
fn node_pid(node: &NodeFiles) -> Option<u32> {
    let config = Config::load(Some(&node.config)).ok()?;
    LOCKED_STORES.iter().find_map(|s| {
        dir_lock::holder(&config.node.data_dir.join(s))
            .ok()
            .flatten()
    })
}

/// SIGTERM, then SIGKILL if `pid` is still alive after `grace`. True if it is gone.
fn terminate(pid: u32, grace: Duration) -> anyhow::Result<bool> {
    let gone = |within: Duration| {
        let deadline = Instant::now() + within;
        while is_alive(pid) {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        true
    };
    signal(pid, libc::SIGTERM)?;
    if gone(grace) {
        return Ok(true);
    }
    signal(pid, libc::SIGKILL)?;
    Ok(gone(Duration::from_secs(2)))
}

/// Stops every process holding a node's data directory; returns how many.
fn stop_lock_holders(dir: &Path) -> anyhow::Result<usize> {
    let mut stopped = 0;
    for node in node_files(dir)? {
        if let Some(pid) = node_pid(&node) {
            if !terminate(pid, Duration::from_secs(10))? {
                bail!("node {} (pid {pid}) did not exit", node.id);
            }
            println!("stopped node {} (pid {pid})", node.id);
            stopped += 1;
        }
    }
    Ok(stopped)
}

fn stop(dir: &Path) -> anyhow::Result<u8> {
    let mut stopped = 0;
    // The foreground `cluster start` first: it stops its own nodes, then any others.
    let pid = std::fs::read_to_string(dir.join("cluster.pid"))
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok());
    if let Some(pid) = pid
        && is_alive(pid)
    {
        if !terminate(pid, Duration::from_secs(15))? {
            bail!("cluster start (pid {pid}) did not exit");
        }
        println!("stopped cluster start (pid {pid})");
        stopped += 1;
    }
    // Whatever still holds a node's data directory, whoever started it.
    stopped += stop_lock_holders(dir)?;
    if stopped == 0 {
        bail!("nothing is running from {}", dir.display());
    }
    println!("stopped");
    Ok(0)
}

fn restart(dir: &Path, id: u64) -> anyhow::Result<u8> {
    let node = node_files(dir)?
        .into_iter()
        .find(|n| n.id == id)
        .with_context(|| {
            format!(
                "no node {id} in {} (no node{id}/config.toml: is it a `cluster start` directory?)",
                dir.display()
            )
        })?;
    let config = Config::load(Some(&node.config)).context("loading the node's config")?;
    if let Some(pid) = node_pid(&node) {
        if !terminate(pid, Duration::from_secs(10))? {
            bail!("node {id} (pid {pid}) did not exit");
        }
        println!("stopped node {id} (pid {pid})");
    }
    let child = spawn_detached(&node)?;
    wait_serving(child, &node, &config)?;
    Ok(0)
}

/// `dengine serve` for the node, in its own process group (a Ctrl-C in this terminal
/// does not reach it) and not our child for long: it outlives this command, and is
/// stopped by `cluster stop` through its lock file.
fn spawn_detached(node: &NodeFiles) -> anyhow::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    let program = dengine_binary(None)?;
    std::process::Command::new(&program)
        .args(["serve", "--config"])
        .arg(&node.config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Waits until the new process holds the node's data directory and accepts
/// connections, or says why it exited.
fn wait_serving(
    mut child: std::process::Child,
    node: &NodeFiles,
    config: &Config,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "node {} exited while starting ({status}); see {}",
                node.id,
                node.log.display()
            );
        }
        let serving = node_pid(node) == Some(child.id())
            && std::net::TcpStream::connect(&config.node.listen_addr).is_ok();
        if serving {
            println!(
                "node {} restarted (pid {}) on {}; log: {}",
                node.id,
                child.id(),
                config.node.listen_addr,
                node.log.display()
            );
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "node {} (pid {}) is not serving after 30 s; see {}",
                node.id,
                child.id(),
                node.log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
