//! Server-wide settings of the Kinesis model, with Kinesis-faithful defaults.

use std::path::PathBuf;
use std::time::Duration;

use rheo_storage::{Durability, JournalConfig};

/// Per-shard throughput limits as Kinesis applies them. `enabled = false` switches all off.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ShardLimits {
    /// Apply the limits at all. Default: true.
    pub enabled: bool,
    /// Write bytes per second per shard (partition keys included). Default: 1 MiB.
    pub write_bytes_per_sec: u64,
    /// Records written per second per shard. Default: 1,000.
    pub write_records_per_sec: u64,
    /// Bytes returned by GetRecords per second per shard. Default: 2 MiB.
    pub read_bytes_per_sec: u64,
    /// GetRecords calls per second per shard. Default: 5.
    pub read_calls_per_sec: u64,
}

impl Default for ShardLimits {
    fn default() -> Self {
        ShardLimits {
            enabled: true,
            write_bytes_per_sec: 1024 * 1024,
            write_records_per_sec: 1000,
            read_bytes_per_sec: 2 * 1024 * 1024,
            read_calls_per_sec: 5,
        }
    }
}

/// How the store behaves.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Where streams live. Default: `./rheo-data`.
    pub data_dir: PathBuf,
    /// When a put is acknowledged. Default: `Sync` (on disk, group-committed).
    pub durability: Durability,
    /// Segment size of every shard log. Default: 128 MiB.
    pub segment_max_bytes: u64,
    /// The node journal every shard log commits through (`<data_dir>/journal/`).
    pub journal: JournalConfig,
    /// How long a shard iterator stays valid. Default: 5 minutes.
    pub iterator_ttl: Duration,
    /// How long a pagination token stays valid. Default: 300 s.
    pub next_token_ttl: Duration,
    /// Shortest retention accepted, in hours. Kinesis: 24; a testbed may allow down to 1.
    pub min_retention_hours: u32,
    /// Most shards over all streams (DescribeLimits' ShardLimit). Default: 20,000.
    pub shard_limit: u32,
    /// Most on-demand streams. Default: 50.
    pub on_demand_stream_limit: u32,
    /// Per-shard throughput limits.
    pub limits: ShardLimits,
    /// Region in ARNs. Default: `us-east-1`.
    pub region: String,
    /// Account id in ARNs and messages. Default: `000000000000`.
    pub account_id: String,
    /// Enhanced fan-out: consumers and SubscribeToShard sessions.
    pub fan_out: FanOutConfig,
    /// How long a stream stays UPDATING before a reshard takes effect. Default: 0 (the reshard
    /// is done when the call returns); a testbed can imitate Kinesis's asynchronous reshards.
    /// StartStreamEncryption and StopStreamEncryption keep a stream UPDATING as long.
    pub reshard_delay: Duration,
    /// Where the key-encryption keys of encrypted streams come from. Default:
    /// `<data_dir>/keyring.json`, made at first start.
    pub keyring: crate::keyring::KeyringSource,
}

/// Enhanced fan-out settings, with Kinesis's values as defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanOutConfig {
    /// Most consumers registered on one stream. Default: 20.
    pub max_consumers_per_stream: u32,
    /// Most consumers of one stream in status CREATING at once. Default: 5.
    pub max_creating_consumers: u32,
    /// How long a new consumer stays CREATING before it can subscribe. Default: 0 (the
    /// registration is durable when the call returns, so it is ACTIVE at once; the response
    /// still says CREATING, as Kinesis's does).
    pub activation_delay: Duration,
    /// Longest gap between two events of a subscription. Default: 5 s.
    pub heartbeat: Duration,
    /// How long a subscription delivers before it completes. Default: 5 minutes.
    pub session_lifetime: Duration,
    /// A second subscription of the same consumer and shard sooner than this after the first
    /// fails with ResourceInUse; later, it takes over. Default: 5 s.
    pub takeover_after: Duration,
    /// Bytes per second pushed per consumer and shard; `None` switches shaping off.
    /// Default: 2 MiB.
    pub rate_bytes_per_sec: Option<u64>,
    /// Most bytes of records in one event (at least one record is always sent). Default: 1 MiB.
    pub event_max_bytes: usize,
}

impl Default for FanOutConfig {
    fn default() -> Self {
        FanOutConfig {
            max_consumers_per_stream: 20,
            max_creating_consumers: 5,
            activation_delay: Duration::ZERO,
            heartbeat: Duration::from_secs(5),
            session_lifetime: Duration::from_secs(300),
            takeover_after: Duration::from_secs(5),
            rate_bytes_per_sec: Some(2 * 1024 * 1024),
            event_max_bytes: 1024 * 1024,
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: PathBuf::from("rheo-data"),
            durability: Durability::Sync,
            segment_max_bytes: 128 * 1024 * 1024,
            journal: JournalConfig::default(),
            iterator_ttl: Duration::from_secs(300),
            next_token_ttl: Duration::from_secs(300),
            min_retention_hours: 24,
            shard_limit: 20_000,
            on_demand_stream_limit: 50,
            limits: ShardLimits::default(),
            region: "us-east-1".to_string(),
            account_id: "000000000000".to_string(),
            fan_out: FanOutConfig::default(),
            reshard_delay: Duration::ZERO,
            keyring: crate::keyring::KeyringSource::Default,
        }
    }
}

/// A stream's own limits (or the `[limits]` table of the server's file): each field set
/// overrides the defaults it is applied to.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// Apply limits at all.
    pub enabled: Option<bool>,
    /// Write bytes per second per shard.
    pub write_bytes_per_sec: Option<u64>,
    /// Records written per second per shard.
    pub write_records_per_sec: Option<u64>,
    /// GetRecords bytes per second per shard.
    pub read_bytes_per_sec: Option<u64>,
    /// GetRecords calls per second per shard.
    pub read_calls_per_sec: Option<u64>,
}

impl LimitsOverride {
    /// The server's limits with this override applied.
    pub fn apply(&self, server: &ShardLimits) -> ShardLimits {
        ShardLimits {
            enabled: self.enabled.unwrap_or(server.enabled),
            write_bytes_per_sec: self
                .write_bytes_per_sec
                .unwrap_or(server.write_bytes_per_sec),
            write_records_per_sec: self
                .write_records_per_sec
                .unwrap_or(server.write_records_per_sec),
            read_bytes_per_sec: self.read_bytes_per_sec.unwrap_or(server.read_bytes_per_sec),
            read_calls_per_sec: self.read_calls_per_sec.unwrap_or(server.read_calls_per_sec),
        }
    }

    /// Refuses zero rates, which would block a stream for good.
    pub fn validate(&self) -> Result<(), String> {
        let rates = [
            ("write_bytes_per_sec", self.write_bytes_per_sec),
            ("write_records_per_sec", self.write_records_per_sec),
            ("read_bytes_per_sec", self.read_bytes_per_sec),
            ("read_calls_per_sec", self.read_calls_per_sec),
        ];
        for (name, rate) in rates {
            if rate == Some(0) {
                return Err(format!("{name} must be at least 1"));
            }
        }
        Ok(())
    }
}
