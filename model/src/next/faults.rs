//! The environment: partitions, crashes and restarts, storage faults (a restart with lost or
//! damaged durable state), and the check that no message arrives where no handler expects
//! it. `spec/PROTOCOL.md` §7.

use super::ZabModel;
use crate::config::Bug;
use crate::state::{Idx, ModelState, ServerVars, Sid, Violation};
use zab_spec::{Epoch, Payload, ServerState, ZabState};

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
        let mut t = s.clone();
        if !super::spend(self.cfg.crashes, &mut t.ghost.crashes) {
            return None;
        }
        self.crash_restart(&mut t, i);
        Some(t)
    }

    /// The part of `NodeCrash(i)` that the storage faults share: connections break, volatile
    /// state is lost, `i` restarts LOOKING with its durable state.
    fn crash_restart(&self, t: &mut ModelState<P>, i: Sid) {
        t.ghost.restarted = t.ghost.restarted.with(i);
        let (state, leader) = {
            let me = t.srv(i);
            (me.state, me.follower.as_ref().map(|f| f.leader))
        };
        match state {
            ServerState::Leading => self.leader_shutdown(t, i, true),
            ServerState::Following => {
                if let Some(l) = leader {
                    self.remove_learner(t, l, i);
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
    }

    /// A storage fault at `i`: spends the `--storage-faults` budget, crashes and restarts
    /// `i`, and (unless `--bug no-storage-recovery`) `i` detects the damage and enters the
    /// recovering state. `damage` changes the durable state the server restarts with.
    fn storage_fault(
        &self,
        s: &ModelState<P>,
        i: Sid,
        damage: impl FnOnce(&mut ServerVars<P>, bool),
    ) -> Option<ModelState<P>> {
        let mut t = s.clone();
        if !super::spend(self.cfg.storage_faults, &mut t.ghost.storage_faults) {
            return None;
        }
        self.crash_restart(&mut t, i);
        let detected = !self.cfg.has(Bug::NoStorageRecovery);
        let srv = t.srv_mut(i);
        damage(&mut *srv, detected);
        if detected {
            srv.recovering = true;
        }
        Some(t)
    }

    /// TLA+: `LoseEpochFiles(i)` (bounded by `--storage-faults`): `i` restarts without its
    /// `acceptedEpoch` and `currentEpoch` files beside a non-empty log. It follows ZooKeeper's
    /// rule: both become the epoch of its last logged zxid (under `--bug no-storage-recovery`:
    /// 0, as a server that reads a missing file as "never set" would).
    pub(crate) fn lose_epoch_files(&self, s: &ModelState<P>, i: Sid) -> Option<ModelState<P>> {
        if s.srv(i).persisted == 0 {
            return None;
        }
        self.storage_fault(s, i, |srv, detected| {
            let epoch = if detected {
                srv.last_zxid().epoch
            } else {
                Epoch(0)
            };
            srv.accepted_epoch = epoch;
            srv.current_epoch = epoch;
        })
    }

    /// TLA+: `LoseLogSuffix(i, k)` (bounded by `--storage-faults`): the fsynced log records of
    /// `i` after the `k`-th are lost or corrupt (`lastSnapshot <= k < persisted`; the snapshot
    /// survives). The records before the damage are intact; the damaged ones are unusable.
    /// Under `--bug no-storage-recovery` the damage is taken for a torn tail and cut silently.
    pub(crate) fn lose_log_suffix(
        &self,
        s: &ModelState<P>,
        i: Sid,
        k: Idx,
    ) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if k < me.last_snapshot || k >= me.persisted {
            return None;
        }
        self.storage_fault(s, i, |srv, _| {
            srv.history.truncate(k as usize);
            srv.persisted = k;
        })
    }

    /// TLA+: `LoseDataDir(i)` (bounded by `--storage-faults`): `i`, which had joined (some
    /// durable state), restarts with an empty data directory: epochs 0, no log, no snapshot.
    /// With recovery the wipe is detected (a member marker kept apart from the data, or what
    /// the peers remember of `i`); under `--bug no-storage-recovery` `i` rejoins as a fresh
    /// member.
    pub(crate) fn lose_data_dir(&self, s: &ModelState<P>, i: Sid) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if me.accepted_epoch == Epoch(0) && me.persisted == 0 {
            return None;
        }
        self.storage_fault(s, i, |srv, _| {
            srv.accepted_epoch = Epoch(0);
            srv.current_epoch = Epoch(0);
            srv.history.clear();
            srv.persisted = 0;
            srv.last_snapshot = 0;
            srv.last_committed = 0;
        })
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
