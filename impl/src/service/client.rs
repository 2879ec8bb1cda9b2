//! The client port: accepts connections (plaintext on `clientPort`, TLS on `secureClientPort`,
//! either on one port with `client.portUnification`), answers four-letter words, splits the
//! stream into frames (refusing negative or oversized ones, like ZooKeeper: the connection is
//! closed and nothing else is affected), and relays frames to the replica thread and its
//! answers back.
//!
//! A connection task owns the socket: it completes the TLS handshake if the port has one (a
//! failed or slow handshake is a log line and a closed connection, nothing more), reads frames
//! and sends them on, in order, as [`ClientEvent`]s. Replies: on a plaintext connection the
//! replica thread writes the socket itself once an event is handled
//! ([`super::direct::DirectWriter`], `crate::net_out`; issue 20), and the connection's writer
//! task writes only what the socket
//! did not take and closes; on a TLS connection the writer task writes what the replica
//! thread sends ([`ClientOut`]). Both are generic over the stream ([`ClientStream`]). A client that does not finish its handshake within the
//! limit is disconnected; a client that stalls after that is left alone until its session
//! expires (the replica thread then closes it).
//! The reader stops reading while the connection is throttled and the writer reports what it
//! wrote ([`super::backpressure`]), so a client that does not read its replies is pushed back
//! through TCP; one killed at the hard limit has both tasks stopped and its queue dropped.

use super::backpressure::{ConnGate, Outbox, Outstanding};
use super::direct::DirectWriter;
use super::{ClientEvent, ClientOut, ConnId, fourlw};
use crate::latency::{Breakdown, Stage};
use crate::net_out::OnWritten;
use crate::runtime::Event;
use bytes::BytesMut;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, info_span, warn};
use zab_zk::proto::{self, FrameDecoder};

/// Client-port settings.
#[derive(Clone, Debug)]
pub struct ClientPortConfig {
    /// `jute.maxbuffer`: the largest frame.
    pub max_frame: usize,
    /// Connections per client IP (0 = unlimited).
    pub max_per_ip: u32,
    /// Words answered.
    pub four_letter_words: Vec<String>,
    /// Time allowed for the TLS handshake, and again for the session handshake frame.
    pub handshake_timeout: Duration,
    /// `clientOutputSoftLimitBytes`: queued reply bytes past which a connection is not read.
    pub output_soft_limit: usize,
    /// `clientOutstandingLimit`: one connection's outstanding requests past which it is not read.
    pub max_outstanding: usize,
    /// The requests outstanding over every connection (`globalOutstandingLimit`).
    pub outstanding: Arc<Outstanding>,
    /// The latency breakdown: each read's and write's time from its frame decoded to its
    /// reply written (`None`: not measured).
    pub breakdown: Option<Arc<Breakdown>>,
}

/// How a listener's connections are secured.
#[derive(Clone)]
pub enum Security {
    /// Plaintext (`clientPort`).
    Plain,
    /// TLS on every connection (`secureClientPort`).
    Tls(TlsAcceptor),
    /// `client.portUnification`: TLS when the first byte opens a TLS handshake record, else
    /// plaintext (ZooKeeper's `UnifiedServerSocket` / Netty's `DualModeSslHandler`).
    Unified(TlsAcceptor),
}

impl Security {
    fn name(&self) -> &'static str {
        match self {
            Security::Plain => "plaintext",
            Security::Tls(_) => "TLS",
            Security::Unified(_) => "plaintext and TLS (port unification)",
        }
    }
}

/// The first byte of a TLS record carrying a handshake message (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A client connection's byte stream, split into halves for the reader and writer tasks.
pub trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The reading half.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The writing half.
    type Writer: AsyncWrite + Unpin + Send + 'static;
    /// Splits the stream.
    fn split(self) -> (Self::Reader, Self::Writer);
    /// The plaintext socket, which the replica thread writes directly; `Err`: not one.
    fn into_tcp(self) -> Result<TcpStream, Self>
    where
        Self: Sized,
    {
        Err(self)
    }
}

