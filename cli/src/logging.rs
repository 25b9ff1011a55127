//! Log output for `dengine serve`: text or JSON lines, level from config or RUST_LOG.

use d_engine::config::{LogFormat, LoggingConfig};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. RUST_LOG, when set, takes precedence over the
/// configured level.
pub fn init(cfg: &LoggingConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cfg.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
