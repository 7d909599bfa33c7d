//! Enhanced fan-out through the real server: consumer registration, SubscribeToShard push
//! sessions, the 5-second rule, heartbeats and session expiry on the testbed clock,
//! slow-consumer isolation, disconnect cleanup and deregistration.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use rheo_streams::StoreConfig;
use rheo_tests::{TestServer, create_stream as create, reason, unlimited_config as config};
use tonic::Streaming;
use tonic::transport::Channel;

type Client = KinesisClient<Channel>;

async fn register(
    client: &mut Client,
    stream: &str,
    name: &str,
) -> Result<pb::Consumer, tonic::Status> {
    client
        .register_stream_consumer(pb::RegisterStreamConsumerRequest {
            stream_name: stream.into(),
            consumer_name: name.into(),
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().consumer.expect("a consumer"))
}

async fn describe(
    client: &mut Client,
    arn: &str,
) -> Result<pb::ConsumerDescription, tonic::Status> {
    client
        .describe_stream_consumer(pb::DescribeStreamConsumerRequest {
            consumer_arn: arn.into(),
            ..Default::default()
        })
        .await
        .map(|response| {
            response
                .into_inner()
                .consumer_description
                .expect("a description")
        })
}

/// Puts `count` records `<prefix>-<i>` under key `key`, `batch` per call; returns their
/// sequence numbers.
async fn put_many(
    client: &mut Client,
    stream: &str,
    prefix: &str,
    count: usize,
    batch: usize,
    padding: usize,
) -> Vec<String> {
    let mut sequences = Vec::with_capacity(count);
    let mut next = 0;
    while next < count {
        let end = (next + batch).min(count);
        let records = (next..end)
            .map(|i| pb::PutRecordsRequestEntry {
                data: Bytes::from(format!("{prefix}-{i}-{}", "x".repeat(padding))),
                partition_key: format!("key-{}", i % 7),
                explicit_hash_key: None,
            })
            .collect();
        let response = client
            .put_records(pb::PutRecordsRequest {
                stream_name: stream.into(),
                records,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.failed_record_count, 0);
        sequences.extend(
            response
                .records
                .into_iter()
                .map(|r| r.sequence_number.unwrap()),
        );
        next = end;
    }
    sequences
}

/// A server over a fresh directory, a client, and stream "s" of `shards` shards.
async fn stream_server(
    settings: StoreConfig,
    shards: i32,
) -> (tempfile::TempDir, TestServer, Client) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), settings).await;
    let mut client = server.client().await;
    create(&mut client, "s", shards).await;
    (dir, server, client)
}

/// Registers consumer `name` on stream "s" and returns its ARN.
async fn consumer_arn(client: &mut Client, name: &str) -> String {
    register(client, "s", name).await.unwrap().consumer_arn
}

fn position(kind: pb::ShardIteratorType, sequence: Option<String>) -> pb::StartingPosition {
    pb::StartingPosition {
        r#type: kind as i32,
        sequence_number: sequence,
        timestamp_ms: None,
    }
}

async fn subscribe(
    client: &mut Client,
    consumer_arn: &str,
    shard: &str,
    start: pb::StartingPosition,
) -> Result<Streaming<pb::SubscribeToShardEvent>, tonic::Status> {
    client
        .subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: consumer_arn.into(),
            shard_id: shard.into(),
            starting_position: Some(start),
        })
        .await
        .map(|response| response.into_inner())
}

/// The next event, failing the test if none comes within `within`.
async fn next_event(
    events: &mut Streaming<pb::SubscribeToShardEvent>,
    within: Duration,
) -> Result<Option<pb::SubscribeToShardEvent>, tonic::Status> {
    tokio::time::timeout(within, events.message())
        .await
        .expect("an event (or the end) in time")
}

/// Reads events until `count` records arrived; returns (sequence, data) pairs and the last
/// continuation sequence number.
async fn collect(
    events: &mut Streaming<pb::SubscribeToShardEvent>,
    count: usize,
) -> (Vec<(String, Bytes)>, String) {
    let mut records = Vec::new();
    let mut continuation = String::new();
    while records.len() < count {
        let event = next_event(events, Duration::from_secs(30))
            .await
            .unwrap()
            .expect("the session continues");
        continuation = event.continuation_sequence_number.expect("a continuation");
        records.extend(
            event
                .records
                .into_iter()
                .map(|r| (r.sequence_number, r.data)),
        );
    }
    (records, continuation)
}

