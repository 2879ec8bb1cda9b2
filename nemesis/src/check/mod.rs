//! The checkers, and the self-test that feeds them histories known to be wrong.

pub mod linear;
pub mod sets;

use std::collections::{BTreeMap, BTreeSet};

/// Runs every checker on known histories; returns one line per fixture, or the first
/// misjudged one as the error.
pub fn self_test() -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (name, h, want) in linear::fixtures() {
        let v = linear::check(&h, 1_000_000);
        let got = v == linear::Verdict::Linearizable;
        if got != want || (!want && !matches!(v, linear::Verdict::NotLinearizable { .. })) {
            return Err(format!(
                "linearizability checker misjudged \"{name}\": {v:?}"
            ));
        }
        out.push(format!(
            "linearizability: {name}: {}",
            if want { "accepted" } else { "rejected" }
        ));
    }
    let set = |v: &[&str]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<BTreeSet<String>>()
    };
    let lossy = sets::check_set(
        &set(&["a", "b"]),
        &set(&["a", "b", "c"]),
        &BTreeMap::from([(1, set(&["a", "b"])), (2, set(&["a", "c"]))]),
    );
    if lossy.lost != vec![(2, "b".to_string())] {
        return Err(format!(
            "set checker missed a lost acknowledged create: {lossy:?}"
        ));
    }
    out.push("unique creates: acknowledged create missing on one server: rejected".into());
    let phantom = sets::check_set(
        &set(&[]),
        &set(&["a"]),
        &BTreeMap::from([(1, set(&["a", "x"]))]),
    );
    if phantom.unexpected.len() != 1 {
        return Err(format!("set checker missed a phantom create: {phantom:?}"));
    }
    out.push("unique creates: never-attempted name present: rejected".into());
    let d = BTreeMap::from([(1, "x".to_string()), (2, "y".to_string())]);
    if sets::diverged(&d) != vec![2] {
        return Err("replica comparison missed a divergent replica".into());
    }
    out.push("replicas: divergent final state: rejected".into());
    let expect = BTreeMap::from([
        ("/eph/a".to_string(), sets::EphExpect::Alive),
        ("/eph/b".to_string(), sets::EphExpect::Gone),
    ]);
    if sets::check_ephemerals(&expect, &BTreeMap::from([(1, set(&["b"]))])).len() != 2 {
        return Err("ephemeral checker missed a violation".into());
    }
    out.push("ephemerals: live session's node missing, dead session's node kept: rejected".into());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_test_passes() {
        let lines = super::self_test().expect("self-test");
        assert!(lines.len() >= 10, "{lines:?}");
    }
}
