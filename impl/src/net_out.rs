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
//! Streams ([`Outgoing::queue_stream`]: a SNAP in chunks, a DIFF read back from the log) are
//! written by the writer task in their place: the frames queued after a stream wait behind
//! it (in a segment of their own) until its producer has said it is done, so nobody writes
//! them early; the stream's channel holds at most `net::STREAM_DEPTH` frames.
//!
//! Bounds: [`Outgoing::queue`] returns the bytes queued and not yet taken by the socket (frames
//! queued as exempt, a learner's synchronization, and a stream's frames not counted; what waits
//! behind a stream counted); the caller compares them with its limit. Used for
//! the quorum connections (`net.rs`) and the plaintext client connections
//! (`service/client.rs`). The persist-before-send order is the replica's: it queues a frame
//! only when its action runs (an ACK after the `Durable` report, a sync ACK after its
//! synchronous write), so writing queued bytes sooner than a hand-off would cannot move a
//! frame before its persist.

use bytes::{Buf as _, Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, error};

/// What a stream's producer hands the writer: an encoded frame, `Ok(None)` once it is done,
/// or the reason it failed (the connection is then closed). A channel that closes without
/// `Ok(None)` is a failed stream too.
pub(crate) type StreamItem = Result<Option<Bytes>, String>;

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued is written (or, for a writer task's stream, handed to it).
    All,
    /// The socket took part (or none) of it, or a stream is ahead of the rest: the rest is
    /// left to the writer task.
    Later,
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
    /// Streams queued and the frames queued behind each, in order, after `bytes`.
    behind: VecDeque<Behind<M>>,
}

/// A stream, and the frames queued after it (and before the next stream, if any).
struct Behind<M> {
    what: &'static str,
    /// The stream's frames; `None` once the writer task is draining it.
    frames: Option<mpsc::Receiver<StreamItem>>,
    bytes: BytesMut,
    marks: Vec<M>,
    /// Exempt frames in `bytes`, as `[start, end)`.
    exempt: Vec<(usize, usize)>,
    /// Counted bytes in `bytes`.
    counted: usize,
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
        let behind: usize = self.behind.iter().map(|s| s.counted).sum();
        usize::try_from(total.saturating_sub(exempt))
            .unwrap_or(usize::MAX)
            .saturating_add(behind)
    }

    /// Appends bytes that are not counted (a stream's frame) to the head.
    fn push_exempt(&mut self, frame: &[u8]) {
        let start = self.queued_total;
        self.bytes.extend_from_slice(frame);
        self.queued_total += frame.len() as u64;
        if !frame.is_empty() {
            self.exempt.push_back((start, self.queued_total));
        }
    }

    /// The first stream is written whole: the frames queued behind it join the head.
    fn finish_stream(&mut self) {
        let Some(s) = self.behind.pop_front() else {
            return;
        };
        let base = self.queued_total;
        self.exempt.extend(
            s.exempt
                .iter()
                .map(|&(a, b)| (base + a as u64, base + b as u64)),
        );
        self.queued_total += s.bytes.len() as u64;
        if self.bytes.is_empty() {
            self.bytes = s.bytes;
        } else {
            self.bytes.extend_from_slice(&s.bytes);
        }
        self.marks.extend(s.marks);
    }
}

