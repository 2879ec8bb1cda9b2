//! Differential test of `zabd` against Apache ZooKeeper 3.8: generated sequences of client
//! operations (every opcode a client sends, failing ones included) from up to three
//! interleaved sessions, with every reply and watch notification normalised and compared.
//!
//! - **Corpus mode** (default, what `cargo test` runs): replays
//!   `tests/corpus/differential.jsonl` — cases recorded with ZooKeeper's normalised replies —
//!   against a standalone `zabd`.
//! - **Live mode** (`ZAB_REFERENCE_ZK=host:port`, see `ci/differential.sh`): runs
//!   `ZAB_DIFF_CASES` proptest cases against that ZooKeeper and a `zabd`, shrinking any
//!   divergence; with `ZAB_RECORD_CORPUS=1` it rewrites the corpus from ZooKeeper's replies.
//!
//! Each case works under `/r` (created fresh by a super-user admin session, which removes
//! everything the case left at the end), so cases are independent of each other.
//! Normalisation: zxids become `Z<n>` in order of first appearance within the case; session
//! ids become `s<n>` in order of opening; times become `0` or `t`, with `c=m` / `c!=m` when
//! `czxid == mzxid` (the same transaction must stamp the same time); the root's `cversion` is
//! taken relative to the case start; children and ephemerals lists are sorted (ZooKeeper
//! lists them in hash order). Every reply also records its frame length.

#![allow(clippy::print_stderr)]

mod support;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::standalone::Standalone;
use support::wire::{Reply, Wire, WireError, new_session_request};
use zab_zk::proto::{
    Acl, AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest, ConnectRequest,
    ConnectResponse, CreateRequest, CreateTtlRequest, DeleteRequest, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildren2Request, GetChildrenRequest, GetDataRequest,
    GetEphemeralsRequest, MultiOp, MultiReadOp, MultiResult, RemoveWatchesRequest, Request,
    Response, SetAclRequest, SetDataRequest, SetWatches, SetWatches2, Stat, SyncRequest, op, perms,
};

/// The super user both servers are configured with (`super:diff`).
const SUPER_DIGEST: &str = "super:rUwANJCpjJIrnxzFdZozglgBlpw=";
const ALICE: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";
const BOB: &str = "bob:ikIaKsbtGweaHnb/jKn7OHqbunM=";
const IO: Duration = Duration::from_secs(10);

fn corpus_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/differential.jsonl")
}

// ----- the operations ------------------------------------------------------------------------

/// An ACL a request carries, by name (so the corpus stays readable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum AclSet {
    Open,
    ReadOnly,
    Creator,
    Alice,
    AliceBobRead,
    NoDelete,
    NoRead,
    Ip,
    Dup,
    Empty,
    BadDigest,
    BadScheme,
    WorldFoo,
}

fn acl(set: AclSet) -> Vec<Acl> {
    let world = |p| Acl::new(p, "world", "anyone");
    match set {
        AclSet::Open => vec![world(perms::ALL)],
        AclSet::ReadOnly => vec![world(perms::READ)],
        AclSet::Creator => vec![Acl::new(perms::ALL, "auth", "")],
        AclSet::Alice => vec![Acl::new(perms::ALL, "digest", ALICE)],
        AclSet::AliceBobRead => vec![
            Acl::new(perms::ALL, "digest", ALICE),
            Acl::new(perms::READ, "digest", BOB),
        ],
        AclSet::NoDelete => vec![world(perms::ALL & !perms::DELETE)],
        AclSet::NoRead => vec![world(perms::ALL & !perms::READ)],
        AclSet::Ip => vec![Acl::new(perms::ALL, "ip", "127.0.0.1")],
        AclSet::Dup => vec![world(perms::ALL), world(perms::ALL)],
        AclSet::Empty => vec![],
        AclSet::BadDigest => vec![Acl::new(perms::ALL, "digest", "alice")],
        AclSet::BadScheme => vec![Acl::new(perms::ALL, "foo", "bar")],
        AclSet::WorldFoo => vec![Acl::new(perms::ALL, "world", "foo")],
    }
}

/// The `relativeZxid` of a setWatches: 0, or the last zxid the connection saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Rel {
    Zero,
    Last,
}

