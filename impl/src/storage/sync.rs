//! The synchronization primitives of the log writer's hand-off (`writer.rs`) and of the
//! simulated disk (`sim_fs.rs`): `std`'s in normal builds, `loom`'s under `--cfg zab_loom`, so that
//! loom can explore every interleaving of the protocol thread, the writer thread, the threads
//! waiting for durability, and the disk operations they race with.
//!
//! The snapshot store and the epoch files use `std::sync` directly: their critical sections
//! never block on a loom object, so they cannot deadlock under loom, and they stay usable
//! outside a `loom::model` (the synchronous [`Storage`](super::Storage) API needs no model,
//! given a real disk).

#[cfg(zab_loom)]
pub(crate) use loom::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};

#[cfg(not(zab_loom))]
pub(crate) use std::{
    sync::{
        Arc, Condvar, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    thread,
};
