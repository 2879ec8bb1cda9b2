//! The protocol core: Zab as a deterministic state machine, `Peer::step(Input) -> [Action]`.
//!
//! The core does no I/O, reads no clock and draws no random number. The runtime feeds it
//! inputs (messages, connection events, timer firings, durability notifications, client writes)
//! and executes the actions it returns *in order*: a `Persist` that is synchronous must be durable
//! before any later action of the same batch runs, so a message that promises durability (ACK
//! of NEWLEADER, ACKEPOCH after a new accepted epoch, LEADERINFO) never leaves before the fsync
//! that makes it true. An ACK of a proposal is only emitted on a `Durable` input, i.e. after the
//! log thread's fsync (`spec/PROTOCOL.md` §5.2, §6).
//!
//! Every step that is an action of the model (`spec/PROTOCOL.md`, `zab-model`) emits a
//! [`TraceEvent`] named after it when tracing is on (`PeerConfig::trace`), with the projection of
//! this server's state the model tracks; `zab-refinement` replays those against the model.
//! Handlers carry the TLA+ names in snake case.

mod election;
mod follower;
pub mod ignored;
mod leader;
pub mod log;
#[cfg(test)]
mod tests;

use crate::storage::SnapData;
use election::Fle;
use follower::{Follower, NewLeaderStage};
pub use ignored::{Ignored, IgnoredCounts};
use leader::Leader;
use log::ReplicaLog;
use std::collections::BTreeMap;
use zab_spec::message::Notification;
use zab_spec::{
    ActionKind, Bug, Epoch, Payload, QuorumMessage, ServerId, ServerState, Txn, ZabState, Zxid,
};

/// A Zab message as the server sends and receives it: SNAP carries serialized state, in
/// memory or in the file a follower received it into (the core only hands it on).
pub type Message<P> = QuorumMessage<P, SnapData>;

/// ZooKeeper's default `commitLogCount` (`ZKDatabase.DEFAULT_COMMIT_LOG_COUNT`).
pub const DEFAULT_COMMIT_LOG_COUNT: usize = 500;

/// Static configuration of a peer.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// This server.
    pub id: ServerId,
    /// Every voting member (this server included, unless it observes).
    pub servers: Vec<ServerId>,
    /// Every observer (`spec/PROTOCOL.md` §10.2): learners that never vote, never ACK and
    /// count in no quorum. This server is one when its id is here.
    pub observers: Vec<ServerId>,
    /// ZooKeeper's `tickTime`, in milliseconds: the unit of the limits below.
    pub tick_ms: u64,
    /// Ticks a leader may spend in discovery and in synchronization, and a follower on
    /// connecting and syncing (`initLimit`).
    pub init_limit: u32,
    /// Ticks a leader and a follower in BROADCAST may go without hearing from each other
    /// (`syncLimit`).
    pub sync_limit: u32,
    /// Fast leader election's `finalizeWait`, in milliseconds.
    pub finalize_wait_ms: u64,
    /// Fast leader election's maximum notification interval, in milliseconds.
    pub max_notification_interval_ms: u64,
    /// Emit a [`TraceEvent`] for every model action.
    pub trace: bool,
    /// Re-introduce a known bug (`spec/PROTOCOL.md` §9): for the simulation tests that show
    /// refinement finds it. Never set by `zabd`.
    pub bug: Option<Bug>,
    /// ZooKeeper's `commitLogCount`: how many committed, durable transactions keep their
    /// payloads in memory (the outstanding ones always do); older ones after the snapshot
    /// point are read back from the log on disk when a follower is DIFFed from there.
    pub commit_log_count: usize,
}

impl PeerConfig {
    /// Whether `bug` is switched on.
    #[must_use]
    pub fn has(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }

    /// ZooKeeper's defaults for an ensemble: tick 2000 ms, initLimit 10, syncLimit 5.
    #[must_use]
    pub fn new(id: ServerId, servers: Vec<ServerId>) -> PeerConfig {
        PeerConfig {
            id,
            servers,
            observers: Vec::new(),
            tick_ms: 2000,
            init_limit: 10,
            sync_limit: 5,
            finalize_wait_ms: 200,
            max_notification_interval_ms: 60_000,
            trace: false,
            bug: None,
            commit_log_count: DEFAULT_COMMIT_LOG_COUNT,
        }
    }

