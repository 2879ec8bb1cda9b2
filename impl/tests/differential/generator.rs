//! The case generator: paths (valid, reserved, malformed), data, versions, ACLs and the
//! operation mix of up to three interleaved sessions, with a prelude that every case starts from.

use super::*;

/// Nodes a case creates and uses (sequential names included).
pub(crate) const NODES: &[&str] = &[
    "/r/a",
    "/r/b",
    "/r/a/x",
    "/r/a/y",
    "/r/b/x",
    "/r/a/x/z",
    "/r/c",
    "/r/s-0000000000",
    "/r/s-0000000001",
    "/r/a/s-0000000000",
    "/r/0000000000",
];
/// ZooKeeper's own nodes and the root.
pub(crate) const SPECIAL: &[&str] = &["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];
/// Paths ZooKeeper refuses (`PathUtils.validatePath`), and one without the leading slash.
pub(crate) const BAD: &[&str] = &[
    "",
    "r",
    "/r/",
    "//",
    "/r//a",
    "/r/.",
    "/r/..",
    "/r/./a",
    "/r/a/../b",
    "/r/a\u{0}",
    "/r/\u{1}x",
    "/r/\u{7f}",
    "/r/\u{9f}",
    "/r/\u{e000}",
    "/r/\u{fff0}",
];
/// Unusual but valid names.
pub(crate) const ODD: &[&str] = &[
    "/r/.a",
    "/r/...",
    "/r/a b",
    "/r/\u{e9}t\u{e9}",
    "/r/\u{1f600}",
];
/// Paths that never exist (the first may be created at the root).
pub(crate) const MISSING: &[&str] = &["/q", "/r/m/n"];
/// Sequential-create prefixes.
pub(crate) const SEQ: &[&str] = &["/r/s-", "/r/a/s-", "/r/"];

pub(crate) fn pick(list: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(list)
        .prop_map(str::to_string)
        .boxed()
}

/// Paths for reads.
pub(crate) fn read_path() -> BoxedStrategy<String> {
    prop_oneof![
        10 => pick(PRELUDE),
        12 => pick(NODES),
        2 => Just("/r".to_string()),
        2 => pick(SPECIAL),
        1 => pick(BAD),
        1 => pick(ODD),
        1 => pick(MISSING),
    ]
    .boxed()
}

/// Paths for writes other than create: never the root or ZooKeeper's nodes (a write there
/// that succeeds would outlive the case), except deletes, which ZooKeeper refuses.
pub(crate) fn write_path() -> BoxedStrategy<String> {
    prop_oneof![
        10 => pick(PRELUDE),
        12 => pick(NODES),
        1 => Just("/r".to_string()),
        1 => pick(BAD),
        1 => pick(ODD),
        1 => pick(MISSING),
    ]
    .boxed()
}

pub(crate) fn create_path() -> BoxedStrategy<String> {
    prop_oneof![
        10 => pick(NODES),
        3 => pick(SEQ),
        1 => Just("/r".to_string()),
        1 => pick(SPECIAL),
        1 => pick(BAD),
        1 => pick(ODD),
        1 => pick(MISSING),
    ]
    .boxed()
}

pub(crate) fn data() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        3 => Just(Some("a".to_string())),
        2 => Just(Some("hello".to_string())),
    ]
    .boxed()
}

pub(crate) fn version() -> BoxedStrategy<i32> {
    prop_oneof![4 => Just(-1), 3 => Just(0), 2 => Just(1), 1 => Just(2), 1 => Just(7)].boxed()
}

pub(crate) fn acl_set() -> BoxedStrategy<AclSet> {
    prop_oneof![
        12 => Just(AclSet::Open),
        2 => Just(AclSet::ReadOnly),
        2 => Just(AclSet::Creator),
        2 => Just(AclSet::Alice),
        1 => Just(AclSet::AliceBobRead),
        2 => Just(AclSet::NoDelete),
        1 => Just(AclSet::NoRead),
        1 => Just(AclSet::Ip),
        1 => Just(AclSet::Dup),
        1 => Just(AclSet::Empty),
        1 => Just(AclSet::BadDigest),
        1 => Just(AclSet::BadScheme),
        1 => Just(AclSet::WorldFoo),
    ]
    .boxed()
}

