//! StartStreamEncryption and StopStreamEncryption on a store over real files.

use std::sync::Arc;

use bytes::Bytes;
use rheo_storage::ManualClock;

use super::*;
use crate::config::StoreConfig;
use crate::keyring::{DEFAULT_ALIAS, DEFAULT_KEYRING_FILE};
use crate::model::{CreateStream, IteratorStart, PutEntry, PutOutcome};

const MARKER: &str = "secret-marker-5d1c";

async fn store(dir: &std::path::Path) -> Store {
    let config = StoreConfig {
        data_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    Store::open(config, Arc::new(ManualClock::new(1_700_000_000_000)))
        .await
        .unwrap()
}

/// A store with a one-shard stream `s`.
async fn store_with_stream(dir: &std::path::Path) -> Store {
    let store = store(dir).await;
    store
        .create_stream(CreateStream {
            name: "s".into(),
            shard_count: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    store
}

async fn put(store: &Store, data: &str) {
    let outcome = store
        .put_records(
            "s",
            vec![PutEntry {
                data: Bytes::from(data.to_string()),
                partition_key: format!("{MARKER}-key"),
                explicit_hash_key: None,
            }],
        )
        .await
        .unwrap();
    assert!(
        matches!(outcome[0], PutOutcome::Stored { .. }),
        "{outcome:?}"
    );
}

async fn read_all(store: &Store) -> Vec<(String, bool)> {
    let iterator = store
        .get_shard_iterator("s", "shardId-000000000000", IteratorStart::TrimHorizon)
        .await
        .unwrap();
    let page = store.get_records(&iterator, None, "").await.unwrap();
    page.records
        .into_iter()
        .map(|record| {
            (
                String::from_utf8(record.data.to_vec()).unwrap(),
                record.encrypted,
            )
        })
        .collect()
}

fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
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

#[tokio::test]
async fn encryption_starts_and_stops_and_every_record_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_stream(dir.path()).await;
    put(&store, "plain-1").await;
    store
        .start_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .unwrap();
    assert_eq!(
        store.encryption("s").unwrap(),
        Encryption::Kms {
            key_id: DEFAULT_ALIAS.into()
        }
    );
    put(&store, &format!("{MARKER}-a")).await;
    put(&store, &format!("{MARKER}-b")).await;
    store
        .stop_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .unwrap();
    assert_eq!(store.encryption("s").unwrap(), Encryption::None);
    put(&store, "plain-2").await;
    let expected = vec![
        ("plain-1".to_string(), false),
        (format!("{MARKER}-a"), true),
        (format!("{MARKER}-b"), true),
        ("plain-2".to_string(), false),
    ];
    assert_eq!(read_all(&store).await, expected);
    store.sync_all().await.unwrap();
    drop(store);
    // The first plaintext record carries the marker in its key; the encrypted ones only.
    let holding: Vec<String> = files_containing(dir.path(), format!("{MARKER}-a").as_bytes());
    assert_eq!(
        holding,
        Vec::<String>::new(),
        "no file holds encrypted data"
    );
    let store = self::store(dir.path()).await;
    assert_eq!(read_all(&store).await, expected, "after a restart");
}

#[tokio::test]
async fn unknown_disabled_and_malformed_keys_get_kinesis_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_stream(dir.path()).await;
    let name = |result: Result<()>| result.unwrap_err().kinesis_name();
    assert_eq!(
        name(
            store
                .start_stream_encryption("s", "KMS", "alias/missing")
                .await
        ),
        "KMSNotFoundException"
    );
    assert_eq!(
        name(
            store
                .start_stream_encryption("s", "AES", DEFAULT_ALIAS)
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        name(
            store
                .start_stream_encryption("s", "NONE", DEFAULT_ALIAS)
                .await
        ),
        "InvalidArgumentException"
    );
    assert_eq!(
        name(store.start_stream_encryption("s", "KMS", "").await),
        "ValidationException"
    );
    assert_eq!(
        name(
            store
                .start_stream_encryption("t", "KMS", DEFAULT_ALIAS)
                .await
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(store.encryption("s").unwrap(), Encryption::None);
    store
        .start_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .unwrap();
    // Disable the key in the file; the store takes it up at its next maintenance pass.
    let path = dir.path().join(DEFAULT_KEYRING_FILE);
    let mut doc = crate::keyring::read_file(&path).unwrap();
    doc.set_enabled(DEFAULT_ALIAS, false).unwrap();
    crate::keyring::write_file(&path, &doc).unwrap();
    store.maintain().await;
    let error = store
        .put_records(
            "s",
            vec![PutEntry {
                data: Bytes::from_static(b"x"),
                partition_key: "k".into(),
                explicit_hash_key: None,
            }],
        )
        .await
        .unwrap_err();
    assert_eq!(error.kinesis_name(), "KMSDisabledException", "{error}");
    assert!(!error.to_string().contains(dir.path().to_str().unwrap()));
    assert_eq!(
        name(
            store
                .start_stream_encryption("s", "KMS", DEFAULT_ALIAS)
                .await
        ),
        "KMSDisabledException"
    );
    // Stop checks its key too: it must exist, may be disabled, and must be the stream's.
    assert_eq!(
        name(
            store
                .stop_stream_encryption("s", "KMS", "alias/missing")
                .await
        ),
        "KMSNotFoundException"
    );
    assert_eq!(
        name(
            store
                .stop_stream_encryption("t", "KMS", "alias/missing")
                .await
        ),
        "ResourceNotFoundException",
        "the stream is looked up before the key"
    );
    assert_eq!(
        name(
            store
                .start_stream_encryption("t", "KMS", "alias/missing")
                .await
        ),
        "ResourceNotFoundException",
        "the stream is looked up before the key"
    );
    let mut doc = crate::keyring::read_file(&path).unwrap();
    doc.create("", Some("alias/other")).unwrap();
    crate::keyring::write_file(&path, &doc).unwrap();
    store.maintain().await;
    assert_eq!(
        name(
            store
                .stop_stream_encryption("s", "KMS", "alias/other")
                .await
        ),
        "InvalidArgumentException",
        "another key than the stream's"
    );
    store
        .stop_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .expect("a disabled key stops its own encryption");
    store
        .stop_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .expect("stopping an unencrypted stream changes nothing");
}

#[tokio::test]
async fn a_rotation_in_the_keyring_file_rewraps_stored_data_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_stream(dir.path()).await;
    store
        .start_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .unwrap();
    for i in 0..6 {
        put(&store, &format!("r{i}")).await;
    }
    let versions = |store: &Store| -> Vec<u32> {
        let stream = store.stream("s").unwrap();
        stream
            .topology()
            .shards
            .iter()
            .flat_map(|shard| shard.log.key_usage().segments)
            .map(|(_, version)| version)
            .collect()
    };
    assert!(versions(&store).iter().all(|v| *v == 1));
    let path = dir.path().join(DEFAULT_KEYRING_FILE);
    let mut doc = crate::keyring::read_file(&path).unwrap();
    doc.rotate(DEFAULT_ALIAS).unwrap();
    crate::keyring::write_file(&path, &doc).unwrap();
    store.maintain().await;
    let after = versions(&store);
    assert!(
        !after.is_empty() && after.iter().all(|v| *v == 2),
        "{after:?}"
    );
    assert_eq!(read_all(&store).await.len(), 6);
}

#[tokio::test]
async fn encryption_changes_are_limited_to_25_a_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_stream(dir.path()).await;
    for _ in 0..25 {
        store
            .start_stream_encryption("s", "KMS", DEFAULT_ALIAS)
            .await
            .unwrap();
    }
    let error = store
        .start_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .unwrap_err();
    assert_eq!(error.kinesis_name(), "LimitExceededException");
    store
        .stop_stream_encryption("s", "KMS", DEFAULT_ALIAS)
        .await
        .unwrap();
}
