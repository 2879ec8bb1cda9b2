//! The ZooKeeper client service, running on the replica thread as the replica's
//! [`Application`]: sessions, the request pipeline, watches, and what the four-letter words
//! report.
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

pub mod client;
pub mod fourlw;
pub mod frames;
pub mod sessions;

use crate::runtime::{AppCx, Application};
use bytes::Bytes;
use frames::ServiceFrame;
use sessions::SessionTracker;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};
use zab_spec::{ErrorCode, ServerId, ServerState, SessionId, Txn, ZabState, Zxid};
use zab_zk::auth::{AuthConfig, AuthInfo};
use zab_zk::proto::{
    self, ConnectRequest, ConnectResponse, ErrorResponse, ReplyHeader, Request, Response,
    SyncResponse, WhoAmIResponse, xid,
};
use zab_zk::tree::TxnResult;
use zab_zk::txn::TxnBody;
use zab_zk::{DataTree, PrepConfig, PrepContext, Preparer, WatchManager, reply};

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
        /// Where the connection's output goes.
        out: UnboundedSender<ClientOut>,
    },
    /// A request frame (header and body) arrived.
    Request {
        /// The connection.
        conn: ConnId,
        /// The frame's payload.
        payload: Bytes,
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
    /// Secret that session passwords are keyed with (identical on every server).
    pub session_secret: Vec<u8>,
    /// How often the leader looks for empty containers and expired TTL nodes, ms.
    pub container_check_ms: i64,
}

#[derive(Debug)]
enum Waiting {
    /// A write in flight (forwarded or proposed).
    Write { xid: i32, start_ms: i64 },
    /// A sync barrier: answered once `target` (from the leader) is delivered here.
    Sync {
        xid: i32,
        path: String,
        target: Option<Zxid>,
        start_ms: i64,
    },
    /// A read or local request waiting behind earlier writes.
    Local {
        xid: i32,
        op: i32,
        request: Result<Request, ErrorCode>,
        start_ms: i64,
    },
}

/// Per-connection statistics (`cons`, `stat`).
#[derive(Debug, Default, Clone)]
pub struct ConnStats {
    /// Requests received.
    pub received: u64,
    /// Frames sent.
    pub sent: u64,
    /// Last operation's name.
    pub last_op: &'static str,
    /// Last request xid.
    pub last_cxid: i32,
    /// Last zxid sent.
    pub last_zxid: i64,
    /// Latency, ms: min, max, total, count.
    pub lat: (i64, i64, i64, u64),
    /// When established, ms since the Unix epoch.
    pub established_ms: i64,
}

#[derive(Debug)]
struct Conn {
    remote: SocketAddr,
    out: UnboundedSender<ClientOut>,
    session: Option<SessionId>,
    timeout: i32,
    read_only_byte: bool,
    auth: AuthInfo,
    /// Frames received before the session was established (clients pipeline them).
    early: Vec<Bytes>,
    queue: VecDeque<Waiting>,
    stats: ConnStats,
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

/// The ZooKeeper service state on one server.
pub struct ZkService {
    cfg: ServiceConfig,
    auth_config: AuthConfig,
    tree: DataTree,
    applied: Zxid,
    watches: WatchManager,
    prep: Preparer,
    tracker: SessionTracker,
    serving: bool,
    leading: bool,
    leader: Option<ServerId>,
    conns: BTreeMap<ConnId, Conn>,
    by_session: HashMap<SessionId, ConnId>,
    creating: HashMap<SessionId, ConnId>,
    next_session: i64,
    touched: BTreeSet<SessionId>,
    containers_pending: BTreeSet<String>,
    last_container_check: i64,
    stats: ServiceStats,
    started_ms: i64,
}

fn op_name(op: i32) -> &'static str {
    use proto::op;
    match op {
        op::CREATE | op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => "CREA",
        op::DELETE => "DELE",
        op::EXISTS => "EXIS",
        op::GET_DATA => "GETD",
        op::SET_DATA => "SETD",
        op::GET_ACL => "GETA",
        op::SET_ACL => "SETA",
        op::GET_CHILDREN | op::GET_CHILDREN2 => "GETC",
        op::SYNC => "SYNC",
        op::PING => "PING",
        op::MULTI | op::MULTI_READ => "MULT",
        op::CLOSE_SESSION => "CLOS",
        op::AUTH => "AUTH",
        op::SET_WATCHES | op::SET_WATCHES2 => "SETW",
        _ => "MISC",
    }
}

