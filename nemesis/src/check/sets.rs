//! Durability checks on final reads: no acknowledged unique create lost (on any server),
//! nothing present that was never attempted, every replica equal after heal; ephemeral nodes
//! kept while their session lives and gone after it ends.

use std::collections::{BTreeMap, BTreeSet};

/// The outcome of the unique-create workload against the final reads of every server.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SetReport {
    /// Creates acknowledged to the client.
    pub acknowledged: usize,
    /// Acknowledged creates missing from some server's final read: `(server, name)`.
    pub lost: Vec<(u64, String)>,
    /// Names present that no client ever tried to create: `(server, name)`.
    pub unexpected: Vec<(u64, String)>,
    /// Indeterminate creates that did take effect.
    pub indeterminate_present: usize,
}

/// `acked`: names whose create was acknowledged; `attempted`: every name sent (acknowledged,
/// failed or indeterminate); `finals`: per server, the children it lists after heal.
#[must_use]
pub fn check_set(
    acked: &BTreeSet<String>,
    attempted: &BTreeSet<String>,
    finals: &BTreeMap<u64, BTreeSet<String>>,
) -> SetReport {
    let mut r = SetReport {
        acknowledged: acked.len(),
        ..SetReport::default()
    };
    for (&server, present) in finals {
        r.lost
            .extend(acked.difference(present).map(|n| (server, n.clone())));
        r.unexpected
            .extend(present.difference(attempted).map(|n| (server, n.clone())));
    }
    if let Some(present) = finals.values().next() {
        r.indeterminate_present = present.difference(acked).count();
    }
    r
}

impl SetReport {
    /// Whether the check passed.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.lost.is_empty() && self.unexpected.is_empty()
    }
}

/// Replica equality: every server's snapshot of the checked state (a sorted text dump) must be
/// the same. Returns the servers whose dump differs from the first one's.
#[must_use]
pub fn diverged(dumps: &BTreeMap<u64, String>) -> Vec<u64> {
    let Some(first) = dumps.values().next() else {
        return Vec::new();
    };
    dumps
        .iter()
        .filter(|(_, d)| *d != first)
        .map(|(&s, _)| s)
        .collect()
}

/// Ephemeral nodes: what each owner expected and what the servers show at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EphExpect {
    /// The owner's session is alive: the node must exist on every server.
    Alive,
    /// The owner ended (closed, expired, killed): the node must be gone from every server.
    Gone,
}

/// Violations: `(path, what)` for every ephemeral node whose presence is wrong on a server.
#[must_use]
pub fn check_ephemerals(
    expect: &BTreeMap<String, EphExpect>,
    finals: &BTreeMap<u64, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, want) in expect {
        let name = path.rsplit('/').next().unwrap_or(path);
        for (server, present) in finals {
            let has = present.contains(name);
            match (want, has) {
                (EphExpect::Alive, false) => out.push(format!(
                    "{path}: its session is alive but server {server} lacks it"
                )),
                (EphExpect::Gone, true) => out.push(format!(
                    "{path}: its session ended but server {server} still has it"
                )),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn lost_acknowledged_create_is_reported() {
        let finals = BTreeMap::from([(1, set(&["a", "b"])), (2, set(&["a"]))]);
        let r = check_set(&set(&["a", "b"]), &set(&["a", "b", "c"]), &finals);
        assert!(!r.ok());
        assert_eq!(r.lost, vec![(2, "b".to_string())]);
    }

    #[test]
    fn phantom_create_is_reported_and_indeterminate_ones_are_fine() {
        let finals = BTreeMap::from([(1, set(&["a", "c", "z"]))]);
        let r = check_set(&set(&["a"]), &set(&["a", "c"]), &finals);
        assert_eq!(r.unexpected, vec![(1, "z".to_string())]);
        let finals = BTreeMap::from([(1, set(&["a", "c"]))]);
        let r = check_set(&set(&["a"]), &set(&["a", "c"]), &finals);
        assert!(r.ok());
        assert_eq!(r.indeterminate_present, 1);
    }

    #[test]
    fn divergent_replica_is_named() {
        let d = BTreeMap::from([(1, "x".into()), (2, "x".into()), (3, "y".into())]);
        assert_eq!(diverged(&d), vec![3]);
    }

    #[test]
    fn ephemeral_violations_both_ways() {
        let expect = BTreeMap::from([
            ("/eph/a".to_string(), EphExpect::Alive),
            ("/eph/b".to_string(), EphExpect::Gone),
        ]);
        let ok = BTreeMap::from([(1, set(&["a"]))]);
        assert!(check_ephemerals(&expect, &ok).is_empty());
        let bad = BTreeMap::from([(1, set(&["b"]))]);
        assert_eq!(check_ephemerals(&expect, &bad).len(), 2);
    }
}
