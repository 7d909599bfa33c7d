//! Control plane through the real server and the generated client: create, list, describe,
//! shards, retention, tags, limits, delete, and the errors of each.

use rheo_proto::v1 as pb;
use rheo_tests::{TestServer, reason, test_config};

fn create(name: &str, shards: i32) -> pb::CreateStreamRequest {
    pb::CreateStreamRequest {
        stream_name: name.into(),
        shard_count: Some(shards),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_lifecycle_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;

    client.create_stream(create("orders", 3)).await.unwrap();
    let duplicate = client.create_stream(create("orders", 1)).await.unwrap_err();
    assert_eq!(reason(&duplicate), "ResourceInUseException");
    assert!(
        duplicate.message().contains("orders") && duplicate.message().contains("already exists")
    );

    let summary = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "orders".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.stream_status, pb::StreamStatus::Active as i32);
    assert_eq!(summary.open_shard_count, 3);
    assert_eq!(summary.retention_period_hours, 24);
    assert_eq!(summary.max_record_size_in_kib, 1024);
    assert_eq!(
        summary.stream_arn,
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
    );

    // The ranges Kinesis gives three shards.
    let shards = client
        .list_shards(pb::ListShardsRequest {
            stream_name: "orders".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .shards;
    let ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "shardId-000000000000",
            "shardId-000000000001",
            "shardId-000000000002"
        ]
    );
    let range = shards[1].hash_key_range.clone().unwrap();
    assert_eq!(
        range.starting_hash_key,
        "113427455640312821154458202477256070485"
    );
    assert_eq!(
        range.ending_hash_key,
        "226854911280625642308916404954512140969"
    );
    assert_eq!(
        shards[2].hash_key_range.clone().unwrap().ending_hash_key,
        u128::MAX.to_string()
    );

    // By ARN, too; a mismatching pair is refused.
    let by_arn = client
        .describe_stream(pb::DescribeStreamRequest {
            stream_arn: summary.stream_arn.clone(),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description
        .unwrap();
    assert_eq!(by_arn.shards.len(), 2);
    assert!(by_arn.has_more_shards);
    let rest = client
        .describe_stream(pb::DescribeStreamRequest {
            stream_name: "orders".into(),
            exclusive_start_shard_id: "shardId-000000000001".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .stream_description
        .unwrap();
    assert_eq!(rest.shards.len(), 1);
    assert!(!rest.has_more_shards);
    let mismatch = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "other".into(),
            stream_arn: summary.stream_arn.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&mismatch), "InvalidArgumentException");

    let bad_name = client
        .create_stream(create("bad name!", 1))
        .await
        .unwrap_err();
    assert_eq!(reason(&bad_name), "ValidationException");
    let zero = client.create_stream(create("zero", 0)).await.unwrap_err();
    assert_eq!(reason(&zero), "ValidationException");
    let missing = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "ResourceNotFoundException");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert_eq!(
        missing.message(),
        "Stream nope under account 000000000000 not found."
    );

    client
        .delete_stream(pb::DeleteStreamRequest {
            stream_name: "orders".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let gone = client
        .describe_stream_summary(pb::DescribeStreamSummaryRequest {
            stream_name: "orders".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&gone), "ResourceNotFoundException");
    assert!(
        !dir.path().join("streams/orders").exists(),
        "the data is deleted"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_with_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;
    for name in ["a", "b", "c", "d", "e"] {
        client.create_stream(create(name, 1)).await.unwrap();
    }
    client.create_stream(create("wide", 7)).await.unwrap();

    let first = client
        .list_streams(pb::ListStreamsRequest {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.stream_names, ["a", "b"]);
    assert!(first.has_more_streams);
    assert_eq!(first.stream_summaries.len(), 2);
    let second = client
        .list_streams(pb::ListStreamsRequest {
            limit: Some(10),
            next_token: first.next_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.stream_names, ["c", "d", "e", "wide"]);
    assert!(!second.has_more_streams);
    let after = client
        .list_streams(pb::ListStreamsRequest {
            exclusive_start_stream_name: "d".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.stream_names, ["e", "wide"]);

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let request = if token.is_empty() {
            pb::ListShardsRequest {
                stream_name: "wide".into(),
                max_results: Some(3),
                ..Default::default()
            }
        } else {
            pb::ListShardsRequest {
                next_token: token.clone(),
                max_results: Some(3),
                ..Default::default()
            }
        };
        let page = client.list_shards(request).await.unwrap().into_inner();
        seen.extend(page.shards.into_iter().map(|shard| shard.shard_id));
        if page.next_token.is_empty() {
            break;
        }
        token = page.next_token;
    }
    assert_eq!(seen.len(), 7);
    let both = client
        .list_shards(pb::ListShardsRequest {
            stream_name: "wide".into(),
            next_token: first.next_token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&both), "InvalidArgumentException");
    let after_shard = client
        .list_shards(pb::ListShardsRequest {
            stream_name: "wide".into(),
            shard_filter: Some(pb::ShardFilter {
                r#type: pb::ShardFilterType::AfterShardId as i32,
                shard_id: "shardId-000000000004".into(),
                timestamp_ms: None,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after_shard.shards.len(), 2);
    let forged = client
        .list_streams(pb::ListStreamsRequest {
            next_token: "Zm9yZ2Vk".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&forged), "InvalidArgumentException");

    // Tokens expire after 300 s of server time.
    server.clock.advance_ms(301_000);
    let expired = client
        .list_streams(pb::ListStreamsRequest {
            next_token: first.next_token,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&expired), "ExpiredNextTokenException");

    let limits = client
        .describe_limits(pb::DescribeLimitsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(limits.open_shard_count, 12);
    assert_eq!(limits.shard_limit, 20_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;
    client.create_stream(create("s", 1)).await.unwrap();
    let retention = |hours| pb::IncreaseStreamRetentionPeriodRequest {
        stream_name: "s".into(),
        retention_period_hours: hours,
        ..Default::default()
    };
    client
        .increase_stream_retention_period(retention(48))
        .await
        .unwrap();
    let not_up = client
        .increase_stream_retention_period(retention(48))
        .await
        .unwrap_err();
    assert_eq!(reason(&not_up), "InvalidArgumentException");
    let too_long = client
        .increase_stream_retention_period(retention(8761))
        .await
        .unwrap_err();
    assert_eq!(reason(&too_long), "InvalidArgumentException");
    let decrease = |hours| pb::DecreaseStreamRetentionPeriodRequest {
        stream_name: "s".into(),
        retention_period_hours: hours,
        ..Default::default()
    };
    let too_short = client
        .decrease_stream_retention_period(decrease(23))
        .await
        .unwrap_err();
    assert_eq!(reason(&too_short), "InvalidArgumentException");
    assert!(
        too_short
            .message()
            .contains("Minimum allowed retention period is 24 hours")
    );
    client
        .decrease_stream_retention_period(decrease(30))
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
    assert_eq!(summary.retention_period_hours, 30);

    let tags = [("team", "data"), ("env", "test"), ("cost center", "42")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    client
        .add_tags_to_stream(pb::AddTagsToStreamRequest {
            stream_name: "s".into(),
            tags,
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .remove_tags_from_stream(pb::RemoveTagsFromStreamRequest {
            stream_name: "s".into(),
            tag_keys: vec!["env".into(), "missing".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let listed = client
        .list_tags_for_stream(pb::ListTagsForStreamRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<&str> = listed.tags.iter().map(|tag| tag.key.as_str()).collect();
    assert_eq!(keys, ["cost center", "team"]);
    let bad = client
        .add_tags_to_stream(pb::AddTagsToStreamRequest {
            stream_name: "s".into(),
            tags: [("bad#key".to_string(), String::new())]
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&bad), "InvalidArgumentException");
    let too_many = client
        .add_tags_to_stream(pb::AddTagsToStreamRequest {
            stream_name: "s".into(),
            tags: (0..50).map(|i| (format!("k{i}"), String::new())).collect(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&too_many), "InvalidArgumentException");

    // Metadata changes are durable.
    server.stop().await;
    let server = TestServer::start(dir.path(), test_config()).await;
    let mut client = server.client().await;
    let listed = client
        .list_tags_for_stream(pb::ListTagsForStreamRequest {
            stream_name: "s".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tags.len(), 2);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), test_config()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "rheo.v1.Kinesis".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), test_config()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream_once(request))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response {response:?}");
    };
    let names: Vec<String> = list
        .service
        .into_iter()
        .map(|service| service.name)
        .collect();
    assert!(names.contains(&"rheo.v1.Kinesis".to_string()), "{names:?}");
    assert!(names.contains(&"rheo.v1.Admin".to_string()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
    server.stop().await;
}

/// A request stream of one message.
fn tokio_stream_once<T: Send + 'static>(
    item: T,
) -> impl tonic::codegen::tokio_stream::Stream<Item = T> + Send + 'static {
    tonic::codegen::tokio_stream::iter(vec![item])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shard_quota_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config();
    config.shard_limit = 5;
    let server = TestServer::start(dir.path(), config).await;
    let mut client = server.client().await;
    client.create_stream(create("first", 3)).await.unwrap();
    let over = client.create_stream(create("second", 3)).await.unwrap_err();
    assert_eq!(reason(&over), "LimitExceededException");
    assert_eq!(over.code(), tonic::Code::ResourceExhausted);
    assert!(over.message().contains("shard limit"), "{}", over.message());
    client.create_stream(create("second", 2)).await.unwrap();
    let limits = client
        .describe_limits(pb::DescribeLimitsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!((limits.shard_limit, limits.open_shard_count), (5, 5));
    server.stop().await;
}
