//! The per-interval outputs of a run: `timeseries.csv` and `latency.hlog`. Each
//! interval is written (and flushed) as soon as it closes, so a run that dies leaves
//! everything up to its last second on disk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::IntervalLogWriterBuilder;

/// Header of `timeseries.csv`.
/// `length_s` is the interval's real length: 1 s but for the last one of a round,
/// which ends when the round does (divide `ops` by it for a rate).
pub const TIMESERIES_HEADER: &str = "second,ops,errors,p50_us,p99_us,length_s";

/// Lowest and highest latency a histogram tracks, in microseconds, and its precision.
pub const LATENCY_US_MIN: u64 = 1;
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
pub const LATENCY_SIGFIG: u8 = 3;

/// A latency histogram in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(LATENCY_US_MIN, LATENCY_US_MAX, LATENCY_SIGFIG)
        .expect("valid histogram bounds")
}

/// Writes one target's interval outputs.
pub struct IntervalSink {
    csv: BufWriter<File>,
    hlog: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl IntervalSink {
    /// Creates `timeseries.csv` and `latency.hlog` in `dir`; `start` is the log's base
    /// time (interval timestamps are seconds since it).
    pub fn create(dir: &Path, start: SystemTime, label: &str) -> std::io::Result<IntervalSink> {
        let mut csv = BufWriter::new(File::create(dir.join("timeseries.csv"))?);
        writeln!(csv, "{TIMESERIES_HEADER}")?;
        csv.flush()?;
        let mut hlog = BufWriter::new(File::create(dir.join("latency.hlog"))?);
        let mut serializer = V2DeflateSerializer::new();
        IntervalLogWriterBuilder::new()
            .add_comment(&format!("d-engine bench: {label}"))
            .add_comment("Values are latencies in microseconds, one interval per second")
            .with_start_time(start)
            .with_base_time(start)
            .begin_log_with(&mut hlog, &mut serializer)?;
        hlog.flush()?;
        Ok(IntervalSink {
            csv,
            hlog,
            serializer,
        })
    }

    /// Appends one interval. `second` is the row's label (seconds of measurement since
    /// the start of this target's measurements), `offset` the interval's start since
    /// the log's base time.
    pub fn interval(
        &mut self,
        second: u64,
        offset: Duration,
        length: Duration,
        ops: u64,
        errors: u64,
        hist: &Histogram<u64>,
    ) -> std::io::Result<()> {
        let (p50, p99) = if hist.is_empty() {
            (0, 0)
        } else {
            (hist.value_at_quantile(0.5), hist.value_at_quantile(0.99))
        };
        let secs = length.as_secs_f64();
        writeln!(self.csv, "{second},{ops},{errors},{p50},{p99},{secs:.3}")?;
        self.csv.flush()?;
        // A builder with no headers writes none: it only appends this interval.
        let mut w =
            IntervalLogWriterBuilder::new().begin_log_with(&mut self.hlog, &mut self.serializer)?;
        w.write_histogram(hist, offset, length, None)
            .map_err(|e| std::io::Error::other(format!("hlog: {e}")))?;
        self.hlog.flush()
    }
}
