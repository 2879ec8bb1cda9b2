//! Snapshots through the public `Storage` API: state = snapshot + later log after reopen,
//! retention and log pruning, fallback past a corrupt snapshot only when the log covers the
//! gap, SNAP installation (also with a crash at each of its fsyncs), and stale tickets.
#![cfg(not(zab_loom))]

use std::{path::PathBuf, sync::Arc};

use proptest::prelude::*;
use zab_server::storage::{
    CrashMode, FileSystem, LogRecord, Recovered, SimFs, Storage, StorageConfig, StorageError,
};
use zab_spec::{Epoch, Zxid};

fn config() -> StorageConfig {
    let mut c = StorageConfig::new("/data", "/log");
    c.segment_bytes = 200;
    c.snap_retain_count = 3;
    c
}

fn open_with(sim: &SimFs, c: &StorageConfig) -> Result<(Storage, Recovered), StorageError> {
    Storage::open(Arc::new(sim.clone()), c)
}

fn open(sim: &SimFs) -> (Storage, Recovered) {
    open_with(sim, &config()).unwrap()
}

fn z(c: u32) -> Zxid {
    Zxid::new(1, c)
}

fn payload(zxid: Zxid) -> Vec<u8> {
    format!("txn {zxid}").into_bytes()
}

fn state(zxid: Zxid) -> Vec<u8> {
    format!("tree after {zxid}").into_bytes()
}

/// A storage (opened with `c`) holding transactions (1, 1..=n), synced.
fn with_log(sim: &SimFs, c: &StorageConfig, n: u32) -> Storage {
    let (mut s, _) = open_with(sim, c).unwrap();
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    s.epochs().set_current_epoch(Epoch(1)).unwrap();
    for i in 1..=n {
        s.append(z(i), &payload(z(i))).unwrap();
    }
    s.sync().unwrap();
    s
}

fn snapshot(s: &mut Storage, at: Zxid) {
    let ticket = s.snapshot_ticket();
    s.save_snapshot(ticket, at, &state(at)).unwrap();
}

fn zxids(records: &[LogRecord]) -> Vec<Zxid> {
    records.iter().map(|r| r.zxid).collect()
}

fn counters(records: &[LogRecord]) -> Vec<u32> {
    records.iter().map(|r| r.zxid.counter).collect()
}

fn files(sim: &SimFs, dir: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = sim
        .list(&PathBuf::from(dir))
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect();
    names.sort();
    names
}

fn snap_path(zxid: Zxid) -> PathBuf {
    PathBuf::from(format!("/data/zab-v1/snapshot.{:016x}", zxid.to_u64()))
}

#[test]
fn recovery_is_the_newest_snapshot_plus_the_log_after_it() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 20);
    snapshot(&mut s, z(10));
    for i in 21..=25 {
        s.append(z(i), &payload(z(i))).unwrap();
    }
    s.sync().unwrap();
    drop(s);
    let (_, r) = open(&sim);
    let snap = r.snapshot.clone().unwrap();
    assert_eq!(
        (snap.zxid, &snap.data.to_bytes().unwrap()[..]),
        (z(10), &state(z(10))[..])
    );
    assert_eq!(counters(&r.txns), (11..=25).collect::<Vec<_>>());
    assert_eq!(r.last_zxid(), z(25));
}

#[test]
fn a_snapshot_ahead_of_the_log_is_the_end_of_the_history() {
    // A follower may deliver (and snapshot) transactions its log thread has not written.
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 5);
    snapshot(&mut s, z(8));
    drop(s);
    let (mut s, r) = open(&sim);
    assert_eq!(
        (r.snapshot_zxid(), r.txns.len(), s.last_zxid()),
        (z(8), 0, z(8))
    );
    s.append(z(9), b"next").unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(zxids(&open(&sim).1.txns), [z(9)]);
}

