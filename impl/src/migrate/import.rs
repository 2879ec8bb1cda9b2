//! `zabd import --from-zookeeper`: ZooKeeper's restore (`FileTxnSnapLog.restore`), then the
//! result written as a zabd data directory.
//!
//! Restore, as ZooKeeper 3.8 does it: the newest snapshot that reads back (a snapshot that
//! fails the cheap end-of-file check, or fails to parse, is skipped with a warning, as
//! `FileSnap.deserialize` does), then every logged transaction after its zxid from the newest
//! log file starting at or before it onwards (`FileTxnLog.getLogFiles`), applied like
//! `DataTree.processTxn` (including the parent cversion fix-up of a replayed `create` that finds
//! its node already there, which a fuzzy snapshot causes). Stricter than ZooKeeper, the
//! transactions after the snapshot must follow it without a gap, and a torn record is only
//! accepted at the end of the last log file; otherwise the import refuses, naming the file
//! and offset.
//!
//! Writing: the tree becomes a zabd snapshot at the last zxid (no log), with `acceptedEpoch` /
//! `currentEpoch` at least the last zxid's epoch, so an ensemble started on it continues the
//! zxid sequence. Everything is written under `<dataDir>/.zab-import.tmp/`, fsynced, recovered
//! once as `zabd` would recover it (and compared), then renamed to `<dataDir>/zab-v1` and the
//! directory fsynced: a crash leaves either no zabd state or all of it.

use super::{
    MigrateError, Result, corrupt, io_err, read_epoch_file, sync_dir, version2_dir, write_synced,
    zk_log, zk_snapshot, zxid_from_name,
};
use crate::storage::{
    ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE, LAYOUT_DIR, StdFs, Storage, StorageConfig,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};
use zab_spec::{ErrorCode, Zxid};
use zab_zk::tree::split_path;
use zab_zk::{DataTree, TxnBody, TxnResult};

/// What a ZooKeeper data directory restores to.
#[derive(Debug)]
pub struct Restored {
    /// The tree, sessions included.
    pub tree: DataTree,
    /// The snapshot used.
    pub snapshot: PathBuf,
    /// Its zxid.
    pub snapshot_zxid: Zxid,
    /// The log files read.
    pub logs: Vec<PathBuf>,
    /// Transactions applied after the snapshot.
    pub txns: usize,
    /// The last zxid (the snapshot's, or the last transaction's).
    pub last_zxid: Zxid,
    /// ZooKeeper's `acceptedEpoch` / `currentEpoch` files, if present.
    pub epochs: (Option<u32>, Option<u32>),
    /// What was skipped or cut, for the operator.
    pub warnings: Vec<String>,
}

fn list(dir: &Path, prefix: &str) -> Result<Vec<(Zxid, PathBuf, Option<String>)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((zxid, suffix)) = zxid_from_name(name, prefix) {
            out.push((zxid, entry.path(), suffix.map(str::to_owned)));
        }
    }
    out.sort_by_key(|(z, _, _)| *z);
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(io_err("read", path))
}

/// Whether `next` directly follows `cur` in ZooKeeper's numbering (a new epoch starts at
/// counter 1; a snapshot may be named after an epoch's counter 0).
fn follows(cur: Zxid, next: Zxid) -> bool {
    (next.epoch == cur.epoch && cur.counter.checked_add(1) == Some(next.counter))
        || (next.epoch > cur.epoch && next.counter == 1)
}

/// Restores a ZooKeeper data directory (`snap_dir`: its `dataDir`; `log_dir`: its
/// `dataLogDir`, the same by default; either may name the `version-2` directory itself).
///
/// # Errors
/// See the module documentation.
pub fn restore(snap_dir: &Path, log_dir: &Path) -> Result<Restored> {
    let snap_v2 = version2_dir(snap_dir);
    let log_v2 = version2_dir(log_dir);
    let snaps = list(&snap_v2, "snapshot")?;
    let logs = list(&log_v2, "log")?;
    let mut warnings = Vec::new();
    if snaps.is_empty() {
        return Err(MigrateError::Refused(if logs.is_empty() {
            format!(
                "no ZooKeeper data in {}: no snapshot.* or log.* files",
                snap_v2.display()
            )
        } else {
            format!(
                "{} has log files but no snapshot; ZooKeeper itself refuses to start from \
                 that (\"No snapshot found, but there are log entries\")",
                log_v2.display()
            )
        }));
    }
    let (snap_zxid, snap_path, snap) = choose_snapshot(&snaps, &snap_v2, &mut warnings)?;
    let mut tree = DataTree::from_nodes(snap.nodes, snap.sessions)
        .map_err(|e| corrupt(&snap_path, 0, e.to_string()))?;
    let (last, applied, read_logs) = replay(&mut tree, &logs, snap_zxid, &mut warnings)?;
    // The sessions still open keep ZooKeeper's password, so their clients can resume them.
    tree.mark_sessions_imported();
    let epochs = (
        read_epoch_file(&snap_v2.join("acceptedEpoch"))?,
        read_epoch_file(&snap_v2.join("currentEpoch"))?,
    );
    Ok(Restored {
        tree,
        snapshot: snap_path,
        snapshot_zxid: snap_zxid,
        logs: read_logs,
        txns: applied,
        last_zxid: last,
        epochs,
        warnings,
    })
}

