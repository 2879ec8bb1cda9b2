//! Every invariant and reachability property of the model, each under its stable id from
//! `spec/PROTOCOL.md` §8. This is the one definition: the Stateright properties evaluate
//! [`invariants`] and [`examples`] on every state; the simulation and the refinement checker,
//! which follow one path, check the same invariants incrementally with [`Monitor`]
//! (`monitor.rs`), which reuses the pair conditions and per-server predicates below and is
//! tested equal to [`invariants`] on random walks (`tests/incremental.rs`).

use crate::state::{ModelState, NewLeaderStage, ServerVars, Sid, Violation};
use crate::znode::{Anomaly, replay};
use std::collections::BTreeSet;

mod monitor;
pub use monitor::Monitor;
use zab_spec::{Payload, ServerState, SyncMode, Txn, ZabState};

/// A named state predicate.
pub struct Invariant<P> {
    /// The stable id (`spec/PROTOCOL.md`, `tla/Zab.tla` operator, Stateright property).
    pub id: &'static str,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// The predicate.
    pub holds: fn(&ModelState<P>) -> bool,
}

fn is_prefix<P: PartialEq>(a: &[Txn<P>], b: &[Txn<P>]) -> bool {
    b.starts_with(a)
}

fn leader_in<P>(s: &ModelState<P>, i: Sid, phases: &[ZabState]) -> bool {
    let srv = s.srv(i);
    srv.state == ServerState::Leading && phases.contains(&srv.zab_state)
}

/// Pairs (leader, follower) where the follower is connected to the leader.
fn leader_follower_pairs<P>(s: &ModelState<P>) -> impl Iterator<Item = (Sid, Sid)> + '_ {
    (0..s.n()).flat_map(move |j| {
        let f = s.srv(j);
        let l = f.follower.as_ref().map(|fv| fv.leader);
        l.filter(|&l| s.connected(l, j)).map(|l| (l, j))
    })
}

fn all_pairs(n: u8) -> impl Iterator<Item = (Sid, Sid)> {
    (0..n).flat_map(move |i| (0..n).map(move |j| (i, j)))
}

fn delivered<P>(s: &ModelState<P>, i: Sid) -> &[Txn<P>] {
    s.srv(i).delivered()
}

/// `Leadership1`.
fn leadership1<P>(s: &ModelState<P>) -> bool {
    let phases = [ZabState::Synchronization, ZabState::Broadcast];
    all_pairs(s.n()).all(|(i, j)| {
        i == j
            || !leader_in(s, i, &phases)
            || !leader_in(s, j, &phases)
            || s.srv(i).accepted_epoch != s.srv(j).accepted_epoch
    })
}

/// `Leadership2`.
fn leadership2<P>(s: &ModelState<P>) -> bool {
    let epochs: BTreeSet<_> = s.ghost.epoch_leader.iter().map(|(e, _)| *e).collect();
    epochs.len() == s.ghost.epoch_leader.len()
}

/// `PrefixConsistency`.
fn prefix_consistency<P: PartialEq>(s: &ModelState<P>) -> bool {
    all_pairs(s.n()).all(|(i, j)| {
        let (a, b) = (delivered(s, i), delivered(s, j));
        let k = a.len().min(b.len());
        a[..k] == b[..k]
    })
}

/// `Integrity`.
fn integrity<P: Ord>(s: &ModelState<P>) -> bool {
    let proposed: BTreeSet<&Txn<P>> = s.ghost.proposals.iter().map(|p| &p.txn).collect();
    (0..s.n()).all(|i| delivered(s, i).iter().all(|t| proposed.contains(t)))
}

/// `Agreement`.
fn agreement<P: PartialEq>(s: &ModelState<P>) -> bool {
    all_pairs(s.n()).all(|(i, j)| {
        let (a, b) = (delivered(s, i), delivered(s, j));
        a.iter().all(|x| b.contains(x)) || b.iter().all(|x| a.contains(x))
    })
}

/// `TotalOrder`.
fn total_order<P: PartialEq>(s: &ModelState<P>) -> bool {
    all_pairs(s.n()).all(|(i, j)| {
        let (a, b) = (delivered(s, i), delivered(s, j));
        a.iter().enumerate().all(|(k2, y)| {
            let Some(jy) = b.iter().position(|t| t == y) else {
                return true;
            };
            a[..k2].iter().all(|x| b[..jy].contains(x))
        })
    })
}

