//! One process per data directory, with real `dengine serve` processes: a second node
//! on a live node's data directory or port is refused before it touches the first
//! one's files, and the first keeps serving.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use d_engine::client::ReadConsistency;
use support::{ProcCluster, free_ports, runtime};

/// `dengine serve --config CONFIG`, which is expected to give up by itself; killed
/// (failing the test) if it is still running after 20 s.
fn serve_expecting_exit(config: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dengine"))
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dengine serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the second dengine serve kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Node 0's config with its address (listen and member) replaced by `addr`, and its
/// data directory by `data` if given.
fn variant(c: &ProcCluster, name: &str, addr: &str, data: Option<&Path>) -> std::path::PathBuf {
    let mut text = std::fs::read_to_string(&c.nodes[0].config).unwrap();
    text = text.replace(&c.nodes[0].addr, addr);
    if let Some(d) = data {
        text = text.replace(
            &c.nodes[0].data.display().to_string(),
            &d.display().to_string(),
        );
    }
    let path = c.dir.0.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn assert_first_still_serves(c: &ProcCluster) {
    runtime().block_on(async {
        let client = c.client();
        client.put("after", "still here").await.expect("put after");
        let v = client
            .get("before", ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"written first"[..]));
        let v = client
            .get("after", ReadConsistency::Linearizable)
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"still here"[..]));
    });
}

#[test]
fn second_serve_on_a_used_data_dir_is_refused_and_the_first_is_unharmed() {
    let c = ProcCluster::start("dirlock", 1, "");
    runtime().block_on(async {
        c.leader(Duration::from_secs(10)).await.expect("leader");
        c.client().put("before", "written first").await.unwrap();
    });
    let first_pid = c.nodes[0].child.as_ref().unwrap().id();
    // What a second process must leave alone: files that look like crash debris but
    // could be the first process's writes in progress.
    let data = &c.nodes[0].data;
    let debris = [
        data.join("storage").join("00000000000000ff.seg.tmp"),
        data.join("state_machine")
            .join("snap-00000000000000000009-00000000000000000001.snap.tmp"),
    ];
    for f in &debris {
        std::fs::write(f, b"in progress").unwrap();
    }
    let other = format!("127.0.0.1:{}", free_ports(1)[0]);
    let out = serve_expecting_exit(&variant(&c, "second.toml", &other, None));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second node ran: {stderr}");
    assert!(
        stderr.contains(&data.join("storage").display().to_string())
            && stderr.contains(&format!("pid {first_pid}")),
        "the error names neither the directory nor the holder: {stderr}"
    );
    for f in &debris {
        assert!(f.exists(), "the refused node removed {}", f.display());
    }
    assert_first_still_serves(&c);
}

#[test]
fn serve_on_a_live_nodes_port_fails_before_opening_storage() {
    let c = ProcCluster::start("portlock", 1, "");
    runtime().block_on(async {
        c.leader(Duration::from_secs(10)).await.expect("leader");
        c.client().put("before", "written first").await.unwrap();
    });
    let fresh = c.dir.0.join("fresh-data");
    let out = serve_expecting_exit(&variant(
        &c,
        "same-port.toml",
        &c.nodes[0].addr,
        Some(&fresh),
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second node ran: {stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {}", c.nodes[0].addr)),
        "{stderr}"
    );
    assert!(
        !fresh.join("storage").exists() && !fresh.join("state_machine").exists(),
        "storage was opened before the port was found taken"
    );
    assert_first_still_serves(&c);
}
