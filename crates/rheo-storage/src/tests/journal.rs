//! The node journal: one commit for many logs, crashes at every sync point of journal,
//! segments and checkpoint (on the simulated file system), replay, and journal damage.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::io::sim::{CrashMode, EIO, ENOSPC, FaultOn, SimFs};
use crate::{Error, Journal, JournalConfig};

const JOURNAL: &str = "/data/journal";
const LOGS: usize = 3;

fn log_dir(index: usize) -> String {
    format!("/data/streams/s/shard-{index}")
}

fn small_journal() -> JournalConfig {
    JournalConfig {
        checkpoint_bytes: 4096,
        ..JournalConfig::default()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_max_bytes: 2048,
        index_interval_bytes: 128,
        ..small_config()
    }
}

/// A journal and `LOGS` logs on `fs`, recovered and running.
struct Node {
    journal: Journal,
    logs: Vec<Arc<ShardLog>>,
}

fn open_node(fs: &SimFs, clock: &ManualClock, config: JournalConfig) -> crate::Result<Node> {
    let fs: Arc<dyn Fs> = Arc::new(fs.clone());
    let journal = Journal::open(fs.clone(), JOURNAL, config)?;
    let mut logs = Vec::new();
    for index in 0..LOGS {
        logs.push(ShardLog::open_journaled(
            &journal,
            format!("s/{index}"),
            fs.clone(),
            log_dir(index),
            maybe_encrypted(log_config(), &format!("s/{index}")),
            Arc::new(clock.clone()),
            0,
        )?);
    }
    journal.finish_recovery()?;
    Ok(Node { journal, logs })
}

impl Node {
    /// Stops as a process would at exit: logs first, then the journal drains and checkpoints.
    fn close(self) {
        drop(self.logs);
        drop(self.journal);
    }
}

/// What the workload tried to write and what was acknowledged, per log.
#[derive(Default)]
struct Ledger {
    attempted: BTreeMap<String, Vec<u8>>,
    acked: Vec<BTreeMap<u64, String>>,
}

