//! The transition relation: [`ZabModel`], its `actions` and `next_state`, and the helpers the
//! phase handlers share (votes, shutdowns, learner removal, the committed-log ghost).
//!
//! One file per Zab phase holds the handlers, each named after its TLA+ action in snake
//! case. A handler checks its guard on the current state and returns `None` when the action
//! is not enabled, so `next_state` is also the refinement checker's "is this step allowed?".

mod broadcast;
mod discovery;
mod election;
mod faults;
mod observer;
mod sync;

use crate::action::Action;
use crate::config::{Bug, Config};
use crate::state::{Idx, ModelState, Msg, ServerSet, Sid};
use std::sync::Arc;
use zab_spec::{Payload, QuorumMessage, ServerState, Txn, ZabState, Zxid};

/// Where client requests come from: the `k`-th request (0-based, counted over the whole run)
/// at a leader whose history is `history` becomes this payload, or `None` when the workload is
/// exhausted.
pub trait RequestSource<P>: Send + Sync {
    /// The payload of request `k`.
    fn request(&self, k: usize, history: &[Txn<P>]) -> Option<P>;
}

/// A source without requests: for replaying traces, where the trace names each payload.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRequests;

impl<P> RequestSource<P> for NoRequests {
    fn request(&self, _k: usize, _history: &[Txn<P>]) -> Option<P> {
        None
    }
}

/// The Zab model, generic over the transaction payload.
pub struct ZabModel<P> {
    /// Bounds and switches.
    pub cfg: Config,
    /// Where `LeaderProcessRequest` gets its payloads.
    pub requests: Arc<dyn RequestSource<P>>,
    /// Checker instrumentation (first-discovery latches, deadline); see [`crate::instrument`].
    pub instrument: Option<Arc<crate::instrument::Instrument>>,
    /// The invariants and examples, evaluated by index from the Stateright properties.
    pub(crate) tables: Arc<crate::instrument::Tables<P>>,
}

impl<P> Clone for ZabModel<P> {
    fn clone(&self) -> Self {
        ZabModel {
            cfg: self.cfg.clone(),
            requests: Arc::clone(&self.requests),
            instrument: self.instrument.clone(),
            tables: Arc::clone(&self.tables),
        }
    }
}

/// `(currentEpoch, last zxid, id)`: ZooKeeper's vote order, compared lexicographically.
pub type VoteKey = (zab_spec::Epoch, Zxid, Sid);

impl<P: Payload> ZabModel<P> {
    /// A model with the given bounds and request source.
    pub fn new(cfg: Config, requests: Arc<dyn RequestSource<P>>) -> ZabModel<P> {
        ZabModel {
            cfg,
            requests,
            instrument: None,
            tables: Arc::new(crate::instrument::Tables::new()),
        }
    }

    /// The number of servers.
    #[must_use]
    pub fn n(&self) -> u8 {
        self.cfg.servers
    }

    /// The initial state (`Init` in TLA+; `InitEpoch1` for `--init epoch1`).
    #[must_use]
    pub fn initial_state(&self) -> ModelState<P> {
        match self.cfg.init {
            crate::config::InitKind::Fresh => {
                let mut s = ModelState::initial(self.n());
                s.observers = self.cfg.observer_set();
                s
            }
            crate::config::InitKind::Epoch1 => self.epoch1_state(),
        }
    }

