//! The leader's side of discovery, synchronization and broadcast (`spec/PROTOCOL.md` §4–§6),
//! one handler per model action, and its liveness: heartbeats, silent learners, phase limits.

use super::{Action, Ignored, Message, Peer, Persist, Role};
use std::collections::{BTreeMap, BTreeSet};
use zab_spec::sync::plan_sync;
use zab_spec::{
    ActionKind, Bug, Epoch, Payload, QuorumMessage, ServerId, SyncMode, Txn, ZabState, Zxid,
};

/// An ACKEPOCH record (ZooKeeper `electingFollowers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Electing {
    /// The follower's last zxid, still to be synced; `None` once synced.
    pub(crate) peer_last_zxid: Option<Zxid>,
    /// Whether the ACKEPOCH counts towards the quorum.
    pub(crate) in_quorum: bool,
}

/// Leader-only state (the model's `LeaderVars`).
#[derive(Clone, Debug)]
pub(crate) struct Leader {
    pub(crate) zab_state: ZabState,
    /// Connected servers, this one included.
    pub(crate) learners: BTreeSet<ServerId>,
    /// Servers whose FOLLOWERINFO was counted for the new epoch (`connecting`).
    pub(crate) connecting: BTreeSet<ServerId>,
    /// The subset of `connecting` whose connection is still the one that sent it: they get
    /// LEADERINFO when the epoch is chosen (the model's `connecting_live`).
    pub(crate) connecting_live: BTreeSet<ServerId>,
    pub(crate) electing: BTreeMap<ServerId, Electing>,
    /// Servers whose ACK of NEWLEADER was counted (`ackldRecv`, the model's `ackld_recv`).
    pub(crate) ackld_recv: BTreeSet<ServerId>,
    /// The subset of `ackld_recv` still connected: they get UPTODATE on establishment (the
    /// model's `ackld_live`).
    pub(crate) ackld_live: BTreeSet<ServerId>,
    /// Synced followers: they receive every PROPOSAL and COMMIT.
    pub(crate) forwarding: BTreeSet<ServerId>,
    /// Learners whose FOLLOWERINFO said they are recovering (§7.1) and that have not
    /// reported being restored since: their ACKEPOCH is recorded but not counted, their ACK
    /// of NEWLEADER joins `ackld_live` but not `ackld_recv`, their ACKs are ignored.
    pub(crate) recovering: BTreeSet<ServerId>,
    /// Learners that connected with OBSERVERINFO (§10.2): synced like followers, sent INFORM
    /// instead of PROPOSAL and COMMIT, counted in no quorum.
    pub(crate) observers: BTreeSet<ServerId>,
    /// Observers whose OBSERVERINFO arrived before the epoch was decided: they get
    /// LEADERINFO when it is (ZooKeeper's observers wait in `getEpochToPropose` too).
    pub(crate) observers_waiting: BTreeSet<ServerId>,
    pub(crate) temp_max_epoch: Epoch,
    /// Ack sets of outstanding proposals.
    pub(crate) ack_sets: BTreeMap<Zxid, BTreeSet<ServerId>>,
    /// Ticks since each learner was last heard from.
    pub(crate) silent_ticks: BTreeMap<ServerId, u32>,
    /// Ticks spent in the current phase (discovery or synchronization).
    pub(crate) phase_ticks: u32,
    /// `--bug paper-redundant-propose` only: the last proposal broadcast (TLA+ and the
    /// model's `sendCounter`, as a zxid rather than a count); later ones leave on the next
    /// tick.
    pub(crate) send_counter: Zxid,
}

