//! ZooKeeper 3.8's transaction log file (`version-2/log.<first zxid hex>`), read as
//! `FileTxnLog`'s iterator reads it, and each transaction converted to zabd's [`Txn`]:
//!
//! ```text
//! FileHeader   int magic "ZKLG", int version 2, long dbid
//! records      long Adler-32 of the entry, buffer entry (int length + bytes), byte 'B'
//!              entry = TxnHeader (long clientId, int cxid, long zxid, long time, int type),
//!                      the txn record of that type, optionally a TxnDigest (int, long)
//! end          a zero length (the file is preallocated with zeros) or the end of the file
//! ```
//!
//! As in ZooKeeper, a record cut short by the end of the file, or whose end-of-record byte is
//! not `'B'`, ends the file (a torn write: reported in [`LogScan::torn`]); a checksum mismatch,
//! an impossible length, an unknown transaction type or a malformed record is an error naming
//! the file and offset.

use super::{Result, adler32, corrupt, jute_err};
use std::path::Path;
use zab_spec::{ErrorCode, SessionId, Zxid};
use zab_zk::jute::{JuteError, Reader};
use zab_zk::proto::{Acl, Id};
use zab_zk::txn::{CreateTxn, NodeKind};
use zab_zk::{Txn, TxnBody, TxnHeader};

/// `FileTxnLog.TXNLOG_MAGIC`: "ZKLG".
pub const LOG_MAGIC: i32 = 0x5a4b_4c47;
/// `FileTxnLog.VERSION`.
pub const LOG_VERSION: i32 = 2;
/// Largest entry accepted (ZooKeeper bounds it by `jute.maxbuffer`, which operators raise;
/// this only stops a corrupt length from claiming gigabytes).
pub const MAX_ENTRY_BYTES: usize = 256 << 20;

/// ZooKeeper's opcodes that appear in transactions (`ZooDefs.OpCode`).
pub mod opcode {
    /// `create`.
    pub const CREATE: i32 = 1;
    /// `delete`.
    pub const DELETE: i32 = 2;
    /// `setData`.
    pub const SET_DATA: i32 = 5;
    /// `setACL`.
    pub const SET_ACL: i32 = 7;
    /// `check` (in a multi).
    pub const CHECK: i32 = 13;
    /// `multi`.
    pub const MULTI: i32 = 14;
    /// `create2`.
    pub const CREATE2: i32 = 15;
    /// `reconfig`.
    pub const RECONFIG: i32 = 16;
    /// `createContainer`.
    pub const CREATE_CONTAINER: i32 = 19;
    /// `deleteContainer`.
    pub const DELETE_CONTAINER: i32 = 20;
    /// `createTTL`.
    pub const CREATE_TTL: i32 = 21;
    /// `createSession`.
    pub const CREATE_SESSION: i32 = -10;
    /// `closeSession`.
    pub const CLOSE_SESSION: i32 = -11;
    /// `error`.
    pub const ERROR: i32 = -1;

    /// The name ZooKeeper's tools print (`Request.op2String`).
    #[must_use]
    pub fn name(op: i32) -> &'static str {
        match op {
            CREATE => "create",
            DELETE => "delete",
            SET_DATA => "setData",
            SET_ACL => "setACL",
            CHECK => "check",
            MULTI => "multi",
            CREATE2 => "create2",
            RECONFIG => "reconfig",
            CREATE_CONTAINER => "createContainer",
            DELETE_CONTAINER => "deleteContainer",
            CREATE_TTL => "createTtl",
            CREATE_SESSION => "createSession",
            CLOSE_SESSION => "closeSession",
            ERROR => "error",
            _ => "unknown",
        }
    }
}

/// One logged transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZkLogRecord {
    /// Byte offset of the record in its file.
    pub offset: u64,
    /// Its zxid.
    pub zxid: Zxid,
    /// ZooKeeper's transaction type (an [`opcode`]).
    pub op: i32,
    /// The transaction as zabd applies it. A `create` in ZooKeeper's pre-3.3 layout carries
    /// `parent_cversion == -1` ("one above the parent's current"), resolved when applied.
    pub txn: Txn,
}

