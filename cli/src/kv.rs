//! `dengine kv`: use a cluster by hand.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use d_engine::client::{Client, ClientConfig, ReadConsistency};

#[derive(clap::Args)]
pub struct KvArgs {
    /// Some nodes of the cluster, comma separated (host:port).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:9081")]
    pub endpoints: Vec<String>,
    /// How long one operation may take, retries included.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub op: KvOp,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum Consistency {
    Linearizable,
    Lease,
    Serializable,
}

impl From<Consistency> for ReadConsistency {
    fn from(c: Consistency) -> Self {
        match c {
            Consistency::Linearizable => ReadConsistency::Linearizable,
            Consistency::Lease => ReadConsistency::Lease,
            Consistency::Serializable => ReadConsistency::Serializable,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum KvOp {
    /// Set a key. The value is VALUE, or read from stdin with `-`, or from a file with
    /// --value-file (one command-line argument holds at most 128 KiB).
    Put {
        key: String,
        #[arg(required_unless_present = "value_file")]
        value: Option<String>,
        /// Read the value from this file instead.
        #[arg(long, conflicts_with = "value")]
        value_file: Option<PathBuf>,
    },
    /// Read a key (prints the value's bytes and a newline; exit code 1 if absent).
    Get {
        key: String,
        #[arg(long, value_enum, default_value = "linearizable")]
        consistency: Consistency,
    },
    /// Delete a key.
    Delete { key: String },
    /// Set KEY to NEW only if it holds --expected (or is absent, with --absent).
    Cas {
        key: String,
        new: String,
        #[arg(long, conflicts_with = "absent")]
        expected: Option<String>,
        #[arg(long)]
        absent: bool,
    },
    /// List keys with a prefix.
    Scan {
        #[arg(long, default_value = "")]
        prefix: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long, value_enum, default_value = "linearizable")]
        consistency: Consistency,
    },
}

/// Durations like `500ms`, `10s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms, 10s or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{s}` (use ms, s, m or h)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// The value of `put`: the argument, stdin for `-`, or the file's bytes; refused
/// above the server's value limit before anything is sent.
fn put_value(value: Option<String>, file: Option<PathBuf>) -> anyhow::Result<Bytes> {
    let limit = d_engine::proto::limits::MAX_VALUE_BYTES;
    let mut bytes = Vec::new();
    match (value.as_deref(), file) {
        (_, Some(path)) => {
            std::fs::File::open(&path)
                .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut bytes))
                .with_context(|| format!("reading the value from {}", path.display()))?;
        }
        (Some("-"), None) => {
            std::io::stdin()
                .lock()
                .take(limit as u64 + 1)
                .read_to_end(&mut bytes)
                .context("reading the value from stdin")?;
        }
        (Some(v), None) => return Ok(Bytes::from(v.to_owned())),
        (None, None) => bail!("give VALUE, - (stdin) or --value-file PATH"),
    }
    if bytes.len() > limit {
        bail!("the value is larger than the {limit}-byte limit");
    }
    Ok(Bytes::from(bytes))
}

/// Writes results to stdout. A write error (a closed pipe: `dengine kv scan | head`)
/// is returned, not a panic as with `println!`; `main` ends quietly on a closed pipe.
fn out() -> std::io::StdoutLock<'static> {
    std::io::stdout().lock()
}

pub fn run(args: KvArgs) -> anyhow::Result<u8> {
    // Before the runtime: reading stdin blocks.
    let put = match &args.op {
        KvOp::Put {
            value, value_file, ..
        } => Some(put_value(value.clone(), value_file.clone())?),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client =
            Client::connect(ClientConfig::new(args.endpoints.clone()).deadline(args.timeout))?;
        match args.op {
            KvOp::Put { key, .. } => {
                let value = put.expect("read above");
                let ack = client.put(key, value).await.context("put")?;
                writeln!(out(), "OK index={}", ack.index)?;
            }
            KvOp::Get { key, consistency } => {
                match client.get(key, consistency.into()).await.context("get")? {
                    Some(v) => {
                        // The bytes as stored, so `put KEY - < f` and `get KEY` round-trip.
                        let mut out = out();
                        out.write_all(&v)?;
                        out.write_all(b"\n")?;
                        out.flush()?;
                    }
                    None => {
                        eprintln!("(absent)");
                        return Ok(1);
                    }
                }
            }
            KvOp::Delete { key } => {
                let existed = client.delete(key).await.context("delete")?;
                writeln!(out(), "{}", if existed { "deleted" } else { "absent" })?;
            }
            KvOp::Cas {
                key,
                new,
                expected,
                absent,
            } => {
                if expected.is_none() && !absent {
                    bail!("give --expected VALUE or --absent");
                }
                let r = client
                    .compare_and_swap(key, expected.map(Bytes::from), new)
                    .await
                    .context("cas")?;
                if r.succeeded {
                    writeln!(out(), "swapped index={}", r.index)?;
                } else {
                    let current = r.current.map(|v| String::from_utf8_lossy(&v).into_owned());
                    writeln!(
                        out(),
                        "not swapped; current = {}",
                        current.as_deref().unwrap_or("(absent)")
                    )?;
                    return Ok(1);
                }
            }
            KvOp::Scan {
                prefix,
                limit,
                consistency,
            } => {
                let page = client
                    .scan(prefix, "", "", limit, consistency.into())
                    .await
                    .context("scan")?;
                let mut out = out();
                for (k, v) in &page.items {
                    writeln!(
                        out,
                        "{}\t{}",
                        String::from_utf8_lossy(k),
                        String::from_utf8_lossy(v)
                    )?;
                }
                out.flush()?;
                if let Some(next) = page.next_key {
                    eprintln!("(more from {})", String::from_utf8_lossy(&next));
                }
            }
        }
        Ok(0)
    })
}
