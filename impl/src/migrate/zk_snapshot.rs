//! ZooKeeper 3.8's snapshot file (`version-2/snapshot.<zxid hex>`), read and written exactly as
//! `FileSnap` does (all jute, big-endian):
//!
//! ```text
//! FileHeader      int magic "ZKSN", int version 2, long dbid (-1)
//! sessions        int count, then (long id, int timeout) each        SerializeUtils.serializeSnapshot
//! ACL cache       int count, then (long id, vector<ACL>) each         ReferenceCountedACLCache.serialize
//! nodes           (ustring path, DataNode) in pre-order, the root as "" DataTree.serializeNode
//!                 DataNode = buffer data, long acl id, StatPersisted
//! end             ustring "/"
//! seal            long Adler-32 of every byte before it, ustring "/"  SnapStream.sealStream
//! digest          long zxid, int digestVersion, long digest           DataTree.serializeZxidDigest (3.6+)
//! seal            long Adler-32 of every byte before it, ustring "/"
//! ```
//!
//! ACL id `-1` is `OPEN_ACL_UNSAFE` without a cache entry. A snapshot whose last five bytes are
//! not `int 1, '/'` is one ZooKeeper itself skips as incomplete ([`looks_complete`]).

use super::{Result, adler32, corrupt, jute_err};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use zab_spec::{SessionId, Zxid};
use zab_zk::DataTree;
use zab_zk::jute::{Reader, Writer};
use zab_zk::proto::{Acl, Id, ids};
use zab_zk::tree::{NodeRecord, StatPersisted};

/// `FileSnap.SNAP_MAGIC`: "ZKSN".
pub const SNAP_MAGIC: i32 = 0x5a4b_534e;
/// `FileSnap.VERSION`.
pub const SNAP_VERSION: i32 = 2;
/// `ReferenceCountedACLCache.OPEN_UNSAFE_ACL_ID`.
const OPEN_UNSAFE_ACL_ID: i64 = -1;
/// `DigestCalculator.DIGEST_VERSION` in 3.8.
const DIGEST_VERSION: i32 = 2;

/// A parsed ZooKeeper snapshot.
#[derive(Clone, Debug)]
pub struct ZkSnapshot {
    /// Sessions and their timeouts (ms).
    pub sessions: BTreeMap<SessionId, i32>,
    /// Every node, the root as `/`, in the file's (pre-)order.
    pub nodes: Vec<NodeRecord>,
    /// How many ACL lists the cache held.
    pub acl_lists: usize,
    /// The digest trailer, if present: `(zxid, digest version, digest)`.
    pub digest: Option<(i64, i32, i64)>,
}

/// ZooKeeper's cheap check (`SnapStream.isValidCheckedStream`): at least 10 bytes, ending with
/// the `int 1, '/'` of a seal. A snapshot failing it was not finished.
#[must_use]
pub fn looks_complete(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes.ends_with(&[0, 0, 0, 1, b'/'])
}

fn read_acl_list(r: &mut Reader<'_>) -> std::result::Result<Vec<Acl>, zab_zk::jute::JuteError> {
    let list = r.read_vec(|r| {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id {
                scheme: r.read_string("scheme")?,
                id: r.read_string("id")?,
            },
        })
    })?;
    list.ok_or(zab_zk::jute::JuteError::UnexpectedNull("acls"))
}

