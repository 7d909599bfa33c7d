//! Kinesis checks a request's shape (lengths, patterns, enums, including enum numbers the
//! contract does not define) before it looks up the stream,
//! shard or consumer: malformed input names the field with ValidationException even when the
//! resource does not exist. Each case sends a malformed field to a missing resource.

use std::collections::HashMap;

use rheo_proto::v1 as pb;
use rheo_tests::{TestServer, create_stream, reason, unlimited_config};

const MISSING_STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/missing";
const MISSING_CONSUMER_ARN: &str =
    "arn:aws:kinesis:us-east-1:000000000000:stream/missing/consumer/c:1";

fn iterator_request(shard_id: &str, sequence: Option<&str>) -> pb::GetShardIteratorRequest {
    pb::GetShardIteratorRequest {
        stream_name: "missing".into(),
        shard_id: shard_id.into(),
        shard_iterator_type: if sequence.is_some() {
            pb::ShardIteratorType::AtSequenceNumber
        } else {
            pb::ShardIteratorType::TrimHorizon
        } as i32,
        starting_sequence_number: sequence.map(Into::into),
        ..Default::default()
    }
}

#[tokio::test]
async fn malformed_input_is_a_validation_error_before_the_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path(), unlimited_config()).await;
    let mut client = server.client().await;

    // (case, error, field the message must name)
    let mut outcomes: Vec<(&str, Result<(), tonic::Status>, &str)> = Vec::new();
    macro_rules! case {
        ($name:expr, $field:expr, $call:expr) => {
            outcomes.push(($name, $call.await.map(|_| ()), $field));
        };
    }
    case!(
        "GetShardIterator, empty shard id",
        "'shardId'",
        client.get_shard_iterator(iterator_request("", None))
    );
    case!(
        "GetShardIterator, shard id with a space",
        "'shardId'",
        client.get_shard_iterator(iterator_request("shard 1", None))
    );
    case!(
        "GetShardIterator, sequence number not decimal",
        "'startingSequenceNumber'",
        client.get_shard_iterator(iterator_request("shardId-000000000000", Some("12ab")))
    );
    case!(
        "GetRecords, empty iterator",
        "'shardIterator'",
        client.get_records(pb::GetRecordsRequest::default())
    );
    case!(
        "PutRecord, explicit hash key not decimal",
        "explicitHashKey'",
        client.put_record(pb::PutRecordRequest {
            stream_name: "missing".into(),
            partition_key: "k".into(),
            explicit_hash_key: Some("0x10".into()),
            ..Default::default()
        })
    );
    case!(
        "SplitShard, new starting hash key not decimal",
        "'newStartingHashKey'",
        client.split_shard(pb::SplitShardRequest {
            stream_name: "missing".into(),
            shard_to_split: "shardId-000000000000".into(),
            new_starting_hash_key: "-1".into(),
            ..Default::default()
        })
    );
    case!(
        "MergeShards, empty shard id",
        "'shardToMerge'",
        client.merge_shards(pb::MergeShardsRequest {
            stream_name: "missing".into(),
            shard_to_merge: String::new(),
            adjacent_shard_to_merge: "shardId-000000000001".into(),
            ..Default::default()
        })
    );
    case!(
        "AddTagsToStream, no tags",
        "'tags'",
        client.add_tags_to_stream(pb::AddTagsToStreamRequest {
            stream_name: "missing".into(),
            tags: HashMap::new(),
            ..Default::default()
        })
    );
    case!(
        "RegisterStreamConsumer, malformed stream ARN",
        "'streamARN'",
        client.register_stream_consumer(pb::RegisterStreamConsumerRequest {
            stream_arn: "stream/missing".into(),
            consumer_name: "c".into(),
            ..Default::default()
        })
    );
    case!(
        "DeregisterStreamConsumer, malformed consumer ARN",
        "'consumerARN'",
        client.deregister_stream_consumer(pb::DeregisterStreamConsumerRequest {
            consumer_arn: "consumer/c".into(),
            ..Default::default()
        })
    );
    case!(
        "SubscribeToShard, empty shard id",
        "'shardId'",
        client.subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: MISSING_CONSUMER_ARN.into(),
            shard_id: String::new(),
            starting_position: Some(pb::StartingPosition {
                r#type: pb::ShardIteratorType::Latest as i32,
                ..Default::default()
            }),
        })
    );
    case!(
        "SubscribeToShard, sequence number not decimal",
        "'startingPosition.sequenceNumber'",
        client.subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: MISSING_CONSUMER_ARN.into(),
            shard_id: "shardId-000000000000".into(),
            starting_position: Some(pb::StartingPosition {
                r#type: pb::ShardIteratorType::AfterSequenceNumber as i32,
                sequence_number: Some("007".into()),
                ..Default::default()
            }),
        })
    );
    // Enum numbers the contract does not define are refused, not read as the default.
    case!(
        "GetShardIterator, unknown iterator type",
        "Value '99' at 'shardIteratorType'",
        client.get_shard_iterator(pb::GetShardIteratorRequest {
            shard_iterator_type: 99,
            ..iterator_request("shardId-000000000000", None)
        })
    );
    case!(
        "CreateStream, unknown stream mode",
        "Value '7' at 'streamModeDetails.streamMode'",
        client.create_stream(pb::CreateStreamRequest {
            stream_name: "never-created".into(),
            shard_count: Some(1),
            stream_mode: 7,
            ..Default::default()
        })
    );
    case!(
        "UpdateStreamMode, unknown stream mode",
        "Value '9' at 'streamModeDetails.streamMode'",
        client.update_stream_mode(pb::UpdateStreamModeRequest {
            stream_arn: MISSING_STREAM_ARN.into(),
            stream_mode: 9,
            ..Default::default()
        })
    );
    case!(
        "ListShards, unknown filter type",
        "Value '55' at 'shardFilter.type'",
        client.list_shards(pb::ListShardsRequest {
            stream_name: "missing".into(),
            shard_filter: Some(pb::ShardFilter {
                r#type: 55,
                ..Default::default()
            }),
            ..Default::default()
        })
    );
    case!(
        "SubscribeToShard, unknown starting position type",
        "Value '42' at 'startingPosition.type'",
        client.subscribe_to_shard(pb::SubscribeToShardRequest {
            consumer_arn: MISSING_CONSUMER_ARN.into(),
            shard_id: "shardId-000000000000".into(),
            starting_position: Some(pb::StartingPosition {
                r#type: 42,
                ..Default::default()
            }),
        })
    );
    for (name, outcome, field) in &outcomes {
        let status = outcome.as_ref().expect_err(name);
        assert_eq!(reason(status), "ValidationException", "{name}: {status:?}");
        assert!(status.message().contains(field), "{name}: {status:?}");
    }

    // Well-formed input for missing resources is still ResourceNotFoundException.
    let missing = client
        .get_shard_iterator(iterator_request("shardId-000000000000", Some("1")))
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "ResourceNotFoundException");
    let missing = client
        .register_stream_consumer(pb::RegisterStreamConsumerRequest {
            stream_arn: MISSING_STREAM_ARN.into(),
            consumer_name: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&missing), "ResourceNotFoundException");
    // And a well-formed hash key beyond 2^128 - 1 on an existing stream is the semantic error.
    create_stream(&mut client, "present", 1).await;
    let too_big = client
        .split_shard(pb::SplitShardRequest {
            stream_name: "present".into(),
            shard_to_split: "shardId-000000000000".into(),
            new_starting_hash_key: "9".repeat(39),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&too_big), "InvalidArgumentException");
    server.stop().await;
}
