//! Every known-bug switch, in both directions: with the switch on the checker finds a
//! counterexample for the expected invariant, and that counterexample is the shortest one;
//! with every switch off the same bounds pass (`bounded_checks.rs` pins those counts).

mod common;

use std::collections::BTreeSet;
use zab_model::checker::{self, CheckOptions, workload_model};
use zab_model::{Bug, Config};
use zab_spec::ActionKind;

fn expect_violation(bug: Bug, cfg: &Config, invariant: &'static str) -> usize {
    let cfg = Config {
        bug: Some(bug),
        ..cfg.clone()
    };
    let opts = CheckOptions {
        threads: 1,
        stop_at: Some(BTreeSet::from([invariant])),
        ..CheckOptions::default()
    };
    let r = checker::check(&cfg, &opts);
    let d = r
        .failures
        .iter()
        .find(|d| d.property == invariant)
        .unwrap_or_else(|| panic!("{bug}: {invariant} not violated; found {:?}", r.failed()));
    // Replay the counterexample through the transition relation: every step is enabled and
    // the last state breaks the invariant.
    let model = workload_model(&cfg);
    let mut state = model.initial_state();
    let actions = d.path.clone().into_actions();
    for a in &actions {
        state = model
            .step(&state, a)
            .unwrap_or_else(|| panic!("{bug}: step {a} not enabled"));
    }
    let inv = zab_model::invariants::invariants()
        .into_iter()
        .find(|i| i.id == invariant)
        .unwrap();
    assert!(
        !(inv.holds)(&state),
        "{bug}: the last state satisfies {invariant}"
    );
    actions.len()
}

fn no_violation_within(bug: Bug, cfg: &Config, steps: usize) {
    let cfg = Config {
        bug: Some(bug),
        ..cfg.clone()
    };
    let r = checker::check(
        &cfg,
        &CheckOptions {
            max_steps: Some(steps),
            ..CheckOptions::default()
        },
    );
    assert!(
        r.failures.is_empty(),
        "{bug}: a counterexample of at most {steps} steps: {:?}",
        r.failed()
    );
}

#[test]
fn every_switch_is_found_and_its_counterexample_is_the_shortest() {
    for (bug, cfg, invariant) in common::bug_table() {
        let len = expect_violation(bug, &cfg, invariant);
        no_violation_within(bug, &cfg, len - 1);
    }
}

#[test]
fn every_switch_is_in_the_table() {
    let covered: BTreeSet<Bug> = common::bug_table().into_iter().map(|(b, _, _)| b).collect();
    assert_eq!(covered, Bug::ALL.into_iter().collect());
}

#[test]
fn zk4646_counterexample_tells_the_story() {
    // ZOOKEEPER-4646: the follower acknowledges NEWLEADER before its log thread wrote the
    // synced transaction; the leader commits it; the follower crashes and later leads.
    let cfg = Config {
        bug: Some(Bug::Zk4646),
        ..common::epoch1_recovery()
    };
    let r = checker::check(&cfg, &CheckOptions::default());
    let kinds: Vec<ActionKind> = r.failures[0]
        .path
        .clone()
        .into_actions()
        .iter()
        .map(zab_model::Action::kind)
        .collect();
    let pos = |k: ActionKind| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("{k} in {kinds:?}"))
    };
    assert!(pos(ActionKind::FollowerProcessNewLeader) < pos(ActionKind::LeaderProcessAckLd));
    assert!(
        kinds
            .iter()
            .filter(|k| **k == ActionKind::NodeCrash)
            .count()
            == 2
    );
    assert!(
        !kinds.contains(&ActionKind::SyncProcessorLogRequest),
        "the crash came before the log write"
    );
}

/// The shortest way `no-storage-recovery` loses a committed transaction at its bounds (the
/// bug table names its shortest counterexample of all, `Leadership2`: the wiped server's lost
/// acceptedEpoch lets a second leader establish the same epoch).
fn storage_counterexample() -> Vec<zab_model::Action<zab_spec::ZnodeTxn>> {
    let cfg = Config {
        bug: Some(Bug::NoStorageRecovery),
        ..common::storage_small()
    };
    let opts = CheckOptions {
        threads: 1,
        stop_at: Some(BTreeSet::from(["LeaderLogCompleteness"])),
        ..CheckOptions::default()
    };
    let r = checker::check(&cfg, &opts);
    let d = r
        .failures
        .iter()
        .find(|d| d.property == "LeaderLogCompleteness")
        .expect("a committed transaction is lost");
    d.path.clone().into_actions()
}

#[test]
fn no_storage_recovery_counterexample_loses_a_transaction_committed_before_the_fault() {
    // Without the recovering state, one storage fault after a commit suffices: the damaged
    // server votes and acknowledges as if intact and a leader without the transaction wins.
    let cfg = Config {
        bug: Some(Bug::NoStorageRecovery),
        ..common::storage_small()
    };
    let actions = storage_counterexample();
    let faults: Vec<usize> = (0..actions.len())
        .filter(|&k| actions[k].kind().is_storage_fault())
        .collect();
    assert_eq!(faults.len(), 1, "{actions:?}");
    let model = workload_model(&cfg);
    let mut state = model.initial_state();
    for a in &actions[..faults[0]] {
        state = model.step(&state, a).expect("enabled");
    }
    assert!(
        !state.ghost.committed_log.is_empty(),
        "a transaction was committed before the fault"
    );
}

#[test]
fn with_recovery_the_same_fault_leaves_the_server_recovering_and_without_a_vote() {
    // The buggy counterexample up to its storage fault, replayed with recovery: the damaged
    // server is recovering, cannot be elected, and is no supporter of anyone else.
    let actions = storage_counterexample();
    let k = actions
        .iter()
        .position(|a| a.kind().is_storage_fault())
        .expect("a storage fault");
    let model = workload_model(&common::storage_small());
    let mut state = model.initial_state();
    for a in &actions[..=k] {
        state = model.step(&state, a).expect("enabled with recovery too");
    }
    let (i, _) = actions[k].servers();
    assert!(state.srv(i).recovering);
    assert!(
        model
            .step(&state, &zab_model::Action::ElectLeader { i })
            .is_none()
    );
    assert!(!model.counts(&state, i), "its votes and ACKs do not count");
}
