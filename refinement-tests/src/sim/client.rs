//! Simulated ZooKeeper clients: each speaks the real wire protocol to the real service of one
//! server at a time (handshake, requests, pings), issues creates, setData, deletes, reads and
//! `sync`-then-reads on a few keys, and records every operation in the history the checks read.
//!
//! A client whose server dies, closes the connection or does not answer in time gives the
//! operation up (its outcome is unknown) and opens a new session elsewhere; each session is a
//! separate client of the history, so one operation at most is in flight per history client.

use super::{Ev, Sim};
use crate::history::{Op, OpKind, Outcome};
use bytes::Bytes;
use rand::Rng;
use std::net::SocketAddr;
use zab_server::service::{ClientEvent, ClientOut};
use zab_spec::{ErrorCode, Zxid};
use zab_zk::proto::{
    self, ConnectRequest, CreateRequest, DeleteRequest, GetDataRequest, Request, Response,
    SetDataRequest, SyncRequest, ids, op, xid,
};

/// The keys the clients work on.
#[must_use]
pub fn keys() -> Vec<String> {
    (0..3).map(|k| format!("/k{k}")).collect()
}

const SESSION_TIMEOUT_MS: i32 = 2_000;
const CONNECT_TIMEOUT_MS: u64 = 2_000;
const OP_TIMEOUT_MS: u64 = 3_000;
const PING_MS: u64 = 500;

#[derive(Debug)]
struct ClientConn {
    node: usize,
    life: u64,
    id: u64,
    rx: tokio::sync::mpsc::UnboundedReceiver<ClientOut>,
    established: bool,
    opened_at: u64,
    last_sent: u64,
    /// Last scheduled delivery to the server (requests stay in order).
    last_at: u64,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    op: usize,
    xid: i32,
    opcode: i32,
    syncing: bool,
    deadline: u64,
}

/// One simulated client.
#[derive(Debug)]
pub struct SimClient {
    index: usize,
    incarnation: usize,
    conn: Option<ClientConn>,
    pending: Option<Pending>,
    next_xid: i32,
    next_conn: u64,
    writes: u64,
    completed: usize,
    liveness_mark: usize,
    stopped: bool,
    /// The pending wake-up (time, token); earlier tokens are stale.
    wake: Option<u64>,
    wake_token: u64,
}

impl SimClient {
    /// Client number `index`.
    #[must_use]
    pub fn new(index: usize) -> SimClient {
        SimClient {
            index,
            incarnation: 0,
            conn: None,
            pending: None,
            next_xid: 1,
            next_conn: 0,
            writes: 0,
            completed: 0,
            liveness_mark: 0,
            stopped: false,
            wake: None,
            wake_token: 0,
        }
    }

    fn history_id(&self) -> usize {
        self.index * 100_000 + self.incarnation
    }

    /// Starts counting the operations of the liveness phase.
    pub fn liveness_start(&mut self, _ticks: u64) {
        self.liveness_mark = self.completed;
    }

    /// Operations completed since the liveness phase began.
    #[must_use]
    pub fn completed_since_liveness(&self) -> usize {
        self.completed - self.liveness_mark
    }

    /// Issues no more operations.
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Leaves the operation in flight, if any, with an unknown outcome.
    pub fn abandon(&mut self, _history: &mut [Op]) {
        self.pending = None;
    }

    /// A line for failure reports.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "client {} (session {}, {}, {} completed, pending {:?})",
            self.index,
            self.incarnation,
            self.conn
                .as_ref()
                .map_or("not connected".to_string(), |c| format!(
                    "on s{}{}",
                    c.node + 1,
                    if c.established { "" } else { " (handshake)" }
                )),
            self.completed,
            self.pending.map(|p| p.op)
        )
    }
}

impl Sim {
    /// Wakes client `c` at `at`, unless it is already due to wake earlier.
    pub(super) fn wake(&mut self, c: usize, at: u64) {
        let cl = &mut self.clients[c];
        if cl.wake.is_some_and(|w| w <= at) {
            return;
        }
        cl.wake_token += 1;
        cl.wake = Some(at);
        let token = cl.wake_token;
        self.schedule(at, Ev::ClientWake { client: c, token });
    }

    pub(super) fn client_woken(&mut self, c: usize, token: u64) -> Result<(), Box<super::Failure>> {
        if self.clients[c].wake_token != token {
            return Ok(());
        }
        self.clients[c].wake = None;
        self.client_wake(c)
    }

    fn client_send(&mut self, c: usize, event: ClientEvent) {
        let now = self.now();
        let d = self.delay();
        let Some(conn) = self.clients[c].conn.as_mut() else {
            return;
        };
        let at = (now + d).max(conn.last_at);
        conn.last_at = at;
        conn.last_sent = now;
        let (node, life) = (conn.node, conn.life);
        self.schedule(at, Ev::ToServer { node, life, event });
    }

