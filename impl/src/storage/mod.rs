//! Durable state of a server: the transaction log, snapshots and epoch files.
//!
//! What must be durable before which message leaves is `spec/PROTOCOL.md`'s business (§4
//! ACKEPOCH, §5.2 NEWLEADER, §6 SyncProcessorLogRequest); this module makes "durable" true
//! when it says so, and never otherwise.
//!
//! # The pieces
//!
//! | type | owns |
//! |---|---|
//! | [`Storage`] | the whole durable state behind one synchronous API; recovery ([`Storage::open`] → [`Recovered`]) |
//! | [`LogWriter`] | group commit: a thread owning the `Storage`; appends never block the caller; one fsync per batch; [`WriterEvent::Durable`] reports |
//! | [`SnapshotStore`] | snapshot files: atomic durable writes, retention, [`SnapshotTicket`]s |
//! | [`EpochFiles`] | `acceptedEpoch` / `currentEpoch`, replaced atomically and durably |
//! | [`FileSystem`], [`StdFs`], [`SimFs`] | the file operations used; the real disk; an in-memory disk with a durability model and fault injection |
//! | [`StorageError`] | what can go wrong |
//!
//! # Errors are fatal
//!
//! A [`StorageError`] means the server must stop (log it, exit; restart recovers from what is
//! durable). Never retry, in particular never retry an fsync: after a failed fsync the kernel
//! may have dropped the dirty pages, and a second fsync that "succeeds" proves nothing. The
//! components enforce this: after an I/O error the log, the writer, the snapshot store and the
//! epoch files are *poisoned* and return [`StorageError::Failed`] for every later request, so
//! nothing appended after a failure is ever reported durable. Two errors change nothing and do
//! not poison: [`StorageError::InvalidRequest`] (a caller bug, e.g. a zxid out of order) and
//! [`StorageError::StaleSnapshot`] (drop that snapshot and carry on).
//!
//! # How the server uses it
//!
//! Recovery, then hand the storage to the log writer; durability reports go to the protocol
//! thread through a channel:
//!
//! ```no_run
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use zab_server::storage::{LogWriter, StdFs, Storage, StorageConfig, WriterEvent};
//! use zab_spec::{Epoch, Zxid};
//!
//! # fn main() -> Result<(), zab_server::storage::StorageError> {
//! let config = StorageConfig::new("/var/lib/zab/data", "/var/lib/zab/datalog");
//! let (storage, recovered) = Storage::open(Arc::new(StdFs), &config)?;
//! // Rebuild the state: `recovered.snapshot` (or the empty tree), then `recovered.txns`;
//! // `recovered.accepted_epoch` / `current_epoch` seed the protocol core.
//! let (tx, rx) = std::sync::mpsc::channel(); // a tokio UnboundedSender works the same way
//! let writer = Arc::new(LogWriter::spawn(storage, move |event| {
//!     let _ = tx.send(event); // runs on the writer thread: never block here
//! })?);
//!
//! // Broadcast (SyncProcessorLogRequest): queue and move on; ACK on the durability report.
//! writer.append(Zxid::new(1, 1), Bytes::from_static(b"txn"))?;
//! match rx.recv() {
//!     Ok(WriterEvent::Durable { zxid, .. }) => { /* send ACK for every proposal <= zxid */ }
//!     Ok(WriterEvent::Failed(e)) => return Err(e), // stop the server
//!     Err(_) => {}
//! }
//!
//! // LEADERINFO with a new epoch: acceptedEpoch durable before ACKEPOCH leaves.
//! writer.epochs().set_accepted_epoch(Epoch(2))?;
//!
//! // TRUNC(z): cut durably, in order after everything queued, before anything else.
//! writer.truncate_after(Zxid::new(1, 1))?;
//!
//! // NEWLEADER (§5.2, the ZOOKEEPER-4646/4643 order): (1) log the synced packets and fsync,
//! // (2) then currentEpoch, (3) then send the ACK of NEWLEADER.
//! writer.append(Zxid::new(1, 2), Bytes::from_static(b"synced packet"))?;
//! writer.flush()?;
//! writer.epochs().set_current_epoch(Epoch(2))?;
//! // ... now send ACK(NEWLEADER) ...
//!
//! // Periodic snapshot (TakeSnapshot): ticket on the protocol thread when capturing the
//! // state, serialization and the write elsewhere; appends continue meanwhile.
//! let ticket = writer.snapshot_ticket();
//! let (zxid, bytes) = (Zxid::new(1, 2), vec![0u8; 16]); // the serialized tree at `zxid`
//! let w = writer.clone();
//! std::thread::spawn(move || match w.save_snapshot(ticket, zxid, &bytes) {
//!     Ok(()) | Err(zab_server::storage::StorageError::StaleSnapshot { .. }) => {}
//!     Err(e) => panic!("fatal storage error: {e}"), // the real server stops cleanly
//! });
//! # Ok(())
//! # }
//! ```
//!
//! SNAP from the leader: `writer.install_snapshot(zxid, data)?` replaces the whole history
//! durably before the follower processes anything else; the next append must follow `zxid`.
//! A server going LOOKING drains the log thread with `writer.flush()?`; shutdown is
//! [`LogWriter::shutdown`] (also on drop), which drains too.
//!
//! A single-threaded driver (tests, a deterministic simulation) uses [`Storage`] directly:
//! `append`, `sync`, `truncate_after`, `install_snapshot`, `read_after`, `save_snapshot`.
//!
//! # On-disk layout and format
//!
//! ```text
//! <dataDir>/zab-v1/snapshot.<zxid: 16 hex digits>   snapshots (newest `snap_retain_count` kept)
//! <dataDir>/zab-v1/acceptedEpoch, currentEpoch      decimal text, e.g. "3\n"
//! <dataDir>/zab-v1/recovering                       present while recovering (§7.1): the reason
//! <dataLogDir>/zab-v1/durable-end                   last fsynced zxid + CRC32C, not fsynced itself
//! <dataLogDir>/zab-v1/log.<first zxid: 16 hex>      log segments (dataLogDir may equal dataDir)
//! *.tmp                                             unfinished atomic writes, deleted at start
//! snapshot.<zxid>.corrupt                           a corrupt snapshot set aside by recovery
//! ```
//!
//! A segment is a 28-byte header (magic `ZABTXLOG`, format version 1, flags, first zxid,
//! CRC32C of the header) followed by records `crc32c u32 | length u32 | zxid u64 | payload`,
//! the CRC covering length, zxid and payload. A snapshot is a 40-byte header (magic
//! `ZABSNAPS`, version 1, flags, zxid, data length, CRC32C of the data, CRC32C of the header)
//! followed by the data. Integers are little-endian. See `format.rs`.
//!
//! # Durability rules
//!
//! - [`Storage::sync`] / a writer batch: write, fsync the segment, fsync the directory if a
//!   segment was created; only then is anything reported durable.
//! - A segment is sealed (fsynced with its directory entry) before the next one is created:
//!   only the last segment can have a torn tail.
//! - Snapshots and epoch files: write `name.tmp`, fsync, rename over `name`, fsync the directory.
//! - TRUNC: everything up to the cut is fsynced; snapshots after the cut are deleted
//!   (durably); later segments are deleted newest first, each deletion made durable; the
//!   segment holding the cut is truncated and fsynced. A crash at any point leaves a prefix.
//! - SNAP: the snapshot is written and fsynced under its temporary name; the old log after
//!   its zxid is cut durably; then it is renamed in and the directory fsynced; the old log and
//!   snapshots are deleted. A crash leaves the old state (maybe cut) or the new one.
//! - Pruning after a snapshot is not made durable: a resurrected old segment is harmless.
//!
//! # Recovery ([`Storage::open`])
//!
//! Torn writes are cut; damage to what may have been fsynced is never cut silently: the valid
//! prefix is kept, the rest is dropped durably *after* the `recovering` flag file is durable,
//! the damage is logged (`error!`, naming file and byte offset) and reported in
//! [`Recovered::damage`], and the server starts in the recovering state of
//! `spec/PROTOCOL.md` §7.1 (a single-server ensemble refuses to start instead: it has no peer
//! to be restored from).
//!
//! - Log: segments in zxid order. In the *last* segment, a record running past the end of the
//!   file or a zero-filled tail, with no valid record after it, is a torn write: it is cut (with
//!   a `warn!`) and recovery continues; a torn header or a record-less last segment is removed.
//!   Anything else is damage (`format.rs` says how the two are told apart): a record wholly in
//!   the file that fails its checksum (the last one included), damage followed by a valid
//!   record, damage in a sealed segment, a bad header. A gap between segments (a lost
//!   segment) is damage too. Zxids duplicated or out of order (within or across segments), a
//!   first record that is not the segment's name, and an unsupported format version refuse to
//!   start, naming the file and byte offset: those are not what a disk does to fsynced data.
//!   A log that ends before its end mark (`durable-end`, the last fsynced zxid, rewritten
//!   after each fsync) lost a fsynced suffix cut at a record boundary: damage too.
//! - Snapshot: the newest valid one. A corrupt newest snapshot falls back to an older one (or
//!   to the empty state) and is renamed `*.corrupt`; if the log does not hold every transaction
//!   from there through the corrupt one's zxid, the history that rebuilds is kept and the
//!   server recovers.
//! - The transactions after the chosen snapshot must follow it without a gap (`IsNextZxid`);
//!   after a gap, the rest of the log is dropped and the server recovers.
//! - Epoch files: garbage refuses to start (naming the file); missing files mean epoch 0 on a
//!   fresh data directory. An epoch file missing beside a log or snapshot is damage:
//!   ZooKeeper's rule gives it the epoch of the last logged zxid (never letting `currentEpoch`
//!   exceed `acceptedEpoch`), the files are rewritten after the flag, and the server recovers.
//!   `currentEpoch` greater than `acceptedEpoch` refuses to start.
//! - A wiped data directory looks like a fresh one; the protocol core tells them apart from
//!   what the other members report (§7.1).
//! - Nothing read from disk is trusted: corrupt input yields an error or a recovery, never a
//!   panic.

