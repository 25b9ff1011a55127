//! Workload.
