//! One function per Kinesis operation: decode the input, build the gRPC request, call the same
//! handler the gRPC service calls, encode the answer. Nothing here decides behaviour; that is
//! the handlers' and `rheo-streams`' job.

use rheo_proto::v1 as pb;
use rheo_streams::Store;
use serde::Serialize;

use super::convert;
use super::model::{
    CreateStreamInput, ListShardsInput, ListStreamsInput, StreamDescription,
    StreamDescriptionSummary, StreamInput, StreamSummary, Tag,
};
use super::records;
use super::wire::{Format, Timestamp};
use crate::error::WireError;
use crate::handlers::{shards, streams, tags};

/// The operations Rheo serves: a target naming anything else is an UnknownOperationException
/// before authentication, as in Kinesis. SubscribeToShard streams and is served apart; every
/// other one is answered by [`call`].
const OPERATIONS: &[&str] = &[
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "GetRecords",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "UpdateShardCount",
    "UpdateStreamMode",
];

/// `name` as the operation Rheo serves under it (a `'static` name for metrics labels).
pub(crate) fn known(name: &str) -> Option<&'static str> {
    OPERATIONS.iter().copied().find(|known| *known == name)
}

/// An answer body; `None` for operations without an output shape (200 with an empty body).
pub(crate) type Answer = Result<Option<Vec<u8>>, WireError>;

pub(super) fn decode<T: serde::de::DeserializeOwned + Default>(
    format: Format,
    body: &[u8],
) -> Result<T, WireError> {
    format.decode(body).map_err(WireError::serialization)
}

pub(super) fn answer<T: Serialize>(format: Format, output: &T) -> Answer {
    Ok(Some(format.encode(output)))
}

pub(super) fn domain<T>(result: rheo_streams::Result<T>) -> Result<T, WireError> {
    result.map_err(WireError::from_domain)
}

pub(super) fn empty<T>(result: rheo_streams::Result<T>) -> Answer {
    domain(result).map(|_| None)
}

/// Runs `operation` (an `X-Amz-Target` operation name) with `body` in `format`.
pub(crate) async fn call(store: &Store, operation: &str, format: Format, body: &[u8]) -> Answer {
    match operation {
        "CreateStream" => create_stream(store, decode(format, body)?).await,
        "DeleteStream" => {
            let input: StreamInput = decode(format, body)?;
            let request = pb::DeleteStreamRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                enforce_consumer_deletion: input.enforce_consumer_deletion.unwrap_or(false),
            };
            empty(streams::delete_stream(store, request).await)
        }
        "ListStreams" => list_streams(store, format, decode(format, body)?),
        "DescribeStreamSummary" => describe_summary(store, format, decode(format, body)?),
        "DescribeStream" => describe_stream(store, format, decode(format, body)?),
        "ListShards" => list_shards(store, format, decode(format, body)?),
        "IncreaseStreamRetentionPeriod" | "DecreaseStreamRetentionPeriod" => {
            let input: StreamInput = decode(format, body)?;
            let hours = input.retention_period_hours.unwrap_or(0);
            if operation.starts_with("Increase") {
                let request = pb::IncreaseStreamRetentionPeriodRequest {
                    stream_name: input.stream_name,
                    stream_arn: input.stream_arn,
                    retention_period_hours: hours,
                };
                empty(streams::increase_retention(store, request).await)
            } else {
                let request = pb::DecreaseStreamRetentionPeriodRequest {
                    stream_name: input.stream_name,
                    stream_arn: input.stream_arn,
                    retention_period_hours: hours,
                };
                empty(streams::decrease_retention(store, request).await)
            }
        }
        "AddTagsToStream" => {
            let input: StreamInput = decode(format, body)?;
            let request = pb::AddTagsToStreamRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                tags: input.tags.into_iter().collect(),
            };
            empty(tags::add_tags(store, request).await)
        }
        "RemoveTagsFromStream" => {
            let input: StreamInput = decode(format, body)?;
            let request = pb::RemoveTagsFromStreamRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                tag_keys: input.tag_keys,
            };
            empty(tags::remove_tags(store, request).await)
        }
        "ListTagsForStream" => list_tags(store, format, decode(format, body)?),
        "DescribeLimits" => {
            let limits = streams::describe_limits(store);
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Output {
                shard_limit: i32,
                open_shard_count: i32,
                on_demand_stream_count: i32,
                on_demand_stream_count_limit: i32,
            }
            answer(
                format,
                &Output {
                    shard_limit: limits.shard_limit,
                    open_shard_count: limits.open_shard_count,
                    on_demand_stream_count: limits.on_demand_stream_count,
                    on_demand_stream_count_limit: limits.on_demand_stream_count_limit,
                },
            )
        }
        "PutRecord" => records::put_record(store, format, decode(format, body)?).await,
        "PutRecords" => records::put_records(store, format, decode(format, body)?).await,
        "GetShardIterator" => {
            records::get_shard_iterator(store, format, decode(format, body)?).await
        }
        "GetRecords" => records::get_records(store, format, decode(format, body)?).await,
        "RegisterStreamConsumer"
        | "DeregisterStreamConsumer"
        | "DescribeStreamConsumer"
        | "ListStreamConsumers" => records::consumer_call(store, operation, format, body).await,
        "SplitShard" | "MergeShards" | "UpdateShardCount" | "UpdateStreamMode" => {
            reshard(store, operation, format, decode(format, body)?).await
        }
        "StartStreamEncryption" => {
            let input: StreamInput = decode(format, body)?;
            let (encryption_type, key_id) = encryption_members(&input)?;
            let request = pb::StartStreamEncryptionRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                encryption_type,
                key_id,
            };
            empty(streams::start_encryption(store, request).await)
        }
        "StopStreamEncryption" => {
            let input: StreamInput = decode(format, body)?;
            let (encryption_type, key_id) = encryption_members(&input)?;
            let request = pb::StopStreamEncryptionRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                encryption_type,
                key_id,
            };
            empty(streams::stop_encryption(store, request).await)
        }
        // `known` lists an operation this dispatch lacks: a bug caught by any test of it.
        _ => Err(WireError::unknown_operation(format!(
            "operation {operation} is not served by Rheo"
        ))),
    }
}

