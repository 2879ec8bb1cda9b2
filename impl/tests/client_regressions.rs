//! Byte-level regression tests for server bugs that unmodified ZooKeeper clients (kazoo,
//! zkCli / the Java client, the Rust `zookeeper-client`) revealed against `zabd`: each test
//! sends exactly what that client sends and checks what it relies on.

mod support;

use bytes::{Buf as _, Bytes, BytesMut};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::Ensemble;
use zab_zk::proto::{
    self, ConnectRequest, GetDataRequest, ReplyHeader, Request, SetWatches, WatcherEvent,
};

const STABLE: Duration = Duration::from_secs(90);

/// One raw client connection: frames out, frames in.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

enum Frame {
    Event(WatcherEvent),
    Reply(ReplyHeader),
}

impl Raw {
    /// Connects and opens a new session (or re-attaches `session` with `passwd`).
    fn connect(addr: SocketAddr, session: i64, passwd: Bytes, last_zxid: i64) -> (Raw, i64, Bytes) {
        let deadline = Instant::now() + STABLE;
        loop {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("tcp");
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("timeout");
            let mut raw = Raw {
                stream,
                buf: BytesMut::new(),
            };
            let req = ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: last_zxid,
                timeout: 30_000,
                session_id: session,
                passwd: passwd.clone(),
                read_only: Some(false),
            };
            raw.stream
                .write_all(&proto::encode_connect_request(&req))
                .expect("write");
            if let Some(payload) = raw.frame() {
                let resp = proto::decode_connect_response(&payload).expect("ConnectResponse");
                assert_ne!(resp.session_id, 0, "session refused");
                return (raw, resp.session_id, resp.passwd);
            }
            // Not serving yet: the server closed the connection.
            assert!(Instant::now() < deadline, "no session on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The next frame's payload, or `None` when the server closed the connection.
    fn frame(&mut self) -> Option<Bytes> {
        loop {
            if self.buf.len() >= 4 {
                let len = (&self.buf[..4]).get_i32() as usize;
                if self.buf.len() >= 4 + len {
                    let mut f = self.buf.split_to(4 + len);
                    f.advance(4);
                    return Some(f.freeze());
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn send(&mut self, xid: i32, req: &Request) {
        self.stream
            .write_all(&proto::encode_request(xid, req))
            .expect("write");
    }

    fn next(&mut self, op: i32) -> Frame {
        let payload = self.frame().expect("the server closed the connection");
        match proto::decode_reply(&payload, |_| op).expect("reply") {
            proto::Reply::Notification(ev) => Frame::Event(ev),
            proto::Reply::Reply(h, _) => Frame::Reply(h),
        }
    }
}

/// Bug: a SetWatches reply always carried xid -8. The Java client's NIO socket gives
/// SetWatches the next normal xid (`ClientCnxnSocketNIO.doIO` renumbers every packet but ping
/// and auth) and requires replies in xid order, so after moving to another server zkCli saw
/// "Xid out of order. Got Xid -8 … expected Xid 4", dropped the connection and reconnected
/// again. ZooKeeper echoes the request's xid.
#[test]
fn set_watches_replies_echo_the_request_xid() {
    let e = Ensemble::start(1, "");
    e.wait_stable(STABLE);
    let addr = e.node(1).client;
    let (mut a, _, _) = Raw::connect(addr, 0, Bytes::from_static(&[0; 16]), 0);
    a.send(
        1,
        &Request::Create(proto::CreateRequest {
            path: "/w".into(),
            data: Some(Bytes::from_static(b"v0")),
            acl: proto::ids::open_acl_unsafe(),
            flags: 0,
        }),
    );
    let Frame::Reply(h) = a.next(proto::op::CREATE) else {
        panic!("expected the create's reply");
    };
    assert_eq!((h.xid, h.err), (1, 0));
    let seen = h.zxid;
    a.send(
        2,
        &Request::SetData(proto::SetDataRequest {
            path: "/w".into(),
            data: Some(Bytes::from_static(b"v1")),
            version: -1,
        }),
    );
    assert!(matches!(a.next(proto::op::SET_DATA), Frame::Reply(h) if h.xid == 2));

    // Java after a reconnect: SetWatches with xid 4 (its next xid), a getData pipelined behind.
    let (mut b, _, _) = Raw::connect(addr, 0, Bytes::from_static(&[0; 16]), 0);
    let watches = SetWatches {
        relative_zxid: seen,
        data_watches: vec!["/w".into()],
        exist_watches: vec![],
        child_watches: vec![],
    };
    b.send(4, &Request::SetWatches(watches.clone()));
    b.send(
        5,
        &Request::GetData(GetDataRequest {
            path: "/w".into(),
            watch: false,
        }),
    );
    let mut replies = Vec::new();
    let mut events = Vec::new();
    while replies.len() < 2 {
        match b.next(if replies.is_empty() {
            proto::op::SET_WATCHES
        } else {
            proto::op::GET_DATA
        }) {
            Frame::Event(ev) => events.push((ev.event_type, ev.path)),
            Frame::Reply(h) => replies.push((h.xid, h.err)),
        }
    }
    assert_eq!(
        replies,
        vec![(4, 0), (5, 0)],
        "replies in request order, xids echoed"
    );
    assert_eq!(
        events,
        vec![(3, "/w".to_string())],
        "the missed change fires at once"
    );

    // The Rust crate and kazoo-style raw clients send -8: still answered with -8.
    b.send(-8, &Request::SetWatches(watches));
    loop {
        match b.next(proto::op::SET_WATCHES) {
            Frame::Event(_) => {}
            Frame::Reply(h) => {
                assert_eq!((h.xid, h.err), (-8, 0));
                break;
            }
        }
    }
}

/// Bug: an auth reply always carried xid -4. The Rust `zookeeper-client` sends `auth` with an
/// ordinary xid and matches the reply by it; on "recv response with xid -4 but no pending
/// request" it dropped the connection, reconnected, re-sent the auth, and looped forever.
/// ZooKeeper (`ZooKeeperServer.processPacket`) echoes the request's xid, for failures too.
#[test]
fn auth_replies_echo_the_request_xid() {
    let e = Ensemble::start(1, "");
    e.wait_stable(STABLE);
    let addr = e.node(1).client;
    let (mut a, _, _) = Raw::connect(addr, 0, Bytes::from_static(&[0; 16]), 0);
    let digest = |xid: i32, scheme: &str| {
        (
            xid,
            Request::Auth(proto::AuthPacket {
                auth_type: 0,
                scheme: scheme.into(),
                auth: Bytes::from_static(b"alice:secret"),
            }),
        )
    };
    for (xid, req) in [digest(7, "digest"), digest(-4, "digest")] {
        a.send(xid, &req);
        match a.next(proto::op::AUTH) {
            Frame::Reply(h) => assert_eq!((h.xid, h.zxid, h.err), (xid, 0, 0)),
            Frame::Event(ev) => panic!("unexpected event {ev:?}"),
        }
    }
    // An unknown scheme: AUTHFAILED (-115) with the request's xid, then the connection closes.
    let (xid, req) = digest(8, "nosuchscheme");
    a.send(xid, &req);
    match a.next(proto::op::AUTH) {
        Frame::Reply(h) => assert_eq!((h.xid, h.err), (8, -115)),
        Frame::Event(ev) => panic!("unexpected event {ev:?}"),
    }
    assert!(
        a.frame().is_none(),
        "the connection is closed after AUTHFAILED"
    );
}
