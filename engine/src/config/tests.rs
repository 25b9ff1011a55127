use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn problems(err: ConfigError) -> Vec<Problem> {
    match err {
        ConfigError::Invalid(p) => p,
        other => panic!("expected Invalid, got {other}"),
    }
}

#[test]
fn defaults_are_valid_and_describe_a_single_self_electing_node() {
    let c = Config::default();
    c.validate().unwrap();
    assert_eq!(c.cluster.initial_members.len(), 1);
    assert_eq!(c.cluster.initial_members[0].id, c.node.id);
    assert!(c.node.listen_addr.starts_with("127.0.0.1:"));
}

#[test]
fn example_file_lists_exactly_the_defaults() {
    let text = include_str!("../../config/example.toml");
    let parsed = Config::from_toml_str(text).unwrap();
    assert_eq!(
        parsed,
        Config::default(),
        "engine/config/example.toml drifted from the defaults"
    );
}

#[test]
fn example_file_names_every_key() {
    let text = include_str!("../../config/example.toml");
    let defaults: toml::Table = Config::default().to_toml_string().parse().unwrap();
    for (section, keys) in &defaults {
        assert!(
            text.contains(&format!("[{section}]")),
            "example lacks [{section}]"
        );
        for key in keys.as_table().unwrap().keys() {
            assert!(
                text.contains(&format!("\n{key} = ")),
                "example lacks {section}.{key}"
            );
        }
    }
}

#[test]
fn file_values_override_defaults() {
    let c = Config::from_toml_str(
        "[raft]\nelection_timeout_ms_min = 500\nelection_timeout_ms_max = 900\n",
    )
    .unwrap();
    assert_eq!(c.raft.election_timeout_ms_min, 500);
    assert_eq!(
        c.raft.heartbeat_interval_ms,
        RaftConfig::default().heartbeat_interval_ms
    );
}

#[test]
fn env_overrides_file_values() {
    let c = Config::from_sources(
        "[raft]\nelection_timeout_ms_min = 500\nelection_timeout_ms_max = 900\n",
        "test",
        env(&[
            ("DENGINE__RAFT__ELECTION_TIMEOUT_MS_MIN", "400"),
            ("DENGINE__LOGGING__FORMAT", "json"),
            ("DENGINE__READ__LEASE_ENABLED", "true"),
        ]),
    )
    .unwrap();
    assert_eq!(c.raft.election_timeout_ms_min, 400);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert!(c.read.lease_enabled);
}

