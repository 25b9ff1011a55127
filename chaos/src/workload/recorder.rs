//! The history file of a run and the counts its summary needs: every client
//! of every workload appends its invocations and completions here.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use d_engine_histories::{Event, EventType, HistoryWriter, Value};

/// Counts by op and outcome, and the successful-op timeline.
#[derive(Debug, Default)]
struct Tally {
    by_op: BTreeMap<String, BTreeMap<&'static str, u64>>,
    ok_times_ns: Vec<u64>,
}

impl Tally {
    fn completed(&mut self, f: &str, kind: EventType, time_ns: u64) {
        let name = match kind {
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            _ => "info",
        };
        *self
            .by_op
            .entry(f.to_owned())
            .or_default()
            .entry(name)
            .or_default() += 1;
        if kind == EventType::Ok {
            self.ok_times_ns.push(time_ns);
        }
    }
}

/// The history file and what the summary needs from it. Shared by clients.
pub struct Recorder {
    writer: Mutex<(HistoryWriter<BufWriter<File>>, Tally)>,
    t0: Instant,
}

impl Recorder {
    /// Writes `path`; `t0` is time zero of the run (shared with the nemesis log).
    pub fn create(path: &Path, t0: Instant) -> anyhow::Result<Recorder> {
        let file =
            File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Recorder {
            writer: Mutex::new((HistoryWriter::new(BufWriter::new(file)), Tally::default())),
            t0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HistoryWriter<BufWriter<File>>, Tally)> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one event, stamped under the lock so file order and time agree.
    pub(crate) fn event(
        &self,
        process: u64,
        kind: EventType,
        f: &str,
        key: Option<&str>,
        value: Value,
        error: Option<String>,
    ) {
        let mut guard = self.lock();
        let time_ns = self.t0.elapsed().as_nanos() as u64;
        let mut e = Event::new(process, kind, f, key, value);
        e.time_ns = Some(time_ns);
        e.error = error;
        let (writer, tally) = &mut *guard;
        if kind != EventType::Invoke {
            tally.completed(f, kind, time_ns);
        }
        // A history that cannot be written is worthless: fail loudly.
        writer.write_event(e).expect("cannot write history.jsonl");
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        Ok(self.lock().0.flush()?)
    }

    /// Ops by name and outcome: `{"read": {"ok": 10, "fail": 2}, …}`.
    pub fn counts(&self) -> BTreeMap<String, BTreeMap<&'static str, u64>> {
        self.lock().1.by_op.clone()
    }

    /// The longest time with no successful op between `from_ns` and `to_ns`:
    /// (length, start), in nanoseconds since t0.
    pub fn longest_gap_ns(&self, from_ns: u64, to_ns: u64) -> (u64, u64) {
        self.gaps_ns(from_ns, to_ns, 0)
            .into_iter()
            .max_by_key(|&(_, len)| len)
            .map_or((0, from_ns), |(at, len)| (len, at))
    }

    /// Every stretch of at least `min_ns` with no successful op between
    /// `from_ns` and `to_ns`: (start, length), in nanoseconds since t0.
    pub fn gaps_ns(&self, from_ns: u64, to_ns: u64, min_ns: u64) -> Vec<(u64, u64)> {
        let mut times: Vec<u64> = self
            .lock()
            .1
            .ok_times_ns
            .iter()
            .copied()
            .filter(|t| (from_ns..=to_ns).contains(t))
            .collect();
        times.sort_unstable();
        let mut out = Vec::new();
        let mut prev = from_ns;
        for t in times.into_iter().chain(std::iter::once(to_ns)) {
            if t - prev >= min_ns {
                out.push((prev, t - prev));
            }
            prev = t;
        }
        out
    }

    pub fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_between_successful_ops() {
        let path = std::env::temp_dir().join(format!("chaos-gaps-{}.jsonl", std::process::id()));
        let rec = Recorder::create(&path, Instant::now()).unwrap();
        rec.lock().1.ok_times_ns = vec![5, 10, 40, 42, 90];
        assert_eq!(rec.gaps_ns(0, 100, 20), vec![(10, 30), (42, 48)]);
        assert_eq!(rec.longest_gap_ns(0, 100), (48, 42));
        assert_eq!(rec.longest_gap_ns(0, 100).0, 48);
        let _ = std::fs::remove_file(&path);
    }
}
