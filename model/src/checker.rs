//! Running the model: the Stateright `Model` implementation, the `check` / `simulate` /
//! `explore` entry points behind the CLI, and the report of a counterexample as a numbered
//! list of steps.
//!
//! Two Stateright 0.31.0 checker bugs are worked around here (`ARCHITECTURE.md` explains):
//! BFS overwrites a property's discovery with every later one, so its counterexamples are not
//! the shortest; and `.timeout()` is ignored with one thread. [`Instrument`] latches the first
//! discovery of each property (exact shortest with one thread; with more, a second
//! single-threaded pass bounded by the first path's depth makes it exact), and enforces the
//! deadline itself through `within_boundary`, which works with any number of threads.

use crate::action::Action;
use crate::chart::Chart;
use crate::chart::report::Case;
use crate::config::Config;
use crate::instrument::Instrument;
use crate::invariants::invariants;
use crate::next::ZabModel;
use crate::state::ModelState;
use crate::workload::Workload;
use stateright::{Checker, Chooser, HasDiscoveries, Model, Path, Property};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zab_spec::{Payload, ZnodeTxn};

impl<P: Payload> ZabModel<P> {
    fn invariant_holds(&self, k: usize, s: &ModelState<P>) -> bool {
        let holds = (self.tables.invariants[k].holds)(s);
        match &self.instrument {
            Some(ins) => !ins.first(k, !holds),
            None => holds,
        }
    }

    fn example_found(&self, k: usize, s: &ModelState<P>) -> bool {
        let found = (self.tables.examples[k].holds)(s);
        match &self.instrument {
            Some(ins) => ins.first(self.tables.invariants.len() + k, found),
            None => found,
        }
    }
}

macro_rules! indexed_properties {
    ($table:expr, $ctor:ident, $method:ident, $($k:literal)*) => {{
        let mut props: Vec<Property<ZabModel<P>>> = Vec::new();
        $(
            if $k < $table.len() {
                props.push(Property::<ZabModel<P>>::$ctor(
                    $table[$k].id,
                    |m: &ZabModel<P>, s: &ModelState<P>| m.$method($k, s),
                ));
            }
        )*
        assert!(props.len() == $table.len(), "extend the index list in checker.rs");
        props
    }};
}

impl<P: Payload> Model for ZabModel<P> {
    type State = ModelState<P>;
    type Action = Action<P>;

    fn init_states(&self) -> Vec<ModelState<P>> {
        vec![self.initial_state()]
    }

    fn actions(&self, state: &ModelState<P>, actions: &mut Vec<Action<P>>) {
        self.candidate_actions(state, actions);
    }

    fn next_state(&self, last: &ModelState<P>, action: Action<P>) -> Option<ModelState<P>> {
        self.step(last, &action)
    }

    fn format_action(&self, action: &Action<P>) -> String {
        action.to_string()
    }

    fn format_step(&self, last: &ModelState<P>, action: Action<P>) -> Option<String> {
        self.step(last, &action).map(|s| s.to_string())
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut props = indexed_properties!(
            self.tables.invariants, always, invariant_holds,
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
            32 33 34 35 36 37 38 39
        );
        props.extend(indexed_properties!(
            self.tables.examples, sometimes, example_found,
            0 1 2 3 4 5 6 7 8 9
        ));
        props
    }

    fn within_boundary(&self, _state: &ModelState<P>) -> bool {
        self.instrument.as_ref().is_none_or(|i| i.within_deadline())
    }

    /// The message sequence chart of the path (`crate::chart`): the Explorer shows it above
    /// every state.
    fn as_svg(&self, path: Path<ModelState<P>, Action<P>>) -> Option<String> {
        Some(Chart::of_path(path, &self.tables.invariants).to_svg())
    }
}

/// The model the CLI and the tests check: the scripted ZNode workload as the request source.
#[must_use]
pub fn workload_model(cfg: &Config) -> ZabModel<ZnodeTxn> {
    ZabModel::new(cfg.clone(), Arc::new(Workload(cfg.workload)))
}

