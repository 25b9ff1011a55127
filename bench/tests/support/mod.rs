//! What the bench tests share: a prerequisite (the etcd binary) fails the test
//! under CI and skips it elsewhere.

#![allow(dead_code)]

use std::fmt::Display;
use std::path::PathBuf;

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

/// etcd's binary as the harness finds it: `$ETCD_BIN`, else `etcd` on the PATH
/// (see [`require`] when there is none).
#[track_caller]
pub fn etcd_binary() -> Option<PathBuf> {
    let tried: Vec<PathBuf> = match std::env::var_os("ETCD_BIN") {
        Some(bin) => vec![bin.into()],
        None => std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join("etcd")).collect())
            .unwrap_or_default(),
    };
    let found = tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| format!("tried {tried:?}"));
    require(
        "the etcd binary (apt-get install etcd-server, or ETCD_BIN)",
        found,
    )
}
