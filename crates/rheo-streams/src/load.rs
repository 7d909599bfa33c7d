//! Opening a data directory: the token key, every stream, and the clean-up of what an
//! interrupted creation, reshard or expiry left behind.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use rheo_storage::io::StdFs;
use rheo_storage::{Clock, Journal};

use crate::config::StoreConfig;
use crate::error::{Result, StreamsError};
use crate::meta::{self, StreamMeta};
use crate::model::StreamStatus;
use crate::store::{
    Inner, JOURNAL_DIR, KEY_FILE, STREAMS_DIR, Store, Stream, TRASH_DIR, internal, lock,
};
use crate::token::TokenKey;

/// What a data directory holds once opened.
pub(crate) struct Loaded {
    pub(crate) key: TokenKey,
    pub(crate) streams: BTreeMap<String, Arc<Stream>>,
    /// Streams whose files failed to open, by name, with the reason.
    pub(crate) damaged: BTreeMap<String, String>,
    pub(crate) journal: Arc<Journal>,
    pub(crate) keyring: Arc<crate::keyring::Keyring>,
}

/// Loads the token key and every stream; removes interrupted creations and the trash.
pub(crate) fn load(
    config: &StoreConfig,
    clock: Arc<dyn Clock>,
    progress: &crate::metrics::OpenProgress,
) -> Result<Loaded> {
    let data_dir = &config.data_dir;
    let streams_dir = data_dir.join(STREAMS_DIR);
    std::fs::create_dir_all(&streams_dir)
        .map_err(|error| internal("create", &streams_dir, error))?;
    let trash = data_dir.join(TRASH_DIR);
    if trash.exists() {
        std::fs::remove_dir_all(&trash).map_err(|error| internal("empty", &trash, error))?;
    }
    let key = load_key(data_dir)?;
    let keyring = Arc::new(crate::keyring::Keyring::open(
        config.keyring.clone(),
        data_dir,
    )?);
    let journal = Arc::new(Journal::open(
        Arc::new(StdFs),
        data_dir.join(JOURNAL_DIR),
        config.journal.clone(),
    )?);
    // A store without its Arc yet: open_stream needs only the config and clock.
    let opener = Store {
        inner: Arc::new(Inner {
            config: config.clone(),
            clock,
            key: key.clone(),
            streams: RwLock::new(BTreeMap::new()),
            damaged: RwLock::new(BTreeMap::new()),
            control: tokio::sync::Mutex::new(()),
            clock_moved: tokio::sync::watch::Sender::new(0),
            #[cfg(test)]
            crash_at: std::sync::Mutex::new(Vec::new()),
            keyring: keyring.clone(),
            rewrap_due: std::sync::atomic::AtomicBool::new(false),
            journal: journal.clone(),
        }),
    };
    let mut streams = BTreeMap::new();
    let entries =
        std::fs::read_dir(&streams_dir).map_err(|error| internal("list", &streams_dir, error))?;
    let mut found = Vec::new();
    let mut damaged = BTreeMap::new();
    for entry in entries {
        let dir = entry
            .map_err(|error| internal("list", &streams_dir, error))?
            .path();
        if !dir.is_dir() {
            continue;
        }
        let read = meta::read(&dir).and_then(|meta| {
            if let Some(meta) = &meta {
                remove_stray_shards(&dir, meta)?;
            }
            Ok(meta)
        });
        let meta = match read {
            Ok(Some(meta)) => meta,
            Ok(None) => {
                tracing::warn!(dir = %dir.display(), "removing a stream whose creation was interrupted");
                std::fs::remove_dir_all(&dir).map_err(|error| internal("remove", &dir, error))?;
                continue;
            }
            Err(error) => {
                // The directory is named for the stream; its shards' journal keys start with
                // that name and a dot, so whatever the journal holds for them is kept.
                let name = dir
                    .file_name()
                    .map(|name| name.to_string_lossy().into_owned())
                    .unwrap_or_default();
                tracing::error!(stream = %name, %error, "stream is out of service: its metadata failed to load; every other stream serves");
                journal.hold_prefix(&format!("{name}."));
                damaged.insert(name, error.to_string());
                continue;
            }
        };
        let shards = meta.shards.iter().filter(|shard| !shard.expired).count();
        progress
            .total
            .fetch_add(shards as u64, std::sync::atomic::Ordering::Relaxed);
        found.push((dir, meta));
    }
    let names: Vec<String> = found.iter().map(|(_, meta)| meta.name.clone()).collect();
    for (name, opened) in names
        .into_iter()
        .zip(opener.open_streams(found, Some(&progress.opened)))
    {
        match opened {
            Ok(stream) => {
                *lock(&stream.status) = StreamStatus::Active;
                streams.insert(stream.name.clone(), Arc::new(stream));
            }
            // One stream's damaged files keep that stream out of service, not the server.
            Err(error) => {
                tracing::error!(stream = %name, %error, "stream is out of service: its files failed to open; every other stream serves");
                damaged.insert(name, error.to_string());
            }
        }
    }
    // Every log the journal may hold entries for is open (and replayed), or failed to open
    // and keeps its entries: the journal can start its threads with a fresh file.
    journal.finish_recovery()?;
    tracing::info!(data_dir = %data_dir.display(), streams = streams.len(), out_of_service = damaged.len(), "loaded streams");
    Ok(Loaded {
        key,
        streams,
        damaged,
        journal,
        keyring,
    })
}

/// Removes shard directories the metadata does not list as kept: children of a reshard that a
/// crash interrupted before its commit point, and expired shards whose removal was cut short.
fn remove_stray_shards(dir: &Path, meta: &StreamMeta) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|error| internal("list", dir, error))?;
    let mut removed = false;
    for entry in entries {
        let path = entry.map_err(|error| internal("list", dir, error))?.path();
        let Some(index) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("shardId-"))
            .and_then(|index| index.parse::<u32>().ok())
        else {
            continue;
        };
        let kept = meta
            .shards
            .iter()
            .any(|shard| shard.index == index && !shard.expired);
        if !kept {
            tracing::warn!(path = %path.display(), "removing a shard the stream does not keep (an interrupted reshard or expiry)");
            std::fs::remove_dir_all(&path).map_err(|error| internal("remove", &path, error))?;
            removed = true;
        }
    }
    if removed {
        meta::sync_dir(dir)?;
    }
    Ok(())
}

/// `verify` of the stream metadata under `data_dir` (read-only): every `stream.json` that fails
/// to load, with the reason. These are the streams a start keeps out of service.
pub fn check_stream_metadata(data_dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let Ok(entries) = std::fs::read_dir(data_dir.join(STREAMS_DIR)) else {
        return Vec::new();
    };
    let mut damaged: Vec<(std::path::PathBuf, String)> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|dir| dir.is_dir())
        .filter_map(|dir| match meta::read(&dir) {
            Err(error) => Some((dir.join(meta::META_FILE), error.to_string())),
            Ok(_) => None,
        })
        .collect();
    damaged.sort();
    damaged
}

fn load_key(data_dir: &Path) -> Result<TokenKey> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
                StreamsError::Internal(format!("{} must hold 32 bytes", path.display()))
            })?;
            Ok(TokenKey::from_bytes(bytes))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|error| StreamsError::Internal(format!("no randomness: {error}")))?;
            meta::write_atomically(data_dir, KEY_FILE, &bytes)?;
            Ok(TokenKey::from_bytes(bytes))
        }
        Err(error) => Err(internal("read", &path, error)),
    }
}
