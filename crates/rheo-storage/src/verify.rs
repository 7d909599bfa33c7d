//! `verify`: scan a data directory and report every problem found, changing nothing.
//!
//! Every batch of every segment is checked (header and body checksums, record structure,
//! sequence continuity, timestamp order), sealed indexes are checked against the batches they
//! point at, and a bad tail of a log's newest segment is classified the way recovery would:
//! a torn write (a warning: the next open truncates it, losing nothing acknowledged),
//! corruption of durable data (a later batch header or the node's checkpoint record proves it
//! was synced), or unproven (nothing proves either: the next open keeps its bytes aside).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crypto::KeyProvider;
use crate::error::{Error, Result};
use crate::format::FILE_HEADER_LEN;
use crate::io::{FileIo, Fs, OpenMode};
use crate::scan::{self, ScanState};
use crate::segment::{self, BatchReader, SEGMENT_SUFFIX, Source, parse_base, segment_name};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Stored data is damaged; reads stop before it.
    Corruption,
    /// Something the next open repairs without loss (a torn tail, a stale index).
    Warning,
    /// A bad tail that nothing proves was never synced: a torn write, or damage to
    /// acknowledged records. The next open cuts it and keeps its bytes in the log's `aside/`
    /// directory; bytes kept there by an earlier open are reported this way too, until they
    /// are inspected and deleted.
    Unproven,
}

/// One problem, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The file.
    pub path: PathBuf,
    /// Byte offset in the file.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Corruption => "corruption",
            Severity::Warning => "warning",
            Severity::Unproven => "unproven",
        };
        write!(
            f,
            "{severity}: {} at offset {}: {}",
            self.path.display(),
            self.offset,
            self.message
        )
    }
}

/// What verify found in one log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReport {
    /// The log's directory.
    pub dir: PathBuf,
    /// Segment files checked.
    pub segments: usize,
    /// Records checked.
    pub records: u64,
    /// Bytes of segment files checked.
    pub bytes: u64,
    /// Problems, in file order.
    pub findings: Vec<Finding>,
}

/// What verify found under a directory tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// One entry per log directory, sorted by path.
    pub logs: Vec<LogReport>,
}

impl VerifyReport {
    /// Every finding of every log.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.logs.iter().flat_map(|log| log.findings.iter())
    }

    /// Number of corruption findings.
    pub fn corruptions(&self) -> usize {
        self.count(Severity::Corruption)
    }

    /// Number of unproven findings (bad tails nothing could classify, bytes kept aside).
    pub fn unproven(&self) -> usize {
        self.count(Severity::Unproven)
    }

    /// The exit status `rheo verify` gives for this report: 1 if anything is corrupt, else 3 if
    /// a bad tail could not be classified (or bytes are kept aside), else 0 (warnings allowed).
    pub fn exit_code(&self) -> u8 {
        if self.corruptions() > 0 {
            1
        } else if self.unproven() > 0 {
            3
        } else {
            0
        }
    }

    fn count(&self, severity: Severity) -> usize {
        self.findings()
            .filter(|finding| finding.severity == severity)
            .count()
    }
}

/// One line per log, one per finding, then a summary line:
/// `N logs checked, M corruption(s)`, and `, K unproven` when there are any.
impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for log in &self.logs {
            writeln!(
                f,
                "{}: {} segments, {} records, {} bytes",
                log.dir.display(),
                log.segments,
                log.records,
                log.bytes
            )?;
        }
        for finding in self.findings() {
            writeln!(f, "{finding}")?;
        }
        write!(
            f,
            "{} logs checked, {} corruption(s)",
            self.logs.len(),
            self.corruptions()
        )?;
        match self.unproven() {
            0 => Ok(()),
            unproven => write!(f, ", {unproven} unproven"),
        }
    }
}

/// Verifies every log under `root` (any directory holding segment files, at any depth), and
/// every node journal (a directory holding journal files: counted as a log whose "segments"
/// are its files and "records" its entries).
/// Fails only if `root` cannot be listed; problems with the data are findings.
pub fn verify_tree(fs: &dyn Fs, root: &Path) -> Result<VerifyReport> {
    verify_tree_with_keys(fs, root, None)
}

