//! What to send: the operation mix, the key space and its distribution, the value size.
//! Each worker owns an [`OpGenerator`] seeded from the run seed and its index, so a run's
//! sequence of operations is reproducible.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Serialize;

use crate::rng::Rng;
use crate::target::Consistency;
use crate::zipf::Zipf;

/// Largest key space a CAS workload accepts: it keeps one 8-byte hint per key.
pub const CAS_KEYS_MAX: u64 = 16 * 1024 * 1024;
/// Smallest value a CAS workload accepts: values start with a 16-hex-digit tag.
pub const CAS_VALUE_BYTES_MIN: usize = 16;

/// The operation mix.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkloadKind {
    /// Puts only.
    Write,
    /// Gets only, at the spec's consistency.
    Read,
    /// Gets with probability `read_ratio`, puts otherwise.
    Mixed,
    /// Compare-and-swap: read-modify-write on each key, expecting the last value seen.
    Cas,
    /// Multi-key transactions of the rw-register shape: 1 to [`TXN_KEYS_MAX`] distinct
    /// keys, each read (with probability `read_ratio`) or written, applied atomically
    /// in one request (etcd: one `Txn`). Counted as one write when it writes, else as
    /// one read. Targets without multi-key transactions refuse it.
    RwRegister,
}

/// Keys one rw-register transaction touches, at most.
pub const TXN_KEYS_MAX: usize = 4;

impl WorkloadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Write => "write",
            WorkloadKind::Read => "read",
            WorkloadKind::Mixed => "mixed",
            WorkloadKind::Cas => "cas",
            WorkloadKind::RwRegister => "rw-register",
        }
    }
}

/// How keys are picked from the key space.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Distribution {
    Uniform,
    /// Key `i` (0-based) with probability ∝ `(i+1)^-exponent`.
    Zipfian {
        exponent: f64,
    },
    /// The key space in order, wrapping around; all workers of a run share the position.
    Sequential,
}

impl Distribution {
    pub fn name(&self) -> &'static str {
        match self {
            Distribution::Uniform => "uniform",
            Distribution::Zipfian { .. } => "zipfian",
            Distribution::Sequential => "sequential",
        }
    }
}

/// A whole workload description.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadSpec {
    pub kind: WorkloadKind,
    /// Fraction of gets in a `Mixed` workload, of reads among a transaction's keys in
    /// `RwRegister` (0..=1).
    pub read_ratio: f64,
    pub consistency: Consistency,
    /// Number of distinct keys.
    pub keys: u64,
    pub distribution: Distribution,
    pub value_size: usize,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            kind: WorkloadKind::Write,
            read_ratio: 0.9,
            consistency: Consistency::Linearizable,
            keys: 100_000,
            distribution: Distribution::Uniform,
            value_size: 256,
        }
    }
}

impl WorkloadSpec {
    /// Checks the bounds; the message names the offending setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.keys == 0 {
            return Err("keys must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.read_ratio) {
            return Err(format!("read_ratio {} is not in [0, 1]", self.read_ratio));
        }
        if self.value_size > d_engine_proto::limits::MAX_VALUE_BYTES {
            return Err(format!(
                "value_size {} exceeds {} bytes",
                self.value_size,
                d_engine_proto::limits::MAX_VALUE_BYTES
            ));
        }
        if let Distribution::Zipfian { exponent } = self.distribution
            && !(exponent > 0.0 && exponent.is_finite())
        {
            return Err(format!("zipf exponent {exponent} must be > 0"));
        }
        if self.kind == WorkloadKind::Cas {
            if self.keys > CAS_KEYS_MAX {
                return Err(format!("a cas workload takes at most {CAS_KEYS_MAX} keys"));
            }
            if self.value_size < CAS_VALUE_BYTES_MIN {
                return Err(format!(
                    "a cas workload needs value_size >= {CAS_VALUE_BYTES_MIN}"
                ));
            }
        }
        Ok(())
    }
}

/// One operation to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Put {
        key: Bytes,
        value: Bytes,
    },
    Get {
        key: Bytes,
        consistency: Consistency,
    },
    Cas {
        key: Bytes,
        /// `None` = expect the key to be absent.
        expected: Option<Bytes>,
        new: Bytes,
        /// Key index and the tag of `new`, to update the shared hint afterwards.
        index: u64,
        tag: u64,
    },
    /// Reads and writes of distinct keys, applied atomically.
    Txn {
        reads: Vec<Bytes>,
        writes: Vec<(Bytes, Bytes)>,
    },
}

/// The last value tag each CAS key is believed to hold (0 = absent or unknown), shared by
/// all workers of a run. A wrong hint only costs a failed swap, which then corrects it.
#[derive(Debug)]
pub struct CasHints {
    tags: Box<[AtomicU64]>,
}

