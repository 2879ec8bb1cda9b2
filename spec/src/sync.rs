//! The pure decision rules that the model and the server must share exactly: how a leader
//! brings a follower's log in line ([`plan_sync`], `spec/PROTOCOL.md` §5.1) and when a zxid
//! directly follows another ([`is_next_zxid`]).
//!
//! They are stated over zxids, because a server only knows its log after its latest snapshot;
//! the model, which knows whole histories, calls them with the same arguments.

use crate::ids::Zxid;
use crate::message::SyncMode;

/// What a leader sends to bring a follower in line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncPlan {
    /// DIFF, TRUNC or SNAP.
    pub mode: SyncMode,
    /// After the sync message the follower's log ends at this zxid of the leader's log; the
    /// leader streams every transaction after it.
    pub base: Zxid,
    /// The committed part of the follower's log after the sync message ends here; the sync
    /// message carries it (DIFF) or equals it (TRUNC, SNAP).
    pub committed: Zxid,
}

/// The sync decision (ZooKeeper `LearnerHandler.syncFollower`, with zab's departures).
///
/// The leader's log is `start` (its snapshot point: nothing before it is available as
/// transactions) followed by `log` (ascending zxids); `committed` is its commit point (all of
/// the log before the leader is established) and `delivered` the prefix it applied (a snapshot
/// can only be of that); `peer` is the follower's last zxid.
///
/// 1. The follower's log is a prefix of ours (`peer` is `start` or in `log`): DIFF from
///    `peer`, committed up to `min(peer, committed)`. Unlike ZooKeeper, a follower holding
///    outstanding proposals is not TRUNCated to the commit point: the leader may already count
///    its ACK of them (`spec/PROTOCOL.md` §5.1 tells the story the model found).
/// 2. The follower is behind our snapshot point: SNAP of the delivered prefix.
/// 3. Otherwise the follower holds transactions we lack: TRUNC to the last zxid of ours below
///    `peer`, at most `committed`.
#[must_use]
pub fn plan_sync(
    start: Zxid,
    log: &[Zxid],
    committed: Zxid,
    delivered: Zxid,
    peer: Zxid,
) -> SyncPlan {
    if peer == start || log.binary_search(&peer).is_ok() {
        return SyncPlan {
            mode: SyncMode::Diff,
            base: peer,
            committed: peer.min(committed),
        };
    }
    if peer < start {
        return SyncPlan {
            mode: SyncMode::Snap,
            base: delivered,
            committed: delivered,
        };
    }
    let below = log
        .iter()
        .rev()
        .find(|z| **z < peer)
        .copied()
        .unwrap_or(start);
    let t = below.min(committed);
    SyncPlan {
        mode: SyncMode::Trunc,
        base: t,
        committed: t,
    }
}

/// ZooKeeper's `IsNextZxid`: `next` directly follows `cur` (the first of a newer epoch, or the
/// next counter in the same epoch).
#[must_use]
pub fn is_next_zxid(cur: Zxid, next: Zxid) -> bool {
    (next.counter == 1 && cur.epoch < next.epoch)
        || (next.counter > 1
            && cur.epoch == next.epoch
            && cur.counter.checked_add(1) == Some(next.counter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z(e: u32, c: u32) -> Zxid {
        Zxid::new(e, c)
    }

    fn plan(mode: SyncMode, base: Zxid, committed: Zxid) -> SyncPlan {
        SyncPlan {
            mode,
            base,
            committed,
        }
    }

    #[test]
    fn diff_when_the_follower_is_a_prefix() {
        let log = [z(1, 1), z(1, 2), z(2, 1)];
        let c = z(2, 1);
        assert_eq!(
            plan_sync(Zxid::ZERO, &log, c, c, z(1, 2)),
            plan(SyncMode::Diff, z(1, 2), z(1, 2))
        );
        assert_eq!(
            plan_sync(Zxid::ZERO, &log, c, c, Zxid::ZERO),
            plan(SyncMode::Diff, Zxid::ZERO, Zxid::ZERO)
        );
        // The follower holds an outstanding proposal it may have acknowledged: keep it.
        assert_eq!(
            plan_sync(Zxid::ZERO, &log, z(1, 2), z(1, 2), z(2, 1)),
            plan(SyncMode::Diff, z(2, 1), z(1, 2))
        );
    }

    #[test]
    fn trunc_when_the_follower_has_what_the_leader_lacks() {
        let log = [z(1, 1), z(2, 1)];
        assert_eq!(
            plan_sync(Zxid::ZERO, &log, z(2, 1), z(2, 1), z(1, 2)),
            plan(SyncMode::Trunc, z(1, 1), z(1, 1))
        );
        // Divergent and beyond our commit point: cut back to the commit point.
        assert_eq!(
            plan_sync(Zxid::ZERO, &log, z(1, 1), z(1, 1), z(2, 2)),
            plan(SyncMode::Trunc, z(1, 1), z(1, 1))
        );
        // Nothing in common after the snapshot point: truncate to it.
        assert_eq!(
            plan_sync(z(1, 1), &[z(2, 1)], z(2, 1), z(2, 1), z(1, 2)),
            plan(SyncMode::Trunc, z(1, 1), z(1, 1))
        );
    }

    #[test]
    fn snap_when_the_needed_log_is_compacted() {
        let log = [z(1, 2)];
        assert_eq!(
            plan_sync(z(1, 1), &log, z(1, 2), z(1, 2), Zxid::ZERO),
            plan(SyncMode::Snap, z(1, 2), z(1, 2))
        );
        // At the snapshot point itself a DIFF still works.
        assert_eq!(
            plan_sync(z(1, 1), &log, z(1, 2), z(1, 2), z(1, 1)),
            plan(SyncMode::Diff, z(1, 1), z(1, 1))
        );
        // A leader not yet established ships only what it delivered.
        assert_eq!(
            plan_sync(z(1, 1), &log, z(1, 2), z(1, 1), Zxid::ZERO),
            plan(SyncMode::Snap, z(1, 1), z(1, 1))
        );
    }

    #[test]
    fn next_zxid() {
        assert!(is_next_zxid(z(1, 1), z(1, 2)));
        assert!(is_next_zxid(z(1, 7), z(2, 1)));
        assert!(is_next_zxid(Zxid::ZERO, z(1, 1)));
        assert!(!is_next_zxid(z(1, 1), z(1, 3)));
        assert!(!is_next_zxid(z(2, 1), z(1, 2)));
        assert!(!is_next_zxid(z(1, u32::MAX), z(1, 0)));
    }
}