/// `threads` threads, each appending to every log in turn, until the file system dies.
fn workload(node: &Node, clock: &ManualClock, threads: usize, per_thread: usize) -> Ledger {
    let ledger = std::sync::Mutex::new(Ledger {
        acked: vec![BTreeMap::new(); LOGS],
        ..Ledger::default()
    });
    std::thread::scope(|scope| {
        for t in 0..threads {
            let ledger = &ledger;
            scope.spawn(move || {
                for i in 0..per_thread {
                    let which = (t + i) % LOGS;
                    let key = format!("l{which}-t{t}-{i}");
                    let data = payload(&key, 30 + (i * 37) % 150);
                    ledger
                        .lock()
                        .unwrap()
                        .attempted
                        .insert(key.clone(), data.clone());
                    clock.advance_ms(3);
                    let record = RecordInput {
                        partition_key: key.as_bytes(),
                        explicit_hash_key: None,
                        data: &data,
                    };
                    match node.logs[which].append(&[record]) {
                        Ok(appended) => {
                            ledger.lock().unwrap().acked[which]
                                .insert(appended.first_sequence, key);
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    });
    ledger.into_inner().unwrap()
}

fn check_recovered(image: &SimFs, clock: &ManualClock, ledger: &Ledger, context: &str) {
    let node = open_node(image, clock, small_journal())
        .unwrap_or_else(|error| panic!("{context}: reopen failed: {error}"));
    for (index, log) in node.logs.iter().enumerate() {
        let records = read_all(log);
        let mut by_seq = BTreeMap::new();
        for (at, record) in records.iter().enumerate() {
            assert_eq!(
                record.sequence, at as u64,
                "{context}: log {index} is dense"
            );
            let key = String::from_utf8(record.partition_key.to_vec()).unwrap();
            let attempted = ledger
                .attempted
                .get(&key)
                .unwrap_or_else(|| panic!("{context}: record {key:?} was never written"));
            assert_eq!(&record.data[..], &attempted[..], "{context}: {key} intact");
            assert_eq!(
                record.encrypted,
                encryption_on(),
                "{context}: {key} encrypted"
            );
            by_seq.insert(record.sequence, key);
        }
        for (seq, key) in &ledger.acked[index] {
            assert_eq!(
                by_seq.get(seq),
                Some(key),
                "{context}: acknowledged record {seq} of log {index} survives"
            );
        }
        let next = append_one(log, "after-crash", b"!");
        assert_eq!(next, records.len() as u64, "{context}: log {index} appends");
    }
    node.close();
}

#[test]
fn one_commit_and_one_fdatasync_serve_many_logs() {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn Fs> = Arc::new(crate::io::StdFs);
    let clock = ManualClock::new(T0);
    let journal = Journal::open(
        fs.clone(),
        dir.path().join("journal"),
        JournalConfig::default(),
    )
    .unwrap();
    let logs: Vec<Arc<ShardLog>> = (0..16)
        .map(|index| {
            ShardLog::open_journaled(
                &journal,
                format!("k{index}"),
                fs.clone(),
                dir.path().join(format!("log-{index}")),
                small_config(),
                Arc::new(clock.clone()),
                0,
            )
            .unwrap()
        })
        .collect();
    journal.finish_recovery().unwrap();
    // 16 threads, one per log, appending at once: commits gather many logs.
    std::thread::scope(|scope| {
        for (index, log) in logs.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..40 {
                    append_one(log, &format!("{index}-{i}"), &payload("x", 100));
                }
            });
        }
    });
    let stats = journal.stats();
    assert_eq!(
        stats.groups,
        16 * 40,
        "every append was one group: {stats:?}"
    );
    assert!(
        stats.syncs < stats.groups / 2,
        "fdatasyncs are shared between logs: {stats:?}"
    );
    for (index, log) in logs.iter().enumerate() {
        let records = read_all(log);
        assert_eq!(records.len(), 40, "log {index}");
        assert_eq!(
            records[7].partition_key.as_ref(),
            format!("{index}-7").as_bytes()
        );
        // Only rolls synced the segments; no group waited for a segment fdatasync of its own.
        assert!(
            log.stats().data_syncs <= log.stats().segments as u64,
            "log {index}: {:?}",
            log.stats()
        );
    }
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
    let dry = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&dry, &clock, small_journal()).unwrap();
    let ledger = workload(&node, &clock, 1, 45);
    assert_eq!(
        ledger.acked.iter().map(BTreeMap::len).sum::<usize>(),
        45,
        "the dry run acknowledges everything"
    );
    assert!(
        node.journal.stats().checkpoints > 0,
        "the workload checkpoints: {:?}",
        node.journal.stats()
    );
    node.close();
    let total_syncs = dry.sync_count();

    for crash_at in 0..total_syncs {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        fs.crash_at_sync(crash_at);
        let ledger = match open_node(&fs, &clock, small_journal()) {
            Ok(node) => {
                let ledger = workload(&node, &clock, 1, 45);
                node.close();
                ledger
            }
            Err(_) => Ledger {
                acked: vec![BTreeMap::new(); LOGS],
                ..Ledger::default()
            },
        };
        for mode in every_crash_mode(crash_at * 31 + 7) {
            let image = fs.crash_image(mode);
            check_recovered(
                &image,
                &clock,
                &ledger,
                &format!("crash at sync {crash_at} of {total_syncs}, {mode:?}"),
            );
        }
    }
}

#[test]
fn concurrent_commits_across_logs_survive_crashes() {
    for crash_at in (6..200).step_by(11) {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        fs.crash_at_sync(crash_at);
        let ledger = match open_node(&fs, &clock, small_journal()) {
            Ok(node) => {
                let ledger = workload(&node, &clock, 4, 30);
                node.close();
                ledger
            }
            Err(_) => continue,
        };
        for seed in 0..3 {
            let image = fs.crash_image(CrashMode::Torn(crash_at ^ (seed << 20)));
            check_recovered(
                &image,
                &clock,
                &ledger,
                &format!("4 threads, crash at {crash_at}, seed {seed}"),
            );
        }
    }
}

/// Segment data written but never synced, the journal synced: a machine crash loses the
/// segments' tails and recovery writes them back from the journal.
#[test]
fn a_lost_segment_tail_is_replayed_from_the_journal() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    let ledger = workload(&node, &clock, 2, 12);
    // The crash: nothing unsynced survives, and the node never stops cleanly.
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);

    check_recovered(&image, &clock, &ledger, "segments lost their tails");
    let reopened = open_node(&image, &clock, JournalConfig::default()).unwrap();
    let replayed = reopened.journal.stats().replayed_entries;
    assert_eq!(
        replayed, 0,
        "the first recovery wrote the tails back for good"
    );
    reopened.close();
}

