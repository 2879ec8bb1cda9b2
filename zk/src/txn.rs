//! The server's replicated transaction ([`Txn`], the Zab payload): a header (session, cxid,
//! leader time) and a body mirroring ZooKeeper's txn records (`CreateSessionTxn`,
//! `CloseSessionTxn`, `CreateTxn`/`CreateContainerTxn`/`CreateTTLTxn`, `DeleteTxn`,
//! `SetDataTxn`, `SetACLTxn`, `CheckVersionTxn`, `MultiTxn`, `ErrorTxn`); its compact,
//! versioned binary encoding (log and quorum wire); and its canonical [`ZnodeTxn`] view.

use crate::jute::{JuteError, Reader, Writer};
use crate::proto::Acl;
use bytes::Bytes;
use std::borrow::Cow;
use std::fmt;
use thiserror::Error;
use zab_spec::{ErrorCode, Payload, SessionId, ZnodeTxn};

/// The encoding version written by [`Txn::encode`].
pub const TXN_FORMAT_VERSION: u8 = 1;

/// ZooKeeper's `TxnHeader` minus the zxid (Zab assigns and carries it) and the type (the
/// body's variant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxnHeader {
    /// The session that issued the request (for `createSession`: the new session; for
    /// leader-internal requests such as container deletion: session 0).
    pub session: SessionId,
    /// The client's xid for the request (0 for internal requests).
    pub cxid: i32,
    /// The leader's wall-clock time in ms when it prepared the request (ctime/mtime).
    pub time: i64,
}

/// What kind of node a create makes, as the stored `ephemeralOwner` encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NodeKind {
    /// A persistent node (owner 0).
    Persistent,
    /// An ephemeral node of this session.
    Ephemeral(SessionId),
    /// A container (owner `0x8000000000000000`).
    Container,
    /// A TTL node with this TTL in ms (owner `0xFF00000000000000 | ttl`).
    Ttl(i64),
}

/// `EphemeralType.CONTAINER_EPHEMERAL_OWNER`.
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// The high byte marking an extended (TTL) ephemeral owner.
const EXTENDED_MASK: i64 = 0xff00_0000_0000_0000_u64 as i64;
/// `EphemeralType.TTL.maxValue()`: the largest TTL (40 bits of ms).
pub const MAX_TTL: i64 = 0x0000_00ff_ffff_ffff;

impl NodeKind {
    /// The stored `ephemeralOwner`.
    #[must_use]
    pub fn ephemeral_owner(self) -> i64 {
        match self {
            NodeKind::Persistent => 0,
            NodeKind::Ephemeral(s) => s.0,
            NodeKind::Container => CONTAINER_OWNER,
            NodeKind::Ttl(ttl) => EXTENDED_MASK | (ttl & MAX_TTL),
        }
    }

    /// Decodes a stored `ephemeralOwner` (`EphemeralType.get` with extended types on: session
    /// ids must not have the top byte 0xFF, i.e. server ids ≤ 254, as in ZooKeeper).
    #[must_use]
    pub fn from_ephemeral_owner(owner: i64) -> NodeKind {
        if owner == 0 {
            NodeKind::Persistent
        } else if owner == CONTAINER_OWNER {
            NodeKind::Container
        } else if owner & EXTENDED_MASK == EXTENDED_MASK {
            NodeKind::Ttl(owner & MAX_TTL)
        } else {
            NodeKind::Ephemeral(SessionId(owner))
        }
    }

    /// `ephemeralOwner` as clients see it (`DataNode.getClientEphemeralOwner`): 0 for
    /// containers and TTL nodes.
    #[must_use]
    pub fn client_ephemeral_owner(self) -> i64 {
        match self {
            NodeKind::Ephemeral(s) => s.0,
            _ => 0,
        }
    }
}

