//! The model's actions: one variant per TLA+ action of `tla/Zab.tla`, carrying every
//! nondeterministic choice, so that a recorded server trace can name the exact step.
//!
//! `i` is the server taking the step; `j` is the peer whose message it receives (for a
//! handler of a message) or the other end (for a partition). [`Action::kind`] is the action's
//! name in the vocabulary the server's traces share (`zab_spec::ActionKind`), and
//! [`Action::tla_name`] its TLA+/`spec/PROTOCOL.md` spelling; Rust handlers are the same name
//! in snake_case.

use crate::state::{Idx, Sid};
use std::fmt;
use zab_spec::ActionKind;

/// One step of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action<P> {
    /// A LOOKING server wins an election (`ElectLeader`).
    ElectLeader {
        /// The new leader.
        i: Sid,
    },
    /// A LOOKING server follows a leader and sends FOLLOWERINFO (`FollowLeader`).
    FollowLeader {
        /// The new follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// A leader gives up before establishing (initLimit/syncLimit) (`LeaderTimeout`).
    LeaderTimeout {
        /// The leader.
        i: Sid,
    },
    /// `LeaderProcessFOLLOWERINFO`.
    LeaderProcessFollowerInfo {
        /// The leader.
        i: Sid,
        /// The follower.
        j: Sid,
    },
    /// `FollowerProcessLEADERINFO`.
    FollowerProcessLeaderInfo {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `LeaderProcessACKEPOCH`.
    LeaderProcessAckEpoch {
        /// The leader.
        i: Sid,
        /// The follower.
        j: Sid,
    },
    /// `LeaderSyncFollower`: DIFF / TRUNC / SNAP, proposals and commits, NEWLEADER.
    LeaderSyncFollower {
        /// The leader.
        i: Sid,
        /// The follower.
        j: Sid,
    },
    /// `FollowerProcessSyncMessage`: DIFF, TRUNC or SNAP.
    FollowerProcessSyncMessage {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `FollowerProcessPROPOSALInSync`.
    FollowerProcessProposalInSync {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `FollowerProcessCOMMITInSync`.
    FollowerProcessCommitInSync {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `FollowerProcessNEWLEADER`.
    FollowerProcessNewLeader {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `FollowerProcessNEWLEADERAfterCurrentEpochUpdated` (only under `--bug zk4643`).
    FollowerProcessNewLeaderAfterCurrentEpochUpdated {
        /// The follower.
        i: Sid,
    },
    /// `LeaderProcessACKLD`: the ACK of NEWLEADER.
    LeaderProcessAckLd {
        /// The leader.
        i: Sid,
        /// The follower.
        j: Sid,
    },
    /// `FollowerProcessUPTODATE`.
    FollowerProcessUpToDate {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `LeaderProcessRequest`: a client write becomes a proposal.
    LeaderProcessRequest {
        /// The leader.
        i: Sid,
        /// The transaction the request became.
        payload: P,
    },
    /// `LeaderBroadcastPROPOSAL` (only under `--bug paper-redundant-propose`).
    LeaderBroadcastProposal {
        /// The leader.
        i: Sid,
    },
    /// `SyncProcessorLogRequest`: the log thread makes the next accepted transaction durable
    /// and acknowledges it.
    SyncProcessorLogRequest {
        /// The server.
        i: Sid,
    },
    /// `FollowerProcessPROPOSAL`.
    FollowerProcessProposal {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `LeaderProcessACK`.
    LeaderProcessAck {
        /// The leader.
        i: Sid,
        /// The follower.
        j: Sid,
    },
    /// `FollowerProcessCOMMIT`.
    FollowerProcessCommit {
        /// The follower.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `ObserverProcessINFORM`: an observer logs and delivers a committed transaction.
    ObserverProcessInform {
        /// The observer.
        i: Sid,
        /// The leader.
        j: Sid,
    },
    /// `TakeSnapshot`: the server's snapshot of its state at `history[1..k]` becomes its
    /// recovery point (snapshots are written in the background, so `k` may lag behind).
    TakeSnapshot {
        /// The server.
        i: Sid,
        /// How many history items the snapshot covers.
        k: Idx,
    },
    /// `PartitionStart`: the link between `i < j` is cut.
    PartitionStart {
        /// One end.
        i: Sid,
        /// The other end.
        j: Sid,
    },
    /// `PartitionRecover`: the link between `i < j` heals.
    PartitionRecover {
        /// One end.
        i: Sid,
        /// The other end.
        j: Sid,
    },
    /// `NodeCrash`: the server crashes and restarts; volatile state is lost.
    NodeCrash {
        /// The server.
        i: Sid,
    },
    /// `LoseEpochFiles`: the server crashes and restarts without its `acceptedEpoch` and
    /// `currentEpoch` files, beside a non-empty log (a storage fault).
    LoseEpochFiles {
        /// The server.
        i: Sid,
    },
    /// `LoseLogSuffix`: the server crashes and restarts with the fsynced records of its log
    /// after the `k`-th lost or corrupt (a storage fault).
    LoseLogSuffix {
        /// The server.
        i: Sid,
        /// How many durable history items survive intact.
        k: Idx,
    },
    /// `LoseDataDir`: the server crashes and restarts with an empty data directory (a
    /// storage fault).
    LoseDataDir {
        /// The server.
        i: Sid,
    },
    /// `FilterNonexistentMessage`: a message no handler accepts (should not be triggered).
    FilterNonexistentMessage {
        /// The receiver.
        i: Sid,
        /// The sender.
        j: Sid,
    },
}

impl<P> Action<P> {
    /// The action's name, shared with the server's trace records.
    #[must_use]
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::ElectLeader { .. } => ActionKind::ElectLeader,
            Action::FollowLeader { .. } => ActionKind::FollowLeader,
            Action::LeaderTimeout { .. } => ActionKind::LeaderTimeout,
            Action::LeaderProcessFollowerInfo { .. } => ActionKind::LeaderProcessFollowerInfo,
            Action::FollowerProcessLeaderInfo { .. } => ActionKind::FollowerProcessLeaderInfo,
            Action::LeaderProcessAckEpoch { .. } => ActionKind::LeaderProcessAckEpoch,
            Action::LeaderSyncFollower { .. } => ActionKind::LeaderSyncFollower,
            Action::FollowerProcessSyncMessage { .. } => ActionKind::FollowerProcessSyncMessage,
            Action::FollowerProcessProposalInSync { .. } => {
                ActionKind::FollowerProcessProposalInSync
            }
            Action::FollowerProcessCommitInSync { .. } => ActionKind::FollowerProcessCommitInSync,
            Action::FollowerProcessNewLeader { .. } => ActionKind::FollowerProcessNewLeader,
            Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { .. } => {
                ActionKind::FollowerProcessNewLeaderAfterCurrentEpochUpdated
            }
            Action::LeaderProcessAckLd { .. } => ActionKind::LeaderProcessAckLd,
            Action::FollowerProcessUpToDate { .. } => ActionKind::FollowerProcessUpToDate,
            Action::LeaderProcessRequest { .. } => ActionKind::LeaderProcessRequest,
            Action::LeaderBroadcastProposal { .. } => ActionKind::LeaderBroadcastProposal,
            Action::SyncProcessorLogRequest { .. } => ActionKind::SyncProcessorLogRequest,
            Action::FollowerProcessProposal { .. } => ActionKind::FollowerProcessProposal,
            Action::LeaderProcessAck { .. } => ActionKind::LeaderProcessAck,
            Action::FollowerProcessCommit { .. } => ActionKind::FollowerProcessCommit,
            Action::ObserverProcessInform { .. } => ActionKind::ObserverProcessInform,
            Action::TakeSnapshot { .. } => ActionKind::TakeSnapshot,
            Action::PartitionStart { .. } => ActionKind::PartitionStart,
            Action::PartitionRecover { .. } => ActionKind::PartitionRecover,
            Action::NodeCrash { .. } => ActionKind::NodeCrash,
            Action::LoseEpochFiles { .. } => ActionKind::LoseEpochFiles,
            Action::LoseLogSuffix { .. } => ActionKind::LoseLogSuffix,
            Action::LoseDataDir { .. } => ActionKind::LoseDataDir,
            Action::FilterNonexistentMessage { .. } => ActionKind::FilterNonexistentMessage,
        }
    }

    /// The TLA+ action name.
    #[must_use]
    pub fn tla_name(&self) -> &'static str {
        self.kind().tla_name()
    }

    /// The action a server's trace record names, or `None` for a kind that is not a single
    /// model action (`ConnectionLost`, `NodeRestart`) or a record that lacks its peer or
    /// payload. `j` is the peer
    /// for two-server actions; `payload` the transaction of `LeaderProcessRequest`.
    /// `TakeSnapshot` and `LoseLogSuffix` need an index in the model's history: the caller
    /// builds them.
    #[must_use]
    pub fn from_trace(
        kind: ActionKind,
        i: Sid,
        j: Option<Sid>,
        payload: Option<P>,
    ) -> Option<Action<P>> {
        let one = |f: fn(Sid) -> Action<P>| Some(f(i));
        let two = |f: fn(Sid, Sid) -> Action<P>| j.map(|j| f(i, j));
        match kind {
            ActionKind::ElectLeader => one(|i| Action::ElectLeader { i }),
            ActionKind::FollowLeader => two(|i, j| Action::FollowLeader { i, j }),
            ActionKind::LeaderTimeout => one(|i| Action::LeaderTimeout { i }),
            ActionKind::LeaderProcessFollowerInfo => {
                two(|i, j| Action::LeaderProcessFollowerInfo { i, j })
            }
            ActionKind::FollowerProcessLeaderInfo => {
                two(|i, j| Action::FollowerProcessLeaderInfo { i, j })
            }
            ActionKind::LeaderProcessAckEpoch => two(|i, j| Action::LeaderProcessAckEpoch { i, j }),
            ActionKind::LeaderSyncFollower => two(|i, j| Action::LeaderSyncFollower { i, j }),
            ActionKind::FollowerProcessSyncMessage => {
                two(|i, j| Action::FollowerProcessSyncMessage { i, j })
            }
            ActionKind::FollowerProcessProposalInSync => {
                two(|i, j| Action::FollowerProcessProposalInSync { i, j })
            }
            ActionKind::FollowerProcessCommitInSync => {
                two(|i, j| Action::FollowerProcessCommitInSync { i, j })
            }
            ActionKind::FollowerProcessNewLeader => {
                two(|i, j| Action::FollowerProcessNewLeader { i, j })
            }
            ActionKind::FollowerProcessNewLeaderAfterCurrentEpochUpdated => {
                one(|i| Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { i })
            }
            ActionKind::LeaderProcessAckLd => two(|i, j| Action::LeaderProcessAckLd { i, j }),
            ActionKind::FollowerProcessUpToDate => {
                two(|i, j| Action::FollowerProcessUpToDate { i, j })
            }
            ActionKind::LeaderProcessRequest => {
                payload.map(|payload| Action::LeaderProcessRequest { i, payload })
            }
            ActionKind::LeaderBroadcastProposal => one(|i| Action::LeaderBroadcastProposal { i }),
            ActionKind::SyncProcessorLogRequest => one(|i| Action::SyncProcessorLogRequest { i }),
            ActionKind::FollowerProcessProposal => {
                two(|i, j| Action::FollowerProcessProposal { i, j })
            }
            ActionKind::LeaderProcessAck => two(|i, j| Action::LeaderProcessAck { i, j }),
            ActionKind::FollowerProcessCommit => two(|i, j| Action::FollowerProcessCommit { i, j }),
            ActionKind::ObserverProcessInform => two(|i, j| Action::ObserverProcessInform { i, j }),
            ActionKind::PartitionStart => two(|i, j| Action::PartitionStart { i, j }),
            ActionKind::PartitionRecover => two(|i, j| Action::PartitionRecover { i, j }),
            ActionKind::NodeCrash => one(|i| Action::NodeCrash { i }),
            ActionKind::LoseEpochFiles => one(|i| Action::LoseEpochFiles { i }),
            ActionKind::LoseDataDir => one(|i| Action::LoseDataDir { i }),
            ActionKind::FilterNonexistentMessage => {
                two(|i, j| Action::FilterNonexistentMessage { i, j })
            }
            ActionKind::TakeSnapshot
            | ActionKind::LoseLogSuffix
            | ActionKind::ConnectionLost
            | ActionKind::NodeRestart
            | ActionKind::LeaderProcessObserverInfo => None,
        }
    }

    /// The acting server and, for two-server actions, the other one.
    #[must_use]
    pub fn servers(&self) -> (Sid, Option<Sid>) {
        match *self {
            Action::ElectLeader { i }
            | Action::LeaderTimeout { i }
            | Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { i }
            | Action::LeaderProcessRequest { i, .. }
            | Action::LeaderBroadcastProposal { i }
            | Action::SyncProcessorLogRequest { i }
            | Action::TakeSnapshot { i, .. }
            | Action::NodeCrash { i }
            | Action::LoseEpochFiles { i }
            | Action::LoseLogSuffix { i, .. }
            | Action::LoseDataDir { i } => (i, None),
            Action::FollowLeader { i, j }
            | Action::LeaderProcessFollowerInfo { i, j }
            | Action::FollowerProcessLeaderInfo { i, j }
            | Action::LeaderProcessAckEpoch { i, j }
            | Action::LeaderSyncFollower { i, j }
            | Action::FollowerProcessSyncMessage { i, j }
            | Action::FollowerProcessProposalInSync { i, j }
            | Action::FollowerProcessCommitInSync { i, j }
            | Action::FollowerProcessNewLeader { i, j }
            | Action::LeaderProcessAckLd { i, j }
            | Action::FollowerProcessUpToDate { i, j }
            | Action::FollowerProcessProposal { i, j }
            | Action::LeaderProcessAck { i, j }
            | Action::FollowerProcessCommit { i, j }
            | Action::ObserverProcessInform { i, j }
            | Action::PartitionStart { i, j }
            | Action::PartitionRecover { i, j }
            | Action::FilterNonexistentMessage { i, j } => (i, Some(j)),
        }
    }
}

impl<P: fmt::Display> fmt::Display for Action<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, j) = self.servers();
        write!(f, "{}(s{}", self.tla_name(), i + 1)?;
        if let Some(j) = j {
            write!(f, ", s{}", j + 1)?;
        }
        if let Action::LeaderProcessRequest { payload, .. } = self {
            write!(f, ", {payload}")?;
        }
        if let Action::TakeSnapshot { k, .. } | Action::LoseLogSuffix { k, .. } = self {
            write!(f, ", {k}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_listed_name() {
        let (i, j) = (0, 1);
        let all: Vec<Action<()>> = vec![
            Action::ElectLeader { i },
            Action::FollowLeader { i, j },
            Action::LeaderTimeout { i },
            Action::LeaderProcessFollowerInfo { i, j },
            Action::FollowerProcessLeaderInfo { i, j },
            Action::LeaderProcessAckEpoch { i, j },
            Action::LeaderSyncFollower { i, j },
            Action::FollowerProcessSyncMessage { i, j },
            Action::FollowerProcessProposalInSync { i, j },
            Action::FollowerProcessCommitInSync { i, j },
            Action::FollowerProcessNewLeader { i, j },
            Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { i },
            Action::LeaderProcessAckLd { i, j },
            Action::FollowerProcessUpToDate { i, j },
            Action::LeaderProcessRequest { i, payload: () },
            Action::LeaderBroadcastProposal { i },
            Action::SyncProcessorLogRequest { i },
            Action::FollowerProcessProposal { i, j },
            Action::LeaderProcessAck { i, j },
            Action::FollowerProcessCommit { i, j },
            Action::ObserverProcessInform { i, j },
            Action::TakeSnapshot { i, k: 1 },
            Action::PartitionStart { i, j },
            Action::PartitionRecover { i, j },
            Action::NodeCrash { i },
            Action::LoseEpochFiles { i },
            Action::LoseLogSuffix { i, k: 0 },
            Action::LoseDataDir { i },
            Action::FilterNonexistentMessage { i, j },
        ];
        let kinds: Vec<ActionKind> = all.iter().map(Action::kind).collect();
        assert_eq!(kinds, ActionKind::model_actions().collect::<Vec<_>>());
        for a in &all {
            let (i, j) = a.servers();
            let arity = if j.is_some() {
                zab_spec::Arity::Two
            } else {
                zab_spec::Arity::One
            };
            assert_eq!(a.kind().arity(), arity, "{}", a.tla_name());
            let payload = matches!(a, Action::LeaderProcessRequest { .. }).then_some(());
            let expected = (!matches!(
                a,
                Action::TakeSnapshot { .. } | Action::LoseLogSuffix { .. }
            ))
            .then_some(a);
            assert_eq!(
                Action::from_trace(a.kind(), i, j, payload).as_ref(),
                expected
            );
        }
        for kind in [ActionKind::ConnectionLost, ActionKind::NodeRestart] {
            assert_eq!(Action::<()>::from_trace(kind, 0, Some(1), None), None);
        }
        assert_eq!(
            Action::<()>::from_trace(ActionKind::FollowLeader, 0, None, None),
            None,
            "a two-server action needs its peer"
        );
    }
}
