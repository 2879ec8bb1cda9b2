//! Message sequence charts of model paths: what happened at each step, derived from
//! consecutive states and actions of a path (no second description of the protocol).
//!
//! [`Chart::new`] compares each state with the next one and records the events a reader looks
//! for: messages (an [`Arrow`] from the step that put it on a channel to the step that took it
//! off: delivered, or lost when the connection broke), role and phase changes, writes to the
//! epoch files and the log (in memory or durable), deliveries, quorum commits, crashes with what
//! they lost, partitions, and the first state that breaks an invariant of
//! [`crate::invariants::invariants`]. [`svg`] draws it; [`report`] wraps it in an HTML page.
//! `Model::as_svg` (the Explorer), `zab-model check --report` and `zab-sim --report` all draw
//! through here.

pub mod report;
pub mod svg;

use crate::action::Action;
use crate::invariants::Invariant;
use crate::state::{ModelState, Msg, ServerVars, Sid};
use std::collections::VecDeque;
use zab_spec::{Payload, QuorumMessage, ServerState, Txn, ZabState, Zxid};

/// What an event on a lane means; the drawing picks colour and weight from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    /// The server's role or phase changed.
    Role,
    /// An epoch file (`acceptedEpoch`, `currentEpoch`) was written: durable at once.
    Epoch,
    /// Log entries became durable.
    Durable,
    /// Log entries were accepted in memory only (or queued as sync packets).
    Memory,
    /// Transactions were delivered (committed and applied) by the server.
    Delivered,
    /// The leader counted a quorum: the committed log grew.
    QuorumCommit,
    /// The server took a snapshot.
    Snapshot,
    /// Log entries that were not committed anywhere were dropped (a crash or a TRUNC).
    Lost,
    /// A transaction of the committed log disappeared from the server: a lost write.
    LostCommitted,
    /// The server crashed (and restarts LOOKING: the model does both in one step).
    Crash,
    /// A leader gave up before establishing its epoch.
    Timeout,
    /// The link to another server was cut.
    Partition,
    /// The link to another server healed.
    Heal,
}

impl MarkKind {
    /// The CSS class suffix (`zc-mark-<name>`).
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            MarkKind::Role => "role",
            MarkKind::Epoch => "epoch",
            MarkKind::Durable => "durable",
            MarkKind::Memory => "memory",
            MarkKind::Delivered => "delivered",
            MarkKind::QuorumCommit => "quorum",
            MarkKind::Snapshot => "snapshot",
            MarkKind::Lost => "lost",
            MarkKind::LostCommitted => "lost-committed",
            MarkKind::Crash => "crash",
            MarkKind::Timeout => "timeout",
            MarkKind::Partition => "partition",
            MarkKind::Heal => "heal",
        }
    }
}

/// One event on a server's lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The lane.
    pub server: Sid,
    /// What happened.
    pub kind: MarkKind,
    /// What to write next to it.
    pub text: String,
}

/// One step of the path: a row of the chart.
#[derive(Clone, Debug)]
pub struct Row {
    /// The step's number as the reader sees it (1 is the first action of the whole path).
    pub number: usize,
    /// The action, as `format_action` writes it.
    pub action: String,
    /// The server taking the step.
    pub actor: Sid,
    /// The other server of a two-server action.
    pub peer: Option<Sid>,
    /// The lane events of this step, in lane order.
    pub marks: Vec<Mark>,
}

/// Where a message's arrow ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Received at this slot.
    Delivered(usize),
    /// Dropped at this slot (the connection broke: crash, partition, shutdown).
    Lost(usize),
    /// Still on the channel at the end of the path.
    InFlight,
}

/// A message: sent at one slot, delivered or lost at a later one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrow {
    /// Sender.
    pub from: Sid,
    /// Receiver.
    pub to: Sid,
    /// The slot of the send (0 = already in flight in the first state of the path).
    pub sent: usize,
    /// Where it ends.
    pub end: End,
    /// The message type (`PROPOSAL`, `ACKEPOCH`, ...).
    pub kind: &'static str,
    /// Type and zxid or epoch, e.g. `PROPOSAL 0x100000002`.
    pub label: String,
}

