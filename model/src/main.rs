//! `zab-model`: the command line of the Zab model — `check`, `simulate` and `explore`.
#![allow(clippy::print_stdout, clippy::print_stderr)] // A CLI prints its report.

// The checker clones and drops millions of small states; mimalloc is markedly faster at it
// than the system allocator (ARCHITECTURE.md has the measurement).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use zab_model::chart::report::{self, Report};
use zab_model::checker::{self, CheckOptions, CheckReport};
use zab_model::path_file;
use zab_model::{Bug, Config, InitKind, WorkloadKind};
use zab_spec::ZnodeTxn;

#[derive(Parser)]
#[command(
    name = "zab-model",
    version,
    about = "Model-check Zab (ZooKeeper Atomic Broadcast) with Stateright"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explore every reachable state breadth-first and report the verdict.
    Check {
        #[command(flatten)]
        model: ModelArgs,
        /// Keep exploring after the first violation (report every broken invariant).
        #[arg(long)]
        keep_going: bool,
        /// Stop after this many seconds (the verdict is then "incomplete").
        #[arg(long)]
        timeout: Option<u64>,
        /// Depth-first search: needs memory only for state fingerprints, for deep bounds
        /// (counterexamples are then shortened by a second, breadth-first pass).
        #[arg(long)]
        dfs: bool,
        /// Address the printed Explorer links point at.
        #[arg(long, default_value = "127.0.0.1:3000")]
        explorer: String,
        /// On a counterexample, also write a self-contained HTML report here: the command
        /// that reproduces it, the bounds, the steps, the message sequence chart, the final
        /// state and the Explorer link.
        #[arg(long, value_name = "FILE.html")]
        report: Option<std::path::PathBuf>,
        /// On a counterexample, also write its path here in a machine-readable form (the
        /// configuration, the violated invariant, the Explorer encoding of the steps), for
        /// `zab-sim replay FILE` to drive the real server code along it.
        #[arg(long, value_name = "FILE")]
        path_out: Option<std::path::PathBuf>,
    },
    /// Random walks through the state space, reproducible from `--seed`.
    Simulate {
        #[command(flatten)]
        model: ModelArgs,
        /// Seed of the random walks.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop after visiting this many states.
        #[arg(long, default_value_t = 1_000_000)]
        states: usize,
        /// Stop after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
        /// Address the printed Explorer links point at.
        #[arg(long, default_value = "127.0.0.1:3000")]
        explorer: String,
        /// On a counterexample, also write a self-contained HTML report here.
        #[arg(long, value_name = "FILE.html")]
        report: Option<std::path::PathBuf>,
    },
    /// Serve the Stateright Explorer web UI for the configuration.
    Explore {
        #[command(flatten)]
        model: ModelArgs,
        /// Address to listen on (keep it on loopback: the Explorer has no authentication).
        #[arg(long, default_value = "127.0.0.1:3000")]
        addr: String,
    },
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Number of servers.
    #[arg(long, default_value_t = 3)]
    servers: u8,
    /// Client requests over the whole run.
    #[arg(long, default_value_t = 1)]
    txns: u8,
    /// Crashes (each followed by a restart) over the whole run.
    #[arg(long, default_value_t = 1)]
    crashes: u8,
    /// Partitions over the whole run.
    #[arg(long, default_value_t = 0)]
    partitions: u8,
    /// Leader timeouts before establishment over the whole run.
    #[arg(long, default_value_t = 1)]
    timeouts: u8,
    /// Snapshots over the whole run.
    #[arg(long, default_value_t = 1)]
    snapshots: u8,
    /// Storage faults over the whole run: a server restarts having lost its epoch files, a
    /// suffix of its fsynced log, or its whole data directory (spec/PROTOCOL.md §7.1).
    #[arg(long, default_value_t = 0)]
    storage_faults: u8,
    /// Largest epoch a leader may propose.
    #[arg(long, default_value_t = 2)]
    epochs: u32,
    /// Re-introduce a known ZooKeeper bug.
    #[arg(long, value_enum)]
    bug: Option<Bug>,
    /// The scripted client workload.
    #[arg(long, value_enum, default_value_t = WorkloadKind::Sessions)]
    workload: WorkloadKind,
    /// Where runs start: from scratch, or ZooKeeper's bug-hunting start (epoch 1 established).
    #[arg(long, value_enum, default_value_t = InitKind::Fresh)]
    init: InitKind,
    /// Observers (spec/PROTOCOL.md §10.2): the last N servers are observers, learners that
    /// never vote or acknowledge and count in no quorum (0 or 1).
    #[arg(long, default_value_t = 0)]
    observers: u8,
    /// Checker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

