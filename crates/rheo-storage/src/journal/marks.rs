//! The checkpoint record (`journal/CHECKPOINT`): how much of each journaled log's active segment
//! the node has made durable. Batch headers prove earlier bytes durable only when a later batch
//! exists; this record proves it for the last batches too, so recovery can tell a torn write
//! from damage to synced data at the very end of a segment (FORMAT.md, "The checkpoint record").
//!
//! It is rewritten atomically (temporary file, fdatasync, rename, directory fsync) with every
//! live log's state before any journal file is deleted: whatever a deleted journal file held is
//! then below a mark.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64, seeded_crc};
use crate::io::Fs;

/// The checkpoint record's file name, in the journal directory.
pub(crate) const MARKS_FILE: &str = "CHECKPOINT";

/// `RHEOCKP\0`.
const MAGIC: [u8; 8] = *b"RHEOCKP\0";
const VERSION: u16 = 1;

// Header (40 bytes).
const CH_MAGIC: usize = 0;
const CH_VERSION: usize = CH_MAGIC + 8;
const CH_ENTRIES: usize = CH_VERSION + 2 + 6;
const CH_BODY_LEN: usize = CH_ENTRIES + 8;
const CH_BODY_CRC: usize = CH_BODY_LEN + 8;
const CH_HEADER_CRC: usize = CH_BODY_CRC + 4;
const HEADER_LEN: usize = CH_HEADER_CRC + 4;

// Entry head (20 bytes); the key and the directory follow it.
const CE_KEY_LEN: usize = 0;
const CE_DIR_LEN: usize = CE_KEY_LEN + 2;
const CE_SEGMENT: usize = CE_DIR_LEN + 2;
const CE_DURABLE: usize = CE_SEGMENT + 8;
const ENTRY_HEAD_LEN: usize = CE_DURABLE + 8;

/// One log's line of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    /// The log's directory, relative to the journal directory's parent (the data directory)
    /// when it lies under it, else absolute; `verify` finds the log by it.
    pub(crate) dir: String,
    /// The active segment, by base sequence number.
    pub(crate) segment_base: u64,
    /// Bytes of that segment known durable (fdatasynced) when the record was written.
    pub(crate) durable_len: u64,
}

/// The record's contents, by log key.
pub(crate) type Marks = HashMap<String, Mark>;

/// How a log's directory is written in a mark.
pub(crate) fn mark_dir(journal_dir: &Path, log_dir: &Path) -> String {
    let relative = journal_dir
        .parent()
        .and_then(|data_dir| log_dir.strip_prefix(data_dir).ok())
        .unwrap_or(log_dir);
    relative.to_string_lossy().into_owned()
}

/// The log directory a mark names.
pub(crate) fn resolve_dir(journal_dir: &Path, mark: &Mark) -> PathBuf {
    let dir = Path::new(&mark.dir);
    match journal_dir.parent() {
        Some(data_dir) if dir.is_relative() => data_dir.join(dir),
        _ => dir.to_path_buf(),
    }
}

pub(crate) fn encode(marks: &[(&str, Mark)]) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    for (key, mark) in marks {
        // A directory too long for its field is left out: the mark still serves recovery,
        // which finds logs by key.
        let dir = if mark.dir.len() <= u16::MAX as usize {
            mark.dir.as_bytes()
        } else {
            &[]
        };
        let head_at = out.len();
        out.resize(head_at + ENTRY_HEAD_LEN, 0);
        let head = &mut out[head_at..];
        put_u16(head, CE_KEY_LEN, key.len() as u16);
        put_u16(head, CE_DIR_LEN, dir.len() as u16);
        put_u64(head, CE_SEGMENT, mark.segment_base);
        put_u64(head, CE_DURABLE, mark.durable_len);
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(dir);
    }
    let body_len = (out.len() - HEADER_LEN) as u64;
    let body_crc = seeded_crc(body_len, &out[HEADER_LEN..]);
    out[CH_MAGIC..CH_MAGIC + 8].copy_from_slice(&MAGIC);
    put_u16(&mut out, CH_VERSION, VERSION);
    put_u64(&mut out, CH_ENTRIES, marks.len() as u64);
    put_u64(&mut out, CH_BODY_LEN, body_len);
    put_u32(&mut out, CH_BODY_CRC, body_crc);
    let header_crc = seeded_crc(0, &out[..CH_HEADER_CRC]);
    put_u32(&mut out, CH_HEADER_CRC, header_crc);
    out
}

