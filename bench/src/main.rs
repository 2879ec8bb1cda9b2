//! `zab-bench`: a load generator for any ZooKeeper-protocol ensemble (zabd or Apache
//! ZooKeeper) and the report of the side-by-side benchmark. The command line lives here; the
//! engine in `load`, the protocol session in `session`, failover and restart probes in
//! `probe`, JSON shapes in `result`, the Markdown report in `report`, the charts in `plot`.

mod breakdown;
mod floor;
mod load;
mod plot;
mod probe;
mod report;
mod result;
mod session;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use load::{Spec, Workload};
use result::{Extra, ResultFile, RunResult};
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tracing::{error, info, warn};

/// Load generator and benchmark report for ZooKeeper-protocol ensembles (zabd, Apache
/// ZooKeeper).
///
/// Speaks the ZooKeeper client protocol directly (jute frames over tokio, pipelined, one task
/// per session), so it drives any ensemble: sessions are spread round-robin over the servers
/// given with --servers. Latencies are recorded in HdrHistograms (1 µs .. 10 min, 3
/// significant digits) and reported as p50 / p90 / p99 / p99.9 / max.
///
/// Closed loop (default): every session keeps --depth requests outstanding; latency is from
/// send to reply. Open loop (--rate): requests are due on a fixed schedule (the total rate
/// split evenly over sessions) and latency is measured from the *intended* send time, so a
/// server stall shows up in the percentiles instead of slowing the load down (no coordinated
/// omission).
///
/// The benchmark nodes live under /zab-bench: keys /zab-bench/k/<i> (created by the set-up,
/// value --payload bytes), created nodes under /zab-bench/c.
#[derive(Debug, Parser)]
#[command(name = "zab-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Worker threads of the load generator's tokio runtime (default: the number of CPUs).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Connect over TLS (the servers' `secureClientPort`s), trusting this CA (PEM); needs
    /// --tls-cert and --tls-key, the client certificate and key (PEM).
    #[arg(long, global = true, requires_all = ["tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// The client certificate presented over TLS (PEM).
    #[arg(long, global = true)]
    tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true)]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one workload and print (or write as JSON) its throughput and latency.
    Run(RunArgs),
    /// Run a sweep (single-operation workloads, read/write mixes over read ratios and
    /// concurrencies, open-loop rates) and write every result to one JSON file.
    Sweep(SweepArgs),
    /// kill -9 a process (the leader), then time the first successful write through any
    /// server (a new session per attempt, all servers tried in parallel).
    Failover(FailoverArgs),
    /// Wait until servers serve (their `srvr` names a mode); print the time waited, or the
    /// time since --since-unix-ns.
    WaitServing(WaitArgs),
    /// Print the 1-based position in --servers of the server whose `srvr` says leader.
    Leader(ServersArg),
    /// Measure the physical floor of a quorum write here: 1 KiB append + fdatasync on a
    /// directory's disk, and the loopback TCP round trip; floor = fdatasync p50 + 2 × RTT p50.
    Floor(FloorArgs),
    /// Create a tree of --znodes nodes with --payload-byte values under --parents parents
    /// (the memory benchmark's, `ci/bench-memory.sh`); print how many were created.
    Populate(PopulateArgs),
    /// Write the Markdown report (medians over rounds, ratios) and the plots from a
    /// directory of sweep files (*.json) and extra measurements (*.ndjson).
    Report(ReportArgs),
    /// Write only the plots (SVG) from a directory of sweep files.
    Plot(PlotArgs),
}

#[derive(Debug, Args)]
struct PopulateArgs {
    #[command(flatten)]
    servers: ServersArg,
    /// The parent of the parents.
    #[arg(long, default_value = "/zab-mem")]
    root: String,
    /// Parents (ROOT/pNNNN).
    #[arg(long, default_value_t = 1000)]
    parents: usize,
    /// Children in all, spread evenly over the parents.
    #[arg(long, default_value_t = 100_000)]
    znodes: usize,
    /// Value size, bytes.
    #[arg(long, default_value_t = 100)]
    payload: usize,
    /// Creates in flight.
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Longest wait for a reply.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    io_timeout: Duration,
}

