//! The stream registry and the control plane: create, delete, list, describe, retention, tags,
//! limits. Streams live under `<data_dir>/streams/<name>/`, one storage log per shard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rheo_storage::io::StdFs;
use rheo_storage::{Clock, Journal, LogConfig, ShardLog};

use crate::config::ShardLimits;
use crate::config::StoreConfig;
use crate::error::{Result, StreamsError};
use crate::hashing::initial_ranges;
use crate::limits::ShardLimiter;
use crate::meta::{self, ShardMeta, StreamMeta, StreamMode};
use crate::model::{CreateStream, StreamInfo, StreamStatus};
use crate::token::TokenKey;
pub(crate) use crate::topology::{Shard, Topology};

pub(crate) const STREAMS_DIR: &str = "streams";
pub(crate) const TRASH_DIR: &str = "trash";
pub(crate) const KEY_FILE: &str = "token.key";
pub(crate) const JOURNAL_DIR: &str = "journal";
/// Most shard logs opened at once (at start-up, and by a CreateStream of many shards).
pub(crate) const OPEN_THREADS: usize = 16;
pub(crate) const MAX_TAGS: usize = 50;
const MAX_RETENTION_HOURS: i64 = 8760;
/// An on-demand stream's limits, in provisioned shards' worth (Kinesis starts one at 4 MB/s in
/// and 8 MB/s out).
const ON_DEMAND_SHARD_UNITS: u64 = 4;

/// One stream.
#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) name: String,
    pub(crate) incarnation: u64,
    pub(crate) dir: PathBuf,
    pub(crate) meta: Mutex<StreamMeta>,
    pub(crate) status: Mutex<StreamStatus>,
    topology: RwLock<Arc<Topology>>,
    /// Puts hold it shared while they route and queue records; a reshard holds it exclusively
    /// while it closes parents and switches the topology, so a record goes either to a parent
    /// before its end or to a child.
    pub(crate) gate: tokio::sync::RwLock<()>,
    /// Live SubscribeToShard sessions, for the 5-second rule and to end them.
    pub(crate) sessions: Mutex<crate::subscribe::Sessions>,
}

impl Stream {
    pub(crate) fn max_record_bytes(&self) -> usize {
        lock(&self.meta).max_record_kib as usize * 1024
    }

    pub(crate) fn topology(&self) -> Arc<Topology> {
        self.topology
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    pub(crate) fn set_topology(&self, topology: Topology) {
        *self
            .topology
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(topology);
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

pub(crate) struct Inner {
    pub(crate) config: StoreConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) key: TokenKey,
    pub(crate) streams: RwLock<BTreeMap<String, Arc<Stream>>>,
    /// Streams whose files failed to open at start-up, with the reason: out of service, their
    /// names taken, their files and journal entries left as they were.
    pub(crate) damaged: RwLock<BTreeMap<String, String>>,
    /// Serialises control-plane changes (create, delete) so quota checks hold.
    pub(crate) control: tokio::sync::Mutex<()>,
    /// Bumped when the testbed clock jumps, so waiting subscriptions re-check their timers.
    pub(crate) clock_moved: tokio::sync::watch::Sender<u64>,
    /// The reshard steps at which tests make a reshard fail (and, by reopening the store
    /// afterwards, stop as if the process died).
    #[cfg(test)]
    pub(crate) crash_at: Mutex<Vec<&'static str>>,
    /// The key-encryption keys of encrypted streams.
    pub(crate) keyring: Arc<crate::keyring::Keyring>,
    /// Set at open and when the keyring changes: the next maintenance pass rewraps stored data
    /// keys under the newest key versions.
    pub(crate) rewrap_due: std::sync::atomic::AtomicBool,
    /// The node journal every shard log commits through. Last, so it is dropped after the
    /// streams: dropping it drains and checkpoints their appends.
    pub(crate) journal: Arc<Journal>,
}

/// The Kinesis model over a data directory. Cheap to clone; every front end shares one.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("data_dir", &self.inner.config.data_dir)
            .finish()
    }
}

/// Removes the directories of shards `indexes` of the stream in `dir`, then makes their
/// removal durable. Blocks on I/O.
pub(crate) fn remove_shard_dirs(dir: &Path, indexes: &[u32]) -> Result<()> {
    for &index in indexes {
        let path = dir.join(shard_id(index));
        std::fs::remove_dir_all(&path).map_err(|error| internal("remove", &path, error))?;
    }
    crate::meta::sync_dir(dir)
}

