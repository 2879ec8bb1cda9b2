//! The load engine: sessions spread round-robin over the servers, each with its own task that
//! keeps `depth` requests outstanding (closed loop) or sends on a fixed schedule (open loop,
//! latency measured from the *intended* send time so that a stalled server cannot hide its
//! stall: no coordinated omission). Latencies go into one HdrHistogram per session, merged at
//! the end.

use crate::result::{Latency, RunResult};
use crate::session::{Session, Template, reply_header};
use anyhow::{Context as _, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use zab_zk::proto::{CreateRequest, ExistsRequest, GetDataRequest, Request, SetDataRequest, ids};

/// The parent of every node the benchmark touches.
pub const ROOT: &str = "/zab-bench";
/// `NodeExists`.
const NODE_EXISTS: i32 = -110;
/// The largest latency the histograms hold, µs (10 minutes).
const MAX_LATENCY_US: u64 = 600_000_000;

/// What each operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `create` of a new persistent node per operation (a write).
    Create,
    /// `setData` of an existing key (a write).
    Set,
    /// `getData` of an existing key (a read).
    Get,
    /// `exists` of an existing key (a read).
    Exists,
    /// `getData` with probability `--read-pct`, else `setData`, on random keys.
    Mix,
}

impl Workload {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Set => "set",
            Workload::Get => "get",
            Workload::Exists => "exists",
            Workload::Mix => "mix",
        }
    }
}

/// One run's parameters.
#[derive(Clone, Debug)]
pub struct Spec {
    /// What to do.
    pub workload: Workload,
    /// Mix only: percentage of reads.
    pub read_pct: f64,
    /// Sessions, spread round-robin over the servers.
    pub clients: usize,
    /// Closed loop: outstanding requests per session.
    pub depth: usize,
    /// Value size, bytes.
    pub payload: usize,
    /// Keys read and written (`/zab-bench/k/<i>`).
    pub keys: usize,
    /// Open loop: total target rate, operations per second.
    pub rate: Option<f64>,
    /// Open loop: most requests outstanding per session before due ones are dropped.
    pub max_outstanding: usize,
    /// Warm-up, not measured.
    pub warmup: Duration,
    /// Measured duration (or `ops`).
    pub duration: Option<Duration>,
    /// Measured operations (instead of a duration).
    pub ops: Option<u64>,
    /// Longest wait for any reply before the run fails.
    pub io_timeout: Duration,
    /// Session timeout asked for, ms.
    pub session_timeout_ms: i32,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
}

impl Spec {
    /// The read percentage this run really has.
    pub fn effective_read_pct(&self) -> f64 {
        match self.workload {
            Workload::Create | Workload::Set => 0.0,
            Workload::Get | Workload::Exists => 100.0,
            Workload::Mix => self.read_pct,
        }
    }

    /// A short stable name: rounds and systems are matched on it.
    pub fn key(&self) -> String {
        let mut k = self.workload.name().to_string();
        if self.workload == Workload::Mix {
            k.push_str(&format!("-r{}", self.read_pct));
        }
        match self.rate {
            Some(r) => k.push_str(&format!("-open{r}-c{}", self.clients)),
            None => k.push_str(&format!("-c{}x{}", self.clients, self.depth)),
        }
        k.push_str(&format!("-p{}", self.payload));
        k
    }
}

fn key_path(i: usize) -> String {
    format!("{ROOT}/k/{i}")
}

/// Creates `/zab-bench`, `/zab-bench/k`, `/zab-bench/c` and the keys with a `payload`-byte
/// value (setting it where the key exists), over one session to the first server.
pub async fn setup(servers: &[SocketAddr], spec: &Spec) -> anyhow::Result<()> {
    let addr = *servers.first().ok_or_else(|| anyhow!("no server"))?;
    let mut s = Session::connect(addr, spec.io_timeout, spec.session_timeout_ms).await?;
    for p in [ROOT.to_string(), format!("{ROOT}/k"), format!("{ROOT}/c")] {
        let h = s
            .call(&create_req(&p, Bytes::new()), spec.io_timeout)
            .await?;
        if h.err != 0 && h.err != NODE_EXISTS {
            bail!("create {p}: error {}", h.err);
        }
    }
    let value = payload(spec.payload);
    for chunk in (0..spec.keys).collect::<Vec<_>>().chunks(256) {
        let mut xids = Vec::new();
        for &i in chunk {
            xids.push((s.push_request(&create_req(&key_path(i), value.clone())), i));
        }
        s.flush().await?;
        let mut existing = Vec::new();
        for (xid, i) in xids {
            let (h, _) = s.next_reply(spec.io_timeout).await.context("setup")?;
            if h.xid != xid {
                bail!("setup: reply for xid {} while waiting for {xid}", h.xid);
            }
            match h.err {
                0 => {}
                NODE_EXISTS => existing.push(i),
                e => bail!("setup: create {}: error {e}", key_path(i)),
            }
        }
        for i in existing {
            let h = s
                .call(&set_req(&key_path(i), value.clone()), spec.io_timeout)
                .await?;
            if h.err != 0 {
                bail!("setup: setData {}: error {}", key_path(i), h.err);
            }
        }
    }
    let _ = s.call(&Request::CloseSession, spec.io_timeout).await;
    Ok(())
}

