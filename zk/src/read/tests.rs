//! Read tests: results, error codes and ACL checks of every read, against the wire doc's
//! verified transcript.

use super::*;
use crate::auth::generate_digest;
use crate::proto::{
    Acl, GetAclRequest, GetAllChildrenNumberRequest, GetChildren2Request, GetChildrenRequest,
    GetDataRequest, GetEphemeralsRequest, ids,
};
use crate::testkit::*;
use bytes::Bytes;

fn probe() -> Sim {
    // §10 layout: /probe with children a, c, e (ephemeral), and w deleted.
    let mut s = Sim::new();
    s.open(1);
    s.open(2);
    s.created(1, &create("/probe", 0));
    s.write(1, &Request::Create(create_req("/probe/a", b"data-a", 0)));
    s.created(1, &create("/probe/c", 0));
    s.created(1, &create("/probe/e", 1));
    s.created(1, &create("/probe/a/x", 0));
    s
}

#[test]
fn get_data_returns_data_and_stat_or_no_node() {
    let mut s = probe();
    match s.read(2, &crate::testkit::get_data("/probe/a", false)) {
        Ok(Response::GetData(g)) => {
            assert_eq!(g.data, Some(Bytes::from_static(b"data-a")));
            assert_eq!(g.stat, s.stat("/probe/a"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.read(2, &crate::testkit::get_data("/missing", false)),
        Err(ErrorCode::NoNode),
        "verified -101"
    );
    // no path validation on reads: just NoNode
    assert_eq!(
        s.read(2, &crate::testkit::get_data("bad//path", false)),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn exists_answers_stat_no_node_or_bad_arguments() {
    let mut s = probe();
    let ex = |p: &str| {
        Request::Exists(crate::proto::ExistsRequest {
            path: p.into(),
            watch: true,
        })
    };
    assert!(matches!(s.read(2, &ex("/probe")), Ok(Response::Exists(_))));
    assert_eq!(s.read(2, &ex("/probe/w")), Err(ErrorCode::NoNode));
    assert_eq!(s.read(2, &ex("/a\0b")), Err(ErrorCode::BadArguments));
    // exists needs no permission
    s.write(
        1,
        &create_acl("/locked", vec![Acl::new(perms::WRITE, "world", "anyone")]),
    );
    assert!(s.read(2, &ex("/locked")).is_ok());
    // the NoNode exists still registered a watch, the BadArguments one did not.
    assert_eq!(
        s.watches
            .paths_of(SessionId(2))
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["/locked", "/probe", "/probe/w"]
    );
}

#[test]
fn children_are_names_sorted_and_children2_has_stat() {
    let mut s = probe();
    let r = s.read(
        2,
        &Request::GetChildren(GetChildrenRequest {
            path: "/probe".into(),
            watch: false,
        }),
    );
    assert_eq!(
        r,
        Ok(Response::GetChildren(GetChildrenResponse {
            children: vec!["a".into(), "c".into(), "e".into()]
        }))
    );
    match s.read(
        2,
        &Request::GetChildren2(GetChildren2Request {
            path: "/probe".into(),
            watch: false,
        }),
    ) {
        Ok(Response::GetChildren2(g)) => {
            assert_eq!(g.children.len(), 3);
            assert_eq!(g.stat.num_children, 3);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.read(
            2,
            &Request::GetChildren(GetChildrenRequest {
                path: "/nope".into(),
                watch: false
            })
        ),
        Err(ErrorCode::NoNode)
    );
}

#[test]
fn all_children_number_counts_descendants() {
    let mut s = probe();
    let n = |s: &mut Sim, p: &str| {
        s.read(
            2,
            &Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: p.into() }),
        )
    };
    // verified: getAllChildrenNumber -> 4 (a, c, e and a/x here).
    assert_eq!(
        n(&mut s, "/probe"),
        Ok(Response::GetAllChildrenNumber(
            GetAllChildrenNumberResponse { total_number: 4 }
        ))
    );
    assert_eq!(
        n(&mut s, "/"),
        Ok(Response::GetAllChildrenNumber(
            GetAllChildrenNumberResponse { total_number: 8 }
        ))
    );
    assert_eq!(n(&mut s, "/missing"), Err(ErrorCode::NoNode));
}

#[test]
fn ephemerals_are_the_sessions_own_with_prefix() {
    let mut s = probe();
    s.created(1, &create("/e2", 1));
    s.created(2, &create("/mine", 1));
    let get = |s: &mut Sim, session, prefix: Option<&str>| match s.read(
        session,
        &Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: prefix.map(str::to_owned),
        }),
    ) {
        Ok(Response::GetEphemerals(r)) => r.ephemerals,
        other => panic!("{other:?}"),
    };
    assert_eq!(get(&mut s, 1, None), vec!["/e2", "/probe/e"]);
    assert_eq!(get(&mut s, 1, Some("/")), vec!["/e2", "/probe/e"]);
    assert_eq!(get(&mut s, 1, Some("  ")), vec!["/e2", "/probe/e"]);
    assert_eq!(get(&mut s, 1, Some("/probe")), vec!["/probe/e"]);
    assert_eq!(get(&mut s, 1, Some("/pr")), vec!["/probe/e"]);
    assert_eq!(get(&mut s, 2, None), vec!["/mine"]);
    assert!(get(&mut s, 3, None).is_empty());
}

#[test]
fn get_acl_masks_digests_without_admin() {
    let mut s = probe();
    let digest = generate_digest("alice:secret");
    s.write(
        1,
        &create_acl(
            "/acl",
            vec![
                Acl::new(perms::ADMIN, "digest", &digest),
                Acl::new(perms::READ, "world", "anyone"),
            ],
        ),
    );
    let req = Request::GetAcl(GetAclRequest {
        path: "/acl".into(),
    });
    match s.read(2, &req) {
        Ok(Response::GetAcl(r)) => assert_eq!(
            r.acl,
            vec![
                Acl::new(perms::ADMIN, "digest", "alice:x"),
                Acl::new(perms::READ, "world", "anyone")
            ]
        ),
        other => panic!("{other:?}"),
    }
    let alice = [Id::new("digest", &digest)];
    match s.read_as(2, &alice, &req) {
        Ok(Response::GetAcl(r)) => {
            assert_eq!(
                r.acl.first(),
                Some(&Acl::new(perms::ADMIN, "digest", &digest))
            );
            assert_eq!(r.stat, s.stat("/acl"));
        }
        other => panic!("{other:?}"),
    }
    // verified: getACL of an open node → [(31, world, anyone)].
    assert_eq!(
        s.read(
            2,
            &Request::GetAcl(GetAclRequest {
                path: "/probe".into()
            })
        )
        .map(|r| match r {
            Response::GetAcl(r) => r.acl,
            _ => vec![],
        }),
        Ok(ids::open_acl_unsafe())
    );
    assert_eq!(
        s.read(2, &Request::GetAcl(GetAclRequest { path: "/x".into() })),
        Err(ErrorCode::NoNode)
    );
    s.write(
        1,
        &create_acl("/wo", vec![Acl::new(perms::WRITE, "world", "anyone")]),
    );
    assert_eq!(
        s.read(2, &Request::GetAcl(GetAclRequest { path: "/wo".into() })),
        Err(ErrorCode::NoAuth)
    );
}

#[test]
fn multi_read_is_per_op_verified_shape() {
    // §10: multiRead [getData, getChildren, getData(missing)] -> [data, children, error -101].
    let mut s = probe();
    let r = s.read(
        2,
        &Request::MultiRead(vec![
            MultiReadOp::GetData(GetDataRequest {
                path: "/probe/a".into(),
                watch: true,
            }),
            MultiReadOp::GetChildren(GetChildrenRequest {
                path: "/probe".into(),
                watch: true,
            }),
            MultiReadOp::GetData(GetDataRequest {
                path: "/missing".into(),
                watch: false,
            }),
        ]),
    );
    let Ok(Response::Multi(results)) = r else {
        panic!("{r:?}")
    };
    assert!(
        matches!(&results[0], MultiResult::GetData { data: Some(d), .. } if d.as_ref() == b"data-a")
    );
    assert_eq!(
        results[1],
        MultiResult::GetChildren {
            children: vec!["a".into(), "c".into(), "e".into()]
        }
    );
    assert_eq!(results[2], MultiResult::Error { err: -101 });
    assert_eq!(s.watches.watch_count(), 0, "multiRead ignores watch flags");
}

#[test]
fn non_reads_are_not_served() {
    let s = probe();
    assert!(serve(&s.tree, SessionId(1), &[], &Request::Ping).is_none());
    assert!(serve(&s.tree, SessionId(1), &[], &delete("/probe", -1)).is_none());
    assert!(serve(&s.tree, SessionId(1), &[], &Request::WhoAmI).is_none());
}

/// ZooKeeper 3.8 (verified): reads take the path as it is, and the empty path is the root.
#[test]
fn the_empty_path_reads_the_root() {
    let tree = DataTree::new();
    let root = exists(&tree, "/").expect("root");
    assert_eq!(exists(&tree, ""), Ok(root));
    assert_eq!(
        get_children(&tree, "", &[]).expect("children"),
        get_children(&tree, "/", &[]).expect("children")
    );
    assert_eq!(exists(&tree, "/zookeeper/"), Err(ErrorCode::NoNode));
    let count = |p: &str| {
        let req = Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: p.into() });
        match serve(&tree, SessionId(1), &[], &req).map(|o| o.result) {
            Some(Ok(Response::GetAllChildrenNumber(n))) => n.total_number,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(count("/"), 3);
    assert_eq!(count(""), 4, "the root itself is counted");
}
