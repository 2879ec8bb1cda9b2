//! The ZooKeeper client service, running on the replica thread as the replica's
//! [`Application`]: ZooKeeper's request processor chain, one file and one type per stage,
//! wired here in the order a request passes them.
//!
//! A client talks to one server (the *origin*). Reads are served there; writes (and session
//! creation, and `sync` barriers) go to the leader — directly if the origin leads, else
//! forwarded as [`frames::ServiceFrame`]s — which prepares them into transactions against its
//! speculative view (`zab_zk::Preparer`) and proposes them through Zab. Every server applies
//! every committed transaction in zxid order; the origin then answers the request. Per
//! session, requests are answered in the order they were sent: a read waits behind the
//! session's writes in flight (ZooKeeper's FIFO client order), and watch notifications go out
//! before the reply of the change that triggered them. A server that is not in BROADCAST
//! serves no client: it closes their connections, as ZooKeeper does.
//!
//! | stage | file | type | ZooKeeper |
//! |---|---|---|---|
//! | 1 connection, handshake | `connections.rs` | `Connections` | `ServerCnxn`, `processConnectRequest` |
//! | 2 per-session queue | `queue.rs` | `SessionQueue` | `CommitProcessor` (per-session order) |
//! | 3 prep on the leader | `prep.rs` | `LeaderPrep` | `PrepRequestProcessor` |
//! | 4 local reads, watches | `reads.rs` | `LocalReads` | `FinalRequestProcessor` (reads), `WatchManager` |
//! | 5 final apply, reply | `apply.rs` | `FinalApply` | `FinalRequestProcessor`, `ZKDatabase` |
//! | 6 expiry, containers | `expiry.rs` | `Expiry` | `SessionTrackerImpl`, `ContainerManager` |
//!
//! The four-letter words (`fourlw.rs`) and ZooKeeper's metric names on `/metrics`
//! (`zkmetrics.rs`) read a [`StatsView`], built on request.

pub mod admin;
mod apply;
pub mod backpressure;
pub mod client;
mod connections;
pub mod direct;
mod expiry;
pub mod fourlw;
pub mod frames;
mod prep;
mod queue;
mod reads;
pub mod sessions;
pub mod zkmetrics;

use crate::runtime::{AppCx, Application};
use apply::FinalApply;
use backpressure::Outbox;
use bytes::Bytes;
pub use connections::ConnStats;
use connections::{Connections, HandshakeLimits, Opened, Received};
use expiry::Expiry;
use frames::ServiceFrame;
use prep::LeaderPrep;
use queue::Ready;
use reads::{LocalReads, LocalRequest};
use std::net::SocketAddr;
use tracing::{debug, info, warn};
use zab_spec::{ErrorCode, ServerId, ServerState, SessionId, Txn, ZabState, Zxid};
use zab_zk::auth::{AuthConfig, AuthInfo};
use zab_zk::proto::{self, ConnectRequest, Request, Response, SyncResponse};
use zab_zk::txn::TxnBody;
use zab_zk::{DataTree, PrepConfig};

/// A client connection's id on this server.
pub type ConnId = u64;

/// What a client connection task tells the replica thread.
#[derive(Debug)]
pub enum ClientEvent {
    /// The handshake frame arrived.
    Open {
        /// The connection.
        conn: ConnId,
        /// The client's address.
        remote: SocketAddr,
        /// The handshake.
        request: ConnectRequest,
        /// Where the connection's output goes (metered: [`backpressure`]).
        out: Outbox,
        /// The subject of the client's TLS certificate, verified in the handshake (RFC 2253,
        /// as Java writes it): the connection is authenticated as `x509:<subject>`.
        x509: Option<String>,
    },
    /// The connection's queued replies fell back under the soft limit: the reads held back
    /// may be answered.
    Writable {
        /// The connection.
        conn: ConnId,
    },
    /// A request frame (header and body) arrived.
    Request {
        /// The connection.
        conn: ConnId,
        /// The frame's payload.
        payload: Bytes,
        /// When the connection task decoded it (the latency breakdown's origin; `None` in
        /// the simulation).
        received: Option<std::time::Instant>,
    },
    /// The connection closed.
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// A four-letter word (other than `ruok`) to answer.
    FourLetter {
        /// The word.
        word: &'static str,
        /// The asking connection's address (ZooKeeper lists it among stat's and cons's
        /// connections).
        remote: SocketAddr,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<String>,
    },
    /// An AdminServer command (`/commands/<name>`), answered as JSON.
    Admin {
        /// The command name or alias, as requested.
        command: String,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<serde_json::Value>,
    },
    /// ZooKeeper's metric names for `/metrics` (Prometheus text).
    Metrics {
        /// Where the text goes.
        reply: tokio::sync::oneshot::Sender<String>,
    },
}

