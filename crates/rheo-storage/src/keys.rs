//! The encryption side of [`ShardLog`]: which key new segments are encrypted under, the fresh
//! data key each process starts with, and rewrapping key files after a key rotation. The
//! cryptography and key files are in `crypto.rs`; the commit path seals batches in
//! `ShardLog::stamp_group`.

use std::sync::Arc;

use crate::crypto::KeySlot;
use crate::error::{Error, Result};
use crate::format::FILE_HEADER_LEN;
use crate::log::{ShardLog, Writer, create_segment, lock};

/// Where stored data stands with key-encryption keys: for `rheo keys` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUsage {
    /// `(key id, version)` of every encrypted segment's key file, one entry per segment.
    pub segments: Vec<(String, u32)>,
    /// Encrypted segments whose key file could not be read or unwrapped (they are reported on
    /// read, and by `verify`).
    pub unreadable: usize,
}

impl ShardLog {
    /// Sets the key-encryption key new records are encrypted under (`None`: plaintext from
    /// now on). The next commit starts a new segment with a fresh data key under it; records
    /// already stored stay as they were written. Refused when the log has no keyring.
    pub fn set_encryption_key(&self, key_id: Option<String>) -> Result<()> {
        if key_id.is_some() && self.config.encryption.is_none() {
            return Err(Error::InvalidArgument(
                "the log was opened without a keyring".into(),
            ));
        }
        *lock(&self.key_target) = key_id;
        Ok(())
    }

    /// The key new records are encrypted under, if any.
    pub fn encryption_key(&self) -> Option<String> {
        lock(&self.key_target).clone()
    }

