//! The model's state: one Rust field per TLA+ variable of `tla/Zab.tla`.
//!
//! Every per-server variable lives in [`ServerVars`]; the leader-only and follower-only ones
//! are `Option`s that are `None` outside the role, which is exactly the canonical "reset"
//! value the TLA+ spec writes when a server leaves the role. The network is one FIFO queue
//! per ordered pair (a TCP connection), and [`Ghost`] holds the history variables the
//! invariants need (`epochLeader`, `proposalMsgsLog`, `committedLog`, the during-action
//! flags, the fault counters).

use crate::tracked::{History, ProposalLog};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use zab_spec::{Epoch, QuorumMessage, ServerState, SyncMode, Txn, ZabState, Zxid};

/// An index into a history (1-based positions; 0 is "before the first transaction").
pub type Idx = u32;

/// A server's index in the model (`0..n`); shown as `s1..sn`, ZooKeeper's usual ids.
pub type Sid = u8;

/// A set of servers, as a bitmask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerSet(pub u8);

impl ServerSet {
    /// The empty set.
    pub const EMPTY: ServerSet = ServerSet(0);

    /// `{s}`.
    #[must_use]
    pub fn single(s: Sid) -> ServerSet {
        ServerSet(1 << s)
    }

    /// Membership.
    #[must_use]
    pub fn contains(self, s: Sid) -> bool {
        self.0 & (1 << s) != 0
    }

    /// `self ∪ {s}`.
    #[must_use]
    pub fn with(self, s: Sid) -> ServerSet {
        ServerSet(self.0 | (1 << s))
    }

    /// `self \ {s}`.
    #[must_use]
    pub fn without(self, s: Sid) -> ServerSet {
        ServerSet(self.0 & !(1 << s))
    }

    /// `|self|`.
    #[must_use]
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// `self = {}`.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `self ∩ other`.
    #[must_use]
    pub fn intersect(self, other: ServerSet) -> ServerSet {
        ServerSet(self.0 & other.0)
    }

    /// The members, in increasing order.
    pub fn iter(self) -> impl Iterator<Item = Sid> {
        (0..8u8).filter(move |s| self.contains(*s))
    }

    /// Whether the set is a strict majority of an ensemble of `n` servers.
    #[must_use]
    pub fn is_quorum(self, n: u8) -> bool {
        2 * self.len() > u32::from(n)
    }
}

impl fmt::Display for ServerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{")?;
        for (k, s) in self.iter().enumerate() {
            if k > 0 {
                write!(f, ",")?;
            }
            write!(f, "s{}", s + 1)?;
        }
        write!(f, "}}")
    }
}

/// A message of the model: a Zab message whose SNAP carries a prefix of the history.
pub type Msg<P> = QuorumMessage<P, Vec<Txn<P>>>;

/// How far a follower got in processing NEWLEADER (ZooKeeper `Learner.syncWithLeader`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NewLeaderStage {
    /// NEWLEADER not received yet (TLA+ `nlRcv = FALSE`).
    #[default]
    Waiting,
    /// Only under `--bug zk4643`: the new currentEpoch is durable, the synced transactions
    /// are not yet.
    EpochUpdated,
    /// NEWLEADER processed and acknowledged.
    Done,
}

/// Leader-only variables (TLA+ `learners`, `connecting`, `electing`, `ackldRecv`,
/// `forwarding`, `tempMaxEpoch`, the ack sets of outstanding proposals, `sendCounter`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeaderVars {
    /// Servers connected to this leader, itself included (`learners`).
    pub learners: ServerSet,
    /// Servers whose FOLLOWERINFO was counted for the new epoch (`connecting`).
    pub connecting: ServerSet,
    /// The subset of `connecting` whose connection is still the one that sent it (the
    /// `connected` flag of ZkV3_7's records): they get LEADERINFO when the epoch is chosen.
    pub connecting_live: ServerSet,
    /// ACKEPOCH records, one per server (`electing`): `None` = no ACKEPOCH.
    pub electing: Vec<Option<Electing>>,
    /// Servers whose ACK of NEWLEADER was counted (`ackldRecv`).
    pub ackld_recv: ServerSet,
    /// The subset of `ackld_recv` still connected: they get UPTODATE on establishment.
    pub ackld_live: ServerSet,
    /// Synced followers; they receive every PROPOSAL and COMMIT (`forwardingFollowers`).
    pub forwarding: ServerSet,
    /// One more than the largest accepted epoch in the FOLLOWERINFOs so far (`tempMaxEpoch`).
    pub temp_max_epoch: Epoch,
    /// Ack sets of the outstanding proposals `history[lastCommitted+1..]` (ZooKeeper
    /// `outstandingProposals`, TLA+ `ackSid` of each history item).
    pub ack_sets: Vec<ServerSet>,
    /// Only under `--bug paper-redundant-propose`: how many history items were broadcast.
    pub send_counter: Idx,
}