pub(crate) fn is_root_level(p: &str) -> bool {
    p.starts_with('/') && p.rfind('/') == Some(0)
}

pub(crate) fn create_op() -> BoxedStrategy<Op> {
    let kind = prop_oneof![4 => Just(op::CREATE), 4 => Just(op::CREATE2), 1 => Just(op::CREATE_CONTAINER), 2 => Just(op::CREATE_TTL)];
    let flags = prop_oneof![
        6 => Just(0),
        4 => Just(1),
        3 => Just(2),
        2 => Just(3),
        1 => Just(4),
        1 => Just(5),
        1 => Just(6),
        1 => Just(7),
        1 => Just(-1),
    ];
    let ttl = prop_oneof![
        4 => Just(1000_i64),
        1 => Just(0),
        1 => Just(-1),
        1 => Just(0xFF_FFFF_FFFF),
        1 => Just(0x100_0000_0000),
    ];
    (
        kind,
        create_path(),
        data(),
        acl_set(),
        flags,
        ttl,
        any::<bool>(),
    )
        .prop_map(|(k, p, d, a, f, ttl, usual)| {
            // Mostly the flags that go with the opcode, sometimes anything.
            let f = match k {
                op::CREATE_CONTAINER if usual => 4,
                op::CREATE_TTL if usual => 5 + (f & 1),
                _ => f,
            };
            // A sequential node at the root would be named after the root's history.
            // nor one under /zookeeper (it would outlive the case).
            let p = if (is_root_level(&p) || p.starts_with("/zookeeper")) && matches!(f, 2 | 3 | 6)
            {
                "/r/s-".to_string()
            } else {
                p
            };
            // A createTTL with a non-TTL mode and a negative TTL passes ZooKeeper 3.8's checks
            // and then crashes it when the transaction is applied (the TTL owner is computed
            // without validation): never send it to the reference. zabd refuses it (-8).
            let ttl = if k == op::CREATE_TTL && !matches!(f, 5 | 6) && ttl < 0 {
                1000
            } else {
                ttl
            };
            Op::Create {
                k,
                p,
                d,
                acl: a,
                f,
                ttl: (k == op::CREATE_TTL).then_some(ttl),
            }
        })
        .boxed()
}

pub(crate) fn delete_path() -> BoxedStrategy<String> {
    prop_oneof![12 => write_path(), 1 => pick(SPECIAL)].boxed()
}

pub(crate) fn multi_sub_op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => create_op(),
        2 => (delete_path(), version()).prop_map(|(p, v)| Op::Delete { p, v }),
        2 => (write_path(), data(), version()).prop_map(|(p, d, v)| Op::SetData { p, d, v }),
        2 => (write_path(), version()).prop_map(|(p, v)| Op::Check { p, v }),
    ]
    .boxed()
}

pub(crate) fn read_sub_op() -> BoxedStrategy<Op> {
    prop_oneof![
        (read_path(), any::<bool>()).prop_map(|(p, w)| Op::GetData { p, w }),
        (read_path(), any::<bool>()).prop_map(|(p, w)| Op::GetChildren { p, w }),
    ]
    .boxed()
}

pub(crate) fn watch_paths() -> BoxedStrategy<Vec<String>> {
    proptest::collection::vec(
        prop_oneof![6 => pick(PRELUDE), 8 => pick(NODES), 1 => Just("/r".to_string()), 1 => Just("/".to_string())],
        0..3,
    )
    .boxed()
}

pub(crate) fn auth_op() -> BoxedStrategy<Op> {
    let pairs: &'static [(&'static str, &'static str)] = &[
        ("digest", "alice:secret"),
        ("digest", "alice:secret"),
        ("digest", "bob:pw"),
        ("digest", "bob:pw"),
        ("digest", "alice:wrong"),
        ("digest", "super:diff"),
        ("digest", "nocolon"),
        ("ip", "whatever"),
        ("foo", "x"),
    ];
    proptest::sample::select(pairs)
        .prop_map(|(scheme, auth)| Op::Auth {
            scheme: scheme.to_string(),
            auth: auth.to_string(),
        })
        .boxed()
}

pub(crate) fn watcher_type() -> BoxedStrategy<i32> {
    prop_oneof![3 => Just(1), 3 => Just(2), 3 => Just(3), 1 => Just(4), 1 => Just(0)].boxed()
}

