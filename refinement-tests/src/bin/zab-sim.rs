//! `zab-sim`: runs the deterministic simulation (one seed, or a sweep over many) and checks
//! recorded `zabd` trace files against the model.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use zab_model::chart::report::Report;
use zab_refinement::refine::Refiner;
use zab_refinement::sim::{self, Faults, SimConfig};
use zab_spec::{Bug, ServerId};

#[derive(Debug, Parser)]
#[command(
    name = "zab-sim",
    version,
    about = "Deterministic simulation and trace refinement of zabd"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Servers in the ensemble, observers included.
    #[arg(long, default_value_t = 3)]
    servers: usize,
    /// The last N servers are observers (`spec/PROTOCOL.md` §10.2: OBSERVERINFO, INFORM, no
    /// ACK, no vote), refined against the model's `--observers N`; 0 or 1, the model's bound.
    /// Client 0 prefers the observer.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    observers: u8,
    /// Concurrent clients.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Simulated duration of the phase with faults, ms.
    #[arg(long, default_value_t = 20_000)]
    safety_ms: u64,
    /// Re-introduce a known bug in the servers (and the model).
    #[arg(long, value_parser = clap::value_parser!(Bug))]
    bug: Option<Bug>,
    /// No faults at all (a plain run).
    #[arg(long)]
    no_faults: bool,
    /// Also inject storage faults (`spec/PROTOCOL.md` §7.1): bit flips in fsynced log
    /// records, lost epoch files, wiped data directories, failing fsyncs; one server at a time.
    #[arg(long)]
    storage_faults: bool,
    /// Also aim crashes at durability boundaries: right after an acknowledgement sent while
    /// the sender's log held unsynced writes (and its receiver a little later), and soon
    /// after a currentEpoch write, before the next fsync (seeded, a probability per kind).
    #[arg(long)]
    aimed: bool,
}

impl SimArgs {
    fn config(&self, seed: u64) -> SimConfig {
        let mut c = SimConfig::new(seed, self.servers);
        c.observers = usize::from(self.observers);
        c.clients = self.clients;
        c.safety_ms = self.safety_ms;
        c.bug = self.bug;
        if self.no_faults {
            c.faults = Faults::NONE;
        } else if self.storage_faults {
            c.faults = Faults::WITH_STORAGE;
        }
        if self.aimed && !self.no_faults {
            c.faults.aimed = true;
        }
        c
    }
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Runs one seed and prints what it did (or the failure and how to reproduce it).
    Run {
        /// The seed.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        args: SimArgs,
        /// Print the whole trace.
        #[arg(long)]
        print_trace: bool,
        /// On a failure, also write a self-contained HTML report here (the last model steps
        /// of the trace as a message sequence chart, the failure, the reproducing command).
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
    },
    /// Runs seeds FROM..FROM+COUNT and stops at the first failure; prints the simulated to
    /// real time ratio of the whole sweep.
    Sweep {
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many seeds (default 1000; without limit when only --time-budget is given).
        #[arg(long)]
        count: Option<u64>,
        /// Start no seed after this much wall time (e.g. `120s`, `20m`, `1h`; a number alone
        /// is seconds): a time-boxed sweep.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        time_budget: Option<std::time::Duration>,
        #[command(flatten)]
        args: SimArgs,
        /// On a failure, also write a self-contained HTML report here.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
    },
    /// Drives the real server code along a model path, one model action at a time (a
    /// `zab-model check --path-out FILE` counterexample, or an Explorer link with --link and
    /// --config): with the path's bug switch on, the server must break the same invariant;
    /// otherwise the replay runs through or names the first step the server does not take.
    Replay {
        /// The path file (`zab-model check ... --path-out FILE`).
        file: Option<PathBuf>,
        /// An Explorer link (`http://127.0.0.1:3000/#/steps/0/16/...`) instead of a file.
        #[arg(long, requires = "config")]
        link: Option<String>,
        /// With --link: the configuration as `zab-model check` prints it on its first line
        /// (`servers=3 txns=2 crashes=2 ... bug=zk4646`).
        #[arg(long)]
        config: Option<String>,
        /// Run the servers (and the refiner's model) without the path's bug switch: the
        /// fixed server either runs the path through or refuses a step.
        #[arg(long)]
        without_bug: bool,
    },
    /// Checks `zabd --trace-file` files of one ensemble (merged by time) against the model.
    Check {
        /// The ensemble's server ids, in model order.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        servers: Vec<u64>,
        /// The trace files.
        files: Vec<PathBuf>,
        /// When the traces do not refine the model, also write an HTML report here.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
    },
}

