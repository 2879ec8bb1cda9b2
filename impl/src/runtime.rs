//! The replica runtime: one thread (like ZooKeeper's `QuorumPeer`) owns the protocol core and
//! the state machine, turns network events, timer firings, durability reports and proposals
//! into core inputs, and executes the core's actions in order.
//!
//! The contract with the core (`crate::core` docs): actions run in order; a synchronous
//! `Persist` (`Append { wait: true }`, `Flush`, `Truncate`, `InstallSnapshot`, the epoch
//! files) returns only once durable, so nothing after it in the batch can run earlier; an async
//! append is handed to the group-commit [`LogWriter`], whose durability report comes back as
//! `Input::Durable` — only then may an ACK leave. Reports of a history generation that was cut
//! since (TRUNC, SNAP) are dropped. A storage error is fatal: the loop returns it and the process
//! stops; restarting recovers from what is durable.

use crate::core::{
    Action, Input, NotLeader, Peer, PeerConfig, Persist, RoleInfo, Timer, TraceEvent,
};
use crate::latency::{Side, Stage};
use crate::metrics::Status;
use crate::net::{Commands, FrameProducer, NetCommand, NetEvent, NetState, Producer, QuorumSender};
use crate::storage::{
    LogRecord, LogWriter, Recovered, SnapData, SnapshotTicket, StorageError, WriterEvent,
};
use crate::wire::{Frame, PayloadCodec};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};
use tracing::{debug, error, info, warn};
use zab_spec::{Epoch, Payload, QuorumMessage, ServerId, ServerState, Txn, Zxid};

/// Where the replica's durable state goes: the group-commit [`LogWriter`] in `zabd`, a
/// simulated disk driven step by step in `zab-refinement`'s deterministic simulation. Every
/// method but `append` returns only once its effect is durable; `append` reports durability
/// later, as a [`WriterEvent::Durable`] the runtime receives as [`Event::Writer`].
pub trait LogBackend: Send + Sync + 'static {
    /// Queues a record; durability is reported later.
    fn append(&self, zxid: Zxid, payload: Bytes) -> Result<(), StorageError>;
    /// Makes everything appended durable; returns the last durable zxid.
    fn flush(&self) -> Result<Zxid, StorageError>;
    /// Cuts the log after `zxid`, durably.
    fn truncate_after(&self, zxid: Zxid) -> Result<(), StorageError>;
    /// Replaces log and snapshots by a snapshot at `zxid`, durably.
    fn install_snapshot(&self, zxid: Zxid, data: SnapData) -> Result<(), StorageError>;
    /// Writes `acceptedEpoch`, durably.
    fn set_accepted_epoch(&self, epoch: Epoch) -> Result<(), StorageError>;
    /// Writes `currentEpoch`, durably.
    fn set_current_epoch(&self, epoch: Epoch) -> Result<(), StorageError>;
    /// Sets or clears the `recovering` flag, durably (`spec/PROTOCOL.md` §7.1).
    fn set_recovering(&self, on: bool) -> Result<(), StorageError>;
    /// The history generation (bumped by every TRUNC and SNAP).
    fn generation(&self) -> u64;
    /// A ticket for a snapshot of the state as of now.
    fn snapshot_ticket(&self) -> SnapshotTicket;
    /// Writes a snapshot taken with `ticket`; refuses a stale one.
    fn save_snapshot(
        &self,
        ticket: SnapshotTicket,
        zxid: Zxid,
        data: &[u8],
    ) -> Result<(), StorageError>;
    /// Every logged transaction after `zxid`, read back from the log on disk in order after
    /// the appends queued before (called off the replica thread, for a DIFF).
    fn read_after(&self, zxid: Zxid) -> Result<Vec<LogRecord>, StorageError>;
}

impl LogBackend for LogWriter {
    fn append(&self, zxid: Zxid, payload: Bytes) -> Result<(), StorageError> {
        LogWriter::append(self, zxid, payload)
    }
    fn flush(&self) -> Result<Zxid, StorageError> {
        LogWriter::flush(self)
    }
    fn truncate_after(&self, zxid: Zxid) -> Result<(), StorageError> {
        LogWriter::truncate_after(self, zxid)
    }
    fn install_snapshot(&self, zxid: Zxid, data: SnapData) -> Result<(), StorageError> {
        LogWriter::install_snapshot(self, zxid, data)
    }
    fn set_accepted_epoch(&self, epoch: Epoch) -> Result<(), StorageError> {
        self.epochs().set_accepted_epoch(epoch)
    }
    fn set_current_epoch(&self, epoch: Epoch) -> Result<(), StorageError> {
        self.epochs().set_current_epoch(epoch)
    }
    fn set_recovering(&self, on: bool) -> Result<(), StorageError> {
        self.epochs()
            .set_recovering(on, crate::storage::WIPE_SUSPECTED)
    }
    fn generation(&self) -> u64 {
        self.snapshots().generation()
    }
    fn snapshot_ticket(&self) -> SnapshotTicket {
        LogWriter::snapshot_ticket(self)
    }
    fn save_snapshot(
        &self,
        ticket: SnapshotTicket,
        zxid: Zxid,
        data: &[u8],
    ) -> Result<(), StorageError> {
        LogWriter::save_snapshot(self, ticket, zxid, data)
    }
    fn read_after(&self, zxid: Zxid) -> Result<Vec<LogRecord>, StorageError> {
        LogWriter::read_after(self, zxid)
    }
}

