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

use crate::latency::{Breakdown, Side, Stage};
use crate::net_out::{OnWritten, Outgoing};
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
use tokio::sync::mpsc;
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
    /// The latency breakdown, stamped as PROPOSAL, ACK and COMMIT frames are read and
    /// written (`None`: not measured).
    pub breakdown: Option<Arc<Breakdown>>,
}

/// Shared between the network tasks and the core thread.
#[derive(Debug, Default)]
pub struct NetState {
    /// Whether this server leads (learners are accepted only then).
    pub leading: AtomicBool,
}

/// One quorum connection: generation, outgoing bytes, writer task, and when it last delivered
/// a frame (milliseconds since [`Shared::started`]).
type QuorumSlot = (
    u64,
    Arc<QuorumOut>,
    tokio::task::AbortHandle,
    Arc<AtomicU64>,
);

/// A breakdown stage a written frame reached.
type Stamp = (Zxid, Stage);

/// A quorum connection's outgoing bytes ([`crate::net_out`]), and which end this server is.
struct QuorumOut {
    out: Outgoing<Stamp>,
    leader_side: bool,
}

impl QuorumOut {
    /// Encodes `frame` into the buffer, marked when it is a PROPOSAL from the leader or an
    /// ACK from a follower (the breakdown's `proposal_sent`, `ack_sent`).
    fn queue<P: PayloadCodec>(&self, frame: &Frame<P>) {
        let mark = match frame {
            Frame::Zab(QuorumMessage::Proposal(txn)) if self.leader_side => {
                Some((txn.zxid, Stage::LeaderProposalSent))
            }
            Frame::Zab(QuorumMessage::Ack { zxid }) if !self.leader_side => {
                Some((*zxid, Stage::FollowerAckSent))
            }
            _ => None,
        };
        self.out.queue(|buf| wire::encode_frame(frame, buf), mark);
    }
}

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
}

