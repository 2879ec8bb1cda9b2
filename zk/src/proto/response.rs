//! Reply bodies ([`Response`], [`MultiResult`]) and reply frames: `ReplyHeader` + optional
//! body, notifications (`xid -1, zxid -1`), the `ConnectResponse` first frame; and the client
//! side decoding of all of them.
//!
//! A reply with `err != 0` has no body (16-byte frame), except multi/multiRead whose header
//! carries `err = 0` and whose failures are per-op [`MultiResult::Error`]s.

use super::op;
use super::records::*;
use super::xid;
use crate::jute::{JuteError, Reader, Record, Writer};
use bytes::Bytes;

/// One result of a multi (`OpResult`), with its `MultiHeader.type`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MultiResult {
    /// Type 1 (`create`, also a multi's `create2`): the created path.
    Create {
        /// The created path.
        path: String,
    },
    /// Type 15 (`createContainer` / `createTTL` in a multi): path and stat.
    Create2 {
        /// The created path.
        path: String,
        /// Its stat.
        stat: Stat,
    },
    /// Type 2.
    Delete,
    /// Type 5.
    SetData {
        /// The new stat.
        stat: Stat,
    },
    /// Type 13.
    Check,
    /// Type 8 (multiRead).
    GetChildren {
        /// The children.
        children: Vec<String>,
    },
    /// Type 4 (multiRead).
    GetData {
        /// The data.
        data: Option<Bytes>,
        /// The stat.
        stat: Stat,
    },
    /// Type -1 with the error code (0 for ops before a failed op of a write multi, -2 for
    /// ops after it).
    Error {
        /// The code.
        err: i32,
    },
}

impl MultiResult {
    /// The `MultiHeader.type`.
    #[must_use]
    pub fn op(&self) -> i32 {
        match self {
            MultiResult::Create { .. } => op::CREATE,
            MultiResult::Create2 { .. } => op::CREATE2,
            MultiResult::Delete => op::DELETE,
            MultiResult::SetData { .. } => op::SET_DATA,
            MultiResult::Check => op::CHECK,
            MultiResult::GetChildren { .. } => op::GET_CHILDREN,
            MultiResult::GetData { .. } => op::GET_DATA,
            MultiResult::Error { .. } => op::ERROR,
        }
    }

    fn write(&self, w: &mut Writer) {
        let err = match self {
            MultiResult::Error { err } => *err,
            _ => 0,
        };
        MultiHeader {
            op: self.op(),
            done: false,
            err,
        }
        .write(w);
        match self {
            MultiResult::Create { path } => w.write_str(path),
            MultiResult::Create2 { path, stat } => {
                w.write_str(path);
                stat.write(w);
            }
            MultiResult::Delete | MultiResult::Check => {}
            MultiResult::SetData { stat } => stat.write(w),
            MultiResult::GetChildren { children } => w.write_string_vec(children),
            MultiResult::GetData { data, stat } => {
                w.write_buffer(data.as_deref());
                stat.write(w);
            }
            MultiResult::Error { err } => w.write_i32(*err),
        }
    }

    fn read_all(r: &mut Reader<'_>) -> Result<Vec<MultiResult>, JuteError> {
        let mut out = Vec::new();
        loop {
            let h = MultiHeader::read(r)?;
            if h.done {
                return Ok(out);
            }
            out.push(match h.op {
                op::CREATE => MultiResult::Create {
                    path: r.read_string("path")?,
                },
                op::CREATE2 => {
                    let c: Create2Response = r.read()?;
                    MultiResult::Create2 {
                        path: c.path,
                        stat: c.stat,
                    }
                }
                op::DELETE => MultiResult::Delete,
                op::SET_DATA => MultiResult::SetData { stat: r.read()? },
                op::CHECK => MultiResult::Check,
                op::GET_CHILDREN => MultiResult::GetChildren {
                    children: r.read_string_vec()?,
                },
                op::GET_DATA => {
                    let g: GetDataResponse = r.read()?;
                    MultiResult::GetData {
                        data: g.data,
                        stat: g.stat,
                    }
                }
                op::ERROR => MultiResult::Error { err: r.read_i32()? },
                _ => return Err(JuteError::Invalid("multi result type")),
            });
        }
    }
}

/// A reply body, by the request's opcode.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Response {
    /// `create` (1).
    Create(CreateResponse),
    /// `create2`, `createContainer`, `createTTL`.
    Create2(Create2Response),
    /// `exists`.
    Exists(ExistsResponse),
    /// `getData` (and `reconfig`).
    GetData(GetDataResponse),
    /// `setData`.
    SetData(SetDataResponse),
    /// `getACL`.
    GetAcl(GetAclResponse),
    /// `setACL`.
    SetAcl(SetAclResponse),
    /// `getChildren`.
    GetChildren(GetChildrenResponse),
    /// `getChildren2`.
    GetChildren2(GetChildren2Response),
    /// `sync`.
    Sync(SyncResponse),
    /// `multi` / `multiRead`.
    Multi(Vec<MultiResult>),
    /// `getAllChildrenNumber`.
    GetAllChildrenNumber(GetAllChildrenNumberResponse),
    /// `getEphemerals`.
    GetEphemerals(GetEphemeralsResponse),
    /// `addWatch`: an `ErrorResponse { 0 }` body (4 zero bytes).
    AddWatch(ErrorResponse),
    /// `whoAmI`.
    WhoAmI(WhoAmIResponse),
    /// `sasl`.
    Sasl(SetSaslResponse),
}

