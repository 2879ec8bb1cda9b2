//! The operations of the differential test: every opcode a client sends, as proptest values
//! and as the requests they become (`request`).

use super::*;

/// An ACL a request carries, by name (so the corpus stays readable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AclSet {
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

pub(crate) fn acl(set: AclSet) -> Vec<Acl> {
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
pub(crate) enum Rel {
    Zero,
    Last,
}

/// One client operation. `k` of a create is its opcode (1, 15, 19, 21); `ttl` is sent only
/// with opcode 21.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub(crate) enum Op {
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
    pub(crate) fn kind(&self) -> String {
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
    pub(crate) fn path(&self) -> Option<&str> {
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
pub(crate) struct Step {
    pub(crate) s: u8,
    #[serde(flatten)]
    pub(crate) op: Op,
}

/// A recorded case: its steps and ZooKeeper's normalised trace.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Recorded {
    pub(crate) steps: Vec<Step>,
    pub(crate) trace: Vec<String>,
}

pub(crate) fn bytes(d: &Option<String>) -> Option<Bytes> {
    d.as_ref().map(|s| Bytes::copy_from_slice(s.as_bytes()))
}

pub(crate) fn create_request(p: &str, d: &Option<String>, set: AclSet, f: i32) -> CreateRequest {
    CreateRequest {
        path: p.to_string(),
        data: bytes(d),
        acl: acl(set),
        flags: f,
    }
}

pub(crate) fn multi_op(o: &Op) -> MultiOp {
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

pub(crate) fn read_op(o: &Op) -> MultiReadOp {
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

pub(crate) fn request(o: &Op, last_zxid: i64) -> Request {
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
