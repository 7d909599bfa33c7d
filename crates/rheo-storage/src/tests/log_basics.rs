use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::{Error, Position, RecordInput};

#[test]
fn appended_records_read_back_in_order_across_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    let mut expected = Vec::new();
    for i in 0..200u64 {
        let key = format!("key-{i}");
        let data = payload(&key, (i as usize * 37) % 300);
        let seq = append_one(&log, &key, &data);
        assert_eq!(seq, i, "sequence numbers are dense and start at 0");
        expected.push((key, data));
        clock.advance_ms(1);
    }
    assert!(
        log.stats().segments > 5,
        "small segments roll: {:?}",
        log.stats()
    );
    let records = read_all(&log);
    assert_eq!(records.len(), 200);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.sequence, i as u64);
        assert_eq!(&record.partition_key[..], expected[i].0.as_bytes());
        assert_eq!(&record.data[..], &expected[i].1[..]);
        assert_eq!(record.timestamp_ms, T0 + i as i64);
    }
}

#[test]
fn batches_get_consecutive_sequences_and_one_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    let records: Vec<_> = (0..10)
        .map(|i| RecordInput {
            partition_key: b"k",
            explicit_hash_key: (i % 2 == 0).then_some(i as u128 * 1_000_000_007),
            data: b"x",
        })
        .collect();
    let first = log.append(&records).unwrap();
    let second = log.append(&records[..3]).unwrap();
    assert_eq!((first.first_sequence, first.count), (0, 10));
    assert_eq!((second.first_sequence, second.count), (10, 3));
    let read = read_all(&log);
    assert_eq!(read.len(), 13);
    assert!(read.iter().all(|r| r.timestamp_ms == T0));
    assert_eq!(read[4].explicit_hash_key, Some(4_000_000_028));
    assert_eq!(read[5].explicit_hash_key, None);
}

