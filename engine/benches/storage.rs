//! Storage benchmarks, in one run:
//!
//! - `append/*`: file-log append throughput with group commit against a raw
//!   `write + fdatasync` loop of the same batch sizes on the same disk. `serial` waits
//!   for each append before the next (one fsync per batch, like the raw loop);
//!   `pipelined` keeps 8 appends in flight, which group commit merges. Two baselines:
//!   `raw_write_fdatasync` appends to a growing file; `raw_prealloc_fdatasync`
//!   overwrites a preallocated one (the faster pattern the log uses).
//! - `recovery/*`: opening a 1,000,000-entry log (scan + checksum of every record),
//!   and opening plus reading every entry back (what a restarting node does).
//! - the RocksDB backend on the same workloads (with `--features rocksdb`).
//!
//! `cargo bench -p d-engine --features rocksdb --bench storage`
//! Data goes to `$DENGINE_BENCH_DIR` (default: the system temp dir).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use d_engine::core::types::{Entry, EntryPayload};
use d_engine::storage::{FileStorageEngine, StorageEngine, recover};

const PAYLOAD_BYTES: usize = 128;
const BATCHES: [u64; 3] = [1, 16, 256];
const PIPELINE_DEPTH: usize = 8;
const RECOVERY_ENTRIES: u64 = 1_000_000;

fn bench_dir(tag: &str) -> PathBuf {
    let base = std::env::var_os("DENGINE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let p = base.join(format!("dengine-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn entry(index: u64) -> Entry {
    Entry {
        term: 1,
        index,
        payload: EntryPayload::Command {
            session: None,
            data: Bytes::from(vec![(index % 251) as u8; PAYLOAD_BYTES]),
        },
    }
}

fn batch(first: u64, n: u64) -> Vec<Entry> {
    (first..first + n).map(entry).collect()
}

/// Bytes the file log writes for one entry (record header + encoded payload, padded),
/// so the raw loop writes the same amount.
fn record_bytes() -> usize {
    (24 + 2 + 1 + 4 + PAYLOAD_BYTES + 7) & !7
}

/// The baseline: append `n` records' worth of bytes with `write`, then `fdatasync`.
fn raw_loop(dir: &Path, n: u64, iters: u64) -> Duration {
    let path = dir.join(format!("raw-{n}-{iters}"));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)
        .unwrap();
    let buf = vec![0x5au8; record_bytes() * n as usize];
    let start = Instant::now();
    for _ in 0..iters {
        f.write_all(&buf).unwrap();
        f.sync_data().unwrap();
    }
    let t = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    t
}

/// The stronger baseline: the same loop overwriting a preallocated (zero-filled,
/// synced) file, which is what the log does; preallocation is not timed.
fn raw_prealloc_loop(dir: &Path, n: u64, iters: u64) -> Duration {
    use std::os::unix::fs::FileExt;
    let path = dir.join(format!("raw-prealloc-{n}-{iters}"));
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let buf = vec![0x5au8; record_bytes() * n as usize];
    let zeros = vec![0u8; 1 << 20];
    let total = (buf.len() as u64) * iters;
    let mut off = 0;
    while off < total {
        let k = zeros.len().min((total - off) as usize);
        f.write_all_at(&zeros[..k], off).unwrap();
        off += k as u64;
    }
    f.sync_all().unwrap();
    let start = Instant::now();
    for i in 0..iters {
        f.write_all_at(&buf, i * buf.len() as u64).unwrap();
        f.sync_data().unwrap();
    }
    let t = start.elapsed();
    drop(f);
    std::fs::remove_file(&path).unwrap();
    t
}

/// Appends `iters` batches of `n`, with at most `depth` in flight.
fn engine_loop(e: &dyn StorageEngine, n: u64, iters: u64, depth: usize) -> Duration {
    let (tx, rx) = mpsc::channel();
    let mut next = e.last_index() + 1;
    let mut in_flight = 0;
    let start = Instant::now();
    for _ in 0..iters {
        if in_flight == depth {
            rx.recv().unwrap();
            in_flight -= 1;
        }
        let tx = tx.clone();
        e.append_with(
            batch(next, n),
            None,
            Box::new(move |r| {
                r.unwrap();
                let _ = tx.send(());
            }),
        );
        next += n;
        in_flight += 1;
    }
    for _ in 0..in_flight {
        rx.recv().unwrap();
    }
    start.elapsed()
}

fn append(c: &mut Criterion) {
    let dir = bench_dir("append");
    let file = FileStorageEngine::new(dir.join("file")).unwrap();
    #[cfg(feature = "rocksdb")]
    let rocks = d_engine::storage::RocksDBStorageEngine::new(dir.join("rocksdb")).unwrap();
    let mut g = c.benchmark_group("append");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for n in BATCHES {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("raw_write_fdatasync", n), &n, |b, &n| {
            b.iter_custom(|iters| raw_loop(&dir, n, iters))
        });
        g.bench_with_input(
            BenchmarkId::new("raw_prealloc_fdatasync", n),
            &n,
            |b, &n| b.iter_custom(|iters| raw_prealloc_loop(&dir, n, iters)),
        );
        g.bench_with_input(BenchmarkId::new("file_serial", n), &n, |b, &n| {
            b.iter_custom(|iters| engine_loop(&file, n, iters, 1))
        });
        g.bench_with_input(BenchmarkId::new("file_pipelined", n), &n, |b, &n| {
            b.iter_custom(|iters| engine_loop(&file, n, iters, PIPELINE_DEPTH))
        });
        #[cfg(feature = "rocksdb")]
        {
            g.bench_with_input(BenchmarkId::new("rocksdb_serial", n), &n, |b, &n| {
                b.iter_custom(|iters| engine_loop(&rocks, n, iters, 1))
            });
            g.bench_with_input(BenchmarkId::new("rocksdb_pipelined", n), &n, |b, &n| {
                b.iter_custom(|iters| engine_loop(&rocks, n, iters, PIPELINE_DEPTH))
            });
        }
    }
    g.finish();
    drop(file);
    #[cfg(feature = "rocksdb")]
    drop(rocks);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fills a log with `RECOVERY_ENTRIES` entries in batches of 1000.
fn fill(e: &dyn StorageEngine) {
    let t = Instant::now();
    engine_loop(e, 1000, RECOVERY_ENTRIES / 1000, PIPELINE_DEPTH);
    eprintln!("filled {RECOVERY_ENTRIES} entries in {:?}", t.elapsed());
}

fn recovery(c: &mut Criterion) {
    let dir = bench_dir("recovery");
    let path = dir.join("file");
    fill(&FileStorageEngine::new(&path).unwrap());
    let mut g = c.benchmark_group("recovery_1m");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    g.bench_function("file_open", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let e = FileStorageEngine::new(&path).unwrap();
                total += t.elapsed();
                assert_eq!(e.last_index(), RECOVERY_ENTRIES);
            }
            total
        })
    });
    g.bench_function("file_open_and_read_all", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let e = FileStorageEngine::new(&path).unwrap();
                let r = recover(&e).unwrap();
                total += t.elapsed();
                assert_eq!(r.entries.len() as u64, RECOVERY_ENTRIES);
            }
            total
        })
    });
    #[cfg(feature = "rocksdb")]
    {
        use d_engine::storage::RocksDBStorageEngine;
        let rpath = dir.join("rocksdb");
        fill(&RocksDBStorageEngine::new(&rpath).unwrap());
        g.bench_function("rocksdb_open", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let e = RocksDBStorageEngine::new(&rpath).unwrap();
                    total += t.elapsed();
                    assert_eq!(e.last_index(), RECOVERY_ENTRIES);
                }
                total
            })
        });
        g.bench_function("rocksdb_open_and_read_all", |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let e = RocksDBStorageEngine::new(&rpath).unwrap();
                    let r = recover(&e).unwrap();
                    total += t.elapsed();
                    assert_eq!(r.entries.len() as u64, RECOVERY_ENTRIES);
                }
                total
            })
        });
    }
    g.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Raw loops and the engine measured in alternating short blocks, so that disk