/// One client operation. `k` of a create is its opcode (1, 15, 19, 21); `ttl` is sent only
/// with opcode 21.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Op {
    Create {
        k: i32,
        p: String,
        d: Option<String>,
        acl: AclSet,
        f: i32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl: Option<i64>,
    },
    Delete {
        p: String,
        v: i32,
    },
    Exists {
        p: String,
        w: bool,
    },
    GetData {
        p: String,
        w: bool,
    },
    SetData {
        p: String,
        d: Option<String>,
        v: i32,
    },
    GetAcl {
        p: String,
    },
    SetAcl {
        p: String,
        acl: AclSet,
        v: i32,
    },
    GetChildren {
        p: String,
        w: bool,
    },
    GetChildren2 {
        p: String,
        w: bool,
    },
    GetAllChildrenNumber {
        p: String,
    },
    GetEphemerals {
        p: Option<String>,
    },
    Sync {
        p: String,
    },
    Check {
        p: String,
        v: i32,
    },
    Multi {
        ops: Vec<Op>,
    },
    MultiRead {
        ops: Vec<Op>,
    },
    Auth {
        scheme: String,
        auth: String,
    },
    SetWatches {
        rel: Rel,
        data: Vec<String>,
        exist: Vec<String>,
        child: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        persistent: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recursive: Option<Vec<String>>,
    },
    AddWatch {
        p: String,
        mode: i32,
    },
    RemoveWatches {
        p: String,
        t: i32,
    },
    CheckWatches {
        p: String,
        t: i32,
    },
    WhoAmI,
    CloseSession,
}

impl Op {
    /// The kind, for coverage counts (a create's opcode and flags are part of it).
    fn kind(&self) -> String {
        match self {
            Op::Create { k, f, .. } => format!("create(op {k}, flags {f})"),
            Op::SetWatches { persistent, .. } => if persistent.is_some() {
                "setWatches2"
            } else {
                "setWatches"
            }
            .to_string(),
            other => {
                let v = serde_json::to_value(other).expect("serialise");
                v.get("op")
                    .and_then(|o| o.as_str())
                    .unwrap_or("?")
                    .to_string()
            }
        }
    }

    /// The path whose stat a reply carries (for the root's relative cversion).
    fn path(&self) -> Option<&str> {
        match self {
            Op::Create { p, .. }
            | Op::Delete { p, .. }
            | Op::Exists { p, .. }
            | Op::GetData { p, .. }
            | Op::SetData { p, .. }
            | Op::GetAcl { p }
            | Op::SetAcl { p, .. }
            | Op::GetChildren { p, .. }
            | Op::GetChildren2 { p, .. }
            | Op::Check { p, .. } => Some(p),
            _ => None,
        }
    }
}

/// One step: which of the case's session slots (0..3) sends which operation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Step {
    s: u8,
    #[serde(flatten)]
    op: Op,
}

/// A recorded case: its steps and ZooKeeper's normalised trace.
#[derive(Debug, Serialize, Deserialize)]
struct Recorded {
    steps: Vec<Step>,
    trace: Vec<String>,
}

fn bytes(d: &Option<String>) -> Option<Bytes> {
    d.as_ref().map(|s| Bytes::copy_from_slice(s.as_bytes()))
}

fn create_request(p: &str, d: &Option<String>, set: AclSet, f: i32) -> CreateRequest {
    CreateRequest {
        path: p.to_string(),
        data: bytes(d),
        acl: acl(set),
        flags: f,
    }
}

fn multi_op(o: &Op) -> MultiOp {
    match o {
        Op::Create {
            k,
            p,
            d,
            acl: a,
            f,
            ttl,
        } => {
            if *k == op::CREATE_TTL {
                MultiOp::CreateTtl(CreateTtlRequest {
                    path: p.clone(),
                    data: bytes(d),
                    acl: acl(*a),
                    flags: *f,
                    ttl: ttl.unwrap_or(-1),
                })
            } else {
                MultiOp::Create {
                    op: *k,
                    req: create_request(p, d, *a, *f),
                }
            }
        }
        Op::Delete { p, v } => MultiOp::Delete(DeleteRequest {
            path: p.clone(),
            version: *v,
        }),
        Op::SetData { p, d, v } => MultiOp::SetData(SetDataRequest {
            path: p.clone(),
            data: bytes(d),
            version: *v,
        }),
        Op::Check { p, v } => MultiOp::Check(CheckVersionRequest {
            path: p.clone(),
            version: *v,
        }),
        other => panic!("not a multi op: {other:?}"),
    }
}

fn read_op(o: &Op) -> MultiReadOp {
    match o {
        Op::GetData { p, w } => MultiReadOp::GetData(GetDataRequest {
            path: p.clone(),
            watch: *w,
        }),
        Op::GetChildren { p, w } => MultiReadOp::GetChildren(GetChildrenRequest {
            path: p.clone(),
            watch: *w,
        }),
        other => panic!("not a multiRead op: {other:?}"),
    }
}