#[test]
fn unknown_key_in_file_is_an_error_naming_it() {
    let err = Config::from_toml_str("[raft]\nelection_timeout_ms = 500\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("election_timeout_ms"), "{msg}");
    assert!(msg.contains("unknown field"), "{msg}");
}

#[test]
fn unknown_section_and_unknown_env_key_are_errors() {
    assert!(Config::from_toml_str("[rafts]\ntick_ms = 5\n").is_err());
    let err = Config::from_sources("", "test", env(&[("DENGINE__RAFT__TICKS", "5")])).unwrap_err();
    assert!(err.to_string().contains("ticks"), "{err}");
    let err = Config::from_sources("", "test", env(&[("DENGINE__TICK_MS", "5")])).unwrap_err();
    assert!(matches!(err, ConfigError::Env { .. }), "{err}");
}

#[test]
fn wrong_type_is_an_error() {
    let err = Config::from_toml_str("[raft]\ntick_ms = \"fast\"\n").unwrap_err();
    assert!(err.to_string().contains("tick_ms"), "{err}");
    assert!(Config::from_toml_str("[storage]\nbackend = \"floppy\"\n").is_err());
    assert!(Config::from_toml_str("this is not toml").is_err());
}

#[test]
fn invalid_values_are_reported_each_with_its_key() {
    let text = r#"
        [node]
        id = 0
        listen_addr = "nowhere"
        [raft]
        election_timeout_ms_min = 600
        election_timeout_ms_max = 300
        heartbeat_interval_ms = 400
    "#;
    let keys: Vec<String> = problems(Config::from_toml_str(text).unwrap_err())
        .into_iter()
        .map(|p| p.key)
        .collect();
    for key in [
        "node.id",
        "node.listen_addr",
        "raft.election_timeout_ms_min",
        "raft.heartbeat_interval_ms",
        "cluster.initial_members",
    ] {
        assert!(
            keys.iter().any(|k| k == key),
            "no problem reported for {key}: {keys:?}"
        );
    }
}

#[test]
fn duplicate_member_ids_and_learner_only_clusters_are_refused() {
    let text = r#"
        [cluster]
        initial_members = [
          { id = 1, addr = "127.0.0.1:1", learner = true },
          { id = 1, addr = "127.0.0.1:2", learner = true },
        ]
    "#;
    let p = problems(Config::from_toml_str(text).unwrap_err());
    assert!(
        p.iter().any(|p| p.problem.contains("listed twice")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|p| p.problem.contains("at least one voter")),
        "{p:?}"
    );
}

#[test]
fn leases_need_check_quorum() {
    let text = "[read]\nlease_enabled = true\n[raft]\ncheck_quorum = false\n";
    let p = problems(Config::from_toml_str(text).unwrap_err());
    assert_eq!(p[0].key, "read.lease_enabled", "{p:?}");
    Config::from_toml_str("[read]\nlease_enabled = true\n").unwrap();
}

/// `read.default_consistency` was never read (a request without a consistency is
/// linearizable by the protocol); it was removed, and a file still setting it must
/// hear so rather than believe its reads are, say, serializable.
#[test]
fn removed_default_consistency_is_an_unknown_key() {
    let err =
        Config::from_toml_str("[read]\ndefault_consistency = \"serializable\"\n").unwrap_err();
    assert!(err.to_string().contains("default_consistency"), "{err}");
}

#[test]
fn missing_file_is_a_read_error_naming_the_path() {
    let err = Config::load(Some(std::path::Path::new("/nonexistent/dengine.toml"))).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/dengine.toml"),
        "{err}"
    );
}

#[test]
fn round_trips_through_toml() {
    let mut c = Config::default();
    c.node.id = 3;
    c.cluster.initial_members = (1..=3)
        .map(|id| MemberConfig {
            id,
            addr: format!("127.0.0.1:{}", 9080 + id),
            learner: false,
        })
        .collect();
    let back = Config::from_toml_str(&c.to_toml_string()).unwrap();
    assert_eq!(back, c);
}

#[test]
fn a_segment_too_small_for_the_largest_entry_is_refused() {
    let text = "[storage]\nsegment_bytes = 1048576\n";
    let found = problems(Config::from_toml_str(text).unwrap_err());
    let p = found
        .iter()
        .find(|p| p.key == "storage.segment_bytes")
        .unwrap_or_else(|| panic!("no problem for storage.segment_bytes: {found:?}"));
    assert!(p.problem.contains("largest entry"), "{}", p.problem);
    // The number the docs give is the real bound.
    assert!(p.problem.contains("2113536"), "{}", p.problem);
    let example = include_str!("../../config/example.toml");
    assert!(example.contains("at least 2113536 bytes"), "example.toml");
    // The smallest accepted size holds a 1 MiB value with its key and headers.
    let ok = format!(
        "[storage]\nsegment_bytes = {}\n",
        2 * d_engine_proto::limits::MAX_ENTRY_BYTES
    );
    let c = Config::from_toml_str(&ok).unwrap_or_else(|e| panic!("{e}"));
    c.validate().unwrap();
}

#[test]
fn a_segment_size_the_file_log_would_refuse_is_refused_naming_the_key() {
    let min = 2 * d_engine_proto::limits::MAX_ENTRY_BYTES as u64;
    for (bytes, why) in [
        (min + 4, "multiple of 8"),
        (u64::from(u32::MAX) + 1, "at most 4294967295"),
    ] {
        let text = format!("[storage]\nsegment_bytes = {bytes}\n");
        let found = problems(Config::from_toml_str(&text).unwrap_err());
        assert!(
            found
                .iter()
                .any(|p| p.key == "storage.segment_bytes" && p.problem.contains(why)),
            "{bytes}: {found:?}"
        );
    }
    assert_eq!(min, 2_113_536, "the docs state this number");
}
