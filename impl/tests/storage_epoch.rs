//! The `acceptedEpoch` / `currentEpoch` files: durable atomic replacement (also when an fsync
//! fails and power is lost), decimal text, garbage and missing files at startup.
#![cfg(not(zab_loom))]

use std::{path::PathBuf, sync::Arc};

use zab_server::storage::{
    CrashMode, FileSystem, Recovered, SimFs, Storage, StorageConfig, StorageError,
};
use zab_spec::{Epoch, Zxid};

fn config() -> StorageConfig {
    StorageConfig::new("/data", "/data")
}

fn open(sim: &SimFs) -> Result<(Storage, Recovered), StorageError> {
    Storage::open(Arc::new(sim.clone()), &config())
}

fn accepted_path() -> PathBuf {
    PathBuf::from("/data/zab-v1/acceptedEpoch")
}

fn current_path() -> PathBuf {
    PathBuf::from("/data/zab-v1/currentEpoch")
}

fn recovering_path() -> PathBuf {
    PathBuf::from("/data/zab-v1/recovering")
}

#[test]
fn a_fresh_data_dir_is_epoch_zero_and_writes_nothing() {
    let sim = SimFs::new();
    let (s, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(0), Epoch(0)));
    assert_eq!(
        (s.epochs().accepted_epoch(), s.epochs().current_epoch()),
        (Epoch(0), Epoch(0))
    );
    assert_eq!(sim.read_durable(&accepted_path()), None);
}

#[test]
fn epochs_are_decimal_text_and_survive_a_crash_once_set() {
    let sim = SimFs::new();
    let (s, _) = open(&sim).unwrap();
    s.epochs().set_accepted_epoch(Epoch(7)).unwrap();
    s.epochs().set_current_epoch(Epoch(7)).unwrap();
    s.epochs().set_accepted_epoch(Epoch(12)).unwrap();
    assert_eq!(sim.read_durable(&accepted_path()).unwrap(), b"12\n");
    assert_eq!(sim.read_durable(&current_path()).unwrap(), b"7\n");
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    let (_, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(12), Epoch(7)));
    // ZooKeeper's files (no trailing newline) read the same.
    sim.put_file(&accepted_path(), b"13");
    assert_eq!(open(&sim).unwrap().1.accepted_epoch, Epoch(13));
}

#[test]
fn a_failed_fsync_during_a_replacement_leaves_the_old_or_the_new_value_never_garbage() {
    for syncs_ok in 0..3 {
        let sim = SimFs::new();
        let (s, _) = open(&sim).unwrap();
        s.epochs().set_accepted_epoch(Epoch(4)).unwrap();
        sim.fail_syncs_after(syncs_ok);
        let result = s.epochs().set_accepted_epoch(Epoch(5));
        // syncs: the temporary file's, then the directory's after the rename.
        assert_eq!(result.is_ok(), syncs_ok >= 2, "after {syncs_ok} good syncs");
        if result.is_err() {
            // Poisoned: no retry, even when the disk works again.
            sim.fail_syncs(false);
            assert!(matches!(
                s.epochs().set_accepted_epoch(Epoch(6)),
                Err(StorageError::Failed(_))
            ));
            assert_eq!(s.epochs().accepted_epoch(), Epoch(4));
        }
        sim.crash(CrashMode::DropUnsynced);
        sim.fail_syncs(false);
        drop(s);
        let (_, r) = open(&sim).unwrap();
        let expected = if syncs_ok >= 2 { Epoch(5) } else { Epoch(4) };
        assert_eq!(r.accepted_epoch, expected, "after {syncs_ok} good syncs");
        assert!(
            sim.list(&PathBuf::from("/data/zab-v1"))
                .unwrap()
                .iter()
                .all(|n| !n.ends_with(".tmp")),
            "leftover temporary files are removed at startup"
        );
    }
}

