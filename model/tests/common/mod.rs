//! Configurations shared by the model's integration tests.

use zab_model::{Bug, Config, InitKind};

/// The `cargo test` configuration: 3 servers, one request, one crash, two epochs, one leader
/// timeout, one snapshot.
#[allow(dead_code)]
pub fn base() -> Config {
    Config::default()
}

/// Small bounds, no timeouts or snapshots: the bounds most bug switches are checked at.
pub fn fresh_small() -> Config {
    Config {
        timeouts: Some(0),
        snapshots: Some(0),
        ..Config::default()
    }
}

/// ZooKeeper's bug-hunting start with two crashes and three epochs (ZOOKEEPER-4646/4643).
pub fn epoch1_recovery() -> Config {
    Config {
        init: InitKind::Epoch1,
        txns: Some(2),
        crashes: Some(2),
        epochs: Some(3),
        ..fresh_small()
    }
}

/// ZooKeeper's bug-hunting start with a late joiner and one more request.
pub fn epoch1_late_joiner() -> Config {
    Config {
        init: InitKind::Epoch1,
        txns: Some(3),
        crashes: Some(1),
        epochs: Some(1),
        ..fresh_small()
    }
}

/// Storage faults: the fresh small bounds with one storage fault instead of the crash
/// (`--crashes 0 --storage-faults 1`).
#[allow(dead_code)]
pub fn storage_small() -> Config {
    Config {
        crashes: Some(0),
        storage_faults: Some(1),
        ..fresh_small()
    }
}

/// Observers (`spec/PROTOCOL.md` §10.2): 2 voters and 1 observer (s3) at the fresh small
/// bounds (`tla/MCObserver.cfg`).
#[allow(dead_code)]
pub fn observer_small() -> Config {
    Config {
        observers: 1,
        ..fresh_small()
    }
}

/// Every bug switch, the bounds it is found at, and the invariant it breaks.
#[allow(dead_code)]
pub fn bug_table() -> Vec<(Bug, Config, &'static str)> {
    vec![
        (Bug::Zk4646, epoch1_recovery(), "LeaderLogCompleteness"),
        (Bug::Zk4643, epoch1_recovery(), "LeaderLogCompleteness"),
        (Bug::Zk4394, fresh_small(), "CheckCommitConsistent"),
        (Bug::Zk2845, fresh_small(), "ProcessConsistency"),
        (
            Bug::PaperProposeRecipients,
            fresh_small(),
            "CheckCommitConsistent",
        ),
        (
            Bug::PaperRedundantPropose,
            fresh_small(),
            "CheckProposalConsistent",
        ),
        (
            Bug::PaperCommitldZxid,
            epoch1_late_joiner(),
            "CheckCommitConsistent",
        ),
        (Bug::NoStorageRecovery, storage_small(), "Leadership2"),
        (Bug::Zk1551, observer_small(), "CheckProposalConsistent"),
        (Bug::Zk3911, epoch1_recovery(), "LeaderLogCompleteness"),
        (Bug::Zk4685, epoch1_recovery(), "CheckAckConsistent"),
        (Bug::Zk4712, fresh_small(), "ProcessConsistency"),
    ]
}
