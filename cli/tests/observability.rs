//! Metrics and logs of real node processes: `/metrics` parsed as the Prometheus text
//! format shows the key series moving under load and through a follower's kill and
//! restart; JSON log lines parse and carry the node id (span) and, on role changes,
//! term and role.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value};
use support::{ProcCluster, scrape};

/// Every sample of a scrape, keyed by `name{label=value,...}` (labels sorted).
fn parse(text: &str) -> HashMap<String, f64> {
    let scrape =
        Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid Prometheus text");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let mut labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        let key = format!("{}{{{}}}", s.metric, labels.join(","));
        let v = match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
            Value::Summary(_) => continue,
        };
        out.insert(key, v);
    }
    out
}

fn get(m: &HashMap<String, f64>, name: &str, labels: &str) -> f64 {
    *m.get(&format!("{name}{{{labels}}}")).unwrap_or_else(|| {
        let mut names: Vec<&String> = m.keys().filter(|k| k.starts_with(name)).collect();
        names.sort();
        panic!("no series {name}{{{labels}}}; have {names:?}")
    })
}

#[test]
fn metrics_move_under_load_and_a_killed_followers_lag_rises_then_falls() {
    let mut c = ProcCluster::start_with("metrics", 3, "", true, false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let leader = c.leader(Duration::from_secs(10)).await.expect("leader");
        let lid = c.nodes[leader].id;
        let client = c.client();
        let addr = c.nodes[leader].metrics_addr.clone().unwrap();
        for i in 0..50 {
            client.put(format!("k{i}"), "v").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before = parse(&scrape(&addr).unwrap());
        let node = format!("node={lid}");
        assert_eq!(
            get(&before, "dengine_role", &node),
            3.0,
            "the leader reports role 3"
        );
        for i in 50..150 {
            client.put(format!("k{i}"), "v").await.unwrap();
        }
        let _ = client
            .get("k1", d_engine::client::ReadConsistency::Linearizable)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = parse(&scrape(&addr).unwrap());
        assert!(
            get(&after, "dengine_commit_index", &node)
                >= get(&before, "dengine_commit_index", &node) + 100.0
        );
        assert!(
            get(&after, "dengine_log_write_seconds_count", &node)
                > get(&before, "dengine_log_write_seconds_count", &node),
            "the log write histogram grows"
        );
        assert!(get(&after, "dengine_proposals_total", &node) >= 150.0);
        assert!(
            get(
                &after,
                "dengine_reads_total",
                &format!("consistency=linearizable,{node}")
            ) >= 1.0
        );
        assert!(get(&after, "dengine_elections_won_total", &node) >= 1.0);

        // Kill a follower: its lag on the leader rises while writes go on, and falls
        // back to zero once it is restarted and catches up.
        let follower = (0..3).find(|&i| i != leader).unwrap();
        let fid = c.nodes[follower].id;
        let lag_key = format!("node={lid},peer={fid}");
        c.kill(follower);
        for i in 0..100 {
            client.put(format!("lag{i}"), "v").await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let lagging = get(
            &parse(&scrape(&addr).unwrap()),
            "dengine_peer_lag_entries",
            &lag_key,
        );
        assert!(lagging >= 100.0, "lag of the killed follower is {lagging}");
        c.spawn(follower);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let lag = get(
                &parse(&scrape(&addr).unwrap()),
                "dengine_peer_lag_entries",
                &lag_key,
            );
            if lag == 0.0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "lag stuck at {lag} after the restart"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn json_log_lines_parse_and_carry_node_id_term_and_role() {
    let c = ProcCluster::start_with("jsonlogs", 3, "", false, true);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        c.leader(Duration::from_secs(10)).await.expect("leader");
        c.client().put("k", "v").await.unwrap();
    });
    let mut saw_role_change = false;
    for i in 0..3 {
        let text = c.log_text(i);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "node {i} logged nothing");
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            assert!(
                v.get("level").is_some() && v.get("timestamp").is_some(),
                "{line}"
            );
            if v.get("message").and_then(|m| m.as_str()) == Some("role changed") {
                saw_role_change = true;
                let span = v.get("span").unwrap_or_else(|| panic!("no span in {line}"));
                assert_eq!(
                    span.get("id").and_then(|x| x.as_u64()),
                    Some(c.nodes[i].id),
                    "{line}"
                );
                // Term and role are the event's own fields: kept out of the node's
                // long-lived span, whose text prefix grew with every role change.
                assert!(v.get("term").is_some() && v.get("role").is_some(), "{line}");
            }
        }
    }
    assert!(saw_role_change);
}
