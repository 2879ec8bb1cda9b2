//! DataTree tests: the initial tree, stat semantics of create/delete/setData/setACL (incl. the
//! cversion/pzxid/sequential quirks verified on ZooKeeper 3.8), sessions and ephemerals,
//! containers and TTL nodes, apply errors, and snapshots.

use super::*;
use crate::prep::PrepConfig;
use crate::proto::{Request, Response, SetAclRequest, perms};
use crate::testkit::*;
use crate::txn::TxnHeader;
use zab_spec::ZnodeTxn;

fn zx(counter: u32) -> i64 {
    Zxid::new(1, counter).to_u64() as i64
}

#[test]
fn initial_tree_matches_zookeeper() {
    let t = DataTree::new();
    let root = t.get("/").map(Node::stat);
    let root = root.unwrap_or_default();
    assert_eq!(root.num_children, 1);
    // stored cversion 0, one child: 2*0-1.
    assert_eq!(root.cversion, -1);
    assert_eq!(root.czxid, 0);
    assert_eq!(root.data_length, 0);
    let zk = t.get(ZOOKEEPER).map(Node::stat).unwrap_or_default();
    assert_eq!(zk.cversion, -2, "verified: /zookeeper shows cversion -2");
    assert_eq!(zk.num_children, 2);
    assert!(t.contains(QUOTA));
    let config = t.get(CONFIG);
    assert_eq!(
        config.map(|n| n.acl.as_ref().clone()),
        Some(ids::read_acl_unsafe())
    );
    assert_eq!(config.map(|n| n.stat.aversion), Some(-1));
    assert_eq!(t.node_count(), 4);
    assert_eq!(t.descendant_count("/"), 3);
    assert_eq!(
        t.get("/").map(|n| n.children.names()),
        Some(vec!["zookeeper".to_owned()])
    );
}

#[test]
fn set_config_sets_version_minus_one() {
    let mut t = DataTree::new();
    let text = "server.1=127.0.0.1:2888:3888:participant\nversion=0";
    t.set_config(Bytes::from(text), 0, 123);
    let n = t.get(CONFIG);
    assert_eq!(n.map(|n| n.stat().version), Some(-1));
    assert_eq!(n.and_then(|n| n.data.clone()), Some(Bytes::from(text)));
    assert_eq!(n.map(|n| n.stat().mtime), Some(123));
}

#[test]
fn create_sets_the_new_stat_and_the_parents() {
    let mut s = Sim::new();
    s.open(1);
    let (code, resp) = s.write(1, &Request::Create2(create_req("/a", b"hello", 0)));
    assert_eq!(code, ErrorCode::Ok);
    let Some(Response::Create2(r)) = resp else {
        panic!("create2 answers with a stat");
    };
    assert_eq!(r.path, "/a");
    let z = zx(2);
    assert_eq!(r.stat.czxid, z);
    assert_eq!(r.stat.mzxid, z);
    assert_eq!(r.stat.pzxid, z, "verified: czxid=mzxid=pzxid");
    assert_eq!(r.stat.ctime, r.stat.mtime);
    assert_eq!(r.stat.version, 0);
    assert_eq!(r.stat.cversion, 0);
    assert_eq!(r.stat.aversion, 0);
    assert_eq!(r.stat.data_length, 5);
    assert_eq!(r.stat.ephemeral_owner, 0);
    assert_eq!(r.stat, s.stat("/a"));
    let root = s.stat("/");
    assert_eq!(root.pzxid, z);
    assert_eq!(root.num_children, 2);
    // stored cversion 1, two children.
    assert_eq!(root.cversion, 0);
    // create (opcode 1) answers with the path only.
    assert_eq!(
        s.write(1, &create("/b", 0)),
        (
            ErrorCode::Ok,
            Some(Response::Create(crate::proto::CreateResponse {
                path: "/b".into()
            }))
        )
    );
}