/// What the writer task does next.
enum Next<M> {
    /// Write these bytes (a TLS stream's batch) and report these marks.
    Bytes(BytesMut, Vec<M>),
    /// Drain this stream.
    Stream(&'static str, mpsc::Receiver<StreamItem>),
    /// Wait for a flush.
    Wait,
    /// The connection failed.
    Failed,
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
                behind: VecDeque::new(),
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

    /// Encodes a frame at the end of the buffer (written by the next flush, or after the
    /// streams queued before it); `exempt` frames do not count against the bound. Returns the
    /// counted bytes queued and not yet written (0 once the connection failed: nothing is
    /// queued then).
    pub(crate) fn queue(
        &self,
        encode: impl FnOnce(&mut BytesMut),
        mark: Option<M>,
        exempt: bool,
    ) -> usize {
        let mut guard = self.lock();
        let b = &mut *guard;
        if b.failed {
            return 0;
        }
        if let Some(s) = b.behind.back_mut() {
            if let Some(m) = mark {
                s.marks.push(m);
            }
            let before = s.bytes.len();
            encode(&mut s.bytes);
            let after = s.bytes.len();
            if !exempt {
                s.counted += after - before;
            } else if after > before {
                s.exempt.push((before, after));
            }
            return b.pending();
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

    /// Queues a stream after everything queued so far: the writer task writes its frames as
    /// `frames` yields them, then what was queued after it. `false` (and `frames` dropped, so
    /// its producer stops) once the connection failed.
    pub(crate) fn queue_stream(
        &self,
        what: &'static str,
        frames: mpsc::Receiver<StreamItem>,
    ) -> bool {
        let mut b = self.lock();
        if b.failed {
            return false;
        }
        b.behind.push_back(Behind {
            what,
            frames: Some(frames),
            bytes: BytesMut::new(),
            marks: Vec::new(),
            exempt: Vec::new(),
            counted: 0,
        });
        true
    }

    /// The connection is given up (a stream that cannot be sent): nothing more is written;
    /// the writer task ends, and with it the connection.
    pub(crate) fn fail(&self) {
        self.lock().failed = true;
        self.wake.notify_one();
    }

    /// Counted bytes queued and not yet written.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.lock().pending()
    }

    /// The connection is given up: what is queued is dropped, nothing more is queued.
    pub(crate) fn discard(&self) {
        let mut b = self.lock();
        b.failed = true;
        b.bytes = BytesMut::new();
        b.marks = Vec::new();
        b.exempt.clear();
        b.behind.clear();
        b.written_total = b.queued_total;
        drop(b);
        self.wake.notify_one();
    }

    /// Writes what the socket takes now, without waiting (a writer task's stream: wakes it).
    /// Frames queued behind a stream are left to the writer task ([`Flushed::Later`]).
    pub(crate) fn try_flush(&self) -> Flushed {
        let mut b = self.lock();
        if b.failed {
            return Flushed::Failed;
        }
        let Some(half) = &self.half else {
            if !b.bytes.is_empty() || !b.behind.is_empty() {
                self.wake.notify_one();
            }
            return Flushed::All;
        };
        match self.write_head(half, &mut b) {
            Flushed::All if !b.behind.is_empty() => Flushed::Later,
            r => r,
        }
    }

    /// Writes the head of a plaintext connection's buffer (what no stream is ahead of), as
    /// much as the socket takes now.
    fn write_head(&self, half: &OwnedWriteHalf, b: &mut Buffer<M>) -> Flushed {
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
                    result = Flushed::Later;
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
        if self.try_flush() == Flushed::Later {
            self.wake.notify_one();
        }
    }

    /// Writes the head of the buffer (everything queued, up to the first stream) on the
    /// plaintext socket, waiting for it as needed; `false` if the connection failed.
    pub(crate) async fn drain(&self) -> bool {
        let Some(half) = &self.half else {
            return false;
        };
        loop {
            let r = {
                let mut b = self.lock();
                if b.failed {
                    return false;
                }
                self.write_head(half, &mut b)
            };
            match r {
                Flushed::All => return true,
                Flushed::Failed => return false,
                Flushed::Later => {
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

    /// What the writer task does next: the head's bytes if `take_bytes` (a TLS stream's task
    /// takes them; a plaintext socket's were drained already), else the first stream once
    /// nothing is ahead of it.
    fn next(&self, take_bytes: bool) -> Next<M> {
        let mut b = self.lock();
        if b.failed {
            return Next::Failed;
        }
        if !b.bytes.is_empty() {
            if take_bytes {
                let marks = std::mem::take(&mut b.marks);
                return Next::Bytes(b.bytes.split(), marks);
            }
            // Queued since the drain: written by the next round.
            return Next::Wait;
        }
        let Some(s) = b.behind.front_mut() else {
            return Next::Wait;
        };
        match s.frames.take() {
            Some(frames) => Next::Stream(s.what, frames),
            None => {
                // Only this task takes a stream, and it finishes it before it asks again.
                b.failed = true;
                Next::Failed
            }
        }
    }

    /// Ends a stream whose channel yielded `item` (the last one it yields); `false` if the
    /// connection is to be closed.
    fn stream_ended(&self, what: &'static str, item: Option<StreamItem>, sent: u64) -> bool {
        match item {
            Some(Ok(None)) => {
                let mut b = self.lock();
                if b.failed {
                    return false;
                }
                b.finish_stream();
                debug!(bytes = sent, "{what} sent");
                true
            }
            Some(Err(e)) => {
                error!(
                    "cannot send the {what} ({e}): closing the connection; the peer \
                     resynchronizes"
                );
                self.fail();
                false
            }
            // (`Some(Ok(Some(_)))` is not an end; never passed.)
            Some(Ok(Some(_))) | None => {
                error!(
                    "the {what} stopped before its end: closing the connection; the peer \
                     resynchronizes"
                );
                self.fail();
                false
            }
        }
    }

    /// The writer task of a plaintext connection with no other output: writes what flushes
    /// leave and the streams; returns when the connection fails.
    pub(crate) async fn run_direct(&self) {
        loop {
            if !self.drain().await {
                return;
            }
            match self.next(false) {
                Next::Failed => return,
                Next::Wait | Next::Bytes(..) => self.woken().await,
                Next::Stream(what, mut frames) => {
                    let mut sent = 0u64;
                    let end = loop {
                        match frames.recv().await {
                            Some(Ok(Some(frame))) => {
                                sent += frame.len() as u64;
                                {
                                    let mut b = self.lock();
                                    if b.failed {
                                        return;
                                    }
                                    b.push_exempt(&frame);
                                }
                                if !self.drain().await {
                                    return;
                                }
                            }
                            other => break other,
                        }
                    };
                    if !self.stream_ended(what, end, sent) {
                        return;
                    }
                }
            }
        }
    }

    /// The writer task of a stream it owns (TLS): each round writes everything queued since
    /// the last one and flushes, or a stream; returns when the connection fails.
    pub(crate) async fn run_task<W: AsyncWrite + Unpin>(&self, mut writer: W) {
        loop {
            match self.next(true) {
                Next::Failed => return,
                Next::Wait => self.woken().await,
                Next::Bytes(chunk, marks) => {
                    if writer.write_all(&chunk).await.is_err() || writer.flush().await.is_err() {
                        self.fail();
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
                Next::Stream(what, mut frames) => {
                    let mut sent = 0u64;
                    let end = loop {
                        match frames.recv().await {
                            Some(Ok(Some(frame))) => {
                                if writer.write_all(&frame).await.is_err() {
                                    self.fail();
                                    return;
                                }
                                sent += frame.len() as u64;
                            }
                            other => break other,
                        }
                    };
                    // (A TLS stream may hold the last record until flushed.)
                    if writer.flush().await.is_err() {
                        self.fail();
                        return;
                    }
                    if !self.stream_ended(what, end, sent) {
                        return;
                    }
                }
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
            if out.try_flush() == Flushed::Later {
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

    /// A plaintext connection and the far end's socket.
    async fn direct_pair() -> (Arc<Outgoing<u32>>, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        let (_, w) = client.into_split();
        (Arc::new(Outgoing::direct(w, None)), server)
    }

    /// Queues "a", a stream of "S1" "S2", then "b" and "c" while the stream is still open:
    /// the far end must read them in that order whichever way the writer writes; what is
    /// queued behind the stream counts, the stream's frames do not.
    async fn stream_in_its_place<R>(out: Arc<Outgoing<u32>>, mut far: R)
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        let (tx, rx) = mpsc::channel::<StreamItem>(2);
        out.queue(|b| b.extend_from_slice(b"a"), None, false);
        assert!(out.queue_stream("test stream", rx));
        assert_eq!(
            out.queue(|b| b.extend_from_slice(b"b"), None, false),
            2,
            "\"a\" (not written yet) and \"b\" behind the stream"
        );
        out.flush();
        tx.send(Ok(Some(Bytes::from_static(b"S1"))))
            .await
            .expect("send");
        let mut got = vec![0u8; 3];
        far.read_exact(&mut got).await.expect("read");
        assert_eq!(
            &got, b"aS1",
            "the stream's first frame, nothing of what is behind it"
        );
        assert_eq!(
            out.queue(|b| b.extend_from_slice(b"c"), None, false),
            2,
            "behind the stream: counted"
        );
        out.flush();
        tx.send(Ok(Some(Bytes::from_static(b"S2"))))
            .await
            .expect("send");
        tx.send(Ok(None)).await.expect("end");
        let mut got = vec![0u8; 4];
        far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"S2bc");
        for _ in 0..100 {
            if out.pending() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(out.pending(), 0);
        // Frames queued now go out at once again.
        out.queue(|b| b.extend_from_slice(b"d"), None, false);
        out.flush();
        let mut got = [0u8; 1];
        far.read_exact(&mut got).await.expect("read");
        assert_eq!(&got, b"d");
    }

    #[tokio::test]
    async fn a_stream_is_written_in_its_place_on_a_plaintext_socket() {
        let (out, far) = direct_pair().await;
        let task = Arc::clone(&out);
        tokio::spawn(async move { task.run_direct().await });
        stream_in_its_place(out, far).await;
    }

    #[tokio::test]
    async fn a_stream_is_written_in_its_place_by_the_task() {
        let (far, near) = tokio::io::duplex(1 << 16);
        let out: Arc<Outgoing<u32>> = Arc::new(Outgoing::via_task(None));
        let task = Arc::clone(&out);
        let (_, wr) = tokio::io::split(near);
        tokio::spawn(async move { task.run_task(wr).await });
        stream_in_its_place(out, far).await;
    }

    /// A stream that fails, or whose producer goes away without saying it is done, ends the
    /// writer task (and so the connection) without writing what was queued behind it.
    #[tokio::test]
    async fn a_failed_or_unfinished_stream_ends_the_writer() {
        for fail in [true, false] {
            let (out, mut far) = direct_pair().await;
            let task = Arc::clone(&out);
            let writer = tokio::spawn(async move { task.run_direct().await });
            let (tx, rx) = mpsc::channel::<StreamItem>(2);
            assert!(out.queue_stream("test stream", rx));
            out.queue(|b| b.extend_from_slice(b"NEWLEADER"), None, true);
            out.flush();
            tx.send(Ok(Some(Bytes::from_static(b"S1"))))
                .await
                .expect("send");
            if fail {
                tx.send(Err("disk error".into())).await.expect("send");
            } else {
                drop(tx);
            }
            tokio::time::timeout(std::time::Duration::from_secs(5), writer)
                .await
                .expect("the writer ends")
                .expect("task");
            assert_eq!(out.try_flush(), Flushed::Failed);
            assert_eq!(out.queue(|b| b.extend_from_slice(b"x"), None, false), 0);
            drop(out);
            let mut got = Vec::new();
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                far.read_to_end(&mut got),
            )
            .await;
            assert_eq!(&got, b"S1", "nothing behind the failed stream is written");
        }
    }

    /// The connection given up: queued frames and streams are dropped (a stream's producer
    /// sees its channel closed and stops), nothing more is queued.
    #[tokio::test]
    async fn discard_drops_what_is_queued_and_the_streams() {
        let out: Outgoing<u32> = Outgoing::via_task(None);
        let (tx, rx) = mpsc::channel::<StreamItem>(1);
        out.queue(|b| b.extend_from_slice(b"abc"), None, false);
        assert!(out.queue_stream("test stream", rx));
        out.queue(|b| b.extend_from_slice(b"defg"), None, false);
        assert_eq!(out.pending(), 7);
        out.discard();
        assert_eq!(out.pending(), 0);
        assert!(
            tx.send(Ok(None)).await.is_err(),
            "the producer sees the end"
        );
        let (_tx, rx) = mpsc::channel::<StreamItem>(1);
        assert!(!out.queue_stream("test stream", rx));
    }
}
