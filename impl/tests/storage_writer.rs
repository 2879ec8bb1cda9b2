//! The group-commit `LogWriter`: many appends share one fsync; nothing is reported durable
//! (event, `durable_zxid`, `flush`) before the fsync that covers it; a failed fsync stops the
//! writer and nothing after it is reported; truncation, installation and reads are ordered
//! with queued appends; periodic snapshots do not block appends; shutdown drains.
#![cfg(not(zab_loom))]

use std::{
    sync::{
        Arc, Mutex,
        mpsc::{self, Receiver},
    },
    thread,
    time::{Duration, Instant},
};

use bytes::Bytes;
use zab_server::storage::{
    CrashMode, LogWriter, SimFs, Storage, StorageConfig, StorageError, WriterEvent,
};
use zab_spec::{Epoch, Zxid};

fn config() -> StorageConfig {
    StorageConfig::new("/data", "/log")
}

fn z(c: u32) -> Zxid {
    Zxid::new(1, c)
}

fn payload(c: u32) -> Bytes {
    Bytes::from(format!("setData /a v{c}"))
}

fn storage(sim: &SimFs) -> Storage {
    let (s, _) = Storage::open(Arc::new(sim.clone()), &config()).unwrap();
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    s.epochs().set_current_epoch(Epoch(1)).unwrap();
    s
}

/// The last zxid a crash right now would recover.
fn durable_on_disk(sim: &SimFs) -> Zxid {
    let image = sim.durable_image(CrashMode::DropUnsynced);
    Storage::open(Arc::new(image), &config())
        .unwrap()
        .1
        .last_zxid()
}

