//! The DataTree: nodes with data, ACL and persisted stat; ephemerals by session; containers
//! and TTL nodes; the sessions; [`DataTree::apply`] of a committed [`Txn`] with ZooKeeper's
//! exact stat semantics (`DataTree.createNode/deleteNode/setData/setACL/killSession`); and
//! snapshots ([`snapshot`]).
//!
//! Layout (issue 12): a trie of names. Each node holds its children in a persistent map
//! ([`pmap::PMap`], `Arc`-shared branches) from name to node, so no full path is stored
//! anywhere, a child's name is stored once, and [`DataTree::capture`] is O(1): it shares the
//! root; the next writes copy only the branches on their paths. ACL lists are interned (one
//! `Arc` per distinct list, a pointer per node); data is the transaction's `Bytes`, shared
//! with the in-memory log entry that carried it.
//!
//! Stat semantics (wire doc §0, §7): the *stored* `cversion` counts child creations (the
//! sequential counter); clients see `2 * cversion - numChildren` (`DataNode.copyStat`);
//! `pzxid` is the zxid of the last child create or delete; containers and TTL nodes show
//! `ephemeralOwner = 0`. The initial tree holds `/`, `/zookeeper`, `/zookeeper/quota` and
//! `/zookeeper/config` (ACL `world:anyone` READ, aversion -1).

pub mod pmap;
pub mod snapshot;

pub use snapshot::{NodeRecord, SnapshotError, TreeSnapshot};

use crate::jute::{JuteError, Reader, Writer};
use crate::proto::{Acl, Stat, ids};
use crate::txn::{CreateTxn, NodeKind, Txn, TxnBody};
use bytes::Bytes;
use pmap::PMap;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use zab_spec::{ErrorCode, SessionId, Zxid};

/// `/zookeeper`.
pub const ZOOKEEPER: &str = "/zookeeper";
/// `/zookeeper/quota`.
pub const QUOTA: &str = "/zookeeper/quota";
/// `/zookeeper/config`.
pub const CONFIG: &str = "/zookeeper/config";

/// Whether `path` is one of ZooKeeper's special nodes that may not be deleted
/// (`DataTree.isSpecialPath`).
#[must_use]
pub fn is_special_path(path: &str) -> bool {
    matches!(path, "/" | ZOOKEEPER | QUOTA | CONFIG)
}

/// The parent of a path and the child's name (`path.lastIndexOf('/')`; `""` is `/`).
#[must_use]
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let k = path.rfind('/')?;
    let parent = if k == 0 { "/" } else { path.get(..k)? };
    Some((parent, path.get(k + 1..)?))
}

/// ZooKeeper's `StatPersisted`: what a node stores (no dataLength, no numChildren).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatPersisted {
    /// zxid of the create.
    pub czxid: i64,
    /// zxid of the last setData.
    pub mzxid: i64,
    /// Create time, ms.
    pub ctime: i64,
    /// Last setData time, ms.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Number of child creations (the sequential counter).
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Stored owner: session, `CONTAINER_OWNER` or TTL marker.
    pub ephemeral_owner: i64,
    /// zxid of the last child create or delete.
    pub pzxid: i64,
}

impl StatPersisted {
    /// Reads the jute record in ZooKeeper's field order (zabd's snapshots and ZooKeeper's
    /// `DataTree.serialize` store it the same way).
    pub fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(StatPersisted {
            czxid: r.read_i64()?,
            mzxid: r.read_i64()?,
            ctime: r.read_i64()?,
            mtime: r.read_i64()?,
            version: r.read_i32()?,
            cversion: r.read_i32()?,
            aversion: r.read_i32()?,
            ephemeral_owner: r.read_i64()?,
            pzxid: r.read_i64()?,
        })
    }

    /// Writes the jute record in ZooKeeper's field order.
    pub fn write(&self, w: &mut Writer) {
        w.write_i64(self.czxid);
        w.write_i64(self.mzxid);
        w.write_i64(self.ctime);
        w.write_i64(self.mtime);
        w.write_i32(self.version);
        w.write_i32(self.cversion);
        w.write_i32(self.aversion);
        w.write_i64(self.ephemeral_owner);
        w.write_i64(self.pzxid);
    }
}

