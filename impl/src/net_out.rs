//! A connection's outgoing bytes, encoded by the replica thread straight into the connection's
//! buffer (issue 20: fewer hand-offs on the write path; PROPOSAL, ACK and COMMIT without an
//! allocation: a reused `BytesMut`), and written in one of two ways:
//! - a plaintext socket ([`Outgoing::direct`]) is written by the replica thread itself once its
//!   event is handled, with a non-blocking `try_write`: one `write` per connection and event,
//!   no wake-up of another thread on the way. Only what the socket does not take at once is
//!   left to the connection's writer task ([`Outgoing::run_direct`]), which waits until the
//!   socket is writable. Bytes leave in the order they were queued either way: the task and
//!   the replica thread write under the same lock, head first.
//! - a TLS stream ([`Outgoing::via_task`]) is written by the connection's writer task
//!   ([`Outgoing::run_task`]): the flush wakes it, it takes everything queued since its last
//!   write (one batch, one TLS record sequence, one flush). The TLS session is shared with the
//!   connection's reader (which decrypts through it), so the replica thread does not encrypt
//!   and write it itself (ARCHITECTURE.md, "Write path").
//!
//! Bounds: [`Outgoing::queue`] returns the bytes queued and not yet taken by the socket (frames
//! queued as exempt, a SNAP, not counted); the caller compares them with its limit. Used for
//! the quorum connections (`net.rs`) and the plaintext client connections
//! (`service/client.rs`). The persist-before-send order is the replica's: it queues a frame
//! only when its action runs (an ACK after the `Durable` report, a sync ACK after its
//! synchronous write), so writing queued bytes sooner than a hand-off would cannot move a
//! frame before its persist.

use bytes::{Buf as _, BytesMut};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued is written (or, for a writer task's stream, handed to it).
    All,
    /// The socket took part (or none) of it; the rest waits for it to be writable.
    WouldBlock,
    /// The connection failed; nothing more will be written.
    Failed,
}

struct Buffer<M> {
    bytes: BytesMut,
    /// Marks of the queued frames (latency breakdown), reported once they are written.
    marks: Vec<M>,
    failed: bool,
    /// Bytes ever queued and ever written (taken by the socket), for the bound.
    queued_total: u64,
    written_total: u64,
    /// The exempt frames not yet written, as `[start, end)` in `queued_total`'s terms.
    exempt: VecDeque<(u64, u64)>,
}

impl<M> Buffer<M> {
    fn wrote(&mut self, n: usize) {
        self.written_total += n as u64;
        while self
            .exempt
            .front()
            .is_some_and(|&(_, end)| end <= self.written_total)
        {
            self.exempt.pop_front();
        }
    }

    /// Counted bytes queued and not yet written.
    fn pending(&self) -> usize {
        let total = self.queued_total - self.written_total;
        let exempt: u64 = self
            .exempt
            .iter()
            .map(|&(start, end)| end - start.max(self.written_total))
            .sum();
        usize::try_from(total.saturating_sub(exempt)).unwrap_or(usize::MAX)
    }
}

/// Told how many bytes were just written and which marks' frames are now written whole (on
/// the writing thread, under the connection's lock: must be quick and must not queue).
pub(crate) type OnWritten<M> = Box<dyn Fn(usize, &[M]) + Send + Sync>;

/// One connection's write side.
pub(crate) struct Outgoing<M> {
    /// The plaintext socket the replica thread writes; `None`: the writer task owns the
    /// stream.
    half: Option<OwnedWriteHalf>,
    buf: Mutex<Buffer<M>>,
    /// Wakes the writer task when bytes are left that the replica thread did not write.
    wake: Notify,
    written: Option<OnWritten<M>>,
}

impl<M: Copy> Outgoing<M> {
    fn new(half: Option<OwnedWriteHalf>, written: Option<OnWritten<M>>) -> Outgoing<M> {
        Outgoing {
            half,
            buf: Mutex::new(Buffer {
                bytes: BytesMut::new(),
                marks: Vec::new(),
                failed: false,
                queued_total: 0,
                written_total: 0,
                exempt: VecDeque::new(),
            }),
            wake: Notify::new(),
            written,
        }
    }