impl<P> Shared<P> {
    fn slots(&self) -> std::sync::MutexGuard<'_, BTreeMap<ServerId, QuorumSlot>> {
        // A poisoned lock only means another network task panicked; the map is still sound.
        self.quorum
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
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

/// The replica thread's direct way onto the quorum connections ([`crate::net_out`]): frames
/// are encoded into each connection's buffer as the actions run, and [`QuorumSender::flush`]
/// (at the end of the batch, and before a synchronous write) writes every buffer filled since
/// the last flush straight to its socket. A frame to a server without a quorum connection is
/// dropped, as through [`NetCommand::Quorum`].
pub struct QuorumSender<P> {
    shared: Arc<Shared<P>>,
    dirty: std::cell::RefCell<Vec<Arc<QuorumOut>>>,
}

impl<P: PayloadCodec> QuorumSender<P> {
    /// Queues `frame` for `to`.
    pub fn send(&self, to: ServerId, frame: &Frame<P>) {
        let out = self
            .shared
            .slots()
            .get(&to)
            .map(|(_, out, _, _)| Arc::clone(out));
        let Some(out) = out else { return };
        out.queue(frame);
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

/// Starts the listeners and the election mesh; returns the command sender and the replica
/// thread's [`QuorumSender`]. Every event goes to `events`.
pub async fn start<P>(
    cfg: NetConfig,
    state: Arc<NetState>,
    events: NetSink<P>,
) -> std::io::Result<(mpsc::UnboundedSender<NetCommand<P>>, QuorumSender<P>)>
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
    });
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<NetCommand<P>>();
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
    let mut election_out: BTreeMap<ServerId, mpsc::UnboundedSender<Frame<P>>> = BTreeMap::new();
    for (&peer, &addr) in &cfg.election {
        if peer == cfg.me {
            continue;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        election_out.insert(peer, tx);
        let span = info_span!("election", peer = %peer, %addr);
        tokio::spawn(election_sender(addr, Arc::clone(&shared), rx).instrument(span));
    }
    let connecting: Arc<std::sync::Mutex<BTreeMap<ServerId, tokio::task::AbortHandle>>> =
        Arc::default();
    tokio::spawn(async move {
        while let Some(cmd) = cmd_rx.recv().await {
            match cmd {
                NetCommand::Election { to, frame } => {
                    if let Some(tx) = election_out.get(&to) {
                        let _ = tx.send(frame);
                    }
                }
                NetCommand::Quorum { to, frame } => {
                    let out = shared
                        .slots()
                        .get(&to)
                        .map(|(_, out, _, _)| Arc::clone(out));
                    if let Some(out) = out {
                        out.queue(&frame);
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
    Ok((cmd_tx, direct))
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
    mut stream: TcpStream,
    addr: SocketAddr,
    purpose: Purpose,
    shared: Arc<Shared<P>>,
) -> Result<(), String>
where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
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
            return Err(e.to_string());
        }
        Err(e) => return Err(e.to_string()),
    };
    let status = if !shared.cfg.election.contains_key(&hello.sid) || hello.sid == me {
        HandshakeStatus::UnknownServer
    } else if hello.ensemble != shared.cfg.ensemble {
        HandshakeStatus::WrongEnsemble
    } else if hello.purpose != purpose
        || (purpose == Purpose::Quorum && !shared.state.leading.load(Ordering::SeqCst))
    {
        HandshakeStatus::Refused
    } else if purpose == Purpose::Quorum
        && has_live_quorum(
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
    mut stream: TcpStream,
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
async fn run_quorum<P>(stream: TcpStream, peer: ServerId, shared: Arc<Shared<P>>, leader_side: bool)
where
    P: PayloadCodec + Send + Sync + std::fmt::Debug + 'static,
{
    let generation = shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let (mut reader, writer) = stream.into_split();
    let written: Option<OnWritten<Stamp>> = shared.cfg.breakdown.clone().map(|b| {
        let side = if leader_side {
            Side::Leader
        } else {
            Side::Follower
        };
        Box::new(move |marks: &[Stamp]| {
            let now = std::time::Instant::now();
            for &(zxid, stage) in marks {
                b.mark(side, zxid, stage, now);
            }
        }) as OnWritten<Stamp>
    });
    let out = Arc::new(QuorumOut {
        out: Outgoing::new(writer, written),
        leader_side,
    });
    let task_out = Arc::clone(&out);
    let writer_task = tokio::spawn(async move { task_out.out.run().await });
    let seen = Arc::new(AtomicU64::new(shared.now_ms()));
    {
        let mut slots = shared.slots();
        // Checked again under the lock: of two handshakes racing for one id, the second
        // does not displace the first while it is live.
        if leader_side && has_live_quorum(&slots, peer, shared.now_ms(), shared.cfg.live_window) {
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
    let limits = if leader_side {
        wire::FrameLimits::from_learner(shared.cfg.jute_max_buffer)
    } else {
        wire::FrameLimits::from_leader(shared.cfg.jute_max_buffer)
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    'outer: loop {
        loop {
            match wire::take_frame(&mut buf, &limits) {
                Ok(Some(body)) => match wire::decode_frame::<P>(&body) {
                    Ok(frame) => {
                        seen.store(shared.now_ms(), Ordering::Relaxed);
                        if let Some(b) = &shared.cfg.breakdown {
                            stamp_received(b, &frame, leader_side);
                        }
                        let current = shared
                            .slots()
                            .get(&peer)
                            .is_some_and(|(g, _, _, _)| *g == generation);
                        if !current || !(shared.events)(NetEvent::Quorum { from: peer, frame }) {
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
    shared.quorum_closed(peer, generation);
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

async fn handshake(addr: SocketAddr, hello: Hello) -> Result<(TcpStream, Welcome), String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    stream
        .write_all(&wire::encode_hello(&hello))
        .await
        .map_err(|e| e.to_string())?;
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
    addr: SocketAddr,
    shared: Arc<Shared<P>>,
    mut rx: mpsc::UnboundedReceiver<Frame<P>>,
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
        match handshake(addr, hello).await {
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
                    if stream.write_all(&buf).await.is_err() {
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
    let mut backoff = Duration::from_millis(20);
    loop {
        match handshake(addr, hello).await {
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
        let (tx, _) = start(cfg.clone(), state, sink).await.expect("start");
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

    async fn heartbeat(stream: &mut TcpStream) {
        let mut buf = BytesMut::new();
        wire::encode_frame::<ZnodeTxn>(&Frame::Heartbeat, &mut buf);
        stream.write_all(&buf).await.expect("write");
    }

    /// The displacement attack: a second handshake with a connected learner's id, while that
    /// connection is live, is refused; once the first connection is silent past the window (a
    /// dead peer), a reconnect is accepted.
    #[tokio::test]
    async fn a_second_handshake_does_not_displace_a_live_learner() {
        let (cfg, connects) = leader().await;
        let addr = cfg.quorum[&ServerId(1)];
        let (mut first, w) = handshake(addr, hello_as(&cfg, 2)).await.expect("first");
        assert_eq!(w.status, HandshakeStatus::Accepted);
        for _ in 0..3 {
            heartbeat(&mut first).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (_, w) = handshake(addr, hello_as(&cfg, 2)).await.expect("second");
            assert_eq!(w.status, HandshakeStatus::Refused, "a live learner stays");
        }
        // The first connection still works: it is still the registered one.
        heartbeat(&mut first).await;
        assert_eq!(connects.load(Ordering::SeqCst), 1);
        // Silent past the window: a reconnect (the learner restarted) replaces it.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (_, w) = handshake(addr, hello_as(&cfg, 2)).await.expect("reconnect");
        assert_eq!(w.status, HandshakeStatus::Accepted);
        // Another learner is unaffected throughout.
        let (_, w) = handshake(addr, hello_as(&cfg, 3)).await.expect("other");
        assert_eq!(w.status, HandshakeStatus::Accepted);
    }
}
