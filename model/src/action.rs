//! The model's actions: one variant per TLA+ action of `tla/Zab.tla`, carrying every
//! nondeterministic choice, so that a recorded server trace can name the exact step.
//!
//! `i` is the server taking the step; `j` is the peer whose message it receives (for a
//! handler of a message) or the other end (for a partition). [`Action::tla_name`] is the
//! TLA+/`spec/PROTOCOL.md` name; Rust handlers are the same name in snake_case.

use crate::state::{Idx, Sid};
use std::fmt;

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

/// Every action name, in `spec/PROTOCOL.md` order.
pub const TLA_NAMES: [&str; 28] = [
    "ElectLeader",
    "FollowLeader",
    "LeaderTimeout",
    "LeaderProcessFOLLOWERINFO",
    "FollowerProcessLEADERINFO",
    "LeaderProcessACKEPOCH",
    "LeaderSyncFollower",
    "FollowerProcessSyncMessage",
    "FollowerProcessPROPOSALInSync",
    "FollowerProcessCOMMITInSync",
    "FollowerProcessNEWLEADER",
    "FollowerProcessNEWLEADERAfterCurrentEpochUpdated",
    "LeaderProcessACKLD",
    "FollowerProcessUPTODATE",
    "LeaderProcessRequest",
    "LeaderBroadcastPROPOSAL",
    "SyncProcessorLogRequest",
    "FollowerProcessPROPOSAL",
    "LeaderProcessACK",
    "FollowerProcessCOMMIT",
    "TakeSnapshot",
    "PartitionStart",
    "PartitionRecover",
    "NodeCrash",
    "LoseEpochFiles",
    "LoseLogSuffix",
    "LoseDataDir",
    "FilterNonexistentMessage",
];