    /// Whether `count` servers are a strict majority of the ensemble (its voters).
    #[must_use]
    pub fn is_quorum(&self, count: usize) -> bool {
        2 * count > self.servers.len()
    }

    /// Whether this server is an observer (§10.2).
    #[must_use]
    pub fn is_observer(&self) -> bool {
        self.observers.contains(&self.id)
    }

    /// Whether `s` is a voting member: the only servers any quorum counts.
    #[must_use]
    pub fn is_voter(&self, s: ServerId) -> bool {
        self.servers.contains(&s) && !self.observers.contains(&s)
    }
}

/// A timer the core asks the runtime to arm; arming an armed timer re-arms it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Fast leader election: no notification for a while, send ours again.
    ElectionNotify,
    /// Fast leader election: `finalizeWait` after a quorum agreed.
    ElectionFinalize,
    /// Every tick: heartbeats, liveness checks, phase limits.
    Tick,
}

/// A durable operation, executed by the runtime in order with the other actions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Persist<P> {
    /// Append transactions to the log. With `wait`, the fsync completes before the next
    /// action; without, the log thread makes them durable later and reports `Input::Durable`.
    Append {
        /// The transactions, in zxid order.
        txns: Vec<Txn<P>>,
        /// Whether later actions wait for the fsync.
        wait: bool,
    },
    /// Everything appended so far is durable before the next action (a graceful shutdown
    /// drains the log thread).
    Flush,
    /// Cut the log after `after`, durably, before the next action (TRUNC).
    Truncate {
        /// The last zxid kept.
        after: Zxid,
    },
    /// Replace the log and the state with a snapshot received from the leader (SNAP),
    /// durably, before the next action.
    InstallSnapshot {
        /// The last zxid in the snapshot.
        last_zxid: Zxid,
        /// The serialized state.
        data: SnapData,
    },
    /// Write `acceptedEpoch` (atomically, durably) before the next action.
    AcceptedEpoch(Epoch),
    /// Write `currentEpoch` (atomically, durably) before the next action.
    CurrentEpoch(Epoch),
    /// Set (`true`) or clear the durable `recovering` flag (`spec/PROTOCOL.md` §7.1)
    /// atomically and durably before the next action.
    Recovering(bool),
}

/// What a server is doing, for the runtime (request routing) and for operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    /// LOOKING, FOLLOWING or LEADING.
    pub state: ServerState,
    /// The Zab phase.
    pub zab_state: ZabState,
    /// The leader, when following or leading.
    pub leader: Option<ServerId>,
    /// The epoch the server works in (its accepted epoch).
    pub epoch: Epoch,
    /// This server is an observer (§10.2): FOLLOWING means observing.
    pub observer: bool,
}

/// Something the runtime must do, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action<P> {
    /// Send a leader-election notification.
    SendNotification {
        /// The receiver.
        to: ServerId,
        /// The notification.
        notification: Notification,
    },
    /// Open a quorum connection to the leader (the handshake ends with `Input::Connected`).
    Connect {
        /// The leader.
        leader: ServerId,
    },
    /// Close the quorum connection with `peer`.
    Disconnect {
        /// The other end.
        peer: ServerId,
    },
    /// Send a Zab message on the quorum connection.
    Send {
        /// The receiver.
        to: ServerId,
        /// The message.
        msg: Message<P>,
    },
    /// Send SNAP with the serialized state the runtime has *now* (every earlier `Deliver` of
    /// this batch applied): the state at the delivered mark, `last_zxid`.
    SendSnapshot {
        /// The receiver.
        to: ServerId,
        /// The zxid the state is at.
        last_zxid: Zxid,
    },
    /// Send, read back from the log on disk (off the replica thread, in order with the
    /// other sends to `to`: before every later one), a PROPOSAL for every logged transaction
    /// after `after` up to `through`, each followed by a COMMIT if it is at or before
    /// `committed`. Used by a DIFF or TRUNC from a point whose transactions are on disk
    /// only ([`log::ReplicaLog::evict`]).
    SendLogged {
        /// The receiver.
        to: ServerId,
        /// The last transaction the receiver has (not sent).
        after: Zxid,
        /// The last transaction to send: every later one is in memory and follows as `Send`.
        through: Zxid,
        /// The leader's commit point for this sync.
        committed: Zxid,
    },
    /// Send a heartbeat on the quorum connection.
    SendHeartbeat {
        /// The receiver.
        to: ServerId,
    },
    /// Tell the leader, on the quorum connection, that this follower is restored (it
    /// processed UPTODATE while recovering, `spec/PROTOCOL.md` §7.1): its ACKs sent after
    /// this count.
    SendRestored {
        /// The leader.
        to: ServerId,
    },
    /// A durable operation.
    Persist(Persist<P>),
    /// Arm (or re-arm) a timer.
    SetTimer {
        /// Which.
        timer: Timer,
        /// Delay.
        after_ms: u64,
    },
    /// Disarm a timer.
    CancelTimer(Timer),
    /// Apply a committed transaction to the state machine (always in zxid order).
    Deliver(Txn<P>),
    /// The server's role changed.
    RoleChanged(RoleInfo),
    /// A model action happened (only with `PeerConfig::trace`).
    Trace(TraceEvent<P>),
}

