//! Model-guided replay: the real server code of the simulation driven along a path of the
//! model (a `zab-model check` counterexample, `zab_model::path_file`), one model action at a
//! time.
//!
//! In a replay nothing happens by chance: every frame a server sends is held in its link
//! (quorum frames FIFO per connection, election notifications per pair) until a step
//! delivers it, fsyncs complete and timers fire only when a step asks, and there is no fault
//! and no client but the sessions the steps open. For each model action the replay performs
//! the simulator event that makes the server take it:
//!
//! | model action | simulator event |
//! |---|---|
//! | a message handler `…Process…(i, j)` | deliver the frames held from `j` to `i` until `i` takes a step |
//! | `ElectLeader(i)` | exchange the held notifications among `i` and the servers the path has follow `i` (plus supporters up to a quorum), firing their election timers, until `i` leads |
//! | `FollowLeader(i, j)` | (elect on `{i, j}` until `i` chose `j`, then) the connection from `i` to `j` |
//! | `LeaderProcessRequest(i)` | a new client session opened at `i` (its `createSession` is a write) |
//! | `SyncProcessorLogRequest(i)` | `i`'s log fsync completes |
//! | `LeaderTimeout(i)`, `FollowerProcessNEWLEADERAfterCurrentEpochUpdated(i)`, `LeaderBroadcastPROPOSAL(i)` | `i`'s timers fire |
//! | `NodeCrash(i)`, storage faults | `i` crashes (unsynced writes lost; its disk damaged) and restarts |
//! | `PartitionStart(i, j)`, `PartitionRecover(i, j)` | the link is cut (the connection breaks) or healed |
//!
//! and then checks that the server's trace record is that action (kind, server, peer). The
//! records also go through the simulation's refiner, which checks every model invariant on
//! every state: with a bug switch on in model and server, the replay ends when the server
//! breaks an invariant ([`Outcome::InvariantBroken`]); otherwise it runs through
//! ([`Outcome::RanThrough`]) or stops at the first step the server does not take, with a
//! typed reason ([`StuckReason`]). After every step whose records are all consumed, the
//! projection of every server (roles, epochs, zxids of the log, durable and delivered
//! prefixes) must equal the path's state.
//!
//! `--init epoch1` paths start from ZooKeeper's bug-hunting state; the replay reaches it
//! first (step 0): the highest server is elected by all, everyone syncs, a first session is
//! committed everywhere, a second is logged and fsynced by the leader with its PROPOSALs
//! held in the links.

use super::*;
use zab_model::path_file::PathFile;
use zab_model::state::{ModelState as MState, ServerSet};
use zab_model::{Action as MAction, ZabModel};
use zab_server::core::Summary as ServerSummary;
use zab_spec::ZnodeTxn;

mod steps;

/// A trace record, as the replay matches it: its kind, its server and its peer (indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rec {
    /// The action.
    pub kind: ActionKind,
    /// The server taking it (0-based).
    pub i: usize,
    /// The peer, for two-server actions (0-based).
    pub j: Option<usize>,
}

impl fmt::Display for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(s{}", self.kind, self.i + 1)?;
        if let Some(j) = self.j {
            write!(f, ", s{}", j + 1)?;
        }
        write!(f, ")")
    }
}

/// Quorum frames held on one link, each with the connection it was sent on.
type QuorumQueue = VecDeque<(u64, Frame<Txn>)>;
/// Notifications held on one link: sent at, sender's life, receiver's life, the frame.
type ElectionQueue = VecDeque<(u64, u64, u64, Frame<Txn>)>;

/// What a replay holds back: frames in flight and the records not yet matched.
#[derive(Debug, Default)]
pub struct Held {
    /// Quorum frames per direction `(from, to)`, with the connection they were sent on.
    quorum: BTreeMap<(usize, usize), QuorumQueue>,
    /// Heartbeats (no model message): delivered before any timer fires.
    heartbeats: VecDeque<(u64, usize, usize, Frame<Txn>)>,
    /// Election notifications per direction, with the time they were sent and the lives of
    /// sender and receiver.
    election: BTreeMap<(usize, usize), ElectionQueue>,
    /// Records refined and not yet matched to a model step.
    observed: VecDeque<(ActionKind, ServerId, Option<ServerId>)>,
    /// Client sessions opened by the replay (kept so that their replies have somewhere to go).
    outboxes: Vec<tokio::sync::mpsc::UnboundedReceiver<zab_server::service::ClientOut>>,
}

