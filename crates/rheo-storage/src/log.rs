//! [`ShardLog`]: one shard's append-only log, the engine's public face.
//!
//! Concurrency: appends go through group commit ([`crate::commit`]); the group leader (for a
//! journaled log, the journal's commit thread) owns the `Writer` (file handles, offsets).
//! Readers never touch the writer: they clone an `Arc<View>` (the sealed segments, the active
//! segment and the committed end) under one short mutex and read with no lock held, so a
//! reader never blocks the writer and a segment deleted under a reader stays readable through
//! the reader's map or file handle.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::batch::{self, RecordInput};
use crate::clock::Clock;
use crate::commit::{Appended, Callback, CommitQueue, LeaderTurn, PendingAppend, Wake};
use crate::config::{Durability, LogConfig};
use crate::error::{Error, Result};
use crate::format::{
    BATCH_FLAG_ENCRYPTED, BATCH_HEADER_LEN, BatchHeader, FILE_HEADER_LEN, FileHeader,
    INDEX_ENTRY_LEN, INDEX_MAGIC, IndexEntry, SEGMENT_MAGIC, SealFooter, seeded_crc, seeded_hasher,
};
use crate::io::{FileIo, Fs, LockGuard, OpenMode};
use crate::segment::{
    ActiveSegment, SealedSegment, Source, encode_sealed_index, index_name, segment_name,
};

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What readers see: an immutable snapshot, replaced after every commit.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) sealed: Arc<Vec<Arc<SealedSegment>>>,
    pub(crate) active: Arc<ActiveSegment>,
    /// Committed (readable) length of the active segment.
    pub(crate) active_len: u64,
    /// Sequence number the next appended record will get.
    pub(crate) next_seq: u64,
    /// Arrival timestamp of the newest record (or the log's base timestamp if empty).
    pub(crate) last_ts: i64,
}

/// State only the group-commit leader (or maintenance) touches.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) file: Arc<dyn FileIo>,
    pub(crate) index_file: Box<dyn FileIo>,
    pub(crate) index_file_len: u64,
    pub(crate) active: Arc<ActiveSegment>,
    pub(crate) sealed: Arc<Vec<Arc<SealedSegment>>>,
    /// Bytes written to the active segment.
    pub(crate) len: u64,
    /// Bytes of the active segment known durable.
    pub(crate) synced_len: u64,
    pub(crate) next_seq: u64,
    pub(crate) last_ts: i64,
    /// Timestamp of the active segment's first record, if it has one.
    pub(crate) active_first_ts: Option<i64>,
    /// Position of the active segment's last indexed batch.
    pub(crate) last_indexed: Option<u64>,
    /// When the active segment was last fdatasynced, by the log's clock (the interval policy
    /// measures from here, so tests move time instead of sleeping).
    pub(crate) last_sync_ms: i64,
    pub(crate) buf: Vec<u8>,
    /// Set when a staged group was undone in an encrypted active segment: its sequence numbers
    /// (the nonces) will be used again, so its data key must not seal another batch.
    pub(crate) key_spent: bool,
}

/// A writer's state before a group was staged, to put back if the group cannot be written
/// for lack of space or descriptors ([`ShardLog::roll_back`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rollback {
    base: u64,
    len: u64,
    next_seq: u64,
    last_ts: i64,
    last_indexed: Option<u64>,
    active_first_ts: Option<i64>,
    index_file_len: u64,
    entries: usize,
}

impl Writer {
    pub(crate) fn rollback_point(&self) -> Rollback {
        Rollback {
            base: self.active.base_seq,
            len: self.len,
            next_seq: self.next_seq,
            last_ts: self.last_ts,
            last_indexed: self.last_indexed,
            active_first_ts: self.active_first_ts,
            index_file_len: self.index_file_len,
            entries: read_lock(&self.active.entries).len(),
        }
    }

    pub(crate) fn view(&self) -> View {
        View {
            sealed: self.sealed.clone(),
            active: self.active.clone(),
            active_len: self.len,
            next_seq: self.next_seq,
            last_ts: self.last_ts,
        }
    }

    pub(crate) fn dirty(&self) -> bool {
        self.synced_len < self.len
    }
}