#[test]
fn garbage_in_an_epoch_file_refuses_to_start_naming_the_file() {
    for (path, content) in [
        (accepted_path(), &b"abc"[..]),
        (accepted_path(), b""),
        (current_path(), b"-1"),
        (current_path(), b"3 4"),
        (current_path(), b"99999999999"),
        (accepted_path(), b"\x00\x00"),
    ] {
        let sim = SimFs::new();
        let (s, _) = open(&sim).unwrap();
        s.epochs().set_accepted_epoch(Epoch(3)).unwrap();
        s.epochs().set_current_epoch(Epoch(3)).unwrap();
        drop(s);
        sim.put_file(&path, content);
        let err = open(&sim).unwrap_err();
        assert!(
            matches!(err, StorageError::EpochFile { .. }),
            "{content:?}: {err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn current_epoch_beyond_accepted_epoch_refuses_to_start() {
    let sim = SimFs::new();
    sim.put_file(&accepted_path(), b"2\n");
    sim.put_file(&current_path(), b"3\n");
    let err = open(&sim).unwrap_err();
    assert!(err.to_string().contains("currentEpoch"), "{err}");
}

fn with_data(sim: &SimFs) {
    let (mut s, _) = open(sim).unwrap();
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    s.epochs().set_current_epoch(Epoch(1)).unwrap();
    s.append(Zxid::new(1, 1), b"t").unwrap();
    s.sync().unwrap();
}

#[test]
fn missing_epoch_files_next_to_data_take_the_last_logged_epoch_and_recover() {
    // Both lost (spec/PROTOCOL.md §7.1 LoseEpochFiles): ZooKeeper's rule, and recovering.
    let sim = SimFs::new();
    with_data(&sim);
    sim.remove_file(&accepted_path()).unwrap();
    sim.remove_file(&current_path()).unwrap();
    sim.sync_dir(&PathBuf::from("/data/zab-v1")).unwrap();
    let (s, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(1), Epoch(1)));
    assert!(r.recovering && s.epochs().recovering());
    assert_eq!(r.txns.len(), 1);
    // The flag and the rewritten epochs are durable: a crash now changes nothing.
    drop(s);
    sim.crash(CrashMode::DropUnsynced);
    let (s, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(1), Epoch(1)));
    assert!(r.recovering);
    let flag = sim.read_durable(&recovering_path()).expect("flag file");
    assert!(
        String::from_utf8_lossy(&flag).contains("acceptedEpoch and currentEpoch missing"),
        "{}",
        String::from_utf8_lossy(&flag)
    );
    // Restored (UPTODATE): the flag is cleared durably.
    s.epochs().set_recovering(false, "").unwrap();
    drop(s);
    sim.crash(CrashMode::DropUnsynced);
    let (_, r) = open(&sim).unwrap();
    assert!(!r.recovering);
    assert_eq!(sim.read_durable(&recovering_path()), None);

    // acceptedEpoch alone lost: never below currentEpoch.
    let sim = SimFs::new();
    with_data(&sim);
    sim.remove_file(&accepted_path()).unwrap();
    sim.sync_dir(&PathBuf::from("/data/zab-v1")).unwrap();
    let (_, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(1), Epoch(1)));
    assert!(r.recovering);

    // A lone currentEpoch without data: acceptedEpoch is lost, so recovering as well.
    let sim = SimFs::new();
    sim.put_file(&current_path(), b"1\n");
    let (_, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(1), Epoch(1)));
    assert!(r.recovering);
}

#[test]
fn a_missing_current_epoch_next_to_data_is_recovered_from_peers() {
    // The case: currentEpoch deleted beside a log of epoch 3. Reading it as 0 lost
    // acknowledged writes; now it is the last logged epoch, and the server recovers.
    let sim = SimFs::new();
    let (mut s, _) = open(&sim).unwrap();
    s.epochs().set_accepted_epoch(Epoch(3)).unwrap();
    s.epochs().set_current_epoch(Epoch(3)).unwrap();
    s.append(Zxid::new(3, 1), b"t").unwrap();
    s.sync().unwrap();
    drop(s);
    sim.remove_file(&current_path()).unwrap();
    sim.sync_dir(&PathBuf::from("/data/zab-v1")).unwrap();
    let (_, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(3), Epoch(3)));
    assert!(r.recovering);

    // The crash window of a fresh follower's first NEWLEADER (synced packets logged,
    // currentEpoch not yet) looks the same: never below what was logged, and recovering
    // (it costs that follower a sync from the leader, nothing more).
    let sim = SimFs::new();
    let (mut s, _) = open(&sim).unwrap();
    s.epochs().set_accepted_epoch(Epoch(2)).unwrap();
    s.append(Zxid::new(1, 1), b"synced packet").unwrap();
    s.sync().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    let (_, r) = open(&sim).unwrap();
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(2), Epoch(1)));
    assert_eq!(r.txns.len(), 1);
    assert!(r.recovering);
}

#[test]
fn epochs_never_go_back() {
    let sim = SimFs::new();
    let (s, _) = open(&sim).unwrap();
    let e = s.epochs();
    e.set_accepted_epoch(Epoch(5)).unwrap();
    assert!(matches!(
        e.set_accepted_epoch(Epoch(4)),
        Err(StorageError::InvalidRequest(_))
    ));
    assert!(matches!(
        e.set_current_epoch(Epoch(6)),
        Err(StorageError::InvalidRequest(_))
    ));
    e.set_current_epoch(Epoch(5)).unwrap();
    e.set_accepted_epoch(Epoch(6)).unwrap();
    assert!(matches!(
        e.set_current_epoch(Epoch(4)),
        Err(StorageError::InvalidRequest(_))
    ));
    // Rejections poison nothing.
    e.set_current_epoch(Epoch(6)).unwrap();
}
