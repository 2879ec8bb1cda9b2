//! Bad input on the client port: malformed and oversized frames, unknown opcodes, invalid
//! paths, garbage before the handshake, a client that sends half a frame and stalls. Each
//! gets ZooKeeper's error reply or a closed connection; after each, the server still answers
//! `ruok` and a session opened before the bad input still works (its ephemeral node, its
//! watch and new requests).
//!
//! Runs against a standalone `zabd`; with `ZAB_REFERENCE_ZK=host:port`
//! (`ci/differential.sh --bad-input`) the same expectations are checked against a real
//! ZooKeeper 3.8, which is how they were verified.

#![allow(clippy::print_stderr)]

mod support;

use bytes::{BufMut, Bytes, BytesMut};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::standalone::{Standalone, ruok};
use support::wire::{Reply, Wire, WireError, new_session_request};
use zab_zk::proto::{
    self, ConnectRequest, CreateRequest, ExistsRequest, GetDataRequest, Request, Response,
    SetDataRequest, ids, op,
};

const IO: Duration = Duration::from_secs(10);

/// The server under test: a fresh `zabd`, or the reference ZooKeeper.
struct Target {
    addr: SocketAddr,
    zabd: Option<Standalone>,
    /// Unique node names per test and run (a reference server is shared).
    prefix: String,
}

impl Target {
    fn new(test: &str) -> Target {
        let prefix = format!("/bad-input-{}-{test}", std::process::id());
        match std::env::var("ZAB_REFERENCE_ZK") {
            Ok(a) if !a.is_empty() => Target {
                addr: a.parse().expect("ZAB_REFERENCE_ZK=host:port"),
                zabd: None,
                prefix,
            },
            _ => {
                let s = Standalone::start("", &[]);
                Target {
                    addr: s.addr,
                    zabd: Some(s),
                    prefix,
                }
            }
        }
    }

    /// A session opened before the bad input: it holds an ephemeral node and a data watch
    /// on it.
    fn bystander(&self) -> Bystander {
        let (mut wire, _) = Wire::session(self.addr).expect("bystander session");
        let path = format!("{}-bystander", self.prefix);
        let r = call(&mut wire, &create(&path, b"up", 1));
        assert_eq!(r.header.err, 0, "bystander create");
        let r = call(
            &mut wire,
            &Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: true,
            }),
        );
        assert_eq!(r.header.err, 0, "bystander getData");
        Bystander {
            wire,
            path,
            round: 0,
        }
    }

    /// The server is up: its process runs and it answers `ruok`.
    fn assert_up(&mut self, after: &str) {
        if let Some(s) = &mut self.zabd {
            assert!(s.alive(), "zabd exited after {after}");
        }
        assert!(ruok(self.addr), "no imok after {after}");
    }

    fn connect(&self) -> Wire {
        Wire::open(self.addr).expect("connect")
    }

    fn session(&self) -> Wire {
        Wire::session(self.addr).expect("session").0
    }
}

struct Bystander {
    wire: Wire,
    path: String,
    round: u32,
}

impl Bystander {
    /// The session still works: a write fires its watch (re-registered each time), a read
    /// sees the write.
    fn assert_works(&mut self, after: &str) {
        self.round += 1;
        let data = format!("round {}", self.round);
        let r = self
            .wire
            .call(
                &Request::SetData(SetDataRequest {
                    path: self.path.clone(),
                    data: Some(Bytes::from(data.clone())),
                    version: -1,
                }),
                IO,
            )
            .unwrap_or_else(|e| panic!("bystander setData after {after}: {e:?}"));
        assert_eq!(r.header.err, 0, "bystander setData after {after}");
        let r = self
            .wire
            .call(
                &Request::GetData(GetDataRequest {
                    path: self.path.clone(),
                    watch: true,
                }),
                IO,
            )
            .unwrap_or_else(|e| panic!("bystander getData after {after}: {e:?}"));
        assert_eq!(r.header.err, 0, "bystander getData after {after}");
        // The watch set by the previous getData fired before the reply to the setData or
        // this getData.
        match r.body {
            Some(Response::GetData(g)) => assert_eq!(g.data.as_deref(), Some(data.as_bytes())),
            other => panic!("bystander getData after {after}: {other:?}"),
        }
    }
}

fn call(wire: &mut Wire, req: &Request) -> Reply {
    wire.call(req, IO)
        .unwrap_or_else(|e| panic!("{req:?}: {e:?}"))
}