impl Held {
    pub(super) fn observe(&mut self, ev: &TraceEvent<Txn>) {
        self.observed.push_back((ev.action, ev.i, ev.j));
    }
}

/// How a replay ended, when the server took every step it was asked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The simulation's refiner found the server's state after step `step` (1-based; 0 is
    /// reaching the path's initial state) breaking this invariant.
    InvariantBroken {
        /// The model step.
        step: usize,
        /// The invariant id.
        invariant: &'static str,
    },
    /// Every step was taken, and every invariant held.
    RanThrough,
}

/// Why the server did not take a step.
#[derive(Clone, Debug, PartialEq)]
pub enum StuckReason {
    /// The server took another action where the model takes this step.
    OtherAction(Rec),
    /// The event was performed and the server took no step.
    NoAction,
    /// No frame was held on the link the step receives from.
    NoMessage {
        /// Sender.
        from: usize,
        /// Receiver.
        to: usize,
    },
    /// The election did not make the server lead (within the replay's budget of deliveries
    /// and timer firings).
    NotElected,
    /// The server did not choose to follow that leader.
    DidNotChoose,
    /// The leader did not accept the connection (it is not leading, or the link is cut).
    ConnectionRefused,
    /// The step's server is down (the replay restarts crashed servers at once, so this
    /// follows a failed restart).
    ServerDown(usize),
    /// The log had nothing to fsync.
    NothingToSync,
    /// The damage the storage fault needs cannot be done to this disk.
    DamageImpossible,
    /// The path does not decode in the model it names (a stale file, a link of another
    /// configuration).
    BadPath(zab_model::path_file::PathError),
    /// The replay cannot drive this kind of step (`TakeSnapshot`).
    Unsupported(ActionKind),
    /// After the step, server `server`'s projection differs from the path's state.
    StateDiffers {
        /// The server (0-based).
        server: usize,
        /// The path's projection.
        expected: ServerSummary,
        /// The refined trace's projection.
        actual: ServerSummary,
    },
    /// The simulation failed otherwise (a refinement divergence that is not an invariant,
    /// a storage or recovery error).
    Simulation {
        /// The check that failed.
        kind: &'static str,
        /// The divergence, for a refinement failure.
        divergence: Option<DivergenceKind>,
    },
}

/// The first step the server did not take.
#[derive(Debug)]
pub struct Stuck {
    /// The model step (1-based; 0 is reaching the initial state).
    pub step: usize,
    /// The model action, as text.
    pub action: String,
    /// Why.
    pub reason: StuckReason,
    /// Details for people (the failure's text, the last records).
    pub detail: String,
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server does not take step {} ({}): {:?}",
            self.step, self.action, self.reason
        )?;
        if !self.detail.is_empty() {
            write!(f, "\n{}", self.detail)?;
        }
        Ok(())
    }
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplayReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Model steps taken.
    pub steps: usize,
    /// Trace records refined (the initial state's included).
    pub records: usize,
    /// One line per step: the action and the records it matched.
    pub log: Vec<String>,
}

/// Deliveries and timer firings one step may use before it is given up.
const BUDGET: usize = 2_000;