    /// Remix's `SetInitState`: the highest server leads epoch 1 in BROADCAST; request 0 is
    /// committed everywhere; request 1 is logged and self-acknowledged by the leader, and its
    /// PROPOSAL is in flight to every follower.
    fn epoch1_state(&self) -> ModelState<P> {
        use crate::state::{Electing, FollowerVars, LeaderVars, NewLeaderStage, Proposal};
        let n = self.n();
        let leader = n - 1;
        let epoch = zab_spec::Epoch(1);
        let mut s = ModelState::initial(n);
        let first = self
            .requests
            .request(0, &[])
            .expect("the workload has a first request");
        let t1 = Txn {
            zxid: Zxid::new(1, 1),
            payload: first,
        };
        let second = self
            .requests
            .request(1, std::slice::from_ref(&t1))
            .expect("a second request");
        let t2 = Txn {
            zxid: Zxid::new(1, 2),
            payload: second,
        };
        let all = (0..n).fold(ServerSet::EMPTY, ServerSet::with);
        for i in 0..n {
            let srv = s.srv_mut(i);
            srv.zab_state = ZabState::Broadcast;
            srv.accepted_epoch = epoch;
            srv.current_epoch = epoch;
            srv.history = vec![t1.clone()].into();
            srv.last_committed = 1;
            if i == leader {
                srv.history.push(t2.clone());
                srv.state = ServerState::Leading;
                srv.leader = Some(LeaderVars {
                    learners: all,
                    connecting: all,
                    connecting_live: all,
                    electing: vec![
                        Some(Electing {
                            peer_last_zxid: None,
                            in_quorum: true
                        });
                        usize::from(n)
                    ],
                    ackld_recv: all,
                    ackld_live: all,
                    forwarding: all.without(leader),
                    temp_max_epoch: epoch,
                    ack_sets: vec![ServerSet::single(leader)],
                    send_counter: if self.cfg.has(Bug::PaperRedundantPropose) {
                        2
                    } else {
                        0
                    },
                });
            } else {
                srv.state = ServerState::Following;
                srv.follower = Some(FollowerVars {
                    leader,
                    sync_mode: None,
                    nl_stage: NewLeaderStage::Done,
                    packets: Vec::new(),
                    sync_committed: 0,
                });
            }
            srv.persisted = srv.history.len() as Idx;
        }
        for f in 0..leader {
            s.send(leader, f, QuorumMessage::Proposal(t2.clone()));
        }
        for t in [&t1, &t2] {
            s.ghost.proposals.insert(Proposal {
                source: leader,
                epoch,
                txn: t.clone(),
            });
        }
        s.ghost.committed_log = vec![t1].into();
        s.ghost.epoch_leader.insert((epoch, leader));
        s
    }

    /// The zxid server `i` reports in its vote and ACKEPOCH: its last logged zxid, or under
    /// `--bug zk2845` the stale last applied one it kept in memory.
    #[must_use]
    pub fn reported_zxid(&self, s: &ModelState<P>, i: Sid) -> Zxid {
        let srv = s.srv(i);
        match srv.stale_last_processed {
            Some(k) => srv.zxid_at(k as usize),
            None => srv.last_zxid(),
        }
    }

    /// Whether `j`'s votes and acknowledgements count towards a quorum: it is not recovering
    /// from damaged storage (`spec/PROTOCOL.md` §7.1). The flag changes only when `j`'s
    /// connections break (a storage fault) or at UPTODATE, so reading it when a message of
    /// `j` is processed is the same as `j` stating it in that message (an ACK sent before
    /// UPTODATE may be counted after it: it acknowledges a transaction `j` logged after its
    /// restoration began, which is on its disk).
    #[must_use]
    pub fn counts(&self, s: &ModelState<P>, j: Sid) -> bool {
        !s.srv(j).recovering
    }

    /// Server `i`'s vote.
    #[must_use]
    pub fn vote(&self, s: &ModelState<P>, i: Sid) -> VoteKey {
        (s.srv(i).current_epoch, self.reported_zxid(s, i), i)
    }

    /// Whether a message from `j` is one `i` has a handler for in its current role: any
    /// other message is illegal and only `FilterNonexistentMessage` takes it.
    #[must_use]
    pub fn handles(&self, s: &ModelState<P>, i: Sid, j: Sid, m: &Msg<P>) -> bool {
        let srv = s.srv(i);
        let is_learner = srv.leader.as_ref().is_some_and(|l| l.learners.contains(j));
        let follows = srv.follower.as_ref().is_some_and(|f| f.leader == j);
        match m {
            QuorumMessage::FollowerInfo { .. }
            | QuorumMessage::AckEpoch { .. }
            | QuorumMessage::AckNewLeader { .. }
            | QuorumMessage::Ack { .. } => is_learner,
            QuorumMessage::LeaderInfo { .. }
            | QuorumMessage::Diff { .. }
            | QuorumMessage::Trunc { .. }
            | QuorumMessage::Snap { .. }
            | QuorumMessage::NewLeader { .. }
            | QuorumMessage::UpToDate => follows,
            QuorumMessage::Proposal(_) | QuorumMessage::Commit { .. } => {
                follows
                    && matches!(
                        srv.zab_state,
                        ZabState::Synchronization | ZabState::Broadcast
                    )
            }
            QuorumMessage::Inform(_) => {
                follows
                    && s.is_observer(i)
                    && matches!(
                        srv.zab_state,
                        ZabState::Synchronization | ZabState::Broadcast
                    )
            }
            // The model's observer connects with FOLLOWERINFO (PROTOCOL.md §10.2): it never
            // sends OBSERVERINFO.
            QuorumMessage::ObserverInfo { .. } => false,
        }
    }

