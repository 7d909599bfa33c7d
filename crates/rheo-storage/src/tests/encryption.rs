//! Encryption at rest: records sealed under per-segment data keys, no plaintext on disk, and
//! every key fault and tampering reported as such.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::KeyProvider;
use crate::format::{BATCH_HEADER_LEN, BH_BODY_CRC, BH_BODY_LEN, BH_HEADER_CRC, get_u32, put_u32};
use crate::{Encryption, Error, KeyFault, Position, verify_tree_with_keys};

const MARKER: &[u8] = b"MARKER-7f3a-plaintext";

fn encrypted_config(keys: &Arc<TestKeys>, context: &str, key: Option<&str>) -> LogConfig {
    LogConfig {
        encryption: Some(Encryption {
            keys: keys.clone(),
            context: context.into(),
            key_id: key.map(str::to_string),
        }),
        ..small_config()
    }
}

fn open_keys(dir: &Path, keys: &Arc<TestKeys>, context: &str, key: Option<&str>) -> ShardLog {
    open_std(
        dir,
        encrypted_config(keys, context, key),
        &ManualClock::new(T0),
    )
}

fn marked(i: usize) -> Vec<u8> {
    let mut data = MARKER.to_vec();
    data.extend_from_slice(format!("-{i}-").as_bytes());
    data.extend(payload("z", 200));
    data
}

fn put_marked(log: &ShardLog, count: usize) {
    for i in 0..count {
        log.append(&[RecordInput {
            partition_key: format!("{}key{i}", String::from_utf8_lossy(MARKER)).as_bytes(),
            explicit_hash_key: None,
            data: &marked(i),
        }])
        .unwrap();
    }
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

fn segment_files(dir: &Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

#[test]
fn records_are_encrypted_from_the_key_on_and_plaintext_after_it_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    let log = open_keys(dir.path(), &keys, "s/0", None);
    append_one(&log, "before", b"plain-before");
    log.set_encryption_key(Some("k1".into())).unwrap();
    put_marked(&log, 40);
    log.set_encryption_key(None).unwrap();
    append_one(&log, "after", b"plain-after");
    let records = read_all(&log);
    assert_eq!(records.len(), 42);
    assert!(!records[0].encrypted && !records[41].encrypted);
    for (i, record) in records[1..41].iter().enumerate() {
        assert!(record.encrypted, "record {i}");
        assert_eq!(record.data, marked(i), "record {i} reads back as written");
    }
    assert_eq!(&records[41].data[..], b"plain-after");
    assert!(log.stats().segments > 3, "the records span sealed segments");
    drop(log);
    assert_eq!(
        files_containing(dir.path(), MARKER),
        Vec::<String>::new(),
        "no file holds the plaintext"
    );
    // After a restart the sealed encrypted segments still read (their keys unwrap lazily).
    let log = open_keys(dir.path(), &keys, "s/0", None);
    let again = read_all(&log);
    assert_eq!(again, records);
    let report = verify_tree_with_keys(&crate::io::StdFs, dir.path(), Some(keys.clone())).unwrap();
    assert_eq!(report.corruptions(), 0, "{report}");
    let without = crate::verify_tree(&crate::io::StdFs, dir.path()).unwrap();
    assert_eq!(without.corruptions(), 0, "{without}");
    assert!(
        without
            .findings()
            .any(|f| f.message.contains("records not (no keyring given)")),
        "{without}"
    );
}

#[test]
fn a_restart_never_seals_with_an_old_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    append_one(&log, "a", b"one");
    let before = log.stats().segments;
    let key_files = segment_files(dir.path(), ".key").len();
    drop(log);
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    assert_eq!(
        log.stats().segments,
        before + 1,
        "the encrypted active segment was sealed at open"
    );
    append_one(&log, "b", b"two");
    assert_eq!(segment_files(dir.path(), ".key").len(), key_files + 1);
    let records = read_all(&log);
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|record| record.encrypted));
    // An empty encrypted segment is recreated in place with a new key, not sealed.
    drop(log);
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    drop(log);
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    assert_eq!(log.stats().segments, before + 2);
}

