//! The incremental invariant checker ([`Monitor`]) gives the same verdict as the whole-state
//! definitions ([`invariants`]) on every state of random walks of the model, with every bug
//! switch (so that violating states occur), faults, snapshots and storage faults, checking
//! every state or skipping some (the change marks then span several steps), and after resets.

use std::sync::Arc;
use zab_model::invariants::{Monitor, invariants};
use zab_model::state::ModelState;
use zab_model::workload::Workload;
use zab_model::{Action, Bug, Config, RequestSource, WorkloadKind, ZabModel};
use zab_spec::{SessionId, Txn, ZnodeTxn};

/// The sessions script, then an endless mix of creates, setData, sessions and deletes, so
/// that walks grow long histories.
struct Endless;

impl RequestSource<ZnodeTxn> for Endless {
    fn request(&self, k: usize, history: &[Txn<ZnodeTxn>]) -> Option<ZnodeTxn> {
        if let Some(p) = Workload(WorkloadKind::Sessions).request(k, history) {
            return Some(p);
        }
        let m = k % 5;
        let path: Arc<str> = format!("/n{}", k / 5).into();
        Some(match m {
            0 => ZnodeTxn::Create {
                path,
                ephemeral_owner: None,
                sequential: false,
            },
            1 => ZnodeTxn::SetData { path, version: 1 },
            2 => ZnodeTxn::CreateSession {
                session: SessionId(k as i64),
            },
            3 => ZnodeTxn::Create {
                path: format!("/e{k}").into(),
                ephemeral_owner: Some(SessionId(k as i64 - 1)),
                sequential: false,
            },
            _ => ZnodeTxn::Delete { path },
        })
    }
}

/// xorshift64*: a small deterministic generator (no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn is_fault(a: &Action<ZnodeTxn>) -> bool {
    matches!(
        a,
        Action::NodeCrash { .. }
            | Action::LoseEpochFiles { .. }
            | Action::LoseLogSuffix { .. }
            | Action::LoseDataDir { .. }
            | Action::PartitionStart { .. }
            | Action::LeaderTimeout { .. }
    )
}

fn whole(s: &ModelState<ZnodeTxn>) -> u64 {
    invariants::<ZnodeTxn>()
        .iter()
        .enumerate()
        .filter(|(_, inv)| !(inv.holds)(s))
        .fold(0, |m, (k, _)| m | 1 << k)
}

/// One walk; returns how many states were compared and how many violated something.
fn walk(bug: Option<Bug>, servers: u8, seed: u64, steps: usize) -> (usize, usize) {
    let mut cfg = Config::unbounded(servers);
    cfg.bug = bug;
    let model = ZabModel::new(cfg, Arc::new(Endless));
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut s = model.initial_state();
    let mut mon = Monitor::new();
    let (mut compared, mut violating) = (0, 0);
    let mut candidates = Vec::new();
    for step in 0..steps {
        candidates.clear();
        model.candidate_actions(&s, &mut candidates);
        let enabled: Vec<_> = candidates
            .drain(..)
            .filter_map(|a| model.step(&s, &a).map(|t| (a, t)))
            .collect();
        if enabled.is_empty() {
            break;
        }
        let (calm, faults): (Vec<_>, Vec<_>) = enabled.into_iter().partition(|(a, _)| !is_fault(a));
        let pool = if faults.is_empty() || (!calm.is_empty() && rng.below(100) < 93) {
            calm
        } else {
            faults
        };
        let k = rng.below(pool.len());
        let Some((action, t)) = pool.into_iter().nth(k) else {
            break;
        };
        s = t;
        if rng.below(100) < 3 {
            mon.invalidate();
        }
        if rng.below(100) < 20 {
            // Not checked: the next check sees the changes of both steps.
            continue;
        }
        let (inc, full) = (mon.check(&s), whole(&s));
        if inc != full {
            let names = |m: u64| -> Vec<&'static str> {
                invariants::<ZnodeTxn>()
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| m & (1 << k) != 0)
                    .map(|(_, i)| i.id)
                    .collect()
            };
            panic!(
                "bug {bug:?} seed {seed} step {step} after {action}: incremental {:?}, \
                 whole-state {:?}\n{s}",
                names(inc),
                names(full)
            );
        }
        compared += 1;
        violating += usize::from(full != 0);
        s.acknowledge();
    }
    (compared, violating)
}

#[test]
fn incremental_verdicts_equal_whole_state_verdicts_on_random_walks() {
    let mut bugs: Vec<Option<Bug>> = vec![None];
    bugs.extend(Bug::ALL.iter().copied().map(Some));
    let (mut compared, mut violating) = (0, 0);
    for bug in &bugs {
        for seed in 0..12 {
            let servers = if seed % 4 == 3 { 5 } else { 3 };
            let (c, v) = walk(*bug, servers, seed, 400);
            compared += c;
            violating += v;
        }
    }
    // The walks reach both kinds of state, so both kinds of verdict were compared.
    assert!(compared > 10_000, "only {compared} states compared");
    assert!(
        violating > 100,
        "only {violating} violating states compared"
    );
    assert!(
        compared - violating > 5_000,
        "too few clean states compared"
    );
}
