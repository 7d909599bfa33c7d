//! The node journal: one write-ahead log in front of every shard log's segment files, so one
//! write and one fdatasync make a commit of every shard of every stream durable.
//!
//! How a journaled append travels (FORMAT.md, "The journal", argues every crash case):
//! 1. [`crate::ShardLog::submit`] queues the batch on its log's own queue, as before; the log's
//!    first waiting append puts the log on the journal's ready list.
//! 2. The one commit thread takes every ready log, stamps each log's group (sequence numbers,
//!    timestamp, headers), copies the frames into one journal record and writes them to each
//!    segment file with `pwrite` (page cache only).
//! 3. It writes the record to the journal file and runs one fdatasync for all of them, then
//!    publishes each log's new end and completes its waiters.
//! 4. Once the journal file passes `checkpoint_bytes` (or `checkpoint_interval` passes with data
//!    in it), the commit thread starts the next journal file, and the checkpoint thread
//!    fdatasyncs every segment file the old one covered, then deletes it.
//!
//! Threads: one commit thread and one checkpoint thread per node, whatever the number of
//! shards. The commit thread is the only writer of journal files and of journaled segment
//! data; it holds a log's writer lock from stamping to publishing, so maintenance (rolls,
//! retention) never sees a half-committed group. The checkpoint thread holds no writer lock
//! while it syncs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::commit::{Appended, LeaderTurn, PendingAppend};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::format::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seeded_crc};
use crate::io::{FileIo, Fs, LockGuard, OpenMode};
use crate::log::{ShardLog, Writer, lock};
use crate::metrics::{
    Histogram, HistogramSnapshot, JOURNAL_COMMIT_LOGS_BOUNDS, SYNC_SECONDS_BOUNDS,
};

/// Journal files end in this.
const JOURNAL_SUFFIX: &str = ".jnl";
const LOCK_FILE: &str = "LOCK";

/// `RHEOJNL\0`: the magic of a journal file's header.
pub(crate) const JOURNAL_MAGIC: [u8; 8] = *b"RHEOJNL\0";
/// The journal file format's version.
pub(crate) const JOURNAL_VERSION: u16 = 2;

// Journal file header (40 bytes), the layout of a segment file's header.
const JH_MAGIC: usize = 0;
const JH_VERSION: usize = JH_MAGIC + 8;
const JH_GENERATION: usize = JH_VERSION + 2 + 6;
const JH_CRC: usize = JH_GENERATION + 8 + 8 + 4;
pub(crate) const JOURNAL_HEADER_LEN: usize = JH_CRC + 4;

// Commit record header (40 bytes).
const JR_MAGIC_BYTES: [u8; 4] = *b"RHJ1";
const JR_MAGIC: usize = 0;
const JR_HEADER_CRC: usize = JR_MAGIC + 4;
const JR_BODY_CRC: usize = JR_HEADER_CRC + 4;
const JR_BODY_LEN: usize = JR_BODY_CRC + 4;
const JR_COMMIT: usize = JR_BODY_LEN + 4;
const JR_SYNCED_LEN: usize = JR_COMMIT + 8;
const JR_ENTRIES: usize = JR_SYNCED_LEN + 8;
const JR_FLAGS: usize = JR_ENTRIES + 4;
pub(crate) const RECORD_HEADER_LEN: usize = JR_FLAGS + 4;

// Entry head (24 bytes), inside a record body; the key and the frames follow it.
const JE_KEY_LEN: usize = 0;
const JE_FRAMES_LEN: usize = JE_KEY_LEN + 4;
const JE_SEGMENT: usize = JE_FRAMES_LEN + 4;
const JE_OFFSET: usize = JE_SEGMENT + 8;
pub(crate) const ENTRY_HEAD_LEN: usize = JE_OFFSET + 8;

/// Largest log key a journal entry carries.
pub const MAX_JOURNAL_KEY_BYTES: usize = 1024;

/// How the node journal behaves. [`JournalConfig::default`] gives production values.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// The journal moves to a new file, and the old one is checkpointed and deleted, once the
    /// current file holds this many bytes. Recovery reads at most about this much (times the
    /// files a slow checkpoint left behind). Default: 64 MiB.
    pub checkpoint_bytes: u64,
    /// ... and at least this often while anything is written. Default: 30 s.
    pub checkpoint_interval: Duration,
    /// One commit takes about this many bytes of appends at most. Default: 16 MiB.
    pub max_commit_bytes: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            checkpoint_bytes: 64 * 1024 * 1024,
            checkpoint_interval: Duration::from_secs(30),
            max_commit_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What the journal measured since it was opened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JournalStats {
    /// Commits written (each one write of one record, covering any number of logs).
    pub commits: u64,
    /// fdatasyncs of journal files.
    pub syncs: u64,
    /// Log groups the commits carried (a commit of 100 shards counts 100).
    pub groups: u64,
    /// Bytes written to journal files.
    pub bytes_written: u64,
    /// Checkpoints finished (journal files deleted after their segments were synced).
    pub checkpoints: u64,
    /// fdatasyncs of segment files run by checkpoints.
    pub checkpoint_syncs: u64,
    /// Journal files on disk now.
    pub files: u64,
    /// Entries replayed into segment files at open (acknowledged groups a crash had lost from
    /// the segments' page cache).
    pub replayed_entries: u64,
    /// fdatasync latency of journal files, in seconds.
    pub sync_seconds: HistogramSnapshot,
    /// Logs (shards) carried per commit.
    pub commit_logs: HistogramSnapshot,
}

