//! Storage engine benchmarks. See benches/README.md for what each measures and the figures.
//!
//! Everything runs on real files on the project's disk. Every group reports bytes per second
//! (partition keys not counted); the `raw` group is the reference: plain sequential `write` +
//! `fdatasync` of the same disk in the same run, so the engine's figures read as ratios.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rheo_benches::{CountingFs, Payload, scratch_dir};
use rheo_storage::io::{Fs, StdFs};
use rheo_storage::{Clock, Durability, LogConfig, ManualClock, Position, ShardLog, SystemClock};

fn open(fs: Arc<dyn Fs>, dir: &std::path::Path, config: LogConfig) -> ShardLog {
    ShardLog::open(fs, dir, config, Arc::new(SystemClock), 0).expect("open log")
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        max_record_bytes: 1 << 20,
        ..LogConfig::default()
    }
}

/// `threads` threads append `iters` batches each, spread over `shards` logs.
fn append_run(logs: &[Arc<ShardLog>], threads: usize, payload: &Payload, iters: u64) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for thread in 0..threads {
            let log = logs[thread % logs.len()].clone();
            scope.spawn(move || {
                let records = payload.records();
                for _ in 0..iters {
                    log.append(&records).expect("append");
                }
            });
        }
    });
    started.elapsed()
}

fn bench_append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let policies: [(&str, Durability); 3] = [
        ("sync", Durability::Sync),
        (
            "interval10ms",
            Durability::Interval(Duration::from_millis(10)),
        ),
        ("none", Durability::None),
    ];
    for (policy_name, durability) in policies {
        for size in [100usize, 1024, 64 * 1024] {
            for batch in [1usize, 100, 500] {
                if (size + 64) * batch > rheo_storage::MAX_BATCH_BYTES {
                    continue;
                }
                // The full matrix under `sync`; the relaxed policies at 1 KiB only.
                if durability != Durability::Sync && size != 1024 {
                    continue;
                }
                let payload = Payload::new(size, batch);
                for (threads, shards) in [(1usize, 1usize), (4, 1), (16, 1), (4, 4)] {
                    let dir = scratch_dir();
                    let logs: Vec<Arc<ShardLog>> = (0..shards)
                        .map(|shard| {
                            Arc::new(open(
                                Arc::new(StdFs),
                                &dir.path().join(format!("s{shard}")),
                                config(durability),
                            ))
                        })
                        .collect();
                    group.throughput(Throughput::Bytes((size * batch * threads) as u64));
                    let id = format!("{policy_name}/{size}B/batch{batch}/{threads}t-{shards}shard");
                    group.bench_function(BenchmarkId::from_parameter(id), |b| {
                        b.iter_custom(|iters| append_run(&logs, threads, &payload, iters))
                    });
                }
            }
        }
    }
    group.finish();
}

/// The raw reference: sequential write + fdatasync of `size` bytes per call.
fn bench_raw(c: &mut Criterion) {
    let mut group = c.benchmark_group("raw_write_fdatasync");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    let formed = group_commit_write_size();
    eprintln!("group commit, 16 appenders x 100 x 1 KiB: {formed} bytes per fdatasync on average");
    for size in [64 * 1024usize, 1 << 20, formed as usize] {
        let dir = scratch_dir();
        let path = dir.path().join("raw");
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .read(true)
            .open(&path)
            .unwrap();
        let buf = vec![0x5Au8; size];
        let mut offset = 0u64;
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(format!("{size}B")), |b| {
            b.iter(|| {
                file.write_all_at(&buf, offset).unwrap();
                file.sync_data().unwrap();
                offset += size as u64;
                if offset > 1 << 30 {
                    offset = 0;
                }
            })
        });
    }
    group.finish();
}

/// Average bytes per fdatasync that group commit forms for 16 appenders of 100 x 1 KiB.
fn group_commit_write_size() -> u64 {
    let dir = scratch_dir();
    let fs = CountingFs::default();
    let log = Arc::new(open(
        Arc::new(fs.clone()),
        dir.path(),
        config(Durability::Sync),
    ));
    let payload = Payload::new(1024, 100);
    append_run(std::slice::from_ref(&log), 16, &payload, 20);
    let syncs_before = fs.syncs.load(Ordering::Relaxed);
    let written_before = fs.written.load(Ordering::Relaxed);
    append_run(&[log], 16, &payload, 100);
    let syncs = fs.syncs.load(Ordering::Relaxed) - syncs_before;
    let written = fs.written.load(Ordering::Relaxed) - written_before;
    written / syncs.max(1)
}

