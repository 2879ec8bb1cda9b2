//! Client histories and their checks: writes (and `sync`-then-read) are linearizable, plain
//! reads obey ZooKeeper's guarantees (each read returns exactly the committed state at the
//! zxid its reply carries, and a client never sees that zxid go back).
//!
//! Linearizability is checked black-box, per key (linearizability is local: a history is
//! linearizable iff each key's sub-history is), with the Wing & Gong search and Lowe's
//! memoization of (linearized set, register state). An operation whose reply never came may
//! take effect at any point after its invocation, or never.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use zab_spec::Zxid;
use zab_zk::txn::{Txn, TxnBody};

/// What a client asked for, on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// `create(key, value)`.
    Create(u64),
    /// `setData(key, value, -1)`.
    Set(u64),
    /// `delete(key, -1)`.
    Delete,
    /// `getData(key)`, served by the client's server.
    Get,
    /// `sync(key)` then `getData(key)` on the same server: a linearizable read.
    SyncGet,
}

impl OpKind {
    fn is_read(self) -> bool {
        matches!(self, OpKind::Get | OpKind::SyncGet)
    }
}

/// What came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The write succeeded.
    Ok,
    /// `NodeExists` (create).
    NodeExists,
    /// `NoNode` (set, delete, get).
    NoNode,
    /// The value read.
    Value(u64),
}

/// One operation of one client.
#[derive(Clone, Debug)]
pub struct Op {
    /// The client (a fresh id per client session: one operation in flight per id).
    pub client: usize,
    /// The key (a znode path).
    pub key: String,
    /// What was asked.
    pub kind: OpKind,
    /// When it was invoked (a global event counter: real-time order).
    pub invoked: u64,
    /// When and with what it returned; `None` if it never did (outcome unknown).
    pub returned: Option<(u64, Outcome)>,
    /// The zxid in the reply header.
    pub reply_zxid: Option<Zxid>,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "c{} {:?}({}) @{}",
            self.client, self.kind, self.key, self.invoked
        )?;
        match self.returned {
            Some((t, o)) => write!(f, " -> {o:?} @{t}")?,
            None => write!(f, " -> ?")?,
        }
        if let Some(z) = self.reply_zxid {
            write!(f, " zxid={z}")?;
        }
        Ok(())
    }
}

fn apply(state: Option<u64>, kind: OpKind) -> (Option<u64>, Outcome) {
    match (kind, state) {
        (OpKind::Create(v), None) => (Some(v), Outcome::Ok),
        (OpKind::Create(_), Some(_)) => (state, Outcome::NodeExists),
        (OpKind::Set(v), Some(_)) => (Some(v), Outcome::Ok),
        (OpKind::Set(_) | OpKind::Delete, None) => (None, Outcome::NoNode),
        (OpKind::Delete, Some(_)) => (None, Outcome::Ok),
        (OpKind::Get | OpKind::SyncGet, Some(v)) => (state, Outcome::Value(v)),
        (OpKind::Get | OpKind::SyncGet, None) => (None, Outcome::NoNode),
    }
}

/// Checks that the writes and `SyncGet`s of `history` are linearizable, key by key.
pub fn check_linearizable(history: &[Op]) -> Result<(), String> {
    let mut by_key: BTreeMap<&str, Vec<&Op>> = BTreeMap::new();
    for op in history.iter().filter(|o| o.kind != OpKind::Get) {
        by_key.entry(&op.key).or_default().push(op);
    }
    for (key, ops) in by_key {
        if !linearizable(&ops) {
            let lines: Vec<String> = ops.iter().map(ToString::to_string).collect();
            return Err(format!(
                "the history of {key} is not linearizable:\n  {}",
                lines.join("\n  ")
            ));
        }
    }
    Ok(())
}

