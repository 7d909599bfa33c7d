//! A data directory written before the node journal (format version 1, checked in under
//! `tests/fixtures/v1-data`, see its README) opens with today's store with nothing lost:
//! every stream, shard, lineage, consumer and record, and it takes new writes afterwards.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use rheo_storage::ManualClock;
use rheo_streams::{IteratorStart, PutEntry, Store, StoreConfig};

/// A minute after the fixture was written (its consumer's ARN carries the second), so the
/// fixture's records are inside their 24-hour retention whenever the test runs.
const FIXTURE_TIME_MS: i64 = 1_796_416_668_000 + 60_000;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

async fn open(dir: &Path, clock: &ManualClock) -> Store {
    let config = StoreConfig {
        data_dir: dir.to_path_buf(),
        ..rheo_tests::test_config()
    };
    Store::open(config, Arc::new(clock.clone()))
        .await
        .expect("the v1 directory opens")
}

/// Every record of every shard of `orders`, by partition key (the fixture's keys are unique).
async fn all_records(store: &Store) -> Vec<String> {
    let (_, shards, _) = store.describe_stream("orders", None, "").unwrap();
    let mut keys = Vec::new();
    for shard in shards {
        let mut iterator = store
            .get_shard_iterator("orders", &shard.shard_id, IteratorStart::TrimHorizon)
            .await
            .unwrap();
        loop {
            let page = store.get_records(&iterator, None, "").await.unwrap();
            let empty = page.records.is_empty();
            keys.extend(page.records.into_iter().map(|record| {
                assert_eq!(record.data.as_ref(), record.partition_key.as_bytes());
                record.partition_key
            }));
            match page.next_shard_iterator {
                Some(next) if !(empty && page.millis_behind_latest == 0) => iterator = next,
                _ => break,
            }
        }
    }
    keys
}

#[tokio::test]
async fn a_version_1_data_directory_opens_with_nothing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/v1-data");
    copy_dir(&fixture, dir.path());
    let clock = ManualClock::new(FIXTURE_TIME_MS);

    let store = open(dir.path(), &clock).await;
    let (_, shards, _) = store.describe_stream("orders", None, "").unwrap();
    let lineage: Vec<(String, Option<String>)> = shards
        .iter()
        .map(|shard| (shard.shard_id.clone(), shard.parent_shard_id.clone()))
        .collect();
    let parent = Some("shardId-000000000000".to_string());
    assert_eq!(
        lineage,
        vec![
            ("shardId-000000000000".into(), None),
            ("shardId-000000000001".into(), None),
            ("shardId-000000000002".into(), parent.clone()),
            ("shardId-000000000003".into(), parent),
        ]
    );
    let consumers = store.list_consumers("orders", "", None, None).unwrap();
    assert_eq!(consumers.consumers.len(), 1);
    assert_eq!(consumers.consumers[0].name, "billing");

    let keys = all_records(&store).await;
    let expected: BTreeSet<String> = (1..=60).map(|i| format!("v1-record-{i}")).collect();
    assert_eq!(keys.len(), 60, "each record once: {keys:?}");
    assert_eq!(keys.into_iter().collect::<BTreeSet<_>>(), expected);

    // It takes writes through the journal, and keeps everything across another restart.
    let outcomes = store
        .put_records(
            "orders",
            vec![PutEntry {
                data: b"v2-record".to_vec().into(),
                partition_key: "v2-record".into(),
                explicit_hash_key: None,
            }],
        )
        .await
        .unwrap();
    assert!(matches!(
        outcomes[0],
        rheo_streams::PutOutcome::Stored { .. }
    ));
    drop(store);
    assert!(
        dir.path().join("journal").is_dir(),
        "the journal was created"
    );
    let store = open(dir.path(), &clock).await;
    let keys = all_records(&store).await;
    assert_eq!(keys.len(), 61);
    assert!(keys.contains(&"v2-record".to_string()));
}
