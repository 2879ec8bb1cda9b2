//! The follower's side of discovery, synchronization and broadcast (`spec/PROTOCOL.md` §4–§6),
//! one handler per model action, with the persistence order that fixes ZOOKEEPER-4646/4643.

use super::{Action, Ignored, Message, Peer, Persist, Role};
use zab_spec::sync::is_next_zxid;
use zab_spec::{ActionKind, Bug, Payload, QuorumMessage, ServerId, SyncMode, Txn, ZabState, Zxid};

/// Progress through NEWLEADER (the model's `NewLeaderStage`, TLA+ `connectInfo.nlRcv`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NewLeaderStage {
    /// NEWLEADER not received yet.
    Waiting,
    /// Only under `--bug zk4643`: NEWLEADER's currentEpoch is written, its packets are not
    /// logged yet; the next tick finishes it.
    EpochUpdated,
    /// NEWLEADER processed and acknowledged.
    Done,
}

/// Follower-only state (the model's `FollowerVars`).
#[derive(Clone, Debug)]
pub(crate) struct Follower<P> {
    pub(crate) leader: ServerId,
    pub(crate) zab_state: ZabState,
    pub(crate) sync_mode: Option<SyncMode>,
    /// Progress through NEWLEADER (the model's `nl_stage`).
    pub(crate) nl_stage: NewLeaderStage,
    /// `--bug zk4643` only: leader messages that arrived between the two halves of NEWLEADER
    /// (the learner thread handles them after the second half).
    pub(crate) deferred: Vec<Message<P>>,
    /// PROPOSALs received in synchronization before NEWLEADER, not logged yet.
    pub(crate) packets: Vec<Txn<P>>,
    /// The leader's sync says everything up to here is committed.
    pub(crate) sync_committed: Zxid,
    /// Ticks since the leader was last heard from.
    pub(crate) silent_ticks: u32,
}

impl<P> Follower<P> {
    pub(crate) fn new(leader: ServerId) -> Follower<P> {
        Follower {
            leader,
            zab_state: ZabState::Discovery,
            sync_mode: None,
            nl_stage: NewLeaderStage::Waiting,
            deferred: Vec::new(),
            packets: Vec::new(),
            sync_committed: Zxid::ZERO,
            silent_ticks: 0,
        }
    }
}

impl<P: Payload> Peer<P> {
    fn follower_mut(&mut self) -> Option<&mut Follower<P>> {
        match &mut self.role {
            Role::Following(f) => Some(f),
            _ => None,
        }
    }

    fn follower(&self) -> Option<&Follower<P>> {
        match &self.role {
            Role::Following(f) => Some(f),
            _ => None,
        }
    }

    pub(crate) fn follower_on_message(&mut self, msg: Message<P>, out: &mut Vec<Action<P>>) {
        let Some(f) = self.follower_mut() else { return };
        f.silent_ticks = 0;
        if f.nl_stage == NewLeaderStage::EpochUpdated {
            f.deferred.push(msg);
            return;
        }
        let (leader, zab_state) = (f.leader, f.zab_state);
        match msg {
            QuorumMessage::LeaderInfo { new_epoch } => {
                self.follower_process_leader_info(new_epoch, out)
            }
            m @ (QuorumMessage::Diff { .. }
            | QuorumMessage::Trunc { .. }
            | QuorumMessage::Snap { .. }) => {
                self.follower_process_sync_message(m, out);
            }
            QuorumMessage::Inform(txn) if self.cfg.is_observer() => {
                self.observer_process_inform(txn, out);
            }
            QuorumMessage::Proposal(_) | QuorumMessage::Commit { .. }
                if zab_state == ZabState::Broadcast && self.cfg.is_observer() =>
            {
                // §10.2: an observer in BROADCAST is sent INFORM only.
                self.ignore(Ignored::UnexpectedMessage, Some(leader), None);
            }
            QuorumMessage::Proposal(txn) if zab_state == ZabState::Synchronization => {
                self.follower_process_proposal_in_sync(txn, out);
            }
            QuorumMessage::Proposal(txn) if zab_state == ZabState::Broadcast => {
                self.follower_process_proposal(txn, out);
            }
            QuorumMessage::Commit { zxid } if zab_state == ZabState::Synchronization => {
                self.follower_process_commit_in_sync(zxid, out);
            }
            QuorumMessage::Commit { zxid } if zab_state == ZabState::Broadcast => {
                self.follower_process_commit(zxid, out);
            }
            QuorumMessage::NewLeader { zxid } => self.follower_process_new_leader(zxid, out),
            QuorumMessage::UpToDate => self.follower_process_up_to_date(out),
            _ => {
                self.ignore(Ignored::UnexpectedMessage, Some(leader), None);
                self.trace(
                    ActionKind::FilterNonexistentMessage,
                    Some(leader),
                    None,
                    out,
                );
            }
        }
    }

