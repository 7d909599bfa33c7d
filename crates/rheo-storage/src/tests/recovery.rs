//! Recovery and corruption on real files: flip one byte, get an error naming the file and
//! offset; tear the tail, lose nothing acknowledged; lose an index, rebuild it.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::*;
use crate::format::{BATCH_HEADER_LEN, FILE_HEADER_LEN};
use crate::segment::{index_name, segment_name};
use crate::{Error, Severity, verify_tree};

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    files
}

fn flip(path: &Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x20], offset).unwrap();
}

/// A log of 60 records of ~150 bytes over several 4 KiB segments.
fn written_log(dir: &Path, clock: &ManualClock) {
    let log = open_std(dir, small_config(), clock);
    for i in 0..60 {
        append_one(&log, &format!("k{i}"), &payload(&format!("k{i}"), 150));
        clock.advance_ms(10);
    }
}

fn check_records(records: &[crate::Record], n: usize) {
    assert_eq!(records.len(), n);
    for (i, record) in records.iter().enumerate() {
        assert_eq!(
            &record.data[..],
            &payload(&format!("k{i}"), 150)[..],
            "record {i}"
        );
    }
}

#[test]
fn a_flipped_byte_in_a_sealed_segment_is_reported_where_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    written_log(dir.path(), &clock);
    let first = segment_files(dir.path())[0].clone();
    // Second batch of the first segment: header at 40 + one batch of 48 + 8 + 2 + 150 bytes.
    let second_batch = FILE_HEADER_LEN as u64 + (BATCH_HEADER_LEN + 8 + 2 + 150) as u64;
    flip(&first, second_batch + BATCH_HEADER_LEN as u64 + 20);

    let log = open_std(dir.path(), small_config(), &clock);
    let before = log.read(0, 100, usize::MAX).unwrap();
    assert_eq!(
        before.records.len(),
        1,
        "the record before the damage is served"
    );
    assert_eq!(before.next_sequence, 1);
    let error = log.read(1, 100, usize::MAX).unwrap_err();
    assert_eq!(
        log.metrics().corruptions,
        2,
        "both reads that stopped at the damage count"
    );
    match &error {
        Error::Corruption {
            path,
            offset,
            reason,
        } => {
            assert_eq!(path, &first);
            assert_eq!(*offset, second_batch);
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains(&format!("offset {second_batch}"))
    );
    // Reading past it is refused, not skipped; later segments stay readable.
    let later = log.read(40, 100, usize::MAX).unwrap();
    assert_eq!(later.records[0].sequence, 40);

    let report = verify_tree(&crate::io::StdFs, dir.path()).unwrap();
    assert_eq!(report.corruptions(), 1, "{report:?}");
    let finding = report.findings().next().unwrap();
    assert_eq!(
        (finding.path.clone(), finding.offset),
        (first, second_batch)
    );
}

#[test]
fn a_flipped_byte_found_while_rebuilding_an_index_fails_the_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    written_log(dir.path(), &clock);
    std::fs::remove_file(dir.path().join(index_name(0))).unwrap();
    let first = segment_files(dir.path())[0].clone();
    flip(&first, FILE_HEADER_LEN as u64 + 5);
    let fs: std::sync::Arc<dyn crate::io::Fs> = std::sync::Arc::new(StdFs);
    let error = ShardLog::open(
        fs,
        dir.path(),
        small_config(),
        std::sync::Arc::new(clock),
        0,
    )
    .unwrap_err();
    assert!(
        matches!(&error, Error::Corruption { path, offset, .. } if *path == first && *offset == FILE_HEADER_LEN as u64),
        "{error}"
    );
}

#[test]
fn lost_or_damaged_indexes_are_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    written_log(dir.path(), &clock);
    let segments = segment_files(dir.path());
    let index_of = |segment: &PathBuf| segment.with_extension("idx");
    std::fs::remove_file(dir.path().join(index_name(0))).unwrap();
    flip(&index_of(&segments[segments.len() / 2]), 50);
    std::fs::write(index_of(segments.last().unwrap()), b"garbage").unwrap();

    let report = verify_tree(&StdFs, dir.path()).unwrap();
    assert_eq!(
        report.corruptions(),
        0,
        "indexes are derived data: {report:?}"
    );
    let log = open_std(dir.path(), small_config(), &clock);
    check_records(&read_all(&log), 60);
    assert_eq!(
        log.seek(crate::Position::AtTimestamp(T0 + 305)).unwrap(),
        31
    );
    drop(log);
    assert!(
        dir.path().join(index_name(0)).exists(),
        "the sealed index was rewritten"
    );
    let clean = verify_tree(&StdFs, dir.path()).unwrap();
    assert_eq!(clean.findings().count(), 0, "{clean:?}");
}

