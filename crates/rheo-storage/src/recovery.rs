//! Opening a log: what a restart finds after a clean stop or a crash, and how it is made
//! consistent. The cases are argued in FORMAT.md ("Recovery"); in short:
//! - sealed segments are trusted through their checksummed index footer (cost: the index, not
//!   the data); a missing or bad sealed index is rebuilt by a full checked scan;
//! - the active segment is checked from the last point its own headers prove durable, so open
//!   time grows with the unsynced tail, not with what is stored;
//! - a bad batch in that tail is a torn write and is truncated, unless a later intact header or
//!   the node's checkpoint record proves the bad bytes had been synced: then it is corruption
//!   and the open fails. Where neither can prove it either way (a log without a journal, or a
//!   journal without a readable checkpoint record), the bytes are kept aside in `aside/` before
//!   the cut, and the log says so loudly.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use bytes::Bytes;

use crate::clock::Clock;
use crate::commit::CommitQueue;
use crate::config::LogConfig;
use crate::crypto::{KEY_SUFFIX, KeySlot, key_name};
use crate::error::{Error, Result};
use crate::format::{FILE_HEADER_LEN, FileHeader, INDEX_ENTRY_LEN, INDEX_MAGIC, IndexEntry};
use crate::io::{self, FileIo, Fs, OpenMode};
use crate::journal::{Durable, EntryRef, Link, replay_journal};
use crate::log::{ShardLog, Writer, create_segment};
use crate::scan::{self, ScanState};
use crate::segment::{
    self, ActiveSegment, BatchReader, INDEX_SUFFIX, SEGMENT_SUFFIX, SealedSegment, Source,
    TMP_SUFFIX, encode_sealed_index, index_name, parse_base, segment_name,
};

/// Name of the lock file that keeps a log single-writer.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The directory in a log where recovery keeps the bytes of a bad tail it cut without proof
/// that they were never synced (`<base>.<offset>.tail`).
pub const ASIDE_DIR: &str = "aside";

