//! Phase 2, synchronization: the leader chooses DIFF, TRUNC or SNAP from the follower's last
//! zxid, streams the missing transactions and NEWLEADER; the follower makes them and the new
//! epoch durable (in that order) before it acknowledges; a quorum of acknowledgements
//! establishes the leader, which sends UPTODATE. `spec/PROTOCOL.md` §5.

use super::ZabModel;
use crate::config::Bug;
use crate::state::{Idx, ModelState, NewLeaderStage, Sid, Violation};
use zab_spec::sync::{is_next_zxid, plan_sync};
use zab_spec::{Payload, QuorumMessage, ServerState, SyncMode, Txn, ZabState, Zxid};

impl<P: Payload> ZabModel<P> {
    /// TLA+: `LeaderSyncFollower(i, j)` (ZooKeeper `LearnerHandler.syncFollower` +
    /// `Leader.startForwarding`).
    ///
    /// Guard: the leader is established (a quorum of ACKEPOCHs) and `j`'s ACKEPOCH is
    /// recorded but not yet synced. Effect: one atomic write to `j`'s channel of the sync
    /// message, PROPOSAL+COMMIT for each committed transaction after the sync point,
    /// PROPOSAL for each outstanding one, and NEWLEADER; `j` joins `forwarding`, so it gets
    /// every later PROPOSAL and COMMIT.
    pub(crate) fn leader_sync_follower(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if i == j {
            return None;
        }
        let l = me.leader.as_ref()?;
        let acks = l.epoch_acks();
        if !(acks.contains(i) && acks.is_quorum(s.n()) && l.learners.contains(j)) {
            return None;
        }
        let peer = l.electing[usize::from(j)]?.peer_last_zxid?;
        let history = &me.history;
        let committed = if me.zab_state == ZabState::Broadcast {
            me.last_committed as usize
        } else {
            history.len()
        };
        let start = me.last_snapshot as usize;
        let zxids: Vec<Zxid> = history[start..].iter().map(|t| t.zxid).collect();
        let plan = plan_sync(
            me.zxid_at(start),
            &zxids,
            me.zxid_at(committed),
            me.zxid_at(me.last_committed as usize),
            peer,
        );
        // Back from zxids to positions in the model's whole history.
        let at = |z: Zxid| {
            me.index_of(z)
                .expect("a sync point is in the leader's history")
        };
        let (base, committed_point) = (at(plan.base), at(plan.committed));
        let mut t = s.clone();
        let sync_msg = match plan.mode {
            SyncMode::Diff => QuorumMessage::Diff {
                last_zxid: plan.committed,
            },
            SyncMode::Trunc => QuorumMessage::Trunc {
                truncate_to: plan.base,
            },
            SyncMode::Snap => QuorumMessage::Snap {
                last_zxid: plan.base,
                snapshot: history[..base].to_vec(),
            },
        };
        t.send(i, j, sync_msg);
        debug_assert!(committed_point <= base);
        for (k, txn) in history.iter().enumerate().skip(base) {
            t.send(i, j, QuorumMessage::Proposal(txn.clone()));
            if k < committed {
                t.send(i, j, QuorumMessage::Commit { zxid: txn.zxid });
            }
        }
        t.send(
            i,
            j,
            QuorumMessage::NewLeader {
                zxid: Zxid::epoch_start(me.accepted_epoch),
            },
        );
        let lv = t.srv_mut(i).leader.as_mut()?;
        lv.forwarding = lv.forwarding.with(j);
        if let Some(e) = lv.electing[usize::from(j)].as_mut() {
            e.peer_last_zxid = None;
        }
        Some(t)
    }

    /// The follower guard shared by the sync-phase handlers: following `j`, and not
    /// in the middle of NEWLEADER (`--bug zk4643` only).
    fn syncing_follower_of(&self, s: &ModelState<P>, i: Sid, j: Sid) -> bool {
        let me = s.srv(i);
        me.follower
            .as_ref()
            .is_some_and(|f| f.leader == j && f.nl_stage != NewLeaderStage::EpochUpdated)
    }

