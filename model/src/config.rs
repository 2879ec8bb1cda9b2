//! Model configuration: bounds ([`Config`]), the known-bug switches ([`Bug`]) and the
//! client workload the leader turns into transactions ([`WorkloadKind`]).

use std::fmt;

/// A known ZooKeeper bug the model can re-introduce, one at a time.
///
/// With a switch on, the checker finds a counterexample and names the invariant it breaks;
/// `spec/PROTOCOL.md` (section "Known-bug switches") says which action changes and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
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
}

impl Bug {
    /// All switches, in `--help` order.
    pub const ALL: [Bug; 7] = [
        Bug::Zk4646,
        Bug::Zk4643,
        Bug::Zk4394,
        Bug::Zk2845,
        Bug::PaperProposeRecipients,
        Bug::PaperRedundantPropose,
        Bug::PaperCommitldZxid,
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
        }
    }
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cli_name())
    }
}

/// Which scripted client workload the leader serves, in order (see [`crate::workload`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum WorkloadKind {
    /// Sessions and ephemeral nodes first: createSession, create ephemeral, setData,
    /// leader-issued expiry, then sequential creates and a delete.
    #[default]
    Sessions,
    /// Sequential nodes first: two sequential creates under `/`, then sessions.
    Sequential,
}

/// Where runs start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum InitKind {
    /// Every server LOOKING with an empty log.
    #[default]
    Fresh,
    /// ZooKeeper's bug-hunting start (Remix's `SetInitState`): the highest server leads epoch
    /// 1, the others follow in BROADCAST, the first request is committed everywhere, the
    /// second is logged by the leader only and its PROPOSAL is on its way to each follower.
    /// These two requests count against `--txns`.
    Epoch1,
}

/// The bounds and switches of one model instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Config {
    /// Number of servers (1..=7).
    pub servers: u8,
    /// Client requests the leaders may turn into proposals, over the whole run.
    pub txns: Option<u8>,
    /// Crashes (each followed by a restart), over the whole run.
    pub crashes: Option<u8>,
    /// Partitions between two servers, over the whole run (each may heal any time).
    pub partitions: Option<u8>,
    /// Leader timeouts before establishment, over the whole run.
    pub timeouts: Option<u8>,
    /// Snapshots, over the whole run.
    pub snapshots: Option<u8>,
    /// The largest epoch a leader may propose.
    pub epochs: Option<u32>,
    /// The known bug re-introduced, if any.
    pub bug: Option<Bug>,
    /// The client workload.
    pub workload: WorkloadKind,
    /// Where runs start.
    pub init: InitKind,
}

impl Config {
    /// The largest ensemble the model supports (server sets are bitmasks).
    pub const MAX_SERVERS: u8 = 7;

    /// A configuration without any bound, for replaying traces (`zab-refinement`).
    #[must_use]
    pub fn unbounded(servers: u8) -> Config {
        Config {
            servers,
            txns: None,
            crashes: None,
            partitions: None,
            timeouts: None,
            snapshots: None,
            epochs: None,
            bug: None,
            workload: WorkloadKind::Sessions,
            init: InitKind::Fresh,
        }
    }

    /// Whether `bug` is switched on.
    #[must_use]
    pub fn has(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }

    /// Checks the bounds, so that a bad CLI argument gets a clear error.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers == 0 || self.servers > Self::MAX_SERVERS {
            return Err(format!("--servers must be 1..={}", Self::MAX_SERVERS));
        }
        if self.epochs == Some(0) {
            return Err("--epochs must be at least 1".into());
        }
        if self.init == InitKind::Epoch1 && (self.txns.is_some_and(|t| t < 2) || self.servers < 2) {
            return Err(
                "--init epoch1 needs --txns >= 2 (its two requests count) and 2+ servers".into(),
            );
        }
        if self.txns.is_some_and(|t| t > 60) {
            return Err("--txns must be at most 60".into());
        }
        Ok(())
    }
}

impl Default for Config {
    /// The configuration `cargo test` and CI check: 3 servers, 1 transaction, 1 crash.
    fn default() -> Config {
        Config {
            servers: 3,
            txns: Some(1),
            crashes: Some(1),
            partitions: Some(0),
            timeouts: Some(1),
            snapshots: Some(1),
            epochs: Some(2),
            bug: None,
            workload: WorkloadKind::Sessions,
            init: InitKind::Fresh,
        }
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn b<T: fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "unbounded".into(), |v| v.to_string())
        }
        write!(
            f,
            "servers={} txns={} crashes={} partitions={} timeouts={} snapshots={} epochs={} \
             workload={:?} init={:?} bug={}",
            self.servers,
            b(self.txns),
            b(self.crashes),
            b(self.partitions),
            b(self.timeouts),
            b(self.snapshots),
            b(self.epochs),
            self.workload,
            self.init,
            self.bug.map_or("none", Bug::cli_name)
        )
    }
}
