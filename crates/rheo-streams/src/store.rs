//! The stream registry and the control plane: create, delete, list, describe, retention, tags,
//! limits. Streams live under `<data_dir>/streams/<name>/`, one storage log per shard.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rheo_storage::io::StdFs;
use rheo_storage::{Clock, LogConfig, ShardLog};

use crate::config::ShardLimits;
use crate::config::StoreConfig;
use crate::error::{Result, StreamsError};
use crate::hashing::initial_ranges;
use crate::limits::ShardLimiter;
use crate::meta::{self, ShardClosed, ShardMeta, StreamMeta, StreamMode};
use crate::model::{
    CreateStream, Limits, ShardFilter, ShardInfo, StreamInfo, StreamPage, StreamStatus,
};
use crate::seqnum::SequenceNumber;
use crate::token::TokenKey;

const STREAMS_DIR: &str = "streams";
const TRASH_DIR: &str = "trash";
const KEY_FILE: &str = "token.key";
const MAX_TAGS: usize = 50;
const MAX_RETENTION_HOURS: i64 = 8760;
/// An on-demand stream's limits, in provisioned shards' worth (Kinesis starts one at 4 MB/s in
/// and 8 MB/s out).
const ON_DEMAND_SHARD_UNITS: u64 = 4;

/// One shard: its place in the key space, its lineage and its log.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) index: u32,
    pub(crate) id: String,
    pub(crate) starting_hash_key: u128,
    pub(crate) ending_hash_key: u128,
    /// For a child of a split or merge: the parent's index.
    pub(crate) parent: Option<u32>,
    /// For a child of a merge: the other parent's index.
    pub(crate) adjacent_parent: Option<u32>,
    pub(crate) log: Arc<ShardLog>,
    /// Its throughput limits (one limiter is shared by every shard of an on-demand stream);
    /// replaced when the stream's mode changes.
    limiter: RwLock<Arc<ShardLimiter>>,
    /// Set once a reshard closed the shard; push sessions wait on it as on the log's tip.
    pub(crate) closed: tokio::sync::watch::Sender<Option<ShardClosed>>,
    /// Traffic, throttling and lag, for metrics.
    pub(crate) counters: crate::metrics::ShardCounters,
    /// The newest push read that reached the tip, shared by caught-up sessions.
    pub(crate) recent_read: Mutex<Option<crate::subscribe::RecentRead>>,
}

impl Shard {
    pub(crate) fn limiter(&self) -> Arc<ShardLimiter> {
        self.limiter
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    pub(crate) fn set_limiter(&self, limiter: Arc<ShardLimiter>) {
        *self
            .limiter
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = limiter;
    }

    pub(crate) fn closed(&self) -> Option<ShardClosed> {
        *self.closed.borrow()
    }

    /// True when `position` is past the last record of a closed shard.
    pub(crate) fn ended_at(&self, position: u64) -> bool {
        self.closed().is_some() && position >= self.log.tip().next_sequence
    }
}

/// A stream's shards at one moment: replaced whole by a reshard.
#[derive(Debug, Default)]
pub(crate) struct Topology {
    /// Every shard not expired, by index.
    pub(crate) shards: Vec<Arc<Shard>>,
    /// The open shards, by hash-key range: together they cover the key space exactly.
    pub(crate) open: Vec<Arc<Shard>>,
}

impl Topology {
    pub(crate) fn new(mut shards: Vec<Arc<Shard>>) -> Topology {
        shards.sort_by_key(|shard| shard.index);
        let mut open: Vec<Arc<Shard>> = shards
            .iter()
            .filter(|shard| shard.closed().is_none())
            .cloned()
            .collect();
        open.sort_by_key(|shard| shard.starting_hash_key);
        Topology { shards, open }
    }

    /// The open shard whose hash-key range holds `hash`.
    pub(crate) fn route(&self, hash: u128) -> &Arc<Shard> {
        let at = self
            .open
            .partition_point(|shard| shard.ending_hash_key < hash);
        &self.open[at.min(self.open.len() - 1)]
    }

