//! [`EpochFiles`]: the `acceptedEpoch` and `currentEpoch` files of `dataDir` (ZooKeeper's names
//! and content: the epoch in plain decimal text), each replaced atomically and durably, and
//! read back at startup.
//!
//! Durability order is the caller's job (`spec/PROTOCOL.md` §4, §5.2): `acceptedEpoch` before
//! ACKEPOCH, the log fsync *then* `currentEpoch` *then* the ACK of NEWLEADER. Every setter
//! returns only once the new value is durable.

use std::{
    io,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use tracing::{info, warn};
use zab_spec::Epoch;

use super::{
    error::{Result, StorageError},
    format::TMP_SUFFIX,
    fs::{FileSystem, replace_atomically},
};

/// The name of the accepted-epoch file (ZooKeeper's).
pub const ACCEPTED_EPOCH_FILE: &str = "acceptedEpoch";
/// The name of the current-epoch file (ZooKeeper's).
pub const CURRENT_EPOCH_FILE: &str = "currentEpoch";

/// The two epoch files. Cloning gives another handle on the same files.
#[derive(Debug, Clone)]
pub struct EpochFiles {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    accepted: Epoch,
    current: Epoch,
    failed: Option<StorageError>,
}

/// Parses an epoch file's content: a decimal `u32`, surrounding ASCII whitespace allowed.
fn parse_epoch(path: &Path, bytes: &[u8]) -> Result<Epoch> {
    let bad = |reason: String| StorageError::EpochFile {
        path: path.to_path_buf(),
        reason,
    };
    let excerpt = || String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
    let text = std::str::from_utf8(bytes)
        .map_err(|_| bad(format!("not UTF-8 text: {:?}", excerpt())))?
        .trim_matches(|c: char| c.is_ascii_whitespace());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!("not a decimal epoch: {:?}", excerpt())));
    }
    text.parse::<u32>()
        .map(Epoch)
        .map_err(|_| bad(format!("epoch out of range (more than 32 bits): {text}")))
}

fn read_epoch(fs: &dyn FileSystem, path: &Path) -> Result<Option<Epoch>> {
    match fs.read(path) {
        Ok(bytes) => parse_epoch(path, &bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", path, e)),
    }
}

impl EpochFiles {
    /// Reads the epoch files of `dir` (which must exist). `has_data`: the data directories hold
    /// log records or snapshots.
    ///
    /// A missing file is epoch 0 only when nothing else exists (a fresh data directory), with
    /// one exception: `currentEpoch` alone may be missing next to data, because a server's very
    /// first NEWLEADER persists the synced transactions (or a SNAP) *before* it writes
    /// `currentEpoch`, and a crash in between is legal; its current epoch is then 0.
    pub(crate) fn open(fs: Arc<dyn FileSystem>, dir: PathBuf, has_data: bool) -> Result<Self> {
        for name in [ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE] {
            let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
            match fs.remove_file(&tmp) {
                Ok(()) => info!(file = %tmp.display(), "removed an unfinished epoch file"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("remove", tmp, e)),
            }
        }
        let accepted_path = dir.join(ACCEPTED_EPOCH_FILE);
        let current_path = dir.join(CURRENT_EPOCH_FILE);
        let accepted = read_epoch(&*fs, &accepted_path)?;
        let current = read_epoch(&*fs, &current_path)?;
        let (accepted, current) = match (accepted, current) {
            (None, None) if !has_data => (Epoch(0), Epoch(0)),
            (None, _) => {
                return Err(StorageError::Inconsistent(format!(
                    "{} is missing but the data directories are not fresh (they hold {}): \
                     refusing to assume epoch 0",
                    accepted_path.display(),
                    if has_data {
                        "log records or snapshots"
                    } else {
                        "a currentEpoch file"
                    }
                )));
            }
            (Some(a), None) => {
                if has_data {
                    warn!(
                        file = %current_path.display(),
                        accepted_epoch = %a,
                        "currentEpoch is missing next to data: crash during this server's first \
                         NEWLEADER (transactions persisted, currentEpoch not yet); using 0"
                    );
                }
                (a, Epoch(0))
            }
            (Some(a), Some(c)) => {
                if c > a {
                    return Err(StorageError::EpochFile {
                        path: current_path,
                        reason: format!("currentEpoch {c} is greater than acceptedEpoch {a}"),
                    });
                }
                (a, c)
            }
        };
        Ok(EpochFiles {
            inner: Arc::new(Inner {
                fs,
                dir,
                state: Mutex::new(State {
                    accepted,
                    current,
                    failed: None,
                }),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The last epoch accepted from LEADERINFO (the paper's `f.p`).
    #[must_use]
    pub fn accepted_epoch(&self) -> Epoch {
        self.state().accepted
    }

    /// The epoch of the last NEWLEADER accepted (the paper's `f.a`).
    #[must_use]
    pub fn current_epoch(&self) -> Epoch {
        self.state().current
    }

    fn write(&self, st: &mut State, name: &str, epoch: Epoch) -> Result<()> {
        st.failed.as_ref().map_or(Ok(()), |e| Err(e.poisoned()))?;
        let text = format!("{}\n", epoch.0);
        let r = replace_atomically(&*self.inner.fs, &self.inner.dir, name, &[text.as_bytes()]);
        if let Err(e) = &r {
            st.failed = Some(e.clone());
        }
        r
    }

    /// Durably sets `acceptedEpoch`. Epochs never go back: `epoch` must be at least the current
    /// accepted epoch (equal is a no-op).
    pub fn set_accepted_epoch(&self, epoch: Epoch) -> Result<()> {
        let mut st = self.state();
        if epoch < st.accepted {
            return Err(StorageError::InvalidRequest(format!(
                "acceptedEpoch cannot go back from {} to {epoch}",
                st.accepted
            )));
        }
        if epoch == st.accepted {
            return Ok(());
        }
        self.write(&mut st, ACCEPTED_EPOCH_FILE, epoch)?;
        st.accepted = epoch;
        Ok(())
    }

    /// Durably sets `currentEpoch`: at least the current one (equal is a no-op), at most
    /// `acceptedEpoch`.
    pub fn set_current_epoch(&self, epoch: Epoch) -> Result<()> {
        let mut st = self.state();
        if epoch < st.current || epoch > st.accepted {
            return Err(StorageError::InvalidRequest(format!(
                "currentEpoch {epoch} must be between the current {} and acceptedEpoch {}",
                st.current, st.accepted
            )));
        }
        if epoch == st.current {
            return Ok(());
        }
        self.write(&mut st, CURRENT_EPOCH_FILE, epoch)?;
        st.current = epoch;
        Ok(())
    }
}

#[cfg(all(test, not(zab_loom)))]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_epochs_and_rejects_garbage() {
        let p = Path::new("/d/currentEpoch");
        assert_eq!(parse_epoch(p, b"7").unwrap(), Epoch(7));
        assert_eq!(parse_epoch(p, b" 12\n").unwrap(), Epoch(12));
        assert_eq!(parse_epoch(p, b"4294967295").unwrap(), Epoch(u32::MAX));
        for bad in [
            &b""[..],
            b"\n",
            b"-1",
            b"+1",
            b"0x10",
            b"1 2",
            b"abc",
            b"4294967296",
            b"\xff",
        ] {
            let err = parse_epoch(p, bad).unwrap_err().to_string();
            assert!(err.contains("/d/currentEpoch"), "{err}");
        }
    }
}