pub(crate) fn open(
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    config: LogConfig,
    clock: Arc<dyn Clock>,
    first_sequence: u64,
    journal: Option<Link>,
) -> Result<ShardLog> {
    config.validate().map_err(Error::InvalidArgument)?;
    let started = Instant::now();
    let names = match fs.list_dir(&dir) {
        Ok(names) => names,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            fs.create_dir_all(&dir)
                .map_err(|error| Error::io("create directory", &dir, error))?;
            if let Some(parent) = dir.parent() {
                fs.sync_dir(parent)
                    .map_err(|error| Error::io("fsync directory", parent, error))?;
            }
            Vec::new()
        }
        Err(error) => return Err(Error::io("list", &dir, error)),
    };
    let lock = lock_dir(&*fs, &dir)?;

    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|name| parse_base(name, SEGMENT_SUFFIX))
        .collect();
    bases.sort_unstable();
    remove_leftovers(&*fs, &dir, &names, &bases)?;

    // What the journal holds for this log; only the active segment's share can be missing
    // from the segment files (every other segment was synced when it was sealed).
    let replay = journal
        .as_ref()
        .map(|link| link.shared.claim(&link.key))
        .unwrap_or_default();
    let durable = journal
        .as_ref()
        .map_or(Durable::Unknown, |link| link.shared.durable_mark(&link.key));
    let newest = bases.last().copied();
    if let Some(entry) = replay
        .iter()
        .find(|entry| newest.is_none_or(|newest| entry.segment_base > newest))
    {
        return Err(Error::corruption(
            dir.join(segment_name(entry.segment_base)),
            0,
            "the journal holds acknowledged records for this segment, but the segment file is missing",
        ));
    }
    let mut replayed = 0;
    let mut kept_aside = 0;
    let mut sealed: Vec<Arc<SealedSegment>> = Vec::new();
    let writer = match bases.split_last() {
        None => fresh_writer(&fs, &dir, first_sequence, 0, sealed.clone())?,
        Some((&last, older)) => {
            for &base in older {
                let segment = load_sealed(&fs, &dir, base, &config)?;
                check_continuity(&sealed, &segment)?;
                sealed.push(Arc::new(segment));
            }
            let last_path = dir.join(segment_name(last));
            let last_len = fs
                .open(&last_path, OpenMode::Read)
                .and_then(|file| file.len())
                .map_err(|error| Error::io("open", &last_path, error))?;
            match segment::load_sealed_index(&*fs, &dir, last, last_len) {
                Ok((index, footer)) => {
                    // Crashed after sealing, before the next segment was durably created.
                    let segment = map_sealed(&fs, &dir, last, index, footer, &config)?;
                    check_continuity(&sealed, &segment)?;
                    let (next_seq, last_ts) = (segment.next_seq, segment.last_ts);
                    sealed.push(Arc::new(segment));
                    fresh_writer(&fs, &dir, next_seq, last_ts, sealed.clone())?
                }
                Err(_) => {
                    let previous = sealed.last().map(|s| (s.next_seq, s.last_ts));
                    let replay: Vec<&EntryRef> = replay
                        .iter()
                        .filter(|entry| entry.segment_base == last)
                        .collect();
                    let active = Active {
                        base: last,
                        previous,
                        replay: &replay,
                        durable_len: durable.for_segment(last),
                    };
                    let recovered = recover_active(&fs, &dir, active, &config, sealed.clone())?;
                    replayed = recovered.replayed;
                    kept_aside = u64::from(recovered.kept_aside);
                    recovered.writer
                }
            }
        }
    };
    if let Some(link) = &journal {
        link.shared.count_replayed(replayed);
    }
    tracing::info!(
        dir = %dir.display(),
        segments = writer.sealed.len() + 1,
        replayed_from_journal = replayed,
        next_sequence = writer.next_seq,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "opened log"
    );
    let retention_ms = config.retention.as_millis() as u64;
    let first_on_disk = writer
        .sealed
        .first()
        .map_or(writer.active.base_seq, |segment| segment.base_seq);
    let view = Arc::new(writer.view());
    let key_target = config
        .encryption
        .as_ref()
        .and_then(|encryption| encryption.key_id.clone());
    let log = ShardLog {
        dir,
        fs,
        clock,
        config,
        retention_ms: AtomicU64::new(retention_ms),
        horizon_floor: AtomicU64::new(first_on_disk),
        view: Mutex::new(view),
        queue: CommitQueue::default(),
        writer: Mutex::new(writer),
        poisoned: AtomicBool::new(false),
        groups_committed: AtomicU64::new(0),
        data_syncs: AtomicU64::new(0),
        poison_cause: Mutex::new(None),
        recorder: crate::metrics::Recorder::opened(kept_aside),
        journal,
        key_target: Mutex::new(key_target),
        _lock: lock,
    };
    log.refresh_key_at_open()?;
    Ok(log)
}

/// Takes `dir/LOCK` (a log's, or the journal's): `Locked` if another open holds it.
pub(crate) fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<Box<dyn crate::io::LockGuard>> {
    fs.lock(&dir.join(LOCK_FILE)).map_err(|error| {
        if error.kind() == std::io::ErrorKind::WouldBlock {
            Error::Locked {
                path: dir.to_path_buf(),
            }
        } else {
            Error::io("lock", dir.join(LOCK_FILE), error)
        }
    })
}

/// Deletes temporary files, and index and key files whose segment is gone (a crash between
/// the unlinks of retention, or before a new segment was created after its key file).
fn remove_leftovers(fs: &dyn Fs, dir: &Path, names: &[String], bases: &[u64]) -> Result<()> {
    let mut removed = false;
    for name in names {
        let orphan = [INDEX_SUFFIX, KEY_SUFFIX]
            .iter()
            .any(|suffix| parse_base(name, suffix).is_some_and(|base| !bases.contains(&base)));
        if name.ends_with(TMP_SUFFIX) || orphan {
            let path = dir.join(name);
            fs.remove_file(&path)
                .map_err(|error| Error::io("remove", &path, error))?;
            removed = true;
        }
    }
    if removed {
        fs.sync_dir(dir)
            .map_err(|error| Error::io("fsync directory", dir, error))?;
    }
    Ok(())
}