/// A child's name: up to [`Name::INLINE`] bytes inside the entry itself (most names: no
/// allocation of their own), longer ones on the heap.
#[derive(Clone)]
pub enum Name {
    /// A short name, its bytes inline.
    Inline {
        /// Bytes used.
        len: u8,
        /// The UTF-8 bytes, `len` of them.
        bytes: [u8; Name::INLINE],
    },
    /// A longer name.
    Heap(Box<str>),
}

impl Name {
    /// The longest name kept inline (the entry stays 24 bytes, as large as a `Box<str>` and
    /// its tag).
    pub const INLINE: usize = 22;

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Name::Inline { len, bytes } => bytes
                .get(..usize::from(*len))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default(),
            Name::Heap(s) => s,
        }
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= Name::INLINE => {
                let mut bytes = [0u8; Name::INLINE];
                bytes[..s.len()].copy_from_slice(s.as_bytes());
                Name::Inline { len, bytes }
            }
            _ => Name::Heap(s.into()),
        }
    }
}

impl std::borrow::Borrow<str> for Name {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::hash::Hash for Name {
    /// As the `str` it holds, so that a map of names is searched by `&str`.
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h);
    }
}

impl PartialEq for Name {
    fn eq(&self, o: &Name) -> bool {
        self.as_str() == o.as_str()
    }
}

impl Eq for Name {}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

/// A node's children, by name (a persistent map: cloning it is O(1)).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Children(PMap<Name, Node>);

impl Children {
    /// Number of children.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a child is called `name`.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The child called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.0.get(name)
    }

    /// The names, sorted (O(k log k) for k children).
    #[must_use]
    pub fn iter(&self) -> std::vec::IntoIter<&str> {
        let mut names: Vec<&str> = self.0.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// The names, sorted, owned.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    /// Every child with its name, in no particular order.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.0.iter().map(|(k, n)| (k.as_str(), n))
    }

    /// Bytes held by this map's branches (see [`PMap::branch_bytes`]).
    #[must_use]
    pub fn branch_bytes(&self) -> usize {
        self.0.branch_bytes()
    }
}

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// A node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Data (null stays null).
    pub data: Option<Bytes>,
    /// ACL (interned: nodes with equal lists share one).
    pub acl: Arc<Vec<Acl>>,
    /// Persisted stat.
    pub stat: StatPersisted,
    /// The children by name.
    pub children: Children,
}

impl Drop for Node {
    /// Without recursion, so that a deep chain of nodes cannot exhaust the stack.
    fn drop(&mut self) {
        if self.children.is_empty() {
            return;
        }
        let mut orphans = Vec::new();
        self.children.0.dismantle(&mut orphans);
        while let Some(mut n) = orphans.pop() {
            n.children.0.dismantle(&mut orphans);
        }
    }
}

impl Node {
    fn new(data: Option<Bytes>, acl: Arc<Vec<Acl>>, stat: StatPersisted) -> Node {
        Node {
            data,
            acl,
            stat,
            children: Children::default(),
        }
    }

    /// The node kind its owner encodes.
    #[must_use]
    pub fn kind(&self) -> NodeKind {
        NodeKind::from_ephemeral_owner(self.stat.ephemeral_owner)
    }

    /// Data length (0 for null).
    #[must_use]
    pub fn data_length(&self) -> i32 {
        self.data
            .as_ref()
            .map_or(0, |d| i32::try_from(d.len()).unwrap_or(i32::MAX))
    }

    /// The stat clients see (`DataNode.copyStat`).
    #[must_use]
    pub fn stat(&self) -> Stat {
        let num_children = i32::try_from(self.children.len()).unwrap_or(i32::MAX);
        Stat {
            czxid: self.stat.czxid,
            mzxid: self.stat.mzxid,
            ctime: self.stat.ctime,
            mtime: self.stat.mtime,
            version: self.stat.version,
            cversion: self
                .stat
                .cversion
                .wrapping_mul(2)
                .wrapping_sub(num_children),
            aversion: self.stat.aversion,
            ephemeral_owner: self.kind().client_ephemeral_owner(),
            data_length: self.data_length(),
            num_children,
            pzxid: self.stat.pzxid,
        }
    }
}

