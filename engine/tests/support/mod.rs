//! What the engine's process-level tests share: prerequisites (root, a tmpfs
//! mount) that fail the test under CI and skip it elsewhere, and commands waited
//! on with a deadline.

#![allow(dead_code)]

use std::fmt::Display;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether a missing prerequisite fails the test instead of skipping it: under CI
/// (`CI` set, and not to `false` or `0`) or with `DENGINE_REQUIRE_ALL=1`.
pub fn prerequisites_required() -> bool {
    let on =
        |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    on("CI") || on("DENGINE_REQUIRE_ALL")
}

/// `Some` when the prerequisite `what` is there. When it is not (`Err(why)`): a
/// test failure naming it under CI or with `DENGINE_REQUIRE_ALL=1`, else a SKIP
/// line on stderr and `None`, for the test to return.
#[track_caller]
pub fn require<T, E: Display>(what: &str, found: Result<T, E>) -> Option<T> {
    match found {
        Ok(v) => Some(v),
        Err(why) if prerequisites_required() => {
            panic!(
                "prerequisite missing: {what}: {why} (required under CI or DENGINE_REQUIRE_ALL=1)"
            )
        }
        Err(why) => {
            let test = std::thread::current().name().unwrap_or("?").to_owned();
            eprintln!("SKIP {test}: prerequisite missing: {what}: {why}");
            None
        }
    }
}

/// Runs `cmd` (stdin closed, output captured) and waits at most `limit`; a
/// command still running then is killed and reported as the error.
pub fn try_output_within(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {what}: {e}"))?;
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
        if let Some(status) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} still running after {limit:?}: killed"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    })
}

/// [`try_output_within`], failing the test if the command cannot start or hangs.
#[track_caller]
pub fn output_within(cmd: &mut Command, limit: Duration) -> Output {
    try_output_within(cmd, limit).unwrap_or_else(|e| panic!("{e}"))
}
