//! `zabd`: the command line of the server — configuration (a ZooKeeper `zoo.cfg` or the embedded
//! standalone default), logging, and `--cluster-local N` which runs an N-server ensemble on
//! loopback as child processes.

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tracing::{error, info, warn};
use zab_server::config::{ServerConfig, load_zoo_cfg};
use zab_server::server::{self, RunOptions};
use zab_spec::ServerId;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// A Zab replica that speaks the ZooKeeper client protocol.
///
/// With no arguments, runs a standalone server on 127.0.0.1:2181 with its data in ./zab-data.
/// With a ZooKeeper `zoo.cfg` (positional or --config), runs as that file says, reading
/// `dataDir/myid` as ZooKeeper does.
#[derive(Debug, Parser)]
#[command(name = "zabd", version)]
struct Cli {
    /// A ZooKeeper configuration file (zoo.cfg).
    #[arg(value_name = "ZOO_CFG")]
    config_pos: Option<PathBuf>,
    /// A ZooKeeper configuration file (zoo.cfg).
    #[arg(long = "config", value_name = "ZOO_CFG", conflicts_with = "config_pos")]
    config: Option<PathBuf>,
    /// This server's id (overrides dataDir/myid).
    #[arg(long)]
    myid: Option<u64>,
    /// The data directory (overrides dataDir; also the log directory unless dataLogDir is set).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The client address (overrides clientPort/clientPortAddress).
    #[arg(long)]
    client_addr: Option<SocketAddr>,
    /// Serve Prometheus metrics on this address (/metrics).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    /// Append an NDJSON record of every protocol action to this file (for trace refinement).
    #[arg(long)]
    trace_file: Option<PathBuf>,
    /// Super user digest, `super:<base64 sha1>` (ZooKeeper's DigestAuthenticationProvider.superDigest).
    #[arg(long)]
    super_digest: Option<String>,
    /// How often the leader deletes empty container nodes, ms.
    #[arg(long)]
    container_check_ms: Option<i64>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Run an ensemble of N servers on 127.0.0.1 as child processes (client ports
    /// BASE_PORT+1..=BASE_PORT+N, quorum ports 12880+id, election ports 13880+id) with their data
    /// under --data-dir (default ./zab-cluster). Stops them all on Ctrl-C.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=9))]
    cluster_local: Option<u64>,
    /// The client port base for --cluster-local.
    #[arg(long, default_value_t = 2180, requires = "cluster_local")]
    base_port: u16,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn effective_config(cli: &Cli) -> anyhow::Result<ServerConfig> {
    let path = cli.config.as_ref().or(cli.config_pos.as_ref());
    let mut cfg = match path {
        Some(p) => {
            let (cfg, unknown) = load_zoo_cfg(p)?;
            for key in unknown {
                warn!(key, file = %p.display(), "ignoring a configuration key zabd does not use");
            }
            cfg
        }
        None => ServerConfig::standalone_default(),
    };
    if let Some(id) = cli.myid {
        cfg.myid = ServerId(id);
    }
    if let Some(dir) = &cli.data_dir {
        if cfg.data_log_dir == cfg.data_dir {
            cfg.data_log_dir.clone_from(dir);
        }
        cfg.data_dir.clone_from(dir);
    }
    if let Some(addr) = cli.client_addr {
        cfg.client_addr = addr;
        cfg.client_port_plaintext = true;
    }
    if cli.metrics_addr.is_some() {
        cfg.metrics_addr = cli.metrics_addr;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn write_local_cluster(root: &Path, n: u64, base_port: u16) -> anyhow::Result<Vec<PathBuf>> {
    let mut servers = String::new();
    for id in 1..=n {
        servers.push_str(&format!(
            "server.{id}=127.0.0.1:{}:{}\n",
            12880 + id,
            13880 + id
        ));
    }
    let mut paths = Vec::new();
    for id in 1..=n {
        let dir = root.join(format!("node{id}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let client_port = u64::from(base_port) + id;
        let cfg = format!(
            "# written by zabd --cluster-local\ntickTime=500\ninitLimit=10\nsyncLimit=5\n\
             dataDir={}\nclientPort={client_port}\nclientPortAddress=127.0.0.1\n\
             # the servers share a host: no AdminServer (it would default to port 8080 each)\n\
             admin.enableServer=false\n{servers}",
            dir.display()
        );
        let path = dir.join("zoo.cfg");
        std::fs::write(&path, cfg).with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::write(dir.join("myid"), format!("{id}\n"))
            .with_context(|| format!("cannot write {}/myid", dir.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

fn run_local_cluster(cli: &Cli, n: u64) -> anyhow::Result<()> {
    let root = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("zab-cluster"));
    let root = std::path::absolute(&root).unwrap_or(root);
    let configs = write_local_cluster(&root, n, cli.base_port)?;
    let exe = std::env::current_exe().context("cannot find the zabd executable")?;
    let mut children = Vec::new();
    for (k, cfg) in configs.iter().enumerate() {
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--config").arg(cfg);
        if let Some(t) = &cli.trace_file {
            cmd.arg("--trace-file")
                .arg(t.with_extension(format!("{}.ndjson", k + 1)));
        }
        if let LogFormat::Json = cli.log_format {
            cmd.arg("--log-format").arg("json");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start server {}", k + 1))?;
        info!(
            id = k + 1,
            pid = child.id(),
            client_port = u64::from(cli.base_port) + k as u64 + 1,
            "started"
        );
        children.push(child);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    for child in &mut children {
        // SIGTERM lets each server stop cleanly; the process group got SIGINT already.
        let _ = std::process::Command::new("kill")
            .arg(child.id().to_string())
            .status();
    }
    for child in &mut children {
        let _ = child.wait();
    }
    Ok(())
}

fn main() -> ExitCode {
    // `zabd import|export|inspect ...`: the offline tools (src/migrate/cli.rs).
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .and_then(|a| a.to_str())
        .is_some_and(|a| zab_server::migrate::cli::SUBCOMMANDS.contains(&a))
    {
        init_logging(LogFormat::Text);
        return zab_server::migrate::cli::main(args);
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    if let Some(n) = cli.cluster_local {
        return match run_local_cluster(&cli, n) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e:#}");
                ExitCode::from(1)
            }
        };
    }
    let cfg = match effective_config(&cli) {
        Ok(cfg) => cfg,
        Err(e) => {
            error!("configuration: {e:#}");
            return ExitCode::from(1);
        }
    };
    if cli.print_config {
        #[allow(clippy::print_stdout)]
        {
            println!("{cfg:#?}");
        }
        return ExitCode::SUCCESS;
    }
    let opts = RunOptions {
        trace_file: cli.trace_file.clone(),
        super_digest: cli.super_digest.clone(),
        container_check_ms: cli.container_check_ms,
    };
    match server::run(cfg, opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(2)
        }
    }
}
