//! `ShardLog::seek(Position::AtTimestamp(t))` at random times, on a log of one million records.
//!
//! The log holds 1,000,000 records of 100 B written in 10,000 batches of 100 with
//! `Durability::None`, under a `ManualClock` advanced 1 ms before every batch, so the log spans
//! 10 s with 10,000 distinct arrival timestamps. It fits in one 128 MiB segment:
//! `seek-at-timestamp/active` seeks while it is the active segment (index in memory, batch
//! headers read with pread); after `roll_now`, `seek-at-timestamp/sealed` seeks in the sealed,
//! memory-mapped segment. One iteration is one seek to the next of 4,096 precomputed uniformly
//! random times within the log's span. Before measuring, 1,000 seeks are checked against reads.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use rheo_benches::{BatchData, MIB, Rng, fill_log, note, open_log, scaled, scratch};
use rheo_storage::io::StdFs;
use rheo_storage::{Durability, LogConfig, ManualClock, Position, ShardLog};

/// Checks that `seek(AtTimestamp(t))` lands on the first record at or after `t`.
fn check_seeks(log: &ShardLog, targets: &[i64]) {
    let first = log.seek(Position::TrimHorizon).expect("trim horizon");
    for &t in targets.iter().take(1000) {
        let seq = log.seek(Position::AtTimestamp(t)).expect("seek");
        let at = log.read(seq, 1, MIB).expect("read at the seek result");
        assert!(
            at.records[0].timestamp_ms >= t,
            "seek({t}) gave {seq}, stamped {}",
            at.records[0].timestamp_ms
        );
        if seq > first {
            let before = log
                .read(seq - 1, 1, MIB)
                .expect("read before the seek result");
            assert!(
                before.records[0].timestamp_ms < t,
                "seek({t}) gave {seq} but {} is stamped {}",
                seq - 1,
                before.records[0].timestamp_ms
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let dir = scratch("seek");
    let clock = ManualClock::new(1_764_000_000_000);
    let config = LogConfig {
        durability: Durability::None,
        ..LogConfig::default()
    };
    let log = open_log(
        Arc::new(StdFs),
        &dir.path().join("log"),
        config,
        Arc::new(clock.clone()),
    );
    let batch = BatchData::new("seek-bench", 100, 100);
    let records = scaled(1_000_000, 10_000);
    let appended = fill_log(&log, &batch, records * 100, Some(&clock));
    log.sync().expect("sync the built log");
    let first_ts = log.read(0, 1, MIB).expect("read the first record").records[0].timestamp_ms;
    let last_ts = log.tip().last_timestamp_ms;
    note(&format!(
        "seek-at-timestamp: log of {appended} records, {} bytes, timestamps {first_ts}..={last_ts}",
        log.stats().bytes
    ));
    let mut rng = Rng::new(42);
    let targets: Vec<i64> = (0..4096)
        .map(|_| rng.range_i64(first_ts, last_ts))
        .collect();

    let mut group = c.benchmark_group("seek-at-timestamp");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for state in ["active", "sealed"] {
        if state == "sealed" {
            log.roll_now().expect("seal the active segment");
        }
        check_seeks(&log, &targets);
        let mut next = 0;
        group.bench_function(BenchmarkId::from_parameter(state), |b| {
            b.iter(|| {
                let t = targets[next % targets.len()];
                next += 1;
                black_box(log.seek(Position::AtTimestamp(t)).expect("seek"))
            });
        });
    }
    group.finish();
    drop(log);
    drop(dir);
    c.final_summary();
}