/// Where a journaled entry's frames lie, found by recovery.
#[derive(Debug, Clone)]
pub(crate) struct EntryRef {
    pub(crate) file: Arc<dyn FileIo>,
    pub(crate) journal_path: Arc<PathBuf>,
    /// Offset of the frames in the journal file.
    pub(crate) frames_at: u64,
    pub(crate) frames_len: u64,
    /// The segment (by base sequence number) and the offset in it the frames were written at.
    pub(crate) segment_base: u64,
    pub(crate) offset: u64,
}

impl EntryRef {
    pub(crate) fn read_frames(&self) -> Result<Vec<u8>> {
        let mut frames = vec![0; self.frames_len as usize];
        self.file
            .read_exact_at(&mut frames, self.frames_at)
            .map_err(|error| Error::io("read", &*self.journal_path, error))?;
        Ok(frames)
    }
}

#[derive(Debug, Default)]
struct Ready {
    logs: Vec<Arc<ShardLog>>,
    shutdown: bool,
}

#[derive(Debug)]
struct Counters {
    commits: AtomicU64,
    syncs: AtomicU64,
    groups: AtomicU64,
    bytes_written: AtomicU64,
    checkpoints: AtomicU64,
    checkpoint_syncs: AtomicU64,
    files: AtomicU64,
    replayed_entries: AtomicU64,
    sync_seconds: Histogram,
    commit_logs: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            commits: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            checkpoint_syncs: AtomicU64::new(0),
            files: AtomicU64::new(0),
            replayed_entries: AtomicU64::new(0),
            sync_seconds: Histogram::new(SYNC_SECONDS_BOUNDS),
            commit_logs: Histogram::new(JOURNAL_COMMIT_LOGS_BOUNDS),
        }
    }
}

/// A finished journal file handed to the checkpoint thread.
#[derive(Debug)]
struct Handoff {
    path: PathBuf,
    logs: Vec<Arc<ShardLog>>,
}

#[derive(Debug, Default)]
struct CheckpointQueue {
    jobs: Vec<Handoff>,
    /// Files whose checkpoint failed: kept, since they hold what a poisoned log may lack.
    retained: Vec<PathBuf>,
    shutdown: bool,
    /// Files handed over so far, and of those, checkpointed (for [`Journal::checkpoint_now`]).
    handed: u64,
    checkpointed: u64,
}

/// What the commit and checkpoint threads and every journaled log share.
#[derive(Debug)]
pub(crate) struct Shared {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    config: JournalConfig,
    ready: Mutex<Ready>,
    ready_wake: Condvar,
    poisoned: AtomicBool,
    poison_cause: Mutex<Option<String>>,
    /// Recovered entries not yet claimed by an opened log, by log key.
    replay: Mutex<HashMap<String, Vec<EntryRef>>>,
    recovering: AtomicBool,
    checkpoints: Mutex<CheckpointQueue>,
    checkpoint_wake: Condvar,
    checkpoint_done: Condvar,
    /// Set by [`Journal::checkpoint_now`]: the commit thread starts a new file at once.
    rotate_requested: AtomicBool,
    counters: Counters,
    _lock: Box<dyn LockGuard>,
}

/// A journaled log's tie to its journal.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) shared: Arc<Shared>,
    pub(crate) key: String,
    pub(crate) me: Weak<ShardLog>,
    /// The journal file generation this log last wrote to (so the commit thread lists it once
    /// per file for the checkpoint).
    generation: AtomicU64,
}

impl Link {
    pub(crate) fn new(shared: Arc<Shared>, key: String) -> Link {
        Link {
            shared,
            key,
            me: Weak::new(),
            generation: AtomicU64::new(u64::MAX),
        }
    }

    /// Puts the log on the ready list: the commit thread writes its queued appends next.
    pub(crate) fn schedule(&self, turn: LeaderTurn) {
        turn.consume();
        let Some(log) = self.me.upgrade() else {
            return;
        };
        self.shared.schedule(log);
    }
}

impl Shared {
    fn schedule(&self, log: Arc<ShardLog>) {
        let mut ready = lock(&self.ready);
        if ready.shutdown || self.poisoned.load(Ordering::SeqCst) {
            drop(ready);
            let error = self.refusal(&log);
            log.fail_queued(&error);
            return;
        }
        ready.logs.push(log);
        drop(ready);
        self.ready_wake.notify_one();
    }

    /// The error appends get when the journal takes no more commits.
    fn refusal(&self, log: &ShardLog) -> Error {
        if self.poisoned.load(Ordering::SeqCst) {
            return self.poison_error();
        }
        Error::Closed {
            path: log.dir().to_path_buf(),
        }
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(self.poison_error())
    }

    fn poison_error(&self) -> Error {
        Error::Poisoned {
            path: self.dir.clone(),
            cause: lock(&self.poison_cause).clone().unwrap_or_default(),
        }
    }