/// A node creation (`CreateTxn`, `CreateContainerTxn`, `CreateTTLTxn`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CreateTxn {
    /// The final path (a sequential suffix already appended).
    pub path: String,
    /// The data (null stays null).
    pub data: Option<Bytes>,
    /// The fixed-up ACL.
    pub acl: Vec<Acl>,
    /// Persistent, ephemeral, container or TTL.
    pub kind: NodeKind,
    /// The parent's stored cversion after this create.
    pub parent_cversion: i32,
    /// Whether the name got a sequence suffix.
    pub sequential: bool,
    /// Whether the reply carries the stat (`create2`, `createContainer`, `createTTL`; in a
    /// multi only containers and TTL nodes, since ZooKeeper turns a multi's create2 into a
    /// create).
    pub with_stat: bool,
}

/// A transaction body.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxnBody {
    /// `createSession` with the negotiated timeout and the session's password.
    CreateSession {
        /// Session timeout, ms.
        timeout: i32,
        /// The password the creating server gave the session (random to anyone without that
        /// server's secret), so that every replica can check it when the client moves;
        /// `None` in transactions written before passwords travelled (and in ZooKeeper's).
        passwd: Option<[u8; 16]>,
    },
    /// `closeSession`; the ephemerals to delete as the leader saw them (committed and
    /// outstanding). Applying also deletes any other ephemeral of the session.
    CloseSession {
        /// Paths to delete.
        ephemerals: Vec<String>,
    },
    /// A create.
    Create(CreateTxn),
    /// `delete`.
    Delete {
        /// The node.
        path: String,
    },
    /// `deleteContainer` (leader-internal: an empty container or an expired TTL node).
    DeleteContainer {
        /// The node.
        path: String,
    },
    /// `setData` with the node's new version.
    SetData {
        /// The node.
        path: String,
        /// The new data.
        data: Option<Bytes>,
        /// The new data version.
        version: i32,
    },
    /// `setACL` with the node's new ACL version.
    SetAcl {
        /// The node.
        path: String,
        /// The new ACL.
        acl: Vec<Acl>,
        /// The new ACL version.
        version: i32,
    },
    /// `check` (a version check; no effect). `version` is the checked version + 1, as in
    /// ZooKeeper's `CheckVersionTxn`.
    Check {
        /// The node.
        path: String,
        /// Checked version + 1.
        version: i32,
    },
    /// `multi`: the sub-transactions, applied with one zxid. A failed multi is a multi of
    /// [`TxnBody::Error`]s (0 before the failing op, its code, -2 after it).
    Multi(Vec<TxnBody>),
    /// A failed write (`ErrorTxn`).
    Error(ErrorCode),
}

/// A transaction: what Zab replicates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Txn {
    /// Session, cxid and time.
    pub header: TxnHeader,
    /// What it does.
    pub body: TxnBody,
}

/// Why bytes are not a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TxnDecodeError {
    /// Unknown format version.
    #[error("unknown txn format version {0}")]
    Version(u8),
    /// Unknown body tag.
    #[error("unknown txn body tag {0}")]
    Tag(u8),
    /// Unknown node kind tag.
    #[error("unknown node kind tag {0}")]
    Kind(u8),
    /// An error code ZooKeeper does not define.
    #[error("unknown error code {0}")]
    ErrorCode(i32),
    /// A multi inside a multi.
    #[error("nested multi")]
    NestedMulti,
    /// Bytes left after the transaction.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// Truncated or malformed field.
    #[error(transparent)]
    Jute(#[from] JuteError),
}

mod tag {
    pub const CREATE_SESSION: u8 = 1;
    pub const CLOSE_SESSION: u8 = 2;
    pub const CREATE: u8 = 3;
    pub const DELETE: u8 = 4;
    pub const DELETE_CONTAINER: u8 = 5;
    pub const SET_DATA: u8 = 6;
    pub const SET_ACL: u8 = 7;
    pub const CHECK: u8 = 8;
    pub const MULTI: u8 = 9;
    pub const ERROR: u8 = 10;
    pub const CREATE_SESSION_PASSWD: u8 = 11;

    pub const KIND_PERSISTENT: u8 = 0;
    pub const KIND_EPHEMERAL: u8 = 1;
    pub const KIND_CONTAINER: u8 = 2;
    pub const KIND_TTL: u8 = 3;
}