#[derive(Debug, Args)]
struct ServersArg {
    /// The ensemble: comma-separated host:port client addresses.
    #[arg(long, short = 's', value_delimiter = ',', required = true)]
    servers: Vec<String>,
}

#[derive(Debug, Args)]
struct LoadArgs {
    /// Value size of setData / create and of the keys, bytes.
    #[arg(long, default_value_t = 1024)]
    payload: usize,
    /// Number of keys read and written (/zab-bench/k/0 .. N-1).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
    /// Warm-up before measuring (e.g. 2s, 500ms); operations due then are not measured.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Longest wait for any reply before a session (and the run) fails.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    io_timeout: Duration,
    /// Session timeout to ask for, ms.
    #[arg(long, default_value_t = 30_000)]
    session_timeout_ms: i32,
    /// Open loop: most requests outstanding per session; requests due beyond it are counted
    /// as dropped instead of sent.
    #[arg(long, default_value_t = 10_000)]
    max_outstanding: usize,
    /// Skip creating /zab-bench and the keys (they exist already).
    #[arg(long)]
    no_setup: bool,
    /// Never show the progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    no_progress: bool,
    /// zabd's metrics endpoints (host:port, comma-separated): their write-path breakdown
    /// (`GET /latency`) is read before and after each run and the difference printed and
    /// stored with the run.
    #[arg(long, value_delimiter = ',')]
    breakdown: Vec<String>,
    /// Put the leader first in the server list (sessions are spread round-robin from the
    /// first, so a single session talks to the leader: one peer round trip per write).
    #[arg(long)]
    leader_first: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    servers: ServersArg,
    /// What each operation does.
    #[arg(long, short = 'w', value_enum, default_value_t = Workload::Mix)]
    workload: Workload,
    /// Mix: percentage of operations that are reads (getData); the rest are setData.
    #[arg(long, default_value_t = 90.0)]
    read_pct: f64,
    /// Sessions, spread round-robin over the servers.
    #[arg(long, short = 'c', default_value_t = 16)]
    clients: usize,
    /// Closed loop: requests outstanding per session (pipelining depth).
    #[arg(long, short = 'd', default_value_t = 1)]
    depth: usize,
    /// Open loop: target rate in operations per second over all sessions.
    #[arg(long)]
    rate: Option<f64>,
    /// Measured duration after the warm-up (e.g. 10s, 1m).
    #[arg(long, value_parser = parse_duration, conflicts_with = "ops")]
    duration: Option<Duration>,
    /// Measured operation count after the warm-up (instead of --duration).
    #[arg(long)]
    ops: Option<u64>,
    #[command(flatten)]
    load: LoadArgs,
    /// Write the result as JSON to this file.
    #[arg(long, short = 'o')]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SweepArgs {
    #[command(flatten)]
    servers: ServersArg,
    /// The system's name in the results (e.g. zabd, zookeeper).
    #[arg(long)]
    system: String,
    /// The round number in the results.
    #[arg(long, default_value_t = 1)]
    round: u32,
    /// Single-operation workloads, each run at every --concurrency.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "create,set,get,exists"
    )]
    workloads: Vec<Workload>,
    /// Read percentages of the read/write mix, each run at every --concurrency (empty: none).
    #[arg(long, value_delimiter = ',', default_value = "0,50,90,99,100")]
    read_ratios: Vec<f64>,
    /// Concurrency levels, SESSIONSxDEPTH (e.g. 1x1,32x8).
    #[arg(long, value_delimiter = ',', default_value = "1x1,32x8")]
    concurrency: Vec<String>,
    /// Open-loop target rates (ops/s in total) of a read/write mix (empty: none).
    #[arg(long, value_delimiter = ',')]
    open_rates: Vec<f64>,
    /// Read percentage of the open-loop runs.
    #[arg(long, default_value_t = 90.0)]
    open_read_pct: f64,
    /// Sessions of the open-loop runs.
    #[arg(long, default_value_t = 16)]
    open_clients: usize,
    /// Measured duration of each run.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[command(flatten)]
    load: LoadArgs,
    /// The JSON file to write.
    #[arg(long, short = 'o')]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct RecordArgs {
    /// Append the measurement as a JSON line to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// System name for --record.
    #[arg(long, default_value = "unknown")]
    system: String,
    /// Round number for --record.
    #[arg(long, default_value_t = 1)]
    round: u32,
}

