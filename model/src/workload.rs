//! The scripted client workload of the model: a list of [`ModelOp`]s that the leader turns
//! into [`ZnodeTxn`]s against its own speculative tree (ZooKeeper's `PrepRequestProcessor`,
//! reduced to what the ZNode invariants look at).
//!
//! The `k`-th request of a run, whichever leader serves it, is the `k`-th op of the script;
//! a failing op becomes an error transaction, as in ZooKeeper.

use crate::config::WorkloadKind;
use crate::next::RequestSource;
use crate::znode::{Tree, replay};
use zab_spec::znode::{parent, sequential_name};
use zab_spec::{CreateMode, ErrorCode, SessionId, Txn, ZnodeTxn};

/// A client (or leader-issued) operation of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelOp {
    /// A client connects: `createSession`.
    CreateSession(i64),
    /// The leader expires a session: `closeSession` issued by the session tracker.
    ExpireSession(i64),
    /// `create(path, mode)` by a client of `session`.
    Create {
        /// The requested path (the sequence suffix is appended for sequential modes).
        path: &'static str,
        /// The create mode.
        mode: CreateMode,
        /// The client's session.
        session: i64,
    },
    /// `setData(path, expected_version)`; `-1` means any version.
    SetData {
        /// The node.
        path: &'static str,
        /// The version the client expects.
        expected_version: i32,
    },
    /// `delete(path, expected_version)`; `-1` means any version.
    Delete {
        /// The node.
        path: &'static str,
        /// The version the client expects.
        expected_version: i32,
    },
}

/// The script of a workload.
#[must_use]
pub fn script(kind: WorkloadKind) -> &'static [ModelOp] {
    use ModelOp::*;
    const SESSIONS: &[ModelOp] = &[
        CreateSession(1),
        Create {
            path: "/a",
            mode: CreateMode::Ephemeral,
            session: 1,
        },
        SetData {
            path: "/a",
            expected_version: 0,
        },
        ExpireSession(1),
        Create {
            path: "/q-",
            mode: CreateMode::PersistentSequential,
            session: 2,
        },
        Create {
            path: "/q-",
            mode: CreateMode::PersistentSequential,
            session: 2,
        },
        Delete {
            path: "/a",
            expected_version: -1,
        },
    ];
    const SEQUENTIAL: &[ModelOp] = &[
        Create {
            path: "/q-",
            mode: CreateMode::PersistentSequential,
            session: 2,
        },
        Create {
            path: "/q-",
            mode: CreateMode::PersistentSequential,
            session: 2,
        },
        CreateSession(1),
        Create {
            path: "/e-",
            mode: CreateMode::EphemeralSequential,
            session: 1,
        },
        ExpireSession(1),
    ];
    match kind {
        WorkloadKind::Sessions => SESSIONS,
        WorkloadKind::Sequential => SEQUENTIAL,
    }
}

/// Turns `op` into the transaction a leader whose speculative tree is `tree` proposes.
#[must_use]
pub fn prepare(op: ModelOp, tree: &Tree) -> ZnodeTxn {
    let err = |code| ZnodeTxn::Error { code };
    match op {
        ModelOp::CreateSession(s) => ZnodeTxn::CreateSession {
            session: SessionId(s),
        },
        ModelOp::ExpireSession(s) => {
            if tree.open_sessions.contains(&SessionId(s)) {
                ZnodeTxn::CloseSession {
                    session: SessionId(s),
                }
            } else {
                err(ErrorCode::SessionExpired)
            }
        }
        ModelOp::Create {
            path,
            mode,
            session,
        } => {
            if mode.is_ephemeral() && !tree.open_sessions.contains(&SessionId(session)) {
                return err(ErrorCode::SessionExpired);
            }
            let Some(par) = parent(path).and_then(|p| tree.get(p)) else {
                return err(ErrorCode::NoNode);
            };
            if par.ephemeral_owner.is_some() {
                return err(ErrorCode::NoChildrenForEphemerals);
            }
            let name = if mode.is_sequential() {
                sequential_name(path, par.child_counter)
            } else {
                path.to_string()
            };
            if tree.get(&name).is_some() {
                return err(ErrorCode::NodeExists);
            }
            ZnodeTxn::Create {
                path: name.into(),
                ephemeral_owner: mode.is_ephemeral().then_some(SessionId(session)),
                sequential: mode.is_sequential(),
            }
        }
        ModelOp::SetData {
            path,
            expected_version,
        } => match tree.get(path) {
            None => err(ErrorCode::NoNode),
            Some(n) if expected_version != -1 && expected_version != n.version => {
                err(ErrorCode::BadVersion)
            }
            Some(n) => ZnodeTxn::SetData {
                path: path.into(),
                version: n.version + 1,
            },
        },
        ModelOp::Delete {
            path,
            expected_version,
        } => match tree.get(path) {
            None => err(ErrorCode::NoNode),
            Some(n) if expected_version != -1 && expected_version != n.version => {
                err(ErrorCode::BadVersion)
            }
            Some(_) if tree.has_children(path) => err(ErrorCode::NotEmpty),
            Some(_) => ZnodeTxn::Delete { path: path.into() },
        },
    }
}

/// A workload as a request source for the model.
#[derive(Clone, Copy, Debug)]
pub struct Workload(pub WorkloadKind);

impl RequestSource<ZnodeTxn> for Workload {
    fn request(&self, k: usize, history: &[Txn<ZnodeTxn>]) -> Option<ZnodeTxn> {
        let op = *script(self.0).get(k)?;
        let (tree, _) = replay(history);
        Some(prepare(op, &tree))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_spec::Zxid;

    #[test]
    fn the_sessions_script_is_clean_when_run_in_order() {
        let mut history: Vec<Txn<ZnodeTxn>> = Vec::new();
        let w = Workload(WorkloadKind::Sessions);
        for k in 0..script(WorkloadKind::Sessions).len() {
            let payload = w.request(k, &history).expect("op");
            history.push(Txn {
                zxid: Zxid::new(1, k as u32 + 1),
                payload,
            });
        }
        let (tree, anomalies) = replay(&history);
        assert_eq!(anomalies, vec![]);
        // /a was the first child of /, so the sequential names continue from 1.
        assert!(tree.get("/q-0000000001").is_some() && tree.get("/q-0000000002").is_some());
        // The last op deletes /a, which went with its session: an error transaction.
        assert_eq!(
            history.last().map(|t| t.payload.clone()),
            Some(ZnodeTxn::Error {
                code: ErrorCode::NoNode
            })
        );
    }
}