/// `120s`, `20m`, `1h` or a number of seconds.
fn parse_duration(v: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(k) => v.split_at(k),
        None => (v, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a duration such as 120s, 20m or 1h"))?;
    let scale = match unit {
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{v:?}: the unit must be s, m or h")),
    };
    std::time::Duration::try_from_secs_f64(n * scale).map_err(|e| format!("{v:?}: {e}"))
}

/// The 1, 5 and 15 minute load averages (`/proc/loadavg`), or a note that they are unknown.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Simulated time over wall time.
fn ratio(simulated_ms: u64, wall: std::time::Duration) -> f64 {
    simulated_ms as f64 / 1000.0 / wall.as_secs_f64().max(1e-9)
}

/// Writes the report `make` builds to `path`, when one was asked for.
#[allow(clippy::print_stdout)]
fn write_report(path: Option<&std::path::Path>, make: impl FnOnce() -> Report) {
    let Some(path) = path else {
        return;
    };
    match zab_refinement::report::write(path, &make()) {
        Ok(()) => println!("report: {}", path.display()),
        Err(e) => println!("{e}"),
    }
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match &cli.cmd {
        Cmd::Run { args, .. } | Cmd::Sweep { args, .. } => Some(args),
        _ => None,
    };
    if let Some(Err(e)) = args.map(|a| a.config(0).validate()) {
        println!("zab-sim: {e}");
        return ExitCode::from(2);
    }
    match cli.cmd {
        Cmd::Run {
            seed,
            args,
            print_trace,
            report,
        } => {
            let mut cfg = args.config(seed);
            cfg.keep_trace = print_trace;
            let start = std::time::Instant::now();
            let result = sim::run(cfg.clone());
            let wall = start.elapsed();
            match result {
                Ok(r) => {
                    for line in &r.trace {
                        println!("{line}");
                    }
                    println!(
                        "seed {seed}: ok — {} trace records refined, {} transactions committed, \
                         {} operations completed, {} with unknown outcome, {} simulated ms",
                        r.records, r.committed, r.ops_completed, r.ops_unknown, r.end_ms
                    );
                    println!("faults: {:?}", r.faults);
                    if cfg.observers > 0 {
                        println!(
                            "observer: {} reads served, {} writes forwarded, {} INFORMs \
                             refined, {} OBSERVERINFOs, {} faults hit it",
                            r.observer_reads,
                            r.observer_writes,
                            r.actions.get("ObserverProcessINFORM").unwrap_or(&0),
                            r.actions.get("LeaderProcessOBSERVERINFO").unwrap_or(&0),
                            r.observer_faults
                        );
                    }
                    println!("model actions: {:?}", r.actions);
                    println!("trace digest: {}", r.trace_digest);
                    println!(
                        "speed: {} simulated ms in {:.3} s of wall time, {:.1}x real time \
                         (load average {})",
                        r.end_ms,
                        wall.as_secs_f64(),
                        ratio(r.end_ms, wall),
                        load_average()
                    );
                    ExitCode::SUCCESS
                }
                Err(f) => {
                    println!("seed {seed}: {f}");
                    write_report(report.as_deref(), || {
                        zab_refinement::report::simulation(&cfg, &f)
                    });
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Sweep {
            from,
            count,
            time_budget,
            args,
            report,
        } => {
            let count = count.unwrap_or(if time_budget.is_some() {
                u64::MAX
            } else {
                1000
            });
            let start = std::time::Instant::now();
            let (mut records, mut runs, mut simulated_ms) = (0usize, 0u64, 0u64);
            for seed in from..from.saturating_add(count) {
                if time_budget.is_some_and(|b| start.elapsed() >= b) {
                    break;
                }
                match sim::run(args.config(seed)) {
                    Ok(r) => {
                        records += r.records;
                        simulated_ms += r.end_ms;
                    }
                    Err(f) => {
                        println!("seed {seed}: {f}");
                        println!(
                            "{runs} seeds from {from} passed before it ({:.1} s, load average {})",
                            start.elapsed().as_secs_f64(),
                            load_average()
                        );
                        write_report(report.as_deref(), || {
                            zab_refinement::report::simulation(&args.config(seed), &f)
                        });
                        return ExitCode::FAILURE;
                    }
                }
                runs += 1;
                if runs % 100 == 0 {
                    println!(
                        "{runs} seeds ok ({records} records refined, {:.0} s, {:.1}x real time)",
                        start.elapsed().as_secs_f64(),
                        ratio(simulated_ms, start.elapsed())
                    );
                }
            }
            let wall = start.elapsed();
            let budget = time_budget.map_or(String::new(), |b| {
                format!(" (time budget {:.0} s)", b.as_secs_f64())
            });
            println!(
                "{runs} seeds from {from}: all ok{budget} — {records} trace records refined, \
                 {:.1} simulated s in {:.1} s of wall time: {:.1}x real time (load average {})",
                simulated_ms as f64 / 1000.0,
                wall.as_secs_f64(),
                ratio(simulated_ms, wall),
                load_average()
            );
            ExitCode::SUCCESS
        }
        Cmd::Replay {
            file,
            link,
            config,
            without_bug,
        } => replay(file, link, config, without_bug),
        Cmd::Check {
            servers,
            files,
            report,
        } => {
            let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
            let trace = match zab_refinement::ndjson::merge(&paths) {
                Ok(t) => t,
                Err(e) => {
                    println!("cannot read the traces: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let command = format!(
                "zab-sim check --servers {} {}",
                servers
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let ids: Vec<ServerId> = servers.into_iter().map(ServerId).collect();
            let mut refiner = Refiner::new(&ids, None);
            match refiner.replay(&trace) {
                Ok(()) => {
                    println!(
                        "{} records refine the model: {:?}",
                        trace.len(),
                        refiner.counts
                    );
                    ExitCode::SUCCESS
                }
                Err(d) => {
                    println!("{d}");
                    write_report(report.as_deref(), || {
                        zab_refinement::report::divergence(&command, &d, &refiner.window())
                    });
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `zab-sim replay`: reads the path, replays it, prints each step and the outcome. Exit code
/// 0 when the outcome is what the path promises (its invariant broken with the bug on; run
/// through or a named refusal without it), 1 otherwise, 2 when the path cannot be read.
#[allow(clippy::print_stdout)]
fn replay(
    file: Option<PathBuf>,
    link: Option<String>,
    config: Option<String>,
    without_bug: bool,
) -> ExitCode {
    use zab_model::path_file::{self, PathFile};
    use zab_refinement::sim::replay::{self, Outcome};
    let path = match (file, link, config) {
        (Some(f), None, _) => std::fs::read_to_string(&f)
            .map_err(|e| format!("cannot read {}: {e}", f.display()))
            .and_then(|t| PathFile::parse(&t).map_err(|e| format!("{}: {e}", f.display()))),
        (None, Some(l), Some(c)) => path_file::parse_config(&c)
            .and_then(|config| {
                Ok(PathFile {
                    config,
                    violates: None,
                    steps: path_file::parse_steps(&l)?,
                })
            })
            .map_err(|e| e.to_string()),
        _ => Err("give a path file, or --link with --config".into()),
    };
    let path = match path {
        Ok(p) => p,
        Err(e) => {
            println!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let bug = if without_bug { None } else { path.config.bug };
    println!(
        "replaying a path of {} (server and refiner bug switch: {})",
        path.config,
        bug.map_or("none", Bug::cli_name)
    );
    match replay::replay(&path, bug) {
        Ok(r) => {
            for line in &r.log {
                println!("  {line}");
            }
            match r.outcome {
                Outcome::InvariantBroken { step, invariant } => {
                    println!(
                        "the server breaks {invariant} at step {step} ({} records refined)",
                        r.records
                    );
                    let expected = path.violates.as_deref().is_none_or(|v| v == invariant);
                    if bug.is_some() && expected {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Outcome::RanThrough => {
                    println!(
                        "the server took all {} steps; every invariant holds ({} records \
                         refined)",
                        r.steps, r.records
                    );
                    if bug.is_some() && path.violates.is_some() {
                        println!("(the path's counterexample did not break the server)");
                        ExitCode::FAILURE
                    } else {
                        ExitCode::SUCCESS
                    }
                }
            }
        }
        Err(s) => {
            println!("{s}");
            if matches!(s.reason, replay::StuckReason::BadPath(_)) {
                ExitCode::from(2)
            } else if bug.is_some() && path.violates.is_some() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
