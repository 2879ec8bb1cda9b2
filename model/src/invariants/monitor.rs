//! [`Monitor`]: the invariants of [`super::invariants`] checked incrementally along one path
//! of the model, for the simulation and the refinement checker, which check every state of a
//! long run. A whole-state check walks every history (several invariants are quadratic in
//! it); the monitor keeps per-server and per-pair facts and updates them from what changed
//! since the last state it checked (the change marks of [`crate::tracked`]), so a step costs
//! what it changed plus O(n²).
//!
//! The facts, each updated from the first position that changed:
//! - per server: its history as interned transaction ids and zxids, the first position of
//!   each id, and how far each prefix property holds (zxids strictly increase; delivered
//!   epochs never decrease; delivered transactions were proposed; a leader's proposals are
//!   delivered in order), and its ZNode tree replayed from its delivered prefix;
//! - per pair of servers: the length of the common prefix of their histories; with the
//!   committed log: the same;
//! - per (leader, follower) pair in BROADCAST: how far `PrimaryIntegrity` holds.
//!
//! Each verdict is then the definition's condition restated over these facts (for example
//! `is_prefix(a, b)` is "their common prefix is as long as `a`"), with the pair conditions
//! shared with the definitions. Where a restatement needs a fact that does not hold (a history
//! whose zxids do not increase), the monitor evaluates the whole-state definition instead.
//! `tests/incremental.rs` checks the verdicts equal the whole-state ones on random walks of
//! the model with every bug switch.

use super::{
    Invariant, all_pairs, broadcast_pairs, invariants, leader_in, same_epoch_broadcast_pairs,
    synced_pairs, well_formed_server,
};
use crate::state::{ModelState, Proposal, Sid};
use crate::znode::{Anomaly, Tree};
use std::collections::HashMap;
use zab_spec::{Epoch, Payload, Txn, ZabState, Zxid};

/// Interned transaction id (equal transactions, payload included, have equal ids).
type Id = u32;

/// The facts kept for one server.
#[derive(Default)]
struct Facts {
    /// The history, interned.
    hist: Vec<Id>,
    /// The history's zxids.
    zx: Vec<Zxid>,
    /// `lastCommitted`.
    lc: usize,
    /// The first position of each id in `hist`.
    pos: HashMap<Id, usize>,
    /// Positions `1..wf` have a zxid above the one before.
    wf: usize,
    /// Delivered positions `1..gpo` have an epoch at least the one before.
    gpo: usize,
    /// Delivered positions `..int` hold proposed transactions.
    int: usize,
    /// Delivered positions `..lpo` satisfy `LocalPrimaryOrder`; `lpo_cnt[g]` counts the
    /// positions before `lpo` that hold a member of proposal group `g`.
    lpo: usize,
    lpo_cnt: Vec<u32>,
    /// The ZNode tree of the delivered prefix `..tree_len`, the anomalies its replay found
    /// (bit `a as u8`), and those of its structure.
    tree: Tree,
    tree_len: usize,
    apply_anomalies: u32,
    structure_anomalies: u32,
    /// Whether the last update removed or changed a delivered transaction.
    lost_delivered: bool,
}

/// Proposals grouped by (leader, epoch), the unit of `LocalPrimaryOrder`.
#[derive(Default)]
struct Groups {
    index: HashMap<(Sid, Epoch), usize>,
    /// Each group's members' zxids, sorted.
    zxids: Vec<Vec<Zxid>>,
    /// The groups each proposed transaction belongs to.
    of: HashMap<Id, Vec<usize>>,
    /// The per-server counts are out of date (a proposal joined a group below its top, or
    /// after it had been delivered): recount from the start.
    stale: bool,
}

/// Checks the model's invariants along a path, one state after another.
///
/// Call [`Monitor::check`] with each state of the path in order, and
/// [`ModelState::acknowledge`] on it afterwards (the next state's change marks are then
/// relative to it). Skipping states is fine as long as the marks are not reset in between.
pub struct Monitor<P> {
    table: Vec<Invariant<P>>,
    intern: HashMap<Txn<P>, Id>,
    proposed: Vec<bool>,
    groups: Groups,
    servers: Vec<Facts>,
    /// `lcp[i * n + j]`: the common prefix length of the histories of `i` and `j`.
    lcp: Vec<usize>,
    /// The committed log, interned, and each server's common prefix length with it.
    cl: Vec<Id>,
    cl_lcp: Vec<usize>,
    /// `PrimaryIntegrity` per (leader, follower): the leader's epoch and how far it holds.
    pi: HashMap<(Sid, Sid), (Epoch, usize)>,
    /// Forget every fact at the next check.
    fresh: bool,
}

impl<P: Payload> Default for Monitor<P> {
    fn default() -> Self {
        Monitor::new()
    }
}