impl LeaderVars {
    /// Servers whose ACKEPOCH counts towards the quorum (`electing` with `inQuorum`).
    #[must_use]
    pub fn epoch_acks(&self) -> ServerSet {
        self.electing
            .iter()
            .enumerate()
            .filter(|(_, e)| e.is_some_and(|e| e.in_quorum))
            .fold(ServerSet::EMPTY, |acc, (k, _)| acc.with(k as Sid))
    }
}

/// One ACKEPOCH record of a leader (ZkV3_7 `electing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Electing {
    /// The follower's last zxid, still to be synced; `None` once synced (TLA+ `<<-1,-1>>`).
    pub peer_last_zxid: Option<Zxid>,
    /// Whether the ACKEPOCH counts towards the quorum (`inQuorum`).
    pub in_quorum: bool,
}

/// Follower-only variables (TLA+ `connectInfo`, `packetsSync`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FollowerVars<P> {
    /// The leader this follower is connected to (`connectInfo.sid`).
    pub leader: Sid,
    /// The sync mode of the sync message received (`connectInfo.syncMode`).
    pub sync_mode: Option<SyncMode>,
    /// Progress through NEWLEADER (`connectInfo.nlRcv`).
    pub nl_stage: NewLeaderStage,
    /// PROPOSALs received in SYNCHRONIZATION before NEWLEADER, not yet logged
    /// (`packetsNotCommitted`).
    pub packets: Vec<Txn<P>>,
    /// Index into `history ∘ packets` up to which the leader's sync says "committed": the
    /// sync point, advanced by every COMMIT received before UPTODATE (`packetsCommitted`).
    pub sync_committed: Idx,
}

/// Per-server variables (TLA+ `state`, `zabState`, `acceptedEpoch`,
/// `currentEpoch`, `history`, `persisted`, `lastCommitted`, `lastSnapshot`, and the roles').
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVars<P> {
    /// LOOKING, FOLLOWING or LEADING.
    pub state: ServerState,
    /// The Zab phase.
    pub zab_state: ZabState,
    /// Durable: the last epoch accepted from LEADERINFO (paper `f.p`).
    pub accepted_epoch: Epoch,
    /// Durable: the last epoch whose NEWLEADER was accepted (paper `f.a`).
    pub current_epoch: Epoch,
    /// The accepted transactions, in memory; a prefix of them is durable.
    pub history: History<P>,
    /// Durable: how many items of `history` are on disk (the rest wait for the log thread).
    pub persisted: Idx,
    /// How many items of `history` are delivered (committed and applied).
    pub last_committed: Idx,
    /// Durable: how many items of `history` the latest snapshot covers; the leader's log
    /// before that point is compacted, so a follower behind it needs SNAP.
    pub last_snapshot: Idx,
    /// Only under `--bug zk2845`: the last applied index a server kept in memory when it stopped
    /// following or leading, which it then reports instead of its last logged zxid.
    pub stale_last_processed: Option<Idx>,
    /// Durable: the server found its durable state damaged (`LoseEpochFiles`, `LoseLogSuffix`,
    /// `LoseDataDir`) and has not yet been restored by a leader established by a quorum of
    /// intact servers (TLA+ `recovering`). While set it neither votes nor acknowledges as
    /// durable: it supports no election, leads none, and its ACKEPOCH, ACK of NEWLEADER and
    /// ACKs count towards no quorum. UPTODATE clears it.
    pub recovering: bool,
    /// Set while LEADING.
    pub leader: Option<LeaderVars>,
    /// Set while FOLLOWING.
    pub follower: Option<FollowerVars<P>>,
}

