//! Wire tests: frames captured from a live ZooKeeper 3.8 (wire doc §2, §10), request
//! decoding outcomes (unimplemented, marshalling errors, multi framing), reply shapes.

use super::*;
use crate::jute::{DEFAULT_MAX_BUFFER, Reader, Record};
use bytes::Bytes;
use zab_spec::ErrorCode;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

#[test]
fn connect_request_captured_bytes() {
    let mut wire = hex("0000002d 00000000 0000000000000000 00007530 0000000000000000 00000010");
    wire.extend_from_slice(&[0u8; 16]);
    wire.push(0);
    assert_eq!(wire.len(), 49);
    let req = ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 30000,
        session_id: 0,
        passwd: Bytes::from_static(&[0; 16]),
        read_only: Some(false),
    };
    assert_eq!(encode_connect_request(&req).as_ref(), wire.as_slice());
    assert_eq!(decode_connect_request(&wire[4..]), Ok(req.clone()));
    // An old client without the readOnly byte.
    assert_eq!(
        decode_connect_request(&wire[4..48]),
        Ok(ConnectRequest {
            read_only: None,
            ..req
        })
    );
    assert!(decode_connect_request(&wire[4..30]).is_err());
}

#[test]
fn connect_response_captured_bytes() {
    let passwd: Vec<u8> = (1..=16).collect();
    let mut wire = hex("00000025 00000000 00007530 01000014f4480003 00000010");
    wire.extend_from_slice(&passwd);
    wire.push(0);
    assert_eq!(wire.len(), 41);
    let resp = ConnectResponse {
        protocol_version: 0,
        timeout: 30000,
        session_id: 0x0100_0014_f448_0003,
        passwd: Bytes::from(passwd),
        read_only: Some(false),
    };
    assert_eq!(encode_connect_response(&resp).as_ref(), wire.as_slice());
    assert_eq!(decode_connect_response(&wire[4..]), Ok(resp));
    let refused = encode_connect_response(&ConnectResponse::refused(true));
    assert_eq!(refused.len(), 41);
    assert_eq!(&refused[4..20], &[0u8; 16][..]);
}

#[test]
fn get_data_and_ping_requests_captured_bytes() {
    let mut wire = hex("0000001e 00000001 00000004 00000011");
    wire.extend_from_slice(b"/zookeeper/config");
    wire.push(0);
    let req = Request::GetData(GetDataRequest {
        path: "/zookeeper/config".into(),
        watch: false,
    });
    assert_eq!(encode_request(1, &req).as_ref(), wire.as_slice());
    let (h, body) = decode_request(&wire[4..], DEFAULT_MAX_BUFFER).unwrap_or_default_pair();
    assert_eq!((h.xid, h.op), (1, op::GET_DATA));
    assert_eq!(body, Ok(req));

    let ping = hex("00000008 fffffffe 0000000b");
    assert_eq!(
        encode_request(xid::PING, &Request::Ping).as_ref(),
        ping.as_slice()
    );
    let (h, body) = decode_request(&ping[4..], DEFAULT_MAX_BUFFER).unwrap_or_default_pair();
    assert_eq!((h.xid, body), (-2, Ok(Request::Ping)));
}

trait Pair {
    fn unwrap_or_default_pair(self) -> (RequestHeader, Result<Request, RequestError>);
}

impl Pair for Result<(RequestHeader, Result<Request, RequestError>), crate::jute::JuteError> {
    fn unwrap_or_default_pair(self) -> (RequestHeader, Result<Request, RequestError>) {
        self.unwrap_or((
            RequestHeader::default(),
            Err(RequestError::Unimplemented { op: -99 }),
        ))
    }
}

#[test]
fn ping_and_close_replies_are_bare_headers() {
    let wire = hex("00000010 fffffffe 0000000200000019 00000000");
    let h = ReplyHeader {
        xid: -2,
        zxid: 0x2_0000_0019,
        err: 0,
    };
    assert_eq!(encode_reply(&h, None).as_ref(), wire.as_slice());
    assert_eq!(
        decode_reply(&wire[4..], |_| op::PING),
        Ok(Reply::Reply(h, None))
    );
}