impl<P: Payload> Monitor<P> {
    /// A monitor that has seen nothing yet.
    #[must_use]
    pub fn new() -> Monitor<P> {
        Monitor {
            table: invariants(),
            intern: HashMap::new(),
            proposed: Vec::new(),
            groups: Groups::default(),
            servers: Vec::new(),
            lcp: Vec::new(),
            cl: Vec::new(),
            cl_lcp: Vec::new(),
            pi: HashMap::new(),
            fresh: true,
        }
    }

    /// The invariants, in the order of [`Monitor::check`]'s bits.
    #[must_use]
    pub fn table(&self) -> &[Invariant<P>] {
        &self.table
    }

    /// The next check starts from scratch (for a state that does not follow the last one).
    pub fn invalidate(&mut self) {
        self.fresh = true;
    }

    /// The first invariant `s` violates, in table order.
    pub fn first_violated(&mut self, s: &ModelState<P>) -> Option<&Invariant<P>> {
        let v = self.check(s);
        (v != 0).then(|| &self.table[v.trailing_zeros() as usize])
    }

    fn id(&mut self, t: &Txn<P>) -> Id {
        if let Some(&k) = self.intern.get(t) {
            return k;
        }
        let k = self.intern.len() as Id;
        self.intern.insert(t.clone(), k);
        self.proposed.push(false);
        k
    }

    /// The invariants `s` violates, as a bit set over [`Monitor::table`] (bit `k` set: the
    /// `k`-th invariant fails). `s` must follow the last state checked on the same path.
    pub fn check(&mut self, s: &ModelState<P>) -> u64 {
        let n = s.servers.len();
        let first = self.fresh || self.servers.len() != n;
        if first {
            *self = Monitor {
                table: std::mem::take(&mut self.table),
                ..Monitor::new()
            };
            self.servers = (0..n).map(|_| Facts::default()).collect();
            self.lcp = vec![0; n * n];
            self.cl_lcp = vec![0; n];
            self.fresh = false;
        }
        let changed: Vec<usize> = (0..n).map(|i| self.sync_server(s, i)).collect();
        self.sync_proposals(s, first);
        let cl_changed = self.sync_committed_log(s);
        if self.groups.stale {
            self.recount_groups();
        }
        for (i, &cf) in changed.iter().enumerate() {
            self.scan_server(i);
            self.cl_lcp[i] = self.cl_lcp[i].min(cf).min(cl_changed);
            let f = &self.servers[i];
            let mut k = self.cl_lcp[i];
            while k < self.cl.len().min(f.hist.len()) && self.cl[k] == f.hist[k] {
                k += 1;
            }
            self.cl_lcp[i] = k;
        }
        for (i, j) in all_pairs(n as u8).filter(|(i, j)| i < j) {
            let (i, j) = (usize::from(i), usize::from(j));
            let (a, b) = (&self.servers[i].hist, &self.servers[j].hist);
            let mut k = self.lcp[i * n + j].min(changed[i]).min(changed[j]);
            while k < a.len().min(b.len()) && a[k] == b[k] {
                k += 1;
            }
            self.lcp[i * n + j] = k;
            self.lcp[j * n + i] = k;
        }
        self.sync_primary_integrity(s, &changed);
        self.verdicts(s)
    }

    /// Brings server `i`'s history facts up to date; returns the first history position that
    /// changed.
    fn sync_server(&mut self, s: &ModelState<P>, i: usize) -> usize {
        let srv = &s.servers[i];
        let f = &self.servers[i];
        let cf = srv.history.changed_from().min(f.hist.len());
        let new_lc = srv.last_committed as usize;
        let dw = cf.min(f.lc).min(new_lc);
        let lost = dw < f.lc;
        // Roll back the counts of the positions that may change.
        let f = &mut self.servers[i];
        for k in dw..f.lpo {
            for &g in self.groups.of.get(&f.hist[k]).into_iter().flatten() {
                f.lpo_cnt[g] -= 1;
            }
        }
        f.lpo = f.lpo.min(dw);
        for k in cf..f.hist.len() {
            if f.pos.get(&f.hist[k]) == Some(&k) {
                f.pos.remove(&f.hist[k]);
            }
        }
        f.hist.truncate(cf);
        f.zx.truncate(cf);
        for k in cf..srv.history.len() {
            let t = &srv.history[k];
            let id = self.id(t);
            let f = &mut self.servers[i];
            f.hist.push(id);
            f.zx.push(t.zxid);
            f.pos.entry(id).or_insert(k);
        }
        let f = &mut self.servers[i];
        f.lc = new_lc;
        f.lost_delivered = lost;
        f.wf = f.wf.min(cf);
        f.gpo = f.gpo.min(dw);
        f.int = f.int.min(dw);
        // The tree: extended by the newly delivered transactions, or replayed again.
        let mut tree_changed = false;
        if dw < f.tree_len {
            f.tree = Tree::default();
            f.tree_len = 0;
            f.apply_anomalies = 0;
            tree_changed = true;
        }
        let mut found = Vec::new();
        for t in &srv.history[f.tree_len..new_lc] {
            f.tree.apply(&t.payload.znode_txn(), &mut found);
            tree_changed = true;
        }
        f.tree_len = new_lc;
        for a in found {
            f.apply_anomalies |= 1 << (a as u8);
        }
        if tree_changed {
            let mut out = Vec::new();
            f.tree.structure(&mut out);
            f.structure_anomalies = out.iter().fold(0, |m, a| m | 1 << (*a as u8));
        }
        cf
    }

