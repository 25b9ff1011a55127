//! One process per data directory: every store refuses a directory another open store
//! holds, names the holder's pid, and touches none of the holder's files. flock locks
//! belong to open files, so a second open in this process is refused exactly as a
//! second process would be (the process-level case is in the CLI's
//! `cluster_processes.rs`).

mod storage;

use std::path::Path;

use d_engine::storage::{FileStateMachine, FileStorageEngine, StorageEngine, StorageError};
use storage::*;

fn assert_locked<T>(result: Result<T, StorageError>, dir: &Path) {
    match result {
        Err(StorageError::Locked { dir: d, pid }) => {
            assert_eq!(d, dir);
            assert_eq!(pid, Some(std::process::id()));
            let msg = StorageError::Locked { dir: d, pid }.to_string();
            assert!(
                msg.contains(&dir.display().to_string())
                    && msg.contains(&format!("pid {}", std::process::id())),
                "{msg}"
            );
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open of {} succeeded", dir.display()),
    }
}

#[test]
fn a_second_file_log_open_is_refused_with_the_pid_and_allowed_after_drop() {
    let dir = TestDir::new("lock-log");
    let first = FileStorageEngine::open(dir.path(), file_options()).unwrap();
    first.append(ents(1, 3, 1), None).wait().unwrap();
    // What a second opener must not clean up: the holder's preallocation in progress.
    let in_progress = dir.path().join("00000000000000ff.seg.tmp");
    std::fs::write(&in_progress, b"being zeroed").unwrap();
    assert_locked(
        FileStorageEngine::open(dir.path(), file_options()),
        dir.path(),
    );
    assert!(in_progress.exists(), "the refused open removed a temp file");
    assert_eq!(first.last_index(), 3);
    drop(first);
    let again = FileStorageEngine::open(dir.path(), file_options()).expect("free after drop");
    assert_eq!(again.entries(1, 4).unwrap(), ents(1, 3, 1));
}

#[test]
fn a_second_state_machine_open_is_refused_and_leaves_the_holders_temp_files() {
    let dir = TestDir::new("lock-sm");
    let first = FileStateMachine::open(dir.path(), 1).unwrap();
    // A snapshot being written by the holder looks exactly like crash debris.
    let writing = dir
        .path()
        .join("snap-00000000000000000009-00000000000000000001.snap.tmp");
    std::fs::write(&writing, b"half a snapshot").unwrap();
    assert_locked(FileStateMachine::open(dir.path(), 2), dir.path());
    assert!(
        writing.exists(),
        "the refused open removed the holder's temp file"
    );
    drop(first);
    FileStateMachine::open(dir.path(), 1).expect("free after drop");
    assert!(
        !writing.exists(),
        "a real open still cleans up crash debris"
    );
}

#[cfg(feature = "rocksdb")]
#[test]
fn a_second_rocksdb_open_is_refused_with_the_pid() {
    use d_engine::storage::{RocksDBStateMachine, RocksDBStorageEngine};
    let log = TestDir::new("lock-rocks-log");
    let first = RocksDBStorageEngine::new(log.path()).unwrap();
    assert_locked(RocksDBStorageEngine::new(log.path()), log.path());
    drop(first);
    RocksDBStorageEngine::new(log.path()).expect("free after drop");

    let sm = TestDir::new("lock-rocks-sm");
    let first = RocksDBStateMachine::new(sm.path()).unwrap();
    assert_locked(RocksDBStateMachine::new(sm.path()), sm.path());
    drop(first);
    RocksDBStateMachine::new(sm.path()).expect("free after drop");
}