fn build_log(
    dir: &std::path::Path,
    bytes: u64,
    record: usize,
    batch: usize,
    config: LogConfig,
    clock: Arc<dyn Clock>,
) -> ShardLog {
    let log = ShardLog::open(Arc::new(StdFs), dir, config, clock, 0).unwrap();
    let payload = Payload::new(record, batch);
    let records = payload.records();
    let per_append = (record * batch) as u64;
    for _ in 0..bytes.div_ceil(per_append) {
        log.append(&records).unwrap();
    }
    log
}

fn read_all(log: &ShardLog) -> u64 {
    let mut from = 0;
    let mut bytes = 0u64;
    loop {
        let outcome = log.read(from, 10_000, 10 << 20).unwrap();
        if outcome.records.is_empty() {
            return bytes;
        }
        bytes += outcome
            .records
            .iter()
            .map(|r| r.data.len() as u64)
            .sum::<u64>();
        from = outcome.next_sequence;
    }
}

fn bench_read(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_sequential");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    let total = 256u64 << 20;
    for (name, segment_max_bytes) in [("sealed_mmap", 32u64 << 20), ("active_pread", 1 << 30)] {
        let dir = scratch_dir();
        let config = LogConfig {
            durability: Durability::None,
            segment_max_bytes,
            ..LogConfig::default()
        };
        let log = build_log(dir.path(), total, 1024, 500, config, Arc::new(SystemClock));
        if name == "sealed_mmap" {
            log.roll_now().unwrap();
        }
        let bytes = read_all(&log);
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(name, |b| b.iter(|| read_all(&log)));
    }
    group.finish();
}

fn bench_seek(c: &mut Criterion) {
    let mut group = c.benchmark_group("seek_at_timestamp");
    let dir = scratch_dir();
    let clock = ManualClock::new(1_767_225_600_000);
    let config = LogConfig {
        durability: Durability::None,
        ..LogConfig::default()
    };
    let log = ShardLog::open(
        Arc::new(StdFs),
        dir.path(),
        config,
        Arc::new(clock.clone()),
        0,
    )
    .unwrap();
    let payload = Payload::new(100, 100);
    let records = payload.records();
    for _ in 0..10_000 {
        log.append(&records).unwrap();
        clock.advance_ms(1);
    }
    assert_eq!(log.tip().next_sequence, 1_000_000);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    group.bench_function("1M_records", |b| {
        b.iter(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let target = 1_767_225_600_000 + (state % 10_000) as i64;
            log.seek(Position::AtTimestamp(target)).unwrap()
        })
    });
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("open_after_unclean_stop");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let dir = scratch_dir();
    let config = LogConfig {
        durability: Durability::None,
        ..LogConfig::default()
    };
    drop(build_log(
        dir.path(),
        1 << 30,
        64 * 1024,
        100,
        config.clone(),
        Arc::new(SystemClock),
    ));
    let newest = {
        let mut segments: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
            .collect();
        segments.sort();
        segments.pop().unwrap()
    };
    group.bench_function("1GiB_stored_torn_tail", |b| {
        b.iter_custom(|iters| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iters {
                // An unclean stop: half a batch of garbage at the end of the active segment.
                OpenOptions::new()
                    .append(true)
                    .open(&newest)
                    .unwrap()
                    .write_all(&[0xEE; 40_000])
                    .unwrap();
                let started = Instant::now();
                let log = ShardLog::open(
                    Arc::new(StdFs),
                    dir.path(),
                    config.clone(),
                    Arc::new(SystemClock),
                    0,
                )
                .unwrap();
                elapsed += started.elapsed();
                drop(log);
            }
            elapsed
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_raw,
    bench_append,
    bench_read,
    bench_seek,
    bench_open
);
criterion_main!(benches);