#[test]
fn cversion_experiment_verified_on_zookeeper() {
    // Wire doc §10 "cversion experiment" [verified].
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/cv", 0));
    assert_eq!(s.stat("/cv").cversion, 0);
    s.created(1, &create("/cv/x", 0));
    assert_eq!(s.stat("/cv").cversion, 1);
    assert_eq!(s.code(1, &set_data("/cv/x", b"1", -1)), ErrorCode::Ok);
    assert_eq!(s.stat("/cv").cversion, 1);
    assert_eq!(s.code(1, &delete("/cv/x", -1)), ErrorCode::Ok);
    assert_eq!(s.stat("/cv").cversion, 2);
    assert_eq!(s.created(1, &create("/cv/s-", 2)), "/cv/s-0000000001");
    assert_eq!(s.stat("/cv").cversion, 3);
    assert_eq!(s.created(1, &create("/cv/s-", 3)), "/cv/s-0000000002");
    assert_eq!(s.stat("/cv").cversion, 4);
    s.created(1, &create("/cv/x", 0));
    assert_eq!(s.stat("/cv").cversion, 5);
    assert_eq!(s.code(1, &delete("/cv/x", -1)), ErrorCode::Ok);
    assert_eq!(s.stat("/cv").cversion, 6);
    assert_eq!(s.created(1, &create("/cv/s-", 2)), "/cv/s-0000000004");
    assert_eq!(s.stat("/cv").cversion, 7);
    s.created(1, &create("/cv/s-0000000009", 0));
    assert_eq!(s.created(1, &create("/cv/s-", 2)), "/cv/s-0000000006");
    assert_eq!(s.stat("/cv").cversion, 9);
}

#[test]
fn sequential_suffix_is_the_stored_cversion_not_the_client_one() {
    // §0.5: create child (cv 1) → delete child (client cv 2) → sequential gets 0000000001.
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/n", 0));
    s.created(1, &create("/n/c", 0));
    s.code(1, &delete("/n/c", -1));
    assert_eq!(s.stat("/n").cversion, 2);
    assert_eq!(s.created(1, &create("/n/", 2)), "/n/0000000001");
}

#[test]
fn probe_transcript_sequence() {
    // §10: create2 /probe/a; s- → s-0000000001; delete; again → s-0000000002; exists /probe
    // shows cversion 4, numChildren 2.
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/probe", 0));
    s.created(1, &create2("/probe/a", 0));
    assert_eq!(s.created(1, &create("/probe/s-", 2)), "/probe/s-0000000001");
    s.code(1, &delete("/probe/s-0000000001", -1));
    assert_eq!(s.created(1, &create("/probe/s-", 2)), "/probe/s-0000000002");
    let st = s.stat("/probe");
    assert_eq!((st.cversion, st.num_children), (4, 2));
}

#[test]
fn sequential_at_root_and_name_collisions() {
    let mut s = Sim::new();
    s.open(1);
    // root already counts... nothing: /zookeeper was not created by a txn.
    assert_eq!(s.created(1, &create("/", 2)), "/0000000000");
    assert_eq!(s.created(1, &create("/", 2)), "/0000000001");
    s.created(1, &create("/q", 0));
    s.created(1, &create("/q/s0000000001", 0));
    // counter is now 1 → the generated name exists: NodeExists [verified].
    assert_eq!(s.code(1, &create("/q/s", 2)), ErrorCode::NodeExists);
    // A failed create does not advance the counter.
    assert_eq!(s.stat("/q").cversion, 1);
    s.created(1, &create("/q/other", 0));
    assert_eq!(s.created(1, &create("/q/s", 2)), "/q/s0000000002");
}

