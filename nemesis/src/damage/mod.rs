//! The damage matrix (`zab-nemesis damage`): one server of a 3-node ensemble loses or has
//! corrupted part of its durable state while writes go on, the servers restart in an
//! adversarial order, and the acknowledged writes that are gone afterwards are counted.
//!
//! Every row runs the same script (issue 13's "operator's bad day", for each kind of damage):
//!
//! 1. three servers serve; unique creates (`/d/w<i>-<n>`) run against all of them;
//! 2. follower C is killed; writes go on, acknowledged by leader A and follower B alone (the
//!    writes "at risk": only A and B hold them);
//! 3. the load pauses until no request is in flight (so the newest log record is an
//!    acknowledged write), then A and B are killed (`kill -9`) and B's disk is damaged;
//! 4. the servers restart in the row's order (default `bc-a`: B and C first, for a window in
//!    which they alone could form a quorum, then A); a server that exits is recorded as
//!    refusing to start, and once the others serve the operator wipes it and restarts it;
//! 5. after a few more seconds of writes every server's `/d` (after `sync`) is read, and
//!    every acknowledged create missing from any server is counted as lost.

use crate::cluster::{self, Cluster, Launcher, SESSION_TIMEOUT, System};
use crate::disk;
use crate::run::INTERRUPTED;
use crate::topology::Topology;
use crate::workload::{self, PERSISTENT};
use anyhow::{Context, Result, bail};
use logs::key_lines;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::time::{sleep, timeout};

mod logs;
mod table;
pub use table::{table, utc};

/// The namespace prefix of the damage matrix (distinct from the round's `zabnem-`).
pub const DAMAGE_PREFIX: &str = "zabdmg-";

/// A kind of damage to one server's data directory (a row of the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Kind {
    /// `acceptedEpoch` and `currentEpoch` deleted.
    EpochFiles,
    /// `currentEpoch` deleted (the exact scenario).
    CurrentEpoch,
    /// One bit flipped in the last (fsynced, acknowledged) log record.
    FlipLast,
    /// One bit flipped in the middle record of those written while C was down.
    FlipMiddle,
    /// Every log record written while C was down cut off at a record boundary.
    Truncate,
    /// One bit flipped in the newest snapshot.
    Snapshot,
    /// The whole data directory removed (`myid` kept).
    Wipe,
}

/// Every row, in the table's order.
pub const ALL: [Kind; 7] = [
    Kind::EpochFiles,
    Kind::CurrentEpoch,
    Kind::FlipLast,
    Kind::FlipMiddle,
    Kind::Truncate,
    Kind::Snapshot,
    Kind::Wipe,
];

impl Kind {
    /// Its name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::EpochFiles => "epoch-files",
            Kind::CurrentEpoch => "current-epoch",
            Kind::FlipLast => "flip-last",
            Kind::FlipMiddle => "flip-middle",
            Kind::Truncate => "truncate",
            Kind::Snapshot => "snapshot",
            Kind::Wipe => "wipe",
        }
    }

    /// Its description in the table.
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Kind::EpochFiles => "epoch files lost (acceptedEpoch + currentEpoch)",
            Kind::CurrentEpoch => "currentEpoch lost",
            Kind::FlipLast => "bit flip in the last fsynced log record",
            Kind::FlipMiddle => "bit flip in a middle log record",
            Kind::Truncate => "fsynced log suffix truncated",
            Kind::Snapshot => "newest snapshot corrupted",
            Kind::Wipe => "whole dataDir wiped",
        }
    }

    /// Parses a name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Kind> {
        ALL.into_iter().find(|k| k.name() == s)
    }

    /// Lines added to `zoo.cfg` for this row: frequent snapshots where a snapshot is damaged.
    fn extra_cfg(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapCount=100\n",
            _ => "",
        }
    }
}

/// The restart order after the damage (A: intact and up to date; B: damaged; C: missed the
/// writes at risk).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Order {
    /// B and C first (alone they are a quorum), A after the window.
    BcA,
    /// A and B first, C after the window.
    AbC,
    /// All three at once.
    All,
}