    /// The action that receives the head of `j → i`.
    fn receive_action(&self, s: &ModelState<P>, i: Sid, j: Sid, m: &Msg<P>) -> Action<P> {
        if !self.handles(s, i, j, m) {
            return Action::FilterNonexistentMessage { i, j };
        }
        let in_sync = s.srv(i).zab_state == ZabState::Synchronization;
        match m {
            QuorumMessage::FollowerInfo { .. } => Action::LeaderProcessFollowerInfo { i, j },
            QuorumMessage::LeaderInfo { .. } => Action::FollowerProcessLeaderInfo { i, j },
            QuorumMessage::AckEpoch { .. } => Action::LeaderProcessAckEpoch { i, j },
            QuorumMessage::Diff { .. }
            | QuorumMessage::Trunc { .. }
            | QuorumMessage::Snap { .. } => Action::FollowerProcessSyncMessage { i, j },
            QuorumMessage::Proposal(_) if in_sync => Action::FollowerProcessProposalInSync { i, j },
            QuorumMessage::Proposal(_) => Action::FollowerProcessProposal { i, j },
            QuorumMessage::Commit { .. } if in_sync => Action::FollowerProcessCommitInSync { i, j },
            QuorumMessage::Commit { .. } => Action::FollowerProcessCommit { i, j },
            QuorumMessage::NewLeader { .. } => Action::FollowerProcessNewLeader { i, j },
            QuorumMessage::AckNewLeader { .. } => Action::LeaderProcessAckLd { i, j },
            QuorumMessage::UpToDate => Action::FollowerProcessUpToDate { i, j },
            QuorumMessage::Ack { .. } => Action::LeaderProcessAck { i, j },
            QuorumMessage::Inform(_) => Action::ObserverProcessInform { i, j },
            QuorumMessage::ObserverInfo { .. } => Action::FilterNonexistentMessage { i, j },
        }
    }

    /// Every action that may be enabled in `s`, in a fixed order (Stateright's paths and
    /// Explorer links are indices into this list). `next_state` has the final word.
    pub fn candidate_actions(&self, s: &ModelState<P>, out: &mut Vec<Action<P>>) {
        let n = s.n();
        for i in 0..n {
            let srv = s.srv(i);
            match srv.state {
                ServerState::Looking => {
                    out.push(Action::ElectLeader { i });
                    for j in 0..n {
                        if j != i && s.srv(j).state == ServerState::Leading {
                            out.push(Action::FollowLeader { i, j });
                        }
                    }
                }
                ServerState::Leading => {
                    if matches!(
                        srv.zab_state,
                        ZabState::Discovery | ZabState::Synchronization
                    ) {
                        out.push(Action::LeaderTimeout { i });
                    }
                    for j in 0..n {
                        out.push(Action::LeaderSyncFollower { i, j });
                    }
                    if srv.zab_state == ZabState::Broadcast {
                        let k = s.ghost.proposals.len();
                        if self.cfg.txns.is_none_or(|t| k < usize::from(t)) {
                            if let Some(payload) = self.requests.request(k, &srv.history) {
                                out.push(Action::LeaderProcessRequest { i, payload });
                            }
                        }
                        if self.cfg.has(Bug::PaperRedundantPropose) {
                            out.push(Action::LeaderBroadcastProposal { i });
                        }
                    }
                }
                ServerState::Following => {
                    if self.cfg.has(Bug::Zk4643) {
                        out.push(Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { i });
                    }
                }
            }
            for j in 0..n {
                if let Some(m) = s.head(j, i) {
                    out.push(self.receive_action(s, i, j, m));
                }
            }
            if (srv.persisted as usize) < srv.history.len() {
                out.push(Action::SyncProcessorLogRequest { i });
            }
            for k in srv.last_snapshot + 1..=srv.last_committed.min(srv.persisted) {
                out.push(Action::TakeSnapshot { i, k });
            }
            out.push(Action::NodeCrash { i });
            if self
                .cfg
                .storage_faults
                .is_none_or(|b| s.ghost.storage_faults < b)
            {
                out.push(Action::LoseEpochFiles { i });
                for k in srv.last_snapshot..srv.persisted {
                    out.push(Action::LoseLogSuffix { i, k });
                }
                out.push(Action::LoseDataDir { i });
            }
            for j in i + 1..n {
                out.push(Action::PartitionStart { i, j });
                out.push(Action::PartitionRecover { i, j });
            }
        }
    }

