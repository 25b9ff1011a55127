//! `dengine cluster start|restart|stop` as an operator uses them: a node killed from
//! outside is reaped and reported by `start`, `restart` brings it back from the
//! config `start` wrote, and `stop` stops every node, including the restarted one
//! that `start` did not launch.

mod support;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use d_engine::client::{Client, ClientConfig, ReadConsistency};
use support::TestDir;

fn dengine(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dengine"));
    cmd.args(args);
    cmd
}

/// Runs a command that should finish within 60 s.
fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{cmd:?} still running after 60 s")
        })
}

fn wait_for(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The pid a node's log lock names (the lock itself is checked by `cluster stop`).
fn lock_pid(dir: &Path, id: u64) -> u32 {
    let lock = dir.join(format!("node{id}/data/storage/LOCK"));
    std::fs::read_to_string(&lock)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn gone(pid: u32) -> bool {
    // A zombie still has its /proc entry: gone means exited *and* reaped.
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// Kills the foreground `cluster start` and every node if the test fails midway.
struct Guard(Child, Vec<u32>);

impl Drop for Guard {
    fn drop(&mut self) {
        for pid in &self.1 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_killed_node_is_reported_restarted_and_stopped_with_the_rest() {
    let tmp = TestDir::new("cluster-cli");
    let dir = tmp.0.join("c");
    let dir_s = dir.display().to_string();
    let stderr_path = tmp.0.join("start.stderr");
    let start = dengine(&["cluster", "start", "--nodes", "3", "--dir", &dir_s])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut guard = Guard(start, Vec::new());
    wait_for("the cluster", Duration::from_secs(90), || {
        dir.join("endpoints").exists()
    });
    let endpoints: Vec<String> = std::fs::read_to_string(dir.join("endpoints"))
        .unwrap()
        .trim()
        .split(',')
        .map(String::from)
        .collect();
    guard.1 = (1..=3).map(|id| lock_pid(&dir, id)).collect();

    let victim = lock_pid(&dir, 2);
    Command::new("kill")
        .args(["-KILL", &victim.to_string()])
        .status()
        .unwrap();
    wait_for("the death report", Duration::from_secs(10), || {
        std::fs::read_to_string(&stderr_path)
            .unwrap()
            .contains("node 2 exited (signal: 9")
    });
    wait_for("the dead node to be reaped", Duration::from_secs(5), || {
        gone(victim)
    });

    let out = run(dengine(&["cluster", "restart", "--dir", &dir_s, "2"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("node 2 restarted"), "{stdout}");
    let restarted = lock_pid(&dir, 2);
    assert_ne!(restarted, victim);
    guard.1.push(restarted);

    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client =
                Client::connect(ClientConfig::new(endpoints).deadline(Duration::from_secs(15)))
                    .unwrap();
            client.put("k", "v").await.unwrap();
            let status = client.admin().status_of(&client_addr(&dir, 2)).await;
            assert!(status.is_ok(), "the restarted node answers: {status:?}");
            let v = client
                .get("k", ReadConsistency::Linearizable)
                .await
                .unwrap();
            assert_eq!(v.as_deref(), Some(&b"v"[..]));
        });

    let out = run(dengine(&["cluster", "stop", "--dir", &dir_s]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("cluster start to exit", Duration::from_secs(5), || {
        guard.0.try_wait().unwrap().is_some()
    });
    wait_for("every node to exit", Duration::from_secs(5), || {
        [1, 3].iter().all(|&id| gone(guard.1[id - 1])) && !is_alive_pid(restarted)
    });
}

/// Node `id`'s address, from the config `cluster start` wrote.
fn client_addr(dir: &Path, id: u64) -> String {
    let text = std::fs::read_to_string(dir.join(format!("node{id}/config.toml"))).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("listen_addr"))
        .unwrap();
    line.split('"').nth(1).unwrap().to_string()
}

/// The restarted node is not our child and not `start`'s: once it exits, init
/// reaps it, but until then it may briefly be a zombie.
fn is_alive_pid(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                != Some("Z")
        })
        .unwrap_or(false)
}
