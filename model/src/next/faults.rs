//! The environment: partitions, crashes and restarts, and the check that no message arrives
//! where no handler expects it. `spec/PROTOCOL.md` §7.

use super::ZabModel;
use crate::state::{ModelState, Sid, Violation};
use zab_spec::{Payload, ServerState, ZabState};

impl<P: Payload> ZabModel<P> {
    /// TLA+: `PartitionStart(i, j)`: the link between `i < j` is cut (bounded by
    /// `--partitions`). A leader/follower connection over it breaks: the follower goes
    /// LOOKING, the leader drops it (and steps down without a quorum).
    pub(crate) fn partition_start(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        if i >= j || s.partitioned(i, j) {
            return None;
        }
        let mut t = s.clone();
        if !super::spend(self.cfg.partitions, &mut t.ghost.partitions) {
            return None;
        }
        t.set_partitioned(i, j, true);
        self.break_connection(&mut t, i, j);
        Some(t)
    }

    /// Breaks the leader/follower connection between `i` and `j`, if there is one.
    fn break_connection(&self, t: &mut ModelState<P>, i: Sid, j: Sid) {
        let follows = |t: &ModelState<P>, f: Sid, l: Sid| {
            t.srv(f).follower.as_ref().is_some_and(|fv| fv.leader == l)
        };
        if follows(t, i, j) {
            self.follower_leaves(t, i, j);
        } else if follows(t, j, i) {
            self.follower_leaves(t, j, i);
        }
    }

    /// TLA+: `PartitionRecover(i, j)`: the link between `i < j` heals.
    pub(crate) fn partition_recover(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        if i >= j || !s.partitioned(i, j) {
            return None;
        }
        let mut t = s.clone();
        t.set_partitioned(i, j, false);
        Some(t)
    }

    /// TLA+: `NodeCrash(i)`: `i` crashes and restarts (bounded by `--crashes`).
    ///
    /// The connections of `i` break (its followers go LOOKING; its leader drops it). Its
    /// volatile state is gone: the history is cut back to its durable prefix, the delivered
    /// prefix back to its snapshot, sync packets and roles are lost. Durable: acceptedEpoch,
    /// currentEpoch, the persisted history, the snapshot. It restarts LOOKING at once: a
    /// server that stays down is indistinguishable from a LOOKING one that takes no step,
    /// so separate down states would only repeat behaviours.
    pub(crate) fn node_crash(&self, s: &ModelState<P>, i: Sid) -> Option<ModelState<P>> {
        let me = s.srv(i);
        let mut t = s.clone();
        if !super::spend(self.cfg.crashes, &mut t.ghost.crashes) {
            return None;
        }
        t.ghost.restarted = t.ghost.restarted.with(i);
        match me.state {
            ServerState::Leading => self.leader_shutdown(&mut t, i, true),
            ServerState::Following => {
                if let Some(l) = me.follower.as_ref().map(|f| f.leader) {
                    self.remove_learner(&mut t, l, i);
                }
            }
            ServerState::Looking => {}
        }
        for j in 0..t.n() {
            t.clean(i, j);
        }
        let srv = t.srv_mut(i);
        srv.state = ServerState::Looking;
        srv.zab_state = ZabState::Election;
        srv.leader = None;
        srv.follower = None;
        srv.history.truncate(srv.persisted as usize);
        srv.last_committed = srv.last_snapshot;
        srv.stale_last_processed = None;
        Some(t)
    }

    /// TLA+: `FilterNonexistentMessage(i, j)`: the head of `j → i` is a message `i` has no
    /// handler for in its role; it is dropped and flagged. Never enabled in a correct run.
    pub(crate) fn filter_nonexistent_message(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let m = s.head(j, i)?;
        if self.handles(s, i, j, m) {
            return None;
        }
        let mut t = s.clone();
        t.pop(j, i);
        t.ghost.violations.set(Violation::MessageIllegal);
        Some(t)
    }
}
