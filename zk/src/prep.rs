//! Request preparation (ZooKeeper's `PrepRequestProcessor`): turning a decoded write request
//! into a transaction body, or an error transaction, against a speculative view of the tree:
//! the committed [`DataTree`] plus the changes of earlier, not yet committed transactions
//! (ZooKeeper's `outstandingChanges`), kept by the [`Preparer`].
//!
//! Check order and codes follow `PrepRequestProcessor` 3.8 (wire doc §4 "write path"):
//! - create: flags (BadArguments) → TTL enabled (Unimplemented) / TTL valid (BadArguments) →
//!   session → path has a `/` and no NUL (BadArguments) → ACL fix-up (InvalidAcl) → parent
//!   exists (NoNode) → CREATE on parent (NoAuth) → sequential suffix from the parent's stored
//!   cversion → `validatePath` (BadArguments) → exists (NodeExists) → ephemeral parent
//!   (NoChildrenForEphemerals);
//! - delete: session → path (BadArguments, also for `/`, `/zookeeper`, `/zookeeper/quota`,
//!   `/zookeeper/config`) → parent (NoNode) → DELETE on parent (NoAuth) → node (NoNode) →
//!   version (BadVersion) → children (NotEmpty);
//! - setData: session → path → node → WRITE → version; setACL: session → path → ACL fix-up →
//!   node → ADMIN → aversion; check: session → path → node → READ → version;
//! - deleteContainer (leader-internal): path → node → children (NotEmpty) → a real ephemeral
//!   (BadVersion) → parent;
//! - multi: every op against the view left by the previous ops; on the first failure the
//!   whole multi becomes `ErrorTxn`s (0 before, the code, -2 after) and its changes are
//!   rolled back;
//! - reconfig: ReconfigDisabled; closeSession: the session's ephemerals (committed and
//!   outstanding) are listed and marked deleted.
//!
//! `version = -1` matches any version; new versions wrap like Java ints.

use crate::acl;
use crate::proto::{Acl, Id, MultiOp, Request, op, perms};
use crate::tree::{DataTree, Node, is_special_path};
use crate::txn::{CreateTxn, MAX_TTL, NodeKind, Txn, TxnBody, TxnHeader};
use bytes::Bytes;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use zab_spec::znode::{sequential_name, validate_path};
use zab_spec::{CreateMode, ErrorCode, SessionId, Zxid};

/// Leader settings that change what preparation accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrepConfig {
    /// `zookeeper.extendedTypesEnabled`: TTL nodes allowed (else createTTL is
    /// Unimplemented).
    pub ttl_enabled: bool,
}

/// Who sends the request, and the header of the transaction it becomes.
#[derive(Clone, Copy, Debug)]
pub struct PrepContext<'a> {
    /// The requesting session (0 for leader-internal requests).
    pub session: SessionId,
    /// The request's xid.
    pub cxid: i32,
    /// The leader's wall-clock time, ms.
    pub time: i64,
    /// The auth ids of the requesting connection.
    pub auth: &'a [Id],
    /// Set by the server when the session is owned by another connection/server
    /// (`checkSession`'s owner check): writes fail with SessionMoved.
    pub session_moved: bool,
}

impl PrepContext<'_> {
    fn header(&self) -> TxnHeader {
        TxnHeader {
            session: self.session,
            cxid: self.cxid,
            time: self.time,
        }
    }
}

/// A node as preparation sees it (`ChangeRecord`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PendingNode {
    version: i32,
    cversion: i32,
    aversion: i32,
    kind: NodeKind,
    child_count: i64,
    acl: Arc<Vec<Acl>>,
}

impl PendingNode {
    fn from_node(n: &Node) -> PendingNode {
        PendingNode {
            version: n.stat.version,
            cversion: n.stat.cversion,
            aversion: n.stat.aversion,
            kind: n.kind(),
            child_count: n.children.len() as i64,
            acl: n.acl.clone(),
        }
    }
}

