//! Trace refinement: the server's trace records replayed through the model's transition
//! relation, one step at a time, with every model invariant checked on every state.
//!
//! A record names a model action (a [`ActionKind`], `spec/PROTOCOL.md`) and carries the
//! projection of the acting server's state after it ([`Summary`]). The refiner maps the record
//! to model actions ([`Action::from_trace`]), requires each to be enabled in the current model
//! state ([`ZabModel::step`] returns `None` otherwise), and compares the acting server's
//! projection in the new model state with the record. It explores nothing: it follows the
//! trace, in the order of the records. What went wrong is a [`DivergenceKind`]; callers
//! branch on it, never on the text of the reason.
//!
//! Three records are not single model actions of their own name:
//! - `ConnectionLost(i, j)`: a quorum connection broke without a crash. It is the model's
//!   `PartitionStart(i, j)` then `PartitionRecover(i, j)` when the model still has `i` and `j`
//!   connected, and a stutter when the other end already reported it (the model breaks both
//!   ends at once).
//! - `LeaderProcessOBSERVERINFO(i, j)`: the leader handled an observer's OBSERVERINFO. It is
//!   the model's `LeaderProcessFOLLOWERINFO(i, j)`: the model's observer sends FOLLOWERINFO,
//!   and its leader knows from the configuration that it counts in no quorum (§10.2). The
//!   observer's other steps are recorded under the follower's action names, as the model's
//!   are, except `ObserverProcessINFORM`, which is the model's action of that name.
//! - `NodeRestart(i)`: a crashed server recovered; a stutter whose projection must equal the
//!   durable state the model kept at `NodeCrash(i)`, or at a storage fault (`LoseLogSuffix`,
//!   `LoseEpochFiles`, `LoseDataDir`: the projection then shows that the server detected
//!   the damage, `recovering`, `spec/PROTOCOL.md` §7.1).
//!
//! Only the acting server's projection is compared: the others may lag behind the model by the
//! steps the model takes for them atomically (both ends of a broken connection).
//!
//! No record is reordered. A `FollowLeader(i, j)` that FLE decided on notifications of servers
//! that have not connected to `j` yet, or on the out-of-election path, is a step the model
//! enables as it is (`spec/PROTOCOL.md` §3: any LOOKING server may follow any leader it can
//! reach).

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use zab_model::invariants::Monitor;
use zab_model::state::{Idx, ModelState, ServerVars, Sid};
use zab_model::{Action, Bug, Config, NoRequests, ZabModel};
use zab_server::core::{Summary, TraceEvent};
use zab_spec::{ActionKind, Payload, ServerId, Zxid};

/// What kind of divergence a [`Divergence`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The record names a server that is not a member of the ensemble.
    UnknownServer(ServerId),
    /// The record cannot be one model action: a two-server action without its peer, or
    /// `LeaderProcessRequest` without its payload.
    Malformed(ActionKind),
    /// The zxid the record names (a snapshot point, the end of a damaged log) is not in the
    /// model's history of the acting server.
    NotInHistory(ActionKind, Zxid),
    /// The model does not enable the step the record names.
    NotEnabled(ActionKind),
    /// The acting server's state after the step differs from the model's.
    StateDiffers,
    /// The model state after the step breaks the invariant with this id.
    InvariantViolated(&'static str),
}