pub(crate) fn any_op() -> BoxedStrategy<Op> {
    let ops: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (10, create_op()),
        (
            4,
            (delete_path(), version())
                .prop_map(|(p, v)| Op::Delete { p, v })
                .boxed(),
        ),
        (
            3,
            (read_path(), any::<bool>())
                .prop_map(|(p, w)| Op::Exists { p, w })
                .boxed(),
        ),
        (
            3,
            (read_path(), any::<bool>())
                .prop_map(|(p, w)| Op::GetData { p, w })
                .boxed(),
        ),
        (
            4,
            (write_path(), data(), version())
                .prop_map(|(p, d, v)| Op::SetData { p, d, v })
                .boxed(),
        ),
        (2, read_path().prop_map(|p| Op::GetAcl { p }).boxed()),
        (
            2,
            (write_path(), acl_set(), version())
                .prop_map(|(p, a, v)| Op::SetAcl { p, acl: a, v })
                .boxed(),
        ),
        (
            2,
            (read_path(), any::<bool>())
                .prop_map(|(p, w)| Op::GetChildren { p, w })
                .boxed(),
        ),
        (
            2,
            (read_path(), any::<bool>())
                .prop_map(|(p, w)| Op::GetChildren2 { p, w })
                .boxed(),
        ),
        (
            1,
            read_path()
                .prop_map(|p| Op::GetAllChildrenNumber { p })
                .boxed(),
        ),
        (
            1,
            proptest::option::weighted(0.85, pick(&["/", "/r", "/r/a", "/r/s", "/q", "", "r"]))
                .prop_map(|p| Op::GetEphemerals { p })
                .boxed(),
        ),
        // sync echoes its path. ZooKeeper writes a character outside the BMP as two
        // 3-byte surrogates (jute's own encoder, CESU-8), which strict UTF-8 clients (kazoo,
        // the Rust client) cannot decode; zabd echoes valid UTF-8 — a deliberate divergence.
        (
            1,
            read_path()
                .prop_filter("BMP only", |p| p.chars().all(|c| c <= '\u{ffff}'))
                .prop_map(|p| Op::Sync { p })
                .boxed(),
        ),
        // A check outside a multi only on paths where it fails: ZooKeeper 3.8 never answers
        // a successful one (FinalRequestProcessor serialises a null stat and drops the reply);
        // not `/q`, which a case may create.
        (
            1,
            (
                prop_oneof![pick(BAD), Just("/r/m/n".to_string())],
                version(),
            )
                .prop_map(|(p, v)| Op::Check { p, v })
                .boxed(),
        ),
        (
            4,
            proptest::collection::vec(multi_sub_op(), 0..5)
                .prop_map(|ops| Op::Multi { ops })
                .boxed(),
        ),
        (
            2,
            proptest::collection::vec(read_sub_op(), 0..4)
                .prop_map(|ops| Op::MultiRead { ops })
                .boxed(),
        ),
        (2, auth_op()),
        (
            2,
            (
                prop_oneof![Just(Rel::Zero), Just(Rel::Last)],
                watch_paths(),
                watch_paths(),
                watch_paths(),
                proptest::option::of((watch_paths(), watch_paths())),
            )
                .prop_map(|(rel, data, exist, child, pr)| {
                    let (persistent, recursive) = match pr {
                        Some((p, r)) => (Some(p), Some(r)),
                        None => (None, None),
                    };
                    Op::SetWatches {
                        rel,
                        data,
                        exist,
                        child,
                        persistent,
                        recursive,
                    }
                })
                .boxed(),
        ),
        (
            2,
            (
                read_path(),
                prop_oneof![4 => Just(0), 4 => Just(1), 1 => Just(2)],
            )
                .prop_map(|(p, mode)| Op::AddWatch { p, mode })
                .boxed(),
        ),
        (
            2,
            (read_path(), watcher_type())
                .prop_map(|(p, t)| Op::RemoveWatches { p, t })
                .boxed(),
        ),
        (
            1,
            // Not relative or empty paths: ZooKeeper 3.8 answers those depending on whether
            // any persistent-recursive watch exists (or once existed) anywhere on the
            // server (`PathParentIterator.forAll` fails on a relative path).
            (
                read_path().prop_filter("absolute", |p| p.starts_with('/')),
                watcher_type(),
            )
                .prop_map(|(p, t)| Op::CheckWatches { p, t })
                .boxed(),
        ),
        (1, Just(Op::WhoAmI).boxed()),
        (1, Just(Op::CloseSession).boxed()),
    ];
    Union::new_weighted(ops).boxed()
}

