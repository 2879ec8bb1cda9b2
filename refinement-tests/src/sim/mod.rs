//! Deterministic simulation of whole ensembles: the real replica runtime, protocol core,
//! ZooKeeper service and storage code of `zabd`, several servers in one thread, with
//! simulated time, network and disk, and faults drawn from a seed.
//!
//! Everything that is not deterministic in `zabd` is replaced here, and only that: the clock
//! ([`disk::SimClock`]), the disk ([`zab_server::storage::SimFs`] under the real
//! [`zab_server::storage::Storage`], [`disk::SimLog`]), the network (this module, in place of
//! `zab_server::net`), the background snapshot thread (run when the simulation decides), and the
//! clients ([`client`], speaking the ZooKeeper wire protocol to the real service).
//!
//! A run has a *safety* phase with faults (crashes with unsynced writes lost or torn, partitions,
//! message delay, loss of election messages and reordering across connections, slow fsyncs),
//! then a *liveness* phase without faults in which every client must complete its requests.
//! Every trace record is refined against the model as it is produced ([`crate::refine`]), with
//! every model invariant checked on every step; at the end the replicas must hold identical
//! trees, and the client history must be linearizable for writes and follow ZooKeeper's read
//! guarantees ([`crate::history`]).
//!
//! The network follows the model's connection semantics: a quorum connection is FIFO; when it
//! breaks (a close, a partition, a crash), whatever was in flight on it is lost and both ends
//! hear of it before anything else happens (the model breaks both ends in one step).

pub mod client;
pub mod disk;

use crate::history::{self, KeyHistory, Op};
use crate::refine::{Divergence, Refiner};
use client::SimClient;
use disk::{SimClock, SimLog};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use zab_model::Bug;
use zab_server::config::{Member, ServerConfig};
use zab_server::core::{PeerConfig, Summary, TraceEvent};
use zab_server::net::{NetCommand, NetEvent, NetState};
use zab_server::runtime::{BackgroundJob, Event, Replica, Status, recover_peer};
use zab_server::service::{ClientEvent, ServiceConfig, ZkService};
use zab_server::storage::{CrashMode, SimFs, Storage, StorageConfig, WriterEvent};
use zab_server::wire::Frame;
use zab_spec::{ServerId, ServerState, ZabState, Zxid};
use zab_zk::DataTree;
use zab_zk::txn::Txn;

/// Which faults the safety phase injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Crash and restart servers (unsynced writes lost).
    pub crash: bool,
    /// Crashes may leave a torn last record.
    pub torn_tail: bool,
    /// Partition pairs of servers and heal them.
    pub partition: bool,
    /// Delay messages (up to `max_delay_ms`).
    pub delay: bool,
    /// Lose leader-election messages (quorum connections are TCP: they break, not lose).
    pub loss: bool,
    /// Slow fsyncs.
    pub slow_fsync: bool,
}

impl Faults {
    /// Every fault.
    pub const ALL: Faults = Faults {
        crash: true,
        torn_tail: true,
        partition: true,
        delay: true,
        loss: true,
        slow_fsync: true,
    };
    /// No fault.
    pub const NONE: Faults = Faults {
        crash: false,
        torn_tail: false,
        partition: false,
        delay: false,
        loss: false,
        slow_fsync: false,
    };
}

/// A simulation's parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Everything random derives from it.
    pub seed: u64,
    /// Ensemble size.
    pub servers: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Simulated duration of the phase with faults, ms.
    pub safety_ms: u64,
    /// Operations every client must complete in the phase without faults.
    pub liveness_ops: usize,
    /// Simulated time the liveness phase may take, ms.
    pub liveness_ms: u64,
    /// Faults of the safety phase.
    pub faults: Faults,
    /// Mean time between two fault decisions, ms.
    pub fault_interval_ms: u64,
    /// `tickTime`, ms.
    pub tick_ms: u64,
    /// Snapshot every this many transactions (small, to exercise SNAP and log pruning).
    pub snap_count: u64,
    /// A known bug switched on in the servers and in the model.
    pub bug: Option<Bug>,
    /// Keep the trace text (for the determinism check and `--print-trace`).
    pub keep_trace: bool,
}

impl SimConfig {
    /// The defaults for `seed` and `servers`.
    #[must_use]
    pub fn new(seed: u64, servers: usize) -> SimConfig {
        SimConfig {
            seed,
            servers,
            clients: 3,
            safety_ms: 20_000,
            liveness_ops: 5,
            liveness_ms: 60_000,
            faults: Faults::ALL,
            fault_interval_ms: 700,
            tick_ms: 100,
            snap_count: 25,
            bug: None,
            keep_trace: false,
        }
    }

