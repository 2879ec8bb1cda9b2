//! One run against one system: network, servers, workloads, the schedule of faults, the final
//! checks after heal, and the outcome (the table's figures and every failure).

use crate::check::linear::{self, Verdict};
use crate::check::sets::{self, EphExpect, SetReport};
use crate::cluster::{self, Cluster, Launcher, SESSION_TIMEOUT, System};
use crate::history::{Call, History, Op, Reply, Status, register_ops};
use crate::nemesis::{self, Step};
use crate::topology::Topology;
use crate::workload::{self, Ctx, PERSISTENT};
use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zookeeper_client::Client;

/// Set by SIGINT/SIGTERM: stop, tear down, exit.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// What to run.
#[derive(Clone, Debug)]
pub enum Schedule {
    /// Every nemesis once, then a random combination.
    Round,
    /// The given nemeses once each.
    Only(Vec<nemesis::Kind>),
    /// Random steps for this long.
    Soak(Duration),
}

/// A run's parameters.
#[derive(Clone, Debug)]
pub struct Options {
    /// The system under test.
    pub launcher: Launcher,
    /// Number of servers.
    pub servers: u64,
    /// The seed of every random choice of the suite.
    pub seed: u64,
    /// The schedule.
    pub schedule: Schedule,
    /// How long each fault of the round lasts.
    pub fault: Duration,
    /// Quiet time after each recovery.
    pub quiet: Duration,
    /// The run folder.
    pub dir: PathBuf,
    /// Namespace name prefix.
    pub prefix: String,
    /// This binary (for the ephemeral-holder processes).
    pub exe: PathBuf,
}

/// One fault of the schedule, as it went.
#[derive(Clone, Debug)]
pub struct Event {
    /// Its name.
    pub name: String,
    /// What was done.
    pub notes: Vec<String>,
    /// Seconds from the fault to the first acknowledged write invoked after it.
    pub fault_to_write: Option<f64>,
    /// Seconds from the heal to the first acknowledged write invoked after it.
    pub heal_to_write: Option<f64>,
}

/// What a run found.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The system.
    pub system: System,
    /// The seed.
    pub seed: u64,
    /// The run folder.
    pub dir: PathBuf,
    /// Seconds the schedule ran.
    pub seconds: f64,
    /// Operations acknowledged / definitely failed / indeterminate.
    pub ok: usize,
    /// Definite failures.
    pub fail: usize,
    /// Indeterminate.
    pub info: usize,
    /// Acknowledged writes.
    pub acknowledged: usize,
    /// Acknowledged creates lost.
    pub lost: usize,
    /// The linearizability verdict of the register histories.
    pub verdict: Verdict,
    /// Register operations checked.
    pub register_ops: usize,
    /// Every fault.
    pub events: Vec<Event>,
    /// Unexpected server exits (and panics in logs).
    pub crashes: Vec<String>,
    /// Time for a killed holder's ephemeral node to vanish, seconds.
    pub ephemeral_expiry: Option<f64>,
    /// Every check that failed.
    pub failures: Vec<String>,
    /// Outcomes worth reporting that are not failures (refusals to start after damage).
    pub notes: Vec<String>,
}

impl Outcome {
    /// Whether every check passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// A client process that owns one ephemeral node and can be `kill -9`ed.
struct Holder {
    child: Child,
    path: String,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Holder {
    fn spawn(exe: &PathBuf, hosts: &str, path: &str, out_file: PathBuf) -> Result<Holder> {
        let mut child = Command::new(exe)
            .args(["eph-holder", "--hosts", hosts, "--path", path])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn eph-holder")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let l = Arc::clone(&lines);
            std::thread::spawn(move || {
                let mut file = std::fs::File::create(out_file).ok();
                for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                    if let Some(f) = &mut file {
                        let _ = writeln!(f, "{line}");
                    }
                    if let Ok(mut v) = l.lock() {
                        v.push(line);
                    }
                }
            });
        }
        Ok(Holder {
            child,
            path: path.to_string(),
            lines,
        })
    }

