//! One ZooKeeper session over tokio for the load generator: the handshake, request frames
//! encoded once (per key and operation) with only the xid patched per send, batched writes,
//! and reply headers read off the stream. Nothing read from the network is trusted: every
//! malformed or unexpected frame is an error, never a panic.

use anyhow::{Context as _, anyhow, bail};
use bytes::{Bytes, BytesMut};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
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
    /// The session id the server gave.
    pub session_id: i64,
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
            session_id: 0,
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
        }
        Ok(())
    }

    /// Sends one request and waits for its reply header (setup and probes).
    pub async fn call(&mut self, req: &Request, timeout: Duration) -> anyhow::Result<ReplyHeader> {
        let xid = self.push_request(req);
        self.flush().await?;
        tokio::time::timeout(timeout, async {
            loop {
                let frame = self
                    .next_frame()
                    .await?
                    .ok_or_else(|| anyhow!("the server closed the connection"))?;
                let h = reply_header(&frame)?;
                if h.xid == xid {
                    return Ok(h);
                }
                if h.xid >= 0 {
                    bail!("reply for xid {} while waiting for {xid}", h.xid);
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no reply within {timeout:?}"))?
    }
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
mod tests {
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
