//! Walking a segment batch by batch with every check: shared by recovery, index rebuilds and
//! `verify`.

use crate::batch::{self, ReadBudget};
use crate::error::{Error, Result};
use crate::format::{BATCH_HEADER_LEN, BATCH_MAGIC, BatchHeader, IndexEntry};
use crate::io::FileIo;
use crate::segment::BatchReader;

/// Where a scan is, and what it has learned.
#[derive(Debug, Clone)]
pub(crate) struct ScanState {
    /// Offset of the next batch to check.
    pub(crate) position: u64,
    /// Sequence number the next batch must start at.
    pub(crate) next_seq: u64,
    /// Timestamp the next batch must not be below.
    pub(crate) last_ts: i64,
    pub(crate) first_ts: Option<i64>,
    pub(crate) entries: Vec<IndexEntry>,
    pub(crate) last_indexed: Option<u64>,
    pub(crate) batches: u64,
}

impl ScanState {
    pub(crate) fn new(position: u64, next_seq: u64, last_ts: i64) -> Self {
        ScanState {
            position,
            next_seq,
            last_ts,
            first_ts: None,
            entries: Vec::new(),
            last_indexed: None,
            batches: 0,
        }
    }
}

/// Checks batches from `state.position` to the reader's end: header and body checksums,
/// record structure, sequence continuity and non-decreasing timestamps. Builds sparse index
/// entries every `index_interval` bytes. Stops at the first bad batch with a corruption error;
/// `state.position` is then that batch's offset.
pub(crate) fn scan(
    reader: &mut BatchReader<'_>,
    state: &mut ScanState,
    index_interval: u64,
    path: &std::path::Path,
) -> Result<()> {
    while state.position < reader.end() {
        let at = state.position;
        let (header, body) = reader.batch(at)?;
        if header.base_seq != state.next_seq {
            return Err(Error::corruption(
                path,
                at,
                format!(
                    "batch starts at sequence {} where {} was expected",
                    header.base_seq, state.next_seq
                ),
            ));
        }
        if header.timestamp_ms < state.last_ts {
            return Err(Error::corruption(
                path,
                at,
                format!(
                    "batch timestamp {} is older than its predecessor's {}",
                    header.timestamp_ms, state.last_ts
                ),
            ));
        }
        // An encrypted body's record structure is checked when it is decrypted (on read, and
        // by `verify` with the keyring); its checksum, checked above, covers the ciphertext.
        if !header.encrypted() {
            let mut unused = Vec::new();
            batch::decode_into(
                &header,
                &body,
                u64::MAX,
                &mut ReadBudget::new(0, 0),
                &mut unused,
            )
            .map_err(|reason| Error::corruption(path, at, reason))?;
        }
        if state
            .last_indexed
            .is_none_or(|last| at - last >= index_interval)
        {
            state.entries.push(IndexEntry {
                seq: header.base_seq,
                timestamp_ms: header.timestamp_ms,
                position: at,
            });
            state.last_indexed = Some(at);
        }
        state.first_ts.get_or_insert(header.timestamp_ms);
        state.next_seq = header.next_seq();
        state.last_ts = header.timestamp_ms;
        state.position = at + header.total_len();
        state.batches += 1;
    }
    Ok(())
}

/// After a bad batch at `bad_at` in an active segment: is there proof that the bad bytes had
/// been made durable? A later intact batch header whose `synced_len` exceeds `bad_at` was
/// written after an fdatasync that covered `bad_at`, so the bad batch is corruption of durable
/// data, not a torn write. Without such proof the tail is torn and may be truncated.
pub(crate) fn durable_beyond(
    file: &dyn FileIo,
    segment_base: u64,
    bad_at: u64,
    len: u64,
) -> std::io::Result<Option<(u64, BatchHeader)>> {
    find_after(file, bad_at, len, BATCH_HEADER_LEN, BATCH_MAGIC, |bytes| {
        BatchHeader::decode(bytes, segment_base)
            .ok()
            .filter(|header| header.synced_len > bad_at)
    })
}

/// The first offset after `bad_at` (and before `len`) where a `header_len`-byte header that
/// starts with `magic` is accepted by `accept`, with what `accept` made of it. The file is read
/// in 1 MiB windows that overlap by a header, so a header straddling two is seen whole.
pub(crate) fn find_after<T>(
    file: &dyn FileIo,
    bad_at: u64,
    len: u64,
    header_len: usize,
    magic: [u8; 4],
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> std::io::Result<Option<(u64, T)>> {
    const WINDOW: u64 = 1 << 20;
    let mut start = bad_at + 1;
    while start + header_len as u64 <= len {
        let window_len = WINDOW.min(len - start);
        let mut buf = vec![0u8; window_len as usize];
        file.read_exact_at(&mut buf, start)?;
        for offset in 0..=buf.len().saturating_sub(header_len) {
            if buf[offset..offset + 4] != magic {
                continue;
            }
            if let Some(found) = accept(&buf[offset..offset + header_len]) {
                return Ok(Some((start + offset as u64, found)));
            }
        }
        if window_len < WINDOW {
            break;
        }
        start += WINDOW - header_len as u64;
    }
    Ok(None)
}