    /// Written by the replica thread on a plaintext socket (the rest by [`Self::run_direct`]).
    pub(crate) fn direct(half: OwnedWriteHalf, written: Option<OnWritten<M>>) -> Outgoing<M> {
        Outgoing::new(Some(half), written)
    }

    /// Written by a writer task that owns the stream ([`Self::run_task`]).
    pub(crate) fn via_task(written: Option<OnWritten<M>>) -> Outgoing<M> {
        Outgoing::new(None, written)
    }

    fn lock(&self) -> MutexGuard<'_, Buffer<M>> {
        self.buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes a frame at the end of the buffer (written by the next flush); `exempt` frames
    /// do not count against the bound. Returns the counted bytes queued and not yet written
    /// (0 once the connection failed: nothing is queued then).
    pub(crate) fn queue(
        &self,
        encode: impl FnOnce(&mut BytesMut),
        mark: Option<M>,
        exempt: bool,
    ) -> usize {
        let mut b = self.lock();
        if b.failed {
            return 0;
        }
        if let Some(m) = mark {
            b.marks.push(m);
        }
        let before = b.bytes.len();
        encode(&mut b.bytes);
        let len = (b.bytes.len() - before) as u64;
        let start = b.queued_total;
        b.queued_total += len;
        if exempt && len > 0 {
            b.exempt.push_back((start, start + len));
        }
        b.pending()
    }

