//! The deterministic simulation in CI: fixed seeds of 3- and 5-server ensembles with every
//! fault, byte-identical traces for equal seeds, and the known-bug switches found by
//! simulation plus refinement. `zab-sim sweep` runs thousands of seeds (README).

use zab_refinement::sim::{self, Faults, SimConfig};
use zab_spec::Bug;

/// Simulated ms of the phase with faults in the CI runs (the sweep's default is 20 s).
const SAFETY_MS: u64 = 3000;

fn config(seed: u64, servers: usize) -> SimConfig {
    let mut c = SimConfig::new(seed, servers);
    c.safety_ms = SAFETY_MS;
    c
}

fn must_pass(cfg: SimConfig) {
    match sim::run(cfg) {
        Ok(r) => {
            assert!(r.committed > 0, "the run committed nothing: {r:?}");
            assert!(r.ops_completed > 0, "no client operation completed: {r:?}");
        }
        Err(f) => panic!("{f}"),
    }
}

#[test]
fn three_server_seeds_pass_every_check() {
    for seed in 1..=3 {
        must_pass(config(seed, 3));
    }
}

#[test]
fn five_server_seeds_pass_every_check() {
    for seed in 1..=2 {
        must_pass(config(seed, 5));
    }
}

#[test]
fn faults_are_injected_and_survived() {
    let r = sim::run(config(1, 3)).unwrap_or_else(|f| panic!("{f}"));
    assert!(
        r.faults.values().sum::<usize>() > 0,
        "no fault injected: {:?}",
        r.faults
    );
    let r = sim::run({
        let mut c = config(1, 3);
        c.faults = Faults::NONE;
        c
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(r.faults.is_empty(), "faults without faults: {:?}", r.faults);
}

#[test]
fn the_same_seed_gives_a_byte_identical_trace() {
    let run = || {
        let mut c = config(7, 3);
        c.keep_trace = true;
        sim::run(c).unwrap_or_else(|f| panic!("{f}"))
    };
    let (a, b) = (run(), run());
    assert!(!a.trace.is_empty());
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(a.trace, b.trace);
    let mut other = config(8, 3);
    other.keep_trace = true;
    let c = sim::run(other).unwrap_or_else(|f| panic!("{f}"));
    assert_ne!(
        a.trace_digest, c.trace_digest,
        "different seeds, same trace"
    );
}

/// Each switch that the simulation finds, with the number of seeds (from 0) it is given: the
/// figures are what `zab-sim run --bug NAME --safety-ms 3000` measured (README, "Deterministic
/// simulation"). The other switches (ZOOKEEPER-4646, 4643, 2845) exist in the server but
/// need a crash inside a window of a few ms and were not found within 22 seeds of 3 s; README
/// says so.
const FOUND: [(Bug, u64); 4] = [
    (Bug::Zk4394, 2),
    (Bug::PaperRedundantPropose, 1),
    (Bug::PaperCommitldZxid, 2),
    (Bug::PaperProposeRecipients, 3),
];

#[test]
fn known_bug_switches_are_found_by_simulation_and_refinement() {
    for (bug, seeds) in FOUND {
        let found = (0..seeds).find_map(|seed| {
            let mut c = config(seed, 3);
            c.bug = Some(bug);
            sim::run(c).err()
        });
        let f = found.unwrap_or_else(|| panic!("--bug {bug} not found within {seeds} seeds"));
        assert!(
            f.reason.contains("invariant") && f.reason.contains("violated"),
            "--bug {bug} must break a model invariant, not diverge: {f}"
        );
        assert!(
            f.repro.contains(&format!("--bug {}", bug.cli_name())),
            "the failure names its reproduction: {}",
            f.repro
        );
    }
}
