//! Stage 1 of the chain, connections and the session handshake: the table of client
//! connections, which session each one carries, the handshake (new session, resumed session,
//! refusal), decoding request frames, and writing replies with their statistics (ZooKeeper's
//! `ServerCnxn`/`NIOServerCnxn` and `ZooKeeperServer.processConnectRequest`).

use super::ConnId;
use super::backpressure::Outbox;
use super::direct::DirectWriter;
use super::queue::SessionQueue;
use crate::metrics::Histogram;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use tracing::{debug, info, warn};
use zab_spec::{ErrorCode, SessionId, Zxid};
use zab_zk::auth::AuthInfo;
use zab_zk::proto::{self, ConnectRequest, ConnectResponse, ReplyHeader, RequestHeader, Response};
use zab_zk::{DataTree, WatchManager};

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

/// Server-wide traffic counters of the client port.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    pub(super) packets_received: u64,
    pub(super) packets_sent: u64,
    /// Latency, ms: min, max, total, count.
    pub(super) latency: (i64, i64, i64, u64),
    pub(super) auth_failed: u64,
    /// Connections closed for passing `clientOutputHardLimitBytes`.
    pub(super) closed_over_limit: u64,
    /// Latency of answered reads, microseconds (ZooKeeper's `readlatency`, at ms resolution).
    pub(super) read_latency: Histogram,
    /// Latency of answered writes, microseconds (`updatelatency`, at ms resolution).
    pub(super) update_latency: Histogram,
}

impl Traffic {
    /// Records a read's latency (`start_ms` to `now_ms`).
    pub(super) fn read_answered(&self, (start_ms, now_ms): (i64, i64)) {
        self.read_latency.record(ms_to_micros(now_ms - start_ms));
    }

    /// Records a write's latency (`start_ms` to `now_ms`).
    pub(super) fn update_answered(&self, (start_ms, now_ms): (i64, i64)) {
        self.update_latency.record(ms_to_micros(now_ms - start_ms));
    }
}

fn ms_to_micros(ms: i64) -> u64 {
    u64::try_from(ms).unwrap_or(0).saturating_mul(1000)
}

/// One client connection.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) remote: SocketAddr,
    pub(super) out: Outbox,
    pub(super) session: Option<SessionId>,
    pub(super) timeout: i32,
    read_only_byte: bool,
    pub(super) auth: AuthInfo,
    /// Frames received before the session was established (clients pipelined them).
    early: Vec<Bytes>,
    /// The session's requests in flight, answered in order (stage 2).
    pub(super) queue: SessionQueue,
    pub(super) stats: ConnStats,
}

/// The outcome of a handshake.
pub(super) enum Opened {
    /// Refused (the connection was told, or closed); nothing more to do.
    Refused,
    /// A new session: the leader must create it (the handshake is answered on commit).
    Create {
        /// The session id this server chose.
        session: SessionId,
        /// The negotiated timeout.
        timeout: i32,
        /// The password this server gave it (it travels in the `createSession`).
        passwd: [u8; 16],
    },
    /// A valid session resumed on this connection: answer the handshake now.
    Resume {
        /// The session.
        session: SessionId,
        /// The negotiated timeout.
        timeout: i32,
    },
}

/// What a request frame turned out to be.
pub(super) enum Received {
    /// Unknown connection, an early frame buffered, or an undecodable frame (the connection
    /// was closed).
    Nothing,
    /// A decoded request of an established session.
    Request {
        session: SessionId,
        header: RequestHeader,
        body: Result<proto::Request, ErrorCode>,
    },
}

/// The client connections of this server and the sessions they carry.
#[derive(Debug)]
pub(super) struct Connections {
    conns: BTreeMap<ConnId, Conn>,
    by_session: HashMap<SessionId, ConnId>,
    /// Sessions asked of the leader, by the connection that waits for them.
    creating: HashMap<SessionId, ConnId>,
    next_session: i64,
    session_secret: Vec<u8>,
    pub(super) traffic: Traffic,
    /// `clientOutputHardLimitBytes`: queued reply bytes past which a connection is closed.
    hard_limit: usize,
    /// Connections with frames queued since the last [`Connections::flush`].
    dirty: Vec<DirectWriter>,
}

/// ZooKeeper's four-letter abbreviation of an operation (`cons`'s `lop`).
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