    /// TLA+: `FollowerProcessLEADERINFO(i, j)`: a newer epoch is accepted *durably before*
    /// ACKEPOCH(currentEpoch, last zxid) leaves; the same epoch gets ACKEPOCH(-1); an older one
    /// makes the follower leave.
    fn follower_process_leader_info(
        &mut self,
        new_epoch: zab_spec::Epoch,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(f) = self.follower() else { return };
        let (leader, zab_state) = (f.leader, f.zab_state);
        if new_epoch < self.accepted_epoch {
            self.go_looking(out);
            self.trace(
                ActionKind::FollowerProcessLeaderInfo,
                Some(leader),
                None,
                out,
            );
            return;
        }
        if zab_state == ZabState::Discovery {
            let current = if new_epoch > self.accepted_epoch {
                let current = self.current_epoch;
                self.persist_accepted_epoch(new_epoch, out);
                Some(current)
            } else {
                None
            };
            out.push(Action::Send {
                to: leader,
                msg: QuorumMessage::AckEpoch {
                    current_epoch: current,
                    last_zxid: self.reported_zxid(),
                },
            });
            if let Some(f) = self.follower_mut() {
                f.zab_state = ZabState::Synchronization;
            }
            self.role_changed(out);
        } else {
            self.ignore(Ignored::OutOfPhase, Some(leader), None);
        }
        self.trace(
            ActionKind::FollowerProcessLeaderInfo,
            Some(leader),
            None,
            out,
        );
    }

    /// TLA+: `FollowerProcessSyncMessage(i, j)`: DIFF keeps the log (committed up to its zxid),
    /// TRUNC cuts it on disk, SNAP replaces it (and the state) with the leader's snapshot, on
    /// disk before anything else is processed.
    fn follower_process_sync_message(&mut self, m: Message<P>, out: &mut Vec<Action<P>>) {
        let Some(f) = self.follower() else { return };
        let (leader, in_sync) = (f.leader, f.zab_state == ZabState::Synchronization);
        if in_sync {
            let outcome = match m {
                QuorumMessage::Diff { last_zxid } if self.log.contains(last_zxid) => {
                    Some((SyncMode::Diff, last_zxid))
                }
                QuorumMessage::Trunc { truncate_to }
                    if self.log.contains(truncate_to) && truncate_to >= self.log.committed() =>
                {
                    out.push(Action::Persist(Persist::Truncate { after: truncate_to }));
                    self.log.truncate_after(truncate_to);
                    Some((SyncMode::Trunc, truncate_to))
                }
                QuorumMessage::Snap {
                    last_zxid,
                    snapshot,
                } => {
                    out.push(Action::Persist(Persist::InstallSnapshot {
                        last_zxid,
                        data: snapshot,
                    }));
                    self.log.install_snapshot(last_zxid);
                    Some((SyncMode::Snap, last_zxid))
                }
                // A DIFF or TRUNC that does not fit this log (the model flags it).
                _ => None,
            };
            if let Some((mode, _)) = outcome {
                if mode != SyncMode::Diff {
                    self.stale_last_processed = None;
                }
            }
            if outcome.is_none() {
                // A leader that sends a DIFF or TRUNC this log cannot take is not one to
                // follow: drop it and elect again (never apply it, never stop the server).
                self.ignore(Ignored::SyncMessageMisfit, Some(leader), None);
                tracing::error!(
                    leader = leader.0,
                    last_zxid = %self.log.last_zxid(),
                    committed = %self.log.committed(),
                    "bad DIFF or TRUNC from the leader: dropping it and going back to LOOKING"
                );
                self.go_looking(out);
                self.trace(
                    ActionKind::FollowerProcessSyncMessage,
                    Some(leader),
                    None,
                    out,
                );
                return;
            }
            if let (Some((mode, point)), Some(f)) = (outcome, self.follower_mut()) {
                f.sync_mode = Some(mode);
                f.sync_committed = point;
            }
        } else {
            self.ignore(Ignored::SyncMessageMisfit, Some(leader), None);
        }
        self.trace(
            ActionKind::FollowerProcessSyncMessage,
            Some(leader),
            None,
            out,
        );
    }

