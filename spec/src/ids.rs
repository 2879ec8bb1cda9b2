//! Identifiers and logical clocks: [`ServerId`], [`Epoch`] and [`Zxid`].
//!
//! A zxid is ZooKeeper's 64-bit transaction id: the high 32 bits are the epoch of the leader
//! that proposed the transaction, the low 32 bits a counter that restarts at 1 in every epoch.
//! Zxids order first by epoch, then by counter, exactly like their 64-bit encoding.

use std::fmt;

/// A server's id (`myid` in ZooKeeper, `sid` in its Java code, an element of `Server` in TLA+).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerId(pub u64);

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// An epoch: the number of a leader's term (`acceptedEpoch` and `currentEpoch` hold epochs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub u32);

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Epoch {
    /// The epoch after this one.
    ///
    /// # Panics
    /// On overflow of the 32-bit epoch: ZooKeeper would wrap into a negative zxid, we refuse.
    #[must_use]
    pub fn next(self) -> Epoch {
        Epoch(self.0.checked_add(1).expect("epoch overflow"))
    }

    /// The epoch after this one, or `None` at the last one. For epochs that came from a
    /// peer or the disk, which the server must not trust with a panic.
    #[must_use]
    pub fn checked_next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

/// A transaction id: `(epoch, counter)`, ordered lexicographically.
///
/// `Display` prints it the way ZooKeeper logs do: `0x100000001` is epoch 1, counter 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Zxid {
    /// The epoch of the leader that proposed the transaction.
    pub epoch: Epoch,
    /// Position within the epoch, starting at 1 (0 is the epoch's NEWLEADER point).
    pub counter: u32,
}

impl Zxid {
    /// The zxid before any transaction: `0x0`.
    pub const ZERO: Zxid = Zxid {
        epoch: Epoch(0),
        counter: 0,
    };

    /// Builds a zxid from its parts.
    #[must_use]
    pub const fn new(epoch: u32, counter: u32) -> Zxid {
        Zxid {
            epoch: Epoch(epoch),
            counter,
        }
    }

    /// The zxid `(epoch, 0)` that a leader of `epoch` uses in NEWLEADER.
    #[must_use]
    pub const fn epoch_start(epoch: Epoch) -> Zxid {
        Zxid { epoch, counter: 0 }
    }

    /// ZooKeeper's 64-bit encoding: `epoch << 32 | counter`.
    #[must_use]
    pub const fn to_u64(self) -> u64 {
        ((self.epoch.0 as u64) << 32) | self.counter as u64
    }

    /// Decodes ZooKeeper's 64-bit encoding.
    #[must_use]
    pub const fn from_u64(raw: u64) -> Zxid {
        Zxid {
            epoch: Epoch((raw >> 32) as u32),
            counter: raw as u32,
        }
    }

    /// The zxid a leader whose current epoch is `epoch` gives to its next proposal, when its
    /// last proposed zxid is `self` (ZooKeeper's `Leader.propose`, TLA+ `IncZxid`).
    ///
    /// # Panics
    /// When the counter would overflow (ZooKeeper forces a new election at that point).
    #[must_use]
    pub fn next_in(self, epoch: Epoch) -> Zxid {
        if self.epoch == epoch {
            Zxid {
                epoch,
                counter: self.counter.checked_add(1).expect("zxid counter overflow"),
            }
        } else {
            Zxid { epoch, counter: 1 }
        }
    }

    /// [`Zxid::next_in`], or `None` when the counter has rolled over: the leader must then
    /// start a new epoch (ZooKeeper's `XidRolloverException`, ZOOKEEPER-1277).
    #[must_use]
    pub fn checked_next_in(self, epoch: Epoch) -> Option<Zxid> {
        if self.epoch == epoch {
            self.counter
                .checked_add(1)
                .map(|counter| Zxid { epoch, counter })
        } else {
            Some(Zxid { epoch, counter: 1 })
        }
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.to_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_orders_by_epoch_then_counter() {
        assert!(Zxid::new(1, 5) < Zxid::new(2, 1));
        assert!(Zxid::new(2, 1) < Zxid::new(2, 2));
        assert_eq!(Zxid::new(1, 1).to_string(), "0x100000001");
        assert_eq!(Zxid::ZERO.to_string(), "0x0");
    }

    #[test]
    fn zxid_u64_round_trip_preserves_order() {
        let zs = [
            Zxid::new(0, 0),
            Zxid::new(0, 7),
            Zxid::new(1, 0),
            Zxid::new(3, u32::MAX),
        ];
        for a in zs {
            assert_eq!(Zxid::from_u64(a.to_u64()), a);
            for b in zs {
                assert_eq!(a.cmp(&b), a.to_u64().cmp(&b.to_u64()));
            }
        }
    }

    #[test]
    fn next_zxid_restarts_counter_in_a_new_epoch() {
        assert_eq!(Zxid::new(1, 3).next_in(Epoch(1)), Zxid::new(1, 4));
        assert_eq!(Zxid::new(1, 3).next_in(Epoch(2)), Zxid::new(2, 1));
        assert_eq!(Zxid::ZERO.next_in(Epoch(1)), Zxid::new(1, 1));
        assert_eq!(Zxid::new(1, u32::MAX).checked_next_in(Epoch(1)), None);
        assert_eq!(
            Zxid::new(1, u32::MAX).checked_next_in(Epoch(2)),
            Some(Zxid::new(2, 1))
        );
        assert_eq!(Epoch(u32::MAX).checked_next(), None);
        assert_eq!(Epoch(4).checked_next(), Some(Epoch(5)));
    }
}