fn linearizable(ops: &[&Op]) -> bool {
    let n = ops.len();
    let words = n.div_ceil(64);
    let completed: Vec<usize> = (0..n).filter(|&k| ops[k].returned.is_some()).collect();
    let mut memo: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // Depth-first search over (linearized set, state); explicit stack of candidate lists.
    struct Frame {
        bits: Vec<u64>,
        state: Option<u64>,
        candidates: Vec<usize>,
    }
    let candidates = |bits: &[u64]| -> Vec<usize> {
        let done = |k: usize| bits[k / 64] & (1 << (k % 64)) != 0;
        let min_ret = completed
            .iter()
            .filter(|&&k| !done(k))
            .filter_map(|&k| ops[k].returned.map(|(t, _)| t))
            .min()
            .unwrap_or(u64::MAX);
        (0..n)
            .filter(|&k| !done(k) && ops[k].invoked < min_ret)
            .collect()
    };
    let all_done = |bits: &[u64]| {
        completed
            .iter()
            .all(|&k| bits[k / 64] & (1 << (k % 64)) != 0)
    };
    let start = vec![0u64; words];
    if all_done(&start) {
        return true;
    }
    let mut stack = vec![Frame {
        candidates: candidates(&start),
        bits: start,
        state: None,
    }];
    while let Some(top) = stack.last_mut() {
        let Some(k) = top.candidates.pop() else {
            stack.pop();
            continue;
        };
        let (next_state, outcome) = apply(top.state, ops[k].kind);
        if let Some((_, expected)) = ops[k].returned {
            if expected != outcome {
                continue;
            }
        }
        let mut bits = top.bits.clone();
        bits[k / 64] |= 1 << (k % 64);
        if all_done(&bits) {
            return true;
        }
        if memo.insert((bits.clone(), next_state)) {
            stack.push(Frame {
                candidates: candidates(&bits),
                bits,
                state: next_state,
            });
        }
    }
    false
}

/// The value of every key after each committed transaction that touched it.
#[derive(Debug, Default)]
pub struct KeyHistory {
    /// Per key: `(zxid, value after it)`, in zxid order.
    by_key: BTreeMap<String, Vec<(Zxid, Option<u64>)>>,
}

fn value_of(data: Option<&bytes::Bytes>) -> Option<u64> {
    data.and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|s| s.parse().ok())
}

impl KeyHistory {
    /// Builds the key history of the committed transactions (`keys` only).
    #[must_use]
    pub fn from_committed<'a>(
        committed: impl IntoIterator<Item = &'a zab_spec::Txn<Txn>>,
        keys: &[String],
    ) -> KeyHistory {
        let mut h = KeyHistory::default();
        for k in keys {
            h.by_key.insert(k.clone(), Vec::new());
        }
        for t in committed {
            h.apply(t.zxid, &t.payload.body);
        }
        h
    }

    fn apply(&mut self, zxid: Zxid, body: &TxnBody) {
        match body {
            TxnBody::Create(c) => self.set(&c.path, zxid, value_of(c.data.as_ref()).or(Some(0))),
            TxnBody::SetData { path, data, .. } => {
                self.set(path, zxid, value_of(data.as_ref()).or(Some(0)));
            }
            TxnBody::Delete { path } | TxnBody::DeleteContainer { path } => {
                self.set(path, zxid, None);
            }
            TxnBody::Multi(subs) => {
                for s in subs {
                    self.apply(zxid, s);
                }
            }
            _ => {}
        }
    }

    fn set(&mut self, path: &str, zxid: Zxid, v: Option<u64>) {
        if let Some(h) = self.by_key.get_mut(path) {
            h.push((zxid, v));
        }
    }

    /// The value of `key` in the committed state at `zxid`.
    #[must_use]
    pub fn at(&self, key: &str, zxid: Zxid) -> Option<u64> {
        self.by_key
            .get(key)
            .and_then(|h| h.iter().take_while(|(z, _)| *z <= zxid).last())
            .and_then(|(_, v)| *v)
    }
}

