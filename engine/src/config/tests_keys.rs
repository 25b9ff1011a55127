//! Every key of `engine/config/example.toml` is a field of [`Config`] that code
//! outside `config/` reads, and every field is in the example.
//!
//! Two checks:
//!
//! 1. Structure: the leaf key paths of example.toml (an array of tables counts as
//!    `section.array[].key`) equal those of `Config::default()` serialized, both ways.
//!    With `deny_unknown_fields` on every section (`example_file_lists_exactly_the_
//!    defaults` parses the file), a key in the file is a field of the typed `Config`.
//! 2. Reading: a field can exist and still be ignored, as `read.default_consistency`
//!    and `network.reconnect_backoff_ms_*` once were. [`READERS`] gives, for each key,
//!    a source file outside `config/` and the expression in it that reads the key; the
//!    test asserts the expression is on a non-comment line of that file (included with
//!    `include_str!`, so the test sees the code it was compiled with), and that
//!    `READERS` covers exactly the keys of example.toml, so a new key needs a row.
//!
//! The second check is textual on purpose: it cannot prove that the value is used
//! well, only that code names the field where the row says; a row whose expression
//! disappears from its file fails, and a new key without a reader cannot get a row
//! that passes.

use std::collections::BTreeSet;

use super::Config;

struct Source {
    path: &'static str,
    text: &'static str,
}

const BOOTSTRAP: Source = Source {
    path: "engine/src/node/bootstrap.rs",
    text: include_str!("../node/bootstrap.rs"),
};
const SERVER: Source = Source {
    path: "engine/src/node/server.rs",
    text: include_str!("../node/server.rs"),
};
const CHANNEL: Source = Source {
    path: "engine/src/network/channel.rs",
    text: include_str!("../network/channel.rs"),
};
const PEER_LINK: Source = Source {
    path: "engine/src/network/peer_link.rs",
    text: include_str!("../network/peer_link.rs"),
};
/// The `[logging]` keys are read by the binary, which installs the log subscriber.
const CLI_LOGGING: Source = Source {
    path: "cli/src/logging.rs",
    text: include_str!("../../../cli/src/logging.rs"),
};

/// Each key of example.toml, the file that reads it and the expression that does.
const READERS: &[(&str, &Source, &str)] = &[
    ("node.id", &BOOTSTRAP, "config.node.id"),
    ("node.cluster_id", &SERVER, "config.node.cluster_id"),
    ("node.listen_addr", &SERVER, "config.node.listen_addr"),
    ("node.data_dir", &BOOTSTRAP, "c.node.data_dir"),
    (
        "cluster.initial_members",
        &BOOTSTRAP,
        "c.cluster.initial_members",
    ),
    ("cluster.initial_members[].id", &BOOTSTRAP, "member.id"),
    ("cluster.initial_members[].addr", &BOOTSTRAP, "member.addr"),
    (
        "cluster.initial_members[].learner",
        &BOOTSTRAP,
        "member.learner",
    ),
    ("raft.tick_ms", &BOOTSTRAP, "c.raft.tick_ms"),
    (
        "raft.election_timeout_ms_min",
        &BOOTSTRAP,
        "c.raft.election_timeout_ms_min",
    ),
    (
        "raft.election_timeout_ms_max",
        &BOOTSTRAP,
        "c.raft.election_timeout_ms_max",
    ),
    (
        "raft.heartbeat_interval_ms",
        &BOOTSTRAP,
        "c.raft.heartbeat_interval_ms",
    ),
    ("raft.pre_vote", &BOOTSTRAP, "c.raft.pre_vote"),
    ("raft.check_quorum", &BOOTSTRAP, "c.raft.check_quorum"),
    (
        "raft.inflight_msgs_max",
        &BOOTSTRAP,
        "c.raft.inflight_msgs_max",
    ),
    (
        "raft.inflight_bytes_max",
        &BOOTSTRAP,
        "c.raft.inflight_bytes_max",
    ),
    (
        "raft.entries_per_msg_max",
        &BOOTSTRAP,
        "c.raft.entries_per_msg_max",
    ),
    (
        "raft.bytes_per_msg_max",
        &BOOTSTRAP,
        "c.raft.bytes_per_msg_max",
    ),
    (
        "raft.proposal_queue_max",
        &SERVER,
        "config.raft.proposal_queue_max",
    ),
    (
        "raft.uncommitted_entries_max",
        &BOOTSTRAP,
        "c.raft.uncommitted_entries_max",
    ),
    (
        "raft.uncommitted_bytes_max",
        &BOOTSTRAP,
        "c.raft.uncommitted_bytes_max",
    ),
    (
        "raft.apply_entries_max",
        &BOOTSTRAP,
        "c.raft.apply_entries_max",
    ),
    ("raft.apply_bytes_max", &BOOTSTRAP, "c.raft.apply_bytes_max"),
    (
        "raft.transfer_timeout_ms",
        &BOOTSTRAP,
        "c.raft.transfer_timeout_ms",
    ),
    (
        "raft.learner_auto_promote",
        &BOOTSTRAP,
        "c.raft.learner_auto_promote",
    ),
    (
        "raft.learner_promote_lag_entries_max",
        &BOOTSTRAP,
        "c.raft.learner_promote_lag_entries_max",
    ),
    (
        "raft.learner_promote_sustain_ms",
        &BOOTSTRAP,
        "c.raft.learner_promote_sustain_ms",
    ),
    ("read.lease_enabled", &BOOTSTRAP, "c.read.lease_enabled"),
    (
        "read.clock_drift_margin_ms",
        &BOOTSTRAP,
        "c.read.clock_drift_margin_ms",
    ),
    (
        "snapshot.entries_since_last",
        &BOOTSTRAP,
        "c.snapshot.entries_since_last",
    ),
    (
        "snapshot.trailing_entries",
        &BOOTSTRAP,
        "c.snapshot.trailing_entries",
    ),
    (
        "snapshot.chunk_bytes",
        &SERVER,
        "config.snapshot.chunk_bytes",
    ),
    (
        "snapshot.log_bytes_since_last",
        &BOOTSTRAP,
        "c.snapshot.log_bytes_since_last",
    ),
    (
        "snapshot.interval_secs",
        &BOOTSTRAP,
        "c.snapshot.interval_secs",
    ),
    ("storage.backend", &BOOTSTRAP, "c.storage.backend"),
    (
        "storage.segment_bytes",
        &BOOTSTRAP,
        "c.storage.segment_bytes",
    ),
    (
        "network.connect_timeout_ms",
        &CHANNEL,
        "net.connect_timeout_ms",
    ),
    (
        "network.request_timeout_ms",
        &SERVER,
        "config.network.request_timeout_ms",
    ),
    (
        "network.keepalive_interval_ms",
        &CHANNEL,
        "net.keepalive_interval_ms",
    ),
    (
        "network.keepalive_timeout_ms",
        &CHANNEL,
        "net.keepalive_timeout_ms",
    ),
    (
        "network.reconnect_backoff_ms_min",
        &PEER_LINK,
        "ctx.net.reconnect_backoff_ms_min",
    ),
    (
        "network.reconnect_backoff_ms_max",
        &PEER_LINK,
        "ctx.net.reconnect_backoff_ms_max",
    ),
    (
        "network.peer_queue_max",
        &PEER_LINK,
        "ctx.net.peer_queue_max",
    ),
    ("logging.format", &CLI_LOGGING, "cfg.format"),
    ("logging.level", &CLI_LOGGING, "cfg.level"),
    ("metrics.enabled", &SERVER, "config.metrics.enabled"),
    ("metrics.listen_addr", &SERVER, "config.metrics.listen_addr"),
];

