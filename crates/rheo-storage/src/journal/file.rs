//! The journal's bytes: file names, the file header, commit records and their entries, and
//! reading a file back at recovery (FORMAT.md, "The journal").

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seeded_crc};
use crate::io::{FileIo, Fs, OpenMode};

/// Journal files end in this.
pub(crate) const JOURNAL_SUFFIX: &str = ".jnl";

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

pub(super) fn journal_name(generation: u64) -> String {
    format!("{generation:020}{JOURNAL_SUFFIX}")
}

pub(super) fn encode_file_header(generation: u64) -> [u8; JOURNAL_HEADER_LEN] {
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

/// Fills in the header of the commit record in `buf` (header, then body): checksums, lengths,
/// the commit's number in its file and the file's durable length when it was written.
pub(super) fn write_record_header(
    buf: &mut [u8],
    generation: u64,
    commit: u64,
    synced_len: u64,
    entries: u32,
) {
    let body_len = buf.len() - RECORD_HEADER_LEN;
    let body_crc = seeded_crc(generation, &buf[RECORD_HEADER_LEN..]);
    buf[JR_MAGIC..JR_MAGIC + 4].copy_from_slice(&JR_MAGIC_BYTES);
    put_u32(buf, JR_BODY_CRC, body_crc);
    put_u32(buf, JR_BODY_LEN, body_len as u32);
    put_u64(buf, JR_COMMIT, commit);
    put_u64(buf, JR_SYNCED_LEN, synced_len);
    put_u32(buf, JR_ENTRIES, entries);
    put_u32(buf, JR_FLAGS, 0);
    let header_crc = seeded_crc(generation, &buf[JR_BODY_CRC..RECORD_HEADER_LEN]);
    put_u32(buf, JR_HEADER_CRC, header_crc);
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
pub(super) struct ParsedEntry {
    pub(super) key: String,
    pub(super) frames_at: usize,
    pub(super) frames_len: usize,
    pub(super) segment_base: u64,
    pub(super) offset: u64,
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
        if key_len > super::MAX_JOURNAL_KEY_BYTES || body.len() - start < key_len + frames_len {
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
pub(super) struct ReadFile {
    pub(super) entries: Vec<(ParsedEntry, u64)>,
    /// Where a torn tail starts, and why it does not check (never acknowledged: ignored).
    pub(super) torn: Option<(u64, String)>,
    /// The file's length.
    pub(super) len: u64,
}

/// Reads one journal file's records. `last` says whether it is the newest file, whose tail
/// may be torn; in any other file, every bad record is corruption (it was synced before the
/// next file was created).
pub(super) fn read_journal_file(
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
            let torn = (len > 0).then_some((0, reason));
            return Ok((
                file,
                ReadFile {
                    entries: vec![],
                    torn,
                    len,
                },
            ));
        }
        return Err(Error::corruption(path, 0, reason));
    }
    let mut entries = Vec::new();
    let mut torn = None;
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
                torn = Some((at, reason));
                break;
            }
        }
    }
    Ok((file, ReadFile { entries, torn, len }))
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
    let found = crate::scan::find_after(
        file,
        bad_at,
        len,
        RECORD_HEADER_LEN,
        JR_MAGIC_BYTES,
        |bytes| {
            decode_record_header(bytes, generation)
                .ok()
                .filter(|header| header.synced_len > bad_at)
        },
    )?;
    Ok(found.map(|(at, _)| at))
}

pub(super) fn list_generations(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>> {
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