fn request(o: &Op, last_zxid: i64) -> Request {
    match o {
        Op::Create {
            k,
            p,
            d,
            acl: a,
            f,
            ttl,
        } => match *k {
            op::CREATE_TTL => Request::CreateTtl(CreateTtlRequest {
                path: p.clone(),
                data: bytes(d),
                acl: acl(*a),
                flags: *f,
                ttl: ttl.unwrap_or(-1),
            }),
            op::CREATE2 => Request::Create2(create_request(p, d, *a, *f)),
            op::CREATE_CONTAINER => Request::CreateContainer(create_request(p, d, *a, *f)),
            _ => Request::Create(create_request(p, d, *a, *f)),
        },
        Op::Delete { p, v } => Request::Delete(DeleteRequest {
            path: p.clone(),
            version: *v,
        }),
        Op::Exists { p, w } => Request::Exists(ExistsRequest {
            path: p.clone(),
            watch: *w,
        }),
        Op::GetData { p, w } => Request::GetData(GetDataRequest {
            path: p.clone(),
            watch: *w,
        }),
        Op::SetData { p, d, v } => Request::SetData(SetDataRequest {
            path: p.clone(),
            data: bytes(d),
            version: *v,
        }),
        Op::GetAcl { p } => Request::GetAcl(GetAclRequest { path: p.clone() }),
        Op::SetAcl { p, acl: a, v } => Request::SetAcl(SetAclRequest {
            path: p.clone(),
            acl: acl(*a),
            version: *v,
        }),
        Op::GetChildren { p, w } => Request::GetChildren(GetChildrenRequest {
            path: p.clone(),
            watch: *w,
        }),
        Op::GetChildren2 { p, w } => Request::GetChildren2(GetChildren2Request {
            path: p.clone(),
            watch: *w,
        }),
        Op::GetAllChildrenNumber { p } => {
            Request::GetAllChildrenNumber(GetAllChildrenNumberRequest { path: p.clone() })
        }
        Op::GetEphemerals { p } => Request::GetEphemerals(GetEphemeralsRequest {
            prefix_path: p.clone(),
        }),
        Op::Sync { p } => Request::Sync(SyncRequest { path: p.clone() }),
        Op::Check { p, v } => Request::Check(CheckVersionRequest {
            path: p.clone(),
            version: *v,
        }),
        Op::Multi { ops } => Request::Multi(ops.iter().map(multi_op).collect()),
        Op::MultiRead { ops } => Request::MultiRead(ops.iter().map(read_op).collect()),
        Op::Auth { scheme, auth } => Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: scheme.clone(),
            auth: Bytes::copy_from_slice(auth.as_bytes()),
        }),
        Op::SetWatches {
            rel,
            data,
            exist,
            child,
            persistent,
            recursive,
        } => {
            let relative_zxid = match rel {
                Rel::Zero => 0,
                Rel::Last => last_zxid,
            };
            match (persistent, recursive) {
                (None, None) => Request::SetWatches(SetWatches {
                    relative_zxid,
                    data_watches: data.clone(),
                    exist_watches: exist.clone(),
                    child_watches: child.clone(),
                }),
                (p, r) => Request::SetWatches2(SetWatches2 {
                    relative_zxid,
                    data_watches: data.clone(),
                    exist_watches: exist.clone(),
                    child_watches: child.clone(),
                    persistent_watches: p.clone().unwrap_or_default(),
                    persistent_recursive_watches: r.clone().unwrap_or_default(),
                }),
            }
        }
        Op::AddWatch { p, mode } => Request::AddWatch(AddWatchRequest {
            path: p.clone(),
            mode: *mode,
        }),
        Op::RemoveWatches { p, t } => Request::RemoveWatches(RemoveWatchesRequest {
            path: p.clone(),
            watcher_type: *t,
        }),
        Op::CheckWatches { p, t } => Request::CheckWatches(CheckWatchesRequest {
            path: p.clone(),
            watcher_type: *t,
        }),
        Op::WhoAmI => Request::WhoAmI,
        Op::CloseSession => Request::CloseSession,
    }
}

// ----- the generator -------------------------------------------------------------------------

