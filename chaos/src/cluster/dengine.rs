//! The config file and command line of a d-engine node (`dengine serve`).

use std::sync::Arc;

use super::{ClusterSpec, Node, addr, free_port, node_dir};
use crate::proxy::{NetControl, Proxy, Source};

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::netns::Netns;
use super::process::NodeCommand;

/// The `dengine` binary: `explicit`, else `$DENGINE_BIN`, else `dengine` next
/// to the current executable (or one level up, for test binaries in
/// `target/*/deps/`), else `target/release/dengine`.
pub fn binary(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_owned());
    }
    if let Some(p) = std::env::var_os("DENGINE_BIN") {
        return Ok(p.into());
    }
    let mut tried = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(2) {
            tried.push(dir.join("dengine"));
        }
    }
    tried.push(PathBuf::from("target/release/dengine"));
    if let Some(found) = tried.iter().find(|p| p.is_file()) {
        return Ok(found.clone());
    }
    bail!("no dengine binary: set --binary or DENGINE_BIN (tried {tried:?})")
}

/// A TOML value from an `extra` string: integers, floats and booleans bare,
/// anything else as a string.
fn toml_value(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = raw.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

/// The config of node `id` (see `engine/config/example.toml`). `members` is
/// the membership *as this node sees it*: (id, address), where a peer's
/// address is the proxy of the link from this node when proxied.
pub fn config_toml(
    id: u64,
    listen_addr: &str,
    data_dir: &Path,
    members: &[(u64, String)],
    extra: &[(String, String)],
) -> anyhow::Result<String> {
    config_toml_with_learners(id, listen_addr, data_dir, members, &[], extra)
}

/// [`config_toml`], where the members in `learners` are marked `learner = true`
/// (a node that joins a running cluster lists itself so).
pub fn config_toml_with_learners(
    id: u64,
    listen_addr: &str,
    data_dir: &Path,
    members: &[(u64, String)],
    learners: &[u64],
    extra: &[(String, String)],
) -> anyhow::Result<String> {
    let mut root = toml::Table::new();
    let mut node = toml::Table::new();
    node.insert("id".into(), toml::Value::Integer(id as i64));
    node.insert("cluster_id".into(), toml::Value::Integer(1));
    node.insert(
        "listen_addr".into(),
        toml::Value::String(listen_addr.to_owned()),
    );
    node.insert(
        "data_dir".into(),
        toml::Value::String(data_dir.display().to_string()),
    );
    root.insert("node".into(), toml::Value::Table(node));
    let initial: Vec<toml::Value> = members
        .iter()
        .map(|(mid, addr)| {
            let mut m = toml::Table::new();
            m.insert("id".into(), toml::Value::Integer(*mid as i64));
            m.insert("addr".into(), toml::Value::String(addr.clone()));
            if learners.contains(mid) {
                m.insert("learner".into(), toml::Value::Boolean(true));
            }
            toml::Value::Table(m)
        })
        .collect();
    let mut cluster = toml::Table::new();
    cluster.insert("initial_members".into(), toml::Value::Array(initial));
    root.insert("cluster".into(), toml::Value::Table(cluster));
    for (key, raw) in extra {
        let parts: Vec<&str> = key.split('.').collect();
        let (last, path) = parts.split_last().context("empty extra key")?;
        let mut table = &mut root;
        for part in path {
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            table = entry
                .as_table_mut()
                .with_context(|| format!("extra key {key}: {part} is not a table"))?;
        }
        table.insert(last.to_string(), toml_value(raw));
    }
    Ok(toml::to_string(&root)?)
}

pub fn command(program: &Path, config: &Path) -> NodeCommand {
    NodeCommand {
        program: program.to_owned(),
        args: vec![
            "serve".into(),
            "--config".into(),
            config.display().to_string(),
        ],
    }
}

/// Ports, proxies and command lines of every node.
pub(super) async fn layout(
    spec: &ClusterSpec,
    net: Option<&Arc<NetControl>>,
) -> anyhow::Result<(Vec<Node>, Vec<Proxy>)> {
    let n = spec.nodes;
    let program = binary(spec.binary.as_deref())?;
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let direct = |j: usize| format!("127.0.0.1:{}", ports[j]);
    let mut proxies = Vec::new();
    let mut nodes = Vec::new();
    for i in 0..n {
        let id = i as u64 + 1;
        let mut members = Vec::new();
        for (j, &port) in ports.iter().enumerate() {
            let member_addr = match net {
                // One proxy per directed link i → j.
                Some(net) if j != i => {
                    let p =
                        Proxy::start(None, addr(port), j, Source::Fixed(i), net.clone()).await?;
                    let a = p.addr().to_string();
                    proxies.push(p);
                    a
                }
                _ => direct(j),
            };
            members.push((j as u64 + 1, member_addr));
        }
        let dir = node_dir(spec, id);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("config.toml");
        let text = config_toml(id, &direct(i), &dir.join("data"), &members, &spec.extra)?;
        std::fs::write(&config, text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        nodes.push(Node {
            id,
            client_addr: direct(i),
            log: dir.join("node.log"),
            dir,
            command: command(&program, &config),
            child: None,
            paused: false,
        });
    }
    Ok((nodes, proxies))
}

/// A node that joins a running cluster: launch index `p`, id `id`, the
/// current `members` as (launch index, id, direct address). Its config lists
/// the members as voters (behind a proxy per link from it, when proxied) and
/// itself as a learner. Returns the node, its proxies and the address the
/// members are to dial (one inbound proxy that tells dialers apart by their
/// socket, see [`Source::Dialer`]; the direct address when not proxied).
pub(super) async fn joining(
    spec: &ClusterSpec,
    p: usize,
    id: u64,
    members: &[(usize, u64, String)],
    net: Option<&Arc<NetControl>>,
    netns: Option<&mut Netns>,
) -> anyhow::Result<(Node, Vec<Proxy>, String)> {
    let program = binary(spec.binary.as_deref())?;
    if let Some(ns) = netns {
        // Its own namespace; everyone dials everyone's own address.
        let direct = format!("{}:{}", ns.add_node(id)?, super::netns::PORT);
        let mut listed: Vec<(u64, String)> = members
            .iter()
            .map(|(_, mid, a)| (*mid, a.clone()))
            .collect();
        listed.push((id, direct.clone()));
        let node = netns_node(spec, ns, &program, id, &direct, &listed, &[id])?;
        return Ok((node, Vec::new(), direct));
    }
    let port = free_port()?;
    let direct = format!("127.0.0.1:{port}");
    let mut proxies = Vec::new();
    let mut listed = Vec::new();
    for (q, mid, member_addr) in members {
        let seen_at = match net {
            Some(net) => {
                let target: std::net::SocketAddr = member_addr
                    .parse()
                    .with_context(|| format!("bad member address {member_addr}"))?;
                let proxy = Proxy::start(None, target, *q, Source::Fixed(p), net.clone()).await?;
                let a = proxy.addr().to_string();
                proxies.push(proxy);
                a
            }
            None => member_addr.clone(),
        };
        listed.push((*mid, seen_at));
    }
    listed.push((id, direct.clone()));
    let registered = match net {
        Some(net) => {
            let proxy = Proxy::start(None, addr(port), p, Source::Dialer, net.clone()).await?;
            let a = proxy.addr().to_string();
            proxies.push(proxy);
            a
        }
        None => direct.clone(),
    };
    let dir = node_dir(spec, id);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("config.toml");
    let text =
        config_toml_with_learners(id, &direct, &dir.join("data"), &listed, &[id], &spec.extra)?;
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    let node = Node {
        id,
        client_addr: direct,
        log: dir.join("node.log"),
        dir,
        command: command(&program, &config),
        child: None,
        paused: false,
    };
    Ok((node, proxies, registered))
}

/// Node `id` inside its namespace: config and the `ip netns exec` command.
fn netns_node(
    spec: &ClusterSpec,
    ns: &Netns,
    program: &Path,
    id: u64,
    listen: &str,
    members: &[(u64, String)],
    learners: &[u64],
) -> anyhow::Result<Node> {
    let dir = node_dir(spec, id);
    std::fs::create_dir_all(&dir)?;
    let config = dir.join("config.toml");
    let text = config_toml_with_learners(
        id,
        listen,
        &dir.join("data"),
        members,
        learners,
        &spec.extra,
    )?;
    std::fs::write(&config, text).with_context(|| format!("cannot write {}", config.display()))?;
    let serve = command(program, &config);
    Ok(Node {
        id,
        client_addr: listen.to_owned(),
        log: dir.join("node.log"),
        dir,
        command: NodeCommand {
            program: "ip".into(),
            args: ns.wrap(id, &serve.program, &serve.args),
        },
        child: None,
        paused: false,
    })
}

/// `--net netns`: every node in its own namespace (created here), listening
/// on its own address; no proxies.
pub(super) fn layout_netns(spec: &ClusterSpec, ns: &mut Netns) -> anyhow::Result<Vec<Node>> {
    let program = binary(spec.binary.as_deref())?;
    let ids: Vec<u64> = (1..=spec.nodes as u64).collect();
    let mut members = Vec::new();
    for &id in &ids {
        members.push((id, format!("{}:{}", ns.add_node(id)?, super::netns::PORT)));
    }
    members
        .iter()
        .map(|(id, listen)| netns_node(spec, ns, &program, *id, listen, &members, &[]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_members_and_extra_keys() {
        let members = vec![
            (1, "127.0.0.1:1000".to_owned()),
            (2, "127.0.0.1:2000".to_owned()),
        ];
        let extra = vec![
            ("raft.election_timeout_ms_min".to_owned(), "300".to_owned()),
            ("logging.level".to_owned(), "debug".to_owned()),
        ];
        let text = config_toml(2, "127.0.0.1:2001", Path::new("/tmp/x"), &members, &extra).unwrap();
        let parsed: toml::Table = text.parse().unwrap();
        assert_eq!(parsed["node"]["id"].as_integer(), Some(2));
        assert_eq!(
            parsed["cluster"]["initial_members"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            parsed["cluster"]["initial_members"][1]["addr"].as_str(),
            Some("127.0.0.1:2000")
        );
        assert_eq!(
            parsed["raft"]["election_timeout_ms_min"].as_integer(),
            Some(300)
        );
        assert_eq!(parsed["logging"]["level"].as_str(), Some("debug"));
    }

    /// Node i lists itself at its direct address and peer j at the proxy of
    /// link i → j; every link has its own proxy.
    #[tokio::test]
    async fn dengine_proxied_layout_gives_each_directed_link_its_own_proxy() {
        let dir = std::env::temp_dir().join(format!("chaos-layout-{}", std::process::id()));
        let mut spec = ClusterSpec::new(super::super::TargetKind::Dengine, 3, dir.clone());
        spec.proxied = true;
        spec.binary = Some("/bin/true".into());
        spec.extra = vec![("raft.election_timeout_ms_min".into(), "300".into())];
        let net = NetControl::new(3);
        let (nodes, proxies) = layout(&spec, Some(&net)).await.unwrap();
        assert_eq!(proxies.len(), 6);
        let mut seen = std::collections::HashSet::new();
        for (i, node) in nodes.iter().enumerate() {
            assert_eq!(node.command.args[0], "serve");
            let text = std::fs::read_to_string(node.dir.join("config.toml")).unwrap();
            let cfg: toml::Table = text.parse().unwrap();
            assert_eq!(
                cfg["node"]["listen_addr"].as_str(),
                Some(node.client_addr.as_str())
            );
            assert_eq!(
                cfg["raft"]["election_timeout_ms_min"].as_integer(),
                Some(300)
            );
            let members = cfg["cluster"]["initial_members"].as_array().unwrap();
            for (j, m) in members.iter().enumerate() {
                let addr = m["addr"].as_str().unwrap();
                assert_eq!(m["id"].as_integer(), Some(j as i64 + 1));
                if i == j {
                    assert_eq!(addr, node.client_addr);
                } else {
                    assert_ne!(
                        addr, nodes[j].client_addr,
                        "peer {j} of node {i} is proxied"
                    );
                    assert!(seen.insert(addr.to_owned()), "one proxy per directed link");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