#[test]
fn only_the_newest_snapshots_are_kept_and_the_log_they_cover_is_pruned() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 60);
    let segments_before = s.segment_count();
    for at in [10, 20, 30, 40] {
        snapshot(&mut s, z(at));
    }
    assert_eq!(
        files(&sim, "/data/zab-v1", "snapshot."),
        [
            "snapshot.0000000100000014",
            "snapshot.000000010000001e",
            "snapshot.0000000100000028"
        ]
    );
    assert_eq!(s.snapshots().oldest(), Some(z(20)));
    assert!(s.segment_count() < segments_before);
    // Every remaining segment but the first starts after the oldest snapshot; the first
    // still holds the transaction right after it.
    let segs = files(&sim, "/log/zab-v1", "log.");
    assert!(segs[0].as_str() <= "log.0000000100000015", "{segs:?}");
    assert!(
        segs.len() == 1 || segs[1].as_str() > "log.0000000100000015",
        "{segs:?}"
    );
    drop(s);
    let (_, r) = open(&sim);
    assert_eq!(r.snapshot_zxid(), z(40));
    assert_eq!(counters(&r.txns), (41..=60).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_newest_snapshot_falls_back_to_an_older_one_when_the_log_covers_the_gap() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 30);
    snapshot(&mut s, z(10));
    snapshot(&mut s, z(20));
    drop(s);
    let mut bytes = sim.read_durable(&snap_path(z(20))).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    sim.put_file(&snap_path(z(20)), &bytes);
    let (_, r) = open(&sim);
    assert_eq!(r.snapshot_zxid(), z(10));
    assert_eq!(counters(&r.txns), (11..=30).collect::<Vec<_>>());
    // Set aside for inspection, out of the way of the next start.
    assert_eq!(
        files(&sim, "/data/zab-v1", "snapshot."),
        [
            "snapshot.000000010000000a",
            "snapshot.0000000100000014.corrupt"
        ]
    );
    assert_eq!(open(&sim).1.snapshot_zxid(), z(10));
}

#[test]
fn a_corrupt_only_snapshot_falls_back_to_the_empty_state_when_the_log_starts_at_the_beginning() {
    let sim = SimFs::new();
    let mut c = config();
    c.segment_bytes = 1 << 20; // one segment: pruning keeps it
    let mut s = with_log(&sim, &c, 30);
    snapshot(&mut s, z(10));
    drop(s);
    sim.put_file(&snap_path(z(10)), b"garbage");
    let (_, r) = open_with(&sim, &c).unwrap();
    assert_eq!((r.snapshot, r.txns.len()), (None, 30));
}

#[test]
fn a_corrupt_newest_snapshot_the_log_does_not_cover_keeps_what_rebuilds_and_recovers() {
    // Pruned log: nothing older to fall back to. The state the corrupt snapshot held is
    // lost here (spec/PROTOCOL.md §7.1): keep what rebuilds (nothing), and recover.
    let sim = SimFs::new();
    let mut c = config();
    c.snap_retain_count = 1;
    let mut s = with_log(&sim, &c, 40);
    snapshot(&mut s, z(10));
    snapshot(&mut s, z(30));
    drop(s);
    sim.put_file(&snap_path(z(30)), b"garbage");
    let (_, r) = open_with(&sim, &c).unwrap();
    assert!(r.recovering);
    assert_eq!((r.snapshot, r.txns.len()), (None, 0));
    assert!(
        r.damage[0].contains("snapshot at 0x10000001e") && r.damage[0].contains("recovering"),
        "{:?}",
        r.damage
    );
    // Reopening finds the same state, still recovering, with nothing new to report.
    let (_, again) = open_with(&sim, &c).unwrap();
    assert!(again.recovering && again.damage.is_empty() && again.txns.is_empty());

    // The log ends before the corrupt snapshot: the older snapshot and the log up to its end.
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 5);
    snapshot(&mut s, z(2));
    snapshot(&mut s, z(9));
    drop(s);
    sim.put_file(&snap_path(z(9)), b"garbage");
    let (_, r) = open_with(&sim, &config()).unwrap();
    assert!(r.recovering);
    assert_eq!(r.snapshot_zxid(), z(2));
    assert_eq!(r.last_zxid(), z(5));
    assert!(
        r.damage[0].contains("through 0x100000005"),
        "{:?}",
        r.damage
    );
}