#[derive(Clone, Debug)]
struct ChangeRecord {
    zxid: i64,
    node: Option<PendingNode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SessionChange {
    Created,
    Closing,
}

/// The leader's request preparation state: outstanding (prepared, not yet committed)
/// changes of nodes and sessions.
#[derive(Clone, Debug, Default)]
pub struct Preparer {
    config: PrepConfig,
    changes: HashMap<String, ChangeRecord>,
    queue: VecDeque<(i64, String)>,
    sessions: HashMap<SessionId, (i64, SessionChange)>,
    session_queue: VecDeque<(i64, SessionId)>,
}

/// The speculative view one request is prepared against: its own changes over the
/// outstanding ones over the committed tree.
struct View<'a> {
    tree: &'a DataTree,
    outstanding: &'a HashMap<String, ChangeRecord>,
    local: Vec<(String, Option<PendingNode>)>,
}

impl View<'_> {
    fn get(&self, path: &str) -> Option<PendingNode> {
        if let Some((_, n)) = self.local.iter().rev().find(|(p, _)| p == path) {
            return n.clone();
        }
        if let Some(c) = self.outstanding.get(path) {
            return c.node.clone();
        }
        self.tree.get(path).map(PendingNode::from_node)
    }

    /// `getRecordForPath`: the node or NoNode.
    fn record(&self, path: &str) -> Result<PendingNode, ErrorCode> {
        self.get(path).ok_or(ErrorCode::NoNode)
    }

    fn set(&mut self, path: &str, node: Option<PendingNode>) {
        self.local.push((path.to_owned(), node));
    }
}

/// `validatePathForCreate` / `getParentPathAndValidate`: the parent of `path`
/// (`path.substring(0, lastSlash)`, `""` being `/`); BadArguments without `/` or with NUL.
fn parent_of(path: &str) -> Result<&str, ErrorCode> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    match path.rfind('/') {
        None => Err(ErrorCode::BadArguments),
        Some(0) => Ok("/"),
        Some(k) => path.get(..k).ok_or(ErrorCode::BadArguments),
    }
}

/// `checkAndIncVersion`.
fn check_and_inc_version(current: i32, expected: i32) -> Result<i32, ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(current.wrapping_add(1))
}

/// Where a create comes from: the request opcode decides the node type at top level,
/// the flags decide it inside a multi (`Op.create` picks the sub-op from the flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CreateOrigin {
    TopLevel(i32),
    InMulti,
}

struct CreateArgs<'r> {
    path: &'r str,
    data: &'r Option<Bytes>,
    acl: &'r [Acl],
    flags: i32,
    ttl: i64,
}