    /// Adds the proposals made since the last check (all of them after a reset) to the
    /// proposed set and the (leader, epoch) groups.
    fn sync_proposals(&mut self, s: &ModelState<P>, first: bool) {
        if first {
            for p in s.ghost.proposals.iter() {
                self.add_proposal(p);
            }
        } else {
            for p in s.ghost.proposals.added() {
                self.add_proposal(p);
            }
        }
    }

    fn add_proposal(&mut self, p: &Proposal<P>) {
        let id = self.id(&p.txn);
        self.proposed[id as usize] = true;
        let next = self.groups.index.len();
        let g = *self.groups.index.entry((p.source, p.epoch)).or_insert(next);
        if g == self.groups.zxids.len() {
            self.groups.zxids.push(Vec::new());
            for f in &mut self.servers {
                f.lpo_cnt.push(0);
            }
        }
        let members = &mut self.groups.zxids[g];
        if members.last().is_some_and(|z| *z >= p.txn.zxid) {
            // Joins below the top: the ranks of counted positions change.
            self.groups.stale = true;
        }
        let at = members.partition_point(|z| *z < p.txn.zxid);
        members.insert(at, p.txn.zxid);
        let of = self.groups.of.entry(id).or_default();
        if !of.contains(&g) {
            of.push(g);
        }
        // Delivered before it was proposed: the counted positions miss it.
        if self
            .servers
            .iter()
            .any(|f| f.pos.get(&id).is_some_and(|&k| k < f.lpo))
        {
            self.groups.stale = true;
        }
    }

    fn recount_groups(&mut self) {
        let g = self.groups.zxids.len();
        for f in &mut self.servers {
            f.lpo = 0;
            f.lpo_cnt = vec![0; g];
        }
        self.groups.stale = false;
    }

    /// Syncs the committed log; returns the first position that changed.
    fn sync_committed_log(&mut self, s: &ModelState<P>) -> usize {
        let log = &s.ghost.committed_log;
        let cf = log.changed_from().min(self.cl.len());
        self.cl.truncate(cf);
        for k in cf..log.len() {
            let id = self.id(&log[k]);
            self.cl.push(id);
        }
        cf
    }

    /// Extends the prefix facts of server `i` as far as they hold.
    fn scan_server(&mut self, i: usize) {
        let f = &mut self.servers[i];
        while f.wf < f.zx.len() && (f.wf == 0 || f.zx[f.wf - 1] < f.zx[f.wf]) {
            f.wf += 1;
        }
        let lc = f.lc.min(f.hist.len());
        while f.gpo < lc && (f.gpo == 0 || f.zx[f.gpo - 1].epoch <= f.zx[f.gpo].epoch) {
            f.gpo += 1;
        }
        while f.int < lc && self.proposed[f.hist[f.int] as usize] {
            f.int += 1;
        }
        while f.lpo < lc {
            let (id, z) = (f.hist[f.lpo], f.zx[f.lpo]);
            let groups = self.groups.of.get(&id).map_or(&[][..], Vec::as_slice);
            let ok = groups.iter().all(|&g| {
                let below = self.groups.zxids[g].partition_point(|m| *m < z);
                f.lpo_cnt[g] as usize == below
            });
            if !ok {
                break;
            }
            for &g in groups {
                f.lpo_cnt[g] += 1;
            }
            f.lpo += 1;
        }
    }

    fn sync_primary_integrity(&mut self, s: &ModelState<P>, changed: &[usize]) {
        let mut next = HashMap::new();
        for (l, f) in broadcast_pairs(s) {
            let epoch = s.srv(l).current_epoch;
            let (lu, fu) = (usize::from(l), usize::from(f));
            let mut k = match self.pi.get(&(l, f)) {
                Some(&(e, k)) if e == epoch && !self.servers[lu].lost_delivered => {
                    let fw = changed[fu].min(s.srv(f).last_committed as usize);
                    k.min(fw).min(self.servers[fu].lc)
                }
                _ => 0,
            };
            let (lf, ff) = (&self.servers[lu], &self.servers[fu]);
            while k < ff.lc {
                let older = ff.zx[k].epoch < epoch;
                if older && lf.pos.get(&ff.hist[k]).is_none_or(|&p| p >= lf.lc) {
                    break;
                }
                k += 1;
            }
            next.insert((l, f), (epoch, k));
        }
        self.pi = next;
    }

