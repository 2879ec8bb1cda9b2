//! Property tests through the public API: every request, response and connect record
//! round-trips through its frame encoding; transactions round-trip through their log
//! encoding; decoding arbitrary bytes never panics; random request sequences prepared
//! pipelined give the same transactions and tree as prepared one by one, keep the tree's
//! structural invariants, and snapshot faithfully.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use zab_spec::{ErrorCode, SessionId, Zxid};
use zab_zk::jute::{DEFAULT_MAX_BUFFER, Record};
use zab_zk::proto::*;
use zab_zk::tree::{DataTree, split_path};
use zab_zk::txn::{CreateTxn, NodeKind, Txn, TxnBody, TxnHeader};
use zab_zk::{PrepConfig, PrepContext, Preparer, WatchManager};

fn s() -> impl Strategy<Value = String> + Clone {
    prop_oneof![
        "[a-z/]{0,12}",
        "\\PC{0,6}",
        Just("/zookeeper/config".to_owned())
    ]
}

fn data() -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from))
}

fn bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(s(), 0..4)
}

fn acl() -> impl Strategy<Value = Vec<Acl>> {
    prop::collection::vec(
        (any::<i32>(), s(), s()).prop_map(|(perms, scheme, id)| Acl {
            perms,
            id: Id { scheme, id },
        }),
        0..3,
    )
}

fn stat() -> impl Strategy<Value = Stat> {
    (
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<i32>(), any::<i32>(), any::<i32>()),
        (any::<i64>(), any::<i32>(), any::<i32>(), any::<i64>()),
    )
        .prop_map(|((a, b, c, d), (e, f, g), (h, i, j, k))| Stat {
            czxid: a,
            mzxid: b,
            ctime: c,
            mtime: d,
            version: e,
            cversion: f,
            aversion: g,
            ephemeral_owner: h,
            data_length: i,
            num_children: j,
            pzxid: k,
        })
}

fn create_req() -> impl Strategy<Value = CreateRequest> {
    (s(), data(), acl(), any::<i32>()).prop_map(|(path, data, acl, flags)| CreateRequest {
        path,
        data,
        acl,
        flags,
    })
}

fn create_ttl_req() -> impl Strategy<Value = CreateTtlRequest> {
    (create_req(), any::<i64>()).prop_map(|(c, ttl)| CreateTtlRequest {
        path: c.path,
        data: c.data,
        acl: c.acl,
        flags: c.flags,
        ttl,
    })
}

