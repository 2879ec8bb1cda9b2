//! A connection's outgoing bytes, written by the replica thread itself (issue 20: fewer
//! hand-offs on the write path). The replica thread encodes its frames straight into the
//! connection's buffer (PROPOSAL, ACK and COMMIT without an allocation: a reused `BytesMut`)
//! and, once its event is handled, writes every buffer it filled to its socket with a
//! non-blocking `try_write`: one `write` per connection and event, no wake-up of another thread
//! on the way. Only what the socket does not take at once is left to the connection's writer
//! task, which waits until the socket is writable. Bytes leave in the order they were queued
//! either way: the task and the replica thread write under the same lock, head first.
//!
//! Used for the quorum connections (`net.rs`) and the client connections
//! (`service/client.rs`). The persist-before-send order is the replica's: it queues a frame only
//! when its action runs (an ACK after the `Durable` report, a sync ACK after its synchronous
//! write), so writing queued bytes sooner than a hand-off would cannot move a frame before its
//! persist.

use bytes::{Buf as _, BytesMut};
use std::sync::{Mutex, MutexGuard};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// What a flush achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Everything queued is written.
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
}

/// Told which marks' frames were just written (on the writing thread; must be quick).
pub(crate) type OnWritten<M> = Box<dyn Fn(&[M]) + Send + Sync>;

/// One connection's write side.
pub(crate) struct Outgoing<M> {
    half: OwnedWriteHalf,
    buf: Mutex<Buffer<M>>,
    /// Wakes the writer task when bytes are left that the socket did not take.
    wake: Notify,
    written: Option<OnWritten<M>>,
}

impl<M: Copy> Outgoing<M> {
    pub(crate) fn new(half: OwnedWriteHalf, written: Option<OnWritten<M>>) -> Outgoing<M> {
        Outgoing {
            half,
            buf: Mutex::new(Buffer {
                bytes: BytesMut::new(),
                marks: Vec::new(),
                failed: false,
            }),
            wake: Notify::new(),
            written,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer<M>> {
        self.buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes a frame at the end of the buffer (written by the next flush).
    pub(crate) fn queue(&self, encode: impl FnOnce(&mut BytesMut), mark: Option<M>) {
        let mut b = self.lock();
        if b.failed {
            return;
        }
        if let Some(m) = mark {
            b.marks.push(m);
        }
        encode(&mut b.bytes);
    }

    /// Writes what the socket takes now, without waiting.
    pub(crate) fn try_flush(&self) -> Flushed {
        let mut b = self.lock();
        if b.failed {
            return Flushed::Failed;
        }
        while !b.bytes.is_empty() {
            match self.half.try_write(&b.bytes) {
                Ok(0) => {
                    b.failed = true;
                    return Flushed::Failed;
                }
                Ok(n) => b.bytes.advance(n),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Flushed::WouldBlock;
                }
                Err(_) => {
                    b.failed = true;
                    return Flushed::Failed;
                }
            }
        }
        b.bytes.clear();
        if !b.marks.is_empty() {
            if let Some(f) = &self.written {
                f(&b.marks);
            }
            b.marks.clear();
        }
        Flushed::All
    }

    /// Writes what the socket takes now; leaves the rest to the writer task.
    pub(crate) fn flush(&self) {
        if self.try_flush() == Flushed::WouldBlock {
            self.wake.notify_one();
        }
    }

    /// Writes everything queued, waiting for the socket as needed; `false` if the connection
    /// failed.
    pub(crate) async fn drain(&self) -> bool {
        loop {
            match self.try_flush() {
                Flushed::All => return true,
                Flushed::Failed => return false,
                Flushed::WouldBlock => {
                    if self.half.writable().await.is_err() {
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

    /// The writer task of a connection with no other output: writes what flushes leave;
    /// returns when the connection fails.
    pub(crate) async fn run(&self) {
        loop {
            self.woken().await;
            if !self.drain().await {
                return;
            }
        }
    }
}
