//! A plaintext client connection's socket as the replica thread writes it ([`crate::net_out`],
//! issue 20): replies are queued during an event and written when it is handled
//! ([`super::ZkService`]'s flush); the rest, if the socket is full, by the connection's
//! writer task (`client.rs`). What reaches the socket is reported through the callback the
//! connection gives (its gate, the latency breakdown). Apart from `client.rs`, so that the
//! outbox (`backpressure.rs`) can hold one without importing the connection code.

use crate::net_out::{OnWritten, Outgoing};
use std::sync::Arc;

/// One plaintext client connection's write side.
#[derive(Clone)]
pub struct DirectWriter(Arc<Outgoing<i32>>);

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectWriter")
    }
}

impl DirectWriter {
    /// Writes `half`; `written` hears how many bytes reached the socket and which replies
    /// (by xid) are written whole.
    pub(super) fn new(
        half: tokio::net::tcp::OwnedWriteHalf,
        written: OnWritten<i32>,
    ) -> DirectWriter {
        DirectWriter(Arc::new(Outgoing::direct(half, Some(written))))
    }

    /// Queues a frame (length prefix included), marked with its reply xid for the breakdown.
    pub(super) fn queue(&self, frame: &[u8]) {
        let xid = frame
            .get(4..8)
            .map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]));
        self.0.queue(|buf| buf.extend_from_slice(frame), xid, false);
    }

    /// Writes what was queued (the rest, if the socket is full, by the connection's task).
    pub(super) fn flush(&self) {
        self.0.flush();
    }

    /// Drops what is queued; nothing more is written (the connection is being killed).
    pub(super) fn discard(&self) {
        self.0.discard();
    }

    /// Whether both are the same connection's.
    pub(super) fn same(&self, other: &DirectWriter) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Writes everything queued, waiting for the socket as needed; `false` if the
    /// connection failed (the writer task's part).
    pub(super) async fn drain(&self) -> bool {
        self.0.drain().await
    }

    /// Waits until a flush left bytes for the writer task.
    pub(super) async fn woken(&self) {
        self.0.woken().await;
    }
}