/// A step's failure, before the step number is attached.
enum Halt {
    Stuck(Box<StuckReason>, String),
    Broken(&'static str),
}

impl From<Box<Failure>> for Halt {
    fn from(f: Box<Failure>) -> Halt {
        match f.divergence {
            Some(DivergenceKind::InvariantViolated(id)) => Halt::Broken(id),
            ref d => Halt::Stuck(
                Box::new(StuckReason::Simulation {
                    kind: f.kind,
                    divergence: d.clone(),
                }),
                f.to_string(),
            ),
        }
    }
}

fn stuck(r: StuckReason) -> Halt {
    Halt::Stuck(Box::new(r), String::new())
}

/// Replays `path` on the simulated servers. `server_bug` is the switch of the servers and of
/// the refiner's model (the path's own, or `None` to see what the fixed server does).
pub fn replay(path: &PathFile, server_bug: Option<Bug>) -> Result<ReplayReport, Box<Stuck>> {
    let (states, actions) = path.decode().map_err(|e| {
        Box::new(Stuck {
            step: 0,
            action: "decode".into(),
            detail: e.to_string(),
            reason: StuckReason::BadPath(e),
        })
    })?;
    let model = zab_model::checker::workload_model(&path.config);
    let n = usize::from(path.config.servers);
    let mut cfg = SimConfig::new(0, n);
    cfg.clients = 0;
    cfg.faults = Faults::NONE;
    cfg.snap_count = 1_000_000;
    cfg.bug = server_bug;
    cfg.max_session_ticks = 1_000_000;
    let mut sim = Sim::new(cfg);
    sim.held = Some(Held::default());
    let mut log = Vec::new();
    let fail =
        |sim: &Sim, step: usize, action: String, h: Halt| -> Result<ReplayReport, Box<Stuck>> {
            match h {
                Halt::Broken(invariant) => Ok(ReplayReport {
                    outcome: Outcome::InvariantBroken { step, invariant },
                    steps: step,
                    records: sim.traced,
                    log: Vec::new(),
                }),
                Halt::Stuck(reason, detail) => Err(Box::new(Stuck {
                    step,
                    action,
                    reason: *reason,
                    detail: if detail.is_empty() {
                        format!(
                            "last records:\n  {}",
                            sim.recent.iter().cloned().collect::<Vec<_>>().join("\n  ")
                        )
                    } else {
                        detail
                    },
                })),
            }
        };
    if let Err(h) = sim.rp_start(&path.config, &states[0]) {
        let mut r = fail(&sim, 0, "initial state".into(), h)?;
        r.log = log;
        return Ok(r);
    }
    log.push(format!(
        "step 0: initial state reached ({} records)",
        sim.traced
    ));
    for (k, a) in actions.iter().enumerate() {
        let step = k + 1;
        let before = sim.traced;
        if let Err(h) = sim.rp_step(&model, &states[k], &states[step], a, &actions[step..]) {
            let mut r = fail(&sim, step, a.to_string(), h)?;
            log.push(format!("step {step}: {a}: the server breaks an invariant"));
            r.log = log;
            return Ok(r);
        }
        log.push(format!(
            "step {step}: {a} ({} records)",
            sim.traced - before
        ));
    }
    Ok(ReplayReport {
        outcome: Outcome::RanThrough,
        steps: actions.len(),
        records: sim.traced,
        log,
    })
}

impl Sim {
    fn held(&mut self) -> &mut Held {
        self.held.get_or_insert_with(Held::default)
    }

    pub(super) fn hold_election(&mut self, from: usize, to: usize, frame: Frame<Txn>) {
        if to >= self.nodes.len() {
            return;
        }
        let lives = (self.nodes[from].life, self.nodes[to].life);
        let now = self.now();
        self.held()
            .election
            .entry((from, to))
            .or_default()
            .push_back((now, lives.0, lives.1, frame));
    }

    pub(super) fn hold_quorum(&mut self, from: usize, to: usize, conn: u64, frame: Frame<Txn>) {
        if matches!(frame, Frame::Heartbeat) {
            self.held().heartbeats.push_back((conn, from, to, frame));
        } else {
            self.held()
                .quorum
                .entry((from, to))
                .or_default()
                .push_back((conn, frame));
        }
    }

    /// Whether the quorum connection `conn` between `a` and `b` is still the current one.
    fn conn_live(&self, a: usize, b: usize, conn: u64) -> bool {
        self.conns
            .get(&Self::conn_key(a, b))
            .is_some_and(|c| c.id == conn)
    }

    /// Delivers the next quorum frame held from `from` to `to` (a frame of a broken
    /// connection is dropped). `false`: none was held.
    fn rp_deliver(&mut self, from: usize, to: usize) -> Result<bool, Box<Failure>> {
        let Some((conn, frame)) = self
            .held()
            .quorum
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return Ok(false);
        };
        if self.conn_live(from, to, conn) {
            let id = self.nodes[from].id;
            self.on_node(to, |r| {
                r.handle(Event::Net(NetEvent::Quorum { from: id, frame }))
            })?;
        }
        Ok(true)
    }

    fn rp_heartbeats(&mut self) -> Result<(), Box<Failure>> {
        while let Some((conn, from, to, frame)) = self.held().heartbeats.pop_front() {
            if self.conn_live(from, to, conn) {
                let id = self.nodes[from].id;
                self.on_node(to, |r| {
                    r.handle(Event::Net(NetEvent::Quorum { from: id, frame }))
                })?;
            }
        }
        Ok(())
    }