#[test]
fn installing_a_snapshot_replaces_the_whole_history() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 3);
    // A divergent suffix from a failed epoch 3, beyond what the leader's snapshot covers.
    s.epochs().set_accepted_epoch(Epoch(3)).unwrap();
    s.append(Zxid::new(3, 1), b"divergent").unwrap();
    s.append(Zxid::new(3, 2), b"divergent").unwrap();
    s.sync().unwrap();
    snapshot(&mut s, z(2));
    let leader = Zxid::new(2, 7);
    s.install_snapshot(leader, &state(leader)).unwrap();
    assert_eq!(
        (s.last_zxid(), s.durable_zxid(), s.segment_count()),
        (leader, leader, 0)
    );
    assert_eq!(
        files(&sim, "/data/zab-v1", "snapshot."),
        ["snapshot.0000000200000007"]
    );
    // The next transaction follows the snapshot; the old history is gone.
    assert!(matches!(
        s.append(z(4), b"x"),
        Err(StorageError::InvalidRequest(_))
    ));
    s.append(Zxid::new(2, 8), b"after").unwrap();
    s.sync().unwrap();
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    let (_, r) = open(&sim);
    assert_eq!(r.snapshot.unwrap().data.to_bytes().unwrap(), state(leader));
    assert_eq!(zxids(&r.txns), [Zxid::new(2, 8)]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// A crash at any fsync of a SNAP installation leaves the old history (possibly cut after
    /// the snapshot's zxid) or the new one, never the new snapshot followed by old records.
    #[test]
    fn a_crash_at_any_point_of_an_installation_leaves_the_old_or_the_new_history(
        n in 1u32..30,
        syncs_ok in 0u64..10,
    ) {
        let sim = SimFs::new();
        let mut s = with_log(&sim, &config(), n);
        s.epochs().set_accepted_epoch(Epoch(3)).unwrap();
        s.append(Zxid::new(3, 1), b"divergent").unwrap();
        s.sync().unwrap();
        let leader = Zxid::new(2, 4);
        sim.fail_syncs_after(syncs_ok);
        let result = s.install_snapshot(leader, &state(leader));
        sim.crash(CrashMode::DropUnsynced);
        sim.fail_syncs(false);
        drop(s);
        let (_, r) = open(&sim);
        if r.snapshot_zxid() == leader {
            prop_assert!(r.txns.is_empty());
        } else {
            prop_assert!(result.is_err());
            prop_assert_eq!(r.snapshot, None);
            let all: Vec<Zxid> = (1..=n).map(z).chain([Zxid::new(3, 1)]).collect();
            let got = zxids(&r.txns);
            prop_assert!(got == all || got == all[..n as usize], "{:?}", got);
        }
    }
}

#[test]
fn truncation_deletes_snapshots_beyond_the_cut() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 30);
    snapshot(&mut s, z(5));
    snapshot(&mut s, z(15));
    s.truncate_after(z(12)).unwrap();
    assert_eq!(s.snapshots().zxids(), [z(5)]);
    drop(s);
    let (_, r) = open(&sim);
    assert_eq!(r.snapshot_zxid(), z(5));
    assert_eq!(counters(&r.txns), (6..=12).collect::<Vec<_>>());
}

#[test]
fn truncation_before_every_snapshot_and_the_pruned_log_is_refused() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 40);
    snapshot(&mut s, z(30));
    let err = s.truncate_after(z(3)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidRequest(_)), "{err}");
    assert_eq!(s.snapshots().zxids(), [z(30)]);
}

#[test]
fn a_snapshot_serialized_before_a_truncation_is_stale() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 20);
    let ticket = s.snapshot_ticket();
    s.truncate_after(z(10)).unwrap();
    let err = s
        .save_snapshot(ticket, z(15), b"contains truncated txns")
        .unwrap_err();
    assert!(matches!(err, StorageError::StaleSnapshot { .. }), "{err}");
    assert!(!err.is_poisoning());
    assert!(s.snapshots().zxids().is_empty());
    // A fresh ticket works.
    snapshot(&mut s, z(10));
}

#[test]
fn a_failed_snapshot_write_is_an_error_and_poisons_the_store() {
    let sim = SimFs::new();
    let mut s = with_log(&sim, &config(), 5);
    sim.fail_syncs(true);
    let ticket = s.snapshot_ticket();
    let err = s.save_snapshot(ticket, z(5), b"s").unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err}");
    sim.fail_syncs(false);
    let ticket = s.snapshot_ticket();
    assert!(matches!(
        s.save_snapshot(ticket, z(5), b"s"),
        Err(StorageError::Failed(_))
    ));
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    // The unfinished temporary file is removed at the next start.
    let (_, r) = open(&sim);
    assert_eq!(r.snapshot, None);
    assert!(files(&sim, "/data/zab-v1", "snapshot.").is_empty());
}
