//! Peer networking on tokio: the election mesh and the quorum connections, with the handshake
//! of [`crate::wire`], reconnection with backoff, and one tracing span per connection.
//!
//! The core thread talks to it with [`NetCommand`]s and hears from it through [`NetEvent`]s.
//! Election: every server keeps an outgoing connection to every other one (notifications are
//! sent on it; while it is down only the latest notification is kept) and accepts incoming ones
//! (notifications are read from them). Quorum: a follower connects to the leader it chose and
//! retries until the leader accepts or the core gives up; a leader accepts learners only while
//! it leads. Each quorum connection has a generation number, so that an event of a connection
//! that was replaced never reaches the core.
//!
//! Bounds (issue 12), each with its behaviour at the bound:
//! - The replica thread's commands to the network task ([`Commands`]) wait in a channel of at
//!   most [`COMMAND_QUEUE`] commands; when it is full the replica thread waits for room (push
//!   back, with a warning). The network task never waits for the replica thread, so the wait
//!   ends as soon as it runs again. (In `zabd` quorum frames and streams do not take this
//!   channel: the replica thread queues them on the connections itself, see Writes.)
//! - A quorum connection's outgoing bytes ([`crate::net_out::Outgoing`]) count what the socket
//!   has not taken; past `peerSendQueueLimitBytes` the peer is dropped with a warning and what
//!   was queued for it is freed (drop and resync: the core hears `Disconnected`, a follower
//!   reconnects and is resynchronized). A learner's synchronization is not counted: a SNAP or a
//!   DIFF read from disk is a stream produced on its own thread at most [`STREAM_DEPTH`] frames
//!   ahead of the socket (the producer waits while the peer does not read), and a DIFF/TRUNC
//!   with the in-memory transactions it carries, through NEWLEADER, is bounded by the leader's
//!   in-memory log (`commitLogCount`), not by how fast the learner reads. A stream is written
//!   in its place among the frames queued for the peer; what is queued behind it counts
//!   towards `peerSendQueueLimitBytes` as usual.
//! - An election connection queues at most [`crate::bounds::ELECTION_QUEUE`] notifications;
//!   newer ones past that are dropped (only the latest matters, and the election resends).
//! - Frames read from peers and not yet taken by the replica thread are counted
//!   ([`InboxGauge`]); past `peerInboxLimit` no peer connection is read until it drains, so a
//!   server that cannot keep up pushes back through TCP and its leader drops it, instead of
//!   buffering.
//!
//! On a follower, a SNAP sequence is checked and reassembled (`crate::snap_stream`) before the
//! replica thread sees it; a bad one closes the connection to that leader with an error naming
//! it.
//!
//! Writes (issue 20, [`crate::net_out`]): the replica thread encodes quorum frames straight
//! into each connection's buffer ([`QuorumSender`]) and, once its event is handled, writes a
//! plaintext connection's socket itself; a TLS connection's bytes are written by its writer
//! task, woken once per batch; a stream's frames are written by the writer task, in their
//! place. A connection whose writer task ends (a failed write, a failed stream) is closed.

use crate::latency::{Breakdown, Side, Stage};
use crate::net_out::{OnWritten, Outgoing, StreamItem};
use crate::quorum_tls::{PeerStream, QuorumTls};
use crate::wire::{
    self, Frame, HELLO_LEN, HandshakeStatus, Hello, PayloadCodec, Purpose, WELCOME_LEN, Welcome,
};
use bytes::BytesMut;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};
use tracing::{Instrument, debug, info, info_span, warn};
use zab_spec::{QuorumMessage, ServerId, Zxid};

/// What the core thread asks of the network.
#[derive(Debug)]
pub enum NetCommand<P> {
    /// Send on the election connection to `to`.
    Election {
        /// The receiver.
        to: ServerId,
        /// The frame.
        frame: Frame<P>,
    },
    /// Send on the quorum connection with `to`.
    Quorum {
        /// The receiver.
        to: ServerId,
        /// The frame.
        frame: Frame<P>,
    },
    /// Open a quorum connection to `leader`, retrying until it accepts or `Disconnect`.
    Connect {
        /// The leader.
        leader: ServerId,
    },
    /// Close the quorum connection with `peer` (and stop connecting to it).
    Disconnect {
        /// The other end.
        peer: ServerId,
    },
    /// Send the frames `producer` makes, in order, on the quorum connection with `to`, in
    /// this place among the other frames sent to `to` (those sent after wait). The producer
    /// runs on a thread of its own, never on the replica thread.
    Stream {
        /// The receiver.
        to: ServerId,
        /// What the stream is, for logs ("SNAP", "DIFF from the log").
        what: &'static str,
        /// Makes the frames.
        producer: Producer<P>,
    },
}

/// Makes frames for one peer off the replica thread (a SNAP's chunks, transactions read back
/// from the log), handing each to `emit` in order; `emit` returns `false` once the peer is
/// gone (stop then). An error drops the connection with the peer, which then resynchronizes.
pub type FrameProducer<P> =
    Box<dyn FnOnce(&mut dyn FnMut(Frame<P>) -> bool) -> Result<(), String> + Send>;

/// Frames a stream may have queued for one peer, produced but not yet written: with
/// [`wire::SNAP_CHUNK`]-sized chunks, at most 4 MiB per learner.
pub const STREAM_DEPTH: usize = 4;

/// A [`FrameProducer`] in a [`NetCommand`] (which is `Debug`).
pub struct Producer<P>(pub FrameProducer<P>);

