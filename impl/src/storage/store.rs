//! [`Storage`]: the durable state of one server (log, snapshots, epoch files) behind one
//! synchronous API, and its recovery at startup. The log writer thread (`writer.rs`) owns a
//! `Storage` and adds group commit; single-threaded callers (tests, a deterministic
//! simulation) can use it directly.
//!
//! Beyond what `TxnLog` checks, `Storage` keeps the history well formed: every logged zxid
//! after the recovery point (`base`: the snapshot the log continues from, or `0x0`) directly
//! follows the previous one (`IsNextZxid`), and the recovered state is a snapshot plus a
//! gap-free run of transactions after it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use tracing::{info, warn};
use zab_spec::{Epoch, Zxid, sync::is_next_zxid};

use super::{
    epoch::{EpochFiles, write_recovering_flag},
    error::{Result, StorageError, io_err},
    fs::FileSystem,
    log::{LogConfig, LogRecord, TxnLog},
    snapshot::{Snapshot, SnapshotStore, SnapshotTicket},
    spool::SnapData,
};

/// The subdirectory of `dataDir` and `dataLogDir` that holds our files (like ZooKeeper's
/// `version-2`; the format is our own).
pub const LAYOUT_DIR: &str = "zab-v1";

/// Where and how to store.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// ZooKeeper's `dataDir`: snapshots and epoch files go to `<data_dir>/zab-v1/` (`myid`, which
    /// configuration reads, stays in `<data_dir>` itself).
    pub data_dir: PathBuf,
    /// ZooKeeper's `dataLogDir`: log segments go to `<data_log_dir>/zab-v1/`. May equal
    /// `data_dir`.
    pub data_log_dir: PathBuf,
    /// A log segment that reached this size is closed; the next append starts a new one.
    /// Default 64 MiB.
    pub segment_bytes: u64,
    /// How many snapshots to keep (ZooKeeper's `autopurge.snapRetainCount`), at least 1.
    /// Default 3.
    pub snap_retain_count: usize,
    /// The largest transaction payload accepted. Default 16 MiB.
    pub max_record_bytes: u32,
    /// Appends are written to the segment file once this many bytes are buffered (and at
    /// every sync). Default 1 MiB.
    pub write_buffer_bytes: usize,
}

impl StorageConfig {
    /// The defaults, with the given directories.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>, data_log_dir: impl Into<PathBuf>) -> StorageConfig {
        StorageConfig {
            data_dir: data_dir.into(),
            data_log_dir: data_log_dir.into(),
            segment_bytes: 64 << 20,
            snap_retain_count: 3,
            max_record_bytes: 16 << 20,
            write_buffer_bytes: 1 << 20,
        }
    }
}

/// What recovery found: the state to rebuild is `snapshot` (or the empty state) followed by
/// `txns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The newest valid snapshot, if any (`lastSnapshot`).
    pub snapshot: Option<Snapshot>,
    /// Every logged transaction after the snapshot, gap-free and in zxid order.
    pub txns: Vec<LogRecord>,
    /// `acceptedEpoch` (0 on a fresh data directory).
    pub accepted_epoch: Epoch,
    /// `currentEpoch` (0 on a fresh data directory).
    pub current_epoch: Epoch,
    /// The durable `recovering` flag (`spec/PROTOCOL.md` §7.1): set before, or by this
    /// recovery because it found damage (then `damage` says what).
    pub recovering: bool,
    /// The damage this recovery found and made the server recover from, one line each.
    pub damage: Vec<String>,
}

impl Recovered {
    /// The zxid of the snapshot (`0x0` if none): the recovery point.
    #[must_use]
    pub fn snapshot_zxid(&self) -> Zxid {
        self.snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid)
    }

    /// The last zxid of the recovered history.
    #[must_use]
    pub fn last_zxid(&self) -> Zxid {
        self.txns.last().map_or(self.snapshot_zxid(), |t| t.zxid)
    }
}

/// The durable state of one server.
#[derive(Debug)]
pub struct Storage {
    log: TxnLog,
    snapshots: SnapshotStore,
    epochs: EpochFiles,
    /// The zxid the log continues from: the recovered or installed snapshot, or `0x0`.
    base: Zxid,
}