/// EncryptionType and KeyId, which both encryption operations require: a missing one is the
/// validation error Kinesis gives for a null member.
fn encryption_members(input: &StreamInput) -> Result<(String, String), WireError> {
    let required = |value: &Option<String>, member: &str| {
        value.clone().ok_or_else(|| {
            WireError::from_domain(rheo_streams::StreamsError::Validation(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            )))
        })
    };
    Ok((
        required(&input.encryption_type, "encryptionType")?,
        required(&input.key_id, "keyId")?,
    ))
}

async fn create_stream(store: &Store, input: CreateStreamInput) -> Answer {
    let mode = input
        .stream_mode_details
        .map(|details| convert::mode_from_name(&details.stream_mode))
        .unwrap_or(pb::StreamMode::Unspecified);
    let request = pb::CreateStreamRequest {
        stream_name: input.stream_name,
        shard_count: input.shard_count,
        stream_mode: mode as i32,
        tags: input.tags.into_iter().collect(),
        max_record_size_in_kib: input.max_record_size_in_kib,
        retention_period_hours: None,
        shard_limits: None,
    };
    empty(streams::create_stream(store, request).await)
}

fn list_streams(store: &Store, format: Format, input: ListStreamsInput) -> Answer {
    let request = pb::ListStreamsRequest {
        limit: input.limit,
        exclusive_start_stream_name: input.exclusive_start_stream_name.unwrap_or_default(),
        next_token: input.next_token.unwrap_or_default(),
    };
    let response = domain(streams::list_streams(store, request))?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        stream_names: Vec<String>,
        has_more_streams: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_token: Option<String>,
        stream_summaries: Vec<StreamSummary>,
    }
    let stream_summaries = response
        .stream_summaries
        .into_iter()
        .map(|summary| StreamSummary {
            stream_name: summary.stream_name,
            stream_arn: summary.stream_arn,
            stream_status: convert::stream_status(summary.stream_status),
            stream_mode_details: convert::stream_mode(summary.stream_mode),
            stream_creation_timestamp: Timestamp(summary.stream_creation_timestamp_ms),
        })
        .collect();
    answer(
        format,
        &Output {
            stream_names: response.stream_names,
            has_more_streams: response.has_more_streams,
            next_token: Some(response.next_token).filter(|token| !token.is_empty()),
            stream_summaries,
        },
    )
}

fn describe_summary(store: &Store, format: Format, input: StreamInput) -> Answer {
    let request = pb::DescribeStreamSummaryRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
    };
    let response = domain(streams::describe_stream_summary(store, request))?;
    let summary = response.stream_description_summary.unwrap_or_default();
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        stream_description_summary: StreamDescriptionSummary,
    }
    answer(
        format,
        &Output {
            stream_description_summary: StreamDescriptionSummary {
                stream_name: summary.stream_name,
                stream_arn: summary.stream_arn,
                stream_status: convert::stream_status(summary.stream_status),
                stream_mode_details: convert::stream_mode(summary.stream_mode),
                retention_period_hours: summary.retention_period_hours,
                stream_creation_timestamp: Timestamp(summary.stream_creation_timestamp_ms),
                enhanced_monitoring: convert::no_enhanced_monitoring(),
                encryption_type: convert::encryption_type(&summary.encryption_type),
                key_id: summary.key_id,
                open_shard_count: summary.open_shard_count,
                consumer_count: summary.consumer_count,
                max_record_size_in_kib: summary.max_record_size_in_kib,
            },
        },
    )
}

