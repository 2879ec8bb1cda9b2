//! A raw ZooKeeper client connection for tests: exact bytes out, whole frames in (with their
//! length), watch notifications in arrival order, and telling a connection the server closed
//! from one that is merely quiet.

use bytes::{Bytes, BytesMut};
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use zab_zk::proto::{
    self, ConnectRequest, ConnectResponse, FrameDecoder, ReplyHeader, Request, Response,
    WatcherEvent,
};

/// How a read ended without a frame.
#[derive(Debug)]
pub enum WireError {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing (complete) arrived in time.
    Timeout,
    /// A frame that does not decode as expected.
    Protocol(String),
}

/// A reply with the notifications that arrived before it and its frame's payload length.
#[derive(Debug)]
pub struct Reply {
    /// Notifications received before the reply, in order.
    pub events: Vec<WatcherEvent>,
    /// The reply header.
    pub header: ReplyHeader,
    /// The body, when there is one.
    pub body: Option<Response>,
    /// The frame's payload length.
    pub len: usize,
}

/// One TCP connection to a client port.
pub struct Wire {
    stream: TcpStream,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_xid: i32,
}

impl Wire {
    /// Connects (no handshake).
    pub fn open(addr: SocketAddr) -> std::io::Result<Wire> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(Wire {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(64 << 20),
            next_xid: 1,
        })
    }

    /// Connects and opens a new session (timeout 30 s, with the readOnly byte).
    pub fn session(addr: SocketAddr) -> Result<(Wire, ConnectResponse), WireError> {
        let mut w = Wire::open(addr).map_err(|e| WireError::Protocol(e.to_string()))?;
        let resp = w.handshake(&new_session_request())?;
        Ok((w, resp))
    }

    /// Sends a `ConnectRequest` and reads the `ConnectResponse`.
    pub fn handshake(&mut self, req: &ConnectRequest) -> Result<ConnectResponse, WireError> {
        self.write(&proto::encode_connect_request(req))
            .map_err(|_| WireError::Closed)?;
        let payload = self.read_frame(Duration::from_secs(10))?;
        proto::decode_connect_response(&payload).map_err(|e| WireError::Protocol(e.to_string()))
    }

    /// A second handle on the socket (to write from another thread while this one reads).
    pub fn try_clone_stream(&self) -> std::io::Result<TcpStream> {
        self.stream.try_clone()
    }

    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// The next xid of a normal request.
    pub fn next_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid += 1;
        x
    }

    /// Reads one whole frame's payload, waiting up to `timeout`.
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Bytes, WireError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => return Ok(frame),
                Ok(None) => {}
                Err(e) => return Err(WireError::Protocol(e.to_string())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(WireError::Timeout);
            }
            let _ = self.stream.set_read_timeout(Some(left));
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(WireError::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(WireError::Timeout);
                }
                Err(_) => return Err(WireError::Closed),
            }
        }
    }

    /// Sends `req` with the right xid (special ones for ping, auth, setWatches) and waits for
    /// its reply, collecting the notifications before it.
    pub fn call(&mut self, req: &Request, timeout: Duration) -> Result<Reply, WireError> {
        let xid = match req {
            Request::Ping => proto::xid::PING,
            Request::Auth(_) => proto::xid::AUTH,
            Request::SetWatches(_) | Request::SetWatches2(_) => proto::xid::SET_WATCHES,
            _ => self.next_xid(),
        };
        self.write(&proto::encode_request(xid, req))
            .map_err(|_| WireError::Closed)?;
        self.reply_to(xid, req.op(), timeout)
    }

    /// Waits for the reply to `xid` (a request of opcode `op`), collecting notifications.
    pub fn reply_to(&mut self, xid: i32, op: i32, timeout: Duration) -> Result<Reply, WireError> {
        let mut events = Vec::new();
        loop {
            let payload = self.read_frame(timeout)?;
            let len = payload.len();
            let reply = proto::decode_reply(&payload, |_| op)
                .map_err(|e| WireError::Protocol(format!("reply to op {op}: {e}")))?;
            match reply {
                proto::Reply::Notification(ev) => events.push(ev),
                proto::Reply::Reply(header, body) if header.xid == xid => {
                    return Ok(Reply {
                        events,
                        header,
                        body,
                        len,
                    });
                }
                proto::Reply::Reply(header, _) => {
                    return Err(WireError::Protocol(format!(
                        "reply xid {} while waiting for {xid}",
                        header.xid
                    )));
                }
            }
        }
    }

    /// Whether the server closes the connection within `timeout` (frames that arrive first
    /// are discarded).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match self.read_frame(left) {
                Ok(_) => {}
                Err(WireError::Closed) => return true,
                Err(WireError::Timeout) => return false,
                Err(WireError::Protocol(_)) => {
                    self.buf.clear();
                }
            }
        }
    }
}

/// The handshake of a new session: protocol 0, timeout 30 s, readOnly byte false.
pub fn new_session_request() -> ConnectRequest {
    ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout: 30_000,
        session_id: 0,
        passwd: Bytes::from_static(&[0u8; 16]),
        read_only: Some(false),
    }
}
