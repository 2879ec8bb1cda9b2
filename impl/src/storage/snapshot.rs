//! [`SnapshotStore`]: the snapshot files of `dataDir`: durable atomic writes, retention of the
//! newest N, loading and quarantining at recovery, and the history *generation* that keeps a
//! snapshot serialized before a TRUNC or SNAP from being written after it.
//!
//! Shared between the log writer thread (truncation, installation) and whichever thread writes
//! periodic snapshots; one mutex serializes them, held for the whole of a write so that a
//! truncation waits for an in-flight snapshot and then deletes it if it is beyond the cut.

use std::{
    collections::BTreeSet,
    io,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use tracing::{debug, info, warn};
use zab_spec::Zxid;

use super::{
    error::{Result, StorageError, io_err},
    format::{
        CORRUPT_SUFFIX, SNAP_HEADER_LEN, SNAP_PREFIX, TMP_SUFFIX, check_snapshot_header,
        encode_snapshot_header, parse_name, snap_name,
    },
    fs::{FileSystem, commit_temp, write_temp},
    spool::{SnapData, SnapFile},
};

/// A snapshot: the serialized state after applying every transaction up to `zxid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The last transaction the state includes.
    pub zxid: Zxid,
    /// The serialized state (opaque to storage), left in its file by recovery on a real
    /// disk: read it with [`SnapData::reader`].
    pub data: SnapData,
}

/// Proof that the state about to be snapshotted belongs to the current history: take it (on
/// the protocol thread) when capturing the state to serialize, hand it to
/// [`SnapshotStore::save`]. A TRUNC or SNAP in between makes the save fail with
/// [`StorageError::StaleSnapshot`] instead of resurrecting truncated transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTicket {
    generation: u64,
}

/// The snapshot files. Cloning gives another handle on the same store.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    retain: usize,
    /// The history generation. Changed only with `state` locked; read without the lock, so
    /// that the log writer never waits for a snapshot being written to report durability.
    generation: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The snapshot files present (not necessarily valid: recovery checks the one it uses).
    zxids: BTreeSet<Zxid>,
    failed: Option<StorageError>,
}

impl State {
    fn check(&self) -> Result<()> {
        match &self.failed {
            Some(e) => Err(e.poisoned()),
            None => Ok(()),
        }
    }
}

