//! Snapshot (de)serialization of the whole [`DataTree`] and its sessions: a versioned,
//! checksummed, deterministic encoding (nodes sorted by path), and a decoder that refuses
//! corrupt input (bad magic, version or checksum, truncation, duplicate or orphan nodes)
//! instead of panicking.
//!
//! Layout (big-endian): magic `ZKSN`, `u32` version, session count + `(i64 id, i32 timeout)`
//! each, (version 2 on) imported-session count + `i64 id` each, node count + `(path, data
//! buffer (-1 = null), ACL vector, StatPersisted)` each, then a CRC-32C of everything before it.

use super::{AclCache, DataTree, Node, StatPersisted, Walk, split_path};
use crate::jute::{JuteError, Reader, Writer};
use crate::proto::{Acl, Id};
use std::collections::{BTreeMap, BTreeSet};
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
    /// The source failed or ended early ([`DataTree::read_snapshot`]).
    #[error("{0}")]
    Io(String),
}

/// The tree as of one moment: what [`DataTree::capture`] takes on the replica thread, in
/// O(1) for the nodes (the root is shared, not copied) plus a copy of the session table, and
/// what [`TreeSnapshot::serialize`] then encodes on another thread while the tree moves on.
#[derive(Clone, Debug)]
pub struct TreeSnapshot {
    root: Node,
    count: usize,
    data_size: u64,
    sessions: BTreeMap<SessionId, i32>,
    imported: BTreeSet<SessionId>,
    passwords: BTreeMap<SessionId, [u8; 16]>,
}

impl DataTree {
    /// Captures the tree for [`TreeSnapshot::serialize`]: O(1) in the nodes, O(sessions).
    #[must_use]
    pub fn capture(&self) -> TreeSnapshot {
        TreeSnapshot {
            root: self.root.clone(),
            count: self.count,
            data_size: self.data_size,
            sessions: self.sessions.clone(),
            imported: self.imported.clone(),
            passwords: self.passwords.clone(),
        }
    }

    /// Serializes the tree and sessions (`self.capture().serialize()`).
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        self.capture().serialize()
    }
}