    fn said(&self, prefix: &str) -> bool {
        self.lines
            .lock()
            .map(|v| v.iter().any(|l| l.starts_with(prefix)))
            .unwrap_or(false)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The orchestrator's clock: sleeps in small slices, collecting unexpected server exits.
fn tick(cluster: &mut Cluster, d: Duration) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        let exited = cluster.reap();
        cluster.record_crashes(exited);
        if INTERRUPTED.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(100)));
    }
}

fn secs(us: u64) -> f64 {
    us as f64 / 1e6
}

/// Runs the suite once. Builds and removes its own namespaces.
pub fn run(opts: &Options) -> Result<Outcome> {
    std::fs::create_dir_all(&opts.dir)?;
    let start = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut topo = Topology::create(&opts.prefix, opts.servers)?;
    topo.enter_client_ns()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut cluster =
        Cluster::prepare(&topo, opts.servers, &opts.dir, opts.launcher.clone(), start)?;
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    let result = drive(opts, &topo, &mut cluster, &rt, &mut rng, start);
    cluster.stop_all();
    rt.shutdown_timeout(Duration::from_secs(2));
    topo.teardown();
    let mut outcome = result?;
    // Panics in the logs count as crashes even when the process carried on.
    for s in &cluster.servers {
        let log = std::fs::read_to_string(s.log()).unwrap_or_default();
        if let Some(line) = log.lines().find(|l| l.contains("panicked at")) {
            outcome
                .crashes
                .push(format!("s{}: panic in log: {line}", s.id));
        }
    }
    if !outcome.crashes.is_empty() {
        outcome.failures.push(format!(
            "{} server exit(s) or panic(s) not caused by the nemesis",
            outcome.crashes.len()
        ));
    }
    if outcome.passed() {
        for s in &cluster.servers {
            let _ = std::fs::remove_dir_all(s.data_dir());
        }
    }
    Ok(outcome)
}

