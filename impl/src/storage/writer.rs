//! [`LogWriter`]: group commit. A thread that owns the [`Storage`], takes every request queued
//! since its last round as one batch, writes the appends, fsyncs once, and then reports
//! "durable up to zxid Z" (an event, the `durable_zxid` atomic, and the waiters of
//! [`LogWriter::flush`]). Truncations, snapshot installations and reads go through the same
//! queue, so they happen in order with the appends queued before them.
//!
//! The hand-off (queue, sequence numbers, condition variables, the durable-zxid atomic) uses
//! the `sync` shim so that loom can check it; the loom test at the end of this file checks that
//! no append is ever reported durable (by event, by [`LogWriter::durable_zxid`] or by
//! [`LogWriter::flush`]) before the fsync that covers it.
//!
//! Protocol of the shared state: every request gets a sequence number `seq` when queued;
//! `done_seq` is such that every request with a smaller `seq` is complete, appends included
//! durable. The writer advances `done_seq` only after the fsync covering the appends below it
//! returned, and stores the durable zxid in the atomic (Release) after that same fsync.

use std::collections::BTreeMap;

use bytes::Bytes;
use tracing::{debug, error};
use zab_spec::{Zxid, sync::is_next_zxid};

use super::{
    epoch::EpochFiles,
    error::{Result, StorageError},
    log::LogRecord,
    snapshot::{SnapshotStore, SnapshotTicket},
    store::Storage,
    sync::{Arc, AtomicU64, Condvar, Mutex, MutexGuard, Ordering, thread},
};

/// What the writer thread reports, on its own thread, through the callback given to
/// [`LogWriter::spawn`].
#[derive(Debug, Clone)]
pub enum WriterEvent {
    /// Every append up to `zxid` is durable (fsynced). Reported once per fsync, in increasing
    /// zxid order within a generation.
    Durable {
        /// The last durable zxid.
        zxid: Zxid,
        /// The history generation ([`SnapshotStore::generation`]): bumped by every truncation
        /// and snapshot installation, so that a consumer can ignore reports about a history
        /// that was cut since.
        generation: u64,
        /// How long the group commit's fsync took, in microseconds (for the metrics).
        fsync_micros: u64,
    },
    /// The writer hit a storage error and stopped; every later request fails. The server must
    /// stop (never retry).
    Failed(StorageError),
}

enum Command {
    Append(Zxid, Bytes),
    Truncate(Zxid),
    Install(Zxid, super::SnapData),
    Read(Zxid),
    /// Prune the log segments covered by the oldest retained snapshot, at this zxid.
    Compact(Zxid),
}

enum Reply {
    Done,
    Records(Vec<LogRecord>),
}

struct Queued {
    seq: u64,
    cmd: Command,
}

struct State {
    queue: Vec<Queued>,
    next_seq: u64,
    done_seq: u64,
    /// The zxid of the last queued append (or the history's end after a truncation or
    /// installation): the next append must directly follow it.
    last_queued: Zxid,
    replies: BTreeMap<u64, Result<Reply>>,
    failed: Option<StorageError>,
    closing: bool,
    stopped: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for work.
    work: Condvar,
    /// Waiters (flush, truncate, ...) wait here for `done_seq`, replies and failures.
    done: Condvar,
    /// `Zxid::to_u64` of the last durable zxid.
    durable: AtomicU64,
    max_record_bytes: u32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wait<'a, T>(cv: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The group-commit log writer: see the module docs. `Send + Sync`: share it with `Arc`.
///
/// Appends, truncations and installations must come from one thread (the protocol thread),
/// which is what makes "the next append directly follows the last one" checkable at enqueue
/// time. Flushes, reads, snapshots and `durable_zxid` may come from any thread.
pub struct LogWriter {
    shared: Arc<Shared>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    snapshots: SnapshotStore,
    epochs: EpochFiles,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("durable_zxid", &self.durable_zxid())
            .finish_non_exhaustive()
    }
}