/// Checks that `txns` directly follow `from` without a gap; describes the first gap otherwise.
fn check_chain(from: Zxid, txns: &[LogRecord]) -> std::result::Result<(), String> {
    let mut prev = from;
    for t in txns {
        if !is_next_zxid(prev, t.zxid) {
            return Err(format!(
                "{} does not directly follow {prev}: transactions are missing",
                t.zxid
            ));
        }
        prev = t.zxid;
    }
    Ok(())
}

/// How many of `txns` directly follow `from`, one after the other, without a gap.
fn chained_prefix(from: Zxid, txns: &[LogRecord]) -> usize {
    let mut prev = from;
    txns.iter()
        .take_while(|t| {
            let ok = is_next_zxid(prev, t.zxid);
            prev = t.zxid;
            ok
        })
        .count()
}

fn ensure_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.create_dir_all(dir)
        .map_err(io_err("create directory", dir))?;
    if let Some(parent) = dir.parent() {
        fs.sync_dir(parent)
            .map_err(io_err("fsync directory", parent))?;
    }
    Ok(())
}

impl Storage {
    /// Opens (creating if needed) and recovers the durable state: cuts a torn log tail (with a
    /// warning), refuses corruption and inconsistency, picks the newest valid snapshot (falling
    /// back to an older one, or to none, only if the log covers the gap through the corrupt
    /// ones, which are then renamed `*.corrupt`), prunes log segments older than the oldest
    /// snapshot, and reads the epoch files.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] / [`StorageError::Inconsistent`] / [`StorageError::EpochFile`]
    /// name the file (and byte offset) that prevents a safe start; I/O errors are returned as
    /// they are.
    pub fn open(fs: Arc<dyn FileSystem>, config: &StorageConfig) -> Result<(Storage, Recovered)> {
        let data_dir = config.data_dir.join(LAYOUT_DIR);
        let log_dir = config.data_log_dir.join(LAYOUT_DIR);
        ensure_dir(&*fs, &data_dir)?;
        ensure_dir(&*fs, &log_dir)?;
        let log_cfg = LogConfig {
            segment_bytes: config.segment_bytes.max(1),
            max_record_bytes: config.max_record_bytes,
            write_buffer_bytes: config.write_buffer_bytes,
        };
        let mut damage = Vec::new();
        let mut flag = |reason: &str| write_recovering_flag(&*fs, &data_dir, reason);
        let (mut log, records, log_damage) = TxnLog::open(fs.clone(), log_dir, log_cfg, &mut flag)?;
        damage.extend(log_damage);
        let snapshots =
            SnapshotStore::open(fs.clone(), data_dir.clone(), config.snap_retain_count)?;
        let last_logged = records
            .last()
            .map(|r| r.zxid)
            .into_iter()
            .chain(snapshots.zxids())
            .max();
        let epochs = EpochFiles::open(fs.clone(), data_dir.clone(), last_logged)?;

        let mut corrupt = Vec::new();
        let mut snapshot = None;
        for zxid in snapshots.zxids().into_iter().rev() {
            match snapshots.open_checked(zxid)? {
                Ok(data) => {
                    snapshot = Some(Snapshot { zxid, data });
                    break;
                }
                Err(reason) => {
                    warn!(zxid = %zxid, reason = %reason, "corrupt snapshot");
                    corrupt.push((zxid, reason));
                }
            }
        }
        let base = snapshot.as_ref().map_or(Zxid::ZERO, |s| s.zxid);
        let mut txns: Vec<LogRecord> = records.into_iter().filter(|r| r.zxid > base).collect();
        let from = match &snapshot {
            Some(s) => format!("the snapshot at {}", s.zxid),
            None => "the empty state".to_owned(),
        };
        // The longest gap-free run after the base: what this server can rebuild.
        let chained = chained_prefix(base, &txns);
        let chain = check_chain(base, &txns);
        let last_chained = txns[..chained].last().map_or(base, |t| t.zxid);
        let newest_corrupt = corrupt.first().map(|(z, _)| *z);
        let covered = newest_corrupt.is_none_or(|z| last_chained >= z);
        let lost = match (&chain, covered) {
            (Ok(()), true) => None,
            (Err(gap), true) => Some(format!("the log does not continue {from}: {gap}")),
            (_, false) => {
                let list: Vec<String> = corrupt
                    .iter()
                    .map(|(z, why)| format!("snapshot at {z} ({why})"))
                    .collect();
                Some(format!(
                    "corrupt {}; falling back to {from}, the log holds the transactions from \
                     there only through {last_chained}{}",
                    list.join(", "),
                    match &chain {
                        Err(gap) => format!(" ({gap})"),
                        Ok(()) => String::new(),
                    }
                ))
            }
        };
        if let Some(reason) = lost {
            // Durable state this server had is gone (§7.1): keep what rebuilds, make the
            // `recovering` flag durable, then drop the rest of the log so that appends
            // continue the kept history.
            let reason = format!(
                "{reason}: keeping {from} and the {chained} transactions after it, through \
                 {last_chained}; recovering until a leader restores this server"
            );
            tracing::error!("{reason}");
            epochs.set_recovering(true, &reason)?;
            log.remove_after(last_chained)?;
            txns.truncate(chained);
            damage.push(reason);
        }
        if !corrupt.is_empty() {
            for (zxid, _) in &corrupt {
                snapshots.quarantine(*zxid)?;
            }
            warn!(fallback = %from, "recovered from an older state and the log, past corrupt snapshots");
        }
        if let Some(oldest) = snapshots.oldest() {
            log.prune_through(oldest)?;
        }
        let recovered = Recovered {
            snapshot,
            txns,
            accepted_epoch: epochs.accepted_epoch(),
            current_epoch: epochs.current_epoch(),
            recovering: epochs.recovering(),
            damage,
        };
        info!(
            snapshot = %base,
            txns = recovered.txns.len(),
            last_zxid = %recovered.last_zxid(),
            accepted_epoch = %recovered.accepted_epoch,
            current_epoch = %recovered.current_epoch,
            recovering = recovered.recovering,
            "storage recovered"
        );
        Ok((
            Storage {
                log,
                snapshots,
                epochs,
                base,
            },
            recovered,
        ))
    }

