//! Backpressure on the client port: the reply bytes each connection has queued, the requests
//! (and their bytes) read from the clients and not yet answered, and the rules that stop
//! reading a connection — so that no client can make the server buffer without bound.
//!
//! Three parties share a connection's [`ConnGate`]: its reader task (counts each request it
//! hands to the replica thread, and waits while [`ConnGate::throttled`]), the replica thread
//! (counts each reply it queues, [`Outbox::send_frame`], and each request it answers,
//! [`Outbox::answered`]) and its writer task (counts what reached the socket,
//! [`ConnGate::written`]). The rules:
//! - a connection whose queued replies exceed the soft limit is not read, and the replica
//!   thread answers none of its queued reads until the writer brings it back under the limit
//!   (the writer then sends [`super::ClientEvent::Writable`]);
//! - while the requests outstanding over all connections exceed `globalOutstandingLimit` (or
//!   their bytes `globalOutstandingBytesLimit`), a connection that has a request outstanding
//!   is not read (ZooKeeper's `shouldThrottle`: one with none may still send one);
//! - a connection with `clientOutstandingLimit` requests outstanding is not read, so that one
//!   client cannot take the whole global budget;
//! - replies that are not held back (write results, watch notifications) past the hard limit
//!   close the connection with a warning ([`ConnGate::kill`]).
//!
//! Counting: a request's units are added to the global count first and to the connection's
//! second, with no await in between; they leave the connection's count exactly once (answered,
//! or all at once by [`ConnGate::release`] when the connection ends), and each unit that
//! leaves it leaves the global count too. So the global count never leaks.

use super::ClientOut;
use super::direct::DirectWriter;
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

/// Requests read from every client connection and not yet answered (ZooKeeper's
/// `globalOutstandingLimit` throttle), in number and in bytes.
#[derive(Debug)]
pub struct Outstanding {
    count: AtomicUsize,
    bytes: AtomicUsize,
    limit: usize,
    bytes_limit: usize,
    /// Wakes the throttled readers once the totals are back within the limits.
    wake: Notify,
}

impl Outstanding {
    /// Totals with these limits.
    #[must_use]
    pub fn new(limit: usize, bytes_limit: usize) -> Arc<Outstanding> {
        Arc::new(Outstanding {
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            limit,
            bytes_limit,
            wake: Notify::new(),
        })
    }

    /// Requests outstanding now.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Their bytes.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    fn over(&self, count: usize, bytes: usize) -> bool {
        count > self.limit || bytes > self.bytes_limit
    }

    fn add(&self, n: usize, bytes: usize) {
        self.count.fetch_add(n, Ordering::SeqCst);
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
    }

    fn sub(&self, n: usize, bytes: usize) {
        let c = self.count.fetch_sub(n, Ordering::SeqCst);
        let b = self.bytes.fetch_sub(bytes, Ordering::SeqCst);
        if self.over(c, b) && !self.over(c.saturating_sub(n), b.saturating_sub(bytes)) {
            self.wake.notify_waiters();
        }
    }
}

/// One connection's shared counters (see the module docs).
#[derive(Debug)]
pub struct ConnGate {
    global: Arc<Outstanding>,
    /// Reply bytes queued by the replica thread and not yet written to the socket.
    queued: AtomicUsize,
    /// This connection's outstanding requests and their bytes.
    count: AtomicUsize,
    bytes: AtomicUsize,
    soft: usize,
    /// `clientOutstandingLimit`.
    max_outstanding: usize,
    /// Wakes this connection's reader (replies written, requests answered).
    wake: Notify,
    killed: AtomicBool,
    kill: Notify,
}

impl ConnGate {
    /// A connection's gate, counting into `global`, with the soft limit on queued replies and
    /// the limit on its outstanding requests.
    #[must_use]
    pub fn new(global: Arc<Outstanding>, soft: usize, max_outstanding: usize) -> Arc<ConnGate> {
        Arc::new(ConnGate {
            global,
            queued: AtomicUsize::new(0),
            count: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            soft,
            max_outstanding: max_outstanding.max(1),
            wake: Notify::new(),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
        })
    }