/// `LocalPrimaryOrder`.
fn local_primary_order<P: PartialEq>(s: &ModelState<P>) -> bool {
    let props: Vec<_> = s.ghost.proposals.iter().collect();
    props.iter().all(|p2| {
        props.iter().all(|p1| {
            if p1.source != p2.source || p1.epoch != p2.epoch || p1.txn.zxid >= p2.txn.zxid {
                return true;
            }
            (0..s.n()).all(|j| {
                let d = delivered(s, j);
                match d.iter().position(|t| *t == p2.txn) {
                    None => true,
                    Some(k) => d[..k].contains(&p1.txn),
                }
            })
        })
    })
}

/// `GlobalPrimaryOrder`.
fn global_primary_order<P>(s: &ModelState<P>) -> bool {
    (0..s.n()).all(|i| {
        let d = delivered(s, i);
        d.windows(2).all(|w| w[0].zxid.epoch <= w[1].zxid.epoch)
    })
}

/// The (leader, follower) pairs `PrimaryIntegrity` constrains: both in BROADCAST.
fn broadcast_pairs<P>(s: &ModelState<P>) -> impl Iterator<Item = (Sid, Sid)> + '_ {
    leader_follower_pairs(s).filter(|&(l, f)| {
        s.srv(l).zab_state == ZabState::Broadcast && s.srv(f).zab_state == ZabState::Broadcast
    })
}

/// `PrimaryIntegrity`.
fn primary_integrity<P: PartialEq>(s: &ModelState<P>) -> bool {
    broadcast_pairs(s).all(|(l, f)| {
        let (lv, fv) = (s.srv(l), s.srv(f));
        let dl = lv.delivered();
        fv.delivered()
            .iter()
            .filter(|t| t.zxid.epoch < lv.current_epoch)
            .all(|t| dl.contains(t))
    })
}

/// `CommittedLogMonotonicity`.
fn committed_log_monotonicity<P: PartialEq>(s: &ModelState<P>) -> bool {
    (0..s.n()).all(|i| {
        !leader_in(s, i, &[ZabState::Broadcast])
            || is_prefix(&s.ghost.committed_log, delivered(s, i))
    })
}

/// `CommittedLogDurability`.
fn committed_log_durability<P>(s: &ModelState<P>) -> bool {
    !s.ghost.violations.has(Violation::CommittedLogTruncated)
}

/// `ProcessConsistency`.
fn process_consistency<P: PartialEq>(s: &ModelState<P>) -> bool {
    synced_pairs(s).all(|(l, f)| is_prefix(&s.srv(f).history, &s.srv(l).history))
}

/// The (leader, follower) pairs `ProcessConsistency` constrains: the follower is past NEWLEADER.
fn synced_pairs<P>(s: &ModelState<P>) -> impl Iterator<Item = (Sid, Sid)> + '_ {
    leader_follower_pairs(s).filter(|&(_, f)| {
        s.srv(f)
            .follower
            .as_ref()
            .is_some_and(|x| x.nl_stage == NewLeaderStage::Done)
    })
}

/// `LeaderLogCompleteness`.
fn leader_log_completeness<P: PartialEq>(s: &ModelState<P>) -> bool {
    (0..s.n()).all(|i| {
        !leader_in(s, i, &[ZabState::Synchronization, ZabState::Broadcast])
            || is_prefix(&s.ghost.committed_log, &s.srv(i).history)
    })
}

fn same_epoch_broadcast_pairs<P>(s: &ModelState<P>) -> impl Iterator<Item = (Sid, Sid)> + '_ {
    leader_follower_pairs(s).filter(|&(l, f)| {
        let (lv, fv) = (s.srv(l), s.srv(f));
        lv.zab_state == ZabState::Broadcast
            && fv.zab_state == ZabState::Broadcast
            && lv.current_epoch == fv.current_epoch
    })
}