/// The projection of a server's state that the model tracks (`spec/PROTOCOL.md` §2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// LOOKING, FOLLOWING or LEADING.
    pub state: ServerState,
    /// The Zab phase.
    pub zab_state: ZabState,
    /// `acceptedEpoch`.
    pub accepted_epoch: Epoch,
    /// `currentEpoch`.
    pub current_epoch: Epoch,
    /// `lastSnapshot`, as a zxid.
    pub snapshot: Zxid,
    /// The zxids of the log after the snapshot point.
    pub log: Vec<Zxid>,
    /// `persisted`, as a zxid.
    pub persisted: Zxid,
    /// `lastCommitted`, as a zxid.
    pub committed: Zxid,
    /// `recovering` (§7.1): the durable flag, or a server that started with no durable state
    /// and does not know yet whether its data directory was wiped.
    pub recovering: bool,
}

/// One model action taken by this server, with the state it left (for trace refinement).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEvent<P> {
    /// The action (`spec/PROTOCOL.md`, named by `zab_spec::ActionKind`);
    /// `ConnectionLost` stands for the pair `PartitionStart`, `PartitionRecover` (a connection
    /// broke without a partition).
    pub action: ActionKind,
    /// The server taking the step.
    pub i: ServerId,
    /// The peer, for two-server actions.
    pub j: Option<ServerId>,
    /// The payload, for `LeaderProcessRequest`.
    pub payload: Option<P>,
    /// This server's state after the step.
    pub summary: Summary,
}

/// An input to the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input<P> {
    /// The server starts (after recovery): it begins looking for a leader.
    Start,
    /// A leader-election notification arrived.
    Notification {
        /// The sender.
        from: ServerId,
        /// The notification.
        notification: Notification,
    },
    /// The quorum connection to `leader` is up (this server asked for it with `Connect`).
    Connected {
        /// The leader.
        leader: ServerId,
    },
    /// A learner's quorum connection to this server is up.
    LearnerConnected {
        /// The learner.
        learner: ServerId,
    },
    /// The quorum connection with `peer` is gone.
    Disconnected {
        /// The other end.
        peer: ServerId,
    },
    /// A Zab message arrived on the quorum connection.
    Message {
        /// The sender.
        from: ServerId,
        /// The message.
        msg: Message<P>,
    },
    /// A heartbeat arrived on the quorum connection.
    Heartbeat {
        /// The sender.
        from: ServerId,
    },
    /// A follower reports it is restored (it processed UPTODATE while recovering).
    Restored {
        /// The sender.
        from: ServerId,
    },
    /// A timer fired.
    Timer(Timer),
    /// The log is durable up to `zxid` (the log thread's fsync completed).
    Durable {
        /// The last durable zxid.
        zxid: Zxid,
    },
    /// A client write, already prepared into a transaction payload (leader only).
    Propose {
        /// The transaction payload.
        payload: P,
    },
    /// The runtime wrote a snapshot of the state at `zxid` (the delivered mark when it
    /// started); the core decides whether to adopt it.
    SnapshotWritten {
        /// The snapshot's last zxid.
        zxid: Zxid,
    },
}