    /// Runs the election among the members of `among` for one event: a timer of theirs that
    /// is due fires; else a notification held between two of them and sent before now is
    /// delivered (one of an earlier life of either end, or over a cut link, is dropped); else
    /// the clock moves to the next of their timers or notifications (a notification takes
    /// 1 ms: servers that answer each other at once cannot stop the clock). `false`: nothing
    /// is left to happen among them.
    fn rp_election_round(&mut self, among: &[usize]) -> Result<bool, Box<Failure>> {
        self.rp_heartbeats()?;
        let now = self.now();
        let timer = among
            .iter()
            .filter_map(|&k| {
                self.nodes[k]
                    .up
                    .as_ref()
                    .map(|u| (u.replica.next_deadline(), k))
            })
            .filter(|(d, _)| *d != u64::MAX)
            .min();
        if let Some((at, k)) = timer.filter(|(at, _)| *at <= now) {
            let _ = at;
            self.on_node(k, |r| r.fire_due())?;
            return Ok(true);
        }
        let frame = self
            .held()
            .election
            .iter()
            .filter(|((f, t), q)| among.contains(f) && among.contains(t) && !q.is_empty())
            .filter_map(|(k, q)| q.front().map(|e| (e.0 + 1, *k)))
            .min();
        match (frame, timer) {
            (Some((at, (f, t))), _) if at <= now => {
                let Some((_, lf, lt, frame)) = self
                    .held()
                    .election
                    .get_mut(&(f, t))
                    .and_then(VecDeque::pop_front)
                else {
                    return Ok(false);
                };
                if lf == self.nodes[f].life && lt == self.nodes[t].life && self.linked(f, t) {
                    let from = self.nodes[f].id;
                    self.on_node(t, |r| {
                        r.handle(Event::Net(NetEvent::Election { from, frame }))
                    })?;
                }
                Ok(true)
            }
            (Some((a, _)), Some((b, _))) => {
                self.clock.advance_to(a.min(b));
                Ok(true)
            }
            (Some((a, _)), None) | (None, Some((a, _))) => {
                self.clock.advance_to(a);
                Ok(true)
            }
            (None, None) => Ok(false),
        }
    }

    /// Fires the earliest timer of the members of `among`: the clock moves to it. `false`:
    /// none is set.
    fn rp_fire(&mut self, among: &[usize]) -> Result<bool, Box<Failure>> {
        self.rp_heartbeats()?;
        let next = among
            .iter()
            .filter_map(|&k| {
                self.nodes[k]
                    .up
                    .as_ref()
                    .map(|u| (u.replica.next_deadline(), k))
            })
            .filter(|(d, _)| *d != u64::MAX)
            .min();
        let Some((at, k)) = next else {
            return Ok(false);
        };
        self.clock.advance_to(at);
        self.on_node(k, |r| r.fire_due())?;
        self.rp_heartbeats()?;
        Ok(true)
    }

    fn rp_fsync(&mut self, k: usize) -> Result<bool, Box<Failure>> {
        let unsynced = self.nodes[k]
            .up
            .as_ref()
            .is_some_and(|u| u.log.has_unsynced());
        if !unsynced {
            return Ok(false);
        }
        let life = self.nodes[k].life;
        self.fsync_done(k, life)?;
        Ok(true)
    }