/// A plaintext segment's key file is left from a crash while an empty segment was recreated
/// without encryption: it keys nothing.
fn remove_stale_key_file(fs: &dyn Fs, dir: &Path, base: u64) -> Result<()> {
    let path = dir.join(key_name(base));
    match fs.remove_file(&path) {
        Ok(()) => fs
            .sync_dir(dir)
            .map_err(|error| Error::io("fsync directory", dir, error)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io("remove", &path, error)),
    }
}

fn check_continuity(sealed: &[Arc<SealedSegment>], next: &SealedSegment) -> Result<()> {
    match sealed.last() {
        Some(previous) if previous.next_seq != next.base_seq => Err(Error::corruption(
            &next.path,
            0,
            format!(
                "segment starts at sequence {} but the previous one ends before {}",
                next.base_seq, previous.next_seq
            ),
        )),
        _ => Ok(()),
    }
}

/// The key slot of a segment whose header says it is encrypted (unwrapped on first read).
fn key_slot(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    base: u64,
    header: &FileHeader,
    config: &LogConfig,
) -> Option<Arc<KeySlot>> {
    header.encrypted.then(|| {
        Arc::new(KeySlot::new(
            fs.clone(),
            dir,
            base,
            config.encryption.as_ref(),
            None,
        ))
    })
}

fn map_sealed(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    base: u64,
    index: Bytes,
    footer: crate::format::SealFooter,
    config: &LogConfig,
) -> Result<SealedSegment> {
    let path = dir.join(segment_name(base));
    let data = fs
        .map_sealed(&path)
        .map_err(|error| Error::io("map", &path, error))?;
    let header = FileHeader::decode(&data, crate::format::SEGMENT_MAGIC)
        .map_err(|reason| Error::corruption(&path, 0, reason))?;
    if header.base_seq != base {
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "header names segment {} but the file is named for {base}",
                header.base_seq
            ),
        ));
    }
    let key = key_slot(fs, dir, base, &header, config);
    Ok(SealedSegment::new(path, base, data, index, footer, key))
}

/// Loads a segment that is not the last: through its sealed index if that checks out, else by
/// a full scan that rebuilds the index. Such a segment was fully synced before its successor
/// was created, so any bad batch in it is corruption.
fn load_sealed(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    base: u64,
    config: &LogConfig,
) -> Result<SealedSegment> {
    let path = dir.join(segment_name(base));
    let data = fs
        .map_sealed(&path)
        .map_err(|error| Error::io("map", &path, error))?;
    match segment::load_sealed_index(&**fs, dir, base, data.len() as u64) {
        Ok((index, footer)) => map_sealed(fs, dir, base, index, footer, config),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "rebuilding sealed index from the segment");
            let header = FileHeader::decode(&data, crate::format::SEGMENT_MAGIC)
                .map_err(|reason| Error::corruption(&path, 0, reason))?;
            let source = Source::Mapped(data.clone());
            let mut reader = BatchReader::new(&source, &path, base, data.len() as u64)
                .encrypted(header.encrypted);
            let mut state = ScanState::new(FILE_HEADER_LEN as u64, base, header.base_ts);
            scan::scan(&mut reader, &mut state, config.index_interval_bytes, &path)?;
            let Some(first_ts) = state.first_ts else {
                return Err(Error::corruption(
                    &path,
                    FILE_HEADER_LEN as u64,
                    "sealed segment holds no records",
                ));
            };
            let footer = crate::format::SealFooter {
                entry_count: state.entries.len() as u64,
                data_len: data.len() as u64,
                next_seq: state.next_seq,
                first_ts,
                last_ts: state.last_ts,
            };
            let index_header = FileHeader {
                encrypted: false,
                ..header
            };
            let index = encode_sealed_index(index_header, &state.entries, footer);
            crate::io::write_atomically(&**fs, dir, &index_name(base), &index)?;
            let key = key_slot(fs, dir, base, &header, config);
            Ok(SealedSegment::new(
                path,
                base,
                data,
                Bytes::from(index),
                footer,
                key,
            ))
        }
    }
}

