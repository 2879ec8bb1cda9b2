//! Running a case against one server (zabd or ZooKeeper): the admin session that sets up and
//! cleans up `/r`, the sessions of the case, and the normalised trace of every reply and
//! watch notification.

use super::*;

/// A server under test, with its admin session (super user) that sets up and cleans up.
pub(crate) struct System {
    pub(crate) name: &'static str,
    pub(crate) addr: SocketAddr,
    pub(crate) admin: Wire,
    pub(crate) admin_sid: i64,
    /// Set when the admin session failed: the server is gone, nothing more can be compared.
    pub(crate) broken: Option<String>,
}

impl System {
    pub(crate) fn connect(name: &'static str, addr: SocketAddr) -> System {
        let (mut admin, resp) = Wire::session(addr)
            .unwrap_or_else(|e| panic!("{name}: cannot open the admin session: {e:?}"));
        let r = admin
            .call(
                &Request::Auth(AuthPacket {
                    auth_type: 0,
                    scheme: "digest".into(),
                    auth: Bytes::from_static(b"super:diff"),
                }),
                IO,
            )
            .unwrap_or_else(|e| panic!("{name}: super auth: {e:?}"));
        assert_eq!(r.header.err, 0, "{name}: super auth refused");
        let mut s = System {
            name,
            addr,
            admin,
            admin_sid: resp.session_id,
            broken: None,
        };
        // Whoever ran before may have left nodes (a failed run, or another test).
        s.cleanup();
        s
    }

    pub(crate) fn admin_call(&mut self, req: &Request) -> Reply {
        match self.admin.call(req, IO) {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("{}: admin request {req:?}: {e:?}", self.name);
                self.broken = Some(msg.clone());
                panic!("{msg}");
            }
        }
    }

    pub(crate) fn children(&mut self, path: &str) -> Vec<String> {
        let r = self.admin_call(&Request::GetChildren(GetChildrenRequest {
            path: path.into(),
            watch: false,
        }));
        match r.body {
            Some(Response::GetChildren(c)) => c.children,
            _ => Vec::new(),
        }
    }

    pub(crate) fn delete_tree(&mut self, path: &str) {
        for c in self.children(path) {
            self.delete_tree(&format!("{path}/{c}"));
        }
        let r = self.admin_call(&Request::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        }));
        assert!(
            r.header.err == 0 || r.header.err == -101,
            "{}: cleanup cannot delete {path}: {}",
            self.name,
            r.header.err
        );
    }

    /// Deletes everything at the root but `/zookeeper`.
    pub(crate) fn cleanup(&mut self) {
        for c in self.children("/") {
            if c != "zookeeper" {
                self.delete_tree(&format!("/{c}"));
            }
        }
    }

    /// Creates `/r` and returns the root's cversion.
    pub(crate) fn setup(&mut self) -> i32 {
        let r = self.admin_call(&Request::Create(create_request(
            "/r",
            &None,
            AclSet::Open,
            0,
        )));
        assert_eq!(r.header.err, 0, "{}: cannot create /r", self.name);
        let r = self.admin_call(&Request::Exists(ExistsRequest {
            path: "/".into(),
            watch: false,
        }));
        match r.body {
            Some(Response::Exists(e)) => e.stat.cversion,
            other => panic!("{}: exists / gave {other:?}", self.name),
        }
    }
}

pub(crate) struct Slot {
    pub(crate) wire: Wire,
    pub(crate) sid: i64,
    pub(crate) passwd: Bytes,
    pub(crate) label: usize,
    pub(crate) last_zxid: i64,
}

/// One case's run: the normaliser's state and the sessions.
pub(crate) struct Run<'a> {
    pub(crate) sys: &'a mut System,
    pub(crate) zxids: HashMap<i64, usize>,
    pub(crate) sessions: HashMap<i64, usize>,
    pub(crate) opened: usize,
    pub(crate) slots: [Option<Slot>; 3],
    /// Sessions whose connection ended without a closeSession: re-attached and closed at
    /// the end, so that they do not expire during a later case.
    pub(crate) dangling: Vec<(i64, Bytes)>,
    pub(crate) root_base: i32,
    pub(crate) trace: Vec<String>,
}

