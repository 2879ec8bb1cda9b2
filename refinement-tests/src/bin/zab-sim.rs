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
    /// Servers in the ensemble.
    #[arg(long, default_value_t = 3)]
    servers: usize,
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
}

impl SimArgs {
    fn config(&self, seed: u64) -> SimConfig {
        let mut c = SimConfig::new(seed, self.servers);
        c.clients = self.clients;
        c.safety_ms = self.safety_ms;
        c.bug = self.bug;
        if self.no_faults {
            c.faults = Faults::NONE;
        } else if self.storage_faults {
            c.faults = Faults::WITH_STORAGE;
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
    /// Runs seeds FROM..FROM+COUNT and stops at the first failure.
    Sweep {
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// How many seeds.
        #[arg(long, default_value_t = 1000)]
        count: u64,
        #[command(flatten)]
        args: SimArgs,
        /// On a failure, also write a self-contained HTML report here.
        #[arg(long, value_name = "FILE.html")]
        report: Option<PathBuf>,
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
    match Cli::parse().cmd {
        Cmd::Run {
            seed,
            args,
            print_trace,
            report,
        } => {
            let mut cfg = args.config(seed);
            cfg.keep_trace = print_trace;
            match sim::run(cfg.clone()) {
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
                    println!("model actions: {:?}", r.actions);
                    println!("trace digest: {}", r.trace_digest);
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
            args,
            report,
        } => {
            let start = std::time::Instant::now();
            let mut records = 0usize;
            for seed in from..from.saturating_add(count) {
                match sim::run(args.config(seed)) {
                    Ok(r) => records += r.records,
                    Err(f) => {
                        println!("seed {seed}: {f}");
                        write_report(report.as_deref(), || {
                            zab_refinement::report::simulation(&args.config(seed), &f)
                        });
                        return ExitCode::FAILURE;
                    }
                }
                if (seed - from + 1) % 100 == 0 {
                    println!(
                        "{} seeds ok ({records} records refined, {:.0} s)",
                        seed - from + 1,
                        start.elapsed().as_secs_f64()
                    );
                }
            }
            println!(
                "{count} seeds from {from}: all ok — {records} trace records refined in {:.1} s",
                start.elapsed().as_secs_f64()
            );
            ExitCode::SUCCESS
        }
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