fn fresh_writer(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    base: u64,
    base_ts: i64,
    sealed: Vec<Arc<SealedSegment>>,
) -> Result<Writer> {
    let created = create_segment(fs, dir, base, base_ts, None, None)?;
    Ok(Writer {
        file: created.file,
        index_file: created.index_file,
        index_file_len: FILE_HEADER_LEN as u64,
        active: created.segment,
        sealed: Arc::new(sealed),
        len: FILE_HEADER_LEN as u64,
        synced_len: FILE_HEADER_LEN as u64,
        next_seq: base,
        last_ts: base_ts,
        active_first_ts: None,
        last_indexed: None,
        last_sync_ms: 0,
        buf: Vec::new(),
        key_spent: false,
    })
}

/// Reads the active segment's index file: the longest prefix of entries that is well formed
/// (sorted, inside the segment, first at the first batch). Entries are derived data; the
/// caller still checks them against the batches they point at.
fn load_active_index(fs: &dyn Fs, dir: &Path, base: u64, len: u64) -> Vec<IndexEntry> {
    let path = dir.join(index_name(base));
    let Ok(bytes) = io::read_whole(fs, &path) else {
        return Vec::new();
    };
    match FileHeader::decode(&bytes, INDEX_MAGIC) {
        Ok(header) if header.base_seq == base => {}
        _ => return Vec::new(),
    }
    let mut entries: Vec<IndexEntry> = Vec::new();
    for chunk in bytes[FILE_HEADER_LEN..].chunks_exact(INDEX_ENTRY_LEN) {
        let entry = IndexEntry::decode(chunk);
        let well_placed = match entries.last() {
            None => entry.position == FILE_HEADER_LEN as u64 && entry.seq == base,
            Some(previous) => {
                entry.position > previous.position
                    && entry.seq > previous.seq
                    && entry.timestamp_ms >= previous.timestamp_ms
            }
        };
        if !well_placed || entry.position >= len {
            break;
        }
        entries.push(entry);
    }
    entries
}

/// The newest segment, to recover as the active one.
struct Active<'a> {
    base: u64,
    /// The end and last timestamp of the segment before it, if any.
    previous: Option<(u64, i64)>,
    /// The journal's entries for this segment, in commit order.
    replay: &'a [&'a EntryRef],
    /// How many of its bytes the node's checkpoint record proves durable (`None`: nothing
    /// can prove it, so a bad tail is kept aside before it is cut).
    durable_len: Option<u64>,
}

/// What recovering the active segment gave.
struct Recovered {
    writer: Writer,
    /// Journal entries written back into the segment.
    replayed: u64,
    /// Whether a bad tail was cut without proof and kept aside.
    kept_aside: bool,
}

