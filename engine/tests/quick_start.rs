//! Runs the Quick Start example as a process: a single node elects itself and serves a
//! put and a get through the client.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::output_within;

/// The example binary cargo built beside this test (tests and examples share
/// `target/<profile>/`).
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("quick_start")
}

#[test]
fn quick_start_elects_itself_and_serves_a_put_and_a_get() {
    let bin = example_binary();
    if !bin.exists() {
        // `cargo test` and `cargo nextest run` build examples; a filtered build may not.
        // Built in this test's profile, so that it lands where `example_binary` looks.
        let mut build = Command::new(env!("CARGO"));
        build.args(["build", "-p", "d-engine", "--example", "quick_start"]);
        if bin.ancestors().nth(2).and_then(|p| p.file_name()) == Some("release".as_ref()) {
            build.arg("--release");
        }
        let out = output_within(&mut build, Duration::from_secs(1200));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(bin.exists(), "example not built at {}", bin.display());
    let dir = std::env::temp_dir().join(format!("dengine-quick-start-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nlisten_addr = \"127.0.0.1:{port}\"\n[cluster]\ninitial_members = [{{ id = 1, addr = \"127.0.0.1:{port}\" }}]\n[storage]\nsegment_bytes = 4194304\n"
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut quick_start = Command::new(&bin);
    quick_start
        .env("CONFIG_PATH", &config)
        .env("QUICK_START_DIR", dir.join("db"))
        .env("QUICK_START_SELF_TEST", "1");
    let out = output_within(&mut quick_start, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "quick start failed: {}\n{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("quick = start"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}
