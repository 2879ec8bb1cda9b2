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
use crate::net::{NetCommand, NetEvent, NetState};
use crate::storage::{LogWriter, Recovered, StorageError, WriterEvent};
use crate::wire::{Frame, PayloadCodec};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{error, info, warn};
use zab_spec::{Epoch, Payload, QuorumMessage, ServerId, ServerState, Txn, ZabState, Zxid};

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
    /// Replaces the state by a serialized one.
    fn restore(&mut self, zxid: Zxid, data: &[u8]) -> Result<(), String>;
}

/// What an application may do from its hooks.
pub struct AppCx<'a, P> {
    peer: &'a mut Peer<P>,
    queued: &'a mut Vec<Action<P>>,
    net: &'a UnboundedSender<NetCommand<P>>,
    status: &'a Status,
    /// Wall-clock time, ms since the Unix epoch (simulated in tests).
    pub now_ms: i64,
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
        (self.peer.log().last_zxid() == zxid).then_some(zxid)
    }

    /// Sends an application frame to `to` on the quorum connection.
    pub fn send_frame(&self, to: ServerId, kind: u8, data: Bytes) {
        let _ = self.net.send(NetCommand::Quorum {
            to,
            frame: Frame::App(kind, data),
        });
    }

    /// The runtime's published status.
    #[must_use]
    pub fn status(&self) -> &Status {
        self.status
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
    /// A client write at the leader, already a transaction payload.
    Propose(P),
    /// Stop the loop.
    Shutdown,
}

/// Counters and state the runtime publishes for `srvr`, `mntr` and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Status {
    /// The role, updated on every change.
    pub role: Mutex<Option<RoleInfo>>,
    /// Last zxid in the log (`to_u64`).
    pub last_zxid: AtomicU64,
    /// Last delivered zxid.
    pub committed_zxid: AtomicU64,
    /// Transactions delivered since start.
    pub delivered: AtomicU64,
    /// Proposals this server made as leader.
    pub proposals: AtomicU64,
    /// Outstanding (uncommitted) proposals of this leader.
    pub outstanding: AtomicU64,
    /// Synced followers of this leader.
    pub synced_followers: AtomicU64,
    /// Elections won or joined.
    pub elections: AtomicU64,
    /// Time of the last role change, ms since the epoch of the process.
    pub role_since: Mutex<Option<Instant>>,
    /// Synchronous persistence latency, microseconds (histogram buckets).
    pub fsync_micros: crate::metrics::Histogram,
    /// Learners this leader synchronized, by mode: DIFF, TRUNC, SNAP.
    pub syncs: [AtomicU64; 3],
}

impl Status {
    /// The current role, LOOKING before the first report.
    #[must_use]
    pub fn role(&self) -> RoleInfo {
        self.role
            .lock()
            .map(|r| *r)
            .ok()
            .flatten()
            .unwrap_or(RoleInfo {
                state: ServerState::Looking,
                zab_state: ZabState::Election,
                leader: None,
                epoch: Epoch(0),
            })
    }
}

/// Where trace events go (when tracing is on).
pub type TraceSink<P> = Box<dyn FnMut(&TraceEvent<P>) + Send>;

/// Everything the runtime thread needs.
pub struct Replica<P, A: Application<P>> {
    peer: Peer<P>,
    sm: A,
    writer: Arc<LogWriter>,
    net: UnboundedSender<NetCommand<P>>,
    net_state: Arc<NetState>,
    events: Sender<Event<P, A::Client>>,
    status: Arc<Status>,
    timers: BTreeMap<Timer, Instant>,
    generation: u64,
    snap_count: u64,
    delivered_since_snapshot: u64,
    snapshot_running: bool,
    trace_sink: Option<TraceSink<P>>,
    tick: Duration,
    clock: Box<dyn Fn() -> i64 + Send>,
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
    Ok(Peer::new(
        cfg,
        recovered.accepted_epoch,
        recovered.current_epoch,
        log,
    ))
}

