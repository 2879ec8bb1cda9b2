//! `zab-model simulate`: random walks whose discoveries rebuild into paths (Stateright 0.31.0
//! panics rebuilding them when a walk tried a disabled action; `checker::simulate` chooses
//! only enabled ones), and whose counterexample is drawn like a checked one.

mod common;

use zab_model::Bug;
use zab_model::chart::Chart;
use zab_model::checker;
use zab_model::invariants::invariants;

#[test]
fn walks_that_reach_examples_rebuild_their_paths() {
    let r = checker::simulate(&common::base(), 7, 100_000, 1, None);
    assert!(r.failures.is_empty());
    assert!(!r.examples_found.is_empty(), "the walks reach some example");
}

#[test]
fn a_walk_that_breaks_an_invariant_is_a_replayable_counterexample() {
    let cfg = zab_model::Config {
        bug: Some(Bug::Zk4394),
        ..common::fresh_small()
    };
    let r = checker::simulate(&cfg, 0, 1_000_000, 1, None);
    let d = r
        .failures
        .first()
        .expect("--bug zk4394 is found by the walks of seed 0");
    assert_eq!(d.property, "CheckCommitConsistent");
    let chart = Chart::of_path(d.path.clone(), &invariants());
    let broken = chart
        .broken
        .expect("the chart highlights the breaking step");
    assert_eq!(broken.step, Some(d.path.clone().into_actions().len()));
    assert!(broken.invariants.iter().any(|(id, _)| *id == d.property));
}
