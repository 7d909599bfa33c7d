//! `verify` of a node journal: its files read with recovery's rules, nothing changed.

use std::path::Path;

use super::file::{journal_name, list_generations, read_journal_file};
use crate::error::Error;
use crate::io::Fs;

/// `verify` of a journal directory: every file's records checked as recovery reads them. A
/// torn tail of the newest file is a warning (never acknowledged, ignored at open); a bad
/// record anywhere else is corruption, and so is one that a later record proves was synced.
pub(crate) fn verify_dir(fs: &dyn Fs, dir: &Path) -> crate::verify::LogReport {
    use crate::verify::{Finding, LogReport, Severity};
    let mut report = LogReport {
        dir: dir.to_path_buf(),
        segments: 0,
        records: 0,
        bytes: 0,
        findings: Vec::new(),
    };
    let generations = match list_generations(fs, dir) {
        Ok(generations) => generations,
        Err(error) => {
            report.findings.push(Finding {
                severity: Severity::Corruption,
                path: dir.to_path_buf(),
                offset: 0,
                message: error.to_string(),
            });
            return report;
        }
    };
    for (index, &generation) in generations.iter().enumerate() {
        let path = dir.join(journal_name(generation));
        let last = index + 1 == generations.len();
        report.segments += 1;
        match read_journal_file(fs, &path, generation, last) {
            Ok((_, read)) => {
                report.records += read.entries.len() as u64;
                report.bytes += read.len;
                if let Some((offset, reason)) = read.torn {
                    report.findings.push(Finding {
                        severity: Severity::Warning,
                        path,
                        offset,
                        message: format!(
                            "torn journal tail (never acknowledged; ignored at open): {reason}"
                        ),
                    });
                }
            }
            Err(error) => {
                let (offset, message) = match &error {
                    Error::Corruption { offset, reason, .. } => (*offset, reason.clone()),
                    other => (0, other.to_string()),
                };
                report.findings.push(Finding {
                    severity: Severity::Corruption,
                    path,
                    offset,
                    message,
                });
            }
        }
    }
    report
}

/// A log directory and its `(segment, durable length)` from a checkpoint record.
pub(crate) type DirMark = (std::path::PathBuf, (u64, u64));

/// The checkpoint record of the journal in `dir`, one [`DirMark`] per line: `Ok(None)` if it
/// has none, `Err(reason)` if it cannot be read or is damaged.
pub(crate) fn read_marks(fs: &dyn Fs, dir: &Path) -> Result<Option<Vec<DirMark>>, String> {
    let marks = match super::marks::read(fs, dir) {
        Ok(Ok(marks)) => marks,
        Ok(Err(reason)) => return Err(reason),
        Err(error) => return Err(error.to_string()),
    };
    Ok(marks.map(|marks| {
        marks
            .values()
            .map(|mark| {
                (
                    super::marks::resolve_dir(dir, mark),
                    (mark.segment_base, mark.durable_len),
                )
            })
            .collect()
    }))
}
