//! The Kinesis operations' input and output members, named as the AWS service model names
//! them. Inputs default every member (a missing required member reaches the handler empty and
//! gets the same error as over gRPC); outputs omit absent optional members, as Kinesis does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::wire::{Blob, Timestamp};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct StreamModeDetails {
    pub(crate) stream_mode: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamModeOut {
    pub(crate) stream_mode: &'static str,
}

// ---- inputs ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct CreateStreamInput {
    pub(crate) stream_name: String,
    pub(crate) shard_count: Option<i32>,
    pub(crate) stream_mode_details: Option<StreamModeDetails>,
    pub(crate) tags: BTreeMap<String, String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    pub(crate) max_record_size_in_kib: Option<i32>,
}

/// Every input that names a stream and nothing else: DeleteStream, DescribeStreamSummary,
/// DescribeStream, the retention calls, the tag calls, ListShards and the reshard calls share
/// these members, each reading the ones its operation has.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct StreamInput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) enforce_consumer_deletion: Option<bool>,
    pub(crate) limit: Option<i32>,
    pub(crate) exclusive_start_shard_id: Option<String>,
    pub(crate) retention_period_hours: Option<i32>,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) tag_keys: Vec<String>,
    pub(crate) exclusive_start_tag_key: Option<String>,
    pub(crate) shard_to_split: String,
    pub(crate) new_starting_hash_key: String,
    pub(crate) shard_to_merge: String,
    pub(crate) adjacent_shard_to_merge: String,
    pub(crate) target_shard_count: Option<i32>,
    pub(crate) scaling_type: String,
    pub(crate) stream_mode_details: Option<StreamModeDetails>,
    pub(crate) encryption_type: Option<String>,
    pub(crate) key_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ListStreamsInput {
    pub(crate) limit: Option<i32>,
    pub(crate) exclusive_start_stream_name: Option<String>,
    pub(crate) next_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ShardFilterInput {
    #[serde(rename = "Type")]
    pub(crate) kind: String,
    pub(crate) shard_id: Option<String>,
    pub(crate) timestamp: Option<Timestamp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ListShardsInput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) next_token: Option<String>,
    pub(crate) exclusive_start_shard_id: Option<String>,
    pub(crate) max_results: Option<i32>,
    pub(crate) stream_creation_timestamp: Option<Timestamp>,
    pub(crate) shard_filter: Option<ShardFilterInput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct PutRecordInput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) data: Blob,
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
    pub(crate) sequence_number_for_ordering: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct PutRecordsEntry {
    pub(crate) data: Blob,
    pub(crate) partition_key: String,
    pub(crate) explicit_hash_key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct PutRecordsInput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) records: Bounded<PutRecordsEntry, { rheo_streams::MAX_PUT_RECORDS }>,
}

/// A list that keeps at most `N + 1` elements while it is decoded and only counts the rest,
/// so a body of millions of tiny elements (a 15 MiB body of empty records) costs the memory of
/// `N + 1` of them, not of millions, before the length check refuses it.
#[derive(Debug)]
pub(crate) struct Bounded<T, const N: usize> {
    /// The first `N + 1` elements.
    pub(crate) items: Vec<T>,
    /// How many the list held.
    pub(crate) len: usize,
}

impl<T, const N: usize> Default for Bounded<T, N> {
    fn default() -> Self {
        Bounded {
            items: Vec::new(),
            len: 0,
        }
    }
}

impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Bounded<T, N> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T, const N: usize>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>, const N: usize> serde::de::Visitor<'de> for Visit<T, N> {
            type Value = Bounded<T, N>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut list = Bounded::default();
                loop {
                    let more = if list.items.len() <= N {
                        seq.next_element::<T>()?.map(|item| list.items.push(item))
                    } else {
                        seq.next_element::<serde::de::IgnoredAny>()?.map(|_| ())
                    };
                    if more.is_none() {
                        return Ok(list);
                    }
                    list.len += 1;
                }
            }
        }
        deserializer.deserialize_seq(Visit::<T, N>(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct GetShardIteratorInput {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) shard_id: String,
    pub(crate) shard_iterator_type: String,
    pub(crate) starting_sequence_number: Option<String>,
    pub(crate) timestamp: Option<Timestamp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct GetRecordsInput {
    pub(crate) shard_iterator: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) limit: Option<i32>,
}

/// The consumer calls' members: Register, Deregister, Describe and ListStreamConsumers.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct ConsumerInput {
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub(crate) consumer_arn: String,
    pub(crate) next_token: Option<String>,
    pub(crate) max_results: Option<i32>,
    pub(crate) stream_creation_timestamp: Option<Timestamp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct StartingPosition {
    #[serde(rename = "Type")]
    pub(crate) kind: String,
    pub(crate) sequence_number: Option<String>,
    pub(crate) timestamp: Option<Timestamp>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub(crate) struct SubscribeToShardInput {
    #[serde(rename = "ConsumerARN")]
    pub(crate) consumer_arn: String,
    pub(crate) shard_id: String,
    pub(crate) starting_position: Option<StartingPosition>,
}

// ---- outputs ----

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HashKeyRange {
    pub(crate) starting_hash_key: String,
    pub(crate) ending_hash_key: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SequenceNumberRange {
    pub(crate) starting_sequence_number: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ending_sequence_number: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Shard {
    pub(crate) shard_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) parent_shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) adjacent_parent_shard_id: Option<String>,
    pub(crate) hash_key_range: HashKeyRange,
    pub(crate) sequence_number_range: SequenceNumberRange,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ChildShard {
    pub(crate) shard_id: String,
    pub(crate) parent_shards: Vec<String>,
    pub(crate) hash_key_range: HashKeyRange,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Record {
    pub(crate) sequence_number: String,
    pub(crate) approximate_arrival_timestamp: Timestamp,
    pub(crate) data: Blob,
    pub(crate) partition_key: String,
    pub(crate) encryption_type: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EnhancedMetrics {
    pub(crate) shard_level_metrics: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescription {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) stream_status: &'static str,
    pub(crate) stream_mode_details: StreamModeOut,
    pub(crate) shards: Vec<Shard>,
    pub(crate) has_more_shards: bool,
    pub(crate) retention_period_hours: i32,
    pub(crate) stream_creation_timestamp: Timestamp,
    pub(crate) enhanced_monitoring: Vec<EnhancedMetrics>,
    pub(crate) encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamDescriptionSummary {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) stream_status: &'static str,
    pub(crate) stream_mode_details: StreamModeOut,
    pub(crate) retention_period_hours: i32,
    pub(crate) stream_creation_timestamp: Timestamp,
    pub(crate) enhanced_monitoring: Vec<EnhancedMetrics>,
    pub(crate) encryption_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_id: Option<String>,
    pub(crate) open_shard_count: i32,
    pub(crate) consumer_count: i32,
    #[serde(rename = "MaxRecordSizeInKiB")]
    pub(crate) max_record_size_in_kib: i32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct StreamSummary {
    pub(crate) stream_name: String,
    #[serde(rename = "StreamARN")]
    pub(crate) stream_arn: String,
    pub(crate) stream_status: &'static str,
    pub(crate) stream_mode_details: StreamModeOut,
    pub(crate) stream_creation_timestamp: Timestamp,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Consumer {
    pub(crate) consumer_name: String,
    #[serde(rename = "ConsumerARN")]
    pub(crate) consumer_arn: String,
    pub(crate) consumer_status: &'static str,
    pub(crate) consumer_creation_timestamp: Timestamp,
    #[serde(rename = "StreamARN", skip_serializing_if = "Option::is_none")]
    pub(crate) stream_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_message: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Tag {
    pub(crate) key: String,
    pub(crate) value: String,
}

/// A SubscribeToShardEvent's members besides `Records` (see `Format::encode_with_records`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EventRest {
    /// Null at the end of a closed shard, so it is always sent.
    pub(crate) continuation_sequence_number: Option<String>,
    pub(crate) millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) child_shards: Vec<ChildShard>,
}
