//! The narrow file-system interface every byte the engine stores passes through.
//!
//! [`StdFs`] is the real one. [`sim::SimFs`] is an in-memory file system that remembers what was
//! made durable (by `sync_data` and `sync_dir`) apart from what was only written, so tests can
//! crash it at any point and inject ENOSPC or EIO into any write or fsync.

pub mod sim;
mod std_fs;

use std::fmt;
use std::io;
use std::path::Path;

use bytes::Bytes;

pub use std_fs::StdFs;

/// How to open a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write a new, empty file; fails if it exists.
    CreateNew,
    /// Read and write, creating the file or emptying an existing one.
    CreateTruncate,
}

/// A file system the engine can run on.
pub trait Fs: Send + Sync + fmt::Debug + 'static {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names of the entries of a directory (not full paths), in no particular order.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Opens a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileIo>>;
    /// Unlinks a file. Open handles and maps of it stay valid.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, unlinks) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The whole content of a sealed (never again modified) file, memory-mapped where the file
    /// system allows it.
    fn map_sealed(&self, path: &Path) -> io::Result<Bytes>;
    /// Takes an exclusive advisory lock on `path` (created if missing), held until the returned
    /// guard is dropped. Fails with `WouldBlock` if someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
}

/// An open file. Offsets are explicit (pread/pwrite), so one handle serves several threads.
// `len` is a fallible system call here; an `is_empty` beside it would add nothing.
#[allow(clippy::len_without_is_empty)]
pub trait FileIo: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// `fdatasync`: the data written so far and the file length are durable when this returns.
    fn sync_data(&self) -> io::Result<()>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The current length.
    fn len(&self) -> io::Result<u64>;
}

/// Holds a lock taken by [`Fs::lock`] until dropped.
pub trait LockGuard: Send + Sync + fmt::Debug {}

/// Reads a whole file through `fs`.
pub(crate) fn read_whole(fs: &dyn Fs, path: &Path) -> io::Result<Vec<u8>> {
    let file = fs.open(path, OpenMode::Read)?;
    let len = usize::try_from(file.len()?).map_err(|_| io::Error::other("file too large"))?;
    let mut buf = vec![0; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}

/// Writes `bytes` to `dir/name` atomically: temporary file, fdatasync, rename, directory fsync.
/// A crash leaves either the old file or the new one (and perhaps a `.tmp` leftover).
pub fn write_atomically(fs: &dyn Fs, dir: &Path, name: &str, bytes: &[u8]) -> crate::Result<()> {
    let tmp = dir.join(format!("{name}{}", crate::segment::TMP_SUFFIX));
    let target = dir.join(name);
    let file = fs
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(|error| crate::Error::io("create", &tmp, error))?;
    file.write_all_at(bytes, 0)
        .map_err(|error| crate::Error::io("write", &tmp, error))?;
    file.sync_data()
        .map_err(|error| crate::Error::io("fdatasync", &tmp, error))?;
    fs.rename(&tmp, &target)
        .map_err(|error| crate::Error::io("rename", &tmp, error))?;
    fs.sync_dir(dir)
        .map_err(|error| crate::Error::io("fsync directory", dir, error))
}