fn write_acl(w: &mut Writer, acl: &[Acl]) {
    w.write_vec(acl, |w, a| {
        w.write_i32(a.perms);
        w.write_str(&a.id.scheme);
        w.write_str(&a.id.id);
    });
}

fn read_acl(r: &mut Reader<'_>) -> Result<Vec<Acl>, JuteError> {
    Ok(r.read_vec(|r| {
        Ok(Acl {
            perms: r.read_i32()?,
            id: crate::proto::Id {
                scheme: r.read_string("scheme")?,
                id: r.read_string("id")?,
            },
        })
    })?
    .unwrap_or_default())
}

impl TxnBody {
    fn encode(&self, w: &mut Writer) {
        match self {
            TxnBody::CreateSession {
                timeout,
                passwd: None,
            } => {
                w.write_u8(tag::CREATE_SESSION);
                w.write_i32(*timeout);
            }
            TxnBody::CreateSession {
                timeout,
                passwd: Some(p),
            } => {
                w.write_u8(tag::CREATE_SESSION_PASSWD);
                w.write_i32(*timeout);
                w.write_raw(p);
            }
            TxnBody::CloseSession { ephemerals } => {
                w.write_u8(tag::CLOSE_SESSION);
                w.write_string_vec(ephemerals);
            }
            TxnBody::Create(c) => {
                w.write_u8(tag::CREATE);
                w.write_str(&c.path);
                w.write_buffer(c.data.as_deref());
                write_acl(w, &c.acl);
                match c.kind {
                    NodeKind::Persistent => w.write_u8(tag::KIND_PERSISTENT),
                    NodeKind::Ephemeral(s) => {
                        w.write_u8(tag::KIND_EPHEMERAL);
                        w.write_i64(s.0);
                    }
                    NodeKind::Container => w.write_u8(tag::KIND_CONTAINER),
                    NodeKind::Ttl(ttl) => {
                        w.write_u8(tag::KIND_TTL);
                        w.write_i64(ttl);
                    }
                }
                w.write_i32(c.parent_cversion);
                w.write_u8(u8::from(c.sequential) | (u8::from(c.with_stat) << 1));
            }
            TxnBody::Delete { path } => {
                w.write_u8(tag::DELETE);
                w.write_str(path);
            }
            TxnBody::DeleteContainer { path } => {
                w.write_u8(tag::DELETE_CONTAINER);
                w.write_str(path);
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => {
                w.write_u8(tag::SET_DATA);
                w.write_str(path);
                w.write_buffer(data.as_deref());
                w.write_i32(*version);
            }
            TxnBody::SetAcl { path, acl, version } => {
                w.write_u8(tag::SET_ACL);
                w.write_str(path);
                write_acl(w, acl);
                w.write_i32(*version);
            }
            TxnBody::Check { path, version } => {
                w.write_u8(tag::CHECK);
                w.write_str(path);
                w.write_i32(*version);
            }
            TxnBody::Multi(ops) => {
                w.write_u8(tag::MULTI);
                w.write_vec(ops, |w, o| o.encode(w));
            }
            TxnBody::Error(code) => {
                w.write_u8(tag::ERROR);
                w.write_i32(code.code());
            }
        }
    }

    fn decode(r: &mut Reader<'_>, nested: bool) -> Result<TxnBody, TxnDecodeError> {
        let t = r.read_u8()?;
        Ok(match t {
            tag::CREATE_SESSION => TxnBody::CreateSession {
                timeout: r.read_i32()?,
                passwd: None,
            },
            tag::CREATE_SESSION_PASSWD => {
                let timeout = r.read_i32()?;
                let mut p = [0u8; 16];
                for b in &mut p {
                    *b = r.read_u8()?;
                }
                TxnBody::CreateSession {
                    timeout,
                    passwd: Some(p),
                }
            }
            tag::CLOSE_SESSION => TxnBody::CloseSession {
                ephemerals: r.read_vec(|r| r.read_string("path"))?.unwrap_or_default(),
            },
            tag::CREATE => {
                let path = r.read_string("path")?;
                let data = r.read_buffer()?;
                let acl = read_acl(r)?;
                let kind = match r.read_u8()? {
                    tag::KIND_PERSISTENT => NodeKind::Persistent,
                    tag::KIND_EPHEMERAL => NodeKind::Ephemeral(SessionId(r.read_i64()?)),
                    tag::KIND_CONTAINER => NodeKind::Container,
                    tag::KIND_TTL => NodeKind::Ttl(r.read_i64()?),
                    k => return Err(TxnDecodeError::Kind(k)),
                };
                let parent_cversion = r.read_i32()?;
                let flags = r.read_u8()?;
                if flags & !3 != 0 {
                    return Err(JuteError::Invalid("create flags").into());
                }
                TxnBody::Create(CreateTxn {
                    path,
                    data,
                    acl,
                    kind,
                    parent_cversion,
                    sequential: flags & 1 != 0,
                    with_stat: flags & 2 != 0,
                })
            }
            tag::DELETE => TxnBody::Delete {
                path: r.read_string("path")?,
            },
            tag::DELETE_CONTAINER => TxnBody::DeleteContainer {
                path: r.read_string("path")?,
            },
            tag::SET_DATA => TxnBody::SetData {
                path: r.read_string("path")?,
                data: r.read_buffer()?,
                version: r.read_i32()?,
            },
            tag::SET_ACL => TxnBody::SetAcl {
                path: r.read_string("path")?,
                acl: read_acl(r)?,
                version: r.read_i32()?,
            },
            tag::CHECK => TxnBody::Check {
                path: r.read_string("path")?,
                version: r.read_i32()?,
            },
            tag::MULTI => {
                if nested {
                    return Err(TxnDecodeError::NestedMulti);
                }
                let n = r.read_i32()?;
                let n = usize::try_from(n).map_err(|_| JuteError::NegativeLength(n))?;
                let mut ops = Vec::with_capacity(n.min(r.remaining()));
                for _ in 0..n {
                    ops.push(TxnBody::decode(r, true)?);
                }
                TxnBody::Multi(ops)
            }
            tag::ERROR => {
                let c = r.read_i32()?;
                TxnBody::Error(ErrorCode::from_code(c).ok_or(TxnDecodeError::ErrorCode(c))?)
            }
            t => return Err(TxnDecodeError::Tag(t)),
        })
    }

    /// The canonical view of this body, `None` for bodies without a canonical effect
    /// (`setACL` and `check`).
    fn canonical(&self, header: &TxnHeader) -> Option<ZnodeTxn> {
        Some(match self {
            TxnBody::CreateSession { .. } => ZnodeTxn::CreateSession {
                session: header.session,
            },
            TxnBody::CloseSession { .. } => ZnodeTxn::CloseSession {
                session: header.session,
            },
            TxnBody::Create(c) => ZnodeTxn::Create {
                path: c.path.as_str().into(),
                ephemeral_owner: match c.kind {
                    NodeKind::Ephemeral(s) => Some(s),
                    _ => None,
                },
                sequential: c.sequential,
            },
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => ZnodeTxn::Delete {
                path: path.as_str().into(),
            },
            TxnBody::SetData { path, version, .. } => ZnodeTxn::SetData {
                path: path.as_str().into(),
                version: *version,
            },
            TxnBody::SetAcl { .. } | TxnBody::Check { .. } => return None,
            TxnBody::Multi(ops) => {
                ZnodeTxn::Multi(ops.iter().filter_map(|o| o.canonical(header)).collect())
            }
            TxnBody::Error(code) => ZnodeTxn::Error { code: *code },
        })
    }
}

impl Txn {
    /// A transaction.
    #[must_use]
    pub fn new(header: TxnHeader, body: TxnBody) -> Txn {
        Txn { header, body }
    }

