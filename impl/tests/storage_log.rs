//! The transaction log through the public `Storage` API: append/sync/reopen round trips (on
//! the simulated and the real filesystem), the zxid succession rule, durable truncation, what
//! a simulated crash keeps, and failed writes and fsyncs.
#![cfg(not(zab_loom))]

use std::sync::Arc;

use proptest::prelude::*;
use zab_server::storage::{
    CrashMode, LogRecord, Recovered, SimFs, StdFs, Storage, StorageConfig, StorageError,
};
use zab_spec::{Epoch, Zxid};

fn config() -> StorageConfig {
    let mut c = StorageConfig::new("/data", "/log");
    c.segment_bytes = 256;
    c
}

fn open(sim: &SimFs) -> (Storage, Recovered) {
    Storage::open(Arc::new(sim.clone()), &config()).unwrap()
}

fn fresh(sim: &SimFs) -> Storage {
    let (s, r) = open(sim);
    assert_eq!(r.last_zxid(), Zxid::ZERO);
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    s.epochs().set_current_epoch(Epoch(1)).unwrap();
    s
}

fn z(c: u32) -> Zxid {
    Zxid::new(1, c)
}

fn payload(c: u32) -> Vec<u8> {
    format!("create /node-{c}").into_bytes()
}

fn append_range(s: &mut Storage, counters: std::ops::RangeInclusive<u32>) {
    for c in counters {
        s.append(z(c), &payload(c)).unwrap();
    }
}

fn zxids(records: &[LogRecord]) -> Vec<Zxid> {
    records.iter().map(|r| r.zxid).collect()
}

fn expected(counters: std::ops::RangeInclusive<u32>) -> Vec<LogRecord> {
    counters
        .map(|c| LogRecord {
            zxid: z(c),
            payload: payload(c).into(),
        })
        .collect()
}

#[test]
fn append_sync_reopen_round_trips_across_segments() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    append_range(&mut s, 1..=50);
    assert_eq!(s.last_zxid(), z(50));
    // Rolling to a new segment seals (fsyncs) the previous one; the tail is not durable yet.
    assert!(s.durable_zxid() < z(50));
    assert_eq!(s.sync().unwrap(), z(50));
    assert!(s.segment_count() > 3, "{} segments", s.segment_count());
    assert_eq!(s.read_after(z(40)).unwrap(), expected(41..=50));
    drop(s);
    let (mut s, r) = open(&sim);
    assert_eq!(r.snapshot, None);
    assert_eq!(r.txns, expected(1..=50));
    assert_eq!((r.accepted_epoch, r.current_epoch), (Epoch(1), Epoch(1)));
    // And it goes on where it stopped, across an epoch change.
    s.append(Zxid::new(3, 1), b"next epoch").unwrap();
    s.sync().unwrap();
    drop(s);
    let (_, r) = open(&sim);
    assert_eq!(r.last_zxid(), Zxid::new(3, 1));
    assert_eq!(r.txns.len(), 51);
}

#[test]
fn round_trip_on_the_real_filesystem_with_separate_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let mut config = StorageConfig::new(tmp.path().join("data"), tmp.path().join("datalog"));
    config.segment_bytes = 300;
    let (mut s, r) = Storage::open(Arc::new(StdFs), &config).unwrap();
    assert_eq!(r.last_zxid(), Zxid::ZERO);
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    s.epochs().set_current_epoch(Epoch(1)).unwrap();
    append_range(&mut s, 1..=40);
    s.sync().unwrap();
    s.truncate_after(z(30)).unwrap();
    let ticket = s.snapshot_ticket();
    s.save_snapshot(ticket, z(20), b"tree@20").unwrap();
    drop(s);
    let (s, r) = Storage::open(Arc::new(StdFs), &config).unwrap();
    assert_eq!(
        r.snapshot
            .as_ref()
            .map(|s| (s.zxid, s.data.to_bytes().unwrap())),
        Some((z(20), bytes::Bytes::from_static(b"tree@20")))
    );
    assert_eq!(r.txns, expected(21..=30));
    assert_eq!(s.last_zxid(), z(30));
    let data = tmp.path().join("data/zab-v1");
    assert_eq!(
        std::fs::read_to_string(data.join("acceptedEpoch")).unwrap(),
        "1\n"
    );
    assert!(data.join("snapshot.0000000100000014").is_file());
    let segments = std::fs::read_dir(tmp.path().join("datalog/zab-v1"))
        .unwrap()
        .count();
    assert_eq!(segments, s.segment_count());
    assert!(segments > 0);
}

#[test]
fn appends_must_directly_follow_the_last_zxid() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    for bad in [z(2), Zxid::new(1, 0), Zxid::ZERO] {
        let err = s.append(bad, b"x").unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidRequest(_)),
            "{bad}: {err}"
        );
    }
    append_range(&mut s, 1..=3);
    for bad in [z(3), z(2), z(5), Zxid::new(2, 2)] {
        let err = s.append(bad, b"x").unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidRequest(_)),
            "{bad}: {err}"
        );
    }
    // A rejected request changes nothing and does not poison the log.
    s.append(Zxid::new(2, 1), b"x").unwrap();
    assert_eq!(s.sync().unwrap(), Zxid::new(2, 1));
}