/// The first state of the path that breaks invariants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    /// Its slot (0 = the first state of the path, `k` = after row `k - 1`).
    pub slot: usize,
    /// The step number the reader sees (`None` for slot 0).
    pub step: Option<usize>,
    /// `(id, meaning)` of every invariant it breaks.
    pub invariants: Vec<(&'static str, &'static str)>,
}

/// A message sequence chart of a path. Slot 0 is the path's first state; slot `k` the state
/// after `rows[k - 1]`.
#[derive(Clone, Debug)]
pub struct Chart {
    /// Lanes.
    pub servers: u8,
    /// Per slot, per server: the role and phase in that slot's state.
    pub roles: Vec<Vec<(ServerState, ZabState)>>,
    /// One row per action.
    pub rows: Vec<Row>,
    /// Every message sent or in flight along the path.
    pub arrows: Vec<Arrow>,
    /// Per server: how it stands in the first state (short lines).
    pub initial: Vec<Vec<String>>,
    /// Per server: how it stands in the last state (short lines).
    pub last: Vec<Vec<String>>,
    /// The committed log (`committedLog`) of the last state.
    pub committed_log: String,
    /// The first state that breaks invariants, if any.
    pub broken: Option<Broken>,
}

/// The short form of a message: its type and the zxid or epoch it carries.
#[must_use]
pub fn message_label<P>(m: &Msg<P>) -> String {
    let name = m.name();
    match m {
        QuorumMessage::FollowerInfo { accepted_epoch, .. } => format!("{name} e{accepted_epoch}"),
        QuorumMessage::LeaderInfo { new_epoch } => format!("{name} e{new_epoch}"),
        QuorumMessage::AckEpoch {
            current_epoch,
            last_zxid,
        } => match current_epoch {
            Some(e) => format!("{name} e{e} {last_zxid}"),
            None => format!("{name} {last_zxid}"),
        },
        QuorumMessage::Diff { last_zxid } | QuorumMessage::Snap { last_zxid, .. } => {
            format!("{name} {last_zxid}")
        }
        QuorumMessage::Trunc { truncate_to } => format!("{name} {truncate_to}"),
        QuorumMessage::Proposal(t) | QuorumMessage::Inform(t) => format!("{name} {}", t.zxid),
        QuorumMessage::Commit { zxid }
        | QuorumMessage::NewLeader { zxid }
        | QuorumMessage::AckNewLeader { zxid }
        | QuorumMessage::Ack { zxid } => format!("{name} {zxid}"),
        QuorumMessage::UpToDate => name.to_string(),
        QuorumMessage::ObserverInfo { accepted_epoch } => format!("{name} e{accepted_epoch}"),
    }
}

/// The channel `(from, to)` whose head the action receives, for the message handlers.
#[must_use]
pub fn received<P>(a: &Action<P>) -> Option<(Sid, Sid)> {
    match *a {
        Action::LeaderProcessFollowerInfo { i, j }
        | Action::FollowerProcessLeaderInfo { i, j }
        | Action::LeaderProcessAckEpoch { i, j }
        | Action::FollowerProcessSyncMessage { i, j }
        | Action::FollowerProcessProposalInSync { i, j }
        | Action::FollowerProcessCommitInSync { i, j }
        | Action::FollowerProcessNewLeader { i, j }
        | Action::LeaderProcessAckLd { i, j }
        | Action::FollowerProcessUpToDate { i, j }
        | Action::FollowerProcessProposal { i, j }
        | Action::LeaderProcessAck { i, j }
        | Action::FollowerProcessCommit { i, j }
        | Action::ObserverProcessInform { i, j }
        | Action::FilterNonexistentMessage { i, j } => Some((j, i)),
        _ => None,
    }
}

fn phase(z: ZabState) -> &'static str {
    match z {
        ZabState::Election => "ELECTION",
        ZabState::Discovery => "DISCOVERY",
        ZabState::Synchronization => "SYNC",
        ZabState::Broadcast => "BROADCAST",
    }
}

/// `LEADING/SYNC`, `FOLLOWING s3/BROADCAST`, `LOOKING`.
fn role_text<P>(v: &ServerVars<P>) -> String {
    match v.state {
        ServerState::Looking => "LOOKING".into(),
        ServerState::Leading => format!("LEADING/{}", phase(v.zab_state)),
        ServerState::Following => {
            let l = v
                .follower
                .as_ref()
                .map_or(String::new(), |f| format!(" s{}", f.leader + 1));
            format!("FOLLOWING{l}/{}", phase(v.zab_state))
        }
    }
}

