//! Client histories and the linearizability checker.
//!
//! * [`format`](mod@format): the JSON-lines history (`index, time_ns, process, type, f,
//!   key, value, error`) and [`HistoryWriter`], which bench and chaos use;
//!   [`nemesis`]: fault events (`nemesis.jsonl`).
//! * [`import`]: Jepsen EDN histories, Jepsen log lines, Porcupine's
//!   key-value test data.
//! * [`history::pair`]: Jepsen semantics. `fail` did not happen and is
//!   dropped; `info` or no completion may have happened at any time after
//!   the invocation, and retires its process.
//! * [`model`]: register, CAS register, key-value, and the [`Model`] trait.
//! * [`checker`]: Wing–Gong/Lowe search with a cache of (linearized set,
//!   state), per partition (P-compositionality) on a bounded pool; a
//!   deadline, cancel token or memory bound yields Unknown, never Illegal.
//! * [`report`] and [`html`]: the verdict line, JSON report and timeline.
//! * [`set`]: sets of unique elements: none acknowledged lost, none unexpected.
//! * [`txn`]: the transactional checker (Elle's list-append and rw-register):
//!   version orders from reads, a dependency graph, cycles classified as
//!   G0 … G2-item, and a verdict per consistency model.
//! * [`watch`]: the watch validator (`watch.jsonl`): ordered, unique, atomic,
//!   reliable, resumable, bookmarkable and prev_kv, each violation explained.
//!
//! `dengine check` is the command line front end. Speed against Porcupine's
//! figures: `cargo bench -p d-engine-histories --bench checker`.
//!
//! ```text
//! history.jsonl ──read──▶ History ──pair──▶ [Operation] ──check(model)──▶ CheckResult
//!  (or Jepsen EDN / log,                                                  ├─ verdict line
//!   via import::read)                                                     ├─ JSON report
//!                                                                         └─ HTML timeline
//! ```
//!
//! ```
//! use d_engine_histories::{CheckOptions, KvModel, Verdict, check, pair, read_jsonl};
//! let text = br#"{"process":1,"type":"invoke","f":"put","key":"k","value":"a"}
//! {"process":1,"type":"ok","f":"put","key":"k","value":"a"}
//! {"process":2,"type":"invoke","f":"get","key":"k"}
//! {"process":2,"type":"ok","f":"get","key":"k","value":"b"}"#;
//! let ops = pair(&read_jsonl(text).unwrap()).unwrap();
//! let result = check(&KvModel, &ops, &CheckOptions::default()).unwrap();
//! assert_eq!(result.verdict, Verdict::Illegal);
//! ```

pub mod checker;
pub mod edn;
pub mod error;
pub mod format;
pub mod history;
pub mod html;
pub mod import;
pub mod model;
pub mod nemesis;
pub mod report;
pub mod set;
pub mod synth;
pub mod txn;
pub mod value;
pub mod watch;

pub use checker::{
    CancelToken, CheckOptions, CheckResult, PartitionResult, StopReason, Verdict, check,
};
pub use error::HistoryError;
pub use format::{Event, EventType, History, HistoryWriter, read_jsonl};
pub use history::{Operation, Status, pair};
pub use import::Format;
pub use model::{KvModel, Model, ModelKind, RegisterModel};
pub use nemesis::{NemesisEvent, read_nemesis_jsonl, write_nemesis_event};
pub use report::{Report, verdict_line};
pub use value::Value;