impl ClientStream for TcpStream {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
    fn into_tcp(self) -> Result<TcpStream, Self> {
        Ok(self)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    type Reader = tokio::io::ReadHalf<Self>;
    type Writer = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}
/// Replies are written in batches of up to this many bytes (larger frames on their own), so
/// the writer holds one batch, not a copy of the whole queue.
const WRITE_BATCH: usize = 64 * 1024;

type Sender = std::sync::mpsc::Sender<Event<zab_zk::Txn, ClientEvent>>;

/// Accepts client connections on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    events: Sender,
    cfg: ClientPortConfig,
    security: Security,
) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, security = security.name(), "client port listening");
    }
    let next_id = Arc::new(AtomicU64::new(1));
    let per_ip: Arc<Mutex<HashMap<IpAddr, u32>>> = Arc::default();
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("client accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let ip = remote.ip();
        {
            let mut map = per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = map.entry(ip).or_insert(0);
            if cfg.max_per_ip > 0 && *n >= cfg.max_per_ip {
                warn!(%remote, limit = cfg.max_per_ip, "too many connections from this address");
                continue;
            }
            *n += 1;
        }
        let conn = next_id.fetch_add(1, Ordering::Relaxed);
        let (events, cfg, per_ip) = (events.clone(), cfg.clone(), Arc::clone(&per_ip));
        let security = security.clone();
        let span = info_span!("client", conn, %remote);
        tokio::spawn(
            async move {
                secure(stream, remote, conn, events, &cfg, &security).await;
                let mut map = per_ip
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(n) = map.get_mut(&ip) {
                    *n = n.saturating_sub(1);
                }
            }
            .instrument(span),
        );
    }
}

/// Completes the TLS handshake the port asks for, then serves the connection.
async fn secure(
    stream: TcpStream,
    remote: SocketAddr,
    conn: ConnId,
    events: Sender,
    cfg: &ClientPortConfig,
    security: &Security,
) {
    let acceptor = match security {
        Security::Plain => return handle(stream, remote, conn, events, cfg, None).await,
        Security::Tls(acceptor) => acceptor,
        Security::Unified(acceptor) => {
            let mut first = [0u8; 1];
            match tokio::time::timeout(cfg.handshake_timeout, stream.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => acceptor,
                Ok(Ok(1)) => return handle(stream, remote, conn, events, cfg, None).await,
                _ => return,
            }
        }
    };
    let tls = match tokio::time::timeout(cfg.handshake_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!(%remote, "TLS handshake with a client failed: {e}");
            return;
        }
        Err(_) => {
            warn!(%remote, timeout = ?cfg.handshake_timeout, "TLS handshake with a client timed out");
            return;
        }
    };
    let x509 = match tls.get_ref().1.peer_certificates().and_then(<[_]>::first) {
        None => None,
        Some(cert) => match subject_rfc2253(cert) {
            Ok(dn) => Some(dn),
            Err(e) => {
                // X509AuthenticationProvider fails the authentication; ZooKeeper then closes.
                warn!(%remote, "closing a TLS client whose certificate subject is unreadable: {e}");
                return;
            }
        },
    };
    handle(tls, remote, conn, events, cfg, x509).await;
}

