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
//! Bounds (issue 12): a quorum connection's send queue counts the bytes of the frames queued
//! and not yet written (a learner's synchronization excepted: a SNAP or a DIFF read from disk is a
//! stream produced at most `STREAM_DEPTH` frames ahead; a DIFF/TRUNC with the in-memory
//! transactions it carries, through NEWLEADER); past `peerSendQueueLimitBytes` the peer is
//! dropped with a warning (the core hears `Disconnected`; a follower reconnects and is
//! resynchronized). An election connection queues at most [`crate::bounds::ELECTION_QUEUE`]
//! notifications; newer ones past that are dropped (only the latest matters, and the election
//! resends). A stream ([`NetCommand::Stream`]: a SNAP in chunks, a DIFF read back from the
//! log) is produced on its own thread into a channel of [`STREAM_DEPTH`] frames that the
//! connection's writer drains in its place in the queue: the producer waits while the peer
//! does not read, so at most that many chunks are queued for one learner; what is queued
//! behind the stream counts towards `peerSendQueueLimitBytes` as usual. On a follower, a SNAP
//! sequence is checked and reassembled (`crate::snap_stream`) before the replica thread sees
//! it; a bad one closes the connection to that leader with an error naming it.
//! Frames read from peers and not yet taken by the replica thread are counted
//! ([`InboxGauge`]); past `peerInboxLimit` no peer connection is read until it drains, so a
//! server that cannot keep up pushes back through TCP and its leader drops it, instead of
//! buffering.

use crate::latency::{Breakdown, Side, Stage};
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