#[derive(Debug, Args)]
struct FailoverArgs {
    #[command(flatten)]
    servers: ServersArg,
    /// The process to kill -9 (the leader's pid).
    #[arg(long)]
    pid: i32,
    /// The node written (created first if missing).
    #[arg(long, default_value = "/zab-bench-failover")]
    path: String,
    /// Give up after this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    timeout: Duration,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Debug, Args)]
struct WaitArgs {
    #[command(flatten)]
    servers: ServersArg,
    /// Also require exactly one of the servers to lead.
    #[arg(long)]
    one_leader: bool,
    /// Report the time since this instant (nanoseconds since the Unix epoch, `date +%s%N`)
    /// instead of the time waited.
    #[arg(long)]
    since_unix_ns: Option<u128>,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    timeout: Duration,
    /// Measurement name for --record.
    #[arg(long, default_value = "serving_ms")]
    name: String,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Debug, Args)]
struct FloorArgs {
    /// A directory on the disk to measure (the servers' data directory's disk).
    #[arg(long)]
    dir: PathBuf,
    /// How long to measure each part.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    duration: Duration,
    #[command(flatten)]
    record: RecordArgs,
}

#[derive(Debug, Args)]
struct PlotArgs {
    /// The directory of sweep files (*.json).
    #[arg(long)]
    raw: PathBuf,
    /// Where the SVG files go.
    #[arg(long)]
    out_dir: PathBuf,
    /// The two systems compared (ratios are first / second).
    #[arg(long, value_delimiter = ',', default_value = "zabd,zookeeper")]
    systems: Vec<String>,
}

#[derive(Debug, Args)]
struct ReportArgs {
    #[command(flatten)]
    plot: PlotArgs,
    /// The Markdown file to write.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// The date line (default: now, UTC, as seconds since the epoch).
    #[arg(long)]
    date: Option<String>,
    /// A Markdown file about the settings, included after the header.
    #[arg(long)]
    notes: Option<PathBuf>,
    /// A Markdown file with the analysis, appended at the end.
    #[arg(long)]
    analysis: Option<PathBuf>,
    /// The report's title.
    #[arg(
        long,
        default_value = "zabd vs Apache ZooKeeper 3.8: benchmark results"
    )]
    title: String,
}