    /// The compact binary encoding: version byte, header (session i64, cxid i32, time i64),
    /// then the body (a tag byte and its fields, big-endian, jute-style lengths).
    #[must_use]
    pub fn encode(&self) -> Bytes {
        let mut w = Writer::with_capacity(64);
        self.encode_into(&mut w);
        w.into_bytes()
    }

    /// Appends the encoding to `w`.
    pub fn encode_into(&self, w: &mut Writer) {
        w.write_u8(TXN_FORMAT_VERSION);
        w.write_i64(self.header.session.0);
        w.write_i32(self.header.cxid);
        w.write_i64(self.header.time);
        self.body.encode(w);
    }

    /// Decodes exactly one transaction (no trailing bytes).
    pub fn decode(buf: &[u8]) -> Result<Txn, TxnDecodeError> {
        let mut r = Reader::with_max_buffer(buf, usize::MAX);
        let v = r.read_u8()?;
        if v != TXN_FORMAT_VERSION {
            return Err(TxnDecodeError::Version(v));
        }
        let header = TxnHeader {
            session: SessionId(r.read_i64()?),
            cxid: r.read_i32()?,
            time: r.read_i64()?,
        };
        let body = TxnBody::decode(&mut r, false)?;
        if !r.is_empty() {
            return Err(TxnDecodeError::Trailing(r.remaining()));
        }
        Ok(Txn { header, body })
    }

