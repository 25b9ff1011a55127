//! The fault-injecting proxy in front of an echo server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use d_engine_chaos::proxy::{LinkFault, NetControl, PartitionStyle, Proxy, Source};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Node 0 dials node 1 through the proxy.
async fn setup(source: Source) -> (Arc<NetControl>, Proxy) {
    let ctl = NetControl::new(2);
    let target = echo_server().await;
    let proxy = Proxy::start(None, target, 1, source, ctl.clone())
        .await
        .unwrap();
    (ctl, proxy)
}

/// Sends `msg` and waits up to `wait` for the echo: Some(bytes) or None
/// (nothing arrived), Err on a closed connection.
async fn round_trip(s: &mut TcpStream, msg: &[u8], wait: Duration) -> Result<Option<Vec<u8>>, ()> {
    s.write_all(msg).await.map_err(|_| ())?;
    let mut got = Vec::new();
    let deadline = Instant::now() + wait;
    while got.len() < msg.len() {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Err(_) => return Ok(None),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    Ok(Some(got))
}

async fn is_closed(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn passes_bytes_both_ways() {
    let (ctl, proxy) = setup(Source::Fixed(0)).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    for i in 0..10 {
        let msg = format!("hello {i}");
        assert_eq!(
            round_trip(&mut s, msg.as_bytes(), Duration::from_secs(2)).await,
            Ok(Some(msg.into_bytes()))
        );
    }
    assert!(
        ctl.stats
            .bytes_forwarded
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
}

#[tokio::test]
async fn blackhole_drops_then_heal_cuts_the_poisoned_connection() {
    let (ctl, proxy) = setup(Source::Fixed(0)).await;
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut s, b"before", Duration::from_secs(2))
            .await
            .unwrap()
            .is_some()
    );
    // One way: 0 → 1 blocked, 1 → 0 open. The request is lost, no error.
    ctl.set_link(
        0,
        1,
        LinkFault {
            blocked: true,
            ..Default::default()
        },
    );
    assert_eq!(
        round_trip(&mut s, b"lost", Duration::from_millis(300)).await,
        Ok(None)
    );
    // Healing closes the connection whose stream has a hole in it.
    ctl.heal();
    assert!(is_closed(&mut s, Duration::from_secs(2)).await);
    let mut fresh = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut fresh, b"after", Duration::from_secs(2))
            .await
            .unwrap()
            .is_some()
    );

    // The reply direction blocked also loses the exchange.
    ctl.set_link(
        1,
        0,
        LinkFault {
            blocked: true,
            ..Default::default()
        },
    );
    assert_eq!(
        round_trip(&mut fresh, b"reply lost", Duration::from_millis(300)).await,
        Ok(None)
    );
}

#[tokio::test]
async fn refuse_style_cuts_open_and_new_connections() {
    let (ctl, proxy) = setup(Source::Fixed(0)).await;
    ctl.set_style(PartitionStyle::Refuse);
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut s, b"x", Duration::from_secs(2))
            .await
            .unwrap()
            .is_some()
    );
    ctl.partition(&[0, 1]);
    assert!(is_closed(&mut s, Duration::from_secs(2)).await);
    let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(is_closed(&mut again, Duration::from_secs(2)).await);
    ctl.heal();
    let mut ok = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(
        round_trip(&mut ok, b"y", Duration::from_secs(2))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn delay_and_jitter_slow_the_round_trip_and_keep_order() {
    let (ctl, proxy) = setup(Source::Fixed(0)).await;
    ctl.update_all(|_, _, l| {
        l.delay_ms = 100;
        l.jitter_ms = 20;
    });
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    let start = Instant::now();
    let got = round_trip(&mut s, b"slow", Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(&b"slow"[..]));
    assert!(
        start.elapsed() >= Duration::from_millis(160),
        "round trip took {:?}",
        start.elapsed()
    );
    // Many small writes come back in order despite jitter.
    let mut expected = Vec::new();
    for i in 0..20u8 {
        s.write_all(&[i]).await.unwrap();
        expected.push(i);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut got = vec![0u8; expected.len()];
    tokio::time::timeout(Duration::from_secs(3), s.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn loss_resets_the_connection() {
    let (ctl, proxy) = setup(Source::Fixed(0)).await;
    ctl.set_link(
        0,
        1,
        LinkFault {
            loss: 1.0,
            ..Default::default()
        },
    );
    let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut s, b"gone", Duration::from_secs(2)).await,
        Err(())
    );
    assert_eq!(
        ctl.stats.resets.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn etcd_source_is_read_from_the_request_header() {
    let (ctl, proxy) = setup(Source::EtcdHeader).await;
    ctl.set_member("8e9e05c52164694d", 0);
    ctl.set_link(
        0,
        1,
        LinkFault {
            blocked: true,
            ..Default::default()
        },
    );
    let head =
        b"GET /raft/stream/msgapp/1 HTTP/1.1\r\nHost: x\r\nX-Server-From: 8e9e05c52164694d\r\n\r\n";
    let mut from_node0 = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut from_node0, head, Duration::from_millis(300)).await,
        Ok(None)
    );
    // A member the proxy does not know is never faulted.
    let other = b"GET /version HTTP/1.1\r\nX-Server-From: ffff\r\n\r\n";
    let mut unknown = TcpStream::connect(proxy.addr()).await.unwrap();
    assert_eq!(
        round_trip(&mut unknown, other, Duration::from_secs(2)).await,
        Ok(Some(other.to_vec()))
    );
}