impl SnapshotStore {
    /// Opens the snapshot files of `dir` (which must exist), deleting leftover temporary files.
    pub(crate) fn open(fs: Arc<dyn FileSystem>, dir: PathBuf, retain: usize) -> Result<Self> {
        let mut zxids = BTreeSet::new();
        for name in fs.list(&dir).map_err(io_err("list", &dir))? {
            if let Some(z) = parse_name(&name, SNAP_PREFIX) {
                zxids.insert(z);
            } else if name.starts_with(SNAP_PREFIX) && name.ends_with(TMP_SUFFIX) {
                let path = dir.join(&name);
                info!(file = %path.display(), "removing an unfinished snapshot (crash while writing it)");
                fs.remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        Ok(SnapshotStore {
            inner: Arc::new(Inner {
                fs,
                dir,
                retain: retain.max(1),
                generation: AtomicU64::new(0),
                state: Mutex::new(State {
                    zxids,
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

    fn path(&self, zxid: Zxid) -> PathBuf {
        self.inner.dir.join(snap_name(zxid))
    }

    fn fs(&self) -> &dyn FileSystem {
        &*self.inner.fs
    }

    fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A ticket for the current history: see [`SnapshotTicket`].
    #[must_use]
    pub fn ticket(&self) -> SnapshotTicket {
        SnapshotTicket {
            generation: self.generation(),
        }
    }

    /// The history generation: bumped by every truncation and snapshot installation. Never
    /// waits (not even for a snapshot being written).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// A new history generation; called with `state` locked.
    fn bump_generation(&self, _locked: &State) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The zxids of the snapshot files, oldest first.
    #[must_use]
    pub fn zxids(&self) -> Vec<Zxid> {
        self.state().zxids.iter().copied().collect()
    }

    /// The oldest retained snapshot: the log before it is no longer needed.
    #[must_use]
    pub fn oldest(&self) -> Option<Zxid> {
        self.state().zxids.first().copied()
    }

    /// Durably writes the snapshot of the state at `zxid` (temporary file, fsync, rename,
    /// directory fsync), then deletes all but the newest `retain` snapshots. Runs on the calling
    /// thread. Returns the oldest retained snapshot's zxid.
    ///
    /// # Errors
    /// [`StorageError::StaleSnapshot`] (nothing written, not fatal) if the history was
    /// truncated or replaced since `ticket` was taken; an I/O error otherwise (fatal).
    pub fn save(&self, ticket: SnapshotTicket, zxid: Zxid, data: &[u8]) -> Result<Zxid> {
        let mut st = self.state();
        st.check()?;
        if ticket.generation != self.generation() {
            return Err(StorageError::StaleSnapshot { zxid });
        }
        let r = self.save_locked(&mut st, zxid, data);
        if let Err(e) = &r {
            st.failed = Some(e.clone());
        }
        r
    }

    fn save_locked(&self, st: &mut State, zxid: Zxid, data: &[u8]) -> Result<Zxid> {
        let header = encode_snapshot_header(zxid, data);
        let name = snap_name(zxid);
        let tmp = write_temp(self.fs(), self.dir(), &name, &[&header, data])?;
        commit_temp(self.fs(), self.dir(), &tmp, &name)?;
        st.zxids.insert(zxid);
        info!(zxid = %zxid, bytes = data.len(), "snapshot written");
        while st.zxids.len() > self.inner.retain {
            let Some(old) = st.zxids.pop_first() else {
                break;
            };
            debug!(zxid = %old, "deleting a snapshot beyond the retain count");
            self.remove(old)?;
        }
        Ok(st.zxids.first().copied().unwrap_or(zxid))
    }

    fn remove(&self, zxid: Zxid) -> Result<()> {
        let path = self.path(zxid);
        match self.fs().remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::io("remove", path, e)),
        }
    }

    /// Checks the snapshot at `zxid` by reading it through its checksum in bounded pieces,
    /// and leaves its data in the file (recovery: the state is rebuilt from
    /// [`SnapData::reader`], never from the whole file in memory). The outer error is an
    /// I/O failure; the inner one says why the file is corrupt.
    pub(crate) fn open_checked(&self, zxid: Zxid) -> Result<Result<SnapData, String>> {
        use std::io::Read as _;
        let path = self.path(zxid);
        let mut r = self.fs().open_read(&path).map_err(io_err("read", &path))?;
        let mut header = Vec::with_capacity(SNAP_HEADER_LEN);
        (&mut r)
            .take(SNAP_HEADER_LEN as u64)
            .read_to_end(&mut header)
            .map_err(io_err("read", &path))?;
        let (mut crc, mut data_len) = (0u32, 0u64);
        let mut piece = vec![0u8; 1 << 20];
        loop {
            match r.read(&mut piece) {
                Ok(0) => break,
                Ok(n) => {
                    crc = crc32c::crc32c_append(crc, &piece[..n]);
                    data_len += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StorageError::io("read", path, e)),
            }
        }
        let file_len = header.len() as u64 + data_len;
        Ok(
            check_snapshot_header(&header, zxid, file_len).and_then(|(len, want)| {
                if want == crc {
                    Ok(SnapData::in_file(
                        Arc::clone(&self.inner.fs),
                        path,
                        SNAP_HEADER_LEN as u64,
                        len,
                    ))
                } else {
                    Err("data checksum mismatch".into())
                }
            }),
        )
    }

    /// Moves a corrupt snapshot out of the way (`.corrupt` suffix, kept for inspection).
    pub(crate) fn quarantine(&self, zxid: Zxid) -> Result<()> {
        let mut st = self.state();
        st.check()?;
        let from = self.path(zxid);
        let to = self
            .dir()
            .join(format!("{}{CORRUPT_SUFFIX}", snap_name(zxid)));
        warn!(file = %from.display(), to = %to.display(), "quarantining a corrupt snapshot");
        let r = self
            .fs()
            .rename(&from, &to)
            .map_err(io_err("rename", &from))
            .and_then(|()| {
                self.fs()
                    .sync_dir(self.dir())
                    .map_err(io_err("fsync directory", self.dir()))
            });
        match r {
            Ok(()) => {
                st.zxids.remove(&zxid);
                Ok(())
            }
            Err(e) => {
                st.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// A new history generation (TRUNC to `zxid`): durably deletes every snapshot after `zxid`.
    pub(crate) fn remove_newer_than(&self, zxid: Zxid) -> Result<()> {
        let mut st = self.state();
        st.check()?;
        self.bump_generation(&st);
        let newer: Vec<Zxid> = st
            .zxids
            .range(zxid..)
            .copied()
            .filter(|z| *z > zxid)
            .collect();
        if newer.is_empty() {
            return Ok(());
        }
        let r = (|| {
            for z in &newer {
                warn!(zxid = %z, cut = %zxid, "truncation deletes a snapshot beyond the cut");
                self.remove(*z)?;
            }
            self.fs()
                .sync_dir(self.dir())
                .map_err(io_err("fsync directory", self.dir()))
        })();
        match r {
            Ok(()) => {
                st.zxids.retain(|z| *z <= zxid);
                Ok(())
            }
            Err(e) => {
                st.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// A new history generation (SNAP): makes the snapshot at `zxid` the only one, durably.
    /// `cut_log` must durably remove every log record after `zxid`; it runs after the snapshot
    /// is written and fsynced under its temporary name and before it is renamed into place, so
    /// a crash leaves either the old state (maybe without its suffix after `zxid`) or the new
    /// snapshot, never the new snapshot followed by old records.
    pub(crate) fn install(
        &self,
        zxid: Zxid,
        data: &SnapData,
        cut_log: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let mut st = self.state();
        st.check()?;
        self.bump_generation(&st);
        let r = match data {
            SnapData::Memory(bytes) => self.install_locked(&mut st, zxid, bytes, cut_log),
            SnapData::File(file) => self.install_file_locked(&mut st, zxid, file, cut_log),
        };
        if let Err(e) = &r {
            if e.is_poisoning() {
                st.failed = Some(e.clone());
            }
        }
        r
    }

    fn install_locked(
        &self,
        st: &mut State,
        zxid: Zxid,
        data: &[u8],
        cut_log: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let header = encode_snapshot_header(zxid, data);
        let name = snap_name(zxid);
        let tmp = write_temp(self.fs(), self.dir(), &name, &[&header, data])?;
        self.replace_all_by(st, zxid, &tmp, data.len() as u64, cut_log)
    }

    /// Installs a SNAP received into a temporary file of this directory
    /// ([`super::SnapSpool`], already checked against the SNAP's checksum): fsynced, then
    /// renamed into place like a snapshot written here.
    fn install_file_locked(
        &self,
        st: &mut State,
        zxid: Zxid,
        file: &SnapFile,
        cut_log: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let tmp = file.path().to_path_buf();
        if !file.is_temp() || tmp.parent() != Some(self.dir()) {
            return Err(StorageError::InvalidRequest(format!(
                "{} is not a received snapshot in {}",
                tmp.display(),
                self.dir().display()
            )));
        }
        let mut f = self.fs().open_append(&tmp).map_err(io_err("open", &tmp))?;
        f.sync().map_err(io_err("fsync", &tmp))?;
        drop(f);
        self.replace_all_by(st, zxid, &tmp, file.len(), cut_log)?;
        file.mark_installed();
        Ok(())
    }

    /// The end of an installation: `tmp` (durable) becomes the only snapshot.
    fn replace_all_by(
        &self,
        st: &mut State,
        zxid: Zxid,
        tmp: &Path,
        bytes: u64,
        cut_log: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let name = snap_name(zxid);
        let newer: Vec<Zxid> = st.zxids.iter().copied().filter(|z| *z > zxid).collect();
        for z in &newer {
            self.remove(*z)?;
        }
        if !newer.is_empty() {
            self.fs()
                .sync_dir(self.dir())
                .map_err(io_err("fsync directory", self.dir()))?;
        }
        st.zxids.retain(|z| *z <= zxid);
        cut_log()?;
        commit_temp(self.fs(), self.dir(), tmp, &name)?;
        info!(zxid = %zxid, bytes, "snapshot from the leader installed");
        // The older snapshots belong to the replaced history; losing their deletion in a crash
        // is harmless (the installed snapshot is newer).
        let older: Vec<Zxid> = st.zxids.iter().copied().filter(|z| *z < zxid).collect();
        for z in older {
            self.remove(z)?;
        }
        st.zxids = BTreeSet::from([zxid]);
        Ok(())
    }
}