/// ZooKeeper's read guarantees for plain reads: the value is the committed state at the
/// reply's zxid, and each client's reply zxids never go back.
pub fn check_reads(history: &[Op], committed: &KeyHistory) -> Result<(), String> {
    let mut seen: BTreeMap<usize, Zxid> = BTreeMap::new();
    let mut ordered: Vec<&Op> = history.iter().filter(|o| o.returned.is_some()).collect();
    ordered.sort_by_key(|o| o.returned.map(|(t, _)| t));
    for op in ordered {
        let Some(z) = op.reply_zxid else { continue };
        let last = seen.entry(op.client).or_insert(Zxid::ZERO);
        if z < *last {
            return Err(format!(
                "client {} saw zxid {z} after {last}: time went back for it ({op})",
                op.client
            ));
        }
        *last = z;
        if op.kind.is_read() {
            let expected = match committed.at(&op.key, z) {
                Some(v) => Outcome::Value(v),
                None => Outcome::NoNode,
            };
            if op.returned.map(|(_, o)| o) != Some(expected) {
                return Err(format!(
                    "read {op} returned something else than the committed state at its zxid \
                     ({expected:?})"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(client: usize, kind: OpKind, invoked: u64, ret: Option<(u64, Outcome)>) -> Op {
        Op {
            client,
            key: "/k".into(),
            kind,
            invoked,
            returned: ret,
            reply_zxid: None,
        }
    }

    #[test]
    fn sequential_and_concurrent_histories_are_linearizable() {
        let h = vec![
            op(0, OpKind::Create(1), 0, Some((1, Outcome::Ok))),
            op(1, OpKind::Set(2), 2, Some((5, Outcome::Ok))),
            op(2, OpKind::SyncGet, 3, Some((4, Outcome::Value(1)))),
            op(2, OpKind::SyncGet, 6, Some((7, Outcome::Value(2)))),
            op(0, OpKind::Delete, 8, None),
            op(1, OpKind::Create(3), 9, Some((10, Outcome::NodeExists))),
        ];
        check_linearizable(&h).expect("linearizable");
    }

    #[test]
    fn a_stale_linearizable_read_is_caught() {
        let h = vec![
            op(0, OpKind::Create(1), 0, Some((1, Outcome::Ok))),
            op(0, OpKind::Set(2), 2, Some((3, Outcome::Ok))),
            op(1, OpKind::SyncGet, 4, Some((5, Outcome::Value(1)))),
        ];
        assert!(check_linearizable(&h).is_err());
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let h = vec![
            op(0, OpKind::Create(1), 0, Some((1, Outcome::Ok))),
            op(1, OpKind::Create(2), 2, Some((3, Outcome::Ok))),
        ];
        assert!(check_linearizable(&h).is_err());
    }

    #[test]
    fn an_unanswered_write_may_or_may_not_have_happened() {
        let maybe = op(0, OpKind::Create(1), 0, None);
        let took = vec![
            maybe.clone(),
            op(1, OpKind::SyncGet, 5, Some((6, Outcome::Value(1)))),
        ];
        let did_not = vec![maybe, op(1, OpKind::SyncGet, 5, Some((6, Outcome::NoNode)))];
        check_linearizable(&took).expect("took effect");
        check_linearizable(&did_not).expect("never took effect");
    }

    #[test]
    fn reads_must_match_the_state_at_their_zxid_and_never_go_back() {
        let mut committed = KeyHistory::default();
        committed.by_key.insert(
            "/k".into(),
            vec![(Zxid::new(1, 1), Some(1)), (Zxid::new(1, 2), Some(2))],
        );
        let read = |client, t, v: Outcome, z: u32| Op {
            reply_zxid: Some(Zxid::new(1, z)),
            ..op(client, OpKind::Get, t, Some((t + 1, v)))
        };
        check_reads(
            &[
                read(0, 0, Outcome::Value(1), 1),
                read(0, 2, Outcome::Value(2), 2),
            ],
            &committed,
        )
        .expect("fine");
        assert!(check_reads(&[read(0, 0, Outcome::Value(2), 1)], &committed).is_err());
        assert!(
            check_reads(
                &[
                    read(0, 0, Outcome::Value(2), 2),
                    read(0, 2, Outcome::Value(1), 1)
                ],
                &committed
            )
            .is_err()
        );
    }
}
