//! A minimal blocking ZooKeeper client: one TCP connection (or any [`Transport`] over one,
//! e.g. a TLS stream), requests in order, no reconnect.
//!
//! It exists for the project's own tests, benchmarks and trace harness, which need exact
//! control over which server a request goes to and what happens when that server dies.
//! Applications should use a full client (kazoo, the Java client, the `zookeeper-client`
//! crate); the server is tested against those too.

use crate::proto::{
    self, ConnectRequest, CreateRequest, DeleteRequest, ExistsRequest, FrameDecoder,
    GetChildrenRequest, GetDataRequest, ReplyHeader, Request, Response, SetDataRequest, Stat,
    SyncRequest, WatcherEvent, ids, xid,
};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use zab_spec::ErrorCode;

/// What went wrong talking to the server (a ZooKeeper error *reply* is not one of these).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection failed or timed out.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The server closed the connection.
    #[error("the server closed the connection")]
    Closed,
    /// The server refused the session (expired, or unknown id/password).
    #[error("the server refused the session")]
    SessionRefused,
    /// A reply that does not decode or does not match a pending request.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// How to open a session.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Requested session timeout, ms.
    pub session_timeout_ms: i32,
    /// Re-attach to this session (id, password) instead of creating one.
    pub session: Option<(i64, Bytes)>,
    /// The last zxid this client has seen.
    pub last_zxid_seen: i64,
    /// How long to wait for the connection and for each reply.
    pub io_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            session_timeout_ms: 10_000,
            session: None,
            last_zxid_seen: 0,
            io_timeout: Duration::from_secs(10),
        }
    }
}

/// The byte stream a [`Client`] talks over: a `TcpStream`, or a stream wrapped around one
/// (TLS) that passes the read timeout through to the socket.
pub trait Transport: std::io::Read + std::io::Write + Send + std::fmt::Debug {
    /// The socket's read timeout.
    fn read_timeout(&self) -> std::io::Result<Option<Duration>>;
    /// Sets the socket's read timeout.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()>;
}

impl Transport for TcpStream {
    fn read_timeout(&self) -> std::io::Result<Option<Duration>> {
        TcpStream::read_timeout(self)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
}

/// A reply: the header and, on success, the body.
pub type Reply = (ReplyHeader, Option<Response>);

/// One session on one server.
#[derive(Debug)]
pub struct Client {
    stream: Box<dyn Transport>,
    buf: BytesMut,
    decoder: FrameDecoder,
    next_xid: i32,
    pending: VecDeque<(i32, i32)>,
    events: VecDeque<WatcherEvent>,
    /// The session id.
    pub session_id: i64,
    /// The session password.
    pub passwd: Bytes,
    /// The negotiated session timeout, ms.
    pub timeout_ms: i32,
    /// The highest zxid seen in a reply.
    pub last_zxid: i64,
}

impl Client {
    /// Opens a session on `addr`.
    pub fn connect(addr: SocketAddr, opts: &ConnectOptions) -> Result<Client, ClientError> {
        let stream = Client::tcp(addr, opts)?;
        Client::over(Box::new(stream), opts)
    }