/// What a committed transaction did, for the client reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxnResult {
    /// A session was created.
    SessionCreated,
    /// A session was closed.
    SessionClosed,
    /// A node was created.
    Created {
        /// Its path.
        path: String,
        /// Its stat.
        stat: Stat,
        /// Whether the reply carries the stat ([`CreateTxn::with_stat`]).
        with_stat: bool,
    },
    /// A node was deleted.
    Deleted {
        /// Its path.
        path: String,
    },
    /// Data was set.
    DataSet {
        /// The node.
        path: String,
        /// Its new stat.
        stat: Stat,
    },
    /// An ACL was set.
    AclSet {
        /// The node.
        path: String,
        /// Its new stat.
        stat: Stat,
    },
    /// A version check passed.
    Checked {
        /// The node.
        path: String,
    },
    /// A multi's results, one per op.
    Multi(Vec<TxnResult>),
    /// The write failed with this code (an error transaction, or a transaction that did
    /// not apply to this tree).
    Error(ErrorCode),
}

/// A change that may fire watches (`DataTree` calls `triggerWatch` for these).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A node was created: NodeCreated on it, NodeChildrenChanged on its parent.
    Created(String),
    /// A node was deleted: NodeDeleted on it (data and child watches), NodeChildrenChanged
    /// on its parent.
    Deleted(String),
    /// A node's data changed: NodeDataChanged on it.
    DataChanged(String),
}

/// The ACLs a watch notification of a [`Trigger`] is checked against before it is sent:
/// ZooKeeper 3.8 as Debian ships it (the CVE-2024-23944 fix, ZOOKEEPER-4799) sends an event
/// only to a watcher whose connection may READ the node — the changed node for
/// NodeCreated / NodeDeleted / NodeDataChanged, its parent for NodeChildrenChanged.
/// Found by the differential test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerAcl {
    /// The ACL of the node the trigger is about (as it was when deleted).
    pub node: Arc<Vec<Acl>>,
    /// The ACL of its parent (for NodeChildrenChanged), if it has one.
    pub parent: Option<Arc<Vec<Acl>>>,
}

/// What [`DataTree::apply`] returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// For the client reply.
    pub result: TxnResult,
    /// The watch triggers, in order.
    pub triggers: Vec<Trigger>,
    /// The ACLs of each trigger (same length and order as `triggers`).
    pub trigger_acls: Vec<TriggerAcl>,
}