/// What the replica thread sends a client connection task.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientOut {
    /// Write this frame.
    Frame(Bytes),
    /// Flush what was written and close.
    Close,
}

/// The service's configuration.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// The server configuration (for limits and the `conf` word).
    pub server: crate::config::ServerConfig,
    /// `superDigest` (`super:<base64 sha1>`), enabling the super user.
    pub super_digest: Option<String>,
    /// This server's secret that new sessions' passwords are keyed with (`zabd`: random per
    /// process); the password travels in the `createSession`, so other servers need not
    /// know the secret.
    pub session_secret: Vec<u8>,
    /// How often the leader looks for empty containers and expired TTL nodes, ms.
    pub container_check_ms: i64,
}

/// Server-wide statistics (`srvr`, `mntr`).
#[derive(Debug, Default, Clone)]
pub struct ServiceStats {
    /// Requests received.
    pub packets_received: u64,
    /// Frames sent.
    pub packets_sent: u64,
    /// Latency, ms: min, max, total, count.
    pub latency: (i64, i64, i64, u64),
    /// Size of the last, smallest and largest proposal, bytes.
    pub proposal_sizes: (i64, i64, i64),
    /// Failed authentications.
    pub auth_failed: u64,
}

/// One client connection as the four-letter words show it.
#[derive(Debug, Clone)]
pub struct ConnSummary {
    /// The client's address.
    pub remote: SocketAddr,
    /// Requests waiting in its session's queue.
    pub queued: usize,
    /// Its session, once established.
    pub session: Option<SessionId>,
    /// The negotiated session timeout, ms.
    pub timeout: i32,
    /// Its counters.
    pub stats: ConnStats,
}

/// What the service reports to the four-letter words: a copy, taken on the replica thread.
#[derive(Debug, Clone)]
pub struct StatsView {
    /// Server-wide counters.
    pub stats: ServiceStats,
    /// Every client connection, in id order.
    pub conns: Vec<ConnSummary>,
    /// Nodes in the tree, ZooKeeper's way (its `DataTree` holds the root under both `/` and
    /// `""`, so an empty tree counts 5; checked by tests/four_letter_words.rs).
    pub znode_count: usize,
    /// Watches registered.
    pub watch_count: usize,
    /// Sessions with a watch.
    pub watching_sessions: usize,
    /// Paths watched.
    pub watched_paths: usize,
    /// Ephemeral nodes.
    pub ephemerals: usize,
    /// ZooKeeper's approximate data size, bytes.
    pub approximate_data_size: u64,
    /// Open sessions (global: this server has no local sessions).
    pub global_sessions: usize,
    /// When the service started, ms since the Unix epoch.
    pub started_ms: i64,
}

impl StatsView {
    /// Requests waiting in every session's queue.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.conns.iter().map(|c| c.queued).sum()
    }
}

