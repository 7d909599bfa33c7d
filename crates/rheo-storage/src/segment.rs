//! Segment files: naming, the sealed (memory-mapped) and active (pread) forms, the sparse
//! index, and walking batches.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use bytes::Bytes;

use crate::crypto::KeySlot;
use crate::error::{Error, Result};
use crate::format::{
    BATCH_HEADER_LEN, BatchHeader, FILE_HEADER_LEN, FileHeader, INDEX_ENTRY_LEN, INDEX_MAGIC,
    IndexEntry, SEAL_FOOTER_LEN, SEGMENT_MAGIC, SealFooter, seeded_hasher,
};
use crate::io::{FileIo, Fs};

/// Segment data files end in this.
pub(crate) const SEGMENT_SUFFIX: &str = ".seg";
/// Index files end in this.
pub(crate) const INDEX_SUFFIX: &str = ".idx";
/// Temporary files (a sealed index being written) end in this.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// `00000000000000000042.seg`: the base sequence number, zero-padded so names sort.
pub(crate) fn segment_name(base_seq: u64) -> String {
    format!("{base_seq:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn index_name(base_seq: u64) -> String {
    format!("{base_seq:020}{INDEX_SUFFIX}")
}

/// The base sequence number in a segment or index file name.
pub(crate) fn parse_base(name: &str, suffix: &str) -> Option<u64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Where a segment's bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A sealed segment's memory map.
    Mapped(Bytes),
    /// The active segment, read with pread.
    File(Arc<dyn FileIo>),
}

/// Reads batches from a [`Source`], with a read-ahead window for files so that walking many
/// small batches costs few system calls.
#[derive(Debug)]
pub(crate) struct BatchReader<'a> {
    source: &'a Source,
    path: &'a Path,
    segment_base: u64,
    /// Bytes past this offset are not part of the log (not yet committed, or a torn tail).
    end: u64,
    window_start: u64,
    window: Bytes,
    next_window: u64,
    /// The segment is encrypted: every batch must carry the encrypted flag, and bodies are
    /// ciphertext (their record structure is checked after decryption).
    encrypted: bool,
}

/// Read-ahead for the active segment: the first read of a reader fetches a small window (a
/// seek touches one or two headers), each refill doubles it up to the maximum (a scan streams).
/// The maximum stays under glibc's 128 KiB mmap threshold: larger windows were each a fresh
/// mapping, zeroed and faulted in page by page, and reads ran about a quarter slower.
const FIRST_WINDOW_BYTES: u64 = 4 * 1024;
const MAX_WINDOW_BYTES: u64 = 64 * 1024;

impl<'a> BatchReader<'a> {
    pub(crate) fn new(source: &'a Source, path: &'a Path, segment_base: u64, end: u64) -> Self {
        BatchReader {
            source,
            path,
            segment_base,
            end,
            window_start: 0,
            window: Bytes::new(),
            next_window: FIRST_WINDOW_BYTES,
            encrypted: false,
        }
    }

    /// For an encrypted segment's batches.
    pub(crate) fn encrypted(mut self, encrypted: bool) -> Self {
        self.encrypted = encrypted;
        self
    }