/// Folds one latency into (min, max, total, count).
fn record_latency(l: &mut (i64, i64, i64, u64), lat: i64) {
    *l = (
        if l.3 == 0 { lat } else { l.0.min(lat) },
        l.1.max(lat),
        l.2 + lat,
        l.3 + 1,
    );
}

/// Session-id and timeout limits the handshake applies.
pub(super) struct HandshakeLimits {
    pub(super) min_timeout_ms: i32,
    pub(super) max_timeout_ms: i32,
    pub(super) serving: bool,
    pub(super) applied: Zxid,
}

impl Connections {
    pub(super) fn new(
        server_byte: u8,
        session_secret: Vec<u8>,
        now_ms: i64,
        hard_limit: usize,
    ) -> Connections {
        Connections {
            hard_limit,
            conns: BTreeMap::new(),
            by_session: HashMap::new(),
            creating: HashMap::new(),
            next_session: zab_zk::session::initial_session_id(server_byte, now_ms).0,
            session_secret,
            traffic: Traffic::default(),
            dirty: Vec::new(),
        }
    }

    /// Writes every frame queued for a directly written connection since the last flush (the
    /// runtime calls it when an event is handled).
    pub(super) fn flush(&mut self) {
        for d in self.dirty.drain(..) {
            d.flush();
        }
    }

    /// Remembers that `out`'s socket has frames to write at the next flush.
    fn mark_dirty(out: &Outbox, dirty: &mut Vec<DirectWriter>) {
        if let Some(d) = out.direct() {
            if !dirty.iter().any(|x| x.same(d)) {
                dirty.push(d.clone());
            }
        }
    }

    /// A new session's password: keyed with this server's secret (random per process in
    /// `zabd`), so no one without it can compute it from the session id.
    fn new_password(&self, session: SessionId) -> [u8; 16] {
        zab_zk::session::keyed_password(session, &self.session_secret)
    }

    /// The password of an open `session`, as every replica knows it: the one its
    /// `createSession` carried, or ZooKeeper's id-derived one for a session that came from a
    /// ZooKeeper import (so its client can resume it after the migration;
    /// `DataTree::session_imported`). `None`: no password is known (a session created before
    /// passwords travelled), and no password opens it.
    fn password(tree: &DataTree, session: SessionId) -> Option<[u8; 16]> {
        if tree.session_imported(session) {
            Some(zab_zk::session::zookeeper_password(session))
        } else {
            tree.session_password(session)
        }
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&Conn> {
        self.conns.get(&conn)
    }

    pub(super) fn get_mut(&mut self, conn: ConnId) -> Option<&mut Conn> {
        self.conns.get_mut(&conn)
    }

    /// Every connection, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&ConnId, &Conn)> {
        self.conns.iter()
    }

    /// The connection that carries `session` here, if any.
    pub(super) fn of_session(&self, session: SessionId) -> Option<ConnId> {
        self.by_session.get(&session).copied()
    }

    /// The connection waiting for `session` to be created, now that it is: it carries it.
    pub(super) fn created(&mut self, session: SessionId) -> Option<ConnId> {
        let conn = self.creating.remove(&session)?;
        self.by_session.insert(session, conn);
        Some(conn)
    }

    /// Queues a frame for `conn`. Past the hard limit on queued reply bytes (a client that
    /// does not read what it is sent: watch notifications, write results) the connection is
    /// closed at once, its queue dropped; the connection task then reports it closed
    /// ([`super::ClientEvent::Closed`]), which removes it here as any other close.
    pub(super) fn send(&mut self, conn: ConnId, frame: Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.stats.sent += 1;
        self.traffic.packets_sent += 1;
        let queued = c.out.send_frame(frame);
        Self::mark_dirty(&c.out, &mut self.dirty);
        if queued > self.hard_limit && !c.out.killed() {
            warn!(
                conn,
                remote = %c.remote,
                queued,
                limit = self.hard_limit,
                "closing a client that does not read its replies (clientOutputHardLimitBytes)"
            );
            self.traffic.closed_over_limit += 1;
            c.out.kill();
        }
    }

