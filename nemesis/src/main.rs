//! The `zab-nemesis` CLI: `run` (a seeded round or a soak, against zabd, ZooKeeper or both),
//! `self-test` (the checkers against known-bad histories), `cleanup` (namespaces of an
//! earlier run), and `eph-holder` (a client process owning one ephemeral node, used by `run`).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;
use zab_nemesis::check;
use zab_nemesis::cluster::{Launcher, System};
use zab_nemesis::report;
use zab_nemesis::run::{self, INTERRUPTED, Options, Schedule};
use zab_nemesis::topology::{self, DEFAULT_PREFIX};

/// Default class path of Debian's ZooKeeper 3.8 (as ci/differential.sh starts it).
const ZK_CLASSPATH: &str = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:\
/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-api.jar:\
/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar";

#[derive(Parser)]
#[command(
    name = "zab-nemesis",
    about = "Jepsen-style fault injection against zabd and ZooKeeper (root: network namespaces)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Which {
    Zabd,
    Zookeeper,
    Both,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the suite: every nemesis once (default) or a random soak.
    Run {
        /// The system under test (`both`: zabd, then ZooKeeper with the same seed).
        #[arg(long, value_enum, default_value = "zabd")]
        system: Which,
        /// Seed of every random choice (schedule, victims, workloads).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Soak for this many minutes of random faults instead of one round.
        #[arg(long)]
        soak: Option<f64>,
        /// Run only these nemeses, once each, in order (comma-separated names, e.g.
        /// `kill-leader,storage-epoch-quorum`); `storage-epoch-quorum` runs only this way.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Duration of each fault of the round, seconds.
        #[arg(long, default_value_t = 4.0)]
        fault_secs: f64,
        /// Quiet time after each recovery, seconds.
        #[arg(long, default_value_t = 1.0)]
        quiet_secs: f64,
        /// Number of servers.
        #[arg(long, default_value_t = 3)]
        servers: u64,
        /// Where run folders go (one per system and seed).
        #[arg(long, default_value = "target/nemesis")]
        out: PathBuf,
        /// zabd binary (default: next to this binary).
        #[arg(long)]
        zabd: Option<PathBuf>,
        /// ZooKeeper's class path.
        #[arg(long, default_value = ZK_CLASSPATH)]
        zk_classpath: String,
        /// Namespace name prefix.
        #[arg(long, default_value = DEFAULT_PREFIX)]
        prefix: String,
    },
    /// The damage matrix: each kind of damage to one server of a 3-node ensemble under writes,
    /// restarts in adversarial orders, acknowledged writes lost counted (README "Damaged
    /// disks"). Exit 1 when a zabd row loses an acknowledged write or does not serve again.
    Damage {
        /// The system(s) under test (`both`: zabd's rows, then ZooKeeper's).
        #[arg(long, value_enum, default_value = "zabd")]
        system: Which,
        /// The rows (comma-separated): epoch-files, current-epoch, flip-last, flip-middle,
        /// truncate, snapshot, wipe (default: all).
        #[arg(long, value_delimiter = ',')]
        rows: Vec<String>,
        /// Restart orders (comma-separated): bc-a (damaged B and lagging C first, intact A
        /// last), ab-c, all.
        #[arg(long, value_delimiter = ',', default_value = "bc-a")]
        orders: Vec<String>,
        /// Seed (which follower is damaged).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Seconds of writes before C stops, while it is down, and after recovery.
        #[arg(long, default_value_t = 3.0)]
        load_secs: f64,
        /// Seconds the first restarted servers are alone.
        #[arg(long, default_value_t = 12.0)]
        window_secs: f64,
        /// Where row folders and the table go.
        #[arg(long, default_value = "target/damage")]
        out: PathBuf,
        /// zabd binary (default: next to this binary).
        #[arg(long)]
        zabd: Option<PathBuf>,
        /// ZooKeeper's class path.
        #[arg(long, default_value = ZK_CLASSPATH)]
        zk_classpath: String,
        /// Namespace name prefix.
        #[arg(long, default_value = zab_nemesis::damage::DAMAGE_PREFIX)]
        prefix: String,
    },
    /// Feeds the checkers known non-linearizable and lossy histories; fails unless all are
    /// rejected (and the good ones accepted).
    SelfTest,
    /// Removes the namespaces (and the processes in them) of an earlier run.
    Cleanup {
        #[arg(long, default_value = DEFAULT_PREFIX)]
        prefix: String,
    },
    /// (internal) A client owning one ephemeral node until killed.
    EphHolder {
        #[arg(long)]
        hosts: String,
        #[arg(long)]
        path: String,
    },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "zab_nemesis=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::SelfTest => match check::self_test() {
            Ok(lines) => {
                for l in lines {
                    println!("ok  {l}");
                }
                0
            }
            Err(e) => {
                eprintln!("self-test FAILED: {e}");
                2
            }
        },
        Cmd::Cleanup { prefix } => match topology::cleanup_prefix(&prefix) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cleanup: {e:#}");
                1
            }
        },
        Cmd::EphHolder { hosts, path } => eph_holder(&hosts, &path),
        Cmd::Damage {
            system,
            rows,
            orders,
            seed,
            load_secs,
            window_secs,
            out,
            zabd,
            zk_classpath,
            prefix,
        } => {
            let a = DamageArgs {
                rows,
                orders,
                seed,
                load: Duration::from_secs_f64(load_secs),
                window: Duration::from_secs_f64(window_secs),
                out,
                zabd,
                zk_classpath,
                prefix,
            };
            match damage_cmd(system, &a) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("zab-nemesis damage: {e:#}");
                    if INTERRUPTED.load(Ordering::Relaxed) {
                        130
                    } else {
                        2
                    }
                }
            }
        }
        Cmd::Run {
            system,
            seed,
            soak,
            only,
            fault_secs,
            quiet_secs,
            servers,
            out,
            zabd,
            zk_classpath,
            prefix,
        } => {
            let mut kinds = Vec::new();
            for name in &only {
                match zab_nemesis::nemesis::Kind::parse(name) {
                    Some(k) => kinds.push(k),
                    None => {
                        eprintln!("unknown nemesis {name:?}");
                        std::process::exit(64);
                    }
                }
            }
            let args = RunArgs {
                seed,
                soak,
                only: kinds,
                fault: Duration::from_secs_f64(fault_secs),
                quiet: Duration::from_secs_f64(quiet_secs),
                servers,
                out,
                zabd,
                zk_classpath,
                prefix,
            };
            match run_cmd(system, &args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("zab-nemesis: {e:#}");
                    if INTERRUPTED.load(Ordering::Relaxed) {
                        130
                    } else {
                        2
                    }
                }
            }
        }
    };
    std::process::exit(code);
}

