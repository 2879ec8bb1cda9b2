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
//!
//! Files: this one holds the configuration, the report and the `Sim` type with its main loop
//! (`run`); `network.rs` the simulated network, `dispatch.rs` the event dispatch and the
//! refinement of each record, `servers.rs` booting and crashing servers, `faults.rs` the
//! faults drawn from the seed, `checks.rs` the final checks, `client.rs` the clients and
//! `disk.rs` the simulated disk and clock.

mod checks;
pub mod client;
pub mod disk;
mod dispatch;
mod faults;
mod network;
pub mod replay;
mod servers;

use crate::history::{self, KeyHistory, Op};
use crate::refine::{Divergence, DivergenceKind, Refiner};
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
use zab_server::metrics::Status;
use zab_server::net::{Commands, NetCommand, NetEvent, NetState};
use zab_server::runtime::{BackgroundJob, Event, Replica, recover_peer};
use zab_server::service::{ClientEvent, ServiceConfig, ZkService};
use zab_server::snap_stream::SnapAssembler;
use zab_server::storage::{CrashMode, SimFs, Storage, StorageConfig, WriterEvent};
use zab_server::wire::Frame;
use zab_spec::{ActionKind, ServerId, ServerState, ZabState, Zxid};
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
    /// Storage faults (`spec/PROTOCOL.md` §7.1), one server at a time: a bit flip in a
    /// fsynced log record, lost epoch files, a wiped data directory (each a crash and restart
    /// with damaged durable state, refined as the model's `LoseLogSuffix`, `LoseEpochFiles`,
    /// `LoseDataDir`), and a failing group-commit fsync (the server must stop, and its log
    /// never retries the fsync).
    pub storage: bool,
    /// Faults aimed at durability boundaries (`zab-sim --aimed`, [`faults`]): a server
    /// crashes right after it sent an acknowledgement (ACKEPOCH, ACK of NEWLEADER, ACK)
    /// while its log held unsynced writes, before the next fsync (and the receiver of the
    /// acknowledgement a little later), and, with a probability, within two ticks after it
    /// wrote its currentEpoch. Off in the defaults: it changes
    /// the schedules of the seeds README and the tests name.
    pub aimed: bool,
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
        storage: false,
        aimed: false,
    };
    /// Every fault, storage faults included.
    pub const WITH_STORAGE: Faults = Faults {
        storage: true,
        ..Faults::ALL
    };
    /// No fault.
    pub const NONE: Faults = Faults {
        crash: false,
        torn_tail: false,
        partition: false,
        delay: false,
        loss: false,
        slow_fsync: false,
        storage: false,
        aimed: false,
    };
}

/// A simulation's parameters.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Everything random derives from it.
    pub seed: u64,
    /// Ensemble size, observers included.
    pub servers: usize,
    /// Observers (`spec/PROTOCOL.md` §10.2): the last `observers` of the `servers` (0 or 1,
    /// the model's bound) run as observers, the others as voters; the refiner's model runs
    /// with `--observers` alike. Client 0 prefers an observer while one is up, so that reads
    /// are served and writes forwarded by it under every fault.
    pub observers: usize,
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
    /// `commitLogCount` (small, so that DIFFs read their older part back from the disk).
    pub commit_log_count: usize,
    /// A known bug switched on in the servers and in the model.
    pub bug: Option<Bug>,
    /// Keep the trace text (for the determinism check and `--print-trace`).
    pub keep_trace: bool,
    /// `maxSessionTimeout`, in ticks (`zoo.cfg`'s default is 20; a replay raises it so that
    /// no session expires while its steps take simulated time).
    pub max_session_ticks: u64,
}

impl SimConfig {
    /// The defaults for `seed` and `servers`.
    #[must_use]
    pub fn new(seed: u64, servers: usize) -> SimConfig {
        SimConfig {
            seed,
            servers,
            observers: 0,
            clients: 3,
            safety_ms: 20_000,
            liveness_ops: 5,
            liveness_ms: 60_000,
            faults: Faults::ALL,
            fault_interval_ms: 700,
            tick_ms: 100,
            snap_count: 25,
            commit_log_count: 5,
            bug: None,
            keep_trace: false,
            max_session_ticks: 20,
        }
    }