/// How to run an exhaustive check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Worker threads.
    pub threads: usize,
    /// Give up after this long (the result is then marked incomplete).
    pub timeout: Option<Duration>,
    /// Stop at the first invariant violation.
    pub stop_at_first_failure: bool,
    /// Stop as soon as one of these properties has a discovery.
    pub stop_at: Option<BTreeSet<&'static str>>,
    /// Only explore paths of at most this many steps.
    pub max_steps: Option<usize>,
    /// Depth-first instead of breadth-first: memory for fingerprints only (deep runs), but
    /// counterexamples are then shortened by a second, breadth-first pass.
    pub depth_first: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            threads: 1,
            timeout: None,
            stop_at_first_failure: true,
            stop_at: None,
            max_steps: None,
            depth_first: false,
        }
    }
}

/// A path of the model from its initial state.
pub type ModelPath<P> = Path<ModelState<P>, Action<P>>;

/// A property's discovery: a counterexample for an invariant, an example for a `sometimes`.
pub struct Discovery<P> {
    /// The property id.
    pub property: &'static str,
    /// The path from the initial state.
    pub path: ModelPath<P>,
    /// The Explorer path (`#/steps/<encoded>`).
    pub encoded: String,
}

/// The outcome of a check.
pub struct CheckReport<P> {
    /// States generated, revisits included.
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// Longest path explored, in states.
    pub depth: usize,
    /// Wall time.
    pub seconds: f64,
    /// Whether the whole bounded space was explored.
    pub complete: bool,
    /// Invariants violated, with their (shortest) counterexamples.
    pub failures: Vec<Discovery<P>>,
    /// `sometimes` properties with an example.
    pub examples_found: Vec<&'static str>,
    /// `sometimes` properties without one.
    pub examples_missing: Vec<&'static str>,
}

impl<P> CheckReport<P> {
    /// Distinct states per second.
    #[must_use]
    pub fn states_per_second(&self) -> f64 {
        self.unique_states as f64 / self.seconds.max(1e-9)
    }

    /// The violated invariant ids.
    #[must_use]
    pub fn failed(&self) -> Vec<&'static str> {
        self.failures.iter().map(|d| d.property).collect()
    }
}

fn is_invariant<P: Payload>(model: &ZabModel<P>, name: &str) -> bool {
    model.tables.invariants.iter().any(|i| i.id == name)
}