/// Nodes a case creates and uses (sequential names included).
const NODES: &[&str] = &[
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
const SPECIAL: &[&str] = &["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];
/// Paths ZooKeeper refuses (`PathUtils.validatePath`), and one without the leading slash.
const BAD: &[&str] = &[
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
const ODD: &[&str] = &[
    "/r/.a",
    "/r/...",
    "/r/a b",
    "/r/\u{e9}t\u{e9}",
    "/r/\u{1f600}",
];
/// Paths that never exist (the first may be created at the root).
const MISSING: &[&str] = &["/q", "/r/m/n"];
/// Sequential-create prefixes.
const SEQ: &[&str] = &["/r/s-", "/r/a/s-", "/r/"];

fn pick(list: &'static [&'static str]) -> BoxedStrategy<String> {
    proptest::sample::select(list)
        .prop_map(str::to_string)
        .boxed()
}

/// Paths for reads.
fn read_path() -> BoxedStrategy<String> {
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
fn write_path() -> BoxedStrategy<String> {
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

fn create_path() -> BoxedStrategy<String> {
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

fn data() -> BoxedStrategy<Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        3 => Just(Some("a".to_string())),
        2 => Just(Some("hello".to_string())),
    ]
    .boxed()
}

fn version() -> BoxedStrategy<i32> {
    prop_oneof![4 => Just(-1), 3 => Just(0), 2 => Just(1), 1 => Just(2), 1 => Just(7)].boxed()
}

fn acl_set() -> BoxedStrategy<AclSet> {
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

fn is_root_level(p: &str) -> bool {
    p.starts_with('/') && p.rfind('/') == Some(0)
}

fn create_op() -> BoxedStrategy<Op> {
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

fn delete_path() -> BoxedStrategy<String> {
    prop_oneof![12 => write_path(), 1 => pick(SPECIAL)].boxed()
}

fn multi_sub_op() -> BoxedStrategy<Op> {
    prop_oneof![
        4 => create_op(),
        2 => (delete_path(), version()).prop_map(|(p, v)| Op::Delete { p, v }),
        2 => (write_path(), data(), version()).prop_map(|(p, d, v)| Op::SetData { p, d, v }),
        2 => (write_path(), version()).prop_map(|(p, v)| Op::Check { p, v }),
    ]
    .boxed()
}

fn read_sub_op() -> BoxedStrategy<Op> {
    prop_oneof![
        (read_path(), any::<bool>()).prop_map(|(p, w)| Op::GetData { p, w }),
        (read_path(), any::<bool>()).prop_map(|(p, w)| Op::GetChildren { p, w }),
    ]
    .boxed()
}

fn watch_paths() -> BoxedStrategy<Vec<String>> {
    proptest::collection::vec(
        prop_oneof![6 => pick(PRELUDE), 8 => pick(NODES), 1 => Just("/r".to_string()), 1 => Just("/".to_string())],
        0..3,
    )
    .boxed()
}

fn auth_op() -> BoxedStrategy<Op> {
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

fn watcher_type() -> BoxedStrategy<i32> {
    prop_oneof![3 => Just(1), 3 => Just(2), 3 => Just(3), 1 => Just(4), 1 => Just(0)].boxed()
}

fn any_op() -> BoxedStrategy<Op> {
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

fn case() -> BoxedStrategy<Vec<Step>> {
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
const PRELUDE: &[&str] = &["/r/a", "/r/b", "/r/a/x", "/r/c"];

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
fn avoid_mode_overwrite(mut steps: Vec<Step>) -> Vec<Step> {
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

// ----- running a case against one server ---------------------------------------------------------

/// A server under test, with its admin session (super user) that sets up and cleans up.
struct System {
    name: &'static str,
    addr: SocketAddr,
    admin: Wire,
    admin_sid: i64,
    /// Set when the admin session failed: the server is gone, nothing more can be compared.
    broken: Option<String>,
}

impl System {
    fn connect(name: &'static str, addr: SocketAddr) -> System {
        let (mut admin, resp) = Wire::session(addr)
            .unwrap_or_else(|e| panic!("{name}: cannot open the admin session: {e:?}"));
        let r = admin
            .call(
                &Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: Bytes::from_static(b"super:diff"),
                }),
                IO,
            )
            .unwrap_or_else(|e| panic!("{name}: super auth: {e:?}"));
        assert_eq!(r.header.err, 0, "{name}: super auth refused");
        let mut s = System {
            name,
            addr,
            admin,
            admin_sid: resp.session_id,
            broken: None,
        };
        // Whoever ran before may have left nodes (a failed run, or another test).
        s.cleanup();
        s
    }

    fn admin_call(&mut self, req: &Request) -> Reply {
        match self.admin.call(req, IO) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{}: admin request {req:?}: {e:?}", self.name);
                self.broken = Some(msg.clone());
                panic!("{msg}");
            }
        }
    }

    fn children(&mut self, path: &str) -> Vec<String> {
        let r = self.admin_call(&Request::GetChildren(GetChildrenRequest {
            path: path.into(),
            watch: false,
        }));
        match r.body {
            Some(Response::GetChildren(c)) => c.children,
            _ => Vec::new(),
        }
    }

    fn delete_tree(&mut self, path: &str) {
        for c in self.children(path) {
            self.delete_tree(&format!("{path}/{c}"));
        }
        let r = self.admin_call(&Request::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        }));
        assert!(
            r.header.err == 0 || r.header.err == -101,
            "{}: cleanup cannot delete {path}: {}",
            self.name,
            r.header.err
        );
    }

    /// Deletes everything at the root but `/zookeeper`.
    fn cleanup(&mut self) {
        for c in self.children("/") {
            if c != "zookeeper" {
                self.delete_tree(&format!("/{c}"));
            }
        }
    }

    /// Creates `/r` and returns the root's cversion.
    fn setup(&mut self) -> i32 {
        let r = self.admin_call(&Request::Create(create_request(
            "/r",
            &None,
            AclSet::Open,
            0,
        )));
        assert_eq!(r.header.err, 0, "{}: cannot create /r", self.name);
        let r = self.admin_call(&Request::Exists(ExistsRequest {
            path: "/".into(),
            watch: false,
        }));
        match r.body {
            Some(Response::Exists(e)) => e.stat.cversion,
            other => panic!("{}: exists / gave {other:?}", self.name),
        }
    }
}

struct Slot {
    wire: Wire,
    sid: i64,
    passwd: Bytes,
    label: usize,
    last_zxid: i64,
}

/// One case's run: the normaliser's state and the sessions.
struct Run<'a> {
    sys: &'a mut System,
    zxids: HashMap<i64, usize>,
    sessions: HashMap<i64, usize>,
    opened: usize,
    slots: [Option<Slot>; 3],
    /// Sessions whose connection ended without a closeSession: re-attached and closed at
    /// the end, so that they do not expire during a later case.
    dangling: Vec<(i64, Bytes)>,
    root_base: i32,
    trace: Vec<String>,
}

impl Run<'_> {
    fn z(&mut self, zxid: i64) -> String {
        if zxid <= 0 {
            return zxid.to_string();
        }
        let n = self.zxids.len();
        format!("Z{}", *self.zxids.entry(zxid).or_insert(n))
    }

    fn owner(&self, sid: i64) -> String {
        if sid == 0 {
            "0".into()
        } else if sid == self.sys.admin_sid {
            "admin".into()
        } else {
            match self.sessions.get(&sid) {
                Some(n) => format!("s{n}"),
                None => "unknown-session".into(),
            }
        }
    }

    fn stat(&mut self, s: &Stat, root: bool) -> String {
        let t = |v: i64| if v == 0 { "0" } else { "t" };
        let rel = if s.czxid == s.mzxid {
            if s.ctime == s.mtime { " c=m" } else { " c!=m" }
        } else if s.mtime < s.ctime {
            " m<c"
        } else {
            ""
        };
        let cv = if root {
            format!("{}+{}", "base", s.cversion - self.root_base)
        } else {
            s.cversion.to_string()
        };
        format!(
            "[cz={} mz={} pz={} ct={} mt={}{rel} v={} cv={cv} av={} eo={} dl={} nc={}]",
            self.z(s.czxid),
            self.z(s.mzxid),
            self.z(s.pzxid),
            t(s.ctime),
            t(s.mtime),
            s.version,
            s.aversion,
            self.owner(s.ephemeral_owner),
            s.data_length,
            s.num_children,
        )
    }

    fn multi_result(&mut self, m: &MultiResult, root: bool) -> String {
        match m {
            MultiResult::Create { path } => format!("create {path:?}"),
            MultiResult::Create2 { path, stat } => {
                format!("create2 {path:?} {}", self.stat(stat, false))
            }
            MultiResult::Delete => "delete".into(),
            MultiResult::SetData { stat } => format!("setData {}", self.stat(stat, false)),
            MultiResult::Check => "check".into(),
            MultiResult::GetChildren { children } => {
                let mut c = children.clone();
                c.sort();
                format!("getChildren {c:?}")
            }
            MultiResult::GetData { data, stat } => {
                format!(
                    "getData {} {}",
                    show_data(data.as_ref()),
                    self.stat(stat, root)
                )
            }
            MultiResult::Error { err } => format!("error {err}"),
        }
    }

    fn body(&mut self, b: &Response, o: &Op) -> String {
        let root = matches!(o.path(), Some("/" | ""));
        match b {
            Response::Create(c) => format!("path={:?}", c.path),
            Response::Create2(c) => format!("path={:?} {}", c.path, self.stat(&c.stat, false)),
            Response::Exists(e) => self.stat(&e.stat, root),
            Response::GetData(g) => {
                format!(
                    "data={} {}",
                    show_data(g.data.as_ref()),
                    self.stat(&g.stat, root)
                )
            }
            Response::SetData(s) => self.stat(&s.stat, root),
            Response::GetAcl(a) => format!("acl={} {}", show_acl(&a.acl), self.stat(&a.stat, root)),
            Response::SetAcl(s) => self.stat(&s.stat, root),
            Response::GetChildren(c) => {
                let mut c = c.children.clone();
                c.sort();
                format!("children={c:?}")
            }
            Response::GetChildren2(c) => {
                let mut ch = c.children.clone();
                ch.sort();
                format!("children={ch:?} {}", self.stat(&c.stat, root))
            }
            Response::Sync(s) => format!("path={:?}", s.path),
            Response::Multi(results) => {
                let reads: Vec<bool> = match o {
                    Op::MultiRead { ops } => ops
                        .iter()
                        .map(|x| matches!(x.path(), Some("/" | "")))
                        .collect(),
                    _ => Vec::new(),
                };
                let parts: Vec<String> = results
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.multi_result(m, reads.get(i).copied().unwrap_or(false)))
                    .collect();
                format!("results=[{}]", parts.join(", "))
            }
            Response::GetAllChildrenNumber(n) => format!("number={}", n.total_number),
            Response::GetEphemerals(e) => {
                let mut v = e.ephemerals.clone();
                v.sort();
                format!("ephemerals={v:?}")
            }
            Response::AddWatch(e) => format!("errorResponse={}", e.err),
            Response::WhoAmI(w) => {
                let v: Vec<String> = w
                    .client_info
                    .iter()
                    .map(|c| format!("{}:{}", c.auth_scheme, c.user))
                    .collect();
                format!("whoAmI={v:?}")
            }
            Response::Sasl(s) => format!("sasl token {} bytes", s.token.len()),
        }
    }

    fn reply(&mut self, r: &Reply, o: &Op) -> String {
        let mut s = events(r);
        let z = self.z(r.header.zxid);
        let _ = write!(s, "err={} zxid={z} len={}", r.header.err, r.len);
        if let Some(b) = &r.body {
            let b = self.body(b, o);
            let _ = write!(s, " {b}");
        }
        s
    }

    fn connect_line(&mut self, resp: &ConnectResponse) -> String {
        let n = self.opened;
        self.opened += 1;
        self.sessions.insert(resp.session_id, n);
        format!(
            "s{n} open: protocol={} timeout={} passwd={} bytes readOnly={:?}",
            resp.protocol_version,
            resp.timeout,
            resp.passwd.len(),
            resp.read_only
        )
    }

    fn slot(&mut self, s: usize) -> Option<&mut Slot> {
        if self.slots[s].is_none() {
            match Wire::session(self.sys.addr) {
                Ok((wire, resp)) if resp.session_id != 0 => {
                    let line = self.connect_line(&resp);
                    self.trace.push(line);
                    self.slots[s] = Some(Slot {
                        wire,
                        sid: resp.session_id,
                        passwd: resp.passwd.clone(),
                        label: self.opened - 1,
                        last_zxid: 0,
                    });
                }
                Ok(_) => {
                    self.trace.push("open refused".into());
                    return None;
                }
                Err(e) => {
                    self.trace.push(format!("open failed: {e:?}"));
                    return None;
                }
            }
        }
        self.slots[s].as_mut()
    }

    fn step(&mut self, i: usize, st: &Step) {
        let s = usize::from(st.s) % 3;
        let Some(slot) = self.slot(s) else { return };
        let label = slot.label;
        let req = request(&st.op, slot.last_zxid);
        let result = slot.wire.call(&req, IO);
        if let Ok(r) = &result {
            slot.last_zxid = slot.last_zxid.max(r.header.zxid);
        }
        let (text, ends) = match &result {
            Ok(r) => {
                let ends = matches!(st.op, Op::CloseSession)
                    || (matches!(st.op, Op::Auth { .. }) && r.header.err != 0);
                (self.reply(r, &st.op), ends)
            }
            Err(WireError::Closed) => ("connection closed".into(), true),
            Err(WireError::Timeout) => ("no reply".into(), true),
            Err(WireError::Protocol(e)) => (format!("protocol error: {e}"), true),
        };
        let mut line = format!("{i} s{label}: {text}");
        if ends {
            let mut slot = self.slots[s].take().expect("slot");
            let closed = result.is_err() || slot.wire.closed_within(Duration::from_secs(3));
            if result.is_ok() {
                line.push_str(if closed { " [closed]" } else { " [left open]" });
            }
            if !matches!(st.op, Op::CloseSession) || result.is_err() {
                self.dangling
                    .push((slot.sid, std::mem::take(&mut slot.passwd)));
            }
        }
        self.trace.push(line);
    }

    /// Flushes every session's pending notifications, then closes them in slot order.
    fn finish(&mut self) {
        for s in 0..3 {
            if let Some(slot) = &mut self.slots[s] {
                let label = slot.label;
                let line = match slot.wire.call(&Request::Ping, IO) {
                    Ok(r) => format!("s{label} flush: {}", events(&r)),
                    Err(e) => format!("s{label} flush: {e:?}"),
                };
                self.trace.push(line);
            }
        }
        for s in 0..3 {
            if let Some(mut slot) = self.slots[s].take() {
                let label = slot.label;
                let line = match slot.wire.call(&Request::CloseSession, IO) {
                    Ok(r) => {
                        let text = self.reply(&r, &Op::CloseSession);
                        let closed = slot.wire.closed_within(Duration::from_secs(3));
                        format!(
                            "s{label} close: {text}{}",
                            if closed { "" } else { " [left open]" }
                        )
                    }
                    Err(e) => format!("s{label} close: {e:?}"),
                };
                self.trace.push(line);
            }
        }
        for (sid, passwd) in std::mem::take(&mut self.dangling) {
            let Ok(mut w) = Wire::open(self.sys.addr) else {
                continue;
            };
            let req = ConnectRequest {
                session_id: sid,
                passwd,
                ..new_session_request()
            };
            if let Ok(resp) = w.handshake(&req) {
                if resp.session_id == sid {
                    let _ = w.call(&Request::CloseSession, IO);
                }
            }
        }
    }
}

