//! A small HTTP/1.1 server for the metrics endpoint and the AdminServer: one request per
//! connection (`Connection: close`), `GET` only, the request head bounded (8 KiB, 5 s), the
//! answer produced by an async handler from the path. Enough for Prometheus scrapers, curl and
//! ZooKeeper's AdminServer clients; not a general web server.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info};

/// The largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status line after `HTTP/1.1 `, e.g. `200 OK`.
    pub status: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
}

impl Reply {
    /// `200 OK` with `body`.
    #[must_use]
    pub fn ok(content_type: &'static str, body: String) -> Reply {
        Reply {
            status: "200 OK",
            content_type,
            body,
        }
    }

    /// `404 Not Found`.
    #[must_use]
    pub fn not_found() -> Reply {
        Reply {
            status: "404 Not Found",
            content_type: "text/plain",
            body: "not found\n".into(),
        }
    }
}

/// What answers a path (query string included, as sent).
pub type Handler = Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Reply> + Send>> + Send + Sync>;

/// Serves `handler` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, name: &'static str, handler: Handler) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "{name} listening");
    }
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("{name}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            if let Err(e) = one(stream, &handler).await {
                debug!(%remote, "{name}: {e}");
            }
        });
    }
}

/// The request line's method and target, once the head is complete; `None` while incomplete.
fn request_line(head: &[u8]) -> Option<Result<(String, String), &'static str>> {
    let end = head.windows(4).position(|w| w == b"\r\n\r\n").or_else(|| {
        // Tolerate bare LF line ends (some scripted clients).
        head.windows(2).position(|w| w == b"\n\n")
    })?;
    let Ok(text) = std::str::from_utf8(&head[..end]) else {
        return Some(Err("request head is not UTF-8"));
    };
    let line = text.lines().next().unwrap_or("");
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/") => {
            Some(Ok((m.to_string(), t.to_string())))
        }
        _ => Some(Err("malformed request line")),
    }
}

async fn one(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let parsed = loop {
        if let Some(p) = request_line(&head) {
            break p;
        }
        if head.len() >= MAX_HEAD {
            break Err("request head too large");
        }
        let n = match tokio::time::timeout(HEAD_TIMEOUT, stream.read(&mut buf)).await {
            Ok(Ok(0)) => return Ok(()),
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e),
            Err(_) => break Err("request head timed out"),
        };
        head.extend_from_slice(&buf[..n]);
    };
    let reply = match parsed {
        Ok((method, target)) if method == "GET" => handler(target).await,
        Ok(_) => Reply {
            status: "405 Method Not Allowed",
            content_type: "text/plain",
            body: "only GET is served\n".into(),
        },
        Err(why) => Reply {
            status: "400 Bad Request",
            content_type: "text/plain",
            body: format!("{why}\n"),
        },
    };
    let out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        reply.status,
        reply.content_type,
        reply.body.len(),
        reply.body
    );
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// Binds `addr` (a clear error naming what could not listen).
pub async fn bind(addr: SocketAddr, name: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("{name} cannot listen on {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse_or_wait() {
        assert_eq!(request_line(b"GET /metrics HTTP/1.1\r\nHost: x"), None);
        assert_eq!(
            request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ok(("GET".into(), "/metrics".into())))
        );
        assert_eq!(
            request_line(b"GET /x HTTP/1.0\n\n"),
            Some(Ok(("GET".into(), "/x".into())))
        );
        assert_eq!(
            request_line(b"garbage\r\n\r\n"),
            Some(Err("malformed request line"))
        );
    }
}
