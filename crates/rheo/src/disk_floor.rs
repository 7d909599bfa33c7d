//! The disk's floor under the put path, measured in the same run as the load it is compared
//! with (`--disk-floor DIR` on `rheo bench` and `rheo bench-fanout`).
//!
//! Under the `sync` policy a put is acknowledged only after its batches are on disk: with the
//! node journal, every call waiting at the same moment, whatever its shards, is made durable by
//! one journal write and one fdatasync (the segment writes beside it reach only the page
//! cache). This probe does that I/O without the server: one thread appends each call's journal
//! record to one file in DIR and fdatasyncs it, with calls paced open-loop at the load's call
//! rate; when it finds several calls due, it writes them with one write and one fdatasync, as
//! the commit thread does. A call's latency is the time from when it was due until its write is
//! durable. The result is what the disk alone allows for that pattern; the server's figures
//! are then given as a ratio to it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The I/O pattern of a put load.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pattern {
    /// Shards, and so files written in parallel.
    pub(crate) shards: usize,
    /// Records per call (spread evenly over the shards).
    pub(crate) records_per_call: usize,
    /// Data bytes per record.
    pub(crate) record_bytes: usize,
    /// Calls per second, all producers together.
    pub(crate) calls_per_sec: f64,
    /// How long to run.
    pub(crate) duration: Duration,
}

impl Pattern {
    /// The pattern of `records_per_sec` records of `record_bytes` put `records_per_call` at a
    /// time into `shards` shards, for `duration`.
    pub(crate) fn puts(
        shards: usize,
        records_per_call: usize,
        record_bytes: usize,
        records_per_sec: u64,
        duration: Duration,
    ) -> Pattern {
        Pattern {
            shards,
            records_per_call,
            record_bytes,
            calls_per_sec: records_per_sec as f64 / records_per_call.max(1) as f64,
            duration,
        }
    }
}

/// Bytes the journal grows by per call (FORMAT.md, "The journal"): per shard the call lands
/// on, an entry head (24 bytes), a log key of about 30 bytes and a 48-byte batch header; per
/// record an 8-byte head, a partition key of about 8 bytes and the data. (The 40-byte commit
/// header is shared by every call of a commit and left out.)
fn journal_bytes_per_call(pattern: &Pattern) -> usize {
    let shards = pattern.shards.min(pattern.records_per_call.max(1));
    shards * (24 + 30 + 48) + pattern.records_per_call * (8 + 8 + pattern.record_bytes)
}

/// Runs the probe in a fresh directory under `dir` (removed afterwards) and returns the call
/// latencies in microseconds.
pub(crate) fn measure(dir: &Path, pattern: Pattern) -> anyhow::Result<Histogram<u64>> {
    anyhow::ensure!(
        pattern.shards > 0 && pattern.calls_per_sec > 0.0,
        "the disk floor needs at least one shard and a put rate"
    );
    let work = dir.join(format!("rheo-disk-floor-{}", std::process::id()));
    std::fs::create_dir(&work)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", work.display()))?;
    let result = run(&work, pattern);
    std::fs::remove_dir_all(&work)?;
    result
}

fn run(work: &Path, pattern: Pattern) -> anyhow::Result<Histogram<u64>> {
    let calls = (pattern.duration.as_secs_f64() * pattern.calls_per_sec).ceil() as usize;
    let interval = Duration::from_secs_f64(1.0 / pattern.calls_per_sec);
    let chunk = vec![0x42u8; journal_bytes_per_call(&pattern)];
    let started = Instant::now();
    let due = |call: usize| started + interval * call as u32;
    let file = File::create(work.join("journal"))?;
    let mut latency = Histogram::<u64>::new(3)?;
    let mut offset = 0u64;
    let mut group = Vec::new();
    let mut done = 0;
    while done < calls {
        if let Some(wait) = due(done).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Every call due by now goes into one write and one fdatasync.
        let now = Instant::now();
        let mut count = 1;
        while done + count < calls && due(done + count) <= now {
            count += 1;
        }
        group.clear();
        for _ in 0..count {
            group.extend_from_slice(&chunk);
        }
        file.write_all_at(&group, offset)?;
        file.sync_data()?;
        offset += group.len() as u64;
        let durable = Instant::now();
        for call in done..done + count {
            latency.record(durable.saturating_duration_since(due(call)).as_micros() as u64)?;
        }
        done += count;
    }
    Ok(latency)
}