fn spawn(sim: &SimFs) -> (Arc<LogWriter>, Receiver<WriterEvent>) {
    let (tx, rx) = mpsc::channel();
    let writer = LogWriter::spawn(storage(sim), move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    (Arc::new(writer), rx)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

fn durable_events(rx: &Receiver<WriterEvent>) -> Vec<Zxid> {
    rx.try_iter()
        .map(|e| match e {
            WriterEvent::Durable { zxid, .. } => zxid,
            WriterEvent::Failed(e) => panic!("unexpected failure: {e}"),
        })
        .collect()
}

#[test]
fn many_appends_share_few_fsyncs_and_none_is_reported_before_its_fsync() {
    let sim = SimFs::new();
    let (writer, rx) = spawn(&sim);
    let syncs_before = sim.stats().file_syncs;
    // Hold the writer inside its first fsync.
    sim.pause_syncs("/log.");
    writer.append(z(1), payload(1)).unwrap();
    wait_until("the writer to block in its fsync", || {
        sim.paused_syncs() == 1
    });
    for c in 2..=1000 {
        writer.append(z(c), payload(c)).unwrap();
    }
    thread::sleep(Duration::from_millis(20));
    assert_eq!(writer.durable_zxid(), Zxid::ZERO);
    assert!(
        rx.try_recv().is_err(),
        "nothing may be reported while the fsync is pending"
    );
    assert_eq!(durable_on_disk(&sim), Zxid::ZERO);
    sim.resume_syncs();
    assert_eq!(writer.flush().unwrap(), z(1000));
    assert_eq!(durable_on_disk(&sim), z(1000));
    // One fsync for the first append, one for the 999 queued behind it.
    assert_eq!(sim.stats().file_syncs - syncs_before, 2);
    assert_eq!(durable_events(&rx), [z(1), z(1000)]);
}

#[test]
fn every_durability_report_is_backed_by_the_disk() {
    let sim = SimFs::new();
    let checker = sim.clone();
    let violations = Arc::new(Mutex::new(Vec::new()));
    let seen = violations.clone();
    let reports = Arc::new(Mutex::new(Vec::new()));
    let log = reports.clone();
    let writer = Arc::new(
        LogWriter::spawn(storage(&sim), move |e| {
            if let WriterEvent::Durable { zxid, .. } = e {
                // Checked on the writer thread, at the moment of the report.
                let on_disk = durable_on_disk(&checker);
                if on_disk < zxid {
                    seen.lock().unwrap().push((zxid, on_disk));
                }
                log.lock().unwrap().push(zxid);
            }
        })
        .unwrap(),
    );
    // Another thread checks the lock-free durable mark and flush() as they advance.
    let w = writer.clone();
    let sim2 = sim.clone();
    let poller = thread::spawn(move || {
        for round in 0..200 {
            let reported = if round % 10 == 0 {
                w.flush().unwrap()
            } else {
                w.durable_zxid()
            };
            assert!(
                durable_on_disk(&sim2) >= reported,
                "{reported} reported, not on disk"
            );
        }
    });
    for c in 1..=600 {
        writer.append(z(c), payload(c)).unwrap();
        if c % 50 == 0 {
            thread::yield_now();
        }
    }
    poller.join().unwrap();
    assert_eq!(writer.flush().unwrap(), z(600));
    writer.shutdown().unwrap();
    assert!(
        violations.lock().unwrap().is_empty(),
        "{:?}",
        violations.lock().unwrap()
    );
    let reports = reports.lock().unwrap();
    assert!(reports.windows(2).all(|w| w[0] < w[1]), "reports increase");
    assert_eq!(reports.last(), Some(&z(600)));
}

#[test]
fn a_failed_fsync_stops_the_writer_and_nothing_after_it_is_reported_durable() {
    let sim = SimFs::new();
    let (writer, rx) = spawn(&sim);
    for c in 1..=5 {
        writer.append(z(c), payload(c)).unwrap();
    }
    assert_eq!(writer.flush().unwrap(), z(5));
    sim.fail_syncs(true);
    writer.append(z(6), payload(6)).unwrap();
    let err = writer.flush().unwrap_err();
    assert!(
        matches!(err, StorageError::Failed(ref e) if matches!(**e, StorageError::Io { .. })),
        "{err}"
    );
    let events: Vec<WriterEvent> = rx.try_iter().collect();
    let (last, durable) = events.split_last().unwrap();
    assert!(
        matches!(
            last,
            WriterEvent::Failed(StorageError::Io { op: "fsync", .. })
        ),
        "{last:?}"
    );
    for e in durable {
        assert!(
            matches!(e, WriterEvent::Durable { zxid, .. } if *zxid <= z(5)),
            "{e:?}"
        );
    }
    assert_eq!(writer.durable_zxid(), z(5));
    // Never retried, even when the disk would work again.
    sim.fail_syncs(false);
    assert!(writer.append(z(7), payload(7)).is_err());
    assert!(writer.flush().is_err());
    assert!(writer.truncate_after(z(2)).is_err());
    assert!(writer.shutdown().is_err());
    assert_eq!(writer.durable_zxid(), z(5));
    sim.crash(CrashMode::DropUnsynced);
    assert_eq!(durable_on_disk(&sim), z(5));
}

#[test]
fn newleader_persists_packets_then_current_epoch_then_acks() {
    let sim = SimFs::new();
    let (writer, _rx) = spawn(&sim);
    writer.epochs().set_accepted_epoch(Epoch(2)).unwrap();
    for c in 1..=20 {
        writer.append(z(c), payload(c)).unwrap();
    }
    // (1) packets logged and fsynced ...
    assert_eq!(writer.flush().unwrap(), z(20));
    assert_eq!(durable_on_disk(&sim), z(20));
    // (2) ... then currentEpoch, durably ...
    writer.epochs().set_current_epoch(Epoch(2)).unwrap();
    let image = sim.durable_image(CrashMode::DropUnsynced);
    let (_, r) = Storage::open(Arc::new(image), &config()).unwrap();
    assert_eq!((r.current_epoch, r.last_zxid()), (Epoch(2), z(20)));
    // (3) ... then the ACK may leave. If (1) fails, (2) must not happen: `?` stops there.
    sim.fail_syncs(true);
    writer.append(z(21), payload(21)).unwrap();
    let newleader = || -> Result<(), StorageError> {
        writer.flush()?;
        writer.epochs().set_current_epoch(Epoch(3))
    };
    assert!(newleader().is_err());
    assert_eq!(writer.epochs().current_epoch(), Epoch(2));
}

#[test]
fn truncation_installation_and_reads_are_ordered_with_queued_appends() {
    let sim = SimFs::new();
    let (writer, rx) = spawn(&sim);
    let generation = writer.snapshots().generation();
    for c in 1..=10 {
        writer.append(z(c), payload(c)).unwrap();
    }
    // Queued behind the appends: the cut applies to them.
    writer.truncate_after(z(7)).unwrap();
    assert_eq!(writer.durable_zxid(), z(7));
    assert!(matches!(
        writer.append(z(11), payload(11)),
        Err(StorageError::InvalidRequest(_))
    ));
    writer.append(z(8), Bytes::from_static(b"new 8")).unwrap();
    let records = writer.read_after(z(5)).unwrap();
    let got: Vec<(Zxid, &[u8])> = records.iter().map(|r| (r.zxid, &r.payload[..])).collect();
    assert_eq!(
        got,
        [
            (z(6), &payload(6)[..]),
            (z(7), &payload(7)[..]),
            (z(8), &b"new 8"[..])
        ]
    );
    // Reports after the truncation carry the new history generation.
    let events: Vec<WriterEvent> = rx.try_iter().collect();
    assert!(events.iter().any(|e| matches!(e,
        WriterEvent::Durable { zxid, generation: g, .. } if *zxid == z(8) && *g > generation)));
    // SNAP replaces everything, in order.
    writer.append(z(9), payload(9)).unwrap();
    let leader = Zxid::new(2, 3);
    writer
        .install_snapshot(leader, Bytes::from_static(b"leader tree").into())
        .unwrap();
    assert_eq!(writer.durable_zxid(), leader);
    assert!(writer.read_after(leader).unwrap().is_empty());
    assert!(matches!(
        writer.append(z(10), payload(10)),
        Err(StorageError::InvalidRequest(_))
    ));
    writer.append(Zxid::new(2, 4), payload(4)).unwrap();
    writer.shutdown().unwrap();
    let (_, r) = Storage::open(Arc::new(sim.clone()), &config()).unwrap();
    assert_eq!(r.snapshot.map(|s| s.zxid), Some(leader));
    assert_eq!(
        r.txns.iter().map(|t| t.zxid).collect::<Vec<_>>(),
        [Zxid::new(2, 4)]
    );
    // A bad truncation is refused without stopping the writer.
}

#[test]
fn a_refused_truncation_does_not_stop_the_writer() {
    let sim = SimFs::new();
    let (writer, _rx) = spawn(&sim);
    writer.append(z(1), payload(1)).unwrap();
    let err = writer.truncate_after(z(5)).unwrap_err();
    assert!(matches!(err, StorageError::InvalidRequest(_)), "{err}");
    writer.append(z(2), payload(2)).unwrap();
    assert_eq!(writer.flush().unwrap(), z(2));
}

#[test]
fn a_periodic_snapshot_does_not_block_appends_and_then_prunes_the_log() {
    let sim = SimFs::new();
    let mut c = config();
    c.segment_bytes = 300;
    let (s, _) = Storage::open(Arc::new(sim.clone()), &c).unwrap();
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    let (tx, _rx) = mpsc::channel();
    let writer = Arc::new(LogWriter::spawn(s, move |e| drop(tx.send(e))).unwrap());
    for c in 1..=40 {
        writer.append(z(c), payload(c)).unwrap();
    }
    writer.flush().unwrap();
    let segments_before = sim
        .files()
        .iter()
        .filter(|p| p.to_string_lossy().contains("/log."))
        .count();
    // The snapshot thread blocks inside the snapshot's fsync ...
    sim.pause_syncs("snapshot.");
    let ticket = writer.snapshot_ticket();
    let w = writer.clone();
    let snapshotter = thread::spawn(move || w.save_snapshot(ticket, z(30), b"tree@30"));
    wait_until("the snapshot fsync", || sim.paused_syncs() == 1);
    // ... while appends keep becoming durable.
    for c in 41..=60 {
        writer.append(z(c), payload(c)).unwrap();
    }
    assert_eq!(writer.flush().unwrap(), z(60));
    sim.resume_syncs();
    snapshotter.join().unwrap().unwrap();
    writer.flush().unwrap(); // the pruning was queued behind the snapshot
    let segments_after = sim
        .files()
        .iter()
        .filter(|p| p.to_string_lossy().contains("/log."))
        .count();
    assert!(
        segments_after < segments_before,
        "{segments_before} -> {segments_after}"
    );
    writer.shutdown().unwrap();
    let (_, r) = Storage::open(Arc::new(sim.clone()), &c).unwrap();
    assert_eq!(r.snapshot_zxid(), z(30));
    assert_eq!(r.txns.first().map(|t| t.zxid), Some(z(31)));
    assert_eq!(r.last_zxid(), z(60));
}

#[test]
fn a_snapshot_taken_before_a_truncation_is_refused() {
    let sim = SimFs::new();
    let (writer, _rx) = spawn(&sim);
    for c in 1..=10 {
        writer.append(z(c), payload(c)).unwrap();
    }
    let ticket = writer.snapshot_ticket();
    writer.truncate_after(z(4)).unwrap();
    let err = writer.save_snapshot(ticket, z(9), b"stale").unwrap_err();
    assert!(matches!(err, StorageError::StaleSnapshot { .. }), "{err}");
    writer.append(z(5), payload(5)).unwrap();
    assert_eq!(writer.flush().unwrap(), z(5));
}

#[test]
fn shutdown_drains_the_queue_and_later_requests_are_refused() {
    let sim = SimFs::new();
    let (writer, _rx) = spawn(&sim);
    for c in 1..=100 {
        writer.append(z(c), payload(c)).unwrap();
    }
    writer.shutdown().unwrap();
    assert_eq!(writer.durable_zxid(), z(100));
    assert_eq!(durable_on_disk(&sim), z(100));
    assert!(matches!(
        writer.append(z(101), payload(101)),
        Err(StorageError::Closed)
    ));
    assert!(matches!(
        writer.truncate_after(z(1)),
        Err(StorageError::Closed)
    ));
    // flush() after a clean drain has nothing left to wait for.
    assert_eq!(writer.flush().unwrap(), z(100));
}
