//! The messages of Zab 1.0 as ZooKeeper implements them, and the election vote.
//!
//! [`QuorumMessage`] is generic over the transaction payload `P` (a tiny abstract operation in
//! the model, the real ZooKeeper transaction in the server) and over the snapshot `S` carried by
//! SNAP (the model ships a prefix of the history, the server a serialized data tree).
//! The wire encoding of these messages is the server's business (`zab-server`), not this crate's.

use crate::ids::{Epoch, ServerId, Zxid};
use crate::txn::Txn;
use std::fmt;

/// The election state of a server (TLA+ `state`, ZooKeeper `ServerState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerState {
    /// Looking for a leader (running leader election).
    #[default]
    Looking,
    /// Following a leader.
    Following,
    /// Leading.
    Leading,
}

/// The Zab phase of a server (TLA+ `zabState`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZabState {
    /// Leader election.
    #[default]
    Election,
    /// Phase 1: FOLLOWERINFO / LEADERINFO / ACKEPOCH, the new epoch is agreed.
    Discovery,
    /// Phase 2: DIFF / TRUNC / SNAP, NEWLEADER, ACK of NEWLEADER, UPTODATE.
    Synchronization,
    /// Phase 3: PROPOSAL / ACK / COMMIT.
    Broadcast,
}

/// How a leader brings a follower's log in line with its own (ZooKeeper `syncFollower`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncMode {
    /// The follower's log is a prefix of the leader's: send the missing transactions.
    Diff,
    /// The follower has transactions the leader does not: cut them, then send the missing ones.
    Trunc,
    /// The follower is too far behind the leader's log: send a snapshot of the state.
    Snap,
}

/// A leader-election vote: `(peer_epoch, zxid, leader)`, ordered lexicographically.
///
/// The field order makes the derived `Ord` ZooKeeper's `totalOrderPredicate`: a higher current
/// epoch wins, then a higher last zxid, then a higher server id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vote {
    /// The proposed leader's current epoch (`peerEpoch`).
    pub peer_epoch: Epoch,
    /// The proposed leader's last logged zxid.
    pub zxid: Zxid,
    /// The proposed leader.
    pub leader: ServerId,
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {}, {})", self.peer_epoch, self.zxid, self.leader)
    }
}

/// A fast-leader-election notification (ZooKeeper `FastLeaderElection.Notification`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// The sender's current vote.
    pub vote: Vote,
    /// The sender's election round (`logicalclock`).
    pub election_epoch: u64,
    /// The sender's state: a LOOKING sender is still voting, the others report the leader.
    pub state: ServerState,
    /// The sender is recovering from damaged storage, or does not know yet whether it is
    /// (it started with no durable state): its vote is neither counted nor adopted, and it
    /// is never a candidate (`spec/PROTOCOL.md` §7.1).
    pub recovering: bool,
    /// The sender holds no durable state at all (no epochs, no log, no snapshot): what a
    /// server that never joined has, and what a wiped data directory looks like. A server
    /// that starts empty is fresh only if every other member reports empty too (§7.1).
    pub empty: bool,
}

/// A message between a leader and a follower in Zab 1.0 (ZooKeeper `Leader.*` packet types).
///
/// The names of the variants are the ZooKeeper packet names; [`QuorumMessage::name`] returns
/// them in ZooKeeper's spelling, the one `spec/PROTOCOL.md` uses.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QuorumMessage<P, S = Vec<Txn<P>>> {
    /// Follower → leader on connect: the follower's accepted epoch (`FOLLOWERINFO`).
    FollowerInfo {
        /// The follower's `acceptedEpoch`.
        accepted_epoch: Epoch,
        /// The follower is recovering from damaged storage (`spec/PROTOCOL.md` §7.1): the
        /// leader records its ACKEPOCH without counting it, lets its ACK of NEWLEADER join
        /// the live set but not the establishing quorum, and ignores its ACKs.
        recovering: bool,
    },
    /// Leader → follower: the proposed new epoch (`LEADERINFO`).
    LeaderInfo {
        /// The new epoch, one more than the largest accepted epoch of a quorum.
        new_epoch: Epoch,
    },
    /// Follower → leader: the follower accepted the epoch (`ACKEPOCH`).
    AckEpoch {
        /// The follower's `currentEpoch`; `None` is ZooKeeper's -1, "already accepted this
        /// epoch", which does not count towards the quorum.
        current_epoch: Option<Epoch>,
        /// The follower's last logged zxid.
        last_zxid: Zxid,
    },
    /// Leader → follower: "your log is a prefix of mine, here is the rest" (`DIFF`).
    Diff {
        /// The last zxid both logs share.
        last_zxid: Zxid,
    },
    /// Leader → follower: "cut your log after this zxid" (`TRUNC`).
    Trunc {
        /// The zxid to truncate to.
        truncate_to: Zxid,
    },
    /// Leader → follower: a snapshot of the leader's committed state (`SNAP`).
    Snap {
        /// The last zxid contained in the snapshot.
        last_zxid: Zxid,
        /// The snapshot itself.
        snapshot: S,
    },
    /// Leader → follower: a transaction to log (`PROPOSAL`).
    Proposal(Txn<P>),
    /// Leader → follower: the transaction with this zxid is committed (`COMMIT`).
    Commit {
        /// The committed zxid.
        zxid: Zxid,
    },
    /// Leader → follower: end of the sync data; adopt the new epoch (`NEWLEADER`).
    NewLeader {
        /// `(new epoch, 0)`.
        zxid: Zxid,
    },
    /// Follower → leader: synced transactions and the new current epoch are durable
    /// (the ACK of NEWLEADER; ZooKeeper sends an `ACK` whose zxid counter is 0).
    AckNewLeader {
        /// `(new epoch, 0)`.
        zxid: Zxid,
    },
    /// Leader → follower: a quorum acknowledged NEWLEADER, start serving (`UPTODATE`).
    UpToDate,
    /// Follower → leader: the proposal with this zxid is durable in the follower's log (`ACK`).
    Ack {
        /// The acknowledged zxid.
        zxid: Zxid,
    },
    /// Observer → leader on connect, instead of FOLLOWERINFO (`OBSERVERINFO`,
    /// `spec/PROTOCOL.md` §10.2): the observer's accepted epoch, which never counts towards
    /// the leader's quorum.
    ObserverInfo {
        /// The observer's `acceptedEpoch`.
        accepted_epoch: Epoch,
    },
    /// Leader → observer: a committed transaction to log and apply (`INFORM`, §10.2); an
    /// observer gets no PROPOSAL and no COMMIT in BROADCAST.
    Inform(Txn<P>),
}

