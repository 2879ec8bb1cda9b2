//! Tests of the ZooKeeper file parsers and writers with crafted, truncated and corrupt input,
//! and of import/export atomicity.

use super::*;
use crate::migrate::zk_log::opcode;
use bytes::Bytes;
use std::path::Path;
use zab_spec::SessionId;
use zab_zk::DataTree;
use zab_zk::jute::Writer;
use zab_zk::proto::{Acl, ids, perms};

// ----- a ZooKeeper log writer, for crafting input ---------------------------------------------

fn acl_w(w: &mut Writer, acl: &[Acl]) {
    w.write_vec(acl, |w, a| {
        w.write_i32(a.perms);
        w.write_str(&a.id.scheme);
        w.write_str(&a.id.id);
    });
}

fn create_body(path: &str, data: &[u8], ephemeral: bool, parent_cversion: i32) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_str(path);
    w.write_buffer(Some(data));
    acl_w(&mut w, &ids::open_acl_unsafe());
    w.write_bool(ephemeral);
    w.write_i32(parent_cversion);
    w.into_vec()
}

/// One log entry: TxnHeader + body (+ digest).
fn entry(session: i64, zxid: i64, op: i32, body: &[u8], digest: bool) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i64(session);
    w.write_i32(7);
    w.write_i64(zxid);
    w.write_i64(1_700_000_000_000 + zxid);
    w.write_i32(op);
    w.write_raw(body);
    if digest {
        w.write_i32(2);
        w.write_i64(12345);
    }
    w.into_vec()
}

fn log_file(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut w = Writer::new();
    w.write_i32(zk_log::LOG_MAGIC);
    w.write_i32(2);
    w.write_i64(0);
    for e in entries {
        w.write_i64(i64::from(adler32(e)));
        w.write_buffer(Some(e));
        w.write_u8(b'B');
    }
    let mut v = w.into_vec();
    v.extend_from_slice(&[0u8; 64]); // preallocated
    v
}

fn history() -> Vec<Vec<u8>> {
    let s = 0x100_0000_0000_0001_i64;
    let mut ttl = Writer::new();
    ttl.write_str("/ttl");
    ttl.write_buffer(Some(b"t"));
    acl_w(&mut ttl, &ids::open_acl_unsafe());
    ttl.write_i32(3);
    ttl.write_i64(60_000);
    let mut cont = Writer::new();
    cont.write_str("/c");
    cont.write_buffer(None);
    acl_w(&mut cont, &ids::open_acl_unsafe());
    cont.write_i32(4);
    let mut set = Writer::new();
    set.write_str("/a");
    set.write_buffer(Some(b"two"));
    set.write_i32(1);
    let mut setacl = Writer::new();
    setacl.write_str("/a");
    acl_w(&mut setacl, &[Acl::new(perms::READ, "world", "anyone")]);
    setacl.write_i32(1);
    let mut multi = Writer::new();
    let subs: Vec<(i32, Vec<u8>)> = vec![
        (opcode::CREATE, create_body("/m", b"", false, 5)),
        (opcode::DELETE, {
            let mut d = Writer::new();
            d.write_str("/c");
            d.into_vec()
        }),
    ];
    multi.write_vec(&subs, |w, (op, b)| {
        w.write_i32(*op);
        w.write_buffer(Some(b));
    });
    let mut failed = Writer::new();
    let errs: Vec<(i32, Vec<u8>)> = [0, -101, -2]
        .iter()
        .map(|c| (opcode::ERROR, c_i32(*c)))
        .collect();
    failed.write_vec(&errs, |w, (op, b)| {
        w.write_i32(*op);
        w.write_buffer(Some(b));
    });
    let mut close = Writer::new();
    close.write_string_vec(&["/e"]);
    vec![
        entry(s, 1, opcode::CREATE_SESSION, &c_i32(30_000), true),
        entry(
            s,
            2,
            opcode::CREATE,
            &create_body("/a", b"one", false, 1),
            true,
        ),
        entry(
            s,
            3,
            opcode::CREATE2,
            &create_body("/e", b"", true, 2),
            true,
        ),
        entry(s, 4, opcode::CREATE_TTL, &ttl.into_vec(), true),
        entry(s, 5, opcode::CREATE_CONTAINER, &cont.into_vec(), false),
        entry(s, 6, opcode::SET_DATA, &set.into_vec(), true),
        entry(s, 7, opcode::SET_ACL, &setacl.into_vec(), true),
        entry(s, 8, opcode::MULTI, &multi.into_vec(), true),
        entry(s, 9, opcode::MULTI, &failed.into_vec(), true),
        entry(s, 0x0a, opcode::CLOSE_SESSION, &close.into_vec(), true),
        entry(s + 1, 0x0b, opcode::CREATE_SESSION, &c_i32(4_000), false),
        entry(
            s + 1,
            0x0c,
            opcode::CREATE,
            &create_body("/e2", b"", true, 7),
            false,
        ),
    ]
}