impl TreeSnapshot {
    /// Number of nodes captured, `/` included.
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.count
    }

    /// Every captured node with its path, sorted by path.
    #[must_use]
    pub fn nodes_sorted(&self) -> Vec<(String, &Node)> {
        let mut nodes: Vec<(String, &Node)> = Walk::new("/", &self.root).collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        nodes
    }

    /// Serializes the captured tree and sessions (the format above; the same bytes as
    /// before the tree became persistent).
    #[must_use]
    pub fn serialize(&self) -> Vec<u8> {
        let hint = usize::try_from(self.data_size).unwrap_or(0);
        let mut w = Writer::with_capacity(hint.saturating_mul(2).saturating_add(64));
        w.write_raw(&SNAPSHOT_MAGIC.to_be_bytes());
        w.write_raw(&SNAPSHOT_VERSION.to_be_bytes());
        w.write_i64(i64::try_from(self.sessions.len()).unwrap_or(i64::MAX));
        for (s, timeout) in &self.sessions {
            w.write_i64(s.0);
            w.write_i32(*timeout);
        }
        w.write_i64(i64::try_from(self.imported.len()).unwrap_or(i64::MAX));
        for s in &self.imported {
            w.write_i64(s.0);
        }
        w.write_i64(i64::try_from(self.passwords.len()).unwrap_or(i64::MAX));
        for (s, p) in &self.passwords {
            w.write_i64(s.0);
            w.write_raw(p);
        }
        let nodes = self.nodes_sorted();
        w.write_i64(i64::try_from(nodes.len()).unwrap_or(i64::MAX));
        for (path, n) in nodes {
            w.write_str(&path);
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
}

impl DataTree {
    /// Rebuilds a tree from [`DataTree::snapshot`] bytes ([`DataTree::read_snapshot`] over a
    /// slice).
    pub fn from_snapshot(buf: &[u8]) -> Result<DataTree, SnapshotError> {
        DataTree::read_snapshot(buf, buf.len() as u64)
    }

    /// Rebuilds a tree from the `len` bytes of a snapshot read from `src`, building the tree
    /// while decoding: each node goes into the tree as it is read (its parent, earlier in path
    /// order, is already there), so the peak memory is the tree plus a read buffer as large
    /// as the largest node, never the serialized snapshot or a list of decoded records beside
    /// the tree. The checksum is computed as the bytes go by; a snapshot that fails it is
    /// refused ([`SnapshotError::Checksum`], also when the damage made it undecodable) and
    /// the partial tree dropped.
    ///
    /// # Errors
    /// What [`SnapshotError`] names; [`SnapshotError::Io`] when `src` fails or ends early.
    pub fn read_snapshot(src: impl std::io::Read, len: u64) -> Result<DataTree, SnapshotError> {
        let body_len = len
            .checked_sub(4)
            .ok_or(SnapshotError::Jute(JuteError::Truncated {
                offset: 0,
                needed: 4,
                available: usize::try_from(len).unwrap_or(usize::MAX),
            }))?;
        let mut feed = Feed {
            src,
            left: body_len,
            buf: Vec::new(),
            pos: 0,
            crc: 0,
        };
        let magic = feed.record(|r| Ok(u32::from_be_bytes(take4(r)?)))?;
        if magic != SNAPSHOT_MAGIC {
            return Err(SnapshotError::Magic(magic));
        }
        let version = feed.record(|r| Ok(u32::from_be_bytes(take4(r)?)))?;
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return Err(SnapshotError::Version(version));
        }
        let decoded = decode_body(&mut feed, version);
        // The rest of the body (all of it when decoding stopped early) goes through the
        // checksum: damage is reported as such even where it made the content undecodable.
        feed.drain()?;
        let mut crc4 = [0u8; 4];
        feed.src
            .read_exact(&mut crc4)
            .map_err(|e| SnapshotError::Io(format!("reading the checksum: {e}")))?;
        if feed.crc != u32::from_be_bytes(crc4) {
            return Err(SnapshotError::Checksum);
        }
        decoded
    }

    /// Builds a tree from its nodes (any order) and sessions: what a snapshot in another format
    /// (ZooKeeper's, for `zabd import`) decodes to. Children, ephemerals, containers and TTL
    /// nodes are derived from the paths and owners.
    ///
    /// # Errors
    /// [`SnapshotError::Inconsistent`] for a bad or duplicate path, a node without its parent,
    /// or no root.
    pub fn from_nodes(
        mut records: Vec<NodeRecord>,
        sessions: BTreeMap<SessionId, i32>,
    ) -> Result<DataTree, SnapshotError> {
        for r in &records {
            if !r.path.starts_with('/') || (r.path.len() > 1 && r.path.ends_with('/')) {
                return Err(SnapshotError::Inconsistent(format!(
                    "bad path {:?}",
                    r.path
                )));
            }
        }
        // A parent's path is a prefix of its children's, so it sorts before them.
        records.sort_unstable_by(|a, b| a.path.cmp(&b.path));
        if let Some(w) = records.windows(2).find(|w| w[0].path == w[1].path) {
            return Err(SnapshotError::Inconsistent(format!("{} twice", w[0].path)));
        }
        let mut records = records.into_iter();
        let mut acls = AclCache::default();
        let root = match records.next() {
            Some(r) if r.path == "/" => Node::new(r.data, acls.intern(&r.acl), r.stat),
            _ => return Err(SnapshotError::Inconsistent("no root".into())),
        };
        let mut tree = DataTree::with_root(root, sessions, acls);
        for r in records {
            tree.insert_record(r)?;
        }
        Ok(tree)
    }

    /// Adds one node below its parent, which must be in the tree already.
    fn insert_record(&mut self, record: NodeRecord) -> Result<(), SnapshotError> {
        let NodeRecord {
            path,
            data,
            acl,
            stat,
        } = record;
        let Some((parent, name)) = split_path(&path).filter(|(_, n)| !n.is_empty()) else {
            return Err(SnapshotError::Inconsistent(format!("bad path {path:?}")));
        };
        let acl = self.acls.intern(&acl);
        let node = Node::new(data, acl, stat);
        let kind = node.kind();
        let size = super::node_size(&path, node.data.as_ref());
        let Some(par) = self.get_mut(parent) else {
            return Err(SnapshotError::Inconsistent(format!("{path} has no parent")));
        };
        if par.children.0.insert(name.into(), node).is_some() {
            return Err(SnapshotError::Inconsistent(format!("{path} twice")));
        }
        self.count += 1;
        self.data_size += size;
        self.index_kind(&path, kind);
        Ok(())
    }
}

