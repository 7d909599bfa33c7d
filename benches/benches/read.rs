//! Sequential read throughput of `ShardLog::read`, from the active segment (pread through a
//! read-ahead window) and from sealed segments (memory maps).
//!
//! For each record size (100 B, 1 KiB, 64 KiB) a log of 256 MiB of record data is written in
//! batches of 100 records with `Durability::None` and a segment size large enough that it all
//! stays in the active segment. `read/active/<record>` then reads it from the first record to
//! the tip with `read(from, 10_000, 10 MiB)` calls; the segment is sealed with `roll_now` and
//! `read/sealed/<record>` reads it again. One criterion iteration is one full pass; throughput
//! counts record data bytes. The log was just written, so its pages are in the page cache:
//! these are not cold-disk figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use rheo_benches::{BatchData, KIB, MIB, fill_log, note, open_log, scaled, scratch, size_label};
use rheo_storage::io::StdFs;
use rheo_storage::{Durability, LogConfig, Position, ShardLog, SystemClock};

const MAX_RECORDS: usize = 10_000;
const MAX_BYTES: usize = 10 * MIB;

/// Reads every record from the trim horizon to the tip. Returns (records, data bytes, calls).
fn read_all(log: &ShardLog) -> (u64, u64, u64) {
    let mut from = log
        .seek(Position::TrimHorizon)
        .expect("seek to the trim horizon");
    let tip = log.tip().next_sequence;
    let (mut records, mut bytes, mut calls) = (0u64, 0u64, 0u64);
    while from < tip {
        let outcome = log.read(from, MAX_RECORDS, MAX_BYTES).expect("read");
        assert!(
            outcome.next_sequence > from,
            "a read from {from} below the tip {tip} made no progress"
        );
        for record in &outcome.records {
            bytes += record.data.len() as u64;
        }
        records += outcome.records.len() as u64;
        calls += 1;
        from = outcome.next_sequence;
        black_box(outcome);
    }
    (records, bytes, calls)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let log_bytes = scaled(256 * MIB as u64, MIB as u64);
    for record in [100, KIB, 64 * KIB] {
        let dir = scratch("read");
        let config = LogConfig {
            durability: Durability::None,
            segment_max_bytes: 1024 * MIB as u64,
            ..LogConfig::default()
        };
        let log = open_log(
            Arc::new(StdFs),
            &dir.path().join("log"),
            config,
            Arc::new(SystemClock),
        );
        let batch = BatchData::new("read-bench", record, 100);
        fill_log(&log, &batch, log_bytes, None);
        log.sync().expect("sync the built log");
        assert_eq!(
            log.stats().segments,
            1,
            "the log fits in its active segment"
        );

        let mut group = c.benchmark_group("read");
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .sampling_mode(SamplingMode::Flat);
        for state in ["active", "sealed"] {
            if state == "sealed" {
                log.roll_now().expect("seal the active segment");
                assert_eq!(
                    log.stats().segments,
                    2,
                    "one sealed segment, one empty active"
                );
            }
            let (records, bytes, calls) = read_all(&log);
            note(&format!(
                "read/{state}/{}: one pass = {records} records, {bytes} data bytes, {calls} read calls",
                size_label(record)
            ));
            group.throughput(Throughput::BytesDecimal(bytes));
            group.bench_function(BenchmarkId::new(state, size_label(record)), |b| {
                b.iter(|| read_all(&log));
            });
        }
        group.finish();
        drop(log);
        drop(dir);
    }
    c.final_summary();
}
