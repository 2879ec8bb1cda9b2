//! The simulated server's disk and clock: the real [`Storage`] on a [`SimFs`], behind the
//! runtime's [`LogBackend`], with fsyncs completed when the simulation says so; and a clock
//! the simulation advances.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use zab_server::runtime::{Clock, LogBackend};
use zab_server::storage::{LogRecord, SnapData, SnapshotTicket, Storage, StorageError};
use zab_spec::{Epoch, Zxid};

/// The real storage code on a simulated disk. `append` only buffers; the simulation calls
/// [`SimLog::complete_fsync`] to make the buffered records durable (a slow fsync is one the
/// simulation completes late).
#[derive(Debug)]
pub struct SimLog {
    storage: Mutex<Storage>,
    /// `currentEpoch` writes so far (the simulation's aimed faults watch them).
    epoch_writes: AtomicU64,
}

impl SimLog {
    /// Wraps a recovered storage.
    #[must_use]
    pub fn new(storage: Storage) -> SimLog {
        SimLog {
            storage: Mutex::new(storage),
            epoch_writes: AtomicU64::new(0),
        }
    }

    fn storage(&self) -> MutexGuard<'_, Storage> {
        self.storage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many times `currentEpoch` was written.
    #[must_use]
    pub fn epoch_writes(&self) -> u64 {
        self.epoch_writes.load(Ordering::SeqCst)
    }

    /// Whether appended records wait for an fsync.
    #[must_use]
    pub fn has_unsynced(&self) -> bool {
        let s = self.storage();
        s.last_zxid() > s.durable_zxid()
    }

    /// The group-commit thread's fsync: everything appended becomes durable. Returns the
    /// durable zxid and the history generation, as [`zab_server::storage::WriterEvent::Durable`]
    /// reports them.
    pub fn complete_fsync(&self) -> Result<(Zxid, u64), StorageError> {
        let mut s = self.storage();
        let zxid = s.sync()?;
        Ok((zxid, s.snapshots().generation()))
    }
}

impl LogBackend for SimLog {
    fn append(&self, zxid: Zxid, payload: Bytes) -> Result<(), StorageError> {
        self.storage().append(zxid, &payload)
    }
    fn flush(&self) -> Result<Zxid, StorageError> {
        self.storage().sync()
    }
    fn truncate_after(&self, zxid: Zxid) -> Result<(), StorageError> {
        self.storage().truncate_after(zxid)
    }
    fn install_snapshot(&self, zxid: Zxid, data: SnapData) -> Result<(), StorageError> {
        self.storage().install_snapshot_data(zxid, &data)
    }
    fn set_accepted_epoch(&self, epoch: Epoch) -> Result<(), StorageError> {
        self.storage().epochs().set_accepted_epoch(epoch)
    }
    fn set_current_epoch(&self, epoch: Epoch) -> Result<(), StorageError> {
        self.epoch_writes.fetch_add(1, Ordering::SeqCst);
        self.storage().epochs().set_current_epoch(epoch)
    }
    fn set_recovering(&self, on: bool) -> Result<(), StorageError> {
        self.storage()
            .epochs()
            .set_recovering(on, zab_server::storage::WIPE_SUSPECTED)
    }
    fn generation(&self) -> u64 {
        self.storage().snapshots().generation()
    }
    fn snapshot_ticket(&self) -> SnapshotTicket {
        self.storage().snapshot_ticket()
    }
    fn save_snapshot(
        &self,
        ticket: SnapshotTicket,
        zxid: Zxid,
        data: &[u8],
    ) -> Result<(), StorageError> {
        self.storage().save_snapshot(ticket, zxid, data)
    }
    fn read_after(&self, zxid: Zxid) -> Result<Vec<LogRecord>, StorageError> {
        self.storage().read_after(zxid)
    }
}

/// Simulated time, shared by every server of a simulation.
#[derive(Clone, Debug, Default)]
pub struct SimClock {
    now_ms: Arc<AtomicU64>,
}

/// The wall-clock time simulated time 0 stands for (2026-01-01T00:00:00Z), so znode times
/// look like times.
pub const WALL_ORIGIN_MS: i64 = 1_767_225_600_000;

impl SimClock {
    /// The current simulated time, ms.
    #[must_use]
    pub fn now(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }

    /// Moves time forward (never back).
    pub fn advance_to(&self, t: u64) {
        self.now_ms.fetch_max(t, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn monotonic_ms(&self) -> u64 {
        self.now()
    }
    fn wall_ms(&self) -> i64 {
        WALL_ORIGIN_MS + self.now() as i64
    }
}
