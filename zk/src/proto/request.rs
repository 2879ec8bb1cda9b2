//! The typed client [`Request`]: decoded from a request frame (`RequestHeader` + the record of
//! its opcode, `MultiOperationRecord` for multi/multiRead) and encoded by clients.
//!
//! Decoding follows ZooKeeper 3.8: an unknown opcode is [`RequestError::Unimplemented`]
//! (reply `err = -6`, `zxid = -1`); a body that does not parse, a multi mixing reads and
//! writes, or a multi op type it does not know is [`RequestError::Marshalling`] (`-5`; for a
//! write opcode ZooKeeper still logs an error transaction). Trailing bytes are ignored.

use super::op;
use super::records::*;
use crate::jute::{DEFAULT_MAX_BUFFER, JuteError, Reader, Record, Writer};
use bytes::Bytes;
use thiserror::Error;
use zab_spec::ErrorCode;

/// One operation of a `multi` (opcode 14).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MultiOp {
    /// `create` (1), `create2` (15) or `createContainer` (19) with a `CreateRequest`; `op` is
    /// the header type the client sent (ZooKeeper itself decides the sub-operation from the
    /// flags: a multi's create2 is answered as a create).
    Create {
        /// The header type (1, 15 or 19).
        op: i32,
        /// The record.
        req: CreateRequest,
    },
    /// `createTTL` (21).
    CreateTtl(CreateTtlRequest),
    /// `delete` (2).
    Delete(DeleteRequest),
    /// `setData` (5).
    SetData(SetDataRequest),
    /// `check` (13).
    Check(CheckVersionRequest),
}

impl MultiOp {
    /// The `MultiHeader.type` this op is sent with.
    #[must_use]
    pub fn op(&self) -> i32 {
        match self {
            MultiOp::Create { op, .. } => *op,
            MultiOp::CreateTtl(_) => op::CREATE_TTL,
            MultiOp::Delete(_) => op::DELETE,
            MultiOp::SetData(_) => op::SET_DATA,
            MultiOp::Check(_) => op::CHECK,
        }
    }

    /// The path the op is about.
    #[must_use]
    pub fn path(&self) -> &str {
        match self {
            MultiOp::Create { req, .. } => &req.path,
            MultiOp::CreateTtl(r) => &r.path,
            MultiOp::Delete(r) => &r.path,
            MultiOp::SetData(r) => &r.path,
            MultiOp::Check(r) => &r.path,
        }
    }

    fn write(&self, w: &mut Writer) {
        match self {
            MultiOp::Create { req, .. } => req.write(w),
            MultiOp::CreateTtl(r) => r.write(w),
            MultiOp::Delete(r) => r.write(w),
            MultiOp::SetData(r) => r.write(w),
            MultiOp::Check(r) => r.write(w),
        }
    }
}

/// One operation of a `multiRead` (opcode 22); the `watch` flags are ignored by the server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MultiReadOp {
    /// `getChildren` (8).
    GetChildren(GetChildrenRequest),
    /// `getData` (4).
    GetData(GetDataRequest),
}

impl MultiReadOp {
    /// The `MultiHeader.type` this op is sent with.
    #[must_use]
    pub fn op(&self) -> i32 {
        match self {
            MultiReadOp::GetChildren(_) => op::GET_CHILDREN,
            MultiReadOp::GetData(_) => op::GET_DATA,
        }
    }
}