pub(crate) fn decode(bytes: &[u8]) -> std::result::Result<Marks, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than its header", bytes.len()));
    }
    if bytes[CH_MAGIC..CH_MAGIC + 8] != MAGIC {
        return Err("bad magic".into());
    }
    if get_u32(bytes, CH_HEADER_CRC) != seeded_crc(0, &bytes[..CH_HEADER_CRC]) {
        return Err("header checksum mismatch".into());
    }
    let version = get_u16(bytes, CH_VERSION);
    if version != VERSION {
        return Err(format!("unknown version {version}"));
    }
    let body_len = get_u64(bytes, CH_BODY_LEN);
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != body_len {
        return Err(format!(
            "body of {} bytes where the header says {body_len}",
            body.len()
        ));
    }
    if get_u32(bytes, CH_BODY_CRC) != seeded_crc(body_len, body) {
        return Err("body checksum mismatch".into());
    }
    let entries = get_u64(bytes, CH_ENTRIES);
    let mut marks = Marks::new();
    let mut at = 0;
    for _ in 0..entries {
        let head = body
            .get(at..at + ENTRY_HEAD_LEN)
            .ok_or("entry past the body")?;
        let key_len = get_u16(head, CE_KEY_LEN) as usize;
        let dir_len = get_u16(head, CE_DIR_LEN) as usize;
        let text_at = at + ENTRY_HEAD_LEN;
        let text = body
            .get(text_at..text_at + key_len + dir_len)
            .ok_or("entry past the body")?;
        let key = std::str::from_utf8(&text[..key_len]).map_err(|_| "key is not UTF-8")?;
        let dir = std::str::from_utf8(&text[key_len..]).map_err(|_| "directory is not UTF-8")?;
        marks.insert(
            key.to_owned(),
            Mark {
                dir: dir.to_owned(),
                segment_base: get_u64(head, CE_SEGMENT),
                durable_len: get_u64(head, CE_DURABLE),
            },
        );
        at = text_at + key_len + dir_len;
    }
    if at != body.len() {
        return Err("bytes after the last entry".into());
    }
    Ok(marks)
}

/// What a journal directory's checkpoint record holds: `Ok(None)` if there is none (a data
/// directory written before format version 4), `Err(reason)` if it is damaged.
pub(crate) fn read(
    fs: &dyn Fs,
    journal_dir: &Path,
) -> Result<std::result::Result<Option<Marks>, String>> {
    let path = journal_dir.join(MARKS_FILE);
    match crate::io::read_whole(fs, &path) {
        Ok(bytes) => Ok(decode(&bytes).map(Some)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Ok(None)),
        Err(error) => Err(Error::io("read", &path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_any_flipped_byte_is_refused() {
        let marks = [
            (
                "s.1/shardId-000000000000",
                Mark {
                    dir: "streams/s/shardId-000000000000".into(),
                    segment_base: 7,
                    durable_len: 4096,
                },
            ),
            (
                "t.2/shardId-000000000001",
                Mark {
                    dir: "/elsewhere/log".into(),
                    segment_base: 0,
                    durable_len: 40,
                },
            ),
        ];
        let bytes = encode(&marks);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded["s.1/shardId-000000000000"], marks[0].1);
        assert_eq!(decoded["t.2/shardId-000000000001"], marks[1].1);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x20;
            assert!(decode(&damaged).is_err(), "flip at {at} was accepted");
        }
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert_eq!(decode(&encode(&[])).unwrap(), Marks::new());
    }

    #[test]
    fn directories_are_written_relative_to_the_data_directory() {
        let journal = Path::new("/data/journal");
        let inside = mark_dir(journal, Path::new("/data/streams/s/shardId-000000000000"));
        assert_eq!(inside, "streams/s/shardId-000000000000");
        let mark = Mark {
            dir: inside,
            segment_base: 0,
            durable_len: 0,
        };
        assert_eq!(
            resolve_dir(journal, &mark),
            Path::new("/data/streams/s/shardId-000000000000")
        );
        assert_eq!(mark_dir(journal, Path::new("/other/log")), "/other/log");
    }
}
