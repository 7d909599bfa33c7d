//! Data plane through the real server: puts, every iterator type, reads, limits, bad input,
//! restart, iterator expiry and the retention testbed.

use bytes::Bytes;
use rheo_proto::v1 as pb;
use rheo_proto::v1::kinesis_client::KinesisClient;
use rheo_streams::StoreConfig;
use rheo_tests::{TestServer, reason, test_config};
use tonic::transport::Channel;

fn no_limits() -> StoreConfig {
    let mut config = test_config();
    config.limits.enabled = false;
    config
}

async fn create(client: &mut KinesisClient<Channel>, name: &str, shards: i32) {
    client
        .create_stream(pb::CreateStreamRequest {
            stream_name: name.into(),
            shard_count: Some(shards),
            ..Default::default()
        })
        .await
        .unwrap();
}

fn entry(key: &str, data: &str) -> pb::PutRecordsRequestEntry {
    pb::PutRecordsRequestEntry {
        data: Bytes::from(data.to_string()),
        partition_key: key.into(),
        explicit_hash_key: None,
    }
}

async fn put(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    key: &str,
    data: &str,
) -> pb::PutRecordResponse {
    client
        .put_record(pb::PutRecordRequest {
            stream_name: stream.into(),
            data: Bytes::from(data.to_string()),
            partition_key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn iterator(
    client: &mut KinesisClient<Channel>,
    stream: &str,
    shard: &str,
    kind: pb::ShardIteratorType,
    sequence: Option<String>,
    timestamp_ms: Option<i64>,
) -> Result<String, tonic::Status> {
    client
        .get_shard_iterator(pb::GetShardIteratorRequest {
            stream_name: stream.into(),
            shard_id: shard.into(),
            shard_iterator_type: kind as i32,
            starting_sequence_number: sequence,
            timestamp_ms,
            ..Default::default()
        })
        .await
        .map(|response| response.into_inner().shard_iterator)
}

/// Reads from `iterator` until a call returns no records; returns the data and last iterator.
async fn drain(client: &mut KinesisClient<Channel>, mut iterator: String) -> (Vec<String>, String) {
    let mut data = Vec::new();
    for _ in 0..100 {
        let page = client
            .get_records(pb::GetRecordsRequest {
                shard_iterator: iterator.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        iterator = page
            .next_shard_iterator
            .expect("open shards always give a next iterator");
        if page.records.is_empty() {
            assert_eq!(
                page.millis_behind_latest, 0,
                "an empty read of an open shard is caught up"
            );
            return (data, iterator);
        }
        data.extend(
            page.records
                .into_iter()
                .map(|record| String::from_utf8(record.data.to_vec()).unwrap()),
        );
    }
    panic!("never caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_and_every_iterator_type() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), no_limits()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    const SHARD: &str = "shardId-000000000000";

    let first = put(&mut client, "s", "k", "r0").await;
    assert_eq!(first.shard_id, SHARD);
    assert_eq!(first.encryption_type, "NONE");
    let mut sequences = vec![first.sequence_number.clone()];
    for i in 1..5 {
        sequences.push(
            put(&mut client, "s", "k", &format!("r{i}"))
                .await
                .sequence_number,
        );
    }
    let numbers: Vec<u128> = sequences.iter().map(|s| s.parse().unwrap()).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {sequences:?}"
    );
    server.clock.advance_ms(10_000);
    let later_ms =
        server.clock.offset_ms() + rheo_storage::Clock::now_ms(&rheo_storage::SystemClock);
    let batch = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![entry("k", "r5"), entry("k", "r6")],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.failed_record_count, 0);
    assert_eq!(batch.records.len(), 2);
    sequences.extend(
        batch
            .records
            .iter()
            .map(|r| r.sequence_number.clone().unwrap()),
    );

    let all: Vec<String> = (0..7).map(|i| format!("r{i}")).collect();
    let it = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    let (data, tail) = drain(&mut client, it).await;
    assert_eq!(data, all);

    let it = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::AtSequenceNumber,
        Some(sequences[2].clone()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(drain(&mut client, it).await.0, all[2..]);
    let it = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::AfterSequenceNumber,
        Some(sequences[2].clone()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(drain(&mut client, it).await.0, all[3..]);
    let it = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::AtTimestamp,
        None,
        Some(later_ms - 1000),
    )
    .await
    .unwrap();
    assert_eq!(
        drain(&mut client, it).await.0,
        all[5..],
        "AT_TIMESTAMP finds the first later record"
    );
    let it = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::AtTimestamp,
        None,
        Some(0),
    )
    .await
    .unwrap();
    assert_eq!(
        drain(&mut client, it).await.0,
        all,
        "a time before the trim horizon acts as TRIM_HORIZON"
    );
    let latest = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::Latest,
        None,
        None,
    )
    .await
    .unwrap();
    assert!(drain(&mut client, latest.clone()).await.0.is_empty());

    // New records reach both a LATEST iterator and the tail of the earlier read.
    put(&mut client, "s", "k", "r7").await;
    assert_eq!(drain(&mut client, latest).await.0, ["r7"]);
    assert_eq!(drain(&mut client, tail).await.0, ["r7"]);

    // Limit and MillisBehindLatest.
    let it = iterator(
        &mut client,
        "s",
        SHARD,
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    let page = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it,
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.records.len(), 2);
    assert!(
        page.millis_behind_latest >= 10_000,
        "the unread records are at least 10 s old: {}",
        page.millis_behind_latest
    );
    assert_eq!(page.records[0].partition_key, "k");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_route_by_md5_and_explicit_hash_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), no_limits()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 4).await;
    // MD5("a") = 16955237001963240173058271559858726497, in the first quarter.
    assert_eq!(
        put(&mut client, "s", "a", "x").await.shard_id,
        "shardId-000000000000"
    );
    let mut last = pb::PutRecordsRequestEntry {
        explicit_hash_key: Some(u128::MAX.to_string()),
        ..entry("a", "y")
    };
    let result = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![last.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        result.records[0].shard_id.as_deref(),
        Some("shardId-000000000003")
    );
    last.explicit_hash_key = Some("340282366920938463463374607431768211456".into());
    let out_of_range = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![last],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&out_of_range), "InvalidArgumentException");
    assert!(out_of_range.message().contains("[0, 2^128-1]"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_documented_error_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), no_limits()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    put(&mut client, "s", "k", "kept").await;

    let put_raw = |key: String, data: Vec<u8>| pb::PutRecordRequest {
        stream_name: "s".into(),
        data: Bytes::from(data),
        partition_key: key,
        ..Default::default()
    };
    let cases: Vec<(&str, pb::PutRecordRequest, &str)> = vec![
        (
            "oversized record",
            put_raw("k".into(), vec![0; 1024 * 1024]),
            "ValidationException",
        ),
        (
            "empty key",
            put_raw(String::new(), b"x".to_vec()),
            "ValidationException",
        ),
        (
            "257-character key",
            put_raw("é".repeat(257), b"x".to_vec()),
            "ValidationException",
        ),
        (
            "unknown stream",
            pb::PutRecordRequest {
                stream_name: "nope".into(),
                ..put_raw("k".into(), b"x".to_vec())
            },
            "ResourceNotFoundException",
        ),
        (
            "hash key out of range",
            pb::PutRecordRequest {
                explicit_hash_key: Some("340282366920938463463374607431768211456".into()),
                ..put_raw("k".into(), b"x".to_vec())
            },
            "InvalidArgumentException",
        ),
        (
            "bad ordering sequence",
            pb::PutRecordRequest {
                sequence_number_for_ordering: Some("abc".into()),
                ..put_raw("k".into(), b"x".to_vec())
            },
            "ValidationException",
        ),
    ];
    for (what, request, expected) in cases {
        let error = client.put_record(request).await.unwrap_err();
        assert_eq!(reason(&error), expected, "{what}: {}", error.message());
        assert!(!error.message().is_empty());
    }
    // A 256-character key of multi-byte characters is fine.
    let ok = client
        .put_record(put_raw("é".repeat(256), b"x".to_vec()))
        .await;
    assert!(ok.is_ok());

    let too_many = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![entry("k", "x"); 501],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&too_many), "ValidationException");
    let none = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&none), "ValidationException");
    // One bad record fails the whole call: nothing of it is stored.
    let mixed = client
        .put_records(pb::PutRecordsRequest {
            stream_name: "s".into(),
            records: vec![entry("k", "fine"), entry("", "bad")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&mixed), "ValidationException");

    let forged = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: "AAAAforged".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&forged), "InvalidArgumentException");
    assert_eq!(forged.message(), "Invalid ShardIterator.");
    let it = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    let mut tampered = it.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: String::from_utf8(tampered).unwrap(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&tampered), "InvalidArgumentException");
    let big_limit = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it.clone(),
            limit: Some(10_001),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&big_limit), "InvalidArgumentException");
    let no_shard = iterator(
        &mut client,
        "s",
        "shardId-000000000009",
        pb::ShardIteratorType::Latest,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&no_shard), "ResourceNotFoundException");
    let no_sequence = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::AtSequenceNumber,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&no_sequence), "InvalidArgumentException");
    let foreign = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::AtSequenceNumber,
        Some("12345".into()),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&foreign), "InvalidArgumentException");
    let no_type = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::Unspecified,
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(reason(&no_type), "ValidationException");

    let (data, _) = drain(&mut client, it).await;
    assert_eq!(data, ["kept", "x"], "only the valid puts were stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_throttle_per_record_and_switch_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    // 1,000 records/s per shard: 500 + 500 pass, the third batch is throttled record by record.
    let batch = || pb::PutRecordsRequest {
        stream_name: "s".into(),
        records: vec![entry("k", "x"); 500],
        ..Default::default()
    };
    let mut failed = 0;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        let result = client.put_records(batch()).await.unwrap().into_inner();
        assert_eq!(result.records.len(), 500);
        let counted = result
            .records
            .iter()
            .filter(|r| r.error_code.is_some())
            .count() as i32;
        assert_eq!(result.failed_record_count, counted);
        for record in result.records.iter().filter(|r| r.error_code.is_some()) {
            assert_eq!(
                record.error_code.as_deref(),
                Some("ProvisionedThroughputExceededException")
            );
            assert!(
                record
                    .error_message
                    .as_deref()
                    .unwrap()
                    .starts_with("Rate exceeded for shard shardId-000000000000 in stream s")
            );
            assert!(record.sequence_number.is_none());
        }
        failed += counted;
    }
    // A bucket of one second's worth (1,000) refilling at 1,000/s admits at most this many;
    // bounding by the elapsed time keeps the check true on a slow machine.
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = 1500 - failed;
    assert!(
        f64::from(admitted) <= 1000.0 + 1000.0 * elapsed + 1.0,
        "{admitted} records admitted in {elapsed:.3} s exceed 1,000/s"
    );
    assert!(
        failed > 0 || elapsed > 0.5,
        "1,500 records in {elapsed:.3} s were all admitted"
    );
    let single = client
        .put_record(pb::PutRecordRequest {
            stream_name: "s".into(),
            data: Bytes::from_static(b"x"),
            partition_key: "k".into(),
            ..Default::default()
        })
        .await;
    if let Err(status) = single {
        assert_eq!(reason(&status), "ProvisionedThroughputExceededException");
    }
    // 5 GetRecords calls per second per shard.
    let it = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::Latest,
        None,
        None,
    )
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let mut served = 0;
    for _ in 0..8 {
        match client
            .get_records(pb::GetRecordsRequest {
                shard_iterator: it.clone(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => served += 1,
            Err(status) => assert_eq!(reason(&status), "ProvisionedThroughputExceededException"),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        f64::from(served) <= 5.0 + 5.0 * elapsed + 1.0,
        "{served} GetRecords calls served in {elapsed:.3} s exceed 5/s"
    );
    assert!(
        served < 8 || elapsed > 0.6,
        "8 calls in {elapsed:.3} s were all served"
    );
    server.stop().await;

    // Switched off: nothing is throttled.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), no_limits()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 1).await;
    for _ in 0..4 {
        assert_eq!(
            client
                .put_records(batch())
                .await
                .unwrap()
                .into_inner()
                .failed_record_count,
            0
        );
    }
    let it = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::Latest,
        None,
        None,
    )
    .await
    .unwrap();
    for _ in 0..10 {
        client
            .get_records(pb::GetRecordsRequest {
                shard_iterator: it.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_iterators_survive_a_restart_and_iterators_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), no_limits()).await;
    let mut client = server.client().await;
    create(&mut client, "s", 2).await;
    for i in 0..20 {
        put(&mut client, "s", &format!("key-{i}"), &format!("v{i}")).await;
    }
    let it = iterator(
        &mut client,
        "s",
        "shardId-000000000001",
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    let (before, _) = drain(&mut client, it.clone()).await;
    assert!(!before.is_empty());
    let clock = server.clock.clone();
    server.stop().await;

    let server = TestServer::start_with_clock(dir.path(), no_limits(), clock).await;
    let mut client = server.client().await;
    let (after, _) = drain(&mut client, it.clone()).await;
    assert_eq!(
        after, before,
        "the iterator and the data outlive the restart"
    );
    let sequence = put(&mut client, "s", "key-1", "new").await.sequence_number;
    assert!(sequence.parse::<u128>().unwrap() > 0);

    // Five minutes of server time later the iterator has expired.
    server.clock.advance_ms(301_000);
    let expired = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: it,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&expired), "ExpiredIteratorException");
    assert!(
        expired
            .message()
            .starts_with("Iterator expired. The iterator was created at time"),
        "{}",
        expired.message()
    );

    // An iterator of a deleted and re-created stream is refused.
    let old = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    client
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let deleted = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: old.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&deleted), "ResourceNotFoundException");
    create(&mut client, "s", 2).await;
    let recreated = client
        .get_records(pb::GetRecordsRequest {
            shard_iterator: old,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&recreated), "ResourceNotFoundException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_testbed_clock_makes_retention_visible_in_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = no_limits();
    config.min_retention_hours = 1;
    let server = TestServer::start(dir.path(), config).await;
    let mut client = server.client().await;
    client
        .create_stream(pb::CreateStreamRequest {
            stream_name: "s".into(),
            shard_count: Some(1),
            retention_period_hours: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    put(&mut client, "s", "k", "old").await;
    let mut admin = server.admin().await;
    let moved = admin
        .advance_clock(pb::AdvanceClockRequest {
            advance_ms: 90 * 60_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.offset_ms, 90 * 60_000);
    put(&mut client, "s", "k", "new").await;
    let it = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(drain(&mut client, it).await.0, ["old", "new"]);
    admin
        .advance_clock(pb::AdvanceClockRequest {
            advance_ms: 60 * 60_000,
        })
        .await
        .unwrap();
    let it = iterator(
        &mut client,
        "s",
        "shardId-000000000000",
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        drain(&mut client, it).await.0,
        ["new"],
        "the 2.5-hour-old record is past the 2-hour retention"
    );
    let bad = admin
        .advance_clock(pb::AdvanceClockRequest { advance_ms: -5 })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad), "InvalidArgumentException");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_only_moves_on_a_testbed_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_without_testbed(dir.path(), no_limits()).await;
    let refused = server
        .admin()
        .await
        .advance_clock(pb::AdvanceClockRequest { advance_ms: 1000 })
        .await
        .unwrap_err();
    assert_eq!(reason(&refused), "ResourceInUseException");
    assert!(refused.message().contains("--testbed-clock"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_can_be_set_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Server limits on; one stream switches them off, another tightens them.
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;
    let with_limits = |name: &str, limits: pb::ShardLimits| pb::CreateStreamRequest {
        stream_name: name.into(),
        shard_count: Some(1),
        shard_limits: Some(limits),
        ..Default::default()
    };
    client
        .create_stream(with_limits(
            "free",
            pb::ShardLimits {
                enabled: Some(false),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    client
        .create_stream(with_limits(
            "tight",
            pb::ShardLimits {
                write_records_per_sec: Some(10),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let zero = client
        .create_stream(with_limits(
            "zero",
            pb::ShardLimits {
                read_calls_per_sec: Some(0),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&zero), "InvalidArgumentException");
    let batch = |stream: &str| pb::PutRecordsRequest {
        stream_name: stream.into(),
        records: vec![entry("k", "x"); 500],
        ..Default::default()
    };
    for _ in 0..4 {
        assert_eq!(
            client
                .put_records(batch("free"))
                .await
                .unwrap()
                .into_inner()
                .failed_record_count,
            0
        );
    }
    let tight = client
        .put_records(batch("tight"))
        .await
        .unwrap()
        .into_inner();
    assert!(
        tight.failed_record_count >= 450,
        "10 records/s admit about 10 of 500: {}",
        tight.failed_record_count
    );
    server.stop().await;

    // The override is durable: after a restart the free stream is still unthrottled.
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;
    for _ in 0..3 {
        assert_eq!(
            client
                .put_records(batch("free"))
                .await
                .unwrap()
                .into_inner()
                .failed_record_count,
            0
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_records_refuses_a_stream_arn_of_another_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), no_limits()).await;
    let mut client = server.client().await;
    create(&mut client, "mine", 1).await;
    create(&mut client, "other", 1).await;
    put(&mut client, "mine", "k", "one").await;
    let start = iterator(
        &mut client,
        "mine",
        "shardId-000000000000",
        pb::ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await
    .unwrap();
    let arn = |name: &str| format!("arn:aws:kinesis:us-east-1:000000000000:stream/{name}");
    let read = |arn: String| pb::GetRecordsRequest {
        shard_iterator: start.clone(),
        stream_arn: arn,
        ..Default::default()
    };
    let refused = client.get_records(read(arn("other"))).await.unwrap_err();
    assert_eq!(reason(&refused), "InvalidArgumentException", "{refused:?}");
    assert!(
        refused.message().contains("belongs to stream mine"),
        "{refused:?}"
    );
    let malformed = client
        .get_records(read("stream/mine".into()))
        .await
        .unwrap_err();
    assert_eq!(reason(&malformed), "ValidationException", "{malformed:?}");
    let records = client
        .get_records(read(arn("mine")))
        .await
        .expect("the iterator's own stream")
        .into_inner()
        .records;
    assert_eq!(records.len(), 1);
    server.stop().await;
}
