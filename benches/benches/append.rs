//! Append throughput of `ShardLog::append`, and the raw disk reference it is compared with.
//!
//! In run order:
//! 1. `group-commit probe` (not a criterion benchmark): 16 threads appending batches of 100
//!    records of 1 KiB to one log under `Durability::Sync` for a few seconds, through a file
//!    system that counts fdatasyncs, to learn the average write group commit forms; then 7
//!    rounds alternating 1 s of raw 1 MiB write + fdatasync with 1 s of that same load, whose
//!    median ratio is the group-commit target check least exposed to the disk's drift.
//! 2. `raw-write-fdatasync/<size>`: sequential `write` + `fdatasync` of a plain file in a scratch
//!    directory next to the logs, for 4 KiB, 64 KiB, 1 MiB and the probe's average write size.
//! 3. `append-<durability>/<threads>t-<logs>log/<record>-x<batch>`: every combination of record
//!    size (100 B, 1 KiB, 64 KiB), batch size (1, 100, 500 records; 64 KiB x 500 is skipped as it
//!    exceeds the engine's 16 MiB batch cap), durability (sync, interval-10ms, none) and
//!    layout (1, 4 or 16 threads on one log; 4 threads on 4 logs, one each). 3 s of
//!    measurement each under sync, 2 s under the relaxed policies.
//!
//! One criterion iteration is one `append` of one batch by every thread, all threads running
//! at once; throughput counts record data bytes (not keys or framing).

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rheo_benches::{
    BatchData, CountingFs, IoCounts, KIB, MIB, Rng, bench_mode, note, open_log, scratch, size_label,
};
use rheo_storage::{Durability, LogConfig, MAX_BATCH_BYTES, RecordInput, ShardLog, SystemClock};

const RECORD_SIZES: [usize; 3] = [100, KIB, 64 * KIB];
const BATCH_SIZES: [usize; 3] = [1, 100, 500];
const DURABILITIES: [Durability; 3] = [
    Durability::Sync,
    Durability::Interval(Duration::from_millis(10)),
    Durability::None,
];

/// How appender threads map onto logs.
#[derive(Debug, Clone, Copy)]
enum Layout {
    /// This many threads, all appending to one log.
    Shared(usize),
    /// This many threads, each appending to its own log.
    LogPerThread(usize),
}

const LAYOUTS: [Layout; 4] = [
    Layout::Shared(1),
    Layout::Shared(4),
    Layout::Shared(16),
    Layout::LogPerThread(4),
];

impl Layout {
    fn threads(self) -> usize {
        match self {
            Layout::Shared(threads) | Layout::LogPerThread(threads) => threads,
        }
    }

    fn logs(self) -> usize {
        match self {
            Layout::Shared(_) => 1,
            Layout::LogPerThread(threads) => threads,
        }
    }

    fn label(self) -> String {
        format!("{}t-{}log", self.threads(), self.logs())
    }
}

fn durability_label(durability: Durability) -> &'static str {
    match durability {
        Durability::Sync => "sync",
        Durability::Interval(_) => "interval-10ms",
        Durability::None => "none",
    }
}

/// Runs `iters` appends of its batch on every thread at once (thread `t` appends
/// `batches[t]` to `logs[t % logs.len()]`) and returns the wall time from the first thread's
/// start to the last thread's end. Each thread takes its own start and end times, so neither
/// thread start-up nor the scheduling of the calling thread is counted.
fn run_appenders(logs: &[ShardLog], batches: &[Vec<RecordInput<'_>>], iters: u64) -> Duration {
    let barrier = Barrier::new(batches.len());
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = batches
            .iter()
            .enumerate()
            .map(|(thread, records)| {
                let log = &logs[thread % logs.len()];
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        log.append(records).expect("append");
                    }
                    (start, Instant::now())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("an appender thread panicked"))
            .collect()
    });
    let first_start = spans.iter().map(|span| span.0).min().expect("a thread");
    let last_end = spans.iter().map(|span| span.1).max().expect("a thread");
    last_end - first_start
}