fn c_i32(v: i32) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn zk_dir(entries: &[Vec<u8>]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let v2 = dir.path().join("version-2");
    std::fs::create_dir_all(&v2).expect("mkdir");
    std::fs::write(v2.join("snapshot.0"), zk_snapshot::write(&DataTree::new())).expect("snap");
    std::fs::write(v2.join("log.1"), log_file(entries)).expect("log");
    dir
}

fn offset_of(e: &MigrateError) -> (String, u64) {
    match e {
        MigrateError::Corrupt { file, offset, .. } => (file.display().to_string(), *offset),
        other => panic!("expected a Corrupt error, got {other}"),
    }
}

// ----- log --------------------------------------------------------------------------------------

#[test]
fn a_crafted_history_restores_every_kind_of_transaction() {
    let dir = zk_dir(&history());
    let r = import::restore(dir.path(), dir.path()).expect("restore");
    assert_eq!(r.txns, 12);
    assert_eq!(r.last_zxid, Zxid::new(0, 0x0c));
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let t = &r.tree;
    let a = t.get("/a").expect("/a");
    assert_eq!(a.data.as_deref(), Some(&b"two"[..]));
    assert_eq!(a.stat.version, 1);
    assert_eq!(a.stat.aversion, 1);
    assert_eq!(
        a.acl.as_slice(),
        &[Acl::new(perms::READ, "world", "anyone")]
    );
    assert_eq!(
        (a.stat.czxid, a.stat.mzxid, a.stat.ctime),
        (2, 6, 1_700_000_000_002)
    );
    assert!(t.get("/e").is_none(), "closeSession deleted the ephemeral");
    assert!(t.get("/c").is_none(), "the multi deleted the container");
    assert!(t.get("/m").is_some(), "the multi created /m");
    assert_eq!(t.ttls().len(), 1);
    let s2 = SessionId(0x100_0000_0000_0002);
    assert_eq!(t.sessions().get(&s2), Some(&4_000));
    assert_eq!(t.sessions().len(), 1, "the first session was closed");
    assert_eq!(t.ephemerals(s2), vec!["/e2".to_owned()]);
    let root = t.get("/").expect("root");
    assert_eq!(root.stat.cversion, 7);
    assert_eq!(root.stat.pzxid, 0x0c);
}

#[test]
fn every_truncation_of_the_last_record_is_a_torn_tail() {
    let entries = history();
    let full = log_file(&entries);
    let body_end = full.len() - 64;
    let last_start = body_end - (8 + 4 + entries[11].len() + 1);
    let path = Path::new("/zk/version-2/log.1");
    for cut in last_start + 1..body_end {
        let scan = zk_log::parse(path, &full[..cut]).expect("a torn tail is not an error");
        assert_eq!(scan.records.len(), 11, "cut at {cut}");
        // A tail of zeros only (the checksum's high bytes) reads like preallocated space.
        let zeros = full[last_start..cut].iter().all(|b| *b == 0);
        let expected = (!zeros).then_some(last_start as u64);
        assert_eq!(scan.torn, expected, "cut at {cut}");
    }
    // A missing end-of-record byte reads as a partial record too.
    let mut bad_eor = full.clone();
    bad_eor[body_end - 1] = b'X';
    assert_eq!(
        zk_log::parse(path, &bad_eor).expect("torn").torn,
        Some(last_start as u64)
    );
    // Truncated anywhere, the parser never panics.
    for cut in 0..full.len() {
        let _ = zk_log::parse(path, &full[..cut]);
    }
}

#[test]
fn a_torn_last_log_is_cut_and_an_earlier_one_refused() {
    let entries = history();
    let mut full = log_file(&entries);
    full.truncate(full.len() - 64 - 3);
    let dir = zk_dir(&[]);
    let v2 = dir.path().join("version-2");
    std::fs::write(v2.join("log.1"), &full).expect("log");
    let r = import::restore(dir.path(), dir.path()).expect("restore");
    assert_eq!(r.txns, 11);
    assert!(r.warnings[0].contains("torn"), "{:?}", r.warnings);
    // The same damage in a log that is followed by another is refused.
    let next = log_file(&[entry(1, 0x0d, opcode::CREATE_SESSION, &c_i32(5000), false)]);
    std::fs::write(v2.join("log.d"), next).expect("log");
    let e = import::restore(dir.path(), dir.path()).expect_err("refused");
    let (file, _) = offset_of(&e);
    assert!(file.ends_with("log.1"), "{e}");
}

