//! Typed node configuration: defaults, a TOML file, environment overrides, validation.
//!
//! Precedence, lowest first: built-in defaults ([`Config::default`]), the TOML file
//! (the path given, else the file named by `CONFIG_PATH`), then environment variables
//! `DENGINE__<SECTION>__<KEY>` (for example `DENGINE__RAFT__ELECTION_TIMEOUT_MS_MIN=500`).
//! An unknown key in the file or the environment is an error naming it, never ignored:
//! a typo must not silently leave a default in force. [`Config::validate`] then checks
//! ranges and relations between keys, naming each key it rejects.
//!
//! `engine/config/example.toml` lists every key with its default and meaning; tests
//! keep it equal to the defaults here and check that code outside `config/` reads
//! every key (`tests_keys`).

mod load;
mod sections;
mod validate;

pub use load::{CONFIG_PATH_ENV, ENV_PREFIX};
pub use sections::*;
pub use validate::Problem;

use std::path::PathBuf;

/// Why a configuration could not be loaded or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid config:{}", format_problems(.0))]
    Invalid(Vec<Problem>),
}

fn format_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

/// The whole configuration of one node.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub cluster: ClusterConfig,
    pub raft: RaftConfig,
    pub read: ReadConfig,
    pub snapshot: SnapshotConfig,
    pub storage: StorageConfig,
    pub network: NetworkConfig,
    pub logging: LoggingConfig,
    pub metrics: MetricsConfig,
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_keys;