    fn poison(&self, cause: &Error) {
        tracing::error!(dir = %self.dir.display(), error = %cause, "journal poisoned: the node refuses writes until restart");
        lock(&self.poison_cause).get_or_insert_with(|| cause.to_string());
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// The recovered entries of the log with `key`, which the caller replays.
    pub(crate) fn claim(&self, key: &str) -> Vec<EntryRef> {
        lock(&self.replay).remove(key).unwrap_or_default()
    }

    pub(crate) fn count_replayed(&self, entries: u64) {
        self.counters
            .replayed_entries
            .fetch_add(entries, Ordering::Relaxed);
    }
}

/// The node journal. Open it once per data directory with [`Journal::open`], open every
/// shard log with [`crate::ShardLog::open_journaled`], then call [`Journal::finish_recovery`].
/// Dropping it drains queued appends, checkpoints everything and stops its threads.
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// The commit thread's starting state, until [`Journal::finish_recovery`] starts it.
    pending_start: Mutex<Option<u64>>,
}

fn journal_name(generation: u64) -> String {
    format!("{generation:020}{JOURNAL_SUFFIX}")
}

fn encode_file_header(generation: u64) -> [u8; JOURNAL_HEADER_LEN] {
    let mut buf = [0; JOURNAL_HEADER_LEN];
    buf[JH_MAGIC..JH_MAGIC + 8].copy_from_slice(&JOURNAL_MAGIC);
    put_u16(&mut buf, JH_VERSION, JOURNAL_VERSION);
    put_u64(&mut buf, JH_GENERATION, generation);
    let crc = seeded_crc(generation, &buf[..JH_CRC]);
    put_u32(&mut buf, JH_CRC, crc);
    buf
}

fn decode_file_header(buf: &[u8], generation: u64) -> std::result::Result<(), String> {
    if buf.len() < JOURNAL_HEADER_LEN {
        return Err("journal file is shorter than its header".into());
    }
    if buf[JH_MAGIC..JH_MAGIC + 8] != JOURNAL_MAGIC {
        return Err("bad magic in journal header".into());
    }
    if get_u32(buf, JH_CRC) != seeded_crc(get_u64(buf, JH_GENERATION), &buf[..JH_CRC]) {
        return Err("journal header checksum mismatch".into());
    }
    let version = get_u16(buf, JH_VERSION);
    if version != JOURNAL_VERSION {
        return Err(format!(
            "unsupported journal version {version} (this build reads {JOURNAL_VERSION})"
        ));
    }
    let named = get_u64(buf, JH_GENERATION);
    if named != generation {
        return Err(format!(
            "header names generation {named} but the file is named for {generation}"
        ));
    }
    Ok(())
}

/// A commit record's header, as decoded.
#[derive(Debug, Clone, Copy)]
struct RecordHeader {
    body_crc: u32,
    body_len: u32,
    synced_len: u64,
    entries: u32,
}

fn decode_record_header(buf: &[u8], generation: u64) -> std::result::Result<RecordHeader, String> {
    if buf[JR_MAGIC..JR_MAGIC + 4] != JR_MAGIC_BYTES {
        return Err("bad magic in journal record header".into());
    }
    if get_u32(buf, JR_HEADER_CRC) != seeded_crc(generation, &buf[JR_BODY_CRC..RECORD_HEADER_LEN]) {
        return Err("journal record header checksum mismatch".into());
    }
    if get_u32(buf, JR_FLAGS) != 0 {
        return Err("journal record has unknown flags".into());
    }
    Ok(RecordHeader {
        body_crc: get_u32(buf, JR_BODY_CRC),
        body_len: get_u32(buf, JR_BODY_LEN),
        synced_len: get_u64(buf, JR_SYNCED_LEN),
        entries: get_u32(buf, JR_ENTRIES),
    })
}

/// One entry as parsed from a record body: its key and where its frames are in the body.
struct ParsedEntry {
    key: String,
    frames_at: usize,
    frames_len: usize,
    segment_base: u64,
    offset: u64,
}

fn parse_body(body: &[u8], entries: u32) -> std::result::Result<Vec<ParsedEntry>, String> {
    let mut parsed = Vec::with_capacity(entries as usize);
    let mut at = 0;
    for _ in 0..entries {
        if body.len() - at < ENTRY_HEAD_LEN {
            return Err("journal entry head runs past the record".into());
        }
        let head = &body[at..at + ENTRY_HEAD_LEN];
        let key_len = get_u32(head, JE_KEY_LEN) as usize;
        let frames_len = get_u32(head, JE_FRAMES_LEN) as usize;
        let start = at + ENTRY_HEAD_LEN;
        if key_len > MAX_JOURNAL_KEY_BYTES || body.len() - start < key_len + frames_len {
            return Err("journal entry runs past the record".into());
        }
        let key = std::str::from_utf8(&body[start..start + key_len])
            .map_err(|_| "journal entry key is not UTF-8".to_string())?;
        parsed.push(ParsedEntry {
            key: key.to_string(),
            frames_at: start + key_len,
            frames_len,
            segment_base: get_u64(head, JE_SEGMENT),
            offset: get_u64(head, JE_OFFSET),
        });
        at = start + key_len + frames_len;
    }
    if at != body.len() {
        return Err("journal record body holds bytes after its last entry".into());
    }
    Ok(parsed)
}