/// Creates `parents` nodes `{root}/pNNNN` (the root too) and `znodes` children
/// `{root}/pNNNN/cNNNNNNN` with a `payload`-byte value spread over them, over one session to
/// the first server, `window` creates in flight (the memory benchmark's tree: issue 12).
/// Existing nodes are kept. Returns the number of nodes created.
pub async fn populate(
    servers: &[SocketAddr],
    root: &str,
    parents: usize,
    znodes: usize,
    payload_bytes: usize,
    window: usize,
    io_timeout: Duration,
) -> anyhow::Result<usize> {
    let addr = *servers.first().ok_or_else(|| anyhow!("no server"))?;
    let mut s = Session::connect(addr, io_timeout, 30_000).await?;
    let parents = parents.max(1);
    let mut paths = vec![root.to_owned()];
    paths.extend((0..parents).map(|p| format!("{root}/p{p:04}")));
    let value = payload(payload_bytes);
    let mut made = 0;
    for (i, p) in paths.iter().enumerate() {
        let data = if i == 0 { Bytes::new() } else { value.clone() };
        let h = s.call(&create_req(p, data), io_timeout).await?;
        match h.err {
            0 => made += 1,
            NODE_EXISTS => {}
            e => bail!("create {p}: error {e}"),
        }
    }
    let child = |i: usize| format!("{root}/p{:04}/c{:07}", i % parents, i / parents);
    for chunk in (0..znodes).collect::<Vec<_>>().chunks(window.max(1)) {
        let mut xids = Vec::with_capacity(chunk.len());
        for &i in chunk {
            xids.push((s.push_request(&create_req(&child(i), value.clone())), i));
        }
        s.flush().await?;
        for (xid, i) in xids {
            let frame = tokio::time::timeout(io_timeout, s.next_frame())
                .await
                .map_err(|_| anyhow!("populate: no reply within {io_timeout:?}"))??
                .ok_or_else(|| anyhow!("populate: the server closed the connection"))?;
            let h = reply_header(&frame)?;
            if h.xid != xid {
                bail!("populate: reply for xid {} while waiting for {xid}", h.xid);
            }
            match h.err {
                0 => made += 1,
                NODE_EXISTS => {}
                e => bail!("populate: create {}: error {e}", child(i)),
            }
        }
    }
    let _ = s.call(&Request::CloseSession, io_timeout).await;
    Ok(made)
}

fn payload(n: usize) -> Bytes {
    Bytes::from((0..n).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>())
}

fn create_req(path: &str, data: Bytes) -> Request {
    Request::Create(CreateRequest {
        path: path.into(),
        data: Some(data),
        acl: ids::open_acl_unsafe(),
        flags: 0,
    })
}

fn set_req(path: &str, data: Bytes) -> Request {
    Request::SetData(SetDataRequest {
        path: path.into(),
        data: Some(data),
        version: -1,
    })
}

/// Everything the session tasks share (read-only), built once per run.
struct Plan {
    spec: Spec,
    gets: Vec<Template>,
    exists: Vec<Template>,
    sets: Vec<Template>,
    value: Bytes,
    run_id: u64,
    start: Instant,
    warm: Instant,
    end: Option<Instant>,
}

/// Counters shared by the session tasks and the progress bar.
#[derive(Default)]
struct Shared {
    /// Successful operations completed after the warm-up.
    done: AtomicU64,
    /// Set when `ops` operations were measured (or on a failure): stop sending.
    stop: AtomicBool,
    /// When the `ops`-th operation completed, ns after the start.
    finished_ns: AtomicU64,
}