/// A group stamped by [`ShardLog::stamp_group`]: what its waiters get and what the writer
/// becomes once it is written.
#[derive(Debug)]
pub(crate) struct Stamped {
    results: Vec<Appended>,
    entries: Vec<IndexEntry>,
    /// Where the group's frames start in the buffer they were appended to.
    frames_at: usize,
    /// The segment offsets the frames go to.
    pub(crate) start: u64,
    pub(crate) end: u64,
    next_seq: u64,
    timestamp_ms: i64,
}

/// One shard's durable, append-only log of records.
///
/// Open it with [`ShardLog::open`]; share it between threads with an `Arc`. Appends block the
/// calling thread until their group is committed (async callers use `spawn_blocking` or a
/// dedicated thread).
#[derive(Debug)]
pub struct ShardLog {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: LogConfig,
    pub(crate) retention_ms: AtomicU64,
    /// Records below this sequence number were trimmed by retention at some point; the horizon
    /// never moves back, even if retention is raised (as in Kinesis).
    pub(crate) horizon_floor: AtomicU64,
    pub(crate) view: Mutex<Arc<View>>,
    pub(crate) queue: CommitQueue,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) poisoned: AtomicBool,
    /// Groups written and fdatasyncs of segment data done since open (for metrics).
    pub(crate) groups_committed: AtomicU64,
    pub(crate) data_syncs: AtomicU64,
    pub(crate) poison_cause: Mutex<Option<String>>,
    /// Latency, group-size, retention and corruption counters (for metrics).
    pub(crate) recorder: crate::metrics::Recorder,
    /// Set for a log opened with [`ShardLog::open_journaled`]: its commits go through the
    /// node journal.
    pub(crate) journal: Option<crate::journal::Link>,
    /// The key-encryption key new segments are encrypted under (`None`: plaintext). The next
    /// commit starts a new segment when the active one does not match it.
    pub(crate) key_target: Mutex<Option<String>>,
    pub(crate) _lock: Box<dyn LockGuard>,
}

/// Outcome of [`ShardLog::maintain`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// The interval policy's fdatasync ran.
    pub synced: bool,
    /// The active segment was sealed because it was too old.
    pub rolled: bool,
    /// Sealed segments deleted by retention.
    pub segments_deleted: usize,
}

/// Size and shape of a log, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// Sealed segments plus the active one.
    pub segments: usize,
    /// Bytes in segment files (indexes not counted).
    pub bytes: u64,
    /// Sequence number of the oldest record still on disk (it may be hidden by retention).
    pub first_sequence: u64,
    /// Sequence number the next record will get.
    pub next_sequence: u64,
    /// Bytes in the active segment.
    pub active_segment_bytes: u64,
    /// Group commits written since the log was opened.
    pub groups_committed: u64,
    /// fdatasyncs of segment data since the log was opened.
    pub data_syncs: u64,
}

impl ShardLog {
    /// Opens the log in `dir`, creating it if needed (its first record then gets sequence number
    /// `first_sequence`), and recovers from whatever an earlier crash left: see FORMAT.md.
    pub fn open(
        fs: Arc<dyn Fs>,
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        first_sequence: u64,
    ) -> Result<ShardLog> {
        crate::recovery::open(fs, dir.into(), config, clock, first_sequence, None)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings the log was opened with (retention reflects later changes).
    pub fn config(&self) -> LogConfig {
        let mut config = self.config.clone();
        config.retention = self.retention();
        config
    }

    /// Current retention.
    pub fn retention(&self) -> Duration {
        Duration::from_millis(self.retention_ms.load(Ordering::SeqCst))
    }

    /// Changes retention. Reads honour it at once; deletion happens at the next
    /// [`ShardLog::maintain`] or roll.
    pub fn set_retention(&self, retention: Duration) -> Result<()> {
        let mut probe = self.config.clone();
        probe.retention = retention;
        probe.validate().map_err(Error::InvalidArgument)?;
        self.retention_ms
            .store(retention.as_millis() as u64, Ordering::SeqCst);
        Ok(())
    }

    pub(crate) fn view(&self) -> Arc<View> {
        lock(&self.view).clone()
    }

    pub(crate) fn publish(&self, writer: &Writer) {
        *lock(&self.view) = Arc::new(writer.view());
    }

    pub(crate) fn check_poisoned(&self) -> Result<()> {
        if !self.poisoned.load(Ordering::SeqCst) {
            return Ok(());
        }
        Err(Error::Poisoned {
            path: self.dir.clone(),
            cause: lock(&self.poison_cause).clone().unwrap_or_default(),
        })
    }

    pub(crate) fn poison(&self, cause: &Error) {
        tracing::error!(dir = %self.dir.display(), error = %cause, "log poisoned");
        lock(&self.poison_cause).get_or_insert_with(|| cause.to_string());
        self.poisoned.store(true, Ordering::SeqCst);
    }

    /// True once a write or fsync has failed; every later append fails until reopen.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::SeqCst)
    }