#[test]
fn replay_counts_what_it_wrote_back() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    for i in 0..5 {
        append_one(&node.logs[i % LOGS], &format!("r{i}"), b"data");
    }
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    let node = open_node(&image, &clock, JournalConfig::default()).unwrap();
    assert_eq!(node.journal.stats().replayed_entries, 5);
    assert_eq!(read_all(&node.logs[0]).len(), 2);
    assert_eq!(read_all(&node.logs[1]).len(), 2);
    assert_eq!(read_all(&node.logs[2]).len(), 1);
    node.close();
}

#[test]
fn entries_of_a_log_that_is_not_opened_again_are_dropped_and_never_reach_a_new_key() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    append_one(&node.logs[0], "old-incarnation", b"old");
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);

    // The log's directory is gone (its stream was deleted) and a new log takes its path
    // under a new key: it starts empty.
    let sim: Arc<dyn Fs> = Arc::new(image.clone());
    let journal = Journal::open(sim.clone(), JOURNAL, JournalConfig::default()).unwrap();
    for name in image.list_dir(Path::new(&log_dir(0))).unwrap() {
        image
            .remove_file(&Path::new(&log_dir(0)).join(name))
            .unwrap();
    }
    let fresh = ShardLog::open_journaled(
        &journal,
        "s/0-new",
        sim.clone(),
        log_dir(0),
        log_config(),
        Arc::new(clock.clone()),
        0,
    )
    .unwrap();
    journal.finish_recovery().unwrap();
    assert!(read_all(&fresh).is_empty());
    drop(fresh);
    drop(journal);
    // The dropped entries are gone for good: the old key finds nothing either.
    let journal = Journal::open(sim.clone(), JOURNAL, JournalConfig::default()).unwrap();
    let old = ShardLog::open_journaled(
        &journal,
        "s/0",
        sim,
        log_dir(0),
        log_config(),
        Arc::new(clock.clone()),
        0,
    )
    .unwrap();
    assert!(read_all(&old).is_empty());
}

#[test]
fn a_missing_segment_that_the_journal_covers_is_corruption() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    append_one(&node.logs[1], "k", b"acknowledged");
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    let dir = std::path::PathBuf::from(log_dir(1));
    for name in image.list_dir(&dir).unwrap() {
        image.remove_file(&dir.join(name)).unwrap();
    }
    let error = match open_node(&image, &clock, JournalConfig::default()) {
        Err(error) => error,
        Ok(_) => panic!("a log whose acknowledged records are gone must not open"),
    };
    assert!(error.is_corruption(), "{error}");
}

/// Finds the journal file on `fs` (there is one while the node runs).
fn journal_file(fs: &SimFs) -> std::path::PathBuf {
    let names = fs.list_dir(Path::new(JOURNAL)).unwrap();
    let name = names
        .iter()
        .find(|name| name.ends_with(".jnl"))
        .expect("a journal file");
    Path::new(JOURNAL).join(name)
}

#[test]
fn damage_to_a_synced_journal_record_is_reported_not_skipped() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    for i in 0..6 {
        append_one(&node.logs[i % LOGS], &format!("k{i}"), b"payload");
    }
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    let path = journal_file(&image);
    // The first record starts right after the 40-byte file header; later records prove it
    // was synced, so a flipped byte in it is corruption.
    image.corrupt_byte(&path, 40 + 60).unwrap();
    let report = crate::verify_tree(&image, Path::new("/data")).unwrap();
    assert_eq!(report.corruptions(), 1, "verify agrees: {report}");
    let error = Journal::open(Arc::new(image), JOURNAL, JournalConfig::default())
        .expect_err("a damaged, synced journal record fails the open");
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("not a torn write"), "{error}");
}