/// One session's measurements.
struct Outcome {
    hist: Histogram<u64>,
    lag: Histogram<u64>,
    ops: u64,
    errors: u64,
    dropped: u64,
    pings: u64,
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map_err(|e| anyhow!("histogram: {e}"))
}

/// A small deterministic generator (xorshift64*): cheap, and the same sequence per session
/// for every system.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// A number in [0, 100).
    fn pct(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0
    }
}

struct Conn {
    idx: usize,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    rng: Rng,
    seq: u64,
    pending: VecDeque<(i32, Instant)>,
    out: Outcome,
}

impl Conn {
    /// Whether a request due (or sent) at `t` is sent at all.
    fn sending(&self, t: Instant) -> bool {
        !self.shared.stop.load(Ordering::Relaxed) && self.plan.end.is_none_or(|e| t < e)
    }

    /// Whether a request due at `t` is measured.
    fn measured(&self, t: Instant) -> bool {
        t >= self.plan.warm && self.plan.end.is_none_or(|e| t < e)
    }

    fn issue(&mut self, s: &mut Session, due: Instant) {
        let p = &self.plan;
        let k = self.rng.below(p.gets.len());
        let xid = match p.spec.workload {
            Workload::Get => s.push(&p.gets[k]),
            Workload::Exists => s.push(&p.exists[k]),
            Workload::Set => s.push(&p.sets[k]),
            Workload::Mix => {
                if self.rng.pct() < p.spec.read_pct {
                    s.push(&p.gets[k])
                } else {
                    s.push(&p.sets[k])
                }
            }
            Workload::Create => {
                self.seq += 1;
                let path = format!("{ROOT}/c/{}-{}-{}", p.run_id, self.idx, self.seq);
                s.push_request(&create_req(&path, p.value.clone()))
            }
        };
        self.pending.push_back((xid, due));
    }

    /// Takes every complete reply off the input buffer; in closed loop, sends a new request
    /// for each one answered.
    fn on_replies(&mut self, s: &mut Session, closed_loop: bool) -> anyhow::Result<()> {
        let now = Instant::now();
        while let Some(frame) = s.buffered_frame()? {
            let h = reply_header(&frame)?;
            if h.xid < 0 {
                continue; // a notification or a ping reply
            }
            let (xid, due) = self
                .pending
                .pop_front()
                .ok_or_else(|| anyhow!("a reply (xid {}) to no request", h.xid))?;
            if xid != h.xid {
                bail!("reply for xid {} while waiting for {xid}", h.xid);
            }
            if self.measured(due) {
                if h.err == 0 {
                    let us = now.saturating_duration_since(due).as_micros();
                    let us = u64::try_from(us).unwrap_or(MAX_LATENCY_US);
                    self.out.hist.saturating_record(us.clamp(1, MAX_LATENCY_US));
                } else {
                    self.out.errors += 1;
                }
            }
            if h.err == 0 && now >= self.plan.warm && self.plan.end.is_none_or(|e| now <= e) {
                self.out.ops += 1;
                let done = self.shared.done.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(target) = self.plan.spec.ops
                    && done >= target
                    && !self.shared.stop.swap(true, Ordering::Relaxed)
                {
                    let ns = now.saturating_duration_since(self.plan.start).as_nanos();
                    self.shared
                        .finished_ns
                        .store(u64::try_from(ns).unwrap_or(u64::MAX), Ordering::Relaxed);
                }
            }
            if closed_loop && self.sending(now) {
                self.issue(s, now);
            }
        }
        Ok(())
    }

    /// Reads more replies, pinging while none come (see [`Session::fill_within`]).
    async fn read_more(&mut self, s: &mut Session) -> anyhow::Result<()> {
        let t = self.plan.spec.io_timeout;
        match s.fill_within(t).await? {
            None => bail!("no reply within {t:?} ({} outstanding)", self.pending.len()),
            Some(true) => Ok(()),
            Some(false) => bail!("the server closed the connection"),
        }
    }

    async fn closed_loop(&mut self, s: &mut Session) -> anyhow::Result<()> {
        let now = Instant::now();
        for _ in 0..self.plan.spec.depth.max(1) {
            if self.sending(now) {
                self.issue(s, now);
            }
        }
        s.flush().await?;
        while !self.pending.is_empty() {
            self.read_more(s).await?;
            self.on_replies(s, true)?;
            s.flush().await?;
        }
        Ok(())
    }