/// The ZooKeeper service on one server: the stages of the chain and the server's role.
pub struct ZkService {
    cfg: ServiceConfig,
    /// Stage 1: connections and the handshake.
    conns: Connections,
    /// Stage 3: prep on the leader.
    prep: LeaderPrep,
    /// Stage 4: local reads and watches.
    reads: LocalReads,
    /// Stage 5: the tree, final apply and reply.
    db: FinalApply,
    /// Stage 6: session expiry and containers.
    expiry: Expiry,
    /// In BROADCAST: clients are served.
    serving: bool,
    /// The established leader.
    leading: bool,
    leader: Option<ServerId>,
    started_ms: i64,
    /// A SNAP checked and rebuilt, kept for its restore ([`Application::check_snapshot`]).
    checked: Option<(crate::storage::SnapData, DataTree)>,
}

/// Rebuilds a tree from a serialized snapshot, read in pieces and decoded straight into the
/// tree ([`DataTree::read_snapshot`]): the serialized bytes are never held whole beside it.
///
/// # Errors
/// The snapshot cannot be read, or is not a valid one.
pub fn tree_from_snapshot(data: &crate::storage::SnapData) -> Result<DataTree, String> {
    let reader = data
        .reader()
        .map_err(|e| format!("cannot read the snapshot: {e}"))?;
    DataTree::read_snapshot(reader, data.len()).map_err(|e| e.to_string())
}

impl ZkService {
    /// A service over the recovered tree (the snapshot's state, at `applied`).
    #[must_use]
    pub fn new(cfg: ServiceConfig, tree: DataTree, applied: Zxid, now_ms: i64) -> ZkService {
        let server_byte = u8::try_from(cfg.server.myid.0).unwrap_or(u8::MAX);
        ZkService {
            conns: Connections::new(
                server_byte,
                cfg.session_secret.clone(),
                now_ms,
                cfg.server.bounds.client_output_hard,
            ),
            prep: LeaderPrep::new(PrepConfig {
                ttl_enabled: cfg.server.extended_types,
            }),
            reads: LocalReads::new(AuthConfig {
                super_digest: cfg.super_digest.clone(),
                x509_super_user: cfg.server.x509_super_user.clone(),
            }),
            db: FinalApply::new(tree, applied, &cfg.server, now_ms),
            expiry: Expiry::new(cfg.container_check_ms, cfg.server.tick_ms as i64, now_ms),
            serving: false,
            leading: false,
            leader: None,
            started_ms: now_ms,
            checked: None,
            cfg,
        }
    }

    /// The tree (for tests and tools).
    #[must_use]
    pub fn tree(&self) -> &DataTree {
        &self.db.tree
    }

    /// What the four-letter words report.
    #[must_use]
    pub fn stats_view(&self) -> StatsView {
        let t = &self.conns.traffic;
        let tree = &self.db.tree;
        let watches = &self.reads.watches;
        StatsView {
            stats: ServiceStats {
                packets_received: t.packets_received,
                packets_sent: t.packets_sent,
                latency: t.latency,
                proposal_sizes: self.prep.proposal_sizes,
                auth_failed: t.auth_failed,
            },
            conns: self
                .conns
                .iter()
                .map(|(_, c)| ConnSummary {
                    remote: c.remote,
                    queued: c.queue.len(),
                    session: c.session,
                    timeout: c.timeout,
                    stats: c.stats.clone(),
                })
                .collect(),
            znode_count: tree.node_count() + 1,
            watch_count: watches.watch_count(),
            watching_sessions: watches.sessions().len(),
            watched_paths: watches.path_count(),
            ephemerals: tree.ephemeral_count(),
            approximate_data_size: tree.approximate_data_size(),
            global_sessions: tree.sessions().len(),
            started_ms: self.started_ms,
        }
    }

    /// A write, session creation or sync goes to the leader (this server, or over the wire).
    fn route(&mut self, frame: ServiceFrame, cx: &mut AppCx<'_, zab_zk::Txn>) {
        match self.leader {
            Some(l) if !self.leading => {
                let (kind, data) = frame.encode();
                cx.send_frame(l, kind, data);
            }
            Some(_) => self.on_service_frame(cx.me(), frame, cx),
            None => debug!("no leader: dropping {frame:?}"),
        }
    }

    // ----- stage 1: the handshake --------------------------------------------------------