/// The server's role and the role's variables.
// One per server, replaced only on a role change: the leader's variant being larger costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Role<P> {
    Looking {
        /// Decided to follow this leader; waiting for the connection.
        connecting_to: Option<ServerId>,
        /// Ticks spent connecting.
        ticks: u32,
    },
    Following(Follower<P>),
    Leading(Leader),
}

/// Why `Propose` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotLeader {
    /// This server does not lead; the hint is the leader it follows, if any.
    Follower(Option<ServerId>),
    /// This server leads but is not established yet (not in BROADCAST).
    NotReady,
}

/// One Zab participant. Owns all protocol state; does no I/O.
#[derive(Debug)]
pub struct Peer<P> {
    cfg: PeerConfig,
    accepted_epoch: Epoch,
    current_epoch: Epoch,
    log: ReplicaLog<P>,
    role: Role<P>,
    fle: Fle,
    /// `--bug zk2845` only: the last applied zxid the in-memory database kept when the
    /// server went LOOKING, reported instead of the last logged one (the model's
    /// `staleLastProcessed`). Always `None` without the bug.
    stale_last_processed: Option<Zxid>,
    /// Inputs ignored so far, by reason.
    ignored: IgnoredCounts,
    /// The durable `recovering` flag (`spec/PROTOCOL.md` §7.1): this server's durable state
    /// was damaged; it neither votes as complete nor acknowledges as durable until a leader
    /// established by intact servers has restored it (UPTODATE).
    recovering: bool,
    /// This server started with no durable state at all in a multi-server ensemble: a
    /// server that never joined looks exactly like one whose data directory was wiped. Until
    /// it knows, it behaves as recovering; here are the `empty` flags the other members
    /// reported so far. `None` once resolved (§7.1, "detects the damage").
    wipe_check: Option<BTreeMap<ServerId, bool>>,
}

impl<P: Payload> Peer<P> {
    /// A peer recovered from its durable state. Call `step(Input::Start)` next.
    #[must_use]
    pub fn new(
        cfg: PeerConfig,
        accepted_epoch: Epoch,
        current_epoch: Epoch,
        log: ReplicaLog<P>,
    ) -> Peer<P> {
        assert!(
            current_epoch <= accepted_epoch,
            "WellFormed: currentEpoch <= acceptedEpoch"
        );
        assert!(
            cfg.servers.contains(&cfg.id) != cfg.observers.contains(&cfg.id),
            "a peer is a member of its ensemble, as a voter or as an observer"
        );
        let fle = Fle::new(cfg.id);
        let empty = accepted_epoch == Epoch(0)
            && current_epoch == Epoch(0)
            && log.last_zxid() == Zxid::ZERO
            && log.snapshot() == Zxid::ZERO;
        // An observer's votes and acknowledgements never count, whatever its storage holds:
        // it has nothing to check.
        let wipe_check = (empty && cfg.servers.len() > 1 && !cfg.is_observer()).then(BTreeMap::new);
        Peer {
            cfg,
            accepted_epoch,
            current_epoch,
            log,
            role: Role::Looking {
                connecting_to: None,
                ticks: 0,
            },
            fle,
            stale_last_processed: None,
            ignored: IgnoredCounts::default(),
            recovering: false,
            wipe_check,
        }
    }

    /// The peer restarts with the durable `recovering` flag as recovery found it: set, or
    /// newly set because recovery detected damage (the runtime persisted it first).
    #[must_use]
    pub fn with_recovering(mut self, recovering: bool) -> Peer<P> {
        self.recovering = recovering;
        if recovering {
            self.wipe_check = None;
        }
        self
    }

    /// Whether this server's vote and acknowledgements do not count (§7.1): it is
    /// recovering, or it started empty and does not know yet whether it was wiped.
    #[must_use]
    pub fn is_recovering(&self) -> bool {
        self.recovering || self.wipe_check.is_some()
    }

