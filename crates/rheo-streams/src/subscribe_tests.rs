//! Push sessions against a store on real files, without a server.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use rheo_storage::ManualClock;

use super::*;
use crate::config::StoreConfig;
use crate::model::{CreateStream, PutEntry};

async fn store(dir: &std::path::Path) -> Store {
    let config = StoreConfig {
        data_dir: dir.to_path_buf(),
        ..StoreConfig::default()
    };
    Store::open(config, Arc::new(ManualClock::new(1_700_000_000_000)))
        .await
        .unwrap()
}

fn entry(key: &str) -> PutEntry {
    PutEntry {
        data: Bytes::from(key.to_string()),
        partition_key: key.into(),
        explicit_hash_key: None,
    }
}

/// Events until one carries records, for at most `within`.
async fn records_within(session: &mut Subscription, within: Duration) -> Vec<String> {
    tokio::time::timeout(within, async {
        loop {
            let event = session.next_event().await.expect("open").expect("event");
            if !event.records.is_empty() {
                return event
                    .records
                    .iter()
                    .map(|record| record.partition_key.clone())
                    .collect();
            }
        }
    })
    .await
    .unwrap_or_default()
}

#[tokio::test]
async fn a_put_call_dropped_after_queueing_its_records_still_announces_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    store
        .create_stream(CreateStream {
            name: "s".into(),
            shard_count: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer = store.register_consumer("s", "c").await.unwrap();
    let mut sessions = Vec::new();
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let mut session = store
            .subscribe_to_shard(&consumer.arn, shard, IteratorStart::TrimHorizon)
            .await
            .unwrap();
        // The first event comes at once, empty.
        assert!(
            records_within(&mut session, Duration::from_millis(200))
                .await
                .is_empty()
        );
        sessions.push(session);
    }
    // Keys on both shards, in one call that its caller abandons once the records are queued
    // (a client that went away): the records are durable all the same, and must be pushed.
    let keys: Vec<String> = (0..20).map(|key| format!("key-{key}")).collect();
    let mut call = Box::pin(store.put_records("s", keys.iter().map(|key| entry(key)).collect()));
    std::future::poll_fn(|cx| {
        assert!(call.as_mut().poll(cx).is_pending(), "waits for the commit");
        Poll::Ready(())
    })
    .await;
    drop(call);
    let mut pushed = Vec::new();
    for session in &mut sessions {
        let records = records_within(session, Duration::from_secs(3)).await;
        assert!(!records.is_empty(), "every shard got some of the keys");
        pushed.extend(records);
    }
    pushed.sort();
    let mut expected = keys.clone();
    expected.sort();
    assert_eq!(pushed, expected);
}