    /// TLA+: `FollowerProcessSyncMessage(i, j)` (ZooKeeper `Learner.syncWithLeader`).
    ///
    /// DIFF keeps the log and marks it committed up to the given zxid; TRUNC cuts it back to
    /// the given zxid on disk (refused, and flagged, if that would cut a delivered
    /// transaction); SNAP replaces it with the leader's snapshot (of committed transactions
    /// only), written to disk before anything else is processed, and the snapshot point is the
    /// follower's new compaction point. The sync point ("committed so far") becomes the DIFF zxid,
    /// or the end of the resulting log. Removing a transaction of `committedLog` is flagged
    /// (`CommittedLogDurability`).
    pub(crate) fn follower_process_sync_message(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let m = s.head(j, i)?;
        if !matches!(
            m,
            QuorumMessage::Diff { .. } | QuorumMessage::Trunc { .. } | QuorumMessage::Snap { .. }
        ) || !self.syncing_follower_of(s, i, j)
        {
            return None;
        }
        let m = m.clone();
        let mut t = s.clone();
        t.pop(j, i);
        if s.srv(i).zab_state != ZabState::Synchronization {
            t.ghost.violations.set(Violation::StateInconsistent);
            return Some(t);
        }
        let committed_log = &s.ghost.committed_log;
        let loses_committed = |removed: &[Txn<P>], kept: &[Txn<P>]| {
            removed
                .iter()
                .any(|x| committed_log.contains(x) && !kept.contains(x))
        };
        let srv = t.srv_mut(i);
        let (mode, base) = match m {
            QuorumMessage::Diff { last_zxid } => match srv.index_of(last_zxid) {
                Some(k) => (SyncMode::Diff, k),
                None => {
                    t.ghost.violations.set(Violation::ProposalInconsistent);
                    return Some(t);
                }
            },
            QuorumMessage::Trunc { truncate_to } => {
                let Some(k) = srv.index_of(truncate_to) else {
                    t.ghost.violations.set(Violation::ProposalInconsistent);
                    return Some(t);
                };
                if k < (srv.last_committed as usize) {
                    t.ghost.violations.set(Violation::ProposalInconsistent);
                    return Some(t);
                }
                let lost = loses_committed(&srv.history[k..], &srv.history[..k]);
                srv.history.truncate(k);
                srv.persisted = k as Idx;
                srv.last_snapshot = srv.last_snapshot.min(k as Idx);
                if lost {
                    t.ghost.violations.set(Violation::CommittedLogTruncated);
                }
                (SyncMode::Trunc, k)
            }
            QuorumMessage::Snap { snapshot, .. } => {
                let lost = loses_committed(&srv.history, &snapshot);
                let len = snapshot.len();
                srv.history.replace(snapshot);
                srv.persisted = len as Idx;
                srv.last_committed = len as Idx;
                srv.last_snapshot = len as Idx;
                srv.stale_last_processed = None;
                if lost {
                    t.ghost.violations.set(Violation::CommittedLogTruncated);
                }
                (SyncMode::Snap, len)
            }
            _ => return None,
        };
        let srv = t.srv_mut(i);
        if mode == SyncMode::Trunc {
            srv.stale_last_processed = None;
        }
        let f = srv.follower.as_mut()?;
        f.sync_mode = Some(mode);
        f.sync_committed = base as Idx;
        Some(t)
    }