    /// Whether this server holds no durable state at all (what it reports as `empty`).
    pub(crate) fn is_empty(&self) -> bool {
        !self.recovering
            && self.accepted_epoch == Epoch(0)
            && self.current_epoch == Epoch(0)
            && self.log.last_zxid() == Zxid::ZERO
            && self.log.snapshot() == Zxid::ZERO
    }

    /// Inputs ignored so far, by reason (for the metrics endpoint).
    #[must_use]
    pub fn ignored(&self) -> &IgnoredCounts {
        &self.ignored
    }

    /// The `ignore_*` path every dropped input takes: a debug line and a counter.
    fn ignore(&mut self, why: Ignored, from: Option<ServerId>, zxid: Option<Zxid>) {
        self.ignored.count(why);
        tracing::debug!(
            server = self.cfg.id.0,
            path = why.name(),
            from = ?from.map(|s| s.0),
            zxid = ?zxid.map(|z| z.to_string()),
            "ignored input"
        );
    }

    /// The zxid this server reports in its vote and ACKEPOCH: its last logged zxid, or under
    /// `--bug zk2845` the stale last applied one (the model's `reported_zxid`).
    pub(crate) fn reported_zxid(&self) -> Zxid {
        self.stale_last_processed
            .unwrap_or_else(|| self.log.last_zxid())
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// The log view.
    #[must_use]
    pub fn log(&self) -> &ReplicaLog<P> {
        &self.log
    }

    /// `acceptedEpoch`.
    #[must_use]
    pub fn accepted_epoch(&self) -> Epoch {
        self.accepted_epoch
    }

    /// `currentEpoch`.
    #[must_use]
    pub fn current_epoch(&self) -> Epoch {
        self.current_epoch
    }

    /// What the server is doing.
    #[must_use]
    pub fn role(&self) -> RoleInfo {
        let (state, zab_state, leader) = match &self.role {
            Role::Looking { .. } => (ServerState::Looking, ZabState::Election, None),
            Role::Following(f) => (ServerState::Following, f.zab_state, Some(f.leader)),
            Role::Leading(l) => (ServerState::Leading, l.zab_state, Some(self.cfg.id)),
        };
        RoleInfo {
            state,
            zab_state,
            leader,
            epoch: self.accepted_epoch,
            observer: self.cfg.is_observer(),
        }
    }

    /// The projection of this server's state that the model tracks.
    #[must_use]
    pub fn summary(&self) -> Summary {
        let role = self.role();
        Summary {
            state: role.state,
            zab_state: role.zab_state,
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            snapshot: self.log.snapshot(),
            log: self.log.zxids(),
            persisted: self.log.persisted(),
            committed: self.log.committed(),
            recovering: self.is_recovering(),
        }
    }

    /// The followers of this leader that are synced (they receive proposals), for `mntr`;
    /// observers are counted by [`Peer::synced_observers`].
    #[must_use]
    pub fn synced_followers(&self) -> usize {
        match &self.role {
            Role::Leading(l) => l.forwarding.difference(&l.observers).count(),
            _ => 0,
        }
    }

    /// The observers synced with this leader (they receive INFORMs), for `mntr`.
    #[must_use]
    pub fn synced_observers(&self) -> usize {
        match &self.role {
            Role::Leading(l) => l.forwarding.intersection(&l.observers).count(),
            _ => 0,
        }
    }

    /// Proposals this leader has not committed yet.
    #[must_use]
    pub fn outstanding_proposals(&self) -> usize {
        match &self.role {
            Role::Leading(l) => l.ack_sets.len(),
            _ => 0,
        }
    }

    /// Feeds one input; appends the actions to execute, in order, to `out`.
    pub fn step(&mut self, input: Input<P>, out: &mut Vec<Action<P>>) {
        match input {
            Input::Start => self.go_looking(out),
            Input::Notification { from, notification } => {
                self.on_notification(from, notification, out)
            }
            Input::Connected { leader } => self.follow_leader(leader, out),
            Input::LearnerConnected { learner } => self.on_learner_connected(learner, out),
            Input::Disconnected { peer } => self.on_disconnected(peer, out),
            Input::Message { from, msg } => self.on_message(from, msg, out),
            Input::Heartbeat { from } => self.on_heartbeat(from, out),
            Input::Restored { from } => self.leader_on_restored(from),
            Input::Timer(timer) => self.on_timer(timer, out),
            Input::Durable { zxid } => self.on_durable(zxid, out),
            Input::Propose { payload } => {
                // Callers check `can_propose` first.
                if self.leader_process_request(payload, out).is_none() {
                    self.ignore(Ignored::ProposalRefused, None, None);
                }
            }
            Input::SnapshotWritten { zxid } => self.take_snapshot(zxid, out),
        }
        self.log.evict(self.cfg.commit_log_count);
        self.check_invariants();
    }

    /// The zxid the next accepted `Propose` will get (the application prepares its
    /// transaction with it), or why a proposal would be refused.
    pub fn next_proposal_zxid(&self) -> Result<Zxid, NotLeader> {
        self.can_propose()?;
        self.log
            .last_zxid()
            .checked_next_in(self.current_epoch)
            .ok_or(NotLeader::NotReady)
    }

    /// The id of this server.
    #[must_use]
    pub fn id(&self) -> ServerId {
        self.cfg.id
    }

    /// Whether a `Propose` would be accepted now.
    pub fn can_propose(&self) -> Result<(), NotLeader> {
        match &self.role {
            Role::Leading(l) if l.zab_state == ZabState::Broadcast => Ok(()),
            Role::Leading(_) => Err(NotLeader::NotReady),
            Role::Following(f) => Err(NotLeader::Follower(Some(f.leader))),
            Role::Looking { .. } => Err(NotLeader::Follower(None)),
        }
    }

    fn trace(
        &self,
        action: ActionKind,
        j: Option<ServerId>,
        payload: Option<P>,
        out: &mut Vec<Action<P>>,
    ) {
        if self.cfg.trace {
            out.push(Action::Trace(TraceEvent {
                action,
                i: self.cfg.id,
                j,
                payload,
                summary: self.summary(),
            }));
        }
    }

    fn role_changed(&self, out: &mut Vec<Action<P>>) {
        out.push(Action::RoleChanged(self.role()));
    }

    /// Per-peer invariants (`WellFormed`, and the role's), checked after every step, in
    /// release builds too: each is a few comparisons on sets of at most a few servers.
    fn check_invariants(&self) {
        assert!(
            self.current_epoch <= self.accepted_epoch,
            "WellFormed: currentEpoch <= acceptedEpoch"
        );
        assert!(
            self.log.persisted() <= self.log.last_zxid(),
            "WellFormed: persisted <= last zxid"
        );
        assert!(
            self.log.committed() <= self.log.last_zxid(),
            "WellFormed: lastCommitted <= last zxid"
        );
        assert!(
            self.log.snapshot() <= self.log.persisted(),
            "WellFormed: lastSnapshot <= persisted"
        );
        match &self.role {
            Role::Leading(l) => {
                assert!(
                    l.zab_state == ZabState::Broadcast
                        || l.ackld_live.iter().all(|s| {
                            l.ackld_recv.contains(s)
                                || l.recovering.contains(s)
                                || l.observers.contains(s)
                        }),
                    "before establishment, ackld_live ⊆ ackld_recv ∪ recovering: an ACK of \
                     NEWLEADER is live only while counted, or from a recovering follower (§7.1; \
                     RESTORED, which ends the mark, only follows UPTODATE)"
                );
                assert!(
                    !l.recovering.contains(&self.cfg.id) && !self.is_recovering(),
                    "the leader itself is never recovering (§7.1: a recovering server is \
                     never elected)"
                );
                assert!(
                    l.connecting_live.is_subset(&l.connecting),
                    "connecting_live ⊆ connecting: a FOLLOWERINFO is live only while counted"
                );
                assert!(
                    l.forwarding.is_subset(&l.learners),
                    "forwarding ⊆ learners: only a connected learner is sent proposals"
                );
                assert!(
                    l.observers.iter().all(|s| !l.connecting.contains(s)
                        && !l.ackld_recv.contains(s)
                        && !l.electing.get(s).is_some_and(|e| e.in_quorum)
                        && l.ack_sets.values().all(|a| !a.contains(s))),
                    "Observers never count (§10.5): no observer in connecting, ackldRecv, the \
                     counted ACKEPOCHs or an ack set"
                );
            }
            Role::Following(f) => {
                assert!(
                    f.nl_stage != NewLeaderStage::EpochUpdated || self.cfg.has(Bug::Zk4643),
                    "nl_stage EpochUpdated exists only under --bug zk4643 (NEWLEADER in two halves)"
                );
                assert!(
                    f.deferred.is_empty() || f.nl_stage == NewLeaderStage::EpochUpdated,
                    "messages are deferred only between the two halves of NEWLEADER"
                );
                assert!(
                    f.packets.is_empty()
                        || f.nl_stage != NewLeaderStage::Done
                        || self.cfg.has(Bug::Zk3911),
                    "after NEWLEADER, proposals are logged, never held as packets (but under \
                     --bug zk3911, until UPTODATE)"
                );
            }
            Role::Looking { .. } => {}
        }
    }

    // ----- roles -------------------------------------------------------------------------

    /// Go back to LOOKING without crashing: drain the log thread (the whole log becomes
    /// durable), drop connections and role state, start a new election round.
    fn go_looking(&mut self, out: &mut Vec<Action<P>>) {
        let undrained = self.cfg.has(Bug::Zk4712)
            && matches!(self.role, Role::Following(_))
            && self.log.persisted() < self.log.last_zxid();
        if undrained && self.stale_last_processed.is_none() {
            // ZOOKEEPER-4712: a follower's shutdown leaves its log thread running (and
            // undrained): it reports the last zxid logged now and logs the rest later.
            self.stale_last_processed = Some(self.log.persisted());
        }
        if self.log.persisted() < self.log.last_zxid() && !undrained {
            out.push(Action::Persist(Persist::Flush));
            self.log.set_persisted(self.log.last_zxid());
        }
        let stops_serving = matches!(self.role, Role::Following(_) | Role::Leading(_));
        if self.cfg.has(Bug::Zk2845)
            && stops_serving
            && self.log.committed() < self.log.last_zxid()
            && self.stale_last_processed.is_none()
        {
            // ZOOKEEPER-2845: a server that stops following or leading keeps its in-memory
            // database, which is not fast-forwarded from the log (a restart reloads it).
            self.stale_last_processed = Some(self.log.committed());
        }
        match std::mem::replace(
            &mut self.role,
            Role::Looking {
                connecting_to: None,
                ticks: 0,
            },
        ) {
            Role::Following(f) => out.push(Action::Disconnect { peer: f.leader }),
            Role::Leading(l) => {
                for learner in l.learners.iter().filter(|s| **s != self.cfg.id) {
                    out.push(Action::Disconnect { peer: *learner });
                }
            }
            Role::Looking {
                connecting_to: Some(l),
                ..
            } => out.push(Action::Disconnect { peer: l }),
            Role::Looking {
                connecting_to: None,
                ..
            } => {}
        }
        self.role_changed(out);
        self.start_election(out);
    }

    fn on_disconnected(&mut self, peer: ServerId, out: &mut Vec<Action<P>>) {
        match &mut self.role {
            Role::Following(f) if f.leader == peer => {
                // PartitionStart + PartitionRecover in the model: the connection broke.
                self.go_looking(out);
                self.trace(ActionKind::ConnectionLost, Some(peer), None, out);
            }
            Role::Leading(l) if l.learners.contains(&peer) => {
                self.remove_learner(peer, out);
                self.trace(ActionKind::ConnectionLost, Some(peer), None, out);
            }
            Role::Looking { connecting_to, .. } if *connecting_to == Some(peer) => {
                // The leader we chose is not (or no longer) there: look again.
                self.go_looking(out);
            }
            _ => self.ignore(Ignored::DisconnectOfStranger, Some(peer), None),
        }
    }

    fn on_message(&mut self, from: ServerId, msg: Message<P>, out: &mut Vec<Action<P>>) {
        match &self.role {
            Role::Leading(l) if l.learners.contains(&from) => {
                self.leader_on_message(from, msg, out)
            }
            Role::Following(f) if f.leader == from => self.follower_on_message(msg, out),
            // A message on a connection we no longer consider ours (it raced with a close):
            // TCP would not deliver it; the runtime closes such connections.
            _ => self.ignore(Ignored::MessageFromStranger, Some(from), None),
        }
    }

    fn on_heartbeat(&mut self, from: ServerId, out: &mut Vec<Action<P>>) {
        let heard = match &mut self.role {
            Role::Leading(l) => l.silent_ticks.get_mut(&from).map(|t| *t = 0).is_some(),
            Role::Following(f) if f.leader == from => {
                f.silent_ticks = 0;
                out.push(Action::SendHeartbeat { to: from });
                true
            }
            _ => false,
        };
        if !heard {
            self.ignore(Ignored::HeartbeatFromStranger, Some(from), None);
        }
    }

    fn on_timer(&mut self, timer: Timer, out: &mut Vec<Action<P>>) {
        match timer {
            Timer::ElectionNotify | Timer::ElectionFinalize => self.on_election_timer(timer, out),
            Timer::Tick => {
                out.push(Action::SetTimer {
                    timer: Timer::Tick,
                    after_ms: self.cfg.tick_ms,
                });
                match &mut self.role {
                    Role::Looking {
                        connecting_to: Some(_),
                        ticks,
                    } => {
                        *ticks += 1;
                        if *ticks > self.cfg.init_limit {
                            self.go_looking(out);
                        }
                    }
                    Role::Looking { .. } => {}
                    Role::Following(_) => self.follower_tick(out),
                    Role::Leading(_) => self.leader_tick(out),
                }
            }
        }
    }

    /// The log thread made everything up to `zxid` durable: one `SyncProcessorLogRequest` per
    /// transaction, each followed by its acknowledgement.
    fn on_durable(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let zxid = zxid.min(self.log.last_zxid());
        while self.log.persisted() < zxid {
            let Some(next) = self.log.next_after(self.log.persisted()).map(|t| t.zxid) else {
                break;
            };
            if next > zxid {
                break;
            }
            self.sync_processor_log_request(next, out);
        }
    }

    /// TLA+: `SyncProcessorLogRequest(i)`: the next accepted transaction is durable; a follower
    /// past NEWLEADER acknowledges it, a leader counts its own acknowledgement.
    fn sync_processor_log_request(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        self.log.set_persisted(zxid);
        match &self.role {
            Role::Leading(l) if l.zab_state == ZabState::Broadcast => {
                if zxid > self.log.committed() {
                    self.leader_count_ack(self.cfg.id, zxid);
                    self.leader_try_to_commit(zxid, out);
                }
                self.trace(ActionKind::SyncProcessorLogRequest, None, None, out);
            }
            Role::Following(f) if f.nl_stage == NewLeaderStage::Done && !self.cfg.is_observer() => {
                let leader = f.leader;
                self.trace(ActionKind::SyncProcessorLogRequest, None, None, out);
                out.push(Action::Send {
                    to: leader,
                    msg: QuorumMessage::Ack { zxid },
                });
            }
            _ => self.trace(ActionKind::SyncProcessorLogRequest, None, None, out),
        }
    }

    /// TLA+: `TakeSnapshot(i, k)`: adopt a snapshot the runtime wrote, in any phase, if it
    /// covers only committed, durable transactions that are still in this server's log.
    fn take_snapshot(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let point = self.log.committed().min(self.log.persisted());
        if zxid > point || zxid <= self.log.snapshot() || !self.log.contains(zxid) {
            self.ignore(Ignored::SnapshotNotAdoptable, None, Some(zxid));
            return;
        }
        self.log.compact_to(zxid);
        assert!(
            self.log.snapshot() == zxid && zxid <= self.log.committed(),
            "TakeSnapshot: the recovery point moves to a committed, durable zxid"
        );
        self.trace(ActionKind::TakeSnapshot, None, None, out);
    }

    fn deliver_up_to(&mut self, zxid: Zxid, out: &mut Vec<Action<P>>) {
        let from = self.log.committed();
        if zxid <= from {
            return;
        }
        assert!(
            zxid <= self.log.last_zxid(),
            "only logged transactions are delivered ({zxid} beyond {})",
            self.log.last_zxid()
        );
        for t in self.log.after(from).iter().take_while(|t| t.zxid <= zxid) {
            out.push(Action::Deliver(t.clone()));
        }
        self.log.set_committed(zxid);
    }
}
