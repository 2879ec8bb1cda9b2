//! Exhaustive bounded checks of the fixed protocol, with their state counts pinned: a change
//! to the model that changes the reachable state space must change these numbers on purpose
//! (and `tla/` must follow: TLC has to count the same states).

mod common;

use zab_model::Config;
use zab_model::checker::{self, CheckOptions};

fn check_passes(cfg: &Config, unique: usize) {
    let r = checker::check(
        cfg,
        &CheckOptions {
            threads: 2,
            ..CheckOptions::default()
        },
    );
    if let Some(d) = r.failures.first() {
        panic!(
            "{}",
            checker::format_discovery(cfg, d, "http://127.0.0.1:3000")
        );
    }
    assert!(r.complete, "{cfg}: incomplete");
    assert_eq!(r.unique_states, unique, "{cfg}: unique states changed");
}

#[test]
fn three_servers_one_crash_explores_everything_and_reaches_every_example() {
    let cfg = common::base();
    let r = checker::check(
        &cfg,
        &CheckOptions {
            threads: 2,
            ..CheckOptions::default()
        },
    );
    assert!(r.failures.is_empty(), "{:?}", r.failed());
    assert!(r.complete);
    assert_eq!(r.unique_states, 1_045_682);
    assert_eq!(
        r.examples_missing,
        Vec::<&str>::new(),
        "every interesting state is reachable"
    );
}

#[test]
fn the_bug_bounds_pass_without_bugs() {
    check_passes(&common::fresh_small(), 159_554);
    check_passes(&common::epoch1_recovery(), 124_423);
    check_passes(&common::epoch1_late_joiner(), 10_273);
}

#[test]
fn storage_faults_lose_nothing_with_recovery() {
    // One server restarts having lost its epoch files, a suffix of its fsynced log or its
    // whole data directory; with the recovering state every invariant holds.
    check_passes(&common::storage_small(), STORAGE_SMALL_STATES);
}

/// Unique states of `common::storage_small()` (`tla/MCStorageFaults.cfg` counts the same).
const STORAGE_SMALL_STATES: usize = 112_661;

#[test]
fn a_zero_storage_fault_budget_changes_nothing() {
    // The budget defaults to 0; the actions exist but are never enabled, so every count
    // pinned above (and in tla/) is the count without storage faults.
    assert_eq!(common::fresh_small().storage_faults, Some(0));
    assert_eq!(Config::default().storage_faults, Some(0));
}

#[test]
fn two_servers_need_both_for_a_quorum() {
    let cfg = Config {
        servers: 2,
        ..common::fresh_small()
    };
    check_passes(&cfg, 272);
}

#[test]
fn a_timeout_stops_a_single_threaded_check() {
    // Stateright 0.31.0 ignores `.timeout()` with one thread; our deadline does not.
    let cfg = Config {
        txns: Some(3),
        crashes: Some(3),
        partitions: Some(2),
        ..common::base()
    };
    let start = std::time::Instant::now();
    let r = checker::check(
        &cfg,
        &CheckOptions {
            threads: 1,
            timeout: Some(std::time::Duration::from_secs(1)),
            ..CheckOptions::default()
        },
    );
    assert!(!r.complete);
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
}
