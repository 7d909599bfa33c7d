//! PutRecord, PutRecords, GetShardIterator, GetRecords.

use rheo_proto::v1 as pb;
use rheo_streams::{IteratorStart, PutEntry, PutOutcome, Result, Store, StreamsError};

use crate::convert;

pub(crate) async fn put_record(
    store: &Store,
    request: pb::PutRecordRequest,
) -> Result<pb::PutRecordResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let entry = PutEntry {
        data: request.data,
        partition_key: request.partition_key,
        explicit_hash_key: request.explicit_hash_key,
    };
    let (shard_id, sequence_number) = store
        .put_record(
            &name,
            entry,
            request.sequence_number_for_ordering.as_deref(),
        )
        .await?;
    Ok(pb::PutRecordResponse {
        shard_id,
        sequence_number,
        encryption_type: encryption_type(store, &name),
    })
}

pub(crate) async fn put_records(
    store: &Store,
    request: pb::PutRecordsRequest,
) -> Result<pb::PutRecordsResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let entries = request
        .records
        .into_iter()
        .map(|record| PutEntry {
            data: record.data,
            partition_key: record.partition_key,
            explicit_hash_key: record.explicit_hash_key,
        })
        .collect();
    let outcomes = store.put_records(&name, entries).await?;
    let mut failed_record_count = 0;
    let records = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            PutOutcome::Stored {
                shard_id,
                sequence_number,
            } => pb::PutRecordsResultEntry {
                sequence_number: Some(sequence_number),
                shard_id: Some(shard_id),
                error_code: None,
                error_message: None,
            },
            PutOutcome::Failed {
                error_code,
                error_message,
            } => {
                failed_record_count += 1;
                pb::PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some(error_code),
                    error_message: Some(error_message),
                }
            }
        })
        .collect();
    Ok(pb::PutRecordsResponse {
        failed_record_count,
        records,
        encryption_type: encryption_type(store, &name),
    })
}

/// The EncryptionType of a put's answer: whether the stream encrypts new records (read just
/// after the put; a StartStreamEncryption racing the put may make them differ).
fn encryption_type(store: &Store, name: &str) -> String {
    store
        .encryption(name)
        .map_or("NONE", |encryption| encryption.type_name())
        .into()
}

/// The iterator types, as a validation message lists them.
pub(crate) const ITERATOR_TYPES: &str =
    "AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST";

/// The starting position GetShardIterator and SubscribeToShard share.
pub(crate) fn iterator_start(
    kind: pb::ShardIteratorType,
    sequence_number: Option<String>,
    timestamp_ms: Option<i64>,
) -> Result<IteratorStart> {
    let sequence = || {
        sequence_number
            .clone()
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                StreamsError::InvalidArgument(format!(
                    "StartingSequenceNumber is required for ShardIteratorType {}",
                    kind.as_str_name()
                ))
            })
    };
    Ok(match kind {
        pb::ShardIteratorType::Unspecified => {
            return Err(StreamsError::Validation(
                "1 validation error detected: Value at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]".into(),
            ));
        }
        pb::ShardIteratorType::AtSequenceNumber => IteratorStart::AtSequenceNumber(sequence()?),
        pb::ShardIteratorType::AfterSequenceNumber => {
            IteratorStart::AfterSequenceNumber(sequence()?)
        }
        pb::ShardIteratorType::AtTimestamp => {
            IteratorStart::AtTimestamp(timestamp_ms.ok_or_else(|| {
                StreamsError::InvalidArgument(
                    "Timestamp is required for ShardIteratorType AT_TIMESTAMP".into(),
                )
            })?)
        }
        pb::ShardIteratorType::TrimHorizon => IteratorStart::TrimHorizon,
        pb::ShardIteratorType::Latest => IteratorStart::Latest,
    })
}

pub(crate) async fn get_shard_iterator(
    store: &Store,
    request: pb::GetShardIteratorRequest,
) -> Result<pb::GetShardIteratorResponse> {
    let name = store.resolve_name(&request.stream_name, &request.stream_arn)?;
    let start = iterator_start(
        super::known(
            request.shard_iterator_type,
            "shardIteratorType",
            ITERATOR_TYPES,
        )?,
        request.starting_sequence_number,
        request.timestamp_ms,
    )?;
    let shard_iterator = store
        .get_shard_iterator(&name, &request.shard_id, start)
        .await?;
    Ok(pb::GetShardIteratorResponse { shard_iterator })
}

pub(crate) async fn get_records(
    store: &Store,
    request: pb::GetRecordsRequest,
) -> Result<pb::GetRecordsResponse> {
    let page = store
        .get_records(
            &request.shard_iterator,
            request.limit.map(i64::from),
            &request.stream_arn,
        )
        .await?;
    Ok(pb::GetRecordsResponse {
        records: page.records.into_iter().map(convert::record).collect(),
        next_shard_iterator: page.next_shard_iterator,
        millis_behind_latest: page.millis_behind_latest as i64,
        child_shards: convert::child_shards(page.child_shards),
    })
}