/// What the refiner found wrong, at which step.
#[derive(Clone, Debug)]
pub struct Divergence {
    /// 0-based index of the record in the trace.
    pub step: usize,
    /// What went wrong, for callers to branch on.
    pub kind: DivergenceKind,
    /// The record, as text.
    pub record: String,
    /// What went wrong, in words (derived from `kind`, for people).
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

/// The words for a divergence of this kind, where the record alone says enough.
fn reason(kind: &DivergenceKind) -> String {
    match kind {
        DivergenceKind::UnknownServer(id) => format!("unknown server {}", id.0),
        DivergenceKind::Malformed(a) => format!("a {a} record that is not one model action"),
        DivergenceKind::NotInHistory(ActionKind::TakeSnapshot, z) => {
            format!("the snapshot point {z} is not in the model's history")
        }
        DivergenceKind::NotInHistory(_, z) => {
            format!("the kept log end {z} is not in the model's history")
        }
        DivergenceKind::NotEnabled(a) => format!("{a} is not enabled in the model"),
        DivergenceKind::StateDiffers => "the state differs from the model's".into(),
        DivergenceKind::InvariantViolated(id) => format!("invariant {id} violated"),
    }
}

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

/// The model's projection of server `i`, in the server's vocabulary.
#[must_use]
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
    /// The model's invariants, checked incrementally on every state reached.
    monitor: Monitor<P>,
    steps: usize,
    /// How many records mapped to each model action (stutters under `"stutter"`).
    pub counts: BTreeMap<&'static str, usize>,
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
        Refiner::with_observers(servers, 0, bug)
    }

    /// [`Refiner::new`] for an ensemble whose last `observers` servers are observers
    /// (`spec/PROTOCOL.md` §10.2; the model's `--observers`, at most 1).
    #[must_use]
    pub fn with_observers(servers: &[ServerId], observers: usize, bug: Option<Bug>) -> Refiner<P> {
        let n = u8::try_from(servers.len()).expect("at most 255 servers");
        let mut cfg = Config::unbounded(n);
        cfg.bug = bug;
        cfg.observers = u8::try_from(observers).expect("at most 255 observers");
        let model = ZabModel::new(cfg, std::sync::Arc::new(NoRequests));
        let state = model.initial_state();
        Refiner {
            model,
            state,
            ids: servers.to_vec(),
            monitor: Monitor::new(),
            steps: 0,
            counts: BTreeMap::new(),
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

    fn step_with(&mut self, ev: &TraceEvent<P>, compare: bool) -> Result<(), Box<Divergence>> {
        let step = self.steps;
        self.steps += 1;
        self.replay_record(ev, compare, step)
    }

    fn replay_record(
        &mut self,
        ev: &TraceEvent<P>,
        compare: bool,
        step: usize,
    ) -> Result<(), Box<Divergence>> {
        let fail = |this: &Self, kind: DivergenceKind| {
            Box::new(Divergence {
                step,
                reason: reason(&kind),
                kind,
                record: show_record(ev),
                expected: None,
                actual: None,
                model_state: this.state.to_string(),
            })
        };
        let Some(i) = self.sid(ev.i) else {
            return Err(fail(self, DivergenceKind::UnknownServer(ev.i)));
        };
        let j = match ev.j {
            Some(j) => match self.sid(j) {
                Some(j) => Some(j),
                None => return Err(fail(self, DivergenceKind::UnknownServer(j))),
            },
            None => None,
        };
        let in_history = |this: &Self, zxid: Zxid| {
            this.state
                .srv(i)
                .index_of(zxid)
                .map(|k| k as Idx)
                .ok_or_else(|| fail(this, DivergenceKind::NotInHistory(ev.action, zxid)))
        };
        let actions: Vec<Action<P>> = match ev.action {
            ActionKind::ConnectionLost => {
                let Some(j) = j else {
                    return Err(fail(self, DivergenceKind::Malformed(ev.action)));
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
            ActionKind::NodeRestart => Vec::new(),
            // The model's observer connects with FOLLOWERINFO, which its leader handles as
            // an observer's because the configuration says so (`spec/PROTOCOL.md` §10.2).
            ActionKind::LeaderProcessObserverInfo => {
                let Some(j) = j else {
                    return Err(fail(self, DivergenceKind::Malformed(ev.action)));
                };
                vec![Action::LeaderProcessFollowerInfo { i, j }]
            }
            // The record's `persisted` is the last zxid the damaged log keeps (the simulation
            // writes it so: the server itself has no state until `NodeRestart`).
            ActionKind::LoseLogSuffix => vec![Action::LoseLogSuffix {
                i,
                k: in_history(self, ev.summary.persisted)?,
            }],
            ActionKind::TakeSnapshot => vec![Action::TakeSnapshot {
                i,
                k: in_history(self, ev.summary.snapshot)?,
            }],
            kind => match Action::from_trace(kind, i, j, ev.payload.clone()) {
                Some(a) => vec![a],
                None => return Err(fail(self, DivergenceKind::Malformed(kind))),
            },
        };
        // Each action's successor, from the current state (no copy of it is made).
        let mut after: Vec<(Action<P>, ModelState<P>)> = Vec::with_capacity(actions.len());
        for a in &actions {
            let cur = after.last().map_or(&self.state, |(_, t)| t);
            match self.model.step(cur, a) {
                Some(t) => after.push((a.clone(), t)),
                None => {
                    let mut d = fail(self, DivergenceKind::NotEnabled(a.kind()));
                    d.reason = format!("{a} is not enabled in the model");
                    return Err(d);
                }
            }
        }
        // An OBSERVERINFO is counted under its own name, though the model's step is a
        // FOLLOWERINFO: the counts show that observers connected.
        let key = match ev.action {
            ActionKind::LeaderProcessObserverInfo => ev.action.tla_name(),
            _ => actions.first().map_or("stutter", Action::tla_name),
        };
        *self.counts.entry(key).or_default() += 1;
        let next = after.last().map_or(&self.state, |(_, t)| t);
        let expected = project(next.srv(i));
        if compare && expected != ev.summary && !unsure_while_empty(&expected, &ev.summary) {
            let mut d = fail(self, DivergenceKind::StateDiffers);
            d.reason = format!("s{}'s state differs from the model's", ev.i.0);
            d.expected = Some(show(&expected));
            d.actual = Some(show(&ev.summary));
            return Err(d);
        }
        let violated = self
            .monitor
            .first_violated(next)
            .map(|inv| (inv.id, inv.meaning));
        if let Some((id, meaning)) = violated {
            let mut d = fail(self, DivergenceKind::InvariantViolated(id));
            d.reason = format!("invariant {id} violated: {meaning}");
            d.model_state = next.to_string();
            // The state stays before the step: the monitor's facts must forget the step.
            self.monitor.invalidate();
            let mut before = self.state.clone();
            let mut steps = Vec::with_capacity(after.len());
            for (a, t) in after {
                steps.push((std::mem::replace(&mut before, t), a));
            }
            self.remember(steps, step);
            self.violating = Some(before);
            return Err(d);
        }
        let mut steps = Vec::with_capacity(after.len());
        for (a, t) in after {
            steps.push((std::mem::replace(&mut self.state, t), a));
        }
        // The monitor has seen this state: the next one's change marks are relative to it.
        self.state.acknowledge();
        self.remember(steps, step);
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
        Ok(())
    }
}
