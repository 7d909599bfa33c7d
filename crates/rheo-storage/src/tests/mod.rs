//! Tests of the whole engine on real files and on the simulated file system.

mod crash;
mod encryption;
mod faults;
mod journal;
mod log_basics;
mod model;
mod recovery;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::io::{Fs, StdFs};
use crate::{Clock, Durability, LogConfig, ManualClock, RecordInput, ShardLog};

/// 2026-01-01T00:00:00Z, a start time for manual clocks.
pub(crate) const T0: i64 = 1_767_225_600_000;

/// Small segments so every test rolls.
pub(crate) fn small_config() -> LogConfig {
    LogConfig {
        durability: Durability::Sync,
        segment_max_bytes: 4096,
        segment_max_age: Duration::from_secs(3600),
        max_record_bytes: 64 * 1024,
        retention: Duration::from_secs(24 * 3600),
        index_interval_bytes: 256,
        max_group_bytes: 64 * 1024,
        encryption: None,
    }
}

pub(crate) fn open_std(dir: &Path, config: LogConfig, clock: &ManualClock) -> ShardLog {
    let fs: Arc<dyn Fs> = Arc::new(StdFs);
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    ShardLog::open(fs, dir, config, clock, 0).expect("open log")
}

use std::collections::HashMap;
use std::sync::Mutex;

use crate::{KeyFault, KeyMaterial, KeyProvider};

/// A keyring for tests: keys by id, versions from 1.
#[derive(Debug, Default)]
pub(crate) struct TestKeys {
    pub(crate) keys: Mutex<HashMap<String, Vec<KeyMaterial>>>,
    pub(crate) disabled: Mutex<Vec<String>>,
}

impl TestKeys {
    pub(crate) fn with(id: &str) -> Arc<TestKeys> {
        let keys = TestKeys::default();
        keys.add_version(id);
        Arc::new(keys)
    }

    pub(crate) fn add_version(&self, id: &str) {
        crate::log::lock(&self.keys)
            .entry(id.to_string())
            .or_default()
            .push(KeyMaterial(crate::crypto::random()));
    }
}

impl KeyProvider for TestKeys {
    fn current(&self, key_id: &str) -> Result<(u32, KeyMaterial), KeyFault> {
        if crate::log::lock(&self.disabled)
            .iter()
            .any(|id| id == key_id)
        {
            return Err(KeyFault::Disabled(key_id.into()));
        }
        let keys = crate::log::lock(&self.keys);
        let versions = keys
            .get(key_id)
            .ok_or_else(|| KeyFault::NotFound(key_id.into()))?;
        Ok((
            versions.len() as u32,
            versions.last().expect("a version").clone(),
        ))
    }

    fn version(&self, key_id: &str, version: u32) -> Result<KeyMaterial, KeyFault> {
        let keys = crate::log::lock(&self.keys);
        let versions = keys
            .get(key_id)
            .ok_or_else(|| KeyFault::NotFound(key_id.into()))?;
        versions
            .get(version as usize - 1)
            .cloned()
            .ok_or_else(|| KeyFault::VersionMissing {
                key_id: key_id.into(),
                version,
            })
    }
}

thread_local! {
    /// Set while a test runs a workload encrypted ([`encrypted`]).
    static TEST_KEYS: std::cell::RefCell<Option<Arc<TestKeys>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `test` with every log opened through [`maybe_encrypted`] encrypting under key `k1`.
pub(crate) fn encrypted<R>(test: impl FnOnce() -> R) -> R {
    TEST_KEYS.with(|keys| *keys.borrow_mut() = Some(TestKeys::with("k1")));
    let result = test();
    TEST_KEYS.with(|keys| *keys.borrow_mut() = None);
    result
}

/// True inside [`encrypted`].
pub(crate) fn encryption_on() -> bool {
    TEST_KEYS.with(|keys| keys.borrow().is_some())
}

/// `config`, encrypting under `k1` with `context` when inside [`encrypted`].
pub(crate) fn maybe_encrypted(mut config: LogConfig, context: &str) -> LogConfig {
    TEST_KEYS.with(|keys| {
        if let Some(keys) = &*keys.borrow() {
            config.encryption = Some(crate::Encryption {
                keys: keys.clone(),
                context: context.to_string(),
                key_id: Some("k1".into()),
            });
        }
    });
    config
}

/// The payload the tests write for a record: derived from its key so a reader can check it.
pub(crate) fn payload(key: &str, len: usize) -> Vec<u8> {
    key.bytes().cycle().take(len).collect()
}

pub(crate) fn append_one(log: &ShardLog, key: &str, data: &[u8]) -> u64 {
    log.append(&[RecordInput {
        partition_key: key.as_bytes(),
        explicit_hash_key: None,
        data,
    }])
    .expect("append")
    .first_sequence
}

/// Reads everything from the trim horizon to the tip.
pub(crate) fn read_all(log: &ShardLog) -> Vec<crate::Record> {
    let mut from = log.seek(crate::Position::TrimHorizon).expect("seek");
    let mut records = Vec::new();
    loop {
        let outcome = log.read(from, 1000, 1 << 20).expect("read");
        if outcome.records.is_empty() {
            return records;
        }
        from = outcome.next_sequence;
        records.extend(outcome.records);
    }
}

/// The three ways a crash image is taken from the same run: everything unsynced dropped, all of
/// it kept, and a random part of it torn sector by sector (from `seed`).
pub(crate) fn every_crash_mode(seed: u64) -> [crate::io::sim::CrashMode; 3] {
    use crate::io::sim::CrashMode;
    [
        CrashMode::DropUnsynced,
        CrashMode::KeepAll,
        CrashMode::Torn(seed),
    ]
}
