//! What the process-level chaos tests share.

use std::path::PathBuf;

use d_engine_chaos::cluster::dengine_binary;

/// The built `dengine` binary, or `None` (the test skips, saying why) unless
/// `DENGINE_CHAOS_REQUIRED` is set, when a missing binary fails the test.
pub fn binary() -> Option<PathBuf> {
    match dengine_binary(None) {
        Ok(p) if p.is_file() => Some(p),
        other => {
            assert!(
                std::env::var_os("DENGINE_CHAOS_REQUIRED").is_none(),
                "DENGINE_CHAOS_REQUIRED is set but there is no dengine binary: {other:?}"
            );
            eprintln!("skipped: no dengine binary ({other:?})");
            None
        }
    }
}