#[test]
fn error_replies_have_no_body_but_multi_always_has_one() {
    let h = ReplyHeader {
        xid: 5,
        zxid: 9,
        err: ErrorCode::NoNode.code(),
    };
    let frame = encode_reply(&h, None);
    assert_eq!(frame.len(), 20, "16-byte payload");
    assert_eq!(
        decode_reply(&frame[4..], |_| op::GET_DATA),
        Ok(Reply::Reply(h, None))
    );
    // §10: multi [create, check(v99), create] → header err 0, [(-1,0),(-1,-103),(-1,-2)].
    let results = vec![
        MultiResult::Error { err: 0 },
        MultiResult::Error { err: -103 },
        MultiResult::Error { err: -2 },
    ];
    let h = ReplyHeader {
        xid: 6,
        zxid: 10,
        err: 0,
    };
    let frame = encode_reply(&h, Some(&Response::Multi(results.clone())));
    let mut expected = hex("00000010 00000006 000000000000000a 00000000");
    for e in [0i32, -103, -2] {
        expected.extend_from_slice(&hex("ffffffff 00"));
        expected.extend_from_slice(&e.to_be_bytes());
        expected.extend_from_slice(&e.to_be_bytes());
    }
    expected.extend_from_slice(&hex("ffffffff 01 ffffffff"));
    let len = (expected.len() - 4) as i32;
    expected[..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(frame.as_ref(), expected.as_slice());
    assert_eq!(
        decode_reply(&frame[4..], |_| op::MULTI),
        Ok(Reply::Reply(h, Some(Response::Multi(results))))
    );
}

#[test]
fn reply_sizes_match_the_transcript() {
    let h = ReplyHeader::default();
    // create /probe → frame_len 26; create2 → 96; addWatch body 00000000.
    let create = encode_reply(
        &h,
        Some(&Response::Create(CreateResponse {
            path: "/probe".into(),
        })),
    );
    assert_eq!(create.len() - 4, 26);
    let create2 = encode_reply(
        &h,
        Some(&Response::Create2(Create2Response {
            path: "/probe/a".into(),
            stat: Stat::default(),
        })),
    );
    assert_eq!(create2.len() - 4, 96);
    assert_eq!(Stat::default().to_bytes().len(), 68);
    let add = encode_reply(&h, Some(&Response::AddWatch(ErrorResponse { err: 0 })));
    assert_eq!(&add[20..], &[0, 0, 0, 0]);
}

#[test]
fn request_decoding_outcomes() {
    let body = |op: i32, b: &[u8]| Request::decode(op, b, DEFAULT_MAX_BUFFER);
    // unknown opcode (verified 999 → -6) and internal ones
    for op in [999, op::NOTIFICATION, op::CREATE_SESSION, op::ERROR] {
        assert_eq!(
            body(op, &[]).map_err(|e| e.code()),
            Err(ErrorCode::Unimplemented),
            "{op}"
        );
    }
    // truncated body
    assert_eq!(
        body(op::GET_DATA, &[0, 0, 0, 5, b'/']).map_err(|e| e.code()),
        Err(ErrorCode::MarshallingError)
    );
    // null path
    assert!(matches!(
        body(op::GET_DATA, &[0xff, 0xff, 0xff, 0xff, 0]),
        Err(RequestError::Marshalling { .. })
    ));
    // trailing bytes are ignored
    let mut sync = SyncRequest { path: "/a".into() }.to_bytes().to_vec();
    sync.extend_from_slice(b"junk");
    assert_eq!(
        body(op::SYNC, &sync),
        Ok(Request::Sync(SyncRequest { path: "/a".into() }))
    );
    // a header that does not parse is the only hard error
    assert!(decode_request(&[0, 0, 0, 1], DEFAULT_MAX_BUFFER).is_err());
    // oversized string inside a record
    let mut big = vec![0x00, 0x20, 0x00, 0x00];
    big.extend_from_slice(&[b'a'; 16]);
    assert!(matches!(
        body(op::SYNC, &big),
        Err(RequestError::Marshalling {
            error: crate::jute::JuteError::TooLong { .. },
            ..
        })
    ));
}

#[test]
fn multi_framing_and_mixing() {
    let ops = vec![
        MultiOp::Create {
            op: op::CREATE2,
            req: CreateRequest {
                path: "/a".into(),
                data: None,
                acl: ids::open_acl_unsafe(),
                flags: 0,
            },
        },
        MultiOp::Check(CheckVersionRequest {
            path: "/a".into(),
            version: 3,
        }),
        MultiOp::Delete(DeleteRequest {
            path: "/a".into(),
            version: -1,
        }),
    ];
    let req = Request::Multi(ops);
    let mut w = crate::jute::Writer::new();
    req.write_body(&mut w);
    let bytes = w.into_vec();
    // first header: type 15, done false, err -1
    assert_eq!(&bytes[..9], &hex("0000000f 00 ffffffff")[..]);
    // terminator
    assert_eq!(&bytes[bytes.len() - 9..], &hex("ffffffff 01 ffffffff")[..]);
    assert_eq!(
        Request::decode(op::MULTI, &bytes, DEFAULT_MAX_BUFFER),
        Ok(req)
    );
    // the same ops are not a multiRead
    assert!(matches!(
        Request::decode(op::MULTI_READ, &bytes, DEFAULT_MAX_BUFFER),
        Err(RequestError::Marshalling { .. })
    ));
    // a read op in a write multi is a marshalling error
    let read = Request::MultiRead(vec![MultiReadOp::GetData(GetDataRequest {
        path: "/a".into(),
        watch: false,
    })]);
    let mut w = crate::jute::Writer::new();
    read.write_body(&mut w);
    let bytes = w.into_vec();
    assert!(matches!(
        Request::decode(op::MULTI, &bytes, DEFAULT_MAX_BUFFER),
        Err(RequestError::Marshalling { .. })
    ));
    assert_eq!(
        Request::decode(op::MULTI_READ, &bytes, DEFAULT_MAX_BUFFER),
        Ok(read)
    );
    // a multi without terminator is truncated
    assert!(Request::decode(op::MULTI, &bytes[..bytes.len() - 9], DEFAULT_MAX_BUFFER).is_err());
}

#[test]
fn notifications_decode_on_the_client_side() {
    let ev = WatcherEvent {
        event_type: event_type::NODE_DELETED,
        state: keeper_state::SYNC_CONNECTED,
        path: "/x".into(),
    };
    let f = encode_notification(&ev);
    assert_eq!(decode_reply(&f[4..], |_| 0), Ok(Reply::Notification(ev)));
}

#[test]
fn request_helpers() {
    let r = Request::Create2(CreateRequest::default());
    assert!(r.is_write());
    assert_eq!(r.op(), op::CREATE2);
    assert!(!Request::Ping.is_write());
    assert!(op::is_write(op::CLOSE_SESSION));
    assert!(!op::is_write(op::SYNC));
    assert_eq!(
        Request::GetEphemerals(GetEphemeralsRequest { prefix_path: None }).path(),
        None
    );
    let mut r = Reader::new(&[]);
    assert_eq!(Response::decode(op::DELETE, &mut r), Ok(None));
}

/// kazoo's `CREATOR_ALL_ACL` is `ACL(31, Id("auth", ""))` and kazoo writes an empty string as
/// jute's null (length -1): ZooKeeper reads it as null and `fixupACL` ignores the id of an
/// `auth` entry, so the create succeeds there and must decode here.
#[test]
fn a_null_acl_id_reads_as_empty() {
    let mut body = Vec::new();
    for chunk in [
        &[0, 0, 0, 2][..],
        b"/a",
        &[0xff, 0xff, 0xff, 0xff],
        &[0, 0, 0, 1, 0, 0, 0, 31, 0, 0, 0, 4],
        b"auth",
        &[0xff, 0xff, 0xff, 0xff],
        &[0, 0, 0, 0],
    ] {
        body.extend_from_slice(chunk);
    }
    match Request::decode(op::CREATE, &body, DEFAULT_MAX_BUFFER) {
        Ok(Request::Create(c)) => {
            assert_eq!(c.acl, vec![Acl::new(31, "auth", "")]);
            assert_eq!(c.data, None);
        }
        other => panic!("{other:?}"),
    }
    let id = Id::read(&mut Reader::new(&[
        0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, b'x',
    ]))
    .unwrap();
    assert_eq!(id, Id::new("", "x"));
}
