//! The protocol's actions by name: one enum shared by the model's actions
//! (`zab_model::Action::kind`), the server's trace records (`zab_server::core::TraceEvent`)
//! and the refinement checker, so that no layer matches on action names as text.
//!
//! Each variant is an action of `spec/PROTOCOL.md` and `tla/Zab.tla` (spelled as there by
//! [`ActionKind::tla_name`]), except the records a server's trace has that are not one
//! model action: [`ActionKind::ConnectionLost`] and [`ActionKind::NodeRestart`], and the
//! leader's handling of OBSERVERINFO ([`ActionKind::LeaderProcessObserverInfo`]: the model's
//! observer connects with FOLLOWERINFO, PROTOCOL.md §10.2).

use std::fmt;

/// Who takes part in an action, besides the acting server `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arity {
    /// Only `i`.
    One,
    /// `i` and a peer `j` (the sender of the message `i` handles, the follower or leader it
    /// deals with, or the other end of a link).
    Two,
}

macro_rules! action_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $arity:ident;)*) => {
        /// A protocol action (or one of the two trace-only records), by name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ActionKind {
            $($(#[$doc])* $variant,)*
        }

        impl ActionKind {
            /// Every kind: the model's actions in `spec/PROTOCOL.md` order, then the
            /// trace-only records.
            pub const ALL: &'static [ActionKind] = &[$(ActionKind::$variant,)*];

            /// The name in `spec/PROTOCOL.md`, `tla/Zab.tla` and the trace files.
            #[must_use]
            pub fn tla_name(self) -> &'static str {
                match self {
                    $(ActionKind::$variant => $name,)*
                }
            }

            /// Whether the action involves a peer `j`.
            #[must_use]
            pub fn arity(self) -> Arity {
                match self {
                    $(ActionKind::$variant => Arity::$arity,)*
                }
            }
        }
    };
}

action_kinds! {
    /// A LOOKING server wins an election.
    ElectLeader = "ElectLeader", One;
    /// A LOOKING server follows a leader and sends FOLLOWERINFO.
    FollowLeader = "FollowLeader", Two;
    /// A leader gives up before establishing (initLimit/syncLimit).
    LeaderTimeout = "LeaderTimeout", One;
    /// The leader handles FOLLOWERINFO.
    LeaderProcessFollowerInfo = "LeaderProcessFOLLOWERINFO", Two;
    /// The follower handles LEADERINFO.
    FollowerProcessLeaderInfo = "FollowerProcessLEADERINFO", Two;
    /// The leader handles ACKEPOCH.
    LeaderProcessAckEpoch = "LeaderProcessACKEPOCH", Two;
    /// The leader sends DIFF / TRUNC / SNAP, proposals and commits, NEWLEADER.
    LeaderSyncFollower = "LeaderSyncFollower", Two;
    /// The follower handles DIFF, TRUNC or SNAP.
    FollowerProcessSyncMessage = "FollowerProcessSyncMessage", Two;
    /// The follower handles a PROPOSAL while synchronizing.
    FollowerProcessProposalInSync = "FollowerProcessPROPOSALInSync", Two;
    /// The follower handles a COMMIT while synchronizing.
    FollowerProcessCommitInSync = "FollowerProcessCOMMITInSync", Two;
    /// The follower handles NEWLEADER.
    FollowerProcessNewLeader = "FollowerProcessNEWLEADER", Two;
    /// The second half of NEWLEADER under ZOOKEEPER-4643's switch.
    FollowerProcessNewLeaderAfterCurrentEpochUpdated =
        "FollowerProcessNEWLEADERAfterCurrentEpochUpdated", One;
    /// The leader handles the ACK of NEWLEADER.
    LeaderProcessAckLd = "LeaderProcessACKLD", Two;
    /// The follower handles UPTODATE.
    FollowerProcessUpToDate = "FollowerProcessUPTODATE", Two;
    /// A client write becomes a proposal.
    LeaderProcessRequest = "LeaderProcessRequest", One;
    /// The paper's separate PROPOSE broadcast (only under its bug switch).
    LeaderBroadcastProposal = "LeaderBroadcastPROPOSAL", One;
    /// The log thread makes the next accepted transaction durable and acknowledges it.
    SyncProcessorLogRequest = "SyncProcessorLogRequest", One;
    /// The follower handles a PROPOSAL in BROADCAST.
    FollowerProcessProposal = "FollowerProcessPROPOSAL", Two;
    /// The leader handles an ACK.
    LeaderProcessAck = "LeaderProcessACK", Two;
    /// The follower handles a COMMIT in BROADCAST.
    FollowerProcessCommit = "FollowerProcessCOMMIT", Two;
    /// An observer handles INFORM (a committed transaction), while synchronizing or in
    /// BROADCAST (`spec/PROTOCOL.md` §10.2).
    ObserverProcessInform = "ObserverProcessINFORM", Two;
    /// A snapshot becomes the server's recovery point.
    TakeSnapshot = "TakeSnapshot", One;
    /// A link is cut.
    PartitionStart = "PartitionStart", Two;
    /// A link heals.
    PartitionRecover = "PartitionRecover", Two;
    /// The server crashes and restarts; volatile state is lost.
    NodeCrash = "NodeCrash", One;
    /// A restart without the epoch files (a storage fault).
    LoseEpochFiles = "LoseEpochFiles", One;
    /// A restart with a suffix of the fsynced log lost (a storage fault).
    LoseLogSuffix = "LoseLogSuffix", One;
    /// A restart with an empty data directory (a storage fault).
    LoseDataDir = "LoseDataDir", One;
    /// A message no handler accepts (should not be triggered).
    FilterNonexistentMessage = "FilterNonexistentMessage", Two;
    /// Trace only: a quorum connection broke without a crash (the model's `PartitionStart`
    /// then `PartitionRecover`, or nothing when the other end reported it already).
    ConnectionLost = "ConnectionLost", Two;
    /// Trace only: a crashed server recovered (a stutter of the model).
    NodeRestart = "NodeRestart", One;
    /// The leader handles an observer's OBSERVERINFO (`spec/PROTOCOL.md` §10.2). Trace only:
    /// the model's observer connects with FOLLOWERINFO.
    LeaderProcessObserverInfo = "LeaderProcessOBSERVERINFO", Two;
}