    /// Appends `records` as one batch and returns once it is committed under the log's
    /// durability policy. Records get consecutive sequence numbers and one arrival timestamp.
    /// Bad input is refused before anything is written.
    pub fn append(&self, records: &[RecordInput<'_>]) -> Result<Appended> {
        self.check_poisoned()?;
        let encoded = batch::encode(records, &self.config)?;
        let (slot, wake) = self
            .queue
            .enqueue(encoded)
            .ok_or_else(|| self.closed_error())?;
        match wake {
            Wake::Done(result) => result,
            Wake::Lead => {
                match &self.journal {
                    Some(link) => link.schedule(LeaderTurn::for_own_wait()),
                    None => self.lead(LeaderTurn::for_own_wait()),
                }
                slot.wait_done()
            }
        }
    }

    /// Appends without holding a thread while waiting: `on_completion` receives the result
    /// (`Completion::Done`) from whichever thread commits the group, and, before that, possibly
    /// `Completion::Lead`, meaning the caller must pass the turn to [`ShardLog::lead`] from a
    /// thread that may block. If this call itself returns `Ok(Some(turn))`, the caller leads now.
    /// Bad input fails at once and the callback is never called.
    pub fn submit(
        &self,
        records: &[RecordInput<'_>],
        on_completion: Callback,
    ) -> Result<Option<LeaderTurn>> {
        self.check_poisoned()?;
        let encoded = batch::encode(records, &self.config)?;
        let turn = self
            .queue
            .submit(encoded, on_completion)
            .map_err(|()| self.closed_error())?;
        match (turn, &self.journal) {
            (Some(turn), Some(link)) => {
                link.schedule(turn);
                Ok(None)
            }
            (turn, _) => Ok(turn),
        }
    }

    fn closed_error(&self) -> Error {
        Error::Closed {
            path: self.dir.clone(),
        }
    }

    /// Closes the log for writes (resharding closes a parent shard this way): later appends
    /// fail with [`Error::Closed`]; appends already queued are committed first; then everything
    /// is made durable whatever the policy. Returns the sequence number after the last record,
    /// which no record will have unless [`ShardLog::reopen_writes`] undoes the close. Reads are
    /// unaffected. The closed state is not stored in the log: after a reopen,
    /// [`ShardLog::mark_closed`] restores it.
    pub fn close_writes(&self) -> Result<u64> {
        self.queue.close();
        self.sync()?;
        Ok(self.view().next_seq)
    }

    /// Accepts appends again after [`ShardLog::close_writes`]: for a caller that closed the log
    /// as part of a change it then undid (a reshard whose commit failed). The log continues
    /// where it stopped. Refused on a poisoned log, which takes no appends either way.
    pub fn reopen_writes(&self) -> Result<()> {
        self.check_poisoned()?;
        self.queue.reopen();
        Ok(())
    }

    /// Refuses later appends without waiting (for a log reopened after it was closed).
    pub fn mark_closed(&self) {
        self.queue.close();
    }

    /// True once [`ShardLog::close_writes`] or [`ShardLog::mark_closed`] was called.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Writes the next group of queued appends (one write, one fdatasync under `Sync`) and
    /// completes each of them, then hands leadership on. Blocks on I/O.
    pub fn lead(&self, turn: LeaderTurn) {
        turn.consume();
        let group = self.queue.take_group(self.config.max_group_bytes);
        self.write_group(group);
        self.queue.finish_group();
    }

    /// Writes one group and completes every waiter in it.
    fn write_group(&self, mut group: Vec<PendingAppend>) {
        // A panic here (a bug) must not leave the group's waiters blocked forever: it poisons
        // the log and fails the group like an I/O error would.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut writer = lock(&self.writer);
            self.commit_group(&mut writer, &mut group)
        }))
        .unwrap_or_else(|_| {
            let error = Error::Poisoned {
                path: self.dir.clone(),
                cause: "internal error: a group commit panicked".into(),
            };
            self.poison(&error);
            Err(error)
        });
        match outcome {
            Ok(results) => {
                for (pending, result) in group.iter().zip(results) {
                    pending.slot.complete(Ok(result));
                }
            }
            Err(error) => {
                for pending in &group {
                    pending.slot.complete(Err(replicate(&error)));
                }
            }
        }
    }

    fn commit_group(
        &self,
        writer: &mut Writer,
        group: &mut [PendingAppend],
    ) -> Result<Vec<Appended>> {
        self.check_poisoned()?;
        let mut buf = std::mem::take(&mut writer.buf);
        buf.clear();
        let stamped = self.stamp_group(writer, group, &mut buf);
        let written = stamped.and_then(|stamped| {
            self.write_stamped(writer, &buf, &stamped)?;
            Ok(stamped)
        });
        writer.buf = buf;
        let stamped = written?;
        let sync_now = match self.config.durability {
            Durability::Sync => true,
            Durability::Interval(interval) => {
                self.clock.now_ms().saturating_sub(writer.last_sync_ms)
                    >= interval.as_millis() as i64
            }
            Durability::None => false,
        };
        if sync_now {
            self.sync_writer(writer)?;
        }
        let results = self.advance(writer, stamped, group.len())?;
        self.publish(writer);
        Ok(results)
    }

    /// Rolls the segment if this group is due to, then gives each batch of `group` its
    /// sequence numbers, the group's timestamp and its final header, and appends the frames
    /// to `out`. Writes no data.
    pub(crate) fn stamp_group(
        &self,
        writer: &mut Writer,
        group: &mut [PendingAppend],
        out: &mut Vec<u8>,
    ) -> Result<Stamped> {
        let group_bytes: u64 = group.iter().map(|p| p.batch.frame.len() as u64).sum();
        if !self.key_matches(writer) {
            self.rekey(writer)?;
        }
        let now = self.clock.now_ms();
        let age_due = writer.active_first_ts.is_some_and(|first| {
            now.saturating_sub(first) >= self.config.segment_max_age.as_millis() as i64
        });
        let size_due = writer.len > FILE_HEADER_LEN as u64
            && writer.len + group_bytes > self.config.segment_max_bytes;
        if age_due || size_due {
            self.roll(writer)?;
            self.enforce_retention_locked(writer);
        }
        let key = writer.active.key.as_ref().and_then(|slot| slot.loaded());

        let timestamp_ms = now.max(writer.last_ts);
        let segment_base = writer.active.base_seq;
        let start = writer.len;
        let mut position = start;
        let mut next_seq = writer.next_seq;
        let mut results = Vec::with_capacity(group.len());
        let mut entries = Vec::new();
        let frames_at = out.len();
        for pending in group.iter_mut() {
            let batch = &pending.batch;
            let header_at = out.len();
            let body_at = header_at + BATCH_HEADER_LEN;
            out.extend_from_slice(&batch.frame);
            let (body_crc, flags) = match &key {
                None => {
                    let mut body_crc = seeded_hasher(segment_base);
                    body_crc.combine(&batch.body_crc);
                    (body_crc.finalize(), 0)
                }
                Some(key) => {
                    key.seal(
                        segment_base,
                        next_seq,
                        timestamp_ms,
                        batch.count,
                        out,
                        body_at,
                    );
                    (
                        seeded_crc(segment_base, &out[body_at..]),
                        BATCH_FLAG_ENCRYPTED,
                    )
                }
            };
            let header = BatchHeader {
                body_crc,
                body_len: (out.len() - body_at) as u32,
                base_seq: next_seq,
                timestamp_ms,
                count: batch.count,
                synced_len: writer.synced_len,
                flags,
            };
            out[header_at..body_at].copy_from_slice(&header.encode(segment_base));
            let index_due = writer
                .last_indexed
                .is_none_or(|last| position - last >= self.config.index_interval_bytes);
            if index_due {
                entries.push(IndexEntry {
                    seq: next_seq,
                    timestamp_ms,
                    position,
                });
                writer.last_indexed = Some(position);
            }
            results.push(Appended {
                first_sequence: next_seq,
                count: batch.count,
                timestamp_ms,
            });
            position += (out.len() - header_at) as u64;
            next_seq += u64::from(batch.count);
        }
        Ok(Stamped {
            results,
            entries,
            frames_at,
            start,
            end: position,
            next_seq,
            timestamp_ms,
        })
    }

    /// Writes a stamped group's frames (`out[stamped.frames_at..]`) at the end of the active
    /// segment. A failure poisons the log.
    pub(crate) fn write_stamped(
        &self,
        writer: &mut Writer,
        out: &[u8],
        stamped: &Stamped,
    ) -> Result<()> {
        let write = writer
            .file
            .write_all_at(&out[stamped.frames_at..], stamped.start);
        if let Err(error) = write {
            let error = Error::io("write", &writer.active.path, error);
            self.poison_unless_exhausted(&error);
            return Err(error);
        }
        writer.len = stamped.end;
        Ok(())
    }

    /// Poisons the log, unless `error` only says a resource ran out: then the caller undoes
    /// what it staged ([`ShardLog::roll_back`]) and the log stays usable.
    pub(crate) fn poison_unless_exhausted(&self, error: &Error) {
        if !error.is_resource_exhausted() || !self.is_journaled() {
            self.poison(error);
        }
    }

    /// Puts the writer back to `to`, taken before a group was staged whose write (to the
    /// segment, its index or the journal) failed for lack of a resource. Nothing of the group
    /// was published or acknowledged. Its bytes are cut from the segment, so a crash cannot
    /// bring back a record its writer was told failed; if even that fails, the log is poisoned.
    pub(crate) fn roll_back(&self, writer: &mut Writer, to: &Rollback) {
        // A roll during staging is complete and durable: the group is undone in the new segment.
        let rolled = writer.active.base_seq != to.base;
        let header = FILE_HEADER_LEN as u64;
        let (len, last_indexed, first_ts, index_len, entries) = if rolled {
            (header, None, None, header, 0)
        } else {
            (
                to.len,
                to.last_indexed,
                to.active_first_ts,
                to.index_file_len,
                to.entries,
            )
        };
        writer.len = len;
        writer.synced_len = writer.synced_len.min(len);
        writer.next_seq = to.next_seq;
        writer.last_ts = to.last_ts;
        writer.last_indexed = last_indexed;
        writer.active_first_ts = first_ts;
        writer.index_file_len = index_len;
        lock_write(&writer.active.entries).truncate(entries);
        if writer.active.key.is_some() {
            writer.key_spent = true;
        }
        // The index is derived data: a stale entry past the end is dropped at open.
        let _ = writer.index_file.set_len(index_len);
        if let Err(error) = writer.file.set_len(len) {
            let error = Error::io("truncate", &writer.active.path, error);
            self.poison(&error);
        }
    }

    /// After a stamped group is written: its index entries, the writer's new end and counts.
    pub(crate) fn advance(
        &self,
        writer: &mut Writer,
        stamped: Stamped,
        appends: usize,
    ) -> Result<Vec<Appended>> {
        if !stamped.entries.is_empty() {
            self.append_index_entries(writer, &stamped.entries)?;
        }
        writer.next_seq = stamped.next_seq;
        writer.last_ts = stamped.timestamp_ms;
        self.groups_committed.fetch_add(1, Ordering::Relaxed);
        self.recorder.group_appends.observe(appends as f64);
        writer.active_first_ts.get_or_insert(stamped.timestamp_ms);
        Ok(stamped.results)
    }

    fn sync_writer(&self, writer: &mut Writer) -> Result<()> {
        let started = std::time::Instant::now();
        let synced = writer.file.sync_data();
        self.recorder
            .sync_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = synced {
            let error = Error::io("fdatasync", &writer.active.path, error);
            self.poison(&error);
            return Err(error);
        }
        writer.synced_len = writer.len;
        writer.last_sync_ms = self.clock.now_ms();
        self.data_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn append_index_entries(&self, writer: &mut Writer, entries: &[IndexEntry]) -> Result<()> {
        let mut bytes = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN);
        for entry in entries {
            bytes.extend_from_slice(&entry.encode());
        }
        if let Err(error) = writer
            .index_file
            .write_all_at(&bytes, writer.index_file_len)
        {
            let path = self.dir.join(index_name(writer.active.base_seq));
            let error = Error::io("write", path, error);
            self.poison_unless_exhausted(&error);
            return Err(error);
        }
        writer.index_file_len += bytes.len() as u64;
        lock_write(&writer.active.entries).extend_from_slice(entries);
        Ok(())
    }

    /// Seals the active segment and starts a new one (encrypted as the target asks). See
    /// FORMAT.md, "Rolling a segment". A keyring refusal fails before anything is written and
    /// leaves the log as it was; an I/O failure poisons it.
    pub(crate) fn roll(&self, writer: &mut Writer) -> Result<()> {
        let active = writer.active.clone();
        let Some(first_ts) = writer.active_first_ts else {
            return Ok(());
        };
        let prepared = self.prepare_target_key(writer.next_seq)?;
        // A roll that ran out of space or descriptors is retried before the next append: the
        // swap is its last step, so the writer still appends to the old segment, which has
        // taken nothing since its (possibly written) sealed index.
        self.roll_with(writer, active, first_ts, prepared)
            .inspect_err(|error| self.poison_unless_exhausted(error))
    }

    fn roll_with(
        &self,
        writer: &mut Writer,
        active: Arc<ActiveSegment>,
        first_ts: i64,
        prepared: Option<crate::crypto::PreparedKey>,
    ) -> Result<()> {
        // 1. The data must be durable before an index claims it is sealed.
        if writer.dirty() {
            self.sync_writer(writer)?;
        }
        // 2. The sealed index, written atomically.
        let entries = read_lock(&active.entries).clone();
        let footer = SealFooter {
            entry_count: entries.len() as u64,
            data_len: writer.len,
            next_seq: writer.next_seq,
            first_ts,
            last_ts: writer.last_ts,
        };
        let header = FileHeader {
            base_seq: active.base_seq,
            base_ts: active.base_ts,
            encrypted: false,
        };
        let index_bytes = encode_sealed_index(header, &entries, footer);
        crate::io::write_atomically(
            &*self.fs,
            &self.dir,
            &index_name(active.base_seq),
            &index_bytes,
        )?;
        // 3. The next segment, created durably.
        let new_active = create_segment(
            &self.fs,
            &self.dir,
            writer.next_seq,
            writer.last_ts,
            prepared,
            self.config.encryption.as_ref(),
        )?;
        // 4. Swap in memory.
        let data = self
            .fs
            .map_sealed(&active.path)
            .map_err(|error| Error::io("map", &active.path, error))?;
        let sealed = SealedSegment::new(
            active.path.clone(),
            active.base_seq,
            data,
            bytes::Bytes::from(index_bytes),
            footer,
            active.key.clone(),
        );
        let mut list = Vec::with_capacity(writer.sealed.len() + 1);
        list.extend(writer.sealed.iter().cloned());
        list.push(Arc::new(sealed));
        writer.sealed = Arc::new(list);
        writer.file = new_active.file;
        writer.index_file = new_active.index_file;
        writer.index_file_len = FILE_HEADER_LEN as u64;
        writer.active = new_active.segment;
        writer.len = FILE_HEADER_LEN as u64;
        writer.synced_len = FILE_HEADER_LEN as u64;
        writer.active_first_ts = None;
        writer.last_indexed = None;
        writer.key_spent = false;
        self.publish(writer);
        tracing::debug!(dir = %self.dir.display(), base = writer.next_seq, "rolled segment");
        Ok(())
    }

    /// Deletes sealed segments whose newest record is older than retention. Failures to unlink
    /// are logged and retried next time: they lose no data.
    fn enforce_retention_locked(&self, writer: &mut Writer) -> usize {
        let cutoff = self
            .clock
            .now_ms()
            .saturating_sub(self.retention().as_millis() as i64);
        let expired = writer
            .sealed
            .iter()
            .take_while(|segment| segment.last_ts < cutoff)
            .count();
        if expired == 0 {
            return 0;
        }
        self.recorder
            .retention_deleted_segments
            .fetch_add(expired as u64, Ordering::Relaxed);
        let (gone, kept) = writer.sealed.split_at(expired);
        let gone: Vec<_> = gone.to_vec();
        self.horizon_floor
            .fetch_max(gone[gone.len() - 1].next_seq, Ordering::SeqCst);
        writer.sealed = Arc::new(kept.to_vec());
        self.publish(writer);
        for segment in &gone {
            // The key file goes last: deleting it shreds whatever copy of the segment exists.
            let key = segment
                .key
                .as_ref()
                .map(|_| crate::crypto::key_name(segment.base_seq));
            let names = [segment_name(segment.base_seq), index_name(segment.base_seq)];
            for name in names.into_iter().chain(key) {
                let path = self.dir.join(name);
                if let Err(error) = self.fs.remove_file(&path) {
                    tracing::warn!(path = %path.display(), %error, "retention could not delete file");
                }
            }
        }
        if let Err(error) = self.fs.sync_dir(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), %error, "fsync of log directory failed");
        }
        tracing::debug!(dir = %self.dir.display(), segments = gone.len(), "retention deleted segments");
        gone.len()
    }

    /// Housekeeping for idle logs, to call every second or so: the interval policy's
    /// fdatasync, rolling a segment that has grown too old, and deleting segments past
    /// retention.
    pub fn maintain(&self) -> Result<Maintenance> {
        self.check_poisoned()?;
        let mut writer = lock(&self.writer);
        let mut report = Maintenance::default();
        if let Durability::Interval(interval) = self.config.durability
            && self.journal.is_none()
            && writer.dirty()
            && self.clock.now_ms().saturating_sub(writer.last_sync_ms)
                >= interval.as_millis() as i64
        {
            self.sync_writer(&mut writer)?;
            report.synced = true;
        }
        let now = self.clock.now_ms();
        if writer.active_first_ts.is_some_and(|first| {
            now.saturating_sub(first) >= self.config.segment_max_age.as_millis() as i64
        }) {
            match self.roll(&mut writer) {
                Ok(()) => report.rolled = true,
                // The keyring refuses the target key: keep writing the active segment (its data
                // key is still good) and try again at the next pass.
                Err(Error::Key { path, fault }) => {
                    tracing::warn!(dir = %self.dir.display(), path = %path.display(), %fault, "segment not rolled: no key for the next one");
                }
                Err(error) => return Err(error),
            }
        }
        report.segments_deleted = self.enforce_retention_locked(&mut writer);
        Ok(report)
    }

    /// Makes everything appended so far durable, whatever the policy.
    pub fn sync(&self) -> Result<()> {
        self.check_poisoned()?;
        let mut writer = lock(&self.writer);
        if writer.dirty() {
            self.sync_writer(&mut writer)?;
        }
        Ok(())
    }

    /// Seals the active segment now (if it holds records) and starts a new one.
    pub fn roll_now(&self) -> Result<()> {
        self.check_poisoned()?;
        let mut writer = lock(&self.writer);
        self.roll(&mut writer)
    }

    /// Size and shape of the log.
    pub fn stats(&self) -> LogStats {
        let view = self.view();
        let sealed_bytes: u64 = view.sealed.iter().map(|segment| segment.data_len).sum();
        LogStats {
            segments: view.sealed.len() + 1,
            bytes: sealed_bytes + view.active_len,
            first_sequence: view
                .sealed
                .first()
                .map_or(view.active.base_seq, |segment| segment.base_seq),
            next_sequence: view.next_seq,
            active_segment_bytes: view.active_len,
            groups_committed: self.groups_committed.load(Ordering::Relaxed),
            data_syncs: self.data_syncs.load(Ordering::Relaxed),
        }
    }

    /// What the log measured about itself since it was opened.
    pub fn metrics(&self) -> crate::metrics::LogMetrics {
        self.recorder.snapshot()
    }

    /// Syncs (under any policy) and closes the log.
    pub fn close(self) -> Result<()> {
        self.sync()
    }
}