/// A client request, by opcode.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Request {
    /// `create` (1): answered with the path only.
    Create(CreateRequest),
    /// `create2` (15): answered with path and stat.
    Create2(CreateRequest),
    /// `createContainer` (19).
    CreateContainer(CreateRequest),
    /// `createTTL` (21).
    CreateTtl(CreateTtlRequest),
    /// `delete` (2).
    Delete(DeleteRequest),
    /// `deleteContainer` (20): the body is the raw UTF-8 path (ZooKeeper's `ContainerManager`
    /// builds it that way; a client-sent `DeleteRequest` therefore reads as a path with NUL
    /// bytes and fails with BadArguments, as in ZooKeeper).
    DeleteContainer {
        /// The container or TTL node.
        path: String,
    },
    /// `exists` (3).
    Exists(ExistsRequest),
    /// `getData` (4).
    GetData(GetDataRequest),
    /// `setData` (5).
    SetData(SetDataRequest),
    /// `getACL` (6).
    GetAcl(GetAclRequest),
    /// `setACL` (7).
    SetAcl(SetAclRequest),
    /// `getChildren` (8).
    GetChildren(GetChildrenRequest),
    /// `getChildren2` (12).
    GetChildren2(GetChildren2Request),
    /// `sync` (9).
    Sync(SyncRequest),
    /// `ping` (11), xid -2, no body.
    Ping,
    /// `check` (13) outside a multi.
    Check(CheckVersionRequest),
    /// `multi` (14).
    Multi(Vec<MultiOp>),
    /// `multiRead` (22).
    MultiRead(Vec<MultiReadOp>),
    /// `reconfig` (16).
    Reconfig(ReconfigRequest),
    /// `checkWatches` (17).
    CheckWatches(CheckWatchesRequest),
    /// `removeWatches` (18).
    RemoveWatches(RemoveWatchesRequest),
    /// `auth` (100), xid -4.
    Auth(AuthPacket),
    /// `setWatches` (101), xid -8.
    SetWatches(SetWatches),
    /// `setWatches2` (105), xid -8.
    SetWatches2(SetWatches2),
    /// `sasl` (102).
    Sasl(GetSaslRequest),
    /// `getEphemerals` (103).
    GetEphemerals(GetEphemeralsRequest),
    /// `getAllChildrenNumber` (104).
    GetAllChildrenNumber(GetAllChildrenNumberRequest),
    /// `addWatch` (106).
    AddWatch(AddWatchRequest),
    /// `whoAmI` (107), no body.
    WhoAmI,
    /// `closeSession` (-11), no body.
    CloseSession,
}

/// Why a request body could not be turned into a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RequestError {
    /// An opcode the server does not serve: reply `(xid, zxid -1, err -6)`.
    #[error("unimplemented opcode {op}")]
    Unimplemented {
        /// The opcode.
        op: i32,
    },
    /// A body that does not parse: reply `err -5` (an error transaction for writes).
    #[error("malformed body for opcode {op}: {error}")]
    Marshalling {
        /// The opcode.
        op: i32,
        /// What went wrong.
        error: JuteError,
    },
}

impl RequestError {
    /// The error code to answer with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            RequestError::Unimplemented { .. } => ErrorCode::Unimplemented,
            RequestError::Marshalling { .. } => ErrorCode::MarshallingError,
        }
    }

    /// The opcode of the failed request.
    #[must_use]
    pub fn op(&self) -> i32 {
        match self {
            RequestError::Unimplemented { op } | RequestError::Marshalling { op, .. } => *op,
        }
    }
}

fn read_multi(r: &mut Reader<'_>) -> Result<Vec<MultiOp>, JuteError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        ops.push(match h.op {
            op::CREATE | op::CREATE2 | op::CREATE_CONTAINER => MultiOp::Create {
                op: h.op,
                req: r.read()?,
            },
            op::CREATE_TTL => MultiOp::CreateTtl(r.read()?),
            op::DELETE => MultiOp::Delete(r.read()?),
            op::SET_DATA => MultiOp::SetData(r.read()?),
            op::CHECK => MultiOp::Check(r.read()?),
            // getChildren/getData in a write multi: "Mixing different kind of ops" or an op
            // the write path cannot prepare; anything else: "Invalid type of op".
            _ => return Err(JuteError::Invalid("multi op type")),
        });
    }
}

fn read_multi_read(r: &mut Reader<'_>) -> Result<Vec<MultiReadOp>, JuteError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        ops.push(match h.op {
            op::GET_CHILDREN => MultiReadOp::GetChildren(r.read()?),
            op::GET_DATA => MultiReadOp::GetData(r.read()?),
            _ => return Err(JuteError::Invalid("multiRead op type")),
        });
    }
}

