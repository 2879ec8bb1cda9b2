//! Snapshot (de)serialization of the whole [`DataTree`] and its sessions: a versioned,
//! checksummed, deterministic encoding (nodes sorted by path), and a decoder that refuses
//! corrupt input (bad magic, version or checksum, truncation, duplicate or orphan nodes)
//! instead of panicking.
//!
//! Layout (big-endian): magic `ZKSN`, `u32` version, session count + `(i64 id, i32 timeout)`
//! each, (version 2 on) imported-session count + `i64 id` each, node count + `(path, data
//! buffer (-1 = null), ACL vector, StatPersisted)` each, then a CRC-32C of everything before it.

use super::{DataTree, Node, StatPersisted, split_path};
use crate::jute::{JuteError, Reader, Writer};
use crate::proto::{Acl, Id};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use thiserror::Error;
use zab_spec::SessionId;

/// One node as a snapshot stores it (the input of [`DataTree::from_nodes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    /// Absolute path (`/` for the root).
    pub path: String,
    /// Data (null stays null).
    pub data: Option<bytes::Bytes>,
    /// ACL.
    pub acl: Vec<Acl>,
    /// Persisted stat.
    pub stat: StatPersisted,
}

/// `ZKSN`.
pub const SNAPSHOT_MAGIC: u32 = 0x5a4b_534e;
/// The format version written (2 added the imported sessions, 3 the sessions' passwords; 1
/// and 2 are still read).
pub const SNAPSHOT_VERSION: u32 = 3;

/// Why bytes are not a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SnapshotError {
    /// Not a snapshot.
    #[error("bad snapshot magic {0:#x}")]
    Magic(u32),
    /// A version this build cannot read.
    #[error("unsupported snapshot version {0}")]
    Version(u32),
    /// The checksum does not match.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// Truncated or malformed.
    #[error(transparent)]
    Jute(#[from] JuteError),
    /// Structurally inconsistent content.
    #[error("inconsistent snapshot: {0}")]
    Inconsistent(String),
}

