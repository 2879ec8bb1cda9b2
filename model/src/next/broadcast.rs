//! Phase 3, broadcast: a client request becomes a PROPOSAL, each server's log thread makes
//! it durable and acknowledges it, a quorum of ACKs commits it, COMMIT delivers it.
//! Snapshots compact the log. `spec/PROTOCOL.md` §6.

use super::ZabModel;
use crate::config::Bug;
use crate::state::{Idx, ModelState, NewLeaderStage, Proposal, Sid, Violation};
use zab_spec::sync::is_next_zxid;
use zab_spec::{Payload, QuorumMessage, ServerState, Txn, ZabState};

impl<P: Payload> ZabModel<P> {
    /// TLA+: `LeaderProcessRequest(i, v)` (ZooKeeper `ProposalRequestProcessor` +
    /// `Leader.propose`).
    ///
    /// Guard: `i` leads in BROADCAST and fewer than `--txns` requests were proposed so far.
    /// Effect: the transaction gets the next zxid of `i`'s epoch, joins `i`'s history (in
    /// memory; `i`'s log thread makes it durable) and goes out as PROPOSAL to the synced
    /// followers. Under `--bug paper-redundant-propose` the PROPOSAL leaves in a later step.
    pub(crate) fn leader_process_request(
        &self,
        s: &ModelState<P>,
        i: Sid,
        payload: P,
    ) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if me.state != ServerState::Leading || me.zab_state != ZabState::Broadcast {
            return None;
        }
        if !self.request_budget_left(s) {
            return None;
        }
        let txn = Txn {
            zxid: me.last_zxid().next_in(me.current_epoch),
            payload,
        };
        let mut t = s.clone();
        let epoch = me.accepted_epoch;
        t.ghost.proposals.insert(Proposal {
            source: i,
            epoch,
            txn: txn.clone(),
        });
        let srv = t.srv_mut(i);
        srv.history.push(txn.clone());
        srv.leader
            .as_mut()?
            .ack_sets
            .push(crate::state::ServerSet::EMPTY);
        if !self.cfg.has(Bug::PaperRedundantPropose) {
            for k in self.recipients(&t, i, false).iter() {
                t.send(i, k, QuorumMessage::Proposal(txn.clone()));
            }
        }
        Some(t)
    }

    fn request_budget_left(&self, s: &ModelState<P>) -> bool {
        self.cfg
            .txns
            .is_none_or(|t| s.ghost.proposals.len() < usize::from(t))
    }

    /// TLA+: `LeaderBroadcastPROPOSAL(i)`: under `--bug paper-redundant-propose`, the leader
    /// broadcasts the next logged-but-unsent proposal to whoever is synced *now*.
    pub(crate) fn leader_broadcast_proposal(
        &self,
        s: &ModelState<P>,
        i: Sid,
    ) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if !self.cfg.has(Bug::PaperRedundantPropose) || me.zab_state != ZabState::Broadcast {
            return None;
        }
        let l = me.leader.as_ref()?;
        let k = l.send_counter as usize;
        let txn = me.history.get(k)?.clone();
        let mut t = s.clone();
        t.srv_mut(i).leader.as_mut()?.send_counter += 1;
        for f in self.recipients(&t, i, false).iter() {
            t.send(i, f, QuorumMessage::Proposal(txn.clone()));
        }
        Some(t)
    }

    /// TLA+: `SyncProcessorLogRequest(i)` (ZooKeeper `SyncRequestProcessor` then
    /// `SendAckRequestProcessor` / `AckRequestProcessor`).
    ///
    /// The next accepted transaction becomes durable; then a follower past NEWLEADER sends
    /// ACK for it, and a leader counts its own acknowledgement (which may commit it).
    pub(crate) fn sync_processor_log_request(
        &self,
        s: &ModelState<P>,
        i: Sid,
    ) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if (me.persisted as usize) >= me.history.len() {
            return None;
        }
        let mut t = s.clone();
        let srv = t.srv_mut(i);
        srv.persisted += 1;
        let k = srv.persisted as usize;
        let zxid = srv.history[k - 1].zxid;
        match srv.state {
            ServerState::Leading if srv.zab_state == ZabState::Broadcast => {
                let lc = srv.last_committed as usize;
                if k > lc {
                    let lv = srv.leader.as_mut()?;
                    lv.ack_sets[k - lc - 1] = lv.ack_sets[k - lc - 1].with(i);
                    self.leader_try_to_commit(&mut t, i, k);
                }
            }
            // An observer logs but never acknowledges (PROTOCOL.md §10.2).
            ServerState::Following if !s.is_observer(i) => {
                let f = srv.follower.as_ref()?;
                if f.nl_stage == NewLeaderStage::Done {
                    let leader = f.leader;
                    t.send(i, leader, QuorumMessage::Ack { zxid });
                }
            }
            _ => {}
        }
        Some(t)
    }

    /// TLA+: `FollowerProcessPROPOSAL(i, j)` (ZooKeeper `Follower.processPacket` →
    /// `FollowerZooKeeperServer.logRequest`): the transaction is accepted in memory and
    /// queued for the log thread. A zxid that does not directly follow is flagged.
    pub(crate) fn follower_process_proposal(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::Proposal(txn)) = s.head(j, i) else {
            return None;
        };
        let me = s.srv(i);
        if me.follower.as_ref()?.leader != j || me.zab_state != ZabState::Broadcast {
            return None;
        }
        let txn = txn.clone();
        let mut t = s.clone();
        t.pop(j, i);
        if is_next_zxid(me.last_zxid(), txn.zxid) {
            t.srv_mut(i).history.push(txn);
        } else {
            t.ghost.violations.set(Violation::ProposalInconsistent);
        }
        Some(t)
    }

    /// TLA+: `LeaderProcessACK(i, j)` (ZooKeeper `Leader.processAck`): ACKs of committed
    /// transactions are ignored, ACKs of unknown ones flagged, the rest counted. Before
    /// establishment, an ACK from a learner whose ACK of NEWLEADER was not processed is
    /// flagged: ZooKeeper reads it as that ACK of NEWLEADER.
    pub(crate) fn leader_process_ack(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::Ack { zxid }) = s.head(j, i) else {
            return None;
        };
        let zxid = *zxid;
        let me = s.srv(i);
        if !me.leader.as_ref()?.learners.contains(j) {
            return None;
        }
        let committed = if me.zab_state == ZabState::Broadcast {
            me.last_committed as usize
        } else {
            me.history.len()
        };
        let l = me.leader.as_ref()?;
        let mut t = s.clone();
        t.pop(j, i);
        if me.zab_state != ZabState::Broadcast && !l.ackld_live.contains(j) {
            // ZooKeeper's LearnerHandler takes the first ACK after the sync as the ACK of
            // NEWLEADER (`waitForNewLeaderAck`): another zxid is an inconsistent ACK
            // (ZOOKEEPER-4685; unreachable when the ACK of NEWLEADER goes first).
            t.ghost.violations.set(Violation::AckInconsistent);
            return Some(t);
        }
        if zxid <= me.zxid_at(committed) || !self.counts(s, j) || s.is_observer(j) {
            return Some(t);
        }
        match me.index_of(zxid) {
            Some(k) if k > committed => {
                let lv = t.srv_mut(i).leader.as_mut()?;
                lv.ack_sets[k - committed - 1] = lv.ack_sets[k - committed - 1].with(j);
                self.leader_try_to_commit(&mut t, i, k);
            }
            _ => t.ghost.violations.set(Violation::AckInconsistent),
        }
        Some(t)
    }

    /// ZooKeeper `Leader.tryToCommit`: the `k`-th transaction commits when it is the next one
    /// and a quorum (of voters) acknowledged it; COMMIT goes to the synced followers, INFORM
    /// with the transaction to the synced observers.
    pub(crate) fn leader_try_to_commit(&self, t: &mut ModelState<P>, i: Sid, k: usize) {
        let quorum = t
            .srv(i)
            .leader
            .as_ref()
            .and_then(|l| l.ack_sets.first())
            .is_some_and(|a| t.is_quorum(*a));
        let srv = t.srv_mut(i);
        let lc = srv.last_committed as usize;
        let Some(lv) = srv.leader.as_mut() else {
            return;
        };
        if k != lc + 1 || !quorum {
            return;
        }
        lv.ack_sets.remove(0);
        srv.last_committed += 1;
        let txn = srv.history[k - 1].clone();
        Self::update_committed_log(t, i);
        for f in self.recipients(t, i, true).iter() {
            t.send(i, f, QuorumMessage::Commit { zxid: txn.zxid });
        }
        for o in Self::informees(t, i).iter() {
            t.send(i, o, QuorumMessage::Inform(txn.clone()));
        }
    }

    /// TLA+: `FollowerProcessCOMMIT(i, j)`: delivers the next pending transaction; a COMMIT
    /// for anything else (or with nothing pending) is flagged.
    pub(crate) fn follower_process_commit(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::Commit { zxid }) = s.head(j, i) else {
            return None;
        };
        let zxid = *zxid;
        let me = s.srv(i);
        if me.follower.as_ref()?.leader != j || me.zab_state != ZabState::Broadcast {
            return None;
        }
        let mut t = s.clone();
        t.pop(j, i);
        let next = me.last_committed as usize;
        match me.history.get(next) {
            Some(p) if p.zxid == zxid => t.srv_mut(i).last_committed += 1,
            _ => t.ghost.violations.set(Violation::CommitInconsistent),
        }
        Some(t)
    }

    /// TLA+: `TakeSnapshot(i, k)`: a snapshot of the first `k` history items, all committed
    /// and durable, becomes the server's recovery point; its log before that point is
    /// compacted (bounded by `--snapshots`). The server writes snapshots in the background, in
    /// any phase, so `k` may lie anywhere after the previous snapshot.
    pub(crate) fn take_snapshot(&self, s: &ModelState<P>, i: Sid, k: Idx) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if k <= me.last_snapshot || k > me.last_committed.min(me.persisted) {
            return None;
        }
        let mut t = s.clone();
        if !super::spend(self.cfg.snapshots, &mut t.ghost.snapshots) {
            return None;
        }
        t.srv_mut(i).last_snapshot = k;
        Some(t)
    }
}