/// `CommitConsistency`.
fn commit_consistency<P: PartialEq>(s: &ModelState<P>) -> bool {
    same_epoch_broadcast_pairs(s).all(|(l, f)| is_prefix(delivered(s, f), delivered(s, l)))
}

/// `HistoryConsistency`.
fn history_consistency<P: PartialEq>(s: &ModelState<P>) -> bool {
    same_epoch_broadcast_pairs(s).all(|(l, f)| is_prefix(&s.srv(f).history, &s.srv(l).history))
}

fn flag_clear<P>(s: &ModelState<P>, v: Violation) -> bool {
    !s.ghost.violations.has(v)
}

/// `WellFormed` of one server, given whether its history's zxids strictly increase.
fn well_formed_server<P>(v: &ServerVars<P>, zxids_increase: bool) -> bool {
    let len = v.history.len();
    v.current_epoch <= v.accepted_epoch
        && (v.last_committed as usize) <= len
        && (v.persisted as usize) <= len
        && v.last_snapshot <= v.persisted
        && zxids_increase
        && (v.state == ServerState::Leading) == v.leader.is_some()
        && (v.state == ServerState::Following) == v.follower.is_some()
}

/// `WellFormed`: the per-server type invariant.
fn well_formed<P>(s: &ModelState<P>) -> bool {
    s.servers.iter().all(|v: &ServerVars<P>| {
        well_formed_server(v, v.history.windows(2).all(|w| w[0].zxid < w[1].zxid))
    })
}

fn no_anomaly<P: Payload>(s: &ModelState<P>, a: Anomaly) -> bool {
    (0..s.n()).all(|i| !replay(delivered(s, i)).1.contains(&a))
}

/// `ZnodeReplicaAgreement`.
fn znode_replica_agreement<P: Payload>(s: &ModelState<P>) -> bool {
    let trees: Vec<_> = (0..s.n())
        .map(|i| {
            let d = delivered(s, i);
            (d.last().map(|t| t.zxid), replay(d).0)
        })
        .collect();
    trees
        .iter()
        .all(|(za, ta)| trees.iter().all(|(zb, tb)| za != zb || ta == tb))
}