impl CasHints {
    pub fn new(keys: u64) -> Arc<CasHints> {
        let tags = (0..keys).map(|_| AtomicU64::new(0)).collect();
        Arc::new(CasHints { tags })
    }

    /// Records what a CAS found or wrote.
    pub fn learn(&self, index: u64, value: Option<&[u8]>) {
        let tag = value.and_then(parse_tag).unwrap_or(0);
        self.tags[index as usize].store(tag, Ordering::Relaxed);
    }

    fn get(&self, index: u64) -> u64 {
        self.tags[index as usize].load(Ordering::Relaxed)
    }
}

/// Reads the 16-hex-digit tag a CAS value starts with.
fn parse_tag(value: &[u8]) -> Option<u64> {
    let head = std::str::from_utf8(value.get(..16)?).ok()?;
    u64::from_str_radix(head, 16).ok()
}

/// Produces the operations of one worker.
pub struct OpGenerator {
    spec: WorkloadSpec,
    rng: Rng,
    zipf: Option<Zipf>,
    next_seq: u64,
    /// The run's shared position for `Sequential`: each key once per pass over all
    /// workers together. Without it, each worker walks from its own offset.
    shared_seq: Option<Arc<AtomicU64>>,
    worker: u64,
    cas_counter: u64,
    cas_hints: Option<Arc<CasHints>>,
    /// Random bytes the values are sliced from (twice the value size, so the offset can
    /// vary without allocating per operation).
    value_pool: Bytes,
}