impl Order {
    /// Its name on the command line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Order::BcA => "bc-a",
            Order::AbC => "ab-c",
            Order::All => "all",
        }
    }

    /// Parses a name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Order> {
        [Order::BcA, Order::AbC, Order::All]
            .into_iter()
            .find(|o| o.name() == s)
    }
}

/// Parameters of a matrix run.
#[derive(Clone, Debug)]
pub struct Options {
    /// How to start servers.
    pub launcher: Launcher,
    /// The rows.
    pub kinds: Vec<Kind>,
    /// The restart orders (every row runs in each).
    pub orders: Vec<Order>,
    /// Seed (which follower is B, which is C).
    pub seed: u64,
    /// Writes before C is stopped, and while it is down.
    pub load: Duration,
    /// How long the first restarted servers are alone.
    pub window: Duration,
    /// Where row folders go.
    pub out: PathBuf,
    /// Namespace prefix.
    pub prefix: String,
}

/// What one row measured.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The system.
    pub system: &'static str,
    /// The damage.
    pub kind: Kind,
    /// The restart order.
    pub order: Order,
    /// Server ids: A (leader, intact), B (damaged), C (stopped first).
    pub roles: (u64, u64, u64),
    /// What was done to B's files.
    pub damage: String,
    /// B's exit status and key log line, when it exited on its own (refused to start).
    pub refused: Option<String>,
    /// B's warnings and errors after its restart (damage detection, refusal).
    pub b_log: Vec<String>,
    /// Modes of the first restarted servers at the end of the window.
    pub window_modes: String,
    /// Whether the first restarted servers served (one leader) without the third.
    pub served_in_window: bool,
    /// How long the first restarted servers were alone, seconds.
    pub window_secs: f64,
    /// Whether the operator had to wipe B (after a refusal).
    pub operator_wipe: bool,
    /// Whether every server served at the end.
    pub serving_at_end: bool,
    /// Acknowledged creates in all.
    pub acked: usize,
    /// Acknowledged while C was down (held by A and B only).
    pub at_risk: usize,
    /// Acknowledged during the restart window.
    pub acked_in_window: usize,
    /// Acknowledged creates missing from some server (distinct names); `None`: no server
    /// answered the final read.
    pub lost: Option<usize>,
    /// Per server: acknowledged creates missing from its final read.
    pub lost_per_server: BTreeMap<u64, usize>,
    /// Creates answered `NodeExists` (names are never reused: a phantom).
    pub phantoms: usize,
    /// Seconds the row took.
    pub seconds: f64,
    /// Its folder (server logs, zoo.cfg, acked.txt: name, phase 0-3, ms since the start).
    pub dir: PathBuf,
    /// What went wrong with the script itself (the damage could not be applied, ...).
    pub error: Option<String>,
}

impl Row {
    /// Whether zabd passed this row: no acknowledged write lost, every server serving.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.lost == Some(0) && self.serving_at_end && self.phantoms == 0
    }

    /// What the system did, in words, from the measurements (B: the damaged server).
    #[must_use]
    pub fn behaviour(&self) -> String {
        let mut s = match &self.refused {
            Some(r) => format!("B refused to start ({r})"),
            None => match self.b_log.first() {
                Some(l) => format!("B started; it logged: {l}"),
                None => "B started, logging nothing about damage".to_string(),
            },
        };
        let (first, without) = match self.order {
            Order::BcA => ("B+C", " without A"),
            Order::AbC => ("A+B", " without C"),
            Order::All => ("the three", ""),
        };
        let _ = write!(
            s,
            "; {first} {}{without} ({:.0} s window)",
            if self.served_in_window {
                "served"
            } else {
                "did not serve"
            },
            self.window_secs
        );
        if let Some(l) = self
            .b_log
            .iter()
            .skip(1)
            .find(|l| l.contains("restored") || l.contains("no longer recovering"))
        {
            let _ = write!(s, "; then B logged: {l}");
        }
        if self.operator_wipe {
            s.push_str("; once the others served, the operator wiped B and it rejoined");
        }
        if !self.serving_at_end {
            s.push_str("; NOT every server serving at the end");
        }
        if let Some(e) = &self.error {
            let _ = write!(s, "; script error: {e}");
        }
        s
    }

    fn lost_text(&self) -> String {
        match self.lost {
            Some(l) => format!("{l} of {} ({} at risk)", self.acked, self.at_risk),
            None => format!("? of {} (no server answered)", self.acked),
        }
    }
}