struct RunArgs {
    seed: u64,
    soak: Option<f64>,
    only: Vec<zab_nemesis::nemesis::Kind>,
    fault: Duration,
    quiet: Duration,
    servers: u64,
    out: PathBuf,
    zabd: Option<PathBuf>,
    zk_classpath: String,
    prefix: String,
}

struct DamageArgs {
    rows: Vec<String>,
    orders: Vec<String>,
    seed: u64,
    load: Duration,
    window: Duration,
    out: PathBuf,
    zabd: Option<PathBuf>,
    zk_classpath: String,
    prefix: String,
}

fn damage_cmd(which: Which, a: &DamageArgs) -> Result<i32> {
    use zab_nemesis::damage::{self, Kind, Order};
    let mut kinds = Vec::new();
    for r in &a.rows {
        kinds.push(Kind::parse(r).with_context(|| format!("unknown row {r:?}"))?);
    }
    if kinds.is_empty() {
        kinds = damage::ALL.to_vec();
    }
    let mut orders = Vec::new();
    for o in &a.orders {
        orders.push(Order::parse(o).with_context(|| format!("unknown order {o:?}"))?);
    }
    install_signal_thread()?;
    let exe = std::env::current_exe().context("current_exe")?;
    let zabd = a.zabd.clone().unwrap_or_else(|| exe.with_file_name("zabd"));
    let systems: Vec<System> = match which {
        Which::Zabd => vec![System::Zabd],
        Which::Zookeeper => vec![System::Zookeeper],
        Which::Both => vec![System::Zabd, System::Zookeeper],
    };
    if systems.contains(&System::Zabd) && !zabd.exists() {
        anyhow::bail!("no zabd at {} (build it or pass --zabd)", zabd.display());
    }
    let load_avg = || {
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let started = std::time::SystemTime::now();
    let before = load_avg();
    let mut rows = Vec::new();
    for system in systems {
        let opts = damage::Options {
            launcher: Launcher {
                system,
                zabd: zabd.clone(),
                zk_classpath: a.zk_classpath.clone(),
            },
            kinds: kinds.clone(),
            orders: orders.clone(),
            seed: a.seed,
            load: a.load,
            window: a.window,
            out: a.out.clone(),
            prefix: a.prefix.clone(),
        };
        rows.extend(damage::run(&opts)?);
    }
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    let order_names: Vec<&str> = orders.iter().map(|o| o.name()).collect();
    let t = format!(
        "zab-nemesis damage --system {} --rows {} --orders {} --seed {} --load-secs {} \
         --window-secs {}: {} rows in {:.0} s, started {}, load average {} before, {} after\n\n{}",
        match which {
            Which::Zabd => "zabd",
            Which::Zookeeper => "zookeeper",
            Which::Both => "both",
        },
        names.join(","),
        order_names.join(","),
        a.seed,
        a.load.as_secs_f64(),
        a.window.as_secs_f64(),
        rows.len(),
        started.elapsed().map_or(0.0, |d| d.as_secs_f64()),
        damage::utc(
            started
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        ),
        before,
        load_avg(),
        damage::table(&rows)
    );
    println!("{t}");
    let _ = std::fs::create_dir_all(&a.out);
    let _ = std::fs::write(a.out.join("table.md"), &t);
    let failed: Vec<_> = rows
        .iter()
        .filter(|r| r.system == "zabd" && !r.passed())
        .collect();
    for r in &failed {
        println!(
            "FAILED: zabd {} {}: lost {:?} of {} acknowledged; {}   [logs: {}]",
            r.kind.name(),
            r.order.name(),
            r.lost,
            r.acked,
            r.behaviour(),
            r.dir.display()
        );
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// SIGINT, SIGTERM and SIGHUP set [`INTERRUPTED`]; the run stops and tears down.
fn install_signal_thread() -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut i), Ok(mut t), Ok(mut h)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            loop {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                    _ = h.recv() => {}
                }
                eprintln!("zab-nemesis: interrupted; stopping and tearing down");
                INTERRUPTED.store(true, Ordering::Relaxed);
            }
        });
    });
    Ok(())
}

