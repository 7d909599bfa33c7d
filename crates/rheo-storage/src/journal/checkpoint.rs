//! The checkpoint thread: syncs the segments a finished journal file covered, then deletes it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::Shared;
use crate::log::{ShardLog, lock};

/// Most segment fdatasyncs one checkpoint runs at once.
const SYNC_THREADS: usize = 8;

/// A finished journal file handed to the checkpoint thread.
#[derive(Debug)]
pub(super) struct Handoff {
    pub(super) path: PathBuf,
    pub(super) logs: Vec<Arc<ShardLog>>,
}

#[derive(Debug, Default)]
pub(super) struct CheckpointQueue {
    pub(super) jobs: Vec<Handoff>,
    /// Files whose checkpoint failed: kept, since they hold what a poisoned log may lack.
    pub(super) retained: Vec<PathBuf>,
    pub(super) shutdown: bool,
    /// Files handed over so far, and of those, checkpointed (for [`Journal::checkpoint_now`]).
    pub(super) handed: u64,
    pub(super) checkpointed: u64,
}

pub(super) fn run_checkpoints(shared: Arc<Shared>) {
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
        let mut count = jobs.len() as u64;
        let retry = if jobs.is_empty() {
            None
        } else {
            checkpoint(&shared, jobs, shutdown)
        };
        if let Some(retry) = retry {
            // The record could not be written for lack of space: try again in a while, the
            // journal files staying meanwhile (they hold nothing the segments lack).
            count -= retry.len() as u64;
            std::thread::sleep(RETRY_AFTER);
            let mut queue = lock(&shared.checkpoints);
            let later = std::mem::replace(&mut queue.jobs, retry);
            queue.jobs.extend(later);
        }
        let mut queue = lock(&shared.checkpoints);
        queue.checkpointed += count;
        shared.checkpoint_done.notify_all();
        if shutdown && queue.jobs.is_empty() {
            break;
        }
    }
}

/// How long the checkpoint thread waits before retrying a record it had no space to write.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// Syncs every segment file the handed-over journal files covered, then deletes those files.
/// A log whose sync fails is poisoned, and the files are kept (they hold what it may lack).
/// Returns the jobs to retry if only the record's write ran out of space (never at shutdown:
/// then the files are kept for the next start).
fn checkpoint(shared: &Shared, jobs: Vec<Handoff>, shutdown: bool) -> Option<Vec<Handoff>> {
    let mut logs: Vec<Arc<ShardLog>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut paths = Vec::new();
    for job in &jobs {
        paths.push(job.path.clone());
        for log in &job.logs {
            if seen.insert(Arc::as_ptr(log)) {
                logs.push(log.clone());
            }
        }
    }
    // The segments' fdatasyncs are independent: up to SYNC_THREADS run at once, so a checkpoint
    // of a thousand shards (and a clean stop) waits for the disk, not for a thousand round trips.
    let failed = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..SYNC_THREADS.min(logs.len()) {
            scope.spawn(|| {
                while let Some(log) = logs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match log.sync_for_checkpoint() {
                        Ok(true) => {
                            shared
                                .counters
                                .checkpoint_syncs
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(false) => {}
                        Err(error) => {
                            tracing::error!(dir = %log.dir().display(), %error, "checkpoint could not sync a segment; keeping the journal files");
                            failed.store(true, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
    });
    let mut failed = failed.into_inner();
    drop(logs);
    if !failed && let Err(error) = shared.write_marks() {
        if error.is_resource_exhausted() && !shutdown {
            tracing::warn!(dir = %shared.dir.display(), %error, "checkpoint could not write its record for lack of space; retrying");
            return Some(jobs);
        }
        tracing::error!(dir = %shared.dir.display(), %error, "checkpoint could not write its record; keeping the journal files");
        failed = true;
    }
    drop(jobs);
    if failed {
        lock(&shared.checkpoints).retained.extend(paths);
        return None;
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
    None
}
