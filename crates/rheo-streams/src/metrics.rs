//! What the store counts about its streams, for the server to export: per shard records and
//! bytes in and out, throttling, lag and the log's own measurements; per push session its lag;
//! and start-up progress. Label cardinality is bounded by shards and sessions, never by keys or
//! records.

use std::sync::atomic::{AtomicU64, Ordering};

use rheo_storage::LogMetrics;

use crate::store::{Store, lock};

/// Live counters of one shard.
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub(crate) records_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) records_polled: AtomicU64,
    pub(crate) bytes_polled: AtomicU64,
    pub(crate) records_pushed: AtomicU64,
    pub(crate) bytes_pushed: AtomicU64,
    pub(crate) throttled_writes: AtomicU64,
    pub(crate) throttled_reads: AtomicU64,
    /// MillisBehindLatest of the last GetRecords.
    pub(crate) polled_millis_behind: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, amount: u64) {
    counter.fetch_add(amount, Ordering::Relaxed);
}

/// Start-up progress: shard logs to open and opened so far (recovery reads each log's tail).
#[derive(Debug, Default)]
pub struct OpenProgress {
    /// Shard logs the data directory holds.
    pub total: AtomicU64,
    /// Shard logs opened.
    pub opened: AtomicU64,
}

/// One shard's figures.
#[derive(Debug, Clone)]
pub struct ShardMetrics {
    /// Its stream.
    pub stream: String,
    /// Its id.
    pub shard_id: String,
    /// False once a reshard closed it.
    pub open: bool,
    /// Records and bytes (partition keys included) written.
    pub records_in: u64,
    /// See `records_in`.
    pub bytes_in: u64,
    /// Records and bytes returned by GetRecords.
    pub records_polled: u64,
    /// See `records_polled`.
    pub bytes_polled: u64,
    /// Records and bytes pushed to SubscribeToShard sessions.
    pub records_pushed: u64,
    /// See `records_pushed`.
    pub bytes_pushed: u64,
    /// Records refused by the write limits.
    pub throttled_writes: u64,
    /// GetRecords calls refused by the read limits.
    pub throttled_reads: u64,
    /// MillisBehindLatest of the last GetRecords.
    pub polled_millis_behind: u64,
    /// Bytes in segment files.
    pub disk_bytes: u64,
    /// Segment files.
    pub segments: u64,
    /// The log's own measurements.
    pub log: LogMetrics,
}

/// One push session's lag.
#[derive(Debug, Clone)]
pub struct SessionMetrics {
    /// Its stream.
    pub stream: String,
    /// Its shard.
    pub shard_id: String,
    /// Its consumer's name.
    pub consumer: String,
    /// MillisBehindLatest of its last event.
    pub millis_behind: u64,
}

/// Everything [`Store::metrics`] reports.
#[derive(Debug, Clone, Default)]
pub struct StoreMetrics {
    /// Every shard kept, by stream and index.
    pub shards: Vec<ShardMetrics>,
    /// Every open push session.
    pub sessions: Vec<SessionMetrics>,
    /// The node journal every shard commits through.
    pub journal: rheo_storage::JournalStats,
}

impl Store {
    /// A snapshot of every stream's figures (cheap: atomics and in-memory stats).
    pub fn metrics(&self) -> StoreMetrics {
        let streams: Vec<_> = self.registry().values().cloned().collect();
        let mut metrics = StoreMetrics {
            journal: self.inner.journal.stats(),
            ..StoreMetrics::default()
        };
        for stream in streams {
            for shard in &stream.topology().shards {
                let counters = &shard.counters;
                let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
                let stats = shard.log.stats();
                metrics.shards.push(ShardMetrics {
                    stream: stream.name.clone(),
                    shard_id: shard.id.clone(),
                    open: shard.closed().is_none(),
                    records_in: load(&counters.records_in),
                    bytes_in: load(&counters.bytes_in),
                    records_polled: load(&counters.records_polled),
                    bytes_polled: load(&counters.bytes_polled),
                    records_pushed: load(&counters.records_pushed),
                    bytes_pushed: load(&counters.bytes_pushed),
                    throttled_writes: load(&counters.throttled_writes),
                    throttled_reads: load(&counters.throttled_reads),
                    polled_millis_behind: load(&counters.polled_millis_behind),
                    disk_bytes: stats.bytes,
                    segments: stats.segments as u64,
                    log: shard.log.metrics(),
                });
            }
            for (consumer, shard_index, millis_behind) in lock(&stream.sessions).live() {
                metrics.sessions.push(SessionMetrics {
                    stream: stream.name.clone(),
                    shard_id: crate::store::shard_id(shard_index),
                    consumer,
                    millis_behind,
                });
            }
        }
        metrics
    }
}
