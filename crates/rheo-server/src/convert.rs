//! Domain values to protobuf messages.

use rheo_proto::v1 as pb;
use rheo_streams::{
    ConsumerInfo, ConsumerStatus, RecordOut, ShardInfo, StreamInfo, StreamMode, StreamStatus,
};

pub(crate) fn mode(mode: StreamMode) -> i32 {
    match mode {
        StreamMode::Provisioned => pb::StreamMode::Provisioned as i32,
        StreamMode::OnDemand => pb::StreamMode::OnDemand as i32,
    }
}

pub(crate) fn status(status: StreamStatus) -> i32 {
    match status {
        StreamStatus::Creating => pb::StreamStatus::Creating as i32,
        StreamStatus::Active => pb::StreamStatus::Active as i32,
        StreamStatus::Updating => pb::StreamStatus::Updating as i32,
        StreamStatus::Deleting => pb::StreamStatus::Deleting as i32,
    }
}

pub(crate) fn shard(shard: ShardInfo) -> pb::Shard {
    pb::Shard {
        shard_id: shard.shard_id,
        parent_shard_id: shard.parent_shard_id,
        adjacent_parent_shard_id: shard.adjacent_parent_shard_id,
        hash_key_range: Some(pb::HashKeyRange {
            starting_hash_key: shard.starting_hash_key.to_string(),
            ending_hash_key: shard.ending_hash_key.to_string(),
        }),
        sequence_number_range: Some(pb::SequenceNumberRange {
            starting_sequence_number: shard.starting_sequence_number,
            ending_sequence_number: shard.ending_sequence_number,
        }),
    }
}

pub(crate) fn summary(info: StreamInfo) -> pb::StreamDescriptionSummary {
    pb::StreamDescriptionSummary {
        stream_name: info.name,
        stream_arn: info.arn,
        stream_status: status(info.status),
        stream_mode: mode(info.mode),
        retention_period_hours: info.retention_hours as i32,
        stream_creation_timestamp_ms: info.created_ms,
        open_shard_count: info.open_shard_count as i32,
        consumer_count: info.consumer_count as i32,
        max_record_size_in_kib: info.max_record_size_kib as i32,
        encryption_type: info.encryption.type_name().into(),
        key_id: info.encryption.key_id().map(str::to_string),
    }
}

pub(crate) fn stream_summary(info: StreamInfo) -> pb::StreamSummary {
    pb::StreamSummary {
        stream_name: info.name,
        stream_arn: info.arn,
        stream_status: status(info.status),
        stream_mode: mode(info.mode),
        stream_creation_timestamp_ms: info.created_ms,
    }
}

pub(crate) fn record(record: RecordOut) -> pb::Record {
    pb::Record {
        sequence_number: record.sequence_number,
        approximate_arrival_timestamp_ms: record.arrival_ms,
        data: record.data,
        partition_key: record.partition_key,
        encryption_type: if record.encrypted { "KMS" } else { "NONE" }.into(),
    }
}

pub(crate) fn child_shards(children: Vec<ShardInfo>) -> Vec<pb::ChildShard> {
    children.into_iter().map(child_shard).collect()
}

pub(crate) fn child_shard(child: ShardInfo) -> pb::ChildShard {
    pb::ChildShard {
        parent_shards: child
            .parent_shard_id
            .into_iter()
            .chain(child.adjacent_parent_shard_id)
            .collect(),
        hash_key_range: Some(pb::HashKeyRange {
            starting_hash_key: child.starting_hash_key.to_string(),
            ending_hash_key: child.ending_hash_key.to_string(),
        }),
        shard_id: child.shard_id,
    }
}

fn consumer_status(status: ConsumerStatus) -> i32 {
    match status {
        ConsumerStatus::Creating => pb::ConsumerStatus::Creating as i32,
        ConsumerStatus::Active => pb::ConsumerStatus::Active as i32,
        ConsumerStatus::Deleting => pb::ConsumerStatus::Deleting as i32,
    }
}

pub(crate) fn consumer(info: ConsumerInfo) -> pb::Consumer {
    pb::Consumer {
        consumer_name: info.name,
        consumer_arn: info.arn,
        consumer_status: consumer_status(info.status),
        consumer_creation_timestamp_ms: info.created_ms,
    }
}

pub(crate) fn consumer_description(info: ConsumerInfo) -> pb::ConsumerDescription {
    pb::ConsumerDescription {
        consumer_name: info.name,
        consumer_arn: info.arn,
        consumer_status: consumer_status(info.status),
        consumer_creation_timestamp_ms: info.created_ms,
        stream_arn: info.stream_arn,
    }
}