/// Recovers the active segment.
fn recover_active(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    active: Active<'_>,
    config: &LogConfig,
    sealed: Vec<Arc<SealedSegment>>,
) -> Result<Recovered> {
    let Active {
        base,
        previous,
        replay,
        durable_len,
    } = active;
    let path = dir.join(segment_name(base));
    let file: Arc<dyn FileIo> = fs
        .open(&path, OpenMode::ReadWrite)
        .map_err(|error| Error::io("open", &path, error))?
        .into();
    let len = file
        .len()
        .map_err(|error| Error::io("stat", &path, error))?;
    let (previous_next, previous_ts) = previous.unwrap_or((base, 0));
    if previous_next != base {
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "segment starts at sequence {base} but the previous one ends before {previous_next}"
            ),
        ));
    }
    let header = match segment::read_segment_header(&*file, &path) {
        Ok(header) => header,
        // Created but its header never became durable: nothing was ever appended to it.
        Err(_) if len <= FILE_HEADER_LEN as u64 => {
            if !replay.is_empty() || durable_len.is_some_and(|d| d > FILE_HEADER_LEN as u64) {
                return Err(Error::corruption(
                    &path,
                    0,
                    "acknowledged records were written to this segment (the journal or the checkpoint record says so), but its header is torn",
                ));
            }
            tracing::warn!(path = %path.display(), "recreating a segment whose creation was torn by a crash");
            return Ok(Recovered {
                writer: fresh_writer(fs, dir, base, previous_ts, sealed)?,
                replayed: 0,
                kept_aside: false,
            });
        }
        Err(error) => return Err(error),
    };
    if header.base_seq != base {
        return Err(Error::corruption(
            &path,
            0,
            format!(
                "header names segment {} but the file is named for {base}",
                header.base_seq
            ),
        ));
    }

    if let Some(durable) = durable_len
        && len < durable
    {
        return Err(Error::corruption(
            &path,
            len,
            format!(
                "the segment is {len} bytes long, but the node's checkpoint record says {durable} of its bytes were durable"
            ),
        ));
    }
    if !header.encrypted {
        remove_stale_key_file(&**fs, dir, base)?;
    }

    // The last index entry that points at an intact batch header tells how much was durable
    // when that batch was written; the full check starts from the entry at or before it.
    let source = Source::File(file.clone());
    let mut reader = BatchReader::new(&source, &path, base, len).encrypted(header.encrypted);
    let mut entries = load_active_index(&**fs, dir, base, len);
    let mut synced_len = FILE_HEADER_LEN as u64;
    while let Some(entry) = entries.last() {
        match reader.header(entry.position) {
            Ok(found)
                if found.base_seq == entry.seq && found.timestamp_ms == entry.timestamp_ms =>
            {
                synced_len = found.synced_len.max(FILE_HEADER_LEN as u64);
                break;
            }
            _ => {
                entries.pop();
            }
        }
    }
    let keep = entries.partition_point(|entry| entry.position <= synced_len);
    let mut state = match keep.checked_sub(1).map(|at| entries[at]) {
        Some(start) => {
            entries.truncate(keep - 1);
            let mut state = ScanState::new(start.position, start.seq, start.timestamp_ms);
            state.first_ts = entries.first().map(|entry| entry.timestamp_ms);
            state.last_indexed = entries.last().map(|entry| entry.position);
            state.entries = entries;
            state
        }
        None => ScanState::new(
            FILE_HEADER_LEN as u64,
            base,
            header.base_ts.max(previous_ts),
        ),
    };
    let scanned_from = state.position;
    let mut kept_aside = false;
    if let Err(error) = scan::scan(&mut reader, &mut state, config.index_interval_bytes, &path) {
        let bad_at = state.position;
        let proof = scan::durable_beyond(&*file, base, bad_at, len)
            .map_err(|error| Error::io("read", &path, error))?;
        if let Some((proof_at, proof_header)) = proof {
            return Err(Error::corruption(
                &path,
                bad_at,
                format!(
                    "{error}; not a torn write: the batch at offset {proof_at} was written after {} bytes were durable",
                    proof_header.synced_len
                ),
            ));
        }
        match durable_len {
            Some(durable) if bad_at < durable => {
                return Err(Error::corruption(
                    &path,
                    bad_at,
                    format!(
                        "{error}; not a torn write: the node's checkpoint record says {durable} bytes of this segment were durable"
                    ),
                ));
            }
            // Everything acknowledged past the mark is in the journal, which writes it back.
            Some(_) => tracing::warn!(
                path = %path.display(),
                offset = bad_at,
                bytes = len - bad_at,
                %error,
                "truncating torn tail"
            ),
            None => {
                let aside = keep_aside(&**fs, dir, &*file, (base, bad_at), len)?;
                tracing::error!(
                    path = %path.display(),
                    offset = bad_at,
                    bytes = len - bad_at,
                    kept_at = %aside.display(),
                    %error,
                    "cutting a bad tail that nothing proves was never synced: it may be a torn write or damage to acknowledged records; its bytes are kept aside"
                );
                kept_aside = true;
            }
        }
        file.set_len(bad_at)
            .map_err(|error| Error::io("truncate", &path, error))?;
    }
    let replayed = replay_journal(
        &*file,
        &source,
        &path,
        (base, header.encrypted),
        &mut state,
        replay,
        config,
    )?;
    let len = state.position;
    // Whatever survived may sit only in the page cache (a process crash): make it durable
    // before later batch headers claim it is.
    file.sync_data()
        .map_err(|error| Error::io("fdatasync", &path, error))?;

    // Rewrite the index so the file matches what recovery derived.
    let mut index_bytes = FileHeader {
        base_seq: base,
        base_ts: header.base_ts,
        encrypted: false,
    }
    .encode(INDEX_MAGIC)
    .to_vec();
    for entry in &state.entries {
        index_bytes.extend_from_slice(&entry.encode());
    }
    crate::io::write_atomically(&**fs, dir, &index_name(base), &index_bytes)?;
    let index_path = dir.join(index_name(base));
    let index_file = fs
        .open(&index_path, OpenMode::ReadWrite)
        .map_err(|error| Error::io("open", &index_path, error))?;
    tracing::debug!(path = %path.display(), scanned_bytes = len - scanned_from, "recovered active segment");

    let writer = Writer {
        file: file.clone(),
        index_file,
        index_file_len: index_bytes.len() as u64,
        active: Arc::new(ActiveSegment {
            base_seq: base,
            base_ts: header.base_ts,
            path,
            source,
            entries: RwLock::new(state.entries.clone()),
            key: key_slot(fs, dir, base, &header, config),
        }),
        sealed: Arc::new(sealed),
        len,
        synced_len: len,
        next_seq: state.next_seq,
        last_ts: state.last_ts.max(previous_ts),
        active_first_ts: state.first_ts,
        last_indexed: state.last_indexed,
        last_sync_ms: 0,
        buf: Vec::new(),
        key_spent: false,
    };
    Ok(Recovered {
        writer,
        replayed,
        kept_aside,
    })
}