    /// The state after `a`, or `None` when `a` is not enabled in `s`.
    #[must_use]
    pub fn step(&self, s: &ModelState<P>, a: &Action<P>) -> Option<ModelState<P>> {
        if usize::from(a.servers().0) >= s.servers.len()
            || a.servers()
                .1
                .is_some_and(|j| usize::from(j) >= s.servers.len())
        {
            return None;
        }
        match a {
            Action::ElectLeader { i } => self.elect_leader(s, *i),
            Action::FollowLeader { i, j } => self.follow_leader(s, *i, *j),
            Action::LeaderTimeout { i } => self.leader_timeout(s, *i),
            Action::LeaderProcessFollowerInfo { i, j } => {
                self.leader_process_follower_info(s, *i, *j)
            }
            Action::FollowerProcessLeaderInfo { i, j } => {
                self.follower_process_leader_info(s, *i, *j)
            }
            Action::LeaderProcessAckEpoch { i, j } => self.leader_process_ack_epoch(s, *i, *j),
            Action::LeaderSyncFollower { i, j } => self.leader_sync_follower(s, *i, *j),
            Action::FollowerProcessSyncMessage { i, j } => {
                self.follower_process_sync_message(s, *i, *j)
            }
            Action::FollowerProcessProposalInSync { i, j } => {
                self.follower_process_proposal_in_sync(s, *i, *j)
            }
            Action::FollowerProcessCommitInSync { i, j } => {
                self.follower_process_commit_in_sync(s, *i, *j)
            }
            Action::FollowerProcessNewLeader { i, j } => {
                self.follower_process_new_leader(s, *i, *j)
            }
            Action::FollowerProcessNewLeaderAfterCurrentEpochUpdated { i } => {
                self.follower_process_new_leader_after_current_epoch_updated(s, *i)
            }
            Action::LeaderProcessAckLd { i, j } => self.leader_process_ack_ld(s, *i, *j),
            Action::FollowerProcessUpToDate { i, j } => self.follower_process_up_to_date(s, *i, *j),
            Action::LeaderProcessRequest { i, payload } => {
                self.leader_process_request(s, *i, payload.clone())
            }
            Action::LeaderBroadcastProposal { i } => self.leader_broadcast_proposal(s, *i),
            Action::SyncProcessorLogRequest { i } => self.sync_processor_log_request(s, *i),
            Action::FollowerProcessProposal { i, j } => self.follower_process_proposal(s, *i, *j),
            Action::LeaderProcessAck { i, j } => self.leader_process_ack(s, *i, *j),
            Action::FollowerProcessCommit { i, j } => self.follower_process_commit(s, *i, *j),
            Action::ObserverProcessInform { i, j } => self.observer_process_inform(s, *i, *j),
            Action::TakeSnapshot { i, k } => self.take_snapshot(s, *i, *k),
            Action::PartitionStart { i, j } => self.partition_start(s, *i, *j),
            Action::PartitionRecover { i, j } => self.partition_recover(s, *i, *j),
            Action::NodeCrash { i } => self.node_crash(s, *i),
            Action::LoseEpochFiles { i } => self.lose_epoch_files(s, *i),
            Action::LoseLogSuffix { i, k } => self.lose_log_suffix(s, *i, *k),
            Action::LoseDataDir { i } => self.lose_data_dir(s, *i),
            Action::FilterNonexistentMessage { i, j } => self.filter_nonexistent_message(s, *i, *j),
        }
    }

    // ----- helpers shared by the phases -------------------------------------------------

    /// A follower or leader stops and goes back to LOOKING (ZooKeeper `shutdown()`, TLA+
    /// `FollowerShutdown` / the server part of `LeaderShutdown`). A graceful shutdown drains
    /// the log thread, so the whole history becomes durable (a follower under `--bug zk4712`
    /// leaves it running instead); sync packets that were never logged are dropped. Channels
    /// are the caller's business.
    pub(crate) fn go_looking(&self, t: &mut ModelState<P>, i: Sid) {
        let bug_2845 = self.cfg.has(Bug::Zk2845);
        let srv = t.srv_mut(i);
        let bug_4712 = self.cfg.has(Bug::Zk4712) && srv.state == ServerState::Following;
        srv.state = ServerState::Looking;
        srv.zab_state = ZabState::Election;
        srv.leader = None;
        srv.follower = None;
        if bug_4712 && (srv.persisted as usize) < srv.history.len() {
            // ZOOKEEPER-4712: the log thread is not stopped, so it is not drained either; the
            // server reports the last zxid logged now, and logs the rest later.
            if srv.stale_last_processed.is_none() {
                srv.stale_last_processed = Some(srv.persisted);
            }
            return;
        }
        srv.persisted = srv.history.len() as Idx;
        if bug_2845 && (srv.last_committed as usize) < srv.history.len() {
            // ZOOKEEPER-2845: the in-memory database is not fast-forwarded from the log.
            if srv.stale_last_processed.is_none() {
                srv.stale_last_processed = Some(srv.last_committed);
            }
        }
    }