    /// Counted bytes queued and not yet written.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.lock().pending()
    }

    /// The connection is given up: what is queued is dropped, nothing more is queued.
    pub(crate) fn discard(&self) {
        let mut b = self.lock();
        b.failed = true;
        b.bytes = BytesMut::new();
        b.marks = Vec::new();
        b.exempt.clear();
        b.written_total = b.queued_total;
        drop(b);
        self.wake.notify_one();
    }

    /// Writes what the socket takes now, without waiting (a writer task's stream: wakes it).
    pub(crate) fn try_flush(&self) -> Flushed {
        let mut b = self.lock();
        if b.failed {
            return Flushed::Failed;
        }
        let Some(half) = &self.half else {
            if !b.bytes.is_empty() {
                self.wake.notify_one();
            }
            return Flushed::All;
        };
        let mut wrote = 0;
        let mut result = Flushed::All;
        while !b.bytes.is_empty() {
            match half.try_write(&b.bytes) {
                Ok(0) => {
                    b.failed = true;
                    return Flushed::Failed;
                }
                Ok(n) => {
                    b.bytes.advance(n);
                    b.wrote(n);
                    wrote += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    result = Flushed::WouldBlock;
                    break;
                }
                Err(_) => {
                    b.failed = true;
                    return Flushed::Failed;
                }
            }
        }
        if result == Flushed::All {
            // Empty: the next frames are encoded from the start of the allocation again.
            b.bytes.clear();
            let marks = std::mem::take(&mut b.marks);
            if let Some(f) = &self.written {
                f(wrote, &marks);
            }
            b.marks = marks;
            b.marks.clear();
        } else if wrote > 0 {
            if let Some(f) = &self.written {
                f(wrote, &[]);
            }
        }
        result
    }

    /// Writes what the socket takes now; leaves the rest to the writer task.
    pub(crate) fn flush(&self) {
        if self.try_flush() == Flushed::WouldBlock {
            self.wake.notify_one();
        }
    }

    /// Writes everything queued on the plaintext socket, waiting for it as needed; `false` if
    /// the connection failed.
    pub(crate) async fn drain(&self) -> bool {
        let Some(half) = &self.half else {
            return false;
        };
        loop {
            match self.try_flush() {
                Flushed::All => return true,
                Flushed::Failed => return false,
                Flushed::WouldBlock => {
                    if half.writable().await.is_err() {
                        self.lock().failed = true;
                        return false;
                    }
                }
            }
        }
    }

    /// Waits until a flush left bytes behind.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The writer task of a plaintext connection with no other output: writes what flushes
    /// leave; returns when the connection fails.
    pub(crate) async fn run_direct(&self) {
        loop {
            self.woken().await;
            if !self.drain().await {
                return;
            }
        }
    }

    /// The writer task of a stream it owns (TLS): each round writes everything queued since
    /// the last one and flushes; returns when the connection fails.
    pub(crate) async fn run_task<W: AsyncWrite + Unpin>(&self, mut writer: W) {
        loop {
            let taken = {
                let mut b = self.lock();
                if b.failed {
                    return;
                }
                if b.bytes.is_empty() {
                    None
                } else {
                    Some((b.bytes.split(), std::mem::take(&mut b.marks)))
                }
            };
            let Some((chunk, marks)) = taken else {
                self.woken().await;
                continue;
            };
            if writer.write_all(&chunk).await.is_err() || writer.flush().await.is_err() {
                self.lock().failed = true;
                return;
            }
            let mut b = self.lock();
            if b.failed {
                return;
            }
            b.wrote(chunk.len());
            if let Some(f) = &self.written {
                f(chunk.len(), &marks);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt as _;

    /// The bound counts what the socket has not taken, exempt frames aside; a writer task's
    /// stream gets every byte in order, and the marks once their bytes are written.
    #[tokio::test]
    async fn the_task_path_writes_in_order_and_counts_what_is_pending() {
        let (mut far, near) = tokio::io::duplex(1 << 16);
        let written = Arc::new(AtomicUsize::new(0));
        let marks = Arc::new(AtomicUsize::new(0));
        let (w, m) = (Arc::clone(&written), Arc::clone(&marks));
        let out: Arc<Outgoing<u32>> =
            Arc::new(Outgoing::via_task(Some(Box::new(move |n, ms: &[u32]| {
                w.fetch_add(n, Ordering::SeqCst);
                m.fetch_add(ms.len(), Ordering::SeqCst);
            }))));
        assert_eq!(
            out.queue(|b| b.extend_from_slice(b"abc"), Some(1), false),
            3
        );
        assert_eq!(
            out.queue(|b| b.extend_from_slice(b"SNAPSNAP"), None, true),
            3
        );
        assert_eq!(out.queue(|b| b.extend_from_slice(b"de"), Some(2), false), 5);
        let task = Arc::clone(&out);
        let (_, wr) = tokio::io::split(near);
        tokio::spawn(async move { task.run_task(wr).await });
        out.flush();
        let mut got = vec![0u8; 13];
        far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"abcSNAPSNAPde");
        for _ in 0..100 {
            if out.pending() == 0 && marks.load(Ordering::SeqCst) == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(out.pending(), 0);
        assert_eq!(written.load(Ordering::SeqCst), 13);
        assert_eq!(marks.load(Ordering::SeqCst), 2);
        out.discard();
        assert_eq!(out.queue(|b| b.extend_from_slice(b"x"), None, false), 0);
    }

    /// On a plaintext socket the flush writes at once, on the caller's thread; what a full
    /// socket does not take stays pending (and counts) until the peer reads.
    #[tokio::test]
    async fn the_direct_path_writes_on_the_flush_and_counts_what_the_socket_refuses() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let (_r, w) = client.into_split();
        let out: Arc<Outgoing<u32>> = Arc::new(Outgoing::direct(w, None));
        out.queue(|b| b.extend_from_slice(b"hello"), None, false);
        assert_eq!(out.try_flush(), Flushed::All);
        assert_eq!(out.pending(), 0);
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"hello");
        // Nobody reads: the socket's buffers fill and the rest stays pending.
        let chunk = vec![7u8; 1 << 20];
        let mut pending = 0;
        for _ in 0..64 {
            pending = out.queue(|b| b.extend_from_slice(&chunk), None, false);
            if out.try_flush() == Flushed::WouldBlock {
                pending = out.pending();
                break;
            }
        }
        assert!(
            pending > 0,
            "a socket nobody reads refuses bytes at some point"
        );
        assert_eq!(out.pending(), pending);
        // The peer reads everything: the writer task drains the rest.
        let task = Arc::clone(&out);
        tokio::spawn(async move { task.run_direct().await });
        out.flush();
        let reader = tokio::spawn(async move {
            let mut sink = vec![0u8; 1 << 16];
            loop {
                match server.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
        for _ in 0..500 {
            if out.pending() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(out.pending(), 0, "the writer task wrote the rest");
        reader.abort();
    }
}
