//! The tables: one per run (operations, acknowledged, lost, linearizable, recovery times,
//! crashes, per-fault availability), and zabd beside ZooKeeper when both ran.

use crate::check::linear::Verdict;
use crate::run::Outcome;
use std::fmt::Write;

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |s| format!("{s:.2}"))
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn max(v: &[f64]) -> Option<f64> {
    v.iter().copied().reduce(f64::max)
}

/// The verdict in one word.
#[must_use]
pub fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Linearizable => "yes",
        Verdict::NotLinearizable { .. } => "NO",
        Verdict::Unknown { .. } => "unknown",
    }
}

/// The table of one run.
#[must_use]
pub fn table(o: &Outcome) -> String {
    let mut s = String::new();
    let heal: Vec<f64> = o.events.iter().filter_map(|e| e.heal_to_write).collect();
    let fault: Vec<f64> = o.events.iter().filter_map(|e| e.fault_to_write).collect();
    let _ = writeln!(
        s,
        "== {} seed {} — {} faults in {:.0} s — run folder {}",
        o.system.name(),
        o.seed,
        o.events.len(),
        o.seconds,
        o.dir.display()
    );
    let _ = writeln!(
        s,
        "ops ok {} | fail {} | indeterminate {} | acknowledged writes {} | lost {} | \
         linearizable {} ({} register ops) | crashes {}",
        o.ok,
        o.fail,
        o.info,
        o.acknowledged,
        o.lost,
        verdict_word(&o.verdict),
        o.register_ops,
        o.crashes.len()
    );
    let _ = writeln!(
        s,
        "recovery (s to first acknowledged write): from fault median {} max {}; from heal \
         median {} max {}; ephemeral of a killed client gone after {} s",
        opt(median(fault.clone())),
        opt(max(&fault)),
        opt(median(heal.clone())),
        opt(max(&heal)),
        opt(o.ephemeral_expiry)
    );
    let _ = writeln!(s, "{:<40} {:>9} {:>9}  what", "fault", "fault→w", "heal→w");
    for e in &o.events {
        let _ = writeln!(
            s,
            "{:<40} {:>9} {:>9}  {}",
            e.name,
            opt(e.fault_to_write),
            opt(e.heal_to_write),
            e.notes.join("; ")
        );
    }
    for c in &o.crashes {
        let _ = writeln!(s, "CRASH {c}");
    }
    for n in &o.notes {
        let _ = writeln!(s, "note: {n}");
    }
    for f in &o.failures {
        let _ = writeln!(s, "FAIL: {f}");
    }
    let _ = writeln!(s, "result: {}", if o.passed() { "PASS" } else { "FAIL" });
    s
}

/// Availability of two runs with the same seed side by side, fault by fault.
#[must_use]
pub fn side_by_side(a: &Outcome, b: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== availability, seconds to the first acknowledged write (seed {})",
        a.seed
    );
    let _ = writeln!(
        s,
        "{:<40} {:>10} {:>10} {:>10} {:>10}",
        "fault",
        format!("{} f→w", a.system.name()),
        format!("{} h→w", a.system.name()),
        format!("{} f→w", b.system.name()),
        format!("{} h→w", b.system.name())
    );
    for (x, y) in a.events.iter().zip(&b.events) {
        let name = if x.name == y.name {
            x.name.clone()
        } else {
            format!("{} / {}", x.name, y.name)
        };
        let _ = writeln!(
            s,
            "{:<40} {:>10} {:>10} {:>10} {:>10}",
            name,
            opt(x.fault_to_write),
            opt(x.heal_to_write),
            opt(y.fault_to_write),
            opt(y.heal_to_write)
        );
    }
    let med = |o: &Outcome, f: fn(&crate::run::Event) -> Option<f64>| {
        opt(median(o.events.iter().filter_map(f).collect()))
    };
    let _ = writeln!(
        s,
        "{:<40} {:>10} {:>10} {:>10} {:>10}",
        "median",
        med(a, |e| e.fault_to_write),
        med(a, |e| e.heal_to_write),
        med(b, |e| e.fault_to_write),
        med(b, |e| e.heal_to_write)
    );
    s
}