#[test]
fn timestamps_never_decrease_even_when_the_clock_does() {
    #[derive(Debug)]
    struct Backwards(std::sync::atomic::AtomicI64);
    impl Clock for Backwards {
        fn now_ms(&self) -> i64 {
            self.0.fetch_sub(1000, std::sync::atomic::Ordering::SeqCst)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(Backwards(T0.into()));
    let log = ShardLog::open(Arc::new(StdFs), dir.path(), small_config(), clock, 0).unwrap();
    let stamps: Vec<i64> = (0..5)
        .map(|_| {
            log.append(&[RecordInput {
                partition_key: b"k",
                explicit_hash_key: None,
                data: b"",
            }])
            .unwrap()
            .timestamp_ms
        })
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
}

#[test]
fn read_budgets_bound_records_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    for i in 0..50 {
        append_one(&log, "k", &payload(&format!("{i}"), 100));
    }
    let by_count = log.read(0, 7, usize::MAX).unwrap();
    assert_eq!(by_count.records.len(), 7);
    assert_eq!(by_count.next_sequence, 7);
    // 101 bytes per record (1-byte key + 100 bytes of data).
    let by_bytes = log.read(7, 1000, 350).unwrap();
    assert_eq!(by_bytes.records.len(), 3);
    assert_eq!(by_bytes.next_sequence, 10);
    let tiny = log.read(10, 1000, 1).unwrap();
    assert_eq!(
        tiny.records.len(),
        1,
        "a record larger than the budget is still returned"
    );
    let rest = log.read(11, 1000, usize::MAX).unwrap();
    assert_eq!(rest.records.len(), 39);
    assert_eq!(rest.next_sequence, 50);
    assert_eq!(rest.millis_behind_latest, 0);
}

#[test]
fn positions_resolve_like_shard_iterators() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    for i in 0..100 {
        append_one(&log, "k", &payload("data", 64));
        if i % 10 == 9 {
            clock.advance_ms(1000);
        }
    }
    assert_eq!(log.seek(Position::TrimHorizon).unwrap(), 0);
    assert_eq!(log.seek(Position::Latest).unwrap(), 100);
    assert_eq!(log.seek(Position::AtSequence(42)).unwrap(), 42);
    assert_eq!(log.seek(Position::AfterSequence(42)).unwrap(), 43);
    assert_eq!(log.seek(Position::AtTimestamp(0)).unwrap(), 0);
    assert_eq!(log.seek(Position::AtTimestamp(T0 + 3000)).unwrap(), 30);
    assert_eq!(
        log.seek(Position::AtTimestamp(T0 + 2500)).unwrap(),
        30,
        "next later record"
    );
    assert_eq!(log.seek(Position::AtTimestamp(T0 + 9000)).unwrap(), 90);
    assert_eq!(
        log.seek(Position::AtTimestamp(T0 + 99_000)).unwrap(),
        100,
        "after the tip"
    );
    assert!(matches!(
        log.seek(Position::AtSequence(101)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        log.seek(Position::AfterSequence(100)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        log.read(101, 1, 1),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn millis_behind_latest_is_the_age_of_the_oldest_unread_record() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    append_one(&log, "k", b"old");
    clock.advance_ms(5000);
    append_one(&log, "k", b"new");
    clock.advance_ms(1000);
    let first = log.read(0, 1, usize::MAX).unwrap();
    assert_eq!(first.millis_behind_latest, 1000, "record 1 arrived 1 s ago");
    let caught_up = log.read(1, 10, usize::MAX).unwrap();
    assert_eq!(caught_up.millis_behind_latest, 0);
}

#[test]
fn retention_hides_old_records_exactly_and_deletes_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        retention: Duration::from_secs(3600),
        ..small_config()
    };
    let log = open_std(dir.path(), config, &clock);
    for _ in 0..100 {
        append_one(&log, "k", &payload("x", 100));
        clock.advance_ms(60_000);
    }
    // Now = T0 + 100 min; retention 60 min: records 40.. (arrived at T0 + 40 min and later).
    let horizon = log.trim_horizon().unwrap();
    assert_eq!(horizon, 40);
    assert_eq!(read_all(&log)[0].sequence, 40);
    let outcome = log.read(0, 10, usize::MAX).unwrap();
    assert_eq!(
        outcome.records[0].sequence, 40,
        "reads never return records past retention"
    );
    assert_eq!(log.seek(Position::AtSequence(3)).unwrap(), 40);
    assert_eq!(log.seek(Position::AtTimestamp(T0)).unwrap(), 40);

    let before = log.stats();
    let report = log.maintain().unwrap();
    assert!(report.segments_deleted > 0);
    assert_eq!(
        log.metrics().retention_deleted_segments,
        report.segments_deleted as u64
    );
    let after = log.stats();
    assert!(after.segments < before.segments);
    assert!(
        after.first_sequence <= 40 && after.first_sequence > 0,
        "{after:?}"
    );
    let on_disk = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(
        on_disk,
        after.segments * 2 + 1,
        "segment and index files plus LOCK"
    );

    // Shortening retention hides more at once; lengthening it does not revive data.
    log.set_retention(Duration::from_secs(2 * 3600)).unwrap();
    assert_eq!(log.trim_horizon().unwrap(), 40);
    clock.advance_ms(30 * 60_000);
    log.set_retention(Duration::from_secs(3600)).unwrap();
    assert_eq!(log.trim_horizon().unwrap(), 70);
    assert!(
        log.set_retention(Duration::from_secs(60)).is_err(),
        "below the 1-hour floor"
    );
}

#[test]
fn an_idle_segment_rolls_by_age_so_retention_can_reclaim_it() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        segment_max_bytes: 1 << 20,
        segment_max_age: Duration::from_secs(600),
        retention: Duration::from_secs(3600),
        ..small_config()
    };
    let log = open_std(dir.path(), config, &clock);
    append_one(&log, "k", b"lonely");
    assert_eq!(log.stats().segments, 1);
    clock.advance_ms(601_000);
    assert!(log.maintain().unwrap().rolled);
    assert_eq!(log.stats().segments, 2);
    clock.advance_ms(3_600_000);
    assert_eq!(log.maintain().unwrap().segments_deleted, 1);
    assert!(read_all(&log).is_empty());
    assert_eq!(log.tip().next_sequence, 1);
    assert_eq!(
        append_one(&log, "k", b"next"),
        1,
        "sequence numbers continue"
    );
}