impl Leader {
    pub(crate) fn new(me: ServerId, accepted_epoch: Epoch) -> Leader {
        Leader {
            zab_state: ZabState::Discovery,
            learners: BTreeSet::from([me]),
            connecting: BTreeSet::from([me]),
            connecting_live: BTreeSet::from([me]),
            electing: BTreeMap::from([(
                me,
                Electing {
                    peer_last_zxid: None,
                    in_quorum: true,
                },
            )]),
            ackld_recv: BTreeSet::from([me]),
            ackld_live: BTreeSet::from([me]),
            forwarding: BTreeSet::new(),
            recovering: BTreeSet::new(),
            observers: BTreeSet::new(),
            observers_waiting: BTreeSet::new(),
            // At the last epoch there is no next one: the epoch is then never decided
            // (`leader_try_decide_epoch` refuses) and the leader times out to LOOKING.
            temp_max_epoch: accepted_epoch.checked_next().unwrap_or(accepted_epoch),
            ack_sets: BTreeMap::new(),
            silent_ticks: BTreeMap::new(),
            phase_ticks: 0,
            send_counter: Zxid::ZERO,
        }
    }

    fn epoch_acks(&self) -> usize {
        self.electing.values().filter(|e| e.in_quorum).count()
    }
}

impl<P: Payload> Peer<P> {
    /// The broadcast set for PROPOSAL (`commit == false`) or COMMIT: the synced followers;
    /// under `--bug paper-propose-recipients` / `paper-commitld-zxid` only those whose ACK of
    /// NEWLEADER this leader processed on their current connection (the model's
    /// `recipients`).
    fn recipients(&self, commit: bool) -> Vec<ServerId> {
        let Some(l) = self.leader() else {
            return Vec::new();
        };
        let narrowed = if commit {
            self.cfg.has(Bug::PaperCommitldZxid)
        } else {
            self.cfg.has(Bug::PaperProposeRecipients)
        };
        let me = self.cfg.id;
        l.forwarding
            .iter()
            .filter(|s| {
                **s != me && !l.observers.contains(s) && (!narrowed || l.ackld_live.contains(s))
            })
            .copied()
            .collect()
    }

    /// The synced observers: they get INFORM for every commit (§10.2).
    fn observer_recipients(&self) -> Vec<ServerId> {
        self.leader().map_or_else(Vec::new, |l| {
            l.forwarding.intersection(&l.observers).copied().collect()
        })
    }

    /// Whether learner `j` connected as an observer, or is none of the voters: it counts in
    /// no quorum (§10.2).
    fn is_observing_learner(&self, j: ServerId) -> bool {
        !self.cfg.is_voter(j) || self.leader().is_some_and(|l| l.observers.contains(&j))
    }

    fn leader(&self) -> Option<&Leader> {
        match &self.role {
            Role::Leading(l) => Some(l),
            _ => None,
        }
    }

