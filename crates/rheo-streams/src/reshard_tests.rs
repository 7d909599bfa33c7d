//! Reshard plans and crash points, on real files without a server.

use std::sync::Arc;

use bytes::Bytes;
use rheo_storage::ManualClock;

use super::*;
use crate::config::StoreConfig;
use crate::model::{CreateStream, PutEntry, PutOutcome, ShardFilter, ShardInfo};

async fn store(dir: &std::path::Path) -> Store {
    let config = StoreConfig {
        data_dir: dir.to_path_buf(),
        segment_max_bytes: 64 * 1024,
        ..StoreConfig::default()
    };
    Store::open(config, Arc::new(ManualClock::new(1_700_000_000_000)))
        .await
        .unwrap()
}

async fn create(store: &Store, shards: i64) {
    store
        .create_stream(CreateStream {
            name: "s".into(),
            shard_count: Some(shards),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn shards(store: &Store, filter: ShardFilter) -> Vec<ShardInfo> {
    store
        .list_shards("s", "", "", None, filter, None)
        .unwrap()
        .0
}

/// The open shards, sorted, must tile the key space exactly.
fn assert_covered(open: &[ShardInfo]) {
    let mut ranges: Vec<(u128, u128)> = open
        .iter()
        .map(|s| (s.starting_hash_key, s.ending_hash_key))
        .collect();
    ranges.sort_unstable();
    assert_eq!(ranges.first().unwrap().0, 0);
    assert_eq!(ranges.last().unwrap().1, u128::MAX);
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].1 + 1, pair[1].0, "no gap or overlap: {ranges:?}");
    }
}

async fn put(store: &Store, key: &str) -> String {
    let outcome = store
        .put_records(
            "s",
            vec![PutEntry {
                data: Bytes::from_static(b"x"),
                partition_key: key.into(),
                explicit_hash_key: None,
            }],
        )
        .await
        .unwrap();
    match outcome.into_iter().next().unwrap() {
        PutOutcome::Stored { shard_id, .. } => shard_id,
        failed => panic!("{failed:?}"),
    }
}

#[tokio::test]
async fn uniform_scaling_ends_uniform_with_pairwise_lineage() {
    for (from, to) in [
        (1, 2),
        (2, 4),
        (4, 2),
        (3, 5),
        (5, 3),
        (5, 8),
        (8, 5),
        (7, 4),
        (3, 3),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        create(&store, from).await;
        if from == 3 && to == 3 {
            // Uneven shards first: scaling to the same count evens them out.
            let first = &shards(&store, ShardFilter::AtLatest)[0];
            let at =
                first.starting_hash_key + (first.ending_hash_key - first.starting_hash_key) / 3;
            store
                .split_shard("s", &first.shard_id, &at.to_string())
                .await
                .unwrap();
        }
        let current = shards(&store, ShardFilter::AtLatest).len() as u32;
        let (before, after) = store
            .update_shard_count("s", to, "UNIFORM_SCALING")
            .await
            .unwrap();
        assert_eq!((before, after), (current, to as u32));
        let open = shards(&store, ShardFilter::AtLatest);
        let mut ranges: Vec<(u128, u128)> = open
            .iter()
            .map(|s| (s.starting_hash_key, s.ending_hash_key))
            .collect();
        ranges.sort_unstable();
        assert_eq!(ranges, initial_ranges(to as u32), "{from} -> {to}");
        assert_covered(&open);
        let all = shards(&store, ShardFilter::FromTrimHorizon);
        for shard in &all {
            let parents = [&shard.parent_shard_id, &shard.adjacent_parent_shard_id];
            for parent in parents.into_iter().flatten() {
                let parent = all
                    .iter()
                    .find(|s| &s.shard_id == parent)
                    .expect("parent listed");
                assert!(
                    parent.ending_sequence_number.is_some(),
                    "parents are closed"
                );
            }
        }
        if from * 2 == to || to * 2 == from {
            assert_eq!(
                all.len() as i64,
                from + to,
                "doubling and halving need no intermediate shards ({from} -> {to})"
            );
        }
        // Writes go to the new shards; every key lands in an open one.
        for key in 0..20 {
            let shard = put(&store, &format!("key-{key}")).await;
            assert!(open.iter().any(|s| s.shard_id == shard));
        }
    }
}