#[test]
fn a_torn_journal_tail_is_ignored_and_loses_nothing_acknowledged() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    append_one(&node.logs[0], "acked", b"kept");
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    // A commit that was being written when the machine died: garbage after the last record.
    let path = journal_file(&image);
    let len = image.read_file(&path).unwrap().len() as u64;
    let file = image.open(&path, crate::io::OpenMode::ReadWrite).unwrap();
    file.write_all_at(b"RHJ1 torn half-written record", len)
        .unwrap();
    file.sync_data().unwrap();
    drop(file);
    let report = crate::verify_tree(&image, Path::new("/data")).unwrap();
    assert_eq!(report.corruptions(), 0, "{report}");
    assert!(
        report
            .findings()
            .any(|finding| finding.message.contains("torn journal tail")),
        "verify reports the torn tail as a warning: {report}"
    );
    let node = open_node(&image, &clock, JournalConfig::default()).unwrap();
    let records = read_all(&node.logs[0]);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].data.as_ref(), b"kept");
    node.close();
}

#[test]
fn a_failed_journal_write_refuses_writes_and_keeps_earlier_data() {
    // EIO on the journal write and on its fdatasync: the node cannot know what reached the
    // disk, so it refuses writes until a restart. (ENOSPC heals: see the next test.)
    for (fault, errno) in [(FaultOn::Write, EIO), (FaultOn::SyncData, EIO)] {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
        append_one(&node.logs[0], "before", b"durable");
        // A first append to a log writes its segment, its index, then the journal record,
        // and syncs only the journal: arm the journal's operation.
        let nth = match fault {
            FaultOn::Write => 2,
            FaultOn::SyncData => 0,
        };
        fs.inject(fault, nth, errno);
        let failed = node.logs[1].append(&[RecordInput {
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"never acknowledged",
        }]);
        assert!(
            failed.is_err(),
            "{fault:?}: the failed commit is not acknowledged"
        );
        assert!(node.journal.is_poisoned(), "{fault:?}");
        let refused = node.logs[2].append(&[RecordInput {
            partition_key: b"k",
            explicit_hash_key: None,
            data: b"later",
        }]);
        assert!(
            matches!(refused, Err(Error::Poisoned { .. })),
            "{fault:?}: later appends are refused: {refused:?}"
        );
        let image = fs.crash_image(CrashMode::DropUnsynced);
        drop(node);
        let node = open_node(&image, &clock, JournalConfig::default()).unwrap();
        let records = read_all(&node.logs[0]);
        assert_eq!(records.len(), 1, "{fault:?}");
        assert_eq!(records[0].data.as_ref(), b"durable");
        assert!(read_all(&node.logs[2]).is_empty(), "{fault:?}");
        node.close();
    }
}

#[test]
fn checkpoints_keep_the_journal_short_and_a_clean_stop_empties_it() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, small_journal()).unwrap();
    workload(&node, &clock, 2, 60);
    node.journal.checkpoint_now().unwrap();
    let stats = node.journal.stats();
    assert!(stats.checkpoints >= 2, "{stats:?}");
    assert!(stats.checkpoint_syncs > 0, "{stats:?}");
    assert_eq!(stats.files, 1, "only the current file is left: {stats:?}");
    node.close();
    let left: Vec<String> = fs
        .list_dir(Path::new(JOURNAL))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".jnl"))
        .collect();
    assert!(
        left.is_empty(),
        "a clean stop leaves no journal file: {left:?}"
    );
}

#[test]
fn a_second_node_on_the_same_journal_is_refused() {
    let fs = SimFs::new();
    let sim: Arc<dyn Fs> = Arc::new(fs.clone());
    let journal = Journal::open(sim.clone(), JOURNAL, JournalConfig::default()).unwrap();
    let second = Journal::open(sim, JOURNAL, JournalConfig::default());
    assert!(matches!(second, Err(Error::Locked { .. })), "{second:?}");
    drop(journal);
}