/// [`verify_tree`], also decrypting every encrypted batch with `keys` and checking the records
/// inside. Without a keyring, an encrypted segment's checksums and key file are checked and a
/// warning says its contents were not.
pub fn verify_tree_with_keys(
    fs: &dyn Fs,
    root: &Path,
    keys: Option<Arc<dyn KeyProvider>>,
) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut pending = vec![root.to_path_buf()];
    let mut first = true;
    let mut logs = Vec::new();
    let mut journals = Vec::new();
    while let Some(dir) = pending.pop() {
        let names = match fs.list_dir(&dir) {
            Ok(names) => names,
            Err(error) if first => return Err(Error::io("list", &dir, error)),
            Err(_) => continue,
        };
        first = false;
        let mut has_segments = false;
        let mut has_journal = false;
        for name in &names {
            if parse_base(name, SEGMENT_SUFFIX).is_some() {
                has_segments = true;
            } else if name.ends_with(crate::journal::JOURNAL_FILE_SUFFIX)
                || name == crate::journal::MARKS_FILE
            {
                has_journal = true;
            } else if !name.contains('.') && name != crate::recovery::LOCK_FILE {
                pending.push(dir.join(name));
            }
        }
        if has_segments {
            logs.push((dir.clone(), names));
        }
        if has_journal {
            journals.push(dir);
        }
    }
    // The journals' checkpoint records first: they say how much of each log was durable.
    let mut durable: Option<HashMap<PathBuf, (u64, u64)>> = None;
    for dir in journals {
        let mut journal = crate::journal::verify_dir(fs, &dir);
        match crate::journal::read_marks(fs, &dir) {
            Ok(Some(marks)) => durable.get_or_insert_default().extend(marks),
            Ok(None) => {}
            Err(reason) => journal.findings.push(Finding {
                severity: Severity::Warning,
                path: dir.join(crate::journal::MARKS_FILE),
                offset: 0,
                message: format!(
                    "the checkpoint record is unusable ({reason}); bad log tails cannot be classified until the next start rewrites it"
                ),
            }),
        }
        report.logs.push(journal);
    }
    for (dir, names) in logs {
        let tail_rule = match &durable {
            None => TailRule::Unknown,
            Some(marks) => TailRule::DurableUpTo(marks.get(&dir).copied()),
        };
        report
            .logs
            .push(verify_log(fs, &dir, &names, keys.as_ref(), tail_rule));
    }
    report.logs.sort_by(|a, b| a.dir.cmp(&b.dir));
    Ok(report)
}

/// How a bad tail of a log's newest segment is judged.
#[derive(Debug, Clone, Copy)]
enum TailRule {
    /// No checkpoint record covers the log: only later batch headers can prove durability.
    Unknown,
    /// The record's `(segment, durable length)` for the log, if it has a line for it.
    DurableUpTo(Option<(u64, u64)>),
}

impl TailRule {
    fn for_segment(self, base: u64) -> Option<u64> {
        match self {
            TailRule::Unknown => None,
            TailRule::DurableUpTo(Some((segment, len))) if segment == base => Some(len),
            TailRule::DurableUpTo(_) => Some(0),
        }
    }
}

fn verify_log(
    fs: &dyn Fs,
    dir: &Path,
    names: &[String],
    keys: Option<&Arc<dyn KeyProvider>>,
    tail_rule: TailRule,
) -> LogReport {
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|name| parse_base(name, SEGMENT_SUFFIX))
        .collect();
    bases.sort_unstable();
    let mut report = LogReport {
        dir: dir.to_path_buf(),
        segments: bases.len(),
        records: 0,
        bytes: 0,
        findings: Vec::new(),
    };
    let mut previous: Option<(u64, i64)> = None;
    for (index, &base) in bases.iter().enumerate() {
        let is_last = index + 1 == bases.len();
        let path = dir.join(segment_name(base));
        let at = Place {
            dir,
            path: &path,
            base,
            is_last,
            durable_len: tail_rule.for_segment(base),
        };
        match verify_segment(fs, at, previous, keys, &mut report) {
            Ok(next) => previous = next,
            Err(error) => {
                report.findings.push(finding_from(&error, &path));
                previous = None;
            }
        }
    }
    report_kept_aside(fs, dir, &mut report);
    report
}

/// Bytes an earlier open cut from a bad tail it could not classify, kept for inspection.
fn report_kept_aside(fs: &dyn Fs, dir: &Path, report: &mut LogReport) {
    let aside = dir.join(crate::recovery::ASIDE_DIR);
    let Ok(mut names) = fs.list_dir(&aside) else {
        return;
    };
    names.sort();
    for name in names.into_iter().filter(|name| name.ends_with(".tail")) {
        report.findings.push(Finding {
            severity: Severity::Unproven,
            path: aside.join(name),
            offset: 0,
            message: "bytes an earlier open cut from a bad tail it could not prove torn (maybe acknowledged records); inspect, then delete the file".into(),
        });
    }
}