impl<P> std::fmt::Debug for Producer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Producer(..)")
    }
}

/// Commands the replica thread may have queued for the network task and not yet handed
/// over ([`Commands`]). One event queues a few (notifications to each member, a connect or a
/// disconnect), and the network task takes each at once without waiting for anything.
pub const COMMAND_QUEUE: usize = 1024;

/// The replica thread's end of the network's command channel, bounded: at the bound
/// ([`COMMAND_QUEUE`] in `zabd`) [`Commands::send`] waits for room (push back). The network
/// task that takes the commands never waits for the replica thread, so this wait ends once
/// that task runs again; nothing is dropped.
pub struct Commands<P> {
    tx: mpsc::Sender<NetCommand<P>>,
    /// How often a send found the channel full.
    full: Arc<AtomicU64>,
}

impl<P> Clone for Commands<P> {
    fn clone(&self) -> Self {
        Commands {
            tx: self.tx.clone(),
            full: Arc::clone(&self.full),
        }
    }
}

impl<P> std::fmt::Debug for Commands<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("capacity", &self.tx.max_capacity())
            .finish_non_exhaustive()
    }
}

impl<P> Commands<P> {
    /// A channel of at most `capacity` commands, and its receiving end.
    #[must_use]
    pub fn channel(capacity: usize) -> (Commands<P>, mpsc::Receiver<NetCommand<P>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let full = Arc::new(AtomicU64::new(0));
        (Commands { tx, full }, rx)
    }

    /// Hands `cmd` to the network; waits while the channel is full. `false` once nobody
    /// takes commands any more (a standalone server, or the network stopped). Called from
    /// a thread that is not a tokio worker (the replica thread); from inside the runtime a
    /// full channel drops the command with an error instead of blocking a worker.
    pub fn send(&self, cmd: NetCommand<P>) -> bool {
        let cmd = match self.tx.try_send(cmd) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Closed(_)) => return false,
            Err(mpsc::error::TrySendError::Full(cmd)) => cmd,
        };
        let times = self.full.fetch_add(1, Ordering::Relaxed) + 1;
        if times.is_power_of_two() {
            warn!(
                times,
                capacity = self.tx.max_capacity(),
                "the network task does not keep up: the replica thread waits for room in its \
                 command queue"
            );
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            tracing::error!("network command queue full inside the runtime: dropping a command");
            return false;
        }
        self.tx.blocking_send(cmd).is_ok()
    }

    /// How many sends found the channel full (and waited).
    #[must_use]
    pub fn waits(&self) -> u64 {
        self.full.load(Ordering::Relaxed)
    }
}

/// What the network tells the core thread.
#[derive(Debug)]
pub enum NetEvent<P> {
    /// An election frame arrived.
    Election {
        /// The sender.
        from: ServerId,
        /// The frame.
        frame: Frame<P>,
    },
    /// The quorum connection to `leader` is up.
    Connected {
        /// The leader.
        leader: ServerId,
    },
    /// A learner's quorum connection is up.
    LearnerConnected {
        /// The learner.
        learner: ServerId,
    },
    /// A quorum frame arrived.
    Quorum {
        /// The sender.
        from: ServerId,
        /// The frame.
        frame: Frame<P>,
    },
    /// The quorum connection with `peer` is gone.
    Disconnected {
        /// The other end.
        peer: ServerId,
    },
}

/// Addresses and identity for the network layer.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// This server.
    pub me: ServerId,
    /// Election address of every member (this one included).
    pub election: BTreeMap<ServerId, SocketAddr>,
    /// Quorum address of every member (this one included).
    pub quorum: BTreeMap<ServerId, SocketAddr>,
    /// The ensemble fingerprint ([`wire::ensemble_fingerprint`]).
    pub ensemble: u64,
    /// `jute.maxbuffer`: bounds the requests and proposals a peer may send
    /// ([`wire::FrameLimits`]).
    pub jute_max_buffer: usize,
    /// How recently a learner's quorum connection must have delivered a frame to count as
    /// live (the leader heartbeats every tick, so two ticks): a second handshake for a learner
    /// whose connection is live is refused instead of displacing it.
    pub live_window: Duration,
    /// Quorum TLS (`sslQuorum`, `portUnification`): `None` for plaintext peer links.
    pub tls: Option<Arc<QuorumTls>>,
    /// `peerSendQueueLimitBytes`: bytes queued for one quorum peer past which it is dropped.
    pub send_queue_limit: usize,
    /// `peerInboxLimit`: peer frames not yet taken by the replica thread past which no peer
    /// connection is read.
    pub inbox_limit: usize,
    /// The latency breakdown, stamped as PROPOSAL, ACK and COMMIT frames are read and
    /// written (`None`: not measured).
    pub breakdown: Option<Arc<Breakdown>>,
}

/// Shared between the network tasks and the core thread.
#[derive(Debug, Default)]
pub struct NetState {
    /// Whether this server leads (learners are accepted only then).
    pub leading: AtomicBool,
    /// Peer frames handed to the replica thread and not yet taken.
    pub inbox: InboxGauge,
    /// The largest frame body read on a quorum connection, in bytes.
    pub largest_quorum_frame: AtomicU64,
    /// SNAP chunks received from leaders (reassembled or not).
    pub snap_chunks: AtomicU64,
    /// Where a follower writes a SNAP as it arrives (the snapshot directory); unset, it is
    /// kept in memory.
    pub snap_spool: std::sync::OnceLock<std::path::PathBuf>,
}

