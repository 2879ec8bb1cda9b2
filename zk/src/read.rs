//! Read operations against the committed tree (`FinalRequestProcessor` 3.8): exists,
//! getData, getChildren/getChildren2, getAllChildrenNumber, getEphemerals, getACL and
//! multiRead, with their ACL checks, error codes, and the watch each asks to register.
//!
//! - exists: BadArguments for a path with NUL; registers a data watch *even when the node is
//!   missing* (then NoNode, no body); no ACL check.
//! - getData / getChildren / getChildren2 / getAllChildrenNumber: NoNode, then READ (NoAuth);
//!   a watch is registered only on success.
//! - getACL: NoNode, then READ or ADMIN; without ADMIN digest ids are masked `user:x`.
//! - getEphemerals: the session's own ephemerals, all for an empty or `/` prefix.
//! - multiRead: each op independently; failures are per-op error results; watch flags
//!   ignored.
//!
//! Children are returned sorted (ZooKeeper returns HashSet order; clients do not rely on it).
//!
//! Reads do not validate paths: ZooKeeper looks them up as they are, and its tree holds the
//! root under both `/` and the empty path, so `""` reads the root (and getAllChildrenNumber of
//! `""` counts the root too: every key starts with `"" + "/"`). Found by the differential test.

use crate::acl;
use crate::proto::{
    ExistsResponse, GetAclResponse, GetAllChildrenNumberResponse, GetChildren2Response,
    GetChildrenResponse, GetDataResponse, GetEphemeralsResponse, Id, MultiReadOp, MultiResult,
    Request, Response, perms,
};
use crate::tree::{DataTree, Node};
use crate::watch::{WatchManager, WatchRegistration};
use zab_spec::{ErrorCode, SessionId};

/// The answer to a read and the watch it registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The reply body or error code.
    pub result: Result<Response, ErrorCode>,
    /// The watch to register (for the requesting session), if any.
    pub watch: Option<WatchRegistration>,
}

impl ReadOutcome {
    fn plain(result: Result<Response, ErrorCode>) -> ReadOutcome {
        ReadOutcome {
            result,
            watch: None,
        }
    }
}

/// The node at `path` as ZooKeeper's `DataTree.getNode` finds it (`""` is the root).
fn lookup<'t>(tree: &'t DataTree, path: &str) -> Option<&'t Node> {
    tree.get(if path.is_empty() { "/" } else { path })
}

fn readable<'t>(tree: &'t DataTree, path: &str, auth: &[Id]) -> Result<&'t Node, ErrorCode> {
    let n = lookup(tree, path).ok_or(ErrorCode::NoNode)?;
    acl::check(&n.acl, perms::READ, auth)?;
    Ok(n)
}

/// `getData`.
pub fn get_data(tree: &DataTree, path: &str, auth: &[Id]) -> Result<GetDataResponse, ErrorCode> {
    let n = readable(tree, path, auth)?;
    Ok(GetDataResponse {
        data: n.data.clone(),
        stat: n.stat(),
    })
}

/// `getChildren`: child names, sorted.
pub fn get_children(tree: &DataTree, path: &str, auth: &[Id]) -> Result<Vec<String>, ErrorCode> {
    let n = readable(tree, path, auth)?;
    Ok(n.children.names())
}

/// `exists`.
pub fn exists(tree: &DataTree, path: &str) -> Result<ExistsResponse, ErrorCode> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    lookup(tree, path)
        .map(|n| ExistsResponse { stat: n.stat() })
        .ok_or(ErrorCode::NoNode)
}

/// `getACL`.
pub fn get_acl(tree: &DataTree, path: &str, auth: &[Id]) -> Result<GetAclResponse, ErrorCode> {
    let n = lookup(tree, path).ok_or(ErrorCode::NoNode)?;
    acl::check(&n.acl, perms::READ | perms::ADMIN, auth)?;
    let acl = if acl::check(&n.acl, perms::ADMIN, auth).is_ok() {
        n.acl.as_ref().clone()
    } else {
        acl::mask_digests(&n.acl)
    };
    Ok(GetAclResponse {
        acl,
        stat: n.stat(),
    })
}