/// Marks the writer stopped however its thread ends (a panicking callback included), so that
/// no waiter waits forever.
struct ExitGuard(Arc<Shared>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        let mut st = lock(&self.0.state);
        if thread::panicking() && st.failed.is_none() {
            st.failed = Some(StorageError::Inconsistent(
                "the log writer thread panicked".into(),
            ));
        }
        st.stopped = true;
        drop(st);
        self.0.done.notify_all();
    }
}

impl LogWriter {
    /// Starts the writer thread, which takes ownership of `storage`. `on_event` runs on that
    /// thread after every fsync and on failure; it must be quick and must not call the
    /// writer's blocking methods (send to a channel instead, e.g. a tokio
    /// `UnboundedSender`, whose `send` never blocks).
    pub fn spawn(
        storage: Storage,
        on_event: impl FnMut(WriterEvent) + Send + 'static,
    ) -> Result<LogWriter> {
        let durable = storage.durable_zxid();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Vec::new(),
                next_seq: 0,
                done_seq: 0,
                last_queued: storage.last_zxid(),
                replies: BTreeMap::new(),
                failed: None,
                closing: false,
                stopped: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable: AtomicU64::new(durable.to_u64()),
            max_record_bytes: storage.max_record_bytes(),
        });
        let snapshots = storage.snapshots().clone();
        let epochs = storage.epochs().clone();
        let thread_shared = shared.clone();
        let handle = thread::Builder::new()
            .name("zab-log-writer".into())
            .spawn(move || run(thread_shared, storage, on_event))
            .map_err(|e| StorageError::io("spawn the log writer thread", "", e))?;
        Ok(LogWriter {
            shared,
            thread: Mutex::new(Some(handle)),
            snapshots,
            epochs,
        })
    }

    fn check(st: &State) -> Result<()> {
        if let Some(e) = &st.failed {
            return Err(e.poisoned());
        }
        if st.closing || st.stopped {
            return Err(StorageError::Closed);
        }
        Ok(())
    }

    fn enqueue(&self, st: &mut State, cmd: Command) -> u64 {
        let seq = st.next_seq;
        st.next_seq += 1;
        st.queue.push(Queued { seq, cmd });
        seq
    }

    /// Queues a transaction; never blocks on I/O. It is durable once a
    /// [`WriterEvent::Durable`] with a zxid at or beyond it is reported (or
    /// [`LogWriter::flush`] returns).
    ///
    /// # Errors
    /// [`StorageError::InvalidRequest`] if `zxid` does not directly follow the last queued one
    /// (nothing queued); the writer's failure, or [`StorageError::Closed`].
    pub fn append(&self, zxid: Zxid, payload: Bytes) -> Result<()> {
        if payload.len() > self.shared.max_record_bytes as usize {
            return Err(StorageError::InvalidRequest(format!(
                "payload of {} bytes for {zxid} is too large",
                payload.len()
            )));
        }
        let mut st = lock(&self.shared.state);
        Self::check(&st)?;
        if !is_next_zxid(st.last_queued, zxid) {
            return Err(StorageError::InvalidRequest(format!(
                "append of {zxid} does not directly follow the last queued zxid {}",
                st.last_queued
            )));
        }
        st.last_queued = zxid;
        self.enqueue(&mut st, Command::Append(zxid, payload));
        drop(st);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Waits until everything queued before this call is durable; returns the durable zxid.
    /// By then the [`WriterEvent::Durable`] covering it has been emitted (the callback
    /// returned). (NEWLEADER: `flush`, then write `currentEpoch`, then send the ACK.)
    pub fn flush(&self) -> Result<Zxid> {
        let mut st = lock(&self.shared.state);
        let target = st.next_seq;
        loop {
            if let Some(e) = &st.failed {
                return Err(e.poisoned());
            }
            if st.done_seq >= target {
                return Ok(self.durable_zxid());
            }
            if st.stopped {
                return Err(StorageError::Closed);
            }
            st = wait(&self.shared.done, st);
        }
    }

    fn request(&self, cmd: Command) -> Result<Reply> {
        let mut st = lock(&self.shared.state);
        Self::check(&st)?;
        let seq = self.enqueue(&mut st, cmd);
        self.shared.work.notify_one();
        loop {
            if let Some(reply) = st.replies.remove(&seq) {
                return reply;
            }
            if let Some(e) = &st.failed {
                return Err(e.poisoned());
            }
            if st.stopped {
                return Err(StorageError::Closed);
            }
            st = wait(&self.shared.done, st);
        }
    }

    /// TRUNC, in order after the appends queued before it: see [`Storage::truncate_after`].
    /// Returns when the truncation is durable.
    pub fn truncate_after(&self, zxid: Zxid) -> Result<()> {
        self.request(Command::Truncate(zxid)).map(drop)
    }

    /// SNAP, in order after the appends queued before it: see [`Storage::install_snapshot`].
    /// Returns when the snapshot is durable and the old log gone.
    pub fn install_snapshot(&self, zxid: Zxid, data: super::SnapData) -> Result<()> {
        self.request(Command::Install(zxid, data)).map(drop)
    }

    /// Every logged transaction after `zxid`, read in order after the appends queued before
    /// (which are durable by then): see [`Storage::read_after`].
    pub fn read_after(&self, zxid: Zxid) -> Result<Vec<LogRecord>> {
        match self.request(Command::Read(zxid))? {
            Reply::Records(records) => Ok(records),
            Reply::Done => Ok(Vec::new()),
        }
    }

    /// A ticket for a snapshot of the state as of now (take it on the protocol thread, when
    /// capturing the state to serialize).
    #[must_use]
    pub fn snapshot_ticket(&self) -> SnapshotTicket {
        self.snapshots.ticket()
    }

    /// Periodic snapshot: writes it durably *on the calling thread* (appends keep flowing),
    /// keeps the newest `snap_retain_count`, then queues the pruning of the log segments they
    /// cover (done by the writer thread, without waiting).
    ///
    /// # Errors
    /// [`StorageError::StaleSnapshot`] (not fatal; drop the snapshot) if a truncation or
    /// installation happened since `ticket`; otherwise fatal errors.
    pub fn save_snapshot(&self, ticket: SnapshotTicket, zxid: Zxid, data: &[u8]) -> Result<()> {
        let oldest = self.snapshots.save(ticket, zxid, data)?;
        let mut st = lock(&self.shared.state);
        Self::check(&st)?;
        self.enqueue(&mut st, Command::Compact(oldest));
        drop(st);
        self.shared.work.notify_one();
        Ok(())
    }

    /// The last zxid known durable (lock-free).
    #[must_use]
    pub fn durable_zxid(&self) -> Zxid {
        Zxid::from_u64(self.shared.durable.load(Ordering::Acquire))
    }

    /// The epoch files (written synchronously by the caller, not by the writer thread).
    #[must_use]
    pub fn epochs(&self) -> &EpochFiles {
        &self.epochs
    }

    /// The snapshot files.
    #[must_use]
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    /// Drains the queue (everything queued becomes durable), stops the thread, and returns
    /// the writer's failure if it had one. Later requests fail with
    /// [`StorageError::Closed`]. Also done on drop.
    pub fn shutdown(&self) -> Result<()> {
        lock(&self.shared.state).closing = true;
        self.shared.work.notify_all();
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            if handle.join().is_err() {
                return Err(StorageError::Inconsistent(
                    "the log writer thread panicked".into(),
                ));
            }
        }
        match &lock(&self.shared.state).failed {
            Some(e) => Err(e.poisoned()),
            None => Ok(()),
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            debug!(error = %e, "log writer stopped with an error");
        }
    }
}