#[test]
fn an_unknown_or_disabled_key_refuses_writes_without_poisoning_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    append_one(&log, "a", b"one");
    log.set_encryption_key(Some("nope".into())).unwrap();
    let error = log
        .append(&[RecordInput {
            partition_key: b"b",
            explicit_hash_key: None,
            data: b"two",
        }])
        .unwrap_err();
    assert!(
        matches!(&error, Error::Key { fault: KeyFault::NotFound(id), .. } if id == "nope"),
        "{error}"
    );
    assert!(!log.is_poisoned());
    crate::log::lock(&keys.disabled).push("k1".into());
    log.set_encryption_key(Some("k1".into())).unwrap();
    // The active segment's data key is still k1's: writes go on until a new one is needed.
    append_one(&log, "c", b"three");
    log.roll_now().unwrap_err();
    assert!(!log.is_poisoned());
    crate::log::lock(&keys.disabled).clear();
    log.roll_now().unwrap();
    append_one(&log, "d", b"four");
    assert_eq!(read_all(&log).len(), 3);
    // A log without a keyring refuses a key outright.
    let plain = open_std(
        &dir.path().join("plain"),
        small_config(),
        &ManualClock::new(T0),
    );
    assert!(plain.set_encryption_key(Some("k1".into())).is_err());
}

/// Flips a byte of the first batch body of `segment` and fixes up both checksums, as a
/// deliberate tamperer would.
fn tamper_first_batch(segment: &Path) {
    let mut bytes = std::fs::read(segment).unwrap();
    let base = u64::from_le_bytes(bytes[16..24].try_into().unwrap());
    let at = crate::format::FILE_HEADER_LEN;
    let body_len = get_u32(&bytes, at + BH_BODY_LEN) as usize;
    bytes[at + BATCH_HEADER_LEN + 3] ^= 0x20;
    let body = &bytes[at + BATCH_HEADER_LEN..at + BATCH_HEADER_LEN + body_len];
    let body_crc = crate::format::seeded_crc(base, body);
    put_u32(&mut bytes, at + BH_BODY_CRC, body_crc);
    let header_crc =
        crate::format::seeded_crc(base, &bytes[at + BH_BODY_CRC..at + BATCH_HEADER_LEN]);
    put_u32(&mut bytes, at + BH_HEADER_CRC, header_crc);
    std::fs::write(segment, bytes).unwrap();
}

#[test]
fn tampered_and_transplanted_batches_fail_authentication() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    for shard in ["a", "b"] {
        let log = open_keys(&dir.path().join(shard), &keys, shard, Some("k1"));
        put_marked(&log, 30);
    }
    let first = |shard: &str| segment_files(&dir.path().join(shard), ".seg")[0].clone();
    // A batch copied from shard a's segment over the same place in shard b's: every checksum
    // matches (same sequence numbers, same segment base), but b's data key does not open it.
    let a = std::fs::read(first("a")).unwrap();
    let mut b = std::fs::read(first("b")).unwrap();
    let at = crate::format::FILE_HEADER_LEN;
    let len = BATCH_HEADER_LEN + get_u32(&a, at + BH_BODY_LEN) as usize;
    b[at..at + len].copy_from_slice(&a[at..at + len]);
    std::fs::write(first("b"), b).unwrap();
    let log = open_keys(&dir.path().join("b"), &keys, "b", Some("k1"));
    let error = log.read(0, 10, 1 << 20).unwrap_err();
    assert!(
        matches!(&error, Error::Corruption { offset, reason, .. }
            if *offset == at as u64 && reason.contains("fails authentication")),
        "{error}"
    );
    drop(log);

    tamper_first_batch(&first("a"));
    let log = open_keys(&dir.path().join("a"), &keys, "a", Some("k1"));
    let error = log.read(0, 10, 1 << 20).unwrap_err().to_string();
    assert!(
        error.contains("fails authentication") && error.contains(".seg"),
        "{error}"
    );
    drop(log);
    let report = verify_tree_with_keys(&crate::io::StdFs, dir.path(), Some(keys.clone())).unwrap();
    assert_eq!(report.corruptions(), 2, "{report}");
}