/// The snapshot ZooKeeper's `FileSnap.deserialize` would load: the newest that reads back.
fn choose_snapshot(
    snaps: &[(Zxid, PathBuf, Option<String>)],
    snap_v2: &Path,
    warnings: &mut Vec<String>,
) -> Result<(Zxid, PathBuf, zk_snapshot::ZkSnapshot)> {
    let mut chosen = None;
    let mut first_error = None;
    for (zxid, path, suffix) in snaps.iter().rev() {
        if let Some(s) = suffix {
            let e = corrupt(
                path,
                0,
                format!(
                    "a .{s} (compressed) snapshot: restart ZooKeeper with \
                     zookeeper.snapshot.compression.method unset so that it writes a plain one"
                ),
            );
            warnings.push(format!("skipped {e}"));
            first_error.get_or_insert(e);
            continue;
        }
        let bytes = read(path)?;
        if !zk_snapshot::looks_complete(&bytes) {
            warnings.push(format!(
                "skipped {}: incomplete (no end seal; ZooKeeper skips it too)",
                path.display()
            ));
            continue;
        }
        match zk_snapshot::parse(path, &bytes) {
            Ok(s) => {
                chosen = Some((*zxid, path.clone(), s));
                break;
            }
            Err(e) => {
                warn!(error = %e, "skipping a snapshot that does not read back");
                warnings.push(format!("skipped {e}"));
                first_error.get_or_insert(e);
            }
        }
    }
    chosen.ok_or_else(|| {
        first_error.unwrap_or_else(|| {
            MigrateError::Refused(format!("no complete snapshot in {}", snap_v2.display()))
        })
    })
}

/// Replays the logged transactions after `snap_zxid` (`FileTxnSnapLog.fastForwardFromEdits`);
/// returns the last zxid, how many were applied, and the files read.
fn replay(
    tree: &mut DataTree,
    logs: &[(Zxid, PathBuf, Option<String>)],
    snap_zxid: Zxid,
    warnings: &mut Vec<String>,
) -> Result<(Zxid, usize, Vec<PathBuf>)> {
    // FileTxnLog.getLogFiles: the newest log starting at or before the snapshot, and all later.
    let start = logs
        .iter()
        .rposition(|(z, _, _)| *z <= snap_zxid)
        .unwrap_or(0);
    let logs = &logs[start..];
    let mut last = snap_zxid;
    let mut applied = 0usize;
    let mut read_logs = Vec::new();
    for (k, (_, path, _)) in logs.iter().enumerate() {
        let bytes = read(path)?;
        let scan = zk_log::parse(path, &bytes)?;
        read_logs.push(path.clone());
        if let Some(at) = scan.torn {
            if k + 1 == logs.len() {
                warnings.push(format!(
                    "{}: cut a torn last record at byte offset {at} (as ZooKeeper does)",
                    path.display()
                ));
            } else {
                return Err(corrupt(
                    path,
                    at,
                    "incomplete record in a log file that is not the last one",
                ));
            }
        }
        for rec in scan.records {
            if rec.zxid <= last {
                if rec.zxid > snap_zxid {
                    return Err(corrupt(
                        path,
                        rec.offset,
                        format!("zxid {} does not come after {last}", rec.zxid),
                    ));
                }
                continue;
            }
            if !follows(last, rec.zxid) {
                return Err(corrupt(
                    path,
                    rec.offset,
                    format!(
                        "transactions are missing: {} does not directly follow {last}",
                        rec.zxid
                    ),
                ));
            }
            apply(tree, &rec);
            last = rec.zxid;
            applied += 1;
        }
    }
    Ok((last, applied, read_logs))
}

/// `DataTree.processTxn` of one logged transaction, with ZooKeeper's restore-time fix-ups.
fn apply(tree: &mut DataTree, rec: &zk_log::ZkLogRecord) {
    let zxid = rec.zxid.to_u64() as i64;
    let mut txn = rec.txn.clone();
    // A pre-3.3 create: parentCVersion -1 means one above the parent's current cversion.
    if let TxnBody::Create(c) = &mut txn.body {
        if c.parent_cversion == -1 {
            if let Some(parent) = split_path(&c.path).and_then(|(p, _)| tree.get(p)) {
                c.parent_cversion = parent.stat.cversion.wrapping_add(1);
            }
        }
    }
    let outcome = tree.apply(&txn, rec.zxid);
    if let (TxnResult::Error(ErrorCode::NodeExists), TxnBody::Create(c)) =
        (&outcome.result, &txn.body)
    {
        // Only for a top-level `create` (type 1), as ZooKeeper does.
        if rec.op == zk_log::opcode::CREATE {
            if let Some((parent, _)) = split_path(&c.path) {
                tree.set_cversion_pzxid(parent, c.parent_cversion, zxid);
            }
        }
    }
}