    fn verdicts(&self, s: &ModelState<P>) -> u64 {
        let n = s.servers.len();
        let f = &self.servers;
        let lcp = |i: Sid, j: Sid| self.lcp[usize::from(i) * n + usize::from(j)];
        let fs = |i: Sid| &f[usize::from(i)];
        // Delivered zxids strictly increase: no transaction is delivered twice.
        let delivered_increase = f.iter().all(|x| x.wf >= x.lc);
        let prefix_consistent =
            all_pairs(n as u8).all(|(i, j)| i == j || lcp(i, j) >= fs(i).lc.min(fs(j).lc));
        let cl = self.cl.len();
        let mut out = 0u64;
        for (k, inv) in self.table.iter().enumerate() {
            let holds = match inv.id {
                "PrefixConsistency" => prefix_consistent,
                "Integrity" => f.iter().all(|x| x.int >= x.lc),
                "Agreement" | "TotalOrder" if prefix_consistent && delivered_increase => true,
                "LocalPrimaryOrder" if delivered_increase => f.iter().all(|x| x.lpo >= x.lc),
                "GlobalPrimaryOrder" => f.iter().all(|x| x.gpo >= x.lc),
                "PrimaryIntegrity" => self.pi.iter().all(|(&(_, fl), &(_, k))| k >= fs(fl).lc),
                "CommittedLogMonotonicity" => (0..n as Sid).all(|i| {
                    !leader_in(s, i, &[ZabState::Broadcast])
                        || (cl <= fs(i).lc && self.cl_lcp[usize::from(i)] >= cl)
                }),
                "ProcessConsistency" => {
                    synced_pairs(s).all(|(l, fl)| lcp(fl, l) >= fs(fl).hist.len())
                }
                "LeaderLogCompleteness" => (0..n as Sid).all(|i| {
                    !leader_in(s, i, &[ZabState::Synchronization, ZabState::Broadcast])
                        || self.cl_lcp[usize::from(i)] >= cl
                }),
                "CommitConsistency" => same_epoch_broadcast_pairs(s)
                    .all(|(l, fl)| fs(fl).lc <= fs(l).lc && lcp(fl, l) >= fs(fl).lc),
                "HistoryConsistency" => {
                    same_epoch_broadcast_pairs(s).all(|(l, fl)| lcp(fl, l) >= fs(fl).hist.len())
                }
                "WellFormed" => s
                    .servers
                    .iter()
                    .zip(f)
                    .all(|(v, x)| well_formed_server(v, x.wf >= x.zx.len())),
                "ZnodeReplicaAgreement" => self.replicas_agree(s),
                id => match anomaly_of(id) {
                    Some(a) => f.iter().all(|x| {
                        (x.apply_anomalies | x.structure_anomalies) & (1 << (a as u8)) == 0
                    }),
                    // The rest are O(n²) or read a flag: the definition itself.
                    None => (inv.holds)(s),
                },
            };
            if !holds {
                out |= 1 << k;
            }
        }
        out
    }

    /// `ZnodeReplicaAgreement`: equal delivered sequences give equal trees; otherwise the
    /// trees are compared.
    fn replicas_agree(&self, s: &ModelState<P>) -> bool {
        let n = s.servers.len();
        let f = &self.servers;
        let last = |x: &Facts| x.lc.checked_sub(1).map(|k| x.zx[k]);
        (0..n).all(|i| {
            (i + 1..n).all(|j| {
                let (a, b) = (&f[i], &f[j]);
                last(a) != last(b)
                    || (a.lc == b.lc && self.lcp[i * n + j] >= a.lc)
                    || a.tree == b.tree
            })
        })
    }
}

fn anomaly_of(id: &str) -> Option<Anomaly> {
    Some(match id {
        "ZnodeParentExists" => Anomaly::ParentExists,
        "ZnodeEphemeralLeaf" => Anomaly::EphemeralLeaf,
        "ZnodeSequentialMonotonic" => Anomaly::SequentialMonotonic,
        "ZnodeVersionStep" => Anomaly::VersionStep,
        "ZnodeTxnApplies" => Anomaly::TxnApplies,
        "SessionEphemeralCleanup" => Anomaly::EphemeralCleanup,
        "SessionNoEphemeralForClosed" => Anomaly::NoEphemeralForClosed,
        _ => return None,
    })
}