/// Wall-clock milliseconds since the Unix epoch.
#[must_use]
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<P, A> Replica<P, A>
where
    P: Payload + PayloadCodec + std::fmt::Debug,
    A: Application<P>,
{
    /// A replica ready to run. `sm` must already hold the recovered snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        peer: Peer<P>,
        sm: A,
        writer: Arc<LogWriter>,
        net: UnboundedSender<NetCommand<P>>,
        net_state: Arc<NetState>,
        events: Sender<Event<P, A::Client>>,
        status: Arc<Status>,
        snap_count: u64,
    ) -> Replica<P, A> {
        let generation = writer.snapshots().generation();
        Replica {
            sm,
            writer,
            net,
            net_state,
            events,
            status,
            timers: BTreeMap::new(),
            generation,
            snap_count: snap_count.max(1),
            delivered_since_snapshot: 0,
            snapshot_running: false,
            tick: Duration::from_millis((peer_tick_ms(&peer) / 2).max(1)),
            peer,
            trace_sink: None,
            clock: Box::new(wall_clock_ms),
        }
    }

    /// Uses `clock` for the application's wall-clock time.
    pub fn with_clock(mut self, clock: Box<dyn Fn() -> i64 + Send>) -> Self {
        self.clock = clock;
        self
    }

    /// Sends every trace event to `sink`.
    pub fn with_trace(mut self, sink: TraceSink<P>) -> Self {
        self.trace_sink = Some(sink);
        self
    }

    /// Runs until `Event::Shutdown` or a fatal error.
    pub fn run(mut self, rx: Receiver<Event<P, A::Client>>) -> Result<(), StorageError> {
        self.step(Input::Start)?;
        let mut next_app_tick = Instant::now() + self.tick;
        loop {
            let now = Instant::now();
            if now >= next_app_tick {
                next_app_tick = now + self.tick;
                self.with_app(|app, cx| app.on_tick(cx))?;
            }
            let next = self
                .timers
                .values()
                .min()
                .copied()
                .map_or(next_app_tick, |t| t.min(next_app_tick));
            let wait = next.saturating_duration_since(now);
            match rx.recv_timeout(wait) {
                Ok(Event::Shutdown) => {
                    info!("replica stopping");
                    return Ok(());
                }
                Ok(ev) => self.handle(ev)?,
                Err(RecvTimeoutError::Timeout) => self.fire_timers()?,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }

    fn fire_timers(&mut self) -> Result<(), StorageError> {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in due {
            self.timers.remove(&t);
            self.step(Input::Timer(t))?;
        }
        Ok(())
    }

    /// Runs an application hook with a context, then executes the actions its proposals
    /// produced.
    fn with_app(&mut self, f: impl FnOnce(&mut A, &mut AppCx<'_, P>)) -> Result<(), StorageError> {
        let mut queued = Vec::new();
        let now_ms = (self.clock)();
        {
            let mut cx = AppCx {
                peer: &mut self.peer,
                queued: &mut queued,
                net: &self.net,
                status: &self.status,
                now_ms,
            };
            f(&mut self.sm, &mut cx);
        }
        for a in queued {
            self.execute(a)?;
        }
        self.publish();
        Ok(())
    }

    fn handle(&mut self, ev: Event<P, A::Client>) -> Result<(), StorageError> {
        match ev {
            Event::Net(NetEvent::Election {
                from,
                frame: Frame::Notification(notification),
            }) => self.step(Input::Notification { from, notification }),
            Event::Net(NetEvent::Election { .. }) => Ok(()),
            Event::Net(NetEvent::Connected { leader }) => self.step(Input::Connected { leader }),
            Event::Net(NetEvent::LearnerConnected { learner }) => {
                self.step(Input::LearnerConnected { learner })
            }
            Event::Net(NetEvent::Disconnected { peer }) => self.step(Input::Disconnected { peer }),
            Event::Net(NetEvent::Quorum { from, frame }) => match frame {
                Frame::Zab(msg) => self.step(Input::Message { from, msg }),
                Frame::Heartbeat => self.step(Input::Heartbeat { from }),
                Frame::App(kind, data) => {
                    self.with_app(|app, cx| app.on_frame(from, kind, data, cx))
                }
                Frame::Notification(_) => Ok(()),
            },
            Event::Writer(WriterEvent::Durable { zxid, generation }) => {
                if generation == self.generation {
                    self.step(Input::Durable { zxid })
                } else {
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
            Event::Propose(payload) => {
                if self.peer.can_propose().is_ok() {
                    self.status.proposals.fetch_add(1, Ordering::Relaxed);
                }
                self.step(Input::Propose { payload })
            }
            Event::Shutdown => Ok(()),
        }
    }

    /// Feeds one input to the core and executes its actions in order.
    pub fn step(&mut self, input: Input<P>) -> Result<(), StorageError> {
        let mut actions = Vec::new();
        self.peer.step(input, &mut actions);
        for a in actions {
            self.execute(a)?;
        }
        self.publish();
        self.maybe_snapshot();
        Ok(())
    }

    fn send(&self, to: ServerId, frame: Frame<P>) {
        let _ = self.net.send(NetCommand::Quorum { to, frame });
    }

    fn timed<T>(&self, f: impl FnOnce() -> Result<T, StorageError>) -> Result<T, StorageError> {
        let start = Instant::now();
        let r = f();
        self.status
            .fsync_micros
            .record(start.elapsed().as_micros() as u64);
        r
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
                let data = (self.sm.snapshot_job())();
                self.send(
                    to,
                    Frame::Zab(QuorumMessage::Snap {
                        last_zxid,
                        snapshot: data,
                    }),
                );
            }
            Action::SendHeartbeat { to } => self.send(to, Frame::Heartbeat),
            Action::Persist(p) => self.persist(p)?,
            Action::SetTimer { timer, after_ms } => {
                self.timers
                    .insert(timer, Instant::now() + Duration::from_millis(after_ms));
            }
            Action::CancelTimer(timer) => {
                self.timers.remove(&timer);
            }
            Action::Deliver(txn) => {
                self.with_app(|app, cx| app.deliver(&txn, cx))?;
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
                self.with_app(|app, cx| app.on_role(info, cx))?;
            }
            Action::Trace(ev) => {
                if let Some(sink) = &mut self.trace_sink {
                    sink(&ev);
                }
            }
        }
        Ok(())
    }

    fn persist(&mut self, p: Persist<P>) -> Result<(), StorageError> {
        match p {
            Persist::Append { txns, wait } => {
                for t in txns {
                    let mut buf = BytesMut::new();
                    t.payload.encode(&mut buf);
                    self.writer.append(t.zxid, buf.freeze())?;
                }
                if wait {
                    let w = Arc::clone(&self.writer);
                    self.timed(|| w.flush().map(|_| ()))?;
                }
            }
            Persist::Flush => {
                let w = Arc::clone(&self.writer);
                self.timed(|| w.flush().map(|_| ()))?;
            }
            Persist::Truncate { after } => {
                let w = Arc::clone(&self.writer);
                self.timed(|| w.truncate_after(after))?;
                self.generation = self.writer.snapshots().generation();
            }
            Persist::InstallSnapshot { last_zxid, data } => {
                self.sm
                    .restore(last_zxid, &data)
                    .map_err(|reason| StorageError::Corrupt {
                        path: std::path::PathBuf::from("SNAP from the leader"),
                        offset: 0,
                        reason,
                    })?;
                let w = Arc::clone(&self.writer);
                self.timed(|| w.install_snapshot(last_zxid, data))?;
                self.generation = self.writer.snapshots().generation();
                self.delivered_since_snapshot = 0;
            }
            Persist::AdoptSnapshot { .. } => {
                // The snapshot was written durably by the background job; nothing more to do.
            }
            Persist::AcceptedEpoch(e) => {
                let w = Arc::clone(&self.writer);
                self.timed(|| w.epochs().set_accepted_epoch(e))?;
            }
            Persist::CurrentEpoch(e) => {
                let w = Arc::clone(&self.writer);
                self.timed(|| w.epochs().set_current_epoch(e))?;
            }
        }
        Ok(())
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
            .outstanding
            .store(self.peer.outstanding_proposals() as u64, Ordering::Relaxed);
        self.status
            .synced_followers
            .store(self.peer.synced_followers() as u64, Ordering::Relaxed);
    }

    /// Every `snap_count` deliveries, snapshot the state in the background (serialization and
    /// the write happen on another thread; the core adopts it when done, `TakeSnapshot`).
    fn maybe_snapshot(&mut self) {
        let log = self.peer.log();
        if self.snapshot_running
            || self.delivered_since_snapshot < self.snap_count
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
        let ticket = self.writer.snapshot_ticket();
        let job = self.sm.snapshot_job();
        let writer = Arc::clone(&self.writer);
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name("zab-snapshot".into())
            .spawn(move || {
                let data = job();
                let result = writer.save_snapshot(ticket, zxid, &data).map(|()| zxid);
                let _ = events.send(Event::SnapshotSaved(result));
            });
        if let Err(e) = spawned {
            error!("cannot start the snapshot thread: {e}");
            self.snapshot_running = false;
        }
    }
}

fn peer_tick_ms<P: Payload>(peer: &Peer<P>) -> u64 {
    peer.config().tick_ms
}