#[test]
fn a_failed_checkpoint_sync_poisons_that_log_keeps_the_journal_and_loses_nothing() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    let mut ledger = workload(&node, &clock, 1, 9);
    // The checkpoint's syncs: the next journal file's header first, then one per log.
    fs.inject(FaultOn::SyncData, 1, EIO);
    node.journal.checkpoint_now().unwrap();
    let poisoned: Vec<bool> = node.logs.iter().map(|log| log.is_poisoned()).collect();
    assert_eq!(
        poisoned.iter().filter(|&&p| p).count(),
        1,
        "the log whose segment sync failed is poisoned: {poisoned:?}"
    );
    assert!(!node.journal.is_poisoned(), "the node keeps committing");
    assert_eq!(
        node.journal.stats().files,
        2,
        "the journal file that log depends on is kept"
    );
    let healthy = poisoned.iter().position(|&p| !p).unwrap();
    let seq = append_one(&node.logs[healthy], "after", b"still taken");
    ledger
        .attempted
        .insert("after".into(), b"still taken".to_vec());
    ledger.acked[healthy].insert(seq, "after".into());
    let sick = poisoned.iter().position(|&p| p).unwrap();
    assert!(
        node.logs[sick]
            .append(&[RecordInput {
                partition_key: b"k",
                explicit_hash_key: None,
                data: b"refused",
            }])
            .is_err()
    );
    // A machine crash now: the kept journal file still holds what the segment lost.
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    check_recovered(&image, &clock, &ledger, "after a failed checkpoint sync");
}

/// The newest segment file of log `index` and its length.
fn active_segment(fs: &SimFs, index: usize) -> (std::path::PathBuf, u64) {
    let dir = std::path::PathBuf::from(log_dir(index));
    let mut names: Vec<String> = fs
        .list_dir(&dir)
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".seg"))
        .collect();
    names.sort();
    let path = dir.join(names.pop().expect("a segment"));
    let len = fs.read_file(&path).unwrap().len() as u64;
    (path, len)
}

/// Appends three records to log 0 and stops: cleanly, or by a crash after a checkpoint.
/// Either way the journal holds nothing of them and the last batch has no successor.
fn checkpointed_node(clean: bool) -> (SimFs, ManualClock) {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    for i in 0..3 {
        append_one(
            &node.logs[0],
            &format!("k{i}"),
            b"acknowledged and checkpointed",
        );
    }
    if clean {
        node.close();
        return (fs, clock);
    }
    node.journal.checkpoint_now().unwrap();
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    (image, clock)
}

#[test]
fn a_flipped_byte_in_the_last_checkpointed_batch_is_corruption_not_a_torn_tail() {
    for clean in [true, false] {
        let (fs, clock) = checkpointed_node(clean);
        let (path, len) = active_segment(&fs, 0);
        fs.corrupt_byte(&path, len - 3).unwrap();
        let report = crate::verify_tree(&fs, Path::new("/data")).unwrap();
        assert_eq!(report.corruptions(), 1, "clean stop {clean}: {report}");
        assert!(report.to_string().contains("checkpoint record"), "{report}");
        let error = match open_node(&fs, &clock, JournalConfig::default()) {
            Err(error) => error,
            Ok(_) => panic!("acknowledged, synced records were damaged: the open must fail"),
        };
        assert!(error.is_corruption(), "{error}");
        assert!(error.to_string().contains("checkpoint record"), "{error}");
        assert_eq!(
            fs.read_file(&path).unwrap().len() as u64,
            len,
            "nothing was truncated"
        );
    }
}

#[test]
fn a_torn_tail_past_the_checkpoint_record_is_cut_and_the_journal_writes_back_the_rest() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    append_one(&node.logs[0], "before", b"checkpointed");
    node.journal.checkpoint_now().unwrap();
    append_one(&node.logs[0], "after", b"only in the journal");
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    // The segment lost the second batch; a half-written third one sits where it was.
    let (path, len) = active_segment(&image, 0);
    let file = image.open(&path, crate::io::OpenMode::ReadWrite).unwrap();
    file.write_all_at(b"RHB1 half a batch", len).unwrap();
    file.sync_data().unwrap();
    drop(file);
    let report = crate::verify_tree(&image, Path::new("/data")).unwrap();
    assert_eq!(
        (report.corruptions(), report.unproven()),
        (0, 0),
        "{report}"
    );
    assert!(report.to_string().contains("torn tail"), "{report}");
    let node = open_node(&image, &clock, JournalConfig::default()).unwrap();
    let data: Vec<Vec<u8>> = read_all(&node.logs[0])
        .into_iter()
        .map(|record| record.data.to_vec())
        .collect();
    assert_eq!(data, [&b"checkpointed"[..], b"only in the journal"]);
    assert_eq!(node.logs[0].metrics().tails_kept_aside, 0);
    assert!(
        image
            .list_dir(&Path::new(&log_dir(0)).join(crate::ASIDE_DIR))
            .is_err(),
        "a proven torn write is not kept"
    );
    node.close();
}