fn write_multi_end(w: &mut Writer) {
    MultiHeader {
        op: -1,
        done: true,
        err: -1,
    }
    .write(w);
}

impl Request {
    /// Decodes the body of a request with opcode `op`.
    pub fn decode(op: i32, body: &[u8], max_buffer: usize) -> Result<Request, RequestError> {
        let r = &mut Reader::with_max_buffer(body, max_buffer);
        let parsed: Result<Request, JuteError> = (|| {
            Ok(match op {
                op::CREATE => Request::Create(r.read()?),
                op::CREATE2 => Request::Create2(r.read()?),
                op::CREATE_CONTAINER => Request::CreateContainer(r.read()?),
                op::CREATE_TTL => Request::CreateTtl(r.read()?),
                op::DELETE => Request::Delete(r.read()?),
                op::DELETE_CONTAINER => Request::DeleteContainer {
                    path: String::from_utf8_lossy(r.rest()).into_owned(),
                },
                op::EXISTS => Request::Exists(r.read()?),
                op::GET_DATA => Request::GetData(r.read()?),
                op::SET_DATA => Request::SetData(r.read()?),
                op::GET_ACL => Request::GetAcl(r.read()?),
                op::SET_ACL => Request::SetAcl(r.read()?),
                op::GET_CHILDREN => Request::GetChildren(r.read()?),
                op::GET_CHILDREN2 => Request::GetChildren2(r.read()?),
                op::SYNC => Request::Sync(r.read()?),
                op::PING => Request::Ping,
                op::CHECK => Request::Check(r.read()?),
                op::MULTI => Request::Multi(read_multi(r)?),
                op::MULTI_READ => Request::MultiRead(read_multi_read(r)?),
                op::RECONFIG => Request::Reconfig(r.read()?),
                op::CHECK_WATCHES => Request::CheckWatches(r.read()?),
                op::REMOVE_WATCHES => Request::RemoveWatches(r.read()?),
                op::AUTH => Request::Auth(r.read()?),
                op::SET_WATCHES => Request::SetWatches(r.read()?),
                op::SET_WATCHES2 => Request::SetWatches2(r.read()?),
                op::SASL => Request::Sasl(r.read()?),
                op::GET_EPHEMERALS => Request::GetEphemerals(r.read()?),
                op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(r.read()?),
                op::ADD_WATCH => Request::AddWatch(r.read()?),
                op::WHO_AM_I => Request::WhoAmI,
                op::CLOSE_SESSION => Request::CloseSession,
                _ => return Err(JuteError::Invalid("opcode")),
            })
        })();
        parsed.map_err(|error| match error {
            JuteError::Invalid("opcode") => RequestError::Unimplemented { op },
            error => RequestError::Marshalling { op, error },
        })
    }