fn create(path: &str, data: &[u8], flags: i32) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: ids::open_acl_unsafe(),
        flags,
    })
}

/// A frame: the length, then `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u32(u32::try_from(payload.len()).expect("length"));
    out.put_slice(payload);
    out.to_vec()
}

/// A request frame with a raw body.
fn raw_request(xid: i32, opcode: i32, body: &[u8]) -> Vec<u8> {
    let mut p = BytesMut::new();
    p.put_i32(xid);
    p.put_i32(opcode);
    p.put_slice(body);
    frame(&p)
}

/// `ustring`.
fn jute_str(s: &str) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_u32(u32::try_from(s.len()).expect("length"));
    out.put_slice(s.as_bytes());
    out.to_vec()
}

/// Sends `bytes` on `wire` and expects the connection to be closed (a write error counts:
/// the server may reset it before everything is written).
fn expect_closed(wire: &mut Wire, bytes: &[u8], within: Duration, what: &str) {
    if wire.write(bytes).is_err() {
        return;
    }
    assert!(
        wire.closed_within(within),
        "{what}: the connection stayed open"
    );
}

/// Sends a raw request and returns the reply to `xid`.
fn raw_call(wire: &mut Wire, xid: i32, opcode: i32, body: &[u8], what: &str) -> Reply {
    wire.write(&raw_request(xid, opcode, body))
        .unwrap_or_else(|e| panic!("{what}: write: {e}"));
    wire.reply_to(xid, opcode, IO)
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

#[test]
fn garbage_before_the_handshake_closes_the_connection() {
    let mut t = Target::new("garbage");
    let mut b = t.bystander();
    let cases: &[(&str, Vec<u8>)] = &[
        // "GET " read as a length far above jute.maxbuffer.
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        (
            "a negative length",
            vec![0xff, 0xff, 0xff, 0xfe, 1, 2, 3, 4],
        ),
        (
            "random bytes",
            (0..64u8).map(|i| i.wrapping_mul(97)).collect(),
        ),
        // A frame of the right size holding something that is not a ConnectRequest.
        ("a truncated ConnectRequest", frame(&[0, 0, 0, 0, 0, 0, 0])),
        // The telnet interrupt ZooKeeper knows as a word closes too.
        (
            "a four-letter word ZooKeeper does not know",
            b"abcd".to_vec(),
        ),
    ];
    for (what, bytes) in cases {
        let mut w = t.connect();
        expect_closed(&mut w, bytes, IO, what);
        t.assert_up(what);
        b.assert_works(what);
    }
}

#[test]
fn oversized_frames_close_the_connection_and_a_frame_at_the_limit_is_served() {
    let mut t = Target::new("oversized");
    let mut b = t.bystander();
    // jute.maxbuffer is 0xfffff: a longer frame is refused as soon as its length is read.
    let mut w = t.connect();
    expect_closed(
        &mut w,
        &0x10_0000u32.to_be_bytes(),
        IO,
        "an oversized handshake length",
    );
    t.assert_up("an oversized handshake");
    b.assert_works("an oversized handshake");

    let mut w = t.session();
    let mut big = raw_request(1, op::SET_DATA, &[]);
    big[..4].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    expect_closed(&mut w, &big, IO, "a 2 GiB request length");
    t.assert_up("a 2 GiB request length");
    b.assert_works("a 2 GiB request length");

    // A whole frame one byte above the limit, written out.
    let mut w = t.session();
    let path = format!("{}-big", t.prefix);
    let mut body = jute_str(&path);
    let data_len = 0x10_0000 - 8 - body.len() - 4 - 4;
    body.put_u32(u32::try_from(data_len).expect("len"));
    body.resize(body.len() + data_len, b'x');
    body.put_i32(-1);
    let f = raw_request(1, op::SET_DATA, &body);
    assert_eq!(f.len() - 4, 0x10_0000);
    expect_closed(&mut w, &f, IO, "a frame one byte over jute.maxbuffer");
    t.assert_up("a frame over the limit");
    b.assert_works("a frame over the limit");

    // Just under the limit: an ephemeral node with ~1 MB of data is created and read back.
    let mut w = t.session();
    let data = vec![b'y'; 1_000_000];
    let r = call(&mut w, &create(&path, &data, 1));
    assert_eq!(r.header.err, 0, "a 1 MB create");
    let r = call(
        &mut w,
        &Request::Exists(ExistsRequest {
            path: path.clone(),
            watch: false,
        }),
    );
    match r.body {
        Some(Response::Exists(e)) => assert_eq!(e.stat.data_length, 1_000_000),
        other => panic!("exists of the big node: {other:?}"),
    }
    t.assert_up("a 1 MB create");
    b.assert_works("a 1 MB create");
}

#[test]
fn an_unknown_opcode_is_unimplemented_then_the_connection_closes() {
    let mut t = Target::new("opcode");
    let mut b = t.bystander();
    for (i, opcode) in [999, 23, 50, -3, i32::MAX].into_iter().enumerate() {
        let what = format!("opcode {opcode}");
        // ZooKeeper's UnimplementedRequestProcessor: -6 with zxid -1, then it closes the
        // connection (not the session).
        let (mut w, resp) = Wire::session(t.addr).expect("session");
        let xid = 10 + i32::try_from(i).expect("small");
        let r = raw_call(&mut w, xid, opcode, b"\x00\x00\x00\x01/", &what);
        assert_eq!(r.header.err, -6, "{what}");
        assert_eq!(r.header.zxid, -1, "{what}: zxid");
        assert!(r.body.is_none(), "{what}: an error reply has no body");
        assert!(w.closed_within(IO), "{what}: the connection stayed open");
        t.assert_up(&what);
        b.assert_works(&what);
        // The session survives: it re-attaches and serves requests.
        let mut again = t.connect();
        let back = again
            .handshake(&ConnectRequest {
                session_id: resp.session_id,
                passwd: resp.passwd.clone(),
                ..new_session_request()
            })
            .expect("re-attach");
        assert_eq!(
            back.session_id, resp.session_id,
            "{what}: the session is gone"
        );
        let r = call(
            &mut again,
            &Request::Exists(ExistsRequest {
                path: "/".into(),
                watch: false,
            }),
        );
        assert_eq!(r.header.err, 0, "{what}: after re-attaching");
        let r = call(&mut again, &Request::CloseSession);
        assert_eq!(r.header.err, 0);
    }
}

#[test]
fn malformed_request_bodies_are_marshalling_errors() {
    let mut t = Target::new("malformed");
    let mut b = t.bystander();
    let mut w = t.session();
    // (what, opcode, body): a string longer than the frame, a truncated field, a negative
    // length, an absurd vector count.
    let cases: Vec<(&str, i32, Vec<u8>)> = vec![
        ("getData: path length past the end", op::GET_DATA, {
            let mut v = vec![0, 0, 0, 50];
            v.extend_from_slice(b"/abc");
            v
        }),
        ("exists: no watch flag", op::EXISTS, jute_str("/")),
        (
            "getChildren: negative path length",
            op::GET_CHILDREN,
            vec![0x80, 0, 0, 0, 0],
        ),
        ("create: truncated after the data", op::CREATE, {
            let mut v = jute_str(&format!("{}-m", t.prefix));
            v.extend_from_slice(&[0, 0, 0, 1, b'x']);
            v
        }),
        ("create: ACL count past the end", op::CREATE, {
            let mut v = jute_str(&format!("{}-m", t.prefix));
            v.extend_from_slice(&[0, 0, 0, 0]);
            v.extend_from_slice(&[0x00, 0xff, 0xff, 0xff]);
            v
        }),
        ("setData: empty body", op::SET_DATA, Vec::new()),
        ("delete: truncated version", op::DELETE, {
            let mut v = jute_str(&format!("{}-m", t.prefix));
            v.extend_from_slice(&[0, 0]);
            v
        }),
    ];
    for (i, (what, opcode, body)) in cases.iter().enumerate() {
        let xid = 100 + i32::try_from(i).expect("small");
        let r = raw_call(&mut w, xid, *opcode, body, what);
        assert_eq!(r.header.err, -5, "{what}: MARSHALLINGERROR");
        assert!(r.body.is_none(), "{what}: an error reply has no body");
        t.assert_up(what);
        b.assert_works(what);
    }
    // Nothing was created, and the connection still serves requests.
    let r = call(
        &mut w,
        &Request::Exists(ExistsRequest {
            path: format!("{}-m", t.prefix),
            watch: false,
        }),
    );
    assert_eq!(r.header.err, -101);
}

#[test]
fn frames_that_break_the_stream_close_only_their_connection() {
    let mut t = Target::new("stream");
    let mut b = t.bystander();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // Too short for a request header.
        ("a 3-byte frame", frame(&[0, 0, 1])),
        // A four-letter word on an established session is a (huge) length.
        ("ruok on a session", b"ruok".to_vec()),
        ("a negative length on a session", vec![0x80, 0, 0, 0]),
    ];
    for (what, bytes) in cases {
        let mut w = t.session();
        expect_closed(&mut w, &bytes, IO, what);
        t.assert_up(what);
        b.assert_works(what);
    }
}

