//! What the core ignores, and why: every input the core drops on purpose takes an `ignore_*`
//! path named here, with a debug line and a counter (published as
//! `zab_ignored_inputs_total{path="ignore_…"}` on the metrics endpoint). Where the model sees
//! the same input, it flags a violation or filters it (`FilterNonexistentMessage`); the
//! server, facing a network it does not control, counts it and carries on.

/// Why an input was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ignored {
    /// A PROPOSAL whose zxid is not the next one after the follower's log (or its sync
    /// packets): a gap or a duplicate.
    OutOfOrderProposal,
    /// A COMMIT for a zxid other than the next one to deliver.
    CommitWrongZxid,
    /// An ACK for a zxid this leader has no outstanding proposal for (above its committed
    /// mark).
    AckUnknownZxid,
    /// An ACK for a zxid already committed (a quorum answered first).
    AckAlreadyCommitted,
    /// An ACK of NEWLEADER for another epoch's NEWLEADER.
    AckNewLeaderWrongZxid,
    /// A DIFF or TRUNC that does not fit this follower's log, or a sync message outside
    /// SYNCHRONIZATION.
    SyncMessageMisfit,
    /// LEADERINFO outside DISCOVERY, NEWLEADER outside SYNCHRONIZATION or repeated, UPTODATE
    /// before NEWLEADER was processed.
    OutOfPhase,
    /// A message type the receiver's role never expects (the model's
    /// `FilterNonexistentMessage`).
    UnexpectedMessage,
    /// A message on a connection this server no longer considers its own.
    MessageFromStranger,
    /// A heartbeat from a server that is neither this follower's leader nor a learner.
    HeartbeatFromStranger,
    /// The end of a connection this server no longer considers its own.
    DisconnectOfStranger,
    /// An election notification from a server outside the ensemble.
    NotificationFromStranger,
    /// A snapshot that is stale or covers transactions not yet committed and durable here.
    SnapshotNotAdoptable,
    /// A client write offered when this server cannot propose.
    ProposalRefused,
    /// An epoch at the top of the 32-bit range (a FOLLOWERINFO whose successor epoch does
    /// not exist, or a leader whose own epoch space is exhausted): refused, never a panic.
    EpochOverflow,
    /// A LOOKING notification of a recovering server (§7.1): its vote is neither adopted
    /// nor counted.
    VoteOfRecovering,
    /// An ACK of a follower that is recovering (§7.1): not counted.
    AckOfRecovering,
    /// An election notification of an observer (§10.2), or a LOOKING one reaching an
    /// observer: never adopted nor counted (an observer learns the leader from FOLLOWING and
    /// LEADING notifications; a settled voter answers an observer with its own).
    VoteOfObserver,
    /// An ACK from an observer (§10.2): an observer never counts towards a quorum, so its
    /// ACKs are dropped.
    AckOfObserver,
}

impl Ignored {
    /// Every reason, in counter order.
    pub const ALL: [Ignored; 19] = [
        Ignored::OutOfOrderProposal,
        Ignored::CommitWrongZxid,
        Ignored::AckUnknownZxid,
        Ignored::AckAlreadyCommitted,
        Ignored::AckNewLeaderWrongZxid,
        Ignored::SyncMessageMisfit,
        Ignored::OutOfPhase,
        Ignored::UnexpectedMessage,
        Ignored::MessageFromStranger,
        Ignored::HeartbeatFromStranger,
        Ignored::DisconnectOfStranger,
        Ignored::NotificationFromStranger,
        Ignored::SnapshotNotAdoptable,
        Ignored::ProposalRefused,
        Ignored::EpochOverflow,
        Ignored::VoteOfRecovering,
        Ignored::AckOfRecovering,
        Ignored::VoteOfObserver,
        Ignored::AckOfObserver,
    ];

    /// The path's name, as logs and metrics show it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Ignored::OutOfOrderProposal => "ignore_out_of_order_proposal",
            Ignored::CommitWrongZxid => "ignore_commit_wrong_zxid",
            Ignored::AckUnknownZxid => "ignore_ack_unknown_zxid",
            Ignored::AckAlreadyCommitted => "ignore_ack_already_committed",
            Ignored::AckNewLeaderWrongZxid => "ignore_ack_new_leader_wrong_zxid",
            Ignored::SyncMessageMisfit => "ignore_sync_message_misfit",
            Ignored::OutOfPhase => "ignore_out_of_phase",
            Ignored::UnexpectedMessage => "ignore_unexpected_message",
            Ignored::MessageFromStranger => "ignore_message_from_stranger",
            Ignored::HeartbeatFromStranger => "ignore_heartbeat_from_stranger",
            Ignored::DisconnectOfStranger => "ignore_disconnect_of_stranger",
            Ignored::NotificationFromStranger => "ignore_notification_from_stranger",
            Ignored::SnapshotNotAdoptable => "ignore_snapshot_not_adoptable",
            Ignored::ProposalRefused => "ignore_proposal_refused",
            Ignored::EpochOverflow => "ignore_epoch_overflow",
            Ignored::VoteOfRecovering => "ignore_vote_of_recovering",
            Ignored::AckOfRecovering => "ignore_ack_of_recovering",
            Ignored::VoteOfObserver => "ignore_vote_of_observer",
            Ignored::AckOfObserver => "ignore_ack_of_observer",
        }
    }

    fn index(self) -> usize {
        Ignored::ALL
            .iter()
            .position(|i| *i == self)
            .unwrap_or_default()
    }
}

/// How many inputs the core ignored, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoredCounts([u64; Ignored::ALL.len()]);

impl IgnoredCounts {
    /// Counts one.
    pub(crate) fn count(&mut self, why: Ignored) {
        self.0[why.index()] += 1;
    }

    /// The count of one reason.
    #[must_use]
    pub fn get(&self, why: Ignored) -> u64 {
        self.0[why.index()]
    }

    /// Every reason with its count, in [`Ignored::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Ignored, u64)> + '_ {
        Ignored::ALL.iter().map(|i| (*i, self.get(*i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_an_ignore_name() {
        let mut c = IgnoredCounts::default();
        for (k, why) in Ignored::ALL.iter().enumerate() {
            assert_eq!(why.index(), k);
            assert!(why.name().starts_with("ignore_"));
            c.count(*why);
        }
        c.count(Ignored::AckUnknownZxid);
        assert_eq!(c.get(Ignored::AckUnknownZxid), 2);
        assert_eq!(c.iter().map(|(_, n)| n).sum::<u64>(), 20);
    }
}