#[test]
fn sequential_counter_wraps_negative_like_java() {
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/w", 0));
    // Jump the parent's stored cversion to i32::MAX with a hand-made create txn.
    let t = Txn::new(
        TxnHeader {
            session: SessionId(1),
            cxid: 0,
            time: 5,
        },
        TxnBody::Create(CreateTxn {
            path: "/w/x".into(),
            data: None,
            acl: ids::open_acl_unsafe(),
            kind: NodeKind::Persistent,
            parent_cversion: i32::MAX,
            sequential: false,
            with_stat: false,
        }),
    );
    let z = s.next_zxid();
    s.commit(&t, z);
    // Pipelined, the outstanding view has wrapped to i32::MIN: a negative suffix.
    let (a, za) = s.submit(1, &ip_auth(), &create("/w/s", 2));
    let (b, zb) = s.submit(1, &ip_auth(), &create("/w/s", 2));
    assert_eq!(s.commit(&a, za).0, ErrorCode::Ok);
    assert_eq!(s.commit(&b, zb).0, ErrorCode::Ok);
    assert!(s.tree.contains("/w/s2147483647"));
    assert!(s.tree.contains("/w/s-2147483648"));
    // Committed, the tree keeps i32::MAX: createNode only raises cversion (its guard for
    // fuzzy snapshots), so ZooKeeper 3.8 is stuck at the wrap — and so are we.
    assert_eq!(s.tree.get("/w").map(|n| n.stat.cversion), Some(i32::MAX));
    assert_eq!(s.code(1, &create("/w/s", 2)), ErrorCode::NodeExists);
}

#[test]
fn delete_updates_parent_pzxid_and_client_cversion() {
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/d", 0));
    s.created(1, &create("/d/c", 0));
    let before = s.stat("/d");
    assert_eq!(s.code(1, &delete("/d/c", 0)), ErrorCode::Ok);
    let after = s.stat("/d");
    assert_eq!(after.num_children, 0);
    assert_eq!(after.cversion, before.cversion + 1);
    assert_eq!(after.pzxid, zx(s.counter));
    assert!(after.pzxid > before.pzxid);
    assert_eq!(after.mzxid, before.mzxid, "children do not change mzxid");
}

#[test]
fn set_data_bumps_version_mzxid_mtime() {
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/s", 0));
    let c = s.stat("/s");
    let (code, resp) = s.write(1, &set_data("/s", b"abc", 0));
    assert_eq!(code, ErrorCode::Ok);
    let Some(Response::SetData(r)) = resp else {
        panic!("setData answers with a stat")
    };
    assert_eq!(r.stat.version, 1);
    assert_eq!(r.stat.mzxid, zx(s.counter));
    assert_eq!(r.stat.czxid, c.czxid);
    assert!(r.stat.mtime > c.mtime);
    assert_eq!(r.stat.data_length, 3);
    assert_eq!(r.stat.pzxid, c.pzxid, "setData does not touch pzxid");
    assert_eq!(s.data("/s"), Some(Bytes::from_static(b"abc")));
    // null data stays null and counts 0 bytes
    let req = Request::SetData(crate::proto::SetDataRequest {
        path: "/s".into(),
        data: None,
        version: -1,
    });
    assert_eq!(s.code(1, &req), ErrorCode::Ok);
    assert_eq!(s.data("/s"), None);
    assert_eq!(s.stat("/s").data_length, 0);
    assert_eq!(s.stat("/s").version, 2);
}

#[test]
fn set_acl_bumps_aversion_only() {
    let mut s = Sim::new();
    s.open(1);
    s.created(1, &create("/acl", 0));
    let before = s.stat("/acl");
    let req = Request::SetAcl(SetAclRequest {
        path: "/acl".into(),
        acl: ids::read_acl_unsafe(),
        version: 0,
    });
    let (code, resp) = s.write(1, &req);
    assert_eq!(code, ErrorCode::Ok);
    let Some(Response::SetAcl(r)) = resp else {
        panic!("setACL answers with a stat")
    };
    assert_eq!(r.stat.aversion, 1);
    assert_eq!(r.stat.version, before.version);
    assert_eq!(r.stat.mzxid, before.mzxid);
    assert_eq!(
        s.tree.get("/acl").map(|n| n.acl.as_ref().clone()),
        Some(ids::read_acl_unsafe())
    );
    // now only READ: setData is refused
    assert_eq!(s.code(1, &set_data("/acl", b"", -1)), ErrorCode::NoAuth);
    assert_eq!(s.code(1, &req), ErrorCode::NoAuth, "no ADMIN any more");
}