fn finding_from(error: &Error, path: &Path) -> Finding {
    match error {
        Error::Corruption {
            path,
            offset,
            reason,
        } => Finding {
            severity: Severity::Corruption,
            path: path.clone(),
            offset: *offset,
            message: reason.clone(),
        },
        other => Finding {
            severity: Severity::Corruption,
            path: path.to_path_buf(),
            offset: 0,
            message: other.to_string(),
        },
    }
}

/// Which segment of which log.
#[derive(Clone, Copy)]
struct Place<'a> {
    dir: &'a Path,
    path: &'a Path,
    base: u64,
    is_last: bool,
    /// Bytes the checkpoint record proves durable (`None`: unknown).
    durable_len: Option<u64>,
}

/// Checks one segment; returns where the next must continue (`None` if unknown).
fn verify_segment(
    fs: &dyn Fs,
    place: Place<'_>,
    previous: Option<(u64, i64)>,
    keys: Option<&Arc<dyn KeyProvider>>,
    report: &mut LogReport,
) -> Result<Option<(u64, i64)>> {
    let Place {
        dir,
        path,
        base,
        is_last,
        durable_len,
    } = place;
    let file: Arc<dyn FileIo> = fs
        .open(path, OpenMode::Read)
        .map_err(|error| Error::io("open", path, error))?
        .into();
    let len = file.len().map_err(|error| Error::io("stat", path, error))?;
    report.bytes += len;
    let header = match segment::read_segment_header(&*file, path) {
        Ok(header) => header,
        Err(_)
            if is_last
                && len <= FILE_HEADER_LEN as u64
                && durable_len.is_none_or(|durable| durable <= FILE_HEADER_LEN as u64) =>
        {
            report.findings.push(Finding {
                severity: Severity::Warning,
                path: path.to_path_buf(),
                offset: 0,
                message: "segment creation was torn by a crash; it holds no records and is recreated at the next open".into(),
            });
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    if header.base_seq != base {
        return Err(Error::corruption(
            path,
            0,
            format!("header names segment {}", header.base_seq),
        ));
    }
    if let Some((next, _)) = previous
        && next != base
    {
        report.findings.push(Finding {
            severity: Severity::Corruption,
            path: path.to_path_buf(),
            offset: 0,
            message: format!(
                "segment starts at sequence {base} but the previous one ends before {next}"
            ),
        });
    }
    if is_last
        && let Some(durable) = durable_len
        && len < durable
    {
        report.findings.push(Finding {
            severity: Severity::Corruption,
            path: path.to_path_buf(),
            offset: len,
            message: format!(
                "the segment is {len} bytes long, but the node's checkpoint record says {durable} of its bytes were durable"
            ),
        });
    }
    let source = Source::File(file.clone());
    let mut reader = BatchReader::new(&source, path, base, len).encrypted(header.encrypted);
    let start_ts = previous.map_or(header.base_ts, |(_, ts)| ts.max(header.base_ts));
    let mut state = ScanState::new(FILE_HEADER_LEN as u64, base, start_ts);
    let scanned = scan::scan(&mut reader, &mut state, u64::MAX, path);
    report.records += state.next_seq - base;
    if let Err(error) = scanned {
        let bad_at = state.position;
        let proof = if is_last {
            scan::durable_beyond(&*file, base, bad_at, len)
                .map_err(|error| Error::io("read", path, error))?
        } else {
            None
        };
        let marked_durable = durable_len.filter(|&durable| bad_at < durable);
        if is_last && proof.is_none() && marked_durable.is_none() {
            let bytes = len - bad_at;
            report.findings.push(match durable_len {
                Some(_) => Finding {
                    severity: Severity::Warning,
                    path: path.to_path_buf(),
                    offset: bad_at,
                    message: format!(
                        "torn tail of {bytes} bytes ({error}); the next open truncates it, losing nothing acknowledged"
                    ),
                },
                None => Finding {
                    severity: Severity::Unproven,
                    path: path.to_path_buf(),
                    offset: bad_at,
                    message: format!(
                        "bad tail of {bytes} bytes ({error}) that nothing proves was never synced: a torn write, or damage to acknowledged records; the next open cuts it and keeps its bytes in {}/",
                        crate::recovery::ASIDE_DIR
                    ),
                },
            });
        } else {
            let mut finding = finding_from(&error, path);
            if let Some((proof_at, _)) = proof {
                finding.message.push_str(&format!(
                    "; not a torn write: the batch at offset {proof_at} was written after this one was durable"
                ));
            } else if let Some(durable) = marked_durable {
                finding.message.push_str(&format!(
                    "; not a torn write: the node's checkpoint record says {durable} bytes of this segment were durable"
                ));
            }
            report.findings.push(finding);
            return Ok(None);
        }
    }
    if header.encrypted {
        check_encrypted(fs, place, &mut reader, state.position, keys, report);
    }
    let sealed_index = segment::load_sealed_index(fs, dir, base, len);
    match sealed_index {
        Ok((index, footer)) => {
            let index_path = dir.join(segment::index_name(base));
            if let Some(bad) = first_bad_entry(&index, &mut reader) {
                report.findings.push(Finding {
                    severity: Severity::Warning,
                    path: index_path.clone(),
                    offset: 0,
                    message: format!("index entry {bad} does not point at the batch it names; the index is derived data and can be rebuilt by deleting it"),
                });
            }
            if footer.next_seq != state.next_seq || footer.last_ts != state.last_ts {
                report.findings.push(Finding {
                    severity: Severity::Corruption,
                    path: index_path,
                    offset: 0,
                    message: format!(
                        "seal footer says the segment ends before {} at time {}, its batches end before {} at time {}",
                        footer.next_seq, footer.last_ts, state.next_seq, state.last_ts
                    ),
                });
            }
        }
        Err(reason) if !is_last => report.findings.push(Finding {
            severity: Severity::Warning,
            path: dir.join(segment::index_name(base)),
            offset: 0,
            message: format!(
                "sealed index unusable ({reason}); the next open rebuilds it from the segment"
            ),
        }),
        Err(_) => {}
    }
    Ok(Some((state.next_seq, state.last_ts)))
}

/// An encrypted segment: its key file, and with the keyring every batch decrypted and its
/// records checked.
fn check_encrypted(
    fs: &dyn Fs,
    place: Place<'_>,
    reader: &mut BatchReader<'_>,
    checked_to: u64,
    keys: Option<&Arc<dyn KeyProvider>>,
    report: &mut LogReport,
) {
    let key_path = place.dir.join(crate::crypto::key_name(place.base));
    let file = match crate::crypto::read_key_file(fs, &key_path, place.base) {
        Ok(file) => file,
        Err(error) => return report.findings.push(finding_from(&error, &key_path)),
    };
    let Some(keys) = keys else {
        return report.findings.push(Finding {
            severity: Severity::Warning,
            path: place.path.to_path_buf(),
            offset: 0,
            message: format!(
                "encrypted under key {} version {}: checksums checked, records not (no keyring given)",
                file.info.key_id, file.info.version
            ),
        });
    };
    let encryption = crate::crypto::Encryption {
        keys: keys.clone(),
        context: file.info.context.clone(),
        key_id: None,
    };
    let key = match crate::crypto::load_key(fs, &key_path, place.base, Some(&encryption)) {
        Ok(key) => key,
        Err(error) => return report.findings.push(finding_from(&error, &key_path)),
    };
    let mut position = FILE_HEADER_LEN as u64;
    while position < checked_to {
        let Ok((header, body)) = reader.batch(position) else {
            return;
        };
        let opened = key.open(
            place.base,
            header.base_seq,
            header.timestamp_ms,
            header.count,
            &body,
        );
        let structure = opened
            .ok_or_else(|| {
                "encrypted batch fails authentication: altered, or copied from another place"
                    .to_string()
            })
            .and_then(|plain| {
                let mut unused = Vec::new();
                crate::batch::decode_into(
                    &header,
                    &bytes::Bytes::from(plain),
                    u64::MAX,
                    &mut crate::batch::ReadBudget::new(0, 0),
                    &mut unused,
                )
                .map(|_| ())
            });
        if let Err(message) = structure {
            return report.findings.push(Finding {
                severity: Severity::Corruption,
                path: place.path.to_path_buf(),
                offset: position,
                message,
            });
        }
        position += header.total_len();
    }
}

/// The first entry of a sealed index that does not match the batch header it points at.
fn first_bad_entry(index: &bytes::Bytes, reader: &mut BatchReader<'_>) -> Option<usize> {
    let entries = &index[FILE_HEADER_LEN..index.len() - crate::format::SEAL_FOOTER_LEN];
    entries
        .chunks_exact(crate::format::INDEX_ENTRY_LEN)
        .map(crate::format::IndexEntry::decode)
        .position(|entry| match reader.header(entry.position) {
            Ok(header) => header.base_seq != entry.seq || header.timestamp_ms != entry.timestamp_ms,
            Err(_) => true,
        })
}