/// The invariants, in report order.
#[must_use]
pub fn invariants<P: Payload>() -> Vec<Invariant<P>> {
    macro_rules! inv {
        ($id:literal, $meaning:literal, $f:expr) => {
            Invariant {
                id: $id,
                meaning: $meaning,
                holds: $f,
            }
        };
    }
    vec![
        inv!(
            "Leadership1",
            "at most one leader in SYNCHRONIZATION or BROADCAST per epoch",
            leadership1
        ),
        inv!(
            "Leadership2",
            "at most one leader is ever established per epoch",
            leadership2
        ),
        inv!(
            "PrefixConsistency",
            "delivered prefixes of any two servers agree",
            prefix_consistency
        ),
        inv!(
            "Integrity",
            "a delivered transaction was proposed by some leader",
            integrity
        ),
        inv!(
            "Agreement",
            "of two servers, one delivered everything the other did",
            agreement
        ),
        inv!(
            "TotalOrder",
            "transactions delivered by two servers are delivered in the same order",
            total_order
        ),
        inv!(
            "LocalPrimaryOrder",
            "a leader's proposals are delivered in the order it proposed them",
            local_primary_order
        ),
        inv!(
            "GlobalPrimaryOrder",
            "transactions of an older epoch are delivered before a newer epoch's",
            global_primary_order
        ),
        inv!(
            "PrimaryIntegrity",
            "an established leader delivered every older-epoch transaction its followers delivered",
            primary_integrity
        ),
        inv!(
            "CommittedLogMonotonicity",
            "a leader in BROADCAST delivered the whole committed log",
            committed_log_monotonicity
        ),
        inv!(
            "CommittedLogDurability",
            "no TRUNC or SNAP removes a committed transaction",
            committed_log_durability
        ),
        inv!(
            "ProcessConsistency",
            "a follower past NEWLEADER has a prefix of its leader's history",
            process_consistency
        ),
        inv!(
            "LeaderLogCompleteness",
            "an established leader's history contains the committed log",
            leader_log_completeness
        ),
        inv!(
            "CommitConsistency",
            "in one epoch, a follower's delivered prefix is a prefix of its leader's",
            commit_consistency
        ),
        inv!(
            "HistoryConsistency",
            "in one epoch, a follower's history is a prefix of its leader's",
            history_consistency
        ),
        inv!(
            "CheckStateConsistent",
            "no message arrives in a phase that cannot receive it",
            |s| flag_clear(s, Violation::StateInconsistent)
        ),
        inv!(
            "CheckProposalConsistent",
            "every PROPOSAL and TRUNC fits the follower's log",
            |s| flag_clear(s, Violation::ProposalInconsistent)
        ),
        inv!(
            "CheckCommitConsistent",
            "every COMMIT is for the next pending transaction",
            |s| flag_clear(s, Violation::CommitInconsistent)
        ),
        inv!(
            "CheckAckConsistent",
            "every ACK is for a transaction the leader proposed",
            |s| flag_clear(s, Violation::AckInconsistent)
        ),
        inv!(
            "CheckMessageLegal",
            "no message arrives where no handler accepts it",
            |s| flag_clear(s, Violation::MessageIllegal)
        ),
        inv!(
            "WellFormed",
            "epochs, indices and roles of every server are consistent",
            well_formed
        ),
        inv!(
            "ZnodeReplicaAgreement",
            "servers that delivered up to the same zxid have equal trees",
            znode_replica_agreement
        ),
        inv!("ZnodeParentExists", "every node's parent exists", |s| {
            no_anomaly(s, Anomaly::ParentExists)
        }),
        inv!(
            "ZnodeEphemeralLeaf",
            "ephemeral nodes have no children",
            |s| no_anomaly(s, Anomaly::EphemeralLeaf)
        ),
        inv!(
            "ZnodeSequentialMonotonic",
            "sequential names under a parent are unique and increasing",
            |s| no_anomaly(s, Anomaly::SequentialMonotonic)
        ),
        inv!(
            "ZnodeVersionStep",
            "a node's version rises by exactly one per setData",
            |s| no_anomaly(s, Anomaly::VersionStep)
        ),
        inv!(
            "ZnodeTxnApplies",
            "every delivered transaction applies to its replica's tree",
            |s| no_anomaly(s, Anomaly::TxnApplies)
        ),
        inv!(
            "SessionEphemeralCleanup",
            "no ephemeral node survives the delivered close of its session",
            |s| no_anomaly(s, Anomaly::EphemeralCleanup)
        ),
        inv!(
            "SessionNoEphemeralForClosed",
            "no ephemeral node is created for a session that is not open",
            |s| no_anomaly(s, Anomaly::NoEphemeralForClosed)
        ),
    ]
}

fn restarted_synced_by<P>(s: &ModelState<P>, mode: SyncMode) -> bool {
    s.ghost.restarted.iter().any(|j| {
        s.srv(j).follower.as_ref().is_some_and(|f| {
            f.sync_mode == Some(mode) && (mode != SyncMode::Diff || !f.packets.is_empty())
        })
    })
}

/// The reachability properties (`sometimes`): each must have an example, so that no
/// invariant holds only because the interesting states were never reached.
#[must_use]
pub fn examples<P: Payload>() -> Vec<Invariant<P>> {
    vec![
        Invariant {
            id: "LeaderEstablished",
            meaning: "some leader reaches BROADCAST",
            holds: |s| (0..s.n()).any(|i| leader_in(s, i, &[ZabState::Broadcast])),
        },
        Invariant {
            id: "TxnCommitted",
            meaning: "some server delivers a transaction",
            holds: |s| s.servers.iter().any(|v| v.last_committed > 0),
        },
        Invariant {
            id: "RestartedSyncedByDiff",
            meaning: "a restarted server receives transactions after a DIFF",
            holds: |s| restarted_synced_by(s, SyncMode::Diff),
        },
        Invariant {
            id: "RestartedSyncedByTrunc",
            meaning: "a restarted server's log is truncated by TRUNC",
            holds: |s| restarted_synced_by(s, SyncMode::Trunc),
        },
        Invariant {
            id: "RestartedSyncedBySnap",
            meaning: "a restarted server's log is replaced by SNAP",
            holds: |s| restarted_synced_by(s, SyncMode::Snap),
        },
    ]
}