#[test]
fn invalid_paths_get_zookeepers_errors() {
    let mut t = Target::new("paths");
    let mut b = t.bystander();
    let mut w = t.session();
    // ZooKeeper checks that the parent exists (-101) before it validates the path (-8), so
    // the malformed names sit under nodes that exist.
    let creates: Vec<(String, i32)> = vec![
        ("no-slash".into(), -8),
        (String::new(), -8),
        ("/bad-input-missing/".into(), -101),
        ("//x".into(), -8),
        ("/.".into(), -8),
        ("/..".into(), -8),
        ("/zookeeper/.".into(), -8),
        ("/x\u{0}y".into(), -8),
        ("/\u{1}x".into(), -8),
        ("/\u{7f}x".into(), -8),
        ("/\u{fff0}x".into(), -8),
        ("/".into(), -110),
        ("/zookeeper".into(), -110),
        ("/zookeeper/x/y".into(), -101),
    ];
    for (path, code) in creates {
        let r = call(&mut w, &create(&path, b"", 0));
        assert_eq!(r.header.err, code, "create {path:?}");
        assert!(r.body.is_none());
    }
    // Reads take the path as it is: a malformed one is simply not there (a NUL is refused).
    for (path, code) in [
        ("no-slash", -101),
        ("/zookeeper/", -101),
        ("//", -101),
        ("/a\u{0}", -8),
    ] {
        let r = call(
            &mut w,
            &Request::Exists(ExistsRequest {
                path: path.into(),
                watch: false,
            }),
        );
        assert_eq!(r.header.err, code, "exists {path:?}");
    }
    t.assert_up("invalid paths");
    b.assert_works("invalid paths");
}

