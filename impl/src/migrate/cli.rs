//! The `zabd import`, `zabd export` and `zabd inspect` command lines (dispatched from
//! `bin/zabd.rs` when the first argument names one of them).

use super::{export, import};
use crate::config::load_zoo_cfg;
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// The subcommand names `zabd` dispatches here.
pub const SUBCOMMANDS: [&str; 3] = ["import", "export", "inspect"];

#[derive(Debug, Parser)]
#[command(name = "zabd", version, about = "zabd's offline tools")]
struct Tools {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct ZabDirs {
    /// The zabd data directory (as `dataDir` in zoo.cfg).
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    data_dir: Option<PathBuf>,
    /// Take the data directories from this zoo.cfg (`dataDir`, `dataLogDir`).
    #[arg(long, value_name = "ZOO_CFG")]
    config: Option<PathBuf>,
}

impl ZabDirs {
    /// `(dataDir, dataLogDir)`.
    fn resolve(&self) -> anyhow::Result<(PathBuf, PathBuf)> {
        match (&self.data_dir, &self.config) {
            (Some(d), _) => Ok((d.clone(), d.clone())),
            (None, Some(cfg)) => {
                let (c, _) = load_zoo_cfg(cfg)?;
                Ok((c.data_dir, c.data_log_dir))
            }
            (None, None) => anyhow::bail!("give --data-dir DIR or --config zoo.cfg"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import a stopped ZooKeeper 3.8 server's data (the newest valid snapshot and the
    /// transaction logs after it) into a zabd data directory that has no zabd state yet.
    Import {
        /// ZooKeeper's dataDir (holding version-2/snapshot.*); default: the zoo.cfg's dataDir.
        #[arg(long, value_name = "DIR")]
        from_zookeeper: Option<PathBuf>,
        /// ZooKeeper's dataLogDir (holding version-2/log.*), if not the dataDir; default: the
        /// zoo.cfg's dataLogDir.
        #[arg(long, value_name = "DIR")]
        zookeeper_log_dir: Option<PathBuf>,
        #[command(flatten)]
        dirs: ZabDirs,
    },
    /// Write a stopped zabd server's state as a ZooKeeper 3.8 dataDir (version-2/snapshot.*,
    /// acceptedEpoch, currentEpoch, myid), for going back to ZooKeeper.
    Export {
        /// The ZooKeeper dataDir to write (its version-2 must be empty or absent).
        #[arg(long, value_name = "DIR")]
        to_zookeeper: PathBuf,
        #[command(flatten)]
        dirs: ZabDirs,
    },
    /// Show the records of a zabd log segment or the nodes of a zabd snapshot.
    Inspect {
        /// What the file is.
        #[arg(value_enum)]
        kind: InspectKind,
        /// The file (`<dataDir>/zab-v1/log.*` or `snapshot.*`).
        file: PathBuf,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InspectKind {
    /// A log segment (`log.<first zxid>`).
    Log,
    /// A snapshot (`snapshot.<zxid>`).
    Snapshot,
}

fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

fn run(tools: Tools) -> anyhow::Result<()> {
    match tools.command {
        Command::Import {
            from_zookeeper,
            zookeeper_log_dir,
            dirs,
        } => {
            let (data_dir, data_log_dir) = dirs.resolve()?;
            let zk_data = from_zookeeper.clone().unwrap_or_else(|| data_dir.clone());
            let zk_log = zookeeper_log_dir
                .or_else(|| from_zookeeper.is_none().then(|| data_log_dir.clone()))
                .unwrap_or_else(|| zk_data.clone());
            let r = import::import(&zk_data, &zk_log, &data_dir, &data_log_dir)?;
            let mut text = String::new();
            for w in &r.restored.warnings {
                text.push_str(&format!("warning: {w}\n"));
            }
            text.push_str(&format!(
                "imported {} nodes and {} sessions from {} (zxid {}) and {} transactions after \
                 it from {} log file(s); last zxid {}\nwrote {} (acceptedEpoch {}, \
                 currentEpoch {}){}\n",
                r.restored.tree.node_count(),
                r.restored.tree.sessions().len(),
                r.restored.snapshot.display(),
                r.restored.snapshot_zxid,
                r.restored.txns,
                r.restored.logs.len(),
                r.restored.last_zxid,
                r.layout_dir.display(),
                r.epochs.0,
                r.epochs.1,
                if r.copied_myid { "; copied myid" } else { "" }
            ));
            out(&text);
        }
        Command::Export { to_zookeeper, dirs } => {
            let (data_dir, data_log_dir) = dirs.resolve()?;
            let e = export::export(&data_dir, &data_log_dir, &to_zookeeper)?;
            out(&format!(
                "exported {} nodes and {} sessions at zxid {} to {} (acceptedEpoch {}, \
                 currentEpoch {})\n",
                e.nodes,
                e.sessions,
                e.zxid,
                e.snapshot.display(),
                e.epochs.0,
                e.epochs.1
            ));
        }
        Command::Inspect { kind, file, json } => {
            let text = match kind {
                InspectKind::Log => crate::inspect::log(&file, json),
                InspectKind::Snapshot => crate::inspect::snapshot(&file, json),
            }
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            out(&text);
        }
    }
    Ok(())
}

/// Runs `zabd <import|export|inspect> ...` with `args` (the program name first): exit code 0 on
/// success, 1 with the error on stderr otherwise (2 for a usage error).
#[must_use]
pub fn main(args: Vec<std::ffi::OsString>) -> ExitCode {
    let tools = match Tools::try_parse_from(args) {
        Ok(t) => t,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(tools) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "zabd: {e:#}");
            ExitCode::from(1)
        }
    }
}
