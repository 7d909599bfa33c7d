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

mod checkpoint;
mod commit;
mod file;
mod journaled;
mod marks;
mod replay;
mod verify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::commit::LeaderTurn;
use crate::error::{Error, Result};
use crate::io::{Fs, LockGuard};
use crate::log::{ShardLog, lock};
use crate::metrics::{
    Histogram, HistogramSnapshot, JOURNAL_COMMIT_LOGS_BOUNDS, SYNC_SECONDS_BOUNDS,
};

use checkpoint::{CheckpointQueue, run_checkpoints};
use commit::{ActiveFile, run_commits};
pub(crate) use file::JOURNAL_SUFFIX as JOURNAL_FILE_SUFFIX;
pub(crate) use file::{EntryRef, patch_entry_head, push_entry_head};
use file::{journal_name, list_generations, read_journal_file};
pub(crate) use marks::MARKS_FILE;
use marks::{Mark, Marks};
pub(crate) use replay::replay_journal;
pub(crate) use verify::{read_marks, verify_dir};

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
    /// Commits, or logs' shares of one, refused and undone because the disk was full or the
    /// process out of file descriptors (nothing of them was acknowledged).
    pub exhausted_writes: u64,
    /// fdatasync latency of journal files, in seconds.
    pub sync_seconds: HistogramSnapshot,
    /// Logs (shards) carried per commit.
    pub commit_logs: HistogramSnapshot,
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
    exhausted: AtomicU64,
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
            exhausted: AtomicU64::new(0),
            sync_seconds: Histogram::new(SYNC_SECONDS_BOUNDS),
            commit_logs: Histogram::new(JOURNAL_COMMIT_LOGS_BOUNDS),
        }
    }
}

/// What recovery knows of how much of a journaled log's active segment was durable.
#[derive(Debug, Clone)]
pub(crate) enum Durable {
    /// Nothing beyond the segment's own batch headers: a log without a journal, or a journal
    /// whose checkpoint record is missing (written before format version 4) or damaged.
    Unknown,
    /// The checkpoint record's line for the log, if it has one. Without a line (or with one for
    /// an older segment), everything acknowledged in the active segment is in the journal.
    Marked(Option<Mark>),
}

impl Durable {
    /// Bytes of segment `base` proven durable (`None`: unknown).
    pub(crate) fn for_segment(&self, base: u64) -> Option<u64> {
        match self {
            Durable::Unknown => None,
            Durable::Marked(Some(mark)) if mark.segment_base == base => Some(mark.durable_len),
            Durable::Marked(_) => Some(0),
        }
    }
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
    /// The last checkpoint record read or written (`None`: there is none, or it is damaged).
    marks: Mutex<Option<Marks>>,
    /// Every open journaled log, by key: the checkpoint record lists them all.
    logs: Mutex<HashMap<String, Weak<ShardLog>>>,
    /// The last durable point of logs closed since, listed until their directory is gone.
    closed: Mutex<Marks>,
    /// Logs that failed to open at this start (by key, or by key prefix when the caller could
    /// not even name them): their journal entries must not be dropped.
    held: Mutex<std::collections::HashSet<String>>,
    held_prefixes: Mutex<Vec<String>>,
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

    /// The recovered entries of the log with `key`, which the caller replays. They stay held
    /// until the open succeeds ([`Shared::release`]): a log that fails to open keeps them.
    pub(crate) fn claim(&self, key: &str) -> Vec<EntryRef> {
        lock(&self.replay).get(key).cloned().unwrap_or_default()
    }

    /// The log with `key` opened: its entries are in its segment now.
    pub(crate) fn release(&self, key: &str) {
        lock(&self.replay).remove(key);
    }

    /// The log with `key` failed to open (damaged files). Its entries and its line of the
    /// checkpoint record are kept, and so are the journal files, until a start that opens it
    /// (or finds it gone).
    pub(crate) fn hold(&self, key: &str) {
        lock(&self.held).insert(key.to_owned());
        let mark = match &*lock(&self.marks) {
            Some(marks) => marks.get(key).cloned(),
            None => None,
        };
        if let Some(mark) = mark {
            lock(&self.closed).insert(key.to_owned(), mark);
        }
    }

    /// What the checkpoint record says of the log with `key`.
    pub(crate) fn durable_mark(&self, key: &str) -> Durable {
        match &*lock(&self.marks) {
            None => Durable::Unknown,
            Some(marks) => Durable::Marked(marks.get(key).cloned()),
        }
    }

    pub(crate) fn register(&self, key: &str, log: &Arc<ShardLog>) {
        lock(&self.closed).remove(key);
        lock(&self.logs).insert(key.to_owned(), Arc::downgrade(log));
    }

