//! `zabd export --to-zookeeper`: recovers a zabd data directory as `zabd` would at start (the
//! newest valid snapshot plus the log after it; a torn log tail is cut, corruption refused)
//! and writes the tree as a ZooKeeper 3.8 data directory: `version-2/snapshot.<zxid hex>`
//! plus `acceptedEpoch` / `currentEpoch`, and `myid` when zabd's data directory has one.
//!
//! The files are written to `<dir>/version-2.zab-export.tmp/`, fsynced, parsed back with
//! [`super::zk_snapshot::parse`] and compared, then the directory is renamed to
//! `<dir>/version-2`; an existing `version-2` with any file in it is refused.

use super::{MigrateError, Result, io_err, sync_dir, write_synced, zk_snapshot};
use crate::storage::{StdFs, Storage, StorageConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};
use zab_spec::Zxid;
use zab_zk::{DataTree, Txn};

/// A recovered zabd state.
#[derive(Debug)]
pub struct ZabState {
    /// The tree after every recovered transaction.
    pub tree: DataTree,
    /// The zxid of the last transaction in it.
    pub last_zxid: Zxid,
    /// `acceptedEpoch`, `currentEpoch`.
    pub epochs: (u32, u32),
}

/// Recovers the zabd state of `data_dir` / `data_log_dir` (as `zabd` does at start).
///
/// # Errors
/// Whatever recovery refuses ([`MigrateError::Refused`] with the storage's message, which
/// names file and offset), or a transaction that does not decode.
pub fn recover(data_dir: &Path, data_log_dir: &Path) -> Result<ZabState> {
    let layout = data_dir.join(crate::storage::LAYOUT_DIR);
    if !layout.is_dir() {
        return Err(MigrateError::Refused(format!(
            "no zabd data in {}: {} does not exist",
            data_dir.display(),
            layout.display()
        )));
    }
    let cfg = StorageConfig::new(data_dir, data_log_dir);
    let (_storage, rec) = Storage::open(Arc::new(StdFs), &cfg).map_err(|e| {
        MigrateError::Refused(format!("cannot recover {}: {e}", data_dir.display()))
    })?;
    let mut tree = match &rec.snapshot {
        Some(s) => crate::service::tree_from_snapshot(&s.data).map_err(|e| {
            MigrateError::Refused(format!(
                "snapshot {} in {} is unreadable: {e}",
                s.zxid,
                data_dir.display()
            ))
        })?,
        None => DataTree::new(),
    };
    for t in &rec.txns {
        let txn = Txn::decode(&t.payload).map_err(|e| {
            MigrateError::Refused(format!(
                "logged transaction {} in {} does not decode: {e}",
                t.zxid,
                data_log_dir.display()
            ))
        })?;
        tree.apply(&txn, t.zxid);
    }
    Ok(ZabState {
        tree,
        last_zxid: rec.last_zxid(),
        epochs: (rec.accepted_epoch.0, rec.current_epoch.0),
    })
}

/// What [`export`] wrote.
#[derive(Debug)]
pub struct Exported {
    /// The snapshot file.
    pub snapshot: PathBuf,
    /// Its zxid.
    pub zxid: Zxid,
    /// Nodes and sessions written.
    pub nodes: usize,
    /// Sessions written.
    pub sessions: usize,
    /// The `acceptedEpoch` / `currentEpoch` written.
    pub epochs: (u32, u32),
}

/// Exports the zabd data directory to the ZooKeeper data directory `zk_dir`.
///
/// # Errors
/// See the module documentation; nothing is left in `zk_dir` on an error.
pub fn export(data_dir: &Path, data_log_dir: &Path, zk_dir: &Path) -> Result<Exported> {
    let v2 = zk_dir.join("version-2");
    if std::fs::read_dir(&v2).is_ok_and(|mut d| d.next().is_some()) {
        return Err(MigrateError::Refused(format!(
            "{} is not empty; export only into a ZooKeeper dataDir without ZooKeeper data",
            v2.display()
        )));
    }
    let state = recover(data_dir, data_log_dir)?;
    let zxid = state.last_zxid;
    let current = state.epochs.1.max(zxid.epoch.0);
    let accepted = state.epochs.0.max(current);
    let bytes = zk_snapshot::write(&state.tree);
    let name = zk_snapshot::file_name(zxid);

    std::fs::create_dir_all(zk_dir).map_err(io_err("create", zk_dir))?;
    let tmp = zk_dir.join("version-2.zab-export.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err("remove", &tmp))?;
    }
    let result = (|| {
        std::fs::create_dir_all(&tmp).map_err(io_err("create", &tmp))?;
        let snap = tmp.join(&name);
        write_synced(&snap, &bytes)?;
        // ZooKeeper's writeLongToFile: the decimal number, no newline.
        write_synced(&tmp.join("acceptedEpoch"), accepted.to_string().as_bytes())?;
        write_synced(&tmp.join("currentEpoch"), current.to_string().as_bytes())?;
        sync_dir(&tmp)?;
        let back = std::fs::read(&snap).map_err(io_err("read", &snap))?;
        let parsed = zk_snapshot::parse(&snap, &back)?;
        let again = DataTree::from_nodes(parsed.nodes, parsed.sessions)
            .map_err(|e| MigrateError::Refused(format!("{}: {e}", snap.display())))?;
        // ZooKeeper's format has no imported-session marks (every session there has
        // ZooKeeper's password): compare without them.
        let mut expected = state.tree.clone();
        expected.clear_imported_marks();
        expected.clear_session_passwords();
        if again.snapshot() != expected.snapshot() {
            return Err(MigrateError::Refused(format!(
                "{} did not read back identically",
                snap.display()
            )));
        }
        if v2.exists() {
            std::fs::remove_dir(&v2).map_err(io_err("remove the empty", &v2))?;
        }
        std::fs::rename(&tmp, &v2).map_err(io_err("rename into", &v2))?;
        sync_dir(zk_dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result?;
    let myid = data_dir.join("myid");
    let zk_myid = zk_dir.join("myid");
    if myid.is_file() && !zk_myid.exists() {
        if let Err(e) = std::fs::copy(&myid, &zk_myid) {
            warn!(error = %e, "could not copy myid");
        }
    }
    info!(snapshot = %v2.join(&name).display(), %zxid, "exported");
    Ok(Exported {
        snapshot: v2.join(name),
        zxid,
        nodes: state.tree.node_count(),
        sessions: state.tree.sessions().len(),
        epochs: (accepted, current),
    })
}