/// Interned ACL lists: one `Arc` per distinct list in use.
#[derive(Clone, Debug, Default)]
struct AclCache {
    lists: HashSet<AclKey>,
    /// The size at which lists no node uses any more are dropped (doubles, so the sweeps
    /// cost O(1) per intern).
    sweep_at: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AclKey(Arc<Vec<Acl>>);

impl std::borrow::Borrow<[Acl]> for AclKey {
    fn borrow(&self) -> &[Acl] {
        self.0.as_slice()
    }
}

impl AclCache {
    fn intern(&mut self, acl: &[Acl]) -> Arc<Vec<Acl>> {
        if let Some(k) = self.lists.get(acl) {
            return Arc::clone(&k.0);
        }
        if self.lists.len() >= self.sweep_at {
            self.lists.retain(|k| Arc::strong_count(&k.0) > 1);
            self.sweep_at = (self.lists.len() * 2).max(64);
        }
        let list = Arc::new(acl.to_vec());
        self.lists.insert(AclKey(Arc::clone(&list)));
        list
    }
}

/// The replicated ZNode tree and session table.
#[derive(Clone, Debug)]
pub struct DataTree {
    /// `/`, and through its children every node.
    root: Node,
    /// Number of nodes, `/` included.
    count: usize,
    ephemerals: HashMap<SessionId, BTreeSet<String>>,
    containers: BTreeSet<String>,
    ttls: BTreeSet<String>,
    sessions: BTreeMap<SessionId, i32>,
    /// Open sessions that came from a ZooKeeper import (`zabd import`): they keep ZooKeeper's
    /// id-derived password, so their clients can resume them after the migration.
    imported: BTreeSet<SessionId>,
    /// Open sessions' passwords, from their `createSession` transactions (absent for
    /// sessions created before passwords travelled, and for imported ones).
    passwords: BTreeMap<SessionId, [u8; 16]>,
    data_size: u64,
    acls: AclCache,
}

impl PartialEq for DataTree {
    /// Equal nodes and sessions (the ACL cache is not state).
    fn eq(&self, o: &DataTree) -> bool {
        self.count == o.count
            && self.data_size == o.data_size
            && self.sessions == o.sessions
            && self.imported == o.imported
            && self.passwords == o.passwords
            && self.ephemerals == o.ephemerals
            && self.containers == o.containers
            && self.ttls == o.ttls
            && self.root == o.root
    }
}

impl Eq for DataTree {}

/// Walks a tree from a node, yielding every node with its path (pre-order, children in no
/// particular order), without recursion.
pub struct Walk<'a> {
    stack: Vec<(String, &'a Node)>,
}

impl<'a> Walk<'a> {
    fn new(path: &str, node: &'a Node) -> Walk<'a> {
        Walk {
            stack: vec![(path.to_owned(), node)],
        }
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = (String, &'a Node);

    fn next(&mut self) -> Option<Self::Item> {
        let (path, node) = self.stack.pop()?;
        for (name, child) in node.children.nodes() {
            let mut p = String::with_capacity(path.len() + 1 + name.len());
            p.push_str(if path == "/" { "" } else { &path });
            p.push('/');
            p.push_str(name);
            self.stack.push((p, child));
        }
        Some((path, node))
    }
}

/// The node at `path` under `root`.
fn lookup<'a>(root: &'a Node, path: &str) -> Option<&'a Node> {
    if path == "/" {
        return Some(root);
    }
    let mut n = root;
    for name in path.strip_prefix('/')?.split('/') {
        n = n.children.0.get(name)?;
    }
    Some(n)
}

impl Default for DataTree {
    fn default() -> DataTree {
        DataTree::new()
    }
}

fn node_size(path: &str, data: Option<&Bytes>) -> u64 {
    (path.len() + data.map_or(0, Bytes::len)) as u64
}

impl DataTree {
    /// The initial tree: `/`, `/zookeeper`, `/zookeeper/quota`, `/zookeeper/config`.
    #[must_use]
    pub fn new() -> DataTree {
        let mut acls = AclCache::default();
        let open = acls.intern(&ids::open_acl_unsafe());
        let empty = || Some(Bytes::new());
        let mut t = DataTree::with_root(
            Node::new(empty(), open.clone(), StatPersisted::default()),
            BTreeMap::new(),
            acls,
        );
        let mut zk = Node::new(empty(), open.clone(), StatPersisted::default());
        zk.children.0.insert(
            "quota".into(),
            Node::new(empty(), open, StatPersisted::default()),
        );
        // addConfigNode: setACL(READ_ACL_UNSAFE, version -1) leaves aversion at -1.
        let read = t.acls.intern(&ids::read_acl_unsafe());
        let config = Node::new(
            empty(),
            read,
            StatPersisted {
                aversion: -1,
                ..StatPersisted::default()
            },
        );
        zk.children.0.insert("config".into(), config);
        t.root.children.0.insert("zookeeper".into(), zk);
        t.count = 4;
        for p in [ZOOKEEPER, QUOTA, CONFIG] {
            t.data_size += node_size(p, Some(&Bytes::new()));
        }
        t
    }

    /// A tree of just `root` (whose children must be empty).
    fn with_root(root: Node, sessions: BTreeMap<SessionId, i32>, acls: AclCache) -> DataTree {
        DataTree {
            data_size: node_size("/", root.data.as_ref()),
            root,
            count: 1,
            ephemerals: HashMap::new(),
            containers: BTreeSet::new(),
            ttls: BTreeSet::new(),
            sessions,
            imported: BTreeSet::new(),
            passwords: BTreeMap::new(),
            acls,
        }
    }