    /// Reply bytes queued and not yet written.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// This connection's outstanding requests.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Reader: whether the connection must not be read now.
    #[must_use]
    pub fn throttled(&self) -> bool {
        self.queued() > self.soft
            || self.outstanding() >= self.max_outstanding
            || (self.outstanding() > 0
                && self.global.over(self.global.count(), self.global.bytes()))
    }

    /// Reader: waits until the connection may be read. A short poll backs up the wake-ups.
    pub async fn wait_open(&self) {
        while self.throttled() {
            tokio::select! {
                () = self.wake.notified() => {}
                () = self.global.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// Reader: a request of `len` bytes goes to the replica thread.
    pub fn request_sent(&self, len: usize) {
        self.global.add(1, len);
        self.count.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(len, Ordering::SeqCst);
    }

    /// Replica thread: a request of `len` bytes was answered.
    fn answered(&self, len: usize) {
        let took = self
            .count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
            .is_ok();
        if !took {
            return;
        }
        let b = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(len))
            })
            .unwrap_or(0);
        self.global.sub(1, b.min(len));
        self.wake.notify_one();
    }

    /// Everything this connection still has outstanding leaves the counts (the connection
    /// ended). Idempotent.
    pub fn release(&self) {
        let n = self.count.swap(0, Ordering::SeqCst);
        let b = self.bytes.swap(0, Ordering::SeqCst);
        if n > 0 || b > 0 {
            self.global.sub(n, b);
        }
    }

    /// Replica thread: `len` reply bytes queued; returns the connection's queued total.
    fn queue(&self, len: usize) -> usize {
        self.queued.fetch_add(len, Ordering::SeqCst) + len
    }

    /// Writer: `len` bytes reached the socket. Returns whether the queue just fell back to
    /// the soft limit (the replica thread is then told, to answer the reads it held back).
    pub fn written(&self, len: usize) -> bool {
        let old = self
            .queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |q| {
                Some(q.saturating_sub(len))
            })
            .unwrap_or(0);
        let crossed = old > self.soft && old.saturating_sub(len) <= self.soft;
        if crossed {
            self.wake.notify_one();
        }
        crossed
    }

    /// Ends the connection at once (hard limit): its tasks stop, what it queued is freed.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.kill.notify_one();
    }

    /// Resolves once [`ConnGate::kill`] was called.
    pub async fn killed(&self) {
        while !self.killed.load(Ordering::SeqCst) {
            self.kill.notified().await;
        }
    }
}

/// The replica thread's end of a connection: its output channel, for a real connection its
/// gate, and for a plaintext one its socket, written by the replica thread itself once an
/// event is handled ([`super::direct::DirectWriter`]; replies then go there and only `Close`
/// through the channel). An unmetered outbox (the simulation's clients) counts nothing and is
/// never throttled.
#[derive(Debug)]
pub struct Outbox {
    tx: UnboundedSender<ClientOut>,
    gate: Option<Arc<ConnGate>>,
    direct: Option<DirectWriter>,
    /// The byte sizes of this connection's requests not yet answered, in arrival order: a
    /// session's replies leave in request order, so each answer takes the oldest.
    sizes: VecDeque<usize>,
}

impl From<UnboundedSender<ClientOut>> for Outbox {
    fn from(tx: UnboundedSender<ClientOut>) -> Outbox {
        Outbox {
            tx,
            gate: None,
            direct: None,
            sizes: VecDeque::new(),
        }
    }
}

impl Outbox {
    /// A metered outbox.
    #[must_use]
    pub fn new(tx: UnboundedSender<ClientOut>, gate: Arc<ConnGate>) -> Outbox {
        Outbox {
            tx,
            gate: Some(gate),
            direct: None,
            sizes: VecDeque::new(),
        }
    }

    /// Replies go to `direct`, the connection's socket, instead of the channel.
    #[must_use]
    pub fn with_direct(mut self, direct: DirectWriter) -> Outbox {
        self.direct = Some(direct);
        self
    }

    /// The socket the replica thread writes, if it does (flushed once the event is handled).
    pub(super) fn direct(&self) -> Option<&DirectWriter> {
        self.direct.as_ref()
    }