/// The unique-create load with a pause that drains in-flight requests.
struct Load {
    hosts: String,
    stop: AtomicBool,
    paused: AtomicBool,
    inflight: AtomicUsize,
    phase: AtomicUsize,
    /// Name, phase, milliseconds since the row started.
    acked: Mutex<Vec<(String, usize, u64)>>,
    start: Instant,
    phantoms: AtomicUsize,
}

const PHASE_ALL: usize = 0;
const PHASE_C_DOWN: usize = 1;
const PHASE_WINDOW: usize = 2;
const PHASE_AFTER: usize = 3;
const OP_TIMEOUT: Duration = Duration::from_secs(4);

impl Load {
    fn acked_in(&self, phase: usize) -> usize {
        self.acked
            .lock()
            .map_or(0, |v| v.iter().filter(|(_, p, _)| *p == phase).count())
    }

    /// Stops new requests and waits (at most the request timeout and a second) until none is
    /// in flight.
    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let until = Instant::now() + OP_TIMEOUT + Duration::from_secs(1);
        while self.inflight.load(Ordering::SeqCst) > 0 && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn resume(&self, phase: usize) {
        self.phase.store(phase, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}

async fn writer(load: Arc<Load>, idx: usize) {
    let mut n = 0u64;
    while !load.stop.load(Ordering::SeqCst) {
        let Some(client) = workload::connect(&load.hosts, SESSION_TIMEOUT).await else {
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        while !load.stop.load(Ordering::SeqCst) && !client.state().is_terminated() {
            load.inflight.fetch_add(1, Ordering::SeqCst);
            if load.paused.load(Ordering::SeqCst) {
                load.inflight.fetch_sub(1, Ordering::SeqCst);
                sleep(Duration::from_millis(20)).await;
                continue;
            }
            let phase = load.phase.load(Ordering::SeqCst);
            let name = format!("w{idx}-{n}");
            n += 1;
            let r = timeout(
                OP_TIMEOUT,
                client.create(&format!("/d/{name}"), b"", &PERSISTENT),
            )
            .await;
            match r {
                Ok(Ok(_)) => {
                    if let Ok(mut v) = load.acked.lock() {
                        v.push((name, phase, elapsed_ms(load.start)));
                    }
                }
                Ok(Err(zookeeper_client::Error::NodeExists)) => {
                    load.phantoms.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
            load.inflight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

fn wait(d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        check_interrupted()?;
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(100)));
    }
    Ok(())
}

/// Modes of `ids` as `s1 leader, s2 follower, s3 -`.
fn modes(ids: &[u64]) -> (String, Vec<Option<String>>) {
    let m: Vec<Option<String>> = ids.iter().map(|&id| cluster::mode(id)).collect();
    let text = ids
        .iter()
        .zip(&m)
        .map(|(id, m)| format!("s{id} {}", m.as_deref().unwrap_or("-")))
        .collect::<Vec<_>>()
        .join(", ");
    (text, m)
}

/// Whether the running servers among `ids` serve with exactly one leader.
fn serving(cluster: &Cluster, ids: &[u64]) -> bool {
    let running: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|&i| cluster.running(i))
        .collect();
    if running.len() < 2 {
        return false;
    }
    let (_, m) = modes(&running);
    let leaders = m.iter().filter(|x| x.as_deref() == Some("leader")).count();
    let ok = m
        .iter()
        .filter(|x| matches!(x.as_deref(), Some("leader" | "follower")))
        .count();
    leaders == 1 && ok == running.len()
}

/// The damaged server's observed exit: recorded once, with its key log line.
struct Watch {
    b: u64,
    log: PathBuf,
    from: u64,
    refused: Option<String>,
}

impl Watch {
    /// Collects exits: B's is a refusal; another server's is an error of the row.
    fn reap(&mut self, cluster: &mut Cluster, errors: &mut Vec<String>) {
        for (id, status) in cluster.reap() {
            if id == self.b {
                let line = key_lines(&self.log, self.from, true)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
                let status = status.to_string().replace("exit status: ", "exit ");
                self.refused = Some(format!("{status}: {line}"));
            } else {
                errors.push(format!("s{id} exited on its own ({status})"));
            }
        }
    }
}

/// Damages B's (stopped) data directory; `risk_from` is B's last zxid when C was stopped.
fn apply(kind: Kind, system: System, data: &Path, risk_from: u64) -> Result<String> {
    match kind {
        Kind::EpochFiles => disk::delete_files(data, &["acceptedEpoch", "currentEpoch"]),
        Kind::CurrentEpoch => disk::delete_files(data, &["currentEpoch"]),
        Kind::Wipe => disk::wipe(data),
        Kind::Snapshot => disk::corrupt_newest_snapshot(data),
        Kind::FlipLast | Kind::FlipMiddle | Kind::Truncate => {
            let recs = disk::log_records(system, data);
            let first_at_risk = recs.iter().position(|r| r.zxid > risk_from);
            let Some(from) = first_at_risk else {
                bail!(
                    "no log record after zxid 0x{risk_from:x} ({} records)",
                    recs.len()
                );
            };
            match kind {
                Kind::FlipLast => {
                    let i = recs.len() - 1;
                    disk::flip_in_record(&recs[i], i, recs.len())
                }
                Kind::FlipMiddle => {
                    let i = from + (recs.len() - from) / 2;
                    disk::flip_in_record(&recs[i], i, recs.len())
                }
                _ => disk::truncate_from(&recs, from),
            }
        }
    }
}

/// Runs every row in every order; returns the rows.
pub fn run(opts: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for &order in &opts.orders {
        for &kind in &opts.kinds {
            check_interrupted()?;
            let dir = std::path::absolute(opts.out.join(format!(
                "{}-{}-{}-{stamp}",
                opts.launcher.system.name(),
                kind.name(),
                order.name()
            )))?;
            let row = run_row(opts, kind, order, &dir)?;
            tracing::info!(
                "{} {} {}: lost {:?} of {} acknowledged ({} at risk); {}",
                row.system,
                kind.name(),
                order.name(),
                row.lost,
                row.acked,
                row.at_risk,
                row.behaviour()
            );
            if let Ok(j) = serde_json::to_string(&row) {
                let _ = std::fs::write(dir.join("row.json"), j);
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row: its own network, ensemble and load.
fn run_row(opts: &Options, kind: Kind, order: Order, dir: &Path) -> Result<Row> {
    std::fs::create_dir_all(dir)?;
    let start = Instant::now();
    let mut topo = Topology::create(&opts.prefix, 3)?;
    topo.enter_client_ns()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cluster = Cluster::prepare_with(
        &topo,
        3,
        dir,
        opts.launcher.clone(),
        start,
        kind.extra_cfg(),
    )?;
    let load = Arc::new(Load {
        hosts: workload::hosts(1..=3),
        stop: AtomicBool::new(false),
        paused: AtomicBool::new(false),
        inflight: AtomicUsize::new(0),
        phase: AtomicUsize::new(PHASE_ALL),
        acked: Mutex::new(Vec::new()),
        start,
        phantoms: AtomicUsize::new(0),
    });
    let mut row = Row {
        system: opts.launcher.system.name(),
        kind,
        order,
        roles: (0, 0, 0),
        damage: String::new(),
        refused: None,
        b_log: Vec::new(),
        window_modes: String::new(),
        served_in_window: false,
        window_secs: opts.window.as_secs_f64(),
        operator_wipe: false,
        serving_at_end: false,
        acked: 0,
        at_risk: 0,
        acked_in_window: 0,
        lost: None,
        lost_per_server: BTreeMap::new(),
        phantoms: 0,
        seconds: 0.0,
        dir: dir.to_path_buf(),
        error: None,
    };
    let result = script(opts, &mut cluster, &rt, &load, &mut row);
    load.stop.store(true, Ordering::SeqCst);
    cluster.stop_all();
    rt.shutdown_timeout(Duration::from_secs(2));
    topo.teardown();
    if let Err(e) = result {
        check_interrupted()?;
        row.error = Some(format!("{e:#}"));
    }
    if let Ok(v) = load.acked.lock() {
        let names: Vec<String> = v.iter().map(|(n, p, t)| format!("{n} {p} {t}")).collect();
        let _ = std::fs::write(dir.join("acked.txt"), names.join("\n"));
    }
    row.phantoms = load.phantoms.load(Ordering::SeqCst);
    row.seconds = start.elapsed().as_secs_f64();
    if row.passed() {
        for s in &cluster.servers {
            let _ = std::fs::remove_dir_all(s.data_dir());
        }
    }
    Ok(row)
}

/// Steps 1–5 of the module's script.
fn script(
    opts: &Options,
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    load: &Arc<Load>,
    row: &mut Row,
) -> Result<()> {
    let ids = cluster.ids();
    for &id in &ids {
        cluster.start(id)?;
    }
    cluster::wait_serving(&ids, Duration::from_secs(90)).context("initial ensemble")?;
    rt.block_on(create_parent(&load.hosts))?;
    let a = cluster::leader(&ids).context("no single leader")?;
    let mut others: Vec<u64> = ids.iter().copied().filter(|&i| i != a).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    others.shuffle(&mut rng);
    row.roles = (a, others[0], others[1]);
    for i in 0..3 {
        rt.spawn(writer(Arc::clone(load), i));
    }
    damage_under_load(opts, cluster, load, row)?;
    let b = row.roles.1;
    let b_log = cluster.servers[(b - 1) as usize].log();
    let from = std::fs::metadata(&b_log).map_or(0, |m| m.len());
    let mut watch = Watch {
        b,
        log: b_log.clone(),
        from,
        refused: None,
    };
    let mut errors = Vec::new();
    let ok = restart(opts, cluster, load, row, &mut watch, &mut errors)?;
    // 5. More writes, then the final reads.
    wait(opts.load)?;
    load.pause();
    load.stop.store(true, Ordering::SeqCst);
    row.serving_at_end = ok && serving(cluster, &ids) && ids.iter().all(|&i| cluster.running(i));
    row.refused = watch.refused.take();
    row.b_log = key_lines(&b_log, from, true);
    count_lost(cluster, rt, load, row);
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(())
}

/// Steps 1–3: writes on all three; C down, writes acknowledged by A and B alone; A and B
/// killed at rest and B's disk damaged.
fn damage_under_load(
    opts: &Options,
    cluster: &mut Cluster,
    load: &Load,
    row: &mut Row,
) -> Result<()> {
    let system = opts.launcher.system;
    let (a, b, c) = row.roles;
    let b_data = cluster.servers[(b - 1) as usize].data_dir();
    wait(opts.load)?;
    load.pause();
    cluster.kill9(c);
    let risk_from = disk::log_records(system, &b_data)
        .last()
        .map_or(0, |r| r.zxid);
    load.resume(PHASE_C_DOWN);
    wait(opts.load)?;
    load.pause();
    cluster.kill9(a);
    cluster.kill9(b);
    row.at_risk = load.acked_in(PHASE_C_DOWN);
    row.damage = apply(row.kind, system, &b_data, risk_from)?;
    tracing::info!(
        "{} {} {}: A=s{a} B=s{b} C=s{c}; s{b}: {}",
        system.name(),
        row.kind.name(),
        row.order.name(),
        row.damage
    );
    Ok(())
}

/// Step 4: the first servers of the row's order alone for the window, then the rest; after a
/// refusal, once the others serve, the operator's wipe of B. Returns whether every server
/// served in the end.
fn restart(
    opts: &Options,
    cluster: &mut Cluster,
    load: &Load,
    row: &mut Row,
    watch: &mut Watch,
    errors: &mut Vec<String>,
) -> Result<bool> {
    let (a, b, c) = row.roles;
    let (first, second): (Vec<u64>, Vec<u64>) = match row.order {
        Order::BcA => (vec![b, c], vec![a]),
        Order::AbC => (vec![a, b], vec![c]),
        Order::All => (vec![a, b, c], vec![]),
    };
    for &id in &first {
        cluster.start(id)?;
    }
    load.resume(PHASE_WINDOW);
    let end = Instant::now() + opts.window;
    while Instant::now() < end {
        check_interrupted()?;
        watch.reap(cluster, errors);
        if serving(cluster, &first) {
            row.served_in_window = true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    row.window_modes = modes(&first).0;
    row.acked_in_window = load.acked_in(PHASE_WINDOW);
    load.phase.store(PHASE_AFTER, Ordering::SeqCst);
    for &id in &second {
        cluster.start(id)?;
    }
    let within = Duration::from_secs(60);
    let mut ok = wait_all_serving(cluster, watch, errors, within)?;
    if watch.refused.is_some() && ok {
        // The operator's way back after a refusal: an empty data directory.
        cluster.wipe(b)?;
        cluster.start(b)?;
        row.operator_wipe = true;
        ok = wait_all_serving(cluster, watch, errors, within)? && cluster.running(b);
    }
    Ok(ok)
}

/// Waits until the running servers serve with one leader (collecting exits meanwhile).
fn wait_all_serving(
    cluster: &mut Cluster,
    watch: &mut Watch,
    errors: &mut Vec<String>,
    within: Duration,
) -> Result<bool> {
    let ids = cluster.ids();
    let end = Instant::now() + within;
    while Instant::now() < end {
        check_interrupted()?;
        watch.reap(cluster, errors);
        if serving(cluster, &ids) {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    Ok(false)
}

/// Every acknowledged create missing from a running server's `/d` (after `sync`); the names
/// go to `lost.txt`.
fn count_lost(cluster: &Cluster, rt: &tokio::runtime::Runtime, load: &Load, row: &mut Row) {
    let acked: BTreeSet<String> = load
        .acked
        .lock()
        .map(|v| v.iter().map(|(n, _, _)| n.clone()).collect())
        .unwrap_or_default();
    row.acked = acked.len();
    let mut missing = BTreeSet::new();
    let mut answered = 0;
    for id in cluster.ids() {
        if !cluster.running(id) {
            continue;
        }
        if let Some(present) = rt.block_on(read_set(id)) {
            answered += 1;
            let gone: Vec<&String> = acked.difference(&present).collect();
            row.lost_per_server.insert(id, gone.len());
            missing.extend(gone.into_iter().cloned());
        }
    }
    if answered > 0 {
        row.lost = Some(missing.len());
        let list: Vec<String> = missing.into_iter().collect();
        let _ = std::fs::write(row.dir.join("lost.txt"), list.join("\n"));
    }
}

async fn create_parent(hosts: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(c) = workload::connect(hosts, SESSION_TIMEOUT).await {
            match c.create("/d", b"", &PERSISTENT).await {
                Ok(_) | Err(zookeeper_client::Error::NodeExists) => return Ok(()),
                Err(_) => {}
            }
        }
        sleep(Duration::from_millis(300)).await;
    }
    bail!("could not create /d within 30 s")
}

/// `/d`'s children as server `id` sees them after `sync` (retried for up to 30 s).
async fn read_set(id: u64) -> Option<BTreeSet<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(c) = workload::connect(&workload::hosts([id]), SESSION_TIMEOUT).await {
            let r = timeout(Duration::from_secs(15), async {
                c.sync("/d").await?;
                c.list_children("/d").await
            })
            .await;
            if let Ok(Ok(v)) = r {
                return Some(v.into_iter().collect());
            }
        }
        sleep(Duration::from_millis(300)).await;
    }
    None
}
