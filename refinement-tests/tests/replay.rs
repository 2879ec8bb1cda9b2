//! Model-guided replay (issue 14, item 3): every bug switch's model counterexample, found by
//! the model checker here (no checked-in path that could go stale), is replayed on the real
//! server code in the simulator. With the switch on in servers and model, the server must
//! break the counterexample's invariant; with it off, no invariant may break (the replay runs
//! through or names the first step the fixed server does not take).
//!
//! The switches and their bounds come from the model's own test table
//! (`model/tests/common/mod.rs`), so a switch added there is replayed here too; a switch the
//! table lacks, or whose bounds give no counterexample, is skipped with a printed reason.

#![allow(clippy::print_stdout)] // The test says what it replayed and what it skipped.

#[path = "../../model/tests/common/mod.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;
use zab_model::checker::{self, CheckOptions};
use zab_model::path_file::{PathFile, parse_steps};
use zab_model::{Bug, Config};
use zab_refinement::sim::replay::{Outcome, replay};

/// Switches the server does not implement (`spec/src/bug.rs` says "model only").
// ZOOKEEPER-1551 needs an observer, which the simulation does not run yet (zabd has
// observers; the simulated ensemble is voters only).
const MODEL_ONLY: [Bug; 2] = [Bug::NoStorageRecovery, Bug::Zk1551];

/// The shortest counterexample of `invariant` under `cfg`, as a path file.
fn counterexample(cfg: &Config, invariant: &'static str) -> Option<PathFile> {
    let opts = CheckOptions {
        threads: 1,
        stop_at: Some(BTreeSet::from([invariant])),
        ..CheckOptions::default()
    };
    let r = checker::check(cfg, &opts);
    let d = r.failures.iter().find(|d| d.property == invariant)?;
    Some(PathFile {
        config: cfg.clone(),
        violates: Some(invariant.to_string()),
        steps: parse_steps(&d.encoded).ok()?,
    })
}

/// Every switch with bounds in the table, and its counterexample.
fn paths() -> Vec<(Bug, PathFile)> {
    let table = common::bug_table();
    let mut out = Vec::new();
    for bug in Bug::ALL {
        let Some((_, cfg, invariant)) = table.iter().find(|(b, _, _)| *b == bug) else {
            println!("skip {bug}: no bounds in model/tests/common/mod.rs");
            continue;
        };
        let cfg = Config {
            bug: Some(bug),
            ..cfg.clone()
        };
        match counterexample(&cfg, invariant) {
            Some(p) => out.push((bug, p)),
            None => println!("skip {bug}: no counterexample of {invariant} under {cfg}"),
        }
    }
    out
}

#[test]
fn every_counterexample_breaks_its_invariant_in_the_server() {
    let mut wrong = Vec::new();
    let mut broken = 0;
    for (bug, path) in paths() {
        let invariant = path.violates.clone().unwrap_or_default();
        if MODEL_ONLY.contains(&bug) {
            println!("skip {bug}: the server has no such switch (model only)");
            continue;
        }
        match replay(&path, Some(bug)) {
            Ok(r) => match r.outcome {
                Outcome::InvariantBroken {
                    step,
                    invariant: got,
                } if got == invariant => {
                    broken += 1;
                    println!(
                        "{bug}: the server breaks {got} at step {step} of {} ({} records)",
                        path.steps.len() - 1,
                        r.records
                    );
                }
                other => wrong.push(format!("{bug}: expected {invariant}, got {other:?}")),
            },
            Err(s) => wrong.push(format!("{bug}: {s}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    assert!(broken > 0, "no switch was replayed");
}

#[test]
fn without_the_switch_no_counterexample_breaks_the_server() {
    for (bug, path) in paths() {
        match replay(&path, None) {
            Ok(r) => {
                assert!(
                    !matches!(r.outcome, Outcome::InvariantBroken { .. }),
                    "{bug}: the fixed server breaks an invariant: {:?}",
                    r.outcome
                );
                println!("{bug} off: the server takes all {} steps", r.steps);
            }
            Err(s) => println!(
                "{bug} off: the server does not take step {} ({}): {:?}",
                s.step, s.action, s.reason
            ),
        }
    }
}