impl DataTree {
    /// Serializes the tree and sessions.
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        let hint = usize::try_from(self.approximate_data_size()).unwrap_or(0);
        let mut w = Writer::with_capacity(hint.saturating_mul(2).saturating_add(64));
        w.write_raw(&SNAPSHOT_MAGIC.to_be_bytes());
        w.write_raw(&SNAPSHOT_VERSION.to_be_bytes());
        w.write_i64(i64::try_from(self.sessions().len()).unwrap_or(i64::MAX));
        for (s, timeout) in self.sessions() {
            w.write_i64(s.0);
            w.write_i32(*timeout);
        }
        w.write_i64(i64::try_from(self.imported_sessions().len()).unwrap_or(i64::MAX));
        for s in self.imported_sessions() {
            w.write_i64(s.0);
        }
        w.write_i64(i64::try_from(self.session_passwords().len()).unwrap_or(i64::MAX));
        for (s, p) in self.session_passwords() {
            w.write_i64(s.0);
            w.write_raw(p);
        }
        let mut nodes: Vec<(&String, &Node)> = self.nodes_iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        w.write_i64(i64::try_from(nodes.len()).unwrap_or(i64::MAX));
        for (path, n) in nodes {
            w.write_str(path);
            w.write_buffer(n.data.as_deref());
            w.write_vec(&n.acl, |w, a| {
                w.write_i32(a.perms);
                w.write_str(&a.id.scheme);
                w.write_str(&a.id.id);
            });
            n.stat.write(&mut w);
        }
        let crc = crc32c::crc32c(w.as_slice());
        w.write_raw(&crc.to_be_bytes());
        w.into_vec()
    }

    /// Rebuilds a tree from [`DataTree::snapshot`] bytes.
    pub fn from_snapshot(buf: &[u8]) -> Result<DataTree, SnapshotError> {
        let body_len =
            buf.len()
                .checked_sub(4)
                .ok_or(SnapshotError::Jute(JuteError::Truncated {
                    offset: 0,
                    needed: 4,
                    available: buf.len(),
                }))?;
        let (body, crc) = buf.split_at(body_len);
        let mut r = Reader::with_max_buffer(body, usize::MAX);
        let magic = u32::from_be_bytes(take4(&mut r)?);
        if magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Magic(magic));
        }
        let version = u32::from_be_bytes(take4(&mut r)?);
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(SnapshotError::Version(version));
        }
        let mut crc4 = [0u8; 4];
        crc4.copy_from_slice(crc);
        if crc32c::crc32c(body) != u32::from_be_bytes(crc4) {
            return Err(SnapshotError::Checksum);
        }
        let n_sessions = count(&mut r)?;
        let mut sessions = BTreeMap::new();
        for _ in 0..n_sessions {
            let id = SessionId(r.read_i64()?);
            let timeout = r.read_i32()?;
            if sessions.insert(id, timeout).is_some() {
                return Err(SnapshotError::Inconsistent(format!("session {id} twice")));
            }
        }
        let mut imported = BTreeSet::new();
        if version >= 2 {
            for _ in 0..count(&mut r)? {
                let id = SessionId(r.read_i64()?);
                if !sessions.contains_key(&id) || !imported.insert(id) {
                    return Err(SnapshotError::Inconsistent(format!(
                        "imported session {id} not open or twice"
                    )));
                }
            }
        }
        let mut passwords = BTreeMap::new();
        if version >= 3 {
            for _ in 0..count(&mut r)? {
                let id = SessionId(r.read_i64()?);
                let mut p = [0u8; 16];
                for b in &mut p {
                    *b = r.read_u8()?;
                }
                if !sessions.contains_key(&id) || passwords.insert(id, p).is_some() {
                    return Err(SnapshotError::Inconsistent(format!(
                        "password of session {id}: not open or twice"
                    )));
                }
            }
        }
        let n_nodes = count(&mut r)?;
        let mut nodes = Vec::with_capacity(n_nodes.min(1 << 20));
        for _ in 0..n_nodes {
            let path = r.read_string("path")?;
            let data = r.read_buffer()?;
            let acl = r
                .read_vec(|r| {
                    Ok(Acl {
                        perms: r.read_i32()?,
                        id: Id {
                            scheme: r.read_string("scheme")?,
                            id: r.read_string("id")?,
                        },
                    })
                })?
                .unwrap_or_default();
            let stat = StatPersisted::read(&mut r)?;
            nodes.push(NodeRecord {
                path,
                data,
                acl,
                stat,
            });
        }
        if !r.is_empty() {
            return Err(SnapshotError::Inconsistent(format!(
                "{} trailing bytes",
                r.remaining()
            )));
        }
        let mut tree = DataTree::from_nodes(nodes, sessions)?;
        tree.imported = imported;
        tree.passwords = passwords;
        Ok(tree)
    }

    /// Builds a tree from its nodes (any order) and sessions: what a snapshot in another format
    /// (ZooKeeper's, for `zabd import`) decodes to. Children, ephemerals, containers and TTL
    /// nodes are derived from the paths and owners.
    ///
    /// # Errors
    /// [`SnapshotError::Inconsistent`] for a bad or duplicate path, a node without its parent,
    /// or no root.
    pub fn from_nodes(
        records: Vec<NodeRecord>,
        sessions: BTreeMap<SessionId, i32>,
    ) -> Result<DataTree, SnapshotError> {
        let mut nodes: HashMap<String, Node> = HashMap::with_capacity(records.len());
        let mut acls: HashMap<Vec<Acl>, Arc<Vec<Acl>>> = HashMap::new();
        for NodeRecord {
            path,
            data,
            acl,
            stat,
        } in records
        {
            let acl = acls
                .entry(acl)
                .or_insert_with_key(|k| Arc::new(k.clone()))
                .clone();
            if !path.starts_with('/') || (path.len() > 1 && path.ends_with('/')) {
                return Err(SnapshotError::Inconsistent(format!("bad path {path:?}")));
            }
            let node = Node::new(data, acl, stat);
            if nodes.insert(path.clone(), node).is_some() {
                return Err(SnapshotError::Inconsistent(format!("{path} twice")));
            }
        }
        if !nodes.contains_key("/") {
            return Err(SnapshotError::Inconsistent("no root".into()));
        }
        let paths: Vec<String> = nodes.keys().filter(|p| *p != "/").cloned().collect();
        for p in paths {
            let Some((parent, name)) = split_path(&p) else {
                return Err(SnapshotError::Inconsistent(format!("bad path {p:?}")));
            };
            if name.is_empty() {
                return Err(SnapshotError::Inconsistent(format!("bad path {p:?}")));
            }
            let name = name.to_owned();
            match nodes.get_mut(parent) {
                Some(par) => {
                    par.children.insert(name);
                }
                None => {
                    return Err(SnapshotError::Inconsistent(format!("{p} has no parent")));
                }
            }
        }
        Ok(DataTree::from_parts(nodes, sessions))
    }
}

fn take4(r: &mut Reader<'_>) -> Result<[u8; 4], JuteError> {
    let mut out = [0u8; 4];
    out.copy_from_slice(r.take(4)?);
    Ok(out)
}

fn count(r: &mut Reader<'_>) -> Result<usize, JuteError> {
    let n = r.read_i64()?;
    let n = usize::try_from(n).map_err(|_| JuteError::Invalid("count"))?;
    if n > r.remaining() {
        return Err(JuteError::Invalid("count above remaining bytes"));
    }
    Ok(n)
}
