//! [`EpochFiles`]: the `acceptedEpoch` and `currentEpoch` files of `dataDir` (ZooKeeper's names
//! and content: the epoch in plain decimal text), each replaced atomically and durably, and
//! read back at startup.
//!
//! It also keeps the `recovering` flag file (`spec/PROTOCOL.md` §7.1): present while this
//! server's durable state is known to be damaged and not yet restored by a leader; its content
//! is the reason, for operators.
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
/// The name of the `recovering` flag file (ours, `spec/PROTOCOL.md` §7.1).
pub const RECOVERING_FILE: &str = "recovering";

/// Sets the `recovering` flag durably (write temp, fsync, rename, fsync the directory):
/// called before anything relies on it, e.g. before recovery cuts a damaged log.
pub(crate) fn write_recovering_flag(fs: &dyn FileSystem, dir: &Path, reason: &str) -> Result<()> {
    let text = format!("{reason}\n");
    replace_atomically(fs, dir, RECOVERING_FILE, &[text.as_bytes()])
}

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
    recovering: bool,
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
    /// Reads the epoch files and the `recovering` flag of `dir` (which must exist).
    /// `last_logged`: the last zxid of the log or snapshot, `None` when the data directories
    /// hold neither.
    ///
    /// A missing file is epoch 0 only when nothing else exists (a fresh data directory).
    /// An epoch file missing beside data is damage (§7.1): ZooKeeper's rule gives the missing
    /// epoch(s) the epoch of the last logged zxid (a missing `currentEpoch` never above
    /// `acceptedEpoch`, a missing `acceptedEpoch` never below `currentEpoch`), and the server
    /// enters the recovering state: the flag is made durable first, then the epoch files are
    /// rewritten. A lone missing `currentEpoch` is also what a crash during a server's very
    /// first NEWLEADER leaves (the synced transactions are persisted before `currentEpoch`);
    /// treating it as damage only costs that server a restoration by its peers.
    pub(crate) fn open(
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        last_logged: Option<zab_spec::Zxid>,
    ) -> Result<Self> {
        let has_data = last_logged.is_some();
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
        let mut recovering = match fs.read(&dir.join(RECOVERING_FILE)) {
            Ok(reason) => {
                warn!(
                    file = %dir.join(RECOVERING_FILE).display(),
                    reason = %String::from_utf8_lossy(&reason[..reason.len().min(400)]).trim(),
                    "this server is recovering from damaged storage (not a candidate, votes and \
                     ACKs not counted) until a leader restores it"
                );
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(StorageError::io("read", dir.join(RECOVERING_FILE), e)),
        };
        let logged_epoch = last_logged.map_or(Epoch(0), |z| z.epoch);
        let lost = match (accepted, current) {
            (None, None) if !has_data => None,
            (Some(_), None) if !has_data => None,
            (Some(_), Some(_)) => None,
            (a, c) => {
                let a2 = a.unwrap_or_else(|| logged_epoch.max(c.unwrap_or(Epoch(0))));
                let c2 = c.unwrap_or_else(|| logged_epoch.min(a2));
                Some((a.is_none(), c.is_none(), a2, c2))
            }
        };
        let (accepted, current) = match (lost, accepted, current) {
            (Some((lost_a, lost_c, a, c)), _, _) => {
                let missing: Vec<&str> =
                    [(lost_a, ACCEPTED_EPOCH_FILE), (lost_c, CURRENT_EPOCH_FILE)]
                        .iter()
                        .filter(|(l, _)| *l)
                        .map(|(_, n)| *n)
                        .collect();
                let reason = format!(
                    "{} missing in {} beside a non-empty data directory (last logged zxid {}): \
                     using the epoch of the last logged zxid (acceptedEpoch {a}, currentEpoch \
                     {c}); recovering until a leader restores this server",
                    missing.join(" and "),
                    dir.display(),
                    last_logged.unwrap_or(zab_spec::Zxid::ZERO),
                );
                tracing::error!("{reason}");
                write_recovering_flag(&*fs, &dir, &reason)?;
                recovering = true;
                if lost_a {
                    replace_atomically(
                        &*fs,
                        &dir,
                        ACCEPTED_EPOCH_FILE,
                        &[format!("{}\n", a.0).as_bytes()],
                    )?;
                }
                if lost_c {
                    replace_atomically(
                        &*fs,
                        &dir,
                        CURRENT_EPOCH_FILE,
                        &[format!("{}\n", c.0).as_bytes()],
                    )?;
                }
                (a, c)
            }
            (None, None, None) => (Epoch(0), Epoch(0)),
            (None, Some(a), None) => (a, Epoch(0)),
            (None, None, Some(c)) => (c, c),
            (None, Some(a), Some(c)) => {
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
                    recovering,
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

    /// Whether the `recovering` flag is set (§7.1).
    #[must_use]
    pub fn recovering(&self) -> bool {
        self.state().recovering
    }

    /// Durably sets (with `reason`) or clears the `recovering` flag; setting or clearing it
    /// twice is a no-op.
    pub fn set_recovering(&self, on: bool, reason: &str) -> Result<()> {
        let mut st = self.state();
        st.failed.as_ref().map_or(Ok(()), |e| Err(e.poisoned()))?;
        if st.recovering == on {
            return Ok(());
        }
        let r = if on {
            write_recovering_flag(&*self.inner.fs, &self.inner.dir, reason)
        } else {
            let path = self.inner.dir.join(RECOVERING_FILE);
            self.inner
                .fs
                .remove_file(&path)
                .or_else(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| StorageError::io("remove", &path, e))
                .and_then(|()| {
                    self.inner
                        .fs
                        .sync_dir(&self.inner.dir)
                        .map_err(|e| StorageError::io("fsync directory", &self.inner.dir, e))
                })
        };
        if let Err(e) = &r {
            st.failed = Some(e.clone());
            return r;
        }
        st.recovering = on;
        Ok(())
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