/// The writer thread.
fn run(shared: Arc<Shared>, mut storage: Storage, mut on_event: impl FnMut(WriterEvent)) {
    let _guard = ExitGuard(shared.clone());
    loop {
        let batch = {
            let mut st = lock(&shared.state);
            while st.queue.is_empty() && !st.closing {
                st = wait(&shared.work, st);
            }
            if st.queue.is_empty() {
                return;
            }
            std::mem::take(&mut st.queue)
        };
        if let Err(e) = process(&shared, &mut storage, batch, &mut on_event) {
            error!(error = %e, "log writer failed; the server must stop");
            on_event(WriterEvent::Failed(e.clone()));
            lock(&shared.state).failed = Some(e);
            shared.done.notify_all();
            return;
        }
    }
}

/// Executes one batch. Appends are buffered until the next request that needs them durable
/// (truncate, install, read) or the end of the batch, then made durable by one fsync and
/// reported.
fn process(
    shared: &Shared,
    storage: &mut Storage,
    batch: Vec<Queued>,
    on_event: &mut impl FnMut(WriterEvent),
) -> Result<()> {
    // `Some(n)`: appends are buffered; after their fsync, `done_seq` becomes `n`.
    let mut pending: Option<u64> = None;
    let appends = batch
        .iter()
        .filter(|q| matches!(q.cmd, Command::Append(..)))
        .count();
    debug!(requests = batch.len(), appends, "log writer batch");
    for Queued { seq, cmd } in batch {
        let reply = match cmd {
            Command::Append(zxid, payload) => {
                storage.append(zxid, &payload)?;
                pending = Some(seq + 1);
                continue;
            }
            Command::Compact(oldest) => {
                storage.prune_log_through(oldest)?;
                match pending {
                    Some(_) => pending = Some(seq + 1),
                    None => publish(shared, seq + 1, None, None),
                }
                continue;
            }
            Command::Truncate(zxid) => {
                sync_and_report(shared, storage, pending.take(), on_event)?;
                storage.truncate_after(zxid).map(|()| Reply::Done)
            }
            Command::Install(zxid, data) => {
                sync_and_report(shared, storage, pending.take(), on_event)?;
                storage
                    .install_snapshot_data(zxid, &data)
                    .map(|()| Reply::Done)
            }
            Command::Read(zxid) => {
                sync_and_report(shared, storage, pending.take(), on_event)?;
                storage.read_after(zxid).map(Reply::Records)
            }
        };
        match &reply {
            Err(e) if e.is_poisoning() => return Err(e.clone()),
            Ok(Reply::Done) => {
                // A truncation or installation moved the end of the history, durably.
                shared
                    .durable
                    .store(storage.durable_zxid().to_u64(), Ordering::Release);
                publish(
                    shared,
                    seq + 1,
                    Some((seq, reply)),
                    Some(storage.last_zxid()),
                );
            }
            _ => publish(shared, seq + 1, Some((seq, reply)), None),
        }
    }
    sync_and_report(shared, storage, pending, on_event)
}