    /// Open loop: one request per due time received from the pacer thread.
    fn due(&mut self, s: &mut Session, due: Instant) {
        if self.pending.len() >= self.plan.spec.max_outstanding {
            if self.measured(due) {
                self.out.dropped += 1;
            }
            return;
        }
        self.issue(s, due);
        if self.measured(due) {
            let lag = u64::try_from(Instant::now().saturating_duration_since(due).as_micros())
                .unwrap_or(MAX_LATENCY_US);
            self.out.lag.saturating_record(lag.clamp(1, MAX_LATENCY_US));
        }
    }

    async fn open_loop(
        &mut self,
        s: &mut Session,
        mut due_rx: tokio::sync::mpsc::UnboundedReceiver<Instant>,
    ) -> anyhow::Result<()> {
        let t = self.plan.spec.io_timeout;
        let mut open = true;
        let mut heard = Instant::now();
        loop {
            if !open && self.pending.is_empty() {
                return Ok(());
            }
            let ping_at = s.ping_at();
            tokio::select! {
                biased;
                r = s.fill() => {
                    if !r? {
                        bail!("the server closed the connection");
                    }
                    heard = Instant::now();
                    self.on_replies(s, false)?;
                }
                d = due_rx.recv(), if open => match d {
                    Some(due) => {
                        self.due(s, due);
                        while let Ok(due) = due_rx.try_recv() {
                            self.due(s, due);
                        }
                        s.flush().await?;
                    }
                    None => open = false,
                },
                () = tokio::time::sleep_until(ping_at), if !self.pending.is_empty() => {
                    s.ping().await?;
                }
                () = tokio::time::sleep_until(heard + t), if !open => {
                    bail!("no reply within {t:?} ({} outstanding)", self.pending.len());
                }
            }
        }
    }
}

/// The open-loop schedule: the k-th operation is due at `start + k / rate` and goes to
/// session `k mod clients`. Runs on its own thread, sleeping with the OS timer (tens of µs of
/// slack, where tokio's timer wheel has 1 ms ticks), so that requests leave close to their
/// intended time; the remaining lag is measured and reported.
fn pacer(
    plan: &Plan,
    shared: &Shared,
    rate: f64,
    txs: Vec<tokio::sync::mpsc::UnboundedSender<Instant>>,
) {
    let start = plan.start.into_std();
    let end = plan.end.map(Instant::into_std);
    let n = txs.len().max(1) as u64;
    // 1 ns of timer slack instead of the default 50 µs: wake-ups as close to due as possible.
    let _ = nix::sys::prctl::set_timerslack(1);
    let mut k: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(k as f64 / rate.max(1e-3));
        if end.is_some_and(|e| due >= e) || shared.stop.load(Ordering::Relaxed) {
            return;
        }
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if let Some(tx) = txs.get((k % n) as usize) {
            let _ = tx.send(Instant::from_std(due));
        }
        k += 1;
    }
}

async fn drive(
    idx: usize,
    addr: SocketAddr,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    mut session: Session,
    due_rx: Option<tokio::sync::mpsc::UnboundedReceiver<Instant>>,
) -> anyhow::Result<Outcome> {
    let mut c = Conn {
        idx,
        rng: Rng(0x9E37_79B9_7F4A_7C15 ^ ((idx as u64 + 1) << 17)),
        seq: 0,
        pending: VecDeque::new(),
        out: Outcome {
            hist: histogram()?,
            lag: histogram()?,
            ops: 0,
            errors: 0,
            dropped: 0,
            pings: 0,
        },
        plan: plan.clone(),
        shared,
    };
    let r = match due_rx {
        Some(rx) => c.open_loop(&mut session, rx).await,
        None => c.closed_loop(&mut session).await,
    };
    r.with_context(|| format!("session {idx} to {addr}"))?;
    c.out.pings = session.pings;
    let _ = session
        .call(&Request::CloseSession, Duration::from_secs(5))
        .await;
    Ok(c.out)
}