    fn open(
        &mut self,
        (conn, remote, x509): (ConnId, SocketAddr, Option<String>),
        req: &ConnectRequest,
        out: Outbox,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let ip = remote.ip().to_string();
        let auth = match &x509 {
            // X509AuthenticationProvider.handleAuthentication, run when the handshake is done.
            Some(dn) => {
                info!(conn, %remote, subject = %dn, "authenticated by TLS client certificate");
                AuthInfo::with_certificate(&ip, dn, self.reads.auth_config())
            }
            None => AuthInfo::new(&ip),
        };
        let s = &self.cfg.server;
        let limits = HandshakeLimits {
            min_timeout_ms: s.min_session_timeout_ms as i32,
            max_timeout_ms: s.max_session_timeout_ms as i32,
            serving: self.serving,
            applied: self.db.applied,
        };
        let opened = self.conns.open(
            (conn, remote, auth),
            req,
            out,
            &limits,
            &self.db.tree,
            &mut self.reads.watches,
            cx.now_ms,
        );
        match opened {
            Opened::Refused => {}
            Opened::Create {
                session,
                timeout,
                passwd,
            } => {
                let frame = ServiceFrame::CreateSession {
                    session,
                    timeout,
                    passwd,
                };
                self.route(frame, cx);
            }
            Opened::Resume { session, timeout } => {
                self.expiry.touch(session, self.leading, cx.me(), cx.now_ms);
                self.accept(conn, session, timeout, cx);
            }
        }
    }

    /// Sends the handshake answer, then handles the frames the client pipelined after it.
    fn accept(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout: i32,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        for payload in self.conns.accept(conn, session, timeout, &self.db.tree) {
            self.request(conn, payload, cx);
        }
    }

    // ----- stage 2: into the session's queue ---------------------------------------------

    fn request(&mut self, conn: ConnId, payload: Bytes, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let max = self.cfg.server.jute_max_buffer;
        let Received::Request {
            session,
            header,
            body,
        } = self
            .conns
            .receive(conn, &payload, max, &mut self.reads.watches)
        else {
            return;
        };
        self.expiry.touch(session, self.leading, cx.me(), cx.now_ms);
        let now = cx.now_ms;
        let is_write = match &body {
            Ok(r) => r.is_write() && !matches!(r, Request::Reconfig(_)),
            Err(_) => proto::op::is_write(header.op),
        };
        let Some(c) = self.conns.get_mut(conn) else {
            return;
        };
        match body {
            _ if is_write => {
                c.queue.push_write(header.xid, now);
                let auth = c.auth.ids().to_vec();
                self.route(
                    ServiceFrame::Forward {
                        session,
                        auth,
                        payload,
                    },
                    cx,
                );
            }
            Ok(Request::Sync(r)) => {
                c.queue.push_sync(header.xid, r.path, now);
                let xid = header.xid;
                self.route(ServiceFrame::Sync { session, xid }, cx);
            }
            request => c.queue.push_local(header.xid, request, now),
        }
        self.drain(conn, cx);
    }

    /// Answers, in order, what heads the connection's queue and can be answered now. While
    /// the connection's queued replies exceed `clientOutputSoftLimitBytes`, nothing more is
    /// answered (the reads wait in the queue); [`ClientEvent::Writable`] resumes.
    fn drain(&mut self, conn: ConnId, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let soft = self.cfg.server.bounds.client_output_soft;
        loop {
            let applied = self.db.applied;
            let Some(ready) = self
                .conns
                .get_mut(conn)
                .filter(|c| c.out.queued() <= soft)
                .and_then(|c| c.queue.pop_ready(applied))
            else {
                return;
            };
            match ready {
                Ready::Local {
                    xid,
                    request,
                    start_ms,
                } => {
                    let r = LocalRequest {
                        conn,
                        xid,
                        request,
                        start_ms,
                        now_ms: cx.now_ms,
                    };
                    self.reads
                        .serve(&mut self.conns, &self.db.tree, self.db.applied, r);
                }
                Ready::Answered(a) => {
                    let times = (a.start_ms, cx.now_ms);
                    self.conns.reply(conn, a.xid, a.zxid, a.err, a.body, times);
                    self.conns.traffic.update_answered(times);
                }
                Ready::Sync {
                    xid,
                    path,
                    start_ms,
                } => {
                    let zxid = applied.to_u64() as i64;
                    let body = Some(Response::Sync(SyncResponse { path }));
                    let times = (start_ms, cx.now_ms);
                    self.conns
                        .reply(conn, xid, zxid, ErrorCode::Ok, body, times);
                }
            }
        }
    }