    /// A new client session at server `k`: its `createSession` is a write.
    fn rp_open_session(&mut self, k: usize) -> Result<(), Box<Failure>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let held = self.held();
        held.outboxes.push(rx);
        let id = (1u64 << 40) | held.outboxes.len() as u64;
        let request = zab_zk::proto::ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: i32::MAX,
            session_id: 0,
            passwd: bytes::Bytes::from(vec![0u8; 16]),
            read_only: Some(false),
        };
        let remote = std::net::SocketAddr::from(([10, 0, 0, 2], 30_000));
        self.on_node(k, |r| {
            r.handle(Event::Client(ClientEvent::Open {
                conn: id,
                remote,
                request,
                out: tx.into(),
                x509: None,
            }))
        })
    }

    /// Delivers held quorum frames and completes fsyncs, in a fixed order, until `done` or
    /// nothing is left to do.
    fn rp_run_free(&mut self, done: impl Fn(&Sim) -> bool) -> Result<bool, Box<Failure>> {
        for _ in 0..BUDGET {
            if done(self) {
                return Ok(true);
            }
            let link = self
                .held()
                .quorum
                .iter()
                .find(|(_, q)| !q.is_empty())
                .map(|(k, _)| *k);
            if let Some((f, t)) = link {
                self.rp_deliver(f, t)?;
                continue;
            }
            let mut synced = false;
            for k in 0..self.nodes.len() {
                if self.rp_fsync(k)? {
                    synced = true;
                    break;
                }
            }
            if synced {
                continue;
            }
            let all: Vec<usize> = (0..self.nodes.len()).collect();
            if !self.rp_fire(&all)? {
                break;
            }
        }
        Ok(done(self))
    }

    /// Boots the servers and, for an `--init epoch1` path, reaches its initial state.
    fn rp_start(&mut self, cfg: &zab_model::Config, init: &MState<ZnodeTxn>) -> Result<(), Halt> {
        for k in 0..self.nodes.len() {
            self.boot(k)?;
        }
        self.rp_introduce()?;
        if cfg.init == zab_model::InitKind::Epoch1 {
            self.rp_epoch1()?;
        }
        self.held().observed.clear();
        self.rp_compare(init)
    }

    /// Delivers the notifications the servers sent when they booted, and only those. A
    /// server that starts empty is unsure whether it was wiped until every other member has
    /// said it is empty too (`spec/PROTOCOL.md` §7.1.1), and while unsure its notifications
    /// say `recovering`: their votes are neither adopted nor counted. So this exchange decides
    /// nothing; it only lets every server know the ensemble is fresh, which the model takes
    /// for granted.
    fn rp_introduce(&mut self) -> Result<(), Box<Failure>> {
        let first: Vec<((usize, usize), usize)> = self
            .held()
            .election
            .iter()
            .map(|(k, q)| (*k, q.len()))
            .collect();
        for ((f, t), count) in first {
            for _ in 0..count {
                let Some((_, lf, lt, frame)) = self
                    .held()
                    .election
                    .get_mut(&(f, t))
                    .and_then(VecDeque::pop_front)
                else {
                    break;
                };
                if lf == self.nodes[f].life && lt == self.nodes[t].life {
                    let from = self.nodes[f].id;
                    self.on_node(t, |r| {
                        r.handle(Event::Net(NetEvent::Election { from, frame }))
                    })?;
                }
            }
        }
        Ok(())
    }

    fn rp_epoch1(&mut self) -> Result<(), Halt> {
        let n = self.nodes.len();
        let leader = n - 1;
        let all: Vec<usize> = (0..n).collect();
        let chose = |sim: &Sim| (0..leader).all(|f| sim.wanting.contains(&(f, leader)));
        let mut budget = BUDGET;
        while !(self.is_leading(leader) && chose(self)) {
            budget = budget
                .checked_sub(1)
                .ok_or(stuck(StuckReason::NotElected))?;
            if !self.rp_election_round(&all)? {
                return Err(stuck(StuckReason::NotElected));
            }
        }
        for f in 0..leader {
            self.connect_attempt(f, leader)?;
        }
        let all_broadcast = |sim: &Sim| {
            sim.refiner
                .state()
                .servers
                .iter()
                .all(|s| s.zab_state == ZabState::Broadcast)
        };
        if !self.rp_run_free(all_broadcast)? {
            return Err(stuck(StuckReason::NoAction));
        }
        self.rp_open_session(leader)?;
        let committed = |sim: &Sim| {
            sim.refiner
                .state()
                .servers
                .iter()
                .all(|s| s.last_committed >= 1 && s.persisted >= 1)
        };
        if !self.rp_run_free(committed)? {
            return Err(stuck(StuckReason::NoAction));
        }
        self.rp_open_session(leader)?;
        self.rp_fsync(leader)?;
        Ok(())
    }

    fn is_leading(&self, k: usize) -> bool {
        self.nodes[k].up.as_ref().is_some_and(|u| {
            u.net_state
                .leading
                .load(std::sync::atomic::Ordering::SeqCst)
        })
    }

    /// Every server's projection in the refined trace equals the path's.
    fn rp_compare(&self, state: &MState<ZnodeTxn>) -> Result<(), Halt> {
        for (k, srv) in state.servers.iter().enumerate() {
            let expected = crate::refine::project(srv);
            let actual = crate::refine::project(self.refiner.state().srv(k as u8));
            if expected != actual {
                return Err(stuck(StuckReason::StateDiffers {
                    server: k,
                    expected,
                    actual,
                }));
            }
        }
        Ok(())
    }
}
