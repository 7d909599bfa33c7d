//! Per-log settings: durability, segment sizing, record limits and retention.

use std::time::Duration;

/// Largest record the engine will ever accept (partition key plus data), whatever a log is
/// configured with: 10 MiB, Kinesis's ceiling.
pub const MAX_RECORD_BYTES_CEILING: usize = 10 * 1024 * 1024;

/// Largest partition key in bytes. Kinesis allows 256 Unicode characters, which is at most
/// 1024 bytes of UTF-8.
pub const MAX_PARTITION_KEY_BYTES: usize = 1024;

/// Largest batch body one append may carry. Kinesis caps a PutRecords call at 10 MiB; the margin
/// covers per-record framing.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Shortest retention a log accepts: 1 hour. The service enforces Kinesis's 24 hours unless a
/// testbed setting allows less.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// Longest retention a log accepts: 365 days (8,760 hours).
pub const MAX_RETENTION: Duration = Duration::from_secs(365 * 24 * 3600);

/// When an append counts as done.
///
/// The default is [`Durability::Sync`]: nothing is acknowledged before it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Group commit. Every append that is waiting is written with one write and covered by one
    /// `fdatasync` before any of them is acknowledged. Acknowledged records survive a crash of
    /// the process or the machine.
    #[default]
    Sync,
    /// Acknowledge after the write reaches the page cache, and `fdatasync` when the last one is
    /// at least this old by the log's clock (checked on each append and by
    /// [`crate::ShardLog::maintain`]). A
    /// machine crash can lose up to this much acknowledged data; a process crash loses none.
    Interval(Duration),
    /// Never `fdatasync` on append, only when a segment is sealed or the log is closed. A
    /// machine crash can lose any acknowledged data that the kernel had not written back.
    None,
}

/// How one shard log behaves. [`LogConfig::default`] gives production values.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// When an append is acknowledged. Default: [`Durability::Sync`].
    pub durability: Durability,
    /// The active segment is sealed and a new one started once it holds this many bytes.
    /// Default: 128 MiB.
    pub segment_max_bytes: u64,
    /// The active segment is also sealed once its first record is this old, so retention can
    /// reclaim disk at low write rates. Default: 1 hour.
    pub segment_max_age: Duration,
    /// Largest record accepted, partition key plus data. Default 1 MiB, at most
    /// [`MAX_RECORD_BYTES_CEILING`].
    pub max_record_bytes: usize,
    /// Records older than this are invisible to reads, and sealed segments whose newest record
    /// is older are deleted. Default: 24 hours.
    pub retention: Duration,
    /// A sparse index entry is written at least every this many bytes of log. Default: 8 KiB.
    pub index_interval_bytes: u64,
    /// One group commit writes at most about this many bytes; appends beyond it wait for the
    /// next group. Default: 8 MiB.
    pub max_group_bytes: usize,
    /// Encryption at rest: the keyring, this log's binding and the key new segments are
    /// encrypted under. `None` (the default): no keyring, plaintext segments only (an encrypted
    /// segment then reads as a key error).
    pub encryption: Option<crate::crypto::Encryption>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            durability: Durability::Sync,
            segment_max_bytes: 128 * 1024 * 1024,
            segment_max_age: Duration::from_secs(3600),
            max_record_bytes: 1024 * 1024,
            retention: Duration::from_secs(24 * 3600),
            index_interval_bytes: 8 * 1024,
            max_group_bytes: 8 * 1024 * 1024,
            encryption: None,
        }
    }
}

impl LogConfig {
    /// Checks the settings, naming the first that is out of range.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_max_bytes < 1024 {
            return Err(format!(
                "segment_max_bytes must be at least 1024, got {}",
                self.segment_max_bytes
            ));
        }
        if self.max_record_bytes == 0 || self.max_record_bytes > MAX_RECORD_BYTES_CEILING {
            return Err(format!(
                "max_record_bytes must be 1..={MAX_RECORD_BYTES_CEILING}, got {}",
                self.max_record_bytes
            ));
        }
        if self.segment_max_age.is_zero() {
            return Err("segment_max_age must be greater than zero".to_string());
        }
        if self.retention < MIN_RETENTION || self.retention > MAX_RETENTION {
            return Err(format!(
                "retention must be between 1 hour and 365 days, got {} s",
                self.retention.as_secs()
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index_interval_bytes must be greater than zero".to_string());
        }
        if let Durability::Interval(interval) = self.durability
            && interval.is_zero()
        {
            return Err("a durability interval must be greater than zero".to_string());
        }
        Ok(())
    }
}