fn run_bfs<P: Payload>(
    cfg: &Config,
    model: ZabModel<P>,
    opts: &CheckOptions,
    threads: usize,
) -> (CheckReport<P>, Arc<Instrument>) {
    let instrument = Arc::new(Instrument::new(
        model.tables.invariants.len() + model.tables.examples.len(),
        opts.timeout,
    ));
    let mut model = model;
    model.instrument = Some(Arc::clone(&instrument));
    let finish = match (&opts.stop_at, opts.stop_at_first_failure) {
        (Some(set), _) => HasDiscoveries::AnyOf(set.clone()),
        (None, true) => HasDiscoveries::AnyFailures,
        (None, false) => HasDiscoveries::All,
    };
    let start = Instant::now();
    let mut builder = model.checker().threads(threads).finish_when(finish);
    if let Some(steps) = opts.max_steps {
        // target_max_depth(d) checks states of depth < d; a path of k steps ends at depth k+1.
        builder = builder.target_max_depth(steps + 2);
    }
    let checker = if opts.depth_first {
        Box::new(builder.spawn_dfs().join()) as Box<dyn Checker<ZabModel<P>>>
    } else {
        Box::new(builder.spawn_bfs().join())
    };
    let seconds = start.elapsed().as_secs_f64();
    let m = checker.model();
    let mut discoveries: Vec<(&'static str, ModelPath<P>)> = checker
        .discoveries()
        .into_iter()
        .collect::<HashMap<_, _>>()
        .into_iter()
        .collect();
    discoveries.sort_by_key(|(name, _)| *name);
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for (name, path) in discoveries {
        if is_invariant(m, name) {
            let encoded = path.encode(m);
            failures.push(Discovery {
                property: name,
                path,
                encoded,
            });
        } else {
            found.push(name);
        }
    }
    let missing = m
        .tables
        .examples
        .iter()
        .map(|e| e.id)
        .filter(|id| !found.contains(id))
        .collect();
    let complete = !instrument.expired() && failures.is_empty() && opts.stop_at.is_none()
        || (!instrument.expired() && !opts.stop_at_first_failure && opts.stop_at.is_none());
    let report = CheckReport {
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        depth: checker.max_depth(),
        seconds,
        complete: complete && opts.max_steps.is_none(),
        failures,
        examples_found: found,
        examples_missing: missing,
    };
    let _ = cfg;
    (report, instrument)
}

/// Runs a breadth-first check of `cfg`. Counterexamples are the shortest ones (see the
/// module doc for how).
#[must_use]
pub fn check(cfg: &Config, opts: &CheckOptions) -> CheckReport<ZnodeTxn> {
    check_model(cfg, workload_model(cfg), opts)
}

/// [`check`] for any payload and request source.
#[must_use]
pub fn check_model<P: Payload>(
    cfg: &Config,
    model: ZabModel<P>,
    opts: &CheckOptions,
) -> CheckReport<P> {
    let (mut report, _) = run_bfs(cfg, model.clone(), opts, opts.threads.max(1));
    if (opts.threads > 1 || opts.depth_first) && !report.failures.is_empty() {
        // With several threads the first latched discovery is only nearly the shortest: redo
        // the search single-threaded, bounded by the depth we already know suffices.
        let longest = report
            .failures
            .iter()
            .map(|d| d.path.clone().into_actions().len())
            .max();
        let names: BTreeSet<&'static str> = report.failures.iter().map(|d| d.property).collect();
        let again = CheckOptions {
            threads: 1,
            depth_first: false,
            max_steps: longest,
            stop_at: Some(names),
            ..opts.clone()
        };
        let (exact, _) = run_bfs(cfg, model, &again, 1);
        for d in exact.failures {
            if let Some(slot) = report
                .failures
                .iter_mut()
                .find(|x| x.property == d.property)
            {
                if d.path.clone().into_actions().len() <= slot.path.clone().into_actions().len() {
                    *slot = d;
                }
            }
        }
    }
    report
}

/// The random walks' choice of the next action: only among enabled actions.
///
/// Stateright 0.31.0's simulation records the index of every action it tries, the disabled
/// ones included, and indexes into a list it has shrunk with `swap_remove`; rebuilding a
/// discovery's path from those indices then panics ("Unable to reconstruct a `Path`"). When
/// the first choice is always enabled, each recorded index is the action's index in the full
/// list and the path rebuilds. A random start, then the next enabled action in list order
/// (a small bias towards actions that follow disabled ones); SplitMix64, so that a seed gives
/// the same walks on every platform.
#[derive(Clone)]
struct EnabledChooser<P>(ZabModel<P>);

impl<P: Payload> Chooser<ZabModel<P>> for EnabledChooser<P> {
    type State = u64;

    fn new_state(&self, seed: u64) -> u64 {
        seed
    }

    fn choose_initial_state(&self, _rng: &mut u64, _initial: &[ModelState<P>]) -> usize {
        0
    }

    fn choose_action(&self, rng: &mut u64, state: &ModelState<P>, actions: &[Action<P>]) -> usize {
        *rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let n = actions.len();
        let start = (z % n as u64) as usize;
        (0..n)
            .map(|k| (start + k) % n)
            .find(|&k| self.0.step(state, &actions[k]).is_some())
            .unwrap_or(start)
    }
}

/// The outcome of a simulation run.
pub struct SimulationReport<P> {
    /// States visited, revisits included.
    pub states: usize,
    /// Distinct states.
    pub unique_states: usize,
    /// Longest walk, in states.
    pub depth: usize,
    /// Wall time.
    pub seconds: f64,
    /// Invariants violated on some walk.
    pub failures: Vec<Discovery<P>>,
    /// Examples found.
    pub examples_found: Vec<&'static str>,
}

/// Random walks from the initial state, seeded by `seed`, until `states` states were visited
/// or `timeout` passed.
#[must_use]
pub fn simulate(
    cfg: &Config,
    seed: u64,
    states: usize,
    threads: usize,
    timeout: Option<Duration>,
) -> SimulationReport<ZnodeTxn> {
    let mut model = workload_model(cfg);
    let instrument = Arc::new(Instrument::new(
        model.tables.invariants.len() + model.tables.examples.len(),
        timeout,
    ));
    model.instrument = Some(Arc::clone(&instrument));
    let start = Instant::now();
    let checker = model
        .checker()
        .threads(threads.max(1))
        .finish_when(HasDiscoveries::AnyFailures)
        .target_state_count(states)
        .spawn_simulation(seed, EnabledChooser(workload_model(cfg)))
        .join();
    let seconds = start.elapsed().as_secs_f64();
    let m = checker.model();
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut discoveries: Vec<_> = checker.discoveries().into_iter().collect();
    discoveries.sort_by_key(|(n, _)| *n);
    for (name, path) in discoveries {
        if is_invariant(m, name) {
            let encoded = path.encode(m);
            failures.push(Discovery {
                property: name,
                path,
                encoded,
            });
        } else {
            found.push(name);
        }
    }
    SimulationReport {
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        depth: checker.max_depth(),
        seconds,
        failures,
        examples_found: found,
    }
}

/// Serves the Stateright Explorer for `cfg` on `addr` (never returns).
pub fn explore(cfg: &Config, addr: &str) {
    let _ = workload_model(cfg).checker().serve(addr);
}

fn meaning_of<P: Payload>(cfg: &Config, id: &str) -> &'static str {
    let model: ZabModel<P> = ZabModel::new(cfg.clone(), Arc::new(crate::next::NoRequests));
    model
        .tables
        .invariants
        .iter()
        .chain(model.tables.examples.iter())
        .find(|i| i.id == id)
        .map_or("", |i| i.meaning)
}