    /// The last zxid of the history (durable or not).
    #[must_use]
    pub fn last_zxid(&self) -> Zxid {
        self.base.max(self.log.last())
    }

    /// The last zxid known durable.
    #[must_use]
    pub fn durable_zxid(&self) -> Zxid {
        self.base.max(self.log.durable())
    }

    /// The snapshot files.
    #[must_use]
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// The epoch files.
    #[must_use]
    pub fn epochs(&self) -> &EpochFiles {
        &self.epochs
    }

    /// The largest payload [`Storage::append`] accepts.
    #[must_use]
    pub fn max_record_bytes(&self) -> u32 {
        self.log.max_record_bytes()
    }

    /// How many log segment files there are.
    #[must_use]
    pub fn segment_count(&self) -> usize {
        self.log.segment_count()
    }

    /// Buffers a transaction: durable only after [`Storage::sync`].
    ///
    /// # Errors
    /// [`StorageError::InvalidRequest`] if `zxid` does not directly follow
    /// [`Storage::last_zxid`] or the payload is too large (nothing changed); any other error
    /// is fatal.
    pub fn append(&mut self, zxid: Zxid, payload: &[u8]) -> Result<()> {
        let last = self.last_zxid();
        if !is_next_zxid(last, zxid) {
            return Err(StorageError::InvalidRequest(format!(
                "append of {zxid} does not directly follow the last zxid {last}"
            )));
        }
        self.log.append(zxid, payload)
    }

    /// Makes everything appended so far durable (one fsync, plus the directory's when a
    /// segment was created); returns the last durable zxid.
    pub fn sync(&mut self) -> Result<Zxid> {
        self.log.sync()?;
        Ok(self.durable_zxid())
    }

    /// TRUNC: durably cuts the history after `zxid`, which must be in it (the recovery point or
    /// a logged transaction). Everything up to `zxid` is durable when this returns; snapshots
    /// after `zxid` are deleted; snapshot tickets taken before become stale.
    ///
    /// # Errors
    /// [`StorageError::InvalidRequest`] (nothing changed) if `zxid` is not in the durable
    /// history or cannot be rebuilt (no snapshot at or before it, and the log does not reach
    /// back to it).
    pub fn truncate_after(&mut self, zxid: Zxid) -> Result<()> {
        let last = self.last_zxid();
        if zxid > last {
            return Err(StorageError::InvalidRequest(format!(
                "cannot truncate after {zxid}: the history ends at {last}"
            )));
        }
        self.log.sync()?;
        let new_base = self
            .snapshots
            .zxids()
            .into_iter()
            .filter(|z| *z <= zxid)
            .max()
            .unwrap_or(Zxid::ZERO);
        let mut kept = self.log.read_after(new_base)?;
        kept.retain(|r| r.zxid <= zxid);
        let problem = match check_chain(new_base, &kept) {
            Err(gap) => Some(gap),
            Ok(()) if kept.last().map_or(new_base, |r| r.zxid) != zxid => {
                Some(format!("{zxid} is not a logged transaction"))
            }
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            return Err(StorageError::InvalidRequest(format!(
                "cannot truncate after {zxid}: rebuilding from {new_base}: {problem}"
            )));
        }
        self.snapshots.remove_newer_than(zxid)?;
        self.log.remove_after(zxid)?;
        self.base = new_base;
        info!(zxid = %zxid, "log truncated");
        Ok(())
    }