/// Copies the bytes `from..len` of segment `base` to `dir/aside/<base>.<from>.tail` and makes
/// the copy durable, before recovery cuts them from the segment. Idempotent: a crash before the
/// cut makes the next open write the same file again.
fn keep_aside(
    fs: &dyn Fs,
    dir: &Path,
    file: &dyn FileIo,
    (base, from): (u64, u64),
    len: u64,
) -> Result<PathBuf> {
    const CHUNK: u64 = 1 << 20;
    let aside = dir.join(ASIDE_DIR);
    fs.create_dir_all(&aside)
        .map_err(|error| Error::io("create directory", &aside, error))?;
    let path = aside.join(format!("{base:020}.{from}.tail"));
    let out = fs
        .open(&path, OpenMode::CreateTruncate)
        .map_err(|error| Error::io("create", &path, error))?;
    let mut buf = vec![0; CHUNK.min(len - from) as usize];
    let mut at = from;
    while at < len {
        let take = CHUNK.min(len - at) as usize;
        file.read_exact_at(&mut buf[..take], at)
            .map_err(|error| Error::io("read", dir.join(segment_name(base)), error))?;
        out.write_all_at(&buf[..take], at - from)
            .map_err(|error| Error::io("write", &path, error))?;
        at += take as u64;
    }
    out.sync_data()
        .map_err(|error| Error::io("fdatasync", &path, error))?;
    for synced in [aside.as_path(), dir] {
        fs.sync_dir(synced)
            .map_err(|error| Error::io("fsync directory", synced, error))?;
    }
    Ok(path)
}