    /// Checks the ensemble against what the simulation and the refiner's model support.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers < 1 || self.servers > usize::from(zab_model::Config::MAX_SERVERS) {
            return Err(format!(
                "--servers must be 1..={} (the model's bound)",
                zab_model::Config::MAX_SERVERS
            ));
        }
        if self.observers > 1 {
            return Err("--observers must be 0 or 1 (the model's bound, PROTOCOL.md §10.6)".into());
        }
        if self.observers > 0 && self.servers < self.observers + 2 {
            return Err("--observers needs at least 2 voters besides the observer".into());
        }
        Ok(())
    }

    /// The command that reruns this simulation.
    #[must_use]
    pub fn repro(&self) -> String {
        let mut cmd = format!(
            "cargo run --release -p zab-refinement --bin zab-sim -- run --seed {} --servers {} \
             --clients {} --safety-ms {}",
            self.seed, self.servers, self.clients, self.safety_ms
        );
        if self.observers > 0 {
            cmd.push_str(&format!(" --observers {}", self.observers));
        }
        if let Some(b) = self.bug {
            cmd.push_str(&format!(" --bug {}", b.cli_name()));
        }
        if self.faults == Faults::NONE {
            cmd.push_str(" --no-faults");
        } else if self.faults.storage {
            cmd.push_str(" --storage-faults");
        }
        if self.faults.aimed {
            cmd.push_str(" --aimed");
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
    /// Learner syncs whose DIFF was read back from a leader's log on disk (the part older
    /// than `commitLogCount`; `zab_learner_syncs_from_disk_total` in `zabd`), streamed
    /// without error.
    pub syncs_from_disk: usize,
    /// Reads (plain and after `sync`) answered by an observer.
    pub observer_reads: usize,
    /// Writes (create, setData, delete) a client sent to an observer and got the answer of
    /// (forwarded to the leader, `spec/PROTOCOL.md` §10.2).
    pub observer_writes: usize,
    /// Faults that hit an observer: its crashes (storage faults included) and partitions
    /// with one of its ends.
    pub observer_faults: usize,
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
    /// For a refinement failure, what kind of divergence it is (callers branch on this,
    /// never on `reason`).
    pub divergence: Option<DivergenceKind>,
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
    /// The next group-commit fsync fails (storage fault).
    fail_next_fsync: bool,
    /// An aimed crash is scheduled: no fsync completes until it happened.
    aimed_crash: bool,
    /// `currentEpoch` writes seen so far (the aimed faults watch for a new one).
    epoch_writes: u64,
}

/// A running server.
struct Up {
    replica: SimReplica,
    log: Arc<SimLog>,
    net_rx: tokio::sync::mpsc::Receiver<NetCommand<Txn>>,
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
    /// An aimed crash ([`Faults::aimed`]).
    AimedCrash {
        node: usize,
        life: u64,
        /// The server the acknowledgement went to: it crashes too, a little later, so that
        /// what the first one lost is tested by an election without the receiver.
        receiver: Option<usize>,
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
    /// The server whose storage was damaged and that is not restored yet (storage faults hit
    /// one server at a time).
    damaged: Option<usize>,
    /// In a model-guided replay ([`replay`]): the frames in flight, held until the replay
    /// delivers them, and the records refined so far; `None` in a random simulation.
    held: Option<replay::Held>,
    /// The aimed faults' own RNG, so that they leave the other draws of a seed alone.
    aim_rng: ChaCha8Rng,
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
                fail_next_fsync: false,
                aimed_crash: false,
                epoch_writes: 0,
            })
            .collect();
        let clients = (0..cfg.clients).map(SimClient::new).collect();
        Sim {
            refiner: Refiner::with_observers(&ids, cfg.observers, cfg.bug),
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
            damaged: None,
            held: None,
            aim_rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xA1ED_FA17),
            cfg,
        }
    }

    fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Whether server `k` is an observer: the last [`SimConfig::observers`] servers are.
    pub(crate) fn is_observer(&self, k: usize) -> bool {
        k + self.cfg.observers >= self.nodes.len()
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
            divergence: None,
            recent: self.recent.iter().cloned().collect(),
            repro: self.cfg.repro(),
            at_ms: self.now(),
            window: self.refiner.window(),
        })
    }

    /// Runs the whole simulation: safety phase, liveness phase, final checks.
    pub fn run(mut self) -> Result<Report, Box<Failure>> {
        self.cfg
            .validate()
            .map_err(|e| self.fail("configuration", e))?;
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
}

/// Runs one simulation.
pub fn run(cfg: SimConfig) -> Result<Report, Box<Failure>> {
    Sim::new(cfg).run()
}