#[test]
fn a_bad_checksum_names_the_file_and_the_record_offset() {
    let entries = history();
    let mut full = log_file(&entries);
    let third = 16 + (8 + 4 + entries[0].len() + 1) + (8 + 4 + entries[1].len() + 1);
    full[third + 20] ^= 0x40; // inside the third record's entry
    let path = Path::new("/zk/version-2/log.1");
    let e = zk_log::parse(path, &full).expect_err("checksum");
    assert_eq!(
        offset_of(&e),
        ("/zk/version-2/log.1".to_owned(), third as u64)
    );
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    assert!(e.to_string().contains(&format!("offset {third}")), "{e}");
}

#[test]
fn bad_magic_version_length_and_type_are_refused_with_offsets() {
    let path = Path::new("log.1");
    let mut full = log_file(&history());
    full[0] = b'X';
    assert_eq!(
        offset_of(&zk_log::parse(path, &full).expect_err("magic")).1,
        0
    );
    let mut full = log_file(&history());
    full[7] = 9;
    assert_eq!(
        offset_of(&zk_log::parse(path, &full).expect_err("version")).1,
        4
    );
    let mut full = log_file(&history());
    full[16 + 8..16 + 12].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(
        offset_of(&zk_log::parse(path, &full).expect_err("length")).1,
        24
    );
    let unknown = log_file(&[entry(1, 1, 99, &[], false)]);
    let e = zk_log::parse(path, &unknown).expect_err("type");
    assert!(e.to_string().contains("unknown transaction type 99"), "{e}");
    assert_eq!(offset_of(&e).1, 16 + 12 + 32);
    // A path ZooKeeper would never have logged.
    let e = zk_log::parse(
        path,
        &log_file(&[entry(
            1,
            1,
            opcode::CREATE,
            &create_body("//a", b"", false, 1),
            false,
        )]),
    )
    .expect_err("path");
    assert!(e.to_string().contains("invalid path"), "{e}");
    // Trailing garbage after a record's fields.
    let mut body = create_body("/x", b"", false, 1);
    body.extend_from_slice(&[1, 2, 3]);
    let e = zk_log::parse(
        path,
        &log_file(&[entry(1, 1, opcode::CREATE, &body, false)]),
    )
    .expect_err("trailing");
    assert!(e.to_string().contains("unexpected bytes"), "{e}");
}

#[test]
fn old_formats_still_read() {
    // CreateTxnV0 (no parentCVersion) and a closeSession without CloseSessionTxn.
    let mut v0 = Writer::new();
    v0.write_str("/old");
    v0.write_buffer(Some(b"v0"));
    acl_w(&mut v0, &ids::open_acl_unsafe());
    v0.write_bool(false);
    let dir = zk_dir(&[
        entry(5, 1, opcode::CREATE_SESSION, &c_i32(6000), false),
        entry(5, 2, opcode::CREATE, &v0.into_vec(), false),
        entry(
            5,
            3,
            opcode::CREATE,
            &create_body("/old/e", b"", true, 1),
            false,
        ),
        entry(5, 4, opcode::CLOSE_SESSION, &[], false),
    ]);
    let r = import::restore(dir.path(), dir.path()).expect("restore");
    let t = &r.tree;
    assert_eq!(t.get("/old").map(|n| n.stat.czxid), Some(2));
    assert_eq!(
        t.get("/").map(|n| n.stat.cversion),
        Some(1),
        "V0: parent cversion + 1"
    );
    assert!(t.get("/old/e").is_none());
    assert!(t.sessions().is_empty());
}

#[test]
fn missing_transactions_are_refused() {
    let h = history();
    let dir = zk_dir(&[h[0].clone(), h[1].clone(), h[3].clone()]);
    let e = import::restore(dir.path(), dir.path()).expect_err("gap");
    assert!(e.to_string().contains("transactions are missing"), "{e}");
}

// ----- snapshot ---------------------------------------------------------------------------------

fn sample_tree() -> DataTree {
    let dir = zk_dir(&history());
    import::restore(dir.path(), dir.path())
        .expect("restore")
        .tree
}