impl<P> Action<P> {
    /// The TLA+ action name.
    #[must_use]
    pub fn tla_name(&self) -> &'static str {
        match self {
            Action::ElectLeader { .. } => "ElectLeader",
            Action::FollowLeader { .. } => "FollowLeader",
            Action::LeaderTimeout { .. } => "LeaderTimeout",
            Action::LeaderProcessFollowerInfo { .. } => "LeaderProcessFOLLOWERINFO",
            Action::FollowerProcessLeaderInfo { .. } => "FollowerProcessLEADERINFO",
            Action::LeaderProcessAckEpoch { .. } => "LeaderProcessACKEPOCH",
            Action::LeaderSyncFollower { .. } => "LeaderSyncFollower",
            Action::FollowerProcessSyncMessage { .. } => "FollowerProcessSyncMessage",
            Action::FollowerProcessProposalInSync { .. } => "FollowerProcessPROPOSALInSync",
            Action::FollowerProcessCommitInSync { .. } => "FollowerProcessCOMMITInSync",
            Action::FollowerProcessNewLeader { .. } => "FollowerProcessNEWLEADER",
            Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { .. } => {
                "FollowerProcessNEWLEADERAfterCurrentEpochUpdated"
            }
            Action::LeaderProcessAckLd { .. } => "LeaderProcessACKLD",
            Action::FollowerProcessUpToDate { .. } => "FollowerProcessUPTODATE",
            Action::LeaderProcessRequest { .. } => "LeaderProcessRequest",
            Action::LeaderBroadcastProposal { .. } => "LeaderBroadcastPROPOSAL",
            Action::SyncProcessorLogRequest { .. } => "SyncProcessorLogRequest",
            Action::FollowerProcessProposal { .. } => "FollowerProcessPROPOSAL",
            Action::LeaderProcessAck { .. } => "LeaderProcessACK",
            Action::FollowerProcessCommit { .. } => "FollowerProcessCOMMIT",
            Action::TakeSnapshot { .. } => "TakeSnapshot",
            Action::PartitionStart { .. } => "PartitionStart",
            Action::PartitionRecover { .. } => "PartitionRecover",
            Action::NodeCrash { .. } => "NodeCrash",
            Action::LoseEpochFiles { .. } => "LoseEpochFiles",
            Action::LoseLogSuffix { .. } => "LoseLogSuffix",
            Action::LoseDataDir { .. } => "LoseDataDir",
            Action::FilterNonexistentMessage { .. } => "FilterNonexistentMessage",
        }
    }

    /// The action a server's trace record names (`spec/PROTOCOL.md` names, as emitted by the
    /// server core), or `None` for a name that is not a single model action. `j` is the peer
    /// for two-server actions; `payload` the transaction of `LeaderProcessRequest`.
    /// `TakeSnapshot` and `LoseLogSuffix` need an index in the model's history: the caller
    /// builds them.
    #[must_use]
    pub fn from_trace(name: &str, i: Sid, j: Option<Sid>, payload: Option<P>) -> Option<Action<P>> {
        let one = |f: fn(Sid) -> Action<P>| Some(f(i));
        let two = |f: fn(Sid, Sid) -> Action<P>| j.map(|j| f(i, j));
        match name {
            "ElectLeader" => one(|i| Action::ElectLeader { i }),
            "FollowLeader" => two(|i, j| Action::FollowLeader { i, j }),
            "LeaderTimeout" => one(|i| Action::LeaderTimeout { i }),
            "LeaderProcessFOLLOWERINFO" => two(|i, j| Action::LeaderProcessFollowerInfo { i, j }),
            "FollowerProcessLEADERINFO" => two(|i, j| Action::FollowerProcessLeaderInfo { i, j }),
            "LeaderProcessACKEPOCH" => two(|i, j| Action::LeaderProcessAckEpoch { i, j }),
            "LeaderSyncFollower" => two(|i, j| Action::LeaderSyncFollower { i, j }),
            "FollowerProcessSyncMessage" => two(|i, j| Action::FollowerProcessSyncMessage { i, j }),
            "FollowerProcessPROPOSALInSync" => {
                two(|i, j| Action::FollowerProcessProposalInSync { i, j })
            }
            "FollowerProcessCOMMITInSync" => {
                two(|i, j| Action::FollowerProcessCommitInSync { i, j })
            }
            "FollowerProcessNEWLEADER" => two(|i, j| Action::FollowerProcessNewLeader { i, j }),
            "FollowerProcessNEWLEADERAfterCurrentEpochUpdated" => {
                one(|i| Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { i })
            }
            "LeaderProcessACKLD" => two(|i, j| Action::LeaderProcessAckLd { i, j }),
            "FollowerProcessUPTODATE" => two(|i, j| Action::FollowerProcessUpToDate { i, j }),
            "LeaderProcessRequest" => {
                payload.map(|payload| Action::LeaderProcessRequest { i, payload })
            }
            "LeaderBroadcastPROPOSAL" => one(|i| Action::LeaderBroadcastProposal { i }),
            "SyncProcessorLogRequest" => one(|i| Action::SyncProcessorLogRequest { i }),
            "FollowerProcessPROPOSAL" => two(|i, j| Action::FollowerProcessProposal { i, j }),
            "LeaderProcessACK" => two(|i, j| Action::LeaderProcessAck { i, j }),
            "FollowerProcessCOMMIT" => two(|i, j| Action::FollowerProcessCommit { i, j }),
            "PartitionStart" => two(|i, j| Action::PartitionStart { i, j }),
            "PartitionRecover" => two(|i, j| Action::PartitionRecover { i, j }),
            "NodeCrash" => one(|i| Action::NodeCrash { i }),
            "LoseEpochFiles" => one(|i| Action::LoseEpochFiles { i }),
            "LoseDataDir" => one(|i| Action::LoseDataDir { i }),
            "FilterNonexistentMessage" => two(|i, j| Action::FilterNonexistentMessage { i, j }),
            _ => None,
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
            Action::TakeSnapshot { i, k: 1 },
            Action::PartitionStart { i, j },
            Action::PartitionRecover { i, j },
            Action::NodeCrash { i },
            Action::LoseEpochFiles { i },
            Action::LoseLogSuffix { i, k: 0 },
            Action::LoseDataDir { i },
            Action::FilterNonexistentMessage { i, j },
        ];
        let names: Vec<&str> = all.iter().map(Action::tla_name).collect();
        assert_eq!(names, TLA_NAMES);
        for a in &all {
            let (i, j) = a.servers();
            let payload = matches!(a, Action::LeaderProcessRequest { .. }).then_some(());
            let expected = (!matches!(
                a,
                Action::TakeSnapshot { .. } | Action::LoseLogSuffix { .. }
            ))
            .then_some(a);
            assert_eq!(
                Action::from_trace(a.tla_name(), i, j, payload).as_ref(),
                expected
            );
        }
        assert_eq!(
            Action::<()>::from_trace("NoSuchAction", 0, None, None),
            None
        );
    }
}
