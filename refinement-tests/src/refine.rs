//! Trace refinement: the server's trace records replayed through the model's transition
//! relation, one step at a time, with every model invariant checked on every state.
//!
//! A record names a model action (`spec/PROTOCOL.md`) and carries the projection of the acting
//! server's state after it ([`Summary`]). The refiner maps the record to model actions
//! ([`Action::from_trace`]), requires each to be enabled in the current model state
//! ([`ZabModel::step`] returns `None` otherwise), and compares the acting server's projection
//! in the new model state with the record. It explores nothing: it follows the trace.
//!
//! Two records are not single model actions:
//! - `ConnectionLost(i, j)`: a quorum connection broke without a crash. It is the model's
//!   `PartitionStart(i, j)` then `PartitionRecover(i, j)` when the model still has `i` and `j`
//!   connected, and a stutter when the other end already reported it (the model breaks both
//!   ends at once).
//! - `NodeRestart(i)`: a crashed server recovered; a stutter whose projection must equal the
//!   durable state the model kept at `NodeCrash(i)`, or at a storage fault (`LoseLogSuffix`,
//!   `LoseEpochFiles`, `LoseDataDir`: the projection then shows that the server detected
//!   the damage, `recovering`, `spec/PROTOCOL.md` §7.1).
//!
//! Only the acting server's projection is compared: the others may lag behind the model by the
//! steps the model takes for them atomically (both ends of a broken connection).
//!
//! One kind of record may be *commuted*: a `FollowLeader(i, j)` that the model does not enable
//! yet is held back and retried after each later record, because the server decided to follow
//! `j` on FLE notifications that can run ahead of the connections they announce (a quorum has
//! chosen `j` in FLE, but the followers' `FollowLeader` records, written when their connections
//! come up, are still to come). The held record must become enabled before `i` or `j` takes
//! another step and before the trace ends ([`Refiner::finish`]); steps of other servers are
//! independent of it, so the reordered trace is an equivalent interleaving.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use zab_model::invariants::{Invariant, invariants};
use zab_model::state::{Idx, ModelState, ServerVars, Sid};
use zab_model::{Action, Bug, Config, NoRequests, ZabModel};
use zab_server::core::{Summary, TraceEvent};
use zab_spec::{Payload, ServerId};

/// What the refiner found wrong, at which step.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// 0-based index of the record in the trace.
    pub step: usize,
    /// The record, as text.
    pub record: String,
    /// What went wrong.
    pub reason: String,
    /// The model's projection of the acting server (when the projections differ).
    pub expected: Option<String>,
    /// The record's projection.
    pub actual: Option<String>,
    /// The model state before the record.
    pub model_state: String,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "trace diverges from the model at step {}: {}",
            self.step, self.reason
        )?;
        writeln!(f, "  record:   {}", self.record)?;
        if let (Some(e), Some(a)) = (&self.expected, &self.actual) {
            writeln!(f, "  expected: {e}")?;
            writeln!(f, "  actual:   {a}")?;
        }
        write!(f, "  model state before the step:\n{}", self.model_state)
    }
}

/// The model's projection of server `i`, in the server's vocabulary.
#[must_use]
/// A server that holds no durable state at all (epochs 0, nothing logged) and reports
/// `recovering` where the model's server does not: it started empty in a multi-server
/// ensemble and does not know yet whether its data directory was wiped (`spec/PROTOCOL.md`
/// §7.1.1), so it behaves as recovering until every other member has said it is empty too.
/// The model's fresh server is not recovering; the server's behaviour is a restriction of
/// the model's (it counts for less), so the two agree on everything else.
fn unsure_while_empty(expected: &Summary, actual: &Summary) -> bool {
    !expected.recovering
        && actual.recovering
        && actual.accepted_epoch.0 == 0
        && actual.current_epoch.0 == 0
        && actual.log.is_empty()
        && Summary {
            recovering: false,
            ..actual.clone()
        } == *expected
}