//! # Testing hooks
//!
//! [`SimFs`] models what survives a crash (see its docs) and injects failing fsyncs and
//! writes; [`damage`] damages a crashed [`SimFs`] disk (bit flips, lost epoch files, wipes); the loom model of the writer's hand-off runs with
//! `RUSTFLAGS="--cfg zab_loom" cargo test -p zab-server --release storage`.

pub mod damage;
mod epoch;
mod error;
pub(crate) mod format;
mod fs;
pub(crate) mod log;
mod sim_fs;
mod snapshot;
mod spool;
mod store;
mod sync;
mod writer;

#[cfg(all(test, not(zab_loom)))]
mod tests;

pub use epoch::{ACCEPTED_EPOCH_FILE, CURRENT_EPOCH_FILE, EpochFiles, RECOVERING_FILE};

/// The reason written to the `recovering` flag file when the protocol core sets it: the
/// server started with an empty data directory in an ensemble that has run (§7.1).
pub const WIPE_SUSPECTED: &str = "started with an empty data directory in an ensemble whose \
     other members hold durable state: possibly a wiped data directory of a member";
pub use error::{Result, StorageError};
pub use fs::{FileSystem, StdFs, WritableFile};
pub use log::LogRecord;
pub use sim_fs::{CrashMode, SimFs, SimStats};
pub use snapshot::{Snapshot, SnapshotStore, SnapshotTicket};
pub use spool::{SnapData, SnapFile, SnapSpool};
pub use store::{LAYOUT_DIR, Recovered, Storage, StorageConfig};
pub use writer::{LogWriter, WriterEvent};