#[test]
fn ephemerals_are_owned_listed_and_closed_with_their_session() {
    let mut s = Sim::new();
    s.open(0x0100_0014_f448_0003);
    s.open(2);
    let sid = 0x0100_0014_f448_0003;
    s.created(sid, &create("/e", 1));
    s.created(sid, &create("/p", 0));
    s.created(sid, &create("/p/e-", 3));
    s.created(2, &create("/other", 1));
    assert_eq!(s.stat("/e").ephemeral_owner, sid);
    assert_eq!(
        s.tree.ephemerals(SessionId(sid)),
        vec!["/e".to_owned(), "/p/e-0000000000".to_owned()]
    );
    assert_eq!(s.tree.ephemeral_count(), 3);
    let p_before = s.stat("/p");
    assert_eq!(s.code(sid, &Request::CloseSession), ErrorCode::Ok);
    assert!(!s.tree.contains("/e"));
    assert!(!s.tree.contains("/p/e-0000000000"));
    assert!(s.tree.contains("/other"));
    assert!(s.tree.contains("/p"));
    assert_eq!(s.stat("/p").pzxid, zx(s.counter));
    assert!(s.stat("/p").pzxid > p_before.pzxid);
    assert!(!s.tree.session_open(SessionId(sid)));
    assert!(s.tree.session_open(SessionId(2)));
    assert_eq!(s.tree.ephemeral_count(), 1);
    // The closed session can no longer write.
    assert_eq!(s.code(sid, &create("/x", 0)), ErrorCode::SessionExpired);
}

#[test]
fn containers_show_owner_zero_and_are_collected_after_use() {
    let mut s = Sim::new();
    s.open(1);
    let (code, resp) = s.write(1, &Request::CreateContainer(create_req("/c", b"", 4)));
    assert_eq!(code, ErrorCode::Ok);
    let Some(Response::Create2(r)) = resp else {
        panic!("createContainer answers with Create2Response")
    };
    assert_eq!(
        r.stat.ephemeral_owner, 0,
        "verified: containers show owner 0"
    );
    assert_eq!(
        s.tree.get("/c").map(|n| n.stat.ephemeral_owner),
        Some(i64::MIN)
    );
    assert!(s.tree.containers().contains("/c"));
    // Never used: not a candidate (unless maxNeverUsedIntervalMs).
    assert!(s.tree.expired_containers(1 << 40, 0).is_empty());
    assert_eq!(
        s.tree.expired_containers(1 << 40, 10),
        vec!["/c".to_owned()]
    );
    s.created(1, &create("/c/child", 0));
    assert!(
        s.tree.expired_containers(1 << 40, 0).is_empty(),
        "has a child"
    );
    s.code(1, &delete("/c/child", -1));
    assert_eq!(s.tree.expired_containers(0, 0), vec!["/c".to_owned()]);
    // The leader deletes it with deleteContainer (session 0).
    let (code, _) = s.write_as(0, &[], &Request::DeleteContainer { path: "/c".into() });
    assert_eq!(code, ErrorCode::Ok);
    assert!(!s.tree.contains("/c"));
    assert!(s.tree.containers().is_empty());
    // create (opcode 1) with the container flag makes a persistent node, as in ZooKeeper.
    s.created(1, &create("/c1", 4));
    assert_eq!(
        s.tree.get("/c1").map(Node::kind),
        Some(NodeKind::Persistent)
    );
}