    /// TLA+: `FollowerProcessPROPOSALInSync(i, j)`.
    ///
    /// Before NEWLEADER the transaction joins the volatile sync packets; after NEWLEADER it
    /// is accepted like a broadcast proposal (logged and acknowledged by the log thread).
    /// A zxid that does not directly follow the last one is flagged.
    pub(crate) fn follower_process_proposal_in_sync(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::Proposal(txn)) = s.head(j, i) else {
            return None;
        };
        if !self.syncing_follower_of(s, i, j) || s.srv(i).zab_state != ZabState::Synchronization {
            return None;
        }
        let txn = txn.clone();
        let mut t = s.clone();
        t.pop(j, i);
        let srv = t.srv_mut(i);
        let history_last = srv.last_zxid();
        let f = srv.follower.as_mut()?;
        let last = f.packets.last().map_or(history_last, |p| p.zxid);
        if !is_next_zxid(last, txn.zxid) {
            t.ghost.violations.set(Violation::ProposalInconsistent);
            return Some(t);
        }
        if f.nl_stage == NewLeaderStage::Waiting {
            f.packets.push(txn);
        } else {
            srv.history.push(txn);
        }
        Some(t)
    }

    /// TLA+: `FollowerProcessCOMMITInSync(i, j)`: the next pending synced transaction is
    /// committed (delivered at UPTODATE). A COMMIT for anything else is flagged; so is one
    /// after NEWLEADER under `--bug zk4394`, which dropped the pending packets.
    pub(crate) fn follower_process_commit_in_sync(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::Commit { zxid }) = s.head(j, i) else {
            return None;
        };
        if !self.syncing_follower_of(s, i, j) || s.srv(i).zab_state != ZabState::Synchronization {
            return None;
        }
        let zxid = *zxid;
        let mut t = s.clone();
        t.pop(j, i);
        let srv = t.srv_mut(i);
        let f = srv.follower.as_mut()?;
        let next = f.sync_committed as usize;
        let pending = srv.history.iter().chain(f.packets.iter()).nth(next);
        let dropped = self.cfg.has(Bug::Zk4394) && f.nl_stage == NewLeaderStage::Done;
        match pending {
            Some(p) if p.zxid == zxid && !dropped => f.sync_committed += 1,
            _ => t.ghost.violations.set(Violation::CommitInconsistent),
        }
        Some(t)
    }

    /// TLA+: `FollowerProcessNEWLEADER(i, j)`.
    ///
    /// The order that fixes ZOOKEEPER-4646/4643 (PR #2152/#2028): the synced packets are
    /// logged and fsynced, then the new currentEpoch is written, then the ACK of NEWLEADER
    /// is sent, followed by an ACK for each synced transaction that is not yet committed.
    /// `--bug zk4646` hands the packets to the asynchronous log thread and acknowledges at
    /// once; `--bug zk4643` writes the epoch first and the packets in a later step.
    pub(crate) fn follower_process_new_leader(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::NewLeader { zxid }) = s.head(j, i) else {
            return None;
        };
        let me = s.srv(i);
        if !self.syncing_follower_of(s, i, j)
            || me.follower.as_ref()?.nl_stage != NewLeaderStage::Waiting
        {
            return None;
        }
        let zxid = *zxid;
        let mut t = s.clone();
        t.pop(j, i);
        if me.zab_state != ZabState::Synchronization {
            t.ghost.violations.set(Violation::StateInconsistent);
            return Some(t);
        }
        let srv = t.srv_mut(i);
        srv.current_epoch = srv.accepted_epoch;
        match self.cfg.bug {
            Some(Bug::Zk4643) => {
                srv.follower.as_mut()?.nl_stage = NewLeaderStage::EpochUpdated;
            }
            Some(Bug::Zk4646) => {
                let f = srv.follower.as_mut()?;
                f.nl_stage = NewLeaderStage::Done;
                let packets = std::mem::take(&mut f.packets);
                srv.history.extend(packets);
                t.send(i, j, QuorumMessage::AckNewLeader { zxid });
            }
            _ => self.log_sync_packets_and_ack(&mut t, i, j, zxid),
        }
        Some(t)
    }

    /// TLA+: `FollowerProcessNEWLEADERAfterCurrentEpochUpdated(i)`: under `--bug zk4643`, the
    /// second half of NEWLEADER: the packets are logged and NEWLEADER is acknowledged.
    pub(crate) fn follower_process_new_leader_after_current_epoch_updated(
        &self,
        s: &ModelState<P>,
        i: Sid,
    ) -> Option<ModelState<P>> {
        let me = s.srv(i);
        let f = me.follower.as_ref()?;
        if f.nl_stage != NewLeaderStage::EpochUpdated {
            return None;
        }
        let j = f.leader;
        let mut t = s.clone();
        self.log_sync_packets_and_ack(&mut t, i, j, Zxid::epoch_start(me.accepted_epoch));
        Some(t)
    }

    /// Logs the sync packets durably, then sends ACK(NEWLEADER) and an ACK for every synced
    /// transaction beyond the sync point.
    fn log_sync_packets_and_ack(&self, t: &mut ModelState<P>, i: Sid, j: Sid, zxid: Zxid) {
        let srv = t.srv_mut(i);
        let Some(f) = srv.follower.as_mut() else {
            return;
        };
        f.nl_stage = NewLeaderStage::Done;
        let packets = std::mem::take(&mut f.packets);
        let from = f.sync_committed as usize;
        srv.history.extend(packets);
        srv.persisted = srv.history.len() as Idx;
        let acks: Vec<Zxid> = srv.history.iter().skip(from).map(|x| x.zxid).collect();
        t.send(i, j, QuorumMessage::AckNewLeader { zxid });
        for z in acks {
            t.send(i, j, QuorumMessage::Ack { zxid: z });
        }
    }

    /// TLA+: `LeaderProcessACKLD(i, j)` (ZooKeeper `Leader.waitForNewLeaderAck`).
    ///
    /// Before establishment, a matching ACK of NEWLEADER is counted; a quorum with the leader
    /// commits the leader's whole history, enters BROADCAST and sends UPTODATE to every
    /// counted follower still connected. After it, a late joiner just gets UPTODATE. An ACK
    /// of another epoch's NEWLEADER is flagged.
    pub(crate) fn leader_process_ack_ld(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::AckNewLeader { zxid }) = s.head(j, i) else {
            return None;
        };
        let me = s.srv(i);
        let l = me.leader.as_ref()?;
        if !l.learners.contains(j) {
            return None;
        }
        let n = s.n();
        let zxid = *zxid;
        let mut t = s.clone();
        t.pop(j, i);
        let formed = l.ackld_recv.contains(i) && l.ackld_recv.is_quorum(n);
        if formed {
            t.send(i, j, QuorumMessage::UpToDate);
            if self.cfg.has(Bug::PaperProposeRecipients) || self.cfg.has(Bug::PaperCommitldZxid) {
                let lv = t.srv_mut(i).leader.as_mut()?;
                lv.ackld_recv = lv.ackld_recv.with(j);
                lv.ackld_live = lv.ackld_live.with(j);
            }
            return Some(t);
        }
        if zxid != Zxid::epoch_start(me.accepted_epoch) {
            t.ghost.violations.set(Violation::AckInconsistent);
            return Some(t);
        }
        let counts = self.counts(s, j);
        let lv = t.srv_mut(i).leader.as_mut()?;
        if counts {
            lv.ackld_recv = lv.ackld_recv.with(j);
        }
        // A recovering follower gets UPTODATE on establishment but does not count towards it.
        lv.ackld_live = lv.ackld_live.with(j);
        let (recv, live) = (lv.ackld_recv, lv.ackld_live);
        if recv.contains(i) && recv.is_quorum(n) {
            let srv = t.srv_mut(i);
            srv.zab_state = ZabState::Broadcast;
            srv.last_committed = srv.history.len() as Idx;
            srv.stale_last_processed = None;
            if let Some(lv) = srv.leader.as_mut() {
                lv.ack_sets.clear();
                lv.send_counter = if self.cfg.has(Bug::PaperRedundantPropose) {
                    srv.history.len() as Idx
                } else {
                    0
                };
            }
            Self::update_committed_log(&mut t, i);
            for k in live.without(i).iter() {
                t.send(i, k, QuorumMessage::UpToDate);
            }
        }
        Some(t)
    }

    /// TLA+: `FollowerProcessUPTODATE(i, j)`: the follower delivers everything up to the sync
    /// point and starts BROADCAST. UPTODATE before NEWLEADER, or a sync point behind what the
    /// follower already delivered, is flagged.
    pub(crate) fn follower_process_up_to_date(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::UpToDate) = s.head(j, i) else {
            return None;
        };
        if !self.syncing_follower_of(s, i, j) {
            return None;
        }
        let me = s.srv(i);
        let f = me.follower.as_ref()?;
        let mut t = s.clone();
        t.pop(j, i);
        if me.zab_state != ZabState::Synchronization || f.nl_stage != NewLeaderStage::Done {
            t.ghost.violations.set(Violation::StateInconsistent);
            return Some(t);
        }
        if f.sync_committed < me.last_committed {
            t.ghost.violations.set(Violation::CommitInconsistent);
        }
        let srv = t.srv_mut(i);
        srv.zab_state = ZabState::Broadcast;
        srv.stale_last_processed = None;
        // Restored by a leader a quorum of intact servers established (PROTOCOL.md §7.1).
        srv.recovering = false;
        let fv = srv.follower.as_mut()?;
        srv.last_committed = fv.sync_committed;
        fv.sync_mode = None;
        fv.sync_committed = 0;
        debug_assert_eq!(srv.state, ServerState::Following);
        Some(t)
    }
}