#[allow(clippy::too_many_lines)]
fn drive(
    opts: &Options,
    topo: &Topology,
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    rng: &mut ChaCha8Rng,
    start: Instant,
) -> Result<Outcome> {
    let ids = cluster.ids();
    cluster::wait_serving(&ids, Duration::from_secs(90)).context("initial ensemble")?;
    let hist = Arc::new(History::create(&opts.dir.join("history.jsonl"), start)?);
    let ctx = Arc::new(Ctx::new(
        Arc::clone(&hist),
        opts.servers,
        Duration::from_secs(4),
        3000,
    ));
    rt.block_on(setup(&ctx.hosts))?;
    // Workloads.
    let mut tasks = Vec::new();
    for i in 0..3 {
        tasks.push(rt.spawn(workload::register_worker(
            Arc::clone(&ctx),
            i,
            opts.seed ^ (i as u64 + 1) << 32,
        )));
    }
    for i in 0..2 {
        tasks.push(rt.spawn(workload::set_worker(
            Arc::clone(&ctx),
            i,
            opts.seed ^ (i as u64 + 11) << 32,
        )));
    }
    let eph_tasks: Vec<_> = (0..2)
        .map(|i| {
            rt.spawn(workload::ephemeral_worker(
                Arc::clone(&ctx),
                i,
                opts.seed ^ (i as u64 + 21) << 32,
            ))
        })
        .collect();
    let mut holders = vec![
        Holder::spawn(
            &opts.exe,
            &ctx.hosts,
            "/eph/holder-1",
            opts.dir.join("holder-1.out"),
        )?,
        Holder::spawn(
            &opts.exe,
            &ctx.hosts,
            "/eph/holder-2",
            opts.dir.join("holder-2.out"),
        )?,
    ];
    tick(cluster, Duration::from_secs(2))?;
    let mut failures = Vec::new();
    let mut notes = Vec::new();
    for h in &holders {
        if !h.said("ready") {
            failures.push(format!(
                "{} not created within 2 s of a healthy start",
                h.path
            ));
        }
    }

    // The schedule.
    let schedule_start = Instant::now();
    let mut events = Vec::new();
    for (step_no, step) in steps(opts, rng, schedule_start).enumerate() {
        if step_no == 3 {
            // A client crash: its session must expire and take its ephemeral node along.
            holders[0].kill();
            ctx.eph_expect
                .lock()
                .map(|mut m| m.insert(holders[0].path.clone(), EphExpect::Gone))
                .ok();
        }
        let mut world = World {
            topo,
            cluster: &mut *cluster,
            hist: &hist,
            rng: &mut *rng,
        };
        events.push(run_step(&mut world, &step, &mut failures, &mut notes)?);
        tick(cluster, opts.quiet)?;
    }
    let seconds = schedule_start.elapsed().as_secs_f64();

    // After the final heal: every server serving, then the workloads stop.
    if let Err(e) = cluster::wait_serving(&ids, Duration::from_secs(60)) {
        failures.push(format!("not every server serving after heal: {e:#}"));
    }
    ctx.stop.store(true, Ordering::Relaxed);
    let live_eph: Vec<(Client, String)> = rt.block_on(async {
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        let mut live = Vec::new();
        for t in eph_tasks {
            if let Ok(Ok(Some(x))) = tokio::time::timeout(Duration::from_secs(15), t).await {
                live.push(x);
            }
        }
        live
    });
    for id in &ids {
        let ok = rt.block_on(probe(&ctx, *id));
        if !ok {
            failures.push(format!(
                "s{id} does not take a write through its own client port after heal"
            ));
        }
    }
    let holder2_alive = !holders[1].said("ended");
    ctx.eph_expect
        .lock()
        .map(|mut m| {
            let e = if holder2_alive {
                EphExpect::Alive
            } else {
                EphExpect::Gone
            };
            m.insert(holders[1].path.clone(), e)
        })
        .ok();
    // Final linearizable reads of every register key, into the history.
    rt.block_on(final_reads(&ctx));

    // Replicas: equal dumps (retrying while followers catch up), then the set and the
    // ephemeral checks on every server's view.
    let mut dumps = BTreeMap::new();
    let mut finals_set = BTreeMap::new();
    let mut finals_eph = BTreeMap::new();
    let expect = ctx.eph_expect.lock().map(|m| m.clone()).unwrap_or_default();
    let deadline = Instant::now() + SESSION_TIMEOUT * 2 + Duration::from_secs(30);
    loop {
        dumps.clear();
        finals_set.clear();
        finals_eph.clear();
        for id in &ids {
            if let Some((dump, set, eph)) = rt.block_on(read_server(*id)) {
                dumps.insert(*id, dump);
                finals_set.insert(*id, set);
                finals_eph.insert(*id, eph);
            }
        }
        let eph_bad = sets::check_ephemerals(&expect, &finals_eph);
        if (dumps.len() == ids.len() && sets::diverged(&dumps).is_empty() && eph_bad.is_empty())
            || Instant::now() > deadline
        {
            break;
        }
        tick(cluster, Duration::from_millis(500))?;
    }
    if dumps.len() != ids.len() {
        failures.push(format!(
            "final reads answered by {} of {} servers",
            dumps.len(),
            ids.len()
        ));
    }
    let div = sets::diverged(&dumps);
    if !div.is_empty() {
        failures.push(format!(
            "replicas differ after heal: servers {div:?} differ from the first"
        ));
        for (id, d) in &dumps {
            let _ = std::fs::write(opts.dir.join(format!("final-s{id}.txt")), d);
        }
    }
    let ops = hist.ops();
    let (acked, attempted) = set_names(&ops);
    let set_report: SetReport = sets::check_set(&acked, &attempted, &finals_set);
    if !set_report.ok() {
        failures.push(format!(
            "unique creates: {} acknowledged lost, {} never attempted present: {:?} {:?}",
            set_report.lost.len(),
            set_report.unexpected.len(),
            set_report.lost.iter().take(5).collect::<Vec<_>>(),
            set_report.unexpected.iter().take(5).collect::<Vec<_>>()
        ));
    }
    // Names are never reused, so `NodeExists` on a unique create means a phantom.
    let phantom = ops
        .iter()
        .filter(|o| matches!(o.call, Call::Add(_)) && matches!(o.done, Some((_, Status::Fail, ..))))
        .count();
    if phantom > 0 {
        failures.push(format!(
            "{phantom} unique create(s) of never-sent names answered NodeExists"
        ));
    }
    for v in sets::check_ephemerals(&expect, &finals_eph) {
        failures.push(format!("ephemeral: {v}"));
    }
    if let Ok(v) = ctx.eph_violations.lock() {
        for x in v.iter() {
            failures.push(format!("ephemeral: {x}"));
        }
    }
    drop(live_eph);

    // A client crash at rest: a fresh holder's node must go within the session timeout.
    let ephemeral_expiry = expiry_at_rest(opts, &ctx.hosts, cluster, rt, &ids, &mut failures)?;
    if !holder2_alive {
        notes.push(
            "holder-2's session expired during the schedule (its node was checked gone)".into(),
        );
    }
    drop(holders);
    hist.flush();

    let reg = register_ops(&ops_after(&hist));
    let verdict = linear::check(&reg, 5_000_000);
    match &verdict {
        Verdict::Linearizable => {}
        Verdict::NotLinearizable { key, ops } => {
            failures.push(format!(
                "register {key} not linearizable ({} ops)",
                ops.len()
            ));
            let _ = std::fs::write(opts.dir.join("nonlinearizable.txt"), ops.join("\n"));
        }
        Verdict::Unknown { key, ops } => {
            notes.push(format!(
                "linearizability of {key} ({ops} ops) undecided within the search budget"
            ));
        }
    }
    let all = hist.ops();
    let count = |s: Status| {
        all.iter()
            .filter(|o| matches!(&o.done, Some((_, st, ..)) if *st == s))
            .count()
    };
    let crashes = cluster
        .crashes
        .iter()
        .map(|c| {
            format!(
                "s{} at {:.1}s: {}\n{}",
                c.server, c.at_s, c.status, c.log_tail
            )
        })
        .collect();
    Ok(Outcome {
        system: opts.launcher.system,
        seed: opts.seed,
        dir: opts.dir.clone(),
        seconds,
        ok: count(Status::Ok),
        fail: count(Status::Fail),
        info: count(Status::Info) + all.iter().filter(|o| o.done.is_none()).count(),
        acknowledged: all
            .iter()
            .filter(|o| o.call.is_write() && matches!(o.done, Some((_, Status::Ok, ..))))
            .count(),
        lost: set_report.lost.len(),
        verdict,
        register_ops: reg.len(),
        events,
        crashes,
        ephemeral_expiry,
        failures,
        notes,
    })
}

