//! The official AWS SDK for Rust (`aws-sdk-kinesis`) against the real server's Kinesis HTTP
//! front end (AWS JSON 1.1 on the main port): streams and the `stream_exists` /
//! `stream_not_exists` waiters, shards, binary records through PutRecord and PutRecords, the
//! shard iterator types, modeled and unmodeled errors, and enhanced fan-out with
//! SubscribeToShard received as an event stream over cleartext HTTP/2 (h2c, prior knowledge).
//!
//! The SDK runs on a plaintext hyper connector of this file's own ([`PlainHttp`]): no TLS stack,
//! and, unlike the SDK's default client, one that can be made HTTP/2-only and that records the
//! HTTP version of every response, so the test can prove which protocol each call used.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::client::Waiters;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::error::ProvideErrorMetadata;
use aws_sdk_kinesis::operation::create_stream::CreateStreamError;
use aws_sdk_kinesis::operation::delete_stream::DeleteStreamError;
use aws_sdk_kinesis::operation::describe_stream_consumer::DescribeStreamConsumerError;
use aws_sdk_kinesis::operation::describe_stream_summary::DescribeStreamSummaryError;
use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::{
    ConsumerStatus, PutRecordsRequestEntry, Record, ShardIteratorType, StartingPosition,
    StreamMode, StreamModeDetails, StreamStatus, SubscribeToShardEventStream,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector as TcpConnector;
use hyper_util::rt::TokioExecutor;
use rheo_tests::{TestServer, unlimited_config};

const SHARD_0: &str = "shardId-000000000000";
const SHARD_1: &str = "shardId-000000000001";
/// 2^127 - 1 and 2^127: where the two shards of a 2-shard stream meet, and 2^128 - 1.
const HALF_MINUS_ONE: &str = "170141183460469231731687303715884105727";
const HALF: &str = "170141183460469231731687303715884105728";
const TOP: &str = "340282366920938463463374607431768211455";

/// An SDK HTTP client over plaintext hyper: HTTP/1.1, or HTTP/2 only (h2c with prior knowledge:
/// the connection starts with the HTTP/2 preface, there is no upgrade and no fallback).
#[derive(Debug, Clone)]
struct PlainHttp {
    client: HyperClient<TcpConnector, SdkBody>,
    /// The HTTP version of every response, as hyper read it off the connection.
    versions: Arc<Mutex<Vec<http::Version>>>,
}

impl PlainHttp {
    fn new(http2_only: bool) -> PlainHttp {
        let client = HyperClient::builder(TokioExecutor::new())
            .http2_only(http2_only)
            .build(TcpConnector::new());
        PlainHttp {
            client,
            versions: Arc::default(),
        }
    }

    fn versions(&self) -> Vec<http::Version> {
        self.versions.lock().unwrap().clone()
    }
}

impl HttpConnector for PlainHttp {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.client.clone();
        let versions = self.versions.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|error| ConnectorError::user(error.into()))?;
            let response = client
                .request(request)
                .await
                .map_err(|error| ConnectorError::io(error.into()))?;
            versions.lock().unwrap().push(response.version());
            HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                .map_err(|error| ConnectorError::other(error.into(), None))
        })
    }
}

impl HttpClient for PlainHttp {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// An SDK client for the server, configured by hand (no aws-config, no environment).
fn kinesis(server: &TestServer, http: &PlainHttp) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(format!("http://{}", server.addr))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDEXAMPLE",
            "secret",
            None,
            None,
            "test",
        ))
        .http_client(http.clone())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

async fn create_provisioned(client: &Client, name: &str, shards: i32) {
    client
        .create_stream()
        .stream_name(name)
        .shard_count(shards)
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::Provisioned)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create stream");
    let exists = client
        .wait_until_stream_exists()
        .stream_name(name)
        .wait(Duration::from_secs(5))
        .await
        .expect("the stream_exists waiter succeeds")
        .into_result()
        .expect("the final poll is a DescribeStream answer");
    let description = exists.stream_description().expect("a description");
    assert_eq!(description.stream_name(), name);
    assert_eq!(description.stream_status(), &StreamStatus::Active);
    assert_eq!(description.shards().len(), shards as usize);
}

