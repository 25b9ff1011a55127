//! A cluster of real `dengine serve` processes on 127.0.0.1 for tests: each node with
//! its own config file, data directory and log; every process is killed when the
//! cluster is dropped, so a failing test leaves nothing running. Commands that
//! should finish are waited on with a deadline ([`output_within`]).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use d_engine::client::{Client, ClientConfig, ReadConsistency};

pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("dengine-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            eprintln!("test data left in {} for inspection", self.0.display());
        }
    }
}

pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub struct NodeProc {
    pub id: u64,
    pub addr: String,
    pub config: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
    pub child: Option<Child>,
    /// The Prometheus endpoint, when metrics are on.
    pub metrics_addr: Option<String>,
}

pub struct ProcCluster {
    pub dir: TestDir,
    pub nodes: Vec<NodeProc>,
    /// Extra `[section] key = value` lines for every node's config.
    pub extra: String,
    /// Serve Prometheus metrics on a port of each node's own.
    pub metrics: bool,
    /// Log as JSON lines.
    pub json_logs: bool,
}

impl ProcCluster {
    /// Writes configs for `n` voters and starts them.
    pub fn start(name: &str, n: usize, extra: &str) -> ProcCluster {
        Self::start_with(name, n, extra, false, false)
    }

    /// The same, optionally with metrics served and logs as JSON lines.
    pub fn start_with(
        name: &str,
        n: usize,
        extra: &str,
        metrics: bool,
        json_logs: bool,
    ) -> ProcCluster {
        let mut c = Self::configure(name, n, extra, metrics, json_logs);
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    /// Writes the configs of `n` voters and starts none of them (a test may prepare
    /// a node's data dir first, then `spawn` each).
    pub fn configure(
        name: &str,
        n: usize,
        extra: &str,
        metrics: bool,
        json_logs: bool,
    ) -> ProcCluster {
        let dir = TestDir::new(name);
        let ports = free_ports(n);
        let mut c = ProcCluster {
            dir,
            nodes: Vec::new(),
            extra: extra.to_string(),
            metrics,
            json_logs,
        };
        let members: Vec<(u64, String, bool)> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u64 + 1, format!("127.0.0.1:{p}"), false))
            .collect();
        for (id, addr, _) in &members {
            c.add_node(*id, addr.clone(), &members);
        }
        c
    }

    /// Writes a node's config; `members` is its initial membership.
    pub fn add_node(&mut self, id: u64, addr: String, members: &[(u64, String, bool)]) -> usize {
        let data = self.dir.0.join(format!("node{id}"));
        let config = self.dir.0.join(format!("node{id}.toml"));
        let list: Vec<String> = members
            .iter()
            .map(|(i, a, learner)| format!("{{ id = {i}, addr = \"{a}\", learner = {learner} }}"))
            .collect();
        let metrics_addr = self
            .metrics
            .then(|| format!("127.0.0.1:{}", free_ports(1)[0]));
        let mut tail = String::new();
        if let Some(m) = &metrics_addr {
            tail.push_str(&format!(
                "[metrics]\nenabled = true\nlisten_addr = \"{m}\"\n"
            ));
        }
        if self.json_logs {
            tail.push_str("[logging]\nformat = \"json\"\n");
        }
        let text = format!(
            "[node]\nid = {id}\ncluster_id = 7\nlisten_addr = \"{addr}\"\ndata_dir = \"{}\"\n\n[cluster]\ninitial_members = [{}]\n\n[raft]\nelection_timeout_ms_min = 300\nelection_timeout_ms_max = 600\nheartbeat_interval_ms = 50\n\n[storage]\n# Small segments: tests start many nodes, and each preallocates one.\nsegment_bytes = 4194304\n\n{}\n",
            data.display(),
            list.join(", "),
            self.extra
        ) + &tail;
        std::fs::write(&config, text).unwrap();
        let log = self.dir.0.join(format!("node{id}.log"));
        self.nodes.push(NodeProc {
            id,
            addr,
            config,
            data,
            log,
            child: None,
            metrics_addr,
        });
        self.nodes.len() - 1
    }

    pub fn spawn(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dengine"))
            .args(["serve", "--config"])
            .arg(&n.config)
            .env(
                "RUST_LOG",
                std::env::var("DENGINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dengine serve");
        n.child = Some(child);
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn stop(&mut self, i: usize) -> Option<i32> {
        // Signalled before it is taken: should that fail, the drop still kills it.
        unsafe_sigterm(self.nodes[i].child.as_ref()?.id());
        let mut c = self.nodes[i].child.take()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.addr.clone()).collect()
    }

    pub fn client(&self) -> Client {
        Client::connect(
            ClientConfig::new(self.endpoints())
                .cluster_id(7)
                .deadline(Duration::from_secs(15)),
        )
        .unwrap()
    }

    /// The index of the node that reports itself leader, waiting up to `within`.
    pub async fn leader(&self, within: Duration) -> Option<usize> {
        let client = self.client();
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            for (i, n) in self.nodes.iter().enumerate() {
                if n.child.is_none() {
                    continue;
                }
                if let Ok(s) = client.admin().status_of(&n.addr).await
                    && s.role == d_engine::proto::v1::Role::Leader as i32
                {
                    return Some(i);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    pub fn log_text(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    pub fn data_dir(&self, i: usize) -> &Path {
        &self.nodes[i].data
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

fn unsafe_sigterm(pid: u32) {
    // `kill -TERM` through the shell tool keeps the test free of libc.
    let mut kill = Command::new("kill");
    kill.args(["-TERM", &pid.to_string()]);
    // The child is not reaped yet, so its pid is still ours even if it exited.
    let out = output_within(&mut kill, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "kill -TERM {pid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `dengine check ARGS`, within two minutes.
pub fn check_command(args: &[&str]) -> Output {
    let mut check = Command::new(env!("CARGO_BIN_EXE_dengine"));
    check.arg("check").args(args);
    output_within(&mut check, Duration::from_secs(120))
}

/// A command's standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` (stdin closed, output captured) and waits at most `limit`; a
/// command still running then is killed and the test fails naming it.
#[track_caller]
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// GET `http://addr/metrics`, as text.
pub fn scrape(addr: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(body)
}

/// A current-thread runtime for a test's async part.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `n` keys `{prefix}{i:04}` = `value-{prefix}-{i}`; returns what was acknowledged.
pub async fn write_keys(client: &Client, prefix: &str, n: usize) -> BTreeMap<String, String> {
    let mut acked = BTreeMap::new();
    for i in 0..n {
        let (k, v) = (format!("{prefix}{i:04}"), format!("value-{prefix}-{i}"));
        client
            .put(k.clone(), v.clone())
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e}"));
        acked.insert(k, v);
    }
    acked
}

/// Every acknowledged write is there, read linearizably.
pub async fn assert_all_present(client: &Client, acked: &BTreeMap<String, String>) {
    for (k, v) in acked {
        let got = client
            .get(k.clone(), ReadConsistency::Linearizable)
            .await
            .unwrap_or_else(|e| panic!("get {k}: {e}"));
        assert_eq!(
            got.as_deref(),
            Some(v.as_bytes()),
            "acknowledged key {k} lost or wrong"
        );
    }
}

/// Under CI (or `DENGINE_REQUIRE_ALL=1`) a missing prerequisite fails the test with
/// the reason; elsewhere the test says SKIP and returns.
pub fn require_root(test: &str) -> bool {
    let out = output_within(Command::new("id").arg("-u"), Duration::from_secs(5));
    if String::from_utf8_lossy(&out.stdout).trim() == "0" {
        return true;
    }
    let on = |v: &str| std::env::var(v).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if on("CI") || on("DENGINE_REQUIRE_ALL") {
        panic!("prerequisite missing: root (to mount a tmpfs) for {test}");
    }
    eprintln!("SKIP {test}: prerequisite missing: root (to mount a tmpfs)");
    false
}

/// A tmpfs of `mib` MiB mounted at `dir`, unmounted (lazily) when dropped.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, mib: u64) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = output_within(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                .arg(dir),
            Duration::from_secs(10),
        );
        assert!(
            out.status.success(),
            "mount a tmpfs at {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }

    /// Fills what is left with a file; returns its path (delete it to free the space).
    pub fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        let _ = f.sync_all();
        path
    }
}

impl Tmpfs {
    /// Changes the size of the mounted file system (more space, or less).
    pub fn resize(&self, mib: u64) {
        let out = output_within(
            Command::new("mount")
                .args(["-o", &format!("remount,size={mib}m")])
                .arg(&self.0),
            Duration::from_secs(10),
        );
        assert!(
            out.status.success(),
            "remount {}: {}",
            self.0.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = output_within(
            Command::new("umount").arg("-l").arg(&self.0),
            Duration::from_secs(10),
        );
    }
}