#[test]
fn snapshots_round_trip_through_zookeepers_format() {
    let tree = sample_tree();
    let bytes = zk_snapshot::write(&tree);
    assert!(zk_snapshot::looks_complete(&bytes));
    let s = zk_snapshot::parse(Path::new("snapshot.c"), &bytes).expect("parse");
    assert_eq!(s.digest, Some((0, 2, 0)));
    let mut back = DataTree::from_nodes(s.nodes, s.sessions).expect("tree");
    // The restored sessions are marked imported (they keep ZooKeeper's password); ZooKeeper's
    // format has no such mark, and every session read from it is one.
    assert_eq!(tree.imported_sessions().len(), tree.sessions().len());
    assert!(!tree.sessions().is_empty());
    back.mark_sessions_imported();
    assert_eq!(back.snapshot(), tree.snapshot());
}

#[test]
fn corrupt_snapshots_are_refused_with_the_offset() {
    let bytes = zk_snapshot::write(&sample_tree());
    let path = Path::new("/zk/version-2/snapshot.c");
    // Cut right after the first seal it is a valid pre-3.6 snapshot (no digest trailer).
    let without_digest = bytes.len() - 20 - 13;
    let old = zk_snapshot::parse(path, &bytes[..without_digest]).expect("no digest");
    assert_eq!(old.digest, None);
    for cut in (0..bytes.len()).filter(|c| *c != without_digest) {
        let e = zk_snapshot::parse(path, &bytes[..cut]).expect_err("truncated");
        let (file, offset) = offset_of(&e);
        assert_eq!(file, "/zk/version-2/snapshot.c");
        assert!(offset <= cut as u64, "cut {cut}: offset {offset}");
    }
    let mut bad = bytes.clone();
    bad[0] = 0;
    assert_eq!(
        offset_of(&zk_snapshot::parse(path, &bad).expect_err("magic")).1,
        0
    );
    // Flip a byte of some node's data: the first seal's checksum catches it.
    let needle = b"two";
    let at = bytes
        .windows(3)
        .position(|w| w == needle)
        .expect("data present");
    let mut bad = bytes.clone();
    bad[at] = b'T';
    let e = zk_snapshot::parse(path, &bad).expect_err("checksum");
    assert!(e.to_string().contains("checksum mismatch"), "{e}");
    // Garbage after the last seal.
    let mut long = bytes.clone();
    long.push(0);
    assert!(zk_snapshot::parse(path, &long).is_err());
}

#[test]
fn a_snapshot_referring_to_an_unknown_acl_is_refused() {
    let mut w = Writer::new();
    w.write_i32(zk_snapshot::SNAP_MAGIC);
    w.write_i32(2);
    w.write_i64(-1);
    w.write_i32(0); // sessions
    w.write_i32(0); // ACL cache
    w.write_str("");
    w.write_buffer(None);
    w.write_i64(7); // not in the cache
    for _ in 0..4 {
        w.write_i64(0);
    }
    for _ in 0..3 {
        w.write_i32(0);
    }
    w.write_i64(0);
    w.write_i64(0);
    let e = zk_snapshot::parse(Path::new("s"), w.as_slice()).expect_err("acl");
    assert_eq!(offset_of(&e).1, 24);
    assert!(e.to_string().contains("ACL id 7"), "{e}");
}

// ----- import / export --------------------------------------------------------------------------

#[test]
fn import_and_export_are_atomic_and_round_trip() {
    let zk = zk_dir(&history());
    let out = tempfile::tempdir().expect("tempdir");
    let data = out.path().join("zab");
    let imported = import::import(zk.path(), zk.path(), &data, &data).expect("import");
    assert_eq!(imported.epochs, (0, 0));
    let state = export::recover(&data, &data).expect("recover");
    assert_eq!(state.tree.snapshot(), sample_tree().snapshot());
    assert_eq!(state.last_zxid, Zxid::new(0, 0x0c));
    // A second import into the same directory is refused and changes nothing.
    let e = import::import(zk.path(), zk.path(), &data, &data).expect_err("refused");
    assert!(e.to_string().contains("already holds zabd state"), "{e}");
    // A corrupt input leaves no zabd state behind.
    let bad = zk_dir(&history());
    let log = bad.path().join("version-2/log.1");
    let mut bytes = std::fs::read(&log).expect("read");
    bytes[40] ^= 1;
    std::fs::write(&log, bytes).expect("write");
    let fresh = out.path().join("fresh");
    assert!(import::import(bad.path(), bad.path(), &fresh, &fresh).is_err());
    assert!(!fresh.join(crate::storage::LAYOUT_DIR).exists());
    assert!(!fresh.join(".zab-import.tmp").exists());
    // Export, and the export reads back to the same tree.
    let back = out.path().join("back");
    let ex = export::export(&data, &data, &back).expect("export");
    assert_eq!(ex.snapshot, back.join("version-2/snapshot.c"));
    let again = import::restore(&back, &back).expect("restore the export");
    assert_eq!(again.tree.snapshot(), state.tree.snapshot());
    assert!(
        export::export(&data, &data, &back).is_err(),
        "version-2 not empty"
    );
    let nothing = out.path().join("nothing");
    assert!(export::export(&nothing, &nothing, &out.path().join("x")).is_err());
}