fn multi_op() -> impl Strategy<Value = MultiOp> {
    prop_oneof![
        (
            prop::sample::select(vec![op::CREATE, op::CREATE2, op::CREATE_CONTAINER]),
            create_req()
        )
            .prop_map(|(op, req)| MultiOp::Create { op, req }),
        create_ttl_req().prop_map(MultiOp::CreateTtl),
        (s(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Delete(DeleteRequest { path, version })),
        (s(), data(), any::<i32>()).prop_map(|(path, data, version)| MultiOp::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        (s(), any::<i32>())
            .prop_map(|(path, version)| MultiOp::Check(CheckVersionRequest { path, version })),
    ]
}

fn multi_read_op() -> impl Strategy<Value = MultiReadOp> {
    prop_oneof![
        (s(), any::<bool>())
            .prop_map(|(path, watch)| MultiReadOp::GetChildren(GetChildrenRequest { path, watch })),
        (s(), any::<bool>())
            .prop_map(|(path, watch)| MultiReadOp::GetData(GetDataRequest { path, watch })),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    let path_watch = || (s(), any::<bool>());
    prop_oneof![
        create_req().prop_map(Request::Create),
        create_req().prop_map(Request::Create2),
        create_req().prop_map(Request::CreateContainer),
        create_ttl_req().prop_map(Request::CreateTtl),
        (s(), any::<i32>())
            .prop_map(|(path, version)| Request::Delete(DeleteRequest { path, version })),
        s().prop_map(|path| Request::DeleteContainer { path }),
        path_watch().prop_map(|(path, watch)| Request::Exists(ExistsRequest { path, watch })),
        path_watch().prop_map(|(path, watch)| Request::GetData(GetDataRequest { path, watch })),
        (s(), data(), any::<i32>()).prop_map(|(path, data, version)| Request::SetData(
            SetDataRequest {
                path,
                data,
                version
            }
        )),
        s().prop_map(|path| Request::GetAcl(GetAclRequest { path })),
        (s(), acl(), any::<i32>())
            .prop_map(|(path, acl, version)| Request::SetAcl(SetAclRequest { path, acl, version })),
        path_watch()
            .prop_map(|(path, watch)| Request::GetChildren(GetChildrenRequest { path, watch })),
        path_watch()
            .prop_map(|(path, watch)| Request::GetChildren2(GetChildren2Request { path, watch })),
        s().prop_map(|path| Request::Sync(SyncRequest { path })),
        Just(Request::Ping),
        (s(), any::<i32>())
            .prop_map(|(path, version)| Request::Check(CheckVersionRequest { path, version })),
        prop::collection::vec(multi_op(), 0..4).prop_map(Request::Multi),
        prop::collection::vec(multi_read_op(), 0..4).prop_map(Request::MultiRead),
        (
            prop::option::of(s()),
            prop::option::of(s()),
            prop::option::of(s()),
            any::<i64>()
        )
            .prop_map(|(a, b, c, d)| Request::Reconfig(ReconfigRequest {
                joining_servers: a,
                leaving_servers: b,
                new_members: c,
                cur_config_id: d
            })),
        (s(), any::<i32>()).prop_map(|(path, watcher_type)| Request::CheckWatches(
            CheckWatchesRequest { path, watcher_type }
        )),
        (s(), any::<i32>()).prop_map(|(path, watcher_type)| Request::RemoveWatches(
            RemoveWatchesRequest { path, watcher_type }
        )),
        (any::<i32>(), s(), bytes()).prop_map(|(auth_type, scheme, auth)| Request::Auth(
            AuthPacket {
                auth_type,
                scheme,
                auth
            }
        )),
        (any::<i64>(), strings(), strings(), strings()).prop_map(|(z, d, e, c)| {
            Request::SetWatches(SetWatches {
                relative_zxid: z,
                data_watches: d,
                exist_watches: e,
                child_watches: c,
            })
        }),
        (
            any::<i64>(),
            strings(),
            strings(),
            strings(),
            strings(),
            strings()
        )
            .prop_map(|(z, d, e, c, p, r)| Request::SetWatches2(SetWatches2 {
                relative_zxid: z,
                data_watches: d,
                exist_watches: e,
                child_watches: c,
                persistent_watches: p,
                persistent_recursive_watches: r
            })),
        bytes().prop_map(|token| Request::Sasl(GetSaslRequest { token })),
        prop::option::of(s())
            .prop_map(|prefix_path| Request::GetEphemerals(GetEphemeralsRequest { prefix_path })),
        s().prop_map(|path| Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path })),
        (s(), any::<i32>())
            .prop_map(|(path, mode)| Request::AddWatch(AddWatchRequest { path, mode })),
        Just(Request::WhoAmI),
        Just(Request::CloseSession),
    ]
}

fn multi_result() -> impl Strategy<Value = MultiResult> {
    prop_oneof![
        s().prop_map(|path| MultiResult::Create { path }),
        (s(), stat()).prop_map(|(path, stat)| MultiResult::Create2 { path, stat }),
        Just(MultiResult::Delete),
        stat().prop_map(|stat| MultiResult::SetData { stat }),
        Just(MultiResult::Check),
        strings().prop_map(|children| MultiResult::GetChildren { children }),
        (data(), stat()).prop_map(|(data, stat)| MultiResult::GetData { data, stat }),
        any::<i32>().prop_map(|err| MultiResult::Error { err }),
    ]
}

/// A response and the opcode of the request it answers.
fn response() -> impl Strategy<Value = (i32, Response)> {
    prop_oneof![
        s().prop_map(|path| (op::CREATE, Response::Create(CreateResponse { path }))),
        (s(), stat()).prop_map(|(path, stat)| (
            op::CREATE2,
            Response::Create2(Create2Response { path, stat })
        )),
        stat().prop_map(|stat| (op::EXISTS, Response::Exists(ExistsResponse { stat }))),
        (data(), stat()).prop_map(|(data, stat)| (
            op::GET_DATA,
            Response::GetData(GetDataResponse { data, stat })
        )),
        stat().prop_map(|stat| (op::SET_DATA, Response::SetData(SetDataResponse { stat }))),
        (acl(), stat())
            .prop_map(|(acl, stat)| (op::GET_ACL, Response::GetAcl(GetAclResponse { acl, stat }))),
        stat().prop_map(|stat| (op::SET_ACL, Response::SetAcl(SetAclResponse { stat }))),
        strings().prop_map(|children| (
            op::GET_CHILDREN,
            Response::GetChildren(GetChildrenResponse { children })
        )),
        (strings(), stat()).prop_map(|(children, stat)| (
            op::GET_CHILDREN2,
            Response::GetChildren2(GetChildren2Response { children, stat })
        )),
        s().prop_map(|path| (op::SYNC, Response::Sync(SyncResponse { path }))),
        prop::collection::vec(multi_result(), 0..5).prop_map(|r| (op::MULTI, Response::Multi(r))),
        any::<i32>().prop_map(|total_number| (
            op::GET_ALL_CHILDREN_NUMBER,
            Response::GetAllChildrenNumber(GetAllChildrenNumberResponse { total_number })
        )),
        strings().prop_map(|ephemerals| (
            op::GET_EPHEMERALS,
            Response::GetEphemerals(GetEphemeralsResponse { ephemerals })
        )),
        any::<i32>().prop_map(|err| (op::ADD_WATCH, Response::AddWatch(ErrorResponse { err }))),
        prop::collection::vec((s(), s()), 0..3).prop_map(|v| (
            op::WHO_AM_I,
            Response::WhoAmI(WhoAmIResponse {
                client_info: v
                    .into_iter()
                    .map(|(auth_scheme, user)| ClientInfo { auth_scheme, user })
                    .collect()
            })
        )),
        bytes().prop_map(|token| (op::SASL, Response::Sasl(SetSaslResponse { token }))),
    ]
}

fn kind() -> impl Strategy<Value = NodeKind> {
    prop_oneof![
        Just(NodeKind::Persistent),
        any::<i64>().prop_map(|s| NodeKind::Ephemeral(SessionId(s))),
        Just(NodeKind::Container),
        any::<i64>().prop_map(NodeKind::Ttl),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    (-130i32..=0).prop_filter_map("defined code", ErrorCode::from_code)
}

fn simple_body() -> impl Strategy<Value = TxnBody> {
    prop_oneof![
        (any::<i32>(), any::<Option<[u8; 16]>>())
            .prop_map(|(timeout, passwd)| TxnBody::CreateSession { timeout, passwd }),
        strings().prop_map(|ephemerals| TxnBody::CloseSession { ephemerals }),
        (
            s(),
            data(),
            acl(),
            kind(),
            any::<i32>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(
                |(path, data, acl, kind, parent_cversion, sequential, with_stat)| TxnBody::Create(
                    CreateTxn {
                        path,
                        data,
                        acl,
                        kind,
                        parent_cversion,
                        sequential,
                        with_stat
                    }
                )
            ),
        s().prop_map(|path| TxnBody::Delete { path }),
        s().prop_map(|path| TxnBody::DeleteContainer { path }),
        (s(), data(), any::<i32>()).prop_map(|(path, data, version)| TxnBody::SetData {
            path,
            data,
            version
        }),
        (s(), acl(), any::<i32>()).prop_map(|(path, acl, version)| TxnBody::SetAcl {
            path,
            acl,
            version
        }),
        (s(), any::<i32>()).prop_map(|(path, version)| TxnBody::Check { path, version }),
        error_code().prop_map(TxnBody::Error),
    ]
}

fn txn() -> impl Strategy<Value = Txn> {
    (
        any::<i64>(),
        any::<i32>(),
        any::<i64>(),
        prop_oneof![
            3 => simple_body(),
            1 => prop::collection::vec(simple_body(), 0..4).prop_map(TxnBody::Multi),
        ],
    )
        .prop_map(|(s, cxid, time, body)| {
            Txn::new(
                TxnHeader {
                    session: SessionId(s),
                    cxid,
                    time,
                },
                body,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn requests_round_trip(xid in any::<i32>(), req in request()) {
        let frame = encode_request(xid, &req);
        let (payload, rest) = FrameDecoder::default().split(&frame).ok().flatten().unwrap_or_default();
        prop_assert!(rest.is_empty());
        let decoded = decode_request(payload, DEFAULT_MAX_BUFFER);
        prop_assert_eq!(
            decoded,
            Ok((RequestHeader { xid, op: req.op() }, Ok(req)))
        );
    }

    #[test]
    fn responses_round_trip(xid in any::<i32>(), zxid in any::<i64>(), (op, resp) in response()) {
        let h = ReplyHeader { xid, zxid, err: 0 };
        let frame = encode_reply(&h, Some(&resp));
        let decoded = decode_reply(&frame[4..], |_| op);
        if xid == -1 {
            prop_assert!(decoded.is_err() || matches!(decoded, Ok(Reply::Notification(_))));
        } else {
            prop_assert_eq!(decoded, Ok(Reply::Reply(h, Some(resp))));
        }
    }

    #[test]
    fn connect_records_round_trip(
        a in any::<i32>(), b in any::<i64>(), c in any::<i32>(), d in any::<i64>(),
        passwd in bytes(), ro in prop::option::of(any::<bool>())
    ) {
        let req = ConnectRequest {
            protocol_version: a, last_zxid_seen: b, timeout: c, session_id: d,
            passwd: passwd.clone(), read_only: ro,
        };
        prop_assert_eq!(ConnectRequest::from_bytes(&req.to_bytes()), Ok(req));
        let resp = ConnectResponse { protocol_version: a, timeout: c, session_id: d, passwd, read_only: ro };
        prop_assert_eq!(ConnectResponse::from_bytes(&resp.to_bytes()), Ok(resp));
    }

    #[test]
    fn records_round_trip(st in stat(), ev in (any::<i32>(), any::<i32>(), s()), a in acl()) {
        prop_assert_eq!(Stat::from_bytes(&st.to_bytes()), Ok(st));
        let ev = WatcherEvent { event_type: ev.0, state: ev.1, path: ev.2 };
        prop_assert_eq!(WatcherEvent::from_bytes(&ev.to_bytes()), Ok(ev));
        let r = GetAclResponse { acl: a, stat: Stat::default() };
        prop_assert_eq!(GetAclResponse::from_bytes(&r.to_bytes()), Ok(r));
    }

    #[test]
    fn txns_round_trip(t in txn()) {
        prop_assert_eq!(Txn::decode(&t.encode()), Ok(t.clone()));
        // The canonical view never panics either.
        let _ = t.to_znode_txn();
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), op in prop::sample::select(vec![
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
        100, 101, 102, 103, 104, 105, 106, 107, -10, -11, -1, 999,
    ])) {
        let _ = Request::decode(op, &bytes, DEFAULT_MAX_BUFFER);
        let _ = decode_request(&bytes, DEFAULT_MAX_BUFFER);
        let _ = decode_reply(&bytes, |_| op);
        let _ = decode_connect_request(&bytes);
        let _ = decode_connect_response(&bytes);
        let _ = Txn::decode(&bytes);
        let _ = DataTree::from_snapshot(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = FrameDecoder::default().decode(&mut buf) {}
        let _ = four_letter_word(&bytes);
    }

    #[test]
    fn mutated_valid_frames_never_panic(req in request(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut frame = encode_request(3, &req).to_vec();
        for (i, b) in flips {
            let k = i.index(frame.len());
            frame[k] = b;
        }
        let _ = decode_request(&frame[4..], DEFAULT_MAX_BUFFER);
        let t = Txn::new(TxnHeader::default(), TxnBody::Multi(vec![TxnBody::Delete { path: "/a".into() }]));
        let mut enc = t.encode().to_vec();
        let k = enc.len() / 2;
        enc[k] ^= frame[k % frame.len()] | 1;
        let _ = Txn::decode(&enc);
    }
}

/// A small vocabulary of write requests over a few paths, for state-machine properties.
fn write_op() -> impl Strategy<Value = (i64, Request)> {
    let paths = prop::sample::select(vec![
        "/a",
        "/b",
        "/a/x",
        "/a/y",
        "/b/z",
        "/a/x/q",
        "/zookeeper",
        "/a/",
    ]);
    let session = prop::sample::select(vec![1i64, 2, 3]);
    let req = prop_oneof![
        4 => (paths.clone(), 0i32..8).prop_map(|(p, flags)| Request::Create(CreateRequest {
            path: p.into(), data: Some(Bytes::from_static(b"d")), acl: ids::open_acl_unsafe(), flags })),
        1 => paths.clone().prop_map(|p| Request::CreateContainer(CreateRequest {
            path: p.into(), data: None, acl: ids::open_acl_unsafe(), flags: 4 })),
        3 => (paths.clone(), -1i32..2).prop_map(|(p, version)| Request::Delete(DeleteRequest { path: p.into(), version })),
        3 => (paths.clone(), -1i32..3).prop_map(|(p, version)| Request::SetData(SetDataRequest {
            path: p.into(), data: Some(Bytes::from_static(b"v")), version })),
        1 => (paths.clone(), -1i32..2).prop_map(|(p, version)| Request::SetAcl(SetAclRequest {
            path: p.into(), acl: ids::open_acl_unsafe(), version })),
        2 => prop::collection::vec((paths.clone(), 0i32..4, -1i32..2), 0..4).prop_map(|ops| Request::Multi(
            ops.into_iter().enumerate().map(|(k, (p, flags, v))| match k % 3 {
                0 => MultiOp::Create { op: op::CREATE, req: CreateRequest {
                    path: p.into(), data: None, acl: ids::open_acl_unsafe(), flags } },
                1 => MultiOp::Check(CheckVersionRequest { path: p.into(), version: v }),
                _ => MultiOp::Delete(DeleteRequest { path: p.into(), version: v }),
            }).collect())),
        1 => Just(Request::CloseSession),
        1 => paths.prop_map(|p| Request::DeleteContainer { path: p.into() }),
    ];
    (session, req)
}

struct Run {
    tree: DataTree,
    prep: Preparer,
    txns: Vec<Txn>,
}

fn start() -> Run {
    let mut r = Run {
        tree: DataTree::new(),
        prep: Preparer::new(PrepConfig::default()),
        txns: vec![],
    };
    for (k, s) in [1i64, 2, 3].into_iter().enumerate() {
        let z = Zxid::new(1, k as u32 + 1);
        let t = r.prep.create_session(SessionId(s), (4000, [0; 16]), 0, z);
        r.tree.apply(&t, z);
        r.prep.committed(z);
    }
    r
}

fn ctx(session: i64) -> PrepContext<'static> {
    PrepContext {
        session: SessionId(session),
        cxid: 0,
        time: 77,
        auth: &[],
        session_moved: false,
    }
}

fn check_structure(tree: &DataTree) -> Result<(), TestCaseError> {
    let mut count = 0;
    for (path, node) in tree.iter() {
        count += 1;
        if path != "/" {
            let (parent, name) = split_path(&path).unwrap_or(("", ""));
            let p = tree.get(parent);
            prop_assert!(p.is_some(), "{} has no parent", path);
            prop_assert!(p.is_some_and(|p| p.children.contains(name)));
            prop_assert!(
                !p.is_some_and(|p| matches!(p.kind(), NodeKind::Ephemeral(_))),
                "child of ephemeral {}",
                path
            );
        }
        for c in node.children.iter() {
            let child = if path == "/" {
                format!("/{c}")
            } else {
                format!("{path}/{c}")
            };
            prop_assert!(tree.contains(&child));
        }
        if let NodeKind::Ephemeral(s) = node.kind() {
            prop_assert!(tree.session_open(s), "ephemeral {} of closed {}", path, s);
            prop_assert!(tree.ephemerals(s).contains(&path.to_owned()));
        }
    }
    prop_assert_eq!(count, tree.node_count());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The outstanding-change view is exact: preparing a batch pipelined (all before any
    /// commit) yields the same transactions as preparing each after the previous commit.
    #[test]
    fn pipelined_preparation_equals_sequential(ops in prop::collection::vec(write_op(), 1..24)) {
        let mut seq = start();
        let mut pip = start();
        let base = 10u32;
        for (k, (s, req)) in ops.iter().enumerate() {
            let z = Zxid::new(1, base + k as u32);
            let t = seq.prep.prep(&seq.tree, &ctx(*s), z, req);
            prop_assert!(t.is_some());
            let t = t.unwrap_or_else(|| Txn::new(TxnHeader::default(), TxnBody::Multi(vec![])));
            seq.tree.apply(&t, z);
            seq.prep.committed(z);
            seq.txns.push(t);
        }
        for (k, (s, req)) in ops.iter().enumerate() {
            let z = Zxid::new(1, base + k as u32);
            let t = pip.prep.prep(&pip.tree, &ctx(*s), z, req);
            pip.txns.extend(t);
        }
        prop_assert_eq!(&seq.txns, &pip.txns);
        for (k, t) in pip.txns.iter().enumerate() {
            let z = Zxid::new(1, base + k as u32);
            let out = pip.tree.apply(t, z);
            // Prepared transactions always apply (only error txns report errors).
            if !matches!(t.body, TxnBody::Error(_)) {
                prop_assert!(!matches!(out.result, zab_zk::TxnResult::Error(_)), "{} did not apply", t);
            }
            pip.prep.committed(z);
        }
        prop_assert_eq!(pip.prep.outstanding(), 0);
        prop_assert_eq!(&seq.tree, &pip.tree);
        check_structure(&pip.tree)?;
        // Snapshots are faithful and deterministic.
        let snap = pip.tree.snapshot();
        let back = DataTree::from_snapshot(&snap);
        prop_assert_eq!(back.as_ref(), Ok(&pip.tree));
        prop_assert_eq!(back.map(|b| b.snapshot()).unwrap_or_default(), snap);
        // Watches never panic on these triggers.
        let mut w = WatchManager::new();
        w.add_watch(SessionId(1), "/", 1).ok();
        w.add_watch(SessionId(2), "/a", 0).ok();
        let mut t2 = start();
        for (k, t) in pip.txns.iter().enumerate() {
            let out = t2.tree.apply(t, Zxid::new(1, base + k as u32));
            let _ = w.trigger_all(&out.triggers);
        }
    }
}