#[test]
fn a_reader_keeps_a_segment_that_retention_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        retention: Duration::from_secs(3600),
        ..small_config()
    };
    let log = open_std(dir.path(), config, &clock);
    for _ in 0..40 {
        append_one(&log, "k", &payload("held", 200));
    }
    let held = log.read(0, 5, usize::MAX).unwrap();
    clock.advance_ms(2 * 3_600_000);
    assert!(log.maintain().unwrap().segments_deleted > 0);
    assert!(!dir.path().join(crate::segment::segment_name(0)).exists());
    for record in &held.records {
        assert_eq!(
            &record.data[..],
            &payload("held", 200)[..],
            "mapped bytes stay valid"
        );
    }
}

#[test]
fn records_over_the_limit_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        max_record_bytes: 1000,
        ..small_config()
    };
    let log = open_std(dir.path(), config, &clock);
    append_one(&log, "k", b"ok");
    let big = vec![0u8; 1000];
    let error = log
        .append(&[
            RecordInput {
                partition_key: b"k",
                explicit_hash_key: None,
                data: b"fine",
            },
            RecordInput {
                partition_key: b"k",
                explicit_hash_key: None,
                data: &big,
            },
        ])
        .unwrap_err();
    assert!(
        error.to_string().contains("record 1: 1001 bytes"),
        "{error}"
    );
    assert_eq!(log.tip().next_sequence, 1);
    assert_eq!(read_all(&log).len(), 1);
}

#[test]
fn a_log_can_only_be_opened_once() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let second = ShardLog::open(fs, dir.path(), small_config(), Arc::new(clock.clone()), 0);
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    drop(log);
    open_std(dir.path(), small_config(), &clock);
}

#[test]
fn concurrent_appenders_share_group_commits() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        segment_max_bytes: 1 << 20,
        ..small_config()
    };
    let log = Arc::new(open_std(dir.path(), config, &clock));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        append_one(
                            &log,
                            &format!("t{t}-{i}"),
                            &payload(&format!("t{t}-{i}"), 50),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (0..400).collect::<Vec<_>>(),
        "every append got a distinct sequence"
    );
    let records = read_all(&log);
    assert_eq!(records.len(), 400);
    for record in records {
        let key = std::str::from_utf8(&record.partition_key).unwrap();
        assert_eq!(&record.data[..], &payload(key, 50)[..]);
    }
}

#[test]
fn reopening_continues_where_the_log_left_off() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    {
        let log = open_std(dir.path(), small_config(), &clock);
        for i in 0..120 {
            append_one(&log, "k", &payload(&format!("{i}"), 90));
        }
    }
    clock.advance_ms(10);
    let log = open_std(dir.path(), small_config(), &clock);
    assert_eq!(log.tip().next_sequence, 120);
    assert_eq!(append_one(&log, "k", b"more"), 120);
    let records = read_all(&log);
    assert_eq!(records.len(), 121);
    assert_eq!(&records[57].data[..], &payload("57", 90)[..]);
    assert_eq!(log.seek(Position::AtTimestamp(T0 + 5)).unwrap(), 120);
}

#[test]
fn a_new_log_can_start_at_any_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let log = ShardLog::open(
        fs,
        dir.path(),
        small_config(),
        Arc::new(ManualClock::new(T0)),
        1 << 40,
    )
    .unwrap();
    assert_eq!(append_one(&log, "k", b"v"), 1 << 40);
}