#[test]
fn an_empty_or_snapshotless_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = import::restore(dir.path(), dir.path()).expect_err("empty");
    assert!(e.to_string().contains("no ZooKeeper data"), "{e}");
    let v2 = dir.path().join("version-2");
    std::fs::create_dir_all(&v2).expect("mkdir");
    std::fs::write(v2.join("log.1"), log_file(&history())).expect("log");
    let e = import::restore(dir.path(), dir.path()).expect_err("no snapshot");
    assert!(e.to_string().contains("no snapshot"), "{e}");
    // An incomplete newest snapshot is skipped (as ZooKeeper skips it).
    std::fs::write(v2.join("snapshot.0"), zk_snapshot::write(&DataTree::new())).expect("snap");
    std::fs::write(v2.join("snapshot.5"), b"ZKSN partial").expect("snap");
    let r = import::restore(dir.path(), dir.path()).expect("restore");
    assert_eq!(r.snapshot_zxid, Zxid::ZERO);
    assert!(
        r.warnings.iter().any(|w| w.contains("incomplete")),
        "{:?}",
        r.warnings
    );
    let _ = Bytes::new();
}

#[test]
fn epochs_come_from_zookeepers_files_and_the_last_zxid() {
    // A quorum history across two epochs, with ZooKeeper's epoch files.
    let s = 9;
    let dir = zk_dir(&[
        entry(s, 0x1_0000_0001, opcode::CREATE_SESSION, &c_i32(5000), true),
        entry(
            s,
            0x1_0000_0002,
            opcode::CREATE,
            &create_body("/x", b"", false, 1),
            true,
        ),
        entry(
            s,
            0x3_0000_0001,
            opcode::SET_DATA,
            &{
                let mut w = Writer::new();
                w.write_str("/x");
                w.write_buffer(Some(b"y"));
                w.write_i32(1);
                w.into_vec()
            },
            true,
        ),
    ]);
    let v2 = dir.path().join("version-2");
    std::fs::write(v2.join("acceptedEpoch"), "4").expect("write");
    std::fs::write(v2.join("currentEpoch"), "3").expect("write");
    let out = tempfile::tempdir().expect("tempdir");
    let data = out.path().join("d");
    let logs = out.path().join("l");
    let r = import::import(dir.path(), dir.path(), &data, &logs).expect("import");
    assert_eq!(r.restored.last_zxid, Zxid::new(3, 1));
    assert_eq!(r.epochs, (4, 3));
    let st = export::recover(&data, &logs).expect("recover");
    assert_eq!(st.epochs, (4, 3));
    assert_eq!(st.tree.get("/x").map(|n| n.stat.mzxid), Some(0x3_0000_0001));
    // Garbage in an epoch file is refused, naming it.
    std::fs::write(v2.join("currentEpoch"), "three").expect("write");
    let e =
        import::import(dir.path(), dir.path(), &out.path().join("d2"), &logs).expect_err("epoch");
    assert!(e.to_string().contains("currentEpoch"), "{e}");
    // A log directory that already holds zabd files is refused too.
    std::fs::write(v2.join("currentEpoch"), "3").expect("write");
    std::fs::write(
        logs.join(crate::storage::LAYOUT_DIR)
            .join("log.0000000100000001"),
        b"x",
    )
    .expect("write");
    let e =
        import::import(dir.path(), dir.path(), &out.path().join("d3"), &logs).expect_err("logs");
    assert!(e.to_string().contains("already holds zabd state"), "{e}");
}

#[test]
fn damage_anywhere_is_an_error_or_a_torn_tail_never_a_panic() {
    let log = log_file(&history());
    let snap = zk_snapshot::write(&sample_tree());
    let path = Path::new("f");
    for at in 0..log.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = log.clone();
            bad[at] ^= flip;
            if let Ok(scan) = zk_log::parse(path, &bad) {
                // Accepted only if the damage is in what reads as the end of the log.
                let clean = zk_log::parse(path, &log).expect("clean");
                assert!(scan.records.len() <= clean.records.len(), "byte {at}");
            }
        }
    }
    for at in 0..snap.len() {
        let mut bad = snap.clone();
        bad[at] ^= 0x20;
        // Every byte is covered by a seal: any change is refused.
        assert!(zk_snapshot::parse(path, &bad).is_err(), "byte {at}");
    }
}