impl ActionKind {
    /// The kind named `name` (its [`tla_name`](Self::tla_name)), if any.
    #[must_use]
    pub fn from_tla_name(name: &str) -> Option<ActionKind> {
        ActionKind::ALL
            .iter()
            .copied()
            .find(|k| k.tla_name() == name)
    }

    /// Whether this is an action of the model (and `tla/Zab.tla`); false for the trace-only
    /// records.
    #[must_use]
    pub fn is_model_action(self) -> bool {
        !matches!(
            self,
            ActionKind::ConnectionLost
                | ActionKind::NodeRestart
                | ActionKind::LeaderProcessObserverInfo
        )
    }

    /// The model's actions, in `spec/PROTOCOL.md` order.
    pub fn model_actions() -> impl Iterator<Item = ActionKind> {
        ActionKind::ALL
            .iter()
            .copied()
            .filter(|k| k.is_model_action())
    }

    /// Whether the action restarts the server (a crash or a storage fault): its server has no
    /// state to report until `NodeRestart`.
    #[must_use]
    pub fn is_restart(self) -> bool {
        matches!(
            self,
            ActionKind::NodeCrash
                | ActionKind::LoseEpochFiles
                | ActionKind::LoseLogSuffix
                | ActionKind::LoseDataDir
        )
    }

    /// Whether the action is a storage fault (a restart with damaged durable state).
    #[must_use]
    pub fn is_storage_fault(self) -> bool {
        self.is_restart() && self != ActionKind::NodeCrash
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tla_name())
    }
}

impl std::str::FromStr for ActionKind {
    type Err = String;

    fn from_str(s: &str) -> Result<ActionKind, String> {
        ActionKind::from_tla_name(s).ok_or_else(|| format!("unknown action {s:?}"))
    }
}

/// Written and read as its TLA+ name (`"LeaderProcessFOLLOWERINFO"`), so trace files stay
/// readable and keep their format.
#[cfg(feature = "serde")]
impl serde::Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.tla_name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for ActionKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ActionKind, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ActionKind::from_tla_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format_args!("unknown action {name:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_read_back() {
        for (n, k) in ActionKind::ALL.iter().enumerate() {
            assert_eq!(ActionKind::from_tla_name(k.tla_name()), Some(*k));
            assert_eq!(k.to_string().parse::<ActionKind>(), Ok(*k));
            assert!(
                ActionKind::ALL[..n]
                    .iter()
                    .all(|o| o.tla_name() != k.tla_name()),
                "{k} twice"
            );
        }
        assert_eq!(ActionKind::from_tla_name("NoSuchAction"), None);
        assert_eq!(ActionKind::ALL.len(), 32);
        assert_eq!(ActionKind::model_actions().count(), 29);
    }

    #[test]
    fn restarts_and_storage_faults() {
        let restarts: Vec<ActionKind> = ActionKind::ALL
            .iter()
            .copied()
            .filter(|k| k.is_restart())
            .collect();
        assert_eq!(restarts.len(), 4);
        assert!(!ActionKind::NodeCrash.is_storage_fault());
        assert!(ActionKind::LoseDataDir.is_storage_fault());
        assert_eq!(ActionKind::FollowLeader.arity(), Arity::Two);
        assert_eq!(ActionKind::NodeCrash.arity(), Arity::One);
    }
}