impl ModelArgs {
    fn config(&self) -> Result<Config, String> {
        let cfg = Config {
            servers: self.servers,
            txns: Some(self.txns),
            crashes: Some(self.crashes),
            partitions: Some(self.partitions),
            timeouts: Some(self.timeouts),
            snapshots: Some(self.snapshots),
            storage_faults: Some(self.storage_faults),
            epochs: Some(self.epochs),
            bug: self.bug,
            workload: self.workload,
            init: self.init,
            observers: self.observers,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn cli_flags(&self) -> String {
        let mut s = format!(
            "--servers {} --txns {} --crashes {} --partitions {} --timeouts {} --snapshots {} \
             --epochs {} --workload {}",
            self.servers,
            self.txns,
            self.crashes,
            self.partitions,
            self.timeouts,
            self.snapshots,
            self.epochs,
            match self.workload {
                WorkloadKind::Sessions => "sessions",
                WorkloadKind::Sequential => "sequential",
            }
        );
        if self.storage_faults > 0 {
            s.push_str(&format!(" --storage-faults {}", self.storage_faults));
        }
        if self.init == InitKind::Epoch1 {
            s.push_str(" --init epoch1");
        }
        if self.observers > 0 {
            s.push_str(&format!(" --observers {}", self.observers));
        }
        if let Some(b) = self.bug {
            s.push_str(&format!(" --bug {b}"));
        }
        s
    }
}

fn print_report(
    cfg: &Config,
    args: &ModelArgs,
    r: &CheckReport<ZnodeTxn>,
    explorer: &str,
) -> ExitCode {
    println!(
        "states={} unique={} depth={} seconds={:.2} states/s={:.0}",
        r.states,
        r.unique_states,
        r.depth,
        r.seconds,
        r.states as f64 / r.seconds.max(1e-9)
    );
    for d in &r.failures {
        println!();
        println!(
            "counterexample for {}",
            checker::format_discovery(cfg, d, &format!("http://{explorer}"))
        );
        println!(
            "re-open it: zab-model explore {} --addr {explorer}",
            args.cli_flags()
        );
    }
    if !r.examples_missing.is_empty() {
        println!("examples not reached: {}", r.examples_missing.join(", "));
    }
    println!("examples reached: {}", r.examples_found.join(", "));
    if !r.failures.is_empty() {
        println!("verdict: FAIL ({} violated)", r.failed().join(", "));
        ExitCode::from(1)
    } else if !r.complete {
        println!("verdict: INCOMPLETE (timed out before exhausting the bounded space)");
        ExitCode::from(2)
    } else {
        println!(
            "verdict: PASS (every invariant holds in all {} states)",
            r.unique_states
        );
        ExitCode::SUCCESS
    }
}

/// Writes the HTML report of `failures` to `path` (when asked for and there is a failure).
fn write_html(
    cfg: &Config,
    args: &ModelArgs,
    failures: &[checker::Discovery<ZnodeTxn>],
    explorer: &str,
    reproduce: &str,
    path: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    if failures.is_empty() {
        println!("no counterexample: no report written to {}", path.display());
        return Ok(());
    }
    let url = format!("http://{explorer}");
    let report = Report {
        title: format!(
            "zab-model: {} violated",
            failures
                .iter()
                .map(|d| d.property)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        commands: vec![
            ("Reproduce it:".into(), reproduce.to_string()),
            (
                "Open the Explorer (then follow the link of each counterexample):".into(),
                format!("zab-model explore {} --addr {explorer}", args.cli_flags()),
            ),
        ],
        bounds: report::pairs(&cfg.to_string()),
        cases: failures
            .iter()
            .map(|d| checker::discovery_case(cfg, d, &url))
            .collect(),
    };
    std::fs::write(&path, report.to_html())
        .map_err(|e| format!("cannot write the report {}: {e}", path.display()))?;
    println!("report: {}", path.display());
    Ok(())
}

/// Writes the first counterexample's path to `path` (when asked for and there is one), in the
/// form `zab-sim replay` reads (`zab_model::path_file`).
fn write_path(
    cfg: &Config,
    failures: &[checker::Discovery<ZnodeTxn>],
    path: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let Some(d) = failures.first() else {
        println!("no counterexample: no path written to {}", path.display());
        return Ok(());
    };
    let steps = path_file::parse_steps(&d.encoded).map_err(|e| e.to_string())?;
    let file = path_file::PathFile {
        config: cfg.clone(),
        violates: Some(d.property.to_string()),
        steps,
    };
    std::fs::write(&path, file.to_text())
        .map_err(|e| format!("cannot write the path {}: {e}", path.display()))?;
    println!(
        "path: {} (replay it: zab-sim replay {})",
        path.display(),
        path.display()
    );
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match &cli.command {
        Command::Check { model, .. }
        | Command::Simulate { model, .. }
        | Command::Explore { model, .. } => model.clone(),
    };
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(64);
        }
    };
    match cli.command {
        Command::Check {
            keep_going,
            timeout,
            dfs,
            explorer,
            report,
            path_out,
            ..
        } => {
            println!("zab-model check: {cfg} threads={}", args.threads);
            let opts = CheckOptions {
                threads: args.threads,
                timeout: timeout.map(Duration::from_secs),
                stop_at_first_failure: !keep_going,
                stop_at: None,
                max_steps: None,
                depth_first: dfs,
            };
            let r = checker::check(&cfg, &opts);
            let code = print_report(&cfg, &args, &r, &explorer);
            let reproduce = format!("zab-model check {}", args.cli_flags());
            if let Err(e) = write_path(&cfg, &r.failures, path_out) {
                eprintln!("error: {e}");
                return ExitCode::from(74);
            }
            match write_html(&cfg, &args, &r.failures, &explorer, &reproduce, report) {
                Ok(()) => code,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(74)
                }
            }
        }
        Command::Simulate {
            seed,
            states,
            timeout,
            explorer,
            report,
            ..
        } => {
            println!(
                "zab-model simulate: {cfg} seed={seed} threads={}",
                args.threads
            );
            let r = checker::simulate(
                &cfg,
                seed,
                states,
                args.threads,
                timeout.map(Duration::from_secs),
            );
            println!(
                "states={} unique={} depth={} seconds={:.2} states/s={:.0}",
                r.states,
                r.unique_states,
                r.depth,
                r.seconds,
                r.states as f64 / r.seconds.max(1e-9)
            );
            for d in &r.failures {
                println!();
                println!(
                    "counterexample for {}",
                    checker::format_discovery(&cfg, d, &format!("http://{explorer}"))
                );
            }
            println!("examples reached: {}", r.examples_found.join(", "));
            let reproduce = format!("zab-model simulate {} --seed {seed}", args.cli_flags());
            if let Err(e) = write_html(&cfg, &args, &r.failures, &explorer, &reproduce, report) {
                eprintln!("error: {e}");
                return ExitCode::from(74);
            }
            if r.failures.is_empty() {
                println!("verdict: no violation on the walks (seed {seed})");
                ExitCode::SUCCESS
            } else {
                println!(
                    "verdict: FAIL (reproduce: zab-model simulate {} --seed {seed})",
                    args.cli_flags()
                );
                ExitCode::from(1)
            }
        }
        Command::Explore { addr, .. } => {
            println!("Stateright Explorer for {cfg} on http://{addr}/");
            checker::explore(&cfg, &addr);
            ExitCode::SUCCESS
        }
    }
}