/// A client crash at rest: a fresh holder creates its node and is killed -9; the node must go
/// within twice the session timeout (plus the expiry tick granularity). Returns the seconds.
fn expiry_at_rest(
    opts: &Options,
    hosts: &str,
    cluster: &mut Cluster,
    rt: &tokio::runtime::Runtime,
    ids: &[u64],
    failures: &mut Vec<String>,
) -> Result<Option<f64>> {
    let mut ephemeral_expiry = None;
    let path = "/eph/holder-3".to_string();
    let mut h3 = Holder::spawn(&opts.exe, hosts, &path, opts.dir.join("holder-3.out"))?;
    let ready_by = Instant::now() + Duration::from_secs(20);
    while !h3.said("ready") && Instant::now() < ready_by {
        tick(cluster, Duration::from_millis(100))?;
    }
    if h3.said("ready") {
        h3.kill();
        let killed = Instant::now();
        let limit = SESSION_TIMEOUT * 2 + Duration::from_secs(2);
        while killed.elapsed() < limit + Duration::from_secs(5) {
            if rt.block_on(absent_everywhere(ids, &path)) {
                ephemeral_expiry = Some(killed.elapsed().as_secs_f64());
                break;
            }
            tick(cluster, Duration::from_millis(100))?;
        }
        match ephemeral_expiry {
            Some(t) if t <= limit.as_secs_f64() => {}
            Some(t) => failures.push(format!(
                "{path} vanished {t:.1} s after its client died (limit {limit:?})"
            )),
            None => failures.push(format!(
                "{path} still present {limit:?} after its client died"
            )),
        }
    } else {
        failures.push(format!(
            "{path}: no session and node within 20 s after heal"
        ));
    }
    Ok(ephemeral_expiry)
}

