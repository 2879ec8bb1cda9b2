//! Leader election, abstract but faithful to ZooKeeper's fast leader election: a server
//! leads only with the votes of a quorum of LOOKING servers whose votes it beats under
//! `(currentEpoch, last zxid, id)`, and a LOOKING server may follow any server that leads
//! (FLE's round and out-of-election paths decide on notifications that can be arbitrarily
//! old, and only the leader's acceptance of the connection is checked at the time).
//! `spec/PROTOCOL.md` §3.

use super::ZabModel;
use crate::state::{Electing, LeaderVars, ModelState, ServerSet, Sid};
use zab_spec::{Payload, QuorumMessage, ServerState, ZabState};

impl<P: Payload> ZabModel<P> {
    /// TLA+: `ElectLeader(i)`.
    ///
    /// Guard: `i` is LOOKING and not recovering, and the LOOKING servers it can reach that
    /// are not recovering and whose votes are at most its own (itself included) form a
    /// quorum. Effect: `i` is LEADING in DISCOVERY with itself as its only learner; its own
    /// FOLLOWERINFO proposes `acceptedEpoch + 1` (ZooKeeper's `getEpochToPropose(self)`).
    pub(crate) fn elect_leader(&self, s: &ModelState<P>, i: Sid) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if me.state != ServerState::Looking || !self.counts(s, i) {
            return None;
        }
        let my_vote = self.vote(s, i);
        let supporters = (0..s.n())
            .filter(|&j| {
                let o = s.srv(j);
                o.state == ServerState::Looking
                    && self.counts(s, j)
                    && (j == i || !s.partitioned(i, j))
                    && self.vote(s, j) <= my_vote
            })
            .fold(ServerSet::EMPTY, ServerSet::with);
        if !supporters.is_quorum(s.n()) {
            return None;
        }
        let mut t = s.clone();
        let n = usize::from(t.n());
        let srv = t.srv_mut(i);
        srv.state = ServerState::Leading;
        srv.zab_state = ZabState::Discovery;
        let mut electing = vec![None; n];
        electing[usize::from(i)] = Some(Electing {
            peer_last_zxid: None,
            in_quorum: true,
        });
        srv.leader = Some(LeaderVars {
            learners: ServerSet::single(i),
            connecting: ServerSet::single(i),
            connecting_live: ServerSet::single(i),
            electing,
            ackld_recv: ServerSet::single(i),
            ackld_live: ServerSet::single(i),
            forwarding: ServerSet::EMPTY,
            temp_max_epoch: srv.accepted_epoch.next(),
            ack_sets: Vec::new(),
            send_counter: 0,
        });
        Some(t)
    }

    /// TLA+: `FollowLeader(i, j)` (FLE decides to follow, then
    /// `ConnectAndFollowerSendFOLLOWERINFO`).
    ///
    /// Guard: `i` LOOKING, `j` LEADING, the link is up. Nothing about votes: ZooKeeper's
    /// `lookForLeader` settles on `j` when a quorum's notifications of one round name `j`
    /// (`termPredicate` over `recvset`, which may hold votes `i`'s own beats) or when a quorum
    /// reports FOLLOWING/LEADING with `j` as leader (`outofelection`, kept for the whole election),
    /// and `checkLeader` only asks that `j` once said LEADING. Those notifications can be
    /// arbitrarily old, so every leader a quorum elected (every LEADING `j`: `ElectLeader`
    /// needs a quorum) can be the one `i` settles on; the connection, accepted only while
    /// `j` leads, is what happens now. Effect: `i` FOLLOWING `j` in DISCOVERY, `j` adds `i`
    /// to its learners, FOLLOWERINFO(acceptedEpoch) is on its way.
    pub(crate) fn follow_leader(&self, s: &ModelState<P>, i: Sid, j: Sid) -> Option<ModelState<P>> {
        if i == j {
            return None;
        }
        let (me, leader) = (s.srv(i), s.srv(j));
        if me.state != ServerState::Looking {
            return None;
        }
        if leader.state != ServerState::Leading || leader.leader.is_none() || s.partitioned(i, j) {
            return None;
        }
        let mut t = s.clone();
        let (accepted, recovering) = (t.srv(i).accepted_epoch, t.srv(i).recovering);
        let srv = t.srv_mut(i);
        srv.state = ServerState::Following;
        srv.zab_state = ZabState::Discovery;
        srv.follower = Some(crate::state::FollowerVars {
            leader: j,
            sync_mode: None,
            nl_stage: crate::state::NewLeaderStage::Waiting,
            packets: Vec::new(),
            sync_committed: 0,
        });
        if let Some(l) = t.srv_mut(j).leader.as_mut() {
            l.learners = l.learners.with(i);
        }
        t.send(
            i,
            j,
            QuorumMessage::FollowerInfo {
                accepted_epoch: accepted,
                recovering,
            },
        );
        Some(t)
    }

    /// TLA+: `LeaderTimeout(i)`: a leader not yet in BROADCAST gives up waiting for a quorum
    /// (ZooKeeper's initLimit/syncLimit timeouts in `Leader.lead`) and everyone connected to
    /// it goes back to LOOKING (bounded by `--timeouts`).
    pub(crate) fn leader_timeout(&self, s: &ModelState<P>, i: Sid) -> Option<ModelState<P>> {
        let me = s.srv(i);
        if me.state != ServerState::Leading
            || !matches!(
                me.zab_state,
                ZabState::Discovery | ZabState::Synchronization
            )
        {
            return None;
        }
        let mut t = s.clone();
        if !super::spend(self.cfg.timeouts, &mut t.ghost.timeouts) {
            return None;
        }
        self.leader_shutdown(&mut t, i, false);
        Some(t)
    }
}
