//! Fault injection: ENOSPC and EIO during writes and fsyncs give a clear error, poison the log,
//! and leave earlier data intact.

use std::sync::Arc;

use super::*;
use crate::Error;
use crate::io::sim::{CrashMode, EIO, ENOSPC, FaultOn, SimFs};

const DIR: &str = "/data/s/shard";

fn open_sim(fs: &SimFs, clock: &ManualClock) -> ShardLog {
    ShardLog::open(
        Arc::new(fs.clone()),
        DIR,
        small_config(),
        Arc::new(clock.clone()),
        0,
    )
    .expect("open")
}

fn fill(log: &ShardLog, n: usize) {
    for i in 0..n {
        append_one(log, &format!("k{i}"), &payload(&format!("k{i}"), 150));
    }
}

fn check_first(log: &ShardLog, n: usize) {
    let records = read_all(log);
    assert_eq!(records.len(), n);
    check_prefix(&records, n);
}

fn check_prefix(records: &[crate::Record], n: usize) {
    assert!(
        records.len() >= n,
        "{} records, {n} acknowledged",
        records.len()
    );
    for (i, record) in records[..n].iter().enumerate() {
        assert_eq!(&record.partition_key[..], format!("k{i}").as_bytes());
        assert_eq!(&record.data[..], &payload(&format!("k{i}"), 150)[..]);
    }
}

/// After a failure, the append that failed was not acknowledged, but its bytes may have
/// reached the disk whole: it may be there after a restart (at-least-once, like a Kinesis put
/// that timed out), never partly.
fn check_after_restart(
    log: &ShardLog,
    acked: usize,
    failed_key: &str,
    failed_data: &[u8],
) -> usize {
    let records = read_all(log);
    check_prefix(&records, acked);
    assert!(
        records.len() <= acked + 1,
        "at most the failed append is extra"
    );
    if let Some(extra) = records.get(acked) {
        assert_eq!(&extra.partition_key[..], failed_key.as_bytes());
        assert_eq!(&extra.data[..], failed_data);
    }
    records.len()
}

fn assert_poisoned(log: &ShardLog) {
    assert!(log.is_poisoned());
    let next = log.append(&[RecordInput {
        partition_key: b"k",
        explicit_hash_key: None,
        data: b"x",
    }]);
    assert!(matches!(next, Err(Error::Poisoned { .. })), "{next:?}");
    assert!(next.unwrap_err().to_string().contains("reopen"));
}

fn fault_case(on: FaultOn, errno: i32, expected_text: &str) {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let log = open_sim(&fs, &clock);
    fill(&log, 10);
    fs.inject(on, 0, errno);
    let error = log
        .append(&[RecordInput {
            partition_key: b"bad",
            explicit_hash_key: None,
            data: &[1; 100],
        }])
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains(expected_text), "{text}");
    assert!(text.contains(".seg"), "names the file: {text}");
    assert!(matches!(error, Error::Io { .. }));
    assert_poisoned(&log);
    check_first(&log, 10);
    assert_eq!(
        log.tip().next_sequence,
        10,
        "the failed append is not visible"
    );
    drop(log);

    // A machine crash keeps exactly the acknowledged records; a process restart may also find
    // the failed append, whole.
    let crashed = open_sim(&fs.crash_image(CrashMode::DropUnsynced), &clock);
    check_first(&crashed, 10);
    let restarted = open_sim(&fs, &clock);
    let count = check_after_restart(&restarted, 10, "bad", &[1; 100]);
    let next = append_one(&restarted, "after", b"x");
    assert_eq!(next, count as u64);
}

#[test]
fn enospc_during_write() {
    fault_case(FaultOn::Write, ENOSPC, "No space left on device");
}

#[test]
fn eio_during_write() {
    fault_case(FaultOn::Write, EIO, "Input/output error");
}

#[test]
fn enospc_during_fsync() {
    fault_case(FaultOn::SyncData, ENOSPC, "No space left on device");
}

#[test]
fn eio_during_fsync_is_never_retried_as_success() {
    fault_case(FaultOn::SyncData, EIO, "fdatasync");
}

#[test]
fn a_failure_while_rolling_a_segment_poisons_and_loses_nothing() {
    for nth in 0..6 {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        let log = open_sim(&fs, &clock);
        fill(&log, 20);
        let segments = log.stats().segments;
        // The next appends roll; fail the nth write from here on.
        fs.inject(FaultOn::Write, nth, ENOSPC);
        let mut acked = 20;
        let mut failed = String::new();
        for i in 20..60 {
            match log.append(&[RecordInput {
                partition_key: format!("k{i}").as_bytes(),
                explicit_hash_key: None,
                data: &payload(&format!("k{i}"), 150),
            }]) {
                Ok(_) => acked += 1,
                Err(_) => {
                    failed = format!("k{i}");
                    break;
                }
            }
        }
        assert!(log.is_poisoned(), "fault {nth} was hit");
        assert!(log.stats().segments >= segments);
        drop(log);
        let image = fs.crash_image(CrashMode::DropUnsynced);
        let log = open_sim(&image, &clock);
        check_after_restart(&log, acked, &failed, &payload(&failed, 150));
    }
}

#[test]
fn group_members_all_get_the_error() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let log = Arc::new(open_sim(&fs, &clock));
    fill(&log, 3);
    fs.inject(FaultOn::SyncData, 0, EIO);
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let log = log.clone();
                scope.spawn(move || {
                    log.append(&[RecordInput {
                        partition_key: b"g",
                        explicit_hash_key: None,
                        data: &[i; 10],
                    }])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        results.iter().all(|r| r.is_err()),
        "no append is acknowledged after the failed fsync"
    );
    check_first(&log, 3);
}