fn run_cmd(which: Which, a: &RunArgs) -> Result<i32> {
    let lines = check::self_test().map_err(|e| anyhow::anyhow!("self-test: {e}"))?;
    println!("self-test: {} known histories judged right", lines.len());
    install_signal_thread()?;
    let exe = std::env::current_exe().context("current_exe")?;
    let zabd = a.zabd.clone().unwrap_or_else(|| exe.with_file_name("zabd"));
    let systems: Vec<System> = match which {
        Which::Zabd => vec![System::Zabd],
        Which::Zookeeper => vec![System::Zookeeper],
        Which::Both => vec![System::Zabd, System::Zookeeper],
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut outcomes = Vec::new();
    for system in systems {
        if system == System::Zabd && !zabd.exists() {
            anyhow::bail!("no zabd at {} (build it or pass --zabd)", zabd.display());
        }
        let kind = if a.soak.is_some() {
            "soak"
        } else if a.only.is_empty() {
            "round"
        } else {
            "only"
        };
        let opts = Options {
            launcher: Launcher {
                system,
                zabd: zabd.clone(),
                zk_classpath: a.zk_classpath.clone(),
            },
            servers: a.servers,
            seed: a.seed,
            schedule: match a.soak {
                Some(m) => Schedule::Soak(Duration::from_secs_f64(m * 60.0)),
                None if a.only.is_empty() => Schedule::Round,
                None => Schedule::Only(a.only.clone()),
            },
            fault: a.fault,
            quiet: a.quiet,
            dir: std::path::absolute(a.out.join(format!(
                "{}-{kind}-seed{}-{stamp}",
                system.name(),
                a.seed
            )))?,
            prefix: a.prefix.clone(),
            exe: exe.clone(),
        };
        let o = run::run(&opts)?;
        let t = report::table(&o);
        println!("{t}");
        let _ = std::fs::write(o.dir.join("report.txt"), &t);
        outcomes.push(o);
    }
    if let [x, y] = outcomes.as_slice() {
        let s = report::side_by_side(x, y);
        println!("{s}");
        let _ = std::fs::write(y.dir.join("side-by-side.txt"), &s);
    }
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed()).collect();
    for o in &failed {
        let mut soak = a.soak.map(|m| format!(" --soak {m}")).unwrap_or_default();
        if !a.only.is_empty() {
            let names: Vec<&str> = a.only.iter().map(|k| k.name()).collect();
            soak.push_str(&format!(" --only {}", names.join(",")));
        }
        println!(
            "FAILED: {} seed {}; reproduce with: ci/nemesis.sh --system {} --seed {}{soak} \
             (fault {} s)   [history and logs: {}]",
            o.system.name(),
            o.seed,
            o.system.name(),
            o.seed,
            a.fault.as_secs_f64(),
            o.dir.display()
        );
    }
    Ok(if failed.is_empty() { 0 } else { 1 })
}

/// Owns `/path` (ephemeral) until killed; prints `ready` once it exists and `ended <state>`
/// when the session ends.
fn eph_holder(hosts: &str, path: &str) -> i32 {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return 2;
    };
    rt.block_on(async {
        use zookeeper_client::{Acls, CreateMode, Error};
        let opts = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        loop {
            let Some(c) =
                zab_nemesis::workload::connect(hosts, zab_nemesis::cluster::SESSION_TIMEOUT).await
            else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            let created = loop {
                match c.create(path, b"", &opts).await {
                    // NodeExists: this session's earlier, indeterminate create succeeded.
                    Ok(_) | Err(Error::NodeExists) => break true,
                    Err(_) if c.state().is_terminated() => break false,
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            };
            if !created {
                continue;
            }
            println!("ready session 0x{:x}", c.session_id().0);
            let mut last = c.state();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let s = c.state();
                if s != last {
                    println!("state {s}");
                    last = s;
                }
                if s.is_terminated() {
                    println!("ended {s}");
                    return 0;
                }
            }
        }
    })
}
