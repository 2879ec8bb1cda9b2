//! One ZooKeeper session over tokio for the load generator: the handshake, request frames
//! encoded once (per key and operation) with only the xid patched per send, batched writes,
//! reply headers read off the stream, and pings while waiting (as ZooKeeper's own clients
//! send them). Nothing read from the network is trusted: every malformed or unexpected frame
//! is an error, never a panic.

use anyhow::{Context as _, anyhow, bail};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::warn;
use zab_zk::jute::{Reader, Record as _};
use zab_zk::proto::{self, ConnectRequest, FrameDecoder, ReplyHeader, Request};

/// The largest reply frame accepted (ZooKeeper's `jute.maxbuffer` plus headroom).
const MAX_FRAME: usize = 4 << 20;

/// The TLS client every session uses, once [`init_tls`] has set it.
static TLS: OnceLock<tokio_rustls::TlsConnector> = OnceLock::new();

/// Makes every later session connect over TLS: the servers' certificates must chain to `ca`
/// and name the address connected to (an IP address SAN); `cert` and `key` (PEM) are
/// presented as the client certificate.
pub fn init_tls(ca: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in
        CertificateDer::pem_file_iter(ca).with_context(|| format!("reading {}", ca.display()))?
    {
        roots.add(c.with_context(|| format!("a certificate in {}", ca.display()))?)?;
    }
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("a certificate in {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    TLS.set(tokio_rustls::TlsConnector::from(Arc::new(config)))
        .map_err(|_| anyhow!("TLS is already set up"))
}

type Rd = Box<dyn AsyncRead + Unpin + Send>;
type Wr = Box<dyn AsyncWrite + Unpin + Send>;

/// A request frame whose xid (bytes 4..8) is patched at send time.
#[derive(Clone, Debug)]
pub struct Template(Bytes);

impl Template {
    /// Encodes `req` once.
    pub fn new(req: &Request) -> Template {
        Template(proto::encode_request(0, req))
    }
}

/// An open session, split into a reading and a writing half.
pub struct Session {
    rd: Rd,
    wr: Wr,
    inbuf: BytesMut,
    out: Vec<u8>,
    decoder: FrameDecoder,
    next_xid: i32,
    /// When requests were last written.
    last_send: Instant,
    /// How long nothing may be sent while a reply is awaited before a ping goes out.
    ping_after: Duration,
    /// The session id the server gave.
    pub session_id: i64,
    /// Pings sent (each one: nothing sent for `ping_after` while a reply was awaited).
    pub pings: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("next_xid", &self.next_xid)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects to `addr` and opens a new session.
    pub async fn connect(
        addr: SocketAddr,
        connect_timeout: Duration,
        session_timeout_ms: i32,
    ) -> anyhow::Result<Session> {
        let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (rd, wr): (Rd, Wr) = match TLS.get() {
            None => {
                let (rd, wr) = stream.into_split();
                (Box::new(rd), Box::new(wr))
            }
            Some(tls) => {
                let name = rustls_pki_types::ServerName::IpAddress(addr.ip().into());
                let s = tokio::time::timeout(connect_timeout, tls.connect(name, stream))
                    .await
                    .map_err(|_| anyhow!("TLS handshake with {addr} timed out"))?
                    .with_context(|| format!("TLS handshake with {addr}"))?;
                let (rd, wr) = tokio::io::split(s);
                (Box::new(rd), Box::new(wr))
            }
        };
        let mut s = Session {
            rd,
            wr,
            inbuf: BytesMut::with_capacity(64 * 1024),
            out: Vec::with_capacity(64 * 1024),
            decoder: FrameDecoder::new(MAX_FRAME),
            next_xid: 1,
            last_send: Instant::now(),
            ping_after: ping_after(session_timeout_ms),
            session_id: 0,
            pings: 0,
        };
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: session_timeout_ms,
            session_id: 0,
            passwd: Bytes::from(vec![0; 16]),
            read_only: Some(false),
        };
        s.wr.write_all(&proto::encode_connect_request(&req))
            .await
            .with_context(|| format!("sending the handshake to {addr}"))?;
        s.wr.flush().await?;
        let frame = tokio::time::timeout(connect_timeout, s.next_frame())
            .await
            .map_err(|_| anyhow!("no handshake answer from {addr} within {connect_timeout:?}"))??
            .ok_or_else(|| anyhow!("{addr} closed the connection during the handshake"))?;
        let resp = proto::decode_connect_response(&frame)
            .map_err(|e| anyhow!("bad handshake answer from {addr}: {e}"))?;
        if resp.session_id == 0 || resp.timeout <= 0 {
            bail!("{addr} refused the session (not serving?)");
        }
        s.session_id = resp.session_id;
        s.ping_after = ping_after(resp.timeout);
        Ok(s)
    }

    /// The next complete frame already buffered, if any.
    pub fn buffered_frame(&mut self) -> anyhow::Result<Option<Bytes>> {
        self.decoder
            .decode(&mut self.inbuf)
            .map_err(|e| anyhow!("bad frame: {e}"))
    }

    /// Reads from the socket once, appending to the input buffer; `false` at end of stream.
    pub async fn fill(&mut self) -> anyhow::Result<bool> {
        self.inbuf.reserve(64 * 1024);
        let n = self.rd.read_buf(&mut self.inbuf).await?;
        Ok(n > 0)
    }

    /// The next frame, reading as needed; `None` at end of stream.
    pub async fn next_frame(&mut self) -> anyhow::Result<Option<Bytes>> {
        loop {
            if let Some(f) = self.buffered_frame()? {
                return Ok(Some(f));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Queues a request frame (written by [`Session::flush`]); returns its xid.
    pub fn push(&mut self, t: &Template) -> i32 {
        let xid = self.take_xid();
        let at = self.out.len();
        self.out.extend_from_slice(&t.0);
        if let Some(slot) = self.out.get_mut(at + 4..at + 8) {
            slot.copy_from_slice(&xid.to_be_bytes());
        }
        xid
    }

    /// Queues a request encoded now (paths that change per request); returns its xid.
    pub fn push_request(&mut self, req: &Request) -> i32 {
        let xid = self.take_xid();
        self.out.extend_from_slice(&proto::encode_request(xid, req));
        xid
    }

    fn take_xid(&mut self) -> i32 {
        let x = self.next_xid;
        self.next_xid = self.next_xid.checked_add(1).unwrap_or(1);
        x
    }

    /// Writes every queued request.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        if !self.out.is_empty() {
            self.wr.write_all(&self.out).await?;
            // A TLS stream may hold the last record until flushed; a socket's flush is free.
            self.wr.flush().await?;
            self.out.clear();
            self.last_send = Instant::now();
        }
        Ok(())
    }

    /// Reads from the socket once, like [`Session::fill`], waiting at most `timeout`
    /// (`Ok(None)` when it passed without a byte). While it waits, a ping goes out whenever
    /// nothing was sent for the ping interval, as ZooKeeper's Java client does: a real client
    /// keeps its session alive that way, and ZooKeeper 3.8.0 needs it (ZOOKEEPER-4537, fixed
    /// in 3.8.1: its CommitProcessor can miss the wake-up of a commit and then holds that
    /// write, unanswered, until the server's next request, from any session, arrives).
    pub async fn fill_within(&mut self, timeout: Duration) -> anyhow::Result<Option<bool>> {
        let deadline = Instant::now() + timeout;
        loop {
            let ping_at = self.last_send + self.ping_after;
            match tokio::time::timeout_at(ping_at.min(deadline), self.fill()).await {
                Ok(r) => return r.map(Some),
                Err(_) if Instant::now() >= deadline => return Ok(None),
                Err(_) => {
                    warn!(
                        session = format_args!("{:#x}", self.session_id),
                        "nothing sent for {:?} while waiting for a reply: sending a ping",
                        self.ping_after
                    );
                    self.ping().await?;
                }
            }
        }
    }

    /// When a ping is due if nothing else is sent before.
    pub fn ping_at(&self) -> Instant {
        self.last_send + self.ping_after
    }

    /// Sends a ping (and whatever requests are queued) now.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        self.out
            .extend_from_slice(&proto::encode_request(proto::xid::PING, &Request::Ping));
        self.pings += 1;
        self.flush().await
    }

    /// The next reply to a request (notifications and ping replies, xid < 0, are skipped),
    /// reading as needed and pinging while waiting; fails after `timeout` without one.
    pub async fn next_reply(&mut self, timeout: Duration) -> anyhow::Result<(ReplyHeader, Bytes)> {
        let deadline = Instant::now() + timeout;
        loop {
            while let Some(frame) = self.buffered_frame()? {
                let h = reply_header(&frame)?;
                if h.xid >= 0 {
                    return Ok((h, frame));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.fill_within(left).await? {
                None => bail!("no reply within {timeout:?}"),
                Some(false) => bail!("the server closed the connection"),
                Some(true) => {}
            }
        }
    }

    /// Sends one request and waits for its reply header (setup and probes).
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> anyhow::Result<ReplyHeader> {
        let xid = self.push_request(req);
        self.flush().await?;
        let (h, _) = self.next_reply(timeout).await?;
        if h.xid != xid {
            bail!("reply for xid {} while waiting for {xid}", h.xid);
        }
        Ok(h)
    }
}

/// How long a session may send nothing while it waits for a reply before it pings: what
/// ZooKeeper's Java client (`ClientCnxn`) does with a negotiated session timeout of
/// `timeout_ms`: its read timeout is two thirds of it, and it pings once nothing was sent for
/// half that less a second (at most 10 s): 9 s for 30 s.
pub fn ping_after(timeout_ms: i32) -> Duration {
    let third = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0) / 3);
    let one = Duration::from_secs(1);
    let after = if third > 2 * one {
        third - one
    } else {
        third.min(one)
    };
    after.clamp(Duration::from_millis(100), Duration::from_secs(10))
}

