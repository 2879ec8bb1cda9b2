//! The in-memory view of a replica's log: its snapshot point, the transactions after it, and
//! the durable and delivered marks (`spec/PROTOCOL.md` §2: `history`, `persisted`,
//! `lastCommitted`, `lastSnapshot`).
//!
//! Positions are zxids, not indices: a server knows nothing before its snapshot point except
//! the state the snapshot holds.
//!
//! History bounded in memory (issue 12, ZooKeeper's `commitLogCount`): [`ReplicaLog::evict`]
//! keeps the payloads of the last `keep` committed and durable transactions plus every later
//! one; the older ones after the snapshot point are *on disk only*: the log remembers their
//! zxids as runs (one per epoch, counters contiguous within an epoch), so that the sync
//! decision still sees the whole history, and a leader reads their payloads back from the log
//! on disk when it DIFFs a follower from there.

use zab_spec::{Txn, Zxid};

/// A replica's log view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaLog<P> {
    snapshot: Zxid,
    /// The zxids after the snapshot point whose payloads were evicted (on disk only), as
    /// inclusive runs `(first, last)` of one epoch each, ascending, all before `entries`.
    on_disk: Vec<(Zxid, Zxid)>,
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
            on_disk: Vec::new(),
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

    /// The transactions held in memory (after [`ReplicaLog::on_disk_end`]).
    #[must_use]
    pub fn entries(&self) -> &[Txn<P>] {
        &self.entries
    }

    /// The last zxid whose payload is on disk only (the snapshot point if none is): every
    /// transaction after it is in memory.
    #[must_use]
    pub fn on_disk_end(&self) -> Zxid {
        self.on_disk.last().map_or(self.snapshot, |r| r.1)
    }

    /// How many transactions after the snapshot point are on disk only.
    #[must_use]
    pub fn on_disk_len(&self) -> u64 {
        self.on_disk
            .iter()
            .map(|(a, b)| u64::from(b.counter - a.counter) + 1)
            .sum()
    }

    /// The zxids after the snapshot point (those on disk only included).
    #[must_use]
    pub fn zxids(&self) -> Vec<Zxid> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (a, b) in &self.on_disk {
            out.extend((a.counter..=b.counter).map(|c| Zxid::new(a.epoch.0, c)));
        }
        out.extend(self.entries.iter().map(|t| t.zxid));
        out
    }

    /// Whether `zxid` is the snapshot point or a transaction of the log (in memory or on disk
    /// only).
    #[must_use]
    pub fn contains(&self, zxid: Zxid) -> bool {
        zxid == self.snapshot
            || self.position(zxid).is_some()
            || self.on_disk.iter().any(|(a, b)| {
                a.epoch == zxid.epoch && a.counter <= zxid.counter && zxid.counter <= b.counter
            })
    }

    /// Keeps in memory the last `keep` transactions that are both delivered and durable,
    /// and every later one; the payloads of older ones are dropped (they stay in the log on
    /// disk, from which a DIFF reads them back). Only delivered, durable transactions are
    /// evicted: the outstanding ones are needed for commits and ACKs.
    pub fn evict(&mut self, keep: usize) {
        let point = self.committed.min(self.persisted);
        let evictable = self.entries.partition_point(|t| t.zxid <= point);
        if evictable <= keep {
            return;
        }
        for t in self.entries.drain(..evictable - keep) {
            match self.on_disk.last_mut() {
                Some(run)
                    if run.1.epoch == t.zxid.epoch
                        && run.1.counter.checked_add(1) == Some(t.zxid.counter) =>
                {
                    run.1 = t.zxid;
                }
                _ => self.on_disk.push((t.zxid, t.zxid)),
            }
        }
    }

    /// Drops the on-disk-only zxids after `zxid` (a cut, `keep_before`) or up to it (a
    /// compaction). A run is one epoch, so a run that `zxid` splits holds `zxid` itself.
    fn cut_on_disk(&mut self, zxid: Zxid, keep_before: bool) {
        self.on_disk = self
            .on_disk
            .iter()
            .filter_map(|&(a, b)| {
                if keep_before {
                    if a > zxid {
                        None
                    } else {
                        Some((a, b.min(zxid)))
                    }
                } else if b <= zxid {
                    None
                } else if a > zxid {
                    Some((a, b))
                } else {
                    Some((Zxid::new(b.epoch.0, zxid.counter + 1), b))
                }
            })
            .collect();
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
        if zxid < self.on_disk_end() {
            self.cut_on_disk(zxid, true);
        }
        self.persisted = self.persisted.min(zxid);
        self.committed = self.committed.min(zxid);
    }

    /// Replaces the log by a snapshot at `zxid` (SNAP, durable before it returns). A snapshot
    /// holds committed transactions only, and the state it carries is applied: it is delivered.
    pub fn install_snapshot(&mut self, zxid: Zxid) {
        self.entries.clear();
        self.on_disk.clear();
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
        self.cut_on_disk(zxid, false);
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

    #[test]
    fn evicted_payloads_keep_their_zxids() {
        let all = vec![
            txn(1, 1),
            txn(1, 2),
            txn(1, 3),
            txn(2, 1),
            txn(2, 2),
            txn(3, 1),
            txn(3, 2),
        ];
        let zxids: Vec<Zxid> = all.iter().map(|t| t.zxid).collect();
        let mut log = ReplicaLog::recovered(Zxid::ZERO, all);
        // Nothing delivered: nothing evicted.
        log.evict(1);
        assert_eq!(log.entries().len(), 7);
        assert_eq!(log.on_disk_end(), Zxid::ZERO);
        // Delivered up to (3, 1), durable up to (3, 2): keep one delivered payload.
        log.set_committed(Zxid::new(3, 1));
        log.evict(1);
        assert_eq!(log.on_disk_end(), Zxid::new(2, 2));
        assert_eq!(log.on_disk_len(), 5);
        assert_eq!(
            log.entries().iter().map(|t| t.zxid).collect::<Vec<_>>(),
            vec![Zxid::new(3, 1), Zxid::new(3, 2)]
        );
        assert_eq!(log.zxids(), zxids, "the history is unchanged");
        for z in &zxids {
            assert!(log.contains(*z), "{z}");
        }
        assert!(!log.contains(Zxid::new(1, 4)));
        assert!(!log.contains(Zxid::new(2, 3)));
        assert!(log.contains(Zxid::ZERO));
        // Entries only from the in-memory window.
        assert_eq!(log.after(Zxid::new(2, 2)).len(), 2);
        // Durable only up to (2, 1): nothing past it is evicted.
        let mut undurable = ReplicaLog::recovered(Zxid::ZERO, vec![txn(1, 1), txn(1, 2)]);
        undurable.set_committed(Zxid::new(1, 2));
        undurable.set_persisted(Zxid::new(1, 1));
        undurable.evict(0);
        assert_eq!(undurable.on_disk_end(), Zxid::new(1, 1));
        assert_eq!(undurable.entries().len(), 1);
        // A compaction inside a run keeps its tail; one past all runs drops them.
        let mut c = log.clone();
        c.compact_to(Zxid::new(1, 2));
        assert_eq!(c.zxids(), zxids[2..].to_vec());
        assert_eq!(c.on_disk_len(), 3);
        c.compact_to(Zxid::new(3, 1));
        assert_eq!(c.zxids(), vec![Zxid::new(3, 2)]);
        assert_eq!(c.on_disk_len(), 0);
        // A cut inside a run keeps its head.
        let mut t = log.clone();
        t.truncate_after(Zxid::new(1, 2));
        assert_eq!(t.zxids(), zxids[..2].to_vec());
        assert_eq!(t.on_disk_end(), Zxid::new(1, 2));
        // A SNAP forgets everything.
        let mut s = log;
        s.install_snapshot(Zxid::new(4, 9));
        assert!(s.zxids().is_empty());
        assert_eq!(s.on_disk_end(), Zxid::new(4, 9));
    }
}
