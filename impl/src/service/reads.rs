//! Stage 4 of the chain, local reads and watches: requests this server answers from its own
//! tree (reads, ping, auth, watch management, whoami), and watch notifications to the
//! sessions connected here (ZooKeeper's `FinalRequestProcessor` read path with its
//! `WatchManager`, and `UnimplementedRequestProcessor` for unknown operations).

use super::ConnId;
use super::connections::Connections;
use zab_spec::{ErrorCode, SessionId, Zxid};
use zab_zk::auth::AuthConfig;
use zab_zk::proto::{
    self, ErrorResponse, Request, Response, WatcherEvent, WhoAmIResponse, event_type, xid,
};
use zab_zk::{ApplyOutcome, DataTree, WatchManager};

/// The watches of the sessions connected here, and what local requests need.
pub(super) struct LocalReads {
    pub(super) watches: WatchManager,
    auth_config: AuthConfig,
}

/// A local request to answer now.
pub(super) struct LocalRequest {
    pub(super) conn: ConnId,
    pub(super) xid: i32,
    pub(super) request: Result<Request, ErrorCode>,
    pub(super) start_ms: i64,
    pub(super) now_ms: i64,
}

impl LocalReads {
    /// The server-wide authentication settings.
    pub(super) fn auth_config(&self) -> &AuthConfig {
        &self.auth_config
    }

    pub(super) fn new(auth_config: AuthConfig) -> LocalReads {
        LocalReads {
            watches: WatchManager::new(),
            auth_config,
        }
    }

    /// Answers a read or local request against the tree at `applied`.
    pub(super) fn serve(
        &mut self,
        conns: &mut Connections,
        tree: &DataTree,
        applied: Zxid,
        r: LocalRequest,
    ) {
        let LocalRequest {
            conn,
            xid,
            request,
            start_ms,
            now_ms: now,
        } = r;
        let zxid = applied.to_u64() as i64;
        let Some(session) = conns.get(conn).and_then(|c| c.session) else {
            return;
        };
        let times = (start_ms, now);
        let request = match request {
            Ok(r) => r,
            Err(code) => {
                // ZooKeeper answers an unknown operation with zxid -1, then closes the
                // connection (`UnimplementedRequestProcessor` calls `sendCloseSession`; the
                // session lives on). Found by tests/bad_input.rs against ZooKeeper 3.8.
                if code == ErrorCode::Unimplemented {
                    conns.reply(conn, xid, -1, code, None, times);
                    conns.close(conn, &mut self.watches);
                } else {
                    conns.reply(conn, xid, zxid, code, None, times);
                }
                return;
            }
        };
        match request {
            Request::Ping => conns.reply(conn, xid::PING, zxid, ErrorCode::Ok, None, times),
            // ZooKeeper echoes the request's xid: -4 from Java and kazoo, an ordinary xid from
            // the Rust `zookeeper-client`, which matches the reply by it.
            Request::Auth(packet) => self.authenticate(conns, conn, xid, &packet, times),
            r @ (Request::SetWatches(_)
            | Request::SetWatches2(_)
            | Request::AddWatch(_)
            | Request::CheckWatches(_)
            | Request::RemoveWatches(_)) => {
                self.watch_request(conns, tree, applied, (conn, xid, session), r, times);
            }
            Request::WhoAmI => {
                let client_info = conns
                    .get(conn)
                    .map(|c| c.auth.who_am_i())
                    .unwrap_or_default();
                let body = Some(Response::WhoAmI(WhoAmIResponse { client_info }));
                conns.reply(conn, xid, zxid, ErrorCode::Ok, body, times);
            }
            Request::Sasl(_) => conns.reply(conn, xid, zxid, ErrorCode::AuthFailed, None, times),
            Request::Reconfig(_) => {
                conns.reply(conn, xid, zxid, ErrorCode::ReconfigDisabled, None, times);
            }
            request => self.read(conns, tree, (conn, xid, zxid), session, &request, times),
        }
    }