    pub(crate) fn shard(&self, shard_id: &str) -> Option<&Arc<Shard>> {
        self.shards.iter().find(|shard| shard.id == shard_id)
    }

    pub(crate) fn by_index(&self, index: u32) -> Option<&Arc<Shard>> {
        self.shards
            .binary_search_by_key(&index, |shard| shard.index)
            .ok()
            .map(|at| &self.shards[at])
    }

    /// The shards a reshard made from `index`.
    pub(crate) fn children_of(&self, index: u32) -> Vec<&Arc<Shard>> {
        self.shards
            .iter()
            .filter(|shard| shard.parent == Some(index) || shard.adjacent_parent == Some(index))
            .collect()
    }
}

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
    /// Serialises control-plane changes (create, delete) so quota checks hold.
    pub(crate) control: tokio::sync::Mutex<()>,
    /// Bumped when the testbed clock jumps, so waiting subscriptions re-check their timers.
    pub(crate) clock_moved: tokio::sync::watch::Sender<u64>,
    /// The reshard step after which tests make a reshard stop as if the process died.
    #[cfg(test)]
    pub(crate) crash_at: Mutex<Option<&'static str>>,
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

fn internal(action: &str, path: &Path, error: std::io::Error) -> StreamsError {
    StreamsError::Internal(format!("{action} {} failed: {error}", path.display()))
}

pub(crate) fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// Checks a stream name: 1 to 128 characters of `[a-zA-Z0-9_.-]`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'));
    if ok {
        return Ok(());
    }
    Err(StreamsError::Validation(format!(
        "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and 128"
    )))
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
            blocking(move || load(&config, clock, &progress)).await?
        };
        let (key, streams) = loaded;
        Ok(Store {
            inner: Arc::new(Inner {
                config,
                clock,
                key,
                streams: RwLock::new(streams),
                control: tokio::sync::Mutex::new(()),
                clock_moved: tokio::sync::watch::Sender::new(0),
                #[cfg(test)]
                crash_at: Mutex::new(None),
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
                StreamsError::InvalidArgument(format!("StreamARN {arn} is not a stream ARN"))
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
        let streams = self.registry();
        streams
            .get(name)
            .cloned()
            .ok_or_else(|| self.not_found(name))
    }

    fn log_config(&self, retention_hours: u32, max_record_kib: u32) -> LogConfig {
        LogConfig {
            durability: self.inner.config.durability,
            segment_max_bytes: self.inner.config.segment_max_bytes,
            retention: std::time::Duration::from_secs(u64::from(retention_hours) * 3600),
            max_record_bytes: max_record_kib as usize * 1024,
            ..LogConfig::default()
        }
    }

    fn check_retention_hours(&self, hours: i64) -> Result<u32> {
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
        validate_tags(&request.tags)?;
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
        if self.stream(&request.name).is_ok() {
            return Err(StreamsError::ResourceInUse(format!(
                "Stream {} under account {} already exists.",
                request.name, self.inner.config.account_id
            )));
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
            let stream = store.open_stream(dir.clone(), meta.clone())?;
            // The metadata is written last: a stream directory without it is an interrupted
            // creation and is removed at the next start.
            meta::write(&dir, &meta)?;
            meta::sync_dir(dir.parent().expect("streams dir"))?;
            Ok(stream)
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

    fn open_stream(&self, dir: PathBuf, meta: StreamMeta) -> Result<Stream> {
        let limiters = self.limiters(&meta);
        let mut shards = Vec::with_capacity(meta.shards.len());
        for shard in meta.shards.iter().filter(|shard| !shard.expired) {
            shards.push(self.open_shard(&dir, &meta, shard, limiters(shard.index))?);
        }
        Ok(Stream {
            name: meta.name.clone(),
            incarnation: meta.incarnation,
            dir,
            meta: Mutex::new(meta),
            status: Mutex::new(StreamStatus::Creating),
            topology: RwLock::new(Arc::new(Topology::new(shards))),
            gate: tokio::sync::RwLock::new(()),
            sessions: Mutex::new(crate::subscribe::Sessions::default()),
        })
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
        let log = ShardLog::open(
            Arc::new(StdFs),
            dir.join(&id),
            self.log_config(meta.retention_hours, meta.max_record_kib),
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
            log: Arc::new(log),
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

    fn info(&self, stream: &Stream) -> StreamInfo {
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
        }
    }

    /// ListStreams.
    pub fn list_streams(
        &self,
        limit: Option<i64>,
        exclusive_start: &str,
        next_token: &str,
    ) -> Result<StreamPage> {
        let limit = page_size(limit, "limit", 10_000, 100, 100)?;
        let after = if next_token.is_empty() {
            exclusive_start.to_string()
        } else {
            self.open_next_token(next_token, "")?
        };
        let streams = self.registry();
        let mut page: Vec<StreamInfo> = streams
            .range::<str, _>((
                std::ops::Bound::Excluded(after.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .take(limit + 1)
            .map(|(_, stream)| self.info(stream))
            .collect();
        let has_more = page.len() > limit;
        page.truncate(limit);
        let next_token = has_more.then(|| {
            let last = &page.last().expect("a full page").name;
            self.inner.key.encode_next_token("", last, self.now_ms())
        });
        Ok(StreamPage {
            streams: page,
            has_more,
            next_token,
        })
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

    pub(crate) fn shard_info(shard: &Shard) -> ShardInfo {
        let number = |engine_sequence| {
            SequenceNumber {
                shard_index: shard.index,
                engine_sequence,
            }
            .to_string()
        };
        ShardInfo {
            shard_id: shard.id.clone(),
            parent_shard_id: shard.parent.map(shard_id),
            adjacent_parent_shard_id: shard.adjacent_parent.map(shard_id),
            starting_hash_key: shard.starting_hash_key,
            ending_hash_key: shard.ending_hash_key,
            starting_sequence_number: number(0),
            // The last sequence number the shard can hold: the one before its end.
            ending_sequence_number: shard
                .closed()
                .map(|closed| number(closed.end.saturating_sub(1))),
        }
    }

    /// DescribeStream: the description and a page of shards (open and closed, not expired)
    /// after `exclusive_start_shard_id`.
    pub fn describe_stream(
        &self,
        name: &str,
        limit: Option<i64>,
        exclusive_start_shard_id: &str,
    ) -> Result<(StreamInfo, Vec<ShardInfo>, bool)> {
        let limit = page_size(limit, "limit", 10_000, 100, 100)?;
        let stream = self.stream(name)?;
        let mut shards: Vec<ShardInfo> = stream
            .topology()
            .shards
            .iter()
            .filter(|shard| {
                exclusive_start_shard_id.is_empty() || shard.id.as_str() > exclusive_start_shard_id
            })
            .take(limit + 1)
            .map(|shard| Self::shard_info(shard))
            .collect();
        let has_more = shards.len() > limit;
        shards.truncate(limit);
        Ok((self.info(&stream), shards, has_more))
    }

    /// ListShards, with Kinesis's filters: AT_LATEST (open shards), AT_TRIM_HORIZON (the oldest
    /// shards still kept: those without a kept parent), FROM_TRIM_HORIZON (every kept shard,
    /// the default), AT_TIMESTAMP (shards open at the time), FROM_TIMESTAMP (those open at the
    /// time and every later one), AFTER_SHARD_ID (ids after the given one). Expired shards are
    /// never listed. A time before the stream's creation means its creation.
    pub fn list_shards(
        &self,
        name: &str,
        next_token: &str,
        exclusive_start_shard_id: &str,
        max_results: Option<i64>,
        filter: ShardFilter,
        stream_created_ms: Option<i64>,
    ) -> Result<(Vec<ShardInfo>, Option<String>)> {
        let max = page_size(max_results, "maxResults", 10_000, 1000, 10000)?;
        let (name, after, filter) = if next_token.is_empty() {
            let after = match &filter {
                ShardFilter::AfterShardId(id) if id.is_empty() => {
                    return Err(StreamsError::InvalidArgument(
                        "ShardFilter AFTER_SHARD_ID needs a ShardId".into(),
                    ));
                }
                ShardFilter::AfterShardId(id) => {
                    id.clone().max(exclusive_start_shard_id.to_string())
                }
                _ => exclusive_start_shard_id.to_string(),
            };
            (name.to_string(), after, filter)
        } else {
            if !name.is_empty() {
                return Err(StreamsError::InvalidArgument(
                    "NextToken and StreamName cannot be provided together.".into(),
                ));
            }
            let (scope, after, _) = self.inner.key.decode_next_token(next_token)?;
            self.open_next_token(next_token, &scope)?;
            // A token continues the listing it came from; its filter is in the scope.
            let (name, filter) = decode_list_scope(&scope)?;
            (name, after, filter)
        };
        let stream = self.stream(&name)?;
        self.check_created(&stream, stream_created_ms)?;
        let created_ms = lock(&stream.meta).created_ms;
        let topology = stream.topology();
        let closed_ms = |shard: &Shard| shard.closed().map(|closed| closed.closed_ms);
        let created = |shard: &Shard| {
            lock(&stream.meta)
                .shards
                .iter()
                .find(|meta| meta.index == shard.index)
                .map_or(created_ms, |meta| meta.created_ms)
        };
        let keep = |shard: &Shard| -> bool {
            match &filter {
                ShardFilter::AtLatest => shard.closed().is_none(),
                ShardFilter::AtTrimHorizon => [shard.parent, shard.adjacent_parent]
                    .into_iter()
                    .flatten()
                    .all(|parent| topology.by_index(parent).is_none()),
                ShardFilter::FromTrimHorizon | ShardFilter::AfterShardId(_) => true,
                ShardFilter::AtTimestamp(at) => {
                    let at = (*at).max(created_ms);
                    created(shard) <= at && closed_ms(shard).is_none_or(|closed| closed > at)
                }
                ShardFilter::FromTimestamp(at) => {
                    let at = (*at).max(created_ms);
                    closed_ms(shard).is_none_or(|closed| closed > at)
                }
            }
        };
        let mut shards: Vec<ShardInfo> = topology
            .shards
            .iter()
            .filter(|shard| after.is_empty() || shard.id > after)
            .filter(|shard| keep(shard))
            .take(max + 1)
            .map(|shard| Self::shard_info(shard))
            .collect();
        let more = shards.len() > max;
        shards.truncate(max);
        let next = more.then(|| {
            let last = &shards.last().expect("a full page").shard_id;
            self.inner.key.encode_next_token(
                &encode_list_scope(&name, &filter),
                last,
                self.now_ms(),
            )
        });
        Ok((shards, next))
    }

    /// IncreaseStreamRetentionPeriod (`increase`) or DecreaseStreamRetentionPeriod.
    pub async fn change_retention(&self, name: &str, hours: i64, increase: bool) -> Result<()> {
        let stream = self.stream(name)?;
        let current = lock(&stream.meta).retention_hours;
        let hours_u32 = self.check_retention_hours(hours)?;
        if increase && hours_u32 <= current {
            return Err(StreamsError::InvalidArgument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
            )));
        }
        if !increase && hours_u32 >= current {
            return Err(StreamsError::InvalidArgument(format!(
                "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
            )));
        }
        self.update_meta(&stream, move |meta| {
            meta.retention_hours = hours_u32;
            Ok(())
        })
        .await?;
        for shard in &stream.topology().shards {
            shard
                .log
                .set_retention(std::time::Duration::from_secs(u64::from(hours_u32) * 3600))?;
        }
        Ok(())
    }

    /// Applies `change` to a copy of the stream's metadata, writes it durably, then publishes it.
    pub(crate) async fn update_meta(
        &self,
        stream: &Arc<Stream>,
        change: impl FnOnce(&mut StreamMeta) -> Result<()>,
    ) -> Result<()> {
        let _control = self.inner.control.lock().await;
        let mut updated = lock(&stream.meta).clone();
        change(&mut updated)?;
        let dir = stream.dir.clone();
        let to_write = updated.clone();
        blocking(move || meta::write(&dir, &to_write)).await?;
        *lock(&stream.meta) = updated;
        Ok(())
    }

    /// AddTagsToStream.
    pub async fn add_tags(&self, name: &str, tags: BTreeMap<String, String>) -> Result<()> {
        validate_tags(&tags)?;
        let stream = self.stream(name)?;
        self.update_meta(&stream, move |meta| {
            let mut merged = meta.tags.clone();
            merged.extend(tags);
            if merged.len() > MAX_TAGS {
                return Err(StreamsError::InvalidArgument(format!(
                    "Failed to add tags to stream {name}: a stream can have at most {MAX_TAGS} tags, this would make {}",
                    merged.len()
                )));
            }
            meta.tags = merged;
            Ok(())
        })
        .await
    }

    /// RemoveTagsFromStream; missing keys are ignored.
    pub async fn remove_tags(&self, name: &str, keys: Vec<String>) -> Result<()> {
        if keys.is_empty() || keys.len() > MAX_TAGS {
            return Err(StreamsError::Validation(format!(
                "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length between 1 and {MAX_TAGS}, got {}",
                keys.len()
            )));
        }
        let stream = self.stream(name)?;
        self.update_meta(&stream, move |meta| {
            for key in &keys {
                meta.tags.remove(key);
            }
            Ok(())
        })
        .await
    }

    /// ListTagsForStream: tags after `exclusive_start`, at most `limit` (1..=50, default 50).
    pub fn list_tags(
        &self,
        name: &str,
        exclusive_start: &str,
        limit: Option<i64>,
    ) -> Result<(Vec<(String, String)>, bool)> {
        let limit = page_size(limit, "limit", 50, 50, 50)?;
        let stream = self.stream(name)?;
        let meta = lock(&stream.meta);
        let mut tags: Vec<(String, String)> = meta
            .tags
            .iter()
            .filter(|(key, _)| exclusive_start.is_empty() || key.as_str() > exclusive_start)
            .take(limit + 1)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let more = tags.len() > limit;
        tags.truncate(limit);
        Ok((tags, more))
    }

    /// DescribeLimits.
    pub fn describe_limits(&self) -> Limits {
        let streams = self.registry();
        Limits {
            shard_limit: self.inner.config.shard_limit,
            open_shard_count: streams
                .values()
                .map(|stream| stream.topology().open.len() as u32)
                .sum(),
            on_demand_stream_count: streams
                .values()
                .filter(|stream| lock(&stream.meta).mode == StreamMode::OnDemand)
                .count() as u32,
            on_demand_stream_count_limit: self.inner.config.on_demand_stream_limit,
        }
    }

    /// The registry of streams, for reading.
    pub(crate) fn registry(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Stream>>> {
        self.inner
            .streams
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Every shard log of every stream.
    fn all_logs(&self) -> Vec<Arc<ShardLog>> {
        self.registry()
            .values()
            .flat_map(|stream| {
                stream
                    .topology()
                    .shards
                    .iter()
                    .map(|shard| shard.log.clone())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Runs retention, age-based rolls and interval fsyncs on every shard log, and expires
    /// closed shards whose data is all past retention. Call about once a second
    /// ([`Store::spawn_maintenance`] does).
    pub async fn maintain(&self) {
        let streams: Vec<Arc<Stream>> = self.registry().values().cloned().collect();
        for stream in streams {
            if let Err(error) = self.expire_shards(&stream).await {
                tracing::error!(stream = %stream.name, %error, "expiring shards failed");
            }
        }
        let logs = self.all_logs();
        let _ = blocking(move || {
            for log in logs {
                if let Err(error) = log.maintain() {
                    tracing::error!(dir = %log.dir().display(), %error, "maintenance failed");
                }
            }
            Ok(())
        })
        .await;
    }

    /// Closed shards whose newest record is past retention expire: they are marked in the
    /// metadata (no longer listed or readable), then their logs are deleted.
    async fn expire_shards(&self, stream: &Arc<Stream>) -> Result<()> {
        let retention_ms = i64::from(lock(&stream.meta).retention_hours) * 3_600_000;
        let now = self.now_ms();
        let due = |shard: &Shard| {
            shard
                .closed()
                .is_some_and(|closed| now - closed.closed_ms >= retention_ms)
        };
        if !stream.topology().shards.iter().any(|shard| due(shard)) {
            return Ok(());
        }
        let _control = self.inner.control.lock().await;
        let topology = stream.topology();
        let expired: Vec<u32> = topology
            .shards
            .iter()
            .filter(|shard| due(shard))
            .map(|shard| shard.index)
            .collect();
        let mut updated = lock(&stream.meta).clone();
        for shard in updated.shards.iter_mut() {
            shard.expired |= expired.contains(&shard.index);
        }
        let dir = stream.dir.clone();
        let to_write = updated.clone();
        blocking(move || meta::write(&dir, &to_write)).await?;
        *lock(&stream.meta) = updated;
        stream.set_topology(Topology::new(
            topology
                .shards
                .iter()
                .filter(|shard| !expired.contains(&shard.index))
                .cloned()
                .collect(),
        ));
        let dir = stream.dir.clone();
        blocking(move || {
            for index in expired {
                let path = dir.join(shard_id(index));
                std::fs::remove_dir_all(&path).map_err(|error| internal("remove", &path, error))?;
                tracing::info!(path = %path.display(), "expired shard removed");
            }
            meta::sync_dir(&dir)
        })
        .await
    }

    /// Starts a task that calls [`Store::maintain`] every second until the store is dropped.
    pub fn spawn_maintenance(&self) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                Store { inner }.maintain().await;
            }
        })
    }

    /// Makes everything appended durable (for shutdown under relaxed durability).
    pub async fn sync_all(&self) -> Result<()> {
        let logs = self.all_logs();
        blocking(move || {
            for log in logs {
                log.sync()?;
            }
            Ok(())
        })
        .await
    }
}

/// The scope of a ListShards token: the stream and the filter, so a next page filters alike.
fn encode_list_scope(name: &str, filter: &ShardFilter) -> String {
    let filter = match filter {
        ShardFilter::AfterShardId(_) | ShardFilter::FromTrimHorizon => "from-trim-horizon".into(),
        ShardFilter::AtTrimHorizon => "at-trim-horizon".into(),
        ShardFilter::AtLatest => "at-latest".into(),
        ShardFilter::AtTimestamp(ms) => format!("at-timestamp={ms}"),
        ShardFilter::FromTimestamp(ms) => format!("from-timestamp={ms}"),
    };
    format!("{name}|{filter}")
}

fn decode_list_scope(scope: &str) -> Result<(String, ShardFilter)> {
    let bad = || StreamsError::InvalidArgument("Invalid NextToken.".into());
    let (name, filter) = scope.split_once('|').ok_or_else(bad)?;
    let filter = match filter.split_once('=') {
        None if filter == "from-trim-horizon" => ShardFilter::FromTrimHorizon,
        None if filter == "at-trim-horizon" => ShardFilter::AtTrimHorizon,
        None if filter == "at-latest" => ShardFilter::AtLatest,
        Some(("at-timestamp", ms)) => ShardFilter::AtTimestamp(ms.parse().map_err(|_| bad())?),
        Some(("from-timestamp", ms)) => ShardFilter::FromTimestamp(ms.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    };
    Ok((name.to_string(), filter))
}

/// A page size from a request: `default` when absent, refused outside `1..=max_accepted`, and
/// at most `cap` in effect (Kinesis accepts some limits it never fills, such as ListStreams').
pub(crate) fn page_size(
    value: Option<i64>,
    field: &str,
    max_accepted: i64,
    default: usize,
    cap: usize,
) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(value) if (1..=max_accepted).contains(&value) => Ok((value as usize).min(cap)),
        Some(value) => Err(StreamsError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must have value between 1 and {max_accepted}"
        ))),
    }
}

fn validate_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    let allowed = |text: &str| {
        text.chars()
            .all(|c| c.is_alphanumeric() || c.is_whitespace() || "_./=+-%@".contains(c))
    };
    for (key, value) in tags {
        if key.is_empty() || key.chars().count() > 128 || !allowed(key) {
            return Err(StreamsError::InvalidArgument(format!(
                "Tag key '{key}' must be 1 to 128 Unicode letters, digits, white space or _ . / = + - % @"
            )));
        }
        if value.chars().count() > 256 || !allowed(value) {
            return Err(StreamsError::InvalidArgument(format!(
                "Tag value '{value}' of key '{key}' must be at most 256 Unicode letters, digits, white space or _ . / = + - % @"
            )));
        }
    }
    Ok(())
}

fn random_u16() -> Result<u16> {
    let mut bytes = [0u8; 2];
    getrandom::fill(&mut bytes)
        .map_err(|error| StreamsError::Internal(format!("no randomness: {error}")))?;
    Ok(u16::from_le_bytes(bytes))
}

/// Loads the token key and every stream; removes interrupted creations and the trash.
fn load(
    config: &StoreConfig,
    clock: Arc<dyn Clock>,
    progress: &crate::metrics::OpenProgress,
) -> Result<(TokenKey, BTreeMap<String, Arc<Stream>>)> {
    let data_dir = &config.data_dir;
    let streams_dir = data_dir.join(STREAMS_DIR);
    std::fs::create_dir_all(&streams_dir)
        .map_err(|error| internal("create", &streams_dir, error))?;
    let trash = data_dir.join(TRASH_DIR);
    if trash.exists() {
        std::fs::remove_dir_all(&trash).map_err(|error| internal("empty", &trash, error))?;
    }
    let key = load_key(data_dir)?;
    // A store without its Arc yet: open_stream needs only the config and clock.
    let opener = Store {
        inner: Arc::new(Inner {
            config: config.clone(),
            clock,
            key: key.clone(),
            streams: RwLock::new(BTreeMap::new()),
            control: tokio::sync::Mutex::new(()),
            clock_moved: tokio::sync::watch::Sender::new(0),
            #[cfg(test)]
            crash_at: Mutex::new(None),
        }),
    };
    let mut streams = BTreeMap::new();
    let entries =
        std::fs::read_dir(&streams_dir).map_err(|error| internal("list", &streams_dir, error))?;
    let mut found = Vec::new();
    for entry in entries {
        let dir = entry
            .map_err(|error| internal("list", &streams_dir, error))?
            .path();
        if !dir.is_dir() {
            continue;
        }
        let Some(meta) = meta::read(&dir)? else {
            tracing::warn!(dir = %dir.display(), "removing a stream whose creation was interrupted");
            std::fs::remove_dir_all(&dir).map_err(|error| internal("remove", &dir, error))?;
            continue;
        };
        remove_stray_shards(&dir, &meta)?;
        let shards = meta.shards.iter().filter(|shard| !shard.expired).count();
        progress
            .total
            .fetch_add(shards as u64, std::sync::atomic::Ordering::Relaxed);
        found.push((dir, meta));
    }
    for (dir, meta) in found {
        let shards = meta.shards.iter().filter(|shard| !shard.expired).count();
        let stream = opener.open_stream(dir, meta)?;
        progress
            .opened
            .fetch_add(shards as u64, std::sync::atomic::Ordering::Relaxed);
        *lock(&stream.status) = StreamStatus::Active;
        streams.insert(stream.name.clone(), Arc::new(stream));
    }
    tracing::info!(data_dir = %data_dir.display(), streams = streams.len(), "loaded streams");
    Ok((key, streams))
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