/// The `ReplyHeader` at the start of a reply frame's payload.
pub fn reply_header(payload: &[u8]) -> anyhow::Result<ReplyHeader> {
    ReplyHeader::read(&mut Reader::new(payload)).map_err(|e| anyhow!("bad reply header: {e}"))
}

/// Sends a four-letter word to `addr` and returns the whole answer.
pub async fn four_letter_word(
    addr: SocketAddr,
    word: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(word.as_bytes()).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, anyhow::Error>(out)
    })
    .await
    .map_err(|_| anyhow!("{word} to {addr} timed out"))?
}

/// The `Mode:` line of a `srvr` answer (`leader`, `follower`, `standalone`), if serving.
pub fn srvr_mode(answer: &str) -> Option<&str> {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::trim)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zab_zk::proto::GetDataRequest;

    #[test]
    fn srvr_names_the_mode() {
        let answer = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(srvr_mode(answer), Some("follower"));
        assert_eq!(
            srvr_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn a_template_patched_with_an_xid_is_the_request_encoded_with_it() {
        // `Session::push` writes a template and patches bytes 4..8 (after the frame length):
        // the result must be the frame encoded with that xid.
        let req = Request::GetData(GetDataRequest {
            path: "/zab-bench/k/7".into(),
            watch: false,
        });
        let t = Template::new(&req);
        let mut patched = t.0.to_vec();
        patched[4..8].copy_from_slice(&4711i32.to_be_bytes());
        assert_eq!(patched, proto::encode_request(4711, &req).to_vec());
    }

    #[test]
    fn the_ping_interval_is_the_java_clients() {
        // ClientCnxn: read timeout = 2/3 of the session timeout; a ping once nothing was sent
        // for half of it, less a second once a second passed; at most 10 s.
        assert_eq!(ping_after(30_000), Duration::from_secs(9));
        assert_eq!(ping_after(10_000), Duration::from_millis(2333));
        assert_eq!(ping_after(4_000), Duration::from_secs(1));
        assert_eq!(ping_after(2_400), Duration::from_millis(800));
        assert_eq!(ping_after(60_000), Duration::from_secs(10));
        assert_eq!(ping_after(0), Duration::from_millis(100));
        assert_eq!(ping_after(-5), Duration::from_millis(100));
    }

    /// A server that answers the handshake with a `timeout_ms` session, then holds the reply
    /// to the first request until the next frame (a ping) arrives, as ZooKeeper 3.8.0's
    /// CommitProcessor does after a lost wake-up (ZOOKEEPER-4537); then answers both, and
    /// every later request at once.
    pub(crate) async fn stalling_server(timeout_ms: i32) -> SocketAddr {
        use zab_zk::proto::{
            ConnectResponse, decode_request, encode_connect_response, encode_reply,
        };
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.expect("accept");
            let dec = FrameDecoder::new(MAX_FRAME);
            let mut buf = BytesMut::new();
            let mut frames = 0;
            let mut held = None;
            loop {
                let Some(f) = dec.decode(&mut buf).expect("frame") else {
                    if c.read_buf(&mut buf).await.expect("read") == 0 {
                        return;
                    }
                    continue;
                };
                frames += 1;
                if frames == 1 {
                    let resp = ConnectResponse {
                        protocol_version: 0,
                        timeout: timeout_ms,
                        session_id: 0x77,
                        passwd: Bytes::from(vec![0; 16]),
                        read_only: Some(false),
                    };
                    c.write_all(&encode_connect_response(&resp))
                        .await
                        .expect("w");
                    continue;
                }
                let (h, _) = decode_request(&f, MAX_FRAME).expect("request");
                if frames == 2 {
                    held = Some(h.xid);
                    continue;
                }
                for xid in held.take().into_iter().chain([h.xid]) {
                    let reply = ReplyHeader {
                        xid,
                        zxid: 5,
                        err: 0,
                    };
                    c.write_all(&encode_reply(&reply, None)).await.expect("w");
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_held_reply_is_released_by_the_ping_sent_while_waiting() {
        let addr = stalling_server(300).await;
        let mut s = Session::connect(addr, Duration::from_secs(5), 300)
            .await
            .expect("session");
        assert_eq!(s.ping_after, Duration::from_millis(100));
        let t0 = std::time::Instant::now();
        let h = s
            .call(
                &Request::Sync(proto::SyncRequest { path: "/".into() }),
                Duration::from_secs(5),
            )
            .await
            .expect("the reply, after the ping");
        assert_eq!((h.xid, h.err), (1, 0));
        assert_eq!(s.pings, 1);
        assert!(
            t0.elapsed() >= Duration::from_millis(100),
            "{:?}",
            t0.elapsed()
        );
    }

    #[tokio::test]
    async fn without_a_reply_the_wait_still_ends_at_the_timeout() {
        // The server answers only once a second request frame has come: a ping every 100 ms
        // releases it, so a 50 ms timeout (before the first ping) must end the wait.
        let addr = stalling_server(300).await;
        let mut s = Session::connect(addr, Duration::from_secs(5), 300)
            .await
            .expect("session");
        let e = s
            .call(
                &Request::Sync(proto::SyncRequest { path: "/".into() }),
                Duration::from_millis(50),
            )
            .await
            .expect_err("no reply within 50 ms");
        assert!(e.to_string().contains("no reply within"), "{e}");
        assert_eq!(s.pings, 0);
    }

    #[test]
    fn a_short_reply_header_is_an_error() {
        assert!(reply_header(&[0, 0, 0, 1]).is_err());
        let mut ok = Vec::new();
        ok.extend_from_slice(&5i32.to_be_bytes());
        ok.extend_from_slice(&0x1_0000_0001i64.to_be_bytes());
        ok.extend_from_slice(&(-101i32).to_be_bytes());
        let h = reply_header(&ok).expect("a header");
        assert_eq!((h.xid, h.zxid, h.err), (5, 0x1_0000_0001, -101));
    }
}