    /// The node at `path`, to change (copying the shared branches on its way).
    fn get_mut(&mut self, path: &str) -> Option<&mut Node> {
        if path == "/" {
            return Some(&mut self.root);
        }
        let mut n = &mut self.root;
        for name in path.strip_prefix('/')?.split('/') {
            n = n.children.0.get_mut(name)?;
        }
        Some(n)
    }

    /// Sets `/zookeeper/config` the way a server does at start-up
    /// (`ZKDatabase.initConfigInZKDatabase`: data version -1, mzxid = the config's version).
    /// A local, unreplicated update: every server does it with the same configuration.
    pub fn set_config(&mut self, data: Bytes, config_version: i64, time: i64) {
        let size = node_size(CONFIG, Some(&data));
        let mut old = None;
        if let Some(n) = self.get_mut(CONFIG) {
            old = Some(node_size(CONFIG, n.data.as_ref()));
            n.data = Some(data);
            n.stat.version = -1;
            n.stat.mzxid = config_version;
            n.stat.mtime = time;
        }
        if let Some(old) = old {
            self.data_size = self.data_size.saturating_sub(old) + size;
        }
    }

    /// The node at `path`.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Node> {
        lookup(&self.root, path)
    }

    /// Whether a node exists.
    #[must_use]
    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// Number of nodes (including `/`).
    #[must_use]
    pub fn node_count(&self) -> usize {
        self.count
    }

    /// Sum of path and data lengths (`zk_approximate_data_size`).
    #[must_use]
    pub fn approximate_data_size(&self) -> u64 {
        self.data_size
    }

    /// Number of ephemeral nodes.
    #[must_use]
    pub fn ephemeral_count(&self) -> usize {
        self.ephemerals.values().map(BTreeSet::len).sum()
    }