#[test]
fn a_client_that_stalls_mid_frame_is_dropped_and_nobody_else_waits() {
    let mut t = Target::new("stall");
    let mut b = t.bystander();
    let started = Instant::now();
    // Half a handshake: the server gives up on a sessionless connection (ZooKeeper:
    // zookeeper.nio.sessionlessCnxnTimeout, 10 s).
    let mut pre = t.connect();
    let hs = proto::encode_connect_request(&new_session_request());
    pre.write(&hs[..hs.len() / 2]).expect("half a handshake");
    // Half a request on a session with the shortest timeout (4 s): the session expires and
    // the server closes the connection.
    let mut stalled = t.connect();
    let req = ConnectRequest {
        timeout: 4000,
        ..new_session_request()
    };
    let resp = stalled.handshake(&req).expect("handshake");
    assert_eq!(resp.timeout, 4000);
    let half = proto::encode_request(
        1,
        &Request::GetData(GetDataRequest {
            path: "/zookeeper".into(),
            watch: false,
        }),
    );
    stalled.write(&half[..7]).expect("half a request");
    // Meanwhile everyone else is served, repeatedly.
    for i in 0..5 {
        b.assert_works(&format!("a stalled client ({i})"));
        t.assert_up("a stalled client");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        stalled.closed_within(Duration::from_secs(15)),
        "the stalled session was not expired"
    );
    assert!(
        pre.closed_within(Duration::from_secs(15)),
        "the half handshake was kept open"
    );
    eprintln!("stalled clients dropped after {:.1?}", started.elapsed());
    // The stalled session is gone: re-attaching is refused (zero session id).
    let mut again = t.connect();
    let back = again.handshake(&ConnectRequest {
        session_id: resp.session_id,
        passwd: resp.passwd.clone(),
        ..new_session_request()
    });
    match back {
        Ok(r) => assert_eq!(r.session_id, 0, "the expired session came back"),
        Err(WireError::Closed) => {}
        Err(e) => panic!("re-attach: {e:?}"),
    }
    t.assert_up("stalled clients");
    b.assert_works("stalled clients");
}
