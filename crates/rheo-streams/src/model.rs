//! The domain's inputs and outputs, independent of any wire format.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::error::Result;
use crate::seqnum::SequenceNumber;

pub use crate::meta::StreamMode;

/// A stream's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// Being created.
    Creating,
    /// Readable and writable.
    Active,
    /// Being changed; still readable and writable.
    Updating,
    /// Being deleted.
    Deleting,
}

impl StreamStatus {
    /// The Kinesis name: CREATING, ACTIVE, UPDATING or DELETING.
    pub fn name(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
            StreamStatus::Deleting => "DELETING",
        }
    }
}

/// CreateStream input.
#[derive(Debug, Clone, Default)]
pub struct CreateStream {
    /// Stream name.
    pub name: String,
    /// Shard count (provisioned streams).
    pub shard_count: Option<i64>,
    /// Capacity mode; `None` is provisioned.
    pub mode: Option<StreamMode>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Max record size in KiB (1024..=10240).
    pub max_record_size_kib: Option<i64>,
    /// Retention in hours.
    pub retention_hours: Option<i64>,
    /// The stream's own per-shard limits.
    pub limits: crate::config::LimitsOverride,
}

/// A shard's description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// Parent, for children of a reshard.
    pub parent_shard_id: Option<String>,
    /// Adjacent parent, for children of a merge.
    pub adjacent_parent_shard_id: Option<String>,
    /// First hash key.
    pub starting_hash_key: u128,
    /// Last hash key.
    pub ending_hash_key: u128,
    /// First sequence number the shard can hold.
    pub starting_sequence_number: String,
    /// Last sequence number, once closed.
    pub ending_sequence_number: Option<String>,
}

/// A stream's description without shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// State.
    pub status: StreamStatus,
    /// Capacity mode.
    pub mode: StreamMode,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Creation time, ms.
    pub created_ms: i64,
    /// Open shards.
    pub open_shard_count: u32,
    /// Registered consumers.
    pub consumer_count: u32,
    /// Max record size, KiB.
    pub max_record_size_kib: u32,
    /// Server-side encryption.
    pub encryption: crate::encryption::Encryption,
}

/// A page of stream names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPage {
    /// The streams in this page.
    pub streams: Vec<StreamInfo>,
    /// More follow.
    pub has_more: bool,
    /// Token for the next page.
    pub next_token: Option<String>,
}

/// One record of a put.
#[derive(Debug, Clone)]
pub struct PutEntry {
    /// Data blob.
    pub data: Bytes,
    /// Partition key.
    pub partition_key: String,
    /// Explicit hash key, as given.
    pub explicit_hash_key: Option<String>,
}

/// The result of one record of a put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored.
    Stored {
        /// Shard it went to.
        shard_id: String,
        /// Its sequence number.
        sequence_number: String,
    },
    /// Not stored.
    Failed {
        /// `ProvisionedThroughputExceededException` or `InternalFailure`.
        error_code: String,
        /// Why.
        error_message: String,
    },
}

/// Where an iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorStart {
    /// At a sequence number.
    AtSequenceNumber(String),
    /// After a sequence number.
    AfterSequenceNumber(String),
    /// At a time, ms since the epoch.
    AtTimestamp(i64),
    /// Oldest retained record.
    TrimHorizon,
    /// After the newest record.
    Latest,
}

impl IteratorStart {
    /// Checks the shape of a starting sequence number (`field` names it in the error), which
    /// Kinesis does before it looks up the stream.
    pub(crate) fn check_shape(&self, field: &str) -> Result<()> {
        match self {
            IteratorStart::AtSequenceNumber(text) | IteratorStart::AfterSequenceNumber(text) => {
                SequenceNumber::check_shape(text, field)
            }
            IteratorStart::AtTimestamp(_) | IteratorStart::TrimHorizon | IteratorStart::Latest => {
                Ok(())
            }
        }
    }
}

/// A record as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOut {
    /// Sequence number.
    pub sequence_number: String,
    /// Arrival time, ms.
    pub arrival_ms: i64,
    /// Data blob.
    pub data: Bytes,
    /// Partition key.
    pub partition_key: String,
    /// Stored encrypted (EncryptionType KMS).
    pub encrypted: bool,
}

/// GetRecords output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsPage {
    /// Records in order.
    pub records: Vec<RecordOut>,
    /// Next iterator; `None` at the end of a closed shard.
    pub next_shard_iterator: Option<String>,
    /// How far behind the tip.
    pub millis_behind_latest: u64,
    /// Children, at the end of a closed shard.
    pub child_shards: Vec<ShardInfo>,
}

