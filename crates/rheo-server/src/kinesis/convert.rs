//! Kinesis wire names for the gRPC handlers' answers: the HTTP front end calls the same
//! handlers as the gRPC service and only re-encodes their results.

use rheo_proto::v1 as pb;

use super::model::{
    ChildShard, Consumer, EnhancedMetrics, HashKeyRange, Record, SequenceNumberRange, Shard,
    StreamModeOut,
};
use super::wire::{Blob, Timestamp};

pub(crate) fn stream_status(value: i32) -> &'static str {
    pb::StreamStatus::try_from(value)
        .map(|status| status.as_str_name())
        .unwrap_or("ACTIVE")
}

pub(crate) fn stream_mode(value: i32) -> StreamModeOut {
    let stream_mode = match pb::StreamMode::try_from(value) {
        Ok(pb::StreamMode::OnDemand) => "ON_DEMAND",
        _ => "PROVISIONED",
    };
    StreamModeOut { stream_mode }
}

/// Kinesis lists no enhanced metrics as one empty entry.
pub(crate) fn no_enhanced_monitoring() -> Vec<EnhancedMetrics> {
    vec![EnhancedMetrics {
        shard_level_metrics: Vec::new(),
    }]
}

fn hash_key_range(range: Option<pb::HashKeyRange>) -> HashKeyRange {
    let range = range.unwrap_or_default();
    HashKeyRange {
        starting_hash_key: range.starting_hash_key,
        ending_hash_key: range.ending_hash_key,
    }
}

pub(crate) fn shard(shard: pb::Shard) -> Shard {
    let sequence = shard.sequence_number_range.unwrap_or_default();
    Shard {
        shard_id: shard.shard_id,
        parent_shard_id: shard.parent_shard_id,
        adjacent_parent_shard_id: shard.adjacent_parent_shard_id,
        hash_key_range: hash_key_range(shard.hash_key_range),
        sequence_number_range: SequenceNumberRange {
            starting_sequence_number: sequence.starting_sequence_number,
            ending_sequence_number: sequence.ending_sequence_number,
        },
    }
}

pub(crate) fn child_shard(child: pb::ChildShard) -> ChildShard {
    ChildShard {
        shard_id: child.shard_id,
        parent_shards: child.parent_shards,
        hash_key_range: hash_key_range(child.hash_key_range),
    }
}

pub(crate) fn record(record: pb::Record) -> Record {
    Record {
        sequence_number: record.sequence_number,
        approximate_arrival_timestamp: Timestamp(record.approximate_arrival_timestamp_ms),
        data: Blob(record.data),
        partition_key: record.partition_key,
        encryption_type: encryption_type(&record.encryption_type),
    }
}

/// The EncryptionType a gRPC answer carries, as the `'static` name the HTTP models hold.
pub(crate) fn encryption_type(name: &str) -> &'static str {
    if name == "KMS" { "KMS" } else { "NONE" }
}

fn consumer_status(value: i32) -> &'static str {
    match pb::ConsumerStatus::try_from(value) {
        Ok(pb::ConsumerStatus::Creating) => "CREATING",
        Ok(pb::ConsumerStatus::Deleting) => "DELETING",
        _ => "ACTIVE",
    }
}

pub(crate) fn consumer(consumer: pb::Consumer) -> Consumer {
    Consumer {
        consumer_name: consumer.consumer_name,
        consumer_arn: consumer.consumer_arn,
        consumer_status: consumer_status(consumer.consumer_status),
        consumer_creation_timestamp: Timestamp(consumer.consumer_creation_timestamp_ms),
        stream_arn: None,
    }
}

pub(crate) fn consumer_description(description: pb::ConsumerDescription) -> Consumer {
    Consumer {
        consumer_name: description.consumer_name,
        consumer_arn: description.consumer_arn,
        consumer_status: consumer_status(description.consumer_status),
        consumer_creation_timestamp: Timestamp(description.consumer_creation_timestamp_ms),
        stream_arn: Some(description.stream_arn),
    }
}

/// The gRPC enum for a Kinesis ShardIteratorType (or StartingPosition Type) name; an unknown
/// name maps to UNSPECIFIED, which the handler refuses with the enum's ValidationException.
pub(crate) fn iterator_type(name: &str) -> pb::ShardIteratorType {
    pb::ShardIteratorType::from_str_name(name).unwrap_or(pb::ShardIteratorType::Unspecified)
}

pub(crate) fn shard_filter_type(name: &str) -> Option<pb::ShardFilterType> {
    pb::ShardFilterType::from_str_name(&format!("SHARD_FILTER_TYPE_{name}"))
        .filter(|kind| *kind != pb::ShardFilterType::Unspecified)
}

pub(crate) fn mode_from_name(name: &str) -> pb::StreamMode {
    match name {
        "PROVISIONED" => pb::StreamMode::Provisioned,
        "ON_DEMAND" => pb::StreamMode::OnDemand,
        _ => pb::StreamMode::Unspecified,
    }
}