/// What a log file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogScan {
    /// The records, in file order.
    pub records: Vec<ZkLogRecord>,
    /// Where a torn (incomplete) last record starts, if the file ends with one.
    pub torn: Option<u64>,
}

/// Parses the log file `bytes` of `file`.
///
/// # Errors
/// [`super::MigrateError::Corrupt`] naming the offset: bad magic or version, a record with an
/// impossible length, a checksum mismatch, an unknown or malformed transaction.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<LogScan> {
    let mut r = Reader::with_max_buffer(bytes, usize::MAX);
    let magic = r
        .read_i32()
        .map_err(|e| jute_err(file, 0, r.position(), &e))?;
    if magic != LOG_MAGIC {
        return Err(corrupt(
            file,
            0,
            format!("bad magic {magic:#010x}: not a ZooKeeper transaction log (expected \"ZKLG\")"),
        ));
    }
    let version = r
        .read_i32()
        .map_err(|e| jute_err(file, 0, r.position(), &e))?;
    if version != LOG_VERSION {
        return Err(corrupt(
            file,
            4,
            format!("unsupported log version {version} (ZooKeeper 3.x writes 2)"),
        ));
    }
    r.read_i64()
        .map_err(|e| jute_err(file, 0, r.position(), &e))?;
    let mut scan = LogScan::default();
    let mut at = r.position();
    loop {
        let rest = &bytes[at..];
        if rest.len() < 12 {
            if rest.iter().any(|b| *b != 0) {
                scan.torn = Some(at as u64);
            }
            return Ok(scan);
        }
        let crc = i64::from_be_bytes(rest[..8].try_into().unwrap_or([0; 8]));
        let len = i32::from_be_bytes(rest[8..12].try_into().unwrap_or([0; 4]));
        if len == 0 {
            // Preallocated space: ZooKeeper's end of the log.
            return Ok(scan);
        }
        let len = match usize::try_from(len) {
            Ok(n) if n <= MAX_ENTRY_BYTES => n,
            _ => {
                return Err(corrupt(
                    file,
                    at as u64 + 8,
                    format!("impossible record length {len}"),
                ));
            }
        };
        let Some(entry) = rest.get(12..12 + len) else {
            scan.torn = Some(at as u64);
            return Ok(scan);
        };
        if rest.get(12 + len) != Some(&b'B') {
            // Util.readTxnBytes: "Last transaction was partial."
            scan.torn = Some(at as u64);
            return Ok(scan);
        }
        let computed = adler32(entry);
        if crc != i64::from(computed) {
            return Err(corrupt(
                file,
                at as u64,
                format!(
                    "checksum mismatch: stored Adler-32 {crc:#x}, computed {computed:#x} over {len} bytes"
                ),
            ));
        }
        scan.records
            .push(parse_entry(file, at as u64, at as u64 + 12, entry)?);
        at += 12 + len + 1;
    }
}

