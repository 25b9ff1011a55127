//! Live progress: an indicatif bar with throughput when stderr is a terminal, a plain
//! line every few seconds otherwise (logs, CI), nothing when quiet.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar if stderr is a terminal, else plain lines.
    Auto,
    /// Plain lines on stderr every `PLAIN_EVERY_S` seconds (warm-up included).
    Plain,
    Quiet,
}

/// Seconds between plain progress lines.
pub const PLAIN_EVERY_S: u64 = 5;

/// One second's view, as the collector sees it.
#[derive(Clone, Debug, Default)]
pub struct Tick {
    /// Seconds of measurement so far (0 while warming up).
    pub second: u64,
    pub warming_up: bool,
    pub ops_total: u64,
    /// Rate of the last interval, ops/s.
    pub ops_last_second: u64,
    pub errors_total: u64,
    pub p99_us_last_second: f64,
}

pub struct Progress {
    label: String,
    bar: Option<ProgressBar>,
    plain: bool,
    /// Ticks seen, to print a plain line every `PLAIN_EVERY_S` of them.
    ticks: std::sync::atomic::AtomicU64,
}

impl Progress {
    /// `length_s` is the planned measured duration, if the run is timed.
    pub fn new(mode: ProgressMode, label: &str, length_s: Option<u64>) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let (bar, plain) = match mode {
            ProgressMode::Quiet => (None, false),
            ProgressMode::Plain => (None, true),
            ProgressMode::Auto if !tty => (None, true),
            ProgressMode::Auto => {
                let bar =
                    ProgressBar::with_draw_target(length_s, ProgressDrawTarget::stderr_with_hz(4));
                let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}s {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                bar.set_style(style);
                bar.set_prefix(label.to_string());
                (Some(bar), false)
            }
        };
        Progress {
            label: label.to_string(),
            bar,
            plain,
            ticks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn tick(&self, t: &Tick) {
        let line = if t.warming_up {
            format!("warming up: {} ops", t.ops_total)
        } else {
            format!(
                "{} ops/s, p99 {:.0} us, {} ops, {} errors",
                t.ops_last_second, t.p99_us_last_second, t.ops_total, t.errors_total
            )
        };
        if let Some(bar) = &self.bar {
            let len = bar.length().unwrap_or(u64::MAX);
            bar.set_position(t.second.min(len));
            bar.set_message(line);
        } else if self.plain {
            let n = self
                .ticks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if n.is_multiple_of(PLAIN_EVERY_S) {
                eprintln!("[{}] {}s: {line}", self.label, t.second);
            }
        }
    }

    pub fn finish(&self, line: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.bar.is_some() || self.plain {
            eprintln!("[{}] {line}", self.label);
        }
    }
}