pub fn project<P>(srv: &ServerVars<P>) -> Summary {
    let snap = srv.last_snapshot as usize;
    Summary {
        state: srv.state,
        zab_state: srv.zab_state,
        accepted_epoch: srv.accepted_epoch,
        current_epoch: srv.current_epoch,
        snapshot: srv.zxid_at(snap),
        log: srv.history[snap..].iter().map(|t| t.zxid).collect(),
        persisted: srv.zxid_at(srv.persisted as usize),
        committed: srv.zxid_at(srv.last_committed as usize),
        recovering: srv.recovering,
    }
}

/// Writes a projection on one line.
#[must_use]
pub fn show(s: &Summary) -> String {
    let log: Vec<String> = if s.log.len() > 6 {
        let n = s.log.len();
        vec![
            s.log[0].to_string(),
            s.log[1].to_string(),
            format!("...{} more...", n - 4),
            s.log[n - 2].to_string(),
            s.log[n - 1].to_string(),
        ]
    } else {
        s.log.iter().map(ToString::to_string).collect()
    };
    format!(
        "{:?}/{:?} acceptedEpoch={} currentEpoch={} snapshot={} log=[{}] persisted={} \
         committed={}{}",
        s.state,
        s.zab_state,
        s.accepted_epoch.0,
        s.current_epoch.0,
        s.snapshot,
        log.join(","),
        s.persisted,
        s.committed,
        if s.recovering { " recovering" } else { "" }
    )
}

fn show_record<P: fmt::Display>(ev: &TraceEvent<P>) -> String {
    let j = ev.j.map_or(String::new(), |j| format!(", s{}", j.0));
    let payload = ev
        .payload
        .as_ref()
        .map_or(String::new(), |p| format!(", {p}"));
    format!(
        "{}(s{}{j}{payload}) -> {}",
        ev.action,
        ev.i.0,
        show(&ev.summary)
    )
}

/// How many model steps a [`Refiner`] keeps for the chart of a failure.
pub const WINDOW: usize = 40;

/// The last model steps of a refined trace: what `zab-sim --report` draws.
#[derive(Clone, Debug)]
pub struct ModelWindow<P> {
    /// The number of the first action (1 = the trace's first model step).
    pub first_step: usize,
    /// The states, one more than the actions.
    pub states: Vec<ModelState<P>>,
    /// The model actions.
    pub actions: Vec<Action<P>>,
    /// For each action, the 0-based index of the trace record it came from.
    pub records: Vec<usize>,
}

/// Replays trace records through the model.
pub struct Refiner<P: Payload> {
    model: ZabModel<P>,
    state: ModelState<P>,
    ids: Vec<ServerId>,
    invariants: Vec<Invariant<P>>,
    steps: usize,
    /// A `FollowLeader` record held back (see the module doc), with its step and the reason
    /// it was not enabled.
    held: Option<(usize, TraceEvent<P>, Box<Divergence>)>,
    /// How many records mapped to each model action (stutters under `"stutter"`).
    pub counts: BTreeMap<&'static str, usize>,
    /// How many `FollowLeader` records were commuted past later records.
    pub commuted: usize,
    /// The last [`WINDOW`] model steps: the state before, the action, the record index.
    recent: VecDeque<(ModelState<P>, Action<P>, usize)>,
    /// Model steps taken so far.
    model_steps: usize,
    /// The state after a step that broke an invariant (its steps are in `recent`).
    violating: Option<ModelState<P>>,
}

impl<P: Payload> Refiner<P> {
    /// A refiner for an ensemble of `servers` (model server `k` is `servers[k]`), all starting
    /// fresh, with the model's `bug` switch (the server's twin switch must be on too).
    #[must_use]
    pub fn new(servers: &[ServerId], bug: Option<Bug>) -> Refiner<P> {
        let n = u8::try_from(servers.len()).expect("at most 255 servers");
        let mut cfg = Config::unbounded(n);
        cfg.bug = bug;
        let model = ZabModel::new(cfg, std::sync::Arc::new(NoRequests));
        let state = model.initial_state();
        Refiner {
            model,
            state,
            ids: servers.to_vec(),
            invariants: invariants(),
            steps: 0,
            held: None,
            counts: BTreeMap::new(),
            commuted: 0,
            recent: VecDeque::new(),
            model_steps: 0,
            violating: None,
        }
    }