#[test]
fn without_a_readable_checkpoint_record_a_bad_tail_is_kept_aside_and_reported() {
    for damage_record in [true, false] {
        let (fs, clock) = checkpointed_node(true);
        let record = Path::new(JOURNAL).join(crate::journal::MARKS_FILE);
        if damage_record {
            fs.corrupt_byte(&record, 50).unwrap();
        } else {
            // A data directory written before the record existed (format version 3).
            fs.remove_file(&record).unwrap();
        }
        let (path, len) = active_segment(&fs, 0);
        fs.corrupt_byte(&path, len - 3).unwrap();
        let damaged = fs.read_file(&path).unwrap();
        let report = crate::verify_tree(&fs, Path::new("/data")).unwrap();
        assert_eq!(
            (report.corruptions(), report.unproven()),
            (0, 1),
            "damaged record {damage_record}: {report}"
        );
        let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
        assert_eq!(read_all(&node.logs[0]).len(), 2, "the intact batches serve");
        assert_eq!(node.logs[0].metrics().tails_kept_aside, 1);
        let aside = Path::new(&log_dir(0)).join(crate::ASIDE_DIR);
        let kept = fs.list_dir(&aside).unwrap();
        assert_eq!(kept.len(), 1, "{kept:?}");
        let cut = fs.read_file(&aside.join(&kept[0])).unwrap();
        let left = fs.read_file(&path).unwrap().len();
        assert_eq!(
            cut,
            damaged[left..],
            "the cut bytes are kept, damage and all"
        );
        node.close();
        let after = crate::verify_tree(&fs, Path::new("/data")).unwrap();
        assert_eq!(
            (after.corruptions(), after.unproven()),
            (0, 1),
            "the kept bytes stay reported, and the record was rewritten: {after}"
        );
        assert!(!after.to_string().contains("unusable"), "{after}");
    }
}

#[test]
fn a_segment_shorter_than_the_checkpoint_record_says_is_corruption() {
    let (fs, clock) = checkpointed_node(true);
    let (path, len) = active_segment(&fs, 0);
    let file = fs.open(&path, crate::io::OpenMode::ReadWrite).unwrap();
    file.set_len(len - 10).unwrap();
    file.sync_data().unwrap();
    drop(file);
    let report = crate::verify_tree(&fs, Path::new("/data")).unwrap();
    assert!(report.corruptions() >= 1, "{report}");
    assert!(report.to_string().contains("bytes long"), "{report}");
    let error = match open_node(&fs, &clock, JournalConfig::default()) {
        Err(error) => error,
        Ok(_) => panic!("a segment that lost synced bytes must not open"),
    };
    assert!(error.to_string().contains("checkpoint record"), "{error}");
}