impl<P, S> QuorumMessage<P, S> {
    /// The ZooKeeper name of the message type, as used in `spec/PROTOCOL.md`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            QuorumMessage::FollowerInfo { .. } => "FOLLOWERINFO",
            QuorumMessage::LeaderInfo { .. } => "LEADERINFO",
            QuorumMessage::AckEpoch { .. } => "ACKEPOCH",
            QuorumMessage::Diff { .. } => "DIFF",
            QuorumMessage::Trunc { .. } => "TRUNC",
            QuorumMessage::Snap { .. } => "SNAP",
            QuorumMessage::Proposal(_) => "PROPOSAL",
            QuorumMessage::Commit { .. } => "COMMIT",
            QuorumMessage::NewLeader { .. } => "NEWLEADER",
            QuorumMessage::AckNewLeader { .. } => "ACKLD",
            QuorumMessage::UpToDate => "UPTODATE",
            QuorumMessage::Ack { .. } => "ACK",
            QuorumMessage::ObserverInfo { .. } => "OBSERVERINFO",
            QuorumMessage::Inform(_) => "INFORM",
        }
    }
}

impl<P: fmt::Display, S> fmt::Display for QuorumMessage<P, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuorumMessage::FollowerInfo {
                accepted_epoch,
                recovering: false,
            } => {
                write!(f, "FOLLOWERINFO(acceptedEpoch={accepted_epoch})")
            }
            QuorumMessage::FollowerInfo {
                accepted_epoch,
                recovering: true,
            } => {
                write!(
                    f,
                    "FOLLOWERINFO(acceptedEpoch={accepted_epoch}, recovering)"
                )
            }
            QuorumMessage::LeaderInfo { new_epoch } => write!(f, "LEADERINFO(epoch={new_epoch})"),
            QuorumMessage::AckEpoch {
                current_epoch: Some(e),
                last_zxid,
            } => {
                write!(f, "ACKEPOCH(currentEpoch={e}, lastZxid={last_zxid})")
            }
            QuorumMessage::AckEpoch {
                current_epoch: None,
                last_zxid,
            } => {
                write!(f, "ACKEPOCH(currentEpoch=-1, lastZxid={last_zxid})")
            }
            QuorumMessage::Diff { last_zxid } => write!(f, "DIFF({last_zxid})"),
            QuorumMessage::Trunc { truncate_to } => write!(f, "TRUNC({truncate_to})"),
            QuorumMessage::Snap { last_zxid, .. } => write!(f, "SNAP({last_zxid})"),
            QuorumMessage::Proposal(t) => write!(f, "PROPOSAL({}, {})", t.zxid, t.payload),
            QuorumMessage::Commit { zxid } => write!(f, "COMMIT({zxid})"),
            QuorumMessage::NewLeader { zxid } => write!(f, "NEWLEADER({zxid})"),
            QuorumMessage::AckNewLeader { zxid } => write!(f, "ACKLD({zxid})"),
            QuorumMessage::UpToDate => write!(f, "UPTODATE"),
            QuorumMessage::Ack { zxid } => write!(f, "ACK({zxid})"),
            QuorumMessage::ObserverInfo { accepted_epoch } => {
                write!(f, "OBSERVERINFO(acceptedEpoch={accepted_epoch})")
            }
            QuorumMessage::Inform(t) => write!(f, "INFORM({}, {})", t.zxid, t.payload),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(epoch: u32, zxid: Zxid, id: u64) -> Vote {
        Vote {
            peer_epoch: Epoch(epoch),
            zxid,
            leader: ServerId(id),
        }
    }

    #[test]
    fn vote_order_is_epoch_then_zxid_then_id() {
        // A higher current epoch beats a longer log (the order behind ZOOKEEPER-4643).
        assert!(vote(2, Zxid::new(1, 1), 1) > vote(1, Zxid::new(1, 2), 3));
        assert!(vote(1, Zxid::new(1, 2), 1) > vote(1, Zxid::new(1, 1), 3));
        assert!(vote(1, Zxid::new(1, 1), 3) > vote(1, Zxid::new(1, 1), 2));
    }
}