    /// The watch management requests: re-register after a reconnect, add, check, remove.
    fn watch_request(
        &mut self,
        conns: &mut Connections,
        tree: &DataTree,
        applied: Zxid,
        (conn, xid, session): (ConnId, i32, SessionId),
        request: Request,
        times: (i64, i64),
    ) {
        let zxid = applied.to_u64() as i64;
        match request {
            Request::SetWatches(w) => {
                self.set_watches(conns, tree, applied, session, (conn, xid), &w.into(), times);
            }
            Request::SetWatches2(w) => {
                self.set_watches(conns, tree, applied, session, (conn, xid), &w, times);
            }
            Request::AddWatch(r) => match self.watches.add_watch(session, &r.path, r.mode) {
                Ok(()) => {
                    let body = Some(Response::AddWatch(ErrorResponse { err: 0 }));
                    conns.reply(conn, xid, zxid, ErrorCode::Ok, body, times);
                }
                Err(code) => conns.reply(conn, xid, zxid, code, None, times),
            },
            Request::CheckWatches(r) => {
                let code = self
                    .watches
                    .check_watches(session, &r.path, r.watcher_type)
                    .err()
                    .unwrap_or(ErrorCode::Ok);
                conns.reply(conn, xid, zxid, code, None, times);
            }
            Request::RemoveWatches(r) => {
                let code = self
                    .watches
                    .remove_watches(session, &r.path, r.watcher_type)
                    .err()
                    .unwrap_or(ErrorCode::Ok);
                conns.reply(conn, xid, zxid, code, None, times);
            }
            // `serve` routes only the five above here.
            _ => {}
        }
    }

    /// `addauth`: a failure is answered, counted, and closes the connection.
    fn authenticate(
        &mut self,
        conns: &mut Connections,
        conn: ConnId,
        xid: i32,
        packet: &proto::AuthPacket,
        times: (i64, i64),
    ) {
        let Some(c) = conns.get_mut(conn) else { return };
        match c.auth.authenticate(&self.auth_config, packet) {
            Ok(()) => conns.reply(conn, xid, 0, ErrorCode::Ok, None, times),
            Err(code) => {
                conns.traffic.auth_failed += 1;
                conns.reply(conn, xid, 0, code, None, times);
                conns.close(conn, &mut self.watches);
            }
        }
    }

    /// A read of the tree, registering the watch it asks for.
    fn read(
        &mut self,
        conns: &mut Connections,
        tree: &DataTree,
        (conn, xid, zxid): (ConnId, i32, i64),
        session: SessionId,
        request: &Request,
        times: (i64, i64),
    ) {
        let ids = conns
            .get(conn)
            .map(|c| c.auth.ids().to_vec())
            .unwrap_or_default();
        match zab_zk::read::serve_and_watch(tree, &mut self.watches, session, &ids, request) {
            Some(Ok(resp)) => conns.reply(conn, xid, zxid, ErrorCode::Ok, Some(resp), times),
            Some(Err(code)) => conns.reply(conn, xid, zxid, code, None, times),
            None => {
                conns.reply(conn, xid, -1, ErrorCode::Unimplemented, None, times);
                return;
            }
        }
        conns.traffic.read_answered(times);
    }

    /// Re-registers watches after a reconnect. The reply echoes the request's xid, like
    /// ZooKeeper's `FinalRequestProcessor`: the Java client's NIO socket gives SetWatches a
    /// normal, sequential xid (not -8) and matches the reply against it.
    #[allow(clippy::too_many_arguments)]
    fn set_watches(
        &mut self,
        conns: &mut Connections,
        tree: &DataTree,
        applied: Zxid,
        session: SessionId,
        (conn, xid): (ConnId, i32),
        w: &proto::SetWatches2,
        times: (i64, i64),
    ) {
        for n in self.watches.set_watches(tree, session, w) {
            notify(conns, n.session, &n.event);
        }
        let zxid = applied.to_u64() as i64;
        conns.reply(conn, xid, zxid, ErrorCode::Ok, None, times);
    }

    /// Fires the watches an applied transaction triggered, in order: a session is told only
    /// if its connection may READ the node (ZooKeeper with the CVE-2024-23944 fix Debian's
    /// 3.8.0 carries); the watch is consumed either way.
    pub(super) fn trigger(&mut self, conns: &mut Connections, out: &ApplyOutcome) {
        for (t, acl) in out.triggers.iter().zip(&out.trigger_acls) {
            for n in self.watches.trigger(t) {
                let acl = if n.event.event_type == event_type::NODE_CHILDREN_CHANGED {
                    acl.parent.as_deref().map(Vec::as_slice)
                } else {
                    Some(acl.node.as_slice())
                };
                if may_read(conns, n.session, acl.unwrap_or_default()) {
                    notify(conns, n.session, &n.event);
                }
            }
        }
    }
}

/// Whether the connection of `session` may READ a node with `acl`.
fn may_read(conns: &Connections, session: SessionId, acl: &[proto::Acl]) -> bool {
    conns
        .of_session(session)
        .and_then(|conn| conns.get(conn))
        .is_some_and(|c| zab_zk::acl::check(acl, proto::perms::READ, c.auth.ids()).is_ok())
}

/// Sends a watch notification to the connection of `session`, if it is connected here.
fn notify(conns: &mut Connections, session: SessionId, event: &WatcherEvent) {
    if let Some(conn) = conns.of_session(session) {
        conns.send(conn, proto::encode_notification(event));
    }
}
