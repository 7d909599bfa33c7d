//! Crash at every sync point, on the simulated file system: whatever was not synced is dropped
//! (or kept, or torn sector by sector), the log is reopened, and every acknowledged record must
//! be there, unchanged, with nothing half-written visible.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::io::sim::{CrashMode, SimFs};
use crate::{Error, verify_tree};

const DIR: &str = "/data/stream/shard-0";

fn open_sim(fs: &SimFs, clock: &ManualClock) -> crate::Result<ShardLog> {
    open_config(
        fs,
        clock,
        LogConfig {
            segment_max_bytes: 2048,
            index_interval_bytes: 128,
            ..small_config()
        },
    )
}

fn open_config(fs: &SimFs, clock: &ManualClock, config: LogConfig) -> crate::Result<ShardLog> {
    ShardLog::open(
        Arc::new(fs.clone()),
        DIR,
        maybe_encrypted(config, DIR),
        Arc::new(clock.clone()),
        0,
    )
}

/// What the workload tried to write, by key, and what was acknowledged, by sequence.
#[derive(Default)]
struct Ledger {
    attempted: BTreeMap<String, Vec<u8>>,
    acked: BTreeMap<u64, String>,
}

/// Appends batches from `threads` threads until the file system dies (or `per_thread` each).
fn workload(log: &ShardLog, clock: &ManualClock, threads: usize, per_thread: usize) -> Ledger {
    let ledger = std::sync::Mutex::new(Ledger::default());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let ledger = &ledger;
            scope.spawn(move || {
                for i in 0..per_thread {
                    let keys: Vec<String> =
                        (0..1 + i % 3).map(|r| format!("t{t}-{i}-{r}")).collect();
                    let datas: Vec<Vec<u8>> = keys
                        .iter()
                        .map(|key| payload(key, 40 + (i * 53) % 200))
                        .collect();
                    {
                        let mut ledger = ledger.lock().unwrap();
                        for (key, data) in keys.iter().zip(&datas) {
                            ledger.attempted.insert(key.clone(), data.clone());
                        }
                    }
                    let records: Vec<RecordInput> = keys
                        .iter()
                        .zip(&datas)
                        .map(|(key, data)| RecordInput {
                            partition_key: key.as_bytes(),
                            explicit_hash_key: None,
                            data,
                        })
                        .collect();
                    clock.advance_ms(7);
                    match log.append(&records) {
                        Ok(appended) => {
                            let mut ledger = ledger.lock().unwrap();
                            for (index, key) in keys.into_iter().enumerate() {
                                ledger.acked.insert(appended.sequence(index as u32), key);
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    ledger.into_inner().unwrap()
}

/// Reopens a crash image and checks it against the ledger.
fn check_recovered(image: &SimFs, clock: &ManualClock, ledger: &Ledger, context: &str) {
    let report = verify_tree(image, std::path::Path::new(DIR)).expect("verify");
    assert_eq!(
        report.corruptions(),
        0,
        "{context}: verify found corruption: {report:?}"
    );
    let log =
        open_sim(image, clock).unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    let records = read_all(&log);
    let mut by_seq = BTreeMap::new();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(
            record.sequence, index as u64,
            "{context}: sequence numbers are dense"
        );
        let key = String::from_utf8(record.partition_key.to_vec()).unwrap();
        let attempted = ledger
            .attempted
            .get(&key)
            .unwrap_or_else(|| panic!("{context}: record {key:?} was never written"));
        assert_eq!(
            &record.data[..],
            &attempted[..],
            "{context}: record {key} is intact"
        );
        assert_eq!(record.encrypted, encryption_on(), "{context}: {key}");
        by_seq.insert(record.sequence, key);
    }
    for (seq, key) in &ledger.acked {
        assert_eq!(
            by_seq.get(seq),
            Some(key),
            "{context}: acknowledged record {seq} survives"
        );
    }
    // The recovered log takes new appends after whatever survived.
    let next = append_one(&log, "after-crash", b"!");
    assert_eq!(next, records.len() as u64, "{context}");
}

#[test]
fn every_acknowledged_record_survives_a_crash_at_every_sync_point() {
    crash_at_every_sync_point();
}

#[test]
fn encrypted_records_survive_a_crash_at_every_sync_point() {
    encrypted(crash_at_every_sync_point);
}

fn crash_at_every_sync_point() {
    // A dry run counts the sync points of the whole workload.
    let dry = SimFs::new();
    let clock = ManualClock::new(T0);
    let log = open_sim(&dry, &clock).unwrap();
    let ledger = workload(&log, &clock, 1, 60);
    assert_eq!(ledger.acked.len(), ledger.attempted.len());
    assert!(
        log.stats().segments > 4,
        "the workload rolls segments: {:?}",
        log.stats()
    );
    drop(log);
    let total_syncs = dry.sync_count();

    for crash_at in 0..total_syncs {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        fs.crash_at_sync(crash_at);
        let ledger = match open_sim(&fs, &clock) {
            Ok(log) => workload(&log, &clock, 1, 60),
            Err(_) => Ledger::default(),
        };
        assert!(fs.has_crashed(), "sync {crash_at} is reached");
        for mode in every_crash_mode(crash_at * 31 + 7) {
            let image = fs.crash_image(mode);
            check_recovered(
                &image,
                &clock,
                &ledger,
                &format!("crash at sync {crash_at}, {mode:?}"),
            );
        }
    }
}

#[test]
fn concurrent_group_commits_survive_crashes() {
    for crash_at in (5..120).step_by(7) {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        fs.crash_at_sync(crash_at);
        let log = open_sim(&fs, &clock).unwrap();
        let ledger = workload(&log, &clock, 4, 40);
        drop(log);
        for seed in 0..3 {
            let image = fs.crash_image(CrashMode::Torn(crash_at ^ (seed << 16)));
            check_recovered(
                &image,
                &clock,
                &ledger,
                &format!("4 threads, crash at {crash_at}, seed {seed}"),
            );
        }
    }
}

#[test]
fn a_crash_image_recovered_twice_is_stable() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    fs.crash_at_sync(40);
    let log = open_sim(&fs, &clock).unwrap();
    let ledger = workload(&log, &clock, 2, 40);
    drop(log);
    let image = fs.crash_image(CrashMode::Torn(99));
    let first = {
        let log = open_sim(&image, &clock).unwrap();
        read_all(&log)
    };
    // Crash again right after recovery, keeping only what recovery synced.
    let again = image.crash_image(CrashMode::DropUnsynced);
    let log = open_sim(&again, &clock).unwrap();
    let second = read_all(&log);
    assert_eq!(first, second, "recovery made what it kept durable");
    assert!(
        ledger
            .acked
            .keys()
            .all(|seq| (*seq as usize) < second.len())
    );
    assert!(matches!(
        open_sim(&again, &clock),
        Err(Error::Locked { .. })
    ));
}

fn open_with(fs: &SimFs, clock: &ManualClock, durability: crate::Durability) -> ShardLog {
    open_config(
        fs,
        clock,
        LogConfig {
            durability,
            segment_max_bytes: 1 << 20,
            ..small_config()
        },
    )
    .unwrap()
}

#[test]
fn the_interval_policy_syncs_when_due_and_a_crash_keeps_what_was_synced() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let interval = std::time::Duration::from_millis(50);
    let log = open_with(&fs, &clock, crate::Durability::Interval(interval));
    append_one(&log, "k0", b"early");
    let after_first = fs.sync_count();
    for i in 1..10 {
        append_one(&log, &format!("k{i}"), b"early");
    }
    assert_eq!(
        fs.sync_count(),
        after_first,
        "no fdatasync before the interval has passed"
    );
    clock.advance_ms(100);
    // The next append finds the last fdatasync too old and syncs its group.
    append_one(&log, "k10", b"synced by append");
    assert!(fs.sync_count() > after_first, "the interval fdatasync ran");
    for i in 11..15 {
        append_one(&log, &format!("k{i}"), b"late");
    }
    clock.advance_ms(100);
    assert!(
        log.maintain().unwrap().synced,
        "maintain syncs a dirty log whose interval passed"
    );
    append_one(&log, "k15", b"unsynced");

    let image = fs.crash_image(CrashMode::DropUnsynced);
    let recovered = open_with(&image, &clock, crate::Durability::Sync);
    let keys: Vec<String> = read_all(&recovered)
        .iter()
        .map(|record| String::from_utf8(record.partition_key.to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = (0..15).map(|i| format!("k{i}")).collect();
    assert_eq!(
        keys, expected,
        "everything up to the last interval sync survives, nothing after"
    );
}

#[test]
fn the_none_policy_loses_unsynced_records_in_a_crash_but_not_in_a_clean_close() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let log = open_with(&fs, &clock, crate::Durability::None);
    for i in 0..5 {
        append_one(&log, &format!("k{i}"), b"x");
    }
    let crashed = fs.crash_image(CrashMode::DropUnsynced);
    assert!(read_all(&open_with(&crashed, &clock, crate::Durability::Sync)).is_empty());
    log.close().unwrap();
    let after_close = fs.crash_image(CrashMode::DropUnsynced);
    assert_eq!(
        read_all(&open_with(&after_close, &clock, crate::Durability::Sync)).len(),
        5
    );
}