/// The floor measured before a run, waiting to be measured again after it: the disk's speed
/// drifts within seconds on shared machines, so the run is bracketed by two measurements.
pub(crate) struct Floor {
    dir: PathBuf,
    pattern: Pattern,
    before: Histogram<u64>,
}

fn print_line(when: &str, floor: &Histogram<u64>) {
    let ms = |quantile: f64| floor.value_at_quantile(quantile) as f64 / 1000.0;
    println!(
        "disk floor {when}: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms ({} calls)",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        floor.max() as f64 / 1000.0,
        floor.len(),
    );
}

/// Measures the floor before a run if a directory was given (on the blocking pool).
pub(crate) async fn before_run(
    dir: Option<&PathBuf>,
    pattern: Pattern,
) -> anyhow::Result<Option<Floor>> {
    let Some(dir) = dir.cloned() else {
        return Ok(None);
    };
    let floor = tokio::task::spawn_blocking(move || Floor::before(&dir, pattern)).await??;
    Ok(Some(floor))
}

/// Measures the floor after the run, if one was measured before, and prints the ratios.
pub(crate) async fn after_run(
    floor: Option<Floor>,
    compared: Vec<(&'static str, u64)>,
) -> anyhow::Result<()> {
    if let Some(floor) = floor {
        tokio::task::spawn_blocking(move || floor.after(&compared)).await??;
    }
    Ok(())
}

impl Floor {
    /// Measures the floor before the run (blocking, for the pattern's duration).
    pub(crate) fn before(dir: &Path, pattern: Pattern) -> anyhow::Result<Floor> {
        println!(
            "disk floor: one journal file in {}, {} B per call ({} shards), {:.0} calls/s, {:.0} s before and after the run (the journal's write and fdatasync, no server)",
            dir.display(),
            journal_bytes_per_call(&pattern),
            pattern.shards,
            pattern.calls_per_sec,
            pattern.duration.as_secs_f64()
        );
        let before = measure(dir, pattern)?;
        print_line("before", &before);
        Ok(Floor {
            dir: dir.to_path_buf(),
            pattern,
            before,
        })
    }

    /// Measures the floor again and prints, for each `(name, p99 in microseconds)` of the run,
    /// its ratio to the floor's p99 before and after.
    pub(crate) fn after(self, compared: &[(&str, u64)]) -> anyhow::Result<()> {
        print_line("before", &self.before);
        let after = measure(&self.dir, self.pattern)?;
        print_line("after", &after);
        let before_p99 = self.before.value_at_quantile(0.99).max(1) as f64;
        let after_p99 = after.value_at_quantile(0.99).max(1) as f64;
        for (name, p99_us) in compared {
            println!(
                "{name} p99 / disk floor p99 = {:.2} (before), {:.2} (after)",
                *p99_us as f64 / before_p99,
                *p99_us as f64 / after_p99
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_call_of_the_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = Pattern {
            shards: 2,
            records_per_call: 4,
            record_bytes: 100,
            calls_per_sec: 200.0,
            duration: Duration::from_millis(100),
        };
        let latency = measure(dir.path(), pattern).unwrap();
        assert_eq!(latency.len(), 20);
        // Every call waited for at least one real write and fdatasync.
        assert!(latency.min() > 0);
        // The probe cleans up after itself.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn bytes_follow_the_journal_format() {
        let pattern = Pattern {
            shards: 4,
            records_per_call: 250,
            record_bytes: 1024,
            calls_per_sec: 300.0,
            duration: Duration::from_secs(1),
        };
        // 4 entries of 24 + 30 + 48, and 250 records of 16 + 1024.
        assert_eq!(journal_bytes_per_call(&pattern), 4 * 102 + 250 * 1040);
        // A single-record call touches one shard, however many the stream has.
        let single = Pattern {
            shards: 1024,
            records_per_call: 1,
            ..pattern
        };
        assert_eq!(journal_bytes_per_call(&single), 102 + 1040);
    }
}