impl Drop for ShardLog {
    fn drop(&mut self) {
        let mut writer = lock(&self.writer);
        if !self.is_poisoned()
            && writer.dirty()
            && let Err(error) = self.sync_writer(&mut writer)
        {
            tracing::error!(dir = %self.dir.display(), %error, "final fdatasync failed");
        }
        if let Some(link) = &self.journal {
            let point = (writer.active.base_seq, writer.synced_len);
            link.shared.log_closed(&link.key, &self.dir, point);
        }
    }
}

pub(crate) fn lock_write<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|poison| poison.into_inner())
}

pub(crate) fn read_lock<T>(lock: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poison| poison.into_inner())
}

/// A freshly created, durable, empty segment.
pub(crate) struct NewSegment {
    pub(crate) segment: Arc<ActiveSegment>,
    pub(crate) file: Arc<dyn FileIo>,
    pub(crate) index_file: Box<dyn FileIo>,
}

/// Creates `base_seq`'s segment and index files: header written and synced, directory synced.
/// With a `key`, its key file is written (atomically) first and the segment is encrypted.
pub(crate) fn create_segment(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    base_seq: u64,
    base_ts: i64,
    key: Option<crate::crypto::PreparedKey>,
    encryption: Option<&crate::crypto::Encryption>,
) -> Result<NewSegment> {
    let key = match key {
        Some(prepared) => Some(prepared.write(&**fs, dir)?),
        None => None,
    };
    let header = FileHeader {
        base_seq,
        base_ts,
        encrypted: key.is_some(),
    };
    let path = dir.join(segment_name(base_seq));
    let file: Arc<dyn FileIo> = fs
        .open(&path, OpenMode::CreateTruncate)
        .map_err(|error| Error::io("create", &path, error))?
        .into();
    file.write_all_at(&header.encode(SEGMENT_MAGIC), 0)
        .map_err(|error| Error::io("write", &path, error))?;
    file.sync_data()
        .map_err(|error| Error::io("fdatasync", &path, error))?;
    let index_path = dir.join(index_name(base_seq));
    let index_file = fs
        .open(&index_path, OpenMode::CreateTruncate)
        .map_err(|error| Error::io("create", &index_path, error))?;
    let index_header = FileHeader {
        encrypted: false,
        ..header
    };
    index_file
        .write_all_at(&index_header.encode(INDEX_MAGIC), 0)
        .map_err(|error| Error::io("write", &index_path, error))?;
    fs.sync_dir(dir)
        .map_err(|error| Error::io("fsync directory", dir, error))?;
    Ok(NewSegment {
        segment: Arc::new(ActiveSegment {
            base_seq,
            base_ts,
            path,
            source: Source::File(file.clone()),
            entries: Default::default(),
            key: key.map(|key| {
                Arc::new(crate::crypto::KeySlot::new(
                    fs.clone(),
                    dir,
                    base_seq,
                    encryption,
                    Some(key),
                ))
            }),
        }),
        file,
        index_file,
    })
}

/// A copy of `error` for each waiter of a failed group (errors are not `Clone`).
pub(crate) fn replicate(error: &Error) -> Error {
    match error {
        Error::Io { op, path, source } => Error::Io {
            op,
            path: path.clone(),
            source: match source.raw_os_error() {
                Some(code) => std::io::Error::from_raw_os_error(code),
                None => std::io::Error::new(source.kind(), source.to_string()),
            },
        },
        Error::Poisoned { path, cause } => Error::Poisoned {
            path: path.clone(),
            cause: cause.clone(),
        },
        Error::Corruption {
            path,
            offset,
            reason,
        } => Error::Corruption {
            path: path.clone(),
            offset: *offset,
            reason: reason.clone(),
        },
        Error::Locked { path } => Error::Locked { path: path.clone() },
        Error::Closed { path } => Error::Closed { path: path.clone() },
        Error::InvalidArgument(message) => Error::InvalidArgument(message.clone()),
        Error::Key { path, fault } => Error::Key {
            path: path.clone(),
            fault: fault.clone(),
        },
    }
}
