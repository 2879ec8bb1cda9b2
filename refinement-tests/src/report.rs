//! The HTML report of a failed simulation or refinement (`zab-sim --report FILE.html`): the
//! last model steps of the refined trace drawn as `zab-model`'s message sequence chart
//! ([`zab_model::chart`]), the failure, the command that reproduces it, the last trace records.

use crate::refine::{Divergence, ModelWindow};
use crate::sim::{Failure, SimConfig};
use zab_model::chart::Chart;
use zab_model::chart::report::{Case, Report};
use zab_model::invariants::invariants;
use zab_spec::Payload;

fn window_case<P: Payload>(heading: String, summary: String, w: &ModelWindow<P>) -> Case {
    let chart = Chart::new(&w.states, &w.actions, w.first_step, &invariants());
    Case {
        heading,
        summary,
        steps: w
            .actions
            .iter()
            .zip(&w.records)
            .enumerate()
            .map(|(k, (a, r))| (w.first_step + k, format!("{a}   (trace record {r})")))
            .collect(),
        omitted: w.first_step - 1,
        highlight: chart.broken.as_ref().and_then(|b| b.step),
        chart: Some(chart),
        final_state: w.states.last().map(ToString::to_string).unwrap_or_default(),
        links: Vec::new(),
        details: Vec::new(),
    }
}

/// The report of a failed simulation run.
#[must_use]
pub fn simulation(cfg: &SimConfig, f: &Failure) -> Report {
    let first_line = f.reason.lines().next().unwrap_or_default().to_string();
    let mut case = window_case(
        format!("{} failed at {} simulated ms", f.kind, f.at_ms),
        first_line,
        &f.window,
    );
    case.details.push(("The failure".into(), f.reason.clone()));
    case.details
        .push(("The last trace records".into(), f.recent.join("\n")));
    Report {
        title: format!("zab-sim: seed {} fails the {} check", cfg.seed, f.kind),
        commands: vec![("Reproduce the run:".into(), f.repro.clone())],
        bounds: vec![
            ("seed".into(), cfg.seed.to_string()),
            ("servers".into(), cfg.servers.to_string()),
            ("clients".into(), cfg.clients.to_string()),
            ("safety phase".into(), format!("{} ms", cfg.safety_ms)),
            ("faults".into(), format!("{:?}", cfg.faults)),
            (
                "bug".into(),
                cfg.bug.map_or("none".into(), |b| b.cli_name().to_string()),
            ),
        ],
        cases: vec![case],
    }
}

/// The report of trace files that do not refine the model (`zab-sim check`).
#[must_use]
pub fn divergence<P: Payload>(command: &str, d: &Divergence, w: &ModelWindow<P>) -> Report {
    let mut case = window_case(
        format!("The trace diverges at record {}", d.step),
        d.reason.clone(),
        w,
    );
    case.details.push(("The divergence".into(), d.to_string()));
    Report {
        title: "zab-sim check: the trace does not refine the model".into(),
        commands: vec![("Reproduce the check:".into(), command.to_string())],
        bounds: Vec::new(),
        cases: vec![case],
    }
}

/// Writes `report` to `path`.
///
/// # Errors
/// When the file cannot be written (the message names it).
pub fn write(path: &std::path::Path, report: &Report) -> Result<(), String> {
    std::fs::write(path, report.to_html())
        .map_err(|e| format!("cannot write the report {}: {e}", path.display()))
}