/// Counts the peer frames handed to the replica thread and not yet taken by it: the network
/// waits ([`InboxGauge::admit`]) before handing over more than the limit.
#[derive(Debug, Default)]
pub struct InboxGauge {
    queued: AtomicU64,
    wake: Notify,
}

impl InboxGauge {
    /// Network: waits until fewer than `limit` frames are queued, then counts one more.
    pub async fn admit(&self, limit: usize) {
        let limit = limit as u64;
        loop {
            let n = self.queued.load(Ordering::SeqCst);
            if n < limit {
                if self
                    .queued
                    .compare_exchange(n, n + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }

    /// Replica thread: one frame taken (a frame it did not count is ignored); also the
    /// network, for a counted frame it did not hand over after all.
    pub fn taken(&self) {
        if self
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.wake.notify_waiters();
        }
    }

    /// Frames queued now.
    #[must_use]
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::SeqCst)
    }
}

/// A breakdown stage a written frame reached.
type Stamp = (Zxid, Stage);

/// A quorum connection's outgoing bytes ([`crate::net_out`]), and which end this server is.
struct QuorumOut {
    out: Outgoing<Stamp>,
    /// Whether this server leads on the connection (which frames are stamped).
    leader_side: bool,
    /// Between the first piece of a learner's synchronization (a SNAP or DIFF stream, a DIFF
    /// or TRUNC) and its NEWLEADER: the core queues them in one step.
    syncing: AtomicBool,
}

impl QuorumOut {
    fn new(out: Outgoing<Stamp>, leader_side: bool) -> QuorumOut {
        QuorumOut {
            out,
            leader_side,
            syncing: AtomicBool::new(false),
        }
    }

    /// Encodes `frame` into the buffer; returns the counted bytes queued and not yet written.
    /// A learner's synchronization is not counted: it is one O(log) unit queued at once (the
    /// SNAP, or the DIFF or TRUNC with every transaction it carries, through NEWLEADER),
    /// bounded by the leader's in-memory log (`commitLogCount`, outstanding proposals), not by
    /// how fast the learner reads. Counted, a history longer than the limit would drop the
    /// learner at every attempt to synchronize it, and it would never rejoin.
    fn queue<P: PayloadCodec>(&self, frame: &Frame<P>) -> usize {
        let exempt = match frame {
            Frame::Zab(
                QuorumMessage::Snap { .. }
                | QuorumMessage::Diff { .. }
                | QuorumMessage::Trunc { .. },
            ) => {
                self.syncing.store(true, Ordering::SeqCst);
                true
            }
            Frame::Zab(QuorumMessage::NewLeader { .. }) => {
                self.syncing.store(false, Ordering::SeqCst);
                true
            }
            _ => self.syncing.load(Ordering::SeqCst),
        };
        self.out.queue(
            |buf| wire::encode_frame(frame, buf),
            stamp_written(frame, self.leader_side),
            exempt,
        )
    }

    /// Queues a stream: `producer` runs on a thread of its own and its frames are written in
    /// this place, at most [`STREAM_DEPTH`] of them produced ahead of the socket. It starts a
    /// synchronization (what follows it through NEWLEADER is not counted). A producer that
    /// cannot start fails the connection (the peer resynchronizes).
    fn stream<P>(&self, to: ServerId, what: &'static str, producer: FrameProducer<P>)
    where
        P: PayloadCodec + Send + 'static,
    {
        self.syncing.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel::<StreamItem>(STREAM_DEPTH);
        if !self.out.queue_stream(what, rx) {
            return;
        }
        let run = move || {
            let mut emit = |frame: Frame<P>| {
                let mut buf = BytesMut::new();
                wire::encode_frame(&frame, &mut buf);
                tx.blocking_send(Ok(Some(buf.freeze()))).is_ok()
            };
            // The end is said, so that a producer that stops early (a panic) is not taken
            // for a finished stream.
            let end = producer(&mut emit).map(|()| None);
            let _ = tx.blocking_send(end);
        };
        if let Err(e) = std::thread::Builder::new()
            .name(format!("zab-sync-{}", to.0))
            .spawn(run)
        {
            tracing::error!(peer = %to, "cannot start a thread for the {what}: {e}");
            self.out.fail();
        }
    }
}

/// One quorum connection: generation, outgoing bytes, writer task, and when it last delivered
/// a frame (milliseconds since [`Shared::started`]).
type QuorumSlot = (
    u64,
    Arc<QuorumOut>,
    tokio::task::AbortHandle,
    Arc<AtomicU64>,
);

/// The largest snapshot a follower accepts from its leader (announced in SNAP; memory grows
/// only with the chunks that actually arrive).
pub const MAX_SNAPSHOT: u64 = 1 << 40;

/// Where the network delivers its events, like the log writer's report closure: in `zabd`
/// straight onto the replica thread's event channel (each wrapped as `runtime::Event::Net`),
/// with no hand-off in between. It returns `false` once nobody listens any more (the replica
/// stopped); the connection task that sent then ends.
pub type NetSink<P> = Box<dyn Fn(NetEvent<P>) -> bool + Send + Sync>;

struct Shared<P> {
    cfg: NetConfig,
    state: Arc<NetState>,
    events: NetSink<P>,
    generation: AtomicU64,
    /// The current quorum connection with each peer: generation, writer, task, last frame.
    quorum: std::sync::Mutex<BTreeMap<ServerId, QuorumSlot>>,
    /// The origin of the connections' last-frame clocks.
    started: std::time::Instant,
    /// Per leader: the wait before the next connection, grown while its connections end
    /// soon after they start ([`Shared::rejoin_delay`]).
    rejoin: std::sync::Mutex<BTreeMap<ServerId, Duration>>,
}

/// A follower's connection to a leader that ends within this time of its start counts as a
/// failed join (the leader refused our epoch, or dropped us at once).
const SHORT_LIVED: Duration = Duration::from_secs(2);
/// The first wait after a failed join; it doubles with each one after.
const REJOIN_MIN: Duration = Duration::from_millis(100);
/// The longest wait between joins: a follower stuck in follow -> LEADERINFO too old ->
/// LOOKING (it accepted a higher epoch, from a rogue or a leader that lost its quorum)
/// tries at most this often instead of in a tight loop.
pub const REJOIN_MAX: Duration = Duration::from_secs(5);

impl<P> Shared<P> {
    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<ServerId, QuorumSlot>> {
        // A poisoned lock only means another network task panicked; the map is still sound.
        self.quorum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The wait before joining `leader` again: zero unless its last connections were short.
    fn rejoin_delay(&self, leader: ServerId) -> Duration {
        self.rejoin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&leader)
            .copied()
            .unwrap_or(Duration::ZERO)
    }

