//! The disk's floor under the put path, measured in the same run as the load it is compared
//! with (`--disk-floor DIR` on `rheo bench` and `rheo bench-fanout`).
//!
//! Under the `sync` policy a put is acknowledged only after its batches are on disk: a
//! `PutRecords` call that lands on S shards waits for S group commits, each one write and one
//! fdatasync of that shard's segment file. This probe does the same I/O without the server:
//! one thread per shard appends to its own file in DIR and fdatasyncs it, with calls paced
//! open-loop at the load's call rate. A thread that finds several calls due writes them with
//! one write and one fdatasync, as the group commit does. A call's latency is the time from
//! when it was due until the last of its S shard writes is durable. The result is what the disk
//! alone allows for that pattern; the server's figures are then given as a ratio to it.

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

/// Bytes a shard's segment grows by per call: FORMAT.md's 48-byte batch header, and per record
/// an 8-byte head, a partition key of about 8 bytes and the data.
fn bytes_per_shard(pattern: &Pattern) -> usize {
    let records = pattern.records_per_call.div_ceil(pattern.shards);
    48 + records * (8 + 8 + pattern.record_bytes)
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
    let chunk = vec![0x42u8; bytes_per_shard(&pattern)];
    let started = Instant::now();
    let due = |call: usize| started + interval * call as u32;
    let finished: Vec<Vec<Instant>> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..pattern.shards)
            .map(|shard| {
                let path = work.join(format!("shard-{shard}"));
                let chunk = &chunk;
                scope.spawn(move || -> std::io::Result<Vec<Instant>> {
                    let file = File::create(path)?;
                    let mut done = Vec::with_capacity(calls);
                    let mut offset = 0u64;
                    let mut group = Vec::new();
                    while done.len() < calls {
                        let next = due(done.len());
                        if let Some(wait) = next.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        // Every call due by now goes into one write and one fdatasync.
                        let now = Instant::now();
                        let mut count = 1;
                        while done.len() + count < calls && due(done.len() + count) <= now {
                            count += 1;
                        }
                        group.clear();
                        for _ in 0..count {
                            group.extend_from_slice(chunk);
                        }
                        file.write_all_at(&group, offset)?;
                        file.sync_data()?;
                        offset += group.len() as u64;
                        let durable = Instant::now();
                        done.extend(std::iter::repeat_n(durable, count));
                    }
                    Ok(done)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("disk floor thread panicked"))
            .collect::<std::io::Result<_>>()
    })?;
    let mut latency = Histogram::<u64>::new(3)?;
    for call in 0..calls {
        let last = finished.iter().map(|shard| shard[call]).max();
        if let Some(last) = last {
            latency.record(last.saturating_duration_since(due(call)).as_micros() as u64)?;
        }
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
            "disk floor: {} files in {}, {} B per file per call, {:.0} calls/s, {:.0} s before and after the run (same I/O as the puts, no server)",
            pattern.shards,
            dir.display(),
            bytes_per_shard(&pattern),
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
    fn bytes_follow_the_segment_format() {
        let pattern = Pattern {
            shards: 4,
            records_per_call: 250,
            record_bytes: 1024,
            calls_per_sec: 300.0,
            duration: Duration::from_secs(1),
        };
        // 63 records per shard: 48 + 63 * (16 + 1024).
        assert_eq!(bytes_per_shard(&pattern), 65_568);
    }
}