    // ----- frames between servers: stage 3 on the leader, sync barriers -------------------

    fn on_service_frame(
        &mut self,
        from: ServerId,
        frame: ServiceFrame,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let tracker = &mut self.expiry.tracker;
        match frame {
            ServiceFrame::Forward {
                session,
                auth,
                payload,
            } if self.leading => {
                let max = self.cfg.server.jute_max_buffer;
                let write = (session, auth.as_slice(), &payload);
                self.prep
                    .forward(from, write, &self.db.tree, tracker, max, cx);
            }
            ServiceFrame::CreateSession {
                session,
                timeout,
                passwd,
            } if self.leading => {
                self.prep
                    .create_session(from, (session, timeout, passwd), tracker, cx);
            }
            ServiceFrame::Touch { sessions } if self.leading => {
                for s in sessions {
                    tracker.touch(s, from, cx.now_ms);
                }
            }
            ServiceFrame::Sync { session, xid } if self.leading => {
                let done = ServiceFrame::SyncDone {
                    session,
                    xid,
                    zxid: cx.last_zxid(),
                };
                if from == cx.me() {
                    self.on_service_frame(from, done, cx);
                } else {
                    let (kind, data) = done.encode();
                    cx.send_frame(from, kind, data);
                }
            }
            ServiceFrame::SyncDone { session, xid, zxid } => {
                if let Some(conn) = self.conns.of_session(session) {
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.queue.set_sync_target(xid, zxid);
                    }
                    self.drain(conn, cx);
                }
            }
            other => debug!(%from, leading = self.leading, "ignoring {other:?}"),
        }
    }

    // ----- stage 5: delivery -------------------------------------------------------------

    fn deliver_txn(&mut self, txn: &Txn<zab_zk::Txn>, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let zxid = txn.zxid;
        let t = &txn.payload;
        let out = self.db.apply(txn);
        let session = t.header.session;
        if self.leading {
            self.prep.committed(zxid);
            self.expiry.committed(session, &t.body, cx.now_ms);
        }
        self.reads.trigger(&mut self.conns, &out);
        let watches = &mut self.reads.watches;
        let (cxid, now) = (t.header.cxid, cx.now_ms);
        match &t.body {
            TxnBody::CreateSession { timeout, .. } => {
                if let Some(conn) = self.conns.created(session) {
                    self.accept(conn, session, *timeout, cx);
                }
            }
            TxnBody::CloseSession { .. } => {
                if let Some(conn) = self.conns.of_session(session) {
                    let c = &mut self.conns;
                    FinalApply::answer_write(c, watches, conn, cxid, zxid, &out.result, now);
                    self.conns.close(conn, watches);
                }
            }
            _ => {
                if let Some(conn) = self.conns.of_session(session) {
                    let c = &mut self.conns;
                    FinalApply::answer_write(c, watches, conn, cxid, zxid, &out.result, now);
                    self.drain(conn, cx);
                }
            }
        }
        // Sync barriers of every connection may now be satisfied.
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.queue.sync_ready(zxid))
            .map(|(k, _)| *k)
            .collect();
        for conn in waiting {
            self.drain(conn, cx);
        }
    }
}

impl Application<zab_zk::Txn> for ZkService {
    type Client = ClientEvent;

    fn flush(&mut self) {
        self.conns.flush();
    }