    /// The command that reruns this simulation.
    #[must_use]
    pub fn repro(&self) -> String {
        let mut cmd = format!(
            "cargo run --release -p zab-refinement --bin zab-sim -- run --seed {} --servers {} \
             --clients {} --safety-ms {}",
            self.seed, self.servers, self.clients, self.safety_ms
        );
        if let Some(b) = self.bug {
            cmd.push_str(&format!(" --bug {}", b.cli_name()));
        }
        if self.faults == Faults::NONE {
            cmd.push_str(" --no-faults");
        }
        cmd
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Trace records refined.
    pub records: usize,
    /// Operations that completed / whose outcome is unknown.
    pub ops_completed: usize,
    /// Operations whose reply never came.
    pub ops_unknown: usize,
    /// Faults injected, by kind.
    pub faults: BTreeMap<&'static str, usize>,
    /// Model actions the trace mapped to, by name.
    pub actions: BTreeMap<&'static str, usize>,
    /// Transactions committed.
    pub committed: usize,
    /// Simulated time at the end, ms.
    pub end_ms: u64,
    /// SHA-1 of the trace text: equal seeds give equal digests.
    pub trace_digest: String,
    /// The trace, one record per line (with `keep_trace`).
    pub trace: Vec<String>,
}

/// Why a run failed, with the command that reproduces it.
#[derive(Debug)]
pub struct Failure {
    /// The check that failed.
    pub kind: &'static str,
    /// What went wrong.
    pub reason: String,
    /// The last trace records before the failure.
    pub recent: Vec<String>,
    /// The command that reruns the simulation.
    pub repro: String,
    /// Simulated time, ms.
    pub at_ms: u64,
    /// The last model steps of the refined trace, for the chart (`crate::report`).
    pub window: crate::refine::ModelWindow<Txn>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} failed at {} ms: {}",
            self.kind, self.at_ms, self.reason
        )?;
        if !self.recent.is_empty() {
            writeln!(f, "last trace records:")?;
            for r in &self.recent {
                writeln!(f, "  {r}")?;
            }
        }
        write!(f, "reproduce with: {}", self.repro)
    }
}

/// One record of the trace as text (stable across runs: the determinism check hashes it).
#[must_use]
pub fn record_text(ev: &TraceEvent<Txn>) -> String {
    let j = ev.j.map_or(String::new(), |j| format!(",s{}", j.0));
    let p = ev
        .payload
        .as_ref()
        .map_or(String::new(), |p| format!(" [{p}]"));
    format!(
        "{}(s{}{j}){p} -> {}",
        ev.action,
        ev.i.0,
        crate::refine::show(&ev.summary)
    )
}

type SimReplica = Replica<Txn, ZkService, SimLog>;

/// One simulated server.
struct Node {
    id: ServerId,
    fs: SimFs,
    /// Bumped at every crash; events of an earlier life are dropped.
    life: u64,
    up: Option<Up>,
    /// fsync latency, ms (slow-fsync fault).
    fsync_ms: u64,
}

/// A running server.
struct Up {
    replica: SimReplica,
    log: Arc<SimLog>,
    net_rx: tokio::sync::mpsc::UnboundedReceiver<NetCommand<Txn>>,
    events_rx: Receiver<Event<Txn, ClientEvent>>,
    net_state: Arc<NetState>,
    jobs: Arc<Mutex<VecDeque<BackgroundJob>>>,
    fsync_scheduled: bool,
    background_scheduled: bool,
}

/// A quorum connection (FIFO both ways).
#[derive(Clone, Copy, Debug)]
struct Conn {
    id: u64,
    /// Last scheduled delivery time, per direction (towards the lower id, towards the higher).
    last: [u64; 2],
}

/// A scheduled event.
#[derive(Debug)]
enum Ev {
    Election {
        to: usize,
        life: u64,
        from: ServerId,
        frame: Frame<Txn>,
    },
    Quorum {
        conn: u64,
        to: usize,
        from: ServerId,
        frame: Frame<Txn>,
    },
    ConnectAttempt {
        from: usize,
        to: usize,
    },
    Fsync {
        node: usize,
        life: u64,
    },
    Background {
        node: usize,
        life: u64,
    },
    ToServer {
        node: usize,
        life: u64,
        event: ClientEvent,
    },
    ClientWake {
        client: usize,
        token: u64,
    },
    Fault,
    Restart {
        node: usize,
    },
}