impl Run<'_> {
    pub(crate) fn z(&mut self, zxid: i64) -> String {
        if zxid <= 0 {
            return zxid.to_string();
        }
        let n = self.zxids.len();
        format!("Z{}", *self.zxids.entry(zxid).or_insert(n))
    }

    pub(crate) fn owner(&self, sid: i64) -> String {
        if sid == 0 {
            "0".into()
        } else if sid == self.sys.admin_sid {
            "admin".into()
        } else {
            match self.sessions.get(&sid) {
                Some(n) => format!("s{n}"),
                None => "unknown-session".into(),
            }
        }
    }

    pub(crate) fn stat(&mut self, s: &Stat, root: bool) -> String {
        let t = |v: i64| if v == 0 { "0" } else { "t" };
        let rel = if s.czxid == s.mzxid {
            if s.ctime == s.mtime { " c=m" } else { " c!=m" }
        } else if s.mtime < s.ctime {
            " m<c"
        } else {
            ""
        };
        let cv = if root {
            format!("{}+{}", "base", s.cversion - self.root_base)
        } else {
            s.cversion.to_string()
        };
        format!(
            "[cz={} mz={} pz={} ct={} mt={}{rel} v={} cv={cv} av={} eo={} dl={} nc={}]",
            self.z(s.czxid),
            self.z(s.mzxid),
            self.z(s.pzxid),
            t(s.ctime),
            t(s.mtime),
            s.version,
            s.aversion,
            self.owner(s.ephemeral_owner),
            s.data_length,
            s.num_children,
        )
    }

    pub(crate) fn multi_result(&mut self, m: &MultiResult, root: bool) -> String {
        match m {
            MultiResult::Create { path } => format!("create {path:?}"),
            MultiResult::Create2 { path, stat } => {
                format!("create2 {path:?} {}", self.stat(stat, false))
            }
            MultiResult::Delete => "delete".into(),
            MultiResult::SetData { stat } => format!("setData {}", self.stat(stat, false)),
            MultiResult::Check => "check".into(),
            MultiResult::GetChildren { children } => {
                let mut c = children.clone();
                c.sort();
                format!("getChildren {c:?}")
            }
            MultiResult::GetData { data, stat } => {
                format!(
                    "getData {} {}",
                    show_data(data.as_ref()),
                    self.stat(stat, root)
                )
            }
            MultiResult::Error { err } => format!("error {err}"),
        }
    }

    pub(crate) fn body(&mut self, b: &Response, o: &Op) -> String {
        let root = matches!(o.path(), Some("/" | ""));
        match b {
            Response::Create(c) => format!("path={:?}", c.path),
            Response::Create2(c) => format!("path={:?} {}", c.path, self.stat(&c.stat, false)),
            Response::Exists(e) => self.stat(&e.stat, root),
            Response::GetData(g) => {
                format!(
                    "data={} {}",
                    show_data(g.data.as_ref()),
                    self.stat(&g.stat, root)
                )
            }
            Response::SetData(s) => self.stat(&s.stat, root),
            Response::GetAcl(a) => format!("acl={} {}", show_acl(&a.acl), self.stat(&a.stat, root)),
            Response::SetAcl(s) => self.stat(&s.stat, root),
            Response::GetChildren(c) => {
                let mut c = c.children.clone();
                c.sort();
                format!("children={c:?}")
            }
            Response::GetChildren2(c) => {
                let mut ch = c.children.clone();
                ch.sort();
                format!("children={ch:?} {}", self.stat(&c.stat, root))
            }
            Response::Sync(s) => format!("path={:?}", s.path),
            Response::Multi(results) => {
                let reads: Vec<bool> = match o {
                    Op::MultiRead { ops } => ops
                        .iter()
                        .map(|x| matches!(x.path(), Some("/" | "")))
                        .collect(),
                    _ => Vec::new(),
                };
                let parts: Vec<String> = results
                    .iter()
                    .enumerate()
                    .map(|(i, m)| self.multi_result(m, reads.get(i).copied().unwrap_or(false)))
                    .collect();
                format!("results=[{}]", parts.join(", "))
            }
            Response::GetAllChildrenNumber(n) => format!("number={}", n.total_number),
            Response::GetEphemerals(e) => {
                let mut v = e.ephemerals.clone();
                v.sort();
                format!("ephemerals={v:?}")
            }
            Response::AddWatch(e) => format!("errorResponse={}", e.err),
            Response::WhoAmI(w) => {
                let v: Vec<String> = w
                    .client_info
                    .iter()
                    .map(|c| format!("{}:{}", c.auth_scheme, c.user))
                    .collect();
                format!("whoAmI={v:?}")
            }
            Response::Sasl(s) => format!("sasl token {} bytes", s.token.len()),
        }
    }

    pub(crate) fn reply(&mut self, r: &Reply, o: &Op) -> String {
        let mut s = events(r);
        let z = self.z(r.header.zxid);
        let _ = write!(s, "err={} zxid={z} len={}", r.header.err, r.len);
        if let Some(b) = &r.body {
            let b = self.body(b, o);
            let _ = write!(s, " {b}");
        }
        s
    }

    pub(crate) fn connect_line(&mut self, resp: &ConnectResponse) -> String {
        let n = self.opened;
        self.opened += 1;
        self.sessions.insert(resp.session_id, n);
        format!(
            "s{n} open: protocol={} timeout={} passwd={} bytes readOnly={:?}",
            resp.protocol_version,
            resp.timeout,
            resp.passwd.len(),
            resp.read_only
        )
    }

    pub(crate) fn slot(&mut self, s: usize) -> Option<&mut Slot> {
        if self.slots[s].is_none() {
            match Wire::session(self.sys.addr) {
                Ok((wire, resp)) if resp.session_id != 0 => {
                    let line = self.connect_line(&resp);
                    self.trace.push(line);
                    self.slots[s] = Some(Slot {
                        wire,
                        sid: resp.session_id,
                        passwd: resp.passwd.clone(),
                        label: self.opened - 1,
                        last_zxid: 0,
                    });
                }
                Ok(_) => {
                    self.trace.push("open refused".into());
                    return None;
                }
                Err(e) => {
                    self.trace.push(format!("open failed: {e:?}"));
                    return None;
                }
            }
        }
        self.slots[s].as_mut()
    }

    pub(crate) fn step(&mut self, i: usize, st: &Step) {
        let s = usize::from(st.s) % 3;
        let Some(slot) = self.slot(s) else { return };
        let label = slot.label;
        let req = request(&st.op, slot.last_zxid);
        let result = slot.wire.call(&req, IO);
        if let Ok(r) = &result {
            slot.last_zxid = slot.last_zxid.max(r.header.zxid);
        }
        let (text, ends) = match &result {
            Ok(r) => {
                let ends = matches!(st.op, Op::CloseSession)
                    || (matches!(st.op, Op::Auth { .. }) && r.header.err != 0);
                (self.reply(r, &st.op), ends)
            }
            Err(WireError::Closed) => ("connection closed".into(), true),
            Err(WireError::Timeout) => ("no reply".into(), true),
            Err(WireError::Protocol(e)) => (format!("protocol error: {e}"), true),
        };
        let mut line = format!("{i} s{label}: {text}");
        if ends {
            let mut slot = self.slots[s].take().expect("slot");
            let closed = result.is_err() || slot.wire.closed_within(Duration::from_secs(3));
            if result.is_ok() {
                line.push_str(if closed { " [closed]" } else { " [left open]" });
            }
            if !matches!(st.op, Op::CloseSession) || result.is_err() {
                self.dangling
                    .push((slot.sid, std::mem::take(&mut slot.passwd)));
            }
        }
        self.trace.push(line);
    }

    /// Flushes every session's pending notifications, then closes them in slot order.
    pub(crate) fn finish(&mut self) {
        for s in 0..3 {
            if let Some(slot) = &mut self.slots[s] {
                let label = slot.label;
                let line = match slot.wire.call(&Request::Ping, IO) {
                    Ok(r) => format!("s{label} flush: {}", events(&r)),
                    Err(e) => format!("s{label} flush: {e:?}"),
                };
                self.trace.push(line);
            }
        }
        for s in 0..3 {
            if let Some(mut slot) = self.slots[s].take() {
                let label = slot.label;
                let line = match slot.wire.call(&Request::CloseSession, IO) {
                    Ok(r) => {
                        let text = self.reply(&r, &Op::CloseSession);
                        let closed = slot.wire.closed_within(Duration::from_secs(3));
                        format!(
                            "s{label} close: {text}{}",
                            if closed { "" } else { " [left open]" }
                        )
                    }
                    Err(e) => format!("s{label} close: {e:?}"),
                };
                self.trace.push(line);
            }
        }
        for (sid, passwd) in std::mem::take(&mut self.dangling) {
            let Ok(mut w) = Wire::open(self.sys.addr) else {
                continue;
            };
            let req = ConnectRequest {
                session_id: sid,
                passwd,
                ..new_session_request()
            };
            if let Ok(resp) = w.handshake(&req) {
                if resp.session_id == sid {
                    let _ = w.call(&Request::CloseSession, IO);
                }
            }
        }
    }
}

pub(crate) fn events(r: &Reply) -> String {
    let mut s = String::new();
    for e in &r.events {
        let _ = write!(s, "event({} {} {:?}) ", e.event_type, e.state, e.path);
    }
    s
}

pub(crate) fn show_data(d: Option<&Bytes>) -> String {
    match d {
        None => "null".into(),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

pub(crate) fn show_acl(acl: &[Acl]) -> String {
    let v: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}:{}", a.perms, a.id.scheme, a.id.id))
        .collect();
    format!("{v:?}")
}

/// Runs a case against one server: its normalised trace.
pub(crate) fn run_case(sys: &mut System, steps: &[Step]) -> Vec<String> {
    let root_base = sys.setup();
    let mut run = Run {
        sys,
        zxids: HashMap::new(),
        sessions: HashMap::new(),
        opened: 0,
        slots: [None, None, None],
        dangling: Vec::new(),
        root_base,
        trace: Vec::new(),
    };
    for (i, st) in steps.iter().enumerate() {
        run.step(i, st);
    }
    run.finish();
    let trace = std::mem::take(&mut run.trace);
    sys.cleanup();
    trace
}