    fn deliver(&mut self, txn: &Txn<zab_zk::Txn>, cx: &mut AppCx<'_, zab_zk::Txn>) {
        self.deliver_txn(txn, cx);
    }

    fn on_client(&mut self, event: ClientEvent, cx: &mut AppCx<'_, zab_zk::Txn>) {
        match event {
            ClientEvent::Open {
                conn,
                remote,
                request,
                out,
                x509,
            } => self.open((conn, remote, x509), &request, out, cx),
            ClientEvent::Request {
                conn,
                payload,
                received,
            } => {
                cx.received = received;
                self.request(conn, payload, cx);
                cx.received = None;
            }
            ClientEvent::Writable { conn } => self.drain(conn, cx),
            ClientEvent::Closed { conn } => self.conns.close(conn, &mut self.reads.watches),
            ClientEvent::FourLetter {
                word,
                remote,
                reply,
            } => {
                let text = fourlw::render(word, remote, &self.cfg.server, &self.stats_view(), cx);
                let _ = reply.send(text);
            }
            ClientEvent::Admin { command, reply } => {
                let view = self.stats_view();
                let a = admin::AdminCx {
                    cfg: &self.cfg.server,
                    view: &view,
                    tree: &self.db.tree,
                    watches: &self.reads.watches,
                    deadlines: self
                        .expiry
                        .tracker
                        .deadlines(self.cfg.server.tick_ms as i64),
                    cx,
                };
                let _ = reply.send(admin::answer(&command, &a));
            }
            ClientEvent::Metrics { reply } => {
                let t = &self.conns.traffic;
                let lat = zkmetrics::Latencies {
                    read: &t.read_latency,
                    update: &t.update_latency,
                };
                let text = zkmetrics::render(&self.stats_view(), &lat, &self.cfg.server, cx);
                let _ = reply.send(text);
            }
        }
    }

    fn on_frame(&mut self, from: ServerId, kind: u8, data: Bytes, cx: &mut AppCx<'_, zab_zk::Txn>) {
        match ServiceFrame::decode(kind, &data) {
            Some(frame) => self.on_service_frame(from, frame, cx),
            None => warn!(%from, kind, "dropping a malformed service frame"),
        }
    }

    fn on_role(&mut self, role: crate::core::RoleInfo, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let serving = role.zab_state == ZabState::Broadcast;
        let leading = serving && role.state == ServerState::Leading;
        if leading && !self.leading {
            self.prep.reset();
            self.expiry.start_leading(&self.db.tree, cx.now_ms);
        }
        if !leading {
            self.expiry.not_leading();
        }
        if !serving && self.serving {
            info!("not serving clients until a quorum is back");
            self.conns.close_all(&mut self.reads.watches);
        }
        self.serving = serving;
        self.leading = leading;
        self.leader = role.leader;
    }

    fn on_tick(&mut self, cx: &mut AppCx<'_, zab_zk::Txn>) {
        if self.leading {
            self.expiry.leader_tick(&self.db.tree, &mut self.prep, cx);
        } else if self.serving {
            self.expiry.follower_tick(self.leader, cx);
        }
    }

    fn applied_zxid(&self) -> Zxid {
        self.db.applied
    }

    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        self.db.snapshot_job()
    }

    fn restore(&mut self, zxid: Zxid, data: &crate::storage::SnapData) -> Result<(), String> {
        let tree = match self.checked.take() {
            Some((checked, tree)) if checked == *data => tree,
            _ => tree_from_snapshot(data)?,
        };
        self.db
            .restore(zxid, tree, &self.cfg.server, self.started_ms);
        Ok(())
    }

    fn check_snapshot(&mut self, data: &crate::storage::SnapData) -> Result<(), String> {
        // Decoded once: the tree is kept for the restore that follows if the core adopts
        // the SNAP, and dropped by `forget_checked` if not.
        self.checked = None;
        let tree = tree_from_snapshot(data)?;
        self.checked = Some((data.clone(), tree));
        Ok(())
    }

    fn forget_checked(&mut self) {
        self.checked = None;
    }
}