/// Orders decimal sequence numbers as numbers.
fn numeric(sequence: &str) -> (usize, &str) {
    assert!(
        !sequence.is_empty() && sequence.bytes().all(|byte| byte.is_ascii_digit()),
        "a decimal sequence number: {sequence:?}"
    );
    let digits = sequence.trim_start_matches('0');
    (digits.len(), digits)
}

/// What a record is, for comparing what was put with what was read: (sequence, key, data).
type Written = (String, String, Vec<u8>);

fn read_back(records: &[Record]) -> Vec<Written> {
    records
        .iter()
        .map(|record| {
            (
                record.sequence_number().to_owned(),
                record.partition_key().to_owned(),
                record.data().as_ref().to_vec(),
            )
        })
        .collect()
}

fn millis(at: &DateTime) -> i64 {
    at.to_millis().expect("a timestamp in range")
}

fn now_ms() -> i64 {
    millis(&DateTime::from(SystemTime::now()))
}

async fn iterator(
    client: &Client,
    stream: &str,
    shard: &str,
    kind: ShardIteratorType,
    sequence: Option<&str>,
    timestamp: Option<DateTime>,
) -> String {
    client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(kind)
        .set_starting_sequence_number(sequence.map(str::to_owned))
        .set_timestamp(timestamp)
        .send()
        .await
        .expect("get shard iterator")
        .shard_iterator()
        .expect("an iterator")
        .to_owned()
}

/// One GetRecords call that must succeed.
async fn get_records(
    client: &Client,
    iterator: impl Into<String>,
) -> aws_sdk_kinesis::operation::get_records::GetRecordsOutput {
    client
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap()
}