    /// A closing log's last durable point: the record keeps listing it while its files exist.
    pub(crate) fn log_closed(
        &self,
        key: &str,
        log_dir: &Path,
        (segment_base, durable_len): (u64, u64),
    ) {
        let mark = Mark {
            dir: marks::mark_dir(&self.dir, log_dir),
            segment_base,
            durable_len,
        };
        lock(&self.closed).insert(key.to_owned(), mark);
    }

    /// Rewrites the checkpoint record with every open log's durable point. Called before any
    /// journal file is deleted, so whatever a deleted file held stays provably durable.
    fn write_marks(&self) -> Result<()> {
        let logs: Vec<(String, Arc<ShardLog>)> = {
            let mut registry = lock(&self.logs);
            registry.retain(|_, log| log.strong_count() > 0);
            registry
                .iter()
                .filter_map(|(key, log)| log.upgrade().map(|log| (key.clone(), log)))
                .collect()
        };
        let mut marks: Marks = lock(&self.closed).clone();
        for (key, log) in &logs {
            let (segment_base, durable_len) = log.durable_point();
            let dir = marks::mark_dir(&self.dir, log.dir());
            let mark = Mark {
                dir,
                segment_base,
                durable_len,
            };
            marks.insert(key.clone(), mark);
        }
        drop(logs);
        let lines: Vec<(&str, Mark)> = marks
            .iter()
            .map(|(key, mark)| (key.as_str(), mark.clone()))
            .collect();
        crate::io::write_atomically(&*self.fs, &self.dir, MARKS_FILE, &marks::encode(&lines))?;
        // A closed log whose directory is gone (a deleted stream) needs no line after this one.
        lock(&self.closed).retain(|_, mark| {
            self.fs
                .list_dir(&marks::resolve_dir(&self.dir, mark))
                .is_ok()
        });
        *lock(&self.marks) = Some(marks);
        Ok(())
    }

    /// A commit (or one log's share of it) failed for lack of space or descriptors and was
    /// undone: the node takes the next commit.
    pub(crate) fn count_exhausted(&self, error: &Error) {
        self.counters.exhausted.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(dir = %self.dir.display(), %error, "write refused for lack of space or file descriptors; nothing was acknowledged and writes resume when it is back");
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
        let guard = crate::recovery::lock_dir(&*fs, &dir)?;
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
        let recovered_marks = match marks::read(&*fs, &dir)? {
            Ok(marks) => marks,
            Err(reason) => {
                tracing::error!(dir = %dir.display(), %reason, "the journal's checkpoint record is damaged: bad log tails cannot be told from torn writes at this start, and are kept aside; the record is rewritten");
                None
            }
        };
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
            marks: Mutex::new(recovered_marks),
            logs: Mutex::new(HashMap::new()),
            closed: Mutex::new(Marks::new()),
            held: Mutex::new(std::collections::HashSet::new()),
            held_prefixes: Mutex::new(Vec::new()),
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
        let held = lock(&shared.held).clone();
        let held_prefixes = lock(&shared.held_prefixes).clone();
        let is_held = |key: &String| {
            held.contains(key)
                || held_prefixes
                    .iter()
                    .any(|prefix| key.starts_with(prefix.as_str()))
        };
        let unclaimed = std::mem::take(&mut *lock(&shared.replay));
        for (key, entries) in &unclaimed {
            if is_held(key) {
                tracing::error!(log = %key, entries = entries.len(), "keeping the journal files: they hold acknowledged records of a log that failed to open");
            } else {
                tracing::info!(log = %key, entries = entries.len(), "dropping journal entries of a log that no longer exists");
            }
        }
        let keep_files = unclaimed.keys().any(is_held);
        drop(unclaimed);
        let old = if keep_files {
            Vec::new()
        } else {
            list_generations(&*shared.fs, &shared.dir)?
        };
        let active = ActiveFile::create(shared, generation)?;
        // Every opened log synced its active segment; the record says so before the files
        // that held their replayed entries go.
        shared.write_marks()?;
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
        let files = list_generations(&*shared.fs, &shared.dir)?.len();
        shared.counters.files.store(files as u64, Ordering::Relaxed);
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

    /// Before [`Journal::finish_recovery`]: keeps the journal entries of every log whose key
    /// starts with `prefix` (logs the caller cannot open, nor even name, such as a stream whose
    /// metadata is damaged), and so the journal files holding them, for a later start.
    pub fn hold_prefix(&self, prefix: &str) {
        let shared = &self.shared;
        lock(&shared.held_prefixes).push(prefix.to_owned());
        // Their lines of the checkpoint record are kept too.
        if let Some(marks) = &*lock(&shared.marks) {
            let mut closed = lock(&shared.closed);
            for (key, mark) in marks.iter().filter(|(key, _)| key.starts_with(prefix)) {
                closed.insert(key.clone(), mark.clone());
            }
        }
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
            exhausted_writes: get(&c.exhausted),
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