    /// Starts with the largest read-ahead window: for reads that stream many batches.
    pub(crate) fn streaming(mut self) -> Self {
        self.next_window = MAX_WINDOW_BYTES;
        self
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    fn bytes(&mut self, at: u64, len: u64) -> Result<Bytes> {
        if at + len > self.end {
            return Err(Error::corruption(
                self.path,
                at,
                "batch runs past the end of the segment",
            ));
        }
        match self.source {
            Source::Mapped(map) => Ok(map.slice(at as usize..(at + len) as usize)),
            Source::File(file) => {
                let window_end = self.window_start + self.window.len() as u64;
                if at < self.window_start || at + len > window_end {
                    let grown =
                        (self.window.len() as u64 * 2).clamp(FIRST_WINDOW_BYTES, MAX_WINDOW_BYTES);
                    let want = len.max(grown).min(self.end - at);
                    let mut buf = vec![0; want as usize];
                    file.read_exact_at(&mut buf, at)
                        .map_err(|error| Error::io("read", self.path, error))?;
                    self.window_start = at;
                    self.window = Bytes::from(buf);
                }
                let from = (at - self.window_start) as usize;
                Ok(self.window.slice(from..from + len as usize))
            }
        }
    }

    /// The header of the batch at `at`, checked (magic, header checksum), body unchecked.
    pub(crate) fn header(&mut self, at: u64) -> Result<BatchHeader> {
        let bytes = self.bytes(at, BATCH_HEADER_LEN as u64)?;
        let header = BatchHeader::decode(&bytes, self.segment_base)
            .map_err(|reason| Error::corruption(self.path, at, reason))?;
        if header.encrypted() != self.encrypted {
            return Err(Error::corruption(
                self.path,
                at,
                if self.encrypted {
                    "a plaintext batch in an encrypted segment"
                } else {
                    "an encrypted batch in a plaintext segment"
                },
            ));
        }
        Ok(header)
    }

    /// The batch at `at`, header and body both checked.
    pub(crate) fn batch(&mut self, at: u64) -> Result<(BatchHeader, Bytes)> {
        let header = self.header(at)?;
        let body = self.bytes(at + BATCH_HEADER_LEN as u64, u64::from(header.body_len))?;
        let mut hasher = seeded_hasher(self.segment_base);
        hasher.update(&body);
        if hasher.finalize() != header.body_crc {
            return Err(Error::corruption(
                self.path,
                at,
                "batch body checksum mismatch",
            ));
        }
        Ok((header, body))
    }
}

/// A segment that will never be written again, read through memory maps.
#[derive(Debug)]
pub(crate) struct SealedSegment {
    pub(crate) base_seq: u64,
    pub(crate) next_seq: u64,
    pub(crate) last_ts: i64,
    pub(crate) data_len: u64,
    pub(crate) path: PathBuf,
    pub(crate) source: Source,
    /// The index entries (the index file between header and footer), mapped.
    entries: Bytes,
    /// An encrypted segment's data key.
    pub(crate) key: Option<Arc<KeySlot>>,
}

impl SealedSegment {
    /// Maps a sealed segment whose index footer was checked; `index_file` is the whole index.
    pub(crate) fn new(
        path: PathBuf,
        base_seq: u64,
        data: Bytes,
        index_file: Bytes,
        footer: SealFooter,
        key: Option<Arc<KeySlot>>,
    ) -> SealedSegment {
        let entries = index_file.slice(FILE_HEADER_LEN..index_file.len() - SEAL_FOOTER_LEN);
        SealedSegment {
            base_seq,
            next_seq: footer.next_seq,
            last_ts: footer.last_ts,
            data_len: footer.data_len,
            path,
            source: Source::Mapped(data),
            entries,
            key,
        }
    }

    pub(crate) fn index(&self) -> IndexView<'_> {
        IndexView::Mapped(&self.entries)
    }
}

/// The segment being appended to. Its index lives in memory (bounded by the segment size) and
/// in an unsynced index file that recovery validates before trusting.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) base_seq: u64,
    pub(crate) base_ts: i64,
    pub(crate) path: PathBuf,
    pub(crate) source: Source,
    pub(crate) entries: RwLock<Vec<IndexEntry>>,
    /// An encrypted segment's data key (fresh, if this process created the segment).
    pub(crate) key: Option<Arc<KeySlot>>,
}

/// Sparse index entries of either segment form.
#[derive(Debug)]
pub(crate) enum IndexView<'a> {
    Mapped(&'a [u8]),
    Owned(&'a [IndexEntry]),
}

impl IndexView<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            IndexView::Mapped(bytes) => bytes.len() / INDEX_ENTRY_LEN,
            IndexView::Owned(entries) => entries.len(),
        }
    }

    pub(crate) fn get(&self, index: usize) -> IndexEntry {
        match self {
            IndexView::Mapped(bytes) => IndexEntry::decode(&bytes[index * INDEX_ENTRY_LEN..]),
            IndexView::Owned(entries) => entries[index],
        }
    }

    /// Index of the first entry for which `pred` is false (entries are sorted so `pred` holds
    /// for a prefix).
    pub(crate) fn partition_point(&self, pred: impl Fn(&IndexEntry) -> bool) -> usize {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if pred(&self.get(mid)) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// Position of the last indexed batch starting at or before `seq`.
    pub(crate) fn position_for_seq(&self, seq: u64) -> Option<u64> {
        let after = self.partition_point(|entry| entry.seq <= seq);
        (after > 0).then(|| self.get(after - 1).position)
    }

    /// Where to find the first record at or after `timestamp_ms`: the answer itself when the
    /// segment's first batch qualifies (no I/O), else a batch to walk forward from.
    pub(crate) fn lookup_timestamp(&self, timestamp_ms: i64) -> TimeLookup {
        let first_at_or_after = self.partition_point(|entry| entry.timestamp_ms < timestamp_ms);
        match first_at_or_after {
            0 if self.len() > 0 => TimeLookup::Found(self.get(0).seq),
            0 => TimeLookup::WalkFrom(None),
            after => TimeLookup::WalkFrom(Some(self.get(after - 1).position)),
        }
    }
}