    fn leader_mut(&mut self) -> Option<&mut Leader> {
        match &mut self.role {
            Role::Leading(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn leader_on_message(
        &mut self,
        from: ServerId,
        msg: Message<P>,
        out: &mut Vec<Action<P>>,
    ) {
        if let Some(t) = self
            .leader_mut()
            .and_then(|l| l.silent_ticks.get_mut(&from))
        {
            *t = 0;
        }
        match msg {
            QuorumMessage::FollowerInfo { .. } if !self.cfg.is_voter(from) => {
                // A server this leader has as an observer says it follows: the two configs
                // disagree (the handshake's fingerprint should have caught it). It would wait
                // for PROPOSALs it never gets: refuse it.
                tracing::warn!(
                    learner = from.0,
                    "FOLLOWERINFO from a server configured as an observer: disconnecting it"
                );
                self.ignore(Ignored::UnexpectedMessage, Some(from), None);
                // Not a voter: its leaving changes no quorum.
                self.forget_learner(from, out);
            }
            QuorumMessage::ObserverInfo { accepted_epoch } => {
                self.leader_process_observer_info(from, accepted_epoch, out);
            }
            QuorumMessage::FollowerInfo {
                accepted_epoch,
                recovering,
            } => {
                if let Some(l) = self.leader_mut() {
                    if recovering {
                        l.recovering.insert(from);
                    } else {
                        l.recovering.remove(&from);
                    }
                }
                self.leader_process_follower_info(from, accepted_epoch, out);
            }
            QuorumMessage::AckEpoch {
                current_epoch,
                last_zxid,
            } => {
                self.leader_process_ack_epoch(from, current_epoch, last_zxid, out);
            }
            QuorumMessage::AckNewLeader { zxid } => self.leader_process_ack_ld(from, zxid, out),
            QuorumMessage::Ack { zxid } if self.is_observing_learner(from) => {
                // §10.2: an observer never ACKs; if one does, it is not counted.
                self.ignore(Ignored::AckOfObserver, Some(from), Some(zxid));
            }
            QuorumMessage::Ack { zxid } => self.leader_process_ack(from, zxid, out),
            _ => {
                self.ignore(Ignored::UnexpectedMessage, Some(from), None);
                self.trace(ActionKind::FilterNonexistentMessage, Some(from), None, out);
            }
        }
    }

    /// Whether the FOLLOWERINFOs counted form a quorum that includes the leader (the epoch is
    /// decided; ZooKeeper's `waitingForNewEpoch` is false).
    fn epoch_decided(&self, l: &Leader) -> bool {
        l.connecting.contains(&self.cfg.id) && self.cfg.is_quorum(l.connecting.len())
    }

    /// TLA+: `LeaderProcessFOLLOWERINFO(i, j)`.
    fn leader_process_follower_info(
        &mut self,
        j: ServerId,
        accepted: Epoch,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(l) = self.leader() else { return };
        if self.epoch_decided(l) {
            out.push(Action::Send {
                to: j,
                msg: QuorumMessage::LeaderInfo {
                    new_epoch: self.accepted_epoch,
                },
            });
        } else {
            let Some(l) = self.leader_mut() else { return };
            if accepted >= l.temp_max_epoch {
                let Some(next) = accepted.checked_next() else {
                    // A peer value: an epoch with no successor is refused, not counted.
                    self.ignore(Ignored::EpochOverflow, Some(j), None);
                    return;
                };
                l.temp_max_epoch = next;
            }
            l.connecting.insert(j);
            l.connecting_live.insert(j);
            self.leader_try_decide_epoch(out);
        }
        self.trace(ActionKind::LeaderProcessFollowerInfo, Some(j), None, out);
    }

    /// TLA+-style `LeaderProcessOBSERVERINFO(i, j)` (§10.2): as FOLLOWERINFO, but `j` joins
    /// no quorum: its accepted epoch still raises the proposed one (ZooKeeper's
    /// `getEpochToPropose`), it is not added to `connecting`, and it gets LEADERINFO once a
    /// quorum of voters decided the epoch.
    fn leader_process_observer_info(
        &mut self,
        j: ServerId,
        accepted: Epoch,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(l) = self.leader() else { return };
        let decided = self.epoch_decided(l);
        let Some(l) = self.leader_mut() else { return };
        l.observers.insert(j);
        l.recovering.remove(&j);
        if decided {
            out.push(Action::Send {
                to: j,
                msg: QuorumMessage::LeaderInfo {
                    new_epoch: self.accepted_epoch,
                },
            });
        } else {
            if accepted >= l.temp_max_epoch {
                let Some(next) = accepted.checked_next() else {
                    self.ignore(Ignored::EpochOverflow, Some(j), None);
                    return;
                };
                l.temp_max_epoch = next;
            }
            l.observers_waiting.insert(j);
        }
        self.trace(ActionKind::LeaderProcessObserverInfo, Some(j), None, out);
    }

    /// When the counted FOLLOWERINFOs (the leader's own included) form a quorum: accept the
    /// new epoch durably, then send LEADERINFO to every counted follower still connected.
    pub(crate) fn leader_try_decide_epoch(&mut self, out: &mut Vec<Action<P>>) {
        let Some(l) = self.leader() else { return };
        if !self.epoch_decided(l) {
            return;
        }
        let epoch = l.temp_max_epoch;
        if epoch <= self.accepted_epoch {
            // The epoch space is exhausted (accepted epoch u32::MAX): never lead with an
            // epoch already accepted; the leader times out and goes back to LOOKING.
            self.ignore(Ignored::EpochOverflow, None, None);
            return;
        }
        let live: Vec<ServerId> = l
            .connecting_live
            .iter()
            .chain(l.observers_waiting.iter())
            .filter(|s| **s != self.cfg.id)
            .copied()
            .collect();
        if let Some(l) = self.leader_mut() {
            l.observers_waiting.clear();
        }
        self.persist_accepted_epoch(epoch, out);
        for k in live {
            out.push(Action::Send {
                to: k,
                msg: QuorumMessage::LeaderInfo { new_epoch: epoch },
            });
        }
        if self.cfg.servers.len() == 1 {
            self.standalone_establish(out);
        }
    }

    /// A one-server ensemble is its own quorum at every step: adopt the epoch and start
    /// broadcasting at once (ZooKeeper's standalone mode).
    fn standalone_establish(&mut self, out: &mut Vec<Action<P>>) {
        self.persist_current_epoch(self.accepted_epoch, out);
        self.leader_turn_to_broadcast(out);
    }

    /// TLA+: `LeaderProcessACKEPOCH(i, j)`.
    fn leader_process_ack_epoch(
        &mut self,
        j: ServerId,
        current_epoch: Option<Epoch>,
        last_zxid: Zxid,
        out: &mut Vec<Action<P>>,
    ) {
        let me = self.cfg.id;
        let n_quorum = |peer: &Self, count: usize| peer.cfg.is_quorum(count);
        let Some(l) = self.leader() else { return };
        let finished =
            l.electing.get(&me).is_some_and(|e| e.in_quorum) && n_quorum(self, l.epoch_acks());
        let old_in_quorum = l.electing.get(&j).is_some_and(|e| e.in_quorum);
        let leader_summary = (self.current_epoch, self.reported_zxid());
        let record = |peer: &mut Self, in_quorum: bool| {
            if let Some(l) = peer.leader_mut() {
                l.electing.insert(
                    j,
                    Electing {
                        peer_last_zxid: Some(last_zxid),
                        in_quorum: in_quorum || old_in_quorum,
                    },
                );
            }
        };
        if finished {
            record(self, false);
            self.trace(ActionKind::LeaderProcessAckEpoch, Some(j), None, out);
            self.leader_sync_follower(j, out);
            return;
        }
        let Some(follower_epoch) = current_epoch else {
            record(self, false);
            self.trace(ActionKind::LeaderProcessAckEpoch, Some(j), None, out);
            return;
        };
        if self.is_recovering_learner(j) || self.is_observing_learner(j) {
            // §7.1: a recovering follower is synced but does not count towards the epoch
            // quorum, and never makes the leader step down; nor does an observer (§10.2).
            record(self, false);
            self.trace(ActionKind::LeaderProcessAckEpoch, Some(j), None, out);
            return;
        }
        if (follower_epoch, last_zxid) > leader_summary {
            // A follower more recent than the leader: the leader steps down.
            self.go_looking(out);
            self.trace(ActionKind::LeaderProcessAckEpoch, Some(j), None, out);
            return;
        }
        record(self, true);
        let now_finished = self
            .leader()
            .is_some_and(|l| n_quorum(self, l.epoch_acks()));
        if now_finished {
            self.persist_current_epoch(self.accepted_epoch, out);
            if let Some(l) = self.leader_mut() {
                l.zab_state = ZabState::Synchronization;
                l.phase_ticks = 0;
            }
            self.role_changed(out);
        }
        self.trace(ActionKind::LeaderProcessAckEpoch, Some(j), None, out);
        if now_finished {
            let to_sync: Vec<ServerId> = self
                .leader()
                .map(|l| {
                    l.electing
                        .iter()
                        .filter(|(s, e)| **s != me && e.peer_last_zxid.is_some())
                        .map(|(s, _)| *s)
                        .collect()
                })
                .unwrap_or_default();
            for k in to_sync {
                self.leader_sync_follower(k, out);
            }
        }
    }

    /// TLA+: `LeaderSyncFollower(i, j)`: one atomic write of the sync message, the missing
    /// transactions (PROPOSAL, plus COMMIT for committed ones) and NEWLEADER; `j` joins the
    /// forwarding set.
    fn leader_sync_follower(&mut self, j: ServerId, out: &mut Vec<Action<P>>) {
        let Some(l) = self.leader() else { return };
        if !l.learners.contains(&j) {
            return;
        }
        let Some(peer) = l.electing.get(&j).and_then(|e| e.peer_last_zxid) else {
            return;
        };
        let committed = if l.zab_state == ZabState::Broadcast {
            self.log.committed()
        } else {
            self.log.last_zxid()
        };
        let plan = plan_sync(
            self.log.snapshot(),
            &self.log.zxids(),
            committed,
            self.log.committed(),
            peer,
        );
        match plan.mode {
            SyncMode::Diff => out.push(Action::Send {
                to: j,
                msg: QuorumMessage::Diff {
                    last_zxid: plan.committed,
                },
            }),
            SyncMode::Trunc => out.push(Action::Send {
                to: j,
                msg: QuorumMessage::Trunc {
                    truncate_to: plan.base,
                },
            }),
            SyncMode::Snap => out.push(Action::SendSnapshot {
                to: j,
                last_zxid: plan.base,
            }),
        }
        // Transactions before the in-memory window are read back from the log on disk, off
        // the replica thread, in order before everything sent to `j` after them.
        let on_disk_end = self.log.on_disk_end();
        if plan.base < on_disk_end {
            out.push(Action::SendLogged {
                to: j,
                after: plan.base,
                through: on_disk_end,
                committed,
            });
        }
        let observer = self.is_observing_learner(j);
        for txn in self.log.after(plan.base.max(on_disk_end)) {
            if observer && txn.zxid > committed && !self.cfg.has(Bug::Zk1551) {
                // §10.2: an observer gets committed transactions only; the outstanding ones
                // follow as INFORM when they commit (it joins `forwarding` in this step).
                // `--bug zk1551` (§10.6, the simulation's test only) sends them as to a
                // follower, and their INFORM then repeats a zxid the observer has.
                break;
            }
            out.push(Action::Send {
                to: j,
                msg: QuorumMessage::Proposal(txn.clone()),
            });
            if txn.zxid <= committed {
                out.push(Action::Send {
                    to: j,
                    msg: QuorumMessage::Commit { zxid: txn.zxid },
                });
            }
        }
        out.push(Action::Send {
            to: j,
            msg: QuorumMessage::NewLeader {
                zxid: Zxid::epoch_start(self.accepted_epoch),
            },
        });
        if let Some(l) = self.leader_mut() {
            l.forwarding.insert(j);
            if let Some(e) = l.electing.get_mut(&j) {
                e.peer_last_zxid = None;
            }
        }
        self.trace(ActionKind::LeaderSyncFollower, Some(j), None, out);
    }

    /// TLA+: `LeaderProcessACKLD(i, j)`.
    fn leader_process_ack_ld(&mut self, j: ServerId, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let me = self.cfg.id;
        let Some(l) = self.leader() else { return };
        let formed = l.ackld_recv.contains(&me) && self.cfg.is_quorum(l.ackld_recv.len());
        if formed {
            out.push(Action::Send {
                to: j,
                msg: QuorumMessage::UpToDate,
            });
            if self.cfg.has(Bug::PaperProposeRecipients) || self.cfg.has(Bug::PaperCommitldZxid) {
                if let Some(l) = self.leader_mut() {
                    l.ackld_recv.insert(j);
                    l.ackld_live.insert(j);
                }
            }
            self.trace(ActionKind::LeaderProcessAckLd, Some(j), None, out);
            return;
        }
        if zxid == Zxid::epoch_start(self.accepted_epoch) {
            let counts = !self.is_recovering_learner(j) && !self.is_observing_learner(j);
            if let Some(l) = self.leader_mut() {
                // §7.1: a recovering follower gets UPTODATE on establishment but does not
                // count towards it.
                if counts {
                    l.ackld_recv.insert(j);
                }
                l.ackld_live.insert(j);
            }
            let now = self
                .leader()
                .is_some_and(|l| self.cfg.is_quorum(l.ackld_recv.len()));
            if now {
                self.leader_turn_to_broadcast(out);
            }
        } else {
            self.ignore(Ignored::AckNewLeaderWrongZxid, Some(j), Some(zxid));
        }
        self.trace(ActionKind::LeaderProcessAckLd, Some(j), None, out);
    }

    /// A quorum acknowledged NEWLEADER: the whole history is committed and delivered, the
    /// leader broadcasts, and every counted follower still connected gets UPTODATE.
    fn leader_turn_to_broadcast(&mut self, out: &mut Vec<Action<P>>) {
        let last = self.log.last_zxid();
        self.deliver_up_to(last, out);
        let me = self.cfg.id;
        self.stale_last_processed = None;
        let Some(l) = self.leader_mut() else { return };
        l.zab_state = ZabState::Broadcast;
        l.ack_sets.clear();
        l.send_counter = last;
        let live: Vec<ServerId> = l.ackld_live.iter().filter(|s| **s != me).copied().collect();
        for k in live {
            out.push(Action::Send {
                to: k,
                msg: QuorumMessage::UpToDate,
            });
        }
        self.role_changed(out);
    }

    /// TLA+: `LeaderProcessRequest(i, v)`: the write gets the next zxid of the epoch, joins
    /// the history in memory (the log thread makes it durable) and goes out as PROPOSAL.
    pub(crate) fn leader_process_request(
        &mut self,
        payload: P,
        out: &mut Vec<Action<P>>,
    ) -> Option<Zxid> {
        if self.can_propose().is_err() {
            return None;
        }
        let next = self.log.last_zxid().checked_next_in(self.current_epoch);
        let Some(zxid) = next.filter(|z| z.counter != u32::MAX) else {
            // ZOOKEEPER-1277 (`Leader.propose`'s XidRolloverException): the counter would
            // reach 0xffffffff; the leader gives up so that the next election starts a new
            // epoch, with the counter back at 1.
            tracing::warn!(
                last = %self.log.last_zxid(),
                "zxid counter rolled over: leaving leadership to start a new epoch"
            );
            self.go_looking(out);
            return None;
        };
        // The payload is copied for the trace record only when tracing is on.
        let traced = self.cfg.trace.then(|| payload.clone());
        let txn = Txn { zxid, payload };
        self.log.append(txn.clone());
        assert!(
            self.log.last_zxid() == zxid,
            "LeaderProcessRequest: the new proposal is the last logged"
        );
        out.push(Action::Persist(Persist::Append {
            txns: vec![txn.clone()],
            wait: false,
        }));
        self.leader_mut()?.ack_sets.insert(zxid, BTreeSet::new());
        let to = if self.cfg.has(Bug::PaperRedundantPropose) {
            Vec::new()
        } else {
            self.recipients(false)
        };
        for k in to {
            out.push(Action::Send {
                to: k,
                msg: QuorumMessage::Proposal(txn.clone()),
            });
        }
        self.trace(ActionKind::LeaderProcessRequest, None, traced, out);
        Some(zxid)
    }

    /// Adds `who` to the ack set of outstanding proposal `zxid`.
    pub(crate) fn leader_count_ack(&mut self, who: ServerId, zxid: Zxid) {
        if let Some(set) = self.leader_mut().and_then(|l| l.ack_sets.get_mut(&zxid)) {
            set.insert(who);
        }
    }

    /// ZooKeeper `Leader.tryToCommit`: `zxid` commits when it is the next one and a quorum
    /// acknowledged it; COMMIT goes to the forwarding set and the leader delivers it.
    pub(crate) fn leader_try_to_commit(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let Some(l) = self.leader() else { return };
        if l.zab_state != ZabState::Broadcast {
            return;
        }
        let next = self.log.next_after(self.log.committed()).map(|t| t.zxid);
        let Some(acks) = l.ack_sets.get(&zxid) else {
            return;
        };
        if next != Some(zxid) || !self.cfg.is_quorum(acks.len()) {
            return;
        }
        let to = self.recipients(true);
        let observers = self.observer_recipients();
        // §10.2: observers get the committed transaction itself (INFORM).
        let informed = if observers.is_empty() {
            None
        } else {
            self.log.next_after(self.log.committed()).cloned()
        };
        if let Some(l) = self.leader_mut() {
            l.ack_sets.remove(&zxid);
        }
        self.deliver_up_to(zxid, out);
        assert!(
            self.log.committed() == zxid,
            "tryToCommit: a commit delivers exactly up to its zxid"
        );
        for k in to {
            out.push(Action::Send {
                to: k,
                msg: QuorumMessage::Commit { zxid },
            });
        }
        if let Some(txn) = informed {
            for k in observers {
                out.push(Action::Send {
                    to: k,
                    msg: QuorumMessage::Inform(txn.clone()),
                });
            }
        }
    }

    /// Whether learner `j` said it is recovering and has not reported being restored.
    fn is_recovering_learner(&self, j: ServerId) -> bool {
        self.leader().is_some_and(|l| l.recovering.contains(&j))
    }

    /// A follower reports it processed UPTODATE while recovering: it is restored, and its
    /// ACKs from now on count (the connection is FIFO, so every ACK it sent while it was
    /// still recovering arrived before this).
    pub(crate) fn leader_on_restored(&mut self, j: ServerId) {
        match self.leader_mut() {
            Some(l) if l.learners.contains(&j) => {
                l.recovering.remove(&j);
            }
            _ => self.ignore(Ignored::MessageFromStranger, Some(j), None),
        }
    }

    /// TLA+: `LeaderProcessACK(i, j)`.
    fn leader_process_ack(&mut self, j: ServerId, zxid: Zxid, out: &mut Vec<Action<P>>) {
        if self.is_recovering_learner(j) {
            // §7.1: an ACK of a recovering follower is ignored.
            self.ignore(Ignored::AckOfRecovering, Some(j), Some(zxid));
            self.trace(ActionKind::LeaderProcessAck, Some(j), None, out);
            return;
        }
        let Some(l) = self.leader() else { return };
        let committed = if l.zab_state == ZabState::Broadcast {
            self.log.committed()
        } else {
            self.log.last_zxid()
        };
        let outstanding = l.ack_sets.contains_key(&zxid);
        if l.zab_state != ZabState::Broadcast && !l.ackld_live.contains(&j) {
            // ZooKeeper's LearnerHandler reads the first ACK after the sync as the ACK of
            // NEWLEADER (`waitForNewLeaderAck`), so this one has the wrong zxid: the model's
            // AckInconsistent. Only `--bug zk4685` sends a proposal's ACK first.
            self.ignore(Ignored::AckNewLeaderWrongZxid, Some(j), Some(zxid));
        } else if zxid > committed && outstanding {
            self.leader_count_ack(j, zxid);
            self.leader_try_to_commit(zxid, out);
        } else if zxid <= committed {
            self.ignore(Ignored::AckAlreadyCommitted, Some(j), Some(zxid));
        } else {
            self.ignore(Ignored::AckUnknownZxid, Some(j), Some(zxid));
        }
        self.trace(ActionKind::LeaderProcessAck, Some(j), None, out);
    }

    /// TLA+: `LeaderBroadcastPROPOSAL(i)`, once per proposal not broadcast yet: under
    /// `--bug paper-redundant-propose` a PROPOSAL leaves a tick after the request, to whoever
    /// is synced *then*.
    fn leader_broadcast_proposals(&mut self, out: &mut Vec<Action<P>>) {
        loop {
            let Some(l) = self.leader() else { return };
            if l.zab_state != ZabState::Broadcast {
                return;
            }
            let Some(txn) = self.log.next_after(l.send_counter).cloned() else {
                return;
            };
            for k in self.recipients(false) {
                out.push(Action::Send {
                    to: k,
                    msg: QuorumMessage::Proposal(txn.clone()),
                });
            }
            if let Some(l) = self.leader_mut() {
                l.send_counter = txn.zxid;
            }
            self.trace(ActionKind::LeaderBroadcastProposal, None, None, out);
        }
    }

    /// `RemoveLearner`: drop `j`; step down when the rest is no quorum.
    pub(crate) fn remove_learner(&mut self, j: ServerId, out: &mut Vec<Action<P>>) {
        let Some(learners) = self.forget_learner(j, out) else {
            return;
        };
        // Only voters keep a leader in office (§10.2: observers count in no quorum).
        let voters = learners.iter().filter(|s| self.cfg.is_voter(**s)).count();
        if !self.cfg.is_quorum(voters) {
            self.go_looking(out);
        }
    }

    /// Drops learner `j` and closes its connection; returns the learners left.
    fn forget_learner(&mut self, j: ServerId, out: &mut Vec<Action<P>>) -> Option<Vec<ServerId>> {
        let l = self.leader_mut()?;
        l.learners.remove(&j);
        l.forwarding.remove(&j);
        l.silent_ticks.remove(&j);
        l.connecting_live.remove(&j);
        l.ackld_live.remove(&j);
        l.recovering.remove(&j);
        l.observers.remove(&j);
        l.observers_waiting.remove(&j);
        if let Some(e) = l.electing.get_mut(&j) {
            e.peer_last_zxid = None;
        }
        let learners: Vec<ServerId> = l.learners.iter().copied().collect();
        out.push(Action::Disconnect { peer: j });
        Some(learners)
    }

    /// Every tick: heartbeat the learners, drop the silent ones, enforce the phase limit.
    pub(crate) fn leader_tick(&mut self, out: &mut Vec<Action<P>>) {
        let (sync_limit, init_limit, me) = (self.cfg.sync_limit, self.cfg.init_limit, self.cfg.id);
        let Some(l) = self.leader_mut() else { return };
        l.phase_ticks += 1;
        if l.zab_state != ZabState::Broadcast && l.phase_ticks > init_limit {
            self.leader_timeout(out);
            return;
        }
        let mut silent = Vec::new();
        for (s, ticks) in &mut l.silent_ticks {
            *ticks += 1;
            let limit = if l.forwarding.contains(s) && l.zab_state == ZabState::Broadcast {
                sync_limit
            } else {
                init_limit
            };
            if *ticks > limit {
                silent.push(*s);
            }
        }
        let learners: Vec<ServerId> = l.learners.iter().filter(|s| **s != me).copied().collect();
        for s in learners {
            out.push(Action::SendHeartbeat { to: s });
        }
        if self.cfg.has(Bug::PaperRedundantPropose) {
            self.leader_broadcast_proposals(out);
        }
        for s in silent {
            if self.leader().is_some_and(|l| l.learners.contains(&s)) {
                self.remove_learner(s, out);
                self.trace(ActionKind::ConnectionLost, Some(s), None, out);
            }
        }
    }
}
