//! Sending a snapshot to a follower: the state machine's image read chunk by chunk
//! (a window of `SNAPSHOT_WINDOW_CHUNKS` in memory, whatever its size), each chunk with
//! its CRC32C, the last with the image's size and CRC; and a cut transfer resumed from
//! the offset the follower has durably staged (`next_offset` of an INCOMPLETE answer).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use d_engine_proto::v1 as pb;
use d_engine_proto::v1::raft_peer_client::RaftPeerClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::{info, warn};

use super::convert;
use super::peer_link::LinkContext;
use crate::core::{NodeId, SnapshotMeta};
use crate::storage::Snapshot;

/// Attempts of one send; each resumes where the follower's staged bytes end. When
/// they are spent the core asks again after an election timeout.
pub const SNAPSHOT_SEND_ATTEMPTS: u32 = 5;
/// Chunks read ahead of the network.
pub const SNAPSHOT_WINDOW_CHUNKS: usize = 4;

/// The id of a snapshot image on the wire: the same for the same snapshot on every
/// attempt (and after a restart), so the follower can resume it.
pub(crate) fn snapshot_id(meta: &SnapshotMeta) -> u64 {
    meta.last_index ^ (meta.last_term << 48)
}

/// Streams the state machine's current snapshot to `peer`.
///
/// `core_membership` is the membership the core knows at its snapshot point. A state
/// machine learns memberships only from config entries it applies, so one that never
/// applied any (the cluster still has the membership its configuration started with)
/// holds none: such a snapshot is sent with the core's, which every follower needs
/// (it refuses a snapshot without voters).
pub(crate) async fn send_snapshot(
    peer: NodeId,
    mut client: RaftPeerClient<Channel>,
    header: pb::PeerHeader,
    core_membership: crate::core::Membership,
    ctx: LinkContext,
) {
    let node = ctx.me.to_string();
    let started = Instant::now();
    let (mut start, mut sending) = (0u64, None);
    for attempt in 1..=SNAPSHOT_SEND_ATTEMPTS {
        let sm = ctx.sm.clone();
        let snap = match tokio::task::spawn_blocking(move || sm.current_snapshot()).await {
            Ok(Ok(Some(s))) => s,
            Ok(Ok(None)) => return warn!(peer, "no snapshot to send"),
            Ok(Err(e)) => return warn!(peer, error = %e, "cannot read the snapshot to send"),
            Err(e) => return warn!(peer, error = %e, "snapshot reader panicked"),
        };
        let mut meta = snap.meta.clone();
        if meta.membership.voters.is_empty() {
            meta.membership = core_membership.clone();
        }
        if sending.replace(snapshot_id(&meta)) != Some(snapshot_id(&meta)) {
            start = 0; // Another image than the one being resumed.
            info!(
                peer,
                index = meta.last_index,
                bytes = snap.size_bytes,
                "sending snapshot"
            );
            metrics::counter!(crate::metrics::SNAPSHOTS_SENT, "node" => node.clone()).increment(1);
        }
        let sent = Arc::new(AtomicU64::new(start));
        let (tx, rx) = mpsc::channel(SNAPSHOT_WINDOW_CHUNKS);
        let (chunk_bytes, counter) = (ctx.snapshot_chunk_bytes, sent.clone());
        tokio::task::spawn_blocking(move || {
            produce(snap, &meta, header, chunk_bytes, start, &counter, tx)
        });
        let reply = client.install_snapshot(ReceiverStream::new(rx)).await;
        let bytes = sent.load(Ordering::Relaxed).saturating_sub(start);
        metrics::counter!(crate::metrics::SNAPSHOT_BYTES_SENT, "node" => node.clone())
            .increment(bytes);
        use pb::install_snapshot_response::Status as S;
        match reply.map(|r| r.into_inner()) {
            Ok(r) if r.status == S::Installed as i32 => {
                metrics::histogram!(crate::metrics::SNAPSHOT_TRANSFER_SECONDS, "node" => node)
                    .record(started.elapsed().as_secs_f64());
                return info!(peer, attempt, "snapshot installed by the follower");
            }
            Ok(r) if r.status == S::Incomplete as i32 => {
                metrics::counter!(crate::metrics::SNAPSHOT_RESUMES, "node" => node.clone())
                    .increment(1);
                info!(peer, from = r.next_offset, reason = %r.reason, "snapshot transfer resumes");
                start = r.next_offset;
            }
            Ok(r) => return warn!(peer, reason = %r.reason, "snapshot refused"),
            Err(e) => {
                // Where the follower's staged bytes end is asked by sending from what
                // was sent: it answers INCOMPLETE with its own offset.
                warn!(peer, error = %e, "snapshot transfer cut; resuming");
                start = sent.load(Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
            }
        }
    }
    warn!(
        peer,
        "snapshot not delivered after {SNAPSHOT_SEND_ATTEMPTS} attempts; asked again later"
    );
}

/// Reads `snap` and sends its chunks from byte `start` on into `tx` (blocking; one
/// window in memory). `sent` follows the offset reached. Stops when the receiver
/// side of `tx` goes away.
fn produce(
    snap: Snapshot,
    meta: &SnapshotMeta,
    header: pb::PeerHeader,
    chunk_bytes: usize,
    start: u64,
    sent: &AtomicU64,
    tx: mpsc::Sender<pb::SnapshotChunk>,
) {
    let pieces = snap.chunks;
    let r = split_chunks(pieces, header, meta, chunk_bytes, start, &mut |c| {
        let end = c.offset + c.data.len() as u64;
        let ok = tx.blocking_send(c).is_ok();
        if ok {
            sent.store(end, Ordering::Relaxed);
        }
        ok
    });
    if let Err(e) = r {
        warn!(error = %e, "reading the snapshot to send failed");
    }
}

/// Splits an image (given as pieces of any size) into chunks of at most
/// `chunk_bytes`, each with its CRC32C, and hands those from byte `start` on to
/// `emit` (which returns false to stop). The first chunk handed out carries the meta;
/// the last, the total size and the CRC32C of the whole image (bytes before `start`
/// are read to compute it). An image shorter than `start` ends with an empty last
/// chunk at its end.
pub(crate) fn split_chunks(
    pieces: impl Iterator<Item = crate::storage::Result<Bytes>>,
    header: pb::PeerHeader,
    meta: &SnapshotMeta,
    chunk_bytes: usize,
    start: u64,
    emit: &mut dyn FnMut(pb::SnapshotChunk) -> bool,
) -> crate::storage::Result<()> {
    let chunk_bytes = chunk_bytes.clamp(1, d_engine_proto::limits::MAX_SNAPSHOT_CHUNK_BYTES);
    let id = snapshot_id(meta);
    let (mut offset, mut crc, mut first) = (0u64, 0u32, true);
    let mut chunk = |offset: u64, data: Bytes, last: Option<(u64, u32)>, first: &mut bool| {
        let c = pb::SnapshotChunk {
            header: Some(header),
            meta: std::mem::take(first).then(|| convert::snapshot_meta_to_pb(meta)),
            snapshot_id: id,
            offset,
            chunk_crc32c: crc32c::crc32c(&data),
            last: last.is_some(),
            total_bytes: last.map_or(0, |l| l.0),
            total_crc32c: last.map_or(0, |l| l.1),
            data,
        };
        emit(c)
    };
    // One piece is held back, so the last can be flagged.
    let mut held: Option<(u64, Bytes)> = None;
    for piece in pieces {
        let piece = piece?;
        for i in 0..piece.len().div_ceil(chunk_bytes) {
            let data = piece.slice(i * chunk_bytes..((i + 1) * chunk_bytes).min(piece.len()));
            crc = crc32c::crc32c_append(crc, &data);
            let (at, end) = (offset, offset + data.len() as u64);
            offset = end;
            if end <= start {
                continue;
            }
            let data = data.slice((start.saturating_sub(at)) as usize..);
            let at = at.max(start);
            if let Some((o, d)) = held.replace((at, data))
                && !chunk(o, d, None, &mut first)
            {
                return Ok(());
            }
        }
    }
    let (o, d) = held.unwrap_or((offset, Bytes::new()));
    chunk(o, d, Some((offset, crc)), &mut first);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Membership;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            last_index: 10,
            last_term: 2,
            membership: Membership::with_voters([1, 2, 3]),
        }
    }

    fn split(image: &[u8], pieces: usize, chunk: usize, start: u64) -> Vec<pb::SnapshotChunk> {
        let image = Bytes::copy_from_slice(image);
        let n = image.len().div_ceil(pieces.max(1)).max(1);
        let parts: Vec<_> = (0..image.len().div_ceil(n))
            .map(|i| Ok(image.slice(i * n..((i + 1) * n).min(image.len()))))
            .collect();
        let mut out = Vec::new();
        split_chunks(
            parts.into_iter(),
            pb::PeerHeader::default(),
            &meta(),
            chunk,
            start,
            &mut |c| {
                out.push(c);
                true
            },
        )
        .unwrap();
        out
    }

    #[test]
    fn chunks_from_any_offset_carry_the_meta_first_and_the_totals_last() {
        let image: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        // Pieces are split, never joined: three pieces of 3,334 bytes give six chunks.
        let all = split(&image, 3, 3000, 0);
        assert_eq!(all.len(), 6);
        assert!(all.iter().all(|c| c.data.len() <= 3000));
        assert!(all[0].meta.is_some() && all[1..].iter().all(|c| c.meta.is_none()));
        let last = all.last().unwrap();
        assert!(last.last);
        assert_eq!(
            (last.total_bytes, last.total_crc32c),
            (10_000, crc32c::crc32c(&image))
        );
        let joined: Vec<u8> = all.iter().flat_map(|c| c.data.to_vec()).collect();
        assert_eq!(joined, image);
        // Resumed in the middle of a chunk: the rest, from exactly there.
        let rest = split(&image, 3, 3000, 4500);
        assert_eq!(rest[0].offset, 4500);
        assert!(rest[0].meta.is_some());
        let joined: Vec<u8> = rest.iter().flat_map(|c| c.data.to_vec()).collect();
        assert_eq!(joined, image[4500..]);
        assert_eq!(rest.last().unwrap().total_crc32c, crc32c::crc32c(&image));
        // Nothing left to send: one empty last chunk at the end.
        let none = split(&image, 1, 3000, 10_000);
        assert_eq!(none.len(), 1);
        assert!(none[0].last && none[0].data.is_empty() && none[0].offset == 10_000);
    }
}