impl<P> ServerVars<P> {
    /// A server that never ran.
    #[must_use]
    pub fn initial() -> ServerVars<P> {
        ServerVars {
            state: ServerState::Looking,
            zab_state: ZabState::Election,
            accepted_epoch: Epoch(0),
            current_epoch: Epoch(0),
            history: History::new(),
            persisted: 0,
            last_committed: 0,
            last_snapshot: 0,
            stale_last_processed: None,
            recovering: false,
            leader: None,
            follower: None,
        }
    }

    /// The zxid of the `k`-th history item (1-based; 0 is `Zxid::ZERO`).
    #[must_use]
    pub fn zxid_at(&self, k: usize) -> Zxid {
        if k == 0 {
            Zxid::ZERO
        } else {
            self.history[k - 1].zxid
        }
    }

    /// The last zxid in the history.
    #[must_use]
    pub fn last_zxid(&self) -> Zxid {
        self.history.last().map_or(Zxid::ZERO, |t| t.zxid)
    }

    /// The index (1-based) of `zxid` in the history; `Some(0)` for `Zxid::ZERO`.
    #[must_use]
    pub fn index_of(&self, zxid: Zxid) -> Option<usize> {
        if zxid == Zxid::ZERO {
            return Some(0);
        }
        self.history
            .iter()
            .position(|t| t.zxid == zxid)
            .map(|k| k + 1)
    }

    /// The delivered prefix `history[1..lastCommitted]`.
    #[must_use]
    pub fn delivered(&self) -> &[Txn<P>] {
        &self.history[..(self.last_committed as usize)]
    }
}

/// A proposal a leader broadcast (an element of TLA+ `proposalMsgsLog`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Proposal<P> {
    /// The proposing leader.
    pub source: Sid,
    /// Its epoch.
    pub epoch: Epoch,
    /// The transaction.
    pub txn: Txn<P>,
}

/// The during-action checks ZooKeeper's specs flag while an action runs (TLA+
/// `violatedInvariants`); any flag set is an invariant violation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Violations(pub u8);

/// One during-action check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Violation {
    /// A message arrived in a phase that cannot receive it (`stateInconsistent`).
    StateInconsistent = 1,
    /// A PROPOSAL or TRUNC that does not fit the follower's log (`proposalInconsistent`).
    ProposalInconsistent = 2,
    /// A COMMIT for something other than the next pending transaction (`commitInconsistent`).
    CommitInconsistent = 4,
    /// An ACK for a transaction the leader does not have (`ackInconsistent`).
    AckInconsistent = 8,
    /// A message no handler accepts in the receiver's role (`messageIllegal`).
    MessageIllegal = 16,
    /// A TRUNC or SNAP removed a transaction of the committed log (`CommittedLogDurability`).
    CommittedLogTruncated = 32,
}

impl Violations {
    /// Whether `v` was flagged.
    #[must_use]
    pub fn has(self, v: Violation) -> bool {
        self.0 & (v as u8) != 0
    }

    /// Flags `v`.
    pub fn set(&mut self, v: Violation) {
        self.0 |= v as u8;
    }
}

/// History variables used only by the invariants and the bounds.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ghost<P> {
    /// Crashes so far (bounded by `--crashes`).
    pub crashes: u8,
    /// Partitions so far (bounded by `--partitions`).
    pub partitions: u8,
    /// Leader timeouts so far (bounded by `--timeouts`).
    pub timeouts: u8,
    /// Snapshots so far (bounded by `--snapshots`).
    pub snapshots: u8,
    /// Storage faults so far (bounded by `--storage-faults`).
    pub storage_faults: u8,
    /// Servers that restarted after a crash at least once.
    pub restarted: ServerSet,
    /// `(epoch, leader)` for every leader established in that epoch (`epochLeader`).
    pub epoch_leader: BTreeSet<(Epoch, Sid)>,
    /// Every proposal any leader broadcast (`proposalMsgsLog`); its size counts requests.
    pub proposals: ProposalLog<Proposal<P>>,
    /// The longest committed prefix any leader had (`committedLog`).
    pub committed_log: History<P>,
    /// The during-action flags.
    pub violations: Violations,
}