#[tokio::test]
async fn a_crash_inside_a_reshard_leaves_it_not_started_or_complete() {
    for crash in [
        Some("children created"),
        Some("parents closed"),
        Some("metadata written"),
        None,
    ] {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = store(dir.path()).await;
            create(&store, 2).await;
            put(&store, "before").await;
            *lock(&store.inner.crash_at) = crash.into_iter().collect();
            let result = store
                .split_shard("s", "shardId-000000000000", &(u128::MAX / 4).to_string())
                .await;
            assert_eq!(result.is_ok(), crash.is_none(), "{crash:?}: {result:?}");
        }
        // "Restart": everything in memory is gone; only the files remain.
        let store = store(dir.path()).await;
        let open = shards(&store, ShardFilter::AtLatest);
        assert_covered(&open);
        let all = shards(&store, ShardFilter::FromTrimHorizon);
        let dirs: Vec<String> = std::fs::read_dir(dir.path().join("streams/s"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("shardId-"))
            .collect();
        assert_eq!(
            dirs.len(),
            all.len(),
            "no stray shard directories: {dirs:?}"
        );
        match crash {
            Some(_) => {
                assert_eq!(all.len(), 2, "{crash:?}: not started");
                assert!(all.iter().all(|s| s.ending_sequence_number.is_none()));
                assert_eq!(put(&store, "before").await, "shardId-000000000000");
            }
            None => {
                assert_eq!(all.len(), 4, "complete");
                assert_eq!(open.len(), 3);
                let parent = &all[0];
                assert!(
                    parent.ending_sequence_number.is_some(),
                    "the parent stays closed"
                );
                assert_ne!(put(&store, "before").await, "shardId-000000000000");
            }
        }
    }
}

/// Every record of `shard`, from the trim horizon.
async fn records_in(store: &Store, shard: &str) -> usize {
    let iterator = store
        .get_shard_iterator("s", shard, crate::model::IteratorStart::TrimHorizon)
        .await
        .unwrap();
    store
        .get_records(&iterator, None, "")
        .await
        .unwrap()
        .records
        .len()
}

fn shard_dirs(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("streams/s"))
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().starts_with("shardId-")
        })
        .count()
}

#[tokio::test]
async fn a_reshard_that_fails_before_or_at_its_commit_point_is_undone_and_writes_go_on() {
    for step in ["parents closed", "metadata written"] {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        create(&store, 2).await;
        assert_eq!(put(&store, "before").await, "shardId-000000000000");
        *lock(&store.inner.crash_at) = vec![step];
        let split = store
            .split_shard("s", "shardId-000000000000", &(u128::MAX / 4).to_string())
            .await;
        assert!(split.is_err(), "{step}");
        lock(&store.inner.crash_at).clear();
        // The old shape, writable, with nothing left of the children.
        assert_eq!(
            put(&store, "before").await,
            "shardId-000000000000",
            "{step}"
        );
        assert_eq!(shards(&store, ShardFilter::FromTrimHorizon).len(), 2);
        assert_eq!(shard_dirs(dir.path()), 2, "{step}: children removed");
        // The same reshard can be made again, and every record is kept.
        store
            .split_shard("s", "shardId-000000000000", &(u128::MAX / 4).to_string())
            .await
            .unwrap();
        assert_ne!(put(&store, "before").await, "shardId-000000000000");
        drop(store);
        let store = self::store(dir.path()).await;
        let all = shards(&store, ShardFilter::FromTrimHorizon);
        assert_eq!(all.len(), 4, "{step}");
        assert!(all[0].ending_sequence_number.is_some());
        assert_eq!(
            records_in(&store, "shardId-000000000000").await,
            2,
            "{step}"
        );
    }
}

#[tokio::test]
async fn a_reshard_whose_commit_cannot_be_undone_keeps_its_parents_closed() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    create(&store, 2).await;
    put(&store, "before").await;
    // The new metadata was written but reported failed, and restoring the old one fails too:
    // the disk may hold either shape, so the parent must take no more records.
    *lock(&store.inner.crash_at) = vec!["metadata written", "metadata restored"];
    let split = store
        .split_shard("s", "shardId-000000000000", &(u128::MAX / 4).to_string())
        .await;
    assert!(split.is_err());
    lock(&store.inner.crash_at).clear();
    let refused = store
        .put_records(
            "s",
            vec![PutEntry {
                data: Bytes::from_static(b"x"),
                partition_key: "before".into(),
                explicit_hash_key: None,
            }],
        )
        .await;
    let stored = matches!(refused.as_deref(), Ok([PutOutcome::Stored { .. }]));
    assert!(!stored, "the closed parent took a record: {refused:?}");
    // A restart finds the shape on disk (here the new one) whole: the parent ends after the
    // record it took, the children are there.
    drop(store);
    let store = self::store(dir.path()).await;
    let all = shards(&store, ShardFilter::FromTrimHorizon);
    assert_eq!(all.len(), 4);
    assert_covered(&shards(&store, ShardFilter::AtLatest));
    assert_eq!(records_in(&store, "shardId-000000000000").await, 1);
    assert_ne!(put(&store, "before").await, "shardId-000000000000");
}

#[tokio::test]
async fn a_create_stream_that_fails_half_way_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    // Shard 3's log cannot be made: a file stands where its directory would go.
    let stream_dir = dir.path().join("streams").join("s");
    std::fs::create_dir_all(&stream_dir).unwrap();
    std::fs::write(stream_dir.join("shardId-000000000003"), b"in the way").unwrap();
    let failed = store
        .create_stream(CreateStream {
            name: "s".into(),
            shard_count: Some(6),
            ..Default::default()
        })
        .await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(
        !stream_dir.exists(),
        "the shards it made are removed with the stream's directory"
    );
    assert!(store.describe_stream_summary("s").is_err());
    // The name is free again.
    create(&store, 6).await;
    assert_eq!(shards(&store, ShardFilter::default()).len(), 6);
}
