//! Durable stream metadata: one `stream.json` per stream directory, written atomically (temporary
//! file, fsync, rename, directory fsync) and checksummed (its first line is the CRC-32 of the
//! JSON that follows), so a torn or damaged file is detected, never half-read.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rheo_storage::io::{Fs, StdFs};
use serde::{Deserialize, Serialize};

use crate::error::{Result, StreamsError};

/// File name of a stream's metadata.
pub(crate) const META_FILE: &str = "stream.json";

/// Capacity mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    /// A fixed number of shards.
    Provisioned,
    /// Starts with 4 shards.
    OnDemand,
}

/// One shard as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardMeta {
    pub(crate) index: u32,
    /// Hash-key range, as decimal strings (JSON has no 128-bit integers).
    pub(crate) starting_hash_key: String,
    pub(crate) ending_hash_key: String,
    pub(crate) created_ms: i64,
    /// For a child of a split or merge: the parent's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent: Option<u32>,
    /// For a child of a merge: the other parent's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) adjacent_parent: Option<u32>,
    /// Set when a reshard closed the shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) closed: Option<ShardClosed>,
    /// Set once a closed shard's data is all past retention: it is no longer listed and its
    /// log is deleted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) expired: bool,
}

/// How a shard was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ShardClosed {
    /// The engine sequence number after its last record (no record has it).
    pub(crate) end: u64,
    /// When, ms since the epoch.
    pub(crate) closed_ms: i64,
}

/// A stream as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StreamMeta {
    pub(crate) name: String,
    /// Distinguishes a re-created stream from an earlier one of the same name.
    pub(crate) incarnation: u64,
    pub(crate) created_ms: i64,
    pub(crate) mode: StreamMode,
    pub(crate) retention_hours: u32,
    pub(crate) max_record_kib: u32,
    pub(crate) tags: BTreeMap<String, String>,
    pub(crate) shards: Vec<ShardMeta>,
    /// The stream's own throughput limits, if it has any.
    #[serde(default)]
    pub(crate) limits: crate::config::LimitsOverride,
    /// Registered enhanced fan-out consumers, in name order.
    #[serde(default)]
    pub(crate) consumers: Vec<ConsumerMeta>,
    /// The ARN seconds of consumers deregistered in the last second or so, by name: a name
    /// registered again gets a later one, so its new ARN never equals the old.
    #[serde(default)]
    pub(crate) retired_consumers: BTreeMap<String, i64>,
    /// When UpdateShardCount ran in the last 24 hours (at most 10 per 24 hours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) scalings_ms: Vec<i64>,
    /// When UpdateStreamMode ran in the last 24 hours (at most 2 per 24 hours).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) mode_changes_ms: Vec<i64>,
    /// Server-side encryption, while it is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) encryption: Option<EncryptionMeta>,
    /// When StartStreamEncryption succeeded in the last 24 hours (at most 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) encryption_starts_ms: Vec<i64>,
    /// When StopStreamEncryption succeeded in the last 24 hours (at most 25).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) encryption_stops_ms: Vec<i64>,
}

/// A stream's encryption setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EncryptionMeta {
    /// The KeyId as StartStreamEncryption was given it (DescribeStream reports it so).
    pub(crate) key_id: String,
    /// The keyring key it resolved to.
    pub(crate) key: String,
}

/// An enhanced fan-out consumer as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ConsumerMeta {
    pub(crate) name: String,
    /// Registration time, ms since the epoch.
    pub(crate) created_ms: i64,
    /// The seconds in its ARN (its registration second, or later if that was taken).
    pub(crate) arn_secs: i64,
}

fn io_error(action: &str, path: &Path, error: std::io::Error) -> StreamsError {
    StreamsError::Internal(format!("{action} {} failed: {error}", path.display()))
}

/// Writes `meta` into `dir` atomically.
pub(crate) fn write(dir: &Path, meta: &StreamMeta) -> Result<()> {
    let json = serde_json::to_vec_pretty(meta)
        .map_err(|error| StreamsError::Internal(format!("encoding stream metadata: {error}")))?;
    let mut bytes = format!("{:08x}\n", crc32fast::hash(&json)).into_bytes();
    bytes.extend_from_slice(&json);
    bytes.push(b'\n');
    write_atomically(dir, META_FILE, &bytes)
}

/// Writes `dir/name` atomically, through the storage engine's protocol.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    Ok(rheo_storage::io::write_atomically(
        &StdFs, dir, name, bytes,
    )?)
}

/// fsyncs a directory so entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    StdFs
        .sync_dir(dir)
        .map_err(|error| io_error("fsync directory", dir, error))
}

/// Reads and checks `dir/stream.json`. `Ok(None)` if it does not exist.
pub(crate) fn read(dir: &Path) -> Result<Option<StreamMeta>> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error("read", &path, error)),
    };
    let corrupt = |why: &str| {
        StreamsError::Internal(format!(
            "corrupt stream metadata in {}: {why}",
            path.display()
        ))
    };
    let newline = bytes
        .iter()
        .position(|&byte| byte == b'\n')
        .ok_or_else(|| corrupt("no checksum line"))?;
    let stored = std::str::from_utf8(&bytes[..newline])
        .ok()
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| corrupt("bad checksum line"))?;
    let json = bytes[newline + 1..]
        .strip_suffix(b"\n")
        .unwrap_or(&bytes[newline + 1..]);
    if crc32fast::hash(json) != stored {
        return Err(corrupt("checksum mismatch"));
    }
    serde_json::from_slice(json)
        .map(Some)
        .map_err(|error| corrupt(&error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StreamMeta {
        StreamMeta {
            name: "s".into(),
            incarnation: 7,
            created_ms: 1,
            mode: StreamMode::Provisioned,
            retention_hours: 24,
            max_record_kib: 1024,
            tags: BTreeMap::from([("team".into(), "data".into())]),
            shards: vec![ShardMeta {
                index: 0,
                starting_hash_key: "0".into(),
                ending_hash_key: u128::MAX.to_string(),
                created_ms: 1,
                parent: None,
                adjacent_parent: None,
                closed: Some(ShardClosed {
                    end: 9,
                    closed_ms: 2,
                }),
                expired: false,
            }],
            limits: Default::default(),
            consumers: vec![ConsumerMeta {
                name: "reader".into(),
                created_ms: 1500,
                arn_secs: 1,
            }],
            retired_consumers: BTreeMap::from([("old".into(), 0)]),
            scalings_ms: vec![3],
            mode_changes_ms: Vec::new(),
            encryption: Some(EncryptionMeta {
                key_id: "alias/aws/kinesis".into(),
                key: "k".into(),
            }),
            encryption_starts_ms: vec![4],
            encryption_stops_ms: Vec::new(),
        }
    }

    #[test]
    fn metadata_round_trips_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), &sample()).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(sample()));
        let path = dir.path().join(META_FILE);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.len() - 5;
        bytes[at] ^= 1;
        fs::write(&path, bytes).unwrap();
        let error = read(dir.path()).unwrap_err().to_string();
        assert!(
            error.contains("checksum mismatch") && error.contains("stream.json"),
            "{error}"
        );
    }
}