/// The whole state of the model (all TLA+ variables).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelState<P> {
    /// Per-server variables, indexed by [`Sid`].
    pub servers: Vec<ServerVars<P>>,
    /// `msgs[from * n + to]`: the FIFO channel from `from` to `to`.
    pub msgs: Vec<VecDeque<Msg<P>>>,
    /// Partitioned pairs: bit `i * 8 + j` for `i < j`.
    pub partition: u64,
    /// History variables.
    pub ghost: Ghost<P>,
}

impl<P: Clone> ModelState<P> {
    /// The initial state: every server LOOKING with empty logs, no messages.
    #[must_use]
    pub fn initial(n: u8) -> ModelState<P> {
        let n = usize::from(n);
        ModelState {
            servers: (0..n).map(|_| ServerVars::initial()).collect(),
            msgs: vec![VecDeque::new(); n * n],
            partition: 0,
            ghost: Ghost {
                crashes: 0,
                partitions: 0,
                timeouts: 0,
                snapshots: 0,
                storage_faults: 0,
                restarted: ServerSet::EMPTY,
                epoch_leader: BTreeSet::new(),
                proposals: ProposalLog::new(),
                committed_log: History::new(),
                violations: Violations::default(),
            },
        }
    }
}

impl<P> ModelState<P> {
    /// The current state becomes the one the incremental invariant checker
    /// ([`crate::invariants::Monitor`]) compares the next state against: the change marks of
    /// the histories and the proposals log are reset. Equality and hashing ignore the marks.
    pub fn acknowledge(&mut self) {
        for srv in &mut self.servers {
            srv.history.acknowledge();
        }
        self.ghost.committed_log.acknowledge();
        self.ghost.proposals.acknowledge();
    }

    /// The number of servers.
    #[must_use]
    pub fn n(&self) -> u8 {
        self.servers.len() as u8
    }

    /// Server `i`.
    #[must_use]
    pub fn srv(&self, i: Sid) -> &ServerVars<P> {
        &self.servers[usize::from(i)]
    }

    /// Server `i`, mutably.
    pub fn srv_mut(&mut self, i: Sid) -> &mut ServerVars<P> {
        &mut self.servers[usize::from(i)]
    }

    fn chan(&self, from: Sid, to: Sid) -> usize {
        usize::from(from) * self.servers.len() + usize::from(to)
    }

    /// The channel `from → to`.
    #[must_use]
    pub fn channel(&self, from: Sid, to: Sid) -> &VecDeque<Msg<P>> {
        &self.msgs[self.chan(from, to)]
    }

    /// The next message `to` will receive from `from`.
    #[must_use]
    pub fn head(&self, from: Sid, to: Sid) -> Option<&Msg<P>> {
        self.msgs[self.chan(from, to)].front()
    }

    /// Removes the head of `from → to`.
    pub fn pop(&mut self, from: Sid, to: Sid) {
        let c = self.chan(from, to);
        self.msgs[c].pop_front();
    }

    /// Appends `m` to `from → to`.
    pub fn send(&mut self, from: Sid, to: Sid, m: Msg<P>) {
        let c = self.chan(from, to);
        self.msgs[c].push_back(m);
    }

    /// Empties both directions between `i` and `j` (the TCP connection is gone).
    pub fn clean(&mut self, i: Sid, j: Sid) {
        let a = self.chan(i, j);
        let b = self.chan(j, i);
        self.msgs[a].clear();
        self.msgs[b].clear();
    }

    fn pair_bit(i: Sid, j: Sid) -> u64 {
        let (a, b) = if i < j { (i, j) } else { (j, i) };
        1u64 << (u32::from(a) * 8 + u32::from(b))
    }

