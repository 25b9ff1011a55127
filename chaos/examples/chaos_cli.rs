//! `dengine chaos` without the rest of the CLI: compiles `cli/src/chaos.rs`
//! (which the `dengine` binary wires as its `chaos` subcommand) so it can be
//! built and run while the full CLI, which needs the engine, is in flux.
//!
//! `cargo run -p d-engine-chaos --example chaos_cli -- --target etcd --duration 15s`
//! `DENGINE=target/debug/examples/chaos_cli ci/chaos-suite.sh etcd`

use clap::Parser;

#[path = "../../cli/src/chaos.rs"]
mod chaos;

#[derive(Parser)]
#[command(name = "dengine-chaos")]
struct Cli {
    #[command(flatten)]
    args: chaos::ChaosArgs,
}

fn main() -> std::process::ExitCode {
    // Accept `chaos_cli chaos --flags` too, so scripts written for
    // `dengine chaos` (ci/chaos-suite.sh with DENGINE=this) run unchanged.
    let args = std::env::args()
        .enumerate()
        .filter(|(i, a)| !(*i == 1 && a == "chaos"));
    let cli = Cli::parse_from(args.map(|(_, a)| a));
    match chaos::run(cli.args) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
