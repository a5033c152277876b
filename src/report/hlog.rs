//! The latency interval log, `latency.hlog`, in HdrHistogram's interval log format
//! (V2, compressed), so HdrHistogram's own tools (HistogramLogProcessor, the
//! HdrHistogram log analyzer) can read, slice and plot it.
//!
//! One histogram per interval, operation, outcome and correction, tagged
//! `<op>.<outcome>.<corrected|uncorrected>`, values in microseconds. The log is
//! appended to as intervals complete: lines already written stay valid if the run
//! dies, which is what a crash-proof log needs (a rename at the end would lose all).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;

use crate::load::collector::{IntervalRow, IntervalSink};
use crate::metrics::{Outcome, Recorder};

pub struct HlogWriter {
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
}

impl std::fmt::Debug for HlogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HlogWriter")
    }
}

impl HlogWriter {
    /// Creates the log with its header; `start` is the wall-clock start of the load.
    pub fn create(path: &Path, start: SystemTime, comment: &str) -> std::io::Result<Self> {
        let mut writer = HlogWriter {
            out: BufWriter::new(File::create(path)?),
            serializer: V2DeflateSerializer::new(),
        };
        IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("values in microseconds; tags are <op>.<outcome>.<corrected|uncorrected>")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut writer.out, &mut writer.serializer)?;
        writeln!(
            writer.out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )?;
        writer.out.flush()?;
        Ok(writer)
    }

    /// Appends one interval: every non-empty histogram of `recorder`.
    pub fn write_interval(
        &mut self,
        start: Duration,
        length: Duration,
        recorder: &Recorder,
    ) -> std::io::Result<()> {
        let mut log = IntervalLogWriterBuilder::new()
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut self.out, &mut self.serializer)?;
        for ((op, outcome), latency) in &recorder.latency {
            let outcome = match outcome {
                Outcome::Ok => "ok",
                Outcome::Error => "error",
            };
            for (kind, histogram) in [
                ("corrected", &latency.corrected),
                ("uncorrected", &latency.uncorrected),
            ] {
                if histogram.is_empty() {
                    continue;
                }
                let tag = format!("{}.{outcome}.{kind}", op.name());
                log.write_histogram(histogram, start, length, Tag::new(&tag))
                    .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
            }
        }
        self.out.flush()
    }
}

/// The run streams every second's histograms into the log as it completes.
impl IntervalSink for HlogWriter {
    fn name(&self) -> &'static str {
        "the latency log"
    }

    fn interval(&mut self, row: &IntervalRow, recorder: &Recorder) -> std::io::Result<()> {
        let start = Duration::from_secs(row.t);
        self.write_interval(start, Duration::from_secs(row.span_s), recorder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Op;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn log_round_trips_through_hdrhistogram_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latency.hlog");
        let mut writer = HlogWriter::create(&path, SystemTime::UNIX_EPOCH, "test run").unwrap();
        let mut recorder = Recorder::default();
        recorder.op(
            Op::Append,
            Outcome::Ok,
            Duration::from_millis(1000),
            Duration::from_millis(2),
        );
        writer
            .write_interval(Duration::from_secs(3), Duration::from_secs(1), &recorder)
            .unwrap();
        drop(writer);
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.starts_with("#test run\n"), "{text}");
        let mut seen = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                let mut de = Deserializer::new();
                let decoded: hdrhistogram::Histogram<u64> = de
                    .deserialize(&mut base64_decode(h.encoded_histogram()).as_slice())
                    .unwrap();
                seen.push((
                    h.tag().unwrap().as_str().to_string(),
                    h.start_timestamp(),
                    decoded.max(),
                ));
            }
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].0, "append.ok.corrected");
        assert_eq!(seen[0].1, Duration::from_secs(3));
        assert!(seen[0].2 >= 999_000 && seen[0].2 <= 1_001_000);
        assert_eq!(seen[1].0, "append.ok.uncorrected");
        assert!(seen[1].2 < 3_000);
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap()
    }
}