/// Parses the snapshot `bytes` of `file`.
///
/// # Errors
/// [`super::MigrateError::Corrupt`] with the byte offset: bad magic or version, truncation, a
/// checksum mismatch, an unknown ACL id, a node before its parent or twice, trailing bytes.
pub fn parse(file: &Path, bytes: &[u8]) -> Result<ZkSnapshot> {
    let mut r = Reader::with_max_buffer(bytes, usize::MAX);
    let j = |r: &Reader<'_>, e: zab_zk::jute::JuteError| jute_err(file, 0, r.position(), &e);
    let magic = r.read_i32().map_err(|e| j(&r, e))?;
    if magic != SNAP_MAGIC {
        return Err(corrupt(
            file,
            0,
            format!("bad magic {magic:#010x}: not a ZooKeeper snapshot (expected \"ZKSN\")"),
        ));
    }
    let version = r.read_i32().map_err(|e| j(&r, e))?;
    if version != SNAP_VERSION {
        return Err(corrupt(
            file,
            4,
            format!("unsupported snapshot version {version} (ZooKeeper 3.x writes 2)"),
        ));
    }
    let _dbid = r.read_i64().map_err(|e| j(&r, e))?;
    let at = r.position();
    let count = r.read_i32().map_err(|e| j(&r, e))?;
    if count < 0 || count as usize > r.remaining() / 12 {
        return Err(corrupt(
            file,
            at as u64,
            format!("bad session count {count}"),
        ));
    }
    let mut sessions = BTreeMap::new();
    for _ in 0..count {
        let id = r.read_i64().map_err(|e| j(&r, e))?;
        let timeout = r.read_i32().map_err(|e| j(&r, e))?;
        sessions.insert(SessionId(id), timeout);
    }
    let at = r.position();
    let count = r.read_i32().map_err(|e| j(&r, e))?;
    if count < 0 || count as usize > r.remaining() / 12 {
        return Err(corrupt(
            file,
            at as u64,
            format!("bad ACL cache size {count}"),
        ));
    }
    let mut acls: HashMap<i64, Vec<Acl>> = HashMap::new();
    for _ in 0..count {
        let at = r.position();
        let id = r.read_i64().map_err(|e| j(&r, e))?;
        let list = read_acl_list(&mut r).map_err(|e| j(&r, e))?;
        if acls.insert(id, list).is_some() {
            return Err(corrupt(file, at as u64, format!("ACL id {id} twice")));
        }
    }
    let acl_lists = acls.len();
    let nodes = read_nodes(file, &mut r, &acls)?;
    check_seal(file, bytes, &mut r)?;
    let digest = if r.is_empty() {
        None
    } else {
        let zxid = r.read_i64().map_err(|e| j(&r, e))?;
        let version = r.read_i32().map_err(|e| j(&r, e))?;
        let digest = r.read_i64().map_err(|e| j(&r, e))?;
        check_seal(file, bytes, &mut r)?;
        Some((zxid, version, digest))
    };
    if !r.is_empty() {
        return Err(corrupt(
            file,
            r.position() as u64,
            format!("{} unexpected bytes after the snapshot", r.remaining()),
        ));
    }
    Ok(ZkSnapshot {
        sessions,
        nodes,
        acl_lists,
        digest,
    })
}

/// The node section: `(path, DataNode)` records until the `/` end marker, each node after its
/// parent (pre-order), the root as `""`.
fn read_nodes(
    file: &Path,
    r: &mut Reader<'_>,
    acls: &HashMap<i64, Vec<Acl>>,
) -> Result<Vec<NodeRecord>> {
    let j = |r: &Reader<'_>, e: zab_zk::jute::JuteError| jute_err(file, 0, r.position(), &e);
    let mut nodes = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let at = r.position() as u64;
        let path = r.read_string("path").map_err(|e| j(r, e))?;
        if path == "/" {
            break;
        }
        let data = r.read_buffer().map_err(|e| j(r, e))?;
        let acl_id = r.read_i64().map_err(|e| j(r, e))?;
        let stat = StatPersisted::read(r).map_err(|e| j(r, e))?;
        let acl = if acl_id == OPEN_UNSAFE_ACL_ID {
            ids::open_acl_unsafe()
        } else {
            acls.get(&acl_id).cloned().ok_or_else(|| {
                corrupt(
                    file,
                    at,
                    format!("node {path:?} refers to ACL id {acl_id}, not in the ACL cache"),
                )
            })?
        };
        let path = if path.is_empty() {
            "/".to_owned()
        } else if zab_spec::znode::validate_path(&path).is_err() {
            return Err(corrupt(file, at, format!("bad node path {path:?}")));
        } else {
            let parent = match path.rfind('/') {
                Some(0) | None => "/",
                Some(k) => &path[..k],
            };
            if !seen.contains(parent) {
                return Err(corrupt(
                    file,
                    at,
                    format!("node {path:?} comes before its parent {parent:?}"),
                ));
            }
            path
        };
        if !seen.insert(path.clone()) {
            return Err(corrupt(file, at, format!("node {path:?} twice")));
        }
        nodes.push(NodeRecord {
            path,
            data,
            acl,
            stat,
        });
    }
    if !seen.contains("/") {
        return Err(corrupt(
            file,
            r.position() as u64,
            "the snapshot has no root node",
        ));
    }
    Ok(nodes)
}