#[test]
fn a_bad_tail_of_a_log_without_a_journal_is_cut_and_kept_aside() {
    // Without a node journal nothing records how much of the last batch was synced, so a bad
    // tail may be a torn write or damage to an acknowledged batch: it is cut (the log serves
    // on) but its bytes are kept, and verify and the metrics say so.
    for garbage in [&b"RHB1"[..], &[0u8; 30][..], &[0xAB; 5000][..]] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        written_log(dir.path(), &clock);
        let active = segment_files(dir.path()).pop().unwrap();
        let clean_len = std::fs::metadata(&active).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&active)
            .unwrap()
            .write_all(garbage)
            .unwrap();

        let report = verify_tree(&StdFs, dir.path()).unwrap();
        assert_eq!(
            (report.corruptions(), report.unproven()),
            (0, 1),
            "{report}"
        );
        let finding = report.findings().next().expect("the bad tail is reported");
        assert_eq!(
            (finding.severity, finding.offset),
            (Severity::Unproven, clean_len)
        );

        let log = open_std(dir.path(), small_config(), &clock);
        check_records(&read_all(&log), 60);
        assert_eq!(log.metrics().tails_kept_aside, 1);
        assert_eq!(std::fs::metadata(&active).unwrap().len(), clean_len);
        let base = active.file_stem().unwrap().to_str().unwrap().to_owned();
        let kept = dir
            .path()
            .join(crate::ASIDE_DIR)
            .join(format!("{base}.{clean_len}.tail"));
        assert_eq!(
            std::fs::read(&kept).unwrap(),
            garbage,
            "the cut bytes are kept"
        );
        assert_eq!(append_one(&log, "k60", &payload("k60", 150)), 60);
        drop(log);
        let after = verify_tree(&StdFs, dir.path()).unwrap();
        assert_eq!(
            (after.corruptions(), after.unproven()),
            (0, 1),
            "the kept bytes stay reported until deleted: {after}"
        );
        std::fs::remove_file(&kept).unwrap();
        let clean = verify_tree(&StdFs, dir.path()).unwrap();
        assert_eq!(clean.findings().count(), 0, "{clean}");
    }
}

#[test]
fn a_half_written_last_batch_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    written_log(dir.path(), &clock);
    let active = segment_files(dir.path()).pop().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    // Cut the last batch (210 bytes) in half.
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let log = open_std(dir.path(), small_config(), &clock);
    check_records(&read_all(&log), 59);
    assert_eq!(log.tip().next_sequence, 59);
}

#[test]
fn damage_to_durable_data_in_the_active_segment_is_not_mistaken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        segment_max_bytes: 1 << 20,
        ..small_config()
    };
    {
        let log = open_std(dir.path(), config.clone(), &clock);
        for i in 0..30 {
            append_one(&log, &format!("k{i}"), &payload(&format!("k{i}"), 150));
        }
    }
    let active = dir.path().join(segment_name(0));
    // Damage batch 20's body. Batches 21.. were written after it was synced, and their headers
    // say so: recovery must not truncate 10 acknowledged records as a "torn tail".
    let batch_len = (BATCH_HEADER_LEN + 8 + 3 + 150) as u64;
    let batch_20 =
        FILE_HEADER_LEN as u64 + 10 * (BATCH_HEADER_LEN + 8 + 2 + 150) as u64 + 10 * batch_len;
    // Make sure the index does not let recovery skip the damaged region.
    std::fs::remove_file(dir.path().join(index_name(0))).unwrap();
    flip(&active, batch_20 + BATCH_HEADER_LEN as u64 + 30);

    let fs: std::sync::Arc<dyn crate::io::Fs> = std::sync::Arc::new(StdFs);
    let error = ShardLog::open(fs, dir.path(), config, std::sync::Arc::new(clock), 0).unwrap_err();
    match &error {
        Error::Corruption {
            path,
            offset,
            reason,
        } => {
            assert_eq!((path, *offset), (&active, batch_20));
            assert!(reason.contains("not a torn write"), "{reason}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let report = verify_tree(&StdFs, dir.path()).unwrap();
    assert_eq!(report.corruptions(), 1, "{report:?}");
    assert_eq!(
        std::fs::metadata(&active).unwrap().len(),
        batch_20 + 10 * batch_len,
        "nothing truncated"
    );
}

#[test]
fn open_checks_only_the_unsynced_tail_of_the_active_segment() {
    // Damage early in the active segment's durable part is not re-read at open (open time
    // does not grow with what is stored), but no read serves past it.
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let config = LogConfig {
        segment_max_bytes: 1 << 20,
        ..small_config()
    };
    {
        let log = open_std(dir.path(), config.clone(), &clock);
        for i in 0..30 {
            append_one(&log, &format!("k{i}"), &payload(&format!("k{i}"), 150));
        }
    }
    flip(
        &dir.path().join(segment_name(0)),
        FILE_HEADER_LEN as u64 + BATCH_HEADER_LEN as u64 + 3,
    );
    let log = open_std(dir.path(), config, &clock);
    assert_eq!(log.tip().next_sequence, 30);
    assert!(log.read(0, 10, usize::MAX).unwrap_err().is_corruption());
    assert_eq!(log.read(1, 100, usize::MAX).unwrap().records.len(), 29);
}

#[test]
fn a_damaged_file_header_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    written_log(dir.path(), &clock);
    let segments = segment_files(dir.path());
    flip(&segments[1], 3);
    let report = verify_tree(&StdFs, dir.path()).unwrap();
    assert_eq!(report.corruptions(), 1);
    assert_eq!(report.findings().next().unwrap().path, segments[1]);
    // The sealed index lets open skip the data file's header only if the header is good.
    let fs: std::sync::Arc<dyn crate::io::Fs> = std::sync::Arc::new(StdFs);
    let error = ShardLog::open(
        fs,
        dir.path(),
        small_config(),
        std::sync::Arc::new(clock),
        0,
    )
    .unwrap_err();
    assert!(
        matches!(&error, Error::Corruption { path, offset: 0, .. } if *path == segments[1]),
        "{error}"
    );
}

#[test]
fn verify_walks_a_tree_of_logs() {
    let root = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    for shard in ["a/shard-0", "a/shard-1", "b/shard-0"] {
        written_log(&root.path().join(shard), &clock);
    }
    let report = verify_tree(&StdFs, root.path()).unwrap();
    assert_eq!(report.logs.len(), 3);
    assert!(
        report
            .logs
            .iter()
            .all(|log| log.records == 60 && log.findings.is_empty())
    );
    assert!(verify_tree(&StdFs, &root.path().join("missing")).is_err());
}
