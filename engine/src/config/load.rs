//! Reading a [`Config`] from a TOML file and the environment.

use std::path::Path;

use toml::{Table, Value};

use super::{Config, ConfigError};

/// The environment variable naming the config file when no path is given.
pub const CONFIG_PATH_ENV: &str = "CONFIG_PATH";
/// Environment overrides look like `DENGINE__RAFT__ELECTION_TIMEOUT_MS_MIN=500`.
pub const ENV_PREFIX: &str = "DENGINE__";

impl Config {
    /// Loads the configuration a node starts with: defaults, then the file at `path`
    /// (or the one named by `CONFIG_PATH`, if set), then `DENGINE__*` environment
    /// overrides; the result is validated.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os(CONFIG_PATH_ENV).filter(|p| !p.is_empty());
        let path = path.map(Path::to_path_buf).or(from_env.map(Into::into));
        let (text, origin) = match &path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.clone(),
                    source,
                })?;
                (text, format!("file {}", p.display()))
            }
            None => (String::new(), "defaults".to_string()),
        };
        let env = std::env::vars().filter(|(k, _)| k.starts_with(ENV_PREFIX));
        Config::from_sources(&text, &origin, env)
    }

    /// Parses TOML text (no environment overrides) and validates the result.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::from_sources(text, "text", std::iter::empty())
    }

    /// Parses TOML text, applies the given `DENGINE__*` overrides, and validates.
    /// `origin` names the text in error messages (a file path, say).
    pub fn from_sources(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut env: Vec<_> = env.into_iter().collect();
        // Without overrides, deserialize the text itself so errors point at the
        // user's own line; with them, the merged document (a type error then shows
        // the offending key and value either way).
        let config: Config = if env.is_empty() {
            toml::from_str(text).map_err(|e| parse_error(origin, e))?
        } else {
            let mut table: Table = text.parse().map_err(|e| parse_error(origin, e))?;
            // A fixed order, so the outcome does not depend on how the process
            // environment happens to be listed.
            env.sort();
            for (var, raw) in env {
                apply_override(&mut table, &var, &raw)?;
            }
            let origin = format!("{origin} with environment overrides");
            toml::from_str(&table.to_string()).map_err(|e| parse_error(&origin, e))?
        };
        config.validate()?;
        Ok(config)
    }

    /// The configuration as TOML, for `dengine serve --print-config` and logs.
    pub fn to_toml_string(&self) -> String {
        match Value::try_from(self) {
            Ok(Value::Table(t)) => t.to_string(),
            _ => String::new(),
        }
    }
}

fn parse_error(origin: &str, e: toml::de::Error) -> ConfigError {
    ConfigError::Parse {
        origin: origin.to_string(),
        message: e.to_string().trim_end().to_string(),
    }
}

/// Sets `section.key` in `table` from `DENGINE__SECTION__KEY=raw`. The value is read
/// as a TOML value (`500`, `true`, `[1, 2]`) and, failing that, as a plain string.
fn apply_override(table: &mut Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let env_err = |message: String| ConfigError::Env {
        var: var.to_string(),
        message,
    };
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(env_err(format!(
            "expected {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}RAFT__TICK_MS"
        )));
    }
    let value = parse_env_value(raw);
    let (last, sections) = path.split_last().expect("path has at least two parts");
    let mut cursor = table;
    for section in sections {
        let entry = cursor
            .entry(section.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        cursor = match entry {
            Value::Table(t) => t,
            _ => return Err(env_err(format!("`{section}` is not a section"))),
        };
    }
    cursor.insert(last.clone(), value);
    Ok(())
}

fn parse_env_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}
