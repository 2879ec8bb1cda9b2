//! Preparation tests: error codes and their order per operation (against the wire doc and
//! the codes verified on ZooKeeper 3.8), the speculative view of pipelined requests, multi
//! all-or-nothing with ZooKeeper's per-op results, sessions, ACL fix-up.

use super::*;
use crate::auth::generate_digest;
use crate::proto::{
    Acl, CheckVersionRequest, CreateRequest, MultiResult, ReconfigRequest, Response, SetAclRequest,
    ids,
};
use crate::testkit::*;

fn sim() -> Sim {
    let mut s = Sim::new();
    s.open(1);
    s
}

fn multi(s: &mut Sim, ops: Vec<MultiOp>) -> Vec<MultiResult> {
    match s.write(1, &Request::Multi(ops)) {
        (ErrorCode::Ok, Some(Response::Multi(r))) => r,
        other => panic!("multi replies err 0 with results: {other:?}"),
    }
}

#[test]
fn create_error_codes_verified_on_zookeeper() {
    let mut s = sim();
    s.created(1, &create("/probe", 0));
    assert_eq!(s.code(1, &create("/probe", 0)), ErrorCode::NodeExists);
    assert_eq!(s.code(1, &create("/nope/x", 0)), ErrorCode::NoNode);
    assert_eq!(
        s.code(1, &create_acl("/probe/x", vec![])),
        ErrorCode::InvalidAcl
    );
    assert_eq!(s.code(1, &create("probe", 0)), ErrorCode::BadArguments);
    assert_eq!(
        s.code(1, &create("/nope/", 0)),
        ErrorCode::NoNode,
        "trailing / under a missing parent"
    );
    assert_eq!(
        s.code(1, &create("/probe/", 0)),
        ErrorCode::BadArguments,
        "validatePath"
    );
    assert_eq!(
        s.code(1, &create("/probe/x", 7)),
        ErrorCode::BadArguments,
        "flags 7"
    );
    assert_eq!(
        s.code(1, &create_ttl("/probe/t", 5, 10)),
        ErrorCode::Unimplemented
    );
    s.created(1, &create("/probe/e", 1));
    assert_eq!(
        s.code(1, &create("/probe/e/c", 0)),
        ErrorCode::NoChildrenForEphemerals
    );
    assert_eq!(
        s.code(1, &create("/probe/a\0b", 0)),
        ErrorCode::BadArguments
    );
    assert_eq!(s.code(1, &create("/probe/.", 0)), ErrorCode::BadArguments);
    assert_eq!(s.code(1, &create("//x", 0)), ErrorCode::BadArguments);
    assert_eq!(s.code(1, &create("/", 0)), ErrorCode::NodeExists);
    // Sequential creates validate after the suffix: "/probe/" + seq is fine.
    assert!(
        s.created(1, &create("/probe/", 2))
            .starts_with("/probe/00000000")
    );
}

#[test]
fn create_checks_happen_in_zookeepers_order() {
    let mut s = sim();
    // flags before session: an unknown session with bad flags gets BadArguments.
    assert_eq!(s.code(99, &create("/x", 7)), ErrorCode::BadArguments);
    assert_eq!(
        s.code(99, &create_ttl("/x", 5, 1)),
        ErrorCode::Unimplemented
    );
    // session before path.
    assert_eq!(s.code(99, &create("x", 0)), ErrorCode::SessionExpired);
    // path shape before ACL.
    assert_eq!(s.code(1, &create_acl("x", vec![])), ErrorCode::BadArguments);
    // ACL before parent.
    assert_eq!(
        s.code(1, &create_acl("/nope/x", vec![])),
        ErrorCode::InvalidAcl
    );
    // parent before CREATE permission, permission before existence.
    s.write(1, &create_acl("/ro", ids::read_acl_unsafe()));
    s.created(1, &create("/rw", 0));
    assert_eq!(s.code(1, &create("/ro/x", 0)), ErrorCode::NoAuth);
    assert_eq!(
        s.code(1, &create("/ro", 0)),
        ErrorCode::NodeExists,
        "root allows CREATE"
    );
    // existence before the ephemeral-parent check.
    s.created(1, &create("/rw/e", 1));
    assert_eq!(s.code(1, &create("/rw/e", 0)), ErrorCode::NodeExists);
    // validatePath (after the suffix) before existence.
    assert_eq!(s.code(1, &create("/rw/e/.", 0)), ErrorCode::BadArguments);
}