    /// Records how long a connection to `leader` lived: a short one doubles the wait before
    /// the next (from [`REJOIN_MIN`] up to [`REJOIN_MAX`]), a long one clears it.
    fn record_join(&self, leader: ServerId, lived: Duration) {
        let mut rejoin = self
            .rejoin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if lived >= SHORT_LIVED {
            rejoin.remove(&leader);
            return;
        }
        let next = rejoin
            .get(&leader)
            .map_or(REJOIN_MIN, |d| (*d * 2).min(REJOIN_MAX));
        if next == REJOIN_MAX && rejoin.get(&leader) != Some(&REJOIN_MAX) {
            warn!(
                %leader,
                "connections to the leader keep ending at once (is our accepted epoch ahead \
                 of its epoch?); trying again every {REJOIN_MAX:?}"
            );
        }
        rejoin.insert(leader, next);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether `peer` has a quorum connection that delivered a frame within the live window.
    fn has_live_quorum(
        slots: &BTreeMap<ServerId, QuorumSlot>,
        peer: ServerId,
        now: u64,
        window: Duration,
    ) -> bool {
        slots.get(&peer).is_some_and(|(_, _, _, seen)| {
            now.saturating_sub(seen.load(Ordering::Relaxed))
                < u64::try_from(window.as_millis()).unwrap_or(u64::MAX)
        })
    }

    /// Reports a quorum connection's end, unless it was replaced or closed on purpose.
    fn quorum_closed(&self, peer: ServerId, generation: u64) {
        let mut slots = self.slots();
        if slots
            .get(&peer)
            .is_some_and(|(g, _, _, _)| *g == generation)
        {
            slots.remove(&peer);
            drop(slots);
            let _ = (self.events)(NetEvent::Disconnected { peer });
        }
    }
}

impl<P: PayloadCodec> Shared<P> {
    /// Queues `frame` on the quorum connection with `to` (dropped if there is none) and
    /// returns the connection to flush; past `peerSendQueueLimitBytes` of bytes its socket has
    /// not taken, the peer is dropped instead ([`Shared::drop_slow_peer`]).
    fn queue_quorum(&self, to: ServerId, frame: &Frame<P>) -> Option<Arc<QuorumOut>> {
        let (generation, out) = self
            .slots()
            .get(&to)
            .map(|(g, out, _, _)| (*g, Arc::clone(out)))?;
        let queued = out.queue(frame);
        let limit = self.cfg.send_queue_limit;
        if queued <= limit {
            return Some(out);
        }
        self.drop_slow_peer(to, generation, &out, (queued, limit));
        None
    }

    /// Drops a peer that does not read what it is sent: its connection's queue is freed, the
    /// core hears `Disconnected` (a follower reconnects and is resynchronized).
    fn drop_slow_peer(
        &self,
        to: ServerId,
        generation: u64,
        out: &QuorumOut,
        (queued, limit): (usize, usize),
    ) {
        {
            let mut slots = self.slots();
            if slots.get(&to).is_none_or(|(g, _, _, _)| *g != generation) {
                return;
            }
            if let Some((_, _, task, _)) = slots.remove(&to) {
                task.abort();
            }
        }
        out.out.discard();
        warn!(
            peer = %to,
            queued,
            limit,
            "dropping a peer that does not keep up (peerSendQueueLimitBytes); it \
             reconnects and is resynchronized"
        );
        let _ = (self.events)(NetEvent::Disconnected { peer: to });
    }
}

impl<P: PayloadCodec + Send + 'static> Shared<P> {
    /// Queues a stream on the quorum connection with `to` ([`QuorumOut::stream`]) and returns
    /// the connection to flush (which wakes its writer task); `None` if there is none.
    fn stream_quorum(
        &self,
        to: ServerId,
        what: &'static str,
        producer: FrameProducer<P>,
    ) -> Option<Arc<QuorumOut>> {
        let Some(out) = self.slots().get(&to).map(|(_, out, _, _)| Arc::clone(out)) else {
            debug!(peer = %to, "no quorum connection: not starting the {what}");
            return None;
        };
        out.stream(to, what, producer);
        Some(out)
    }
}

/// The replica thread's direct way onto the quorum connections ([`crate::net_out`]): frames
/// are encoded into each connection's buffer as the actions run, and [`QuorumSender::flush`]
/// (at the end of the batch, and before a synchronous write) writes every buffer filled since
/// the last flush: a plaintext socket at once, a TLS stream by waking its writer task. A frame
/// to a server without a quorum connection is dropped, as through [`NetCommand::Quorum`].
pub struct QuorumSender<P> {
    shared: Arc<Shared<P>>,
    dirty: std::cell::RefCell<Vec<Arc<QuorumOut>>>,
}

impl<P: PayloadCodec> QuorumSender<P> {
    /// Queues `frame` for `to`.
    pub fn send(&self, to: ServerId, frame: &Frame<P>) {
        if let Some(out) = self.shared.queue_quorum(to, frame) {
            self.dirty(out);
        }
    }