fn describe_stream(store: &Store, format: Format, input: StreamInput) -> Answer {
    let request = pb::DescribeStreamRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
        limit: input.limit,
        exclusive_start_shard_id: input.exclusive_start_shard_id.unwrap_or_default(),
    };
    let response = domain(streams::describe_stream(store, request))?;
    let description = response.stream_description.unwrap_or_default();
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        stream_description: StreamDescription,
    }
    answer(
        format,
        &Output {
            stream_description: StreamDescription {
                stream_name: description.stream_name,
                stream_arn: description.stream_arn,
                stream_status: convert::stream_status(description.stream_status),
                stream_mode_details: convert::stream_mode(description.stream_mode),
                shards: description.shards.into_iter().map(convert::shard).collect(),
                has_more_shards: description.has_more_shards,
                retention_period_hours: description.retention_period_hours,
                stream_creation_timestamp: Timestamp(description.stream_creation_timestamp_ms),
                enhanced_monitoring: convert::no_enhanced_monitoring(),
                encryption_type: convert::encryption_type(&description.encryption_type),
                key_id: description.key_id,
            },
        },
    )
}

fn list_shards(store: &Store, format: Format, input: ListShardsInput) -> Answer {
    let shard_filter = match input.shard_filter {
        None => None,
        Some(filter) => {
            let kind = convert::shard_filter_type(&filter.kind).ok_or_else(|| {
                WireError::from_domain(rheo_streams::StreamsError::Validation(format!(
                    "1 validation error detected: Value '{}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                    filter.kind
                )))
            })?;
            Some(pb::ShardFilter {
                r#type: kind as i32,
                shard_id: filter.shard_id.unwrap_or_default(),
                timestamp_ms: filter.timestamp.map(|at| at.0),
            })
        }
    };
    let request = pb::ListShardsRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
        next_token: input.next_token.unwrap_or_default(),
        exclusive_start_shard_id: input.exclusive_start_shard_id.unwrap_or_default(),
        max_results: input.max_results,
        shard_filter,
        stream_creation_timestamp_ms: input.stream_creation_timestamp.map(|at| at.0),
    };
    let response = domain(shards::list_shards(store, request))?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        shards: Vec<super::model::Shard>,
        #[serde(skip_serializing_if = "Option::is_none")]
        next_token: Option<String>,
    }
    answer(
        format,
        &Output {
            shards: response.shards.into_iter().map(convert::shard).collect(),
            next_token: Some(response.next_token).filter(|token| !token.is_empty()),
        },
    )
}

fn list_tags(store: &Store, format: Format, input: StreamInput) -> Answer {
    let request = pb::ListTagsForStreamRequest {
        stream_name: input.stream_name,
        stream_arn: input.stream_arn,
        exclusive_start_tag_key: input.exclusive_start_tag_key.unwrap_or_default(),
        limit: input.limit,
    };
    let response = domain(tags::list_tags(store, request))?;
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Output {
        tags: Vec<Tag>,
        has_more_tags: bool,
    }
    answer(
        format,
        &Output {
            tags: response
                .tags
                .into_iter()
                .map(|tag| Tag {
                    key: tag.key,
                    value: tag.value,
                })
                .collect(),
            has_more_tags: response.has_more_tags,
        },
    )
}

async fn reshard(store: &Store, operation: &str, format: Format, input: StreamInput) -> Answer {
    match operation {
        "SplitShard" => {
            let request = pb::SplitShardRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                shard_to_split: input.shard_to_split,
                new_starting_hash_key: input.new_starting_hash_key,
            };
            empty(shards::split_shard(store, request).await)
        }
        "MergeShards" => {
            let request = pb::MergeShardsRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                shard_to_merge: input.shard_to_merge,
                adjacent_shard_to_merge: input.adjacent_shard_to_merge,
            };
            empty(shards::merge_shards(store, request).await)
        }
        "UpdateShardCount" => {
            let request = pb::UpdateShardCountRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                target_shard_count: input.target_shard_count.unwrap_or(0),
                scaling_type: input.scaling_type,
            };
            let response = domain(shards::update_shard_count(store, request).await)?;
            #[derive(Serialize)]
            #[serde(rename_all = "PascalCase")]
            struct Output {
                stream_name: String,
                #[serde(rename = "StreamARN")]
                stream_arn: String,
                current_shard_count: i32,
                target_shard_count: i32,
            }
            answer(
                format,
                &Output {
                    stream_name: response.stream_name,
                    stream_arn: response.stream_arn,
                    current_shard_count: response.current_shard_count,
                    target_shard_count: response.target_shard_count,
                },
            )
        }
        _ => {
            let mode = input
                .stream_mode_details
                .map(|details| convert::mode_from_name(&details.stream_mode))
                .unwrap_or(pb::StreamMode::Unspecified);
            let request = pb::UpdateStreamModeRequest {
                stream_name: input.stream_name,
                stream_arn: input.stream_arn,
                stream_mode: mode as i32,
            };
            empty(shards::update_stream_mode(store, request).await)
        }
    }
}