/// What a quorum connection's writer task takes from its queue.
enum Out {
    /// An encoded frame, with the breakdown stage it reaches once written, and whether its
    /// bytes count against the send queue's bound (a learner's synchronization does not).
    Frame(bytes::Bytes, Option<(Zxid, Stage)>, bool),
    /// A stream's encoded frames, drained in this place; an error closes the connection.
    Stream(&'static str, mpsc::Receiver<Result<bytes::Bytes, String>>),
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

/// A quorum connection's send queue: encoded frames, and the bytes queued and not written.
#[derive(Debug, Clone)]
struct SendQueue {
    /// Encoded frames, each with the breakdown stage it reaches once written, and streams.
    tx: mpsc::UnboundedSender<Out>,
    queued: Arc<AtomicU64>,
    /// Whether this server leads on the connection (which frames are stamped).
    leader_side: bool,
    /// Between the first frame of a learner's synchronization (SNAP, DIFF, TRUNC) and its
    /// NEWLEADER: the core queues them in one step.
    syncing: Arc<AtomicBool>,
}

impl SendQueue {
    /// Queues `frame`; `false` if that would pass `limit` (the peer is then dropped). A
    /// learner's synchronization is not counted: it is one O(log) unit queued at once (the
    /// SNAP, or the DIFF or TRUNC with every transaction it carries, through NEWLEADER),
    /// bounded by the leader's in-memory log (`commitLogCount`, outstanding proposals), not by how
    /// fast the learner reads. Counted, a history longer than the limit would drop the
    /// learner at every attempt to synchronize it, and it would never rejoin.
    fn push<P: PayloadCodec>(&self, frame: &Frame<P>, limit: usize) -> bool {
        let mut buf = BytesMut::new();
        wire::encode_frame(frame, &mut buf);
        let len = buf.len() as u64;
        let counted = match frame {
            Frame::Zab(
                QuorumMessage::Snap { .. }
                | QuorumMessage::Diff { .. }
                | QuorumMessage::Trunc { .. },
            ) => {
                self.syncing.store(true, Ordering::SeqCst);
                false
            }
            Frame::Zab(QuorumMessage::NewLeader { .. }) => {
                self.syncing.store(false, Ordering::SeqCst);
                false
            }
            _ => !self.syncing.load(Ordering::SeqCst),
        };
        if counted {
            let now = self.queued.fetch_add(len, Ordering::SeqCst) + len;
            if now > limit as u64 {
                return false;
            }
        }
        let _ = self.tx.send(Out::Frame(
            buf.freeze(),
            stamp_written(frame, self.leader_side),
            counted,
        ));
        true
    }

    /// Queues a stream: `producer` runs on a thread of its own and its frames are written in
    /// this place, at most [`STREAM_DEPTH`] of them produced ahead of the socket.
    fn push_stream<P>(&self, to: ServerId, what: &'static str, producer: FrameProducer<P>)
    where
        P: PayloadCodec + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<Result<bytes::Bytes, String>>(STREAM_DEPTH);
        if self.tx.send(Out::Stream(what, rx)).is_err() {
            return;
        }
        let run = move || {
            let mut emit = |frame: Frame<P>| {
                let mut buf = BytesMut::new();
                wire::encode_frame(&frame, &mut buf);
                tx.blocking_send(Ok(buf.freeze())).is_ok()
            };
            if let Err(e) = producer(&mut emit) {
                let _ = tx.blocking_send(Err(e));
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name(format!("zab-sync-{}", to.0))
            .spawn(run)
        {
            // The receiver is dropped with the closure: the writer closes the connection.
            tracing::error!(peer = %to, "cannot start a thread for the {what}: {e}");
        }
    }
}

/// One quorum connection: generation, send queue, writer task, and when it last delivered a
/// frame (milliseconds since [`Shared::started`]).
type QuorumSlot = (u64, SendQueue, tokio::task::AbortHandle, Arc<AtomicU64>);

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

/// Starts the listeners and the election mesh; returns the command sender. Every event goes
/// to `events`.
pub async fn start<P>(
    cfg: NetConfig,
    state: Arc<NetState>,
    events: NetSink<P>,
) -> std::io::Result<mpsc::UnboundedSender<NetCommand<P>>>
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
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<NetCommand<P>>();
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
    let connecting: Arc<std::sync::Mutex<BTreeMap<ServerId, tokio::task::AbortHandle>>> =
        Arc::default();
    tokio::spawn(async move {
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
                    let limit = shared.cfg.send_queue_limit;
                    let Some((generation, queue)) =
                        shared.slots().get(&to).map(|(g, q, _, _)| (*g, q.clone()))
                    else {
                        continue;
                    };
                    // Encoded outside the lock (a SNAP may be large).
                    if queue.push(&frame, limit) {
                        continue;
                    }
                    let queued = queue.queued.load(Ordering::SeqCst);
                    {
                        let mut slots = shared.slots();
                        if slots.get(&to).is_none_or(|(g, _, _, _)| *g != generation) {
                            continue;
                        }
                        if let Some((_, _, task, _)) = slots.remove(&to) {
                            task.abort();
                        }
                    }
                    warn!(
                        peer = %to,
                        queued,
                        limit,
                        "dropping a peer that does not keep up (peerSendQueueLimitBytes); it \
                         reconnects and is resynchronized"
                    );
                    let _ = (shared.events)(NetEvent::Disconnected { peer: to });
                }
                NetCommand::Stream { to, what, producer } => {
                    match shared.slots().get(&to).map(|(_, q, _, _)| q.clone()) {
                        Some(queue) => queue.push_stream(to, what, producer.0),
                        None => debug!(peer = %to, "no quorum connection: not starting the {what}"),
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
                    if let Some(old) = connecting
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(leader, task.abort_handle())
                    {
                        old.abort();
                    }
                }
                NetCommand::Disconnect { peer } => {
                    if let Some(t) = connecting
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(&peer)
                    {
                        t.abort();
                    }
                    if let Some((_, _, task, _)) = shared.slots().remove(&peer) {
                        task.abort();
                    }
                }
            }
        }
    });
    Ok(cmd_tx)
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
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let queued = Arc::new(AtomicU64::new(0));
    let written = Arc::clone(&queued);
    let breakdown = shared.cfg.breakdown.clone();
    let side = if leader_side {
        Side::Leader
    } else {
        Side::Follower
    };
    let writer_task = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let (frame, stamp, counted) = match out {
                Out::Frame(frame, stamp, counted) => (frame, stamp, counted),
                Out::Stream(what, mut frames) => {
                    // Drained here, in its place; the producer waits while the socket does.
                    let mut sent = 0u64;
                    while let Some(item) = frames.recv().await {
                        match item {
                            Ok(frame) => {
                                if writer.write_all(&frame).await.is_err() {
                                    return;
                                }
                                sent += frame.len() as u64;
                            }
                            Err(e) => {
                                tracing::error!(
                                    "cannot send the {what} ({e}): closing the connection; \
                                     the peer resynchronizes"
                                );
                                let _ = writer.shutdown().await;
                                return;
                            }
                        }
                    }
                    if writer.flush().await.is_err() {
                        return;
                    }
                    debug!(bytes = sent, "{what} sent");
                    continue;
                }
            };
            // (A TLS stream may hold the last record until flushed; a socket's flush is free.)
            if writer.write_all(&frame).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            if counted {
                let n = frame.len() as u64;
                let _ = written.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                    Some(q.saturating_sub(n))
                });
            }
            // A PROPOSAL (leader) or ACK (follower) reaches its breakdown stage once written.
            if let (Some(b), Some((zxid, stage))) = (&breakdown, stamp) {
                b.mark(side, zxid, stage, std::time::Instant::now());
            }
        }
    });
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
            SendQueue {
                tx,
                queued,
                leader_side,
                syncing: Arc::new(AtomicBool::new(false)),
            },
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
    let limits = if leader_side {
        wire::FrameLimits::from_learner(shared.cfg.jute_max_buffer)
    } else {
        wire::FrameLimits::from_leader(shared.cfg.jute_max_buffer)
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // A learner never sends a SNAP (its frame limits refuse the chunks): only a follower
    // reassembles one.
    let mut snap = crate::snap_stream::SnapAssembler::new(MAX_SNAPSHOT)
        .spooling_to(shared.state.snap_spool.get().cloned());
    'outer: loop {
        loop {
            match wire::take_frame(&mut buf, &limits) {
                Ok(Some(body)) => match wire::decode_frame::<P>(&body) {
                    Ok(frame) => {
                        seen.store(shared.now_ms(), Ordering::Relaxed);
                        let st = &shared.state;
                        st.largest_quorum_frame
                            .fetch_max(body.len() as u64, Ordering::Relaxed);
                        if matches!(frame, Frame::SnapChunk { .. }) {
                            st.snap_chunks.fetch_add(1, Ordering::Relaxed);
                        }
                        let frame = match snap.push(frame) {
                            Ok(Some(frame)) => frame,
                            Ok(None) => continue,
                            Err(e) => {
                                tracing::error!(
                                    leader = peer.0,
                                    "bad SNAP from the leader ({e}): dropping it and going \
                                     back to LOOKING"
                                );
                                break 'outer;
                            }
                        };
                        shared.state.inbox.admit(shared.cfg.inbox_limit).await;
                        if let Some(b) = &shared.cfg.breakdown {
                            stamp_received(b, &frame, leader_side);
                        }
                        let current = shared
                            .slots()
                            .get(&peer)
                            .is_some_and(|(g, _, _, _)| *g == generation);
                        if !current {
                            // Not handed over: it leaves the inbox count again.
                            shared.state.inbox.taken();
                            break 'outer;
                        }
                        if !(shared.events)(NetEvent::Quorum { from: peer, frame }) {
                            break 'outer;
                        }
                    }
                    Err(e) => {
                        warn!("closing: undecodable frame: {e}");
                        break 'outer;
                    }
                },
                Ok(None) => break,
                Err(e) => {
                    warn!("closing: {e}");
                    break 'outer;
                }
            }
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    info!("quorum connection down");
    writer_task.abort();
    if !leader_side {
        // Before the core hears of it (and asks for the next connection).
        shared.record_join(peer, up.elapsed());
    }
    shared.quorum_closed(peer, generation);
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
mod tests {
    use super::*;
    use zab_spec::ZnodeTxn;

    fn free_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }

    /// A leader (server 1 of 3) whose network runs here; its events are counted.
    async fn leader() -> (NetConfig, Arc<std::sync::atomic::AtomicUsize>) {
        let ids = [ServerId(1), ServerId(2), ServerId(3)];
        let cfg = NetConfig {
            me: ServerId(1),
            election: ids.iter().map(|s| (*s, free_addr())).collect(),
            quorum: ids.iter().map(|s| (*s, free_addr())).collect(),
            ensemble: wire::ensemble_fingerprint(&ids),
            jute_max_buffer: 0xfffff,
            live_window: Duration::from_millis(400),
            tls: None,
            send_queue_limit: 1 << 20,
            inbox_limit: 64,
            breakdown: None,
        };
        let state = Arc::new(NetState::default());
        state.leading.store(true, Ordering::SeqCst);
        let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = Arc::clone(&connects);
        let sink: NetSink<ZnodeTxn> = Box::new(move |ev| {
            if matches!(ev, NetEvent::LearnerConnected { .. }) {
                seen.fetch_add(1, Ordering::SeqCst);
            }
            true
        });
        // The command sender must outlive the test's connections.
        let tx = start(cfg.clone(), state, sink).await.expect("start");
        std::mem::forget(tx);
        (cfg, connects)
    }

    fn hello_as(cfg: &NetConfig, sid: u64) -> Hello {
        Hello {
            purpose: Purpose::Quorum,
            sid: ServerId(sid),
            ensemble: cfg.ensemble,
        }
    }

    async fn heartbeat(stream: &mut PeerStream) {
        let mut buf = BytesMut::new();
        wire::encode_frame::<ZnodeTxn>(&Frame::Heartbeat, &mut buf);
        stream.write_all(&buf).await.expect("write");
    }

    /// A learner's synchronization longer than the limit is queued whole (not counted, and
    /// not subtracted once written); the frames after its NEWLEADER count again.
    #[test]
    fn a_synchronization_is_not_counted_against_the_send_queue() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let q = SendQueue {
            tx,
            queued: Arc::new(AtomicU64::new(0)),
            leader_side: true,
            syncing: Arc::new(AtomicBool::new(false)),
        };
        let limit = 1000;
        let app = |n: usize| Frame::<ZnodeTxn>::App(1, bytes::Bytes::from(vec![0u8; n]));
        let zab = |m| Frame::<ZnodeTxn>::Zab(m);
        assert!(q.push(&app(600), limit), "counted");
        assert!(q.push(
            &zab(QuorumMessage::Diff {
                last_zxid: Zxid::new(1, 0)
            }),
            limit
        ));
        for _ in 0..5 {
            assert!(q.push(&app(600), limit), "part of the synchronization");
        }
        assert!(q.push(
            &zab(QuorumMessage::NewLeader {
                zxid: Zxid::new(2, 0)
            }),
            limit
        ));
        assert!(
            q.queued.load(Ordering::SeqCst) < 700,
            "only the first frame counted"
        );
        assert!(
            !q.push(&app(600), limit),
            "past the limit once the sync is over"
        );
        let counted: Vec<bool> = std::iter::from_fn(|| rx.try_recv().ok())
            .filter_map(|out| match out {
                Out::Frame(_, _, c) => Some(c),
                Out::Stream(..) => None,
            })
            .collect();
        assert_eq!(
            counted,
            [true, false, false, false, false, false, false, false]
        );
    }

    /// The inbox admits up to its limit, then waits until the replica thread takes a frame;
    /// a frame taken that was never counted does not open a slot.
    #[tokio::test]
    async fn the_inbox_waits_at_its_limit() {
        let gauge = Arc::new(InboxGauge::default());
        gauge.taken();
        for _ in 0..2 {
            gauge.admit(2).await;
        }
        assert_eq!(gauge.queued(), 2);
        let waiting = tokio::time::timeout(Duration::from_millis(100), gauge.admit(2)).await;
        assert!(waiting.is_err(), "a third frame waits");
        let g = Arc::clone(&gauge);
        let third = tokio::spawn(async move { g.admit(2).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        gauge.taken();
        tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("admitted once one is taken")
            .expect("task");
        assert_eq!(gauge.queued(), 2);
    }

    /// The displacement attack: a second handshake with a connected learner's id, while that
    /// connection is live, is refused; once the first connection is silent past the window (a
    /// dead peer), a reconnect is accepted.
    #[tokio::test]
    async fn a_second_handshake_does_not_displace_a_live_learner() {
        let (cfg, connects) = leader().await;
        let addr = cfg.quorum[&ServerId(1)];
        let (mut first, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
            .await
            .expect("first");
        assert_eq!(w.status, HandshakeStatus::Accepted);
        for _ in 0..3 {
            heartbeat(&mut first).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (_, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
                .await
                .expect("second");
            assert_eq!(w.status, HandshakeStatus::Refused, "a live learner stays");
        }
        // The first connection still works: it is still the registered one.
        heartbeat(&mut first).await;
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        // Silent past the window: a reconnect (the learner restarted) replaces it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (_, w) = handshake(addr, ServerId(1), hello_as(&cfg, 2), None)
            .await
            .expect("reconnect");
        assert_eq!(w.status, HandshakeStatus::Accepted);
        // Another learner is unaffected throughout.
        let (_, w) = handshake(addr, ServerId(1), hello_as(&cfg, 3), None)
            .await
            .expect("other");
        assert_eq!(w.status, HandshakeStatus::Accepted);
    }

    /// The rogue-epoch loop: a leader that drops the follower right after the handshake (as a
    /// follower whose accepted epoch is ahead sees: LEADERINFO too old, LOOKING, the same
    /// leader elected again) is joined again after a growing wait, not in a tight loop; and
    /// still joined again (the wait is bounded).
    #[tokio::test]
    async fn a_leader_that_drops_us_at_once_is_rejoined_with_a_bounded_backoff() {
        let ids = [ServerId(1), ServerId(2), ServerId(3)];
        let leader = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let mut quorum: BTreeMap<ServerId, SocketAddr> =
            ids.iter().map(|s| (*s, free_addr())).collect();
        quorum.insert(ServerId(1), leader.local_addr().expect("addr"));
        let cfg = NetConfig {
            me: ServerId(2),
            election: ids.iter().map(|s| (*s, free_addr())).collect(),
            quorum,
            ensemble: wire::ensemble_fingerprint(&ids),
            jute_max_buffer: 0xfffff,
            live_window: Duration::from_millis(400),
            tls: None,
            send_queue_limit: 1 << 20,
            inbox_limit: 64,
            breakdown: None,
        };
        let accepted = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = leader.accept().await {
                let mut hello = [0u8; HELLO_LEN];
                if s.read_exact(&mut hello).await.is_ok() {
                    let w = wire::encode_welcome(&Welcome {
                        status: HandshakeStatus::Accepted,
                        sid: ServerId(1),
                    });
                    let _ = s.write_all(&w).await;
                    count.fetch_add(1, Ordering::SeqCst);
                }
                // Dropped at once.
            }
        });
        let (down_tx, mut down_rx) = mpsc::unbounded_channel();
        let sink: NetSink<ZnodeTxn> = Box::new(move |ev| {
            if matches!(ev, NetEvent::Disconnected { .. }) {
                let _ = down_tx.send(());
            }
            true
        });
        let tx = start(cfg, Arc::new(NetState::default()), sink)
            .await
            .expect("start");
        // The core's loop: every disconnection is followed by a new Connect at once.
        tx.send(NetCommand::Connect {
            leader: ServerId(1),
        })
        .expect("connect");
        let until = tokio::time::Instant::now() + Duration::from_secs(4);
        while let Ok(Some(())) = tokio::time::timeout_at(until, down_rx.recv()).await {
            tx.send(NetCommand::Connect {
                leader: ServerId(1),
            })
            .expect("connect");
        }
        // Waits of 0.1, 0.2, 0.4, 0.8, 1.6 s fit in 4 s: about six joins, not thousands.
        let n = accepted.load(Ordering::SeqCst);
        assert!((3..=10).contains(&n), "{n} joins in 4 s");
    }
}
