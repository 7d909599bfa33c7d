//! The journaled side of [`ShardLog`]: opening a log that commits through the node journal,
//! and the steps the journal's threads drive it through (stage, publish, fail, checkpoint
//! sync). The log's own group commit and reads are in `log.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::clock::Clock;
use crate::commit::{Appended, PendingAppend};
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::Fs;
use crate::log::{ShardLog, Writer, lock, replicate};

impl ShardLog {
    /// Opens the log in `dir` as [`ShardLog::open`] does, with its commits going through the
    /// node `journal`: one commit, one write and one fdatasync for every journaled log with
    /// appends waiting. `key` names the log in the journal and must be unique and stable for
    /// the life of the log's data (a new log at the same path needs a new key). Whatever the
    /// journal holds for `key` and the segment lacks is replayed before the open returns.
    /// Appends through [`ShardLog::submit`] never get a leader turn: the journal's thread
    /// writes.
    pub fn open_journaled(
        journal: &crate::Journal,
        key: impl Into<String>,
        fs: Arc<dyn Fs>,
        dir: impl Into<PathBuf>,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        first_sequence: u64,
    ) -> Result<Arc<ShardLog>> {
        let key = key.into();
        if key.is_empty() || key.len() > crate::journal::MAX_JOURNAL_KEY_BYTES {
            return Err(Error::InvalidArgument(format!(
                "a journal key must be 1 to {} bytes",
                crate::journal::MAX_JOURNAL_KEY_BYTES
            )));
        }
        let link = crate::journal::Link::new(journal.shared().clone(), key.clone());
        let opened =
            crate::recovery::open(fs, dir.into(), config, clock, first_sequence, Some(link));
        let mut log = match opened {
            Ok(log) => log,
            Err(error) => {
                // Damaged files: what the journal holds for this log is kept for a later start.
                journal.shared().hold(&key);
                return Err(error);
            }
        };
        journal.shared().release(&key);
        let log = Arc::new_cyclic(|me| {
            if let Some(link) = &mut log.journal {
                link.me = me.clone();
            }
            log
        });
        journal.shared().register(&key, &log);
        Ok(log)
    }

    /// The active segment and how many of its bytes are durable, for the checkpoint record.
    pub(crate) fn durable_point(&self) -> (u64, u64) {
        let writer = lock(&self.writer);
        (writer.active.base_seq, writer.synced_len)
    }

    /// True if the log's commits go through a node journal.
    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    /// The journal's commit thread: stamps this log's group, appends it to the journal record
    /// in `out` as one entry (head, `key`, frames) and writes the frames to the segment. The
    /// writer advances, but nothing is published (`ShardLog::publish`) until the journal record
    /// is written and synced as the policy asks. On failure `out` may hold a partial entry for the caller to cut.
    pub(crate) fn stage_journaled(
        &self,
        writer: &mut Writer,
        group: &mut [PendingAppend],
        out: &mut Vec<u8>,
        key: &str,
    ) -> Result<Vec<Appended>> {
        self.check_poisoned()?;
        if let Some(link) = &self.journal {
            link.shared.check_poisoned()?;
        }
        // The roll (if due) happens inside stamp_group, so the entry's segment and offset are
        // known only after it: write a head now and patch it.
        let head_at = out.len();
        crate::journal::push_entry_head(out, key, 0, 0, 0);
        let stamped = self.stamp_group(writer, group, out)?;
        let frames_len = (stamped.end - stamped.start) as usize;
        crate::journal::patch_entry_head(
            out,
            head_at,
            frames_len,
            writer.active.base_seq,
            stamped.start,
        );
        self.write_stamped(writer, out, &stamped)?;
        self.advance(writer, stamped, group.len())
    }

    /// Fails every append queued on this log with `error` (the journal takes no more).
    pub(crate) fn fail_queued(&self, error: &Error) {
        loop {
            let group = self.queue.take_group(usize::MAX);
            for pending in &group {
                pending.slot.complete(Err(replicate(error)));
            }
            if !self.queue.finish_turn() {
                return;
            }
        }
    }

    /// For a journal checkpoint: makes everything written to the active segment so far
    /// durable, without holding the writer lock during the fdatasync (the commit thread keeps
    /// committing meanwhile). Returns whether a sync ran.
    pub(crate) fn sync_for_checkpoint(&self) -> Result<bool> {
        self.check_poisoned()?;
        let (file, len, path) = {
            let writer = lock(&self.writer);
            if !writer.dirty() {
                return Ok(false);
            }
            (writer.file.clone(), writer.len, writer.active.path.clone())
        };
        let started = std::time::Instant::now();
        let synced = file.sync_data();
        self.recorder
            .sync_seconds
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = synced {
            let error = Error::io("fdatasync", path, error);
            self.poison(&error);
            return Err(error);
        }
        self.data_syncs.fetch_add(1, Ordering::Relaxed);
        let mut writer = lock(&self.writer);
        if Arc::ptr_eq(&writer.file, &file) {
            writer.synced_len = writer.synced_len.max(len);
        }
        Ok(true)
    }
}