/// Parses `10s`, `500ms`, `2m`, `1.5s`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("not a duration: {s:?} (use e.g. 10s, 500ms, 2m)"))?;
    if !(v.is_finite() && v >= 0.0) {
        return Err(format!("not a duration: {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * mul))
}

fn resolve(servers: &[String]) -> anyhow::Result<Vec<SocketAddr>> {
    servers
        .iter()
        .map(|s| {
            s.to_socket_addrs()
                .with_context(|| format!("bad server address {s:?}"))?
                .next()
                .ok_or_else(|| anyhow!("{s:?} resolves to nothing"))
        })
        .collect()
}

fn parse_concurrency(s: &str) -> anyhow::Result<(usize, usize)> {
    let (c, d) = s
        .split_once('x')
        .ok_or_else(|| anyhow!("concurrency {s:?}: expected SESSIONSxDEPTH, e.g. 32x8"))?;
    Ok((c.trim().parse()?, d.trim().parse()?))
}

fn base_spec(l: &LoadArgs) -> Spec {
    Spec {
        workload: Workload::Mix,
        read_pct: 0.0,
        clients: 1,
        depth: 1,
        payload: l.payload,
        keys: l.keys,
        rate: None,
        max_outstanding: l.max_outstanding,
        warmup: l.warmup,
        duration: None,
        ops: None,
        io_timeout: l.io_timeout,
        session_timeout_ms: l.session_timeout_ms,
        progress: !l.no_progress,
    }
}

#[allow(clippy::print_stdout)]
fn print_run(r: &RunResult) {
    let rate = r
        .target_rate
        .map(|t| format!(" (target {t:.0}/s, dropped {})", r.dropped))
        .unwrap_or_default();
    let load = r
        .loadavg
        .map(|l| format!("  load {l:.2}"))
        .unwrap_or_default();
    let pings = if r.pings > 0 {
        format!(" pings {}", r.pings)
    } else {
        String::new()
    };
    println!(
        "{:<28} {:>10.0} ops/s  p50 {:>8.3} ms  p99 {:>8.3} ms  p99.9 {:>8.3} ms  max {:>8.3} ms  ops {} errors {}{pings}{rate}{load}",
        r.key,
        r.throughput,
        r.latency.p50_us / 1e3,
        r.latency.p99_us / 1e3,
        r.latency.p999_us / 1e3,
        r.latency.max_us / 1e3,
        r.ops,
        r.errors
    );
    for l in breakdown::lines(&r.breakdown) {
        println!("{l}");
    }
}

/// The servers with the leader first (`--leader-first`), else as given.
async fn ordered(servers: Vec<SocketAddr>, leader_first: bool) -> Vec<SocketAddr> {
    if !leader_first {
        return servers;
    }
    let modes = probe::modes(&servers).await;
    match modes.iter().position(|m| m.as_deref() == Some("leader")) {
        Some(k) => {
            let mut s = servers;
            s.rotate_left(k);
            s
        }
        None => {
            warn!("--leader-first: no server says it leads; keeping the order given");
            servers
        }
    }
}

/// One run with the load average at its start and, given endpoints, zabd's breakdown over
/// the measured window (the first snapshot is taken when the warm-up ends).
async fn measured_run(
    servers: &[SocketAddr],
    spec: &Spec,
    endpoints: &[SocketAddr],
) -> anyhow::Result<RunResult> {
    let loadavg = result::loadavg();
    let before = (!endpoints.is_empty()).then(|| {
        let (endpoints, warmup) = (endpoints.to_vec(), spec.warmup);
        tokio::spawn(async move {
            tokio::time::sleep(warmup).await;
            breakdown::snapshot(&endpoints).await
        })
    });
    let mut r = load::run(servers, spec).await?;
    r.loadavg = loadavg;
    if let Some(before) = before {
        let before = match before.await {
            Ok(b) => b,
            Err(e) => Err(anyhow!("{e}")),
        };
        match (before, breakdown::snapshot(endpoints).await) {
            (Ok(before), Ok(after)) => r.breakdown = breakdown::between(&before, &after),
            (Err(e), _) | (_, Err(e)) => warn!("no breakdown for this run: {e:#}"),
        }
    }
    Ok(r)
}

#[allow(clippy::print_stdout)]
fn print_line(s: &str) {
    println!("{s}");
}

async fn cmd_run(a: RunArgs) -> anyhow::Result<()> {
    let servers = ordered(resolve(&a.servers.servers)?, a.load.leader_first).await;
    let endpoints = resolve(&a.load.breakdown)?;
    let mut spec = base_spec(&a.load);
    spec.workload = a.workload;
    spec.read_pct = a.read_pct;
    spec.clients = a.clients;
    spec.depth = a.depth;
    spec.rate = a.rate;
    spec.ops = a.ops;
    spec.duration = match (a.duration, a.ops) {
        (Some(d), _) => Some(d),
        (None, None) => Some(Duration::from_secs(10)),
        (None, Some(_)) => None,
    };
    if !a.load.no_setup {
        load::setup(&servers, &spec).await.context("set-up")?;
    }
    let r = measured_run(&servers, &spec, &endpoints).await?;
    print_run(&r);
    if let Some(out) = a.out {
        std::fs::write(&out, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

async fn cmd_sweep(a: SweepArgs) -> anyhow::Result<()> {
    let servers = ordered(resolve(&a.servers.servers)?, a.load.leader_first).await;
    let endpoints = resolve(&a.load.breakdown)?;
    let concs = a
        .concurrency
        .iter()
        .map(|s| parse_concurrency(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let base = {
        let mut s = base_spec(&a.load);
        s.duration = Some(a.duration);
        s
    };
    let mut specs = Vec::new();
    for &(c, d) in &concs {
        for &w in &a.workloads {
            specs.push(Spec {
                workload: w,
                clients: c,
                depth: d,
                ..base.clone()
            });
        }
        for &r in &a.read_ratios {
            specs.push(Spec {
                workload: Workload::Mix,
                read_pct: r,
                clients: c,
                depth: d,
                ..base.clone()
            });
        }
    }
    for &rate in &a.open_rates {
        specs.push(Spec {
            workload: Workload::Mix,
            read_pct: a.open_read_pct,
            clients: a.open_clients,
            depth: 1,
            rate: Some(rate),
            ..base.clone()
        });
    }
    if !a.load.no_setup {
        load::setup(&servers, &base).await.context("set-up")?;
    }
    let mut file = ResultFile {
        system: a.system.clone(),
        round: a.round,
        servers: a.servers.servers.clone(),
        loadavg_before: result::loadavg(),
        loadavg_after: None,
        runs: Vec::new(),
    };
    let total = specs.len();
    for (i, spec) in specs.iter().enumerate() {
        info!(system = %a.system, round = a.round, run = %spec.key(), "run {}/{total}", i + 1);
        match measured_run(&servers, spec, &endpoints).await {
            Ok(r) => {
                print_run(&r);
                file.runs.push(r);
            }
            Err(e) => {
                error!(run = %spec.key(), "run failed: {e:#}");
                print_line(&format!("{:<28} FAILED: {e:#}", spec.key()));
            }
        }
        // Let the servers settle (snapshots, GC) between runs.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    file.loadavg_after = result::loadavg();
    std::fs::write(&a.out, serde_json::to_string_pretty(&file)?)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if file.runs.len() < total {
        warn!(
            failed = total - file.runs.len(),
            "some runs failed (left out of the file)"
        );
    }
    Ok(())
}

fn record(r: &RecordArgs, name: &str, value: f64, unit: &str) -> anyhow::Result<()> {
    if let Some(p) = &r.record {
        result::append_extra(
            p,
            &Extra {
                system: r.system.clone(),
                round: r.round,
                name: name.into(),
                value,
                unit: unit.into(),
            },
        )?;
    }
    Ok(())
}

async fn cmd_failover(a: FailoverArgs) -> anyhow::Result<()> {
    let servers = resolve(&a.servers.servers)?;
    let d = probe::failover(&servers, a.pid, &a.path, a.timeout).await?;
    let ms = d.as_secs_f64() * 1e3;
    print_line(&format!("first successful write {ms:.1} ms after kill -9"));
    record(&a.record, "failover_ms", ms, "ms")
}

async fn cmd_wait(a: WaitArgs) -> anyhow::Result<()> {
    let servers = resolve(&a.servers.servers)?;
    let waited = probe::wait_serving(&servers, a.one_leader, a.timeout).await?;
    let ms = match a.since_unix_ns {
        Some(t) => probe::ms_since_unix_ns(t),
        None => waited.as_secs_f64() * 1e3,
    };
    print_line(&format!("{ms:.1}"));
    record(&a.record, &a.name, ms, "ms")
}

fn cmd_floor(a: &FloorArgs) -> anyhow::Result<()> {
    let f = floor::measure(&a.dir, a.duration)?;
    print_line(&format!(
        "floor: fdatasync (1 KiB append) 3 at once p50 {:.0} µs p99 {:.0} µs, alone p50 {:.0} µs p99 {:.0} µs; \
         loopback round trip p50 {:.0} µs p99 {:.0} µs; \
         quorum write floor (fdatasync 3-at-once p50 + 2 × RTT p50) {:.0} µs; load {}",
        f.fdatasync.0,
        f.fdatasync.1,
        f.fdatasync_alone.0,
        f.fdatasync_alone.1,
        f.rtt.0,
        f.rtt.1,
        f.quorum_write,
        result::loadavg().map_or("?".into(), |l| format!("{l:.2}"))
    ));
    for (name, v) in [
        ("floor_fdatasync_p50_us", f.fdatasync.0),
        ("floor_fdatasync_p99_us", f.fdatasync.1),
        ("floor_fdatasync_alone_p50_us", f.fdatasync_alone.0),
        ("floor_fdatasync_alone_p99_us", f.fdatasync_alone.1),
        ("floor_loopback_rtt_p50_us", f.rtt.0),
        ("floor_loopback_rtt_p99_us", f.rtt.1),
        ("floor_quorum_write_us", f.quorum_write),
    ] {
        record(&a.record, name, v, "µs")?;
    }
    Ok(())
}

async fn cmd_populate(a: PopulateArgs) -> anyhow::Result<()> {
    let servers = resolve(&a.servers.servers)?;
    let made = load::populate(
        &servers,
        &a.root,
        a.parents,
        a.znodes,
        a.payload,
        a.window,
        a.io_timeout,
    )
    .await?;
    print_line(&made.to_string());
    Ok(())
}

async fn cmd_leader(a: ServersArg) -> anyhow::Result<()> {
    let servers = resolve(&a.servers)?;
    let modes = probe::modes(&servers).await;
    let leaders: Vec<usize> = modes
        .iter()
        .enumerate()
        .filter(|(_, m)| matches!(m.as_deref(), Some("leader" | "standalone")))
        .map(|(i, _)| i + 1)
        .collect();
    match leaders.as_slice() {
        [one] => {
            print_line(&one.to_string());
            Ok(())
        }
        _ => bail!("no single leader: {modes:?}"),
    }
}

fn systems(v: &[String]) -> anyhow::Result<[&str; 2]> {
    match v {
        [a, b] => Ok([a.as_str(), b.as_str()]),
        _ => bail!("--systems takes exactly two names"),
    }
}

fn cmd_plot(a: &PlotArgs) -> anyhow::Result<Vec<String>> {
    let c = report::collect(&a.raw)?;
    std::fs::create_dir_all(&a.out_dir)?;
    plot::plot(&c, systems(&a.systems)?, &a.out_dir)
}

fn cmd_report(a: &ReportArgs) -> anyhow::Result<()> {
    let c = report::collect(&a.plot.raw)?;
    let plots = cmd_plot(&a.plot)?;
    let date = a.date.clone().unwrap_or_else(|| {
        let s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        format!("{s} (Unix time)")
    });
    let read = |p: &Option<PathBuf>| -> anyhow::Result<Option<String>> {
        p.as_ref()
            .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
            .transpose()
    };
    // Plot paths relative to the report.
    let rel = |name: &String| -> String {
        let full = a.plot.out_dir.join(name);
        match a.out.parent() {
            Some(parent) => full
                .strip_prefix(parent)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| full.display().to_string()),
            None => full.display().to_string(),
        }
    };
    let md = report::render(
        &c,
        &report::ReportOptions {
            systems: systems(&a.plot.systems)?,
            date: &date,
            notes: read(&a.notes)?,
            analysis: read(&a.analysis)?,
            plots: plots.iter().map(rel).collect(),
            title: &a.title,
        },
    );
    std::fs::write(&a.out, md).with_context(|| format!("writing {}", a.out.display()))?;
    print_line(&format!("wrote {}", a.out.display()));
    Ok(())
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let (Some(ca), Some(cert), Some(key)) = (&cli.tls_ca, &cli.tls_cert, &cli.tls_key) {
        if let Err(e) = session::init_tls(ca, cert, key) {
            error!("cannot set up TLS: {e:#}");
            return ExitCode::from(2);
        }
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = cli.threads {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let r = rt.block_on(async {
        match cli.command {
            Command::Run(a) => cmd_run(a).await,
            Command::Sweep(a) => cmd_sweep(a).await,
            Command::Failover(a) => cmd_failover(a).await,
            Command::WaitServing(a) => cmd_wait(a).await,
            Command::Leader(a) => cmd_leader(a).await,
            Command::Floor(a) => cmd_floor(&a),
            Command::Populate(a) => cmd_populate(a).await,
            Command::Report(a) => cmd_report(&a),
            Command::Plot(a) => cmd_plot(&a).map(|files| {
                for f in files {
                    print_line(&format!("wrote {}", a.out_dir.join(f).display()));
                }
            }),
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn medians() {
        assert_eq!(report::median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(report::median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(report::median(&[]), None);
    }

    #[test]
    fn concurrency_parses() {
        assert_eq!(parse_concurrency("32x8").ok(), Some((32, 8)));
        assert!(parse_concurrency("32").is_err());
    }
}