/// The zxids of `items`; past three, the first and the last and how many.
fn zxids<P>(items: &[Txn<P>]) -> String {
    let n = items.len();
    if n > 3 {
        return format!("{}..{} ({n} txns)", items[0].zxid, items[n - 1].zxid);
    }
    let z: Vec<String> = items.iter().map(|t| t.zxid.to_string()).collect();
    z.join(",")
}

fn zxid_text(z: Zxid) -> String {
    if z == Zxid::ZERO {
        "nothing".into()
    } else {
        z.to_string()
    }
}

/// The zxid of the `k`-th history item (1-based), in words; an index past the log (a state
/// that breaks `WellFormed`) is said, not a panic.
fn upto<P>(v: &ServerVars<P>, k: usize) -> String {
    match k {
        0 => zxid_text(Zxid::ZERO),
        _ => v
            .history
            .get(k - 1)
            .map_or_else(|| format!("index {k} past the log"), |t| t.zxid.to_string()),
    }
}

/// How a server stands, in short lines: role, epochs, log (how much of it is durable),
/// delivered prefix.
fn standing<P>(v: &ServerVars<P>) -> Vec<String> {
    let log = if v.history.is_empty() {
        "empty".into()
    } else {
        zxids(&v.history)
    };
    vec![
        role_text(v),
        format!(
            "acceptedEpoch={} currentEpoch={}",
            v.accepted_epoch, v.current_epoch
        ),
        format!("log [{log}]"),
        format!("durable to {}", upto(v, v.persisted as usize)),
        format!("delivered to {}", upto(v, v.last_committed as usize)),
    ]
}