/// Parses one log entry (`TxnHeader` + txn + optional digest); `base` is its file offset.
pub fn parse_entry(file: &Path, offset: u64, base: u64, entry: &[u8]) -> Result<ZkLogRecord> {
    let mut r = Reader::with_max_buffer(entry, usize::MAX);
    let j = |r: &Reader<'_>, e: JuteError| jute_err(file, base, r.position(), &e);
    let session = r.read_i64().map_err(|e| j(&r, e))?;
    let cxid = r.read_i32().map_err(|e| j(&r, e))?;
    let zxid = r.read_i64().map_err(|e| j(&r, e))?;
    let time = r.read_i64().map_err(|e| j(&r, e))?;
    let op = r.read_i32().map_err(|e| j(&r, e))?;
    let body_at = r.position();
    let body = match op {
        opcode::CLOSE_SESSION => {
            // 3.8 logs the ephemerals to delete (CloseSessionTxn); older versions nothing
            // (then only a 12-byte digest may follow).
            let mut probe = r.clone();
            match probe.read_string_vec() {
                _ if r.remaining() == 0 => TxnBody::CloseSession { ephemerals: vec![] },
                Ok(ephemerals) if probe.remaining() == 0 || probe.remaining() == 12 => {
                    r = probe;
                    TxnBody::CloseSession { ephemerals }
                }
                _ if r.remaining() == 12 => TxnBody::CloseSession { ephemerals: vec![] },
                Err(e) => return Err(j(&probe, e)),
                Ok(_) => {
                    r = probe;
                    TxnBody::CloseSession { ephemerals: vec![] }
                }
            }
        }
        opcode::CREATE => {
            let mut probe = r.clone();
            match read_body(op, session, &mut probe) {
                Ok(b) => {
                    r = probe;
                    b
                }
                Err(BodyError::Jute(JuteError::Truncated { .. })) => {
                    // CreateTxnV0 (no parentCVersion): -1 asks for "one above the parent's".
                    read_create_v0(session, &mut r).map_err(|e| j(&r, e))?
                }
                Err(BodyError::Jute(e)) => return Err(j(&probe, e)),
                Err(BodyError::UnknownType) => unreachable_op(file, base + body_at as u64, op)?,
            }
        }
        _ => match read_body(op, session, &mut r) {
            Ok(b) => b,
            Err(BodyError::Jute(e)) => return Err(j(&r, e)),
            Err(BodyError::UnknownType) => unreachable_op(file, base + body_at as u64, op)?,
        },
    };
    // ZooKeeper only logs valid paths; anything else would corrupt the tree.
    for p in crate::inspect::describe(&body).1 {
        if zab_spec::znode::validate_path(&p).is_err() {
            return Err(corrupt(
                file,
                base + body_at as u64,
                format!("invalid path {p:?} in a {} transaction", opcode::name(op)),
            ));
        }
    }
    // An optional TxnDigest (int version, long digest) follows in 3.6+.
    match r.remaining() {
        0 => {}
        12 => {
            r.read_i32().map_err(|e| j(&r, e))?;
            r.read_i64().map_err(|e| j(&r, e))?;
        }
        n => {
            return Err(corrupt(
                file,
                base + r.position() as u64,
                format!(
                    "{n} unexpected bytes after a {} transaction",
                    opcode::name(op)
                ),
            ));
        }
    }
    Ok(ZkLogRecord {
        offset,
        zxid: Zxid::from_u64(zxid as u64),
        op,
        txn: Txn::new(
            TxnHeader {
                session: SessionId(session),
                cxid,
                time,
            },
            body,
        ),
    })
}

fn unreachable_op(file: &Path, offset: u64, op: i32) -> Result<TxnBody> {
    Err(corrupt(
        file,
        offset,
        format!("unknown transaction type {op}"),
    ))
}

fn read_acl(r: &mut Reader<'_>) -> std::result::Result<Vec<Acl>, JuteError> {
    Ok(r.read_vec(|r| {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id {
                scheme: r.read_string("scheme")?,
                id: r.read_string("id")?,
            },
        })
    })?
    .unwrap_or_default())
}

fn create(
    path: String,
    data: Option<bytes::Bytes>,
    acl: Vec<Acl>,
    kind: NodeKind,
    parent_cversion: i32,
    with_stat: bool,
) -> TxnBody {
    TxnBody::Create(CreateTxn {
        path,
        data,
        acl,
        kind,
        parent_cversion,
        sequential: false,
        with_stat,
    })
}

fn read_create_v0(session: i64, r: &mut Reader<'_>) -> std::result::Result<TxnBody, JuteError> {
    let path = r.read_string("path")?;
    let data = r.read_buffer()?;
    let acl = read_acl(r)?;
    let ephemeral = r.read_bool()?;
    let kind = if ephemeral {
        NodeKind::Ephemeral(SessionId(session))
    } else {
        NodeKind::Persistent
    };
    Ok(create(path, data, acl, kind, -1, false))
}