pub(crate) fn internal(action: &str, path: &Path, error: std::io::Error) -> StreamsError {
    StreamsError::Internal(format!("{action} {} failed: {error}", path.display()))
}

/// How the journal names a shard's log: stream name, incarnation and shard, so a stream
/// deleted and created again under the same name never receives the old one's entries.
pub(crate) fn journal_key(meta: &StreamMeta, shard_id: &str) -> String {
    format!("{}.{}/{shard_id}", meta.name, meta.incarnation)
}

pub(crate) fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// Checks a stream name: 1 to 128 characters of `[a-zA-Z0-9_.-]`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    validate_identifier(name, "streamName")
}

/// Checks a stream name, consumer name or shard id (`field` names it in the error): 1 to 128
/// characters of `[a-zA-Z0-9_.-]`, Kinesis's shape for all three.
pub(crate) fn validate_identifier(value: &str, field: &str) -> Result<()> {
    if is_identifier(value) {
        return Ok(());
    }
    Err(StreamsError::Validation(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 128"
    )))
}

pub(crate) fn is_identifier(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
}

pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| StreamsError::Internal(format!("worker failed: {error}")))?
}

impl Store {
    /// Opens (or creates) the data directory and every stream in it.
    pub async fn open(config: StoreConfig, clock: Arc<dyn Clock>) -> Result<Store> {
        Self::open_with_progress(config, clock, Arc::default()).await
    }

    /// As [`Store::open`], counting the shard logs to open and opened in `progress` (recovery
    /// after an unclean stop reads each log's tail, which a large data directory makes long).
    pub async fn open_with_progress(
        config: StoreConfig,
        clock: Arc<dyn Clock>,
        progress: Arc<crate::metrics::OpenProgress>,
    ) -> Result<Store> {
        let loaded = {
            let config = config.clone();
            let clock = clock.clone();
            blocking(move || crate::load::load(&config, clock, &progress)).await?
        };
        let crate::load::Loaded {
            key,
            streams,
            damaged,
            journal,
            keyring,
        } = loaded;
        Ok(Store {
            inner: Arc::new(Inner {
                config,
                clock,
                key,
                streams: RwLock::new(streams),
                damaged: RwLock::new(damaged),
                control: tokio::sync::Mutex::new(()),
                clock_moved: tokio::sync::watch::Sender::new(0),
                #[cfg(test)]
                crash_at: Mutex::new(Vec::new()),
                keyring,
                rewrap_due: std::sync::atomic::AtomicBool::new(true),
                journal,
            }),
        })
    }

