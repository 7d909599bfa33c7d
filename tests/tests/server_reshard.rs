//! Resharding through the real server: split, merge and uniform rescaling under load with a
//! per-key order check over the whole lineage, the end of closed shards for GetRecords and
//! SubscribeToShard, ListShards filters, validation errors, UPDATING, and parents expiring.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use rheo_client::{LineageReader, Start};
use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use rheo_storage::Clock;
use rheo_tests::{
    TestServer, create_stream as create, reason, test_config, unlimited_config as config,
};
use tonic::transport::Channel;

type Client = KinesisClient<Channel>;

async fn list(client: &mut Client, filter: pb::ShardFilter) -> Vec<pb::Shard> {
    client
        .list_shards(pb::ListShardsRequest {
            stream_name: "s".into(),
            shard_filter: Some(filter),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .shards
}

fn filter(kind: pb::ShardFilterType) -> pb::ShardFilter {
    pb::ShardFilter {
        r#type: kind as i32,
        ..Default::default()
    }
}

fn ids(shards: &[pb::Shard]) -> Vec<&str> {
    shards.iter().map(|s| s.shard_id.as_str()).collect()
}

async fn split(client: &mut Client, shard: &str, at: u128) -> Result<(), tonic::Status> {
    client
        .split_shard(pb::SplitShardRequest {
            stream_name: "s".into(),
            shard_to_split: shard.into(),
            new_starting_hash_key: at.to_string(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn merge(client: &mut Client, shard: &str, adjacent: &str) -> Result<(), tonic::Status> {
    client
        .merge_shards(pb::MergeShardsRequest {
            stream_name: "s".into(),
            shard_to_merge: shard.into(),
            adjacent_shard_to_merge: adjacent.into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
}

async fn scale(
    client: &mut Client,
    target: i32,
) -> Result<pb::UpdateShardCountResponse, tonic::Status> {
    client
        .update_shard_count(pb::UpdateShardCountRequest {
            stream_name: "s".into(),
            target_shard_count: target,
            scaling_type: "UNIFORM_SCALING".into(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner())
}

async fn put(client: &mut Client, key: &str, data: &str) -> pb::PutRecordResponse {
    client
        .put_record(pb::PutRecordRequest {
            stream_name: "s".into(),
            partition_key: key.into(),
            data: Bytes::from(data.to_string()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// Every record of the stream, parents before children.
async fn read_lineage(client: &Client) -> Vec<(String, pb::Record)> {
    let mut reader = LineageReader::new(client.clone(), "s", Start::TrimHorizon, false)
        .await
        .unwrap();
    let mut records = Vec::new();
    for _ in 0..10_000 {
        match reader.next().await.unwrap() {
            Some(batch) => records.extend(
                batch
                    .records
                    .into_iter()
                    .map(|r| (batch.shard_id.clone(), r)),
            ),
            None => return records,
        }
    }
    panic!("the reader did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_merge_and_rescale_under_load_keep_every_key_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), config()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 2).await;

    // Two producers, 20 keys each, every key's counter in order, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    for producer in 0..2 {
        let mut client = server.client().await;
        let stop = stop.clone();
        producers.push(tokio::spawn(async move {
            let mut acknowledged: BTreeMap<String, u32> = BTreeMap::new();
            for round in 0..2_000u32 {
                if round >= 40 && stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let records = (0..20)
                    .map(|key| pb::PutRecordsRequestEntry {
                        data: Bytes::from(format!("{round}")),
                        partition_key: format!("p{producer}-k{key}"),
                        explicit_hash_key: None,
                    })
                    .collect();
                let response = client
                    .put_records(pb::PutRecordsRequest {
                        stream_name: "s".into(),
                        records,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(response.failed_record_count, 0);
                for key in 0..20 {
                    acknowledged.insert(format!("p{producer}-k{key}"), round + 1);
                }
            }
            acknowledged
        }));
    }
    let pause = || tokio::time::sleep(Duration::from_millis(30));
    pause().await;
    split(&mut client, "shardId-000000000000", u128::MAX / 4)
        .await
        .unwrap();
    pause().await;
    // Children of the split: 2 = [0, max/4), 3 = [max/4, max/2]. Merge them back.
    merge(&mut client, "shardId-000000000002", "shardId-000000000003")
        .await
        .unwrap();
    pause().await;
    assert_eq!(scale(&mut client, 4).await.unwrap().current_shard_count, 2);
    pause().await;
    scale(&mut client, 3).await.unwrap();
    pause().await;
    scale(&mut client, 5).await.unwrap();
    pause().await;
    scale(&mut client, 3).await.unwrap();
    pause().await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut acknowledged = BTreeMap::new();
    for producer in producers {
        acknowledged.extend(producer.await.unwrap());
    }

    let open = list(&mut client, filter(pb::ShardFilterType::AtLatest)).await;
    assert_eq!(open.len(), 3);
    let records = read_lineage(&client).await;
    let mut per_key: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for (_, record) in &records {
        per_key
            .entry(record.partition_key.clone())
            .or_default()
            .push(String::from_utf8_lossy(&record.data).parse().unwrap());
    }
    assert_eq!(per_key.len(), 40);
    for (key, rounds) in &per_key {
        let expected: Vec<u32> = (0..acknowledged[key]).collect();
        assert_eq!(
            rounds, &expected,
            "{key}: none lost, duplicated or reordered"
        );
    }
    // Children's sequence numbers are above their parents'.
    let all = list(&mut client, filter(pb::ShardFilterType::FromTrimHorizon)).await;
    let last_of = |id: &str| {
        records
            .iter()
            .filter(|(shard, _)| shard == id)
            .map(|(_, r)| r.sequence_number.parse::<u128>().unwrap())
            .max()
    };
    let first_of = |id: &str| {
        records
            .iter()
            .filter(|(shard, _)| shard == id)
            .map(|(_, r)| r.sequence_number.parse::<u128>().unwrap())
            .min()
    };
    for shard in &all {
        for parent in shard
            .parent_shard_id
            .iter()
            .chain(&shard.adjacent_parent_shard_id)
        {
            if let (Some(parent_last), Some(child_first)) =
                (last_of(parent), first_of(&shard.shard_id))
            {
                assert!(
                    child_first > parent_last,
                    "{} after {parent}",
                    shard.shard_id
                );
            }
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_parents_end_with_their_children_for_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), config()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 2).await;
    let before_split = put(&mut client, "a", "before").await;
    assert_eq!(
        before_split.shard_id, "shardId-000000000000",
        "MD5(a) is in the lowest quarter"
    );
    let created = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description_summary
        .unwrap()
        .stream_creation_timestamp_ms;

    // A push session on the parent, open while it is split.
    let consumer = client
        .register_stream_consumer(pb::RegisterStreamConsumerRequest {
            stream_name: "s".into(),
            consumer_name: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consumer
        .unwrap()
        .consumer_arn;
    let mut events = client
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: consumer.clone(),
            shard_id: "shardId-000000000000".into(),
            starting_position: Some(pb::StartingPosition {
                r#type: pb::ShardIteratorType::TrimHorizon as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let first = events.message().await.unwrap().unwrap();
    assert_eq!(first.records.len(), 1);

    server.clock.advance_ms(10);
    split(&mut client, "shardId-000000000000", u128::MAX / 4)
        .await
        .unwrap();
    server.clock.advance_ms(10);
    let after_split = put(&mut client, "a", "after").await;
    assert_eq!(
        after_split.shard_id, "shardId-000000000002",
        "new ids take the next index"
    );
    assert!(
        after_split.sequence_number.parse::<u128>().unwrap()
            > before_split.sequence_number.parse::<u128>().unwrap()
    );

    // The session ends with the children and no continuation.
    let last = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(last.continuation_sequence_number, None);
    let children: Vec<&str> = last
        .child_shards
        .iter()
        .map(|c| c.shard_id.as_str())
        .collect();
    assert_eq!(children, ["shardId-000000000002", "shardId-000000000003"]);
    assert_eq!(last.child_shards[0].parent_shards, ["shardId-000000000000"]);
    assert!(
        events.message().await.unwrap().is_none(),
        "then the stream ends"
    );

    // DescribeStream: the parent is closed; the children name it.
    let description = client
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description
        .unwrap();
    let shards = &description.shards;
    assert_eq!(
        ids(shards),
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002",
            "shardId-000000000003"
        ]
    );
    let ending = shards[0]
        .sequence_number_range
        .as_ref()
        .unwrap()
        .ending_sequence_number
        .clone();
    assert_eq!(
        ending.as_deref(),
        Some(before_split.sequence_number.as_str())
    );
    assert!(
        shards[1]
            .sequence_number_range
            .as_ref()
            .unwrap()
            .ending_sequence_number
            .is_none()
    );
    assert_eq!(
        shards[2].parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    assert_eq!(
        shards[3].hash_key_range.as_ref().unwrap().starting_hash_key,
        (u128::MAX / 4).to_string()
    );

    // GetRecords reads the parent to its end: no next iterator, the children.
    let page = rheo_tests::first_page(&mut client, "s", "shardId-000000000000").await;
    assert_eq!(page.records.len(), 1);
    assert_eq!(page.next_shard_iterator, None);
    assert_eq!(page.child_shards.len(), 2);

    // A new subscription to the closed parent delivers what is left, then ends.
    server.clock.advance_ms(5_000);
    let mut again = client
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: consumer,
            shard_id: "shardId-000000000000".into(),
            starting_position: Some(pb::StartingPosition {
                r#type: pb::ShardIteratorType::TrimHorizon as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let event = again.message().await.unwrap().unwrap();
    assert_eq!(
        event.records.len(),
        1,
        "the last records come with the children"
    );
    assert_eq!(
        (event.continuation_sequence_number, event.child_shards.len()),
        (None, 2)
    );
    assert!(again.message().await.unwrap().is_none());

    // Merge the upper child with shard 1: one child with both parents.
    merge(&mut client, "shardId-000000000003", "shardId-000000000001")
        .await
        .unwrap();
    let all = list(&mut client, filter(pb::ShardFilterType::FromTrimHorizon)).await;
    let merged = all.last().unwrap();
    assert_eq!(merged.shard_id, "shardId-000000000004");
    assert_eq!(
        merged.parent_shard_id.as_deref(),
        Some("shardId-000000000003")
    );
    assert_eq!(
        merged.adjacent_parent_shard_id.as_deref(),
        Some("shardId-000000000001")
    );

    // Every ShardFilter type.
    let at_latest = list(&mut client, filter(pb::ShardFilterType::AtLatest)).await;
    assert_eq!(
        ids(&at_latest),
        ["shardId-000000000002", "shardId-000000000004"]
    );
    let at_horizon = list(&mut client, filter(pb::ShardFilterType::AtTrimHorizon)).await;
    assert_eq!(
        ids(&at_horizon),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    assert_eq!(ids(&all).len(), 5);
    let at_creation = list(
        &mut client,
        pb::ShardFilter {
            r#type: pb::ShardFilterType::AtTimestamp as i32,
            timestamp_ms: Some(created),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        ids(&at_creation),
        ["shardId-000000000000", "shardId-000000000001"]
    );
    let from_now = list(
        &mut client,
        pb::ShardFilter {
            r#type: pb::ShardFilterType::FromTimestamp as i32,
            timestamp_ms: Some(server.clock.now_ms()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        ids(&from_now),
        ["shardId-000000000002", "shardId-000000000004"]
    );
    let after = list(
        &mut client,
        pb::ShardFilter {
            r#type: pb::ShardFilterType::AfterShardId as i32,
            shard_id: "shardId-000000000002".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        ids(&after),
        ["shardId-000000000003", "shardId-000000000004"]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reshard_validation_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config();
    settings.shard_limit = 6;
    let server = TestServer::start(dir.path(), settings).await;
    let mut client = server.client().await;
    create(&mut client, "s", 2).await;
    let upper_start = u128::MAX / 2 + 1;
    let cases: Vec<(Result<(), tonic::Status>, &str)> = vec![
        (
            split(&mut client, "shardId-000000000000", 1).await,
            "InvalidArgumentException",
        ),
        (
            split(&mut client, "shardId-000000000000", u128::MAX / 2).await,
            "InvalidArgumentException",
        ),
        (
            split(&mut client, "shardId-000000000001", upper_start + 1).await,
            "InvalidArgumentException",
        ),
        (
            split(&mut client, "shardId-000000000009", 100).await,
            "ResourceNotFoundException",
        ),
        (
            merge(&mut client, "shardId-000000000000", "shardId-000000000000").await,
            "InvalidArgumentException",
        ),
        (
            scale(&mut client, 5).await.map(|_| ()),
            "LimitExceededException",
        ),
        (
            scale(&mut client, 0).await.map(|_| ()),
            "ValidationException",
        ),
    ];
    for (result, expected) in cases {
        let status = result.unwrap_err();
        assert_eq!(reason(&status), expected, "{status:?}");
    }
    let bad_key = client
        .split_shard(pb::SplitShardRequest {
            stream_name: "s".into(),
            shard_to_split: "shardId-000000000000".into(),
            new_starting_hash_key: "12ab".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad_key), "ValidationException");
    let bad_type = client
        .update_shard_count(pb::UpdateShardCountRequest {
            stream_name: "s".into(),
            target_shard_count: 3,
            scaling_type: "MAGIC".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad_type), "ValidationException");

    // Split shard 0 into 2 and 3; then the parent is closed and 0 and 3 are not adjacent.
    split(&mut client, "shardId-000000000000", u128::MAX / 4)
        .await
        .unwrap();
    let closed = split(&mut client, "shardId-000000000000", 100)
        .await
        .unwrap_err();
    assert_eq!(reason(&closed), "ResourceInUseException");
    let apart = merge(&mut client, "shardId-000000000002", "shardId-000000000001")
        .await
        .unwrap_err();
    assert_eq!(reason(&apart), "InvalidArgumentException", "{apart:?}");
    // The shard limit (6 open over all streams) counts the new shards.
    scale(&mut client, 6).await.unwrap();
    let open = list(&mut client, filter(pb::ShardFilterType::AtLatest)).await;
    let range = open[0].hash_key_range.clone().unwrap();
    let middle = range.starting_hash_key.parse::<u128>().unwrap() / 2
        + range.ending_hash_key.parse::<u128>().unwrap() / 2;
    let over = split(&mut client, &open[0].shard_id, middle).await;
    assert_eq!(reason(&over.unwrap_err()), "LimitExceededException");

    // On-demand streams refuse reshards; mode changes are limited to two a day.
    let mode = |mode: pb::StreamMode| pb::UpdateStreamModeRequest {
        stream_name: "s".into(),
        stream_mode: mode as i32,
        ..Default::default()
    };
    client
        .update_stream_mode(mode(pb::StreamMode::OnDemand))
        .await
        .unwrap();
    let summary = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.stream_mode(), pb::StreamMode::OnDemand);
    assert_eq!(summary.open_shard_count, 6, "the shards stay");
    for refused in [
        split(&mut client, "shardId-000000000004", u128::MAX / 16).await,
        merge(&mut client, "shardId-000000000004", "shardId-000000000005").await,
        scale(&mut client, 4).await.map(|_| ()),
    ] {
        assert_eq!(reason(&refused.unwrap_err()), "ValidationException");
    }
    let same = client
        .update_stream_mode(mode(pb::StreamMode::OnDemand))
        .await
        .unwrap_err();
    assert_eq!(reason(&same), "InvalidArgumentException");
    client
        .update_stream_mode(mode(pb::StreamMode::Provisioned))
        .await
        .unwrap();
    let third = client
        .update_stream_mode(mode(pb::StreamMode::OnDemand))
        .await
        .unwrap_err();
    assert_eq!(reason(&third), "LimitExceededException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_is_updating_during_a_reshard_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config();
    settings.reshard_delay = Duration::from_secs(2);
    let server = TestServer::start(dir.path(), settings).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    let splitting = {
        let mut client = server.client().await;
        tokio::spawn(async move { split(&mut client, "shardId-000000000000", u128::MAX / 2).await })
    };
    let observer = client.clone();
    let status = || {
        let mut client = observer.clone();
        async move {
            client
                .describe_stream_summary(pb::DescribeStreamSummaryRequest {
                    stream_name: "s".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .stream_description_summary
                .unwrap()
                .stream_status()
        }
    };
    let mut updating = false;
    for _ in 0..100 {
        if status().await == pb::StreamStatus::Updating {
            updating = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(updating, "the stream shows UPDATING during the reshard");
    let second = scale(&mut client, 2).await.unwrap_err();
    assert_eq!(reason(&second), "ResourceInUseException");
    // Writes and reads keep working.
    let stored = put(&mut client, "k", "during").await;
    assert_eq!(stored.shard_id, "shardId-000000000000");
    splitting.await.unwrap().unwrap();
    assert_eq!(status().await, pb::StreamStatus::Active);
    let records = read_lineage(&client).await;
    assert_eq!(records.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parents_expire_when_their_data_is_past_retention() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), config()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    put(&mut client, "k", "old").await;
    split(&mut client, "shardId-000000000000", u128::MAX / 2)
        .await
        .unwrap();
    put(&mut client, "k", "new").await;
    let parent_dir = dir.path().join("streams/s/shardId-000000000000");
    assert!(parent_dir.exists());

    // 23 hours on: the parent's record is still within the 24-hour retention.
    server.clock.advance_ms(23 * 3_600_000);
    server.store.maintain().await;
    assert_eq!(
        list(&mut client, filter(pb::ShardFilterType::FromTrimHorizon))
            .await
            .len(),
        3
    );
    // 25 hours on: it expired, it is no longer listed or readable, its files are gone.
    server.clock.advance_ms(2 * 3_600_000);
    server.store.maintain().await;
    let kept = list(&mut client, filter(pb::ShardFilterType::FromTrimHorizon)).await;
    assert_eq!(ids(&kept), ["shardId-000000000001", "shardId-000000000002"]);
    assert_eq!(
        kept[0].parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    let gone = client
        .get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: "s".into(),
            shard_id: "shardId-000000000000".into(),
            shard_iterator_type: pb::ShardIteratorType::TrimHorizon as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&gone), "ResourceNotFoundException");
    assert!(!parent_dir.exists());
    // The lineage reader treats the expired parent as done and reads the children.
    let records = read_lineage(&client).await;
    assert_eq!(records.len(), 0, "the child's record is past retention too");
    let clock = server.clock.clone();
    server.stop().await;
    // And after a restart the expiry holds.
    let server = TestServer::start_with_clock(dir.path(), config(), clock).await;
    let mut client = server.client().await;
    assert_eq!(
        list(&mut client, filter(pb::ShardFilterType::FromTrimHorizon))
            .await
            .len(),
        2
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_streams_share_their_limits_across_shards() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = test_config();
    settings.limits.write_records_per_sec = 10;
    let server = TestServer::start(dir.path(), settings).await;
    let mut client = server.client().await;
    // All 60 records hash to the first shard.
    let burst = |name: &str| pb::PutRecordsRequest {
        stream_name: name.into(),
        records: (0..60)
            .map(|i| pb::PutRecordsRequestEntry {
                data: Bytes::from(format!("{i}")),
                partition_key: "k".into(),
                explicit_hash_key: Some("1".into()),
            })
            .collect(),
        ..Default::default()
    };
    create(&mut client, "provisioned", 4).await;
    client
        .create_stream(pb::CreateStreamRequest {
            stream_name: "on-demand".into(),
            stream_mode: pb::StreamMode::OnDemand as i32,
            ..Default::default()
        })
        .await
        .unwrap();
    let stored = |response: pb::PutRecordsResponse| 60 - response.failed_record_count;
    let provisioned = stored(
        client
            .put_records(burst("provisioned"))
            .await
            .unwrap()
            .into_inner(),
    );
    let on_demand = stored(
        client
            .put_records(burst("on-demand"))
            .await
            .unwrap()
            .into_inner(),
    );
    // A provisioned shard takes its own 10 records/s; an on-demand stream lends one shard the
    // whole stream's 40 (a little more may refill while the call runs).
    assert!((10..=12).contains(&provisioned), "{provisioned}");
    assert!((40..=45).contains(&on_demand), "{on_demand}");
    server.stop().await;
}