    fn dirty(&self, out: Arc<QuorumOut>) {
        let mut dirty = self.dirty.borrow_mut();
        if !dirty.iter().any(|d| Arc::ptr_eq(d, &out)) {
            dirty.push(out);
        }
    }

    /// Writes every connection's queued frames.
    pub fn flush(&self) {
        let dirty = std::mem::take(&mut *self.dirty.borrow_mut());
        for out in dirty {
            out.out.flush();
        }
    }
}

impl<P: PayloadCodec + Send + 'static> QuorumSender<P> {
    /// Queues a stream for `to` ([`NetCommand::Stream`]), in its place after the frames queued
    /// for `to` so far and before those queued after it.
    pub fn stream(&self, to: ServerId, what: &'static str, producer: FrameProducer<P>) {
        if let Some(out) = self.shared.stream_quorum(to, what, producer) {
            self.dirty(out);
        }
    }
}

/// Starts the listeners and the election mesh; returns the command sender (a channel of at
/// most [`COMMAND_QUEUE`] commands) and the replica thread's [`QuorumSender`]. Every event goes
/// to `events`.
pub async fn start<P>(
    cfg: NetConfig,
    state: Arc<NetState>,
    events: NetSink<P>,
) -> std::io::Result<(Commands<P>, QuorumSender<P>)>
where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    let election_listener = bind(cfg.election.get(&cfg.me)).await?;
    let quorum_listener = bind(cfg.quorum.get(&cfg.me)).await?;
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        state,
        events,
        generation: AtomicU64::new(0),
        quorum: std::sync::Mutex::new(BTreeMap::new()),
        started: std::time::Instant::now(),
        rejoin: std::sync::Mutex::new(BTreeMap::new()),
    });
    let (commands, cmd_rx) = Commands::channel(COMMAND_QUEUE);
    let direct = QuorumSender {
        shared: Arc::clone(&shared),
        dirty: std::cell::RefCell::new(Vec::new()),
    };
    tokio::spawn(accept_loop(
        election_listener,
        Purpose::Election,
        Arc::clone(&shared),
    ));
    tokio::spawn(accept_loop(
        quorum_listener,
        Purpose::Quorum,
        Arc::clone(&shared),
    ));
    let mut election_out: BTreeMap<ServerId, mpsc::Sender<Frame<P>>> = BTreeMap::new();
    for (&peer, &addr) in &cfg.election {
        if peer == cfg.me {
            continue;
        }
        let (tx, rx) = mpsc::channel(crate::bounds::ELECTION_QUEUE);
        election_out.insert(peer, tx);
        let span = info_span!("election", peer = %peer, %addr);
        tokio::spawn(election_sender(peer, addr, Arc::clone(&shared), rx).instrument(span));
    }
    tokio::spawn(run_commands(shared, cmd_rx, election_out));
    Ok((commands, direct))
}

/// The network task that takes the replica thread's commands. It never waits for anything
/// (a full election queue drops the notification; a quorum frame is queued on its
/// connection and written without waiting), so the command channel drains as fast as it
/// runs.
async fn run_commands<P>(
    shared: Arc<Shared<P>>,
    mut cmd_rx: mpsc::Receiver<NetCommand<P>>,
    election_out: BTreeMap<ServerId, mpsc::Sender<Frame<P>>>,
) where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    let mut connecting: BTreeMap<ServerId, tokio::task::AbortHandle> = BTreeMap::new();
    while let Some(cmd) = cmd_rx.recv().await {
        match cmd {
            NetCommand::Election { to, frame } => {
                if let Some(tx) = election_out.get(&to) {
                    if tx.try_send(frame).is_err() {
                        debug!(peer = %to, "election queue full: dropping a notification");
                    }
                }
            }
            NetCommand::Quorum { to, frame } => {
                // Encoded outside the map's lock.
                if let Some(out) = shared.queue_quorum(to, &frame) {
                    out.out.flush();
                }
            }
            NetCommand::Stream { to, what, producer } => {
                if let Some(out) = shared.stream_quorum(to, what, producer.0) {
                    out.out.flush();
                }
            }
            NetCommand::Connect { leader } => {
                let Some(&addr) = shared.cfg.quorum.get(&leader) else {
                    continue;
                };
                let span = info_span!("quorum", peer = %leader, %addr, role = "follower");
                let task = tokio::spawn(
                    connect_to_leader(leader, addr, Arc::clone(&shared)).instrument(span),
                );
                if let Some(old) = connecting.insert(leader, task.abort_handle()) {
                    old.abort();
                }
            }
            NetCommand::Disconnect { peer } => {
                if let Some(t) = connecting.remove(&peer) {
                    t.abort();
                }
                if let Some((_, _, task, _)) = shared.slots().remove(&peer) {
                    task.abort();
                }
            }
        }
    }
}