/// Decodes what follows the version: sessions, then the nodes straight into a tree.
fn decode_body<R: std::io::Read>(
    feed: &mut Feed<R>,
    version: u32,
) -> Result<DataTree, SnapshotError> {
    let n_sessions = feed.count()?;
    let mut sessions = BTreeMap::new();
    for _ in 0..n_sessions {
        let (id, timeout) = feed.record(|r| Ok((SessionId(r.read_i64()?), r.read_i32()?)))?;
        if sessions.insert(id, timeout).is_some() {
            return Err(SnapshotError::Inconsistent(format!("session {id} twice")));
        }
    }
    let mut imported = BTreeSet::new();
    if version >= 2 {
        for _ in 0..feed.count()? {
            let id = feed.record(|r| Ok(SessionId(r.read_i64()?)))?;
            if !sessions.contains_key(&id) || !imported.insert(id) {
                return Err(SnapshotError::Inconsistent(format!(
                    "imported session {id} not open or twice"
                )));
            }
        }
    }
    let mut passwords = BTreeMap::new();
    if version >= 3 {
        for _ in 0..feed.count()? {
            let (id, p) = feed.record(|r| {
                let id = SessionId(r.read_i64()?);
                let mut p = [0u8; 16];
                p.copy_from_slice(r.take(16)?);
                Ok((id, p))
            })?;
            if !sessions.contains_key(&id) || passwords.insert(id, p).is_some() {
                return Err(SnapshotError::Inconsistent(format!(
                    "password of session {id}: not open or twice"
                )));
            }
        }
    }
    let n_nodes = feed.count()?;
    let mut tree: Option<DataTree> = None;
    let mut previous = String::new();
    for _ in 0..n_nodes {
        let record = feed.record(read_node)?;
        if !record.path.starts_with('/') || (record.path.len() > 1 && record.path.ends_with('/')) {
            return Err(SnapshotError::Inconsistent(format!(
                "bad path {:?}",
                record.path
            )));
        }
        // Written sorted by path, so a parent comes before its children.
        if tree.is_some() && record.path <= previous {
            return Err(SnapshotError::Inconsistent(format!(
                "{} after {previous} (not in path order, or twice)",
                record.path
            )));
        }
        previous.clone_from(&record.path);
        match &mut tree {
            Some(t) => t.insert_record(record)?,
            None if record.path == "/" => {
                let mut acls = AclCache::default();
                let acl = acls.intern(&record.acl);
                let root = Node::new(record.data, acl, record.stat);
                tree = Some(DataTree::with_root(
                    root,
                    std::mem::take(&mut sessions),
                    acls,
                ));
            }
            None => return Err(SnapshotError::Inconsistent("no root".into())),
        }
    }
    let Some(mut tree) = tree else {
        return Err(SnapshotError::Inconsistent("no root".into()));
    };
    if feed.remaining() > 0 {
        return Err(SnapshotError::Inconsistent(format!(
            "{} trailing bytes",
            feed.remaining()
        )));
    }
    tree.imported = imported;
    tree.passwords = passwords;
    Ok(tree)
}

fn read_node(r: &mut Reader<'_>) -> Result<NodeRecord, JuteError> {
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
    let stat = StatPersisted::read(r)?;
    Ok(NodeRecord {
        path,
        data,
        acl,
        stat,
    })
}

/// A snapshot's body read in pieces: a buffer refilled from `src` as records need bytes
/// (grown only as far as the largest record), and the CRC-32C of every byte read.
struct Feed<R> {
    src: R,
    /// Body bytes not yet read from `src`.
    left: u64,
    buf: Vec<u8>,
    pos: usize,
    crc: u32,
}

/// The smallest read from the source.
const FEED_READ: usize = 64 * 1024;

impl<R: std::io::Read> Feed<R> {
    /// Body bytes not yet decoded.
    fn remaining(&self) -> u64 {
        self.left + (self.buf.len() - self.pos) as u64
    }

    /// Reads at least `more` further bytes (all that are left if fewer).
    fn fill(&mut self, more: usize) -> Result<(), SnapshotError> {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(more.max(FEED_READ));
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        self.src
            .read_exact(&mut self.buf[start..])
            .map_err(|e| SnapshotError::Io(format!("reading the snapshot: {e}")))?;
        self.crc = crc32c::crc32c_append(self.crc, &self.buf[start..]);
        self.left -= n as u64;
        Ok(())
    }

    /// Decodes one record with `f`, reading more bytes while it runs out of them.
    fn record<T>(
        &mut self,
        f: impl Fn(&mut Reader<'_>) -> Result<T, JuteError>,
    ) -> Result<T, SnapshotError> {
        loop {
            let mut r = Reader::with_max_buffer(&self.buf[self.pos..], usize::MAX);
            match f(&mut r) {
                Ok(v) => {
                    self.pos += r.position();
                    return Ok(v);
                }
                Err(JuteError::Truncated { needed, .. }) if self.left > 0 => {
                    let have = self.buf.len() - self.pos;
                    self.fill(needed.max(have))?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A count, at most the bytes left (each element takes at least one).
    fn count(&mut self) -> Result<usize, SnapshotError> {
        let n = self.record(|r| r.read_i64())?;
        let n = usize::try_from(n).map_err(|_| JuteError::Invalid("count"))?;
        if n as u64 > self.remaining() {
            return Err(JuteError::Invalid("count above remaining bytes").into());
        }
        Ok(n)
    }

    /// Reads the rest of the body through the checksum, in bounded pieces.
    fn drain(&mut self) -> Result<(), SnapshotError> {
        self.buf.clear();
        self.pos = 0;
        let mut piece = vec![0u8; FEED_READ];
        while self.left > 0 {
            let n = usize::try_from(self.left)
                .unwrap_or(usize::MAX)
                .min(FEED_READ);
            self.src
                .read_exact(&mut piece[..n])
                .map_err(|e| SnapshotError::Io(format!("reading the snapshot: {e}")))?;
            self.crc = crc32c::crc32c_append(self.crc, &piece[..n]);
            self.left -= n as u64;
        }
        Ok(())
    }
}

fn take4(r: &mut Reader<'_>) -> Result<[u8; 4], JuteError> {
    let mut out = [0u8; 4];
    out.copy_from_slice(r.take(4)?);
    Ok(out)
}