fn common_prefix<P: PartialEq>(a: &[Txn<P>], b: &[Txn<P>]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The lane events of server `k` in the step `a` from `b` to `t`.
fn server_marks<P: Payload>(
    k: Sid,
    a: &Action<P>,
    b: &ModelState<P>,
    t: &ModelState<P>,
    out: &mut Vec<Mark>,
) {
    let (old, new) = (b.srv(k), t.srv(k));
    let mut mark = |kind: MarkKind, text: String| {
        out.push(Mark {
            server: k,
            kind,
            text,
        });
    };
    let fault = matches!(
        a,
        Action::LoseEpochFiles { i } | Action::LoseLogSuffix { i, .. } | Action::LoseDataDir { i }
            if *i == k
    );
    let crashed = fault || matches!(a, Action::NodeCrash { i } if *i == k);
    if crashed {
        let text = if fault {
            format!(
                "CRASH with storage fault ({}), restarts LOOKING",
                a.tla_name()
            )
        } else {
            "CRASH, restarts LOOKING".into()
        };
        mark(MarkKind::Crash, text);
        let kept = match new.persisted {
            0 => "keeps an empty log".to_string(),
            p => format!("keeps log to {} (durable)", upto(new, p as usize)),
        };
        mark(MarkKind::Durable, kept);
    } else if role_text(old) != role_text(new) {
        mark(MarkKind::Role, role_text(new));
    }
    if matches!(a, Action::LeaderTimeout { i } if *i == k) {
        mark(MarkKind::Timeout, "timeout: gives up leading".into());
    }
    if old.accepted_epoch != new.accepted_epoch {
        mark(
            MarkKind::Epoch,
            format!("acceptedEpoch={} on disk", new.accepted_epoch),
        );
    }
    if old.current_epoch != new.current_epoch {
        mark(
            MarkKind::Epoch,
            format!("currentEpoch={} on disk", new.current_epoch),
        );
    }
    log_marks(old, new, &t.ghost.committed_log, crashed, fault, &mut mark);
    let (i, _) = a.servers();
    if i == k && t.ghost.committed_log.len() > b.ghost.committed_log.len() {
        mark(
            MarkKind::QuorumCommit,
            format!(
                "quorum: {} committed",
                zxids(&t.ghost.committed_log[b.ghost.committed_log.len()..])
            ),
        );
    }
    match *a {
        Action::PartitionStart { i, j } if i == k || j == k => {
            mark(
                MarkKind::Partition,
                format!("link s{}-s{} cut", i + 1, j + 1),
            );
        }
        Action::PartitionRecover { i, j } if i == k || j == k => {
            mark(MarkKind::Heal, format!("link s{}-s{} healed", i + 1, j + 1));
        }
        _ => {}
    }
}

/// What happened to one server's log from `old` to `new`: entries lost (committed ones
/// apart), added (durable or in memory), made durable, queued as sync packets, snapshotted,
/// delivered.
fn log_marks<P: Payload>(
    old: &ServerVars<P>,
    new: &ServerVars<P>,
    committed_log: &[Txn<P>],
    crashed: bool,
    fault: bool,
    mark: &mut impl FnMut(MarkKind, String),
) {
    let keep = common_prefix(&old.history, &new.history);
    let (lost_committed, lost): (Vec<_>, Vec<_>) = old.history[keep..]
        .iter()
        .cloned()
        .partition(|x| committed_log.contains(x));
    let how = if fault {
        "lost to the storage fault"
    } else if crashed {
        "lost in crash"
    } else {
        "truncated"
    };
    if !lost_committed.is_empty() {
        mark(
            MarkKind::LostCommitted,
            format!("COMMITTED {} {how}", zxids(&lost_committed)),
        );
    }
    if !lost.is_empty() {
        let why = if crashed && !fault {
            " (not durable)"
        } else {
            ""
        };
        mark(MarkKind::Lost, format!("{} {how}{why}", zxids(&lost)));
    }
    let added = &new.history[keep..];
    let durable = (new.persisted as usize)
        .saturating_sub(keep)
        .min(added.len());
    if durable > 0 {
        mark(
            MarkKind::Durable,
            format!("log +{} (durable)", zxids(&added[..durable])),
        );
    }
    if durable < added.len() {
        mark(
            MarkKind::Memory,
            format!("log +{} in memory, not durable", zxids(&added[durable..])),
        );
    }
    let now_durable = (new.persisted as usize).min(keep);
    if now_durable > (old.persisted as usize).min(keep) {
        mark(
            MarkKind::Durable,
            format!("log durable to {}", upto(new, now_durable)),
        );
    }
    if crashed {
        return;
    }
    let packets = |v: &ServerVars<P>| v.follower.as_ref().map_or(0, |f| f.packets.len());
    if let Some(f) = &new.follower {
        if packets(new) > packets(old) {
            mark(
                MarkKind::Memory,
                format!("sync packet {} queued", zxids(&f.packets[packets(old)..])),
            );
        }
    }
    if new.last_snapshot != old.last_snapshot {
        mark(
            MarkKind::Snapshot,
            format!("snapshot at {}", upto(new, new.last_snapshot as usize)),
        );
    }
    let delivered_before = (old.last_committed as usize).min(keep);
    let delivered_now = (new.last_committed as usize).min(new.history.len());
    if delivered_now > delivered_before {
        mark(
            MarkKind::Delivered,
            format!(
                "delivers {}",
                zxids(&new.history[delivered_before..delivered_now])
            ),
        );
    }
}

/// Messages in flight, channel by channel, as indices into the arrows.
struct Channels {
    n: usize,
    queues: Vec<VecDeque<usize>>,
}

impl Channels {
    fn start<P>(s: &ModelState<P>, arrows: &mut Vec<Arrow>) -> Channels {
        let n = s.servers.len();
        let mut queues = vec![VecDeque::new(); n * n];
        for from in 0..n {
            for to in 0..n {
                for m in s.channel(from as Sid, to as Sid) {
                    queues[from * n + to].push_back(arrows.len());
                    arrows.push(Arrow {
                        from: from as Sid,
                        to: to as Sid,
                        sent: 0,
                        end: End::InFlight,
                        kind: m.name(),
                        label: message_label(m),
                    });
                }
            }
        }
        Channels { n, queues }
    }

    /// Moves the channels from `b` to `t` in the step at `slot`.
    fn step<P: Payload>(
        &mut self,
        slot: usize,
        a: &Action<P>,
        b: &ModelState<P>,
        t: &ModelState<P>,
        arrows: &mut [Arrow],
        sent: &mut Vec<Arrow>,
    ) {
        let got = received(a);
        for from in 0..self.n {
            for to in 0..self.n {
                let (f, d) = (from as Sid, to as Sid);
                let old = b.channel(f, d);
                let new = t.channel(f, d);
                let q = &mut self.queues[from * self.n + to];
                let mut skip = 0;
                if got == Some((f, d)) && !old.is_empty() {
                    if let Some(id) = q.pop_front() {
                        arrows[id].end = End::Delivered(slot);
                    }
                    skip = 1;
                }
                // The smallest number of further messages taken off the front such that what
                // is left is a prefix of the new channel: those were dropped.
                let rest = old.len() - skip;
                let dropped = (0..=rest)
                    .find(|&p| {
                        let left = old.iter().skip(skip + p);
                        left.len() <= new.len() && left.zip(new.iter()).all(|(x, y)| x == y)
                    })
                    .unwrap_or(rest);
                for _ in 0..dropped {
                    if let Some(id) = q.pop_front() {
                        arrows[id].end = End::Lost(slot);
                    }
                }
                let kept = rest - dropped;
                for m in new.iter().skip(kept) {
                    q.push_back(arrows.len() + sent.len());
                    sent.push(Arrow {
                        from: f,
                        to: d,
                        sent: slot,
                        end: End::InFlight,
                        kind: m.name(),
                        label: message_label(m),
                    });
                }
            }
        }
    }
}

impl Chart {
    /// The chart of the path `states[0] -actions[0]-> states[1] ...` (`states` has one more
    /// element than `actions`), whose first action is step number `first_step` (1 for a
    /// whole path, more for the tail of a long trace). `invariants` are checked on every
    /// state to find the first that breaks one.
    ///
    /// # Panics
    /// If `states` does not have exactly one more element than `actions`.
    #[must_use]
    pub fn new<P: Payload>(
        states: &[ModelState<P>],
        actions: &[Action<P>],
        first_step: usize,
        invariants: &[Invariant<P>],
    ) -> Chart {
        assert_eq!(states.len(), actions.len() + 1, "a path has one more state");
        let first = &states[0];
        let last = &states[states.len() - 1];
        let mut arrows = Vec::new();
        let mut channels = Channels::start(first, &mut arrows);
        let mut rows = Vec::with_capacity(actions.len());
        for (k, a) in actions.iter().enumerate() {
            let (b, t) = (&states[k], &states[k + 1]);
            let mut sent = Vec::new();
            channels.step(k + 1, a, b, t, &mut arrows, &mut sent);
            arrows.extend(sent);
            let mut marks = Vec::new();
            for s in 0..t.n().min(b.n()) {
                server_marks(s, a, b, t, &mut marks);
            }
            let (actor, peer) = a.servers();
            rows.push(Row {
                number: first_step + k,
                action: a.to_string(),
                actor,
                peer,
                marks,
            });
        }
        let broken = states.iter().enumerate().find_map(|(slot, s)| {
            let failing: Vec<_> = invariants
                .iter()
                .filter(|inv| !(inv.holds)(s))
                .map(|inv| (inv.id, inv.meaning))
                .collect();
            (!failing.is_empty()).then(|| Broken {
                slot,
                step: slot.checked_sub(1).map(|r| first_step + r),
                invariants: failing,
            })
        });
        Chart {
            servers: first.n(),
            roles: states
                .iter()
                .map(|s| s.servers.iter().map(|v| (v.state, v.zab_state)).collect())
                .collect(),
            rows,
            arrows,
            initial: first.servers.iter().map(standing).collect(),
            last: last.servers.iter().map(standing).collect(),
            committed_log: format!("[{}]", zxids(&last.ghost.committed_log)),
            broken,
        }
    }

    /// The chart of a Stateright path.
    #[must_use]
    pub fn of_path<P: Payload>(
        path: stateright::Path<ModelState<P>, Action<P>>,
        invariants: &[Invariant<P>],
    ) -> Chart {
        let (states, actions) = split_path(path);
        Chart::new(&states, &actions, 1, invariants)
    }

    /// The SVG drawing.
    #[must_use]
    pub fn to_svg(&self) -> String {
        svg::render(self)
    }
}

/// A Stateright path as its states and its actions.
#[must_use]
pub fn split_path<P>(
    path: stateright::Path<ModelState<P>, Action<P>>,
) -> (Vec<ModelState<P>>, Vec<Action<P>>) {
    let mut states = Vec::new();
    let mut actions = Vec::new();
    for (s, a) in path.into_vec() {
        states.push(s);
        actions.extend(a);
    }
    (states, actions)
}

#[cfg(test)]
mod tests;
