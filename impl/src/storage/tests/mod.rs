//! In-crate tests of the storage that need its internals (the segment format, captured
//! `tracing` warnings): recovery of torn tails and refusal of corruption.

mod recovery;

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use tracing_subscriber::{
    Layer, Registry,
    layer::{Context, SubscriberExt},
};
use zab_spec::{Epoch, Zxid};

use super::{FileSystem, LogRecord, Recovered, SimFs, Storage, StorageConfig, StorageError};

/// Data in `/data`, log in `/log` (separate directories, like dataDir and dataLogDir).
pub(super) fn config() -> StorageConfig {
    let mut c = StorageConfig::new("/data", "/log");
    c.segment_bytes = 200;
    c.max_record_bytes = 1 << 16;
    c
}

pub(super) fn log_dir() -> PathBuf {
    PathBuf::from("/log/zab-v1")
}

/// What [`open`] returns.
pub(super) type Opened = Result<(Storage, Recovered), StorageError>;

pub(super) fn open(sim: &SimFs) -> Result<(Storage, Recovered), StorageError> {
    Storage::open(Arc::new(sim.clone()), &config())
}

/// A fresh storage with acceptedEpoch = currentEpoch = 1.
pub(super) fn fresh(sim: &SimFs) -> Storage {
    let (s, _) = open(sim).unwrap();
    s.epochs().set_accepted_epoch(Epoch(1)).unwrap();
    s.epochs().set_current_epoch(Epoch(1)).unwrap();
    s
}

pub(super) fn z(counter: u32) -> Zxid {
    Zxid::new(1, counter)
}

pub(super) fn payload(counter: u32) -> Vec<u8> {
    format!("txn-{counter}-{}", "x".repeat(counter as usize % 7)).into_bytes()
}

pub(super) fn records(counters: std::ops::RangeInclusive<u32>) -> Vec<LogRecord> {
    counters
        .map(|c| LogRecord {
            zxid: z(c),
            payload: Bytes::from(payload(c)),
        })
        .collect()
}

/// Appends transactions 1..=n (epoch 1) and syncs.
pub(super) fn write_log(sim: &SimFs, n: u32) -> Storage {
    let mut s = fresh(sim);
    for c in 1..=n {
        s.append(z(c), &payload(c)).unwrap();
    }
    s.sync().unwrap();
    s
}

/// The log segments (not the end mark).
pub(super) fn log_files(sim: &SimFs) -> Vec<PathBuf> {
    let mut names = sim.list(&log_dir()).unwrap();
    names.retain(|n| n.starts_with(super::format::LOG_PREFIX));
    names.sort();
    names.into_iter().map(|n| log_dir().join(n)).collect()
}

/// A copy of `sim` where `path` holds `data` instead.
pub(super) fn with_file(sim: &SimFs, path: &Path, data: &[u8]) -> SimFs {
    let copy = sim.durable_image(super::CrashMode::DropUnsynced);
    copy.put_file(path, data);
    copy
}

#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl<S: tracing::Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
}

/// Runs `f` and returns what it returned with the `warn!` events it emitted on this thread.
pub(super) fn with_warnings<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let warnings = Warnings::default();
    let subscriber = Registry::default().with(warnings.clone());
    let out = tracing::subscriber::with_default(subscriber, f);
    let seen = warnings.0.lock().unwrap().clone();
    (out, seen)
}
