//! A quorum connection's outgoing bytes (issue 20: fewer hand-offs on the write path). The
//! replica thread encodes its frames straight into the connection's buffer (no allocation per
//! frame: PROPOSAL, ACK and COMMIT are written into a reused `BytesMut`) and, at the end of its
//! batch, writes every buffer it filled to its socket itself with a non-blocking `try_write`:
//! one `write` per connection and batch, and no wake-up of another thread on the way. Only what
//! the socket does not take at once is left to the connection's writer task, which waits for
//! the socket to be writable. Frames leave in the order they were queued either way: the task
//! and the replica thread write under the same lock, and each writes the buffer's head first.
//!
//! The persist-before-send order is the replica's: it queues a frame only when its action runs
//! (an ACK after the `Durable` report, a sync ACK after its synchronous write), so writing the
//! queued bytes earlier than a hand-off would have cannot move a frame before its persist.

use crate::latency::{Breakdown, Side, Stage};
use crate::wire::{self, Frame, PayloadCodec};
use bytes::{Buf as _, BytesMut};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;
use zab_spec::{QuorumMessage, Zxid};

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

#[derive(Default)]
struct Buffer {
    bytes: BytesMut,
    /// Breakdown stages of the queued frames, stamped once they are written.
    stamps: Vec<(Zxid, Stage)>,
    failed: bool,
}

/// One quorum connection's write side.
pub(crate) struct Outgoing {
    half: OwnedWriteHalf,
    buf: Mutex<Buffer>,
    /// Wakes the writer task when bytes are left that the socket did not take.
    wake: Notify,
    breakdown: Option<Arc<Breakdown>>,
    side: Side,
}

impl Outgoing {
    pub(crate) fn new(
        half: OwnedWriteHalf,
        breakdown: Option<Arc<Breakdown>>,
        leader_side: bool,
    ) -> Outgoing {
        Outgoing {
            half,
            buf: Mutex::new(Buffer::default()),
            wake: Notify::new(),
            breakdown,
            side: if leader_side {
                Side::Leader
            } else {
                Side::Follower
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        self.buf
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Encodes `frame` at the end of the buffer (written by the next flush).
    pub(crate) fn queue<P: PayloadCodec>(&self, frame: &Frame<P>) {
        let mut b = self.lock();
        if b.failed {
            return;
        }
        match (frame, self.side) {
            (Frame::Zab(QuorumMessage::Proposal(txn)), Side::Leader) => {
                b.stamps.push((txn.zxid, Stage::LeaderProposalSent));
            }
            (Frame::Zab(QuorumMessage::Ack { zxid }), Side::Follower) => {
                b.stamps.push((*zxid, Stage::FollowerAckSent));
            }
            _ => {}
        }
        wire::encode_frame(frame, &mut b.bytes);
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
        if !b.stamps.is_empty() {
            if let Some(bd) = &self.breakdown {
                let now = std::time::Instant::now();
                for &(zxid, stage) in &b.stamps {
                    bd.mark(self.side, zxid, stage, now);
                }
            }
            b.stamps.clear();
        }
        Flushed::All
    }

    /// Writes what the socket takes now; leaves the rest to the writer task.
    pub(crate) fn flush(&self) {
        if self.try_flush() == Flushed::WouldBlock {
            self.wake.notify_one();
        }
    }

    /// The writer task: writes what a flush left, waiting for the socket to be writable;
    /// returns when the connection fails.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.wake.notified().await;
            loop {
                match self.try_flush() {
                    Flushed::All => break,
                    Flushed::Failed => return,
                    Flushed::WouldBlock => {
                        if self.half.writable().await.is_err() {
                            self.lock().failed = true;
                            return;
                        }
                    }
                }
            }
        }
    }
}