#[test]
fn key_faults_are_reported_as_key_faults() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    put_marked(&log, 30);
    drop(log);
    let first_key = segment_files(dir.path(), ".key")[0].clone();

    // The keyring loses version 1 of k1 (a new keyring holding other material under k1).
    let other = TestKeys::with("k1");
    let log = open_keys(dir.path(), &other, "s/0", None);
    let error = log.read(0, 10, 1 << 20).unwrap_err();
    assert!(
        matches!(&error, Error::Key { fault: KeyFault::WrongKey { version: 1, .. }, path } if *path == first_key),
        "{error}"
    );
    drop(log);
    let empty = Arc::new(TestKeys::default());
    let log = open_keys(dir.path(), &empty, "s/0", None);
    let error = log.read(0, 10, 1 << 20).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Key {
                fault: KeyFault::NotFound(_),
                ..
            }
        ),
        "{error}"
    );
    drop(log);

    // A key file of another log is refused, even though it would unwrap with the keyring.
    let log = open_keys(dir.path(), &keys, "s/1", None);
    let error = log.read(0, 10, 1 << 20).unwrap_err().to_string();
    assert!(error.contains("belongs to log"), "{error}");
    drop(log);

    // A missing key file is corruption of the segment it keys.
    std::fs::remove_file(&first_key).unwrap();
    let log = open_keys(dir.path(), &keys, "s/0", None);
    let error = log.read(0, 10, 1 << 20).unwrap_err().to_string();
    assert!(error.contains("key file is missing"), "{error}");
}

#[test]
fn rotation_rewraps_key_files_and_the_old_version_is_then_unneeded() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    let log = open_keys(dir.path(), &keys, "s/0", Some("k1"));
    put_marked(&log, 30);
    let segments = log.key_usage().segments.len();
    assert!(segments > 1);
    assert!(
        log.key_usage()
            .segments
            .iter()
            .all(|(id, v)| id == "k1" && *v == 1)
    );
    let before: Vec<Vec<u8>> = segment_files(dir.path(), ".seg")
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    keys.add_version("k1");
    assert_eq!(log.rewrap_keys().unwrap(), segments);
    assert!(log.key_usage().segments.iter().all(|(_, v)| *v == 2));
    assert_eq!(log.rewrap_keys().unwrap(), 0, "nothing left to rewrap");
    let after: Vec<Vec<u8>> = segment_files(dir.path(), ".seg")
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect();
    assert_eq!(before, after, "records are not rewritten");
    let records = read_all(&log);
    drop(log);
    // Version 1 can go: a keyring whose version 1 is gone (material that opens nothing) and
    // version 2 as before reads everything.
    let (_, v2) = keys.current("k1").unwrap();
    let only_v2 = Arc::new(TestKeys::default());
    crate::log::lock(&only_v2.keys).insert(
        "k1".into(),
        vec![crate::KeyMaterial([0xAA; crate::KEY_LEN]), v2],
    );
    let log = open_keys(dir.path(), &only_v2, "s/0", None);
    assert_eq!(read_all(&log), records);
}

#[test]
fn retention_shreds_key_files_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let keys = TestKeys::with("k1");
    let clock = ManualClock::new(T0);
    let log = open_std(
        dir.path(),
        encrypted_config(&keys, "s/0", Some("k1")),
        &clock,
    );
    put_marked(&log, 30);
    let key_files = segment_files(dir.path(), ".key").len();
    assert!(key_files > 2);
    clock.advance_ms(25 * 3600 * 1000);
    append_one(&log, "late", b"x");
    log.maintain().unwrap();
    let left = segment_files(dir.path(), ".key");
    assert_eq!(
        left.len(),
        segment_files(dir.path(), ".seg").len(),
        "one key file per segment left: {left:?}"
    );
    assert!(left.len() < key_files);
    assert_eq!(log.seek(Position::TrimHorizon).unwrap(), 30);
}
