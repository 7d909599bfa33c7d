//! The engine's error type: caller-actionable variants (bad input, positions out of range,
//! locked) apart from system ones (I/O, corruption, poisoned).

use std::io;
use std::path::PathBuf;

/// Everything the storage engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller asked for something the engine refuses: an empty batch, a record over the
    /// size limit, a position past the tip. Nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Stored bytes failed a checksum or a structural check. The engine refuses to serve past
    /// this point instead of skipping it.
    #[error("corruption in {} at offset {offset}: {reason}", path.display())]
    Corruption {
        /// The file holding the bad bytes.
        path: PathBuf,
        /// Byte offset in that file where the bad region starts.
        offset: u64,
        /// What check failed.
        reason: String,
    },

    /// A write or fsync failed earlier, so the log no longer knows what is on disk. Every later
    /// append fails with this until the log is reopened, which recovers from what is durable.
    #[error("log {} is poisoned by an earlier i/o failure ({cause}); reopen it to recover", path.display())]
    Poisoned {
        /// The log directory.
        path: PathBuf,
        /// The failure that poisoned it.
        cause: String,
    },

    /// The log was closed for writes ([`crate::ShardLog::close_writes`]); it stays readable.
    #[error("log {} is closed for writes", path.display())]
    Closed {
        /// The log directory.
        path: PathBuf,
    },

    /// Another process (or another open handle) holds the log's lock file.
    #[error("log {} is already open (its LOCK file is held)", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },

    /// A segment's data key cannot be had: the keyring lacks its key-encryption key or version,
    /// the key is disabled (for new segments), or the material does not unwrap it. The stored
    /// bytes may be intact; nothing was written.
    #[error("encryption key problem for {}: {fault}", path.display())]
    Key {
        /// The segment's key file.
        path: PathBuf,
        /// What is wrong with the key.
        fault: crate::crypto::KeyFault,
    },

    /// A file system operation failed.
    #[error("{op} {} failed: {source}", path.display())]
    Io {
        /// What the engine was doing: "write", "fdatasync", "open", ...
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn corruption(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors that say stored data is damaged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }

    /// True for a write, create or open that failed for lack of a resource that comes back:
    /// the disk is full (ENOSPC), a quota is reached (EDQUOT), or the process or system is out
    /// of file descriptors (EMFILE, ENFILE). The engine undoes what it staged and the log takes
    /// writes again once the resource is back. A failed fdatasync is never retryable: the
    /// kernel may have dropped the pages it could not write.
    pub fn is_resource_exhausted(&self) -> bool {
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        const ENOSPC: i32 = 28;
        const EDQUOT: i32 = 122;
        match self {
            Error::Io { op, source, .. } => {
                !matches!(*op, "fdatasync" | "fsync directory" | "fsync")
                    && matches!(
                        source.raw_os_error(),
                        Some(ENFILE | EMFILE | ENOSPC | EDQUOT)
                    )
            }
            _ => false,
        }
    }
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
