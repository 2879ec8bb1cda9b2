//! Test support: a single-server simulation wiring [`Preparer`], [`DataTree`], the reply
//! builder and the [`WatchManager`] together the way a server does, plus request builders.

use crate::prep::{PrepConfig, PrepContext, Preparer};
use crate::proto::{
    Acl, CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest, GetDataRequest, Id,
    MultiOp, Request, Response, SetDataRequest, Stat, ids,
};
use crate::read;
use crate::reply::write_reply;
use crate::tree::DataTree;
use crate::txn::Txn;
use crate::watch::WatchManager;
use bytes::Bytes;
use zab_spec::{ErrorCode, SessionId, Zxid};

/// A single-server ZooKeeper core without I/O.
pub struct Sim {
    pub tree: DataTree,
    pub prep: Preparer,
    pub watches: WatchManager,
    pub counter: u32,
    pub time: i64,
    pub events: Vec<(i64, i32, String)>,
}

pub const IP: &str = "127.0.0.1";

pub fn ip_auth() -> Vec<Id> {
    vec![Id::new("ip", IP)]
}

impl Sim {
    pub fn new() -> Sim {
        Sim::with_config(PrepConfig::default())
    }

    pub fn with_config(config: PrepConfig) -> Sim {
        Sim {
            tree: DataTree::new(),
            prep: Preparer::new(config),
            watches: WatchManager::new(),
            counter: 0,
            time: 1_000,
            events: Vec::new(),
        }
    }

    pub fn next_zxid(&mut self) -> Zxid {
        self.counter += 1;
        self.time += 1;
        Zxid::new(1, self.counter)
    }

    /// Opens (and commits) a session.
    pub fn open(&mut self, id: i64) -> SessionId {
        let z = self.next_zxid();
        let t = self
            .prep
            .create_session(SessionId(id), (30000, [id as u8; 16]), self.time, z);
        self.commit(&t, z);
        SessionId(id)
    }

    /// Prepares a write (not committed).
    pub fn submit(&mut self, session: i64, auth: &[Id], req: &Request) -> (Txn, Zxid) {
        let z = self.next_zxid();
        let ctx = PrepContext {
            session: SessionId(session),
            cxid: 1,
            time: self.time,
            auth,
            session_moved: false,
        };
        let t = self.prep.prep(&self.tree, &ctx, z, req).expect("a write");
        (t, z)
    }

    /// Applies a prepared transaction; returns the reply and records the notifications.
    pub fn commit(&mut self, t: &Txn, z: Zxid) -> (ErrorCode, Option<Response>) {
        // Round-trip through the log encoding, as a follower would see it.
        let t = Txn::decode(&t.encode()).expect("txn round-trips");
        let out = self.tree.apply(&t, z);
        self.prep.committed(z);
        for n in self.watches.trigger_all(&out.triggers) {
            self.events
                .push((n.session.0, n.event.event_type, n.event.path.clone()));
        }
        write_reply(&out.result)
    }

    pub fn write_as(
        &mut self,
        session: i64,
        auth: &[Id],
        req: &Request,
    ) -> (ErrorCode, Option<Response>) {
        let (t, z) = self.submit(session, auth, req);
        self.commit(&t, z)
    }

    pub fn write(&mut self, session: i64, req: &Request) -> (ErrorCode, Option<Response>) {
        self.write_as(session, &ip_auth(), req)
    }

    /// The error code of a write.
    pub fn code(&mut self, session: i64, req: &Request) -> ErrorCode {
        self.write(session, req).0
    }

    pub fn read_as(
        &mut self,
        session: i64,
        auth: &[Id],
        req: &Request,
    ) -> Result<Response, ErrorCode> {
        read::serve_and_watch(&self.tree, &mut self.watches, SessionId(session), auth, req)
            .expect("a read")
    }

    pub fn read(&mut self, session: i64, req: &Request) -> Result<Response, ErrorCode> {
        self.read_as(session, &ip_auth(), req)
    }

    pub fn stat(&self, path: &str) -> Stat {
        self.tree.get(path).expect("node exists").stat()
    }

    pub fn data(&self, path: &str) -> Option<Bytes> {
        self.tree.get(path).expect("node exists").data.clone()
    }

    pub fn take_events(&mut self) -> Vec<(i64, i32, String)> {
        std::mem::take(&mut self.events)
    }

    /// The created path of a successful create reply.
    pub fn created(&mut self, session: i64, req: &Request) -> String {
        match self.write(session, req) {
            (ErrorCode::Ok, Some(Response::Create(c))) => c.path,
            (ErrorCode::Ok, Some(Response::Create2(c))) => c.path,
            other => panic!("create failed: {other:?}"),
        }
    }
}

pub fn create_req(path: &str, data: &[u8], flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: ids::open_acl_unsafe(),
        flags,
    }
}

pub fn create(path: &str, flags: i32) -> Request {
    Request::Create(create_req(path, b"", flags))
}

pub fn create2(path: &str, flags: i32) -> Request {
    Request::Create2(create_req(path, b"", flags))
}

pub fn create_acl(path: &str, acl: Vec<Acl>) -> Request {
    Request::Create(CreateRequest {
        acl,
        ..create_req(path, b"", 0)
    })
}

pub fn create_ttl(path: &str, flags: i32, ttl: i64) -> Request {
    Request::CreateTtl(CreateTtlRequest {
        path: path.into(),
        data: Some(Bytes::new()),
        acl: ids::open_acl_unsafe(),
        flags,
        ttl,
    })
}

pub fn delete(path: &str, version: i32) -> Request {
    Request::Delete(DeleteRequest {
        path: path.into(),
        version,
    })
}

pub fn set_data(path: &str, data: &[u8], version: i32) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        version,
    })
}

pub fn get_data(path: &str, watch: bool) -> Request {
    Request::GetData(GetDataRequest {
        path: path.into(),
        watch,
    })
}

pub fn m_create(path: &str, flags: i32) -> MultiOp {
    MultiOp::Create {
        op: crate::proto::op::CREATE,
        req: create_req(path, b"", flags),
    }
}

pub fn m_check(path: &str, version: i32) -> MultiOp {
    MultiOp::Check(CheckVersionRequest {
        path: path.into(),
        version,
    })
}