/// Completes requests: every one below `done_seq`, with a reply for `reply.0`, and the new end
/// of the history after a truncation or installation.
fn publish(shared: &Shared, done_seq: u64, reply: Option<(u64, Result<Reply>)>, end: Option<Zxid>) {
    let mut st = lock(&shared.state);
    st.done_seq = done_seq;
    if let Some((seq, reply)) = reply {
        st.replies.insert(seq, reply);
    }
    if let Some(end) = end {
        st.last_queued = end;
    }
    drop(st);
    shared.done.notify_all();
}

/// If appends are buffered: one fsync, *then* publish their durability (atomic, `done_seq`,
/// event).
fn sync_and_report(
    shared: &Shared,
    storage: &mut Storage,
    pending: Option<u64>,
    on_event: &mut impl FnMut(WriterEvent),
) -> Result<()> {
    let Some(done_seq) = pending else {
        return Ok(());
    };
    let start = std::time::Instant::now();
    let zxid = storage.sync()?;
    let fsync_micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
    shared.durable.store(zxid.to_u64(), Ordering::Release);
    // The event first: when `flush` returns, the report covering it was emitted.
    on_event(WriterEvent::Durable {
        zxid,
        generation: storage.snapshots().generation(),
        fsync_micros,
    });
    publish(shared, done_seq, None, None);
    Ok(())
}

/// Loom models of the hand-off: `RUSTFLAGS="--cfg zab_loom" cargo test -p zab-server --release
/// storage`. Property: whoever observes durability (the event callback on the writer thread,
/// `durable_zxid` on the protocol thread, `flush` on another thread) finds it on the simulated
/// disk, i.e. no append is reported durable before the fsync that covers it, and nothing is
/// reported after a failed fsync.
#[cfg(zab_loom)]
mod loom_tests {
    use std::path::PathBuf;

    use bytes::Bytes;
    use zab_spec::{Epoch, Zxid};