    /// The canonical view (`ZnodeTxn`): sequential creates are marked, containers and TTL
    /// nodes are persistent, `deleteContainer` is a delete, and `setACL`/`check` (no
    /// canonical effect) are an empty multi.
    #[must_use]
    pub fn to_znode_txn(&self) -> ZnodeTxn {
        self.body
            .canonical(&self.header)
            .unwrap_or(ZnodeTxn::Multi(Vec::new()))
    }
}

impl Payload for Txn {
    fn znode_txn(&self) -> Cow<'_, ZnodeTxn> {
        Cow::Owned(self.to_znode_txn())
    }
}

impl fmt::Display for TxnBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnBody::CreateSession { timeout, .. } => write!(f, "createSession({timeout}ms)"),
            TxnBody::CloseSession { ephemerals } => {
                write!(f, "closeSession({} ephemerals)", ephemerals.len())
            }
            TxnBody::Create(c) => match c.kind {
                NodeKind::Persistent => write!(f, "create({})", c.path),
                NodeKind::Ephemeral(s) => write!(f, "create({}, ephemeral of {s})", c.path),
                NodeKind::Container => write!(f, "create({}, container)", c.path),
                NodeKind::Ttl(t) => write!(f, "create({}, ttl {t}ms)", c.path),
            },
            TxnBody::Delete { path } => write!(f, "delete({path})"),
            TxnBody::DeleteContainer { path } => write!(f, "deleteContainer({path})"),
            TxnBody::SetData { path, version, .. } => write!(f, "setData({path}, v{version})"),
            TxnBody::SetAcl { path, version, .. } => write!(f, "setACL({path}, av{version})"),
            TxnBody::Check { path, version } => write!(f, "check({path}, v{version})"),
            TxnBody::Multi(ops) => {
                write!(f, "multi(")?;
                for (k, o) in ops.iter().enumerate() {
                    if k > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{o}")?;
                }
                write!(f, ")")
            }
            TxnBody::Error(code) => write!(f, "error({})", code.code()),
        }
    }
}

