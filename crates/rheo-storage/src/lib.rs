//! Rheo's storage engine: one durable, append-only log per shard, and one journal per node.
//!
//! A [`ShardLog`] is a directory of segment files. Appends are group-committed (one write and
//! one fdatasync for every append waiting) and get strictly increasing sequence numbers and
//! non-decreasing arrival timestamps. Logs opened with [`ShardLog::open_journaled`] commit
//! through a node [`Journal`] instead: one commit thread writes every waiting log's group to
//! its segment and, together, as one journal record covered by one fdatasync; a checkpoint
//! thread syncs the segments later and recycles the journal. Reads start from a [`Position`] and are bounded by a
//! record count and a byte budget. Retention deletes whole sealed segments and hides older
//! records exactly. Recovery truncates a torn tail and reports corruption instead of skipping
//! it. A log opened with a keyring encrypts its segments (per-segment data keys wrapped by the
//! operator's key-encryption keys, AES-256-GCM; see [`Encryption`]). The byte layout and the
//! crash cases are in `FORMAT.md`.
//!
//! Layers, each knowing only those below it: `io` (the file-system trait) -> `format` (bytes)
//! -> `batch` (records) and `crypto` (data keys, key files, sealing) -> `segment` (files) -> `scan`/`recovery` -> `log` and `read` (the
//! public [`ShardLog`]) -> `journal` (the node's commit and checkpoint threads, which drive
//! journaled logs through `log`'s stage/publish steps; `recovery` replays its entries), `keys`
//! (a log's encryption target, rekeying, rewrap) -> `verify`.
//!
//! The crate is synchronous: no async runtime. `unsafe` lives only in the `mmap` module.

mod batch;
mod clock;
mod commit;
mod config;
mod crypto;
mod error;
mod format;
pub mod io;
mod journal;
mod keys;
mod log;
mod metrics;
mod mmap;
mod read;
mod recovery;
mod scan;
mod segment;
mod verify;

#[cfg(test)]
mod tests;

pub use batch::{Record, RecordInput};
/// The `bytes` crate, whose `Bytes` appears in this crate's API.
pub use bytes;
pub use clock::{Clock, ManualClock, OffsetClock, SystemClock};
pub use commit::{Appended, Callback, Completion, LeaderTurn};
pub use config::{
    Durability, LogConfig, MAX_BATCH_BYTES, MAX_PARTITION_KEY_BYTES, MAX_RECORD_BYTES_CEILING,
    MAX_RETENTION, MIN_RETENTION,
};
pub use crypto::{Encryption, KEY_LEN, KeyFault, KeyMaterial, KeyProvider};
pub use error::{Error, Result};
pub use journal::{Journal, JournalConfig, JournalStats, MAX_JOURNAL_KEY_BYTES};
pub use keys::{KeyFileRef, KeyUsage, key_files};
pub use log::{LogStats, Maintenance, ShardLog};
pub use metrics::{
    GROUP_APPENDS_BOUNDS, HistogramSnapshot, JOURNAL_COMMIT_LOGS_BOUNDS, LogMetrics,
    SYNC_SECONDS_BOUNDS,
};
pub use read::{Position, ReadOutcome, Tip};
pub use recovery::ASIDE_DIR;
pub use verify::{Finding, LogReport, Severity, VerifyReport, verify_tree, verify_tree_with_keys};