/// A counterexample as a section of an HTML report ([`crate::chart::report`]): the numbered
/// steps, the chart, the final state and the Explorer link (`explorer` is `http://host:port`).
#[must_use]
pub fn discovery_case<P: Payload>(cfg: &Config, d: &Discovery<P>, explorer: &str) -> Case {
    let (states, actions) = crate::chart::split_path(d.path.clone());
    let chart = Chart::new(&states, &actions, 1, &invariants());
    Case {
        heading: format!("Counterexample for {}", d.property),
        summary: format!(
            "{}: {} ({} steps).",
            d.property,
            meaning_of::<P>(cfg, d.property),
            actions.len()
        ),
        steps: actions
            .iter()
            .enumerate()
            .map(|(k, a)| (k + 1, a.to_string()))
            .collect(),
        omitted: 0,
        highlight: chart.broken.as_ref().and_then(|b| b.step),
        chart: Some(chart),
        final_state: d.path.last_state().to_string(),
        links: vec![(
            format!("Open this path in the Explorer ({explorer}, started as below)"),
            format!("{explorer}/#/steps/{}", d.encoded),
        )],
        details: Vec::new(),
    }
}

/// A counterexample as a numbered list of steps, then the state that breaks the invariant
/// and the Explorer link that re-opens it.
#[must_use]
pub fn format_discovery<P: Payload>(cfg: &Config, d: &Discovery<P>, explorer: &str) -> String {
    let meaning = meaning_of::<P>(cfg, d.property);
    let mut out = format!("{} ({meaning})\n", d.property);
    let steps = d.path.clone().into_vec();
    for (k, (_, action)) in steps.iter().enumerate() {
        if let Some(a) = action {
            out.push_str(&format!("  {:>3}. {a}\n", k + 1));
        }
    }
    out.push_str(&format!(
        "state after step {}:\n",
        steps.len().saturating_sub(1)
    ));
    out.push_str(&d.path.last_state().to_string());
    out.push_str(&format!("explorer: {explorer}/#/steps/{}\n", d.encoded));
    out
}
