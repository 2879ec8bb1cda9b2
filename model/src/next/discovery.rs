//! Phase 1, discovery: FOLLOWERINFO → LEADERINFO → ACKEPOCH; the new epoch is one more than
//! the largest accepted epoch of a quorum that includes the leader. `spec/PROTOCOL.md` §4.

use super::ZabModel;
use crate::state::{Electing, ModelState, Sid, Violation};
use zab_spec::{Payload, QuorumMessage, ZabState};

impl<P: Payload> ZabModel<P> {
    /// TLA+: `LeaderProcessFOLLOWERINFO(i, j)` (ZooKeeper `Leader.getEpochToPropose`).
    ///
    /// While the epoch is undecided, the follower's accepted epoch raises `tempMaxEpoch`; when
    /// the FOLLOWERINFOs counted form a quorum with the leader, the leader accepts
    /// `tempMaxEpoch` durably and sends LEADERINFO to every counted follower still connected.
    /// The epoch bound: the action is disabled when that epoch would exceed `--epochs`.
    /// Once decided, a later FOLLOWERINFO is answered with LEADERINFO at once.
    pub(crate) fn leader_process_follower_info(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::FollowerInfo { accepted_epoch, .. }) = s.head(j, i) else {
            return None;
        };
        let me = s.srv(i);
        let l = me.leader.as_ref()?;
        if !l.learners.contains(j) {
            return None;
        }
        let n = s.n();
        let waiting = !(l.connecting.contains(i) && l.connecting.is_quorum(n));
        let mut t = s.clone();
        t.pop(j, i);
        if waiting {
            let tmp = if *accepted_epoch >= l.temp_max_epoch {
                accepted_epoch.next()
            } else {
                l.temp_max_epoch
            };
            let connecting = l.connecting.with(j);
            let live = l.connecting_live.with(j);
            let decided = connecting.contains(i) && connecting.is_quorum(n);
            if decided && self.cfg.epochs.is_some_and(|e| tmp.0 > e) {
                return None;
            }
            if me.zab_state != ZabState::Discovery {
                t.ghost.violations.set(Violation::StateInconsistent);
            }
            let srv = t.srv_mut(i);
            let lv = srv.leader.as_mut()?;
            lv.temp_max_epoch = tmp;
            lv.connecting = connecting;
            lv.connecting_live = live;
            if decided {
                srv.accepted_epoch = tmp;
                for k in live.without(i).iter() {
                    t.send(i, k, QuorumMessage::LeaderInfo { new_epoch: tmp });
                }
            }
        } else {
            t.send(
                i,
                j,
                QuorumMessage::LeaderInfo {
                    new_epoch: me.accepted_epoch,
                },
            );
        }
        Some(t)
    }

    /// TLA+: `FollowerProcessLEADERINFO(i, j)` (ZooKeeper `Learner.registerWithLeader`).
    ///
    /// A newer epoch is accepted durably and acknowledged with ACKEPOCH(currentEpoch, last
    /// zxid); the same epoch is acknowledged with currentEpoch -1 (not counted); an older one
    /// makes the follower give up on this leader.
    pub(crate) fn follower_process_leader_info(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::LeaderInfo { new_epoch }) = s.head(j, i) else {
            return None;
        };
        let new_epoch = *new_epoch;
        let me = s.srv(i);
        if me.follower.as_ref()?.leader != j {
            return None;
        }
        let mut t = s.clone();
        if new_epoch < me.accepted_epoch {
            self.follower_leaves(&mut t, i, j);
            return Some(t);
        }
        t.pop(j, i);
        if me.zab_state != ZabState::Discovery {
            t.ghost.violations.set(Violation::StateInconsistent);
            return Some(t);
        }
        let last_zxid = self.reported_zxid(s, i);
        let current_epoch = (new_epoch > me.accepted_epoch).then_some(me.current_epoch);
        let srv = t.srv_mut(i);
        srv.accepted_epoch = new_epoch;
        srv.zab_state = ZabState::Synchronization;
        t.send(
            i,
            j,
            QuorumMessage::AckEpoch {
                current_epoch,
                last_zxid,
            },
        );
        Some(t)
    }

    /// TLA+: `LeaderProcessACKEPOCH(i, j)` (ZooKeeper `Leader.waitForEpochAck`).
    ///
    /// A follower more recent than the leader (higher currentEpoch, or equal and a longer
    /// log) makes the leader step down. Otherwise the ACKEPOCH is recorded; when the counted
    /// ones form a quorum with the leader, the leader adopts the epoch as its currentEpoch,
    /// enters SYNCHRONIZATION and is established (`epochLeader`). ACKEPOCHs that arrive
    /// later are recorded so that `LeaderSyncFollower` syncs their senders.
    pub(crate) fn leader_process_ack_epoch(
        &self,
        s: &ModelState<P>,
        i: Sid,
        j: Sid,
    ) -> Option<ModelState<P>> {
        let Some(QuorumMessage::AckEpoch {
            current_epoch,
            last_zxid,
        }) = s.head(j, i)
        else {
            return None;
        };
        let (current_epoch, last_zxid) = (*current_epoch, *last_zxid);
        let me = s.srv(i);
        let l = me.leader.as_ref()?;
        if !l.learners.contains(j) {
            return None;
        }
        let n = s.n();
        let finished = |set: crate::state::ServerSet| set.contains(i) && set.is_quorum(n);
        let old_in_quorum = l.electing[usize::from(j)].is_some_and(|e| e.in_quorum);
        let mut t = s.clone();
        t.pop(j, i);
        let record = |t: &mut ModelState<P>, in_quorum: bool| {
            if let Some(lv) = t.srv_mut(i).leader.as_mut() {
                lv.electing[usize::from(j)] = Some(Electing {
                    peer_last_zxid: Some(last_zxid),
                    in_quorum: in_quorum || old_in_quorum,
                });
            }
        };
        if finished(l.epoch_acks()) {
            record(&mut t, false);
            return Some(t);
        }
        if me.zab_state != ZabState::Discovery {
            t.ghost.violations.set(Violation::StateInconsistent);
        }
        let Some(follower_epoch) = current_epoch else {
            record(&mut t, false);
            return Some(t);
        };
        if !self.counts(s, j) {
            // A recovering follower is synced but does not count towards the epoch quorum.
            record(&mut t, false);
            return Some(t);
        }
        let leader_summary = (me.current_epoch, self.reported_zxid(s, i));
        if (follower_epoch, last_zxid) > leader_summary {
            let mut t = s.clone();
            self.leader_shutdown(&mut t, i, false);
            return Some(t);
        }
        record(&mut t, true);
        let now = t.srv(i).leader.as_ref()?.epoch_acks();
        if finished(now) {
            let srv = t.srv_mut(i);
            srv.current_epoch = srv.accepted_epoch;
            srv.zab_state = ZabState::Synchronization;
            let epoch = srv.accepted_epoch;
            t.ghost.epoch_leader.insert((epoch, i));
        }
        Some(t)
    }
}