/// `getEphemerals` for `session` with an optional prefix (Java `trim()` semantics).
#[must_use]
pub fn get_ephemerals(tree: &DataTree, session: SessionId, prefix: Option<&str>) -> Vec<String> {
    let all = tree.ephemerals(session);
    match prefix.map(|p| p.trim_matches(|c: char| c <= ' ')) {
        None | Some("" | "/") => all,
        Some(_) => {
            let prefix = prefix.unwrap_or_default();
            all.into_iter().filter(|p| p.starts_with(prefix)).collect()
        }
    }
}

/// Serves a read request for `session` with the connection's auth ids. `None` if the
/// request is not a tree read (writes, ping, auth, watches management, sync, whoAmI...).
#[must_use]
pub fn serve(
    tree: &DataTree,
    session: SessionId,
    auth: &[Id],
    request: &Request,
) -> Option<ReadOutcome> {
    Some(match request {
        Request::Exists(r) => {
            let result = exists(tree, &r.path).map(Response::Exists);
            let watch = (r.watch && result != Err(ErrorCode::BadArguments))
                .then(|| WatchRegistration::Data(r.path.clone()));
            ReadOutcome { result, watch }
        }
        Request::GetData(r) => {
            let result = get_data(tree, &r.path, auth).map(Response::GetData);
            let watch =
                (r.watch && result.is_ok()).then(|| WatchRegistration::Data(r.path.clone()));
            ReadOutcome { result, watch }
        }
        Request::GetChildren(r) => {
            let result = get_children(tree, &r.path, auth)
                .map(|children| Response::GetChildren(GetChildrenResponse { children }));
            let watch =
                (r.watch && result.is_ok()).then(|| WatchRegistration::Child(r.path.clone()));
            ReadOutcome { result, watch }
        }
        Request::GetChildren2(r) => {
            let result = readable(tree, &r.path, auth).map(|n| {
                Response::GetChildren2(GetChildren2Response {
                    children: n.children.names(),
                    stat: n.stat(),
                })
            });
            let watch =
                (r.watch && result.is_ok()).then(|| WatchRegistration::Child(r.path.clone()));
            ReadOutcome { result, watch }
        }
        Request::GetAcl(r) => {
            ReadOutcome::plain(get_acl(tree, &r.path, auth).map(Response::GetAcl))
        }
        Request::GetAllChildrenNumber(r) => {
            ReadOutcome::plain(readable(tree, &r.path, auth).map(|_| {
                Response::GetAllChildrenNumber(GetAllChildrenNumberResponse {
                    total_number: i32::try_from(if r.path.is_empty() {
                        tree.descendant_count("/") + 1
                    } else {
                        tree.descendant_count(&r.path)
                    })
                    .unwrap_or(i32::MAX),
                })
            }))
        }
        Request::GetEphemerals(r) => {
            ReadOutcome::plain(Ok(Response::GetEphemerals(GetEphemeralsResponse {
                ephemerals: get_ephemerals(tree, session, r.prefix_path.as_deref()),
            })))
        }
        Request::MultiRead(ops) => ReadOutcome::plain(Ok(Response::Multi(
            ops.iter()
                .map(|o| match o {
                    MultiReadOp::GetChildren(r) => match get_children(tree, &r.path, auth) {
                        Ok(children) => MultiResult::GetChildren { children },
                        Err(e) => MultiResult::Error { err: e.code() },
                    },
                    MultiReadOp::GetData(r) => match get_data(tree, &r.path, auth) {
                        Ok(g) => MultiResult::GetData {
                            data: g.data,
                            stat: g.stat,
                        },
                        Err(e) => MultiResult::Error { err: e.code() },
                    },
                })
                .collect(),
        ))),
        _ => return None,
    })
}

/// [`serve`] and register the watch it asks for.
pub fn serve_and_watch(
    tree: &DataTree,
    watches: &mut WatchManager,
    session: SessionId,
    auth: &[Id],
    request: &Request,
) -> Option<Result<Response, ErrorCode>> {
    let out = serve(tree, session, auth, request)?;
    if let Some(w) = &out.watch {
        watches.register(session, w);
    }
    Some(out.result)
}

#[cfg(test)]
mod tests;