#[test]
fn session_checks() {
    let mut s = sim();
    s.created(1, &create("/a", 0));
    for req in [
        create("/b", 0),
        delete("/a", -1),
        set_data("/a", b"", -1),
        Request::Check(CheckVersionRequest {
            path: "/a".into(),
            version: -1,
        }),
    ] {
        assert_eq!(s.code(42, &req), ErrorCode::SessionExpired, "{req:?}");
    }
    // session moved: the server's owner check.
    let z = s.next_zxid();
    let ctx = PrepContext {
        session: SessionId(1),
        cxid: 3,
        time: 0,
        auth: &[],
        session_moved: true,
    };
    let t = s.prep.prep(&s.tree, &ctx, z, &create("/m", 0));
    assert_eq!(
        t.map(|t| t.body),
        Some(TxnBody::Error(ErrorCode::SessionMoved))
    );
}

#[test]
fn every_failed_write_is_an_error_txn_with_its_own_zxid() {
    let mut s = sim();
    let (t, _) = s.submit(1, &ip_auth(), &create("/nope/x", 0));
    assert_eq!(t.body, TxnBody::Error(ErrorCode::NoNode));
    assert_eq!(t.header.session, SessionId(1));
    let (t, _) = s.submit(
        1,
        &ip_auth(),
        &Request::Reconfig(ReconfigRequest::default()),
    );
    assert_eq!(t.body, TxnBody::Error(ErrorCode::ReconfigDisabled));
    let ctx = PrepContext {
        session: SessionId(1),
        cxid: 9,
        time: 0,
        auth: &[],
        session_moved: false,
    };
    assert_eq!(
        Preparer::error_txn(&ctx, ErrorCode::MarshallingError).body,
        TxnBody::Error(ErrorCode::MarshallingError)
    );
    // Reads are not prepared.
    let z = s.next_zxid();
    assert!(
        s.prep
            .prep(&s.tree, &ctx, z, &get_data("/", false))
            .is_none()
    );
    assert!(s.prep.prep(&s.tree, &ctx, z, &Request::Ping).is_none());
}

#[test]
fn delete_error_codes() {
    let mut s = sim();
    s.created(1, &create("/d", 0));
    s.created(1, &create("/d/c", 0));
    assert_eq!(s.code(1, &delete("/missing", -1)), ErrorCode::NoNode);
    assert_eq!(s.code(1, &delete("/missing/x", -1)), ErrorCode::NoNode);
    assert_eq!(
        s.code(1, &delete("/d", -1)),
        ErrorCode::NotEmpty,
        "verified -111"
    );
    assert_eq!(s.code(1, &delete("/d/c", 5)), ErrorCode::BadVersion);
    // version before children
    assert_eq!(s.code(1, &delete("/d", 5)), ErrorCode::BadVersion);
    for special in ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"] {
        assert_eq!(
            s.code(1, &delete(special, -1)),
            ErrorCode::BadArguments,
            "{special}"
        );
    }
    assert_eq!(s.code(1, &delete("rel", -1)), ErrorCode::BadArguments);
    assert_eq!(s.code(1, &delete("/d\0", -1)), ErrorCode::BadArguments);
    // DELETE permission is on the parent.
    s.write(
        1,
        &create_acl(
            "/nodel",
            vec![Acl::new(perms::ALL & !perms::DELETE, "world", "anyone")],
        ),
    );
    s.created(1, &create("/nodel/x", 0));
    assert_eq!(s.code(1, &delete("/nodel/x", -1)), ErrorCode::NoAuth);
    assert_eq!(
        s.code(1, &delete("/nodel/missing", -1)),
        ErrorCode::NoAuth,
        "ACL before node"
    );
    assert_eq!(s.code(1, &delete("/d/c", 0)), ErrorCode::Ok);
    assert_eq!(s.code(1, &delete("/d", -1)), ErrorCode::Ok);
}