/// A journal file read by recovery: its entries, and where its valid part ends.
struct ReadFile {
    entries: Vec<(ParsedEntry, u64)>,
}

/// Reads one journal file's records. `last` says whether it is the newest file, whose tail
/// may be torn; in any other file, every bad record is corruption (it was synced before the
/// next file was created).
fn read_journal_file(
    fs: &dyn Fs,
    path: &Path,
    generation: u64,
    last: bool,
) -> Result<(Arc<dyn FileIo>, ReadFile)> {
    let file: Arc<dyn FileIo> = fs
        .open(path, OpenMode::Read)
        .map_err(|error| Error::io("open", path, error))?
        .into();
    let len = file.len().map_err(|error| Error::io("stat", path, error))?;
    let mut header = [0; JOURNAL_HEADER_LEN];
    let header_read = if len >= JOURNAL_HEADER_LEN as u64 {
        file.read_exact_at(&mut header, 0)
            .map_err(|error| Error::io("read", path, error))?;
        decode_file_header(&header, generation)
    } else {
        Err("journal file is shorter than its header".into())
    };
    if let Err(reason) = header_read {
        if last && len <= JOURNAL_HEADER_LEN as u64 {
            // Created, but its header never became durable: nothing was committed to it.
            return Ok((file, ReadFile { entries: vec![] }));
        }
        return Err(Error::corruption(path, 0, reason));
    }
    let mut entries = Vec::new();
    let mut at = JOURNAL_HEADER_LEN as u64;
    while at < len {
        match read_record(&*file, generation, at, len) {
            Ok((record_len, parsed)) => {
                for entry in parsed {
                    let frames_at = at + RECORD_HEADER_LEN as u64 + entry.frames_at as u64;
                    entries.push((entry, frames_at));
                }
                at += record_len;
            }
            Err(reason) => {
                if !last {
                    return Err(Error::corruption(path, at, reason));
                }
                if let Some(proof) = synced_beyond(&*file, generation, at, len)
                    .map_err(|error| Error::io("read", path, error))?
                {
                    return Err(Error::corruption(
                        path,
                        at,
                        format!(
                            "{reason}; not a torn write: the record at offset {proof} was written after this point was durable"
                        ),
                    ));
                }
                tracing::warn!(path = %path.display(), offset = at, bytes = len - at, %reason, "journal ends in a torn write; ignoring it");
                break;
            }
        }
    }
    Ok((file, ReadFile { entries }))
}

fn read_record(
    file: &dyn FileIo,
    generation: u64,
    at: u64,
    len: u64,
) -> std::result::Result<(u64, Vec<ParsedEntry>), String> {
    if len - at < RECORD_HEADER_LEN as u64 {
        return Err("journal record header runs past the end of the file".into());
    }
    let mut head = [0; RECORD_HEADER_LEN];
    file.read_exact_at(&mut head, at)
        .map_err(|error| error.to_string())?;
    let header = decode_record_header(&head, generation)?;
    let body_end = at + RECORD_HEADER_LEN as u64 + u64::from(header.body_len);
    if body_end > len {
        return Err("journal record body runs past the end of the file".into());
    }
    let mut body = vec![0; header.body_len as usize];
    file.read_exact_at(&mut body, at + RECORD_HEADER_LEN as u64)
        .map_err(|error| error.to_string())?;
    if seeded_crc(generation, &body) != header.body_crc {
        return Err("journal record body checksum mismatch".into());
    }
    let parsed = parse_body(&body, header.entries)?;
    Ok((body_end - at, parsed))
}

/// Proof that a bad record at `bad_at` had been made durable: a later intact record header
/// whose `synced_len` exceeds `bad_at` (the journal's version of the segments' rule).
fn synced_beyond(
    file: &dyn FileIo,
    generation: u64,
    bad_at: u64,
    len: u64,
) -> std::io::Result<Option<u64>> {
    const WINDOW: u64 = 1 << 20;
    let mut start = bad_at + 1;
    while start + RECORD_HEADER_LEN as u64 <= len {
        let window_len = WINDOW.min(len - start);
        let mut buf = vec![0u8; window_len as usize];
        file.read_exact_at(&mut buf, start)?;
        for offset in 0..=buf.len().saturating_sub(RECORD_HEADER_LEN) {
            if buf[offset..offset + 4] != JR_MAGIC_BYTES {
                continue;
            }
            if let Ok(header) = decode_record_header(&buf[offset..], generation)
                && header.synced_len > bad_at
            {
                return Ok(Some(start + offset as u64));
            }
        }
        if window_len < WINDOW {
            break;
        }
        start += WINDOW - RECORD_HEADER_LEN as u64;
    }
    Ok(None)
}

