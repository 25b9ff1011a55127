//! The transactional history the checker works on: transactions with their
//! micro-ops, held in flat arrays (one arena for the lists reads return) so a
//! million transactions cost a few tens of bytes each, not a tree of values.

use crate::history::Status;

/// Which data type the transactions operate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// `[:append k v]` and `[:r k [v ...]]`: each key holds a list.
    ListAppend,
    /// `[:w k v]` and `[:r k v]`: each key holds one value.
    RwRegister,
}

impl Workload {
    pub fn parse(name: &str) -> Option<Workload> {
        match name {
            "list-append" => Some(Workload::ListAppend),
            "rw-register" => Some(Workload::RwRegister),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Workload::ListAppend => "list-append",
            Workload::RwRegister => "rw-register",
        }
    }
}

/// What a read returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not known: the read of an invocation, or of a txn whose outcome is
    /// unknown.
    Unknown,
    /// `nil`: the key's initial state (empty list, or no value).
    Nil,
    /// A register value.
    Value(i64),
    /// A list: `len` values at `start` in [`TxnHistory::values`].
    List { start: u32, len: u32 },
}

/// One micro-op. Keys are dense numbers; [`TxnHistory::keys`] names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mop {
    Append { key: u32, value: i64 },
    Write { key: u32, value: i64 },
    Read { key: u32, seen: Seen },
}

impl Mop {
    pub fn key(&self) -> u32 {
        match *self {
            Mop::Append { key, .. } | Mop::Write { key, .. } | Mop::Read { key, .. } => key,
        }
    }

    /// The value an append or write puts, `None` for a read.
    pub fn written(&self) -> Option<i64> {
        match *self {
            Mop::Append { value, .. } | Mop::Write { value, .. } => Some(value),
            Mop::Read { .. } => None,
        }
    }
}

/// One transaction: an invocation and its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub process: u64,
    pub status: Status,
    /// Position of the invocation among the history's events (real time).
    pub call: u64,
    /// Position of the completion; `None` if there was none.
    pub ret: Option<u64>,
    pub call_line: usize,
    pub ret_line: Option<usize>,
    mops_start: u32,
    mops_len: u32,
}

/// Transactions, their micro-ops, and the values their reads returned.
#[derive(Debug, Clone, Default)]
pub struct TxnHistory {
    pub txns: Vec<Txn>,
    pub mops: Vec<Mop>,
    /// Every list a read returned, back to back.
    pub values: Vec<i64>,
    /// Key names, by key number.
    pub keys: Vec<String>,
}

impl TxnHistory {
    /// The micro-ops of transaction `t`.
    pub fn mops(&self, t: usize) -> &[Mop] {
        let txn = &self.txns[t];
        let start = txn.mops_start as usize;
        &self.mops[start..start + txn.mops_len as usize]
    }

    /// The list a read returned (empty for anything but a list).
    pub fn list(&self, seen: Seen) -> &[i64] {
        match seen {
            Seen::List { start, len } => &self.values[start as usize..(start + len) as usize],
            _ => &[],
        }
    }

    /// Stores a list a read returned.
    pub fn push_list(&mut self, list: &[i64]) -> Seen {
        let start = u32::try_from(self.values.len()).expect("fewer than 2^32 read values");
        self.values.extend_from_slice(list);
        Seen::List {
            start,
            len: list.len() as u32,
        }
    }

    /// The number of key `name`, added if new. Linear in the number of keys:
    /// importers keep their own index (see [`crate::txn::decode`]).
    pub fn key(&mut self, name: &str) -> u32 {
        match self.keys.iter().position(|k| k == name) {
            Some(i) => i as u32,
            None => {
                self.keys.push(name.to_owned());
                (self.keys.len() - 1) as u32
            }
        }
    }

    /// Adds a transaction whose micro-ops are `mops`.
    pub fn push_txn(&mut self, txn: TxnMeta, mops: &[Mop]) -> usize {
        let start = u32::try_from(self.mops.len()).expect("fewer than 2^32 micro-ops");
        self.mops.extend_from_slice(mops);
        self.txns.push(Txn {
            process: txn.process,
            status: txn.status,
            call: txn.call,
            ret: txn.ret,
            call_line: txn.call_line,
            ret_line: txn.ret_line,
            mops_start: start,
            mops_len: mops.len() as u32,
        });
        self.txns.len() - 1
    }

    /// A short name of transaction `t` for sentences: `T4 (process 2, line 9)`.
    pub fn name(&self, t: usize) -> String {
        let txn = &self.txns[t];
        format!("T{t} (process {}, line {})", txn.process, txn.call_line)
    }

    /// The micro-ops of `t` as Elle prints them: `[[:append 1 2] [:r 1 [1 2]]]`.
    pub fn mops_text(&self, t: usize) -> String {
        let parts: Vec<String> = self.mops(t).iter().map(|m| self.mop_text(m)).collect();
        format!("[{}]", parts.join(" "))
    }

    pub fn mop_text(&self, mop: &Mop) -> String {
        let key = &self.keys[mop.key() as usize];
        match *mop {
            Mop::Append { value, .. } => format!("[:append {key} {value}]"),
            Mop::Write { value, .. } => format!("[:w {key} {value}]"),
            Mop::Read { seen, .. } => format!("[:r {key} {}]", self.seen_text(seen)),
        }
    }

    pub fn seen_text(&self, seen: Seen) -> String {
        match seen {
            Seen::Unknown | Seen::Nil => "nil".to_owned(),
            Seen::Value(v) => v.to_string(),
            Seen::List { .. } => {
                let items: Vec<String> = self.list(seen).iter().map(i64::to_string).collect();
                format!("[{}]", items.join(" "))
            }
        }
    }
}

/// The fields of a transaction other than its micro-ops.
#[derive(Debug, Clone, Copy)]
pub struct TxnMeta {
    pub process: u64,
    pub status: Status,
    pub call: u64,
    pub ret: Option<u64>,
    pub call_line: usize,
    pub ret_line: Option<usize>,
}

impl TxnMeta {
    /// A committed transaction invoked at event `call` and completed at `ret`.
    pub fn ok(process: u64, call: u64, ret: u64) -> TxnMeta {
        TxnMeta {
            process,
            status: Status::Ok,
            call,
            ret: Some(ret),
            call_line: call as usize + 1,
            ret_line: Some(ret as usize + 1),
        }
    }
}