/// Why a txn record could not be read.
enum BodyError {
    /// Malformed.
    Jute(JuteError),
    /// Not a transaction type (in this position).
    UnknownType,
}

impl From<JuteError> for BodyError {
    fn from(e: JuteError) -> Self {
        BodyError::Jute(e)
    }
}

/// Reads the txn record of type `op`.
fn read_body(op: i32, session: i64, r: &mut Reader<'_>) -> std::result::Result<TxnBody, BodyError> {
    Ok(match op {
        opcode::CREATE_SESSION => TxnBody::CreateSession {
            timeout: r.read_i32()?,
            passwd: None,
        },
        opcode::CREATE | opcode::CREATE2 => {
            let path = r.read_string("path")?;
            let data = r.read_buffer()?;
            let acl = read_acl(r)?;
            let ephemeral = r.read_bool()?;
            let parent_cversion = r.read_i32()?;
            let kind = if ephemeral {
                NodeKind::Ephemeral(SessionId(session))
            } else {
                NodeKind::Persistent
            };
            create(
                path,
                data,
                acl,
                kind,
                parent_cversion,
                op == opcode::CREATE2,
            )
        }
        opcode::CREATE_CONTAINER => {
            let path = r.read_string("path")?;
            let data = r.read_buffer()?;
            let acl = read_acl(r)?;
            let parent_cversion = r.read_i32()?;
            create(path, data, acl, NodeKind::Container, parent_cversion, true)
        }
        opcode::CREATE_TTL => {
            let path = r.read_string("path")?;
            let data = r.read_buffer()?;
            let acl = read_acl(r)?;
            let parent_cversion = r.read_i32()?;
            let ttl = r.read_i64()?;
            create(path, data, acl, NodeKind::Ttl(ttl), parent_cversion, true)
        }
        opcode::DELETE => TxnBody::Delete {
            path: r.read_string("path")?,
        },
        opcode::DELETE_CONTAINER => TxnBody::DeleteContainer {
            path: r.read_string("path")?,
        },
        opcode::SET_DATA | opcode::RECONFIG => TxnBody::SetData {
            path: r.read_string("path")?,
            data: r.read_buffer()?,
            version: r.read_i32()?,
        },
        opcode::SET_ACL => TxnBody::SetAcl {
            path: r.read_string("path")?,
            acl: read_acl(r)?,
            version: r.read_i32()?,
        },
        opcode::CHECK => TxnBody::Check {
            path: r.read_string("path")?,
            version: r.read_i32()?,
        },
        opcode::ERROR => {
            let code = r.read_i32()?;
            TxnBody::Error(ErrorCode::from_code(code).ok_or(JuteError::Invalid("error code"))?)
        }
        opcode::MULTI => {
            let subs = r
                .read_vec(|r| {
                    let op = r.read_i32()?;
                    let data = r.read_buffer()?.unwrap_or_default();
                    Ok((op, data))
                })?
                .unwrap_or_default();
            let mut out = Vec::with_capacity(subs.len());
            for (op, data) in subs {
                if op == opcode::MULTI
                    || op == opcode::CREATE_SESSION
                    || op == opcode::CLOSE_SESSION
                {
                    return Err(JuteError::Invalid("transaction type inside a multi").into());
                }
                let mut sr = Reader::with_max_buffer(&data, usize::MAX);
                let body = match read_body(op, session, &mut sr) {
                    Ok(b) => b,
                    Err(BodyError::UnknownType) => {
                        return Err(JuteError::Invalid("transaction type inside a multi").into());
                    }
                    Err(e) => return Err(e),
                };
                if !sr.is_empty() {
                    return Err(JuteError::Invalid("trailing bytes inside a multi op").into());
                }
                out.push(body);
            }
            TxnBody::Multi(out)
        }
        _ => return Err(BodyError::UnknownType),
    })
}
