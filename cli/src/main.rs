//! `dengine`: the one binary of the d-engine distribution.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod bench;
mod chaos;
mod check;
mod cluster;
mod demo;
mod kv;
mod logging;
mod report;
mod serve;
mod signals;
mod status;

#[derive(Parser)]
#[command(
    name = "dengine",
    version,
    about = "d-engine: Raft engine and the tools that prove it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process; boxing the larger argument structs would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Serve(serve::ServeArgs),
    /// Run a local cluster of nodes (foreground), or stop one.
    Cluster(cluster::ClusterArgs),
    /// Read and write keys of a running cluster.
    Kv(kv::KvArgs),
    /// Show every node's role, term, indexes and the leader's replication progress.
    Status(status::StatusArgs),
    /// Change membership, transfer leadership, take snapshots.
    Admin(admin::AdminArgs),
    /// Measure throughput and latency of d-engine, etcd, or the generator itself.
    Bench(bench::BenchArgs),
    /// Inject faults into a local cluster under load and check linearizability.
    Chaos(chaos::ChaosArgs),
    /// Check recorded client histories for linearizability.
    Check(check::CheckArgs),
    /// Render plots and index.html from a chaos or bench run directory.
    Report(report::ReportArgs),
    /// Run the whole product end to end: local cluster, load, faults, check, report.
    Demo(demo::DemoArgs),
}

fn main() -> ExitCode {
    // Local clusters (`cluster start`, `bench --cluster`, `chaos`, `demo`) start nodes
    // with this very binary unless DENGINE_BIN says otherwise. Without this, a copy
    // of dengine under another name would look for a `dengine` beside it or in
    // `target/release/` and could silently start an older build.
    if std::env::var_os("DENGINE_BIN").is_none()
        && let Ok(exe) = std::env::current_exe()
    {
        // SAFETY: first thing in main, before any other thread exists.
        unsafe { std::env::set_var("DENGINE_BIN", exe) };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Cluster(args) => cluster::run(args),
        Command::Kv(args) => kv::run(args),
        Command::Status(args) => status::run(args),
        Command::Admin(args) => admin::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Chaos(args) => chaos::run(args),
        Command::Check(args) => Ok(check::run(args)),
        Command::Report(args) => report::run(args),
        Command::Demo(args) => demo::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`dengine kv scan | head`): it has what it wanted.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each said once. Some errors (ours among
/// them, and e.g. `std::io::Error`'s wrappers in other crates) print their source in
/// their own message *and* return it as `source()`, so `{:#}` would end with the OS
/// error twice: a cause already contained in the line so far is skipped.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_that_prints_its_source_says_the_os_error_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let os = io.to_string();
        // NetworkError::Bind prints its source and returns it from source().
        let bind = d_engine::NetworkError::Bind {
            addr: "127.0.0.1:9081".into(),
            source: io,
        };
        let e = anyhow::Error::new(bind).context("starting the node");
        let line = error_line(&e);
        assert_eq!(line.matches(&os).count(), 1, "{line}");
        assert!(line.starts_with("starting the node: cannot listen on 127.0.0.1:9081"));
    }

    #[test]
    fn distinct_causes_are_all_kept() {
        let e = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(error_line(&e), "outer: middle: inner");
    }

    #[test]
    fn a_closed_pipe_anywhere_in_the_chain_is_recognised() {
        let e = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