    /// TLA+: `FollowerProcessPROPOSALInSync(i, j)`.
    fn follower_process_proposal_in_sync(&mut self, txn: Txn<P>, out: &mut Vec<Action<P>>) {
        let last_logged = self.log.last_zxid();
        // ZOOKEEPER-3911: every proposal of the sync stays a packet until UPTODATE.
        let held = self.cfg.has(Bug::Zk3911);
        let Some(f) = self.follower_mut() else { return };
        let leader = f.leader;
        let last = f.packets.last().map_or(last_logged, |p| p.zxid);
        if !is_next_zxid(last, txn.zxid) {
            self.ignore(Ignored::OutOfOrderProposal, Some(leader), Some(txn.zxid));
        } else if f.nl_stage == NewLeaderStage::Done && !held {
            self.log.append(txn.clone());
            out.push(Action::Persist(Persist::Append {
                txns: vec![txn],
                wait: false,
            }));
        } else {
            f.packets.push(txn);
        }
        self.trace(
            ActionKind::FollowerProcessProposalInSync,
            Some(leader),
            None,
            out,
        );
    }

    /// TLA+: `FollowerProcessCOMMITInSync(i, j)`: the next synced transaction is committed
    /// (delivered at UPTODATE).
    fn follower_process_commit_in_sync(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let next_logged =
            |log: &super::log::ReplicaLog<P>, after: Zxid| log.next_after(after).map(|t| t.zxid);
        let Some(f) = self.follower() else { return };
        let leader = f.leader;
        // ZOOKEEPER-4394: after NEWLEADER the pending packets were dropped, so the COMMIT
        // finds nothing to commit.
        let dropped = self.cfg.has(Bug::Zk4394) && f.nl_stage == NewLeaderStage::Done;
        let next = next_logged(&self.log, f.sync_committed).or_else(|| {
            f.packets
                .iter()
                .find(|p| p.zxid > f.sync_committed)
                .map(|p| p.zxid)
        });
        if next == Some(zxid) && !dropped {
            if let Some(f) = self.follower_mut() {
                f.sync_committed = zxid;
            }
        } else {
            self.ignore(Ignored::CommitWrongZxid, Some(leader), Some(zxid));
        }
        self.trace(
            ActionKind::FollowerProcessCommitInSync,
            Some(leader),
            None,
            out,
        );
    }