    /// Whether the link between `i` and `j` is cut.
    #[must_use]
    pub fn partitioned(&self, i: Sid, j: Sid) -> bool {
        self.partition & Self::pair_bit(i, j) != 0
    }

    /// Cuts or heals the link between `i` and `j`.
    pub fn set_partitioned(&mut self, i: Sid, j: Sid, cut: bool) {
        if cut {
            self.partition |= Self::pair_bit(i, j);
        } else {
            self.partition &= !Self::pair_bit(i, j);
        }
    }

    /// Whether `i` and `j` are connected as leader and follower (either way round).
    #[must_use]
    pub fn connected(&self, i: Sid, j: Sid) -> bool {
        let follows = |f: Sid, l: Sid| {
            self.srv(f)
                .follower
                .as_ref()
                .is_some_and(|fv| fv.leader == l)
                && self
                    .srv(l)
                    .leader
                    .as_ref()
                    .is_some_and(|lv| lv.learners.contains(f))
        };
        follows(i, j) || follows(j, i)
    }
}

/// Writes `history` compactly: `[0x100000001:createSession(session1), ...]`.
pub fn fmt_history<P: fmt::Display>(h: &[Txn<P>]) -> String {
    let items: Vec<String> = h.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

impl<P: fmt::Display + Clone> fmt::Display for ModelState<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.servers.iter().enumerate() {
            let role = format!("{:?}/{:?}", s.state, s.zab_state).to_uppercase();
            writeln!(
                f,
                "  s{}: {role} acceptedEpoch={} currentEpoch={} history={} persisted={} \
                 lastCommitted={} lastSnapshot={}",
                i + 1,
                s.accepted_epoch,
                s.current_epoch,
                fmt_history(&s.history),
                s.persisted,
                s.last_committed,
                s.last_snapshot
            )?;
            if let Some(l) = &s.leader {
                write!(
                    f,
                    "      leader: learners={} connecting={} ackldRecv={} forwarding={} \
                     tempMaxEpoch={} outstandingAcks=[",
                    l.learners, l.connecting, l.ackld_recv, l.forwarding, l.temp_max_epoch
                )?;
                for (k, a) in l.ack_sets.iter().enumerate() {
                    write!(f, "{}{a}", if k > 0 { ", " } else { "" })?;
                }
                writeln!(f, "]")?;
            }
            if let Some(fv) = &s.follower {
                writeln!(
                    f,
                    "      follower of s{}: syncMode={:?} newLeader={:?} packets={} syncCommitted={}",
                    fv.leader + 1,
                    fv.sync_mode,
                    fv.nl_stage,
                    fmt_history(&fv.packets),
                    fv.sync_committed
                )?;
            }
            if s.recovering {
                writeln!(
                    f,
                    "      recovering (damaged durable state, not yet restored)"
                )?;
            }
            if let Some(k) = s.stale_last_processed {
                writeln!(f, "      stale lastProcessed index={k}")?;
            }
        }
        let n = self.n();
        for from in 0..n {
            for to in 0..n {
                let ch = self.channel(from, to);
                if !ch.is_empty() {
                    let items: Vec<String> = ch.iter().map(ToString::to_string).collect();
                    writeln!(f, "  s{} -> s{}: {}", from + 1, to + 1, items.join(", "))?;
                }
            }
        }
        if self.partition != 0 {
            write!(f, "  partitioned:")?;
            for i in 0..n {
                for j in i + 1..n {
                    if self.partitioned(i, j) {
                        write!(f, " s{}|s{}", i + 1, j + 1)?;
                    }
                }
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  committedLog={} proposals={} crashes={} partitions={} timeouts={} snapshots={} \
             storageFaults={} violations={:#04x}",
            fmt_history(&self.ghost.committed_log),
            self.ghost.proposals.len(),
            self.ghost.crashes,
            self.ghost.partitions,
            self.ghost.timeouts,
            self.ghost.snapshots,
            self.ghost.storage_faults,
            self.ghost.violations.0
        )
    }
}