fn events(r: &Reply) -> String {
    let mut s = String::new();
    for e in &r.events {
        let _ = write!(s, "event({} {} {:?}) ", e.event_type, e.state, e.path);
    }
    s
}

fn show_data(d: Option<&Bytes>) -> String {
    match d {
        None => "null".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

fn show_acl(acl: &[Acl]) -> String {
    let v: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.perms, a.id.scheme, a.id.id))
        .collect();
    format!("{v:?}")
}

/// Runs a case against one server: its normalised trace.
fn run_case(sys: &mut System, steps: &[Step]) -> Vec<String> {
    let root_base = sys.setup();
    let mut run = Run {
        sys,
        zxids: HashMap::new(),
        sessions: HashMap::new(),
        opened: 0,
        slots: [None, None, None],
        dangling: Vec::new(),
        root_base,
        trace: Vec::new(),
    };
    for (i, st) in steps.iter().enumerate() {
        run.step(i, st);
    }
    run.finish();
    let trace = std::mem::take(&mut run.trace);
    sys.cleanup();
    trace
}

// ----- comparing ----------------------------------------------------------------------------------

fn describe(steps: &[Step], expected: &[String], actual: &[String], who: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut out = String::from("steps:\n");
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {i}: {}",
            serde_json::to_string(s).expect("serialise")
        );
    }
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let _ = writeln!(out, "first divergence at trace line {first}:");
    for i in 0..expected.len().max(actual.len()) {
        let e = expected.get(i).map_or("<none>", String::as_str);
        let a = actual.get(i).map_or("<none>", String::as_str);
        if e == a {
            let _ = writeln!(out, "    {e}");
        } else {
            let _ = writeln!(out, "  - zookeeper: {e}\n  + {who}: {a}");
        }
    }
    Some(out)
}

