//! The command line of an etcd node.

use std::sync::Arc;

use super::{ClusterSpec, Node, addr, free_port, node_dir};
use crate::proxy::{NetControl, Proxy, Source};

use std::path::Path;

use super::process::NodeCommand;

/// etcd's binary: `$ETCD_BIN`, else `etcd` on the PATH.
pub fn binary(explicit: Option<&Path>) -> std::path::PathBuf {
    if let Some(p) = explicit {
        return p.to_owned();
    }
    std::env::var_os("ETCD_BIN").map_or_else(|| "etcd".into(), Into::into)
}

/// `advertised_peer[j]` is the peer URL everyone uses for node j (its proxy
/// when proxied: etcd derives member ids from these URLs, so every node must
/// see the same list). fsync stays on (etcd's default).
#[allow(clippy::too_many_arguments)]
pub fn command(
    program: &Path,
    i: usize,
    data_dir: &Path,
    client_port: u16,
    peer_port: u16,
    advertised_peer: &[String],
    token: &str,
    extra: &[(String, String)],
) -> NodeCommand {
    let name = |j: usize| format!("n{}", j + 1);
    let cluster: Vec<String> = advertised_peer
        .iter()
        .enumerate()
        .map(|(j, url)| format!("{}={url}", name(j)))
        .collect();
    let client_url = format!("http://127.0.0.1:{client_port}");
    let mut args = vec![
        format!("--name={}", name(i)),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
        format!("--initial-advertise-peer-urls={}", advertised_peer[i]),
        format!("--initial-cluster={}", cluster.join(",")),
        "--initial-cluster-state=new".to_owned(),
        format!("--initial-cluster-token={token}"),
        "--logger=zap".to_owned(),
        "--log-outputs=stderr".to_owned(),
    ];
    for (k, v) in extra {
        args.push(format!("--{}={v}", k.trim_start_matches('-')));
    }
    NodeCommand {
        program: program.to_owned(),
        args,
    }
}

/// Ports, proxies and command lines of every node.
pub(super) async fn layout(
    spec: &ClusterSpec,
    net: Option<&Arc<NetControl>>,
) -> anyhow::Result<(Vec<Node>, Vec<Proxy>)> {
    let n = spec.nodes;
    let program = binary(spec.binary.as_deref());
    let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let peer_ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let mut proxies = Vec::new();
    let mut advertised = Vec::new();
    for (j, &peer_port) in peer_ports.iter().enumerate() {
        match net {
            Some(net) => {
                // One proxy per destination; the source is read from the
                // X-Server-From header (see proxy.rs).
                let p = Proxy::start(
                    None,
                    addr(peer_ports[j]),
                    j,
                    Source::EtcdHeader,
                    net.clone(),
                )
                .await?;
                advertised.push(format!("http://{}", p.addr()));
                proxies.push(p);
            }
            None => advertised.push(format!("http://127.0.0.1:{peer_port}")),
        }
    }
    let token = format!("chaos-{}-{}", std::process::id(), client_ports[0]);
    let nodes = (0..n)
        .map(|i| {
            let id = i as u64 + 1;
            let dir = node_dir(spec, id);
            let command = command(
                &program,
                i,
                &dir.join("data"),
                client_ports[i],
                peer_ports[i],
                &advertised,
                &token,
                &spec.extra,
            );
            Node {
                id,
                client_addr: format!("127.0.0.1:{}", client_ports[i]),
                log: dir.join("node.log"),
                dir,
                command,
                child: None,
                paused: false,
            }
        })
        .collect();
    Ok((nodes, proxies))
}