fn progress_bar(spec: &Spec) -> ProgressBar {
    if !spec.progress {
        return ProgressBar::hidden();
    }
    let (len, template) = match (spec.ops, spec.duration) {
        (Some(n), _) => (
            n,
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} ops {msg}",
        ),
        (None, d) => (
            (spec.warmup + d.unwrap_or_default()).as_secs().max(1),
            "{spinner} {elapsed_precise} [{bar:40}] {pos}/{len} s {msg}",
        ),
    };
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Runs one load against `servers` and measures it.
pub async fn run(servers: &[SocketAddr], spec: &Spec) -> anyhow::Result<RunResult> {
    if servers.is_empty() {
        bail!("no server");
    }
    if spec.duration.is_none() && spec.ops.is_none() {
        bail!("give a duration or an operation count");
    }
    let value = payload(spec.payload);
    let mut gets = Vec::new();
    let mut exists = Vec::new();
    let mut sets = Vec::new();
    for i in 0..spec.keys.max(1) {
        let path = key_path(i);
        gets.push(Template::new(&Request::GetData(GetDataRequest {
            path: path.clone(),
            watch: false,
        })));
        exists.push(Template::new(&Request::Exists(ExistsRequest {
            path: path.clone(),
            watch: false,
        })));
        sets.push(Template::new(&set_req(&path, value.clone())));
    }
    // Open every session first, so that connection set-up is not measured.
    let mut sessions = Vec::new();
    for i in 0..spec.clients.max(1) {
        let addr = servers[i % servers.len()];
        let s = Session::connect(addr, spec.io_timeout, spec.session_timeout_ms)
            .await
            .with_context(|| format!("opening session {i}"))?;
        sessions.push((addr, s));
    }
    let start = Instant::now();
    let warm = start + spec.warmup;
    let plan = Arc::new(Plan {
        spec: spec.clone(),
        gets,
        exists,
        sets,
        value,
        run_id: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default(),
        start,
        warm,
        end: spec.duration.map(|d| warm + d),
    });
    let shared = Arc::new(Shared::default());
    let pb = progress_bar(spec);
    let mut tasks = tokio::task::JoinSet::new();
    let mut due_txs = Vec::new();
    for (i, (addr, s)) in sessions.into_iter().enumerate() {
        let rx = spec.rate.map(|_| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            due_txs.push(tx);
            rx
        });
        tasks.spawn(drive(i, addr, plan.clone(), shared.clone(), s, rx));
    }
    let pacer_thread = match spec.rate {
        Some(rate) => {
            let (plan, shared) = (plan.clone(), shared.clone());
            Some(
                std::thread::Builder::new()
                    .name("zab-bench-pacer".into())
                    .spawn(move || pacer(&plan, &shared, rate, due_txs))?,
            )
        }
        None => None,
    };
    let ticker = {
        let pb = pb.clone();
        let shared = shared.clone();
        let by_ops = spec.ops.is_some();
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let done = shared.done.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, done);
                pb.set_message(format!("{rate:.0} ops/s"));
                pb.set_position(if by_ops {
                    done
                } else {
                    now.duration_since(start).as_secs()
                });
            }
        })
    };
    let mut hist = histogram()?;
    let mut lag = histogram()?;
    let (mut ops, mut errors, mut dropped, mut pings) = (0u64, 0u64, 0u64, 0u64);
    let mut failure = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(o)) => {
                hist.add(&o.hist).map_err(|e| anyhow!("histogram: {e}"))?;
                lag.add(&o.lag).map_err(|e| anyhow!("histogram: {e}"))?;
                ops += o.ops;
                errors += o.errors;
                dropped += o.dropped;
                pings += o.pings;
            }
            Ok(Err(e)) => {
                shared.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(anyhow!("a session task failed: {e}"));
            }
        }
    }
    ticker.abort();
    pb.finish_and_clear();
    if let Some(t) = pacer_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let seconds = match (spec.duration, spec.ops) {
        (Some(d), _) => d.as_secs_f64(),
        (None, _) => {
            let ns = shared.finished_ns.load(Ordering::Relaxed);
            let end = if ns == 0 {
                Instant::now()
            } else {
                start + Duration::from_nanos(ns)
            };
            end.saturating_duration_since(warm).as_secs_f64()
        }
    };
    if ops == 0 && errors == 0 {
        // Percentiles of nothing would read as 0 ms: no figures instead.
        let why = if pings > 0 {
            format!(
                "; {pings} ping(s): a reply was awaited for the whole ping interval (see README, \
                 ZOOKEEPER-4537)"
            )
        } else {
            String::new()
        };
        bail!("no operation completed in the measured window{why}");
    }
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64;
    Ok(RunResult {
        key: spec.key(),
        workload: spec.workload.name().into(),
        read_pct: spec.effective_read_pct(),
        clients: spec.clients,
        depth: if spec.rate.is_some() { 0 } else { spec.depth },
        payload: spec.payload,
        target_rate: spec.rate,
        seconds,
        ops,
        errors,
        dropped,
        pings,
        throughput: if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        },
        latency: Latency {
            p50_us: q(&hist, 0.5),
            p90_us: q(&hist, 0.9),
            p99_us: q(&hist, 0.99),
            p999_us: q(&hist, 0.999),
            max_us: hist.max() as f64,
            mean_us: hist.mean(),
        },
        send_lag_us: spec.rate.map(|_| (q(&lag, 0.5), q(&lag, 0.99))),
        loadavg: None,
        breakdown: std::collections::BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(workload: Workload) -> Spec {
        Spec {
            workload,
            read_pct: 90.0,
            clients: 32,
            depth: 8,
            payload: 1024,
            keys: 1000,
            rate: None,
            max_outstanding: 10_000,
            warmup: Duration::from_secs(2),
            duration: Some(Duration::from_secs(8)),
            ops: None,
            io_timeout: Duration::from_secs(30),
            session_timeout_ms: 30_000,
            progress: false,
        }
    }

    #[test]
    fn keys_name_the_shape_of_a_run() {
        assert_eq!(spec(Workload::Mix).key(), "mix-r90-c32x8-p1024");
        assert_eq!(spec(Workload::Create).key(), "create-c32x8-p1024");
        let open = Spec {
            rate: Some(2000.0),
            clients: 16,
            ..spec(Workload::Mix)
        };
        assert_eq!(open.key(), "mix-r90-open2000-c16-p1024");
    }

    #[test]
    fn single_operation_workloads_have_a_fixed_read_ratio() {
        assert_eq!(spec(Workload::Create).effective_read_pct(), 0.0);
        assert_eq!(spec(Workload::Set).effective_read_pct(), 0.0);
        assert_eq!(spec(Workload::Get).effective_read_pct(), 100.0);
        assert_eq!(spec(Workload::Exists).effective_read_pct(), 100.0);
        assert_eq!(spec(Workload::Mix).effective_read_pct(), 90.0);
    }

    #[test]
    fn the_generator_draws_the_asked_read_ratio() {
        // The mix chooses a read when pct() < read_pct: over many draws the share of reads is
        // the ratio asked for, and 0 % / 100 % are exact.
        for (ratio, lo, hi) in [(0.0, 0, 0), (50.0, 49_000, 51_000), (90.0, 89_000, 91_000)] {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
            let reads = (0..100_000).filter(|_| rng.pct() < ratio).count();
            assert!((lo..=hi).contains(&reads), "{ratio}%: {reads} reads");
        }
        let mut rng = Rng(12345);
        assert!((0..100_000).all(|_| rng.pct() < 100.0));
        let mut rng = Rng(7);
        assert!((0..10_000).all(|_| rng.below(1000) < 1000));
        assert_eq!(Rng(7).below(0), 0);
    }

    #[test]
    fn a_run_needs_a_duration_or_an_operation_count() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let s = Spec {
            duration: None,
            ops: None,
            ..spec(Workload::Get)
        };
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let e = rt.block_on(run(&[addr], &s)).expect_err("no bound");
        assert!(e.to_string().contains("duration"), "{e}");
        let e = rt
            .block_on(run(&[], &spec(Workload::Get)))
            .expect_err("no server");
        assert!(e.to_string().contains("no server"), "{e}");
    }

    #[tokio::test]
    async fn a_window_without_a_completed_operation_has_no_figures() {
        // The one request, sent in the warm-up, is held until the session's ping (100 ms at a
        // 300 ms session): its reply comes after the 20 ms window, which measured nothing.
        let addr = crate::session::tests::stalling_server(300).await;
        let s = Spec {
            clients: 1,
            depth: 1,
            warmup: Duration::from_millis(50),
            duration: Some(Duration::from_millis(20)),
            io_timeout: Duration::from_secs(5),
            session_timeout_ms: 300,
            ..spec(Workload::Get)
        };
        let e = run(&[addr], &s).await.expect_err("no figures");
        let e = format!("{e:#}");
        assert!(
            e.contains("no operation completed in the measured window"),
            "{e}"
        );
        assert!(e.contains("1 ping(s)"), "{e}");
    }
}
