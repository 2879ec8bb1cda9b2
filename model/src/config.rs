//! Model configuration: bounds ([`Config`]), the known-bug switch ([`Bug`], shared with the
//! server through `zab-spec`) and the client workload the leader turns into transactions
//! ([`WorkloadKind`]).

use std::fmt;

pub use zab_spec::Bug;

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
    /// Storage faults (a server restarts with lost or damaged durable state: `LoseEpochFiles`,
    /// `LoseLogSuffix`, `LoseDataDir`), over the whole run.
    pub storage_faults: Option<u8>,
    /// The largest epoch a leader may propose.
    pub epochs: Option<u32>,
    /// The known bug re-introduced, if any.
    pub bug: Option<Bug>,
    /// The client workload.
    pub workload: WorkloadKind,
    /// Where runs start.
    pub init: InitKind,
    /// Observers (`spec/PROTOCOL.md` §10.2): the last `observers` servers (0 or 1) are
    /// observers, the others voters. 0 in every configuration that predates observers.
    pub observers: u8,
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
            storage_faults: None,
            epochs: None,
            bug: None,
            workload: WorkloadKind::Sessions,
            init: InitKind::Fresh,
            observers: 0,
        }
    }

    /// The observers: the last `observers` servers.
    #[must_use]
    pub fn observer_set(&self) -> crate::state::ServerSet {
        (self.servers.saturating_sub(self.observers)..self.servers).fold(
            crate::state::ServerSet::EMPTY,
            crate::state::ServerSet::with,
        )
    }

    /// Whether `bug` is switched on.
    #[must_use]
    pub fn has(&self, bug: Bug) -> bool {
        self.bug == Some(bug)
    }

    /// Checks the bounds, so that a bad CLI argument gets a clear error.
    pub fn validate(&self) -> Result<(), String> {
        if self.servers < 2 || self.servers > Self::MAX_SERVERS {
            return Err(format!(
                "--servers must be 2..={} (a single server needs no agreement)",
                Self::MAX_SERVERS
            ));
        }
        if self.epochs == Some(0) {
            return Err("--epochs must be at least 1".into());
        }
        if self.init == InitKind::Epoch1 && (self.txns.is_some_and(|t| t < 2) || self.servers < 2) {
            return Err(
                "--init epoch1 needs --txns >= 2 (its two requests count) and 2+ servers".into(),
            );
        }
        if self.observers > 1 {
            return Err("--observers must be 0 or 1 (the model's bound, PROTOCOL.md §10.6)".into());
        }
        if self.observers > 0 && self.servers - self.observers < 2 {
            return Err("--observers needs at least 2 voters besides the observer".into());
        }
        if self.observers > 0 && self.init == InitKind::Epoch1 {
            return Err(
                "--observers does not combine with --init epoch1 (its start has no observer)"
                    .into(),
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
            storage_faults: Some(0),
            epochs: Some(2),
            bug: None,
            workload: WorkloadKind::Sessions,
            init: InitKind::Fresh,
            observers: 0,
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
            "servers={} txns={} crashes={} partitions={} timeouts={} snapshots={} \
             storage_faults={} epochs={} workload={:?} init={:?} bug={}",
            self.servers,
            b(self.txns),
            b(self.crashes),
            b(self.partitions),
            b(self.timeouts),
            b(self.snapshots),
            b(self.storage_faults),
            b(self.epochs),
            self.workload,
            self.init,
            self.bug.map_or("none", Bug::cli_name)
        )?;
        if self.observers > 0 {
            write!(f, " observers={}", self.observers)?;
        }
        Ok(())
    }
}