#[test]
fn ttl_nodes_need_the_switch_and_expire_when_idle() {
    let mut off = Sim::new();
    off.open(1);
    assert_eq!(
        off.code(1, &create_ttl("/t", 5, 100)),
        ErrorCode::Unimplemented,
        "verified: createTTL with extended types off is -6"
    );
    let mut s = Sim::with_config(PrepConfig { ttl_enabled: true });
    s.open(1);
    assert_eq!(s.code(1, &create_ttl("/t", 5, 0)), ErrorCode::BadArguments);
    assert_eq!(
        s.code(1, &create_ttl("/t", 5, crate::txn::MAX_TTL + 1)),
        ErrorCode::BadArguments
    );
    assert_eq!(
        s.code(1, &create_ttl("/t", 0, 100)),
        ErrorCode::BadArguments
    );
    assert_eq!(
        s.code(1, &create("/t", 5)),
        ErrorCode::BadArguments,
        "TTL mode needs createTTL"
    );
    let (code, resp) = s.write(1, &create_ttl("/t", 5, 100));
    assert_eq!(code, ErrorCode::Ok);
    let Some(Response::Create2(r)) = resp else {
        panic!("createTTL answers with Create2Response")
    };
    assert_eq!(r.stat.ephemeral_owner, 0);
    assert_eq!(s.tree.get("/t").map(Node::kind), Some(NodeKind::Ttl(100)));
    assert_eq!(s.created(1, &create_ttl("/ts-", 6, 50)), "/ts-0000000001");
    let mtime = s.stat("/t").mtime;
    let t = "/t".to_owned();
    assert!(!s.tree.expired_containers(mtime + 100, 0).contains(&t));
    assert!(s.tree.expired_containers(mtime + 101, 0).contains(&t));
    s.created(1, &create("/t/kid", 0));
    assert!(
        !s.tree
            .expired_containers(mtime + 1000, 0)
            .contains(&"/t".to_owned())
    );
}

#[test]
fn non_applying_transactions_leave_the_tree_unchanged() {
    let mut t = DataTree::new();
    let before = t.clone();
    let h = TxnHeader::default();
    let cases = [
        TxnBody::Delete {
            path: "/missing".into(),
        },
        TxnBody::Delete { path: "/".into() },
        TxnBody::Delete {
            path: "/zookeeper".into(),
        },
        TxnBody::SetData {
            path: "/missing".into(),
            data: None,
            version: 1,
        },
        TxnBody::Create(CreateTxn {
            path: "/no/parent".into(),
            data: None,
            acl: vec![],
            kind: NodeKind::Persistent,
            parent_cversion: 1,
            sequential: false,
            with_stat: false,
        }),
        TxnBody::Create(CreateTxn {
            path: "/zookeeper".into(),
            data: None,
            acl: vec![],
            kind: NodeKind::Persistent,
            parent_cversion: 1,
            sequential: false,
            with_stat: false,
        }),
        TxnBody::Error(ErrorCode::NodeExists),
    ];
    for body in cases {
        let out = t.apply(&Txn::new(h, body.clone()), Zxid::new(1, 1));
        assert!(matches!(out.result, TxnResult::Error(_)), "{body}");
        assert!(out.triggers.is_empty());
        assert_eq!(t, before, "{body}");
    }
}

#[test]
fn data_size_and_descendants_are_tracked() {
    let mut s = Sim::new();
    s.open(1);
    let base = s.tree.approximate_data_size();
    s.write(1, &Request::Create(create_req("/ab", b"1234", 0)));
    assert_eq!(s.tree.approximate_data_size(), base + 3 + 4);
    s.code(1, &set_data("/ab", b"1", -1));
    assert_eq!(s.tree.approximate_data_size(), base + 3 + 1);
    s.created(1, &create("/ab/c", 0));
    s.created(1, &create("/ab/c/d", 0));
    s.created(1, &create("/ab/e", 0));
    assert_eq!(s.tree.descendant_count("/ab"), 3);
    assert_eq!(s.tree.descendant_count("/ab/c"), 1);
    assert_eq!(s.tree.descendant_count("/"), 7);
    for p in ["/ab/c/d", "/ab/c", "/ab/e", "/ab"] {
        s.code(1, &delete(p, -1));
    }
    assert_eq!(s.tree.approximate_data_size(), base);
}

fn busy_sim() -> Sim {
    let mut s = Sim::with_config(PrepConfig { ttl_enabled: true });
    s.open(7);
    s.open(8);
    s.created(7, &create("/a", 0));
    s.created(
        7,
        &Request::Create(create_req("/a/data", b"\x00\x01binary", 0)),
    );
    s.created(7, &create("/a/e", 1));
    s.created(8, &create("/a/s-", 3));
    s.write(7, &Request::CreateContainer(create_req("/cont", b"", 4)));
    s.write(7, &create_ttl("/ttl", 5, 999));
    s.write(
        7,
        &Request::Create(crate::proto::CreateRequest {
            data: None,
            ..create_req("/nulldata", b"", 0)
        }),
    );
    s.write(
        7,
        &create_acl("/ip", vec![Acl::new(perms::READ, "ip", "10.0.0.0/8")]),
    );
    s.code(7, &set_data("/a", b"v", 0));
    s.tree.set_config(Bytes::from_static(b"version=0"), 0, 5);
    s
}