#[test]
fn a_crash_loses_exactly_the_unsynced_suffix() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    append_range(&mut s, 1..=10);
    s.sync().unwrap();
    // Unsynced, and across segment boundaries (a roll seals, i.e. fsyncs, the older segment).
    append_range(&mut s, 11..=25);
    let sealed = s.durable_zxid();
    assert!(sealed >= z(10));
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    let (_, r) = open(&sim);
    assert_eq!(r.last_zxid(), sealed);
    assert_eq!(r.txns, expected(1..=sealed.counter));
}

#[test]
fn truncation_is_durable_and_survives_reopen_and_crash() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    append_range(&mut s, 1..=30);
    s.sync().unwrap();
    let segments = s.segment_count();
    s.truncate_after(z(12)).unwrap();
    assert!(s.segment_count() < segments);
    assert_eq!((s.last_zxid(), s.durable_zxid()), (z(12), z(12)));
    // Durable when it returns: a crash right now does not bring anything back.
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    let (mut s, r) = open(&sim);
    assert_eq!(r.txns, expected(1..=12));
    // The history continues from the cut with new content.
    s.append(z(13), b"after trunc").unwrap();
    s.sync().unwrap();
    drop(s);
    let (mut s, r) = open(&sim);
    assert_eq!(zxids(&r.txns).last(), Some(&z(13)));
    assert_eq!(&r.txns[12].payload[..], b"after trunc");
    // Truncating everything.
    s.truncate_after(Zxid::ZERO).unwrap();
    drop(s);
    assert_eq!(open(&sim).1.txns, vec![]);
}

#[test]
fn truncation_to_a_zxid_outside_the_history_is_refused_and_changes_nothing() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    append_range(&mut s, 1..=3);
    s.append(Zxid::new(3, 1), b"e3").unwrap();
    s.sync().unwrap();
    for bad in [z(4), Zxid::new(2, 5), Zxid::new(3, 2), Zxid::new(1, 0)] {
        let err = s.truncate_after(bad).unwrap_err();
        assert!(
            matches!(err, StorageError::InvalidRequest(_)),
            "{bad}: {err}"
        );
    }
    s.append(Zxid::new(3, 2), b"still fine").unwrap();
    s.sync().unwrap();
    drop(s);
    assert_eq!(open(&sim).1.txns.len(), 5);
}

#[test]
fn a_failed_fsync_is_an_error_and_nothing_after_it_is_ever_reported_durable() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    append_range(&mut s, 1..=5);
    assert_eq!(s.sync().unwrap(), z(5));
    append_range(&mut s, 6..=7);
    sim.fail_syncs(true);
    let err = s.sync().unwrap_err();
    assert!(matches!(err, StorageError::Io { op: "fsync", .. }), "{err}");
    assert_eq!(s.durable_zxid(), z(5));
    // Poisoned: even once the disk "recovers", the log refuses to try again.
    sim.fail_syncs(false);
    assert!(matches!(s.sync(), Err(StorageError::Failed(_))));
    assert!(matches!(s.append(z(8), b"x"), Err(StorageError::Failed(_))));
    assert!(matches!(
        s.truncate_after(z(3)),
        Err(StorageError::Failed(_))
    ));
    assert_eq!(s.durable_zxid(), z(5));
    sim.crash(CrashMode::DropUnsynced);
    drop(s);
    assert_eq!(open(&sim).1.txns, expected(1..=5));
}

#[test]
fn a_failed_write_is_an_error() {
    let sim = SimFs::new();
    let mut s = fresh(&sim);
    append_range(&mut s, 1..=3);
    sim.fail_writes(true);
    assert!(matches!(
        s.sync(),
        Err(StorageError::Io { op: "write", .. })
    ));
    assert!(matches!(s.sync(), Err(StorageError::Failed(_))));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// A crash at any fsync of a truncation (the fsync fails, then power is lost) leaves a
    /// prefix of the history that still reaches the cut: never a gap, never less.
    #[test]
    fn a_crash_at_any_point_of_a_truncation_leaves_a_prefix(
        n in 2u32..60,
        cut_frac in 0.0f64..1.0,
        syncs_ok in 0u64..8,
    ) {
        let sim = SimFs::new();
        let mut s = fresh(&sim);
        append_range(&mut s, 1..=n);
        s.sync().unwrap();
        let cut = (f64::from(n - 1) * cut_frac) as u32 + 1;
        sim.fail_syncs_after(syncs_ok);
        let result = s.truncate_after(z(cut));
        sim.crash(CrashMode::DropUnsynced);
        sim.fail_syncs(false);
        drop(s);
        let (_, r) = open(&sim);
        let k = r.txns.len() as u32;
        prop_assert!(k >= cut && k <= n);
        if result.is_ok() {
            prop_assert_eq!(k, cut);
        }
        prop_assert_eq!(r.txns, expected(1..=k));
    }
}