    /// A TCP connection to `addr` with `opts`' timeouts and `TCP_NODELAY`, to wrap (in TLS)
    /// and pass to [`Client::over`].
    pub fn tcp(addr: SocketAddr, opts: &ConnectOptions) -> Result<TcpStream, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, opts.io_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(opts.io_timeout))?;
        stream.set_write_timeout(Some(opts.io_timeout))?;
        Ok(stream)
    }

    /// Opens a session over an established stream.
    pub fn over(stream: Box<dyn Transport>, opts: &ConnectOptions) -> Result<Client, ClientError> {
        let (session_id, passwd) = opts
            .session
            .clone()
            .unwrap_or((0, Bytes::from(vec![0; 16])));
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
            decoder: FrameDecoder::new(64 << 20),
            next_xid: 1,
            pending: VecDeque::new(),
            events: VecDeque::new(),
            session_id: 0,
            passwd: Bytes::new(),
            timeout_ms: 0,
            last_zxid: opts.last_zxid_seen,
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: opts.last_zxid_seen,
            timeout: opts.session_timeout_ms,
            session_id,
            passwd,
            read_only: Some(false),
        };
        c.stream.write_all(&proto::encode_connect_request(&req))?;
        c.stream.flush()?;
        let payload = c.read_frame()?;
        let resp = proto::decode_connect_response(&payload)
            .map_err(|e| ClientError::Protocol(format!("connect response: {e}")))?;
        if resp.session_id == 0 || resp.timeout <= 0 {
            return Err(ClientError::SessionRefused);
        }
        c.session_id = resp.session_id;
        c.passwd = resp.passwd;
        c.timeout_ms = resp.timeout;
        Ok(c)
    }

    fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        loop {
            if let Some(frame) = self
                .decoder
                .decode(&mut self.buf)
                .map_err(|e| ClientError::Protocol(e.to_string()))?
            {
                return Ok(frame);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(ClientError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a request without waiting for its reply (pipelining); returns its xid.
    pub fn send(&mut self, req: &Request) -> Result<i32, ClientError> {
        let x = match req {
            Request::Ping => xid::PING,
            Request::Auth(_) => xid::AUTH,
            Request::SetWatches(_) | Request::SetWatches2(_) => xid::SET_WATCHES,
            _ => {
                let x = self.next_xid;
                self.next_xid = self.next_xid.wrapping_add(1).max(1);
                x
            }
        };
        self.stream.write_all(&proto::encode_request(x, req))?;
        self.stream.flush()?;
        self.pending.push_back((x, req.op()));
        Ok(x)
    }

    /// Waits for the next reply (queueing the notifications that arrive before it).
    pub fn recv(&mut self) -> Result<Reply, ClientError> {
        loop {
            let payload = self.read_frame()?;
            let front = self.pending.front().copied();
            let reply = proto::decode_reply(&payload, |x| match front {
                Some((px, op)) if px == x => op,
                _ => -1,
            })
            .map_err(|e| ClientError::Protocol(format!("reply: {e}")))?;
            match reply {
                proto::Reply::Notification(ev) => self.events.push_back(ev),
                proto::Reply::Reply(header, body) => {
                    match self.pending.pop_front() {
                        Some((px, _)) if px == header.xid => {}
                        other => {
                            return Err(ClientError::Protocol(format!(
                                "reply xid {} while waiting for {other:?}",
                                header.xid
                            )));
                        }
                    }
                    if header.zxid > self.last_zxid {
                        self.last_zxid = header.zxid;
                    }
                    return Ok((header, body));
                }
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub fn request(&mut self, req: &Request) -> Result<Reply, ClientError> {
        self.send(req)?;
        self.recv()
    }

    /// The next watch notification, waiting up to `timeout` for one.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<WatcherEvent>, ClientError> {
        let deadline = Instant::now() + timeout;
        while self.events.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // A ping's reply comes back after any notification queued before it.
            let old = self.stream.read_timeout()?;
            self.stream.set_read_timeout(Some(left))?;
            let r = self.request(&Request::Ping);
            self.stream.set_read_timeout(old)?;
            match r {
                Ok(_) => {
                    if self.events.is_empty() {
                        std::thread::sleep(left.min(Duration::from_millis(20)));
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(self.events.pop_front())
    }

    /// Closes the session (`closeSession`) and the connection.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.request(&Request::CloseSession).map(|_| ())
    }

    fn expect<T>(
        r: Reply,
        f: impl FnOnce(Response) -> Option<T>,
        empty: Option<T>,
    ) -> Result<Result<T, ErrorCode>, ClientError> {
        let (h, body) = r;
        if h.err != 0 {
            let code = ErrorCode::from_code(h.err)
                .ok_or_else(|| ClientError::Protocol(format!("unknown error code {}", h.err)))?;
            return Ok(Err(code));
        }
        match body {
            Some(b) => f(b)
                .map(Ok)
                .ok_or_else(|| ClientError::Protocol("unexpected reply body".into())),
            None => empty
                .map(Ok)
                .ok_or_else(|| ClientError::Protocol("missing reply body".into())),
        }
    }

    /// `create` with an open ACL; returns the created path.
    pub fn create(
        &mut self,
        path: &str,
        data: &[u8],
        flags: i32,
    ) -> Result<Result<String, ErrorCode>, ClientError> {
        let r = self.request(&Request::Create(CreateRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            acl: ids::open_acl_unsafe(),
            flags,
        }))?;
        Self::expect(
            r,
            |b| match b {
                Response::Create(c) => Some(c.path),
                _ => None,
            },
            None,
        )
    }

    /// `getData`.
    pub fn get_data(
        &mut self,
        path: &str,
        watch: bool,
    ) -> Result<Result<(Vec<u8>, Stat), ErrorCode>, ClientError> {
        let r = self.request(&Request::GetData(GetDataRequest {
            path: path.into(),
            watch,
        }))?;
        Self::expect(
            r,
            |b| match b {
                Response::GetData(d) => {
                    Some((d.data.map(|d| d.to_vec()).unwrap_or_default(), d.stat))
                }
                _ => None,
            },
            None,
        )
    }

    /// `setData`.
    pub fn set_data(
        &mut self,
        path: &str,
        data: &[u8],
        version: i32,
    ) -> Result<Result<Stat, ErrorCode>, ClientError> {
        let r = self.request(&Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            version,
        }))?;
        Self::expect(
            r,
            |b| match b {
                Response::SetData(d) => Some(d.stat),
                _ => None,
            },
            None,
        )
    }

    /// `delete`.
    pub fn delete(
        &mut self,
        path: &str,
        version: i32,
    ) -> Result<Result<(), ErrorCode>, ClientError> {
        let r = self.request(&Request::Delete(DeleteRequest {
            path: path.into(),
            version,
        }))?;
        Self::expect(r, |_| Some(()), Some(()))
    }

    /// `exists`.
    pub fn exists(
        &mut self,
        path: &str,
        watch: bool,
    ) -> Result<Result<Stat, ErrorCode>, ClientError> {
        let r = self.request(&Request::Exists(ExistsRequest {
            path: path.into(),
            watch,
        }))?;
        Self::expect(
            r,
            |b| match b {
                Response::Exists(e) => Some(e.stat),
                _ => None,
            },
            None,
        )
    }

    /// `getChildren`, sorted.
    pub fn get_children(
        &mut self,
        path: &str,
        watch: bool,
    ) -> Result<Result<Vec<String>, ErrorCode>, ClientError> {
        let r = self.request(&Request::GetChildren(GetChildrenRequest {
            path: path.into(),
            watch,
        }))?;
        Self::expect(
            r,
            |b| match b {
                Response::GetChildren(mut c) => {
                    c.children.sort();
                    Some(c.children)
                }
                _ => None,
            },
            None,
        )
    }

    /// `sync`: the server catches up with the leader before answering.
    pub fn sync(&mut self, path: &str) -> Result<Result<(), ErrorCode>, ClientError> {
        let r = self.request(&Request::Sync(SyncRequest { path: path.into() }))?;
        Self::expect(r, |_| Some(()), Some(()))
    }
}

/// Sends a four-letter word and returns the server's whole answer.
pub fn four_letter_word(
    addr: SocketAddr,
    word: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
