//! A model path in a machine-readable file (`zab-model check --path-out FILE`), read back by
//! `zab-sim replay`: the configuration, the violated invariant and the path as the Explorer
//! encodes it (an index into the initial states, then one index per step into the list
//! `actions()` returns; `actions()` is deterministic, so the indices name the steps).
//!
//! ```text
//! # zab-model path (zab-sim replay FILE drives the server along it)
//! config servers=3 txns=2 crashes=2 partitions=0 timeouts=0 snapshots=0 storage_faults=0 epochs=3 workload=Sessions init=Epoch1 bug=zk4646
//! violates LeaderLogCompleteness
//! steps 0/16/12/1/16
//! step 1 NodeCrash(s3)
//! ```
//!
//! The `step` lines are for people; the reader rebuilds every action from `config` and
//! `steps` through the model itself, so a file never disagrees with the model it names (a
//! stale file fails to decode, with the step that no longer exists). An Explorer link
//! (`http://127.0.0.1:3000/#/steps/0/16/12/...`) gives the same `steps`.

use crate::action::Action;
use crate::checker::workload_model;
use crate::config::{Bug, Config, InitKind, WorkloadKind};
use crate::state::ModelState;
use std::fmt::Write as _;
use zab_spec::ZnodeTxn;

/// A path of the workload model, as written to and read from a path file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathFile {
    /// The model's bounds and switch.
    pub config: Config,
    /// The invariant the path breaks, if it is a counterexample.
    pub violates: Option<String>,
    /// The Explorer encoding: initial-state index, then one action index per step.
    pub steps: Vec<usize>,
}

/// Why a path file or link could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// A line or field the format does not have, or a value out of range.
    Syntax(String),
    /// Step `step` (1-based) names an action index the model does not list there, or an
    /// action that is not enabled.
    NoSuchStep {
        /// The step.
        step: usize,
        /// The index.
        index: usize,
    },
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::Syntax(s) => write!(f, "{s}"),
            PathError::NoSuchStep { step, index } => write!(
                f,
                "step {step}: the model has no enabled action {index} there (a path of another \
                 configuration or model version?)"
            ),
        }
    }
}

/// Parses the configuration as `Config`'s `Display` writes it (`servers=3 txns=2 ...`;
/// `unbounded` for no bound). Missing keys keep `Config::default()`'s value.
pub fn parse_config(text: &str) -> Result<Config, PathError> {
    let bad = |m: String| PathError::Syntax(m);
    let mut cfg = Config::default();
    for field in text.split_whitespace() {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| bad(format!("config field {field:?} is not key=value")))?;
        let bound = |v: &str| -> Result<Option<u8>, PathError> {
            if v == "unbounded" {
                return Ok(None);
            }
            v.parse()
                .map(Some)
                .map_err(|_| bad(format!("{key}={v}: not a number")))
        };
        match key {
            "servers" => {
                cfg.servers =
                    bound(value)?.ok_or_else(|| bad("servers must be a number".into()))?;
            }
            "txns" => cfg.txns = bound(value)?,
            "crashes" => cfg.crashes = bound(value)?,
            "partitions" => cfg.partitions = bound(value)?,
            "timeouts" => cfg.timeouts = bound(value)?,
            "snapshots" => cfg.snapshots = bound(value)?,
            "storage_faults" => cfg.storage_faults = bound(value)?,
            "observers" => {
                cfg.observers = value
                    .parse()
                    .map_err(|_| bad(format!("observers={value}: not a number")))?;
            }
            "epochs" => {
                cfg.epochs = if value == "unbounded" {
                    None
                } else {
                    Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("epochs={value}: not a number")))?,
                    )
                };
            }
            "workload" => {
                cfg.workload = match value {
                    "Sessions" | "sessions" => WorkloadKind::Sessions,
                    "Sequential" | "sequential" => WorkloadKind::Sequential,
                    _ => return Err(bad(format!("unknown workload {value}"))),
                };
            }
            "init" => {
                cfg.init = match value {
                    "Fresh" | "fresh" => InitKind::Fresh,
                    "Epoch1" | "epoch1" => InitKind::Epoch1,
                    _ => return Err(bad(format!("unknown init {value}"))),
                };
            }
            "bug" => {
                cfg.bug = if value == "none" {
                    None
                } else {
                    Some(
                        Bug::ALL
                            .into_iter()
                            .find(|b| b.cli_name() == value)
                            .ok_or_else(|| bad(format!("unknown bug switch {value}")))?,
                    )
                };
            }
            _ => return Err(bad(format!("unknown config key {key}"))),
        }
    }
    cfg.validate().map_err(bad)?;
    Ok(cfg)
}

