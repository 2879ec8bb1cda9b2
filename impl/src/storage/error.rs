//! [`StorageError`]: every way the durable state can fail, and which failures poison it.
//!
//! A storage error is fatal to the server (see the `storage` module docs): the caller logs it
//! and stops the process. Nothing here is retried, least of all an fsync, whose failure may
//! already have dropped the dirty pages it was meant to write.

use std::{fmt, io, path::PathBuf, sync::Arc};

/// What went wrong with the durable state.
///
/// Cloneable (I/O errors are shared behind an `Arc`) so that the log writer can hand the same
/// failure to every waiter and to its event callback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation failed: `op` on `path`. Never retried.
    #[error("storage I/O error: {op} {}: {source}", path.display())]
    Io {
        /// The operation, e.g. `"fsync"`, `"write"`, `"rename"`.
        op: &'static str,
        /// The file or directory it was applied to.
        path: PathBuf,
        /// The error the operating system (or the simulated filesystem) returned.
        #[source]
        source: Arc<io::Error>,
    },
    /// A file's content is damaged where a crash cannot have damaged it (a bad record followed
    /// by valid ones, a bad record in a sealed segment, a bad header, a bad snapshot that cannot
    /// be replaced by an older one). The server refuses to start.
    #[error("corrupt storage: {} at byte offset {offset}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// The files are individually sound but do not fit together (a gap, duplicate or
    /// out-of-order zxid across segments, a log that does not cover the state after a
    /// snapshot, data without an `acceptedEpoch` file, ...). The server refuses to start.
    #[error("inconsistent storage: {0}")]
    Inconsistent(String),
    /// An epoch file (`acceptedEpoch`, `currentEpoch`) holds something other than a decimal
    /// epoch.
    #[error("bad epoch file {}: {reason}", path.display())]
    EpochFile {
        /// The epoch file.
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },
    /// The caller asked for something that would break the log's invariants (an append whose
    /// zxid does not follow the last one, a truncation to a zxid that is not in the history, an
    /// epoch going backwards). Nothing was changed; the storage stays usable, but this is a bug
    /// in the caller.
    #[error("invalid storage request: {0}")]
    InvalidRequest(String),
    /// A snapshot was offered with a ticket taken before the log was last truncated or replaced:
    /// its state may contain transactions that are no longer in the history. It was not
    /// written; the caller simply drops it. Not fatal.
    #[error(
        "stale snapshot of {zxid}: the history was truncated or replaced after its ticket was taken"
    )]
    StaleSnapshot {
        /// The zxid the snapshot was taken at.
        zxid: zab_spec::Zxid,
    },
    /// An earlier error poisoned this log (or its writer thread): it refuses all further work
    /// rather than risk reporting unsynced data as durable.
    #[error("storage refuses work after an earlier failure: {0}")]
    Failed(Box<StorageError>),
    /// The log writer was shut down.
    #[error("the log writer has shut down")]
    Closed,
}

/// `Result` with [`StorageError`].
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// Whether the error poisons the component that hit it: everything except a rejected request
    /// ([`StorageError::InvalidRequest`], [`StorageError::StaleSnapshot`]), which changed nothing.
    #[must_use]
    pub fn is_poisoning(&self) -> bool {
        !matches!(
            self,
            StorageError::InvalidRequest(_) | StorageError::StaleSnapshot { .. }
        )
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        reason: impl fmt::Display,
    ) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.to_string(),
        }
    }

    /// The error to return for every request after `self` poisoned a component.
    pub(crate) fn poisoned(&self) -> Self {
        match self {
            StorageError::Failed(_) => self.clone(),
            other => StorageError::Failed(Box::new(other.clone())),
        }
    }
}

/// Attaches the operation and path to an `io::Error`: `fs.read(p).map_err(io_err("read", p))`.
pub(crate) fn io_err<'a>(
    op: &'static str,
    path: &'a std::path::Path,
) -> impl FnOnce(io::Error) -> StorageError + 'a {
    move |e| StorageError::io(op, path, e)
}
