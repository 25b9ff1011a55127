//! `dengine cluster start|stop`: a local cluster of `dengine serve` processes.
//!
//! `start` runs in the foreground: it launches the nodes (each with its own config,
//! data directory and log under `--dir`), prints their endpoints, and keeps them
//! running until Ctrl-C, SIGTERM or `dengine cluster stop --dir DIR`; then it stops
//! every node. Its pid is in `DIR/cluster.pid`, the endpoints in `DIR/endpoints`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use d_engine_chaos::cluster::{ClusterSpec, LocalCluster, TargetKind};

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
    /// Stop the cluster started with the same --dir.
    Stop {
        #[arg(long)]
        dir: PathBuf,
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
        crate::signals::terminated().await;
        println!("stopping");
        cluster.stop().await;
        let _ = std::fs::remove_file(&pid_file);
        Ok(0)
    })
}

fn stop(dir: &Path) -> anyhow::Result<u8> {
    let pid_file = dir.join("cluster.pid");
    let pid = std::fs::read_to_string(&pid_file).with_context(|| {
        format!(
            "no cluster started from {} ({} missing)",
            dir.display(),
            pid_file.display()
        )
    })?;
    let pid = pid.trim();
    let status = std::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()?;
    if !status.success() {
        bail!("could not signal pid {pid}; is the cluster still running?");
    }
    // Wait (bounded) for it to clean up.
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            println!("stopped");
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    bail!("pid {pid} did not exit within 10 s")
}