/// What a step acts on.
struct World<'a> {
    topo: &'a Topology,
    cluster: &'a mut Cluster,
    hist: &'a History,
    rng: &'a mut ChaCha8Rng,
}

/// The steps of the schedule (a soak's: random, until its time is up).
fn steps(
    opts: &Options,
    rng: &mut ChaCha8Rng,
    schedule_start: Instant,
) -> Box<dyn Iterator<Item = Step>> {
    match &opts.schedule {
        Schedule::Round => Box::new(nemesis::round(rng, opts.fault).into_iter()),
        Schedule::Only(kinds) => Box::new(nemesis::only(kinds, opts.fault).into_iter()),
        Schedule::Soak(d) => {
            // Its own generator: the same seed gives the same steps whatever the victims.
            let mut r2 = ChaCha8Rng::seed_from_u64(opts.seed.wrapping_add(1));
            let d = *d;
            Box::new(
                std::iter::from_fn(move || Some(nemesis::random_step(&mut r2)))
                    .take_while(move |_| schedule_start.elapsed() < d),
            )
        }
    }
}

/// One step: start its faults, hold them, heal, wait for the first acknowledged write.
fn run_step(
    w: &mut World<'_>,
    step: &Step,
    failures: &mut Vec<String>,
    notes: &mut Vec<String>,
) -> Result<Event> {
    let mut active = nemesis::Active::default();
    for &k in &step.kinds {
        nemesis::start(k, w.topo, w.cluster, w.rng, &mut active)?;
    }
    // The fault is in effect from here (rules installed, processes signalled).
    let fault_at = w.hist.now_us();
    tracing::info!(
        "[{:.1}s] {} : {}",
        secs(fault_at),
        step.name(),
        active.notes.join("; ")
    );
    tick(w.cluster, step.duration)?;
    let heal_at = w.hist.now_us();
    let heal_notes = nemesis::heal(w.topo, w.cluster, &active)?;
    for n in &heal_notes {
        tracing::info!("  {n}");
        if n.contains("refused") {
            notes.push(format!("{}: {n}", step.name()));
        }
    }
    active.notes.extend(heal_notes);
    // Recovery: the first acknowledged write after heal (at most 60 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.hist.first_ack_after(heal_at).is_none() && Instant::now() < deadline {
        tick(w.cluster, Duration::from_millis(100))?;
    }
    let fault_to_write = w.hist.first_ack_after(fault_at).map(|t| secs(t - fault_at));
    let heal_to_write = w.hist.first_ack_after(heal_at).map(|t| secs(t - heal_at));
    if heal_to_write.is_none() {
        failures.push(format!(
            "{}: no acknowledged write within 60 s of heal",
            step.name()
        ));
    }
    Ok(Event {
        name: step.name(),
        notes: active.notes,
        fault_to_write,
        heal_to_write,
    })
}

fn ops_after(hist: &History) -> Vec<Op> {
    hist.ops()
}

fn set_names(ops: &[Op]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut acked = BTreeSet::new();
    let mut attempted = BTreeSet::new();
    for o in ops {
        if let Call::Add(name) = &o.call {
            attempted.insert(name.clone());
            if matches!(o.done, Some((_, Status::Ok, ..))) {
                acked.insert(name.clone());
            }
        }
    }
    (acked, attempted)
}

