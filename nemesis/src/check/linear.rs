//! Linearizability of versioned-register histories (create, `sync`+`getData`, `setData` with
//! and without a version): the Wing & Gong search with Lowe's memoization of
//! (linearized set, register state), key by key, indeterminate operations allowed to take
//! effect at any point after their invocation or never.
//!
//! The project's own checker (`zab-refinement::history`) models an unversioned register; the
//! suite needs the znode version (conditional `setData`, the version a write returns), so this
//! is the same search over a richer state.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

/// What a client asked for, on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RegCall {
    /// `create(key, "0")`.
    Create,
    /// `sync(key)` then `getData(key)`.
    Read,
    /// `setData(key, value, -1)`.
    Write(u64),
    /// `setData(key, value, version)`.
    Cas(u64, i32),
}

/// A definite reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum RegRet {
    /// Create succeeded.
    Created,
    /// `NodeExists`.
    Exists,
    /// `NoNode`.
    NoNode,
    /// `BadVersion`.
    BadVersion,
    /// A read: value and data version.
    Value(u64, i32),
    /// A write succeeded; the data version it returned.
    Written(i32),
}

/// One operation on one key; `ret` is `None` when its outcome is unknown.
#[derive(Clone, Debug)]
pub struct RegOp {
    /// The operation id in the run's history file.
    pub id: u64,
    /// The key.
    pub key: String,
    /// What was asked.
    pub call: RegCall,
    /// Invocation time (µs since the run started), taken before the request was sent.
    pub invoked: u64,
    /// Completion time and reply; `None`: indeterminate (timeout, connection loss).
    pub ret: Option<(u64, RegRet)>,
}

impl fmt::Display for RegOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "#{} {:?}({}) @{}us",
            self.id, self.call, self.key, self.invoked
        )?;
        match self.ret {
            Some((t, r)) => write!(f, " -> {r:?} @{t}us"),
            None => write!(f, " -> ?"),
        }
    }
}

/// The register: absent, or (value, data version).
type State = Option<(u64, i32)>;

fn apply(state: State, call: RegCall) -> (State, RegRet) {
    match (call, state) {
        (RegCall::Create, None) => (Some((0, 0)), RegRet::Created),
        (RegCall::Create, Some(_)) => (state, RegRet::Exists),
        (RegCall::Read, Some((v, ver))) => (state, RegRet::Value(v, ver)),
        (RegCall::Write(v), Some((_, ver))) => (Some((v, ver + 1)), RegRet::Written(ver + 1)),
        (RegCall::Cas(v, want), Some((_, ver))) if want == ver => {
            (Some((v, ver + 1)), RegRet::Written(ver + 1))
        }
        (RegCall::Cas(..), Some(_)) => (state, RegRet::BadVersion),
        (RegCall::Read | RegCall::Write(_) | RegCall::Cas(..), None) => (None, RegRet::NoNode),
    }
}

/// The verdict of the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's history is linearizable.
    Linearizable,
    /// A key's history is not; the operations of that key, for the report.
    NotLinearizable { key: String, ops: Vec<String> },
    /// The search exceeded its budget on a key (neither proven nor refuted).
    Unknown { key: String, ops: usize },
}