impl fmt::Display for Txn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} by {}", self.body, self.header.session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(kind: NodeKind, sequential: bool) -> TxnBody {
        TxnBody::Create(CreateTxn {
            path: "/a/q-0000000003".into(),
            data: Some(Bytes::from_static(b"x")),
            acl: crate::proto::ids::open_acl_unsafe(),
            kind,
            parent_cversion: 4,
            sequential,
            with_stat: true,
        })
    }

    fn txn(body: TxnBody) -> Txn {
        Txn::new(
            TxnHeader {
                session: SessionId(0x0100_0014_f448_0003),
                cxid: 7,
                time: 1_700_000_000_000,
            },
            body,
        )
    }

    #[test]
    fn every_body_round_trips() {
        let bodies = vec![
            TxnBody::CreateSession {
                timeout: 30000,
                passwd: Some([7; 16]),
            },
            TxnBody::CloseSession {
                ephemerals: vec!["/e".into()],
            },
            create(NodeKind::Persistent, false),
            create(NodeKind::Ephemeral(SessionId(5)), true),
            create(NodeKind::Container, false),
            create(NodeKind::Ttl(1000), true),
            TxnBody::Delete { path: "/a".into() },
            TxnBody::DeleteContainer { path: "/c".into() },
            TxnBody::SetData {
                path: "/a".into(),
                data: None,
                version: 3,
            },
            TxnBody::SetAcl {
                path: "/a".into(),
                acl: vec![],
                version: 1,
            },
            TxnBody::Check {
                path: "/a".into(),
                version: 2,
            },
            TxnBody::Multi(vec![
                TxnBody::Delete { path: "/a".into() },
                TxnBody::Error(ErrorCode::Ok),
            ]),
            TxnBody::Error(ErrorCode::NodeExists),
        ];
        for b in bodies {
            let t = txn(b);
            assert_eq!(Txn::decode(&t.encode()), Ok(t.clone()), "{t}");
        }
    }

    #[test]
    fn corrupt_encodings_are_errors() {
        let good = txn(create(NodeKind::Persistent, false)).encode();
        for cut in 0..good.len() {
            assert!(Txn::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut v = good.to_vec();
        v[0] = 9;
        assert_eq!(Txn::decode(&v), Err(TxnDecodeError::Version(9)));
        let mut trailing = good.to_vec();
        trailing.push(0);
        assert_eq!(Txn::decode(&trailing), Err(TxnDecodeError::Trailing(1)));
        let nested = txn(TxnBody::Multi(vec![TxnBody::Multi(vec![])])).encode();
        assert_eq!(Txn::decode(&nested), Err(TxnDecodeError::NestedMulti));
    }

    #[test]
    fn canonical_view_marks_sequential_and_flattens_kinds() {
        let t = txn(create(NodeKind::Ephemeral(SessionId(5)), true));
        assert_eq!(
            t.to_znode_txn(),
            ZnodeTxn::Create {
                path: "/a/q-0000000003".into(),
                ephemeral_owner: Some(SessionId(5)),
                sequential: true
            }
        );
        for kind in [NodeKind::Container, NodeKind::Ttl(5)] {
            assert_eq!(
                txn(create(kind, false)).to_znode_txn(),
                ZnodeTxn::Create {
                    path: "/a/q-0000000003".into(),
                    ephemeral_owner: None,
                    sequential: false
                }
            );
        }
        assert_eq!(
            txn(TxnBody::CreateSession {
                timeout: 1,
                passwd: None,
            })
            .to_znode_txn(),
            ZnodeTxn::CreateSession {
                session: SessionId(0x0100_0014_f448_0003)
            }
        );
        assert_eq!(
            txn(TxnBody::DeleteContainer { path: "/c".into() }).to_znode_txn(),
            ZnodeTxn::Delete { path: "/c".into() }
        );
        assert_eq!(
            txn(TxnBody::SetAcl {
                path: "/a".into(),
                acl: vec![],
                version: 1
            })
            .to_znode_txn(),
            ZnodeTxn::Multi(vec![])
        );
        assert_eq!(
            txn(TxnBody::Multi(vec![
                TxnBody::Check {
                    path: "/a".into(),
                    version: 1
                },
                TxnBody::Delete { path: "/a".into() }
            ]))
            .to_znode_txn(),
            ZnodeTxn::Multi(vec![ZnodeTxn::Delete { path: "/a".into() }])
        );
    }

    #[test]
    fn ephemeral_owner_encoding_matches_ephemeral_type() {
        assert_eq!(NodeKind::Container.ephemeral_owner(), i64::MIN);
        assert_eq!(
            NodeKind::Ttl(100).ephemeral_owner(),
            0xff00_0000_0000_0064_u64 as i64
        );
        for k in [
            NodeKind::Persistent,
            NodeKind::Container,
            NodeKind::Ttl(MAX_TTL),
            NodeKind::Ephemeral(SessionId(0x0100_0014_f448_0003)),
        ] {
            assert_eq!(NodeKind::from_ephemeral_owner(k.ephemeral_owner()), k);
        }
        assert_eq!(NodeKind::Container.client_ephemeral_owner(), 0);
        assert_eq!(NodeKind::Ttl(9).client_ephemeral_owner(), 0);
    }
}