    /// `LeaderShutdown`: the leader and every follower connected to it go LOOKING and their
    /// connections close. With `crashed`, the leader itself is left to the caller.
    pub(crate) fn leader_shutdown(&self, t: &mut ModelState<P>, i: Sid, crashed: bool) {
        let learners = t
            .srv(i)
            .leader
            .as_ref()
            .map_or(ServerSet::EMPTY, |l| l.learners);
        for j in learners.without(i).iter() {
            self.go_looking(t, j);
            t.clean(i, j);
        }
        if crashed {
            t.srv_mut(i).leader = None;
        } else {
            self.go_looking(t, i);
        }
    }

    /// `RemoveLearner`: leader `i` loses its connection to `j` (ZooKeeper
    /// `removeLearnerHandler`); it steps down when the remaining learners are no quorum
    /// (of the voters: observers do not keep a leader up).
    pub(crate) fn remove_learner(&self, t: &mut ModelState<P>, i: Sid, j: Sid) {
        let Some(l) = t.srv_mut(i).leader.as_mut() else {
            return;
        };
        l.learners = l.learners.without(j);
        l.forwarding = l.forwarding.without(j);
        l.connecting_live = l.connecting_live.without(j);
        l.ackld_live = l.ackld_live.without(j);
        if let Some(e) = l.electing[usize::from(j)].as_mut() {
            e.peer_last_zxid = None;
        }
        let learners = l.learners;
        t.clean(i, j);
        if !t.is_quorum(learners) {
            self.leader_shutdown(t, i, false);
        }
    }

    /// Follower `i` of leader `j` stops following: it goes LOOKING and `j` removes it.
    pub(crate) fn follower_leaves(&self, t: &mut ModelState<P>, i: Sid, j: Sid) {
        self.go_looking(t, i);
        self.remove_learner(t, j, i);
    }

    /// The `committedLog` ghost: extended to leader `i`'s committed prefix when that prefix
    /// extends it; a prefix that does not extend it leaves it alone (the invariants then flag
    /// the leader).
    pub(crate) fn update_committed_log(t: &mut ModelState<P>, i: Sid) {
        let srv = &t.servers[usize::from(i)];
        let committed = srv.delivered();
        let log = &t.ghost.committed_log;
        if committed.len() > log.len() && committed.starts_with(log) {
            let more = committed[log.len()..].to_vec();
            t.ghost.committed_log.extend(more);
        }
    }

    /// The broadcast set of a leader for PROPOSAL (`propose`) or COMMIT (`commit`): synced
    /// followers, never observers (they get INFORM, [`Self::informees`]).
    pub(crate) fn recipients(&self, t: &ModelState<P>, i: Sid, commit: bool) -> ServerSet {
        let Some(l) = t.srv(i).leader.as_ref() else {
            return ServerSet::EMPTY;
        };
        let narrowed = if commit {
            self.cfg.has(Bug::PaperCommitldZxid)
        } else {
            self.cfg.has(Bug::PaperProposeRecipients)
        };
        // Under the paper bugs: only followers whose ACK of NEWLEADER this leader processed on
        // their current connection.
        let set = if narrowed {
            l.forwarding.intersect(l.ackld_live)
        } else {
            l.forwarding
        };
        set.intersect(t.voters()).without(i)
    }

    /// The synced observers of leader `i`: INFORM of every committed transaction goes there
    /// (ZooKeeper `Leader.inform`, `spec/PROTOCOL.md` §10.2).
    pub(crate) fn informees(t: &ModelState<P>, i: Sid) -> ServerSet {
        t.srv(i)
            .leader
            .as_ref()
            .map_or(ServerSet::EMPTY, |l| l.forwarding.intersect(t.observers))
    }
}

/// Spends one unit of a fault budget: `None` is unbounded (and leaves the counter alone, so
/// that unbounded runs do not tell states apart by how many faults happened).
pub(crate) fn spend(budget: Option<u8>, used: &mut u8) -> bool {
    match budget {
        None => true,
        Some(b) if *used < b => {
            *used += 1;
            true
        }
        Some(_) => false,
    }
}