/// ListShards filter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ShardFilter {
    /// Shards after this id.
    AfterShardId(String),
    /// Shards open at the trim horizon.
    AtTrimHorizon,
    /// All non-expired shards (the default).
    #[default]
    FromTrimHorizon,
    /// Shards open now.
    AtLatest,
    /// Shards open at a time.
    AtTimestamp(i64),
    /// Shards open at or after a time.
    FromTimestamp(i64),
}

/// An enhanced fan-out consumer's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerStatus {
    /// Registered; cannot subscribe yet.
    Creating,
    /// Can subscribe.
    Active,
    /// Being deregistered.
    Deleting,
}

/// A registered consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerInfo {
    /// Its name, unique within the stream.
    pub name: String,
    /// `arn:aws:kinesis:<region>:<account>:stream/<stream>/consumer/<name>:<seconds>`.
    pub arn: String,
    /// Lifecycle state.
    pub status: ConsumerStatus,
    /// Registration time, ms since the epoch.
    pub created_ms: i64,
    /// The stream's ARN.
    pub stream_arn: String,
}

/// Names a consumer the ways DescribeStreamConsumer and DeregisterStreamConsumer accept: by
/// ARN, or by stream and name, or both if they agree. Empty strings are absent fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerRef {
    /// The stream, by name.
    pub stream_name: String,
    /// The stream, by ARN.
    pub stream_arn: String,
    /// The consumer's name.
    pub consumer_name: String,
    /// The consumer's ARN.
    pub consumer_arn: String,
}

/// A page of ListStreamConsumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerPage {
    /// Consumers in name order.
    pub consumers: Vec<ConsumerInfo>,
    /// Set when more follow.
    pub next_token: Option<String>,
}

/// The records of a push event. Sessions at the same position of a shard get the same ones:
/// cloning shares them, and a front end can keep its encoding of them next to them
/// ([`PushedRecords::encoded`]) so that it encodes them once for all those sessions.
#[derive(Debug, Clone, Default)]
pub struct PushedRecords(Arc<PushedInner>);

#[derive(Debug, Default)]
struct PushedInner {
    records: Vec<RecordOut>,
    encoded: OnceLock<Bytes>,
}

impl PushedRecords {
    /// Records to push, in sequence order.
    pub fn new(records: Vec<RecordOut>) -> Self {
        PushedRecords(Arc::new(PushedInner {
            records,
            encoded: OnceLock::new(),
        }))
    }

    /// The records' encoding, made by the first caller's `encode` and shared with every later
    /// caller. Only one front end may use this (the gRPC one): the slot does not say which
    /// encoding it holds.
    pub fn encoded(&self, encode: impl FnOnce(&[RecordOut]) -> Bytes) -> &Bytes {
        self.0.encoded.get_or_init(|| encode(&self.0.records))
    }
}

impl std::ops::Deref for PushedRecords {
    type Target = [RecordOut];

    fn deref(&self) -> &[RecordOut] {
        &self.0.records
    }
}

impl PartialEq for PushedRecords {
    fn eq(&self, other: &Self) -> bool {
        self.0.records == other.0.records
    }
}

impl Eq for PushedRecords {}

/// One push of a SubscribeToShard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeEvent {
    /// Records in sequence order; empty in a heartbeat.
    pub records: PushedRecords,
    /// Where to resume (with AFTER_SEQUENCE_NUMBER); `None` at the end of a closed shard.
    pub continuation_sequence_number: Option<String>,
    /// How far behind the tip this event is; 0 when caught up.
    pub millis_behind_latest: u64,
    /// At the end of a closed shard: its children.
    pub child_shards: Vec<ShardInfo>,
}

/// DescribeLimits output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Shard quota.
    pub shard_limit: u32,
    /// Open shards.
    pub open_shard_count: u32,
    /// On-demand streams.
    pub on_demand_stream_count: u32,
    /// On-demand stream quota.
    pub on_demand_stream_count_limit: u32,
}

/// Formats ms since the epoch as an RFC 3339 UTC time, for messages.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        day_secs / 3600,
        day_secs % 3600 / 60,
        day_secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_format_as_rfc3339() {
        assert_eq!(super::format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_time(1_583_283_760_123),
            "2020-03-04T01:02:40.123Z"
        );
        assert_eq!(
            super::format_time(1_767_225_600_000),
            "2026-01-01T00:00:00.000Z"
        );
    }
}