    fn client_request(&mut self, c: usize, x: i32, req: &Request) {
        let Some(conn) = self.clients[c].conn.as_ref() else {
            return;
        };
        let id = conn.id;
        let frame = proto::encode_request(x, req);
        let payload = frame.slice(4..);
        self.client_send(
            c,
            ClientEvent::Request {
                conn: id,
                payload,
                received: None,
            },
        );
    }

    /// The client's session is over: the operation in flight (if any) has an unknown outcome.
    fn client_drop(&mut self, c: usize, tell_server: bool) {
        if tell_server {
            if let Some(id) = self.clients[c].conn.as_ref().map(|k| k.id) {
                self.client_send(c, ClientEvent::Closed { conn: id });
            }
        }
        let cl = &mut self.clients[c];
        cl.conn = None;
        cl.pending = None;
        cl.incarnation += 1;
        let at = self.now() + self.rng.random_range(5..60);
        self.wake(c, at);
    }

    pub(super) fn close_clients_of(&mut self, node: usize) {
        for c in 0..self.clients.len() {
            if self.clients[c]
                .conn
                .as_ref()
                .is_some_and(|k| k.node == node)
            {
                self.client_drop(c, false);
            }
        }
    }

    fn client_wake(&mut self, c: usize) -> Result<(), Box<super::Failure>> {
        let now = self.now();
        if self.clients[c].stopped && self.clients[c].pending.is_none() {
            return Ok(());
        }
        let Some(conn) = self.clients[c].conn.as_ref() else {
            return self.client_connect(c);
        };
        if !conn.established {
            let timeout_at = conn.opened_at + CONNECT_TIMEOUT_MS;
            if now >= timeout_at {
                self.client_drop(c, true);
            } else {
                self.wake(c, timeout_at);
            }
            return Ok(());
        }
        let last_sent = conn.last_sent;
        match self.clients[c].pending {
            Some(p) if now >= p.deadline => self.client_drop(c, true),
            Some(p) => {
                if now >= last_sent + PING_MS {
                    self.client_request(c, xid::PING, &Request::Ping);
                }
                let at = p.deadline.min(now + PING_MS);
                self.wake(c, at);
            }
            None if self.clients[c].stopped => {}
            None => self.client_issue(c),
        }
        Ok(())
    }

