//! The in-memory view of a replica's log: its snapshot point, the transactions after it, and
//! the durable and delivered marks (`spec/PROTOCOL.md` §2: `history`, `persisted`,
//! `lastCommitted`, `lastSnapshot`).
//!
//! Positions are zxids, not indices: a server knows nothing before its snapshot point except
//! the state the snapshot holds.

use zab_spec::{Txn, Zxid};

/// A replica's log view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLog<P> {
    snapshot: Zxid,
    entries: Vec<Txn<P>>,
    persisted: Zxid,
    committed: Zxid,
}

impl<P: Clone> ReplicaLog<P> {
    /// A log recovered from disk: the latest snapshot point and the durable transactions after
    /// it. Everything recovered is durable; only the snapshot is delivered (`NodeCrash`).
    #[must_use]
    pub fn recovered(snapshot: Zxid, entries: Vec<Txn<P>>) -> ReplicaLog<P> {
        let persisted = entries.last().map_or(snapshot, |t| t.zxid);
        debug_assert!(entries.windows(2).all(|w| w[0].zxid < w[1].zxid));
        debug_assert!(entries.first().is_none_or(|t| t.zxid > snapshot));
        ReplicaLog {
            snapshot,
            entries,
            persisted,
            committed: snapshot,
        }
    }

    /// The snapshot point (`lastSnapshot`).
    #[must_use]
    pub fn snapshot(&self) -> Zxid {
        self.snapshot
    }

    /// The last zxid of the log.
    #[must_use]
    pub fn last_zxid(&self) -> Zxid {
        self.entries.last().map_or(self.snapshot, |t| t.zxid)
    }

    /// The durable mark (`persisted`).
    #[must_use]
    pub fn persisted(&self) -> Zxid {
        self.persisted
    }

    /// The delivered mark (`lastCommitted`).
    #[must_use]
    pub fn committed(&self) -> Zxid {
        self.committed
    }

    /// The transactions after the snapshot point.
    #[must_use]
    pub fn entries(&self) -> &[Txn<P>] {
        &self.entries
    }

    /// The zxids after the snapshot point.
    #[must_use]
    pub fn zxids(&self) -> Vec<Zxid> {
        self.entries.iter().map(|t| t.zxid).collect()
    }

    /// Whether `zxid` is the snapshot point or an entry.
    #[must_use]
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.snapshot || self.position(zxid).is_some()
    }

    fn position(&self, zxid: Zxid) -> Option<usize> {
        self.entries.binary_search_by(|t| t.zxid.cmp(&zxid)).ok()
    }

    /// The transaction with `zxid`, if it is an entry.
    #[must_use]
    pub fn get(&self, zxid: Zxid) -> Option<&Txn<P>> {
        self.position(zxid).map(|k| &self.entries[k])
    }

    /// The entries strictly after `zxid`.
    #[must_use]
    pub fn after(&self, zxid: Zxid) -> &[Txn<P>] {
        let k = self.entries.partition_point(|t| t.zxid <= zxid);
        &self.entries[k..]
    }

    /// The entry right after `zxid`.
    #[must_use]
    pub fn next_after(&self, zxid: Zxid) -> Option<&Txn<P>> {
        self.after(zxid).first()
    }

    /// Appends an accepted transaction (in memory; the log thread makes it durable).
    pub fn append(&mut self, txn: Txn<P>) {
        debug_assert!(txn.zxid > self.last_zxid());
        self.entries.push(txn);
    }

    /// Cuts everything after `zxid` (TRUNC); the cut is durable when this returns.
    pub fn truncate_after(&mut self, zxid: Zxid) {
        let k = self.entries.partition_point(|t| t.zxid <= zxid);
        self.entries.truncate(k);
        self.persisted = self.persisted.min(zxid);
        self.committed = self.committed.min(zxid);
    }

    /// Replaces the log by a snapshot at `zxid` (SNAP, durable before it returns). A snapshot
    /// holds committed transactions only, and the state it carries is applied: it is delivered.
    pub fn install_snapshot(&mut self, zxid: Zxid) {
        self.entries.clear();
        self.snapshot = zxid;
        self.persisted = zxid;
        self.committed = zxid;
    }

    /// Marks everything up to `zxid` durable.
    pub fn set_persisted(&mut self, zxid: Zxid) {
        debug_assert!(zxid <= self.last_zxid());
        self.persisted = zxid;
    }

    /// Marks everything up to `zxid` delivered.
    pub fn set_committed(&mut self, zxid: Zxid) {
        debug_assert!(zxid <= self.last_zxid());
        self.committed = zxid;
    }

    /// Moves the snapshot point to `zxid` (TakeSnapshot): entries up to it are compacted.
    pub fn compact_to(&mut self, zxid: Zxid) {
        let k = self.entries.partition_point(|t| t.zxid <= zxid);
        self.entries.drain(..k);
        self.snapshot = zxid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(e: u32, c: u32) -> Txn<u8> {
        Txn {
            zxid: Zxid::new(e, c),
            payload: 0,
        }
    }

    #[test]
    fn marks_follow_truncation_and_snapshots() {
        let mut log = ReplicaLog::recovered(Zxid::ZERO, vec![txn(1, 1), txn(1, 2)]);
        assert_eq!(log.persisted(), Zxid::new(1, 2));
        assert_eq!(log.committed(), Zxid::ZERO);
        log.append(txn(2, 1));
        assert_eq!(log.after(Zxid::new(1, 1)).len(), 2);
        log.truncate_after(Zxid::new(1, 1));
        assert_eq!(log.last_zxid(), Zxid::new(1, 1));
        assert_eq!(log.persisted(), Zxid::new(1, 1));
        log.set_committed(Zxid::new(1, 1));
        log.compact_to(Zxid::new(1, 1));
        assert!(log.entries().is_empty());
        assert!(log.contains(Zxid::new(1, 1)));
        log.install_snapshot(Zxid::new(3, 4));
        assert_eq!(log.last_zxid(), Zxid::new(3, 4));
    }
}