#[test]
fn set_data_and_check_error_codes() {
    let mut s = sim();
    s.created(1, &create("/s", 0));
    assert_eq!(s.code(1, &set_data("/missing", b"", -1)), ErrorCode::NoNode);
    assert_eq!(
        s.code(1, &set_data("/s", b"", 3)),
        ErrorCode::BadVersion,
        "verified -103"
    );
    assert_eq!(s.code(1, &set_data("s", b"", -1)), ErrorCode::BadArguments);
    assert_eq!(
        s.code(1, &set_data("/s/", b"", -1)),
        ErrorCode::BadArguments
    );
    assert_eq!(s.code(1, &set_data("/s", b"", 0)), ErrorCode::Ok);
    assert_eq!(
        s.code(1, &set_data("/zookeeper/config", b"", -1)),
        ErrorCode::NoAuth
    );
    let check = |path: &str, version| {
        Request::Check(CheckVersionRequest {
            path: path.into(),
            version,
        })
    };
    assert_eq!(s.write(1, &check("/s", 1)), (ErrorCode::Ok, None));
    assert_eq!(s.code(1, &check("/s", 0)), ErrorCode::BadVersion);
    assert_eq!(s.code(1, &check("/missing", -1)), ErrorCode::NoNode);
    let (t, _) = s.submit(1, &ip_auth(), &check("/s", -1));
    assert_eq!(
        t.body,
        TxnBody::Check {
            path: "/s".into(),
            version: 2
        },
        "CheckVersionTxn carries version + 1"
    );
}

#[test]
fn versions_wrap_like_java_ints() {
    assert_eq!(check_and_inc_version(i32::MAX, -1), Ok(i32::MIN));
    assert_eq!(check_and_inc_version(3, 3), Ok(4));
    assert_eq!(check_and_inc_version(3, 2), Err(ErrorCode::BadVersion));
    // The config node's version -1 matches only "any".
    assert_eq!(check_and_inc_version(-1, -1), Ok(0));
}

#[test]
fn set_acl_error_codes() {
    let mut s = sim();
    s.created(1, &create("/a", 0));
    let set = |acl: Vec<Acl>, version| {
        Request::SetAcl(SetAclRequest {
            path: "/a".into(),
            acl,
            version,
        })
    };
    assert_eq!(s.code(1, &set(vec![], -1)), ErrorCode::InvalidAcl);
    assert_eq!(
        s.code(1, &set(ids::creator_all_acl(), -1)),
        ErrorCode::InvalidAcl
    );
    assert_eq!(
        s.code(1, &set(ids::open_acl_unsafe(), 4)),
        ErrorCode::BadVersion
    );
    assert_eq!(
        s.code(
            1,
            &Request::SetAcl(SetAclRequest {
                path: "/zz".into(),
                acl: ids::open_acl_unsafe(),
                version: -1
            })
        ),
        ErrorCode::NoNode
    );
    // INVALIDACL before NoNode.
    assert_eq!(
        s.code(
            1,
            &Request::SetAcl(SetAclRequest {
                path: "/zz".into(),
                acl: vec![],
                version: -1
            })
        ),
        ErrorCode::InvalidAcl
    );
    assert_eq!(s.code(1, &set(ids::open_acl_unsafe(), 0)), ErrorCode::Ok);
    assert_eq!(s.stat("/a").aversion, 1);
}