impl Preparer {
    /// A preparer with no outstanding changes.
    #[must_use]
    pub fn new(config: PrepConfig) -> Preparer {
        Preparer {
            config,
            ..Preparer::default()
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> PrepConfig {
        self.config
    }

    /// Number of outstanding node changes.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.changes.len()
    }

    /// Forgets every outstanding change (a new leader starts from the committed tree).
    pub fn reset(&mut self) {
        self.changes.clear();
        self.queue.clear();
        self.sessions.clear();
        self.session_queue.clear();
    }

    /// Call after the transaction with `zxid` (and all before it) was applied to the tree:
    /// drops the outstanding changes it covered (`FinalRequestProcessor`).
    pub fn committed(&mut self, zxid: Zxid) {
        let z = zxid.to_u64() as i64;
        while self.queue.front().is_some_and(|(cz, _)| *cz <= z) {
            if let Some((cz, path)) = self.queue.pop_front() {
                if self.changes.get(&path).is_some_and(|c| c.zxid == cz) {
                    self.changes.remove(&path);
                }
            }
        }
        while self.session_queue.front().is_some_and(|(cz, _)| *cz <= z) {
            if let Some((cz, s)) = self.session_queue.pop_front() {
                if self.sessions.get(&s).is_some_and(|c| c.0 == cz) {
                    self.sessions.remove(&s);
                }
            }
        }
    }

    /// Whether a session is open in the speculative view (created, not closing).
    #[must_use]
    pub fn session_open(&self, tree: &DataTree, session: SessionId) -> bool {
        match self.sessions.get(&session) {
            Some((_, SessionChange::Created)) => true,
            Some((_, SessionChange::Closing)) => false,
            None => tree.session_open(session),
        }
    }

    /// `checkSession`: an unknown or closing session is expired; then the owner check.
    fn check_session(&self, tree: &DataTree, ctx: &PrepContext<'_>) -> Result<(), ErrorCode> {
        if !self.session_open(tree, ctx.session) {
            return Err(ErrorCode::SessionExpired);
        }
        if ctx.session_moved {
            return Err(ErrorCode::SessionMoved);
        }
        Ok(())
    }

    /// A `createSession` transaction for a new session with its negotiated timeout and the
    /// password its server gave it.
    pub fn create_session(
        &mut self,
        session: SessionId,
        (timeout, passwd): (i32, [u8; 16]),
        time: i64,
        zxid: Zxid,
    ) -> Txn {
        let z = zxid.to_u64() as i64;
        self.sessions.insert(session, (z, SessionChange::Created));
        self.session_queue.push_back((z, session));
        Txn::new(
            TxnHeader {
                session,
                cxid: 0,
                time,
            },
            TxnBody::CreateSession {
                timeout,
                passwd: Some(passwd),
            },
        )
    }

    /// An error transaction (e.g. for a write request whose body did not parse:
    /// MarshallingError).
    #[must_use]
    pub fn error_txn(ctx: &PrepContext<'_>, code: ErrorCode) -> Txn {
        Txn::new(ctx.header(), TxnBody::Error(code))
    }

    /// Prepares a write request with the zxid the leader gives it. `None` if the request is
    /// not a write. A request that fails becomes an error transaction (it still takes its
    /// zxid, as in ZooKeeper).
    pub fn prep(
        &mut self,
        tree: &DataTree,
        ctx: &PrepContext<'_>,
        zxid: Zxid,
        request: &Request,
    ) -> Option<Txn> {
        let z = zxid.to_u64() as i64;
        if let Request::CloseSession = request {
            return Some(self.close_session(tree, ctx, z));
        }
        let outstanding = std::mem::take(&mut self.changes);
        let mut view = View {
            tree,
            outstanding: &outstanding,
            local: Vec::new(),
        };
        let body = match request {
            Request::Create(r) => self.prep_create_req(&mut view, ctx, op::CREATE, r),
            Request::Create2(r) => self.prep_create_req(&mut view, ctx, op::CREATE2, r),
            Request::CreateContainer(r) => {
                self.prep_create_req(&mut view, ctx, op::CREATE_CONTAINER, r)
            }
            Request::CreateTtl(r) => self.prep_create(
                &mut view,
                ctx,
                CreateOrigin::TopLevel(op::CREATE_TTL),
                &CreateArgs {
                    path: &r.path,
                    data: &r.data,
                    acl: &r.acl,
                    flags: r.flags,
                    ttl: r.ttl,
                },
            ),
            Request::Delete(r) => self.prep_delete(&mut view, ctx, &r.path, r.version),
            Request::DeleteContainer { path } => Self::prep_delete_container(&mut view, path),
            Request::SetData(r) => self.prep_set_data(&mut view, ctx, &r.path, &r.data, r.version),
            Request::SetAcl(r) => self.prep_set_acl(&mut view, ctx, &r.path, &r.acl, r.version),
            Request::Check(r) => self.prep_check(&mut view, ctx, &r.path, r.version),
            Request::Multi(ops) => Ok(self.prep_multi(&mut view, ctx, ops)),
            Request::Reconfig(_) => Err(ErrorCode::ReconfigDisabled),
            _ => {
                self.changes = outstanding;
                return None;
            }
        };
        let local = std::mem::take(&mut view.local);
        self.changes = outstanding;
        let body = match body {
            Ok(b) => {
                // What succeeded becomes outstanding (a failed multi already dropped its
                // changes: rollback).
                for (path, node) in local {
                    self.queue.push_back((z, path.clone()));
                    self.changes.insert(path, ChangeRecord { zxid: z, node });
                }
                b
            }
            Err(code) => TxnBody::Error(code),
        };
        Some(Txn::new(ctx.header(), body))
    }

    fn prep_create_req(
        &self,
        view: &mut View<'_>,
        ctx: &PrepContext<'_>,
        opcode: i32,
        r: &crate::proto::CreateRequest,
    ) -> Result<TxnBody, ErrorCode> {
        self.prep_create(
            view,
            ctx,
            CreateOrigin::TopLevel(opcode),
            &CreateArgs {
                path: &r.path,
                data: &r.data,
                acl: &r.acl,
                flags: r.flags,
                ttl: -1,
            },
        )
    }

    /// `pRequest2TxnCreate`.
    fn prep_create(
        &self,
        view: &mut View<'_>,
        ctx: &PrepContext<'_>,
        origin: CreateOrigin,
        a: &CreateArgs<'_>,
    ) -> Result<TxnBody, ErrorCode> {
        let mode = CreateMode::from_flag(a.flags)?;
        // validateCreateRequest
        if mode.is_ttl() && !self.config.ttl_enabled {
            return Err(ErrorCode::Unimplemented);
        }
        if mode.is_ttl() {
            if a.ttl <= 0 || a.ttl > MAX_TTL {
                return Err(ErrorCode::BadArguments);
            }
        } else if a.ttl >= 0 {
            return Err(ErrorCode::BadArguments);
        }
        // createTTL with a non-TTL mode would make ZooKeeper fail when applying; refuse it.
        if origin == CreateOrigin::TopLevel(op::CREATE_TTL) && !mode.is_ttl() {
            return Err(ErrorCode::BadArguments);
        }
        self.check_session(view.tree, ctx)?;
        let parent_path = parent_of(a.path)?;
        let acl = acl::fixup(a.acl, ctx.auth)?;
        let parent = view.record(parent_path)?;
        acl::check(&parent.acl, perms::CREATE, ctx.auth)?;
        let parent_cversion = parent.cversion;
        let path = if mode.is_sequential() {
            sequential_name(a.path, parent_cversion)
        } else {
            a.path.to_owned()
        };
        validate_path(&path)?;
        if view.get(&path).is_some() {
            return Err(ErrorCode::NodeExists);
        }
        if matches!(parent.kind, NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let new_cversion = parent_cversion.wrapping_add(1);
        let ephemeral = || {
            if mode.is_ephemeral() {
                NodeKind::Ephemeral(ctx.session)
            } else {
                NodeKind::Persistent
            }
        };
        let (kind, with_stat) = match origin {
            CreateOrigin::TopLevel(op::CREATE_CONTAINER) => (NodeKind::Container, true),
            CreateOrigin::TopLevel(op::CREATE_TTL) => (NodeKind::Ttl(a.ttl), true),
            // A create/create2 with the container flag makes a persistent node in ZooKeeper
            // (CreateTxn has only an ephemeral flag).
            CreateOrigin::TopLevel(opcode) => (ephemeral(), opcode != op::CREATE),
            CreateOrigin::InMulti if mode.is_container() => (NodeKind::Container, true),
            CreateOrigin::InMulti if mode.is_ttl() => (NodeKind::Ttl(a.ttl), true),
            CreateOrigin::InMulti => (ephemeral(), false),
        };
        let acl_arc = Arc::new(acl.clone());
        let mut parent_after = parent;
        parent_after.child_count += 1;
        parent_after.cversion = new_cversion;
        view.set(parent_path, Some(parent_after));
        view.set(
            &path,
            Some(PendingNode {
                version: 0,
                cversion: 0,
                aversion: 0,
                kind,
                child_count: 0,
                acl: acl_arc,
            }),
        );
        Ok(TxnBody::Create(CreateTxn {
            path,
            data: a.data.clone(),
            acl,
            kind,
            parent_cversion: new_cversion,
            sequential: mode.is_sequential(),
            with_stat,
        }))
    }

    fn prep_delete(
        &self,
        view: &mut View<'_>,
        ctx: &PrepContext<'_>,
        path: &str,
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        self.check_session(view.tree, ctx)?;
        let parent_path = parent_of(path)?;
        if is_special_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let parent = view.record(parent_path)?;
        acl::check(&parent.acl, perms::DELETE, ctx.auth)?;
        let node = view.record(path)?;
        check_and_inc_version(node.version, version)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        let mut parent_after = parent;
        parent_after.child_count -= 1;
        view.set(parent_path, Some(parent_after));
        view.set(path, None);
        Ok(TxnBody::Delete {
            path: path.to_owned(),
        })
    }

    fn prep_delete_container(view: &mut View<'_>, path: &str) -> Result<TxnBody, ErrorCode> {
        let parent_path = parent_of(path)?;
        if is_special_path(path) {
            return Err(ErrorCode::BadArguments);
        }
        let node = view.record(path)?;
        if node.child_count > 0 {
            return Err(ErrorCode::NotEmpty);
        }
        if matches!(node.kind, NodeKind::Ephemeral(_)) {
            return Err(ErrorCode::BadVersion);
        }
        let mut parent = view.record(parent_path)?;
        parent.child_count -= 1;
        view.set(parent_path, Some(parent));
        view.set(path, None);
        Ok(TxnBody::DeleteContainer {
            path: path.to_owned(),
        })
    }

    fn prep_set_data(
        &self,
        view: &mut View<'_>,
        ctx: &PrepContext<'_>,
        path: &str,
        data: &Option<Bytes>,
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        self.check_session(view.tree, ctx)?;
        validate_path(path)?;
        let mut node = view.record(path)?;
        acl::check(&node.acl, perms::WRITE, ctx.auth)?;
        let new_version = check_and_inc_version(node.version, version)?;
        node.version = new_version;
        view.set(path, Some(node));
        Ok(TxnBody::SetData {
            path: path.to_owned(),
            data: data.clone(),
            version: new_version,
        })
    }

    fn prep_set_acl(
        &self,
        view: &mut View<'_>,
        ctx: &PrepContext<'_>,
        path: &str,
        acl: &[Acl],
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        self.check_session(view.tree, ctx)?;
        validate_path(path)?;
        let acl = acl::fixup(acl, ctx.auth)?;
        let mut node = view.record(path)?;
        acl::check(&node.acl, perms::ADMIN, ctx.auth)?;
        let new_version = check_and_inc_version(node.aversion, version)?;
        node.aversion = new_version;
        node.acl = Arc::new(acl.clone());
        view.set(path, Some(node));
        Ok(TxnBody::SetAcl {
            path: path.to_owned(),
            acl,
            version: new_version,
        })
    }

    fn prep_check(
        &self,
        view: &mut View<'_>,
        ctx: &PrepContext<'_>,
        path: &str,
        version: i32,
    ) -> Result<TxnBody, ErrorCode> {
        self.check_session(view.tree, ctx)?;
        validate_path(path)?;
        let node = view.record(path)?;
        acl::check(&node.acl, perms::READ, ctx.auth)?;
        let v = check_and_inc_version(node.version, version)?;
        Ok(TxnBody::Check {
            path: path.to_owned(),
            version: v,
        })
    }

    /// A multi: all or nothing.
    fn prep_multi(&self, view: &mut View<'_>, ctx: &PrepContext<'_>, ops: &[MultiOp]) -> TxnBody {
        let mut bodies = Vec::with_capacity(ops.len());
        for (i, o) in ops.iter().enumerate() {
            let r = match o {
                // ZooKeeper turns the record into `Op.create`, whose opcode follows the flags:
                // TTL flags make it a createTTL op without a TTL record, which
                // PrepRequestProcessor fails to cast when it reaches the op — the whole multi
                // becomes a marshalling error (verified on 3.8.0 by the differential test).
                MultiOp::Create { req, .. } if matches!(req.flags, 5 | 6) => {
                    view.local.clear();
                    return TxnBody::Error(ErrorCode::MarshallingError);
                }
                MultiOp::Create { req, .. } => self.prep_create(
                    view,
                    ctx,
                    CreateOrigin::InMulti,
                    &CreateArgs {
                        path: &req.path,
                        data: &req.data,
                        acl: &req.acl,
                        flags: req.flags,
                        ttl: -1,
                    },
                ),
                // ZooKeeper's `Op.create(path, data, acl, flags, ttl)` keeps the TTL only for
                // TTL flags; with others the op is a plain create.
                MultiOp::CreateTtl(req) => self.prep_create(
                    view,
                    ctx,
                    CreateOrigin::InMulti,
                    &CreateArgs {
                        path: &req.path,
                        data: &req.data,
                        acl: &req.acl,
                        flags: req.flags,
                        ttl: if matches!(req.flags, 5 | 6) {
                            req.ttl
                        } else {
                            -1
                        },
                    },
                ),
                MultiOp::Delete(r) => self.prep_delete(view, ctx, &r.path, r.version),
                MultiOp::SetData(r) => self.prep_set_data(view, ctx, &r.path, &r.data, r.version),
                MultiOp::Check(r) => self.prep_check(view, ctx, &r.path, r.version),
            };
            match r {
                Ok(b) => bodies.push(b),
                Err(code) => {
                    view.local.clear();
                    let mut failed = vec![TxnBody::Error(ErrorCode::Ok); i];
                    failed.push(TxnBody::Error(code));
                    failed.resize(ops.len(), TxnBody::Error(ErrorCode::RuntimeInconsistency));
                    return TxnBody::Multi(failed);
                }
            }
        }
        TxnBody::Multi(bodies)
    }

    /// `closeSession`: lists the session's ephemerals (committed ones not deleted by an
    /// outstanding change, plus outstanding creates) and marks them deleted.
    fn close_session(&mut self, tree: &DataTree, ctx: &PrepContext<'_>, z: i64) -> Txn {
        let mut es: BTreeSet<String> = tree.ephemerals(ctx.session).into_iter().collect();
        for (path, c) in &self.changes {
            match &c.node {
                None => {
                    es.remove(path);
                }
                Some(n) if n.kind == NodeKind::Ephemeral(ctx.session) => {
                    es.insert(path.clone());
                }
                Some(_) => {
                    // A path re-created by someone else after this session's ephemeral was
                    // deleted is not ours.
                    if tree
                        .get(path)
                        .is_some_and(|n| n.kind() == NodeKind::Ephemeral(ctx.session))
                    {
                        es.remove(path);
                    }
                }
            }
        }
        let ephemerals: Vec<String> = es.into_iter().collect();
        {
            let outstanding = std::mem::take(&mut self.changes);
            let mut view = View {
                tree,
                outstanding: &outstanding,
                local: Vec::new(),
            };
            for p in &ephemerals {
                if let Ok(parent_path) = parent_of(p) {
                    if let Some(mut parent) = view.get(parent_path) {
                        parent.child_count -= 1;
                        view.set(parent_path, Some(parent));
                    }
                }
                view.set(p, None);
            }
            let local = std::mem::take(&mut view.local);
            self.changes = outstanding;
            for (path, node) in local {
                self.queue.push_back((z, path.clone()));
                self.changes.insert(path, ChangeRecord { zxid: z, node });
            }
        }
        self.sessions
            .insert(ctx.session, (z, SessionChange::Closing));
        self.session_queue.push_back((z, ctx.session));
        Txn::new(ctx.header(), TxnBody::CloseSession { ephemerals })
    }
}

#[cfg(test)]
mod tests;