pub(crate) fn case() -> BoxedStrategy<Vec<Step>> {
    let step = (
        prop_oneof![5 => Just(0u8), 3 => Just(1u8), 2 => Just(2u8)],
        any_op(),
    )
        .prop_map(|(s, op)| Step { s, op });
    // Most cases start from a few nodes, so that writes, ACL changes and watches on them
    // succeed as often as they fail.
    (0..=PRELUDE.len(), proptest::collection::vec(step, 1..25))
        .prop_map(|(n, steps)| {
            let mut all: Vec<Step> = PRELUDE[..n]
                .iter()
                .map(|p| Step {
                    s: 0,
                    op: Op::Create {
                        k: op::CREATE,
                        p: (*p).to_string(),
                        d: Some("a".to_string()),
                        acl: AclSet::Open,
                        f: 0,
                        ttl: None,
                    },
                })
                .collect();
            all.extend(steps);
            avoid_mode_overwrite(all)
        })
        .boxed()
}

/// The nodes a case may start with (a prefix of this list).
pub(crate) const PRELUDE: &[&str] = &["/r/a", "/r/b", "/r/a/x", "/r/c"];

/// Keeps a session from holding a one-shot watch and an `addWatch` watch on the same path.
///
/// ZooKeeper 3.8 keeps one mode per (watcher, path), so the later registration overwrites
/// the earlier (ZOOKEEPER-4466: a getData watch turns a persistent watch into a one-shot
/// one, an addWatch turns a pending one-shot into a persistent one). zabd keeps both, as
/// ZooKeeper 3.9 does: a deliberate divergence, so cases steer clear of it — a conflicting
/// one-shot registration loses its watch flag, a conflicting addWatch becomes a checkWatches.
///
/// The same holds for the two persistent modes: a session's path keeps the mode it was
/// first given (a later registration in the other mode is dropped or becomes a
/// checkWatches).
pub(crate) fn avoid_mode_overwrite(mut steps: Vec<Step>) -> Vec<Step> {
    use std::collections::BTreeSet;
    let mut oneshot: [BTreeSet<String>; 3] = Default::default();
    let mut persistent: [BTreeSet<String>; 3] = Default::default();
    // (path, is recursive) of each session's persistent watches.
    let mut modes: [BTreeMap<String, bool>; 3] = Default::default();
    for st in &mut steps {
        let k = usize::from(st.s) % 3;
        let (one, per, mode) = (&mut oneshot[k], &mut persistent[k], &mut modes[k]);
        match &mut st.op {
            Op::Exists { p, w }
            | Op::GetData { p, w }
            | Op::GetChildren { p, w }
            | Op::GetChildren2 { p, w }
                if *w =>
            {
                if per.contains(p.as_str()) {
                    *w = false;
                } else {
                    one.insert(p.clone());
                }
            }
            Op::SetWatches {
                data,
                exist,
                child,
                persistent: pl,
                recursive,
                ..
            } => {
                for list in [data, exist, child] {
                    list.retain(|p| !per.contains(p));
                    one.extend(list.iter().cloned());
                }
                for (list, rec) in [(pl, false), (recursive, true)] {
                    if let Some(list) = list {
                        list.retain(|p| !one.contains(p) && mode.get(p).is_none_or(|r| *r == rec));
                        for p in list.iter() {
                            mode.insert(p.clone(), rec);
                        }
                        per.extend(list.iter().cloned());
                    }
                }
            }
            Op::AddWatch { p, mode: m } => {
                let rec = *m == 1;
                let conflict = *m == 0 || *m == 1;
                if one.contains(p.as_str())
                    || (conflict && mode.get(p.as_str()).is_some_and(|r| *r != rec))
                {
                    st.op = Op::CheckWatches { p: p.clone(), t: 3 };
                } else if conflict {
                    per.insert(p.clone());
                    mode.insert(p.clone(), rec);
                }
            }
            _ => {}
        }
    }
    steps
}
