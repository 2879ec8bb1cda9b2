//! The ZNode tree every replica derives from its delivered transactions, and the ZNode and
//! session invariants checked while deriving it (`spec/PROTOCOL.md` §8.3).
//!
//! [`Tree::apply`] replays one [`ZnodeTxn`] and reports an [`Anomaly`] for every ZNode or
//! session invariant the transaction would break on this replica; [`Tree::structure`] checks
//! the invariants that are properties of a tree. Any payload that converts to `ZnodeTxn`
//! (the model's, the server's) is checked by this one definition.

use std::collections::{BTreeMap, BTreeSet};
use zab_spec::znode::{ZPath, parent, sequence_suffix};
use zab_spec::{Payload, SessionId, Txn, ZnodeTxn};

/// A ZNode as the invariants see it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    /// Data version, +1 per setData.
    pub version: i32,
    /// The owning session of an ephemeral node.
    pub ephemeral_owner: Option<SessionId>,
    /// Children created under this node, ever (the sequential counter).
    pub child_counter: i32,
    /// The largest sequence suffix among sequential children created so far.
    pub max_sequence: Option<i32>,
}

/// A ZNode tree and the set of open sessions.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tree {
    /// Nodes by path; `/` is always present.
    pub nodes: BTreeMap<ZPath, Node>,
    /// Sessions created and not yet closed.
    pub open_sessions: BTreeSet<SessionId>,
    /// Sessions closed (by their client or by expiry).
    pub closed_sessions: BTreeSet<SessionId>,
}

/// A ZNode or session invariant broken while replaying a transaction or inspecting a tree.
/// Each variant is one invariant id of `spec/PROTOCOL.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Anomaly {
    /// `ZnodeParentExists`: a node whose parent does not exist.
    ParentExists,
    /// `ZnodeEphemeralLeaf`: an ephemeral node with a child.
    EphemeralLeaf,
    /// `ZnodeSequentialMonotonic`: a sequential name not above every earlier one under its
    /// parent.
    SequentialMonotonic,
    /// `ZnodeVersionStep`: a setData whose version is not the previous one plus one.
    VersionStep,
    /// `SessionEphemeralCleanup`: an ephemeral node outliving the close of its session.
    EphemeralCleanup,
    /// `SessionNoEphemeralForClosed`: an ephemeral node created for a session that is not
    /// open.
    NoEphemeralForClosed,
    /// `ZnodeTxnApplies`: a transaction that does not apply to this replica's tree (creating
    /// an existing node, deleting a missing or non-empty one, setting a missing one).
    TxnApplies,
}

impl Default for Tree {
    fn default() -> Tree {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            ZPath::from("/"),
            Node {
                version: 0,
                ephemeral_owner: None,
                child_counter: 0,
                max_sequence: None,
            },
        );
        Tree {
            nodes,
            open_sessions: BTreeSet::new(),
            closed_sessions: BTreeSet::new(),
        }
    }
}

impl Tree {
    /// The node at `path`.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Whether `path` has children.
    #[must_use]
    pub fn has_children(&self, path: &str) -> bool {
        self.nodes.keys().any(|p| parent(p) == Some(path))
    }

    /// Applies one transaction, appending the anomalies it causes to `out`.
    pub fn apply(&mut self, txn: &ZnodeTxn, out: &mut Vec<Anomaly>) {
        match txn {
            ZnodeTxn::CreateSession { session } => {
                self.open_sessions.insert(*session);
            }
            ZnodeTxn::CloseSession { session } => {
                let owned: Vec<ZPath> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.ephemeral_owner == Some(*session))
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in owned {
                    self.nodes.remove(&p);
                }
                self.open_sessions.remove(session);
                self.closed_sessions.insert(*session);
            }
            ZnodeTxn::Create {
                path,
                ephemeral_owner,
                sequential,
            } => {
                if self.nodes.contains_key(path) {
                    out.push(Anomaly::TxnApplies);
                    return;
                }
                let Some(pp) = parent(path) else {
                    out.push(Anomaly::TxnApplies);
                    return;
                };
                let Some(par) = self.nodes.get_mut(pp) else {
                    out.push(Anomaly::ParentExists);
                    return;
                };
                if par.ephemeral_owner.is_some() {
                    out.push(Anomaly::EphemeralLeaf);
                }
                if *sequential {
                    match sequence_suffix(path) {
                        Some(seq) if par.max_sequence.is_none_or(|m| seq > m) => {
                            par.max_sequence = Some(seq);
                        }
                        _ => out.push(Anomaly::SequentialMonotonic),
                    }
                }
                par.child_counter = par.child_counter.wrapping_add(1);
                if let Some(owner) = ephemeral_owner {
                    if !self.open_sessions.contains(owner) {
                        out.push(Anomaly::NoEphemeralForClosed);
                    }
                }
                self.nodes.insert(
                    path.clone(),
                    Node {
                        version: 0,
                        ephemeral_owner: *ephemeral_owner,
                        child_counter: 0,
                        max_sequence: None,
                    },
                );
            }
            ZnodeTxn::Delete { path } => {
                if !self.nodes.contains_key(path) || self.has_children(path) || &**path == "/" {
                    out.push(Anomaly::TxnApplies);
                    return;
                }
                self.nodes.remove(path);
            }
            ZnodeTxn::SetData { path, version } => match self.nodes.get_mut(path) {
                None => out.push(Anomaly::TxnApplies),
                Some(node) => {
                    if *version != node.version.wrapping_add(1) {
                        out.push(Anomaly::VersionStep);
                    }
                    node.version = *version;
                }
            },
            ZnodeTxn::Error { .. } => {}
            ZnodeTxn::Multi(txns) => {
                for t in txns {
                    self.apply(t, out);
                }
            }
        }
    }

    /// The invariants that are properties of the tree itself.
    pub fn structure(&self, out: &mut Vec<Anomaly>) {
        for (path, node) in &self.nodes {
            if let Some(pp) = parent(path) {
                match self.nodes.get(pp) {
                    None => out.push(Anomaly::ParentExists),
                    Some(par) if par.ephemeral_owner.is_some() => out.push(Anomaly::EphemeralLeaf),
                    Some(_) => {}
                }
            }
            if let Some(owner) = node.ephemeral_owner {
                if !self.open_sessions.contains(&owner) {
                    out.push(Anomaly::EphemeralCleanup);
                }
            }
        }
    }
}