const SHARD: &str = "shardId-000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_register_list_describe_deregister_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config();
    settings.fan_out.max_consumers_per_stream = 4;
    let server = TestServer::start(dir.path(), settings.clone()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;

    let first = register(&mut client, "s", "alpha").await.unwrap();
    assert_eq!(first.consumer_status(), pb::ConsumerStatus::Creating);
    let secs = first.consumer_creation_timestamp_ms.div_euclid(1000);
    assert_eq!(
        first.consumer_arn,
        format!("arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/alpha:{secs}")
    );
    let described = describe(&mut client, &first.consumer_arn).await.unwrap();
    assert_eq!(described.consumer_status(), pb::ConsumerStatus::Active);
    assert_eq!(
        described.stream_arn,
        "arn:aws:kinesis:us-east-1:000000000000:stream/s"
    );
    // By stream ARN and name, as Kinesis also accepts.
    let by_name = client
        .describe_stream_consumer(pb::DescribeStreamConsumerRequest {
            stream_arn: described.stream_arn.clone(),
            consumer_name: "alpha".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .consumer_description
        .unwrap();
    assert_eq!(by_name.consumer_arn, first.consumer_arn);

    let taken = register(&mut client, "s", "alpha").await.unwrap_err();
    assert_eq!(reason(&taken), "ResourceInUseException");
    let bad = register(&mut client, "s", "no spaces").await.unwrap_err();
    assert_eq!(reason(&bad), "ValidationException");
    let missing = register(&mut client, "nope", "c").await.unwrap_err();
    assert_eq!(reason(&missing), "ResourceNotFoundException");
    for name in ["delta", "beta", "gamma"] {
        register(&mut client, "s", name).await.unwrap();
    }
    let full = register(&mut client, "s", "epsilon").await.unwrap_err();
    assert_eq!(reason(&full), "LimitExceededException", "{full:?}");

    // Pages of two, in name order.
    let mut names = Vec::new();
    let mut token = String::new();
    for _ in 0..5 {
        let page = client
            .list_stream_consumers(pb::ListStreamConsumersRequest {
                stream_name: "s".into(),
                next_token: token.clone(),
                max_results: Some(2),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        names.extend(page.consumers.into_iter().map(|c| c.consumer_name));
        match page.next_token {
            Some(next) => token = next,
            None => break,
        }
    }
    assert_eq!(names, ["alpha", "beta", "delta", "gamma"]);
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
    assert_eq!(summary.consumer_count, 4);
    let wrong_creation = client
        .list_stream_consumers(pb::ListStreamConsumersRequest {
            stream_name: "s".into(),
            stream_creation_timestamp_ms: Some(summary.stream_creation_timestamp_ms - 1),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&wrong_creation), "ResourceNotFoundException");

    // Durable: the same consumers and ARNs after a restart.
    let clock = server.clock.clone();
    server.stop().await;
    let server = TestServer::start_with_clock(dir.path(), settings, clock).await;
    let mut client = server.client().await;
    let after = describe(&mut client, &first.consumer_arn).await.unwrap();
    assert_eq!(
        after.consumer_creation_timestamp_ms,
        first.consumer_creation_timestamp_ms
    );

    // Deletion is refused while consumers exist, unless enforced.
    let refused = client
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ResourceInUseException");

    // Deregistered: gone, and the same name registered again gets a new ARN.
    client
        .deregister_stream_consumer(pb::DeregisterStreamConsumerRequest {
            consumer_arn: first.consumer_arn.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = describe(&mut client, &first.consumer_arn)
        .await
        .unwrap_err();
    assert_eq!(reason(&gone), "ResourceNotFoundException");
    let again = register(&mut client, "s", "alpha").await.unwrap();
    assert_ne!(again.consumer_arn, first.consumer_arn);
    let old_arn = describe(&mut client, &first.consumer_arn)
        .await
        .unwrap_err();
    assert_eq!(reason(&old_arn), "ResourceNotFoundException");
    let mismatch = client
        .describe_stream_consumer(pb::DescribeStreamConsumerRequest {
            consumer_arn: again.consumer_arn.clone(),
            consumer_name: "beta".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&mismatch), "InvalidArgumentException");

    client
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "s".into(),
            enforce_consumer_deletion: true,
            ..Default::default()
        })
        .await
        .unwrap();
    create(&mut client, "s", 1).await;
    let listed = client
        .list_stream_consumers(pb::ListStreamConsumersRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        listed.consumers.is_empty(),
        "a re-created stream has no consumers"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_is_creating_until_its_activation_delay_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config();
    settings.fan_out.activation_delay = Duration::from_secs(10);
    settings.fan_out.max_creating_consumers = 2;
    let server = TestServer::start(dir.path(), settings).await;
    let mut client = server.client().await;
    let mut admin = server.admin().await;
    create(&mut client, "s", 1).await;
    let consumer = register(&mut client, "s", "a").await.unwrap();
    register(&mut client, "s", "b").await.unwrap();
    let third = register(&mut client, "s", "c").await.unwrap_err();
    assert_eq!(
        reason(&third),
        "LimitExceededException",
        "at most 2 in CREATING"
    );
    let described = describe(&mut client, &consumer.consumer_arn).await.unwrap();
    assert_eq!(described.consumer_status(), pb::ConsumerStatus::Creating);
    let early = subscribe(
        &mut client,
        &consumer.consumer_arn,
        SHARD,
        position(pb::ShardIteratorType::Latest, None),
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&early), "ResourceInUseException");

    admin
        .advance_clock(pb::AdvanceClockRequest { advance_ms: 10_000 })
        .await
        .unwrap();
    let described = describe(&mut client, &consumer.consumer_arn).await.unwrap();
    assert_eq!(described.consumer_status(), pb::ConsumerStatus::Active);
    register(&mut client, "s", "c").await.unwrap();
    let mut events = subscribe(
        &mut client,
        &consumer.consumer_arn,
        SHARD,
        position(pb::ShardIteratorType::Latest, None),
    )
    .await
    .unwrap();
    assert!(
        next_event(&mut events, Duration::from_secs(10))
            .await
            .unwrap()
            .is_some()
    );
    drop(events);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_consumers_get_identical_complete_ordered_data_across_rolls_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let settings = config();
    let server = TestServer::start(dir.path(), settings.clone()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    let mut consumers = Vec::new();
    for name in ["a", "b", "c"] {
        consumers.push(register(&mut client, "s", name).await.unwrap().consumer_arn);
    }
    let mut sessions = Vec::new();
    for arn in &consumers {
        sessions.push(
            subscribe(
                &mut client,
                arn,
                SHARD,
                position(pb::ShardIteratorType::TrimHorizon, None),
            )
            .await
            .unwrap(),
        );
    }
    // 400 records of ~600 bytes roll the 64 KiB test segments several times.
    let written = put_many(&mut client, "s", "first", 400, 25, 600).await;
    let mut continuations = Vec::new();
    for events in &mut sessions {
        let (records, continuation) = collect(events, written.len()).await;
        let sequences: Vec<&String> = records.iter().map(|(seq, _)| seq).collect();
        assert_eq!(
            sequences,
            written.iter().collect::<Vec<_>>(),
            "complete, in order, once"
        );
        for (i, (_, data)) in records.iter().enumerate() {
            assert!(data.starts_with(format!("first-{i}-").as_bytes()));
        }
        assert_eq!(&continuation, written.last().unwrap());
        continuations.push(continuation);
    }
    // A graceful stop ends the sessions cleanly.
    let clock = server.clock.clone();
    let stopping = tokio::spawn(server.stop());
    for events in &mut sessions {
        loop {
            match next_event(events, Duration::from_secs(10)).await {
                Ok(Some(event)) => assert!(event.records.is_empty()),
                Ok(None) => break,
                Err(status) => panic!("a clean end, not {status:?}"),
            }
        }
    }
    stopping.await.unwrap();

    let server = TestServer::start_with_clock(dir.path(), settings, clock).await;
    let mut client = server.client().await;
    let more = put_many(&mut client, "s", "second", 150, 50, 600).await;
    for (arn, continuation) in consumers.iter().zip(continuations) {
        let mut events = subscribe(
            &mut client,
            arn,
            SHARD,
            position(
                pb::ShardIteratorType::AfterSequenceNumber,
                Some(continuation),
            ),
        )
        .await
        .unwrap();
        let (records, _) = collect(&mut events, more.len()).await;
        let sequences: Vec<&String> = records.iter().map(|(seq, _)| seq).collect();
        assert_eq!(
            sequences,
            more.iter().collect::<Vec<_>>(),
            "resumed exactly after the last"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_starting_position_and_bad_subscribe_requests() {
    let (_dir, server, mut client) = stream_server(config(), 2).await;
    let arn = consumer_arn(&mut client, "c").await;
    let records: Vec<pb::PutRecordsRequestEntry> = (0..5)
        .map(|i| pb::PutRecordsRequestEntry {
            data: Bytes::from(format!("r{i}")),
            partition_key: "k".into(),
            explicit_hash_key: Some("0".into()),
        })
        .collect();
    let written: Vec<String> = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .map(|r| r.sequence_number.unwrap())
        .collect();
    let arrival = {
        let mut events = subscribe(
            &mut client,
            &arn,
            SHARD,
            position(pb::ShardIteratorType::TrimHorizon, None),
        )
        .await
        .unwrap();
        let event = next_event(&mut events, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        event.records[0].approximate_arrival_timestamp_ms
    };
    // Each case waits past the 5-second rule on the testbed clock first.
    let mut admin = server.admin().await;
    let cases = [
        (
            position(
                pb::ShardIteratorType::AtSequenceNumber,
                Some(written[2].clone()),
            ),
            2,
        ),
        (
            position(
                pb::ShardIteratorType::AfterSequenceNumber,
                Some(written[2].clone()),
            ),
            3,
        ),
        (
            pb::StartingPosition {
                r#type: pb::ShardIteratorType::AtTimestamp as i32,
                sequence_number: None,
                timestamp_ms: Some(arrival - 86_400_000),
            },
            0,
        ),
        (position(pb::ShardIteratorType::TrimHorizon, None), 0),
        (position(pb::ShardIteratorType::Latest, None), 5),
    ];
    for (start, first) in cases {
        admin
            .advance_clock(pb::AdvanceClockRequest { advance_ms: 5_000 })
            .await
            .unwrap();
        let mut events = subscribe(&mut client, &arn, SHARD, start.clone())
            .await
            .unwrap();
        let event = next_event(&mut events, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        let got: Vec<&String> = event.records.iter().map(|r| &r.sequence_number).collect();
        assert_eq!(
            got,
            written[first..].iter().collect::<Vec<_>>(),
            "{start:?}"
        );
        assert_eq!(
            event.continuation_sequence_number.as_ref(),
            Some(&written[4]),
            "the continuation is the last record so far"
        );
    }

    let cases: Vec<(&str, &str, pb::StartingPosition, &str)> = vec![
        (
            &arn,
            "shardId-000000000009",
            position(pb::ShardIteratorType::Latest, None),
            "ResourceNotFoundException",
        ),
        (
            "arn:aws:kinesis:us-east-1:000000000000:stream/s/consumer/nobody:1",
            SHARD,
            position(pb::ShardIteratorType::Latest, None),
            "ResourceNotFoundException",
        ),
        (
            // A malformed ARN breaks the field's pattern: a schema error, as in Kinesis.
            "not-an-arn",
            SHARD,
            position(pb::ShardIteratorType::Latest, None),
            "ValidationException",
        ),
        (
            &arn,
            SHARD,
            position(pb::ShardIteratorType::AtSequenceNumber, None),
            "InvalidArgumentException",
        ),
        (
            &arn,
            SHARD,
            position(pb::ShardIteratorType::AtSequenceNumber, Some("12x".into())),
            "ValidationException",
        ),
        (
            &arn,
            SHARD,
            position(pb::ShardIteratorType::Unspecified, None),
            "ValidationException",
        ),
        (
            &arn,
            "shardId-000000000001",
            position(
                pb::ShardIteratorType::AtSequenceNumber,
                Some(written[0].clone()),
            ),
            "InvalidArgumentException",
        ),
    ];
    for (consumer, shard, start, expected) in cases {
        let refused = subscribe(&mut client, consumer, shard, start.clone())
            .await
            .unwrap_err();
        assert_eq!(
            reason(&refused),
            expected,
            "{consumer} {shard} {start:?}: {refused:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_subscription_within_five_seconds_is_refused_and_later_takes_over() {
    let (_dir, server, mut client) = stream_server(config(), 1).await;
    let mut admin = server.admin().await;
    let arn = consumer_arn(&mut client, "c").await;
    let latest = || position(pb::ShardIteratorType::Latest, None);
    let mut first = subscribe(&mut client, &arn, SHARD, latest()).await.unwrap();
    next_event(&mut first, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();

    let refused = subscribe(&mut client, &arn, SHARD, latest())
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ResourceInUseException");
    // Another consumer, or another shard of the same consumer, is not affected.
    let other = consumer_arn(&mut client, "d").await;
    let _other = subscribe(&mut client, &other, SHARD, latest())
        .await
        .unwrap();

    admin
        .advance_clock(pb::AdvanceClockRequest { advance_ms: 5_000 })
        .await
        .unwrap();
    let mut second = subscribe(&mut client, &arn, SHARD, latest()).await.unwrap();
    next_event(&mut second, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    // The earlier one ends with ResourceInUse (after any event already on its way).
    let ended = loop {
        match next_event(&mut first, Duration::from_secs(10)).await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("ended without an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(reason(&ended), "ResourceInUseException", "{ended:?}");
    put_many(&mut client, "s", "after", 3, 3, 0).await;
    let (records, _) = collect(&mut second, 3).await;
    assert_eq!(records.len(), 3, "the new subscription delivers");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_session_expiry_follow_the_testbed_clock() {
    let (_dir, server, mut client) = stream_server(config(), 1).await;
    let mut admin = server.admin().await;
    let arn = consumer_arn(&mut client, "c").await;
    let written = put_many(&mut client, "s", "old", 2, 2, 0).await;
    let mut events = subscribe(
        &mut client,
        &arn,
        SHARD,
        position(pb::ShardIteratorType::Latest, None),
    )
    .await
    .unwrap();
    let first = next_event(&mut events, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        first.records.is_empty(),
        "the first event comes at once, even with no records"
    );
    assert_eq!(
        first.continuation_sequence_number.as_ref(),
        Some(&written[1])
    );
    assert_eq!(first.millis_behind_latest, 0);

    // Nothing for 5 s of server time: a heartbeat, long before 5 s of real time passed.
    let started = Instant::now();
    admin
        .advance_clock(pb::AdvanceClockRequest { advance_ms: 5_000 })
        .await
        .unwrap();
    let heartbeat = next_event(&mut events, Duration::from_secs(4))
        .await
        .unwrap()
        .unwrap();
    assert!(heartbeat.records.is_empty());
    assert_eq!(
        heartbeat.continuation_sequence_number.as_ref(),
        Some(&written[1])
    );
    assert!(started.elapsed() < Duration::from_secs(4));

    // Records arrive as they are committed.
    let fresh = put_many(&mut client, "s", "new", 1, 1, 0).await;
    let (records, continuation) = collect(&mut events, 1).await;
    assert_eq!(records[0].0, fresh[0]);
    assert_eq!(continuation, fresh[0]);

    // After the session lifetime (5 minutes) the stream completes cleanly.
    admin
        .advance_clock(pb::AdvanceClockRequest {
            advance_ms: 300_000,
        })
        .await
        .unwrap();
    let end = loop {
        match next_event(&mut events, Duration::from_secs(4)).await {
            Ok(Some(event)) => assert!(event.records.is_empty()),
            other => break other,
        }
    };
    assert!(matches!(end, Ok(None)), "a clean end: {end:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_consumer_holds_back_no_one_and_catches_up_from_disk() {
    let (_dir, server, mut client) = stream_server(config(), 1).await;
    let stalled_arn = consumer_arn(&mut client, "stalled").await;
    let live_arn = consumer_arn(&mut client, "live").await;
    let start = || position(pb::ShardIteratorType::TrimHorizon, None);
    // Its own connection, never read while the data flows.
    let mut stalled_client = server.client().await;
    let mut stalled = subscribe(&mut stalled_client, &stalled_arn, SHARD, start())
        .await
        .unwrap();
    let mut live = subscribe(&mut client, &live_arn, SHARD, start())
        .await
        .unwrap();

    // 24 MiB: far more than any transport window or event buffer could hold.
    let mut producer = server.client().await;
    let writing =
        tokio::spawn(
            async move { put_many(&mut producer, "s", "bulk", 3000, 100, 8 * 1024).await },
        );
    let (delivered, _) = collect(&mut live, 3000).await;
    let written = writing.await.unwrap();
    assert_eq!(
        delivered.iter().map(|(seq, _)| seq).collect::<Vec<_>>(),
        written.iter().collect::<Vec<_>>()
    );
    // The stalled one resumes and gets everything, in order.
    let (caught_up, _) = collect(&mut stalled, 3000).await;
    assert_eq!(
        caught_up.iter().map(|(seq, _)| seq).collect::<Vec<_>>(),
        written.iter().collect::<Vec<_>>()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_frees_its_session_at_once() {
    let (_dir, server, mut client) = stream_server(config(), 1).await;
    let arn = consumer_arn(&mut client, "c").await;
    let mut subscriber = server.client().await;
    let mut events = subscribe(
        &mut subscriber,
        &arn,
        SHARD,
        position(pb::ShardIteratorType::Latest, None),
    )
    .await
    .unwrap();
    next_event(&mut events, Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.store.active_subscriptions(), 1);
    drop(events);
    drop(subscriber);
    assert!(
        server.sessions_freed().await,
        "the session is dropped when its client goes away"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deregistration_and_stream_deletion_end_subscriptions() {
    let (_dir, server, mut client) = stream_server(config(), 1).await;
    let first = consumer_arn(&mut client, "first").await;
    let second = consumer_arn(&mut client, "second").await;
    let latest = || position(pb::ShardIteratorType::Latest, None);
    let mut first_events = subscribe(&mut client, &first, SHARD, latest())
        .await
        .unwrap();
    let mut second_events = subscribe(&mut client, &second, SHARD, latest())
        .await
        .unwrap();
    for events in [&mut first_events, &mut second_events] {
        next_event(events, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
    }
    client
        .deregister_stream_consumer(pb::DeregisterStreamConsumerRequest {
            stream_name: "s".into(),
            consumer_name: "first".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let ended = next_event(&mut first_events, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(reason(&ended), "ResourceNotFoundException");
    assert_eq!(
        server.store.active_subscriptions(),
        1,
        "the other consumer goes on"
    );

    client
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "s".into(),
            enforce_consumer_deletion: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let ended = next_event(&mut second_events, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(reason(&ended), "ResourceNotFoundException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_shaped_per_consumer_and_shard() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config();
    settings.fan_out.rate_bytes_per_sec = Some(256 * 1024);
    let server = TestServer::start(dir.path(), settings).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    let arn = consumer_arn(&mut client, "c").await;
    // 640 KiB: a full bucket (256 KiB) goes at once, the rest at 256 KiB/s, so at least ~1.5 s.
    let written = put_many(&mut client, "s", "shaped", 80, 40, 8 * 1024).await;
    let started = Instant::now();
    let mut events = subscribe(
        &mut client,
        &arn,
        SHARD,
        position(pb::ShardIteratorType::TrimHorizon, None),
    )
    .await
    .unwrap();
    let (records, _) = collect(&mut events, written.len()).await;
    let elapsed = started.elapsed();
    assert_eq!(records.len(), written.len());
    assert!(
        elapsed >= Duration::from_millis(1200),
        "640 KiB at 256 KiB/s cannot arrive in {elapsed:?}"
    );
    server.stop().await;
}
