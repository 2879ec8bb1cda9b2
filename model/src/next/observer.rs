//! Observers (`spec/PROTOCOL.md` §10.2): learners that sync like followers but never vote or
//! acknowledge, and learn each committed transaction from INFORM. The leader side (quorums of
//! voters only, no PROPOSAL or COMMIT to observers, INFORM at commit) lives with the phase
//! handlers it changes; this file holds the observer's own handler.

use super::ZabModel;
use crate::state::{ModelState, NewLeaderStage, Sid, Violation};
use zab_spec::sync::is_next_zxid;
use zab_spec::{Payload, QuorumMessage, ZabState};

impl<P: Payload> ZabModel<P> {
    /// TLA+: `ObserverProcessINFORM(i, j)` (ZooKeeper `Observer.processPacket` case INFORM,
    /// and `Learner.syncWithLeader` case INFORM before UPTODATE).
    ///
    /// Guard: `i` is an observer of `j`, in SYNCHRONIZATION or BROADCAST. In BROADCAST the
    /// transaction is appended (the log thread makes it durable) and delivered at once: it is
    /// committed. While synchronizing it joins the sync packets (before NEWLEADER) or the
    /// history (after), and the sync point moves past it. A zxid that does not directly
    /// follow is flagged (`proposalInconsistent`); an INFORM while something before it is
    /// not yet committed is flagged (`commitInconsistent`).
    pub(crate) fn observer_process_inform(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::Inform(txn)) = s.head(j, i) else {
            return None;
        };
        let me = s.srv(i);
        let f = me.follower.as_ref()?;
        if !s.is_observer(i)
            || f.leader != j
            || f.nl_stage == NewLeaderStage::EpochUpdated
            || !matches!(
                me.zab_state,
                ZabState::Synchronization | ZabState::Broadcast
            )
        {
            return None;
        }
        let txn = txn.clone();
        let mut t = s.clone();
        t.pop(j, i);
        let srv = t.srv_mut(i);
        if me.zab_state == ZabState::Broadcast {
            if !is_next_zxid(srv.last_zxid(), txn.zxid) {
                t.ghost.violations.set(Violation::ProposalInconsistent);
            } else if srv.last_committed as usize != srv.history.len() {
                t.ghost.violations.set(Violation::CommitInconsistent);
            } else {
                srv.history.push(txn);
                srv.last_committed += 1;
            }
            return Some(t);
        }
        let history_last = srv.last_zxid();
        let len = srv.history.len();
        let f = srv.follower.as_mut()?;
        let last = f.packets.last().map_or(history_last, |p| p.zxid);
        if !is_next_zxid(last, txn.zxid) {
            t.ghost.violations.set(Violation::ProposalInconsistent);
        } else if f.sync_committed as usize != len + f.packets.len() {
            t.ghost.violations.set(Violation::CommitInconsistent);
        } else {
            f.sync_committed += 1;
            if f.nl_stage == NewLeaderStage::Waiting {
                f.packets.push(txn);
            } else {
                srv.history.push(txn);
            }
        }
        Some(t)
    }
}
