//! `dengine status`: the live view of every node of a cluster.

use std::io::Write;
use std::time::Duration;

use d_engine::client::{Client, ClientConfig};
use d_engine::proto::v1::{Role, StatusResponse};

#[derive(clap::Args)]
pub struct StatusArgs {
    /// Every node to ask, comma separated (host:port).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:9081")]
    pub endpoints: Vec<String>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn role_name(r: i32) -> &'static str {
    match Role::try_from(r) {
        Ok(Role::Leader) => "leader",
        Ok(Role::Follower) => "follower",
        Ok(Role::Candidate) => "candidate",
        Ok(Role::PreCandidate) => "pre-candidate",
        Ok(Role::Learner) => "learner",
        _ => "?",
    }
}

pub fn run(args: StatusArgs) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let client = Client::connect(ClientConfig::new(args.endpoints.clone()).attempt_timeout(Duration::from_secs(2)))?;
        let mut rows: Vec<(String, Result<StatusResponse, String>)> = Vec::new();
        for e in &args.endpoints {
            rows.push((e.clone(), client.admin().status_of(e).await.map_err(|e| e.to_string())));
        }
        // Written through a lock, not println!: a closed pipe is an error, not a panic.
        let mut out = std::io::stdout().lock();
        let mut unreachable = 0;
        if !args.json {
            writeln!(out, "{:<22} {:>4} {:<13} {:>6} {:>6} {:>10} {:>10} {:>10}", "endpoint", "id", "role", "term", "leader", "commit", "applied", "last")?;
        }
        for (endpoint, row) in &rows {
            match row {
                Ok(s) => {
                    let h = s.header.unwrap_or_default();
                    if args.json {
                        writeln!(out,
                            "{{\"endpoint\":\"{endpoint}\",\"id\":{},\"role\":\"{}\",\"term\":{},\"leader\":{},\"commit\":{},\"applied\":{},\"last\":{},\"no_space\":{}}}",
                            h.node_id, role_name(s.role), h.term, h.leader_id, s.commit_index, s.applied_index, s.last_index, s.no_space
                        )?;
                    } else {
                        writeln!(out,
                            "{endpoint:<22} {:>4} {:<13} {:>6} {:>6} {:>10} {:>10} {:>10}{}",
                            h.node_id, role_name(s.role), h.term, h.leader_id, s.commit_index, s.applied_index, s.last_index,
                            if s.no_space { "  DISK FULL: writes refused until space is freed" } else { "" }
                        )?;
                    }
                }
                Err(e) => {
                    unreachable += 1;
                    if args.json {
                        writeln!(out, "{{\"endpoint\":\"{endpoint}\",\"error\":{:?}}}", e)?;
                    } else {
                        writeln!(out, "{endpoint:<22} unreachable: {e}")?;
                    }
                }
            }
        }
        // The leader's view of replication: each peer's progress and lag.
        if let Some(leader) = rows.iter().filter_map(|(_, r)| r.as_ref().ok()).find(|s| s.role == Role::Leader as i32)
            && !args.json
        {
            writeln!(out, "\nreplication (leader {}):", leader.header.unwrap_or_default().node_id)?;
            writeln!(out, "{:>4} {:<22} {:<6} {:>10} {:>10} {:>8}", "peer", "addr", "voter", "match", "next", "lag")?;
            for p in &leader.peers {
                writeln!(out, "{:>4} {:<22} {:<6} {:>10} {:>10} {:>8}", p.id, p.addr, p.voter, p.match_index, p.next_index, p.lag)?;
            }
        }
        Ok(if unreachable > 0 { 1 } else { 0 })
    })
}