async fn bind(addr: Option<&SocketAddr>) -> std::io::Result<TcpListener> {
    let addr =
        addr.ok_or_else(|| std::io::Error::other("this server has no address in the ensemble"))?;
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

async fn accept_loop<P>(listener: TcpListener, purpose: Purpose, shared: Arc<Shared<P>>)
where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    if let Err(e) = accept_one(stream, addr, purpose, shared).await {
                        debug!(%addr, "connection refused: {e}");
                    }
                });
            }
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_one<P>(
    tcp: TcpStream,
    addr: SocketAddr,
    purpose: Purpose,
    shared: Arc<Shared<P>>,
) -> Result<(), String>
where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    let (mut stream, names): (PeerStream, _) = match &shared.cfg.tls {
        None => (Box::new(tcp), None),
        Some(tls) => tls.accept(tcp).await.inspect_err(|e| {
            warn!(%addr, ?purpose, "refusing a peer: {e}");
        })?,
    };
    let mut hello = [0u8; HELLO_LEN];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut hello))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let me = shared.cfg.me;
    let reply = |status| wire::encode_welcome(&Welcome { status, sid: me });
    let hello: Hello = match wire::decode_hello(&hello) {
        Ok(h) => h,
        Err(e @ wire::WireError::Version { .. }) => {
            warn!(%addr, "refusing a peer: {e}");
            let _ = stream
                .write_all(&reply(HandshakeStatus::VersionMismatch))
                .await;
            let _ = stream.flush().await;
            return Err(e.to_string());
        }
        Err(e) => return Err(e.to_string()),
    };
    let identity = match (&shared.cfg.tls, &names) {
        (Some(tls), Some(names)) => tls.check_identity(names, hello.sid),
        _ => Ok(()),
    };
    let status = if !shared.cfg.election.contains_key(&hello.sid) || hello.sid == me {
        HandshakeStatus::UnknownServer
    } else if let Err(e) = identity {
        warn!(%addr, claimed = %hello.sid, ?purpose, "refusing a peer whose certificate is not that server's: {e}");
        HandshakeStatus::Refused
    } else if hello.ensemble != shared.cfg.ensemble {
        HandshakeStatus::WrongEnsemble
    } else if hello.purpose != purpose
        || (purpose == Purpose::Quorum && !shared.state.leading.load(Ordering::SeqCst))
    {
        HandshakeStatus::Refused
    } else if purpose == Purpose::Quorum
        && Shared::<P>::has_live_quorum(
            &shared.slots(),
            hello.sid,
            shared.now_ms(),
            shared.cfg.live_window,
        )
    {
        warn!(%addr, peer = %hello.sid, "refusing a second quorum connection for a server whose connection is live");
        HandshakeStatus::Refused
    } else {
        HandshakeStatus::Accepted
    };
    stream
        .write_all(&reply(status))
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    if status != HandshakeStatus::Accepted {
        return Err(format!("{status:?} for server {}", hello.sid));
    }
    let peer = hello.sid;
    match purpose {
        Purpose::Election => {
            let span = info_span!("election-in", peer = %peer, %addr);
            read_frames(stream, peer, Arc::clone(&shared), |from, frame| {
                NetEvent::Election { from, frame }
            })
            .instrument(span)
            .await;
            Ok(())
        }
        Purpose::Quorum => {
            let span = info_span!("quorum", peer = %peer, %addr, role = "leader");
            run_quorum(stream, peer, shared, true)
                .instrument(span)
                .await;
            Ok(())
        }
    }
}