    /// Queues a frame; returns the connection's queued reply bytes. Nothing more is queued
    /// once the connection was killed.
    pub(super) fn send_frame(&self, frame: Bytes) -> usize {
        if self.killed() {
            return 0;
        }
        let total = self.gate.as_ref().map_or(0, |g| g.queue(frame.len()));
        match &self.direct {
            Some(d) => d.queue(&frame),
            None => {
                let _ = self.tx.send(ClientOut::Frame(frame));
            }
        }
        total
    }

    /// Whether [`Outbox::kill`] ended the connection.
    pub(super) fn killed(&self) -> bool {
        self.gate
            .as_ref()
            .is_some_and(|g| g.killed.load(Ordering::SeqCst))
    }

    /// Flushes what was queued, then closes; the connection's requests leave the counts.
    pub(super) fn close(&self) {
        let _ = self.tx.send(ClientOut::Close);
        if let Some(g) = &self.gate {
            g.release();
        }
    }

    /// Closes at once, dropping what is queued (hard limit).
    pub(super) fn kill(&self) {
        if let Some(g) = &self.gate {
            g.release();
            g.kill();
        }
        if let Some(d) = &self.direct {
            d.discard();
        }
        let _ = self.tx.send(ClientOut::Close);
    }

    /// Reply bytes queued and not yet written (0 when unmetered).
    pub(super) fn queued(&self) -> usize {
        self.gate.as_ref().map_or(0, |g| g.queued())
    }

    /// A request of `len` bytes arrived (remembered until it is answered).
    pub(super) fn received(&mut self, len: usize) {
        if self.gate.is_some() {
            self.sizes.push_back(len);
        }
    }

    /// The oldest outstanding request was answered.
    pub(super) fn answered(&mut self) {
        if let Some(g) = &self.gate {
            let len = self.sizes.pop_front().unwrap_or(0);
            g.answered(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_exactly_once() {
        let global = Outstanding::new(2, 1000);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let gate = ConnGate::new(Arc::clone(&global), 100, 1000);
        let mut out = Outbox::new(tx, Arc::clone(&gate));
        for _ in 0..3 {
            gate.request_sent(10);
            out.received(10);
        }
        assert_eq!((global.count(), global.bytes()), (3, 30));
        assert!(
            gate.throttled(),
            "over the global limit with requests outstanding"
        );
        out.answered();
        assert_eq!((global.count(), global.bytes()), (2, 20));
        assert!(!gate.throttled());
        // The connection ends: the rest leaves; a late answer changes nothing.
        gate.release();
        out.answered();
        gate.release();
        assert_eq!((global.count(), global.bytes()), (0, 0));
    }

    #[test]
    fn the_soft_limit_throttles_until_written() {
        let global = Outstanding::new(1000, 1 << 20);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let gate = ConnGate::new(global, 100, 1000);
        let out = Outbox::new(tx, Arc::clone(&gate));
        assert_eq!(out.send_frame(Bytes::from(vec![0u8; 80])), 80);
        assert!(!gate.throttled());
        assert_eq!(out.send_frame(Bytes::from(vec![0u8; 80])), 160);
        assert!(gate.throttled(), "past the soft limit");
        assert!(rx.try_recv().is_ok());
        assert!(gate.written(80), "back at the limit: the replica is told");
        assert!(!gate.throttled());
        assert!(!gate.written(80), "only the crossing is reported");
        assert_eq!(gate.queued(), 0);
    }

    #[test]
    fn a_throttled_connection_with_nothing_outstanding_may_still_send() {
        let global = Outstanding::new(1, 1 << 20);
        let a = ConnGate::new(Arc::clone(&global), 100, 1000);
        let b = ConnGate::new(Arc::clone(&global), 100, 1000);
        a.request_sent(1);
        a.request_sent(1);
        assert!(a.throttled());
        assert!(
            !b.throttled(),
            "ZooKeeper throttles only connections with requests out"
        );
    }

    #[test]
    fn one_connection_cannot_take_the_whole_budget() {
        let global = Outstanding::new(1000, 1 << 20);
        let a = ConnGate::new(Arc::clone(&global), 100, 3);
        for _ in 0..2 {
            a.request_sent(1);
        }
        assert!(!a.throttled());
        a.request_sent(1);
        assert!(a.throttled(), "at clientOutstandingLimit");
    }
}