    /// TLA+: `FollowerProcessNEWLEADER(i, j)`, in the order that fixes ZOOKEEPER-4646 and
    /// 4643: (1) log the synced transactions and fsync, (2) then write the new currentEpoch,
    /// (3) then ACK NEWLEADER, then ACK every synced transaction not yet committed.
    ///
    /// `--bug zk4646` hands the packets to the log thread and acknowledges at once;
    /// `--bug zk4643` writes the epoch now and logs the packets on the next tick
    /// ([`Self::follower_process_new_leader_after_current_epoch_updated`]).
    fn follower_process_new_leader(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let Some(f) = self.follower() else { return };
        let leader = f.leader;
        if f.zab_state != ZabState::Synchronization || f.nl_stage != NewLeaderStage::Waiting {
            self.ignore(Ignored::OutOfPhase, Some(leader), Some(zxid));
        } else {
            self.new_leader_steps(zxid, leader, out);
        }
        self.trace(
            ActionKind::FollowerProcessNewLeader,
            Some(leader),
            None,
            out,
        );
    }

    /// What NEWLEADER does in synchronization, in the fixed order or a switch's.
    fn new_leader_steps(&mut self, zxid: Zxid, leader: ServerId, out: &mut Vec<Action<P>>) {
        let accepted = self.accepted_epoch;
        if self.cfg.has(Bug::Zk4643) {
            if let Some(f) = self.follower_mut() {
                f.nl_stage = NewLeaderStage::EpochUpdated;
            }
            self.persist_current_epoch(accepted, out);
            return;
        }
        if self.cfg.has(Bug::Zk4646) {
            let Some(f) = self.follower_mut() else { return };
            let packets = std::mem::take(&mut f.packets);
            f.nl_stage = NewLeaderStage::Done;
            for t in &packets {
                self.log.append(t.clone());
            }
            self.persist_current_epoch(accepted, out);
            if !packets.is_empty() {
                out.push(Action::Persist(Persist::Append {
                    txns: packets,
                    wait: false,
                }));
            }
            out.push(Action::Send {
                to: leader,
                msg: QuorumMessage::AckNewLeader { zxid },
            });
            return;
        }
        if self.cfg.has(Bug::Zk3911) {
            // The packets stay in memory until UPTODATE; NEWLEADER is acknowledged now.
            if let Some(f) = self.follower_mut() {
                f.nl_stage = NewLeaderStage::Done;
            }
            self.persist_current_epoch(accepted, out);
            out.push(Action::Send {
                to: leader,
                msg: QuorumMessage::AckNewLeader { zxid },
            });
            return;
        }
        self.log_sync_packets_and_ack(zxid, true, out);
    }

    /// TLA+: `FollowerProcessNEWLEADERAfterCurrentEpochUpdated(i)`: under `--bug zk4643`, the
    /// second half of NEWLEADER, a tick after the first: the packets are logged and NEWLEADER
    /// is acknowledged.
    fn follower_process_new_leader_after_current_epoch_updated(
        &mut self,
        out: &mut Vec<Action<P>>,
    ) {
        let Some(f) = self.follower_mut() else { return };
        if f.nl_stage != NewLeaderStage::EpochUpdated {
            return;
        }
        // `log_sync_packets_and_ack` moves the stage on to Done.
        let deferred = std::mem::take(&mut f.deferred);
        let zxid = Zxid::epoch_start(self.accepted_epoch);
        self.log_sync_packets_and_ack(zxid, false, out);
        self.trace(
            ActionKind::FollowerProcessNewLeaderAfterCurrentEpochUpdated,
            None,
            None,
            out,
        );
        for msg in deferred {
            self.follower_on_message(msg, out);
        }
    }

