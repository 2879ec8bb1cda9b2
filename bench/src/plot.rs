//! `zab-bench plot`: SVG charts of the medians — throughput against the read ratio (one line
//! per system and concurrency) and latency percentiles against the read ratio (one chart per
//! concurrency, p50 / p99 / p99.9 per system, log scale).

use crate::report::{Collected, group, med};
use anyhow::anyhow;
use plotters::prelude::*;
use std::path::Path;

type Series = (String, RGBColor, Vec<(f64, f64)>);
type Metric = fn(&crate::result::RunResult) -> f64;

const PALETTE: [[RGBColor; 3]; 2] = [
    [
        RGBColor(239, 138, 98),
        RGBColor(203, 24, 29),
        RGBColor(103, 0, 13),
    ],
    [
        RGBColor(107, 174, 214),
        RGBColor(33, 113, 181),
        RGBColor(8, 48, 107),
    ],
];

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("plot: {e}")
}

/// The mix runs' (concurrency label, read %) points: concurrency labels in order.
fn mix_concurrencies(c: &Collected) -> Vec<String> {
    let mut out = Vec::new();
    for f in &c.files {
        for r in &f.runs {
            if r.workload == "mix" && r.target_rate.is_none() {
                let l = format!("c{}x{}", r.clients, r.depth);
                if !out.contains(&l) {
                    out.push(l);
                }
            }
        }
    }
    out
}

fn read_ratios(c: &Collected) -> Vec<f64> {
    let mut v: Vec<f64> = c
        .files
        .iter()
        .flat_map(|f| f.runs.iter())
        .filter(|r| r.workload == "mix" && r.target_rate.is_none())
        .map(|r| r.read_pct)
        .collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// Median of `f` for the mix runs of `system` at concurrency `conc`, per read ratio index.
fn points(
    c: &Collected,
    system: &str,
    conc: &str,
    ratios: &[f64],
    f: impl Fn(&crate::result::RunResult) -> f64 + Copy,
) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for (key, by) in group(&c.files) {
        let Some(r) = by.values().flatten().next() else {
            continue;
        };
        if r.workload != "mix"
            || r.target_rate.is_some()
            || format!("c{}x{}", r.clients, r.depth) != conc
        {
            continue;
        }
        let Some(i) = ratios.iter().position(|x| *x == r.read_pct) else {
            continue;
        };
        if let Some(v) = med(&by, system, f) {
            out.push((i as f64, v));
        }
        let _ = key;
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn chart(
    path: &Path,
    title: &str,
    y_desc: &str,
    ratios: &[f64],
    series: &[Series],
    log: bool,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (960, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let ymax = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(1.0f64, f64::max)
        * 1.15;
    let ymin = series
        .iter()
        .flat_map(|s| s.2.iter().map(|p| p.1))
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, ymax / 2.0)
        * 0.8;
    let xmax = (ratios.len().max(2) - 1) as f64;
    let labels: Vec<String> = ratios.iter().map(|r| format!("{r}% reads")).collect();
    let fmt_x = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80);
    let x_range = -0.2f64..xmax + 0.2;
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_labels(ratios.len().max(2))
                .x_label_formatter(&fmt_x)
                .y_desc(y_desc)
                .draw()
                .map_err(err)?;
            for (name, color, pts) in series {
                let color = *color;
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    if log {
        draw!(
            builder
                .build_cartesian_2d(x_range, (ymin..ymax).log_scale())
                .map_err(err)?
        );
    } else {
        draw!(
            builder
                .build_cartesian_2d(x_range, 0f64..ymax)
                .map_err(err)?
        );
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Writes the charts into `dir`; returns their file names.
pub fn plot(c: &Collected, systems: [&str; 2], dir: &Path) -> anyhow::Result<Vec<String>> {
    let ratios = read_ratios(c);
    let concs = mix_concurrencies(c);
    let mut written = Vec::new();
    if ratios.is_empty() {
        return Ok(written);
    }
    let mut tp = Vec::new();
    for (si, sys) in systems.iter().enumerate() {
        for (ci, conc) in concs.iter().enumerate() {
            let shade = PALETTE[si][(2 - ci.min(2)).min(2)];
            tp.push((
                format!("{sys} {conc}"),
                shade,
                points(c, sys, conc, &ratios, |r| r.throughput),
            ));
        }
    }
    let name = "throughput_vs_read_ratio.svg".to_string();
    chart(
        &dir.join(&name),
        "Throughput vs read ratio (median over rounds)",
        "operations per second",
        &ratios,
        &tp,
        false,
    )?;
    written.push(name);
    for conc in &concs {
        let mut lat = Vec::new();
        for (si, sys) in systems.iter().enumerate() {
            let pcts: [(&str, Metric); 3] = [
                ("p50", |r| r.latency.p50_us / 1000.0),
                ("p99", |r| r.latency.p99_us / 1000.0),
                ("p99.9", |r| r.latency.p999_us / 1000.0),
            ];
            for (pi, (pname, f)) in pcts.into_iter().enumerate() {
                lat.push((
                    format!("{sys} {pname}"),
                    PALETTE[si][pi],
                    points(c, sys, conc, &ratios, f),
                ));
            }
        }
        let name = format!("latency_{conc}.svg");
        chart(
            &dir.join(&name),
            &format!("Latency percentiles vs read ratio, {conc} (median over rounds)"),
            "milliseconds (log scale)",
            &ratios,
            &lat,
            true,
        )?;
        written.push(name);
    }
    Ok(written)
}