#[test]
fn snapshots_round_trip_and_rebuild_indexes() {
    let s = busy_sim();
    let bytes = s.tree.snapshot();
    let back = DataTree::from_snapshot(&bytes);
    assert_eq!(back.as_ref(), Ok(&s.tree));
    let back = back.unwrap_or_default();
    assert_eq!(back.ephemerals(SessionId(7)), vec!["/a/e".to_owned()]);
    assert!(back.containers().contains("/cont"));
    assert!(back.ttls().contains("/ttl"));
    assert_eq!(back.sessions().len(), 2);
    assert_eq!(back.approximate_data_size(), s.tree.approximate_data_size());
    assert_eq!(back.get("/nulldata").map(|n| n.data.clone()), Some(None));
    // Deterministic: the same content gives the same bytes.
    assert_eq!(back.snapshot(), bytes);
}

#[test]
fn imported_sessions_survive_a_snapshot_and_end_with_the_session() {
    let mut s = busy_sim();
    assert!(!s.tree.session_imported(SessionId(7)));
    s.tree.mark_sessions_imported();
    assert!(s.tree.session_imported(SessionId(7)));
    let back = DataTree::from_snapshot(&s.tree.snapshot()).unwrap_or_default();
    assert_eq!(back, s.tree);
    assert!(back.session_imported(SessionId(7)));
    // A session created after the import is not imported.
    s.open(99);
    assert!(s.tree.session_open(SessionId(99)));
    assert!(!s.tree.session_imported(SessionId(99)));
    assert_eq!(s.code(7, &Request::CloseSession), ErrorCode::Ok);
    assert!(!s.tree.session_imported(SessionId(7)));
    assert!(!s.tree.imported_sessions().contains(&SessionId(7)));
}

#[test]
fn session_passwords_come_from_create_session_survive_a_snapshot_and_end_with_the_session() {
    let mut s = busy_sim();
    // The testkit gives session N the password [N; 16] in its createSession.
    assert_eq!(s.tree.session_password(SessionId(7)), Some([7; 16]));
    let back = DataTree::from_snapshot(&s.tree.snapshot()).unwrap_or_default();
    assert_eq!(back, s.tree);
    assert_eq!(back.session_password(SessionId(7)), Some([7; 16]));
    assert_eq!(s.code(7, &Request::CloseSession), ErrorCode::Ok);
    assert_eq!(s.tree.session_password(SessionId(7)), None);
    // A snapshot with a password for a session that is not open is refused.
    let mut t = DataTree::new();
    t.passwords.insert(SessionId(5), [1; 16]);
    assert!(matches!(
        DataTree::from_snapshot(&t.snapshot()),
        Err(SnapshotError::Inconsistent(_))
    ));
}

#[test]
fn corrupt_snapshots_are_errors() {
    let bytes = busy_sim().tree.snapshot();
    for cut in 0..bytes.len() {
        assert!(DataTree::from_snapshot(&bytes[..cut]).is_err(), "cut {cut}");
    }
    for k in (0..bytes.len()).step_by(7) {
        let mut b = bytes.clone();
        b[k] ^= 0x40;
        assert!(DataTree::from_snapshot(&b).is_err(), "flip {k}");
    }
    let mut wrong_version = bytes.clone();
    wrong_version[7] = 4;
    assert_eq!(
        DataTree::from_snapshot(&wrong_version),
        Err(SnapshotError::Version(4))
    );
    assert!(matches!(
        DataTree::from_snapshot(b"nope-nope"),
        Err(SnapshotError::Magic(_))
    ));
}