    use super::{LogWriter, WriterEvent};
    use crate::storage::{
        CrashMode, SimFs, Storage, StorageConfig, StorageError,
        log::{LogConfig, TxnLog},
        sync::{Arc, thread},
    };

    /// The last zxid that a crash right now would keep.
    fn on_disk(sim: &SimFs) -> Zxid {
        let image = sim.durable_image(CrashMode::DropUnsynced);
        let cfg = LogConfig {
            segment_bytes: 1 << 20,
            max_record_bytes: 1 << 20,
            write_buffer_bytes: 1 << 20,
        };
        // A crash that keeps what was fsynced leaves no damage: recovery must find none.
        let mut no_damage = |what: &str| -> Result<(), StorageError> {
            panic!("a crash image that keeps every fsync shows damage: {what}")
        };
        match TxnLog::open(
            std::sync::Arc::new(image),
            PathBuf::from("/log/zab-v1"),
            cfg,
            &mut no_damage,
        ) {
            Ok((log, _, damage)) => {
                assert_eq!(damage, None, "recovery of a crash image found damage");
                log.last()
            }
            Err(e) => panic!("durable image does not recover: {e}"),
        }
    }

    fn writer(sim: &SimFs) -> Arc<LogWriter> {
        let config = StorageConfig::new("/data", "/log");
        let (storage, _) = Storage::open(std::sync::Arc::new(sim.clone()), &config).unwrap();
        storage.epochs().set_accepted_epoch(Epoch(1)).unwrap();
        let disk = sim.clone();
        let writer = LogWriter::spawn(storage, move |event| {
            if let WriterEvent::Durable { zxid, .. } = event {
                assert!(
                    on_disk(&disk) >= zxid,
                    "Durable({zxid}) reported before its fsync"
                );
            }
        })
        .unwrap();
        Arc::new(writer)
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        if builder.preemption_bound.is_none() {
            builder.preemption_bound = Some(3);
        }
        builder.check(f);
    }

    #[test]
    fn storage_writer_reports_no_append_durable_before_its_fsync() {
        model(|| {
            let sim = SimFs::new();
            let writer = writer(&sim);
            writer
                .append(Zxid::new(1, 1), Bytes::from_static(b"a"))
                .unwrap();
            let waiter = {
                let (writer, sim) = (writer.clone(), sim.clone());
                thread::spawn(move || {
                    let durable = writer.flush().unwrap();
                    assert!(durable >= Zxid::new(1, 1), "flush returned {durable}");
                    assert!(
                        on_disk(&sim) >= durable,
                        "flush returned {durable} before its fsync"
                    );
                })
            };
            writer
                .append(Zxid::new(1, 2), Bytes::from_static(b"b"))
                .unwrap();
            let seen = writer.durable_zxid();
            assert!(
                on_disk(&sim) >= seen,
                "durable_zxid {seen} before its fsync"
            );
            waiter.join().unwrap();
            assert_eq!(writer.flush().unwrap(), Zxid::new(1, 2));
            writer.shutdown().unwrap();
        });
    }

    #[test]
    fn storage_writer_reports_nothing_after_a_failed_fsync() {
        model(|| {
            let sim = SimFs::new();
            let writer = writer(&sim);
            writer
                .append(Zxid::new(1, 1), Bytes::from_static(b"a"))
                .unwrap();
            assert_eq!(writer.flush().unwrap(), Zxid::new(1, 1));
            sim.fail_syncs(true);
            writer
                .append(Zxid::new(1, 2), Bytes::from_static(b"b"))
                .unwrap();
            let waiter = {
                let writer = writer.clone();
                thread::spawn(move || {
                    assert!(writer.flush().is_err(), "flush after a failed fsync");
                    assert_eq!(writer.durable_zxid(), Zxid::new(1, 1));
                })
            };
            assert_eq!(writer.durable_zxid(), Zxid::new(1, 1));
            waiter.join().unwrap();
            assert!(matches!(
                writer.append(Zxid::new(1, 3), Bytes::from_static(b"c")),
                Err(StorageError::Failed(_))
            ));
            assert!(writer.shutdown().is_err());
            assert_eq!(on_disk(&sim), Zxid::new(1, 1));
        });
    }
}