    /// The ephemerals of a session, sorted.
    #[must_use]
    pub fn ephemerals(&self, session: SessionId) -> Vec<String> {
        self.ephemerals
            .get(&session)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every session with ephemerals and their paths.
    pub fn all_ephemerals(&self) -> impl Iterator<Item = (SessionId, &BTreeSet<String>)> {
        self.ephemerals.iter().map(|(s, p)| (*s, p))
    }

    /// Open sessions and their timeouts.
    #[must_use]
    pub fn sessions(&self) -> &BTreeMap<SessionId, i32> {
        &self.sessions
    }

    /// Whether a session is open (created and not closed).
    #[must_use]
    pub fn session_open(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    /// Marks every open session as imported from ZooKeeper (`zabd import` does this once,
    /// after restoring ZooKeeper's state): such a session is resumed with ZooKeeper's
    /// id-derived password ([`crate::session::zookeeper_password`]).
    pub fn mark_sessions_imported(&mut self) {
        self.imported = self.sessions.keys().copied().collect();
    }

    /// Forgets which sessions came from an import (for comparing with a tree read back from
    /// ZooKeeper's format, which has no such marks).
    pub fn clear_imported_marks(&mut self) {
        self.imported.clear();
    }

    /// Whether `session` is open and came from a ZooKeeper import.
    #[must_use]
    pub fn session_imported(&self, session: SessionId) -> bool {
        self.imported.contains(&session) && self.sessions.contains_key(&session)
    }

    /// The password `session` was created with, if it is open and its `createSession`
    /// carried one.
    #[must_use]
    pub fn session_password(&self, session: SessionId) -> Option<[u8; 16]> {
        self.passwords.get(&session).copied()
    }

    /// Every open session's password, by session.
    #[must_use]
    pub fn session_passwords(&self) -> &BTreeMap<SessionId, [u8; 16]> {
        &self.passwords
    }

    /// Forgets the sessions' passwords (for comparing with a tree read back from ZooKeeper's
    /// format, which has none).
    pub fn clear_session_passwords(&mut self) {
        self.passwords.clear();
    }

    /// The open sessions that came from a ZooKeeper import.
    #[must_use]
    pub fn imported_sessions(&self) -> &BTreeSet<SessionId> {
        &self.imported
    }

    /// Container paths.
    #[must_use]
    pub fn containers(&self) -> &BTreeSet<String> {
        &self.containers
    }

    /// TTL node paths.
    #[must_use]
    pub fn ttls(&self) -> &BTreeSet<String> {
        &self.ttls
    }

    /// Number of descendants of `path` (`getAllChildrenNumber`), 0 for a missing node.
    #[must_use]
    pub fn descendant_count(&self, path: &str) -> usize {
        if path == "/" {
            return self.count.saturating_sub(1);
        }
        let mut count = 0;
        let mut stack: Vec<&Node> = self.get(path).into_iter().collect();
        while let Some(n) = stack.pop() {
            count += n.children.len();
            stack.extend(n.children.nodes().map(|(_, c)| c));
        }
        count
    }

    /// The containers and TTL nodes ZooKeeper's `ContainerManager.getCandidates` would delete
    /// at `now` (ms): childless containers that had a child (stored cversion > 0) or, when
    /// `max_never_used_ms` ≠ 0, unused for longer than that since their mtime; childless TTL
    /// nodes whose `now - mtime > ttl`. Sorted; the leader submits a `deleteContainer` for
    /// each.
    #[must_use]
    pub fn expired_containers(&self, now: i64, max_never_used_ms: i64) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.containers {
            if let Some(n) = self.get(p) {
                if n.children.is_empty()
                    && (n.stat.cversion > 0
                        || (max_never_used_ms != 0
                            && now.saturating_sub(n.stat.mtime) > max_never_used_ms))
                {
                    out.push(p.clone());
                }
            }
        }
        for p in &self.ttls {
            if let Some(n) = self.get(p) {
                if let NodeKind::Ttl(ttl) = n.kind() {
                    if n.children.is_empty() && ttl != 0 && now.saturating_sub(n.stat.mtime) > ttl {
                        out.push(p.clone());
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// Applies a committed transaction with its zxid (`DataTree.processTxn`). A transaction
    /// that does not apply (which correct preparation never produces) leaves the tree as it
    /// is and reports the error, as ZooKeeper does.
    pub fn apply(&mut self, txn: &Txn, zxid: Zxid) -> ApplyOutcome {
        let zxid = zxid.to_u64() as i64;
        let mut fired = Vec::new();
        let result = self.apply_body(txn, &txn.body, zxid, &mut fired);
        let (triggers, trigger_acls) = fired.into_iter().unzip();
        ApplyOutcome {
            result,
            triggers,
            trigger_acls,
        }
    }

    /// The ACLs of the node at `path` and of its parent, for its watch notifications.
    fn trigger_acl(&self, path: &str) -> Option<TriggerAcl> {
        let node = self.get(path)?.acl.clone();
        let parent = split_path(path)
            .and_then(|(p, _)| self.get(p))
            .map(|n| n.acl.clone());
        Some(TriggerAcl { node, parent })
    }

    fn apply_body(
        &mut self,
        txn: &Txn,
        body: &TxnBody,
        zxid: i64,
        triggers: &mut Vec<(Trigger, TriggerAcl)>,
    ) -> TxnResult {
        let time = txn.header.time;
        match body {
            TxnBody::CreateSession { timeout, passwd } => {
                self.sessions.insert(txn.header.session, *timeout);
                match passwd {
                    Some(p) => self.passwords.insert(txn.header.session, *p),
                    None => self.passwords.remove(&txn.header.session),
                };
                TxnResult::SessionCreated
            }
            TxnBody::CloseSession { ephemerals } => {
                self.kill_session(txn.header.session, ephemerals, zxid, triggers);
                TxnResult::SessionClosed
            }
            TxnBody::Create(c) => match self.create_node(c, zxid, time) {
                Ok(stat) => {
                    if let Some(acl) = self.trigger_acl(&c.path) {
                        triggers.push((Trigger::Created(c.path.clone()), acl));
                    }
                    TxnResult::Created {
                        path: c.path.clone(),
                        stat,
                        with_stat: c.with_stat,
                    }
                }
                Err(e) => TxnResult::Error(e),
            },
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                let acl = self.trigger_acl(path);
                match self.delete_node(path, zxid) {
                    Ok(()) => {
                        if let Some(acl) = acl {
                            triggers.push((Trigger::Deleted(path.clone()), acl));
                        }
                        TxnResult::Deleted { path: path.clone() }
                    }
                    Err(e) => TxnResult::Error(e),
                }
            }
            TxnBody::SetData {
                path,
                data,
                version,
            } => match self.get_mut(path) {
                None => TxnResult::Error(ErrorCode::NoNode),
                Some(n) => {
                    let size = node_size(path, data.as_ref());
                    let old = node_size(path, n.data.as_ref());
                    n.data = data.clone();
                    n.stat.mtime = time;
                    n.stat.mzxid = zxid;
                    n.stat.version = *version;
                    let stat = n.stat();
                    let acl = TriggerAcl {
                        node: n.acl.clone(),
                        parent: None,
                    };
                    triggers.push((Trigger::DataChanged(path.clone()), acl));
                    self.data_size = self.data_size.saturating_sub(old) + size;
                    TxnResult::DataSet {
                        path: path.clone(),
                        stat,
                    }
                }
            },
            TxnBody::SetAcl { path, acl, version } => {
                let acl = self.acls.intern(acl);
                match self.get_mut(path) {
                    None => TxnResult::Error(ErrorCode::NoNode),
                    Some(n) => {
                        n.stat.aversion = *version;
                        n.acl = acl;
                        TxnResult::AclSet {
                            path: path.clone(),
                            stat: n.stat(),
                        }
                    }
                }
            }
            TxnBody::Check { path, .. } => TxnResult::Checked { path: path.clone() },
            TxnBody::Multi(ops) => TxnResult::Multi(
                ops.iter()
                    .map(|o| match o {
                        // A multi never nests; treat a nested one as an error op.
                        TxnBody::Multi(_) => TxnResult::Error(ErrorCode::MarshallingError),
                        o => self.apply_body(txn, o, zxid, triggers),
                    })
                    .collect(),
            ),
            TxnBody::Error(code) => TxnResult::Error(*code),
        }
    }

    /// `DataTree.createNode`.
    fn create_node(&mut self, c: &CreateTxn, zxid: i64, time: i64) -> Result<Stat, ErrorCode> {
        let (parent_path, name) = split_path(&c.path).ok_or(ErrorCode::NoNode)?;
        if c.path == "/" {
            return Err(ErrorCode::NodeExists);
        }
        if name.is_empty() {
            return Err(ErrorCode::BadArguments);
        }
        let acl = self.acls.intern(&c.acl);
        let parent = self.get_mut(parent_path).ok_or(ErrorCode::NoNode)?;
        if parent.children.contains(name) {
            return Err(ErrorCode::NodeExists);
        }
        // The txn carries the parent's new cversion; a replayed older create does not lower it.
        if c.parent_cversion > parent.stat.cversion {
            parent.stat.cversion = c.parent_cversion;
            parent.stat.pzxid = zxid;
        }
        let owner = c.kind.ephemeral_owner();
        let node = Node::new(
            c.data.clone(),
            acl,
            StatPersisted {
                czxid: zxid,
                mzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                ephemeral_owner: owner,
                pzxid: zxid,
            },
        );
        let stat = node.stat();
        parent.children.0.insert(name.into(), node);
        self.count += 1;
        self.data_size += node_size(&c.path, c.data.as_ref());
        self.index_kind(&c.path, c.kind);
        Ok(stat)
    }

    /// Records a new node at `path` in the set its kind belongs to.
    fn index_kind(&mut self, path: &str, kind: NodeKind) {
        match kind {
            NodeKind::Container => {
                self.containers.insert(path.to_owned());
            }
            NodeKind::Ttl(_) => {
                self.ttls.insert(path.to_owned());
            }
            NodeKind::Ephemeral(s) => {
                self.ephemerals
                    .entry(s)
                    .or_default()
                    .insert(path.to_owned());
            }
            NodeKind::Persistent => {}
        }
    }

    /// `DataTree.deleteNode` (refusing, unlike ZooKeeper, to orphan children).
    fn delete_node(&mut self, path: &str, zxid: i64) -> Result<(), ErrorCode> {
        if path == "/" {
            return Err(ErrorCode::BadArguments);
        }
        let (parent_path, name) = split_path(path).ok_or(ErrorCode::NoNode)?;
        let node = self.get(path).ok_or(ErrorCode::NoNode)?;
        if !node.children.is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        let parent = self.get_mut(parent_path).ok_or(ErrorCode::NoNode)?;
        let Some(node) = parent.children.0.remove(name) else {
            return Err(ErrorCode::NoNode);
        };
        if zxid > parent.stat.pzxid {
            parent.stat.pzxid = zxid;
        }
        self.count -= 1;
        self.data_size = self
            .data_size
            .saturating_sub(node_size(path, node.data.as_ref()));
        match node.kind() {
            NodeKind::Container => {
                self.containers.remove(path);
            }
            NodeKind::Ttl(_) => {
                self.ttls.remove(path);
            }
            NodeKind::Ephemeral(s) => {
                if let Some(set) = self.ephemerals.get_mut(&s) {
                    set.remove(path);
                    if set.is_empty() {
                        self.ephemerals.remove(&s);
                    }
                }
            }
            NodeKind::Persistent => {}
        }
        Ok(())
    }

    /// `DataTree.killSession`: deletes the listed paths that are still ephemerals of the
    /// session, then any other ephemeral of it (sorted), and forgets the session.
    fn kill_session(
        &mut self,
        session: SessionId,
        listed: &[String],
        zxid: i64,
        triggers: &mut Vec<(Trigger, TriggerAcl)>,
    ) {
        self.sessions.remove(&session);
        self.imported.remove(&session);
        self.passwords.remove(&session);
        let mut paths: Vec<String> = listed.to_vec();
        for p in self.ephemerals(session) {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        for p in paths {
            let owned = self
                .get(&p)
                .is_some_and(|n| n.kind() == NodeKind::Ephemeral(session));
            let acl = self.trigger_acl(&p);
            if owned && self.delete_node(&p, zxid).is_ok() {
                if let Some(acl) = acl {
                    triggers.push((Trigger::Deleted(p), acl));
                }
            }
        }
        self.ephemerals.remove(&session);
    }

    /// ZooKeeper's `DataTree.setCversionPzxid`, which its restore applies when replaying a
    /// `create` finds the node already there (a fuzzy snapshot): raises the parent's stored
    /// cversion to `cversion` (`-1`: one above the current) and its pzxid to `zxid`. Returns
    /// whether the node exists.
    pub fn set_cversion_pzxid(&mut self, path: &str, cversion: i32, zxid: i64) -> bool {
        let Some(n) = self.get_mut(path) else {
            return false;
        };
        let cversion = if cversion == -1 {
            n.stat.cversion.wrapping_add(1)
        } else {
            cversion
        };
        if cversion > n.stat.cversion {
            n.stat.cversion = cversion;
            n.stat.pzxid = zxid;
        }
        true
    }

    /// Every node with its path, in no particular order.
    #[must_use]
    pub fn iter(&self) -> Walk<'_> {
        Walk::new("/", &self.root)
    }

    /// Bytes the tree's own structure holds per the sizes of its parts (nodes inline in
    /// their parents' branches, the branches, the names' heap parts), not counting data,
    /// ACL lists or the side sets (ephemerals, containers, TTLs, sessions): what
    /// `tree_memory` bounds per znode.
    #[must_use]
    pub fn structure_bytes(&self) -> usize {
        let mut total = size_of::<Node>();
        let mut stack = vec![&self.root];
        while let Some(n) = stack.pop() {
            total += n.children.branch_bytes();
            for (name, c) in n.children.nodes() {
                if name.len() > Name::INLINE {
                    total += name.len();
                }
                stack.push(c);
            }
        }
        total
    }
}

#[cfg(test)]
mod tests;