#[test]
fn callback_appends_mix_with_blocking_ones() {
    use std::sync::mpsc;

    use crate::Completion;

    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        segment_max_bytes: 1 << 20,
        ..small_config()
    };
    let log = Arc::new(open_std(dir.path(), config, &clock));
    let (done_tx, done_rx) = mpsc::channel();
    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let key = format!("cb{t}-{i}");
                    let data = payload(&key, 40);
                    let (log_for_lead, done_tx) = (log.clone(), done_tx.clone());
                    let key_for_done = key.clone();
                    let callback: crate::Callback = Box::new(move |completion| match completion {
                        // Leadership handed over: lead from another thread, as an async
                        // caller would from a blocking pool.
                        Completion::Lead(turn) => {
                            let log = log_for_lead.clone();
                            std::thread::spawn(move || log.lead(turn));
                        }
                        Completion::Done(result) => {
                            done_tx
                                .send((key_for_done.clone(), result.map(|a| a.first_sequence)))
                                .unwrap();
                        }
                    });
                    let records = [RecordInput {
                        partition_key: key.as_bytes(),
                        explicit_hash_key: None,
                        data: &data,
                    }];
                    if let Some(turn) = log.submit(&records, callback).unwrap() {
                        log.lead(turn);
                    }
                }
            })
        })
        .collect();
    let blocking: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let key = format!("bl{t}-{i}");
                    append_one(&log, &key, &payload(&key, 40));
                }
            })
        })
        .collect();
    for handle in submitters.into_iter().chain(blocking) {
        handle.join().unwrap();
    }
    drop(done_tx);
    let completed: Vec<_> = done_rx.iter().collect();
    assert_eq!(
        completed.len(),
        200,
        "every callback append completes exactly once"
    );
    assert!(completed.iter().all(|(_, result)| result.is_ok()));
    let records = read_all(&log);
    assert_eq!(records.len(), 400);
    for record in &records {
        let key = std::str::from_utf8(&record.partition_key).unwrap();
        assert_eq!(&record.data[..], &payload(key, 40)[..]);
    }
    for (key, sequence) in completed {
        assert_eq!(
            &records[sequence.unwrap() as usize].partition_key[..],
            key.as_bytes()
        );
    }
    let bad = log.submit(&[], Box::new(|_| panic!("never called for bad input")));
    assert!(bad.is_err());
}

#[test]
fn closing_for_writes_commits_what_is_queued_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = Arc::new(open_std(dir.path(), small_config(), &clock));
    // Writers race the close: every append either succeeds (and is below the end) or is
    // refused with Closed; none lands after the end.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut stored = Vec::new();
                for i in 0..200 {
                    match log.append(&[RecordInput {
                        partition_key: b"k",
                        explicit_hash_key: None,
                        data: format!("{w}-{i}").as_bytes(),
                    }]) {
                        Ok(appended) => stored.push(appended.first_sequence),
                        Err(Error::Closed { .. }) => return stored,
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
                stored
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    let end = log.close_writes().unwrap();
    assert!(log.is_closed());
    let stored: Vec<u64> = writers
        .into_iter()
        .flat_map(|writer| writer.join().unwrap())
        .collect();
    assert!(stored.iter().all(|&seq| seq < end), "nothing after the end");
    assert_eq!(
        stored.len() as u64,
        end,
        "every acknowledged record is below the end"
    );
    assert_eq!(log.tip().next_sequence, end);
    assert_eq!(read_all(&log).len() as u64, end, "still readable");
    let refused = log.submit(
        &[RecordInput {
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"late",
        }],
        Box::new(|_| panic!("a refused submit is never called back")),
    );
    assert!(matches!(refused, Err(Error::Closed { .. })));
}

#[test]
fn a_close_that_is_undone_lets_appends_continue_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    for i in 0..5 {
        append_one(&log, "k", &payload("k", 10 + i));
    }
    let end = log.close_writes().unwrap();
    let late = RecordInput {
        partition_key: b"k",
        explicit_hash_key: None,
        data: b"late",
    };
    assert!(matches!(log.append(&[late]), Err(Error::Closed { .. })));
    log.reopen_writes().unwrap();
    assert!(!log.is_closed());
    let appended = log.append(&[late]).unwrap();
    assert_eq!(appended.first_sequence, end, "no gap and no reuse");
    assert_eq!(read_all(&log).len() as u64, end + 1);
    drop(log);
    let reopened = open_std(dir.path(), small_config(), &clock);
    assert_eq!(read_all(&reopened).len() as u64, end + 1, "durable");
}

#[test]
fn metrics_count_every_fdatasync_and_group() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let log = open_std(dir.path(), small_config(), &clock);
    for i in 0..30 {
        append_one(&log, "k", &payload("k", 10 + i));
    }
    let stats = log.stats();
    let metrics = log.metrics();
    assert_eq!(metrics.group_appends.count, stats.groups_committed);
    assert_eq!(
        metrics.group_appends.buckets[0].1, 30,
        "one append per group, alone"
    );
    assert_eq!(metrics.sync_seconds.count, stats.data_syncs);
    assert!(metrics.sync_seconds.sum > 0.0);
    assert_eq!(metrics.corruptions, 0);
}