    /// Sends a reply and records its latency (`start_ms` to `now_ms`).
    pub(super) fn reply(
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
            record_latency(&mut c.stats.lat, lat);
            c.out.answered();
        }
        record_latency(&mut self.traffic.latency, lat);
        self.send(conn, frame);
    }

    /// Closes a connection, dropping its session's watches (ZooKeeper's watcher is the
    /// connection); the session lives on until it expires or is closed.
    pub(super) fn close(&mut self, conn: ConnId, watches: &mut WatchManager) {
        if let Some(c) = self.conns.remove(&conn) {
            c.out.close();
            if let Some(s) = c.session {
                if self.by_session.get(&s) == Some(&conn) {
                    self.by_session.remove(&s);
                    watches.drop_session(s);
                }
            }
            self.creating.retain(|_, c| *c != conn);
        }
    }

    /// Closes every connection (the server stops serving).
    pub(super) fn close_all(&mut self, watches: &mut WatchManager) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, watches);
        }
        self.creating.clear();
    }

    /// The handshake: refuses a client this server must not serve, starts a new session, or
    /// resumes one (closing the connection that carried it before).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn open(
        &mut self,
        (conn, remote, auth): (ConnId, SocketAddr, AuthInfo),
        req: &ConnectRequest,
        out: Outbox,
        limits: &HandshakeLimits,
        tree: &DataTree,
        watches: &mut WatchManager,
        now_ms: i64,
    ) -> Opened {
        let read_only_byte = req.read_only.is_some();
        if !limits.serving {
            out.close();
            return Opened::Refused;
        }
        if req.last_zxid_seen > limits.applied.to_u64() as i64 {
            // The client saw a newer state than ours: it must try another server.
            info!(%remote, client = %Zxid::from_u64(req.last_zxid_seen as u64), ours = %limits.applied, "refusing a client that is ahead of this server");
            out.close();
            return Opened::Refused;
        }
        let timeout = zab_zk::session::negotiate_timeout(
            req.timeout,
            limits.min_timeout_ms,
            limits.max_timeout_ms,
        );
        let mut c = Conn {
            remote,
            out,
            session: None,
            timeout,
            read_only_byte,
            auth,
            early: Vec::new(),
            queue: SessionQueue::default(),
            stats: ConnStats {
                established_ms: now_ms,
                ..ConnStats::default()
            },
        };
        if req.session_id == 0 {
            self.next_session += 1;
            let session = SessionId(self.next_session);
            self.conns.insert(conn, c);
            self.creating.insert(session, conn);
            return Opened::Create {
                session,
                timeout,
                passwd: self.new_password(session),
            };
        }
        let session = SessionId(req.session_id);
        let valid = tree.session_open(session)
            && Self::password(tree, session).is_some_and(|p| req.passwd.as_ref() == p);
        if !valid {
            c.out
                .send_frame(proto::encode_connect_response(&ConnectResponse::refused(
                    read_only_byte,
                )));
            Self::mark_dirty(&c.out, &mut self.dirty);
            c.out.close();
            return Opened::Refused;
        }
        if let Some(old) = self.by_session.get(&session).copied() {
            self.close(old, watches);
        }
        c.session = Some(session);
        self.conns.insert(conn, c);
        self.by_session.insert(session, conn);
        Opened::Resume { session, timeout }
    }

    /// Sends the handshake answer; returns the frames the client pipelined after it, to be
    /// handled next, in order.
    pub(super) fn accept(
        &mut self,
        conn: ConnId,
        session: SessionId,
        timeout: i32,
        tree: &DataTree,
    ) -> Vec<Bytes> {
        // Only a createSession replayed from before passwords travelled has none (and no
        // client waits for it); zeros then open nothing.
        let passwd = Bytes::copy_from_slice(&Self::password(tree, session).unwrap_or([0; 16]));
        let Some(c) = self.conns.get_mut(&conn) else {
            return Vec::new();
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
        early
    }

    /// A request frame: buffered before the handshake is answered, decoded and counted
    /// after; an undecodable frame closes the connection.
    pub(super) fn receive(
        &mut self,
        conn: ConnId,
        payload: &Bytes,
        max_frame: usize,
        watches: &mut WatchManager,
    ) -> Received {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Received::Nothing;
        };
        let Some(session) = c.session else {
            // Counted when handled, after the handshake (`ZkService::accept`).
            c.early.push(payload.clone());
            return Received::Nothing;
        };
        c.out.received(payload.len());
        let (header, body) = match proto::decode_request(payload, max_frame) {
            Ok(x) => x,
            Err(e) => {
                warn!(conn, "closing a client that sent an undecodable frame: {e}");
                self.close(conn, watches);
                return Received::Nothing;
            }
        };
        c.stats.received += 1;
        c.stats.last_cxid = header.xid;
        c.stats.last_op = op_name(header.op);
        self.traffic.packets_received += 1;
        Received::Request {
            session,
            header,
            body: body.map_err(|e| e.code()),
        }
    }
}