/// Parses the Explorer encoding: `0/16/12/...`, or a whole link ending in `#/steps/0/16/...`.
pub fn parse_steps(text: &str) -> Result<Vec<usize>, PathError> {
    let t = text.trim();
    let t = t.rsplit_once("#/steps/").map_or(t, |(_, s)| s);
    let t = t.trim_matches('/');
    if t.is_empty() {
        return Err(PathError::Syntax("no steps".into()));
    }
    t.split('/')
        .map(|k| {
            k.parse()
                .map_err(|_| PathError::Syntax(format!("step index {k:?} is not a number")))
        })
        .collect()
}

impl PathFile {
    /// The file's text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out =
            String::from("# zab-model path (zab-sim replay FILE drives the server along it)\n");
        let _ = writeln!(out, "config {}", self.config);
        if let Some(v) = &self.violates {
            let _ = writeln!(out, "violates {v}");
        }
        let enc: Vec<String> = self.steps.iter().map(ToString::to_string).collect();
        let _ = writeln!(out, "steps {}", enc.join("/"));
        if let Ok((_, actions)) = self.decode() {
            for (k, a) in actions.iter().enumerate() {
                let _ = writeln!(out, "step {} {a}", k + 1);
            }
        }
        out
    }

    /// Reads a file's text (`step` lines and `#` comments are skipped).
    pub fn parse(text: &str) -> Result<PathFile, PathError> {
        let mut config = None;
        let mut violates = None;
        let mut steps = None;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
            match key {
                "config" => config = Some(parse_config(rest)?),
                "violates" => violates = Some(rest.trim().to_string()),
                "steps" => steps = Some(parse_steps(rest)?),
                "step" => {}
                _ => return Err(PathError::Syntax(format!("unknown line {line:?}"))),
            }
        }
        Ok(PathFile {
            config: config.ok_or_else(|| PathError::Syntax("no config line".into()))?,
            violates,
            steps: steps.ok_or_else(|| PathError::Syntax("no steps line".into()))?,
        })
    }

    /// Rebuilds the path through the model: its states (one more than the actions) and its
    /// actions.
    #[allow(clippy::type_complexity)]
    pub fn decode(&self) -> Result<(Vec<ModelState<ZnodeTxn>>, Vec<Action<ZnodeTxn>>), PathError> {
        let model = workload_model(&self.config);
        let Some((&init, rest)) = self.steps.split_first() else {
            return Err(PathError::Syntax("no steps".into()));
        };
        if init != 0 {
            return Err(PathError::NoSuchStep {
                step: 0,
                index: init,
            });
        }
        let mut states = vec![model.initial_state()];
        let mut actions = Vec::with_capacity(rest.len());
        for (k, &index) in rest.iter().enumerate() {
            let last = states.last().unwrap_or_else(|| unreachable!());
            let mut listed = Vec::new();
            stateright::Model::actions(&model, last, &mut listed);
            let step = PathError::NoSuchStep { step: k + 1, index };
            let a = listed.get(index).cloned().ok_or(step.clone())?;
            let next = model.step(last, &a).ok_or(step)?;
            states.push(next);
            actions.push(a);
        }
        Ok((states, actions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_through_its_display() {
        let cfg = Config {
            init: InitKind::Epoch1,
            txns: Some(2),
            crashes: Some(2),
            epochs: Some(3),
            bug: Some(Bug::Zk4646),
            ..Config::default()
        };
        assert_eq!(parse_config(&cfg.to_string()), Ok(cfg));
        assert!(matches!(
            parse_config("servers=3 bug=zk9999"),
            Err(PathError::Syntax(_))
        ));
    }

    #[test]
    fn steps_from_a_link_or_a_bare_encoding() {
        let link = "http://127.0.0.1:3000/#/steps/0/16/12/1";
        assert_eq!(parse_steps(link), Ok(vec![0, 16, 12, 1]));
        assert_eq!(parse_steps("0/3"), Ok(vec![0, 3]));
        assert!(parse_steps("0/x").is_err());
    }

    #[test]
    fn a_file_round_trips_and_a_bad_index_is_named() {
        let cfg = Config::default();
        let model = workload_model(&cfg);
        let start = model.initial_state();
        let mut listed = Vec::new();
        stateright::Model::actions(&model, &start, &mut listed);
        let first = (0..listed.len())
            .find(|&k| model.step(&start, &listed[k]).is_some())
            .expect("an enabled first step");
        let f = PathFile {
            config: cfg.clone(),
            violates: None,
            steps: vec![0, first],
        };
        let (states, actions) = f.decode().expect("the first listed action of the start");
        assert_eq!((states.len(), actions.len()), (2, 1));
        assert_eq!(PathFile::parse(&f.to_text()), Ok(f));
        let bad = PathFile {
            config: cfg,
            violates: None,
            steps: vec![0, 10_000],
        };
        assert_eq!(
            bad.decode().map(|_| ()),
            Err(PathError::NoSuchStep {
                step: 1,
                index: 10_000
            })
        );
    }
}