impl ZkService {
    /// A service over the recovered tree (the snapshot's state, at `applied`).
    #[must_use]
    pub fn new(cfg: ServiceConfig, mut tree: DataTree, applied: Zxid, now_ms: i64) -> ZkService {
        let myid = cfg.server.myid;
        set_config_node(&mut tree, &cfg.server, now_ms);
        let prep = Preparer::new(PrepConfig {
            ttl_enabled: cfg.server.extended_types,
        });
        let auth_config = AuthConfig {
            super_digest: cfg.super_digest.clone(),
        };
        let server_byte = u8::try_from(myid.0).unwrap_or(u8::MAX);
        ZkService {
            auth_config,
            tree,
            applied,
            watches: WatchManager::new(),
            prep,
            tracker: SessionTracker::default(),
            serving: false,
            leading: false,
            leader: None,
            conns: BTreeMap::new(),
            by_session: HashMap::new(),
            creating: HashMap::new(),
            next_session: zab_zk::session::initial_session_id(server_byte, now_ms).0,
            touched: BTreeSet::new(),
            containers_pending: BTreeSet::new(),
            last_container_check: now_ms,
            stats: ServiceStats::default(),
            started_ms: now_ms,
            cfg,
        }
    }

    /// The tree (for tests and tools).
    #[must_use]
    pub fn tree(&self) -> &DataTree {
        &self.tree
    }

    fn password(&self, session: SessionId) -> [u8; 16] {
        zab_zk::session::keyed_password(session, &self.cfg.session_secret)
    }