/// Data bytes and wall time accumulated over every call of a benchmark's routine (warm-up
/// included): an in-process mean to set beside criterion's estimate.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    bytes: u64,
    appends: u64,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, bytes: u64, appends: u64, elapsed: Duration) {
        self.bytes += bytes;
        self.appends += appends;
        self.elapsed += elapsed;
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

fn io_summary(counts: &IoCounts, tally: &Tally) -> String {
    format!(
        "{} appends, {:.0} MB/s mean, {} segment fdatasyncs, {:.0} bytes written per fdatasync, {:.1} appends per fdatasync",
        tally.appends,
        tally.mb_per_s(),
        counts.segment_syncs,
        counts.bytes_per_sync(),
        tally.appends as f64 / counts.segment_syncs.max(1) as f64,
    )
}

/// 16 threads x batches of 100 x 1 KiB records, `Durability::Sync`, for about `run`: the
/// average write group commit forms. Then `rounds` alternations of 1 s of raw 1 MiB
/// write + fdatasync and 1 s of the same group-commit load, so the ratio of the two is taken
/// under the same disk conditions (this virtual disk's fdatasync speed drifts over minutes).
/// Returns (bytes per fdatasync, MB/s).
fn group_commit_probe(run: Duration, rounds: usize) -> (f64, f64) {
    let dir = scratch("probe");
    let fs = CountingFs::new();
    let log = open_log(
        Arc::new(fs.clone()),
        &dir.path().join("log"),
        LogConfig::default(),
        Arc::new(SystemClock),
    );
    let logs = std::slice::from_ref(&log);
    let data: Vec<BatchData> = (0..16)
        .map(|thread| BatchData::new(&format!("pk-{thread}"), KIB, 100))
        .collect();
    let batches: Vec<Vec<RecordInput<'_>>> = data.iter().map(BatchData::records).collect();
    let group_load = |run: Duration| {
        let mut tally = Tally::default();
        while tally.elapsed < run {
            let iters = 20;
            let elapsed = run_appenders(logs, &batches, iters);
            tally.add(16 * iters * data[0].data_bytes(), 16 * iters, elapsed);
        }
        tally
    };
    // Warm up (first segment pages, thread start-up), then count.
    run_appenders(logs, &batches, 5);
    let before = fs.counts();
    let tally = group_load(run);
    let counts = fs.counts().since(before);
    note(&format!(
        "group-commit probe, 16 threads x 100 x 1KiB, sync: {}",
        io_summary(&counts, &tally)
    ));

    let raw_path = dir.path().join("raw-1MiB");
    let mut raw = File::create(&raw_path).expect("create the raw reference file");
    let buf = Rng::new(1).bytes(MIB);
    let mut ratios = Vec::new();
    for round in 1..=rounds {
        let mut raw_tally = Tally::default();
        let started = Instant::now();
        while started.elapsed() < run / 3 {
            raw.write_all(&buf).expect("raw write");
            raw.sync_data().expect("raw fdatasync");
            raw_tally.add(MIB as u64, 1, Duration::ZERO);
        }
        raw_tally.elapsed = started.elapsed();
        let group = group_load(run / 3);
        let ratio = group.mb_per_s() / raw_tally.mb_per_s();
        ratios.push(ratio);
        note(&format!(
            "paired round {round}: raw 1MiB write+fdatasync {:.0} MB/s, group commit 16 x 1KiB x 100 {:.0} MB/s, ratio {:.0}%",
            raw_tally.mb_per_s(),
            group.mb_per_s(),
            100.0 * ratio
        ));
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        note(&format!(
            "target check (paired): median ratio group commit / raw 1MiB = {:.0}% over {} rounds (min {:.0}%, max {:.0}%; target >= 80%)",
            100.0 * ratios[ratios.len() / 2],
            ratios.len(),
            100.0 * ratios[0],
            100.0 * ratios[ratios.len() - 1]
        ));
    }
    (counts.bytes_per_sync(), tally.mb_per_s())
}

/// Sequential write + fdatasync of a plain file, one criterion benchmark per size. Returns the
/// in-process mean MB/s of each size.
fn raw_reference(c: &mut Criterion, sizes: &[usize]) -> Vec<(usize, f64)> {
    let dir = scratch("raw");
    let mut group = c.benchmark_group("raw-write-fdatasync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sampling_mode(SamplingMode::Flat);
    let mut means = Vec::new();
    for &size in sizes {
        let path = dir.path().join(format!("raw-{size}"));
        let mut file = File::create(&path).expect("create the raw reference file");
        let buf = Rng::new(size as u64).bytes(size);
        let mut tally = Tally::default();
        group.throughput(Throughput::BytesDecimal(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size_label(size)), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    file.write_all(&buf).expect("raw write");
                    file.sync_data().expect("raw fdatasync");
                }
                let elapsed = start.elapsed();
                tally.add(iters * size as u64, iters, elapsed);
                elapsed
            });
        });
        drop(file);
        std::fs::remove_file(&path).expect("remove the raw reference file");
        if tally.appends > 0 {
            note(&format!(
                "raw-write-fdatasync/{}: {} writes, {:.0} MB/s mean",
                size_label(size),
                tally.appends,
                tally.mb_per_s()
            ));
            means.push((size, tally.mb_per_s()));
        }
    }
    group.finish();
    means
}