    /// The clock the store stamps records and expires iterators with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// `arn:aws:kinesis:<region>:<account>:stream/<name>`.
    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.inner.config.region, self.inner.config.account_id
        )
    }

    /// Resolves a stream named by name, ARN or both (which must agree).
    pub fn resolve_name(&self, name: &str, arn: &str) -> Result<String> {
        let from_arn = if arn.is_empty() {
            None
        } else {
            let parsed = arn
                .strip_prefix("arn:aws")
                .and_then(|rest| rest.split_once(":kinesis:"))
                .and_then(|(_, rest)| rest.split_once(":stream/"))
                .map(|(_, name)| name.to_string())
                .filter(|name| !name.contains('/'));
            Some(parsed.ok_or_else(|| {
                StreamsError::Validation(format!(
                    "1 validation error detected: Value '{arn}' at 'streamARN' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{{12}}:stream/\\S+"
                ))
            })?)
        };
        match (name.is_empty(), from_arn) {
            (true, None) => Err(StreamsError::InvalidArgument(
                "Either StreamName or StreamARN must be provided".into(),
            )),
            (false, Some(arn_name)) if arn_name != name => Err(StreamsError::InvalidArgument(
                format!("StreamName {name} and StreamARN {arn} name different streams"),
            )),
            (_, Some(arn_name)) => {
                validate_stream_name(&arn_name)?;
                Ok(arn_name)
            }
            (false, None) => {
                validate_stream_name(name)?;
                Ok(name.to_string())
            }
        }
    }

    pub(crate) fn not_found(&self, name: &str) -> StreamsError {
        StreamsError::ResourceNotFound(format!(
            "Stream {name} under account {} not found.",
            self.inner.config.account_id
        ))
    }

    pub(crate) fn find_shard(&self, stream: &Stream, shard_id: &str) -> Result<Arc<Shard>> {
        stream.topology().shard(shard_id).cloned().ok_or_else(|| {
            StreamsError::ResourceNotFound(format!(
                "Shard {shard_id} in stream {} under account {} does not exist",
                stream.name, self.inner.config.account_id
            ))
        })
    }

    /// Checks a request's StreamCreationTimestamp, which tells a re-created stream from an
    /// earlier one of the same name.
    pub(crate) fn check_created(&self, stream: &Stream, created_ms: Option<i64>) -> Result<()> {
        let actual = lock(&stream.meta).created_ms;
        match created_ms {
            Some(created) if created != actual => Err(StreamsError::ResourceNotFound(format!(
                "Stream {} under account {} created at {created} not found: the stream of that name was created at {actual}",
                stream.name, self.inner.config.account_id
            ))),
            _ => Ok(()),
        }
    }

    pub(crate) fn stream(&self, name: &str) -> Result<Arc<Stream>> {
        if let Some(stream) = self.registry().get(name) {
            return Ok(stream.clone());
        }
        let damaged = self
            .inner
            .damaged
            .read()
            .unwrap_or_else(|poison| poison.into_inner());
        Err(match damaged.get(name) {
            Some(reason) => StreamsError::ResourceInUse(format!(
                "Stream {name} under account {} is out of service: its data failed to open at start-up ({reason}). Other streams are not affected; `rheo verify` on the data directory reports the damage.",
                self.inner.config.account_id
            )),
            None => self.not_found(name),
        })
    }

    /// Streams kept out of service because their files failed to open, with the reason.
    pub fn damaged_streams(&self) -> Vec<(String, String)> {
        self.inner
            .damaged
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .iter()
            .map(|(name, reason)| (name.clone(), reason.clone()))
            .collect()
    }

    fn log_config(&self, meta: &StreamMeta, journal_key: &str) -> LogConfig {
        LogConfig {
            durability: self.inner.config.durability,
            segment_max_bytes: self.inner.config.segment_max_bytes,
            retention: std::time::Duration::from_secs(u64::from(meta.retention_hours) * 3600),
            max_record_bytes: meta.max_record_kib as usize * 1024,
            encryption: Some(rheo_storage::Encryption {
                keys: self.inner.keyring.clone(),
                context: journal_key.to_string(),
                key_id: meta.encryption.as_ref().map(|on| on.key.clone()),
            }),
            ..LogConfig::default()
        }
    }

    pub(crate) fn check_retention_hours(&self, hours: i64) -> Result<u32> {
        let min = i64::from(self.inner.config.min_retention_hours);
        if hours < min || hours > MAX_RETENTION_HOURS {
            return Err(StreamsError::InvalidArgument(format!(
                "Minimum allowed retention period is {min} hours and maximum is {MAX_RETENTION_HOURS} hours. Requested retention period ({hours} hours) is out of range."
            )));
        }
        Ok(hours as u32)
    }

    /// CreateStream. The stream is ACTIVE when this returns.
    pub async fn create_stream(&self, request: CreateStream) -> Result<()> {
        validate_stream_name(&request.name)?;
        let mode = request.mode.unwrap_or(StreamMode::Provisioned);
        let shard_count = match (mode, request.shard_count) {
            (StreamMode::OnDemand, None) => 4,
            (StreamMode::OnDemand, Some(_)) => {
                return Err(StreamsError::InvalidArgument(
                    "ShardCount must not be given for an ON_DEMAND stream".into(),
                ));
            }
            (StreamMode::Provisioned, None) => {
                return Err(StreamsError::InvalidArgument(
                    "ShardCount is required for a PROVISIONED stream".into(),
                ));
            }
            (StreamMode::Provisioned, Some(count)) if !(1..=10_000).contains(&count) => {
                return Err(StreamsError::Validation(format!(
                    "1 validation error detected: Value '{count}' at 'shardCount' failed to satisfy constraint: Member must have value between 1 and 10000"
                )));
            }
            (StreamMode::Provisioned, Some(count)) => count as u32,
        };
        let max_record_kib = match request.max_record_size_kib {
            None => 1024,
            Some(kib) if (1024..=10240).contains(&kib) => kib as u32,
            Some(kib) => {
                return Err(StreamsError::Validation(format!(
                    "1 validation error detected: Value '{kib}' at 'maxRecordSizeInKiB' failed to satisfy constraint: Member must have value between 1024 and 10240"
                )));
            }
        };
        let retention_hours = self.check_retention_hours(request.retention_hours.unwrap_or(24))?;
        crate::control::validate_tags(&request.tags)?;
        request
            .limits
            .validate()
            .map_err(StreamsError::InvalidArgument)?;
        if request.tags.len() > MAX_TAGS {
            return Err(StreamsError::InvalidArgument(format!(
                "A stream can have at most {MAX_TAGS} tags, got {}",
                request.tags.len()
            )));
        }

        let _control = self.inner.control.lock().await;
        match self.stream(&request.name) {
            Ok(_) => {
                return Err(StreamsError::ResourceInUse(format!(
                    "Stream {} under account {} already exists.",
                    request.name, self.inner.config.account_id
                )));
            }
            Err(StreamsError::ResourceNotFound(_)) => {}
            Err(out_of_service) => return Err(out_of_service),
        }
        let limits = self.describe_limits();
        if limits.open_shard_count + shard_count > limits.shard_limit {
            return Err(StreamsError::LimitExceeded(format!(
                "This request would exceed the shard limit for the account: {} shards open, {shard_count} requested, limit {}",
                limits.open_shard_count, limits.shard_limit
            )));
        }
        if mode == StreamMode::OnDemand
            && limits.on_demand_stream_count >= limits.on_demand_stream_count_limit
        {
            return Err(StreamsError::LimitExceeded(format!(
                "The account already has {} on-demand streams, the limit",
                limits.on_demand_stream_count
            )));
        }

        let now = self.now_ms();
        let incarnation = (now as u64) << 16 | u64::from(random_u16()?);
        let meta = StreamMeta {
            name: request.name.clone(),
            incarnation,
            created_ms: now,
            mode,
            retention_hours,
            max_record_kib,
            tags: request.tags,
            limits: request.limits,
            consumers: Vec::new(),
            retired_consumers: BTreeMap::new(),
            scalings_ms: Vec::new(),
            mode_changes_ms: Vec::new(),
            encryption: None,
            encryption_starts_ms: Vec::new(),
            encryption_stops_ms: Vec::new(),
            shards: initial_ranges(shard_count)
                .into_iter()
                .enumerate()
                .map(|(index, (start, end))| ShardMeta {
                    index: index as u32,
                    starting_hash_key: start.to_string(),
                    ending_hash_key: end.to_string(),
                    created_ms: now,
                    parent: None,
                    adjacent_parent: None,
                    closed: None,
                    expired: false,
                })
                .collect(),
        };
        let dir = self
            .inner
            .config
            .data_dir
            .join(STREAMS_DIR)
            .join(&request.name);
        let store = self.clone();
        let stream = blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|error| internal("create", &dir, error))?;
            let created = store.open_stream(dir.clone(), meta.clone()).and_then(|stream| {
                // The metadata is written last: a stream directory without it is an
                // interrupted creation and is removed at the next start.
                meta::write(&dir, &meta)?;
                meta::sync_dir(dir.parent().expect("streams dir"))?;
                Ok(stream)
            });
            if created.is_err() {
                // A creation that failed half-way (say, out of file descriptors after some of
                // its shards were made) leaves nothing behind; its logs are closed by now.
                if let Err(error) = std::fs::remove_dir_all(&dir) {
                    tracing::warn!(dir = %dir.display(), %error, "could not remove a failed stream creation; removed at next start");
                }
            }
            created
        })
        .await?;
        *lock(&stream.status) = StreamStatus::Active;
        self.inner
            .streams
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(request.name.clone(), Arc::new(stream));
        tracing::info!(stream = %request.name, shards = shard_count, "created stream");
        Ok(())
    }

    pub(crate) fn open_stream(&self, dir: PathBuf, meta: StreamMeta) -> Result<Stream> {
        let mut opened = self.open_streams(vec![(dir, meta)], None);
        opened.remove(0)
    }

    /// Opens (creating if needed) every kept shard log of `streams`, on up to
    /// [`OPEN_THREADS`] threads at once (recovering a log waits on fdatasyncs, so a data
    /// directory of thousands of shards opens in about the time of its slowest logs, not their
    /// sum), counting each opened log in `opened`. Blocks on I/O. One result per stream: a
    /// stream whose shard fails to open is its own failure, not the others'.
    pub(crate) fn open_streams(
        &self,
        streams: Vec<(PathBuf, StreamMeta)>,
        opened: Option<&std::sync::atomic::AtomicU64>,
    ) -> Vec<Result<Stream>> {
        // Limiters first: an on-demand stream's shards share one.
        let mut jobs = Vec::new();
        for (at, (_, meta)) in streams.iter().enumerate() {
            let limiters = self.limiters(meta);
            for shard in meta.shards.iter().filter(|shard| !shard.expired) {
                jobs.push((at, shard, limiters(shard.index)));
            }
        }
        let next = std::sync::atomic::AtomicUsize::new(0);
        let results: Vec<Mutex<Option<Result<Arc<Shard>>>>> =
            jobs.iter().map(|_| Mutex::new(None)).collect();
        let work = || {
            loop {
                let job = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((at, shard, limiter)) = jobs.get(job) else {
                    return;
                };
                let (dir, meta) = &streams[*at];
                let result = self.open_shard(dir, meta, shard, limiter.clone());
                if let Some(opened) = opened {
                    opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                *lock(&results[job]) = Some(result);
            }
        };
        match OPEN_THREADS.min(jobs.len()) {
            // A stream of one shard (or none) opens on the calling thread.
            0 | 1 => work(),
            threads => std::thread::scope(|scope| {
                for _ in 0..threads {
                    scope.spawn(work);
                }
            }),
        }
        let mut by_stream: Vec<Result<Vec<Arc<Shard>>>> =
            streams.iter().map(|_| Ok(Vec::new())).collect();
        for ((at, _, _), result) in jobs.iter().zip(results) {
            let result = result
                .into_inner()
                .unwrap_or_else(|poison| poison.into_inner())
                .expect("every job ran");
            match (&mut by_stream[*at], result) {
                (Ok(shards), Ok(shard)) => shards.push(shard),
                (slot @ Ok(_), Err(error)) => *slot = Err(error),
                (Err(_), _) => {}
            }
        }
        streams
            .into_iter()
            .zip(by_stream)
            .map(|((dir, meta), shards)| {
                Ok(Stream {
                    name: meta.name.clone(),
                    incarnation: meta.incarnation,
                    dir,
                    meta: Mutex::new(meta),
                    status: Mutex::new(StreamStatus::Creating),
                    topology: RwLock::new(Arc::new(Topology::new(shards?))),
                    gate: tokio::sync::RwLock::new(()),
                    sessions: Mutex::new(crate::subscribe::Sessions::default()),
                })
            })
            .collect()
    }

    /// The limiter of each shard of a stream: its own for a provisioned stream, one shared by
    /// all shards of an on-demand stream (stream-level limits: four shards' worth).
    pub(crate) fn limiters(&self, meta: &StreamMeta) -> impl Fn(u32) -> Arc<ShardLimiter> + use<> {
        let limits = meta.limits.apply(&self.inner.config.limits);
        let shared = (meta.mode == StreamMode::OnDemand).then(|| {
            Arc::new(ShardLimiter::new(&ShardLimits {
                write_bytes_per_sec: limits.write_bytes_per_sec * ON_DEMAND_SHARD_UNITS,
                write_records_per_sec: limits.write_records_per_sec * ON_DEMAND_SHARD_UNITS,
                read_bytes_per_sec: limits.read_bytes_per_sec * ON_DEMAND_SHARD_UNITS,
                read_calls_per_sec: limits.read_calls_per_sec * ON_DEMAND_SHARD_UNITS,
                ..limits.clone()
            }))
        });
        move |_index| match &shared {
            Some(shared) => shared.clone(),
            None => Arc::new(ShardLimiter::new(&limits)),
        }
    }

    /// Opens (creating if needed) the log of shard `shard` of the stream in `dir`.
    pub(crate) fn open_shard(
        &self,
        dir: &Path,
        meta: &StreamMeta,
        shard: &ShardMeta,
        limiter: Arc<ShardLimiter>,
    ) -> Result<Arc<Shard>> {
        let id = shard_id(shard.index);
        let key = journal_key(meta, &id);
        let log = ShardLog::open_journaled(
            &self.inner.journal,
            key.clone(),
            Arc::new(StdFs),
            dir.join(&id),
            self.log_config(meta, &key),
            self.inner.clock.clone(),
            // Engine sequence 0 stays free: it is the shard's StartingSequenceNumber, which
            // sorts before every record, so AFTER_SEQUENCE_NUMBER of it reads from the start.
            1,
        )?;
        if shard.closed.is_some() {
            log.mark_closed();
        }
        let parse = |text: &str| {
            text.parse::<u128>().map_err(|_| {
                StreamsError::Internal(format!(
                    "corrupt stream metadata in {}: bad hash key {text}",
                    dir.display()
                ))
            })
        };
        Ok(Arc::new(Shard {
            index: shard.index,
            id,
            starting_hash_key: parse(&shard.starting_hash_key)?,
            ending_hash_key: parse(&shard.ending_hash_key)?,
            parent: shard.parent,
            adjacent_parent: shard.adjacent_parent,
            created_ms: shard.created_ms,
            published: tokio::sync::watch::Sender::new(log.tip().next_sequence),
            announced: crate::topology::Announced::at(log.tip().next_sequence),
            log,
            limiter: RwLock::new(limiter),
            closed: tokio::sync::watch::Sender::new(shard.closed),
            counters: crate::metrics::ShardCounters::default(),
            recent_read: Mutex::new(None),
        }))
    }

    /// DeleteStream: the stream disappears at once; its files are removed in the background.
    /// Refused while consumers are registered unless `enforce_consumer_deletion`, which
    /// deregisters them and ends their subscriptions.
    pub async fn delete_stream(&self, name: &str, enforce_consumer_deletion: bool) -> Result<()> {
        let _control = self.inner.control.lock().await;
        let stream = self.stream(name)?;
        let consumers = lock(&stream.meta).consumers.len();
        if consumers > 0 && !enforce_consumer_deletion {
            return Err(StreamsError::ResourceInUse(format!(
                "Stream {name} under account {} has {consumers} registered consumers; deregister them or set EnforceConsumerDeletion",
                self.inner.config.account_id
            )));
        }
        *lock(&stream.status) = StreamStatus::Deleting;
        stream.end_sessions(None, crate::subscribe::Ended::StreamDeleted);
        self.inner
            .streams
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
            .remove(name);
        let trash = self.inner.config.data_dir.join(TRASH_DIR);
        let target = trash.join(format!("{name}.{}", stream.incarnation));
        let source = stream.dir.clone();
        blocking(move || {
            std::fs::create_dir_all(&trash).map_err(|error| internal("create", &trash, error))?;
            std::fs::rename(&source, &target).map_err(|error| internal("move to trash", &source, error))?;
            meta::sync_dir(source.parent().expect("streams dir"))?;
            meta::sync_dir(&trash)?;
            if let Err(error) = std::fs::remove_dir_all(&target) {
                tracing::warn!(path = %target.display(), %error, "could not remove deleted stream; removed at next start");
            }
            Ok(())
        })
        .await?;
        tracing::info!(stream = %name, "deleted stream");
        Ok(())
    }

    pub(crate) fn info(&self, stream: &Stream) -> StreamInfo {
        let meta = lock(&stream.meta);
        StreamInfo {
            name: stream.name.clone(),
            arn: self.stream_arn(&stream.name),
            status: *lock(&stream.status),
            mode: meta.mode,
            retention_hours: meta.retention_hours,
            created_ms: meta.created_ms,
            open_shard_count: stream.topology().open.len() as u32,
            consumer_count: meta.consumers.len() as u32,
            max_record_size_kib: meta.max_record_kib,
            encryption: crate::encryption::Encryption::of(&meta),
        }
    }

    pub(crate) fn open_next_token(&self, token: &str, scope: &str) -> Result<String> {
        let (token_scope, after, issued) = self.inner.key.decode_next_token(token)?;
        if token_scope != scope {
            return Err(StreamsError::InvalidArgument(format!(
                "NextToken {token} belongs to another listing"
            )));
        }
        let age = self.now_ms() - issued;
        if age > self.inner.config.next_token_ttl.as_millis() as i64 {
            return Err(StreamsError::ExpiredNextToken(format!(
                "The token {token} has expired: it was issued {age} ms ago"
            )));
        }
        Ok(after)
    }

    /// DescribeStreamSummary.
    pub fn describe_stream_summary(&self, name: &str) -> Result<StreamInfo> {
        Ok(self.info(&*self.stream(name)?))
    }

    /// The registry of streams, for reading.
    pub(crate) fn registry(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.inner
            .streams
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

fn random_u16() -> Result<u16> {
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes)
        .map_err(|error| StreamsError::Internal(format!("no randomness: {error}")))?;
    Ok(u16::from_le_bytes(bytes))
}
