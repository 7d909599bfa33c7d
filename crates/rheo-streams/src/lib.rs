//! The Kinesis model over Rheo's storage engine, independent of any transport.
//!
//! A [`Store`] owns a data directory: one directory per stream holding its checksummed metadata
//! and one storage log per shard, all committing through one node journal. It routes partition
//! keys to shards (MD5, big-endian u128), turns the engine's per-shard numbers into Kinesis
//! sequence numbers, signs shard iterators, applies per-shard throughput limits, keeps enhanced
//! fan-out consumers and their push sessions, encrypts streams at rest under keys of its
//! [`keyring`] (`encryption` holds StartStreamEncryption and StopStreamEncryption), and reports
//! failures as [`StreamsError`]s that carry the Kinesis exception name. Front ends (gRPC and the
//! Kinesis HTTP protocol) only translate.
//!
//! Every append, read and seek a request makes on a shard log goes through `engine`, which
//! also states where each runs (async worker, blocking pool or the journal's commit thread).

mod config;
mod consumers;
mod control;
mod data;
mod encryption;
mod engine;
mod error;
mod hashing;
pub mod keyring;
mod limits;
mod load;
mod maintenance;
mod meta;
mod metrics;
mod model;
mod reshard;
mod seqnum;
mod shards;
mod store;
mod subscribe;
mod token;
mod topology;

pub use config::{FanOutConfig, LimitsOverride, ShardLimits, StoreConfig};
pub use data::{
    MAX_GET_RECORDS, MAX_GET_RECORDS_BYTES, MAX_PUT_RECORDS, MAX_PUT_RECORDS_BYTES,
    check_put_records_count,
};
pub use encryption::Encryption;
pub use error::{OUT_OF_RESOURCES, Result, StreamsError};
pub use hashing::{hash_partition_key, initial_ranges, parse_explicit_hash_key};
pub use load::check_stream_metadata;
pub use metrics::{OpenProgress, SessionMetrics, ShardMetrics, StoreMetrics};
pub use model::{
    ConsumerInfo, ConsumerPage, ConsumerRef, ConsumerStatus, CreateStream, IteratorStart, Limits,
    PushedRecords, PutEntry, PutOutcome, RecordOut, RecordsPage, ShardFilter, ShardInfo,
    StreamInfo, StreamMode, StreamPage, StreamStatus, SubscribeEvent, format_time,
};
pub use seqnum::SequenceNumber;
pub use store::{Store, validate_stream_name};
pub use subscribe::Subscription;
pub use token::{ShardIterator, TokenKey};