/// The append matrix. Returns the in-process mean MB/s of the target configuration
/// (sync, 16 threads on one log, 1 KiB x 100), if it ran.
fn append_matrix(c: &mut Criterion) -> Option<f64> {
    let mut target = None;
    for durability in DURABILITIES {
        // 3 s per benchmark under sync, 2 s under the relaxed policies (which are bound by
        // page-cache copies and by the fdatasync of each sealed segment), to keep the run short.
        let measurement = match durability {
            Durability::Sync => Duration::from_secs(3),
            _ => Duration::from_secs(2),
        };
        let mut group = c.benchmark_group(format!("append-{}", durability_label(durability)));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(measurement)
            .sampling_mode(SamplingMode::Flat);
        for layout in LAYOUTS {
            for record in RECORD_SIZES {
                for batch in BATCH_SIZES {
                    if record * batch > MAX_BATCH_BYTES {
                        continue;
                    }
                    let id = BenchmarkId::new(
                        layout.label(),
                        format!("{}-x{batch}", size_label(record)),
                    );
                    let dir = scratch("append");
                    let fs = CountingFs::new();
                    let config = LogConfig {
                        durability,
                        ..LogConfig::default()
                    };
                    let logs: Vec<ShardLog> = (0..layout.logs())
                        .map(|index| {
                            open_log(
                                Arc::new(fs.clone()),
                                &dir.path().join(format!("log-{index}")),
                                config.clone(),
                                Arc::new(SystemClock),
                            )
                        })
                        .collect();
                    let data: Vec<BatchData> = (0..layout.threads())
                        .map(|thread| BatchData::new(&format!("pk-{thread}"), record, batch))
                        .collect();
                    let batches: Vec<Vec<RecordInput<'_>>> =
                        data.iter().map(BatchData::records).collect();
                    let bytes_per_iter = data.iter().map(BatchData::data_bytes).sum::<u64>();
                    let before = fs.counts();
                    let mut tally = Tally::default();
                    group.throughput(Throughput::BytesDecimal(bytes_per_iter));
                    group.bench_function(id.clone(), |b| {
                        b.iter_custom(|iters| {
                            let elapsed = run_appenders(&logs, &batches, iters);
                            tally.add(
                                iters * bytes_per_iter,
                                iters * layout.threads() as u64,
                                elapsed,
                            );
                            elapsed
                        });
                    });
                    let counts = fs.counts().since(before);
                    if tally.appends > 0 {
                        note(&format!(
                            "append-{}/{}/{}-x{batch}: {}",
                            durability_label(durability),
                            layout.label(),
                            size_label(record),
                            io_summary(&counts, &tally)
                        ));
                        if durability == Durability::Sync
                            && matches!(layout, Layout::Shared(16))
                            && record == KIB
                            && batch == 100
                        {
                            target = Some(tally.mb_per_s());
                        }
                    }
                    drop(batches);
                    drop(logs);
                    drop(dir);
                }
            }
        }
        group.finish();
    }
    target
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    // RHEO_BENCH_PAIRED_ROUNDS overrides the number of paired raw/group-commit rounds.
    let rounds = std::env::var("RHEO_BENCH_PAIRED_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok());
    let (probe_time, rounds) = if bench_mode() {
        (Duration::from_secs(3), rounds.unwrap_or(7))
    } else {
        (Duration::from_millis(300), rounds.unwrap_or(1))
    };
    let (group_write, probe_mb_s) = group_commit_probe(probe_time, rounds);
    // The raw reference at the probe's average write size, rounded to 4 KiB.
    let observed = ((group_write / (4 * KIB) as f64).round() as usize).max(1) * 4 * KIB;
    let raw = raw_reference(&mut c, &[4 * KIB, 64 * KIB, MIB, observed]);
    let raw_1mib = raw.iter().find(|(size, _)| *size == MIB).map(|(_, mb)| *mb);
    if let Some(raw_1mib) = raw_1mib {
        note(&format!(
            "target check (probe): group commit 16 x 1KiB x 100 sync {probe_mb_s:.0} MB/s = {:.0}% of raw 1MiB write+fdatasync {raw_1mib:.0} MB/s (target >= 80%)",
            100.0 * probe_mb_s / raw_1mib
        ));
    }
    let matrix = append_matrix(&mut c);
    if let (Some(matrix), Some(raw_1mib)) = (matrix, raw_1mib) {
        note(&format!(
            "target check (matrix): append-sync/16t-1log/1KiB-x100 {matrix:.0} MB/s = {:.0}% of raw 1MiB write+fdatasync {raw_1mib:.0} MB/s (target >= 80%)",
            100.0 * matrix / raw_1mib
        ));
    }
    c.final_summary();
}