/// Checks `history` key by key (linearizability is local). Reads whose outcome is unknown
/// have no effect and are dropped. `budget`: search steps allowed per key.
#[must_use]
pub fn check(history: &[RegOp], budget: u64) -> Verdict {
    let mut by_key: BTreeMap<&str, Vec<&RegOp>> = BTreeMap::new();
    for op in history {
        if op.ret.is_none() && op.call == RegCall::Read {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    let mut unknown = None;
    for (key, ops) in by_key {
        match search(&ops, budget) {
            Some(true) => {}
            Some(false) => {
                return Verdict::NotLinearizable {
                    key: key.to_string(),
                    ops: ops.iter().map(ToString::to_string).collect(),
                };
            }
            None => {
                unknown.get_or_insert(Verdict::Unknown {
                    key: key.to_string(),
                    ops: ops.len(),
                });
            }
        }
    }
    unknown.unwrap_or(Verdict::Linearizable)
}

struct Frame {
    bits: Vec<u64>,
    state: State,
    candidates: Vec<usize>,
}

fn is_set(bits: &[u64], k: usize) -> bool {
    bits[k / 64] & (1 << (k % 64)) != 0
}

/// `Some(linearizable)`, or `None` when the budget ran out.
fn search(ops: &[&RegOp], budget: u64) -> Option<bool> {
    let n = ops.len();
    let completed: Vec<usize> = (0..n).filter(|&k| ops[k].ret.is_some()).collect();
    // Candidates to linearize next: not yet linearized, invoked before the earliest return
    // among the completed operations not yet linearized.
    let candidates = |bits: &[u64]| -> Vec<usize> {
        let min_ret = completed
            .iter()
            .filter(|&&k| !is_set(bits, k))
            .filter_map(|&k| ops[k].ret.map(|(t, _)| t))
            .min()
            .unwrap_or(u64::MAX);
        (0..n)
            .filter(|&k| !is_set(bits, k) && ops[k].invoked < min_ret)
            .collect()
    };
    let all_done = |bits: &[u64]| completed.iter().all(|&k| is_set(bits, k));
    let start = vec![0u64; n.div_ceil(64).max(1)];
    if all_done(&start) {
        return Some(true);
    }
    let mut memo: HashSet<(Vec<u64>, State)> = HashSet::new();
    let mut stack = vec![Frame {
        candidates: candidates(&start),
        bits: start,
        state: None,
    }];
    let mut steps = 0u64;
    while let Some(top) = stack.last_mut() {
        let Some(k) = top.candidates.pop() else {
            stack.pop();
            continue;
        };
        steps += 1;
        if steps > budget {
            return None;
        }
        let (next, got) = apply(top.state, ops[k].call);
        if let Some((_, want)) = ops[k].ret {
            if want != got {
                continue;
            }
        }
        let mut bits = top.bits.clone();
        bits[k / 64] |= 1 << (k % 64);
        if all_done(&bits) {
            return Some(true);
        }
        if memo.insert((bits.clone(), next)) {
            stack.push(Frame {
                candidates: candidates(&bits),
                bits,
                state: next,
            });
        }
    }
    Some(false)
}

/// Known histories for the self-test: `(name, history, linearizable?)`.
#[must_use]
pub fn fixtures() -> Vec<(&'static str, Vec<RegOp>, bool)> {
    fn op(id: u64, call: RegCall, inv: u64, ret: Option<(u64, RegRet)>) -> RegOp {
        RegOp {
            id,
            key: "/reg/k0".into(),
            call,
            invoked: inv,
            ret,
        }
    }
    use RegCall::*;
    use RegRet::*;
    let created = op(0, Create, 0, Some((1, Created)));
    vec![
        (
            "sequential write then read of the new value",
            vec![
                created.clone(),
                op(1, Write(7), 2, Some((3, Written(1)))),
                op(2, Read, 4, Some((5, Value(7, 1)))),
            ],
            true,
        ),
        (
            "stale read after an acknowledged write",
            vec![
                created.clone(),
                op(1, Write(7), 2, Some((3, Written(1)))),
                op(2, Read, 4, Some((5, Value(0, 0)))),
            ],
            false,
        ),
        (
            "acknowledged write lost (later reads see the older value)",
            vec![
                created.clone(),
                op(1, Write(1), 2, Some((3, Written(1)))),
                op(2, Write(2), 4, Some((5, Written(2)))),
                op(3, Read, 6, Some((7, Value(1, 1)))),
            ],
            false,
        ),
        (
            "two compare-and-sets on the same version both succeed",
            vec![
                created.clone(),
                op(1, Cas(1, 0), 2, Some((5, Written(1)))),
                op(2, Cas(2, 0), 3, Some((6, Written(1)))),
            ],
            false,
        ),
        (
            "concurrent writes, read sees either order",
            vec![
                created.clone(),
                op(1, Write(1), 2, Some((6, Written(2)))),
                op(2, Write(2), 3, Some((7, Written(1)))),
                op(3, Read, 8, Some((9, Value(1, 2)))),
            ],
            true,
        ),
        (
            "indeterminate write observed later",
            vec![
                created.clone(),
                op(1, Write(9), 2, None),
                op(2, Read, 10, Some((11, Value(9, 1)))),
            ],
            true,
        ),
        (
            "value observed before the write that makes it was invoked",
            vec![
                created.clone(),
                op(1, Read, 2, Some((3, Value(9, 1)))),
                op(2, Write(9), 4, None),
            ],
            false,
        ),
        (
            "read flips back and forth (version goes back)",
            vec![
                created.clone(),
                op(1, Write(1), 2, None),
                op(2, Read, 3, Some((4, Value(1, 1)))),
                op(3, Read, 5, Some((6, Value(0, 0)))),
            ],
            false,
        ),
        (
            "node vanishes after creation",
            vec![created, op(1, Read, 2, Some((3, NoNode)))],
            false,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_judged_right() {
        for (name, h, want) in fixtures() {
            let v = check(&h, 1_000_000);
            assert_eq!(v == Verdict::Linearizable, want, "{name}: {v:?}");
            if !want {
                assert!(
                    matches!(v, Verdict::NotLinearizable { .. }),
                    "{name}: {v:?}"
                );
            }
        }
    }

    #[test]
    fn keys_are_independent() {
        let mut h = fixtures()[0].1.clone();
        let mut bad = fixtures()[1].1.clone();
        for op in &mut bad {
            op.key = "/reg/k1".into();
        }
        h.extend(bad);
        assert!(
            matches!(check(&h, 1_000_000), Verdict::NotLinearizable { key, .. } if key == "/reg/k1")
        );
    }

    #[test]
    fn budget_exhaustion_is_unknown_not_a_pass() {
        // Many concurrent indeterminate writes and a read no order explains.
        let mut h = vec![RegOp {
            id: 0,
            key: "k".into(),
            call: RegCall::Create,
            invoked: 0,
            ret: Some((1, RegRet::Created)),
        }];
        for i in 0..40 {
            h.push(RegOp {
                id: i + 1,
                key: "k".into(),
                call: RegCall::Write(i + 100),
                invoked: 2,
                ret: None,
            });
        }
        h.push(RegOp {
            id: 99,
            key: "k".into(),
            call: RegCall::Read,
            invoked: 3,
            ret: Some((4, RegRet::Value(5, 1))),
        });
        assert!(matches!(check(&h, 1000), Verdict::Unknown { .. }));
    }
}