/// The simulation.
pub struct Sim {
    cfg: SimConfig,
    rng: ChaCha8Rng,
    clock: SimClock,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    seq: u64,
    nodes: Vec<Node>,
    partitions: BTreeSet<(usize, usize)>,
    conns: BTreeMap<(usize, usize), Conn>,
    next_conn: u64,
    wanting: BTreeSet<(usize, usize)>,
    trace: Arc<Mutex<Vec<TraceEvent<Txn>>>>,
    traced: usize,
    refiner: Refiner<Txn>,
    clients: Vec<SimClient>,
    pub(crate) history: Vec<Op>,
    /// A global event counter: the real-time order of client invocations and returns.
    pub(crate) ticks: u64,
    max_delay_ms: u64,
    faulty: bool,
    report: Report,
    recent: VecDeque<String>,
    /// How many records a failure shows (`ZAB_SIM_RECENT`, default 30).
    recent_limit: usize,
    hasher: sha1::Sha1,
    /// Steps taken at the same simulated time (a livelock detector).
    spin: (u64, u64),
}

impl Sim {
    /// A simulation ready to run.
    #[must_use]
    pub fn new(cfg: SimConfig) -> Sim {
        let ids: Vec<ServerId> = (1..=cfg.servers as u64).map(ServerId).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let nodes = ids
            .iter()
            .map(|id| Node {
                id: *id,
                fs: SimFs::new(),
                life: 0,
                up: None,
                fsync_ms: rng.random_range(0..3),
            })
            .collect();
        let clients = (0..cfg.clients).map(SimClient::new).collect();
        Sim {
            refiner: Refiner::new(&ids, cfg.bug),
            rng,
            clock: SimClock::default(),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            nodes,
            partitions: BTreeSet::new(),
            conns: BTreeMap::new(),
            next_conn: 1,
            wanting: BTreeSet::new(),
            trace: Arc::default(),
            traced: 0,
            clients,
            history: Vec::new(),
            ticks: 0,
            max_delay_ms: 5,
            faulty: cfg.faults != Faults::NONE,
            report: Report::default(),
            recent: VecDeque::new(),
            recent_limit: std::env::var("ZAB_SIM_RECENT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(30),
            hasher: <sha1::Sha1 as sha1::Digest>::new(),
            spin: (0, 0),
            cfg,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn delay(&mut self) -> u64 {
        self.rng.random_range(1..=self.max_delay_ms.max(1))
    }

    fn fail(&self, kind: &'static str, reason: String) -> Box<Failure> {
        Box::new(Failure {
            kind,
            reason,
            recent: self.recent.iter().cloned().collect(),
            repro: self.cfg.repro(),
            at_ms: self.now(),
            window: self.refiner.window(),
        })
    }

    fn server_config(&self, k: usize) -> ServerConfig {
        let mut c = ServerConfig::standalone_default();
        c.myid = self.nodes[k].id;
        c.members = self
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| Member {
                id: node.id,
                quorum_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 12_000 + n as u16)),
                election_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 13_000 + n as u16)),
                client_addr: None,
            })
            .collect();
        c.tick_ms = self.cfg.tick_ms;
        c.data_dir = format!("/s{}/data", c.myid.0).into();
        c.data_log_dir = format!("/s{}/log", c.myid.0).into();
        c.snap_count = self.cfg.snap_count;
        c.snap_retain_count = 2;
        c.min_session_timeout_ms = 2 * self.cfg.tick_ms;
        c.max_session_timeout_ms = 20 * self.cfg.tick_ms;
        c
    }

    /// Starts (or restarts) server `k` from its disk.
    fn boot(&mut self, k: usize) -> Result<(), Box<Failure>> {
        let server_cfg = self.server_config(k);
        let mut storage_cfg = StorageConfig::new(&server_cfg.data_dir, &server_cfg.data_log_dir);
        storage_cfg.snap_retain_count = server_cfg.snap_retain_count;
        let fs: Arc<dyn zab_server::storage::FileSystem> = Arc::new(self.nodes[k].fs.clone());
        let (storage, recovered) = Storage::open(fs, &storage_cfg)
            .map_err(|e| self.fail("recovery", format!("s{} cannot start: {e}", k + 1)))?;
        let tree = match &recovered.snapshot {
            Some(s) => DataTree::from_snapshot(&s.data)
                .map_err(|e| self.fail("recovery", format!("s{}'s snapshot: {e}", k + 1)))?,
            None => DataTree::new(),
        };
        let ids: Vec<ServerId> = self.nodes.iter().map(|n| n.id).collect();
        let mut pc = PeerConfig::new(self.nodes[k].id, ids);
        pc.tick_ms = self.cfg.tick_ms;
        pc.init_limit = 10;
        pc.sync_limit = 5;
        pc.finalize_wait_ms = 50;
        pc.max_notification_interval_ms = 1_600;
        pc.trace = true;
        pc.bug = self.cfg.bug;
        let peer = recover_peer::<Txn>(pc, &recovered)
            .map_err(|e| self.fail("recovery", format!("s{}: {e}", k + 1)))?;
        let restart = self.nodes[k].life > 0;
        let summary: Summary = peer.summary();
        let log = Arc::new(SimLog::new(storage));
        let (net_tx, net_rx) = tokio::sync::mpsc::unbounded_channel();
        let (events_tx, events_rx): (Sender<_>, Receiver<_>) = std::sync::mpsc::channel();
        let net_state = Arc::new(NetState::default());
        let jobs: Arc<Mutex<VecDeque<BackgroundJob>>> = Arc::default();
        let service = ZkService::new(
            ServiceConfig {
                server: server_cfg.clone(),
                super_digest: None,
                session_secret: b"zab-sim".to_vec(),
                container_check_ms: 60_000,
            },
            tree,
            recovered.snapshot_zxid(),
            zab_server::runtime::Clock::wall_ms(&self.clock),
        );
        let trace = Arc::clone(&self.trace);
        let queued = Arc::clone(&jobs);
        let replica = Replica::new(
            peer,
            service,
            Arc::clone(&log),
            net_tx,
            Arc::clone(&net_state),
            events_tx,
            Arc::new(Status::default()),
            server_cfg.snap_count,
        )
        .with_clock(Box::new(self.clock.clone()))
        .with_spawner(Box::new(move |job| {
            queued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push_back(job);
        }))
        .with_trace(Box::new(move |ev| {
            trace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ev.clone());
        }));
        if restart {
            self.push_trace(TraceEvent {
                action: "NodeRestart",
                i: self.nodes[k].id,
                j: None,
                payload: None,
                summary,
            });
        }
        self.nodes[k].up = Some(Up {
            replica,
            log,
            net_rx,
            events_rx,
            net_state,
            jobs,
            fsync_scheduled: false,
            background_scheduled: false,
        });
        self.on_node(k, |r| r.start())
    }

    fn push_trace(&mut self, ev: TraceEvent<Txn>) {
        self.trace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ev);
    }

    /// Runs `f` on server `k` (if up), then everything it caused.
    fn on_node(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut SimReplica) -> Result<(), zab_server::storage::StorageError>,
    ) -> Result<(), Box<Failure>> {
        let Some(up) = self.nodes[k].up.as_mut() else {
            return Ok(());
        };
        if let Err(e) = f(&mut up.replica) {
            return Err(self.fail("storage", format!("s{} stopped: {e}", k + 1)));
        }
        self.settle(k)
    }

    /// Drains what server `k` produced: network commands, background results, client frames;
    /// schedules its fsync and background jobs; refines the new trace records.
    fn settle(&mut self, first: usize) -> Result<(), Box<Failure>> {
        let mut work = VecDeque::from([first]);
        while let Some(k) = work.pop_front() {
            while let Some(Ok(cmd)) = self.nodes[k].up.as_mut().map(|up| up.net_rx.try_recv()) {
                self.net_command(k, cmd, &mut work)?;
            }
            let now = self.now();
            let life = self.nodes[k].life;
            let fsync_ms = self.nodes[k].fsync_ms;
            let mut fsync = false;
            let mut background = false;
            if let Some(up) = self.nodes[k].up.as_mut() {
                if !up.fsync_scheduled && up.log.has_unsynced() {
                    up.fsync_scheduled = true;
                    fsync = true;
                }
                let has_jobs = !up
                    .jobs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_empty();
                if !up.background_scheduled && has_jobs {
                    up.background_scheduled = true;
                    background = true;
                }
            }
            if fsync {
                self.schedule(now + fsync_ms, Ev::Fsync { node: k, life });
            }
            if background {
                let d = self.rng.random_range(1..40);
                self.schedule(now + d, Ev::Background { node: k, life });
            }
        }
        self.drain_clients()?;
        self.refine()
    }

    fn refine(&mut self) -> Result<(), Box<Failure>> {
        let records: Vec<TraceEvent<Txn>> = {
            let t = self
                .trace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            t[self.traced..].to_vec()
        };
        for ev in records {
            self.traced += 1;
            let text = record_text(&ev);
            sha1::Digest::update(&mut self.hasher, text.as_bytes());
            sha1::Digest::update(&mut self.hasher, b"\n");
            if self.cfg.keep_trace {
                self.report.trace.push(text.clone());
            }
            self.recent.push_back(text);
            if self.recent.len() > self.recent_limit {
                self.recent.pop_front();
            }
            if ev.action == "NodeCrash" {
                // The crashed server has no state to compare until it restarts.
                if let Err(d) = self.refiner.step_unchecked(&ev) {
                    return Err(self.diverged(&d));
                }
            } else if let Err(d) = self.refiner.step(&ev) {
                return Err(self.diverged(&d));
            }
        }
        Ok(())
    }

    fn diverged(&self, d: &Divergence) -> Box<Failure> {
        self.fail("refinement", d.to_string())
    }

    fn conn_key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    fn linked(&self, a: usize, b: usize) -> bool {
        !self.partitions.contains(&Self::conn_key(a, b))
    }

    fn net_command(
        &mut self,
        k: usize,
        cmd: NetCommand<Txn>,
        work: &mut VecDeque<usize>,
    ) -> Result<(), Box<Failure>> {
        let from = self.nodes[k].id;
        match cmd {
            NetCommand::Election { to, frame } => {
                let t = self.index(to);
                let lost = self.faulty && self.cfg.faults.loss && self.rng.random_bool(0.05);
                if self.linked(k, t) && !lost {
                    let at = self.now() + self.delay();
                    let life = self.nodes[t].life;
                    self.schedule(
                        at,
                        Ev::Election {
                            to: t,
                            life,
                            from,
                            frame,
                        },
                    );
                }
            }
            NetCommand::Quorum { to, frame } => {
                let t = self.index(to);
                let key = Self::conn_key(k, t);
                if let Some(c) = self.conns.get(&key).copied() {
                    let dir = usize::from(t > k);
                    let at = (self.now() + self.delay()).max(c.last[dir]);
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.last[dir] = at;
                    }
                    self.schedule(
                        at,
                        Ev::Quorum {
                            conn: c.id,
                            to: t,
                            from,
                            frame,
                        },
                    );
                }
            }
            NetCommand::Connect { leader } => {
                let t = self.index(leader);
                self.wanting.insert((k, t));
                let at = self.now() + self.delay();
                self.schedule(at, Ev::ConnectAttempt { from: k, to: t });
            }
            NetCommand::Disconnect { peer } => {
                let t = self.index(peer);
                self.wanting.remove(&(k, t));
                if self.conns.remove(&Self::conn_key(k, t)).is_some() {
                    self.hear_disconnect(t, from)?;
                    work.push_back(t);
                }
            }
        }
        Ok(())
    }

    /// Server `t` learns that its quorum connection with `peer` is gone.
    fn hear_disconnect(&mut self, t: usize, peer: ServerId) -> Result<(), Box<Failure>> {
        self.on_node(t, |r| r.handle(Event::Net(NetEvent::Disconnected { peer })))
    }

    fn index(&self, id: ServerId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or(usize::MAX)
    }

    /// Breaks the quorum connection between `a` and `b`, if any: in-flight frames are lost
    /// and both ends hear of it now.
    fn break_conn(&mut self, a: usize, b: usize) -> Result<(), Box<Failure>> {
        if self.conns.remove(&Self::conn_key(a, b)).is_some() {
            let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
            self.hear_disconnect(a, idb)?;
            self.hear_disconnect(b, ida)?;
        }
        self.wanting.remove(&(a, b));
        self.wanting.remove(&(b, a));
        Ok(())
    }

    fn dispatch(&mut self, ev: Ev) -> Result<(), Box<Failure>> {
        match ev {
            Ev::Election {
                to,
                life,
                from,
                frame,
            } => {
                let f = self.index(from);
                if life == self.nodes[to].life && self.linked(f, to) {
                    self.on_node(to, |r| {
                        r.handle(Event::Net(NetEvent::Election { from, frame }))
                    })?;
                }
            }
            Ev::Quorum {
                conn,
                to,
                from,
                frame,
            } => {
                let f = self.index(from);
                if self
                    .conns
                    .get(&Self::conn_key(f, to))
                    .is_some_and(|c| c.id == conn)
                {
                    self.on_node(to, |r| {
                        r.handle(Event::Net(NetEvent::Quorum { from, frame }))
                    })?;
                }
            }
            Ev::ConnectAttempt { from, to } => {
                if !self.wanting.contains(&(from, to)) || self.nodes[from].up.is_none() {
                    return Ok(());
                }
                let accepts = self.linked(from, to)
                    && self.nodes[to].up.as_ref().is_some_and(|u| {
                        u.net_state
                            .leading
                            .load(std::sync::atomic::Ordering::SeqCst)
                    });
                if accepts {
                    self.wanting.remove(&(from, to));
                    let id = self.next_conn;
                    self.next_conn += 1;
                    let now = self.now();
                    self.conns.insert(
                        Self::conn_key(from, to),
                        Conn {
                            id,
                            last: [now, now],
                        },
                    );
                    let (learner, leader) = (self.nodes[from].id, self.nodes[to].id);
                    self.on_node(to, |r| {
                        r.handle(Event::Net(NetEvent::LearnerConnected { learner }))
                    })?;
                    self.on_node(from, |r| {
                        r.handle(Event::Net(NetEvent::Connected { leader }))
                    })?;
                } else {
                    let at = self.now() + 50 + self.delay();
                    self.schedule(at, Ev::ConnectAttempt { from, to });
                }
            }
            Ev::Fsync { node, life } => {
                if life != self.nodes[node].life {
                    return Ok(());
                }
                let Some(up) = self.nodes[node].up.as_mut() else {
                    return Ok(());
                };
                up.fsync_scheduled = false;
                let r = up.log.complete_fsync();
                let (zxid, generation) =
                    r.map_err(|e| self.fail("storage", format!("s{} fsync: {e}", node + 1)))?;
                self.on_node(node, |r| {
                    r.handle(Event::Writer(WriterEvent::Durable {
                        zxid,
                        generation,
                        fsync_micros: 0,
                    }))
                })?;
            }
            Ev::Background { node, life } => {
                if life != self.nodes[node].life {
                    return Ok(());
                }
                let Some(up) = self.nodes[node].up.as_mut() else {
                    return Ok(());
                };
                up.background_scheduled = false;
                let jobs: Vec<BackgroundJob> = up
                    .jobs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .drain(..)
                    .collect();
                for job in jobs {
                    job();
                }
                // Whatever the jobs reported is handled now, before anything else happens.
                while let Some(Ok(ev)) = self.nodes[node]
                    .up
                    .as_mut()
                    .map(|up| up.events_rx.try_recv())
                {
                    self.on_node(node, |r| r.handle(ev))?;
                }
                self.settle(node)?;
            }
            Ev::ToServer { node, life, event } => {
                if life == self.nodes[node].life {
                    self.on_node(node, |r| r.handle(Event::Client(event)))?;
                }
            }
            Ev::ClientWake { client, token } => self.client_woken(client, token)?,
            Ev::Fault => self.fault()?,
            Ev::Restart { node } => {
                if self.nodes[node].up.is_none() {
                    self.boot(node)?;
                }
            }
        }
        Ok(())
    }

    /// Crashes server `k`: its volatile state is gone, its unsynced writes lost (or torn).
    fn crash(&mut self, k: usize) -> Result<(), Box<Failure>> {
        if self.nodes[k].up.is_none() {
            return Ok(());
        }
        let torn = self.cfg.faults.torn_tail && self.rng.random_bool(0.5);
        let mode = if torn {
            CrashMode::TornTail {
                seed: self.rng.random(),
            }
        } else {
            CrashMode::DropUnsynced
        };
        let id = self.nodes[k].id;
        let summary = self.nodes[k]
            .up
            .as_ref()
            .map(|u| u.replica.peer().summary());
        self.nodes[k].up = None;
        self.nodes[k].life += 1;
        self.nodes[k].fs.crash(mode);
        if let Some(summary) = summary {
            self.push_trace(TraceEvent {
                action: "NodeCrash",
                i: id,
                j: None,
                payload: None,
                summary,
            });
        }
        self.refine()?;
        for other in 0..self.nodes.len() {
            if other != k {
                self.break_conn(k, other)?;
            }
        }
        self.close_clients_of(k);
        *self
            .report
            .faults
            .entry(if torn { "crash (torn tail)" } else { "crash" })
            .or_default() += 1;
        Ok(())
    }

    fn fault(&mut self) -> Result<(), Box<Failure>> {
        if !self.faulty {
            return Ok(());
        }
        let n = self.nodes.len();
        let f = self.cfg.faults;
        let roll: u32 = self.rng.random_range(0..100);
        match roll {
            0..=24 if f.crash => {
                let k = self.rng.random_range(0..n);
                self.crash(k)?;
                let down = self.rng.random_range(100..3_000);
                let at = self.now() + down;
                self.schedule(at, Ev::Restart { node: k });
            }
            25..=44 if f.partition => {
                let a = self.rng.random_range(0..n);
                let b = (a + self.rng.random_range(1..n)) % n;
                if self.partitions.insert(Self::conn_key(a, b)) {
                    *self.report.faults.entry("partition").or_default() += 1;
                    self.break_conn(a, b)?;
                }
            }
            45..=64 if f.partition => {
                if let Some(p) = self.partitions.iter().next().copied() {
                    self.partitions.remove(&p);
                }
            }
            65..=79 if f.delay => {
                self.max_delay_ms = *[1u64, 5, 20, 80, 250]
                    .get(self.rng.random_range(0..5))
                    .unwrap_or(&5);
                *self.report.faults.entry("delay change").or_default() += 1;
            }
            80..=89 if f.slow_fsync => {
                let k = self.rng.random_range(0..n);
                self.nodes[k].fsync_ms = *[0u64, 1, 10, 50, 300]
                    .get(self.rng.random_range(0..5))
                    .unwrap_or(&1);
                *self.report.faults.entry("fsync speed change").or_default() += 1;
            }
            _ => {}
        }
        let gap = self.rng.random_range(1..=2 * self.cfg.fault_interval_ms);
        let at = self.now() + gap;
        self.schedule(at, Ev::Fault);
        Ok(())
    }

    /// Ends the faults: heal, restore delays and fsyncs, restart every server.
    fn calm(&mut self) -> Result<(), Box<Failure>> {
        self.faulty = false;
        self.partitions.clear();
        self.max_delay_ms = 5;
        for k in 0..self.nodes.len() {
            self.nodes[k].fsync_ms = 1;
            if self.nodes[k].up.is_none() {
                self.boot(k)?;
            }
        }
        Ok(())
    }

    fn next_time(&self) -> u64 {
        let q = self.queue.peek().map_or(u64::MAX, |Reverse((t, _))| *t);
        let timers = self
            .nodes
            .iter()
            .filter_map(|n| n.up.as_ref().map(|u| u.replica.next_deadline()))
            .min()
            .unwrap_or(u64::MAX);
        q.min(timers)
    }

    /// Advances to the next event or timer and handles it.
    fn advance(&mut self, until: u64) -> Result<bool, Box<Failure>> {
        let t = self.next_time();
        if t == self.spin.0 {
            self.spin.1 += 1;
            if self.spin.1 > 1_000_000 {
                let what = self
                    .queue
                    .peek()
                    .and_then(|Reverse((_, seq))| self.events.get(seq))
                    .map(|e| format!("{e:?}"))
                    .unwrap_or_default();
                let roles = self.roles();
                return Err(self.fail(
                    "simulation",
                    format!(
                        "time stands still at {t} ms (next event {what:.300}; servers {roles})"
                    ),
                ));
            }
        } else {
            self.spin = (t, 0);
        }
        if t > until {
            self.clock.advance_to(until);
            return Ok(false);
        }
        self.clock.advance_to(t);
        let now = self.now();
        if let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at <= now {
                self.queue.pop();
                if let Some(ev) = self.events.remove(&seq) {
                    self.dispatch(ev)?;
                }
                return Ok(true);
            }
        }
        for k in 0..self.nodes.len() {
            let due = self.nodes[k]
                .up
                .as_ref()
                .is_some_and(|u| u.replica.next_deadline() <= now);
            if due {
                self.on_node(k, |r| r.fire_due())?;
            }
        }
        Ok(true)
    }

    /// Runs the whole simulation: safety phase, liveness phase, final checks.
    pub fn run(mut self) -> Result<Report, Box<Failure>> {
        for k in 0..self.nodes.len() {
            self.boot(k)?;
        }
        for c in 0..self.clients.len() {
            let at = self.rng.random_range(0..200);
            self.wake(c, at);
        }
        if self.faulty {
            let at = self.cfg.fault_interval_ms;
            self.schedule(at, Ev::Fault);
        }
        let safety_end = self.cfg.safety_ms;
        while self.advance(safety_end)? {}
        self.calm()?;
        for c in &mut self.clients {
            c.liveness_start(self.ticks);
        }
        let deadline = safety_end + self.cfg.liveness_ms;
        loop {
            let done = self
                .clients
                .iter()
                .all(|c| c.completed_since_liveness() >= self.cfg.liveness_ops);
            if done {
                break;
            }
            if !self.advance(deadline)? {
                let stuck: Vec<String> = self
                    .clients
                    .iter()
                    .filter(|c| c.completed_since_liveness() < self.cfg.liveness_ops)
                    .map(|c| c.describe())
                    .collect();
                let roles = self.roles();
                return Err(self.fail(
                    "liveness",
                    format!(
                        "clients did not complete {} requests within {} ms without faults: {}; \
                         servers: {roles}",
                        self.cfg.liveness_ops,
                        self.cfg.liveness_ms,
                        stuck.join("; ")
                    ),
                ));
            }
        }
        for c in &mut self.clients {
            c.stop();
        }
        self.converge(deadline + 30_000)?;
        self.final_checks()
    }

    /// Where the replicated trees of servers `a` and `b` differ, if they delivered the same
    /// transactions. `/zookeeper/config` is each server's own (ZooKeeper does not replicate it).
    fn tree_difference(&self, a: usize, b: usize) -> Option<String> {
        let (ua, ub) = (self.nodes[a].up.as_ref()?, self.nodes[b].up.as_ref()?);
        let (za, zb) = (
            ua.replica.peer().log().committed(),
            ub.replica.peer().log().committed(),
        );
        if za != zb {
            return None;
        }
        let (ta, tb) = (ua.replica.app().tree(), ub.replica.app().tree());
        let view = |t: &DataTree| {
            let mut v: Vec<(String, String)> = t
                .iter()
                .filter(|(p, _)| *p != "/zookeeper/config")
                .map(|(p, n)| {
                    (
                        p.to_string(),
                        format!("{:?} {:?} {:?} {:?}", n.data, n.stat(), n.acl, n.children),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let (va, vb) = (view(ta), view(tb));
        if va == vb && ta.sessions() == tb.sessions() {
            return None;
        }
        let first = va.iter().zip(vb.iter()).find(|(x, y)| x != y).map_or_else(
            || {
                format!(
                    "{} nodes vs {} (sessions {:?} vs {:?})",
                    va.len(),
                    vb.len(),
                    ta.sessions(),
                    tb.sessions()
                )
            },
            |(x, y)| format!("{} = {}\n  vs {} = {}", x.0, x.1, y.0, y.1),
        );
        Some(format!(
            "s{} and s{} delivered up to {za} but their trees differ: {first}",
            a + 1,
            b + 1
        ))
    }

    fn roles(&self) -> String {
        let r: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.up {
                Some(u) => {
                    let s = u.replica.peer().summary();
                    format!(
                        "s{} {:?}/{:?} committed={}",
                        n.id.0, s.state, s.zab_state, s.committed
                    )
                }
                None => format!("s{} down", n.id.0),
            })
            .collect();
        r.join(", ")
    }

    /// Runs without clients until every server is in BROADCAST with the same delivered zxid.
    fn converge(&mut self, until: u64) -> Result<(), Box<Failure>> {
        loop {
            let states: Vec<(ServerState, ZabState, Zxid)> = self
                .nodes
                .iter()
                .filter_map(|n| n.up.as_ref())
                .map(|u| {
                    let s = u.replica.peer().summary();
                    (s.state, s.zab_state, s.committed)
                })
                .collect();
            let leader_committed = states
                .iter()
                .find(|s| s.0 == ServerState::Leading)
                .map(|s| s.2);
            let converged = states.len() == self.nodes.len()
                && leader_committed.is_some()
                && states
                    .iter()
                    .all(|s| s.1 == ZabState::Broadcast && Some(s.2) == leader_committed);
            if converged {
                return Ok(());
            }
            if !self.advance(until)? {
                let roles = self.roles();
                return Err(self.fail(
                    "liveness",
                    format!("the servers did not converge without faults: {roles}"),
                ));
            }
        }
    }

    fn final_checks(mut self) -> Result<Report, Box<Failure>> {
        if let Err(d) = self.refiner.finish() {
            return Err(self.diverged(&d));
        }
        // Identical trees at the same zxid.
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|k| self.nodes[*k].up.is_some())
            .collect();
        for w in up.windows(2) {
            if let Some(diff) = self.tree_difference(w[0], w[1]) {
                return Err(self.fail("replica agreement", diff));
            }
        }
        for c in &mut self.clients {
            c.abandon(&mut self.history);
        }
        history::check_linearizable(&self.history).map_err(|e| self.fail("linearizability", e))?;
        let keys = client::keys();
        let committed =
            KeyHistory::from_committed(&self.refiner.state().ghost.committed_log, &keys);
        history::check_reads(&self.history, &committed).map_err(|e| self.fail("reads", e))?;
        let mut report = std::mem::take(&mut self.report);
        report.records = self.traced;
        report.ops_completed = self.history.iter().filter(|o| o.returned.is_some()).count();
        report.ops_unknown = self.history.len() - report.ops_completed;
        report.actions = self.refiner.counts.clone();
        report.committed = self.refiner.state().ghost.committed_log.len();
        report.end_ms = self.now();
        let digest = sha1::Digest::finalize(self.hasher.clone());
        report.trace_digest = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(report)
    }
}

/// Runs one simulation.
pub fn run(cfg: SimConfig) -> Result<Report, Box<Failure>> {
    Sim::new(cfg).run()
}
