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

/// The shortest counterexample's length of the switches added for issue 14 (README's table
/// of known-bug switches gives the same numbers).
#[test]
fn second_wave_switches_pin_their_counterexample_length() {
    for (bug, steps) in [(Bug::Zk3911, 18), (Bug::Zk4685, 12), (Bug::Zk4712, 21)] {
        let (_, cfg, invariant) = common::bug_table()
            .into_iter()
            .find(|(b, _, _)| *b == bug)
            .expect("in the table");
        assert_eq!(
            expect_violation(bug, &cfg, invariant),
            steps,
            "{bug}: {invariant}"
        );
    }
}

/// ZOOKEEPER-3911: the follower acknowledges NEWLEADER with the synced proposal still in
/// memory, the leader commits it, the follower crashes before UPTODATE and later leads.
#[test]
fn zk3911_counterexample_tells_the_story() {
    let kinds = shortest_kinds(
        Bug::Zk3911,
        common::epoch1_recovery(),
        "LeaderLogCompleteness",
    );
    let pos = |k: ActionKind| kinds.iter().position(|x| *x == k);
    let ack_ld = pos(ActionKind::LeaderProcessAckLd).expect("the leader counts the ACK");
    assert!(pos(ActionKind::FollowerProcessNewLeader).is_some_and(|p| p < ack_ld));
    assert!(
        kinds[ack_ld..].contains(&ActionKind::NodeCrash),
        "a crash after the commit: {kinds:?}"
    );
}

/// ZOOKEEPER-4685: the last step is the leader processing an ACK of a proposal where it
/// waits for the ACK of NEWLEADER.
#[test]
fn zk4685_counterexample_ends_with_the_early_ack() {
    let kinds = shortest_kinds(Bug::Zk4685, common::epoch1_recovery(), "CheckAckConsistent");
    assert_eq!(
        kinds.last(),
        Some(&ActionKind::LeaderProcessAck),
        "{kinds:?}"
    );
    assert!(
        !kinds.contains(&ActionKind::LeaderProcessAckLd),
        "{kinds:?}"
    );
}

/// ZOOKEEPER-4712: a follower goes LOOKING (its leader crashed) with a proposal still queued
/// for its log thread, which keeps running; the next leader syncs it from the zxid it reported
/// and the queued proposal stays in its log (never written before the crash).
#[test]
fn zk4712_counterexample_keeps_the_queued_proposal() {
    let kinds = shortest_kinds(Bug::Zk4712, common::fresh_small(), "ProcessConsistency");
    let pos = |k: ActionKind| kinds.iter().position(|x| *x == k);
    let crash = pos(ActionKind::NodeCrash).expect("the leader crashes");
    assert!(pos(ActionKind::FollowerProcessProposal).is_some_and(|p| p < crash));
    assert!(
        !kinds[..crash].contains(&ActionKind::SyncProcessorLogRequest),
        "queued, not written, when the follower stops: {kinds:?}"
    );
    assert!(
        kinds[crash..].contains(&ActionKind::FollowerProcessSyncMessage),
        "{kinds:?}"
    );
}

fn shortest_kinds(bug: Bug, cfg: Config, invariant: &'static str) -> Vec<ActionKind> {
    let cfg = Config {
        bug: Some(bug),
        ..cfg
    };
    let r = checker::check(
        &cfg,
        &CheckOptions {
            threads: 1,
            stop_at: Some(BTreeSet::from([invariant])),
            ..CheckOptions::default()
        },
    );
    let d = r
        .failures
        .iter()
        .find(|d| d.property == invariant)
        .expect("found");
    d.path
        .clone()
        .into_actions()
        .iter()
        .map(zab_model::Action::kind)
        .collect()
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

#[test]
fn zk1551_an_observer_synced_with_an_outstanding_proposal_gets_it_again_in_inform() {
    // ZOOKEEPER-1551: the leader syncs a late observer while a proposal is outstanding and
    // (the bug) streams it to the observer too; when it commits, INFORM brings it again.
    let cfg = Config {
        bug: Some(Bug::Zk1551),
        ..common::observer_small()
    };
    let invariant = "CheckProposalConsistent";
    let steps = expect_violation(Bug::Zk1551, &common::observer_small(), invariant);
    assert_eq!(
        steps, 24,
        "the shortest counterexample (TLC's trace has 25 states)"
    );
    let opts = CheckOptions {
        threads: 1,
        stop_at: Some(BTreeSet::from([invariant])),
        ..CheckOptions::default()
    };
    let r = checker::check(&cfg, &opts);
    let actions = r.failures[0].path.clone().into_actions();
    let observer = 2; // s3, the last server
    let pos = |p: &dyn Fn(&zab_model::Action<zab_spec::ZnodeTxn>) -> bool| {
        actions
            .iter()
            .position(p)
            .unwrap_or_else(|| panic!("{actions:?}"))
    };
    let request = pos(&|a| a.kind() == ActionKind::LeaderProcessRequest);
    let sync =
        pos(&|a| a.kind() == ActionKind::LeaderSyncFollower && a.servers().1 == Some(observer));
    let in_sync = pos(&|a| {
        a.kind() == ActionKind::FollowerProcessProposalInSync && a.servers().0 == observer
    });
    assert!(request < sync && sync < in_sync, "{actions:?}");
    assert_eq!(
        actions.last().map(zab_model::Action::kind),
        Some(ActionKind::ObserverProcessInform)
    );
}