#[test]
fn orphan_nodes_in_a_snapshot_are_refused() {
    // A well-formed, checksummed snapshot whose node has no parent.
    let mut w = Writer::new();
    w.write_raw(&snapshot::SNAPSHOT_MAGIC.to_be_bytes());
    w.write_raw(&1u32.to_be_bytes()); // version 1: no imported-session section
    w.write_i64(0);
    w.write_i64(2);
    for p in ["/", "/x/y"] {
        w.write_str(p);
        w.write_buffer(None);
        w.write_i32(0);
        for _ in 0..4 {
            w.write_i64(0);
        }
        for _ in 0..3 {
            w.write_i32(0);
        }
        w.write_i64(0);
        w.write_i64(0);
    }
    let crc = crc32c::crc32c(w.as_slice());
    w.write_raw(&crc.to_be_bytes());
    assert!(matches!(
        DataTree::from_snapshot(w.as_slice()),
        Err(SnapshotError::Inconsistent(_))
    ));
}

#[test]
fn the_canonical_history_replays_like_the_model_tree() {
    // Every txn of a busy run converts to a ZnodeTxn; creates are sequential exactly when
    // they carry a suffix.
    let mut s = Sim::new();
    s.open(1);
    let (t, _) = s.submit(1, &ip_auth(), &create("/q-", 2));
    match t.to_znode_txn() {
        ZnodeTxn::Create {
            path, sequential, ..
        } => {
            assert!(sequential);
            assert_eq!(&*path, "/q-0000000000");
        }
        other => panic!("{other}"),
    }
}

/// Each trigger carries the ACLs its notifications are checked against (ZooKeeper 3.8 with
/// the CVE-2024-23944 fix): the node's own — as it was, for a deleted node — and its
/// parent's.
#[test]
fn triggers_carry_the_node_and_parent_acls() {
    let mut t = DataTree::new();
    let h = TxnHeader::default();
    let secret = vec![Acl::new(perms::ALL, "digest", "alice:x")];
    let create = |path: &str, acl: Vec<Acl>| {
        TxnBody::Create(CreateTxn {
            path: path.into(),
            data: None,
            acl,
            kind: NodeKind::Persistent,
            parent_cversion: 1,
            sequential: false,
            with_stat: false,
        })
    };
    let out = t.apply(&Txn::new(h, create("/a", secret.clone())), Zxid::new(1, 1));
    assert_eq!(out.triggers, [Trigger::Created("/a".into())]);
    assert_eq!(out.trigger_acls.len(), 1);
    assert_eq!(*out.trigger_acls[0].node, secret);
    assert_eq!(
        out.trigger_acls[0].parent.as_deref(),
        Some(&ids::open_acl_unsafe())
    );
    let out = t.apply(
        &Txn::new(
            h,
            TxnBody::Multi(vec![
                create("/a/b", ids::open_acl_unsafe()),
                TxnBody::SetData {
                    path: "/a/b".into(),
                    data: None,
                    version: 1,
                },
                TxnBody::Delete {
                    path: "/a/b".into(),
                },
            ]),
        ),
        Zxid::new(1, 2),
    );
    assert_eq!(out.triggers.len(), 3);
    assert_eq!(out.trigger_acls.len(), 3);
    for acl in &out.trigger_acls {
        assert_eq!(*acl.node, ids::open_acl_unsafe());
    }
    assert_eq!(out.trigger_acls[0].parent.as_deref(), Some(&secret));
    assert_eq!(
        out.trigger_acls[1].parent, None,
        "data changes need no parent"
    );
    assert_eq!(out.trigger_acls[2].parent.as_deref(), Some(&secret));
}

#[test]
fn names_inline_up_to_22_bytes_and_are_found_either_way() {
    assert_eq!(size_of::<Name>(), 24);
    for len in [0, 1, 21, 22, 23, 200] {
        let s = "n".repeat(len);
        let n = Name::from(s.as_str());
        assert_eq!(n.as_str(), s);
        assert_eq!(matches!(n, Name::Inline { .. }), len <= Name::INLINE);
    }
    let mut s = Sim::new();
    s.open(1);
    let short = "/s";
    let long = format!("/{}", "l".repeat(100));
    for p in [short, long.as_str()] {
        let (code, _) = s.write(1, &Request::Create(create_req(p, b"x", 0)));
        assert_eq!(code, ErrorCode::Ok, "{p}");
        assert!(s.tree.contains(p));
    }
    assert_eq!(
        s.tree.get("/").map(|n| n.children.names()),
        Some(vec![
            "l".repeat(100),
            "s".to_owned(),
            "zookeeper".to_owned()
        ])
    );
}

