//! Collections of the model state that remember what changed since the last acknowledged
//! check: a history (a server's log, the `committedLog` ghost) and the proposals log. The
//! incremental invariant checker ([`crate::invariants::Monitor`]) reads only what changed.
//!
//! The change marks take no part in equality, order, hashing or `Debug`: to the model checker
//! (fingerprints, state counts, the Explorer) a [`History`] is its `Vec` and a
//! [`ProposalLog`] its `BTreeSet`, hashed and compared exactly as before.
//!
//! Both share their contents between copies of a state (copy on write): copying a state,
//! which every model step does, no longer copies every transaction of every log; a step copies
//! only the collections it changes.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use zab_spec::Txn;

/// A sequence of transactions that records the first position that changed since
/// [`History::acknowledge`]. Read it as a `Vec` (it dereferences to one); change it only
/// through its methods, which keep the mark.
#[derive(Clone)]
pub struct History<P> {
    items: Arc<Vec<Txn<P>>>,
    /// Items at this position and after may differ from the acknowledged version.
    changed_from: usize,
}

impl<P> History<P> {
    /// An empty history (changed from the start: nothing was acknowledged).
    #[must_use]
    pub fn new() -> History<P> {
        History {
            items: Arc::new(Vec::new()),
            changed_from: 0,
        }
    }

    fn mark(&mut self, k: usize) {
        self.changed_from = self.changed_from.min(k);
    }
}

impl<P: Clone> History<P> {
    /// The items, for a change (copied first if another state shares them).
    fn items_mut(&mut self) -> &mut Vec<Txn<P>> {
        Arc::make_mut(&mut self.items)
    }

    /// Appends `t`.
    pub fn push(&mut self, t: Txn<P>) {
        self.mark(self.items.len());
        self.items_mut().push(t);
    }

    /// Appends every item of `it`.
    pub fn extend(&mut self, it: impl IntoIterator<Item = Txn<P>>) {
        self.mark(self.items.len());
        self.items_mut().extend(it);
    }

    /// Keeps the first `k` items.
    pub fn truncate(&mut self, k: usize) {
        if k < self.items.len() {
            self.mark(k);
            self.items_mut().truncate(k);
        }
    }

    /// Removes every item.
    pub fn clear(&mut self) {
        if !self.items.is_empty() {
            self.mark(0);
            self.items = Arc::new(Vec::new());
        }
    }

    /// Replaces the whole sequence.
    pub fn replace(&mut self, items: Vec<Txn<P>>) {
        self.mark(0);
        self.items = Arc::new(items);
    }
}

impl<P> History<P> {
    /// The first position that may differ from the acknowledged version (at most the length
    /// of the acknowledged version; positions past the current length are gone).
    #[must_use]
    pub fn changed_from(&self) -> usize {
        self.changed_from
    }

    /// The current version becomes the acknowledged one.
    pub fn acknowledge(&mut self) {
        self.changed_from = self.items.len();
    }

    /// Forgets the acknowledged version: every item counts as changed.
    pub fn touch_all(&mut self) {
        self.changed_from = 0;
    }
}

impl<P> Default for History<P> {
    fn default() -> Self {
        History::new()
    }
}

impl<P> From<Vec<Txn<P>>> for History<P> {
    fn from(items: Vec<Txn<P>>) -> Self {
        History {
            items: Arc::new(items),
            changed_from: 0,
        }
    }
}

impl<P> Deref for History<P> {
    type Target = Vec<Txn<P>>;
    fn deref(&self) -> &Vec<Txn<P>> {
        &self.items
    }
}

impl<'a, P> IntoIterator for &'a History<P> {
    type Item = &'a Txn<P>;
    type IntoIter = std::slice::Iter<'a, Txn<P>>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}

impl<P: PartialEq> PartialEq for History<P> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.items, &other.items) || self.items == other.items
    }
}

impl<P: Eq> Eq for History<P> {}

impl<P: PartialOrd> PartialOrd for History<P> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.items.partial_cmp(&other.items)
    }
}

impl<P: Ord> Ord for History<P> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.items.cmp(&other.items)
    }
}

impl<P: Hash> Hash for History<P> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.items.hash(state);
    }
}

impl<P: fmt::Debug> fmt::Debug for History<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.items.fmt(f)
    }
}

/// A set that grows only (TLA+ `proposalMsgsLog`, the set of every proposal any leader
/// broadcast) and lists what was added since [`ProposalLog::acknowledge`].
#[derive(Clone)]
pub struct ProposalLog<T> {
    set: Arc<BTreeSet<T>>,
    added: Vec<T>,
}

impl<T: Ord + Clone> ProposalLog<T> {
    /// Adds `p`; returns whether it was new.
    pub fn insert(&mut self, p: T) -> bool {
        if self.set.contains(&p) {
            return false;
        }
        let new = Arc::make_mut(&mut self.set).insert(p.clone());
        if new {
            self.added.push(p);
        }
        new
    }
}

impl<T> ProposalLog<T> {
    /// An empty log.
    #[must_use]
    pub fn new() -> ProposalLog<T> {
        ProposalLog {
            set: Arc::new(BTreeSet::new()),
            added: Vec::new(),
        }
    }

    /// The proposals added since the last acknowledgement, in insertion order.
    #[must_use]
    pub fn added(&self) -> &[T] {
        &self.added
    }

    /// The current set becomes the acknowledged one.
    pub fn acknowledge(&mut self) {
        self.added.clear();
    }
}

impl<T> Default for ProposalLog<T> {
    fn default() -> Self {
        ProposalLog::new()
    }
}

impl<T> Deref for ProposalLog<T> {
    type Target = BTreeSet<T>;
    fn deref(&self) -> &BTreeSet<T> {
        &self.set
    }
}

impl<T: PartialEq> PartialEq for ProposalLog<T> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.set, &other.set) || self.set == other.set
    }
}

impl<T: Eq> Eq for ProposalLog<T> {}

impl<T: PartialOrd> PartialOrd for ProposalLog<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        self.set.partial_cmp(&other.set)
    }
}

impl<T: Ord> Ord for ProposalLog<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.set.cmp(&other.set)
    }
}

impl<T: Hash> Hash for ProposalLog<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.set.hash(state);
    }
}

impl<T: fmt::Debug> fmt::Debug for ProposalLog<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.set.fmt(f)
    }
}
