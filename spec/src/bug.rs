//! The known-bug switches: ZooKeeper bugs (and problems of the Zab paper's description) that
//! the model, the TLA+ spec and the server can each re-introduce, so that their checkers can
//! show they find them. One definition, used by all three.

/// A known ZooKeeper bug the model and the server can re-introduce, one at a time (the server
/// only in tests: `zab_server::core::PeerConfig::bug`).
///
/// With a switch on, the checker finds a counterexample and names the invariant it breaks;
/// `spec/PROTOCOL.md` (section "Known-bug switches") says which action changes and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Bug {
    /// ZOOKEEPER-4646: a follower sends the ACK of NEWLEADER before the synced transactions
    /// are on disk (they are handed to the asynchronous log thread); a crash then loses
    /// committed transactions.
    Zk4646,
    /// ZOOKEEPER-4643: a follower persists the new currentEpoch before the synced
    /// transactions; crashing in between lets it win an election with a short log and
    /// truncate committed transactions elsewhere.
    Zk4643,
    /// ZOOKEEPER-4394: processing NEWLEADER drops the sync packets that are not yet
    /// committed, so a COMMIT arriving before UPTODATE finds no pending transaction
    /// (a NullPointerException in `Learner.syncWithLeader`).
    Zk4394,
    /// ZOOKEEPER-2845: a server that stops following keeps its in-memory database and reports
    /// its last applied zxid instead of its last logged one, so a new leader DIFFs it from too
    /// early a point and an uncommitted transaction survives in its log.
    Zk2845,
    /// Zab paper, problem 1 found by ZooKeeper's protocol spec: PROPOSE goes only to followers
    /// whose ACK of NEWLEADER the leader processed, so a follower being synced misses a
    /// proposal whose COMMIT it later receives.
    PaperProposeRecipients,
    /// Zab paper, problem 2: the leader logs a client request and broadcasts its PROPOSE in a
    /// later step; a follower synced in between receives the transaction twice.
    PaperRedundantPropose,
    /// Zab paper, problem 3: COMMIT goes only to followers whose ACK of NEWLEADER the leader
    /// processed and COMMIT-LD (UPTODATE) carries only the follower's own sync point, so a
    /// transaction committed in between is never committed by that follower.
    PaperCommitldZxid,
    /// Storage faults (issue 13), model only so far: a server whose disk lost or damaged what
    /// it had made durable does not notice. A damaged fsynced log suffix is cut like a torn
    /// tail, a missing `currentEpoch`/`acceptedEpoch` reads as 0, a wiped data directory
    /// rejoins as a fresh member, and the server votes and acknowledges as if intact, so a
    /// quorum without a committed transaction elects a leader that lacks it. Only has an
    /// effect with a storage-fault budget (`--storage-faults`).
    NoStorageRecovery,
    /// ZOOKEEPER-1551 (fixed in 3.4.6/3.5.0): `Leader.startForwarding` queues the outstanding,
    /// not yet committed proposals for an observer too, so an observer being synced logs a
    /// transaction before it commits and then receives it again in INFORM. In the model and
    /// the server's leader; needs an observer (`--observers 1`, `zab-sim --observers 1`).
    Zk1551,
    /// ZOOKEEPER-3911: during sync a follower logs the synced proposals only after UPTODATE
    /// but acknowledges NEWLEADER before, so a leader commits them while they are on no
    /// follower's disk and a crash of that quorum loses committed transactions.
    Zk3911,
    /// ZOOKEEPER-4685: the log thread acknowledges the synced proposals before the ACK of
    /// NEWLEADER leaves; the leader, waiting for that ACK, reads a proposal's ACK as the
    /// ACK of NEWLEADER with the wrong zxid (and does not count the follower).
    Zk4685,
    /// ZOOKEEPER-4712: a follower that stops following does not stop its log thread; it
    /// votes with the last zxid logged at shutdown, the log thread then logs a queued
    /// proposal, and a new leader DIFFs it from the older zxid: the extra entry survives.
    Zk4712,
}

impl Bug {
    /// All switches, in `--help` order.
    pub const ALL: [Bug; 12] = [
        Bug::Zk4646,
        Bug::Zk4643,
        Bug::Zk4394,
        Bug::Zk2845,
        Bug::PaperProposeRecipients,
        Bug::PaperRedundantPropose,
        Bug::PaperCommitldZxid,
        Bug::NoStorageRecovery,
        Bug::Zk1551,
        Bug::Zk3911,
        Bug::Zk4685,
        Bug::Zk4712,
    ];

    /// The CLI spelling (`--bug zk4646`).
    #[must_use]
    pub fn cli_name(self) -> &'static str {
        match self {
            Bug::Zk4646 => "zk4646",
            Bug::Zk4643 => "zk4643",
            Bug::Zk4394 => "zk4394",
            Bug::Zk2845 => "zk2845",
            Bug::PaperProposeRecipients => "paper-propose-recipients",
            Bug::PaperRedundantPropose => "paper-redundant-propose",
            Bug::PaperCommitldZxid => "paper-commitld-zxid",
            Bug::NoStorageRecovery => "no-storage-recovery",
            Bug::Zk1551 => "zk1551",
            Bug::Zk3911 => "zk3911",
            Bug::Zk4685 => "zk4685",
            Bug::Zk4712 => "zk4712",
        }
    }

    /// The name of the constant in `tla/Zab.tla` (`Bug = "ZK4646"`).
    #[must_use]
    pub fn tla_name(self) -> &'static str {
        match self {
            Bug::Zk4646 => "ZK4646",
            Bug::Zk4643 => "ZK4643",
            Bug::Zk4394 => "ZK4394",
            Bug::Zk2845 => "ZK2845",
            Bug::PaperProposeRecipients => "PaperProposeRecipients",
            Bug::PaperRedundantPropose => "PaperRedundantPropose",
            Bug::PaperCommitldZxid => "PaperCommitldZxid",
            Bug::NoStorageRecovery => "NoStorageRecovery",
            Bug::Zk1551 => "ZK1551",
            Bug::Zk3911 => "ZK3911",
            Bug::Zk4685 => "ZK4685",
            Bug::Zk4712 => "ZK4712",
        }
    }
}

impl std::fmt::Display for Bug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.cli_name())
    }
}

impl std::str::FromStr for Bug {
    type Err = String;

    /// Parses the CLI spelling (`zk4646`, `paper-propose-recipients`, ...).
    fn from_str(s: &str) -> Result<Bug, String> {
        Bug::ALL
            .into_iter()
            .find(|b| b.cli_name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Bug::ALL.iter().map(|b| b.cli_name()).collect();
                format!("unknown bug {s:?}; one of {}", names.join(", "))
            })
    }
}
