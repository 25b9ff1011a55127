//! From paired operations (`:f :txn`, whatever the input format) to a
//! [`TxnHistory`]. A transaction's value is a list of micro-ops, each
//! `[f key value]` with `f` one of `append`, `r`, `w`:
//!
//! ```text
//! EDN:  {:type :ok, :f :txn, :value [[:append 1 2] [:r 1 [1 2]]], :process 0}
//! JSON: {"type":"ok","f":"txn","value":[["append",1,2],["r",1,[1,2]]],"process":0}
//! ```
//!
//! A committed transaction's micro-ops come from its completion (which
//! holds what the reads returned); a failed or unknown one's from its
//! invocation, and its reads are unknown.

use std::collections::HashMap;

use crate::checker::hash::FastBuildHasher;
use crate::error::HistoryError;
use crate::history::{Operation, Status};
use crate::txn::history::{Mop, Seen, TxnHistory, TxnMeta, Workload};
use crate::value::Value;

/// Reads the transactions of `ops`. `workload` is guessed when `None`:
/// list-append if any micro-op is an append, else rw-register.
pub fn decode(
    ops: &[Operation],
    workload: Option<Workload>,
) -> Result<(Workload, TxnHistory), HistoryError> {
    let workload = match workload {
        Some(w) => w,
        None => guess(ops),
    };
    let mut out = TxnHistory::default();
    let mut keys: HashMap<String, u32, FastBuildHasher> = HashMap::default();
    let mut mops = Vec::new();
    let mut list = Vec::new();
    for op in ops {
        if op.f != "txn" {
            return Err(HistoryError::new(
                op.call_line,
                format!("operation {} is not a transaction (expected :f :txn)", op.f),
            ));
        }
        let (value, line) = match (op.status, &op.output) {
            (Status::Ok, out) if !out.is_nil() => (out, op.ret_line.unwrap_or(op.call_line)),
            _ => (&op.input, op.call_line),
        };
        mops.clear();
        // An ok completion without a value says nothing of what its reads
        // returned: they are unknown, never "nil".
        let reads_known = op.status == Status::Ok && !op.output.is_nil();
        let ctx = Ctx {
            workload,
            reads_known,
            line,
        };
        for item in as_list(value).ok_or_else(|| {
            HistoryError::new(
                line,
                format!("a transaction's value must be a list of micro-ops, found {value}"),
            )
        })? {
            mops.push(micro_op(item, &ctx, &mut out, &mut keys, &mut list)?);
        }
        let meta = TxnMeta {
            process: op.process,
            status: op.status,
            call: op.call as u64,
            ret: op.ret.map(|r| r as u64),
            call_line: op.call_line,
            ret_line: op.ret_line,
        };
        out.push_txn(meta, &mops);
    }
    Ok((workload, out))
}

fn guess(ops: &[Operation]) -> Workload {
    let appends = ops.iter().any(|op| {
        as_list(&op.input).is_some_and(|mops| {
            mops.iter()
                .any(|m| matches!(as_list(m), Some([Value::Str(f), ..]) if f == "append"))
        })
    });
    if appends {
        Workload::ListAppend
    } else {
        Workload::RwRegister
    }
}

fn as_list(v: &Value) -> Option<&[Value]> {
    match v {
        Value::List(items) => Some(items),
        Value::Nil => Some(&[]),
        _ => None,
    }
}

struct Ctx {
    workload: Workload,
    reads_known: bool,
    line: usize,
}

fn micro_op(
    item: &Value,
    ctx: &Ctx,
    out: &mut TxnHistory,
    keys: &mut HashMap<String, u32, FastBuildHasher>,
    list: &mut Vec<i64>,
) -> Result<Mop, HistoryError> {
    let bad = |what: String| HistoryError::new(ctx.line, what);
    let Some([Value::Str(f), key, value]) = as_list(item) else {
        return Err(bad(format!(
            "a micro-op is [f key value] with f one of append, r, w; found {item}"
        )));
    };
    let name = match key {
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.clone(),
        other => return Err(bad(format!("bad key {other} in micro-op {item}"))),
    };
    let next = keys.len() as u32;
    let key = *keys.entry(name).or_insert_with_key(|name| {
        out.keys.push(name.clone());
        next
    });
    let int = |v: &Value| {
        v.as_int()
            .ok_or_else(|| bad(format!("values must be integers; found {v} in {item}")))
    };
    Ok(match (f.as_str(), ctx.workload) {
        ("append", Workload::ListAppend) => Mop::Append {
            key,
            value: int(value)?,
        },
        ("w", Workload::RwRegister) => Mop::Write {
            key,
            value: int(value)?,
        },
        ("r", _) if !ctx.reads_known => Mop::Read {
            key,
            seen: Seen::Unknown,
        },
        ("r", _) if value.is_nil() => Mop::Read {
            key,
            seen: Seen::Nil,
        },
        ("r", Workload::RwRegister) => Mop::Read {
            key,
            seen: Seen::Value(int(value)?),
        },
        ("r", Workload::ListAppend) => {
            let Value::List(items) = value else {
                return Err(bad(format!(
                    "a list-append read returns a list; found {item}"
                )));
            };
            list.clear();
            for v in items {
                list.push(int(v)?);
            }
            Mop::Read {
                key,
                seen: out.push_list(list),
            }
        }
        (f, w) => {
            return Err(bad(format!(
                "micro-op {f} in {item} does not belong to a {} history",
                w.as_str()
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{format::read_jsonl, pair};

    #[test]
    fn an_ok_without_a_value_has_unknown_reads() {
        let text =
            br#"{"process":0,"type":"invoke","f":"txn","value":[["r","x",null],["append","x",1]]}
{"process":0,"type":"ok","f":"txn"}
{"process":1,"type":"invoke","f":"txn","value":[["append",3,1]]}
{"process":1,"type":"fail","f":"txn","value":[["append",3,1]]}"#;
        let ops = pair(&read_jsonl(text).unwrap()).unwrap();
        let (w, h) = decode(&ops, None).unwrap();
        assert_eq!(w, Workload::ListAppend);
        assert_eq!(
            h.mops(0)[0],
            Mop::Read {
                key: 0,
                seen: Seen::Unknown
            }
        );
        assert_eq!(h.keys, vec!["x".to_string(), "3".to_string()]);
        assert_eq!(h.txns[1].status, Status::Fail);
    }

    #[test]
    fn bad_micro_ops_name_the_line() {
        let text = br#"{"process":0,"type":"invoke","f":"txn","value":[["append","x","a"]]}"#;
        let ops = pair(&read_jsonl(text).unwrap()).unwrap();
        let err = decode(&ops, None).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("integers"), "{}", err.message);
        let text = br#"{"process":0,"type":"invoke","f":"read"}"#;
        let ops = pair(&read_jsonl(text).unwrap()).unwrap();
        assert!(decode(&ops, None).unwrap_err().message.contains(":f :txn"));
        let text = br#"{"process":0,"type":"invoke","f":"txn","value":[["w","x",1]]}"#;
        let ops = pair(&read_jsonl(text).unwrap()).unwrap();
        let err = decode(&ops, Some(Workload::ListAppend)).unwrap_err();
        assert!(err.message.contains("list-append"), "{}", err.message);
    }
}