async fn entries(
    client: &Client,
    stream: &str,
    records: &[(&str, Option<&str>, Vec<u8>)],
) -> Vec<(String, Written)> {
    let request: Vec<PutRecordsRequestEntry> = records
        .iter()
        .map(|(key, hash, data)| {
            PutRecordsRequestEntry::builder()
                .data(Blob::new(data.clone()))
                .partition_key(*key)
                .set_explicit_hash_key(hash.map(str::to_owned))
                .build()
                .unwrap()
        })
        .collect();
    let answer = client
        .put_records()
        .stream_name(stream)
        .set_records(Some(request))
        .send()
        .await
        .expect("put records");
    assert_eq!(answer.failed_record_count(), Some(0));
    assert_eq!(
        answer.records().len(),
        records.len(),
        "one result per entry"
    );
    answer
        .records()
        .iter()
        .zip(records)
        .map(|(result, (key, _, data))| {
            assert_eq!(result.error_code(), None);
            assert_eq!(result.error_message(), None);
            let sequence = result.sequence_number().expect("a sequence number");
            numeric(sequence);
            (
                result.shard_id().expect("a shard").to_owned(),
                (sequence.to_owned(), (*key).to_owned(), data.clone()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_manages_streams_and_round_trips_binary_records() {
    let dir = tempfile::tempdir().unwrap();
    let settings = unlimited_config();
    let (region, account) = (settings.region.clone(), settings.account_id.clone());
    let server = TestServer::start(dir.path(), settings).await;
    let http1 = PlainHttp::new(false);
    let client = kinesis(&server, &http1);

    create_provisioned(&client, "orders", 2).await;
    create_provisioned(&client, "audit", 1).await;
    let again = client
        .create_stream()
        .stream_name("orders")
        .shard_count(1)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(again, CreateStreamError::ResourceInUseException(_)),
        "{again:?}"
    );

    let summary = client
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().expect("a summary");
    let stream_arn = format!("arn:aws:kinesis:{region}:{account}:stream/orders");
    assert_eq!(summary.stream_name(), "orders");
    assert_eq!(summary.stream_arn(), stream_arn);
    assert_eq!(summary.stream_status(), &StreamStatus::Active);
    assert_eq!(
        summary.stream_mode_details().map(|mode| mode.stream_mode()),
        Some(&StreamMode::Provisioned)
    );
    assert_eq!(summary.open_shard_count(), 2);
    assert_eq!(summary.retention_period_hours(), 24);
    assert_eq!(summary.consumer_count(), Some(0));
    let created = millis(summary.stream_creation_timestamp());
    assert!(
        (now_ms() - created).abs() < 60_000,
        "created {created}, now {}",
        now_ms()
    );

    let shards = client
        .list_shards()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let ranges: Vec<(&str, &str, &str)> = shards
        .shards()
        .iter()
        .map(|shard| {
            let range = shard.hash_key_range().expect("a hash key range");
            (
                shard.shard_id(),
                range.starting_hash_key(),
                range.ending_hash_key(),
            )
        })
        .collect();
    assert_eq!(
        ranges,
        vec![(SHARD_0, "0", HALF_MINUS_ONE), (SHARD_1, HALF, TOP)]
    );
    for shard in shards.shards() {
        assert_eq!(shard.parent_shard_id(), None);
        assert_eq!(shard.adjacent_parent_shard_id(), None);
        let sequences = shard.sequence_number_range().expect("a sequence range");
        numeric(sequences.starting_sequence_number());
        assert_eq!(sequences.ending_sequence_number(), None, "an open shard");
    }
    assert_eq!(shards.next_token(), None);

    // ListStreams, a page at a time: names in order, then the rest after the token.
    let first = client.list_streams().limit(1).send().await.unwrap();
    assert_eq!(first.stream_names(), ["audit"]);
    assert!(first.has_more_streams());
    let token = first.next_token().expect("a next token");
    let rest = client
        .list_streams()
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.stream_names(), ["orders"]);
    assert!(!rest.has_more_streams());
    let listed = &rest.stream_summaries()[0];
    assert_eq!(listed.stream_arn(), stream_arn);
    assert_eq!(listed.stream_status(), &StreamStatus::Active);

    // Writes: bytes that are not UTF-8, routed by explicit hash keys on both sides of the
    // boundary between the shards, and keys of 256 characters (512 bytes of UTF-8).
    let started = now_ms();
    let not_utf8 = vec![0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, b'\n', 0x7f];
    let put = client
        .put_record()
        .stream_name("orders")
        .partition_key("alpha")
        .explicit_hash_key("0")
        .data(Blob::new(not_utf8.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id(), SHARD_0);
    numeric(put.sequence_number());
    let mut written = vec![(
        SHARD_0.to_owned(),
        (
            put.sequence_number().to_owned(),
            "alpha".to_owned(),
            not_utf8,
        ),
    )];
    let every_byte: Vec<u8> = (0..1024).map(|i| (i % 256) as u8).collect();
    let long_key = "é".repeat(256);
    let batch = entries(
        &client,
        "orders",
        &[
            ("beta", Some("0"), vec![0xde, 0xad, 0xbe, 0xef, 0x00]),
            ("gamma", Some(TOP), every_byte),
            ("delta", Some(HALF), b"plain text".to_vec()),
            ("epsilon", Some(HALF_MINUS_ONE), vec![0xff; 3]),
            (&long_key, Some("0"), vec![0x01]),
            ("zeta", None, vec![0x80; 2]),
        ],
    )
    .await;
    let expected_shards: Vec<&str> = batch.iter().map(|(shard, _)| shard.as_str()).collect();
    assert_eq!(
        expected_shards[..5],
        [SHARD_0, SHARD_1, SHARD_1, SHARD_0, SHARD_0]
    );
    assert!([SHARD_0, SHARD_1].contains(&expected_shards[5]));
    written.extend(batch);
    let finished = now_ms();

    // A key of 257 characters is refused by the server (the SDK does not check lengths).
    let refused = client
        .put_record()
        .stream_name("orders")
        .partition_key("k".repeat(257))
        .data(Blob::new(vec![1]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        refused.raw_response().map(|raw| raw.status().as_u16()),
        Some(400)
    );
    let refused = refused.into_service_error();
    assert_eq!(refused.code(), Some("ValidationException"));
    assert_eq!(refused.meta().code(), Some("ValidationException"));
    assert!(
        refused
            .message()
            .is_some_and(|message| message.contains("partitionKey")),
        "{refused:?}"
    );

    // TRIM_HORIZON reads back every record of each shard exactly, in sequence order.
    let mut by_shard: Vec<Vec<Written>> = Vec::new();
    for shard in [SHARD_0, SHARD_1] {
        let mut expected: Vec<Written> = written
            .iter()
            .filter(|(on, _)| on == shard)
            .map(|(_, record)| record.clone())
            .collect();
        expected.sort_by(|a, b| numeric(&a.0).cmp(&numeric(&b.0)));
        let start = iterator(
            &client,
            "orders",
            shard,
            ShardIteratorType::TrimHorizon,
            None,
            None,
        )
        .await;
        let read = get_records(&client, start).await;
        assert_eq!(read_back(read.records()), expected, "{shard}");
        assert_eq!(read.millis_behind_latest(), Some(0), "caught up");
        assert!(read.child_shards().is_empty());
        for record in read.records() {
            let arrived = millis(
                record
                    .approximate_arrival_timestamp()
                    .expect("an arrival time"),
            );
            assert!(
                started - 1000 <= arrived && arrived <= finished + 1000,
                "arrived at {arrived}, put between {started} and {finished}"
            );
        }
        // The next iterator of an open shard is there, and finds nothing new.
        let next = read.next_shard_iterator().expect("an open shard goes on");
        let after = get_records(&client, next).await;
        assert!(after.records().is_empty());
        assert_eq!(after.millis_behind_latest(), Some(0));
        by_shard.push(expected);
    }
    let shard_0 = &by_shard[0];
    assert!(shard_0.len() >= 4, "{shard_0:?}");

    // AT_SEQUENCE_NUMBER starts at that record, AFTER_SEQUENCE_NUMBER just after it.
    for (kind, skip) in [
        (ShardIteratorType::AtSequenceNumber, 1),
        (ShardIteratorType::AfterSequenceNumber, 2),
    ] {
        let start = iterator(
            &client,
            "orders",
            SHARD_0,
            kind.clone(),
            Some(&shard_0[1].0),
            None,
        )
        .await;
        let read = get_records(&client, start).await;
        assert_eq!(read_back(read.records()), shard_0[skip..], "{kind:?}");
    }

    // AT_TIMESTAMP: a later batch, then the arrival time of its first record finds exactly it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let later = entries(
        &client,
        "orders",
        &[
            ("eta", Some("0"), vec![0xf0, 0x9f, 0x92]),
            ("theta", Some("1"), vec![0x00]),
            ("iota", Some(TOP), vec![0xc0, 0xc1]),
        ],
    )
    .await;
    let mut later_on_0: Vec<Written> = later
        .iter()
        .filter(|(shard, _)| shard == SHARD_0)
        .map(|(_, record)| record.clone())
        .collect();
    later_on_0.sort_by(|a, b| numeric(&a.0).cmp(&numeric(&b.0)));
    assert_eq!(later_on_0.len(), 2);
    let start = iterator(
        &client,
        "orders",
        SHARD_0,
        ShardIteratorType::AtSequenceNumber,
        Some(&later_on_0[0].0),
        None,
    )
    .await;
    let first_later = client
        .get_records()
        .shard_iterator(start)
        .limit(1)
        .send()
        .await
        .unwrap();
    let arrival = *first_later.records()[0]
        .approximate_arrival_timestamp()
        .expect("an arrival time");
    for (at, expected) in [
        (arrival, later_on_0.clone()),
        (DateTime::from_millis(started - 60_000), {
            let mut all = shard_0.clone();
            all.extend(later_on_0.iter().cloned());
            all
        }),
        (DateTime::from_millis(now_ms() + 60_000), Vec::new()),
    ] {
        let start = iterator(
            &client,
            "orders",
            SHARD_0,
            ShardIteratorType::AtTimestamp,
            None,
            Some(at),
        )
        .await;
        let read = get_records(&client, start).await;
        assert_eq!(read_back(read.records()), expected, "AT_TIMESTAMP {at:?}");
    }

    // MillisBehindLatest: a minute on (the server's testbed clock), a read of one record is
    // behind by the age of the oldest record it left unread.
    server.clock.advance_ms(60_000);
    let start = iterator(
        &client,
        "orders",
        SHARD_0,
        ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await;
    let one = client
        .get_records()
        .shard_iterator(start)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(read_back(one.records()), shard_0[..1]);
    let behind = one.millis_behind_latest().expect("MillisBehindLatest");
    assert!(
        (60_000..60_000 + 30_000).contains(&behind),
        "behind by {behind} ms"
    );

    // Errors: an unknown stream is the SDK's modeled ResourceNotFoundException.
    let missing = client
        .describe_stream_summary()
        .stream_name("missing")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    match &missing {
        DescribeStreamSummaryError::ResourceNotFoundException(error) => assert_eq!(
            error.message(),
            Some(format!("Stream missing under account {account} not found.").as_str())
        ),
        other => panic!("expected ResourceNotFoundException, got {other:?}"),
    }
    assert_eq!(missing.code(), Some("ResourceNotFoundException"));

    client
        .delete_stream()
        .stream_name("audit")
        .send()
        .await
        .unwrap();
    client
        .wait_until_stream_not_exists()
        .stream_name("audit")
        .wait(Duration::from_secs(5))
        .await
        .expect("the stream_not_exists waiter succeeds");
    let listed = client.list_streams().send().await.unwrap();
    assert_eq!(listed.stream_names(), ["orders"]);

    // Every answer came over HTTP/1.1.
    let versions = http1.versions();
    assert!(versions.len() > 20, "{} calls", versions.len());
    assert!(
        versions
            .iter()
            .all(|version| *version == http::Version::HTTP_11),
        "{versions:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_subscribes_to_a_shard_over_http2() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = unlimited_config();
    settings.fan_out.activation_delay = Duration::ZERO;
    let server = TestServer::start(dir.path(), settings).await;
    let http1 = PlainHttp::new(false);
    let http2 = PlainHttp::new(true);
    let client = kinesis(&server, &http1);
    let h2_client = kinesis(&server, &http2);

    create_provisioned(&client, "events", 2).await;
    let stream_arn = client
        .describe_stream_summary()
        .stream_name("events")
        .send()
        .await
        .unwrap()
        .stream_description_summary()
        .expect("a summary")
        .stream_arn()
        .to_owned();

    // Registration and every fan-out call from here on go over HTTP/2.
    let registered = h2_client
        .register_stream_consumer()
        .stream_arn(&stream_arn)
        .consumer_name("reader")
        .send()
        .await
        .unwrap();
    let consumer = registered.consumer().expect("a consumer");
    assert_eq!(consumer.consumer_name(), "reader");
    assert_eq!(consumer.consumer_status(), &ConsumerStatus::Creating);
    let consumer_arn = consumer.consumer_arn().to_owned();
    assert!(
        consumer_arn.starts_with(&format!("{stream_arn}/consumer/reader:")),
        "{consumer_arn}"
    );
    let mut active = false;
    for _ in 0..50 {
        let described = h2_client
            .describe_stream_consumer()
            .consumer_arn(&consumer_arn)
            .send()
            .await
            .unwrap();
        let description = described.consumer_description().expect("a description");
        assert_eq!(description.consumer_arn(), consumer_arn);
        assert_eq!(description.stream_arn(), stream_arn);
        if description.consumer_status() == &ConsumerStatus::Active {
            active = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(active, "the consumer became ACTIVE");

    let mut output = h2_client
        .subscribe_to_shard()
        .consumer_arn(&consumer_arn)
        .shard_id(SHARD_0)
        .starting_position(
            StartingPosition::builder()
                .r#type(ShardIteratorType::Latest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("subscribe to shard");
    assert_eq!(server.store.active_subscriptions(), 1);

    // Records put after subscribing (over HTTP/1.1, on the other client) arrive in order.
    let put = client
        .put_record()
        .stream_name("events")
        .partition_key("first")
        .explicit_hash_key("0")
        .data(Blob::new(vec![0xff, 0x00, 0xfe]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id(), SHARD_0);
    let mut expected = vec![(
        put.sequence_number().to_owned(),
        "first".to_owned(),
        vec![0xff, 0x00, 0xfe],
    )];
    let payloads: Vec<Vec<u8>> = (0u8..5)
        .map(|i| vec![0x80 | i, 0x00, i, 0xc3, 0x28])
        .collect();
    let keys: Vec<String> = (0..5).map(|i| format!("key-{i}")).collect();
    let batch = entries(
        &client,
        "events",
        &keys
            .iter()
            .zip(&payloads)
            .map(|(key, data)| (key.as_str(), Some(HALF_MINUS_ONE), data.clone()))
            .collect::<Vec<_>>(),
    )
    .await;
    for (shard, record) in batch {
        assert_eq!(shard, SHARD_0);
        expected.push(record);
    }
    // Another shard's record is not in this subscription.
    let elsewhere = client
        .put_record()
        .stream_name("events")
        .partition_key("elsewhere")
        .explicit_hash_key(TOP)
        .data(Blob::new(vec![9]))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.shard_id(), SHARD_1);

    let mut received: Vec<Written> = Vec::new();
    let mut continuations: Vec<String> = Vec::new();
    for _ in 0..20 {
        if received.len() >= expected.len() {
            break;
        }
        let event = tokio::time::timeout(Duration::from_secs(10), output.event_stream.recv())
            .await
            .expect("an event within 10 s")
            .expect("no error in the event stream")
            .expect("the event stream goes on");
        let event = match event {
            SubscribeToShardEventStream::SubscribeToShardEvent(event) => event,
            other => panic!("expected a SubscribeToShardEvent, got {other:?}"),
        };
        let continuation = event.continuation_sequence_number().to_owned();
        numeric(&continuation);
        if let Some(last) = event.records().last() {
            // Rheo's ContinuationSequenceNumber is the last record delivered: resuming AFTER it
            // continues exactly where this event ends.
            assert_eq!(continuation, last.sequence_number());
        }
        assert_eq!(event.millis_behind_latest(), 0, "caught up");
        assert!(event.child_shards().is_empty());
        for record in event.records() {
            let arrived = millis(
                record
                    .approximate_arrival_timestamp()
                    .expect("an arrival time"),
            );
            assert!((now_ms() - arrived).abs() < 60_000, "arrived at {arrived}");
        }
        received.extend(read_back(event.records()));
        continuations.push(continuation);
    }
    assert_eq!(received, expected, "every record, once, in order");
    assert!(
        continuations
            .windows(2)
            .all(|pair| numeric(&pair[0]) <= numeric(&pair[1])),
        "{continuations:?}"
    );

    // The subscription, its registration and its description were all answered over HTTP/2;
    // the other client's calls over HTTP/1.1.
    let h2_versions = http2.versions();
    assert!(h2_versions.len() >= 3, "{h2_versions:?}");
    assert!(
        h2_versions
            .iter()
            .all(|version| *version == http::Version::HTTP_2),
        "{h2_versions:?}"
    );
    assert!(
        http1
            .versions()
            .iter()
            .all(|version| *version == http::Version::HTTP_11)
    );

    // Dropping the event stream resets the HTTP/2 stream, and the server ends the session.
    drop(output);
    assert!(
        server.sessions_freed().await,
        "the session ends when the client drops the stream"
    );

    // A stream with a consumer is deleted only when asked to delete its consumers too.
    let refused = client
        .delete_stream()
        .stream_name("events")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(refused, DeleteStreamError::ResourceInUseException(_)),
        "{refused:?}"
    );
    client
        .delete_stream()
        .stream_name("events")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
    client
        .wait_until_stream_not_exists()
        .stream_name("events")
        .wait(Duration::from_secs(5))
        .await
        .expect("the stream_not_exists waiter succeeds");
    let gone = client
        .describe_stream_summary()
        .stream_name("events")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            gone,
            DescribeStreamSummaryError::ResourceNotFoundException(_)
        ),
        "{gone:?}"
    );
    let consumer_gone = h2_client
        .describe_stream_consumer()
        .consumer_arn(&consumer_arn)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(
            consumer_gone,
            DescribeStreamConsumerError::ResourceNotFoundException(_)
        ),
        "{consumer_gone:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_starts_and_stops_stream_encryption() {
    use aws_sdk_kinesis::types::EncryptionType;
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let http1 = PlainHttp::new(false);
    let client = kinesis(&server, &http1);
    create_provisioned(&client, "sealed", 1).await;

    let unknown = client
        .start_stream_encryption()
        .stream_name("sealed")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/not-in-the-keyring")
        .send()
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("KMSNotFoundException"), "{unknown:?}");
    assert!(
        unknown
            .as_service_error()
            .is_some_and(|error| error.is_kms_not_found_exception()),
        "a modeled KMSNotFoundException: {unknown:?}"
    );

    // Every KeyId form Kinesis accepts names the same key; a disabled key is refused.
    let keyring_path = dir.path().join("keyring.json");
    let mut keyring = rheo_streams::keyring::read_file(&keyring_path).expect("default keyring");
    let id = keyring.aliases["alias/aws/kinesis"].clone();
    let other = keyring.create("", Some("alias/other")).unwrap();
    keyring.set_enabled(&other, false).unwrap();
    rheo_streams::keyring::write_file(&keyring_path, &keyring).unwrap();
    let forms = [
        id.clone(),
        format!("arn:aws:kms:us-east-1:000000000000:key/{id}"),
        "arn:aws:kms:us-east-1:000000000000:alias/aws/kinesis".to_string(),
    ];
    for form in &forms {
        client
            .start_stream_encryption()
            .stream_name("sealed")
            .encryption_type(EncryptionType::Kms)
            .key_id(form)
            .send()
            .await
            .unwrap_or_else(|error| panic!("{form}: {error:?}"));
        let summary = client
            .describe_stream_summary()
            .stream_name("sealed")
            .send()
            .await
            .unwrap();
        assert_eq!(
            summary.stream_description_summary().unwrap().key_id(),
            Some(form.as_str())
        );
        client
            .stop_stream_encryption()
            .stream_name("sealed")
            .encryption_type(EncryptionType::Kms)
            .key_id(form)
            .send()
            .await
            .unwrap_or_else(|error| panic!("stop {form}: {error:?}"));
    }
    // The server takes up the changed keyring file within a maintenance pass.
    let mut disabled = None;
    for _ in 0..50 {
        let error = client
            .start_stream_encryption()
            .stream_name("sealed")
            .encryption_type(EncryptionType::Kms)
            .key_id("alias/other")
            .send()
            .await
            .unwrap_err();
        if error.code() == Some("KMSDisabledException") {
            disabled = Some(error);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let disabled = disabled.expect("a disabled key is refused once the keyring is reloaded");
    assert!(
        disabled
            .as_service_error()
            .is_some_and(|error| error.is_kms_disabled_exception()),
        "{disabled:?}"
    );

    let put_one = |data: &'static str| {
        client
            .put_record()
            .stream_name("sealed")
            .partition_key("k")
            .data(Blob::new(data))
            .send()
    };
    let plain = put_one("before").await.unwrap();
    assert_eq!(plain.encryption_type(), Some(&EncryptionType::None));
    client
        .start_stream_encryption()
        .stream_name("sealed")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .expect("start encryption");
    let summary = client
        .describe_stream_summary()
        .stream_name("sealed")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(summary.encryption_type(), Some(&EncryptionType::Kms));
    assert_eq!(summary.key_id(), Some("alias/aws/kinesis"));
    assert_eq!(summary.stream_status(), &StreamStatus::Active);
    let sealed = put_one("during").await.unwrap();
    assert_eq!(sealed.encryption_type(), Some(&EncryptionType::Kms));
    let batch = client
        .put_records()
        .stream_name("sealed")
        .records(
            PutRecordsRequestEntry::builder()
                .data(Blob::new(&b"\x00\xffbinary"[..]))
                .partition_key("k")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.encryption_type(), Some(&EncryptionType::Kms));
    client
        .stop_stream_encryption()
        .stream_name("sealed")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .expect("stop encryption");
    put_one("after").await.unwrap();
    let description = client
        .describe_stream()
        .stream_name("sealed")
        .send()
        .await
        .unwrap();
    let description = description.stream_description().unwrap();
    assert_eq!(description.encryption_type(), Some(&EncryptionType::None));
    assert_eq!(description.key_id(), None);

    let start = iterator(
        &client,
        "sealed",
        SHARD_0,
        ShardIteratorType::TrimHorizon,
        None,
        None,
    )
    .await;
    let page = get_records(&client, start).await;
    let read: Vec<(Vec<u8>, Option<EncryptionType>)> = page
        .records()
        .iter()
        .map(|record| {
            (
                record.data().as_ref().to_vec(),
                record.encryption_type().cloned(),
            )
        })
        .collect();
    assert_eq!(
        read,
        vec![
            (b"before".to_vec(), Some(EncryptionType::None)),
            (b"during".to_vec(), Some(EncryptionType::Kms)),
            (b"\x00\xffbinary".to_vec(), Some(EncryptionType::Kms)),
            (b"after".to_vec(), Some(EncryptionType::None)),
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_signs_what_a_verifying_server_requires() {
    // With signatures verified, every header the server insists on (host, and X-Amz-Target so
    // a captured request cannot be replayed as another operation) is one the SDK signs, over
    // HTTP/1.1 and HTTP/2 alike.
    let dir = tempfile::tempdir().unwrap();
    let options = rheo_server::ServeOptions {
        authentication: rheo_server::Authentication::verify([(
            "AKIDEXAMPLE".to_string(),
            "secret".to_string(),
        )]),
        ..Default::default()
    };
    let server = TestServer::start_with_options(dir.path(), unlimited_config(), options).await;
    for http2_only in [false, true] {
        let http = PlainHttp::new(http2_only);
        let client = kinesis(&server, &http);
        let name = if http2_only { "signed-h2" } else { "signed-h1" };
        create_provisioned(&client, name, 1).await;
        client
            .put_record()
            .stream_name(name)
            .partition_key("k")
            .data(Blob::new("signed"))
            .send()
            .await
            .expect("a signed put is accepted");
        let versions = http.versions();
        assert!(
            versions
                .iter()
                .all(|version| (*version == http::Version::HTTP_2) == http2_only),
            "{versions:?}"
        );
    }
    server.stop().await;
}