async fn setup(hosts: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(c) = workload::connect(hosts, SESSION_TIMEOUT).await {
            let mut ok = true;
            for p in ["/reg", "/set", "/eph", "/probe"] {
                match c.create(p, b"", &PERSISTENT).await {
                    Ok(_) | Err(zookeeper_client::Error::NodeExists) => {}
                    Err(_) => ok = false,
                }
            }
            if ok {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("could not create the workload's parent nodes within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A write through server `id` alone (its own client port).
async fn probe(ctx: &Ctx, id: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while Instant::now() < deadline {
        if let Some(c) = workload::connect(&workload::hosts([id]), SESSION_TIMEOUT).await {
            n += 1;
            let path = format!("/probe/s{id}-{n}");
            let op = ctx
                .hist
                .invoke(&format!("probe{id}"), &path, Call::Probe(id));
            match tokio::time::timeout(Duration::from_secs(5), c.create(&path, b"", &PERSISTENT))
                .await
            {
                Ok(Ok(_)) => {
                    ctx.hist
                        .complete(op, Status::Ok, Some(Reply::Done), String::new());
                    return true;
                }
                Ok(Err(e)) => ctx.hist.complete(op, Status::Info, None, e.to_string()),
                Err(_) => ctx
                    .hist
                    .complete(op, Status::Info, None, "client timeout".into()),
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    false
}

/// `sync` + `getData` of every register key, logged as ordinary reads.
async fn final_reads(ctx: &Ctx) {
    let Some(c) = workload::connect(&ctx.hosts, SESSION_TIMEOUT).await else {
        return;
    };
    let Ok(Ok(keys)) = tokio::time::timeout(Duration::from_secs(10), c.list_children("/reg")).await
    else {
        return;
    };
    for k in keys {
        let key = format!("/reg/{k}");
        let call = linear::RegCall::Read;
        let id = ctx.hist.invoke("final", &key, Call::Reg(call));
        let r = tokio::time::timeout(Duration::from_secs(10), async {
            c.sync(&key).await?;
            c.get_data(&key).await
        })
        .await;
        match r {
            Ok(Ok((data, stat))) => {
                let v = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(u64::MAX);
                ctx.hist.complete(
                    id,
                    Status::Ok,
                    Some(Reply::Reg(linear::RegRet::Value(v, stat.version))),
                    String::new(),
                );
            }
            _ => ctx
                .hist
                .complete(id, Status::Info, None, "final read failed".into()),
        }
    }
}

/// One server's view (no `sync`: what it has applied): a dump of the registers and the sets,
/// the `/set` children, the `/eph` children.
async fn read_server(id: u64) -> Option<(String, BTreeSet<String>, BTreeSet<String>)> {
    let c = workload::connect(&workload::hosts([id]), SESSION_TIMEOUT).await?;
    let r = tokio::time::timeout(Duration::from_secs(15), async {
        let set: BTreeSet<String> = c.list_children("/set").await?.into_iter().collect();
        let eph: BTreeSet<String> = c.list_children("/eph").await?.into_iter().collect();
        let mut regs = c.list_children("/reg").await?;
        regs.sort();
        let mut dump = String::new();
        for k in regs {
            let (d, s) = c.get_data(&format!("/reg/{k}")).await?;
            dump.push_str(&format!(
                "/reg/{k} = {} v{}\n",
                String::from_utf8_lossy(&d),
                s.version
            ));
        }
        for n in &set {
            dump.push_str(&format!("/set/{n}\n"));
        }
        Ok::<_, zookeeper_client::Error>((dump, set, eph))
    })
    .await;
    match r {
        Ok(Ok(x)) => Some(x),
        _ => None,
    }
}

async fn absent_everywhere(ids: &[u64], path: &str) -> bool {
    for &id in ids {
        let Some(c) = workload::connect(&workload::hosts([id]), SESSION_TIMEOUT).await else {
            return false;
        };
        match tokio::time::timeout(Duration::from_secs(5), c.check_stat(path)).await {
            Ok(Ok(None)) => {}
            _ => return false,
        }
    }
    true
}