async fn handle<S: ClientStream>(
    mut stream: S,
    remote: SocketAddr,
    conn: ConnId,
    events: Sender,
    cfg: &ClientPortConfig,
    x509: Option<String>,
) {
    let mut buf = BytesMut::with_capacity(4096);
    // A four-letter word is only recognised as the first 4 bytes of a fresh connection.
    let first = tokio::time::timeout(cfg.handshake_timeout, async {
        while buf.len() < 4 {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
        true
    })
    .await;
    if first != Ok(true) {
        return;
    }
    if let Some(word) = proto::four_letter_word(&buf[..4]) {
        let text = four_letter(word, remote, &events, cfg).await;
        let _ = stream.write_all(text.as_bytes()).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
        return;
    }
    let decoder = FrameDecoder::new(cfg.max_frame);
    let handshake = tokio::time::timeout(cfg.handshake_timeout, async {
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(e) => {
                    debug!("bad handshake frame: {e}");
                    return None;
                }
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await;
    let Ok(Some(frame)) = handshake else { return };
    let request = match proto::decode_connect_request(&frame) {
        Ok(r) => r,
        Err(e) => {
            debug!("undecodable handshake: {e}");
            return;
        }
    };
    let (out_tx, out_rx) = mpsc::unbounded_channel::<ClientOut>();
    let gate = ConnGate::new(
        Arc::clone(&cfg.outstanding),
        cfg.output_soft_limit,
        cfg.max_outstanding,
    );
    let timed: Timed = cfg
        .breakdown
        .clone()
        .map(|b| (b, Arc::new(Mutex::new(InFlight::default()))));
    let mut out = Outbox::new(out_tx, Arc::clone(&gate));
    let (reader, mut writer_task): (ClientReader, _) = match stream.into_tcp() {
        Ok(tcp) => {
            let (reader, writer) = tcp.into_split();
            let direct = direct_writer(
                writer,
                (Arc::clone(&gate), timed.clone()),
                (conn, events.clone()),
            );
            out = out.with_direct(direct.clone());
            let task = tokio::spawn(write_direct(direct, out_rx));
            (Box::new(reader), task)
        }
        Err(stream) => {
            let (reader, writer) = stream.split();
            let task = tokio::spawn(write_replies(
                writer,
                out_rx,
                (Arc::clone(&gate), timed.clone()),
                (conn, events.clone()),
            ));
            (Box::new(reader), task)
        }
    };
    if events
        .send(Event::Client(ClientEvent::Open {
            conn,
            remote,
            request,
            out,
            x509,
        }))
        .is_err()
    {
        writer_task.abort();
        return;
    }
    let mut reader_task = tokio::spawn(read_requests(
        reader,
        buf,
        decoder,
        (Arc::clone(&gate), timed),
        (conn, events.clone()),
    ));
    tokio::select! {
        _ = &mut reader_task => { writer_task.abort(); }
        _ = &mut writer_task => { reader_task.abort(); }
        () = gate.killed() => { reader_task.abort(); writer_task.abort(); }
    }
    // Whatever this connection still had outstanding leaves the global count.
    gate.release();
    let _ = events.send(Event::Client(ClientEvent::Closed { conn }));
}

/// A client connection's reading half.
type ClientReader = Box<dyn AsyncRead + Unpin + Send>;

/// The callback of a plaintext connection's [`DirectWriter`]: what reaches the socket is
/// reported to the connection's gate (and wakes its reads once under the limit), and the
/// replies' xids to the latency breakdown.
fn direct_writer(
    half: tokio::net::tcp::OwnedWriteHalf,
    (gate, timed): (Arc<ConnGate>, Timed),
    (conn, events): (ConnId, Sender),
) -> DirectWriter {
    let written: OnWritten<i32> = Box::new(move |n: usize, xids: &[i32]| {
        if n > 0 && gate.written(n) {
            let _ = events.send(Event::Client(ClientEvent::Writable { conn }));
        }
        if let (Some((b, in_flight)), false) = (&timed, xids.is_empty()) {
            replies_written(b, in_flight, xids);
        }
    });
    DirectWriter::new(half, written)
}

/// The writer task of a plaintext connection: writes what the replica thread's flushes left
/// (the socket was full), and on `Close` everything still queued, then ends (the socket is
/// closed once the replica thread drops the connection too).
async fn write_direct(direct: DirectWriter, mut out_rx: mpsc::UnboundedReceiver<ClientOut>) {
    let d = &direct;
    loop {
        tokio::select! {
            item = out_rx.recv() => match item {
                // (Replies go to the socket's buffer; a frame sent here joins them in order.)
                Some(ClientOut::Frame(f)) => direct.queue(&f),
                Some(ClientOut::Close) | None => {
                    let _ = d.drain().await;
                    return;
                }
            },
            () = d.woken() => {}
        }
        if !d.drain().await {
            return;
        }
    }
}

/// A certificate's subject as Java's `X500Principal.getName()` writes it: the `x509` id
/// ZooKeeper's `X509AuthenticationProvider` gives the client.
pub fn subject_rfc2253(cert: &rustls_pki_types::CertificateDer<'_>) -> Result<String, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|e| e.to_string())?;
    zab_zk::x509::rfc2253_from_der(parsed.subject().as_raw()).map_err(|e| e.to_string())
}

/// Reads request frames and hands them to the replica thread, waiting while the connection
/// is throttled (nothing is read then, so TCP pushes back on the client).
async fn read_requests<R: AsyncRead + Unpin>(
    mut reader: R,
    mut buf: BytesMut,
    decoder: FrameDecoder,
    (gate, timed): (Arc<ConnGate>, Timed),
    (conn, events): (ConnId, Sender),
) {
    loop {
        loop {
            gate.wait_open().await;
            match decoder.decode(&mut buf) {
                Ok(Some(payload)) => {
                    gate.request_sent(payload.len());
                    let received = timed.as_ref().map(|(_, in_flight)| {
                        let now = Instant::now();
                        request_decoded(in_flight, &payload, now);
                        now
                    });
                    if events
                        .send(Event::Client(ClientEvent::Request {
                            conn,
                            payload,
                            received,
                        }))
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    info!("closing a client that sent a bad frame: {e}");
                    return;
                }
            }
        }
        match reader.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Writes what the replica thread queued, in batches, and reports each batch written to the
/// gate; when that brings the queue back under the soft limit, the replica thread is told
/// ([`ClientEvent::Writable`]) so it answers the reads it held back.
async fn write_replies<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut out_rx: mpsc::UnboundedReceiver<ClientOut>,
    (gate, timed): (Arc<ConnGate>, Timed),
    (conn, events): (ConnId, Sender),
) {
    let mut pending = BytesMut::new();
    // The xids of the replies in this round, for the latency breakdown.
    let mut xids: Vec<i32> = Vec::new();
    let written = |n: usize| {
        if gate.written(n) {
            let _ = events.send(Event::Client(ClientEvent::Writable { conn }));
        }
    };
    while let Some(first) = out_rx.recv().await {
        let mut close = false;
        let mut next = Some(first);
        xids.clear();
        while let Some(item) = next.take() {
            match item {
                ClientOut::Frame(f) => {
                    if timed.is_some()
                        && let Some(xid) = f.get(4..8)
                    {
                        xids.push(i32::from_be_bytes([xid[0], xid[1], xid[2], xid[3]]));
                    }
                    if !pending.is_empty() && pending.len() + f.len() > WRITE_BATCH {
                        if writer.write_all(&pending).await.is_err() {
                            return;
                        }
                        written(pending.len());
                        pending.clear();
                    }
                    if f.len() >= WRITE_BATCH {
                        if writer.write_all(&f).await.is_err() {
                            return;
                        }
                        written(f.len());
                    } else {
                        pending.extend_from_slice(&f);
                    }
                }
                ClientOut::Close => {
                    close = true;
                    break;
                }
            }
            next = out_rx.try_recv().ok();
        }
        // (A TLS stream may hold the last record until flushed; a socket's flush is free.)
        if !pending.is_empty() {
            if writer.write_all(&pending).await.is_err() || writer.flush().await.is_err() {
                return;
            }
            written(pending.len());
            pending.clear();
        } else if writer.flush().await.is_err() {
            return;
        }
        if let Some((b, in_flight)) = &timed {
            replies_written(b, in_flight, &xids);
        }
        if close {
            let _ = writer.shutdown().await;
            return;
        }
    }
}

/// The breakdown and this connection's measured requests (`None`: not measured).
type Timed = Option<(Arc<Breakdown>, Arc<Mutex<InFlight>>)>;

/// Requests of one connection whose replies are awaited, for the latency breakdown: xid, when
/// decoded, whether a write. Bounded: past [`TIMED_PER_CONN`] further requests go unmeasured.
#[derive(Default)]
struct InFlight(VecDeque<(i32, Instant, bool)>);

/// Requests measured at once per connection.
const TIMED_PER_CONN: usize = 1024;

/// Notes a decoded request (header: xid, then the op code) if it is a read or write measured.
fn request_decoded(in_flight: &Mutex<InFlight>, payload: &[u8], now: Instant) {
    let (Some(xid), Some(op)) = (payload.get(0..4), payload.get(4..8)) else {
        return;
    };
    let xid = i32::from_be_bytes([xid[0], xid[1], xid[2], xid[3]]);
    let op = i32::from_be_bytes([op[0], op[1], op[2], op[3]]);
    let write = match op {
        // create, delete, setData, setACL, multi, create2, createContainer,
        // deleteContainer, createTTL
        1 | 2 | 5 | 7 | 14 | 15 | 19 | 20 | 21 => true,
        // exists, getData, getChildren, getChildren2
        3 | 4 | 8 | 12 => false,
        _ => return,
    };
    let mut q = in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if q.0.len() < TIMED_PER_CONN {
        q.0.push_back((xid, now, write));
    }
}

/// Records the requests whose replies (`xids`, in order) were just written. A session's
/// replies come in request order; xids a client increases, so an entry below a reply's xid
/// lost its reply (dropped) and one above it waits for a later reply.
fn replies_written(b: &Breakdown, in_flight: &Mutex<InFlight>, xids: &[i32]) {
    let now = Instant::now();
    let mut q = in_flight
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for &xid in xids.iter().filter(|x| **x >= 0) {
        while let Some(&(x, t, write)) = q.0.front() {
            if x > xid {
                break;
            }
            q.0.pop_front();
            if x == xid {
                let stage = if write {
                    Stage::OriginWriteReplied
                } else {
                    Stage::OriginReadReplied
                };
                b.record_since(stage, t, now);
                break;
            }
        }
    }
}

async fn four_letter(
    word: &'static str,
    remote: SocketAddr,
    events: &Sender,
    cfg: &ClientPortConfig,
) -> String {
    if !cfg.four_letter_words.iter().any(|w| w == word) {
        return fourlw::not_whitelisted(word);
    }
    if word == "ruok" {
        return "imok".to_string();
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    if events
        .send(Event::Client(ClientEvent::FourLetter {
            word,
            remote,
            reply: tx,
        }))
        .is_err()
    {
        return fourlw::NOT_SERVING.to_string();
    }
    match tokio::time::timeout(Duration::from_secs(5), rx).await {
        Ok(Ok(text)) => text,
        _ => fourlw::NOT_SERVING.to_string(),
    }
}