    fn client_connect(&mut self, c: usize) -> Result<(), Box<super::Failure>> {
        let now = self.now();
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|k| self.nodes[*k].up.is_some())
            .collect();
        if up.is_empty() {
            self.wake(c, now + 100);
            return Ok(());
        }
        // Client 0 prefers an observer while one is up: its reads are served, its writes
        // forwarded by the observer (`spec/PROTOCOL.md` §10.2). Without observers, no
        // draw changes (the seeds README and the tests name keep their schedules).
        let observer = (c == 0)
            .then(|| up.iter().copied().find(|k| self.is_observer(*k)))
            .flatten();
        let node = match observer {
            Some(k) => k,
            None => up[self.rng.random_range(0..up.len())],
        };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let cl = &mut self.clients[c];
        cl.next_conn += 1;
        let id = ((cl.index as u64 + 1) << 32) | cl.next_conn;
        cl.conn = Some(ClientConn {
            node,
            life: self.nodes[node].life,
            id,
            rx,
            established: false,
            opened_at: now,
            last_sent: now,
            last_at: now,
        });
        let remote = SocketAddr::from(([10, 0, 0, 1], 20_000 + c as u16));
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: SESSION_TIMEOUT_MS,
            session_id: 0,
            passwd: Bytes::from(vec![0u8; 16]),
            read_only: Some(false),
        };
        self.client_send(
            c,
            ClientEvent::Open {
                conn: id,
                remote,
                request,
                // Unmetered: the simulation's clients read every reply at once.
                out: tx.into(),
                x509: None,
            },
        );
        self.wake(c, now + CONNECT_TIMEOUT_MS);
        Ok(())
    }

    fn client_issue(&mut self, c: usize) {
        let now = self.now();
        let keys = keys();
        let key = keys[self.rng.random_range(0..keys.len())].clone();
        let roll = self.rng.random_range(0..100);
        let cl = &mut self.clients[c];
        let value = (cl.index as u64 + 1) * 1_000_000 + cl.writes;
        let kind = match roll {
            0..25 => OpKind::Create(value),
            25..50 => OpKind::Set(value),
            50..60 => OpKind::Delete,
            60..85 => OpKind::Get,
            _ => OpKind::SyncGet,
        };
        if matches!(kind, OpKind::Create(_) | OpKind::Set(_)) {
            cl.writes += 1;
        }
        let x = cl.next_xid;
        cl.next_xid += 1;
        let history_id = cl.history_id();
        let (request, opcode) = match kind {
            OpKind::Create(v) => (
                Request::Create(CreateRequest {
                    path: key.clone(),
                    data: Some(Bytes::from(v.to_string())),
                    acl: ids::open_acl_unsafe(),
                    flags: 0,
                }),
                op::CREATE,
            ),
            OpKind::Set(v) => (
                Request::SetData(SetDataRequest {
                    path: key.clone(),
                    data: Some(Bytes::from(v.to_string())),
                    version: -1,
                }),
                op::SET_DATA,
            ),
            OpKind::Delete => (
                Request::Delete(DeleteRequest {
                    path: key.clone(),
                    version: -1,
                }),
                op::DELETE,
            ),
            OpKind::Get => (
                Request::GetData(GetDataRequest {
                    path: key.clone(),
                    watch: false,
                }),
                op::GET_DATA,
            ),
            OpKind::SyncGet => (Request::Sync(SyncRequest { path: key.clone() }), op::SYNC),
        };
        self.ticks += 1;
        self.history.push(Op {
            client: history_id,
            key,
            kind,
            invoked: self.ticks,
            returned: None,
            reply_zxid: None,
        });
        let deadline = now + OP_TIMEOUT_MS;
        self.clients[c].pending = Some(Pending {
            op: self.history.len() - 1,
            xid: x,
            opcode,
            syncing: kind == OpKind::SyncGet,
            deadline,
        });
        self.client_request(c, x, &request);
        self.wake(c, now + PING_MS);
    }

    /// Reads what the servers sent the clients.
    pub(super) fn drain_clients(&mut self) -> Result<(), Box<super::Failure>> {
        for c in 0..self.clients.len() {
            while let Some(Ok(out)) = self.clients[c].conn.as_mut().map(|conn| conn.rx.try_recv()) {
                match out {
                    ClientOut::Close => {
                        self.client_drop(c, false);
                        break;
                    }
                    ClientOut::Frame(frame) => self.client_frame(c, frame.slice(4..))?,
                }
            }
        }
        Ok(())
    }

    fn client_frame(&mut self, c: usize, payload: Bytes) -> Result<(), Box<super::Failure>> {
        let now = self.now();
        let Some(conn) = self.clients[c].conn.as_mut() else {
            return Ok(());
        };
        let node = conn.node;
        if !conn.established {
            match proto::decode_connect_response(&payload) {
                Ok(r) if r.session_id != 0 && r.timeout > 0 => {
                    conn.established = true;
                    self.wake(c, now);
                }
                Ok(_) => self.client_drop(c, false),
                Err(e) => {
                    return Err(self.fail("client protocol", format!("bad connect response: {e}")));
                }
            }
            return Ok(());
        }
        let pending = self.clients[c].pending;
        let reply = proto::decode_reply(&payload, |x| match pending {
            Some(p) if p.xid == x => p.opcode,
            _ if x == xid::PING => op::PING,
            _ => -1,
        })
        .map_err(|e| self.fail("client protocol", format!("undecodable reply: {e}")))?;
        let proto::Reply::Reply(header, body) = reply else {
            return Ok(());
        };
        let Some(p) = pending.filter(|p| p.xid == header.xid) else {
            return Ok(());
        };
        if p.syncing {
            if header.err != 0 {
                return Err(self.fail(
                    "client protocol",
                    format!("sync failed with {}", header.err),
                ));
            }
            let key = self.history[p.op].key.clone();
            let x = self.clients[c].next_xid;
            self.clients[c].next_xid += 1;
            self.clients[c].pending = Some(Pending {
                xid: x,
                opcode: op::GET_DATA,
                syncing: false,
                ..p
            });
            self.client_request(
                c,
                x,
                &Request::GetData(GetDataRequest {
                    path: key,
                    watch: false,
                }),
            );
            return Ok(());
        }
        let kind = self.history[p.op].kind;
        let outcome = match (header.err, kind, body) {
            (0, OpKind::Get | OpKind::SyncGet, Some(Response::GetData(d))) => Outcome::Value(
                d.data
                    .as_ref()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0),
            ),
            (0, OpKind::Create(_) | OpKind::Set(_) | OpKind::Delete, _) => Outcome::Ok,
            (e, OpKind::Create(_), _) if e == ErrorCode::NodeExists.code() => Outcome::NodeExists,
            (e, _, _) if e == ErrorCode::NoNode.code() => Outcome::NoNode,
            (e, k, b) => {
                return Err(self.fail(
                    "client protocol",
                    format!("unexpected reply to {k:?}: error {e}, body {b:?}"),
                ));
            }
        };
        if self.is_observer(node) {
            let counter = match kind {
                OpKind::Get | OpKind::SyncGet => &mut self.report.observer_reads,
                OpKind::Create(_) | OpKind::Set(_) | OpKind::Delete => {
                    &mut self.report.observer_writes
                }
            };
            *counter += 1;
        }
        self.ticks += 1;
        let op = &mut self.history[p.op];
        op.returned = Some((self.ticks, outcome));
        op.reply_zxid = u64::try_from(header.zxid).ok().map(Zxid::from_u64);
        let cl = &mut self.clients[c];
        cl.pending = None;
        cl.completed += 1;
        let think = self.rng.random_range(0..30);
        self.wake(c, now + think);
        Ok(())
    }
}