    /// The opcode.
    #[must_use]
    pub fn op(&self) -> i32 {
        match self {
            Request::Create(_) => op::CREATE,
            Request::Create2(_) => op::CREATE2,
            Request::CreateContainer(_) => op::CREATE_CONTAINER,
            Request::CreateTtl(_) => op::CREATE_TTL,
            Request::Delete(_) => op::DELETE,
            Request::DeleteContainer { .. } => op::DELETE_CONTAINER,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl(_) => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Sync(_) => op::SYNC,
            Request::Ping => op::PING,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches(_) => op::SET_WATCHES,
            Request::SetWatches2(_) => op::SET_WATCHES2,
            Request::Sasl(_) => op::SASL,
            Request::GetEphemerals(_) => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// Whether the request goes through request preparation and the replicated log.
    #[must_use]
    pub fn is_write(&self) -> bool {
        op::is_write(self.op())
    }

    /// The path of a single-path request.
    #[must_use]
    pub fn path(&self) -> Option<&str> {
        Some(match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => &r.path,
            Request::CreateTtl(r) => &r.path,
            Request::Delete(r) => &r.path,
            Request::DeleteContainer { path } => path,
            Request::Exists(r) => &r.path,
            Request::GetData(r) => &r.path,
            Request::SetData(r) => &r.path,
            Request::GetAcl(r) => &r.path,
            Request::SetAcl(r) => &r.path,
            Request::GetChildren(r) => &r.path,
            Request::GetChildren2(r) => &r.path,
            Request::Sync(r) => &r.path,
            Request::Check(r) => &r.path,
            Request::CheckWatches(r) => &r.path,
            Request::RemoveWatches(r) => &r.path,
            Request::GetAllChildrenNumber(r) => &r.path,
            Request::AddWatch(r) => &r.path,
            Request::GetEphemerals(r) => r.prefix_path.as_deref()?,
            _ => return None,
        })
    }

    /// Appends the body (no header).
    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Request::Create(r) | Request::Create2(r) | Request::CreateContainer(r) => r.write(w),
            Request::CreateTtl(r) => r.write(w),
            Request::Delete(r) => r.write(w),
            Request::DeleteContainer { path } => w.write_raw(path.as_bytes()),
            Request::Exists(r) => r.write(w),
            Request::GetData(r) => r.write(w),
            Request::SetData(r) => r.write(w),
            Request::GetAcl(r) => r.write(w),
            Request::SetAcl(r) => r.write(w),
            Request::GetChildren(r) => r.write(w),
            Request::GetChildren2(r) => r.write(w),
            Request::Sync(r) => r.write(w),
            Request::Check(r) => r.write(w),
            Request::Multi(ops) => {
                for o in ops {
                    MultiHeader {
                        op: o.op(),
                        done: false,
                        err: -1,
                    }
                    .write(w);
                    o.write(w);
                }
                write_multi_end(w);
            }
            Request::MultiRead(ops) => {
                for o in ops {
                    MultiHeader {
                        op: o.op(),
                        done: false,
                        err: -1,
                    }
                    .write(w);
                    match o {
                        MultiReadOp::GetChildren(r) => r.write(w),
                        MultiReadOp::GetData(r) => r.write(w),
                    }
                }
                write_multi_end(w);
            }
            Request::Reconfig(r) => r.write(w),
            Request::CheckWatches(r) => r.write(w),
            Request::RemoveWatches(r) => r.write(w),
            Request::Auth(r) => r.write(w),
            Request::SetWatches(r) => r.write(w),
            Request::SetWatches2(r) => r.write(w),
            Request::Sasl(r) => r.write(w),
            Request::GetEphemerals(r) => r.write(w),
            Request::GetAllChildrenNumber(r) => r.write(w),
            Request::AddWatch(r) => r.write(w),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
        }
    }
}

/// Decodes a request frame's payload (without the length): the header and, separately, the
/// body's outcome. `Err` only when not even the header parses (ZooKeeper closes the
/// connection).
pub fn decode_request(
    payload: &[u8],
    max_buffer: usize,
) -> Result<(RequestHeader, Result<Request, RequestError>), JuteError> {
    let mut r = Reader::with_max_buffer(payload, max_buffer);
    let header = RequestHeader::read(&mut r)?;
    let body = r.rest();
    let op = header.op;
    Ok((header, Request::decode(op, body, max_buffer)))
}

/// Encodes a request frame (length, header, body), as a client sends it.
#[must_use]
pub fn encode_request(xid: i32, request: &Request) -> Bytes {
    let mut w = Writer::with_capacity(64);
    w.write_i32(0);
    RequestHeader {
        xid,
        op: request.op(),
    }
    .write(&mut w);
    request.write_body(&mut w);
    let len = i32::try_from(w.len() - 4).unwrap_or(i32::MAX);
    w.patch_i32(0, len);
    w.into_bytes()
}

/// Encodes the first frame of a connection (`ConnectRequest`, no header).
#[must_use]
pub fn encode_connect_request(req: &ConnectRequest) -> Bytes {
    super::frame::frame(&req.to_bytes())
}

/// Decodes the first frame of a connection.
pub fn decode_connect_request(payload: &[u8]) -> Result<ConnectRequest, JuteError> {
    ConnectRequest::read(&mut Reader::with_max_buffer(payload, DEFAULT_MAX_BUFFER))
}
