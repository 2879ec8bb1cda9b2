//! What the model shares with the checker that runs it: the invariant and example tables it
//! evaluates by index, and the checker's instrumentation (first-discovery latches and the
//! deadline; `checker.rs` explains the Stateright bugs they work around). Its own module so
//! that `next` (the model) does not depend on `checker` (which runs it).

use crate::invariants::{Invariant, examples, invariants};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use zab_spec::Payload;

/// The invariant and example tables a model evaluates by index.
pub struct Tables<P> {
    /// `always` properties.
    pub invariants: Vec<Invariant<P>>,
    /// `sometimes` properties.
    pub examples: Vec<Invariant<P>>,
}

impl<P: Payload> Tables<P> {
    /// Both tables.
    #[must_use]
    pub fn new() -> Tables<P> {
        Tables {
            invariants: invariants(),
            examples: examples(),
        }
    }
}

impl<P: Payload> Default for Tables<P> {
    fn default() -> Self {
        Self::new()
    }
}

/// Checker instrumentation shared with the model (properties are plain `fn`s, so state they
/// need lives in the model).
#[derive(Debug)]
pub struct Instrument {
    latched: Vec<AtomicBool>,
    deadline: Option<Instant>,
    expired: AtomicBool,
    ticks: AtomicU64,
}

impl Instrument {
    pub(crate) fn new(properties: usize, timeout: Option<Duration>) -> Instrument {
        Instrument {
            latched: (0..properties).map(|_| AtomicBool::new(false)).collect(),
            deadline: timeout.map(|t| Instant::now() + t),
            expired: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
        }
    }

    /// Whether the deadline passed (the run is then incomplete).
    #[must_use]
    pub fn expired(&self) -> bool {
        self.expired.load(Ordering::Relaxed)
    }

    pub(crate) fn within_deadline(&self) -> bool {
        let Some(deadline) = self.deadline else {
            return true;
        };
        if self.expired.load(Ordering::Relaxed) {
            return false;
        }
        if self.ticks.fetch_add(1, Ordering::Relaxed) % 4096 == 0 && Instant::now() >= deadline {
            self.expired.store(true, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Reports `discovered` only the first time for property `k`.
    pub(crate) fn first(&self, k: usize, discovered: bool) -> bool {
        discovered && !self.latched[k].swap(true, Ordering::Relaxed)
    }
}
