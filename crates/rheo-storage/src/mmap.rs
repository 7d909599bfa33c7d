//! The crate's only `unsafe`: read-only memory maps of sealed segment and index files.
//!
//! Invariants the rest of the crate keeps so these maps stay sound:
//! - only sealed files are mapped, and a sealed file is never written, truncated or renamed
//!   over by this engine again; its bytes are immutable for the map's whole life;
//! - retention removes a sealed file by unlinking it, which leaves existing maps valid (the
//!   inode lives until the last map is dropped);
//! - the log directory is locked (`LOCK`), so no second engine instance writes to it.
//!
//! Another program truncating a mapped file would make reads of the lost range fault (SIGBUS);
//! that is outside what any mmap-based store can defend against and is documented in FORMAT.md.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use bytes::Bytes;

/// Maps `file` read-only and returns its bytes. An empty file gives empty bytes (a zero-length
/// map is an error on Linux).
pub(crate) fn map_sealed_file(file: &File) -> io::Result<Bytes> {
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the module invariants hold: callers only map sealed files, which this engine never
    // modifies again and only ever unlinks, so the mapped bytes cannot change or vanish while
    // the map lives. The map is read-only, so no `&mut` aliasing can arise.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Bytes::from_owner(map))
}