/// Reads frames until the stream ends, turning each into an event.
async fn read_frames<P>(
    mut stream: PeerStream,
    peer: ServerId,
    shared: Arc<Shared<P>>,
    event: impl Fn(ServerId, Frame<P>) -> NetEvent<P>,
) where
    P: PayloadCodec,
{
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        loop {
            match wire::take_frame(&mut buf, &wire::FrameLimits::ELECTION) {
                Ok(Some(body)) => match wire::decode_frame::<P>(&body) {
                    Ok(frame) => {
                        shared.state.inbox.admit(shared.cfg.inbox_limit).await;
                        if !(shared.events)(event(peer, frame)) {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!("closing: undecodable frame: {e}");
                        return;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    warn!("closing: {e}");
                    return;
                }
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Runs an established quorum connection: registers it, then reads until it ends.
async fn run_quorum<P>(
    stream: PeerStream,
    peer: ServerId,
    shared: Arc<Shared<P>>,
    leader_side: bool,
) where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let up = std::time::Instant::now();
    let side = if leader_side {
        Side::Leader
    } else {
        Side::Follower
    };
    // A PROPOSAL (leader) or ACK (follower) reaches its breakdown stage once written.
    let written: Option<OnWritten<Stamp>> = shared.cfg.breakdown.clone().map(|b| {
        Box::new(move |_: usize, marks: &[Stamp]| {
            if marks.is_empty() {
                return;
            }
            let now = std::time::Instant::now();
            for &(zxid, stage) in marks {
                b.mark(side, zxid, stage, now);
            }
        }) as OnWritten<Stamp>
    });
    let Some((reader, out, mut writer_task)) = split_quorum(stream, leader_side, written) else {
        return;
    };
    let seen = Arc::new(AtomicU64::new(shared.now_ms()));
    {
        let mut slots = shared.slots();
        // Checked again under the lock: of two handshakes racing for one id, the second
        // does not displace the first while it is live.
        if leader_side
            && Shared::<P>::has_live_quorum(&slots, peer, shared.now_ms(), shared.cfg.live_window)
        {
            drop(slots);
            warn!("closing a second quorum connection for a server whose connection is live");
            writer_task.abort();
            return;
        }
        let slot = (
            generation,
            out,
            writer_task.abort_handle(),
            Arc::clone(&seen),
        );
        if let Some((_, _, old, _)) = slots.insert(peer, slot) {
            old.abort();
        }
    }
    let connected = if leader_side {
        NetEvent::LearnerConnected { learner: peer }
    } else {
        NetEvent::Connected { leader: peer }
    };
    info!("quorum connection up");
    if !(shared.events)(connected) {
        return;
    }
    let conn = Registered {
        peer,
        generation,
        leader_side,
        seen,
    };
    read_quorum(&shared, &conn, reader, &mut writer_task).await;
    info!("quorum connection down");
    writer_task.abort();
    if !leader_side {
        // Before the core hears of it (and asks for the next connection).
        shared.record_join(peer, up.elapsed());
    }
    shared.quorum_closed(peer, generation);
}

/// A registered quorum connection, as its reader sees it.
struct Registered {
    peer: ServerId,
    generation: u64,
    leader_side: bool,
    /// When it last delivered a frame (milliseconds since [`Shared::started`]).
    seen: Arc<AtomicU64>,
}

/// Reads frames from a registered quorum connection and hands them to the core; returns
/// when the connection ends, when it is replaced or closed on purpose, or when its writer
/// task ends (a failed write or a failed stream: the connection is closed then, and the
/// peer resynchronizes).
async fn read_quorum<P>(
    shared: &Shared<P>,
    conn: &Registered,
    mut reader: QuorumReader,
    writer_task: &mut tokio::task::JoinHandle<()>,
) where
    P: PayloadCodec,
{
    let limits = if conn.leader_side {
        wire::FrameLimits::from_learner(shared.cfg.jute_max_buffer)
    } else {
        wire::FrameLimits::from_leader(shared.cfg.jute_max_buffer)
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // A learner never sends a SNAP (its frame limits refuse the chunks): only a follower
    // reassembles one.
    let mut snap = crate::snap_stream::SnapAssembler::new(MAX_SNAPSHOT)
        .spooling_to(shared.state.snap_spool.get().cloned());
    loop {
        loop {
            let frame = match wire::take_frame(&mut buf, &limits) {
                Ok(Some(body)) => match wire::decode_frame::<P>(&body) {
                    Ok(frame) => {
                        conn.seen.store(shared.now_ms(), Ordering::Relaxed);
                        let st = &shared.state;
                        st.largest_quorum_frame
                            .fetch_max(body.len() as u64, Ordering::Relaxed);
                        if matches!(frame, Frame::SnapChunk { .. }) {
                            st.snap_chunks.fetch_add(1, Ordering::Relaxed);
                        }
                        frame
                    }
                    Err(e) => {
                        warn!("closing: undecodable frame: {e}");
                        return;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    warn!("closing: {e}");
                    return;
                }
            };
            let frame = match snap.push(frame) {
                Ok(Some(frame)) => frame,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(
                        leader = conn.peer.0,
                        "bad SNAP from the leader ({e}): dropping it and going back to LOOKING"
                    );
                    return;
                }
            };
            if !deliver(shared, conn, frame).await {
                return;
            }
        }
        tokio::select! {
            read = reader.read_buf(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = &mut *writer_task => {
                debug!("the connection's writer stopped: closing it");
                return;
            }
        }
    }
}

/// Hands a frame read on `conn` to the core (waiting for room in the inbox); `false` once the
/// connection is no longer the registered one or nobody listens.
async fn deliver<P>(shared: &Shared<P>, conn: &Registered, frame: Frame<P>) -> bool {
    shared.state.inbox.admit(shared.cfg.inbox_limit).await;
    if let Some(b) = &shared.cfg.breakdown {
        stamp_received(b, &frame, conn.leader_side);
    }
    let current = shared
        .slots()
        .get(&conn.peer)
        .is_some_and(|(g, _, _, _)| *g == conn.generation);
    if !current {
        // Not handed over: it leaves the inbox count again.
        shared.state.inbox.taken();
        return false;
    }
    (shared.events)(NetEvent::Quorum {
        from: conn.peer,
        frame,
    })
}

/// The reading half of a quorum connection.
type QuorumReader = Box<dyn AsyncRead + Unpin + Send>;

/// Splits an established quorum connection into its reader, its outgoing bytes and their
/// writer task: a plaintext socket is written by the replica thread itself, a TLS stream
/// (or a plaintext peer under `portUnification`, which arrives boxed) by the task.
fn split_quorum(
    stream: PeerStream,
    leader_side: bool,
    written: Option<OnWritten<Stamp>>,
) -> Option<(QuorumReader, Arc<QuorumOut>, tokio::task::JoinHandle<()>)> {
    if (&*stream as &dyn std::any::Any).is::<TcpStream>() {
        let any: Box<dyn std::any::Any + Send> = stream;
        let Ok(tcp) = any.downcast::<TcpStream>() else {
            warn!("closing: a plaintext quorum connection that is not a socket");
            return None;
        };
        let (reader, writer) = tcp.into_split();
        let out = Arc::new(QuorumOut::new(
            Outgoing::direct(writer, written),
            leader_side,
        ));
        let task_out = Arc::clone(&out);
        let task = tokio::spawn(async move { task_out.out.run_direct().await });
        return Some((Box::new(reader), out, task));
    }
    let (reader, writer) = tokio::io::split(stream);
    let out = Arc::new(QuorumOut::new(Outgoing::via_task(written), leader_side));
    let task_out = Arc::clone(&out);
    let task = tokio::spawn(async move { task_out.out.run_task(writer).await });
    Some((Box::new(reader), out, task))
}

/// The breakdown's stage a frame written on a quorum connection reaches, if any: a PROPOSAL
/// from the leader, an ACK from a follower.
fn stamp_written<P>(frame: &Frame<P>, leader_side: bool) -> Option<(Zxid, Stage)> {
    match frame {
        Frame::Zab(QuorumMessage::Proposal(txn)) if leader_side => {
            Some((txn.zxid, Stage::LeaderProposalSent))
        }
        Frame::Zab(QuorumMessage::Ack { zxid }) if !leader_side => {
            Some((*zxid, Stage::FollowerAckSent))
        }
        _ => None,
    }
}

/// Stamps a frame read on a quorum connection: a follower's PROPOSAL starts its measurement,
/// its COMMIT is a stage; on the leader, an ACK is.
fn stamp_received<P>(b: &Breakdown, frame: &Frame<P>, leader_side: bool) {
    let now = std::time::Instant::now();
    match frame {
        Frame::Zab(QuorumMessage::Proposal(txn)) if !leader_side => {
            b.start(Side::Follower, txn.zxid, now);
        }
        Frame::Zab(QuorumMessage::Commit { zxid }) if !leader_side => {
            b.mark(Side::Follower, *zxid, Stage::FollowerCommitReceived, now);
        }
        Frame::Zab(QuorumMessage::Ack { zxid }) if leader_side => {
            b.mark(Side::Leader, *zxid, Stage::LeaderAckReceived, now);
        }
        _ => {}
    }
}

/// Connects to member `peer` at `addr` (over TLS when the quorum uses it, the certificate
/// bound to `peer`) and exchanges the hello and the welcome.
async fn handshake(
    addr: SocketAddr,
    peer: ServerId,
    hello: Hello,
    tls: Option<&QuorumTls>,
) -> Result<(PeerStream, Welcome), String> {
    let tcp = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let mut stream: PeerStream = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            tls.connect(tcp, peer)
                .await
                .inspect_err(|e| warn!(%addr, %peer, "cannot connect to a peer: {e}"))?
                .0
        }
    };
    stream
        .write_all(&wire::encode_hello(&hello))
        .await
        .map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut reply = [0u8; WELCOME_LEN];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut reply))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let welcome = wire::decode_welcome(&reply).map_err(|e| e.to_string())?;
    Ok((stream, welcome))
}

/// Keeps an outgoing election connection up and sends the queued notifications on it.
async fn election_sender<P>(
    peer: ServerId,
    addr: SocketAddr,
    shared: Arc<Shared<P>>,
    mut rx: mpsc::Receiver<Frame<P>>,
) where
    P: PayloadCodec + Send + Sync + 'static,
{
    let hello = Hello {
        purpose: Purpose::Election,
        sid: shared.cfg.me,
        ensemble: shared.cfg.ensemble,
    };
    let mut backoff = Duration::from_millis(50);
    let mut pending: Option<Frame<P>> = None;
    loop {
        match handshake(addr, peer, hello, shared.cfg.tls.as_deref()).await {
            Ok((mut stream, w)) if w.status == HandshakeStatus::Accepted => {
                backoff = Duration::from_millis(50);
                let mut buf = BytesMut::new();
                loop {
                    let frame = match pending.take() {
                        Some(f) => f,
                        None => match rx.recv().await {
                            Some(f) => f,
                            None => return,
                        },
                    };
                    buf.clear();
                    wire::encode_frame(&frame, &mut buf);
                    if stream.write_all(&buf).await.is_err() || stream.flush().await.is_err() {
                        pending = Some(frame);
                        break;
                    }
                }
            }
            Ok((_, w)) => warn!("election peer refused us: {:?}", w.status),
            Err(e) => debug!("election connect: {e}"),
        }
        // While down, only the latest notification matters.
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            f = rx.recv() => match f { Some(f) => { pending = Some(f); } None => return },
        }
        while let Ok(f) = rx.try_recv() {
            pending = Some(f);
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Connects to the leader, retrying until it accepts; then runs the connection.
async fn connect_to_leader<P>(leader: ServerId, addr: SocketAddr, shared: Arc<Shared<P>>)
where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    let hello = Hello {
        purpose: Purpose::Quorum,
        sid: shared.cfg.me,
        ensemble: shared.cfg.ensemble,
    };
    let delay = shared.rejoin_delay(leader);
    if !delay.is_zero() {
        debug!("the last connections to this leader were short: waiting {delay:?}");
        tokio::time::sleep(delay).await;
    }
    let mut backoff = Duration::from_millis(20);
    loop {
        match handshake(addr, leader, hello, shared.cfg.tls.as_deref()).await {
            Ok((stream, w)) if w.status == HandshakeStatus::Accepted => {
                run_quorum(stream, leader, shared, false).await;
                return;
            }
            Ok((_, w))
                if w.status == HandshakeStatus::VersionMismatch
                    || w.status == HandshakeStatus::WrongEnsemble =>
            {
                warn!("leader refused us for good: {:?}", w.status);
            }
            Ok((_, w)) => debug!("leader not ready: {:?}", w.status),
            Err(e) => debug!("connect to leader: {e}"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
#[path = "net_tests.rs"]
mod tests;