/// What [`import`] wrote.
#[derive(Debug)]
pub struct Imported {
    /// The restore it wrote.
    pub restored: Restored,
    /// The zabd `acceptedEpoch` / `currentEpoch` written.
    pub epochs: (u32, u32),
    /// The directory written (`<dataDir>/zab-v1`).
    pub layout_dir: PathBuf,
    /// Whether `myid` was copied from ZooKeeper's dataDir.
    pub copied_myid: bool,
}

/// Imports ZooKeeper's data directories into the zabd data directory `data_dir` (whose
/// log directory is `data_log_dir`), neither of which may hold zabd state yet.
///
/// # Errors
/// See the module documentation; nothing is left in `data_dir` on an error.
pub fn import(
    zk_data: &Path,
    zk_log: &Path,
    data_dir: &Path,
    data_log_dir: &Path,
) -> Result<Imported> {
    let layout = data_dir.join(LAYOUT_DIR);
    let log_layout = data_log_dir.join(LAYOUT_DIR);
    let has_files = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
    for dir in [&layout, &log_layout] {
        if dir.exists() && (dir == &layout || has_files(dir)) {
            return Err(MigrateError::Refused(format!(
                "{} already holds zabd state; import only into data directories without it \
                 (move it away first)",
                dir.display()
            )));
        }
    }
    let restored = restore(zk_data, zk_log)?;
    for w in &restored.warnings {
        warn!("{w}");
    }
    let last = restored.last_zxid;
    let (zk_accepted, zk_current) = restored.epochs;
    let current = zk_current.unwrap_or(0).max(last.epoch.0);
    let accepted = zk_accepted.unwrap_or(0).max(current);

    std::fs::create_dir_all(data_dir).map_err(io_err("create", data_dir))?;
    let tmp = data_dir.join(".zab-import.tmp");
    if tmp.exists() {
        info!(dir = %tmp.display(), "removing the leftovers of an interrupted import");
        std::fs::remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
    }
    let result = write_tmp(&tmp, &restored, (accepted, current))
        .and_then(|()| {
            std::fs::rename(tmp.join(LAYOUT_DIR), &layout).map_err(io_err("rename into", &layout))
        })
        .and_then(|()| sync_dir(data_dir));
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    let mut copied_myid = false;
    let myid = data_dir.join("myid");
    let zk_myid = zk_data.join("myid");
    if !myid.exists() && zk_myid.is_file() {
        std::fs::copy(&zk_myid, &myid).map_err(io_err("copy myid to", &myid))?;
        copied_myid = true;
    }
    info!(
        snapshot = %restored.snapshot.display(),
        txns = restored.txns,
        last_zxid = %last,
        nodes = restored.tree.node_count(),
        sessions = restored.tree.sessions().len(),
        "imported"
    );
    Ok(Imported {
        restored,
        epochs: (accepted, current),
        layout_dir: layout,
        copied_myid,
    })
}

fn write_tmp(tmp: &Path, restored: &Restored, (accepted, current): (u32, u32)) -> Result<()> {
    let storage_err = |e: crate::storage::StorageError| {
        MigrateError::Refused(format!("writing the zabd data in {}: {e}", tmp.display()))
    };
    std::fs::create_dir_all(tmp).map_err(io_err("create", tmp))?;
    let cfg = StorageConfig::new(tmp, tmp);
    let data = restored.tree.snapshot();
    {
        let (mut storage, _) = Storage::open(Arc::new(StdFs), &cfg).map_err(storage_err)?;
        storage
            .install_snapshot(restored.last_zxid, &data)
            .map_err(storage_err)?;
    }
    let dir = tmp.join(LAYOUT_DIR);
    write_synced(
        &dir.join(ACCEPTED_EPOCH_FILE),
        format!("{accepted}\n").as_bytes(),
    )?;
    write_synced(
        &dir.join(CURRENT_EPOCH_FILE),
        format!("{current}\n").as_bytes(),
    )?;
    sync_dir(&dir)?;
    // Read it back as zabd will.
    let (_, rec) = Storage::open(Arc::new(StdFs), &cfg).map_err(storage_err)?;
    let back = rec
        .snapshot
        .as_ref()
        .map(|s| crate::service::tree_from_snapshot(&s.data));
    let ok = rec.last_zxid() == restored.last_zxid
        && rec.accepted_epoch.0 == accepted
        && rec.current_epoch.0 == current
        && matches!(back, Some(Ok(t)) if t.snapshot() == data);
    if ok {
        Ok(())
    } else {
        Err(MigrateError::Refused(format!(
            "the zabd data written to {} did not read back identically",
            tmp.display()
        )))
    }
}