    /// The last model steps (at most [`WINDOW`]), ending in the current state, or in the state
    /// that broke an invariant.
    #[must_use]
    pub fn window(&self) -> ModelWindow<P> {
        let end = self.violating.as_ref().unwrap_or(&self.state).clone();
        let mut states: Vec<ModelState<P>> = self.recent.iter().map(|r| r.0.clone()).collect();
        states.push(end);
        ModelWindow {
            first_step: self.model_steps - self.recent.len() + 1,
            states,
            actions: self.recent.iter().map(|r| r.1.clone()).collect(),
            records: self.recent.iter().map(|r| r.2).collect(),
        }
    }

    fn remember(&mut self, steps: Vec<(ModelState<P>, Action<P>)>, record: usize) {
        for (s, a) in steps {
            self.recent.push_back((s, a, record));
            self.model_steps += 1;
            if self.recent.len() > WINDOW {
                self.recent.pop_front();
            }
        }
    }

    /// The model state reached so far.
    #[must_use]
    pub fn state(&self) -> &ModelState<P> {
        &self.state
    }

    /// Records replayed so far.
    #[must_use]
    pub fn steps(&self) -> usize {
        self.steps
    }

    fn sid(&self, id: ServerId) -> Option<Sid> {
        self.ids.iter().position(|s| *s == id).map(|k| k as Sid)
    }

    /// Replays one record.
    pub fn step(&mut self, ev: &TraceEvent<P>) -> Result<(), Box<Divergence>> {
        self.step_with(ev, true)
    }

    /// Replays a record without comparing the acting server's projection: for `NodeCrash`,
    /// whose server has no state until `NodeRestart` compares it.
    pub fn step_unchecked(&mut self, ev: &TraceEvent<P>) -> Result<(), Box<Divergence>> {
        self.step_with(ev, false)
    }

    /// The end of the trace: a held-back `FollowLeader` that never became enabled diverges.
    pub fn finish(&mut self) -> Result<(), Box<Divergence>> {
        match self.held.take() {
            Some((_, _, d)) => Err(d),
            None => Ok(()),
        }
    }

    fn step_with(&mut self, ev: &TraceEvent<P>, compare: bool) -> Result<(), Box<Divergence>> {
        let step = self.steps;
        self.steps += 1;
        if let Some((at, held, why)) = self.held.take() {
            let touches = |s: ServerId| s == held.i || Some(s) == held.j;
            let dependent = touches(ev.i) || ev.j.is_some_and(touches);
            if dependent {
                // The held record must go first; if it still cannot, it is the divergence.
                if self.replay_record(&held, true, at).is_err() {
                    let mut why = why;
                    why.reason = format!(
                        "{} (held back until step {step}, {}, which depends on it)",
                        why.reason,
                        show_record(ev)
                    );
                    return Err(why);
                }
                self.commuted += 1;
            } else {
                self.held = Some((at, held, why));
            }
        }
        let result = self.replay_record(ev, compare, step);
        match result {
            Err(d)
                if ev.action == "FollowLeader"
                    && self.held.is_none()
                    && d.reason.ends_with("is not enabled in the model") =>
            {
                self.held = Some((step, ev.clone(), d));
                Ok(())
            }
            Err(d) => Err(d),
            Ok(()) => {
                if let Some((at, held, why)) = self.held.take() {
                    if self.replay_record(&held, true, at).is_ok() {
                        self.commuted += 1;
                    } else {
                        self.held = Some((at, held, why));
                    }
                }
                Ok(())
            }
        }
    }

