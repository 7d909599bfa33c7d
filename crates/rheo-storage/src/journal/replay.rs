//! Replay at open: what the journal holds for a log's active segment, written back where a
//! crash lost it (FORMAT.md, "The journal", "Recovery").

use std::path::Path;

use super::EntryRef;
use crate::config::LogConfig;
use crate::error::{Error, Result};
use crate::io::FileIo;
use crate::scan::{self, ScanState};
use crate::segment::{BatchReader, Source};

/// Writes back what the journal holds for the active segment past what survived in it (a
/// crash lost those acknowledged groups from the page cache), checking that what did survive
/// matches the journal's copy, then checks the replayed batches like the rest of the tail.
/// Returns how many entries were written back.
pub(crate) fn replay_journal(
    file: &dyn FileIo,
    source: &Source,
    path: &Path,
    (base, encrypted): (u64, bool),
    state: &mut ScanState,
    replay: &[&EntryRef],
    config: &LogConfig,
) -> Result<u64> {
    let mut len = state.position;
    let mut applied = 0;
    for entry in replay {
        let frames = entry.read_frames()?;
        let end = entry.offset + frames.len() as u64;
        if entry.offset > len {
            return Err(Error::corruption(
                path,
                len,
                format!(
                    "the segment ends at offset {len} but the journal continues it at offset {}: acknowledged records are missing",
                    entry.offset
                ),
            ));
        }
        let overlap = (len.min(end) - entry.offset) as usize;
        if overlap > 0 {
            let mut existing = vec![0; overlap];
            file.read_exact_at(&mut existing, entry.offset)
                .map_err(|error| Error::io("read", path, error))?;
            if existing != frames[..overlap] {
                return Err(Error::corruption(
                    path,
                    entry.offset,
                    "the segment's bytes differ from the journal's copy of the same acknowledged records",
                ));
            }
        }
        if end > len {
            file.write_all_at(&frames[overlap..], len)
                .map_err(|error| Error::io("write", path, error))?;
            len = end;
            applied += 1;
        }
    }
    if len > state.position {
        tracing::warn!(path = %path.display(), entries = applied, bytes = len - state.position, "replayed acknowledged records from the journal");
        let mut reader = BatchReader::new(source, path, base, len).encrypted(encrypted);
        scan::scan(&mut reader, state, config.index_interval_bytes, path).map_err(|error| {
            Error::corruption(
                path,
                state.position,
                format!("records replayed from the journal do not check: {error}"),
            )
        })?;
    }
    Ok(applied)
}