/// `SnapStream.checkSealIntegrity`: the Adler-32 of everything before the seal, then "/".
fn check_seal(file: &Path, bytes: &[u8], r: &mut Reader<'_>) -> Result<()> {
    let at = r.position();
    let computed = adler32(&bytes[..at]);
    let stored = r
        .read_i64()
        .map_err(|e| jute_err(file, 0, r.position(), &e))?;
    let slash = r
        .read_string("seal")
        .map_err(|e| jute_err(file, 0, r.position(), &e))?;
    if stored != i64::from(computed) {
        return Err(corrupt(
            file,
            at as u64,
            format!("checksum mismatch: stored Adler-32 {stored:#x}, computed {computed:#x}"),
        ));
    }
    if slash != "/" {
        return Err(corrupt(
            file,
            at as u64 + 8,
            format!("bad seal marker {slash:?}"),
        ));
    }
    Ok(())
}

fn write_seal(w: &mut Writer) {
    let sum = adler32(w.as_slice());
    w.write_i64(i64::from(sum));
    w.write_str("/");
}

/// Serializes `tree` as ZooKeeper 3.8's `FileSnap.serialize` would (with an empty digest
/// trailer, which ZooKeeper reads as "no digest to compare"). ACL ids are numbered from 1 in
/// the order the nodes are written; children are written in name order.
#[must_use]
pub fn write(tree: &DataTree) -> Vec<u8> {
    // Pre-order, children in name order (ZooKeeper's order is its hash set's; any pre-order
    // reads back the same).
    let mut order: Vec<String> = Vec::with_capacity(tree.node_count());
    let mut stack = vec!["/".to_owned()];
    while let Some(p) = stack.pop() {
        let Some(n) = tree.get(&p) else { continue };
        for c in n.children.iter().rev() {
            stack.push(if p == "/" {
                format!("/{c}")
            } else {
                format!("{p}/{c}")
            });
        }
        order.push(p);
    }
    let mut acl_ids: HashMap<&[Acl], i64> = HashMap::new();
    let mut acl_lists: Vec<&[Acl]> = Vec::new();
    for p in &order {
        if let Some(n) = tree.get(p) {
            let list = n.acl.as_slice();
            if !acl_ids.contains_key(list) {
                acl_lists.push(list);
                acl_ids.insert(list, acl_lists.len() as i64);
            }
        }
    }
    let mut w = Writer::with_capacity(
        usize::try_from(tree.approximate_data_size())
            .unwrap_or(0)
            .saturating_mul(2)
            .saturating_add(4096),
    );
    w.write_i32(SNAP_MAGIC);
    w.write_i32(SNAP_VERSION);
    w.write_i64(-1);
    w.write_i32(i32::try_from(tree.sessions().len()).unwrap_or(i32::MAX));
    for (s, timeout) in tree.sessions() {
        w.write_i64(s.0);
        w.write_i32(*timeout);
    }
    w.write_i32(i32::try_from(acl_lists.len()).unwrap_or(i32::MAX));
    for (k, list) in acl_lists.iter().enumerate() {
        w.write_i64(k as i64 + 1);
        w.write_vec(list, |w, a| {
            w.write_i32(a.perms);
            w.write_str(&a.id.scheme);
            w.write_str(&a.id.id);
        });
    }
    for p in &order {
        let Some(n) = tree.get(p) else { continue };
        w.write_str(if p == "/" { "" } else { p });
        w.write_buffer(n.data.as_deref());
        w.write_i64(
            acl_ids
                .get(n.acl.as_slice())
                .copied()
                .unwrap_or(OPEN_UNSAFE_ACL_ID),
        );
        n.stat.write(&mut w);
    }
    w.write_str("/");
    write_seal(&mut w);
    // An empty ZxidDigest: zxid 0 means "nothing to compare" to ZooKeeper's loader.
    w.write_i64(0);
    w.write_i32(DIGEST_VERSION);
    w.write_i64(0);
    write_seal(&mut w);
    w.into_vec()
}

/// ZooKeeper's snapshot file name for `zxid` (`snapshot.` + `Long.toHexString`).
#[must_use]
pub fn file_name(zxid: Zxid) -> String {
    format!("snapshot.{:x}", zxid.to_u64())
}