    /// Logs the sync packets durably (fsync before the next action), writes currentEpoch
    /// (with `write_epoch`; `--bug zk4643` wrote it already), then ACKs NEWLEADER and every synced transaction beyond the
    /// sync point.
    fn log_sync_packets_and_ack(
        &mut self,
        zxid: Zxid,
        write_epoch: bool,
        out: &mut Vec<Action<P>>,
    ) {
        let accepted = self.accepted_epoch;
        let acks_first = self.cfg.has(Bug::Zk4685);
        let last_logged = self.log.last_zxid();
        let Some(f) = self.follower_mut() else { return };
        let leader = f.leader;
        let packets = std::mem::take(&mut f.packets);
        f.nl_stage = NewLeaderStage::Done;
        // ZOOKEEPER-4685: the log thread acknowledges every packet it logs, committed ones
        // too (ZooKeeper's SendAckRequestProcessor).
        let sync_committed = if acks_first {
            f.sync_committed.min(last_logged)
        } else {
            f.sync_committed
        };
        if !packets.is_empty() {
            for t in &packets {
                self.log.append(t.clone());
            }
            out.push(Action::Persist(Persist::Append {
                txns: packets,
                wait: true,
            }));
        }
        // Everything else in the log was durable already (this server was LOOKING).
        self.log.set_persisted(self.log.last_zxid());
        if write_epoch {
            self.persist_current_epoch(accepted, out);
        }
        // ZOOKEEPER-4685: the log thread's ACKs win the race with the ACK of NEWLEADER.
        let ack_ld = Action::Send {
            to: leader,
            msg: QuorumMessage::AckNewLeader { zxid },
        };
        if self.cfg.is_observer() {
            // §10.2: an observer acknowledges NEWLEADER (uncounted) but never a transaction.
            out.push(ack_ld);
            return;
        }
        if !acks_first {
            out.push(ack_ld.clone());
        }
        for t in self.log.after(sync_committed) {
            out.push(Action::Send {
                to: leader,
                msg: QuorumMessage::Ack { zxid: t.zxid },
            });
        }
        if acks_first {
            out.push(ack_ld);
        }
    }

    /// TLA+: `FollowerProcessUPTODATE(i, j)`: deliver up to the sync point, start BROADCAST.
    fn follower_process_up_to_date(&mut self, out: &mut Vec<Action<P>>) {
        let Some(f) = self.follower() else { return };
        let (leader, ok, point) = (
            f.leader,
            f.zab_state == ZabState::Synchronization && f.nl_stage == NewLeaderStage::Done,
            f.sync_committed,
        );
        if ok {
            self.stale_last_processed = None;
            if self.cfg.has(Bug::Zk3911) {
                // ZOOKEEPER-3911: the synced proposals go to the log thread only now.
                let packets = self
                    .follower_mut()
                    .map(|f| std::mem::take(&mut f.packets))
                    .unwrap_or_default();
                if !packets.is_empty() {
                    for t in &packets {
                        self.log.append(t.clone());
                    }
                    out.push(Action::Persist(Persist::Append {
                        txns: packets,
                        wait: false,
                    }));
                }
            }
            self.deliver_up_to(point, out);
            if let Some(f) = self.follower_mut() {
                f.zab_state = ZabState::Broadcast;
                f.sync_mode = None;
            }
            if self.recovering {
                // §7.1: restored by a leader that a quorum of intact servers established,
                // which synced this server to its history (every committed transaction).
                tracing::info!(
                    server = self.cfg.id.0,
                    leader = leader.0,
                    "restored from the leader: no longer recovering"
                );
                self.recovering = false;
                out.push(Action::Persist(Persist::Recovering(false)));
                out.push(Action::SendRestored { to: leader });
            }
            self.role_changed(out);
        } else {
            self.ignore(Ignored::OutOfPhase, Some(leader), None);
        }
        self.trace(ActionKind::FollowerProcessUpToDate, Some(leader), None, out);
    }

    /// TLA+: `FollowerProcessPROPOSAL(i, j)`: accepted in memory, queued for the log thread.
    fn follower_process_proposal(&mut self, txn: Txn<P>, out: &mut Vec<Action<P>>) {
        let Some(leader) = self.follower().map(|f| f.leader) else {
            return;
        };
        let zxid = txn.zxid;
        if is_next_zxid(self.log.last_zxid(), zxid) {
            self.log.append(txn.clone());
            out.push(Action::Persist(Persist::Append {
                txns: vec![txn],
                wait: false,
            }));
            assert!(
                self.log.last_zxid() == zxid,
                "FollowerProcessPROPOSAL: the accepted proposal is the last logged"
            );
        } else {
            self.ignore(Ignored::OutOfOrderProposal, Some(leader), Some(zxid));
        }
        self.trace(ActionKind::FollowerProcessProposal, Some(leader), None, out);
    }