/// The replica's clocks: a monotonic one for timers and a wall clock for the application
/// (znode times, session ids). Real in `zabd`, simulated in the deterministic simulation.
pub trait Clock: Send {
    /// Monotonic milliseconds (from an arbitrary origin).
    fn monotonic_ms(&self) -> u64;
    /// Milliseconds since the Unix epoch.
    fn wall_ms(&self) -> i64;
}

/// The machine's clocks.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn monotonic_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
    fn wall_ms(&self) -> i64 {
        wall_clock_ms()
    }
}

/// What a `NetCommand::Stream` of a DIFF read back from the log on disk is called (the
/// simulation counts them by it).
pub const DIFF_FROM_DISK: &str = "DIFF from the log";

/// Work the runtime hands to another thread (snapshot serialization and writing).
pub type BackgroundJob = Box<dyn FnOnce() + Send>;

/// Runs background jobs: on a new thread in `zabd`, when the simulation decides in tests.
pub type Spawner = Box<dyn Fn(BackgroundJob) + Send>;

/// The replicated application the runtime drives (the ZooKeeper service in `zabd`): its
/// state machine, and its hooks into the replica thread.
pub trait Application<P>: Send {
    /// What client connections send to the replica thread.
    type Client: Send + 'static;
    /// Applies a committed transaction (always the next one in zxid order) and answers
    /// whoever waits for it.
    fn deliver(&mut self, txn: &Txn<P>, cx: &mut AppCx<'_, P>);
    /// A client event.
    fn on_client(&mut self, event: Self::Client, cx: &mut AppCx<'_, P>);
    /// An application frame from another server (forwarded requests, session traffic).
    fn on_frame(&mut self, from: ServerId, kind: u8, data: Bytes, cx: &mut AppCx<'_, P>);
    /// The server's role changed.
    fn on_role(&mut self, role: RoleInfo, cx: &mut AppCx<'_, P>);
    /// Every half tick.
    fn on_tick(&mut self, cx: &mut AppCx<'_, P>);
    /// The zxid of the last transaction applied (or of the snapshot restored).
    fn applied_zxid(&self) -> Zxid;
    /// A function producing the serialized state as of now; it may run on another thread,
    /// while the state machine keeps applying transactions.
    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send>;
    /// Replaces the state by a serialized one (the one [`Application::check_snapshot`]
    /// rebuilt, if it was this one).
    fn restore(&mut self, zxid: Zxid, data: &SnapData) -> Result<(), String>;
    /// Whether `data` would restore: checked when a SNAP arrives, before the core adopts it,
    /// so that a leader's bad SNAP costs the connection to that leader, not the server. The
    /// state it rebuilds is kept for [`Application::restore`] until
    /// [`Application::forget_checked`] (decoded once).
    fn check_snapshot(&mut self, data: &SnapData) -> Result<(), String>;
    /// Drops what [`Application::check_snapshot`] kept (the core did not adopt the SNAP).
    fn forget_checked(&mut self) {}
    /// Writes the output queued while handling an event (called once the event is handled,
    /// and before a synchronous write): a no-op where output is not buffered.
    fn flush(&mut self) {}
}

/// What an application may do from its hooks.
pub struct AppCx<'a, P> {
    peer: &'a mut Peer<P>,
    queued: &'a mut Vec<Action<P>>,
    net: &'a Commands<P>,
    quorum: Option<&'a QuorumSender<P>>,
    status: &'a Status,
    /// Wall-clock time, ms since the Unix epoch (simulated in tests).
    pub now_ms: i64,
    /// When the client request being handled was decoded by its connection task, if known
    /// (the latency breakdown's origin; `None` in the simulation).
    pub received: Option<Instant>,
}

impl<P: Payload> AppCx<'_, P> {
    /// This server.
    #[must_use]
    pub fn me(&self) -> ServerId {
        self.peer.id()
    }

    /// The role.
    #[must_use]
    pub fn role(&self) -> RoleInfo {
        self.peer.role()
    }

    /// The last delivered zxid.
    #[must_use]
    pub fn committed(&self) -> Zxid {
        self.peer.log().committed()
    }

    /// The last zxid in the log.
    #[must_use]
    pub fn last_zxid(&self) -> Zxid {
        self.peer.log().last_zxid()
    }

    /// The zxid the next proposal will get, if this server can propose.
    pub fn next_zxid(&self) -> Result<Zxid, NotLeader> {
        self.peer.next_proposal_zxid()
    }

    /// Proposes a transaction now (leader only); returns its zxid.
    pub fn propose(&mut self, payload: P) -> Option<Zxid> {
        let zxid = self.peer.next_proposal_zxid().ok()?;
        self.peer.step(Input::Propose { payload }, self.queued);
        self.status.proposals.fetch_add(1, Ordering::Relaxed);
        let proposed = self.peer.log().last_zxid() == zxid;
        if proposed {
            // The breakdown's clock is read here, outside the core.
            let now = Instant::now();
            let b = &self.status.breakdown;
            b.start(Side::Leader, zxid, now);
            if let Some(received) = self.received {
                b.record_since(Stage::OriginPrepared, received, now);
            }
        }
        proposed.then_some(zxid)
    }

    /// The runtime's published status.
    #[must_use]
    pub fn status(&self) -> &Status {
        self.status
    }
}

impl<P: Payload + PayloadCodec> AppCx<'_, P> {
    /// Sends an application frame to `to` on the quorum connection.
    pub fn send_frame(&self, to: ServerId, kind: u8, data: Bytes) {
        let frame = Frame::App(kind, data);
        match self.quorum {
            Some(q) => q.send(to, &frame),
            None => {
                let _ = self.net.send(NetCommand::Quorum { to, frame });
            }
        }
    }
}

/// An input to the runtime thread.
#[derive(Debug)]
pub enum Event<P, C> {
    /// Something from the network.
    Net(NetEvent<P>),
    /// The log writer's report.
    Writer(WriterEvent),
    /// A background snapshot finished.
    SnapshotSaved(Result<Zxid, StorageError>),
    /// A client event for the application.
    Client(C),
    /// Stop the loop.
    Shutdown,
}

/// Where trace events go (when tracing is on).
pub type TraceSink<P> = Box<dyn FnMut(&TraceEvent<P>) + Send>;

/// Everything the runtime thread needs.
pub struct Replica<P, A: Application<P>, L: LogBackend = LogWriter> {
    peer: Peer<P>,
    sm: A,
    writer: Arc<L>,
    net: Commands<P>,
    /// Direct writes to the quorum connections (`zabd`); `None`: through `net`.
    quorum: Option<QuorumSender<P>>,
    net_state: Arc<NetState>,
    events: Sender<Event<P, A::Client>>,
    status: Arc<Status>,
    timers: BTreeMap<Timer, u64>,
    next_app_tick: u64,
    generation: u64,
    snap_count: u64,
    delivered_since_snapshot: u64,
    /// `snapSizeLimitInKb`, in bytes: a snapshot is also taken once this many log bytes were
    /// appended since the last one (the core keeps the log since the last snapshot in
    /// memory, so this bounds it).
    snap_size_limit: u64,
    appended_since_snapshot: u64,
    snapshot_running: bool,
    trace_sink: Option<TraceSink<P>>,
    tick_ms: u64,
    clock: Box<dyn Clock>,
    spawner: Spawner,
}

/// Builds the core and state machine from what storage recovered.
pub fn recover_peer<P: Payload + PayloadCodec>(
    cfg: PeerConfig,
    recovered: &Recovered,
) -> Result<Peer<P>, StorageError> {
    let mut txns = Vec::with_capacity(recovered.txns.len());
    for r in &recovered.txns {
        let payload = P::decode(&r.payload).map_err(|e| StorageError::Corrupt {
            path: std::path::PathBuf::from("transaction log"),
            offset: 0,
            reason: format!("undecodable transaction {}: {e}", r.zxid),
        })?;
        txns.push(Txn {
            zxid: r.zxid,
            payload,
        });
    }
    let log = crate::core::log::ReplicaLog::recovered(recovered.snapshot_zxid(), txns);
    Ok(
        Peer::new(cfg, recovered.accepted_epoch, recovered.current_epoch, log)
            .with_recovering(recovered.recovering),
    )
}

/// Wall-clock milliseconds since the Unix epoch.
#[must_use]
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<P, A, L> Replica<P, A, L>
where
    P: Payload + PayloadCodec + std::fmt::Debug,
    A: Application<P>,
    L: LogBackend,
{
    /// A replica ready to run. `sm` must already hold the recovered snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        peer: Peer<P>,
        sm: A,
        writer: Arc<L>,
        net: Commands<P>,
        net_state: Arc<NetState>,
        events: Sender<Event<P, A::Client>>,
        status: Arc<Status>,
        snap_count: u64,
    ) -> Replica<P, A, L> {
        let generation = writer.generation();
        Replica {
            sm,
            writer,
            net,
            quorum: None,
            net_state,
            events,
            status,
            timers: BTreeMap::new(),
            next_app_tick: 0,
            generation,
            snap_count: snap_count.max(1),
            delivered_since_snapshot: 0,
            snap_size_limit: u64::MAX,
            appended_since_snapshot: 0,
            snapshot_running: false,
            tick_ms: (peer_tick_ms(&peer) / 2).max(1),
            peer,
            trace_sink: None,
            clock: Box::new(SystemClock::default()),
            spawner: Box::new(|job| {
                if let Err(e) = std::thread::Builder::new()
                    .name("zab-background".into())
                    .spawn(job)
                {
                    error!("cannot start a background thread: {e}");
                }
            }),
        }
    }

    /// Writes quorum frames through `quorum` (straight to the sockets, one write per
    /// connection and batch) instead of handing them to the network task.
    #[must_use]
    pub fn with_quorum_sender(mut self, quorum: QuorumSender<P>) -> Self {
        self.quorum = Some(quorum);
        self
    }

    /// Uses `clock` for timers and the application's wall-clock time.
    pub fn with_clock(mut self, clock: Box<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Also snapshots once `bytes` of log were appended since the last snapshot
    /// (`snapSizeLimitInKb`).
    pub fn with_snap_size_limit(mut self, bytes: u64) -> Self {
        self.snap_size_limit = bytes.max(1);
        self
    }

    /// Runs background jobs with `spawner` instead of on new threads.
    pub fn with_spawner(mut self, spawner: Spawner) -> Self {
        self.spawner = spawner;
        self
    }

    /// The protocol core (read-only; for status and for tests).
    pub fn peer(&self) -> &Peer<P> {
        &self.peer
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.sm
    }

    /// Sends every trace event to `sink`.
    pub fn with_trace(mut self, sink: TraceSink<P>) -> Self {
        self.trace_sink = Some(sink);
        self
    }

    /// Starts the protocol (the first election).
    pub fn start(&mut self) -> Result<(), StorageError> {
        self.next_app_tick = self.clock.monotonic_ms() + self.tick_ms;
        let r = self.step(Input::Start);
        self.flush_sends();
        r
    }

    /// When the next timer (or the application's tick) is due, on the monotonic clock.
    #[must_use]
    pub fn next_deadline(&self) -> u64 {
        self.timers
            .values()
            .min()
            .copied()
            .map_or(self.next_app_tick, |t| t.min(self.next_app_tick))
    }

    /// Fires every timer that is due, and the application's tick if due, then writes what
    /// they queued for peers and clients.
    pub fn fire_due(&mut self) -> Result<(), StorageError> {
        let r = self.fire_due_timers();
        self.flush_sends();
        r
    }

    fn fire_due_timers(&mut self) -> Result<(), StorageError> {
        let now = self.clock.monotonic_ms();
        if now >= self.next_app_tick {
            self.next_app_tick = now + self.tick_ms;
            self.with_app(|app, cx| app.on_tick(cx))?;
        }
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            // A timer may have been re-armed or cancelled by an earlier one.
            if self.timers.get(&t).is_some_and(|at| *at <= now) {
                self.timers.remove(&t);
                self.step(Input::Timer(t))?;
            }
        }
        Ok(())
    }

    /// Runs until `Event::Shutdown` or a fatal error.
    pub fn run(mut self, rx: Receiver<Event<P, A::Client>>) -> Result<(), StorageError> {
        self.start()?;
        loop {
            let started = Instant::now();
            self.fire_due()?;
            self.record_step(started);
            let wait = self
                .next_deadline()
                .saturating_sub(self.clock.monotonic_ms());
            match rx.recv_timeout(Duration::from_millis(wait)) {
                Ok(Event::Shutdown) => {
                    info!("replica stopping");
                    return Ok(());
                }
                Ok(ev) => {
                    let started = Instant::now();
                    self.handle(ev)?;
                    self.record_step(started);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    /// Records one step's duration (`zab_replica_step_seconds`).
    fn record_step(&self, started: Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.status.step_micros.record(micros);
    }

    /// Runs an application hook with a context, then executes the actions its proposals
    /// produced.
    fn with_app(&mut self, f: impl FnOnce(&mut A, &mut AppCx<'_, P>)) -> Result<(), StorageError> {
        let mut queued = Vec::new();
        let now_ms = self.clock.wall_ms();
        {
            let mut cx = AppCx {
                peer: &mut self.peer,
                queued: &mut queued,
                net: &self.net,
                quorum: self.quorum.as_ref(),
                status: &self.status,
                now_ms,
                received: None,
            };
            f(&mut self.sm, &mut cx);
        }
        self.execute_all(queued)?;
        self.publish();
        Ok(())
    }

    /// Handles one event (everything but the timers), then writes what it queued for peers
    /// and clients.
    pub fn handle(&mut self, ev: Event<P, A::Client>) -> Result<(), StorageError> {
        let start = Instant::now();
        let r = self.handle_event(ev);
        self.flush_sends();
        self.status
            .breakdown
            .record_since(Stage::ReplicaEvent, start, Instant::now());
        r
    }

    fn handle_event(&mut self, ev: Event<P, A::Client>) -> Result<(), StorageError> {
        if matches!(
            ev,
            Event::Net(NetEvent::Election { .. } | NetEvent::Quorum { .. })
        ) {
            // The network counted it into the inbox (peerInboxLimit); it is taken now.
            self.net_state.inbox.taken();
        }
        match ev {
            Event::Net(NetEvent::Election {
                from,
                frame: Frame::Notification(notification),
            }) => self.step(Input::Notification { from, notification }),
            Event::Net(NetEvent::Election { from, .. }) => {
                debug!(
                    from = from.0,
                    "ignoring a frame other than a notification on the election connection"
                );
                Ok(())
            }
            Event::Net(NetEvent::Connected { leader }) => self.step(Input::Connected { leader }),
            Event::Net(NetEvent::LearnerConnected { learner }) => {
                self.step(Input::LearnerConnected { learner })
            }
            Event::Net(NetEvent::Disconnected { peer }) => self.step(Input::Disconnected { peer }),
            Event::Net(NetEvent::Quorum { from, frame }) => match frame {
                Frame::Zab(QuorumMessage::Snap {
                    last_zxid,
                    snapshot,
                }) => match self.sm.check_snapshot(&snapshot) {
                    Err(reason) => self.drop_bad_leader(from, snapshot.len(), &reason),
                    Ok(()) => {
                        let msg = QuorumMessage::Snap {
                            last_zxid,
                            snapshot,
                        };
                        let r = self.step(Input::Message { from, msg });
                        self.sm.forget_checked();
                        r
                    }
                },
                Frame::Zab(msg) => self.step(Input::Message { from, msg }),
                Frame::Heartbeat => self.step(Input::Heartbeat { from }),
                Frame::Restored => self.step(Input::Restored { from }),
                Frame::App(kind, data) => {
                    self.with_app(|app, cx| app.on_frame(from, kind, data, cx))
                }
                Frame::Notification(_) => {
                    debug!(
                        from = from.0,
                        "ignoring a notification on the quorum connection"
                    );
                    Ok(())
                }
                // The network reassembles SNAP sequences (`crate::snap_stream`).
                Frame::SnapBegin { .. } | Frame::SnapChunk { .. } | Frame::SnapEnd { .. } => {
                    debug!(
                        from = from.0,
                        "ignoring a piece of a SNAP outside its sequence"
                    );
                    Ok(())
                }
            },
            Event::Writer(WriterEvent::Durable {
                zxid,
                generation,
                fsync_micros,
            }) => {
                self.status.fsync_micros.record(fsync_micros);
                if generation == self.generation {
                    self.step(Input::Durable { zxid })
                } else {
                    debug!(%zxid, generation, current = self.generation, "ignoring a durability report of a history cut since");
                    Ok(())
                }
            }
            Event::Writer(WriterEvent::Failed(e)) => Err(e),
            Event::SnapshotSaved(result) => {
                self.snapshot_running = false;
                match result {
                    Ok(zxid) => self.step(Input::SnapshotWritten { zxid }),
                    Err(StorageError::StaleSnapshot { .. }) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Event::Client(c) => self.with_app(|app, cx| app.on_client(c, cx)),
            Event::Shutdown => Ok(()),
        }
    }

    /// Feeds one input to the core and executes its actions in order.
    pub fn step(&mut self, input: Input<P>) -> Result<(), StorageError> {
        let mut actions = Vec::new();
        self.peer.step(input, &mut actions);
        self.execute_all(actions)?;
        self.publish();
        self.maybe_snapshot();
        Ok(())
    }

    fn send(&self, to: ServerId, frame: Frame<P>) {
        match &self.quorum {
            Some(q) => q.send(to, &frame),
            None => {
                let _ = self.net.send(NetCommand::Quorum { to, frame });
            }
        }
    }

    /// Queues a stream for `to`, in its place among the frames sent to `to` (through the
    /// quorum sender when frames go that way, so that nothing queued after it overtakes it).
    fn stream(&self, to: ServerId, what: &'static str, producer: FrameProducer<P>) {
        match &self.quorum {
            Some(q) => q.stream(to, what, producer),
            None => {
                let _ = self.net.send(NetCommand::Stream {
                    to,
                    what,
                    producer: Producer(producer),
                });
            }
        }
    }

    /// Writes the frames queued so far, to peers and clients (once an event is handled, or
    /// before a synchronous write, so that frames queued before it do not wait for its fsync).
    fn flush_sends(&mut self) {
        // Peers first, as ZooKeeper's leader sends COMMIT before it applies and answers: a
        // client that hears its write done and moves to a follower at once finds the COMMIT
        // already on its way there (session_passwords: a closed session's password must not
        // open it on another server); the reply waits only for the COMMIT's `try_write`.
        if let Some(q) = &self.quorum {
            q.flush();
        }
        self.sm.flush();
    }

    /// A SNAP that would not restore: the leader that sent it is dropped (its connection
    /// closed, the core told it is gone, so the follower goes back to LOOKING); nothing of it
    /// is applied or written, and the server keeps running.
    fn drop_bad_leader(
        &mut self,
        leader: ServerId,
        bytes: u64,
        reason: &str,
    ) -> Result<(), StorageError> {
        error!(
            leader = leader.0,
            bytes, "bad SNAP from the leader ({reason}): dropping it and going back to LOOKING"
        );
        let _ = self.net.send(NetCommand::Disconnect { peer: leader });
        self.step(Input::Disconnected { peer: leader })
    }

    fn timed<T>(&self, f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
        let start = Instant::now();
        let r = f();
        self.status
            .fsync_micros
            .record(start.elapsed().as_micros() as u64);
        r
    }

    /// Executes one step's actions in order. The step's trace records are written first, so
    /// that every record is timestamped before any message of its step leaves: merged by
    /// time, the trace files of an ensemble then respect causality (a receive is never
    /// before its send).
    fn execute_all(&mut self, actions: Vec<Action<P>>) -> Result<(), StorageError> {
        if let Some(sink) = &mut self.trace_sink {
            for a in &actions {
                if let Action::Trace(ev) = a {
                    sink(ev);
                }
            }
        }
        for a in actions {
            self.execute(a)?;
        }
        Ok(())
    }

    fn execute(&mut self, action: Action<P>) -> Result<(), StorageError> {
        match action {
            Action::SendNotification { to, notification } => {
                let _ = self.net.send(NetCommand::Election {
                    to,
                    frame: Frame::Notification(notification),
                });
            }
            Action::Connect { leader } => {
                let _ = self.net.send(NetCommand::Connect { leader });
            }
            Action::Disconnect { peer } => {
                let _ = self.net.send(NetCommand::Disconnect { peer });
            }
            Action::Send { to, msg } => {
                let mode = match &msg {
                    QuorumMessage::Diff { .. } => Some(0),
                    QuorumMessage::Trunc { .. } => Some(1),
                    _ => None,
                };
                if let Some(k) = mode {
                    info!(follower = to.0, sync = %msg, "synchronizing a learner");
                    self.status.syncs[k].fetch_add(1, Ordering::Relaxed);
                }
                self.send(to, Frame::Zab(msg));
            }
            Action::SendSnapshot { to, last_zxid } => {
                info!(follower = to.0, snapshot = %last_zxid, "synchronizing a learner by SNAP");
                self.status.syncs[2].fetch_add(1, Ordering::Relaxed);
                debug_assert_eq!(self.sm.applied_zxid(), last_zxid);
                // The state is captured now; it is serialized and streamed in chunks off
                // this thread, before anything sent to `to` after it.
                let job = self.sm.snapshot_job();
                let producer: FrameProducer<P> =
                    Box::new(move |emit: &mut dyn FnMut(Frame<P>) -> bool| {
                        let data = job();
                        for frame in crate::snap_stream::snap_frames(last_zxid, &data) {
                            if !emit(frame) {
                                break;
                            }
                        }
                        Ok(())
                    });
                self.stream(to, "SNAP", producer);
            }
            Action::SendLogged {
                to,
                after,
                through,
                committed,
            } => {
                info!(follower = to.0, %after, %through, "reading a DIFF back from the log on disk");
                self.status.syncs_from_disk.fetch_add(1, Ordering::Relaxed);
                let writer = Arc::clone(&self.writer);
                let producer: FrameProducer<P> =
                    Box::new(move |emit: &mut dyn FnMut(Frame<P>) -> bool| {
                        send_logged::<P, L>(&*writer, after, through, committed, emit)
                    });
                self.stream(to, DIFF_FROM_DISK, producer);
            }
            Action::SendHeartbeat { to } => self.send(to, Frame::Heartbeat),
            Action::SendRestored { to } => self.send(to, Frame::Restored),
            Action::Persist(p) => {
                if !matches!(p, Persist::Append { wait: false, .. }) {
                    self.flush_sends();
                }
                self.persist(p)?;
            }
            Action::SetTimer { timer, after_ms } => {
                self.timers
                    .insert(timer, self.clock.monotonic_ms() + after_ms);
            }
            Action::CancelTimer(timer) => {
                self.timers.remove(&timer);
            }
            Action::Deliver(txn) => {
                let side = self.side();
                let b = Arc::clone(&self.status.breakdown);
                if side == Some(Side::Leader) {
                    b.mark(
                        Side::Leader,
                        txn.zxid,
                        Stage::LeaderCommitted,
                        Instant::now(),
                    );
                }
                self.with_app(|app, cx| app.deliver(&txn, cx))?;
                match side {
                    Some(Side::Leader) => {
                        b.mark(Side::Leader, txn.zxid, Stage::LeaderApplied, Instant::now());
                    }
                    Some(Side::Follower) => {
                        b.mark(
                            Side::Follower,
                            txn.zxid,
                            Stage::FollowerApplied,
                            Instant::now(),
                        );
                    }
                    None => {}
                }
                self.status.delivered.fetch_add(1, Ordering::Relaxed);
                self.delivered_since_snapshot += 1;
            }
            Action::RoleChanged(info) => {
                info!(state = ?info.state, phase = ?info.zab_state, leader = ?info.leader.map(|l| l.0), epoch = info.epoch.0, "role changed");
                self.net_state
                    .leading
                    .store(info.state == ServerState::Leading, Ordering::SeqCst);
                if let Ok(mut r) = self.status.role.lock() {
                    if r.is_none_or(|old| old.state != info.state)
                        && info.state != ServerState::Looking
                    {
                        self.status.elections.fetch_add(1, Ordering::Relaxed);
                    }
                    *r = Some(info);
                }
                if let Ok(mut since) = self.status.role_since.lock() {
                    *since = Some(Instant::now());
                }
                self.status.breakdown.clear_in_flight();
                self.with_app(|app, cx| app.on_role(info, cx))?;
            }
            // Written by `execute_all` before the step's other actions.
            Action::Trace(_) => {}
        }
        Ok(())
    }

    fn persist(&mut self, p: Persist<P>) -> Result<(), StorageError> {
        let w = Arc::clone(&self.writer);
        match p {
            Persist::Append { txns, wait } => {
                if !wait && self.side() == Some(Side::Follower) {
                    let now = Instant::now();
                    for t in &txns {
                        self.status.breakdown.mark(
                            Side::Follower,
                            t.zxid,
                            Stage::FollowerProposalAccepted,
                            now,
                        );
                    }
                }
                for t in txns {
                    // One allocation of the record's size: the writer thread owns the bytes.
                    let mut buf = BytesMut::new();
                    t.payload.encode(&mut buf);
                    self.appended_since_snapshot += buf.len() as u64;
                    w.append(t.zxid, buf.freeze())?;
                }
                if wait {
                    self.timed(|| w.flush().map(|_| ()))?;
                }
            }
            Persist::Flush => self.timed(|| w.flush().map(|_| ()))?,
            Persist::Truncate { after } => {
                self.timed(|| w.truncate_after(after))?;
                self.generation = w.generation();
            }
            Persist::InstallSnapshot { last_zxid, data } => {
                self.sm
                    .restore(last_zxid, &data)
                    .map_err(|reason| StorageError::Corrupt {
                        path: std::path::PathBuf::from("SNAP from the leader"),
                        offset: 0,
                        reason,
                    })?;
                self.timed(|| w.install_snapshot(last_zxid, data))?;
                self.generation = w.generation();
                self.delivered_since_snapshot = 0;
                self.appended_since_snapshot = 0;
            }
            Persist::AcceptedEpoch(e) => self.timed(|| w.set_accepted_epoch(e))?,
            Persist::CurrentEpoch(e) => self.timed(|| w.set_current_epoch(e))?,
            Persist::Recovering(on) => self.timed(|| w.set_recovering(on))?,
        }
        Ok(())
    }

    /// Which table of the latency breakdown this server's proposals go in now.
    fn side(&self) -> Option<Side> {
        match self.peer.role().state {
            ServerState::Leading => Some(Side::Leader),
            ServerState::Following => Some(Side::Follower),
            _ => None,
        }
    }

    fn publish(&self) {
        let log = self.peer.log();
        self.status
            .last_zxid
            .store(log.last_zxid().to_u64(), Ordering::Relaxed);
        self.status
            .committed_zxid
            .store(log.committed().to_u64(), Ordering::Relaxed);
        self.status
            .durable_zxid
            .store(log.persisted().to_u64(), Ordering::Relaxed);
        self.status
            .outstanding
            .store(self.peer.outstanding_proposals() as u64, Ordering::Relaxed);
        self.status
            .synced_followers
            .store(self.peer.synced_followers() as u64, Ordering::Relaxed);
        self.status
            .synced_observers
            .store(self.peer.synced_observers() as u64, Ordering::Relaxed);
        for (to, from) in [
            (
                &self.status.largest_quorum_frame,
                &self.net_state.largest_quorum_frame,
            ),
            (&self.status.snap_chunks, &self.net_state.snap_chunks),
        ] {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        for (k, (_, n)) in self.peer.ignored().iter().enumerate() {
            self.status.ignored[k].store(n, Ordering::Relaxed);
        }
    }

    /// Every `snap_count` deliveries, or `snap_size_limit` appended log bytes, snapshot the
    /// state in the background (serialization and the write happen on another thread; the
    /// core adopts it when told, `TakeSnapshot`).
    fn maybe_snapshot(&mut self) {
        let log = self.peer.log();
        let due = self.delivered_since_snapshot >= self.snap_count
            || (self.appended_since_snapshot >= self.snap_size_limit
                && self.delivered_since_snapshot > 0);
        if self.snapshot_running
            || !due
            || log.committed() > log.persisted()
            || log.committed() <= log.snapshot()
        {
            return;
        }
        let zxid = self.sm.applied_zxid();
        if zxid != log.committed() {
            warn!(%zxid, committed = %log.committed(), "state machine and log disagree; no snapshot");
            return;
        }
        self.snapshot_running = true;
        self.delivered_since_snapshot = 0;
        self.appended_since_snapshot = 0;
        let ticket = self.writer.snapshot_ticket();
        let start = Instant::now();
        let job = self.sm.snapshot_job();
        self.status
            .breakdown
            .record_since(Stage::ReplicaSnapshotCapture, start, Instant::now());
        let writer = Arc::clone(&self.writer);
        let events = self.events.clone();
        (self.spawner)(Box::new(move || {
            let data = job();
            let result = writer.save_snapshot(ticket, zxid, &data).map(|()| zxid);
            let _ = events.send(Event::SnapshotSaved(result));
        }));
    }
}

/// Reads the transactions after `after` up to `through` back from the log and emits a
/// PROPOSAL for each (plus a COMMIT for those at or before `committed`): a DIFF from a point
/// whose payloads the core no longer holds in memory. Runs off the replica thread.
fn send_logged<P: PayloadCodec, L: LogBackend>(
    writer: &L,
    after: Zxid,
    through: Zxid,
    committed: Zxid,
    emit: &mut dyn FnMut(Frame<P>) -> bool,
) -> Result<(), String> {
    let records = writer
        .read_after(after)
        .map_err(|e| format!("reading the log after {after}: {e}"))?;
    let mut last = after;
    for r in records.into_iter().take_while(|r| r.zxid <= through) {
        if !zab_spec::sync::is_next_zxid(last, r.zxid) {
            return Err(format!("the log jumps from {last} to {}", r.zxid));
        }
        let payload = P::decode(&r.payload)
            .map_err(|e| format!("undecodable transaction {} in the log: {e}", r.zxid))?;
        let zxid = r.zxid;
        if !emit(Frame::Zab(QuorumMessage::Proposal(Txn { zxid, payload }))) {
            return Ok(());
        }
        if zxid <= committed && !emit(Frame::Zab(QuorumMessage::Commit { zxid })) {
            return Ok(());
        }
        last = zxid;
    }
    if last != through {
        return Err(format!("the log ends at {last}, before {through}"));
    }
    Ok(())
}

fn peer_tick_ms<P: Payload>(peer: &Peer<P>) -> u64 {
    peer.config().tick_ms
}
