//! The tables: one per run (operations, acknowledged, lost, linearizable, recovery times,
//! crashes, per-fault availability), and zabd beside ZooKeeper when both ran.

use crate::check::linear::Verdict;
use crate::run::Outcome;
use std::collections::BTreeMap;
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
    if o.events.len() > crate::nemesis::ALL.len() + 1 {
        let _ = writeln!(
            s,
            "per fault kind: {:<32} {:>4} {:>9} {:>9}",
            "", "n", "fault→w", "heal→w"
        );
        for (k, (n, f, h)) in by_kind(o) {
            let _ = writeln!(s, "  {k:<46} {n:>4} {:>9} {:>9}", opt(f), opt(h));
        }
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

/// Per fault kind (a step's name): count, median seconds fault→write and heal→write.
#[must_use]
pub fn by_kind(o: &Outcome) -> BTreeMap<String, (usize, Option<f64>, Option<f64>)> {
    let mut m: BTreeMap<String, (usize, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for e in &o.events {
        let x = m.entry(e.name.clone()).or_default();
        x.0 += 1;
        x.1.extend(e.fault_to_write);
        x.2.extend(e.heal_to_write);
    }
    m.into_iter()
        .map(|(k, (n, f, h))| (k, (n, median(f), median(h))))
        .collect()
}

/// Availability of two runs (same seed and schedule kind) side by side: per fault kind, the
/// medians of seconds to the first acknowledged write after the fault and after its heal.
#[must_use]
pub fn side_by_side(a: &Outcome, b: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "== availability: median seconds to the first acknowledged write (seed {}; n = faults)",
        a.seed
    );
    let _ = writeln!(
        s,
        "{:<40} {:>4} {:>10} {:>10} {:>4} {:>10} {:>10}",
        "fault",
        "n",
        format!("{} f→w", a.system.name()),
        format!("{} h→w", a.system.name()),
        "n",
        format!("{} f→w", b.system.name()),
        format!("{} h→w", b.system.name())
    );
    let ka = by_kind(a);
    let kb = by_kind(b);
    let names: std::collections::BTreeSet<&String> = ka.keys().chain(kb.keys()).collect();
    for name in names {
        let (na, fa, ha) = ka.get(name).copied().unwrap_or((0, None, None));
        let (nb, fb, hb) = kb.get(name).copied().unwrap_or((0, None, None));
        let _ = writeln!(
            s,
            "{:<40} {:>4} {:>10} {:>10} {:>4} {:>10} {:>10}",
            name,
            na,
            opt(fa),
            opt(ha),
            nb,
            opt(fb),
            opt(hb)
        );
    }
    let all = |o: &Outcome, f: fn(&crate::run::Event) -> Option<f64>| {
        opt(median(o.events.iter().filter_map(f).collect()))
    };
    let _ = writeln!(
        s,
        "{:<40} {:>4} {:>10} {:>10} {:>4} {:>10} {:>10}",
        "all faults",
        a.events.len(),
        all(a, |e| e.fault_to_write),
        all(a, |e| e.heal_to_write),
        b.events.len(),
        all(b, |e| e.fault_to_write),
        all(b, |e| e.heal_to_write)
    );
    s
}
