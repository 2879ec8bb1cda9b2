//! `zab-bench report`: reads every sweep file and extra measurement of a results directory,
//! takes the median over rounds of each figure per system, and writes the Markdown report
//! (machine, settings, the table of medians and ratios, the extras, links to the plots).

use crate::result::{Extra, ResultFile, RunResult};
use anyhow::Context as _;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// Every sweep file (`*.json`) and extra (`*.ndjson` lines) of a directory.
pub struct Collected {
    /// Sweep files, in file-name order.
    pub files: Vec<ResultFile>,
    /// Extra measurements.
    pub extras: Vec<Extra>,
}

/// Reads a results directory.
pub fn collect(dir: &Path) -> anyhow::Result<Collected> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    names.sort();
    let mut files = Vec::new();
    let mut extras = Vec::new();
    for p in names {
        match p.extension().and_then(|e| e.to_str()) {
            Some("json") => {
                let text = std::fs::read_to_string(&p)?;
                files.push(
                    serde_json::from_str(&text)
                        .with_context(|| format!("parsing {}", p.display()))?,
                );
            }
            Some("ndjson") => {
                for line in std::fs::read_to_string(&p)?.lines() {
                    if !line.trim().is_empty() {
                        extras.push(
                            serde_json::from_str(line)
                                .with_context(|| format!("parsing a line of {}", p.display()))?,
                        );
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Collected { files, extras })
}

/// The median (mean of the middle two for an even count); `None` for no values.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Per run key (in first-seen order) and system: the runs of every round.
pub type Grouped<'a> = Vec<(String, BTreeMap<String, Vec<&'a RunResult>>)>;

/// Groups the runs of every file by key, then system.
pub fn group(files: &[ResultFile]) -> Grouped<'_> {
    let mut out: Grouped<'_> = Vec::new();
    for f in files {
        for r in &f.runs {
            let idx = match out.iter().position(|(k, _)| *k == r.key) {
                Some(i) => i,
                None => {
                    out.push((r.key.clone(), BTreeMap::new()));
                    out.len() - 1
                }
            };
            out[idx].1.entry(f.system.clone()).or_default().push(r);
        }
    }
    out
}

/// The median of `f` over the runs of `system` for one key.
pub fn med(
    by_system: &BTreeMap<String, Vec<&RunResult>>,
    system: &str,
    f: impl Fn(&RunResult) -> f64,
) -> Option<f64> {
    by_system
        .get(system)
        .and_then(|runs| median(&runs.iter().map(|r| f(r)).collect::<Vec<_>>()))
}

fn fmt_num(x: Option<f64>) -> String {
    match x {
        None => "—".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn fmt_ms(us: Option<f64>) -> String {
    match us {
        None => "—".into(),
        Some(v) => {
            let ms = v / 1000.0;
            if ms >= 100.0 {
                format!("{ms:.0}")
            } else if ms >= 10.0 {
                format!("{ms:.1}")
            } else {
                format!("{ms:.2}")
            }
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".into(),
    }
}

/// The machine, from `/proc` (CPU model, cores, memory, kernel).
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    format!(
        "{model}, {cores} cores, {:.1} GiB RAM, Linux {kernel}",
        mem_kib / 1024.0 / 1024.0
    )
}

/// What `report` needs besides the data.
pub struct ReportOptions<'a> {
    /// The two systems compared, `[a, b]`: ratios are a / b.
    pub systems: [&'a str; 2],
    /// The date line.
    pub date: &'a str,
    /// A Markdown block about the settings (included verbatim).
    pub notes: Option<String>,
    /// A Markdown block with the analysis (appended verbatim).
    pub analysis: Option<String>,
    /// Plot file names (relative to the report) to link.
    pub plots: Vec<String>,
    /// The title.
    pub title: &'a str,
}

/// Renders the Markdown report.
pub fn render(c: &Collected, o: &ReportOptions<'_>) -> String {
    let [a, b] = o.systems;
    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", o.title);
    let _ = writeln!(
        md,
        "Generated by `zab-bench report` from the raw results in `raw/`.\n"
    );
    let _ = writeln!(md, "- **Date:** {}", o.date);
    let _ = writeln!(md, "- **Machine:** {}", machine());
    let rounds: Vec<u32> = {
        let mut r: Vec<u32> = c.files.iter().map(|f| f.round).collect();
        r.sort_unstable();
        r.dedup();
        r
    };
    let _ = writeln!(
        md,
        "- **Rounds:** {} (systems alternate within each round; every figure is the median over rounds)",
        rounds.len()
    );
    let loads: Vec<String> = c
        .files
        .iter()
        .map(|f| {
            format!(
                "{} r{}: {}→{}",
                f.system,
                f.round,
                fmt_num(f.loadavg_before),
                fmt_num(f.loadavg_after)
            )
        })
        .collect();
    let _ = writeln!(
        md,
        "- **1-min load average before→after each sweep:** {}\n",
        loads.join("; ")
    );
    if let Some(n) = &o.notes {
        let _ = writeln!(md, "{}\n", n.trim_end());
    }

    let _ = writeln!(md, "## Throughput and latency (medians)\n");
    let _ = writeln!(
        md,
        "Throughput in operations per second; latency in milliseconds (p50 / p99 / p99.9). \
         `c32x8` = 32 sessions with 8 requests outstanding each (closed loop); `open2000` = \
         open loop at 2,000 ops/s in total (latency from the intended send time). Ratio = \
         {a} / {b} (throughput: above 1 is better for {a}; latency: below 1 is better for {a}).\n"
    );
    let _ = writeln!(
        md,
        "| run | read % | {a} ops/s | {b} ops/s | ratio | {a} p50 / p99 / p99.9 ms | {b} p50 / p99 / p99.9 ms | p99 ratio | errors ({a}/{b}) |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (key, by) in group(&c.files) {
        let read = by
            .values()
            .flatten()
            .next()
            .map(|r| r.read_pct)
            .unwrap_or_default();
        let ta = med(&by, a, |r| r.throughput);
        let tb = med(&by, b, |r| r.throughput);
        let lat = |s: &str| {
            format!(
                "{} / {} / {}",
                fmt_ms(med(&by, s, |r| r.latency.p50_us)),
                fmt_ms(med(&by, s, |r| r.latency.p99_us)),
                fmt_ms(med(&by, s, |r| r.latency.p999_us))
            )
        };
        let errs = |s: &str| -> u64 {
            by.get(s)
                .map(|v| v.iter().map(|r| r.errors + r.dropped).sum())
                .unwrap_or(0)
        };
        let _ = writeln!(
            md,
            "| `{key}` | {read} | {} | {} | {} | {} | {} | {} | {}/{} |",
            fmt_num(ta),
            fmt_num(tb),
            ratio(ta, tb),
            lat(a),
            lat(b),
            ratio(
                med(&by, a, |r| r.latency.p99_us),
                med(&by, b, |r| r.latency.p99_us)
            ),
            errs(a),
            errs(b)
        );
    }

    let lagged: Vec<String> = c
        .files
        .iter()
        .flat_map(|f| {
            f.runs.iter().filter_map(move |r| {
                r.send_lag_us.map(|(p50, p99)| {
                    format!("{} {} r{}: {p50:.0}/{p99:.0} µs", r.key, f.system, f.round)
                })
            })
        })
        .collect();
    if !lagged.is_empty() {
        let _ = writeln!(
            md,
            "\nOpen-loop client send lag (how late the load generator sent requests after their \
             intended time, p50/p99; included in the open-loop latencies): {}.",
            lagged.join("; ")
        );
    }

    stalls(&mut md, c);

    floor_targets_and_breakdown(&mut md, c, [a, b]);

    if c.extras.iter().any(|e| !e.name.starts_with("floor_")) {
        let _ = writeln!(md, "\n## Failover, restart, memory (medians)\n");
        let _ = writeln!(md, "| measurement | {a} | {b} | ratio | trials ({a}/{b}) |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        let mut names: Vec<(String, String)> = Vec::new();
        for e in c.extras.iter().filter(|e| !e.name.starts_with("floor_")) {
            if !names.iter().any(|(n, _)| *n == e.name) {
                names.push((e.name.clone(), e.unit.clone()));
            }
        }
        for (name, unit) in names {
            let vals = |s: &str| -> Vec<f64> {
                c.extras
                    .iter()
                    .filter(|e| e.name == name && e.system == s)
                    .map(|e| e.value)
                    .collect()
            };
            let (va, vb) = (vals(a), vals(b));
            let (ma, mb) = (median(&va), median(&vb));
            let _ = writeln!(
                md,
                "| {name} ({unit}) | {} | {} | {} | {}/{} |",
                fmt_num(ma),
                fmt_num(mb),
                ratio(ma, mb),
                va.len(),
                vb.len()
            );
        }
    }

    if !o.plots.is_empty() {
        let _ = writeln!(md, "\n## Plots\n");
        for p in &o.plots {
            let _ = writeln!(md, "![{p}]({p})\n");
        }
    }
    if let Some(x) = &o.analysis {
        let _ = writeln!(md, "\n{}", x.trim_end());
    }
    md
}

/// The median of the extra `name` over every system and round.
fn extra_median(c: &Collected, name: &str) -> Option<f64> {
    median(
        &c.extras
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.value)
            .collect::<Vec<_>>(),
    )
}

/// The physical floor (`zab-bench floor`), issue 20's targets per run (throughput ≥ 2×,
/// p99 ≤ 0.5× the second system's; a one-at-a-time quorum write's p50 within 2× of the
/// floor), and the first system's write-path breakdown per run (medians over rounds), which
/// says which stage holds the time where a target is missed.
fn floor_targets_and_breakdown(md: &mut String, c: &Collected, [a, b]: [&str; 2]) {
    let floor = extra_median(c, "floor_quorum_write_us");
    if floor.is_some() {
        let _ = writeln!(md, "\n## Physical floor (measured in the same run)\n");
        let _ = writeln!(
            md,
            "1 KiB append + fdatasync on the servers' disk, three files at once (as the three \
             servers sync): p50 {} / p99 {} µs (one alone: p50 {} / p99 {} µs); loopback TCP round \
             trip: p50 {} / p99 {} µs. A quorum write through the leader needs at least one \
             fdatasync (leader and follower in parallel) and two round trips (client ↔ leader, \
             leader ↔ follower): **floor {} µs** (three-at-once fdatasync p50 + 2 × RTT p50).",
            fmt_num(extra_median(c, "floor_fdatasync_p50_us")),
            fmt_num(extra_median(c, "floor_fdatasync_p99_us")),
            fmt_num(extra_median(c, "floor_fdatasync_alone_p50_us")),
            fmt_num(extra_median(c, "floor_fdatasync_alone_p99_us")),
            fmt_num(extra_median(c, "floor_loopback_rtt_p50_us")),
            fmt_num(extra_median(c, "floor_loopback_rtt_p99_us")),
            fmt_num(floor)
        );
    }
    let groups = group(&c.files);
    let closed: Vec<_> = groups
        .iter()
        .filter(|(_, by)| by.values().flatten().all(|r| r.target_rate.is_none()))
        .collect();
    if closed.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n## Targets (issue 20)\n");
    let _ = writeln!(
        md,
        "Throughput {a}/{b} ≥ 2, p99 {a}/{b} ≤ 0.5; for one-at-a-time writes (`c1x1` create \
         and set) also p50 ≤ 2 × the floor. Load average at the start of each {a} run beside it.\n"
    );
    let _ = writeln!(
        md,
        "| run | throughput ratio | p99 ratio | {a} p50 / floor | load ({a} runs) | met |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---|");
    for (key, by) in &closed {
        let t = match (med(by, a, |r| r.throughput), med(by, b, |r| r.throughput)) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        let p = match (
            med(by, a, |r| r.latency.p99_us),
            med(by, b, |r| r.latency.p99_us),
        ) {
            (Some(x), Some(y)) if y > 0.0 => Some(x / y),
            _ => None,
        };
        let one_write =
            key.contains("-c1x1") && (key.starts_with("create") || key.starts_with("set"));
        let f = match (one_write, med(by, a, |r| r.latency.p50_us), floor) {
            (true, Some(x), Some(fl)) if fl > 0.0 => Some(x / fl),
            _ => None,
        };
        let loads: Vec<String> = by
            .get(a)
            .into_iter()
            .flatten()
            .map(|r| r.loadavg.map_or("?".into(), |l| format!("{l:.2}")))
            .collect();
        let met = t.is_some_and(|t| t >= 2.0)
            && p.is_some_and(|p| p <= 0.5)
            && f.is_none_or(|f| f <= 2.0);
        let _ = writeln!(
            md,
            "| `{key}` | {} | {} | {} | {} | {} |",
            t.map_or("—".into(), |t| format!("{t:.2}×")),
            p.map_or("—".into(), |p| format!("{p:.2}×")),
            f.map_or("—".into(), |f| format!("{f:.2}×")),
            loads.join(", "),
            if met { "yes" } else { "**no**" }
        );
    }
    let with_breakdown: Vec<_> = closed
        .iter()
        .filter(|(_, by)| {
            by.get(a)
                .is_some_and(|v| v.iter().any(|r| !r.breakdown.is_empty()))
        })
        .collect();
    if with_breakdown.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "\n## Where {a}'s time goes (write-path breakdown, medians over rounds)\n"
    );
    let _ = writeln!(
        md,
        "µs from each view's origin (`origin`: the request decoded on the client's server; \
         `leader`: the proposal; `follower`: the PROPOSAL received; `log.fsync`: each group \
         commit's fsync), summed over the servers; p50 / p99 / p99.9. Stages in path order: the \
         step between consecutive p50s is the time that stage holds.\n"
    );
    for (key, by) in with_breakdown {
        let runs = by.get(a).map(Vec::as_slice).unwrap_or_default();
        let _ = writeln!(md, "**`{key}`**\n");
        let _ = writeln!(md, "| stage | count | p50 | p99 | p99.9 |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        let mut names: Vec<&str> = crate::breakdown::ORDER.to_vec();
        for r in runs {
            for k in r.breakdown.keys() {
                if !names.contains(&k.as_str()) {
                    names.push(k);
                }
            }
        }
        for n in names {
            let vals = |f: &dyn Fn(&crate::result::StageStats) -> f64| {
                median(
                    &runs
                        .iter()
                        .filter_map(|r| r.breakdown.get(n).map(f))
                        .collect::<Vec<_>>(),
                )
            };
            let Some(count) = vals(&|s| s.count as f64) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {n} | {count:.0} | {} | {} | {} |",
                fmt_num(vals(&|s| s.p50_us)),
                fmt_num(vals(&|s| s.p99_us)),
                fmt_num(vals(&|s| s.p999_us))
            );
        }
        let _ = writeln!(md);
    }
}

/// The runs in which a session sent pings: a reply awaited for the whole ping interval (9 s
/// at the default session timeout). Their medians include that wait.
fn stalls(md: &mut String, c: &Collected) {
    let stalled: Vec<String> = c
        .files
        .iter()
        .flat_map(|f| {
            f.runs.iter().filter(|r| r.pings > 0).map(move |r| {
                format!(
                    "{} {} r{}: {} ping(s), max {:.0} ms",
                    r.key,
                    f.system,
                    f.round,
                    r.pings,
                    r.latency.max_us / 1e3
                )
            })
        })
        .collect();
    if !stalled.is_empty() {
        let _ = writeln!(
            md,
            "\nRuns in which a reply took the whole ping interval (nothing was sent for it while \
             a reply was awaited, so the session pinged, as ZooKeeper's Java client does; \
             ZooKeeper 3.8.0 holds a lone session's write until the next request reaches it, \
             ZOOKEEPER-4537, see README): {}.",
            stalled.join("; ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::result::Latency;

    fn run(key: &str, read_pct: f64, throughput: f64, p99_us: f64) -> RunResult {
        RunResult {
            key: key.into(),
            workload: "mix".into(),
            read_pct,
            clients: 32,
            depth: 8,
            payload: 1024,
            target_rate: None,
            seconds: 1.0,
            ops: throughput as u64,
            errors: 0,
            dropped: 0,
            pings: 0,
            throughput,
            latency: Latency {
                p50_us: p99_us / 4.0,
                p99_us,
                p999_us: p99_us * 2.0,
                ..Latency::default()
            },
            send_lag_us: None,
            loadavg: None,
            breakdown: BTreeMap::new(),
        }
    }

    fn file(system: &str, round: u32, runs: Vec<RunResult>) -> ResultFile {
        ResultFile {
            system: system.into(),
            round,
            servers: vec![],
            loadavg_before: Some(1.0),
            loadavg_after: Some(2.0),
            runs,
        }
    }

    /// Three rounds per system: the medians are the middle values, whatever the order.
    fn collected() -> Collected {
        let k = "mix-r90-c32x8-p1024";
        Collected {
            files: vec![
                file("zabd", 1, vec![run(k, 90.0, 3000.0, 9000.0)]),
                file("zookeeper", 1, vec![run(k, 90.0, 1000.0, 4000.0)]),
                file("zookeeper", 2, vec![run(k, 90.0, 1500.0, 2000.0)]),
                file("zabd", 2, vec![run(k, 90.0, 1000.0, 1000.0)]),
                file("zabd", 3, vec![run(k, 90.0, 2000.0, 1500.0)]),
                file("zookeeper", 3, vec![run(k, 90.0, 500.0, 3000.0)]),
            ],
            extras: vec![
                Extra {
                    system: "zabd".into(),
                    round: 1,
                    name: "failover_ms".into(),
                    value: 300.0,
                    unit: "ms".into(),
                },
                Extra {
                    system: "zookeeper".into(),
                    round: 1,
                    name: "failover_ms".into(),
                    value: 1200.0,
                    unit: "ms".into(),
                },
            ],
        }
    }

    #[test]
    fn medians_ignore_order_and_non_finite_values() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn ratios_are_first_over_second() {
        assert_eq!(ratio(Some(3000.0), Some(1500.0)), "2.00×");
        assert_eq!(ratio(Some(1.0), Some(4.0)), "0.25×");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "—");
        assert_eq!(ratio(None, Some(1.0)), "—");
    }

    #[test]
    fn runs_group_by_key_then_system() {
        let c = collected();
        let g = group(&c.files);
        assert_eq!(g.len(), 1);
        let (key, by) = &g[0];
        assert_eq!(key, "mix-r90-c32x8-p1024");
        assert_eq!(by["zabd"].len(), 3);
        assert_eq!(by["zookeeper"].len(), 3);
        assert_eq!(med(by, "zabd", |r| r.throughput), Some(2000.0));
        assert_eq!(med(by, "zookeeper", |r| r.throughput), Some(1000.0));
        assert_eq!(med(by, "zabd", |r| r.latency.p99_us), Some(1500.0));
        assert_eq!(med(by, "nobody", |r| r.throughput), None);
    }

    #[test]
    fn the_report_shows_medians_and_ratios() {
        let c = collected();
        let md = render(
            &c,
            &ReportOptions {
                systems: ["zabd", "zookeeper"],
                date: "today",
                notes: Some("## Settings\n\nsome notes".into()),
                analysis: None,
                plots: vec!["throughput_vs_read_ratio.svg".into()],
                title: "t",
            },
        );
        // Throughput 2000 vs 1000 (2.00×); p99 1.50 ms vs 3.00 ms (0.50×).
        let row = md
            .lines()
            .find(|l| l.starts_with("| `mix-r90-c32x8-p1024`"))
            .expect("a row for the run");
        assert!(row.contains("| 2000 | 1000 | 2.00× |"), "{row}");
        assert!(row.contains("| 0.50× |"), "{row}");
        assert!(row.contains(" / 1.50 / 3.00 |"), "{row}");
        let failover = md
            .lines()
            .find(|l| l.starts_with("| failover_ms"))
            .expect("a failover row");
        assert!(
            failover.contains("| 300 | 1200 | 0.25× | 1/1 |"),
            "{failover}"
        );
        assert_eq!(md.matches("## Settings").count(), 1);
        assert!(md.contains("![throughput_vs_read_ratio.svg](throughput_vs_read_ratio.svg)"));
        assert!(!md.contains("ping interval"), "no run pinged");
    }

    #[test]
    fn runs_that_pinged_are_named() {
        let mut c = collected();
        let r = &mut c.files[1].runs[0];
        r.pings = 1;
        r.latency.max_us = 9_003_007.0;
        let md = render(
            &c,
            &ReportOptions {
                systems: ["zabd", "zookeeper"],
                date: "today",
                notes: None,
                analysis: None,
                plots: vec![],
                title: "t",
            },
        );
        assert!(
            md.contains("ZOOKEEPER-4537, see README): mix-r90-c32x8-p1024 zookeeper r1: 1 ping(s), max 9003 ms."),
            "{md}"
        );
    }

    #[test]
    fn numbers_are_formatted_by_magnitude() {
        assert_eq!(fmt_num(Some(12345.6)), "12346");
        assert_eq!(fmt_num(Some(12.34)), "12.3");
        assert_eq!(fmt_num(Some(1.234)), "1.23");
        assert_eq!(fmt_num(None), "—");
        assert_eq!(fmt_ms(Some(1_534_000.0)), "1534");
        assert_eq!(fmt_ms(Some(45_900.0)), "45.9");
        assert_eq!(fmt_ms(Some(820.0)), "0.82");
    }

    #[test]
    fn a_results_directory_is_collected() {
        let dir = std::env::temp_dir().join(format!("zab-bench-collect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let c = collected();
        for f in &c.files {
            let p = dir.join(format!("{}-r{}.json", f.system, f.round));
            std::fs::write(p, serde_json::to_string(f).expect("json")).expect("write");
        }
        for e in &c.extras {
            crate::result::append_extra(&dir.join("extras.ndjson"), e).expect("append");
        }
        std::fs::write(dir.join("notes.md"), "not data").expect("write");
        let back = collect(&dir).expect("collect");
        assert_eq!(back.files.len(), 6);
        assert_eq!(back.extras.len(), 2);
        // File-name order: zabd-r1, zabd-r2, zabd-r3, zookeeper-r1, ...
        assert_eq!(back.files[0].system, "zabd");
        assert_eq!(back.files[3].system, "zookeeper");
        // The plots are written from the same data.
        let written = crate::plot::plot(&back, ["zabd", "zookeeper"], &dir).expect("plot");
        assert_eq!(
            written,
            vec!["throughput_vs_read_ratio.svg", "latency_c32x8.svg"]
        );
        let svg = std::fs::read_to_string(dir.join("latency_c32x8.svg")).expect("svg");
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
