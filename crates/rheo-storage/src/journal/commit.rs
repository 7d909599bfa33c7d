//! The commit thread: every ready log's group in one journal record, one write and at most
//! one fdatasync per commit, then every log published; and the move to a new journal file.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use super::Shared;
use super::checkpoint::Handoff;
use super::file::{
    JOURNAL_HEADER_LEN, RECORD_HEADER_LEN, encode_file_header, journal_name, write_record_header,
};
use crate::commit::{Appended, PendingAppend};
use crate::config::Durability;
use crate::error::{Error, Result};
use crate::io::{FileIo, OpenMode};
use crate::log::{ShardLog, Writer, lock};

/// The journal file the commit thread writes.
pub(super) struct ActiveFile {
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
    pub(super) fn create(shared: &Shared, generation: u64) -> Result<ActiveFile> {
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
    /// The writer before staging, to undo the group if the journal write runs out of space.
    before: crate::log::Rollback,
}

pub(super) fn run_commits(shared: Arc<Shared>, mut active: ActiveFile) {
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
                // No room for the next file: the current one goes on (it was synced and the
                // partial next file removed); the rotation is retried after a pause.
                Err(error) if error.is_resource_exhausted() => {
                    shared.count_exhausted(&error);
                    std::thread::sleep(Duration::from_millis(50));
                }
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
        let next = ActiveFile::create(shared, active.generation + 1).or_else(|error| {
            if error.is_resource_exhausted() {
                remove_partial_file(shared, active.generation + 1)?;
            }
            Err(error)
        })?;
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
        let before = writer.rollback_point();
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
                staged.push(Some(Staged {
                    group,
                    results,
                    before,
                }));
            }
            Err(error) => {
                buf.truncate(mark);
                if error.is_resource_exhausted() && !log.is_poisoned() {
                    log.roll_back(&mut writer, &before);
                    shared.count_exhausted(&error);
                }
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
    match &written {
        // Counted before any waiter learns of it, so stats read after an append include it.
        Ok(()) if entries > 0 => {
            shared
                .counters
                .groups
                .fetch_add(u64::from(entries), Ordering::Relaxed);
            shared.counters.commit_logs.observe(f64::from(entries));
        }
        Ok(()) => {}
        // Nothing of this commit reached a waiter: undo it everywhere and take the next one.
        Err(error) if error.is_resource_exhausted() => {
            shared.count_exhausted(error);
            if let Err(cut) = active.file.set_len(active.len) {
                shared.poison(&Error::io("truncate", &active.path, cut));
            }
        }
        Err(error) => shared.poison(error),
    }
    for ((log, writer), staged) in logs.iter().zip(guards.iter_mut()).zip(&mut staged) {
        let Some(staged) = staged.take() else {
            continue;
        };
        match &written {
            Ok(()) => {
                log.publish(writer);
                drop_results(staged);
            }
            Err(error) => {
                if error.is_resource_exhausted() {
                    log.roll_back(writer, &staged.before);
                }
                for pending in &staged.group {
                    pending.slot.complete(Err(crate::log::replicate(error)));
                }
            }
        }
    }
    drop(guards);
    active.buf = buf;
    logs.into_iter()
        .filter(|log| log.queue.finish_turn())
        .collect()
}

/// Removes a journal file whose creation failed, durably: left behind, it would be the newest
/// file at the next start, and the current file (written on after it) would be read as an
/// older, fully synced one.
fn remove_partial_file(shared: &Shared, generation: u64) -> Result<()> {
    let path = shared.dir.join(journal_name(generation));
    match shared.fs.remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(Error::io("remove", &path, error)),
    }
    shared
        .fs
        .sync_dir(&shared.dir)
        .map_err(|error| Error::io("fsync directory", &shared.dir, error))
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
    write_record_header(
        buf,
        active.generation,
        active.commits,
        active.synced_len,
        entries,
    );
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