    fn send(&mut self, conn: ConnId, frame: Bytes) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.sent += 1;
            self.stats.packets_sent += 1;
            let _ = c.out.send(ClientOut::Frame(frame));
        }
    }

    fn reply(
        &mut self,
        conn: ConnId,
        xid: i32,
        zxid: i64,
        err: ErrorCode,
        body: Option<Response>,
        (start_ms, now_ms): (i64, i64),
    ) {
        let frame = proto::encode_reply(
            &ReplyHeader {
                xid,
                zxid,
                err: err.code(),
            },
            body.as_ref(),
        );
        let lat = (now_ms - start_ms).max(0);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stats.last_zxid = zxid;
            let l = &mut c.stats.lat;
            *l = (
                if l.3 == 0 { lat } else { l.0.min(lat) },
                l.1.max(lat),
                l.2 + lat,
                l.3 + 1,
            );
        }
        let g = &mut self.stats.latency;
        *g = (
            if g.3 == 0 { lat } else { g.0.min(lat) },
            g.1.max(lat),
            g.2 + lat,
            g.3 + 1,
        );
        self.send(conn, frame);
    }

    /// Closes a connection; its session lives on until it expires or is closed.
    fn close(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            let _ = c.out.send(ClientOut::Close);
            if let Some(s) = c.session {
                if self.by_session.get(&s) == Some(&conn) {
                    self.by_session.remove(&s);
                    self.watches.drop_session(s);
                }
            }
            self.creating.retain(|_, c| *c != conn);
        }
    }

    fn close_all(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        self.creating.clear();
    }

    fn touch(&mut self, session: SessionId, cx: &AppCx<'_, zab_zk::Txn>) {
        if self.leading {
            self.tracker.touch(session, cx.me(), cx.now_ms);
        } else {
            self.touched.insert(session);
        }
    }

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

    fn propose(&mut self, txn: zab_zk::Txn, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let size = txn.encode().len() as i64;
        let p = &mut self.stats.proposal_sizes;
        *p = (
            size,
            if p.1 == 0 { size } else { p.1.min(size) },
            p.2.max(size),
        );
        if cx.propose(txn).is_none() {
            warn!("proposal refused: not an established leader");
        }
    }

    // ----- the handshake ---------------------------------------------------------------

    fn open(
        &mut self,
        conn: ConnId,
        remote: SocketAddr,
        req: ConnectRequest,
        out: UnboundedSender<ClientOut>,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let read_only_byte = req.read_only.is_some();
        let refuse = |out: &UnboundedSender<ClientOut>| {
            let _ = out.send(ClientOut::Frame(proto::encode_connect_response(
                &ConnectResponse::refused(read_only_byte),
            )));
            let _ = out.send(ClientOut::Close);
        };
        if !self.serving {
            let _ = out.send(ClientOut::Close);
            return;
        }
        if req.last_zxid_seen > self.applied.to_u64() as i64 {
            // The client saw a newer state than ours: it must try another server.
            info!(%remote, client = %Zxid::from_u64(req.last_zxid_seen as u64), ours = %self.applied, "refusing a client that is ahead of this server");
            let _ = out.send(ClientOut::Close);
            return;
        }
        let s = &self.cfg.server;
        let timeout = zab_zk::session::negotiate_timeout(
            req.timeout,
            s.min_session_timeout_ms as i32,
            s.max_session_timeout_ms as i32,
        );
        let mut c = Conn {
            remote,
            out,
            session: None,
            timeout,
            read_only_byte,
            auth: AuthInfo::new(&remote.ip().to_string()),
            early: Vec::new(),
            queue: VecDeque::new(),
            stats: ConnStats {
                established_ms: cx.now_ms,
                ..ConnStats::default()
            },
        };
        if req.session_id == 0 {
            self.next_session += 1;
            let session = SessionId(self.next_session);
            self.conns.insert(conn, c);
            self.creating.insert(session, conn);
            self.route(ServiceFrame::CreateSession { session, timeout }, cx);
            return;
        }
        let session = SessionId(req.session_id);
        let valid =
            req.passwd.as_ref() == self.password(session) && self.tree.session_open(session);
        if !valid {
            refuse(&c.out);
            return;
        }
        if let Some(old) = self.by_session.get(&session).copied() {
            self.close(old);
        }
        c.session = Some(session);
        self.conns.insert(conn, c);
        self.by_session.insert(session, conn);
        self.touch(session, cx);
        self.accept(conn, session, timeout, cx);
    }

    /// Sends the handshake answer, then handles the frames the client pipelined after it.
    fn accept(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout: i32,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let passwd = Bytes::copy_from_slice(&self.password(session));
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout,
            session_id: session.0,
            passwd,
            read_only: c.read_only_byte.then_some(false),
        };
        c.session = Some(session);
        let early = std::mem::take(&mut c.early);
        self.send(conn, proto::encode_connect_response(&resp));
        debug!(conn, session = %session, "session established");
        for payload in early {
            self.request(conn, payload, cx);
        }
    }

    // ----- requests ----------------------------------------------------------------------

    fn request(&mut self, conn: ConnId, payload: Bytes, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let max = self.cfg.server.jute_max_buffer;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(session) = c.session else {
            c.early.push(payload);
            return;
        };
        let (header, body) = match proto::decode_request(&payload, max) {
            Ok(x) => x,
            Err(e) => {
                warn!(conn, "closing a client that sent an undecodable frame: {e}");
                self.close(conn);
                return;
            }
        };
        c.stats.received += 1;
        c.stats.last_cxid = header.xid;
        c.stats.last_op = op_name(header.op);
        self.stats.packets_received += 1;
        self.touch(session, cx);
        let now = cx.now_ms;
        let body = body.map_err(|e| e.code());
        let is_write = match &body {
            Ok(r) => r.is_write() && !matches!(r, Request::Reconfig(_)),
            Err(_) => proto::op::is_write(header.op),
        };
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match body {
            _ if is_write => {
                c.queue.push_back(Waiting::Write {
                    xid: header.xid,
                    start_ms: now,
                });
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
                c.queue.push_back(Waiting::Sync {
                    xid: header.xid,
                    path: r.path,
                    target: None,
                    start_ms: now,
                });
                self.route(
                    ServiceFrame::Sync {
                        session,
                        xid: header.xid,
                    },
                    cx,
                );
            }
            request => {
                c.queue.push_back(Waiting::Local {
                    xid: header.xid,
                    op: header.op,
                    request,
                    start_ms: now,
                });
            }
        }
        self.drain(conn, cx);
    }

    /// Answers, in order, what heads the connection's queue and can be answered now.
    fn drain(&mut self, conn: ConnId, cx: &mut AppCx<'_, zab_zk::Txn>) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.queue.front() {
                Some(Waiting::Local { .. }) => {
                    if let Some(Waiting::Local {
                        xid,
                        op,
                        request,
                        start_ms,
                    }) = c.queue.pop_front()
                    {
                        self.serve_local(conn, xid, op, request, start_ms, cx);
                    }
                }
                Some(Waiting::Sync {
                    target: Some(t), ..
                }) if *t <= self.applied => {
                    if let Some(Waiting::Sync {
                        xid,
                        path,
                        start_ms,
                        ..
                    }) = c.queue.pop_front()
                    {
                        let zxid = self.applied.to_u64() as i64;
                        self.reply(
                            conn,
                            xid,
                            zxid,
                            ErrorCode::Ok,
                            Some(Response::Sync(SyncResponse { path })),
                            (start_ms, cx.now_ms),
                        );
                    }
                }
                _ => return,
            }
        }
    }

    fn serve_local(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: i32,
        request: Result<Request, ErrorCode>,
        start_ms: i64,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let now = cx.now_ms;
        let zxid = self.applied.to_u64() as i64;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some(session) = c.session else { return };
        let request = match request {
            Ok(r) => r,
            Err(code) => {
                // ZooKeeper answers an unknown operation with zxid -1, then closes the
                // connection (`UnimplementedRequestProcessor` calls `sendCloseSession`; the
                // session lives on). Found by tests/bad_input.rs against ZooKeeper 3.8.
                if code == ErrorCode::Unimplemented {
                    self.reply(conn, xid, -1, code, None, (start_ms, now));
                    self.close(conn);
                } else {
                    self.reply(conn, xid, zxid, code, None, (start_ms, now));
                }
                return;
            }
        };
        let _ = op;
        match request {
            Request::Ping => {
                self.reply(conn, xid::PING, zxid, ErrorCode::Ok, None, (start_ms, now))
            }
            // ZooKeeper echoes the request's xid: -4 from Java and kazoo, an ordinary xid from
            // the Rust `zookeeper-client`, which matches the reply by it.
            Request::Auth(packet) => match c.auth.authenticate(&self.auth_config, &packet) {
                Ok(()) => self.reply(conn, xid, 0, ErrorCode::Ok, None, (start_ms, now)),
                Err(code) => {
                    self.stats.auth_failed += 1;
                    self.reply(conn, xid, 0, code, None, (start_ms, now));
                    self.close(conn);
                }
            },
            Request::SetWatches(w) => {
                self.set_watches(conn, session, xid, &w.into(), start_ms, now);
            }
            Request::SetWatches2(w) => self.set_watches(conn, session, xid, &w, start_ms, now),
            Request::AddWatch(r) => match self.watches.add_watch(session, &r.path, r.mode) {
                Ok(()) => self.reply(
                    conn,
                    xid,
                    zxid,
                    ErrorCode::Ok,
                    Some(Response::AddWatch(ErrorResponse { err: 0 })),
                    (start_ms, now),
                ),
                Err(code) => self.reply(conn, xid, zxid, code, None, (start_ms, now)),
            },
            Request::CheckWatches(r) => {
                let code = self
                    .watches
                    .check_watches(session, &r.path, r.watcher_type)
                    .err()
                    .unwrap_or(ErrorCode::Ok);
                self.reply(conn, xid, zxid, code, None, (start_ms, now));
            }
            Request::RemoveWatches(r) => {
                let code = self
                    .watches
                    .remove_watches(session, &r.path, r.watcher_type)
                    .err()
                    .unwrap_or(ErrorCode::Ok);
                self.reply(conn, xid, zxid, code, None, (start_ms, now));
            }
            Request::WhoAmI => {
                let info = c.auth.who_am_i();
                self.reply(
                    conn,
                    xid,
                    zxid,
                    ErrorCode::Ok,
                    Some(Response::WhoAmI(WhoAmIResponse { client_info: info })),
                    (start_ms, now),
                );
            }
            Request::Sasl(_) => self.reply(
                conn,
                xid,
                zxid,
                ErrorCode::AuthFailed,
                None,
                (start_ms, now),
            ),
            Request::Reconfig(_) => self.reply(
                conn,
                xid,
                zxid,
                ErrorCode::ReconfigDisabled,
                None,
                (start_ms, now),
            ),
            request => {
                let ids = c.auth.ids().to_vec();
                match zab_zk::read::serve_and_watch(
                    &self.tree,
                    &mut self.watches,
                    session,
                    &ids,
                    &request,
                ) {
                    Some(Ok(resp)) => {
                        self.reply(conn, xid, zxid, ErrorCode::Ok, Some(resp), (start_ms, now))
                    }
                    Some(Err(code)) => self.reply(conn, xid, zxid, code, None, (start_ms, now)),
                    None => self.reply(
                        conn,
                        xid,
                        -1,
                        ErrorCode::Unimplemented,
                        None,
                        (start_ms, now),
                    ),
                }
            }
        }
    }

    /// Re-registers watches after a reconnect. The reply echoes the request's xid, like
    /// ZooKeeper's `FinalRequestProcessor`: the Java client's NIO socket gives SetWatches a
    /// normal, sequential xid (not -8) and matches the reply against it.
    fn set_watches(
        &mut self,
        conn: ConnId,
        session: SessionId,
        xid: i32,
        w: &proto::SetWatches2,
        start_ms: i64,
        now: i64,
    ) {
        for n in self.watches.set_watches(&self.tree, session, w) {
            self.notify(n.session, &n.event);
        }
        let zxid = self.applied.to_u64() as i64;
        self.reply(conn, xid, zxid, ErrorCode::Ok, None, (start_ms, now));
    }

    /// Whether the connection of `session` may READ a node with `acl`: ZooKeeper (with the
    /// CVE-2024-23944 fix Debian's 3.8.0 carries) sends a watch notification only then; the
    /// watch is consumed either way.
    fn may_read(&self, session: SessionId, acl: &[proto::Acl]) -> bool {
        self.by_session
            .get(&session)
            .and_then(|conn| self.conns.get(conn))
            .is_some_and(|c| zab_zk::acl::check(acl, proto::perms::READ, c.auth.ids()).is_ok())
    }

    fn notify(&mut self, session: SessionId, event: &proto::WatcherEvent) {
        if let Some(conn) = self.by_session.get(&session).copied() {
            self.send(conn, proto::encode_notification(event));
        }
    }

    // ----- frames between servers -----------------------------------------------------

    fn on_service_frame(
        &mut self,
        from: ServerId,
        frame: ServiceFrame,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let now = cx.now_ms;
        match frame {
            ServiceFrame::Forward {
                session,
                auth,
                payload,
            } if self.leading => {
                self.tracker.touch(session, from, now);
                let moved = self.tracker.owner(session).is_some_and(|o| o != from);
                let Ok(zxid) = cx.next_zxid() else { return };
                let max = self.cfg.server.jute_max_buffer;
                let Ok((header, body)) = proto::decode_request(&payload, max) else {
                    warn!(%from, "dropping an undecodable forwarded request");
                    return;
                };
                let ctx = PrepContext {
                    session,
                    cxid: header.xid,
                    time: now,
                    auth: &auth,
                    session_moved: moved,
                };
                let txn = match body {
                    Ok(req) => self.prep.prep(&self.tree, &ctx, zxid, &req),
                    Err(e) => Some(Preparer::error_txn(&ctx, e.code())),
                };
                if let Some(txn) = txn {
                    self.propose(txn, cx);
                }
            }
            ServiceFrame::CreateSession { session, timeout } if self.leading => {
                let Ok(zxid) = cx.next_zxid() else { return };
                self.tracker.pre_own(session, from, timeout, now);
                let txn = self.prep.create_session(session, timeout, now, zxid);
                self.propose(txn, cx);
            }
            ServiceFrame::Touch { sessions } if self.leading => {
                for s in sessions {
                    self.tracker.touch(s, from, now);
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
                if let Some(conn) = self.by_session.get(&session).copied() {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        for w in &mut c.queue {
                            if let Waiting::Sync { xid: x, target, .. } = w {
                                if *x == xid && target.is_none() {
                                    *target = Some(zxid);
                                    break;
                                }
                            }
                        }
                    }
                    self.drain(conn, cx);
                }
            }
            other => debug!(%from, leading = self.leading, "ignoring {other:?}"),
        }
    }

    // ----- delivery ------------------------------------------------------------------------

    fn deliver_txn(&mut self, txn: &Txn<zab_zk::Txn>, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let zxid = txn.zxid;
        let t = &txn.payload;
        let out = self.tree.apply(t, zxid);
        self.applied = zxid;
        let session = t.header.session;
        if self.leading {
            self.prep.committed(zxid);
            match &t.body {
                TxnBody::CreateSession { timeout } => {
                    self.tracker.add(session, *timeout, None, cx.now_ms)
                }
                TxnBody::CloseSession { .. } => self.tracker.remove(session),
                TxnBody::DeleteContainer { path } => {
                    self.containers_pending.remove(path);
                }
                _ => {}
            }
        }
        for (t, acl) in out.triggers.iter().zip(&out.trigger_acls) {
            for n in self.watches.trigger(t) {
                let acl = if n.event.event_type == proto::event_type::NODE_CHILDREN_CHANGED {
                    acl.parent.as_deref().map(Vec::as_slice)
                } else {
                    Some(acl.node.as_slice())
                };
                if self.may_read(n.session, acl.unwrap_or_default()) {
                    self.notify(n.session, &n.event);
                }
            }
        }
        match &t.body {
            TxnBody::CreateSession { timeout } => {
                if let Some(conn) = self.creating.remove(&session) {
                    self.by_session.insert(session, conn);
                    self.accept(conn, session, *timeout, cx);
                }
            }
            TxnBody::CloseSession { .. } => {
                if let Some(conn) = self.by_session.get(&session).copied() {
                    self.answer_write(conn, t.header.cxid, zxid, &out.result, cx);
                    self.close(conn);
                }
            }
            _ => {
                if let Some(conn) = self.by_session.get(&session).copied() {
                    self.answer_write(conn, t.header.cxid, zxid, &out.result, cx);
                    self.drain(conn, cx);
                }
            }
        }
        // Sync barriers of every connection may now be satisfied.
        let waiting: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.queue.front(), Some(Waiting::Sync { target: Some(t), .. }) if *t <= zxid))
            .map(|(k, _)| *k)
            .collect();
        for conn in waiting {
            self.drain(conn, cx);
        }
    }

    fn answer_write(
        &mut self,
        conn: ConnId,
        cxid: i32,
        zxid: Zxid,
        result: &TxnResult,
        cx: &AppCx<'_, zab_zk::Txn>,
    ) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let matches = matches!(c.queue.front(), Some(Waiting::Write { xid, .. }) if *xid == cxid);
        if !matches {
            return;
        }
        let Some(Waiting::Write { xid, start_ms }) = c.queue.pop_front() else {
            return;
        };
        let (err, body) = reply::write_reply(result);
        if err == ErrorCode::SessionMoved {
            // ZooKeeper closes a connection whose session moved, without replying.
            self.close(conn);
            return;
        }
        self.reply(
            conn,
            xid,
            zxid.to_u64() as i64,
            err,
            body,
            (start_ms, cx.now_ms),
        );
    }

    // ----- statistics for the four-letter words --------------------------------------------

    /// Connections with their remote address, queue length and stats.
    fn conn_summaries(&self) -> Vec<(SocketAddr, usize, Option<SessionId>, i32, ConnStats)> {
        self.conns
            .values()
            .map(|c| {
                (
                    c.remote,
                    c.queue.len(),
                    c.session,
                    c.timeout,
                    c.stats.clone(),
                )
            })
            .collect()
    }
}