/// Replays a delivered prefix from the empty tree: the resulting tree and every anomaly.
#[must_use]
pub fn replay<P: Payload>(delivered: &[Txn<P>]) -> (Tree, Vec<Anomaly>) {
    let mut tree = Tree::default();
    let mut anomalies = Vec::new();
    for t in delivered {
        tree.apply(&t.payload.znode_txn(), &mut anomalies);
    }
    tree.structure(&mut anomalies);
    (tree, anomalies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zab_spec::Zxid;

    fn txn(k: u32, payload: ZnodeTxn) -> Txn<ZnodeTxn> {
        Txn {
            zxid: Zxid::new(1, k),
            payload,
        }
    }

    fn create(path: &str, owner: Option<i64>, sequential: bool) -> ZnodeTxn {
        ZnodeTxn::Create {
            path: path.into(),
            ephemeral_owner: owner.map(SessionId),
            sequential,
        }
    }

    #[test]
    fn a_clean_history_has_no_anomaly() {
        let h = vec![
            txn(
                1,
                ZnodeTxn::CreateSession {
                    session: SessionId(1),
                },
            ),
            txn(2, create("/a", Some(1), false)),
            txn(
                3,
                ZnodeTxn::SetData {
                    path: "/a".into(),
                    version: 1,
                },
            ),
            txn(4, create("/q-0000000001", None, true)),
            txn(
                5,
                ZnodeTxn::CloseSession {
                    session: SessionId(1),
                },
            ),
        ];
        let (tree, anomalies) = replay(&h);
        assert_eq!(anomalies, vec![]);
        assert!(
            tree.get("/a").is_none(),
            "the ephemeral node went with its session"
        );
        assert!(tree.get("/q-0000000001").is_some());
    }

    #[test]
    fn each_anomaly_is_detected() {
        let cases: Vec<(Vec<ZnodeTxn>, Anomaly)> = vec![
            (vec![create("/a/b", None, false)], Anomaly::ParentExists),
            (
                vec![
                    ZnodeTxn::CreateSession {
                        session: SessionId(1),
                    },
                    create("/e", Some(1), false),
                    create("/e/c", None, false),
                ],
                Anomaly::EphemeralLeaf,
            ),
            (
                vec![
                    create("/q-0000000002", None, true),
                    create("/q-0000000001", None, true),
                ],
                Anomaly::SequentialMonotonic,
            ),
            (
                vec![
                    create("/a", None, false),
                    ZnodeTxn::SetData {
                        path: "/a".into(),
                        version: 2,
                    },
                ],
                Anomaly::VersionStep,
            ),
            (
                vec![create("/e", Some(7), false)],
                Anomaly::NoEphemeralForClosed,
            ),
            (
                vec![ZnodeTxn::Delete {
                    path: "/nope".into(),
                }],
                Anomaly::TxnApplies,
            ),
        ];
        for (txns, expected) in cases {
            let h: Vec<_> = txns
                .into_iter()
                .enumerate()
                .map(|(k, t)| txn(k as u32 + 1, t))
                .collect();
            let (_, anomalies) = replay(&h);
            assert!(
                anomalies.contains(&expected),
                "{expected:?} not in {anomalies:?}"
            );
        }
    }

    #[test]
    fn an_ephemeral_that_outlives_its_session_is_caught_structurally() {
        let mut tree = Tree::default();
        let mut out = vec![];
        tree.apply(
            &ZnodeTxn::CreateSession {
                session: SessionId(1),
            },
            &mut out,
        );
        tree.apply(&create("/e", Some(1), false), &mut out);
        // A replica that missed the node's deletion but saw the session close.
        tree.open_sessions.remove(&SessionId(1));
        tree.structure(&mut out);
        assert_eq!(out, vec![Anomaly::EphemeralCleanup]);
    }
}
