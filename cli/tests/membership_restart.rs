//! Restarts after membership changes, with real `dengine serve` processes.
//!
//! Regression (issue 14): a node restarted after a membership change refused the new
//! members ("peer message from an unknown node refused from=4") for ever. Its address
//! book came from `initial_members` only, and the addresses learned from the log were
//! lost once a snapshot covered the entries that carried them. Memberships now carry
//! every member's address, through config entries and snapshot metas.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use d_engine::client::{Client, ClientConfig, ReadConsistency};
use support::{ProcCluster, assert_all_present, runtime, write_keys};

/// Snapshot every 50 entries and keep 10 behind: 150 writes put every node's
/// snapshot past the entries of a membership change.
const SNAPSHOT_OFTEN: &str = "[snapshot]\nentries_since_last = 50\ntrailing_entries = 10\n";

fn client_of(endpoints: Vec<String>) -> Client {
    Client::connect(
        ClientConfig::new(endpoints)
            .cluster_id(7)
            .deadline(Duration::from_secs(15)),
    )
    .unwrap()
}

/// Starts node `id` with an empty data dir (its config lists the current voters and
/// itself as a learner), adds it as a learner and promotes it once caught up.
async fn join_as_voter(c: &mut ProcCluster, client: &Client, id: u64) {
    let addr = format!("127.0.0.1:{}", support::free_ports(1)[0]);
    let mut members: Vec<(u64, String, bool)> = c
        .nodes
        .iter()
        .filter(|n| n.child.is_some())
        .map(|n| (n.id, n.addr.clone(), false))
        .collect();
    members.push((id, addr.clone(), true));
    let i = c.add_node(id, addr.clone(), &members);
    c.spawn(i);
    client
        .admin()
        .add_learners(&[(id, addr)])
        .await
        .unwrap_or_else(|e| panic!("add learner {id}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client.admin().promote(&[id]).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("promote {id} not yet: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("promotion of {id} never succeeded: {e}"),
        }
    }
}

/// Removes `id`, retrying while the previous change (the promotion's C_new) is still
/// in flight.
async fn remove_when_settled(client: &Client, id: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.admin().remove(&[id]).await {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline && e.to_string().contains("in progress") => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("remove {id}: {e}"),
        }
    }
}

/// Waits until `endpoint` serves `key` with `value` from its own state machine.
async fn wait_local_value(endpoint: &str, key: &str, value: &str, within: Duration) {
    let local = client_of(vec![endpoint.to_string()]);
    let deadline = Instant::now() + within;
    loop {
        let got = local
            .get(key.to_string(), ReadConsistency::Serializable)
            .await;
        if let Ok(Some(v)) = &got
            && v.as_ref() == value.as_bytes()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} never served {key}={value} (last: {got:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn index_of(c: &ProcCluster, id: u64) -> usize {
    c.nodes.iter().position(|n| n.id == id).unwrap()
}

#[test]
fn node_restarted_after_churn_follows_a_leader_it_learned_from_the_log() {
    let mut c = ProcCluster::start("churn-restart", 3, SNAPSHOT_OFTEN);
    let rt = runtime();
    rt.block_on(async {
        c.leader(Duration::from_secs(10)).await.expect("leader");
        let client = c.client();
        let mut acked = write_keys(&client, "a", 20).await;
        join_as_voter(&mut c, &client, 4).await;
        // Every node snapshots past the entries that added node 4.
        acked.extend(write_keys(&client, "b", 150).await);
        client
            .admin()
            .transfer_leader(4)
            .await
            .expect("transfer to 4");
        let l = c.leader(Duration::from_secs(5)).await.expect("leader");
        assert_eq!(c.nodes[l].id, 4, "node 4 leads after the transfer");

        let one = index_of(&c, 1);
        c.kill(one);
        c.spawn(one);
        let status = client.admin().status_of(&c.nodes[one].addr).await;
        eprintln!("node 1 after restart: {status:?}");
        acked.extend(write_keys(&client, "c", 20).await);
        // Node 1 follows leader 4 again: it receives what 4 commits after the restart.
        wait_local_value(
            &c.nodes[one].addr,
            "c0019",
            "value-c-19",
            Duration::from_secs(10),
        )
        .await;
        let s = client.admin().status_of(&c.nodes[one].addr).await.unwrap();
        assert_eq!(s.header.as_ref().map(|h| h.leader_id), Some(4), "{s:?}");
        assert!(
            s.snapshot_index > 0,
            "node 1 restarted from a snapshot: {s:?}"
        );
        assert!(
            !c.log_text(one).contains("unknown node refused"),
            "node 1 refused a member"
        );
        assert_all_present(&client, &acked).await;
    });
}

#[test]
fn every_original_node_replaced_then_all_restarted_at_once_lose_nothing() {
    let mut c = ProcCluster::start("replace-all", 3, SNAPSHOT_OFTEN);
    let rt = runtime();
    rt.block_on(async {
        c.leader(Duration::from_secs(10)).await.expect("leader");
        let mut acked = BTreeMap::new();
        for (old, new) in [(1u64, 4u64), (2, 5), (3, 6)] {
            let live: Vec<String> = c
                .nodes
                .iter()
                .filter(|n| n.child.is_some())
                .map(|n| n.addr.clone())
                .collect();
            let client = client_of(live);
            acked.extend(write_keys(&client, &format!("r{new}-"), 60).await);
            join_as_voter(&mut c, &client, new).await;
            remove_when_settled(&client, old).await;
            // Snapshots in between: each replacement is covered by one.
            acked.extend(write_keys(&client, &format!("s{new}-"), 60).await);
            c.kill(index_of(&c, old));
        }

        let live: Vec<usize> = (0..c.nodes.len())
            .filter(|&i| c.nodes[i].child.is_some())
            .collect();
        assert_eq!(live.len(), 3);
        for &i in &live {
            c.kill(i);
        }
        for &i in &live {
            c.spawn(i);
        }
        let restarted = Instant::now();
        c.leader(Duration::from_secs(5))
            .await
            .expect("a leader within 5 s of restarting every node at once");
        eprintln!("leader {:?} after the restart", restarted.elapsed());
        let client = client_of(live.iter().map(|&i| c.nodes[i].addr.clone()).collect());
        assert_all_present(&client, &acked).await;
        for &i in &live {
            let log = c.log_text(i);
            assert!(
                !log.contains("unknown node refused"),
                "node {} refused a member",
                c.nodes[i].id
            );
        }
    });
}