impl Application<zab_zk::Txn> for ZkService {
    type Client = ClientEvent;

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
            } => self.open(conn, remote, request, out, cx),
            ClientEvent::Request { conn, payload } => self.request(conn, payload, cx),
            ClientEvent::Closed { conn } => self.close(conn),
            ClientEvent::FourLetter {
                word,
                remote,
                reply,
            } => {
                let text = fourlw::render(word, remote, self, cx);
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
            let open: Vec<(SessionId, i32)> =
                self.tree.sessions().iter().map(|(s, t)| (*s, *t)).collect();
            self.tracker.reset(open, cx.now_ms);
            self.containers_pending.clear();
        }
        if !leading {
            self.tracker.clear();
        }
        if !serving && self.serving {
            info!("not serving clients until a quorum is back");
            self.close_all();
        }
        self.serving = serving;
        self.leading = leading;
        self.leader = role.leader;
    }

    fn on_tick(&mut self, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let now = cx.now_ms;
        if self.leading {
            for session in self.tracker.expire(now, self.cfg.server.tick_ms as i64) {
                let Ok(zxid) = cx.next_zxid() else { return };
                info!(session = %session, "session expired");
                let ctx = PrepContext {
                    session,
                    cxid: 0,
                    time: now,
                    auth: &[],
                    session_moved: false,
                };
                if let Some(txn) = self
                    .prep
                    .prep(&self.tree, &ctx, zxid, &Request::CloseSession)
                {
                    self.propose(txn, cx);
                }
            }
            if now - self.last_container_check >= self.cfg.container_check_ms {
                self.last_container_check = now;
                for path in self.tree.expired_containers(now, 0) {
                    if !self.containers_pending.insert(path.clone()) {
                        continue;
                    }
                    let Ok(zxid) = cx.next_zxid() else { return };
                    let ctx = PrepContext {
                        session: SessionId(0),
                        cxid: 0,
                        time: now,
                        auth: &[],
                        session_moved: false,
                    };
                    if let Some(txn) =
                        self.prep
                            .prep(&self.tree, &ctx, zxid, &Request::DeleteContainer { path })
                    {
                        self.propose(txn, cx);
                    }
                }
            }
        } else if self.serving && !self.touched.is_empty() {
            if let Some(l) = self.leader {
                let sessions = std::mem::take(&mut self.touched).into_iter().collect();
                let (kind, data) = ServiceFrame::Touch { sessions }.encode();
                cx.send_frame(l, kind, data);
            }
        }
    }

    fn applied_zxid(&self) -> Zxid {
        self.applied
    }

    fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        let tree = self.tree.clone();
        Box::new(move || Bytes::from(tree.snapshot()))
    }

    fn restore(&mut self, zxid: Zxid, data: &[u8]) -> Result<(), String> {
        let mut tree = DataTree::from_snapshot(data).map_err(|e| e.to_string())?;
        set_config_node(&mut tree, &self.cfg.server, self.started_ms);
        self.tree = tree;
        self.applied = zxid;
        Ok(())
    }
}

/// Keeps the `/zookeeper/config` node like ZooKeeper: the ensemble's membership, set locally.
/// A standalone server (no ensemble, or a single member: ZooKeeper then runs
/// `ZooKeeperServerMain`) leaves the node as the tree created it — empty data, version 0
/// (found by the differential test).
fn set_config_node(tree: &mut DataTree, cfg: &crate::config::ServerConfig, now_ms: i64) {
    if cfg.members.len() <= 1 {
        return;
    }
    let mut text = String::new();
    for m in &cfg.members {
        text.push_str(&format!(
            "server.{}={}:{}:{}:participant\n",
            m.id.0,
            m.quorum_addr.ip(),
            m.quorum_addr.port(),
            m.election_addr.port()
        ));
    }
    text.push_str("version=0");
    tree.set_config(Bytes::from(text), 0, now_ms);
}