impl Response {
    /// Appends the body.
    pub fn write(&self, w: &mut Writer) {
        match self {
            Response::Create(r) => r.write(w),
            Response::Create2(r) => r.write(w),
            Response::Exists(r) => r.write(w),
            Response::GetData(r) => r.write(w),
            Response::SetData(r) => r.write(w),
            Response::GetAcl(r) => r.write(w),
            Response::SetAcl(r) => r.write(w),
            Response::GetChildren(r) => r.write(w),
            Response::GetChildren2(r) => r.write(w),
            Response::Sync(r) => r.write(w),
            Response::Multi(results) => {
                for m in results {
                    m.write(w);
                }
                MultiHeader {
                    op: -1,
                    done: true,
                    err: -1,
                }
                .write(w);
            }
            Response::GetAllChildrenNumber(r) => r.write(w),
            Response::GetEphemerals(r) => r.write(w),
            Response::AddWatch(r) => r.write(w),
            Response::WhoAmI(r) => r.write(w),
            Response::Sasl(r) => r.write(w),
        }
    }

    /// Decodes the body of a successful reply to a request with opcode `op`; `None` for
    /// opcodes whose reply has no body.
    pub fn decode(op: i32, r: &mut Reader<'_>) -> Result<Option<Response>, JuteError> {
        Ok(Some(match op {
            op::CREATE => Response::Create(r.read()?),
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => Response::Create2(r.read()?),
            op::EXISTS => Response::Exists(r.read()?),
            op::GET_DATA | op::RECONFIG => Response::GetData(r.read()?),
            op::SET_DATA => Response::SetData(r.read()?),
            op::GET_ACL => Response::GetAcl(r.read()?),
            op::SET_ACL => Response::SetAcl(r.read()?),
            op::GET_CHILDREN => Response::GetChildren(r.read()?),
            op::GET_CHILDREN2 => Response::GetChildren2(r.read()?),
            op::SYNC => Response::Sync(r.read()?),
            op::MULTI | op::MULTI_READ => Response::Multi(MultiResult::read_all(r)?),
            op::GET_ALL_CHILDREN_NUMBER => Response::GetAllChildrenNumber(r.read()?),
            op::GET_EPHEMERALS => Response::GetEphemerals(r.read()?),
            op::ADD_WATCH => Response::AddWatch(r.read()?),
            op::WHO_AM_I => Response::WhoAmI(r.read()?),
            op::SASL => Response::Sasl(r.read()?),
            _ => return Ok(None),
        }))
    }
}

fn framed(build: impl FnOnce(&mut Writer)) -> Bytes {
    let mut w = Writer::with_capacity(64);
    w.write_i32(0);
    build(&mut w);
    let len = i32::try_from(w.len() - 4).unwrap_or(i32::MAX);
    w.patch_i32(0, len);
    w.into_bytes()
}

/// Encodes a reply frame: length, `ReplyHeader`, and the body (pass `None` whenever
/// `header.err != 0`).
#[must_use]
pub fn encode_reply(header: &ReplyHeader, body: Option<&Response>) -> Bytes {
    framed(|w| {
        header.write(w);
        if let Some(b) = body {
            b.write(w);
        }
    })
}

/// Encodes a watch notification frame: `ReplyHeader(-1, -1, 0)` + the event.
#[must_use]
pub fn encode_notification(event: &WatcherEvent) -> Bytes {
    framed(|w| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid: -1,
            err: 0,
        }
        .write(w);
        event.write(w);
    })
}

/// Encodes the first frame a server sends (`ConnectResponse`, no header).
#[must_use]
pub fn encode_connect_response(resp: &ConnectResponse) -> Bytes {
    framed(|w| resp.write(w))
}

/// What a client reads from a reply frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A watch notification (xid -1).
    Notification(WatcherEvent),
    /// A reply to a request: its header and body (no body on error or for body-less ops).
    Reply(ReplyHeader, Option<Response>),
}

/// Decodes a reply frame payload (without the length). `op_for_xid` gives the opcode of the
/// pending request with that xid (the client's pending queue); notifications need none.
pub fn decode_reply(
    payload: &[u8],
    op_for_xid: impl FnOnce(i32) -> i32,
) -> Result<Reply, JuteError> {
    let mut r = Reader::new(payload);
    let header = ReplyHeader::read(&mut r)?;
    if header.xid == xid::NOTIFICATION {
        return Ok(Reply::Notification(r.read()?));
    }
    let op = op_for_xid(header.xid);
    let has_body = header.err == 0 || op == op::MULTI || op == op::MULTI_READ;
    if !has_body || r.is_empty() {
        return Ok(Reply::Reply(header, None));
    }
    Ok(Reply::Reply(header, Response::decode(op, &mut r)?))
}

/// Decodes the first frame a client receives.
pub fn decode_connect_response(payload: &[u8]) -> Result<ConnectResponse, JuteError> {
    ConnectResponse::read(&mut Reader::new(payload))
}