fn zabd() -> Standalone {
    Standalone::start(
        "extendedTypesEnabled=true\nmaxClientCnxns=60\n",
        &[
            "--super-digest",
            SUPER_DIGEST,
            "--container-check-ms",
            "2000000000",
        ],
    )
}

fn coverage(cases: &[Recorded]) -> BTreeMap<String, (usize, usize)> {
    // kind -> (count, failing count)
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in cases {
        for (i, st) in c.steps.iter().enumerate() {
            let prefix = format!("{i} ");
            let failed = c
                .trace
                .iter()
                .find(|l| l.starts_with(&prefix))
                .is_some_and(|l| !l.contains("err=0 "));
            let e = out.entry(st.op.kind()).or_default();
            e.0 += 1;
            e.1 += usize::from(failed);
            match &st.op {
                Op::Multi { ops } | Op::MultiRead { ops } => {
                    for o in ops {
                        let e = out.entry(format!("  in multi: {}", o.kind())).or_default();
                        e.0 += 1;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn print_coverage(cases: &[Recorded]) {
    eprintln!("operations (count, of which failed):");
    for (k, (n, f)) in coverage(cases) {
        eprintln!("  {k:<40} {n:>5} {f:>5}");
    }
}

#[test]
fn zabd_answers_like_zookeeper() {
    match std::env::var("ZAB_REFERENCE_ZK") {
        Ok(addr) if !addr.is_empty() => live(&addr),
        _ => replay_corpus(),
    }
}

fn replay_corpus() {
    let text = std::fs::read_to_string(corpus_path()).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (record it with ci/differential.sh --record)",
            corpus_path().display()
        )
    });
    let cases: Vec<Recorded> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a corpus line"))
        .collect();
    assert!(
        cases.len() >= 200,
        "the corpus holds only {} cases",
        cases.len()
    );
    // Every operation the test generates is in the corpus, succeeding and failing.
    let cov = coverage(&cases);
    for kind in [
        "create(op 1, flags 0)",
        "create(op 15, flags 1)",
        "create(op 1, flags 2)",
        "create(op 15, flags 3)",
        "create(op 19, flags 4)",
        "create(op 21, flags 5)",
        "create(op 21, flags 6)",
        "delete",
        "exists",
        "getData",
        "setData",
        "getAcl",
        "setAcl",
        "getChildren",
        "getChildren2",
        "getAllChildrenNumber",
        "getEphemerals",
        "sync",
        "check",
        "multi",
        "multiRead",
        "auth",
        "setWatches",
        "setWatches2",
        "addWatch",
        "removeWatches",
        "checkWatches",
        "whoAmI",
        "closeSession",
    ] {
        let (n, _) = cov.get(kind).copied().unwrap_or_default();
        assert!(n >= 3, "the corpus has {n} {kind} operations");
    }
    let server = zabd();
    let mut sys = System::connect("zabd", server.addr);
    let start = Instant::now();
    let mut failures = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let actual = run_case(&mut sys, &c.steps);
        if let Some(d) = describe(&c.steps, &c.trace, &actual, "zabd") {
            failures.push(format!("corpus case {k}:\n{d}"));
        }
    }
    eprintln!(
        "replayed {} cases ({} steps) in {:.1?}",
        cases.len(),
        cases.iter().map(|c| c.steps.len()).sum::<usize>(),
        start.elapsed()
    );
    if !failures.is_empty() {
        for f in failures.iter().take(5) {
            eprintln!("{f}");
        }
        panic!(
            "{} of {} corpus cases diverge from ZooKeeper",
            failures.len(),
            cases.len()
        );
    }
}

fn live(addr: &str) {
    let zk_addr: SocketAddr = addr.parse().expect("ZAB_REFERENCE_ZK=host:port");
    let cases: u32 = std::env::var("ZAB_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("ZAB_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_d1ff);
    let record = std::env::var("ZAB_RECORD_CORPUS").is_ok_and(|v| v == "1");
    let server = zabd();
    let zk = std::cell::RefCell::new(System::connect("zookeeper", zk_addr));
    let zab = std::cell::RefCell::new(System::connect("zabd", server.addr));
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let recorded = std::cell::RefCell::new(Vec::new());
    let current = std::cell::RefCell::new(String::new());
    let start = Instant::now();
    let result = runner.run(&case(), |steps| {
        if zk.borrow().broken.is_some() || zab.borrow().broken.is_some() {
            return Ok(());
        }
        *current.borrow_mut() = serde_json::to_string(&steps).expect("serialise");
        let expected = run_case(&mut zk.borrow_mut(), &steps);
        let actual = run_case(&mut zab.borrow_mut(), &steps);
        let diff = describe(&steps, &expected, &actual, "zabd");
        recorded.borrow_mut().push(Recorded {
            steps,
            trace: expected,
        });
        match diff {
            None => Ok(()),
            Some(d) => Err(TestCaseError::fail(d)),
        }
    });
    let recorded = recorded.into_inner();
    for sys in [&zk, &zab] {
        if let Some(b) = &sys.borrow().broken {
            panic!(
                "a server stopped answering: {b}\nduring the case {}",
                current.borrow()
            );
        }
    }
    eprintln!(
        "ran {} cases against ZooKeeper at {addr} and zabd in {:.1?} (seed {seed})",
        recorded.len(),
        start.elapsed()
    );
    if let Err(e) = result {
        panic!("zabd diverges from ZooKeeper (shrunk):\n{e}");
    }
    print_coverage(&recorded);
    if record {
        let mut text = String::new();
        for c in &recorded {
            text.push_str(&serde_json::to_string(c).expect("serialise"));
            text.push('\n');
        }
        std::fs::create_dir_all(corpus_path().parent().expect("dir")).expect("mkdir");
        std::fs::write(corpus_path(), text).expect("write the corpus");
        eprintln!(
            "recorded {} cases in {}",
            recorded.len(),
            corpus_path().display()
        );
    }
}