#[test]
fn a_log_that_fails_to_open_keeps_its_journal_entries_for_a_later_start() {
    let fs = SimFs::new();
    let clock = ManualClock::new(T0);
    let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
    append_one(&node.logs[0], "a", b"healthy log");
    append_one(&node.logs[1], "b", b"acknowledged, only in the journal");
    let image = fs.crash_image(CrashMode::DropUnsynced);
    fs.crash_now();
    drop(node);
    // Log 1's segment header is damaged: it cannot open, the others must.
    let (path, _) = active_segment(&image, 1);
    image.corrupt_byte(&path, 3).unwrap();
    let sim: Arc<dyn Fs> = Arc::new(image.clone());
    {
        let journal = Journal::open(sim.clone(), JOURNAL, JournalConfig::default()).unwrap();
        let mut opened = Vec::new();
        for index in 0..LOGS {
            let log = ShardLog::open_journaled(
                &journal,
                format!("s/{index}"),
                sim.clone(),
                log_dir(index),
                log_config(),
                Arc::new(clock.clone()),
                0,
            );
            match (index, log) {
                (1, Err(error)) => assert!(error.is_corruption(), "{error}"),
                (1, Ok(_)) => panic!("a damaged log must not open"),
                (_, log) => opened.push(log.unwrap()),
            }
        }
        journal.finish_recovery().unwrap();
        assert_eq!(read_all(&opened[0]).len(), 1, "the healthy log serves");
        append_one(&opened[0], "a2", b"written while log 1 is out");
        drop(opened);
    }
    // Repaired (the byte put back), log 1 gets its acknowledged record from the kept files.
    image.corrupt_byte(&path, 3).unwrap();
    let node = open_node(&image, &clock, JournalConfig::default()).unwrap();
    let data: Vec<Vec<u8>> = read_all(&node.logs[1])
        .into_iter()
        .map(|record| record.data.to_vec())
        .collect();
    assert_eq!(data, [b"acknowledged, only in the journal".to_vec()]);
    assert_eq!(read_all(&node.logs[0]).len(), 2);
    node.close();
}

fn input(data: &[u8]) -> [RecordInput<'_>; 1] {
    [RecordInput {
        partition_key: b"k",
        explicit_hash_key: None,
        data,
    }]
}

#[test]
fn a_full_disk_refuses_the_write_undoes_it_and_heals_when_space_is_back() {
    heal_after_enospc();
}

#[test]
fn a_full_disk_in_an_encrypted_segment_heals_with_a_new_data_key() {
    encrypted(heal_after_enospc);
}

/// ENOSPC on each write of a commit (segment, index, journal record): the append fails with
/// a retryable error and nothing of it is published; the next append takes its place, and a
/// crash then recovers exactly the acknowledged records.
fn heal_after_enospc() {
    // A first append to a log writes its segment, then its index, then the journal record.
    for (nth, what) in [(0, "segment"), (1, "index"), (2, "journal record")] {
        let fs = SimFs::new();
        let clock = ManualClock::new(T0);
        let node = open_node(&fs, &clock, JournalConfig::default()).unwrap();
        append_one(&node.logs[0], "before", b"durable");
        let key_before = key_file_of(&fs, 1);
        fs.inject(FaultOn::Write, nth, ENOSPC);
        let failed = node.logs[1]
            .append(&input(b"never acknowledged"))
            .expect_err("the write fails");
        assert!(failed.is_resource_exhausted(), "{what}: {failed}");
        assert!(!node.journal.is_poisoned(), "{what}");
        assert!(!node.logs[1].is_poisoned(), "{what}");
        assert!(
            read_all(&node.logs[1]).is_empty(),
            "{what}: nothing was published"
        );
        assert_eq!(node.journal.stats().exhausted_writes, 1, "{what}");
        // Space is back: the same log takes the next write at the failed one's place.
        let healed = node.logs[1].append(&input(b"after")).unwrap();
        assert_eq!(healed.first_sequence, 0, "{what}");
        append_one(&node.logs[2], "other", b"other");
        if encryption_on() {
            assert!(!key_before.is_empty(), "{what}: the segment is encrypted");
            assert_ne!(
                key_file_of(&fs, 1),
                key_before,
                "{what}: the undone batch's nonces never meet its data key again"
            );
        }
        let image = fs.crash_image(CrashMode::DropUnsynced);
        fs.crash_now();
        drop(node);
        let node = open_node(&image, &clock, JournalConfig::default()).unwrap();
        let data = |log: &ShardLog| -> Vec<Vec<u8>> {
            read_all(log).into_iter().map(|r| r.data.to_vec()).collect()
        };
        assert_eq!(data(&node.logs[0]), [b"durable".to_vec()], "{what}");
        assert_eq!(data(&node.logs[1]), [b"after".to_vec()], "{what}");
        assert_eq!(data(&node.logs[2]), [b"other".to_vec()], "{what}");
        node.close();
    }
}

/// The bytes of the key file of log `index`'s newest segment (empty if it has none).
fn key_file_of(fs: &SimFs, index: usize) -> Vec<u8> {
    let (segment, _) = active_segment(fs, index);
    fs.read_file(&segment.with_extension("key"))
        .unwrap_or_default()
}
