//! Application frames between servers (carried by `wire::Frame::App`): writes forwarded to the
//! leader, session creation, session activity reports, and `sync` barriers.
//!
//! Encoding: one kind byte (the frame's `App` kind) and a big-endian body. Decoding returns
//! `None` on anything malformed; the receiver drops such a frame (and logs it).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zab_spec::{SessionId, Zxid};
use zab_zk::proto::Id;

/// A frame of the client service between servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceFrame {
    /// A client write for the leader to prepare: the request's payload as the client sent it
    /// (header and body) and the auth ids of its connection.
    Forward {
        /// The session.
        session: SessionId,
        /// The connection's auth ids.
        auth: Vec<Id>,
        /// Request header and body.
        payload: Bytes,
    },
    /// A new session opened at the sending server.
    CreateSession {
        /// The session id the sender allocated.
        session: SessionId,
        /// The negotiated timeout, ms.
        timeout: i32,
        /// The password the sender gave the session.
        passwd: [u8; 16],
    },
    /// Sessions active at the sender since its last report (the sender owns them).
    Touch {
        /// The sessions.
        sessions: Vec<SessionId>,
    },
    /// A `sync` barrier request.
    Sync {
        /// The session.
        session: SessionId,
        /// The request's xid.
        xid: i32,
    },
    /// The leader's answer: the sender is in sync once it delivered `zxid`.
    SyncDone {
        /// The session.
        session: SessionId,
        /// The request's xid.
        xid: i32,
        /// The leader's last proposed zxid when it answered.
        zxid: Zxid,
    },
}

const FORWARD: u8 = 1;
const CREATE_SESSION: u8 = 2;
const TOUCH: u8 = 3;
const SYNC: u8 = 4;
const SYNC_DONE: u8 = 5;

fn put_str(out: &mut BytesMut, s: &str) {
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    if buf.len() < 4 {
        return None;
    }
    let n = buf.get_u32() as usize;
    if buf.len() < n {
        return None;
    }
    let s = String::from_utf8(buf[..n].to_vec()).ok()?;
    buf.advance(n);
    Some(s)
}

impl ServiceFrame {
    /// The `App` kind byte and the body.
    #[must_use]
    pub fn encode(&self) -> (u8, Bytes) {
        let mut out = BytesMut::new();
        let kind = match self {
            ServiceFrame::Forward {
                session,
                auth,
                payload,
            } => {
                out.put_i64(session.0);
                out.put_u32(auth.len() as u32);
                for id in auth {
                    put_str(&mut out, &id.scheme);
                    put_str(&mut out, &id.id);
                }
                out.put_slice(payload);
                FORWARD
            }
            ServiceFrame::CreateSession {
                session,
                timeout,
                passwd,
            } => {
                out.put_i64(session.0);
                out.put_i32(*timeout);
                out.put_slice(passwd);
                CREATE_SESSION
            }
            ServiceFrame::Touch { sessions } => {
                out.put_u32(sessions.len() as u32);
                for s in sessions {
                    out.put_i64(s.0);
                }
                TOUCH
            }
            ServiceFrame::Sync { session, xid } => {
                out.put_i64(session.0);
                out.put_i32(*xid);
                SYNC
            }
            ServiceFrame::SyncDone { session, xid, zxid } => {
                out.put_i64(session.0);
                out.put_i32(*xid);
                out.put_u64(zxid.to_u64());
                SYNC_DONE
            }
        };
        (kind, out.freeze())
    }

    /// Decodes a frame; `None` if malformed.
    #[must_use]
    pub fn decode(kind: u8, data: &Bytes) -> Option<ServiceFrame> {
        let mut buf: &[u8] = data;
        let frame = match kind {
            FORWARD => {
                if buf.len() < 12 {
                    return None;
                }
                let session = SessionId(buf.get_i64());
                let n = buf.get_u32() as usize;
                if n > 1024 {
                    return None;
                }
                let mut auth = Vec::with_capacity(n);
                for _ in 0..n {
                    let scheme = get_str(&mut buf)?;
                    let id = get_str(&mut buf)?;
                    auth.push(Id::new(&scheme, &id));
                }
                let payload = data.slice(data.len() - buf.len()..);
                buf = &[];
                ServiceFrame::Forward {
                    session,
                    auth,
                    payload,
                }
            }
            CREATE_SESSION => {
                if buf.len() != 28 {
                    return None;
                }
                let session = SessionId(buf.get_i64());
                let timeout = buf.get_i32();
                let mut passwd = [0u8; 16];
                buf.copy_to_slice(&mut passwd);
                ServiceFrame::CreateSession {
                    session,
                    timeout,
                    passwd,
                }
            }
            TOUCH => {
                if buf.len() < 4 {
                    return None;
                }
                let n = buf.get_u32() as usize;
                if buf.len() != n.checked_mul(8)? {
                    return None;
                }
                let sessions = (0..n).map(|_| SessionId(buf.get_i64())).collect();
                ServiceFrame::Touch { sessions }
            }
            SYNC => {
                if buf.len() != 12 {
                    return None;
                }
                ServiceFrame::Sync {
                    session: SessionId(buf.get_i64()),
                    xid: buf.get_i32(),
                }
            }
            SYNC_DONE => {
                if buf.len() != 20 {
                    return None;
                }
                ServiceFrame::SyncDone {
                    session: SessionId(buf.get_i64()),
                    xid: buf.get_i32(),
                    zxid: Zxid::from_u64(buf.get_u64()),
                }
            }
            _ => return None,
        };
        buf.is_empty().then_some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let frames = [
            ServiceFrame::Forward {
                session: SessionId(7),
                auth: vec![Id::new("ip", "127.0.0.1"), Id::new("digest", "alice:x")],
                payload: Bytes::from_static(b"\x00\x00\x00\x01\x00\x00\x00\x05rest"),
            },
            ServiceFrame::CreateSession {
                session: SessionId(-3),
                timeout: 4000,
                passwd: [9; 16],
            },
            ServiceFrame::Touch {
                sessions: vec![SessionId(1), SessionId(2)],
            },
            ServiceFrame::Sync {
                session: SessionId(9),
                xid: 3,
            },
            ServiceFrame::SyncDone {
                session: SessionId(9),
                xid: 3,
                zxid: Zxid::new(2, 5),
            },
        ];
        for f in frames {
            let (kind, data) = f.encode();
            assert_eq!(ServiceFrame::decode(kind, &data), Some(f));
        }
        assert_eq!(ServiceFrame::decode(9, &Bytes::new()), None);
        assert_eq!(
            ServiceFrame::decode(TOUCH, &Bytes::from_static(&[0, 0, 0, 9, 1])),
            None
        );
        assert_eq!(
            ServiceFrame::decode(FORWARD, &Bytes::from_static(&[0; 11])),
            None
        );
    }
}