/// contention from other processes (this machine is shared) hits all of them alike.
/// Prints throughput ratios; criterion's separate runs above can drift apart.
fn paired(_c: &mut Criterion) {
    use std::os::unix::fs::FileExt;
    const ROUNDS: u64 = 30;
    const BLOCK: u64 = 20;
    let dir = bench_dir("paired");
    let engine = FileStorageEngine::new(dir.join("file")).unwrap();
    eprintln!("\npaired comparison ({ROUNDS} rounds of {BLOCK} batches each, alternating):");
    eprintln!(
        "{:>6} {:>14} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10} {:>10}",
        "batch",
        "raw_append_us",
        "raw_prealloc_us",
        "file_serial_us",
        "file_pipe_us",
        "ser/app",
        "ser/pre",
        "pipe/app",
        "pipe/pre"
    );
    for n in BATCHES {
        let buf = vec![0x5au8; record_bytes() * n as usize];
        let mut append_file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.join("raw-append"))
            .unwrap();
        let pre = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(dir.join("raw-prealloc"))
            .unwrap();
        let total = buf.len() as u64 * ROUNDS * BLOCK;
        let zeros = vec![0u8; 1 << 20];
        let mut off = 0;
        while off < total {
            let k = zeros.len().min((total - off) as usize);
            pre.write_all_at(&zeros[..k], off).unwrap();
            off += k as u64;
        }
        pre.sync_all().unwrap();
        let (mut t_app, mut t_pre, mut t_ser, mut t_pipe) = Default::default();
        let mut pre_off = 0u64;
        for _ in 0..ROUNDS {
            let t = Instant::now();
            for _ in 0..BLOCK {
                append_file.write_all(&buf).unwrap();
                append_file.sync_data().unwrap();
            }
            t_app += t.elapsed();
            let t = Instant::now();
            for _ in 0..BLOCK {
                pre.write_all_at(&buf, pre_off).unwrap();
                pre.sync_data().unwrap();
                pre_off += buf.len() as u64;
            }
            t_pre += t.elapsed();
            t_ser += engine_loop(&engine, n, BLOCK, 1);
            t_pipe += engine_loop(&engine, n, BLOCK, PIPELINE_DEPTH);
        }
        let per = |d: Duration| d.as_secs_f64() * 1e6 / (ROUNDS * BLOCK) as f64;
        let ratio = |engine: Duration, raw: Duration| raw.as_secs_f64() / engine.as_secs_f64();
        let t_app: Duration = t_app;
        eprintln!(
            "{n:>6} {:>14.1} {:>14.1} {:>14.1} {:>14.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            per(t_app),
            per(t_pre),
            per(t_ser),
            per(t_pipe),
            ratio(t_ser, t_app),
            ratio(t_ser, t_pre),
            ratio(t_pipe, t_app),
            ratio(t_pipe, t_pre),
        );
    }
    eprintln!("(ratios = engine throughput / raw throughput; >= 0.90 is the target)\n");
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, paired, append, recovery);
criterion_main!(benches);
