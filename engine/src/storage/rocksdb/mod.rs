//! RocksDB backends (feature `rocksdb`).