    /// At open: a data key made by an earlier process never seals another batch (a crash may
    /// have left batches under it that were cut as a torn tail, and their sequence numbers,
    /// which are the nonces, will be used again). So an encrypted active segment is sealed,
    /// or recreated if empty, and the next one follows the target. A keyring refusal is
    /// logged and left for the first commit to report; I/O failures fail the open.
    pub(crate) fn refresh_key_at_open(&self) -> Result<()> {
        let mut writer = lock(&self.writer);
        let encrypted = writer.active.key.is_some();
        if !encrypted && self.encryption_key().is_none() {
            return Ok(());
        }
        match self.rekey(&mut writer) {
            Ok(()) => Ok(()),
            Err(Error::Key { path, fault }) => {
                tracing::warn!(dir = %self.dir.display(), path = %path.display(), %fault, "no key for new segments; writes will fail until the keyring has it");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// True if the active segment may take the next batch as the encryption target asks:
    /// plaintext for no key, else encrypted under that key with a data key made by this
    /// process.
    pub(crate) fn key_matches(&self, writer: &Writer) -> bool {
        let target = lock(&self.key_target);
        match (
            &*target,
            writer.active.key.as_ref().map(|slot| slot.loaded()),
        ) {
            (None, None) => true,
            (Some(id), Some(Some(key))) => key.fresh && key.key_id == *id && !writer.key_spent,
            _ => false,
        }
    }

    /// A fresh data key for segment `base_seq` under the target key, or `None` for plaintext.
    /// Asks only the keyring: a refusal is an [`Error::Key`] and nothing is written.
    pub(crate) fn prepare_target_key(
        &self,
        base_seq: u64,
    ) -> Result<Option<crate::crypto::PreparedKey>> {
        let Some(key_id) = lock(&self.key_target).clone() else {
            return Ok(None);
        };
        let Some(encryption) = &self.config.encryption else {
            return Err(Error::InvalidArgument(
                "the log has no keyring to encrypt with".into(),
            ));
        };
        crate::crypto::prepare_key(&self.dir, encryption, &key_id, base_seq).map(Some)
    }

    /// Starts a segment that matches the encryption target: seals the active one if it holds
    /// records, else recreates it in place (an empty segment has no batch under its old key).
    pub(crate) fn rekey(&self, writer: &mut Writer) -> Result<()> {
        if writer.active_first_ts.is_some() {
            return self.roll(writer);
        }
        let base = writer.active.base_seq;
        let prepared = self.prepare_target_key(base)?;
        let plaintext = prepared.is_none();
        let created = create_segment(
            &self.fs,
            &self.dir,
            base,
            writer.active.base_ts,
            prepared,
            self.config.encryption.as_ref(),
        )
        .inspect_err(|error| self.poison(error))?;
        if plaintext {
            let path = self.dir.join(crate::crypto::key_name(base));
            match self.fs.remove_file(&path) {
                Ok(()) => self
                    .fs
                    .sync_dir(&self.dir)
                    .map_err(|error| Error::io("fsync directory", &self.dir, error))
                    .inspect_err(|error| self.poison(error))?,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    let error = Error::io("remove", path, error);
                    self.poison(&error);
                    return Err(error);
                }
            }
        }
        writer.file = created.file;
        writer.index_file = created.index_file;
        writer.index_file_len = FILE_HEADER_LEN as u64;
        writer.active = created.segment;
        writer.len = FILE_HEADER_LEN as u64;
        writer.synced_len = FILE_HEADER_LEN as u64;
        writer.last_indexed = None;
        writer.key_spent = false;
        self.publish(writer);
        Ok(())
    }

    fn key_slots(&self) -> Vec<Arc<KeySlot>> {
        let view = self.view();
        view.sealed
            .iter()
            .filter_map(|segment| segment.key.clone())
            .chain(view.active.key.clone())
            .collect()
    }

    /// Rewraps every key file whose key-encryption key has a newer version, without touching
    /// the records (each data key stays as it is). Returns how many files were rewritten. A
    /// key file that cannot be rewrapped (key gone, disabled) is skipped with a warning.
    pub fn rewrap_keys(&self) -> Result<usize> {
        let Some(encryption) = &self.config.encryption else {
            return Ok(0);
        };
        let mut rewritten = 0;
        for slot in self.key_slots() {
            match crate::crypto::rewrap(&*self.fs, &self.dir, slot.base_seq, encryption) {
                Ok(Some(_)) => rewritten += 1,
                Ok(None) => {}
                Err(Error::Key { path, fault }) => {
                    tracing::warn!(path = %path.display(), %fault, "key file not rewrapped");
                }
                Err(error) if error.is_corruption() => {
                    tracing::error!(%error, "key file not rewrapped");
                }
                Err(error) => return Err(error),
            }
        }
        Ok(rewritten)
    }

    /// The key-encryption key and version each encrypted segment's key file is wrapped with.
    pub fn key_usage(&self) -> KeyUsage {
        let mut usage = KeyUsage::default();
        for slot in self.key_slots() {
            match crate::crypto::read_key_file(&*self.fs, &slot.path, slot.base_seq) {
                Ok(file) => usage.segments.push((file.info.key_id, file.info.version)),
                Err(_) => usage.unreadable += 1,
            }
        }
        usage
    }
}

/// A key file found under a data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileRef {
    /// The file.
    pub path: std::path::PathBuf,
    /// The key-encryption key it is wrapped with, and its version (`None` if the file is
    /// damaged: `verify` says how).
    pub key: Option<(String, u32)>,
}

/// Every segment key file under `root`, for `rheo keys`: which key versions stored data still
/// needs. Reads without a lock, so a server may be running.
pub fn key_files(fs: &dyn crate::io::Fs, root: &std::path::Path) -> Result<Vec<KeyFileRef>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let names = match fs.list_dir(&dir) {
            Ok(names) => names,
            Err(error) if dir == root => return Err(Error::io("list", &dir, error)),
            Err(_) => continue,
        };
        for name in names {
            let path = dir.join(&name);
            if let Some(base) = crate::segment::parse_base(&name, crate::crypto::KEY_SUFFIX) {
                let key = crate::crypto::read_key_file(fs, &path, base)
                    .ok()
                    .map(|file| (file.info.key_id, file.info.version));
                found.push(KeyFileRef { path, key });
            } else if !name.contains('.') && name != crate::recovery::LOCK_FILE {
                pending.push(path);
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}