impl OpGenerator {
    /// `workers` is the number of workers of the run (to spread sequential starts).
    pub fn new(
        spec: &WorkloadSpec,
        seed: u64,
        worker: u64,
        workers: u64,
        cas_hints: Option<Arc<CasHints>>,
    ) -> OpGenerator {
        let mut rng = Rng::new(seed ^ worker.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut pool = vec![0u8; spec.value_size * 2 + 1];
        rng.fill(&mut pool);
        let zipf = match spec.distribution {
            Distribution::Zipfian { exponent } => Some(Zipf::new(spec.keys, exponent)),
            _ => None,
        };
        OpGenerator {
            next_seq: spec.keys / workers.max(1) * worker,
            spec: spec.clone(),
            rng,
            zipf,
            worker,
            cas_counter: 0,
            cas_hints,
            shared_seq: None,
            value_pool: Bytes::from(pool),
        }
    }

    /// Makes `Sequential` draw from a position shared with other generators.
    pub fn with_shared_sequence(mut self, seq: Arc<AtomicU64>) -> OpGenerator {
        self.shared_seq = Some(seq);
        self
    }

    /// The index of the next key, in `0..keys`.
    pub fn next_index(&mut self) -> u64 {
        match &self.zipf {
            Some(z) => z.sample(&mut self.rng) - 1,
            None if self.spec.distribution == Distribution::Sequential => {
                if let Some(seq) = &self.shared_seq {
                    return seq.fetch_add(1, Ordering::Relaxed) % self.spec.keys;
                }
                let i = self.next_seq % self.spec.keys;
                self.next_seq = self.next_seq.wrapping_add(1);
                i
            }
            None => self.rng.below(self.spec.keys),
        }
    }

    fn value(&mut self) -> Bytes {
        let off = self.rng.below(self.spec.value_size as u64 + 1) as usize;
        self.value_pool.slice(off..off + self.spec.value_size)
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        let index = self.next_index();
        match self.spec.kind {
            WorkloadKind::Write => self.put(index),
            WorkloadKind::Read => self.get(index),
            WorkloadKind::Mixed => {
                if self.rng.next_f64() < self.spec.read_ratio {
                    self.get(index)
                } else {
                    self.put(index)
                }
            }
            WorkloadKind::Cas => self.cas(index),
            WorkloadKind::RwRegister => self.txn(index),
        }
    }

    /// A transaction on `first` and up to `TXN_KEYS_MAX - 1` more distinct keys.
    fn txn(&mut self, first: u64) -> Op {
        let n = 1 + self
            .rng
            .below(TXN_KEYS_MAX.min(self.spec.keys as usize) as u64) as usize;
        let mut indexes = vec![first];
        while indexes.len() < n {
            let i = self.next_index();
            if !indexes.contains(&i) {
                indexes.push(i);
            }
        }
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        for i in indexes {
            if self.rng.next_f64() < self.spec.read_ratio {
                reads.push(key_for(b't', i));
            } else {
                writes.push((key_for(b't', i), self.value()));
            }
        }
        Op::Txn { reads, writes }
    }

    fn put(&mut self, index: u64) -> Op {
        Op::Put {
            key: key_for(b'k', index),
            value: self.value(),
        }
    }

    fn get(&mut self, index: u64) -> Op {
        Op::Get {
            key: key_for(b'k', index),
            consistency: self.spec.consistency,
        }
    }

    fn cas(&mut self, index: u64) -> Op {
        self.cas_counter += 1;
        // Unique across workers: 24 bits of worker, 40 bits of counter; never 0.
        let tag = (self.worker << 40 | (self.cas_counter & ((1 << 40) - 1))).max(1);
        let expected_tag = self.cas_hints.as_ref().map_or(0, |h| h.get(index));
        let expected = (expected_tag != 0).then(|| self.cas_value(expected_tag));
        Op::Cas {
            key: key_for(b'c', index),
            expected,
            new: self.cas_value(tag),
            index,
            tag,
        }
    }

    /// The value a CAS with `tag` writes: the tag in hex, padded to the value size with a
    /// filler that depends only on the tag (so the value can be rebuilt from the hint).
    fn cas_value(&self, tag: u64) -> Bytes {
        let mut v = format!("{tag:016x}").into_bytes();
        v.resize(self.spec.value_size.max(CAS_VALUE_BYTES_MIN), b'.');
        Bytes::from(v)
    }
}

/// `k/000000000042`: fixed width so keys sort by index; the prefix separates the CAS
/// keys (`c/`) and the transactions' keys (`t/`) from the plain ones.
pub fn key_for(prefix: u8, index: u64) -> Bytes {
    Bytes::from(format!("{}/{index:012}", prefix as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_walks_and_wraps() {
        let spec = WorkloadSpec {
            keys: 5,
            distribution: Distribution::Sequential,
            ..WorkloadSpec::default()
        };
        let mut g = OpGenerator::new(&spec, 1, 0, 1, None);
        let idx: Vec<u64> = (0..7).map(|_| g.next_index()).collect();
        assert_eq!(idx, vec![0, 1, 2, 3, 4, 0, 1]);
    }

    #[test]
    fn mixed_ratio_is_respected_and_values_have_the_size() {
        let spec = WorkloadSpec {
            kind: WorkloadKind::Mixed,
            read_ratio: 0.8,
            value_size: 100,
            ..WorkloadSpec::default()
        };
        let mut g = OpGenerator::new(&spec, 9, 3, 8, None);
        let mut gets = 0;
        for _ in 0..10_000 {
            match g.next_op() {
                Op::Get { .. } => gets += 1,
                Op::Put { value, .. } => assert_eq!(value.len(), 100),
                Op::Cas { .. } | Op::Txn { .. } => panic!("only gets and puts in a mixed workload"),
            }
        }
        assert!((7_700..8_300).contains(&gets), "{gets}");
    }

    #[test]
    fn rw_register_transactions_touch_distinct_keys() {
        let spec = WorkloadSpec {
            kind: WorkloadKind::RwRegister,
            read_ratio: 0.5,
            keys: 8,
            value_size: 16,
            ..WorkloadSpec::default()
        };
        let mut g = OpGenerator::new(&spec, 5, 0, 1, None);
        let (mut reads, mut writes, mut multi) = (0, 0, 0);
        for _ in 0..2_000 {
            let Op::Txn {
                reads: r,
                writes: w,
            } = g.next_op()
            else {
                panic!("only transactions");
            };
            let mut keys: Vec<&Bytes> = r.iter().chain(w.iter().map(|(k, _)| k)).collect();
            let n = keys.len();
            assert!((1..=TXN_KEYS_MAX).contains(&n));
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), n, "distinct keys");
            assert!(keys.iter().all(|k| k.starts_with(b"t/")));
            multi += usize::from(n > 1);
            reads += r.len();
            writes += w.len();
        }
        assert!(
            multi > 1_000,
            "most transactions touch several keys: {multi}"
        );
        assert!(
            reads > writes / 2 && writes > reads / 2,
            "{reads} reads, {writes} writes"
        );
    }

    #[test]
    fn cas_values_round_trip_their_tag() {
        let spec = WorkloadSpec {
            kind: WorkloadKind::Cas,
            keys: 4,
            value_size: 32,
            ..WorkloadSpec::default()
        };
        let hints = CasHints::new(4);
        let mut g = OpGenerator::new(&spec, 1, 2, 4, Some(hints.clone()));
        let Op::Cas {
            expected,
            new,
            index,
            tag,
            ..
        } = g.next_op()
        else {
            panic!("expected a cas");
        };
        assert_eq!(expected, None);
        assert_eq!(new.len(), 32);
        hints.learn(index, Some(&new));
        let Op::Cas { expected, .. } = (loop {
            let op = g.next_op();
            if matches!(&op, Op::Cas { index: i, .. } if *i == index) {
                break op;
            }
        }) else {
            unreachable!()
        };
        assert_eq!(parse_tag(&expected.unwrap()), Some(tag));
    }
}