/// Result of a timestamp lookup in a sparse index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeLookup {
    /// The segment's first batch is at or after the time: this is its sequence number.
    Found(u64),
    /// Walk batch headers forward from this position (or the first batch if `None`).
    WalkFrom(Option<u64>),
}

/// Builds the bytes of a sealed index file.
pub(crate) fn encode_sealed_index(
    header: FileHeader,
    entries: &[IndexEntry],
    footer: SealFooter,
) -> Vec<u8> {
    let mut file =
        Vec::with_capacity(FILE_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN + SEAL_FOOTER_LEN);
    file.extend_from_slice(&header.encode(INDEX_MAGIC));
    for entry in entries {
        file.extend_from_slice(&entry.encode());
    }
    let encoded = footer.encode(header.base_seq, &file);
    file.extend_from_slice(&encoded);
    file
}

/// Loads a sealed index and checks it against its segment: header, footer checksum, and the
/// data file's length.
pub(crate) fn load_sealed_index(
    fs: &dyn Fs,
    dir: &Path,
    base_seq: u64,
    data_len: u64,
) -> std::result::Result<(Bytes, SealFooter), String> {
    let path = dir.join(index_name(base_seq));
    let bytes = fs.map_sealed(&path).map_err(|error| error.to_string())?;
    let header = FileHeader::decode(&bytes, INDEX_MAGIC)?;
    if header.base_seq != base_seq {
        return Err("index header names another segment".into());
    }
    let footer = SealFooter::decode(&bytes, base_seq)?;
    if footer.data_len != data_len {
        return Err(format!(
            "seal footer records {} data bytes, the segment has {data_len}",
            footer.data_len
        ));
    }
    if footer.next_seq <= base_seq {
        return Err("seal footer describes an empty segment".into());
    }
    Ok((bytes, footer))
}

/// Parses the header of a segment file.
pub(crate) fn read_segment_header(file: &dyn FileIo, path: &Path) -> Result<FileHeader> {
    let mut buf = [0u8; FILE_HEADER_LEN];
    file.read_exact_at(&mut buf, 0)
        .map_err(|error| Error::io("read", path, error))?;
    FileHeader::decode(&buf, SEGMENT_MAGIC).map_err(|reason| Error::corruption(path, 0, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_sequence_and_parse_back() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_base(&segment_name(u64::MAX), SEGMENT_SUFFIX),
            Some(u64::MAX)
        );
        assert_eq!(parse_base("42.seg", SEGMENT_SUFFIX), None);
        assert_eq!(parse_base(&index_name(7), SEGMENT_SUFFIX), None);
        assert!(segment_name(9) < segment_name(10));
    }

    #[test]
    fn index_lookups_find_the_batch_to_walk_from() {
        let entries = [
            IndexEntry {
                seq: 0,
                timestamp_ms: 100,
                position: 40,
            },
            IndexEntry {
                seq: 10,
                timestamp_ms: 100,
                position: 500,
            },
            IndexEntry {
                seq: 20,
                timestamp_ms: 200,
                position: 900,
            },
        ];
        let index = IndexView::Owned(&entries);
        assert_eq!(index.position_for_seq(0), Some(40));
        assert_eq!(index.position_for_seq(15), Some(500));
        assert_eq!(index.position_for_seq(99), Some(900));
        assert_eq!(index.lookup_timestamp(50), TimeLookup::Found(0));
        assert_eq!(index.lookup_timestamp(100), TimeLookup::Found(0));
        assert_eq!(index.lookup_timestamp(150), TimeLookup::WalkFrom(Some(500)));
        assert_eq!(index.lookup_timestamp(999), TimeLookup::WalkFrom(Some(900)));
        assert_eq!(
            IndexView::Owned(&[]).lookup_timestamp(1),
            TimeLookup::WalkFrom(None)
        );
        assert_eq!(IndexView::Owned(&[]).position_for_seq(3), None);
    }
}
