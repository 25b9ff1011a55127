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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