#[test]
fn a_deep_chain_drops_without_recursion() {
    // 4,000 levels dropped on a thread with a 128 KiB stack: a recursive drop takes several
    // frames per level and would overflow it.
    let mut t = DataTree::new();
    let mut path = String::new();
    for i in 0..4_000u32 {
        path.push_str("/d");
        let c = Txn {
            header: TxnHeader {
                session: SessionId(1),
                cxid: 1,
                time: 1,
            },
            body: TxnBody::Create(CreateTxn {
                path: path.clone(),
                data: None,
                acl: ids::open_acl_unsafe(),
                kind: NodeKind::Persistent,
                parent_cversion: 1,
                sequential: false,
                with_stat: false,
            }),
        };
        t.apply(&c, Zxid::new(1, i + 1));
    }
    assert_eq!(t.node_count(), 4_004);
    let snapshot = t.capture();
    let dropper = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            drop(t);
            snapshot.node_count()
        });
    let joined = dropper.map(std::thread::JoinHandle::join);
    assert!(matches!(joined, Ok(Ok(4_004))));
}

/// A reader that hands out at most `step` bytes per call (a socket or a file read in pieces).
struct Trickle<'a> {
    data: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_snapshot_read_in_pieces_rebuilds_the_same_tree() {
    let mut s = busy_sim();
    // A node larger than the decoder's first read, so its buffer has to grow.
    assert_eq!(
        s.code(7, &set_data("/a", &vec![b'x'; 200 * 1024], -1)),
        ErrorCode::Ok
    );
    let bytes = s.tree.snapshot();
    for step in [1, 7, 4096, usize::MAX] {
        let back = DataTree::read_snapshot(Trickle { data: &bytes, step }, bytes.len() as u64);
        assert_eq!(back.as_ref(), Ok(&s.tree), "pieces of {step} bytes");
    }
    // A source that ends before the announced length.
    assert!(matches!(
        DataTree::read_snapshot(&bytes[..bytes.len() - 9], bytes.len() as u64),
        Err(SnapshotError::Io(_))
    ));
    // Damage that breaks the decoding is still reported as a checksum mismatch.
    let mut damaged = bytes.clone();
    let at = bytes.len() / 2;
    damaged[at..at + 8].copy_from_slice(&[0xff; 8]);
    assert_eq!(
        DataTree::from_snapshot(&damaged),
        Err(SnapshotError::Checksum)
    );
}

#[test]
fn a_snapshot_out_of_path_order_or_with_a_node_twice_is_refused() {
    // Well-formed and checksummed, but a child before its parent, or a node twice: the
    // decoder builds the tree as it reads, so it needs the order every snapshot is written in.
    let node = |w: &mut Writer, p: &str| {
        w.write_str(p);
        w.write_buffer(None);
        w.write_i32(0);
        for _ in 0..4 {
            w.write_i64(0);
        }
        for _ in 0..3 {
            w.write_i32(0);
        }
        w.write_i64(0);
        w.write_i64(0);
    };
    for paths in [
        &["/", "/x/y", "/x"][..],
        &["/", "/x", "/x"][..],
        &["/x", "/"][..],
    ] {
        let mut w = Writer::new();
        w.write_raw(&snapshot::SNAPSHOT_MAGIC.to_be_bytes());
        w.write_raw(&1u32.to_be_bytes());
        w.write_i64(0);
        w.write_i64(paths.len() as i64);
        for p in paths {
            node(&mut w, p);
        }
        let crc = crc32c::crc32c(w.as_slice());
        w.write_raw(&crc.to_be_bytes());
        assert!(
            matches!(
                DataTree::from_snapshot(w.as_slice()),
                Err(SnapshotError::Inconsistent(_))
            ),
            "{paths:?}"
        );
    }
}
