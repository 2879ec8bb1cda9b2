//! The client port: accepts connections, answers four-letter words, splits the stream into
//! frames (refusing negative or oversized ones, like ZooKeeper: the connection is closed and
//! nothing else is affected), and relays frames to the replica thread and its answers back.
//!
//! A connection task owns the socket: it reads frames and sends them on, in order, as
//! [`ClientEvent`]s; a writer task writes what the replica thread sends ([`ClientOut`]). A client
//! that does not finish its handshake within the limit is disconnected; a client that stalls
//! after that is left alone until its session expires (the replica thread then closes it).

use super::{ClientEvent, ClientOut, ConnId, fourlw};
use crate::latency::{Breakdown, Stage};
use crate::net_out::{OnWritten, Outgoing};
use crate::runtime::Event;
use bytes::BytesMut;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
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
    /// Time allowed for the handshake frame.
    pub handshake_timeout: Duration,
    /// The latency breakdown: each read's and write's time from its frame decoded to its
    /// reply written (`None`: not measured).
    pub breakdown: Option<Arc<Breakdown>>,
}

type Sender = std::sync::mpsc::Sender<Event<zab_zk::Txn, ClientEvent>>;

/// Accepts client connections on `listener` until the process ends.
pub async fn serve(listener: TcpListener, events: Sender, cfg: ClientPortConfig) {
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
        let span = info_span!("client", conn, %remote);
        tokio::spawn(
            async move {
                handle(stream, remote, conn, events, &cfg).await;
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

async fn handle(
    mut stream: TcpStream,
    remote: SocketAddr,
    conn: ConnId,
    events: Sender,
    cfg: &ClientPortConfig,
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
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ClientOut>();
    let (mut reader, writer) = stream.into_split();
    let timed = cfg
        .breakdown
        .clone()
        .map(|b| (b, Arc::new(Mutex::new(InFlight::default()))));
    let written: Option<OnWritten<i32>> = timed.clone().map(|(b, in_flight)| {
        Box::new(move |xids: &[i32]| replies_written(&b, &in_flight, xids)) as OnWritten<i32>
    });
    let direct = DirectWriter(Arc::new(Outgoing::new(writer, written)));
    if events
        .send(Event::Client(ClientEvent::Open {
            conn,
            remote,
            request,
            out: out_tx,
            direct: Some(direct.clone()),
        }))
        .is_err()
    {
        return;
    }
    // The replica thread writes the socket itself; this task writes what the socket did not
    // take at once, frames that came through the channel, and closes.
    let writer_task = tokio::spawn(async move {
        let d = &direct.0;
        loop {
            tokio::select! {
                item = out_rx.recv() => match item {
                    Some(ClientOut::Frame(f)) => direct.queue(&f),
                    Some(ClientOut::Close) | None => {
                        // Dropping the last handle on the write half sends the FIN.
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
    });
    let reader_events = events.clone();
    let mut reader_task = tokio::spawn(async move {
        loop {
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(payload)) => {
                        let received = timed.as_ref().map(|(_, in_flight)| {
                            let now = Instant::now();
                            request_decoded(in_flight, &payload, now);
                            now
                        });
                        if reader_events
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
    });
    let mut writer_task = writer_task;
    tokio::select! {
        _ = &mut reader_task => { writer_task.abort(); }
        _ = &mut writer_task => { reader_task.abort(); }
    }
    let _ = events.send(Event::Client(ClientEvent::Closed { conn }));
}

/// A client connection's socket as the replica thread writes it ([`crate::net_out`]): frames
/// are queued during an event and written when it is handled ([`super::ZkService`]'s flush).
#[derive(Clone)]
pub struct DirectWriter(Arc<Outgoing<i32>>);

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectWriter")
    }
}

impl DirectWriter {
    /// Queues a frame (length prefix included), marked with its reply xid for the breakdown.
    pub(super) fn queue(&self, frame: &[u8]) {
        let xid = frame
            .get(4..8)
            .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]));
        self.0.queue(|buf| buf.extend_from_slice(frame), xid);
    }

    /// Writes what was queued (the rest, if the socket is full, by the connection's task).
    pub(super) fn flush(&self) {
        self.0.flush();
    }

    /// Whether both are the same connection's.
    pub(super) fn same(&self, other: &DirectWriter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

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
