//! `dengine kv` against a real node: values too large for a command-line argument go
//! in through stdin or a file, and output into a pipe closed early ends quietly.

mod support;

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use support::ProcCluster;

/// A one-node cluster with a leader.
fn node(name: &str) -> ProcCluster {
    let c = ProcCluster::start(name, 1, "");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(c.leader(Duration::from_secs(10)))
        .expect("leader");
    c
}

fn kv(c: &ProcCluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dengine"));
    cmd.args(["kv", "--endpoints", &c.nodes[0].addr])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Collects `child`'s output and exit status, waiting at most 30 s (then it is killed
/// and the test fails). Output is drained while waiting: a value bigger than a pipe
/// buffer would otherwise block the child forever.
fn finish(child: Child) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("dengine kv still running after 30 s");
        })
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// 300 KiB of non-UTF-8 bytes: over the 128 KiB a single argument may hold.
fn big_value(seed: u8) -> Vec<u8> {
    (0..300 * 1024)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn get(c: &ProcCluster, key: &str) -> Vec<u8> {
    let out = finish(kv(c, &["get", key]).spawn().unwrap());
    assert_ok(&out);
    let mut v = out.stdout;
    assert_eq!(v.pop(), Some(b'\n'), "get ends the value with a newline");
    v
}

#[test]
fn put_takes_a_value_above_the_argument_limit_from_stdin_or_a_file() {
    let c = node("kv-big");
    let from_stdin = big_value(1);
    let mut child = kv(&c, &["put", "stdin-key", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&from_stdin).unwrap();
    let out = finish(child);
    assert_ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK index="));
    assert_eq!(get(&c, "stdin-key"), from_stdin);

    let from_file = big_value(2);
    let path = c.dir.0.join("value.bin");
    std::fs::write(&path, &from_file).unwrap();
    let path = path.display().to_string();
    assert_ok(&finish(
        kv(&c, &["put", "file-key", "--value-file", &path])
            .spawn()
            .unwrap(),
    ));
    assert_eq!(get(&c, "file-key"), from_file);

    // Neither a value nor a file: a usage error, nothing written.
    let out = finish(kv(&c, &["put", "no-value"]).spawn().unwrap());
    assert!(!out.status.success());
}

#[test]
fn kv_output_into_a_pipe_closed_early_exits_quietly() {
    let c = node("kv-pipe");
    let value = vec![b'x'; 512 * 1024];
    let mut child = kv(&c, &["put", "big", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&value).unwrap();
    assert_ok(&finish(child));
    // `dengine kv get big | head -c 200`: read 200 bytes, then close the pipe while
    // dengine still has far more than a pipe buffer to write.
    let mut child = kv(&c, &["get", "big"]).spawn().unwrap();
    let mut head = [0u8; 200];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stdout.take());
    let out = finish(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert!(stderr.is_empty(), "not quiet: {stderr}");
}