#[test]
fn auth_acl_is_expanded_and_enforced() {
    // §10: create with ACL auth:'' → stored digest alice; another session gets -102.
    let mut s = sim();
    s.open(2);
    let alice = vec![
        Id::new("ip", IP),
        Id::new("digest", &generate_digest("alice:secret")),
    ];
    let (code, _) = s.write_as(1, &alice, &create_acl("/secret", ids::creator_all_acl()));
    assert_eq!(code, ErrorCode::Ok);
    assert_eq!(
        s.tree.get("/secret").map(|n| n.acl.as_ref().clone()),
        Some(vec![Acl::new(
            31,
            "digest",
            "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
        )])
    );
    assert_eq!(
        s.read(2, &get_data("/secret", false)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(
        s.read(
            2,
            &Request::GetAcl(crate::proto::GetAclRequest {
                path: "/secret".into()
            })
        ),
        Err(ErrorCode::NoAuth)
    );
    assert!(s.read_as(2, &alice, &get_data("/secret", false)).is_ok());
    assert_eq!(s.code(2, &set_data("/secret", b"x", -1)), ErrorCode::NoAuth);
    assert_eq!(
        s.write_as(2, &alice, &set_data("/secret", b"x", -1)).0,
        ErrorCode::Ok
    );
    // The super user passes every check.
    let sup = vec![
        Id::new("super", ""),
        Id::new("digest", &generate_digest("super:pw")),
    ];
    assert_eq!(s.write_as(2, &sup, &delete("/secret", -1)).0, ErrorCode::Ok);
    // auth without any authenticated id: INVALIDACL.
    assert_eq!(
        s.code(1, &create_acl("/x", ids::creator_all_acl())),
        ErrorCode::InvalidAcl
    );
}

#[test]
fn pipelined_requests_see_outstanding_changes() {
    let mut s = sim();
    let a = ip_auth();
    let (t1, z1) = s.submit(1, &a, &create("/p", 0));
    let (t2, z2) = s.submit(1, &a, &create("/p/c", 0));
    let (t3, z3) = s.submit(1, &a, &create("/p", 0));
    let (t4, z4) = s.submit(1, &a, &create("/p/s-", 2));
    let (t5, z5) = s.submit(1, &a, &create("/p/s-", 2));
    let (t6, z6) = s.submit(1, &a, &set_data("/p", b"1", 0));
    let (t7, z7) = s.submit(1, &a, &set_data("/p", b"2", 1));
    let (t8, z8) = s.submit(1, &a, &delete("/p/c", -1));
    let (t9, z9) = s.submit(1, &a, &create("/p/c", 0));
    let (t10, z10) = s.submit(1, &a, &delete("/p", -1));
    assert!(
        matches!(t2.body, TxnBody::Create(_)),
        "parent is outstanding"
    );
    assert_eq!(t3.body, TxnBody::Error(ErrorCode::NodeExists));
    let seq = |t: &Txn| match &t.body {
        TxnBody::Create(c) => c.path.clone(),
        b => panic!("{b}"),
    };
    assert_eq!(seq(&t4), "/p/s-0000000001");
    assert_eq!(seq(&t5), "/p/s-0000000002");
    assert!(matches!(t7.body, TxnBody::SetData { version: 2, .. }));
    assert!(matches!(t8.body, TxnBody::Delete { .. }));
    assert!(
        matches!(t9.body, TxnBody::Create(_)),
        "re-create after outstanding delete"
    );
    assert_eq!(t10.body, TxnBody::Error(ErrorCode::NotEmpty));
    assert!(s.prep.outstanding() > 0);
    for (t, z) in [
        (t1, z1),
        (t2, z2),
        (t3, z3),
        (t4, z4),
        (t5, z5),
        (t6, z6),
        (t7, z7),
        (t8, z8),
        (t9, z9),
        (t10, z10),
    ] {
        s.commit(&t, z);
    }
    assert_eq!(s.prep.outstanding(), 0, "committed() drops covered changes");
    assert_eq!(s.stat("/p").version, 2);
    assert_eq!(s.stat("/p").num_children, 3);
    // stored cversion: c, s-1, s-2, c = 4; 3 children → 5.
    assert_eq!(s.stat("/p").cversion, 5);
}

#[test]
fn failed_multi_results_and_rollback_verified_shape() {
    let mut s = sim();
    s.created(1, &create("/m", 0));
    let before = s.tree.clone();
    // §10: multi [create, check(v99), create] → [(-1,0), (-1,-103), (-1,-2)], header err 0.
    let r = multi(
        &mut s,
        vec![m_create("/m/a", 0), m_check("/m", 99), m_create("/m/b", 0)],
    );
    assert_eq!(
        r,
        vec![
            MultiResult::Error { err: 0 },
            MultiResult::Error { err: -103 },
            MultiResult::Error { err: -2 }
        ]
    );
    assert_eq!(s.tree, before, "a failed multi leaves the tree unchanged");
    // The rolled-back create is not outstanding: a pipelined create of /m/a succeeds.
    let (t1, _) = s.submit(
        1,
        &ip_auth(),
        &Request::Multi(vec![m_create("/m/a", 0), m_check("/m", 5)]),
    );
    let (t2, _) = s.submit(1, &ip_auth(), &create("/m/a", 0));
    assert!(
        matches!(t1.body, TxnBody::Multi(ref v) if v.iter().all(|b| matches!(b, TxnBody::Error(_))))
    );
    assert!(matches!(t2.body, TxnBody::Create(_)));
}

#[test]
fn successful_multi_results_verified_shape() {
    // §10: multi [create, create2, setData, check, delete] → [create path, create path,
    // setData stat, check, delete]; a multi's create2 is answered as a create.
    let mut s = sim();
    s.created(1, &create("/m", 0));
    let ops = vec![
        m_create("/m/a", 0),
        MultiOp::Create {
            op: op::CREATE2,
            req: create_req("/m/b", b"", 0),
        },
        MultiOp::SetData(crate::proto::SetDataRequest {
            path: "/m/a".into(),
            data: Some(Bytes::from_static(b"x")),
            version: 0,
        }),
        m_check("/m/a", 1),
        MultiOp::Delete(crate::proto::DeleteRequest {
            path: "/m/b".into(),
            version: 0,
        }),
    ];
    let r = multi(&mut s, ops);
    assert_eq!(r.len(), 5);
    assert_eq!(
        r[0],
        MultiResult::Create {
            path: "/m/a".into()
        }
    );
    assert_eq!(
        r[1],
        MultiResult::Create {
            path: "/m/b".into()
        }
    );
    let MultiResult::SetData { stat } = &r[2] else {
        panic!("{:?}", r[2])
    };
    assert_eq!(stat.version, 1);
    assert_eq!(r[3], MultiResult::Check);
    assert_eq!(r[4], MultiResult::Delete);
    // One zxid for the whole multi.
    let z = Zxid::new(1, s.counter).to_u64() as i64;
    assert_eq!(s.stat("/m/a").czxid, z);
    assert_eq!(s.stat("/m/a").mzxid, z);
    assert_eq!(s.stat("/m").pzxid, z);
}

#[test]
fn multi_ops_see_earlier_ops_and_containers_answer_create2() {
    let mut s = sim();
    let r = multi(
        &mut s,
        vec![
            m_create("/x", 0),
            m_create("/x/y", 0),
            m_create("/x/s-", 2),
            m_create("/x/s-", 2),
            m_create("/cont", 4),
        ],
    );
    assert_eq!(
        r[2],
        MultiResult::Create {
            path: "/x/s-0000000001".into()
        }
    );
    assert_eq!(
        r[3],
        MultiResult::Create {
            path: "/x/s-0000000002".into()
        }
    );
    assert!(matches!(&r[4], MultiResult::Create2 { path, .. } if path == "/cont"));
    assert!(s.tree.containers().contains("/cont"));
    // A failure late in the multi undoes everything, including the sequential counter.
    let r = multi(&mut s, vec![m_create("/x/s-", 2), m_create("/x/y", 0)]);
    assert_eq!(
        r,
        vec![
            MultiResult::Error { err: 0 },
            MultiResult::Error { err: -110 }
        ]
    );
    assert_eq!(s.created(1, &create("/x/s-", 2)), "/x/s-0000000003");
    // An empty multi is fine.
    assert_eq!(multi(&mut s, vec![]), vec![]);
}

#[test]
fn close_session_lists_committed_and_outstanding_ephemerals() {
    let mut s = sim();
    s.created(1, &create("/e1", 1));
    s.created(1, &create("/e2", 1));
    let a = ip_auth();
    let (t1, z1) = s.submit(1, &a, &create("/e3", 1));
    let (t2, z2) = s.submit(1, &a, &delete("/e2", -1));
    let (t3, z3) = s.submit(1, &a, &Request::CloseSession);
    assert_eq!(
        t3.body,
        TxnBody::CloseSession {
            ephemerals: vec!["/e1".into(), "/e3".into()]
        }
    );
    // After the close is prepared, the session is expired for later requests.
    let (t4, z4) = s.submit(1, &a, &create("/late", 0));
    assert_eq!(t4.body, TxnBody::Error(ErrorCode::SessionExpired));
    // ...and the closed ephemerals are gone from the speculative view.
    let (t5, z5) = s.submit(0, &[], &Request::DeleteContainer { path: "/e1".into() });
    assert_eq!(t5.body, TxnBody::Error(ErrorCode::NoNode));
    for (t, z) in [(t1, z1), (t2, z2), (t3, z3), (t4, z4), (t5, z5)] {
        s.commit(&t, z);
    }
    assert_eq!(s.tree.ephemeral_count(), 0);
    assert_eq!(s.prep.outstanding(), 0);
    assert!(!s.prep.session_open(&s.tree, SessionId(1)));
}

#[test]
fn delete_container_checks() {
    let mut s = sim();
    s.write(1, &Request::CreateContainer(create_req("/c", b"", 4)));
    s.created(1, &create("/c/k", 0));
    s.created(1, &create("/e", 1));
    let dc = |p: &str| Request::DeleteContainer { path: p.into() };
    assert_eq!(s.write_as(0, &[], &dc("/c")).0, ErrorCode::NotEmpty);
    assert_eq!(s.write_as(0, &[], &dc("/e")).0, ErrorCode::BadVersion);
    assert_eq!(s.write_as(0, &[], &dc("/gone")).0, ErrorCode::NoNode);
    assert_eq!(
        s.write_as(0, &[], &dc("/zookeeper")).0,
        ErrorCode::BadArguments
    );
    // A client-sent deleteContainer carries a jute DeleteRequest, read as a raw path with
    // NUL bytes: BadArguments, as in ZooKeeper.
    let raw = crate::jute::Record::to_bytes(&crate::proto::DeleteRequest {
        path: "/c".into(),
        version: -1,
    });
    let req = Request::decode(op::DELETE_CONTAINER, &raw, 0xfffff);
    assert!(req.is_ok());
    if let Ok(req) = req {
        assert_eq!(s.code(1, &req), ErrorCode::BadArguments);
    }
}

#[test]
fn create_session_is_speculative_until_committed() {
    let mut s = Sim::new();
    let z = s.next_zxid();
    let t = s.prep.create_session(SessionId(5), (4000, [1; 16]), 1, z);
    assert_eq!(
        t.body,
        TxnBody::CreateSession {
            timeout: 4000,
            passwd: Some([1; 16])
        }
    );
    assert!(s.prep.session_open(&s.tree, SessionId(5)));
    assert!(!s.tree.session_open(SessionId(5)));
    // A pipelined create of the new session is accepted before the commit.
    let (c, zc) = s.submit(5, &ip_auth(), &create("/e", 1));
    assert!(matches!(c.body, TxnBody::Create(_)));
    s.commit(&t, z);
    s.commit(&c, zc);
    assert_eq!(s.tree.sessions().get(&SessionId(5)), Some(&4000));
    assert_eq!(s.tree.ephemerals(SessionId(5)), vec!["/e".to_owned()]);
    s.prep.reset();
    assert_eq!(s.prep.outstanding(), 0);
}

#[test]
fn create_kinds_by_opcode_and_flags() {
    let mut s = Sim::with_config(PrepConfig { ttl_enabled: true });
    s.open(1);
    let kind = |s: &mut Sim, req: &Request| {
        let (t, _) = s.submit(1, &ip_auth(), req);
        match t.body {
            TxnBody::Create(c) => Ok((c.kind, c.with_stat, c.sequential)),
            TxnBody::Error(e) => Err(e),
            b => panic!("{b}"),
        }
    };
    assert_eq!(
        kind(&mut s, &create("/a", 0)),
        Ok((NodeKind::Persistent, false, false))
    );
    assert_eq!(
        kind(&mut s, &create2("/b", 1)),
        Ok((NodeKind::Ephemeral(SessionId(1)), true, false))
    );
    assert_eq!(
        kind(&mut s, &Request::CreateContainer(create_req("/c", b"", 2))),
        Ok((NodeKind::Container, true, true))
    );
    assert_eq!(
        kind(&mut s, &Request::CreateContainer(create_req("/d", b"", 5))),
        Err(ErrorCode::BadArguments),
        "TTL flags without a TTL"
    );
    assert_eq!(
        kind(&mut s, &create_ttl("/e", 6, 10)),
        Ok((NodeKind::Ttl(10), true, true))
    );
    assert_eq!(
        kind(&mut s, &create_ttl("/f", 1, -1)),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        kind(&mut s, &create_ttl("/g", 0, 5)),
        Err(ErrorCode::BadArguments)
    );
    assert_eq!(
        kind(
            &mut s,
            &Request::Create(CreateRequest {
                flags: 2,
                ..create_req("/b-", b"", 0)
            })
        ),
        Ok((NodeKind::Persistent, false, true))
    );
}

#[test]
fn multi_ttl_and_expired_session() {
    let mut s = Sim::with_config(PrepConfig { ttl_enabled: true });
    s.open(1);
    let ttl = MultiOp::CreateTtl(crate::proto::CreateTtlRequest {
        path: "/t".into(),
        data: None,
        acl: ids::open_acl_unsafe(),
        flags: 5,
        ttl: 60_000,
    });
    let r = multi(&mut s, vec![ttl.clone(), m_create("/p", 0)]);
    assert!(matches!(&r[0], MultiResult::Create2 { path, .. } if path == "/t"));
    assert_eq!(r[1], MultiResult::Create { path: "/p".into() });
    assert_eq!(
        s.tree.get("/t").map(Node::kind),
        Some(NodeKind::Ttl(60_000))
    );
    // TTL flags in a plain create op of a multi: ZooKeeper 3.8 fails the whole request with
    // -5 once it reaches that op (verified by the differential test)...
    let (code, resp) = s.write(
        1,
        &Request::Multi(vec![m_create("/q", 0), m_create("/u", 5)]),
    );
    assert_eq!((code, resp), (ErrorCode::MarshallingError, None));
    assert!(s.tree.get("/q").is_none(), "nothing of it applies");
    // ...but not when an earlier op failed (the later ops are not prepared).
    let r = multi(&mut s, vec![m_create("/no/q", 0), m_create("/u", 5)]);
    assert_eq!(
        r,
        vec![
            MultiResult::Error { err: -101 },
            MultiResult::Error { err: -2 }
        ]
    );
    // An unknown session fails on the first op.
    let (code, resp) = s.write(77, &Request::Multi(vec![m_create("/x", 0), ttl]));
    assert_eq!(code, ErrorCode::Ok);
    assert_eq!(
        resp,
        Some(Response::Multi(vec![
            MultiResult::Error { err: -112 },
            MultiResult::Error { err: -2 }
        ]))
    );
}

/// ZooKeeper 3.8 (verified by the differential test): a createTTL op of a multi with non-TTL
/// flags is a plain create (its TTL is dropped), not BadArguments.
#[test]
fn a_multi_create_ttl_op_with_plain_flags_is_a_plain_create() {
    let mut s = Sim::with_config(PrepConfig { ttl_enabled: true });
    s.open(1);
    let op = |path: &str, flags| {
        MultiOp::CreateTtl(crate::proto::CreateTtlRequest {
            path: path.into(),
            data: None,
            acl: ids::open_acl_unsafe(),
            flags,
            ttl: 1000,
        })
    };
    let r = multi(&mut s, vec![op("/p", 0), op("/c", 4)]);
    assert_eq!(r[0], MultiResult::Create { path: "/p".into() });
    assert!(matches!(&r[1], MultiResult::Create2 { path, .. } if path == "/c"));
    assert_eq!(s.tree.get("/p").map(Node::kind), Some(NodeKind::Persistent));
    assert_eq!(s.tree.get("/c").map(Node::kind), Some(NodeKind::Container));
}