    /// TLA+: `FollowerProcessCOMMIT(i, j)`: delivers the next pending transaction.
    fn follower_process_commit(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let Some(leader) = self.follower().map(|f| f.leader) else {
            return;
        };
        if self.log.next_after(self.log.committed()).map(|t| t.zxid) == Some(zxid) {
            self.deliver_up_to(zxid, out);
            assert!(
                self.log.committed() == zxid,
                "FollowerProcessCOMMIT: a COMMIT delivers exactly up to its zxid"
            );
        } else {
            self.ignore(Ignored::CommitWrongZxid, Some(leader), Some(zxid));
        }
        self.trace(ActionKind::FollowerProcessCommit, Some(leader), None, out);
    }

    /// `ObserverProcessINFORM(i, j)` (§10.2, ZooKeeper `Observer.processPacket` case INFORM
    /// and `Learner.syncWithLeader`'s): a committed transaction. In synchronization it joins
    /// the synced transactions (logged now after NEWLEADER, with it before) and moves the sync
    /// point, so UPTODATE delivers it; in BROADCAST it is logged (the log thread makes it
    /// durable; an observer never ACKs) and applied at once.
    fn observer_process_inform(&mut self, txn: Txn<P>, out: &mut Vec<Action<P>>) {
        let last_logged = self.log.last_zxid();
        let Some(f) = self.follower_mut() else { return };
        let (leader, zxid) = (f.leader, txn.zxid);
        match f.zab_state {
            ZabState::Synchronization => {
                let last = f.packets.last().map_or(last_logged, |p| p.zxid);
                if !is_next_zxid(last, zxid) {
                    self.ignore(Ignored::OutOfOrderProposal, Some(leader), Some(zxid));
                } else if f.nl_stage == NewLeaderStage::Done {
                    f.sync_committed = zxid;
                    self.log.append(txn.clone());
                    out.push(Action::Persist(Persist::Append {
                        txns: vec![txn],
                        wait: false,
                    }));
                } else {
                    f.sync_committed = zxid;
                    f.packets.push(txn);
                }
            }
            ZabState::Broadcast if is_next_zxid(last_logged, zxid) => {
                self.log.append(txn.clone());
                out.push(Action::Persist(Persist::Append {
                    txns: vec![txn],
                    wait: false,
                }));
                self.deliver_up_to(zxid, out);
                assert!(
                    self.log.committed() == zxid && self.log.last_zxid() == zxid,
                    "ObserverProcessINFORM: the informed transaction is logged and delivered"
                );
            }
            ZabState::Broadcast => {
                self.ignore(Ignored::OutOfOrderProposal, Some(leader), Some(zxid));
            }
            ZabState::Election | ZabState::Discovery => {
                self.ignore(Ignored::OutOfPhase, Some(leader), Some(zxid));
            }
        }
        self.trace(ActionKind::ObserverProcessInform, Some(leader), None, out);
    }

    /// Every tick: a leader silent for longer than the phase allows means the connection is
    /// gone (PartitionStart + PartitionRecover in the model).
    pub(crate) fn follower_tick(&mut self, out: &mut Vec<Action<P>>) {
        let (sync_limit, init_limit) = (self.cfg.sync_limit, self.cfg.init_limit);
        self.follower_process_new_leader_after_current_epoch_updated(out);
        let Some(f) = self.follower_mut() else { return };
        f.silent_ticks += 1;
        let limit = if f.zab_state == ZabState::Broadcast {
            sync_limit
        } else {
            init_limit
        };
        if f.silent_ticks > limit {
            let leader = f.leader;
            self.go_looking(out);
            self.trace(ActionKind::ConnectionLost, Some(leader), None, out);
        }
    }
}