    fn replay_record(
        &mut self,
        ev: &TraceEvent<P>,
        compare: bool,
        step: usize,
    ) -> Result<(), Box<Divergence>> {
        let fail = |this: &Self, reason: String, expected: Option<String>| {
            Box::new(Divergence {
                step,
                record: show_record(ev),
                reason,
                expected,
                actual: None,
                model_state: this.state.to_string(),
            })
        };
        let Some(i) = self.sid(ev.i) else {
            return Err(fail(self, format!("unknown server {}", ev.i.0), None));
        };
        let j = match ev.j {
            Some(j) => match self.sid(j) {
                Some(j) => Some(j),
                None => return Err(fail(self, format!("unknown server {}", j.0), None)),
            },
            None => None,
        };
        let actions: Vec<Action<P>> = match ev.action {
            "ConnectionLost" => {
                let Some(j) = j else {
                    return Err(fail(self, "ConnectionLost without a peer".into(), None));
                };
                if self.state.connected(i, j) {
                    let (a, b) = (i.min(j), i.max(j));
                    vec![
                        Action::PartitionStart { i: a, j: b },
                        Action::PartitionRecover { i: a, j: b },
                    ]
                } else {
                    Vec::new()
                }
            }
            "NodeRestart" => Vec::new(),
            // The record's `persisted` is the last zxid the damaged log keeps (the simulation
            // writes it so: the server itself has no state until `NodeRestart`).
            "LoseLogSuffix" => match self.state.srv(i).index_of(ev.summary.persisted) {
                Some(k) => vec![Action::LoseLogSuffix { i, k: k as Idx }],
                None => {
                    return Err(fail(
                        self,
                        format!(
                            "the kept log end {} is not in the model's history",
                            ev.summary.persisted
                        ),
                        None,
                    ));
                }
            },
            "TakeSnapshot" => match self.state.srv(i).index_of(ev.summary.snapshot) {
                Some(k) => vec![Action::TakeSnapshot { i, k: k as Idx }],
                None => {
                    return Err(fail(
                        self,
                        format!(
                            "the snapshot point {} is not in the model's history",
                            ev.summary.snapshot
                        ),
                        None,
                    ));
                }
            },
            name => match Action::from_trace(name, i, j, ev.payload.clone()) {
                Some(a) => vec![a],
                None => return Err(fail(self, format!("{name} is not a model action"), None)),
            },
        };
        let mut next = self.state.clone();
        let mut steps = Vec::with_capacity(actions.len());
        for a in &actions {
            match self.model.step(&next, a) {
                Some(t) => steps.push((std::mem::replace(&mut next, t), a.clone())),
                None => {
                    return Err(fail(self, format!("{a} is not enabled in the model"), None));
                }
            }
        }
        let key = actions.first().map_or("stutter", Action::tla_name);
        *self.counts.entry(key).or_default() += 1;
        let expected = project(next.srv(i));
        if compare && expected != ev.summary && !unsure_while_empty(&expected, &ev.summary) {
            let mut d = fail(
                self,
                format!("s{}'s state differs from the model's", ev.i.0),
                Some(show(&expected)),
            );
            d.actual = Some(show(&ev.summary));
            return Err(d);
        }
        if let Some(inv) = self.invariants.iter().find(|inv| !(inv.holds)(&next)) {
            let mut d = fail(
                self,
                format!("invariant {} violated: {}", inv.id, inv.meaning),
                None,
            );
            d.model_state = next.to_string();
            self.remember(steps, step);
            self.violating = Some(next);
            return Err(d);
        }
        self.remember(steps, step);
        self.state = next;
        Ok(())
    }

    /// Replays a whole trace; stops at the first divergence.
    pub fn replay<'a>(
        &mut self,
        trace: impl IntoIterator<Item = &'a TraceEvent<P>>,
    ) -> Result<(), Box<Divergence>>
    where
        P: 'a,
    {
        for ev in trace {
            self.step(ev)?;
        }
        self.finish()
    }
}