fn example() -> toml::Table {
    include_str!("../../config/example.toml")
        .parse()
        .expect("example.toml is TOML")
}

/// Leaf key paths of a table; the keys of an array's tables under `key[]`.
fn leaf_paths(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let path = format!("{prefix}{key}");
        match value {
            toml::Value::Table(t) => leaf_paths(t, &format!("{path}."), out),
            toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {
                out.insert(path.clone());
                for item in items.iter().filter_map(toml::Value::as_table) {
                    leaf_paths(item, &format!("{path}[]."), out);
                }
            }
            _ => {
                out.insert(path);
            }
        }
    }
}

fn keys_of(table: &toml::Table) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    leaf_paths(table, "", &mut out);
    out
}

/// The keys in `a` and not in `b`.
fn missing(a: &BTreeSet<String>, b: &BTreeSet<String>) -> Vec<String> {
    a.difference(b).cloned().collect()
}

/// Whether `needle` is on a line of `text` that is not a comment.
fn in_code(text: &str, needle: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .any(|l| l.contains(needle))
}

#[test]
fn example_and_config_have_the_same_keys_both_ways() {
    let example = keys_of(&example());
    let defaults: toml::Table = Config::default().to_toml_string().parse().unwrap();
    let fields = keys_of(&defaults);
    assert!(fields.len() > 40, "too few fields found: {fields:?}");
    assert_eq!(
        missing(&example, &fields),
        Vec::<String>::new(),
        "keys in example.toml that Config does not have"
    );
    assert_eq!(
        missing(&fields, &example),
        Vec::<String>::new(),
        "Config fields that example.toml does not list"
    );
}

#[test]
fn every_example_key_has_a_reader_row_and_no_row_is_stale() {
    let example = keys_of(&example());
    let rows: BTreeSet<String> = READERS.iter().map(|(k, ..)| k.to_string()).collect();
    assert_eq!(rows.len(), READERS.len(), "a key has two rows in READERS");
    assert_eq!(
        missing(&example, &rows),
        Vec::<String>::new(),
        "keys without a row in READERS: add the code that reads each, then its row \
         (or remove the key)"
    );
    assert_eq!(
        missing(&rows, &example),
        Vec::<String>::new(),
        "rows for keys example.toml no longer has"
    );
}

#[test]
fn every_key_is_read_by_code_outside_config() {
    let unread: Vec<String> = READERS
        .iter()
        .filter(|(_, src, needle)| !in_code(src.text, needle))
        .map(|(key, src, needle)| format!("{key}: `{needle}` not in {}", src.path))
        .collect();
    assert!(
        unread.is_empty(),
        "keys no code reads:\n  {}",
        unread.join("\n  ")
    );
}

/// The textual check can fail: a commented-out reader does not count, and a key that
/// nothing names is caught.
#[test]
fn the_reader_check_ignores_comments_and_catches_an_unread_key() {
    assert!(!in_code("// c.raft.tick_ms\n", "c.raft.tick_ms"));
    assert!(in_code("    let t = c.raft.tick_ms;\n", "c.raft.tick_ms"));
    assert!(!in_code(BOOTSTRAP.text, "c.read.default_consistency"));
}
