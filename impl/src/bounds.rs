//! The configured bounds on every queue a client or a peer can fill (issue 12): their
//! `zoo.cfg` keys, defaults and validation. What each bound does when reached is documented
//! where it is enforced and in ARCHITECTURE.md ("Bounded queues").

/// Every configurable queue bound of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// `globalOutstandingLimit` (ZooKeeper's name and default, 1000): client requests read
    /// from their connections and not yet answered, over all connections. Past it, a
    /// connection with a request in flight is not read (ZooKeeper's throttle).
    pub global_outstanding_limit: usize,
    /// `clientOutstandingLimit` (zabd; default 100): one connection's requests read and not
    /// yet answered, past which that connection is not read, so that one client (one that
    /// does not read its replies, say) cannot take the whole global budget.
    pub client_outstanding_limit: usize,
    /// `globalOutstandingBytesLimit` (zabd; default 64 MiB): the same, counted in request
    /// bytes, so that a flood of large writes holds a bounded amount of memory.
    pub global_outstanding_bytes: usize,
    /// `clientOutputSoftLimitBytes` (zabd; default 4 MiB): reply bytes queued for one
    /// connection past which its requests are neither read nor answered (reads wait in the
    /// session's queue) until the client has read its replies below it.
    pub client_output_soft: usize,
    /// `clientOutputHardLimitBytes` (zabd; default 64 MiB): queued reply bytes (write replies
    /// and watch notifications, which are not held back) past which the connection is
    /// closed with a warning.
    pub client_output_hard: usize,
    /// `peerSendQueueLimitBytes` (zabd; default 128 MiB): frames queued for one quorum peer
    /// and not yet written to its socket (a learner's synchronization, SNAP or DIFF/TRUNC
    /// through NEWLEADER, is not counted: it is bounded by the in-memory log). Past it the peer is
    /// dropped with a warning; a follower reconnects and resynchronizes. Kept above
    /// `globalOutstandingBytesLimit`, so that the writes a follower forwards on behalf of its
    /// clients cannot by themselves reach it.
    pub peer_send_queue: usize,
    /// `peerInboxLimit` (zabd; default 256): peer frames read from the network and not yet
    /// taken by the replica thread. Past it the peer connections are not read, so a server
    /// that cannot keep up pushes back through TCP instead of buffering.
    pub peer_inbox: usize,
    /// `snapSizeLimitInKb` (ZooKeeper's name; zabd's default 65,536 KiB, ZooKeeper's 4 GiB):
    /// a snapshot is taken once this many KiB of log were written since the last one, as well
    /// as every `snapCount` transactions. zabd keeps the log since the last snapshot in
    /// memory, so this bounds that memory too.
    pub snap_size_limit_kb: usize,
}

/// Election notifications queued per peer (a notification is ~50 bytes; only the latest one
/// matters, so newer ones past the bound are dropped and counted).
pub const ELECTION_QUEUE: usize = 64;

impl Default for Bounds {
    fn default() -> Bounds {
        Bounds {
            global_outstanding_limit: 1000,
            client_outstanding_limit: 100,
            global_outstanding_bytes: 64 << 20,
            client_output_soft: 4 << 20,
            client_output_hard: 64 << 20,
            peer_send_queue: 128 << 20,
            peer_inbox: 256,
            snap_size_limit_kb: 65_536,
        }
    }
}

/// Why a bound's value or the bounds together were refused (`crate::config` wraps it in its
/// `ConfigError`; this module does not import `config`, which imports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundsError {
    /// Not a non-negative integer.
    Value {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Inconsistent bounds.
    Invalid(String),
}

fn parse(key: &str, value: &str) -> Result<usize, BoundsError> {
    value.trim().parse().map_err(|_| BoundsError::Value {
        key: key.into(),
        value: value.into(),
    })
}

impl Bounds {
    /// Takes `key` if it is one of the bounds' keys; `Ok(false)` for any other key.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, BoundsError> {
        let slot = match key {
            "globalOutstandingLimit" | "zookeeper.globalOutstandingLimit" => {
                &mut self.global_outstanding_limit
            }
            "globalOutstandingBytesLimit" => &mut self.global_outstanding_bytes,
            "clientOutstandingLimit" => &mut self.client_outstanding_limit,
            "clientOutputSoftLimitBytes" => &mut self.client_output_soft,
            "clientOutputHardLimitBytes" => &mut self.client_output_hard,
            "peerSendQueueLimitBytes" => &mut self.peer_send_queue,
            "peerInboxLimit" => &mut self.peer_inbox,
            "snapSizeLimitInKb" | "zookeeper.snapSizeLimitInKb" => &mut self.snap_size_limit_kb,
            _ => return Ok(false),
        };
        *slot = parse(key, value)?;
        Ok(true)
    }

    /// Checks the bounds against each other and against `jute.maxbuffer`: every limit is
    /// positive, and the hard limit leaves room above the soft one for the largest reply, so
    /// that a client that reads slowly is throttled, never closed, by its reads.
    pub fn validate(&self, jute_max_buffer: usize) -> Result<(), BoundsError> {
        let positive = [
            ("globalOutstandingLimit", self.global_outstanding_limit),
            ("globalOutstandingBytesLimit", self.global_outstanding_bytes),
            ("clientOutstandingLimit", self.client_outstanding_limit),
            ("clientOutputSoftLimitBytes", self.client_output_soft),
            ("clientOutputHardLimitBytes", self.client_output_hard),
            ("peerSendQueueLimitBytes", self.peer_send_queue),
            ("peerInboxLimit", self.peer_inbox),
            ("snapSizeLimitInKb", self.snap_size_limit_kb),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(BoundsError::Invalid(format!("{key} must be positive")));
            }
        }
        let need = self
            .client_output_soft
            .saturating_add(jute_max_buffer.saturating_mul(2));
        if self.client_output_hard < need {
            return Err(BoundsError::Invalid(format!(
                "clientOutputHardLimitBytes ({}) must be at least clientOutputSoftLimitBytes \
                 ({}) plus twice jute.maxbuffer ({need} in all), so that the largest reply \
                 fits above the soft limit",
                self.client_output_hard, self.client_output_soft
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_and_checked() {
        let mut b = Bounds::default();
        assert!(b.apply("globalOutstandingLimit", "10").expect("ok"));
        assert!(b.apply("clientOutputSoftLimitBytes", "1000").expect("ok"));
        assert!(!b.apply("tickTime", "10").expect("ok"));
        assert!(b.apply("peerInboxLimit", "x").is_err());
        assert_eq!(b.global_outstanding_limit, 10);
        assert_eq!(b.client_output_soft, 1000);
        b.validate(0xfffff).expect("defaults fit");
        b.client_output_hard = 1000;
        let e = format!("{:?}", b.validate(0xfffff).unwrap_err());
        assert!(e.contains("clientOutputHardLimitBytes"), "{e}");
        let mut b = Bounds::default();
        b.apply("peerSendQueueLimitBytes", "0").expect("ok");
        assert!(format!("{:?}", b.validate(0xfffff).unwrap_err()).contains("positive"));
    }
}
