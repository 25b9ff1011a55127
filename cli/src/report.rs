//! `dengine report DIR`: plots and a static `index.html` from a chaos run, a
//! bench run or a bench compare directory (see `d_engine_reports`).

use std::path::PathBuf;

use clap::Args;

/// Render plots and index.html from a chaos or bench run directory.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The run directory (chaos run, bench run or bench compare).
    pub dir: PathBuf,
}

pub fn run(args: ReportArgs) -> anyhow::Result<u8> {
    let paths = d_engine_reports::render(&args.dir)?;
    println!(
        "report: {:?} run, {} plot files; open {}",
        paths.kind,
        paths.plots.len(),
        paths.index.display()
    );
    Ok(0)
}