fn list_generations(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>> {
    let names = fs
        .list_dir(dir)
        .map_err(|error| Error::io("list", dir, error))?;
    let mut generations: Vec<u64> = names
        .iter()
        .filter_map(|name| crate::segment::parse_base(name, JOURNAL_SUFFIX))
        .collect();
    generations.sort_unstable();
    Ok(generations)
}

impl Journal {
    /// Opens (creating if needed) the journal in `dir` and reads what an earlier run left in
    /// it. Nothing is written until [`Journal::finish_recovery`]; logs opened with
    /// [`crate::ShardLog::open_journaled`] in between replay their share first.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: impl Into<PathBuf>,
        config: JournalConfig,
    ) -> Result<Journal> {
        let dir = dir.into();
        if config.checkpoint_bytes < 4096 || config.max_commit_bytes < 4096 {
            return Err(Error::InvalidArgument(
                "journal checkpoint_bytes and max_commit_bytes must be at least 4096".into(),
            ));
        }
        fs.create_dir_all(&dir)
            .map_err(|error| Error::io("create directory", &dir, error))?;
        if let Some(parent) = dir.parent() {
            fs.sync_dir(parent)
                .map_err(|error| Error::io("fsync directory", parent, error))?;
        }
        let guard = fs.lock(&dir.join(LOCK_FILE)).map_err(|error| {
            if error.kind() == std::io::ErrorKind::WouldBlock {
                Error::Locked { path: dir.clone() }
            } else {
                Error::io("lock", dir.join(LOCK_FILE), error)
            }
        })?;
        let generations = list_generations(&*fs, &dir)?;
        let mut replay: HashMap<String, Vec<EntryRef>> = HashMap::new();
        let mut entry_count = 0usize;
        for (index, &generation) in generations.iter().enumerate() {
            let path = Arc::new(dir.join(journal_name(generation)));
            let last = index + 1 == generations.len();
            let (file, read) = read_journal_file(&*fs, &path, generation, last)?;
            for (entry, frames_at) in read.entries {
                entry_count += 1;
                replay.entry(entry.key).or_default().push(EntryRef {
                    file: file.clone(),
                    journal_path: path.clone(),
                    frames_at,
                    frames_len: entry.frames_len as u64,
                    segment_base: entry.segment_base,
                    offset: entry.offset,
                });
            }
        }
        if entry_count > 0 {
            tracing::info!(dir = %dir.display(), files = generations.len(), entries = entry_count, logs = replay.len(), "journal holds entries to replay");
        }
        let shared = Arc::new(Shared {
            fs,
            dir,
            config,
            ready: Mutex::new(Ready::default()),
            ready_wake: Condvar::new(),
            poisoned: AtomicBool::new(false),
            poison_cause: Mutex::new(None),
            replay: Mutex::new(replay),
            recovering: AtomicBool::new(true),
            checkpoints: Mutex::new(CheckpointQueue::default()),
            checkpoint_wake: Condvar::new(),
            checkpoint_done: Condvar::new(),
            rotate_requested: AtomicBool::new(false),
            counters: Counters::default(),
            _lock: guard,
        });
        shared
            .counters
            .files
            .store(generations.len() as u64, Ordering::Relaxed);
        let next_generation = generations.last().map_or(0, |last| last + 1);
        Ok(Journal {
            shared,
            threads: Mutex::new(Vec::new()),
            pending_start: Mutex::new(Some(next_generation)),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The journal's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Ends recovery: every log with entries in the journal must have been opened (and so
    /// replayed and synced) by now. Entries no opened log claimed belong to logs that no longer
    /// exist (a deleted stream) and are dropped; the old journal files are deleted and the
    /// commit and checkpoint threads start. Appends submitted before this wait for it.
    pub fn finish_recovery(&self) -> Result<()> {
        let Some(generation) = lock(&self.pending_start).take() else {
            return Ok(());
        };
        let shared = &self.shared;
        let unclaimed = std::mem::take(&mut *lock(&shared.replay));
        for (key, entries) in &unclaimed {
            tracing::info!(log = %key, entries = entries.len(), "dropping journal entries of a log that no longer exists");
        }
        drop(unclaimed);
        let old = list_generations(&*shared.fs, &shared.dir)?;
        let active = ActiveFile::create(shared, generation)?;
        for old_generation in old {
            let path = shared.dir.join(journal_name(old_generation));
            shared
                .fs
                .remove_file(&path)
                .map_err(|error| Error::io("remove", &path, error))?;
        }
        shared
            .fs
            .sync_dir(&shared.dir)
            .map_err(|error| Error::io("fsync directory", &shared.dir, error))?;
        shared.counters.files.store(1, Ordering::Relaxed);
        shared.recovering.store(false, Ordering::SeqCst);

        let commit_shared = shared.clone();
        let commit = std::thread::Builder::new()
            .name("rheo-journal-commit".into())
            .spawn(move || run_commits(commit_shared, active))
            .map_err(|error| Error::io("spawn", &shared.dir, error))?;
        let checkpoint_shared = shared.clone();
        let checkpoint = std::thread::Builder::new()
            .name("rheo-journal-checkpoint".into())
            .spawn(move || run_checkpoints(checkpoint_shared))
            .map_err(|error| Error::io("spawn", &shared.dir, error))?;
        lock(&self.threads).extend([commit, checkpoint]);
        Ok(())
    }

    /// Starts a new journal file and waits until the checkpoint of the older ones is done:
    /// every segment file they covered synced and the files deleted.
    pub fn checkpoint_now(&self) -> Result<()> {
        let shared = &self.shared;
        shared.check_poisoned()?;
        if shared.recovering.load(Ordering::SeqCst) {
            return Ok(());
        }
        let target = lock(&shared.checkpoints).handed + 1;
        shared.rotate_requested.store(true, Ordering::SeqCst);
        shared.ready_wake.notify_all();
        let mut queue = lock(&shared.checkpoints);
        while queue.checkpointed < target && !queue.shutdown {
            queue = shared
                .checkpoint_done
                .wait_timeout(queue, Duration::from_millis(100))
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
            if shared.poisoned.load(Ordering::SeqCst) {
                break;
            }
        }
        drop(queue);
        shared.check_poisoned()
    }

    /// True once a journal write or fdatasync failed: every later append is refused.
    pub fn is_poisoned(&self) -> bool {
        self.shared.poisoned.load(Ordering::SeqCst)
    }

    /// What the journal measured since it was opened.
    pub fn stats(&self) -> JournalStats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        JournalStats {
            commits: get(&c.commits),
            syncs: get(&c.syncs),
            groups: get(&c.groups),
            bytes_written: get(&c.bytes_written),
            checkpoints: get(&c.checkpoints),
            checkpoint_syncs: get(&c.checkpoint_syncs),
            files: get(&c.files),
            replayed_entries: get(&c.replayed_entries),
            sync_seconds: c.sync_seconds.snapshot(),
            commit_logs: c.commit_logs.snapshot(),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        {
            let mut ready = lock(&self.shared.ready);
            ready.shutdown = true;
        }
        self.shared.ready_wake.notify_all();
        let threads = std::mem::take(&mut *lock(&self.threads));
        let mut threads = threads.into_iter();
        // The commit thread first: it drains, syncs and hands the last file over.
        if let Some(commit) = threads.next() {
            let _ = commit.join();
        }
        {
            let mut queue = lock(&self.shared.checkpoints);
            queue.shutdown = true;
        }
        self.shared.checkpoint_wake.notify_all();
        for thread in threads {
            let _ = thread.join();
        }
        // Appends queued on a journal that never started are refused.
        let waiting = std::mem::take(&mut lock(&self.shared.ready).logs);
        for log in waiting {
            let error = self.shared.refusal(&log);
            log.fail_queued(&error);
        }
    }
}

/// The journal file the commit thread writes.
struct ActiveFile {
    generation: u64,
    path: PathBuf,
    file: Box<dyn FileIo>,
    len: u64,
    synced_len: u64,
    opened: Instant,
    /// Logs written since this file was started, for its checkpoint.
    logs: Vec<Arc<ShardLog>>,
    /// When appends under the interval policy must be synced by, if any wait.
    sync_deadline: Option<Instant>,
    commits: u64,
    buf: Vec<u8>,
}

impl ActiveFile {
    fn create(shared: &Shared, generation: u64) -> Result<ActiveFile> {
        let path = shared.dir.join(journal_name(generation));
        let file = shared
            .fs
            .open(&path, OpenMode::CreateTruncate)
            .map_err(|error| Error::io("create", &path, error))?;
        file.write_all_at(&encode_file_header(generation), 0)
            .map_err(|error| Error::io("write", &path, error))?;
        file.sync_data()
            .map_err(|error| Error::io("fdatasync", &path, error))?;
        shared
            .fs
            .sync_dir(&shared.dir)
            .map_err(|error| Error::io("fsync directory", &shared.dir, error))?;
        Ok(ActiveFile {
            generation,
            path,
            file,
            len: JOURNAL_HEADER_LEN as u64,
            synced_len: JOURNAL_HEADER_LEN as u64,
            opened: Instant::now(),
            logs: Vec::new(),
            sync_deadline: None,
            commits: 0,
            buf: Vec::new(),
        })
    }

    fn sync(&mut self, shared: &Shared) -> Result<()> {
        if self.synced_len == self.len {
            self.sync_deadline = None;
            return Ok(());
        }
        let started = Instant::now();
        let synced = self.file.sync_data();
        shared
            .counters
            .sync_seconds
            .observe(started.elapsed().as_secs_f64());
        synced.map_err(|error| Error::io("fdatasync", &self.path, error))?;
        shared.counters.syncs.fetch_add(1, Ordering::Relaxed);
        self.synced_len = self.len;
        self.sync_deadline = None;
        Ok(())
    }
}

/// A log's group stamped and written to its segment, waiting for the journal's sync.
struct Staged {
    group: Vec<PendingAppend>,
    results: Vec<Appended>,
}

fn run_commits(shared: Arc<Shared>, mut active: ActiveFile) {
    let mut carry: Vec<Arc<ShardLog>> = Vec::new();
    loop {
        let (logs, shutdown) = {
            let mut ready = lock(&shared.ready);
            loop {
                if !ready.logs.is_empty() || !carry.is_empty() || ready.shutdown {
                    break;
                }
                let checkpoint_due = active.len > JOURNAL_HEADER_LEN as u64
                    && active.opened.elapsed() >= shared.config.checkpoint_interval;
                if checkpoint_due || shared.rotate_requested.load(Ordering::SeqCst) {
                    break;
                }
                if let Some(deadline) = active.sync_deadline
                    && deadline <= Instant::now()
                {
                    break;
                }
                let wait = active
                    .sync_deadline
                    .map_or(Duration::from_millis(500), |deadline| {
                        deadline.saturating_duration_since(Instant::now())
                    })
                    .min(Duration::from_millis(500));
                ready = shared
                    .ready_wake
                    .wait_timeout(ready, wait)
                    .unwrap_or_else(|poison| poison.into_inner())
                    .0;
            }
            let mut logs = std::mem::take(&mut carry);
            logs.append(&mut ready.logs);
            (logs, ready.shutdown)
        };
        if !logs.is_empty() {
            carry = commit(&shared, &mut active, logs);
        }
        if shared.poisoned.load(Ordering::SeqCst) {
            // Fail whatever is queued now and whatever is scheduled later (schedule refuses).
            let error = shared.poison_error();
            for log in carry.drain(..) {
                log.fail_queued(&error);
            }
            let waiting = std::mem::take(&mut lock(&shared.ready).logs);
            for log in waiting {
                log.fail_queued(&error);
            }
            if shutdown {
                break;
            }
            continue;
        }
        if let Some(deadline) = active.sync_deadline
            && deadline <= Instant::now()
            && let Err(error) = active.sync(&shared)
        {
            shared.poison(&error);
            continue;
        }
        let rotate = shared.rotate_requested.swap(false, Ordering::SeqCst)
            || active.len >= shared.config.checkpoint_bytes
            || (active.len > JOURNAL_HEADER_LEN as u64
                && active.opened.elapsed() >= shared.config.checkpoint_interval)
            || (shutdown && carry.is_empty());
        if rotate {
            match rotate_file(&shared, &mut active, !shutdown) {
                Ok(()) => {}
                Err(error) => shared.poison(&error),
            }
        }
        if shutdown && carry.is_empty() && lock(&shared.ready).logs.is_empty() {
            break;
        }
    }
}

/// Syncs the active file, starts the next one (unless stopping) and hands the finished one
/// to the checkpoint thread.
fn rotate_file(shared: &Shared, active: &mut ActiveFile, start_next: bool) -> Result<()> {
    active.sync(shared)?;
    let (path, logs) = if start_next {
        let next = ActiveFile::create(shared, active.generation + 1)?;
        shared.counters.files.fetch_add(1, Ordering::Relaxed);
        let finished = std::mem::replace(active, next);
        (finished.path, finished.logs)
    } else {
        (active.path.clone(), std::mem::take(&mut active.logs))
    };
    let mut queue = lock(&shared.checkpoints);
    queue.jobs.push(Handoff { path, logs });
    queue.handed += 1;
    drop(queue);
    shared.checkpoint_wake.notify_all();
    Ok(())
}

/// One commit: every ready log's group stamped, written to its segment and carried in one
/// journal record; one write and (if any log's policy asks) one fdatasync; then every log
/// published and every waiter completed. Returns the logs with appends still queued.
fn commit(
    shared: &Shared,
    active: &mut ActiveFile,
    logs: Vec<Arc<ShardLog>>,
) -> Vec<Arc<ShardLog>> {
    let generation = active.generation;
    let mut buf = std::mem::take(&mut active.buf);
    buf.clear();
    buf.resize(RECORD_HEADER_LEN, 0);
    let mut guards: Vec<MutexGuard<'_, Writer>> = Vec::with_capacity(logs.len());
    let mut staged: Vec<Option<Staged>> = Vec::with_capacity(logs.len());
    let mut entries = 0u32;
    let mut need_sync = false;
    let mut budget = shared.config.max_commit_bytes;
    for log in &logs {
        let mut group = log
            .queue
            .take_group(log.config.max_group_bytes.min(budget.max(1)));
        let group_bytes: usize = group.iter().map(|pending| pending.batch.frame.len()).sum();
        budget = budget.saturating_sub(group_bytes);
        let mut writer = lock(&log.writer);
        let link = log.journal.as_ref().expect("a scheduled log is journaled");
        let mark = buf.len();
        match log.stage_journaled(&mut writer, &mut group, &mut buf, &link.key) {
            Ok(results) => {
                entries += 1;
                match log.config.durability {
                    Durability::Sync => need_sync = true,
                    Durability::Interval(interval) => {
                        let deadline = Instant::now() + interval;
                        active.sync_deadline =
                            Some(active.sync_deadline.map_or(deadline, |d| d.min(deadline)));
                    }
                    Durability::None => {}
                }
                if link.generation.swap(generation, Ordering::Relaxed) != generation {
                    active.logs.push(log.clone());
                }
                staged.push(Some(Staged { group, results }));
            }
            Err(error) => {
                buf.truncate(mark);
                for pending in &group {
                    pending.slot.complete(Err(crate::log::replicate(&error)));
                }
                staged.push(None);
            }
        }
        guards.push(writer);
    }

    let written = if entries == 0 {
        Ok(())
    } else {
        write_record(shared, active, &mut buf, entries, need_sync)
    };
    if let Err(error) = &written {
        shared.poison(error);
    }
    for ((log, writer), staged) in logs.iter().zip(guards.iter_mut()).zip(&mut staged) {
        let Some(staged) = staged.take() else {
            continue;
        };
        match &written {
            Ok(()) => {
                log.publish_journaled(writer);
                drop_results(staged);
            }
            Err(error) => {
                for pending in &staged.group {
                    pending.slot.complete(Err(crate::log::replicate(error)));
                }
            }
        }
    }
    drop(guards);
    shared
        .counters
        .groups
        .fetch_add(u64::from(entries), Ordering::Relaxed);
    if entries > 0 {
        shared.counters.commit_logs.observe(f64::from(entries));
    }
    active.buf = buf;
    logs.into_iter()
        .filter(|log| log.queue.finish_turn())
        .collect()
}

fn drop_results(staged: Staged) {
    for (pending, result) in staged.group.iter().zip(staged.results) {
        pending.slot.complete(Ok(result));
    }
}

fn write_record(
    shared: &Shared,
    active: &mut ActiveFile,
    buf: &mut [u8],
    entries: u32,
    sync: bool,
) -> Result<()> {
    let generation = active.generation;
    let body_len = buf.len() - RECORD_HEADER_LEN;
    let body_crc = seeded_crc(generation, &buf[RECORD_HEADER_LEN..]);
    buf[JR_MAGIC..JR_MAGIC + 4].copy_from_slice(&JR_MAGIC_BYTES);
    put_u32(buf, JR_BODY_CRC, body_crc);
    put_u32(buf, JR_BODY_LEN, body_len as u32);
    put_u64(buf, JR_COMMIT, active.commits);
    put_u64(buf, JR_SYNCED_LEN, active.synced_len);
    put_u32(buf, JR_ENTRIES, entries);
    put_u32(buf, JR_FLAGS, 0);
    let header_crc = seeded_crc(generation, &buf[JR_BODY_CRC..RECORD_HEADER_LEN]);
    put_u32(buf, JR_HEADER_CRC, header_crc);
    active
        .file
        .write_all_at(buf, active.len)
        .map_err(|error| Error::io("write", &active.path, error))?;
    active.len += buf.len() as u64;
    active.commits += 1;
    shared.counters.commits.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .bytes_written
        .fetch_add(buf.len() as u64, Ordering::Relaxed);
    if sync {
        active.sync(shared)?;
    }
    Ok(())
}

/// Appends one entry's head and key to `buf`; the caller appends `frames_len` bytes of frames.
pub(crate) fn push_entry_head(
    buf: &mut Vec<u8>,
    key: &str,
    frames_len: usize,
    segment_base: u64,
    offset: u64,
) {
    let mut head = [0; ENTRY_HEAD_LEN];
    put_u32(&mut head, JE_KEY_LEN, key.len() as u32);
    put_u32(&mut head, JE_FRAMES_LEN, frames_len as u32);
    put_u64(&mut head, JE_SEGMENT, segment_base);
    put_u64(&mut head, JE_OFFSET, offset);
    buf.extend_from_slice(&head);
    buf.extend_from_slice(key.as_bytes());
}

/// Fills in the frames' length, segment and offset of the entry whose head is at `head_at`.
pub(crate) fn patch_entry_head(
    buf: &mut [u8],
    head_at: usize,
    frames_len: usize,
    segment_base: u64,
    offset: u64,
) {
    let head = &mut buf[head_at..head_at + ENTRY_HEAD_LEN];
    put_u32(head, JE_FRAMES_LEN, frames_len as u32);
    put_u64(head, JE_SEGMENT, segment_base);
    put_u64(head, JE_OFFSET, offset);
}

fn run_checkpoints(shared: Arc<Shared>) {
    loop {
        let (jobs, shutdown) = {
            let mut queue = lock(&shared.checkpoints);
            while queue.jobs.is_empty() && !queue.shutdown {
                queue = shared
                    .checkpoint_wake
                    .wait(queue)
                    .unwrap_or_else(|poison| poison.into_inner());
            }
            (std::mem::take(&mut queue.jobs), queue.shutdown)
        };
        let count = jobs.len() as u64;
        if !jobs.is_empty() {
            checkpoint(&shared, jobs);
        }
        let mut queue = lock(&shared.checkpoints);
        queue.checkpointed += count;
        shared.checkpoint_done.notify_all();
        if shutdown && queue.jobs.is_empty() {
            break;
        }
    }
}

/// Syncs every segment file the handed-over journal files covered, then deletes those files.
/// A log whose sync fails is poisoned, and the files are kept (they hold what it may lack).
fn checkpoint(shared: &Shared, jobs: Vec<Handoff>) {
    let mut logs: Vec<Arc<ShardLog>> = Vec::new();
    let mut paths = Vec::new();
    for job in jobs {
        paths.push(job.path);
        for log in job.logs {
            if !logs.iter().any(|known| Arc::ptr_eq(known, &log)) {
                logs.push(log);
            }
        }
    }
    let mut failed = false;
    for log in &logs {
        match log.sync_for_checkpoint() {
            Ok(synced) => {
                if synced {
                    shared
                        .counters
                        .checkpoint_syncs
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(error) => {
                tracing::error!(dir = %log.dir().display(), %error, "checkpoint could not sync a segment; keeping the journal files");
                failed = true;
            }
        }
    }
    drop(logs);
    if failed {
        lock(&shared.checkpoints).retained.extend(paths);
        return;
    }
    for path in &paths {
        if let Err(error) = shared.fs.remove_file(path) {
            tracing::warn!(path = %path.display(), %error, "could not delete a checkpointed journal file");
        } else {
            shared.counters.files.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if let Err(error) = shared.fs.sync_dir(&shared.dir) {
        tracing::warn!(dir = %shared.dir.display(), %error, "fsync of the journal directory failed");
    }
    shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
}