    /// SNAP: durably replaces the whole history by the snapshot `data` of the state at `zxid`
    /// (the log is emptied, other snapshots deleted, snapshot tickets taken before become
    /// stale). The next append must directly follow `zxid`.
    pub fn install_snapshot(&mut self, zxid: Zxid, data: &[u8]) -> Result<()> {
        self.install_snapshot_data(zxid, &SnapData::Memory(Bytes::copy_from_slice(data)))
    }

    /// [`Storage::install_snapshot`] of a snapshot in memory or received into a temporary
    /// file of the snapshot directory ([`super::SnapSpool`]; renamed into place, not copied).
    pub fn install_snapshot_data(&mut self, zxid: Zxid, data: &SnapData) -> Result<()> {
        self.log.sync()?;
        let log = &mut self.log;
        self.snapshots
            .install(zxid, data, || log.remove_after(zxid))?;
        self.log.remove_all()?;
        self.base = zxid;
        Ok(())
    }

    /// Every logged transaction after `zxid`, in order (appended ones included, durable or
    /// not). `zxid` must be the recovery point, a logged transaction, or anything from which
    /// the log still holds every later transaction.
    ///
    /// # Errors
    /// [`StorageError::InvalidRequest`] if transactions after `zxid` were compacted into a
    /// snapshot (the caller needs to send a snapshot instead).
    pub fn read_after(&mut self, zxid: Zxid) -> Result<Vec<LogRecord>> {
        let txns = self.log.read_after(zxid)?;
        check_chain(zxid, &txns).map_err(|gap| {
            StorageError::InvalidRequest(format!(
                "the log does not hold every transaction after {zxid}: {gap}"
            ))
        })?;
        Ok(txns)
    }

    /// A ticket to take with the state to snapshot: see [`SnapshotTicket`].
    #[must_use]
    pub fn snapshot_ticket(&self) -> SnapshotTicket {
        self.snapshots.ticket()
    }

    /// Durably writes a snapshot of the state at `zxid`, keeps the newest
    /// `snap_retain_count`, and prunes the log segments they cover ([`Storage::compact`]).
    /// The log writer does the write on the caller's thread and the pruning on its own; this is
    /// the single-threaded form.
    pub fn save_snapshot(&mut self, ticket: SnapshotTicket, zxid: Zxid, data: &[u8]) -> Result<()> {
        self.snapshots.save(ticket, zxid, data)?;
        self.compact()
    }

    /// Deletes the log segments whose transactions are all at or before the oldest retained
    /// snapshot (never the last segment).
    pub fn compact(&mut self) -> Result<()> {
        match self.snapshots.oldest() {
            Some(oldest) => self.prune_log_through(oldest),
            None => Ok(()),
        }
    }

    /// Deletes the log segments whose transactions are all at or before `zxid` (the oldest
    /// retained snapshot, as the caller read it; never the last segment).
    pub(crate) fn prune_log_through(&mut self, zxid: Zxid) -> Result<()> {
        self.log.prune_through(zxid).map(drop)
    }
}

#[cfg(all(test, not(zab_loom)))]
mod tests {
    use super::*;

    fn rec(e: u32, c: u32) -> LogRecord {
        LogRecord {
            zxid: Zxid::new(e, c),
            payload: Bytes::new(),
        }
    }

    #[test]
    fn chains_follow_the_next_zxid_rule() {
        assert!(check_chain(Zxid::ZERO, &[rec(1, 1), rec(1, 2), rec(3, 1)]).is_ok());
        assert!(check_chain(Zxid::new(1, 2), &[rec(1, 3)]).is_ok());
        assert!(check_chain(Zxid::new(1, 2), &[]).is_ok());
        assert!(check_chain(Zxid::ZERO, &[rec(1, 2)]).is_err());
        assert!(check_chain(Zxid::new(1, 1), &[rec(1, 3)]).is_err());
    }
}
