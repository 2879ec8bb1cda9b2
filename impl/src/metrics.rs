//! Metrics: the [`Status`] the runtime publishes, a lock-free latency histogram, and the
//! Prometheus text endpoint (`GET /metrics`) with role, epoch, last zxid, committed
//! transactions, outstanding proposals, synced followers, elections, ignored inputs and the
//! synchronous-persistence (fsync) latency histogram.

use crate::core::{Ignored, RoleInfo};
use crate::latency::Breakdown;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::warn;
use zab_spec::{Epoch, ServerState, ZabState, Zxid};

/// Upper bounds of the histogram buckets, in microseconds.
pub const BUCKETS_MICROS: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A fixed-bucket histogram of microsecond latencies, updated without locks.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, micros: u64) {
        let k = BUCKETS_MICROS
            .iter()
            .position(|b| micros <= *b)
            .unwrap_or(BUCKETS_MICROS.len());
        self.buckets[k].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Sum of the observations, microseconds.
    #[must_use]
    pub fn sum_micros(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// An estimate of quantile `q` (0..=1) in microseconds at bucket resolution: the bucket
    /// holding the `q`-th observation, interpolated linearly inside it (the last finite bound
    /// for the overflow bucket); `None` before the first observation.
    #[must_use]
    pub fn quantile_micros(&self, q: f64) -> Option<f64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).max(1.0);
        let mut below = 0u64;
        for (k, n) in counts.iter().enumerate() {
            if *n > 0 && (below + n) as f64 >= rank {
                let Some(hi) = BUCKETS_MICROS.get(k) else {
                    return Some(BUCKETS_MICROS[BUCKETS_MICROS.len() - 1] as f64);
                };
                let lo = if k == 0 { 0 } else { BUCKETS_MICROS[k - 1] };
                let within = (rank - below as f64) / *n as f64;
                return Some(lo as f64 + within * (*hi - lo) as f64);
            }
            below += n;
        }
        Some(BUCKETS_MICROS[BUCKETS_MICROS.len() - 1] as f64)
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (k, bound) in BUCKETS_MICROS.iter().enumerate() {
            cumulative += self.buckets[k].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1e6
            );
        }
        cumulative += self.buckets[BUCKETS_MICROS.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros() as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.count());
    }
}

/// Counters and state the runtime publishes for `srvr`, `mntr` and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Status {
    /// The role, updated on every change.
    pub role: Mutex<Option<RoleInfo>>,
    /// Last zxid in the log (`to_u64`).
    pub last_zxid: AtomicU64,
    /// Last delivered zxid.
    pub committed_zxid: AtomicU64,
    /// Last zxid of the log known durable (the core's `persisted`: fsynced before it is
    /// reported, so never ahead of the disk).
    pub durable_zxid: AtomicU64,
    /// Transactions delivered since start.
    pub delivered: AtomicU64,
    /// Proposals this server made as leader.
    pub proposals: AtomicU64,
    /// Outstanding (uncommitted) proposals of this leader.
    pub outstanding: AtomicU64,
    /// Synced followers of this leader.
    pub synced_followers: AtomicU64,
    /// Synced observers of this leader (`spec/PROTOCOL.md` §10.2).
    pub synced_observers: AtomicU64,
    /// Elections won or joined.
    pub elections: AtomicU64,
    /// Time of the last role change, ms since the epoch of the process.
    pub role_since: Mutex<Option<Instant>>,
    /// Synchronous persistence latency, microseconds (histogram buckets).
    pub fsync_micros: Histogram,
    /// Learners this leader synchronized, by mode: DIFF, TRUNC, SNAP.
    pub syncs: [AtomicU64; 3],
    /// Of those, DIFFs and TRUNCs whose transactions were partly read back from the log on
    /// disk (older than the `commitLogCount` kept in memory).
    pub syncs_from_disk: AtomicU64,
    /// The largest frame body this server read on a quorum connection, bytes (copied from
    /// the network's `NetState`).
    pub largest_quorum_frame: AtomicU64,
    /// SNAP chunks this server received from leaders.
    pub snap_chunks: AtomicU64,
    /// Inputs the core ignored, by `ignore_*` path (in [`Ignored::ALL`] order).
    pub ignored: [AtomicU64; Ignored::ALL.len()],
    /// How long each step of the replica thread took (one event handled, or the due timers
    /// fired), microseconds: any stall of the thread every client and follower waits on
    /// shows here.
    pub step_micros: Histogram,
    /// Directory sizes and file descriptors, measured off the replica thread.
    pub disk: DiskUsage,
    /// The write path's stage-by-stage latency breakdown (shared with the I/O layers).
    pub breakdown: Arc<Breakdown>,
}

/// What the four-letter words, the AdminServer and the metrics report about the disk and
/// the process's files, measured every second by a thread of its own ([`spawn_disk_usage`])
/// so that no request walks a directory on the replica thread. Zero until first measured.
#[derive(Debug, Default)]
pub struct DiskUsage {
    data_dir_bytes: AtomicU64,
    log_dir_bytes: AtomicU64,
    /// Open and maximum file descriptors; the maximum is 0 where the platform does not tell.
    open_fds: AtomicU64,
    max_fds: AtomicU64,
}

impl DiskUsage {
    /// Bytes in the data directory and in the log directory.
    #[must_use]
    pub fn dir_sizes(&self) -> (u64, u64) {
        (
            self.data_dir_bytes.load(Ordering::Relaxed),
            self.log_dir_bytes.load(Ordering::Relaxed),
        )
    }

    /// Open and maximum file descriptors, where the platform tells (Linux `/proc`).
    #[must_use]
    pub fn file_descriptors(&self) -> Option<(u64, u64)> {
        let max = self.max_fds.load(Ordering::Relaxed);
        (max > 0).then(|| (self.open_fds.load(Ordering::Relaxed), max))
    }

    /// Measures now (on the calling thread).
    pub fn measure(&self, data_dir: &std::path::Path, log_dir: &std::path::Path) {
        self.data_dir_bytes
            .store(dir_size(data_dir), Ordering::Relaxed);
        self.log_dir_bytes
            .store(dir_size(log_dir), Ordering::Relaxed);
        if let Some((open, max)) = file_descriptors() {
            self.open_fds.store(open, Ordering::Relaxed);
            self.max_fds.store(max, Ordering::Relaxed);
        }
    }
}

/// Starts the thread that measures [`DiskUsage`] every `period`, until `status` is dropped.
pub fn spawn_disk_usage(
    status: &Arc<Status>,
    data_dir: std::path::PathBuf,
    log_dir: std::path::PathBuf,
    period: std::time::Duration,
) {
    let weak = Arc::downgrade(status);
    let spawned = std::thread::Builder::new()
        .name("zab-disk-usage".into())
        .spawn(move || {
            while let Some(status) = weak.upgrade() {
                status.disk.measure(&data_dir, &log_dir);
                drop(status);
                std::thread::sleep(period);
            }
        });
    if let Err(e) = spawned {
        warn!("cannot start the disk-usage thread (dirs and mntr will report 0): {e}");
    }
}

/// The bytes of the files under `path`, recursively.
fn dir_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Open and maximum file descriptors (Linux `/proc`).
fn file_descriptors() -> Option<(u64, u64)> {
    let open = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let max = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some((open, max))
}

impl Status {
    /// The current role, LOOKING before the first report.
    #[must_use]
    pub fn role(&self) -> RoleInfo {
        self.role
            .lock()
            .map(|r| *r)
            .ok()
            .flatten()
            .unwrap_or(RoleInfo {
                state: ServerState::Looking,
                zab_state: ZabState::Election,
                leader: None,
                epoch: Epoch(0),
                observer: false,
            })
    }
}

fn gauge(out: &mut String, name: &str, help: &str, kind: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// The Prometheus text exposition of a server's status.
#[must_use]
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    let role = status.role();
    let _ = writeln!(
        out,
        "# HELP zab_learner_syncs_total Learners synchronized by this server as leader, by mode.\n\
         # TYPE zab_learner_syncs_total counter"
    );
    for (k, mode) in ["diff", "trunc", "snap"].into_iter().enumerate() {
        let n = status.syncs[k].load(Ordering::Relaxed);
        let _ = writeln!(out, "zab_learner_syncs_total{{mode=\"{mode}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP zab_learner_syncs_from_disk_total DIFFs and TRUNCs that read transactions back \
         from the log on disk.\n\
         # TYPE zab_learner_syncs_from_disk_total counter\n\
         zab_learner_syncs_from_disk_total {}",
        status.syncs_from_disk.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP zab_quorum_largest_frame_bytes The largest frame read on a quorum connection.\n\
         # TYPE zab_quorum_largest_frame_bytes gauge\n\
         zab_quorum_largest_frame_bytes {}\n\
         # HELP zab_snap_chunks_received_total SNAP chunks received from leaders.\n\
         # TYPE zab_snap_chunks_received_total counter\n\
         zab_snap_chunks_received_total {}",
        status.largest_quorum_frame.load(Ordering::Relaxed),
        status.snap_chunks.load(Ordering::Relaxed)
    );
    out.push_str(
        "# HELP zab_ignored_inputs_total Inputs the protocol core ignored, by ignore_* path.\n\
         # TYPE zab_ignored_inputs_total counter\n",
    );
    for (k, why) in Ignored::ALL.iter().enumerate() {
        let n = status.ignored[k].load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "zab_ignored_inputs_total{{path=\"{}\"}} {n}",
            why.name()
        );
    }
    let _ = writeln!(
        out,
        "# HELP zab_role The server's role (1 for the current one).\n# TYPE zab_role gauge"
    );
    for (name, state, observer) in [
        ("looking", ServerState::Looking, false),
        ("follower", ServerState::Following, false),
        ("observer", ServerState::Following, true),
        ("leader", ServerState::Leading, false),
    ] {
        let on =
            role.state == state && (state != ServerState::Following || role.observer == observer);
        let _ = writeln!(out, "zab_role{{role=\"{name}\"}} {}", u8::from(on));
    }
    gauge(
        &mut out,
        "zab_epoch",
        "The accepted epoch.",
        "gauge",
        role.epoch.0,
    );
    let last = Zxid::from_u64(status.last_zxid.load(Ordering::Relaxed));
    let committed = Zxid::from_u64(status.committed_zxid.load(Ordering::Relaxed));
    gauge(
        &mut out,
        "zab_last_zxid",
        "The last zxid in the log.",
        "gauge",
        last.to_u64(),
    );
    gauge(
        &mut out,
        "zab_durable_zxid",
        "The last zxid of the log known durable (fsynced).",
        "gauge",
        status.durable_zxid.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "zab_committed_zxid",
        "The last delivered zxid.",
        "gauge",
        committed.to_u64(),
    );
    gauge(
        &mut out,
        "zab_committed_txns_total",
        "Transactions delivered since start.",
        "counter",
        status.delivered.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "zab_proposals_total",
        "Proposals made as leader since start.",
        "counter",
        status.proposals.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "zab_outstanding_proposals",
        "Proposals not yet committed (leader).",
        "gauge",
        status.outstanding.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "zab_synced_followers",
        "Followers receiving proposals (leader).",
        "gauge",
        status.synced_followers.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "zab_synced_observers",
        "Observers receiving INFORMs (leader).",
        "gauge",
        status.synced_observers.load(Ordering::Relaxed),
    );
    gauge(
        &mut out,
        "zab_elections_total",
        "Times this server became leader or follower.",
        "counter",
        status.elections.load(Ordering::Relaxed),
    );
    status.fsync_micros.render(
        "zab_fsync_seconds",
        "Latency of fsync: the log's group commits and the synchronous writes (epochs, TRUNC, SNAP).",
        &mut out,
    );
    status.step_micros.render(
        "zab_replica_step_seconds",
        "How long each step of the replica thread took (an event handled, or the due timers fired): a stall of the thread shows here.",
        &mut out,
    );
    status.breakdown.render(&mut out);
    out
}

/// Asks the service for ZooKeeper's metric names (the Prometheus text); `false` when the
/// service is gone.
pub type ZkQuery = Arc<dyn Fn(tokio::sync::oneshot::Sender<String>) -> bool + Send + Sync>;

/// How long `/metrics` waits for the service's part.
const ZK_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Serves `GET /metrics` (and `/`) on `addr` until the process ends: ZooKeeper's names first
/// when `zk` is given (a busy or stopped service leaves them out, with a warning), then
/// zab's own `zab_*` metrics. `GET /latency` is the write path's breakdown as JSON (every
/// stage's HdrHistogram values, [`Breakdown::to_json`]), which `zab-bench` reads before and
/// after each run.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Status>,
    zk: Option<ZkQuery>,
) -> std::io::Result<()> {
    let listener = crate::http::bind(addr, "metrics endpoint").await?;
    let handler: crate::http::Handler = Arc::new(move |target: String| {
        let status = Arc::clone(&status);
        let zk = zk.clone();
        Box::pin(async move {
            let path = target.split('?').next().unwrap_or("");
            if path == "/latency" {
                return crate::http::Reply::ok(
                    "application/json",
                    status.breakdown.to_json().to_string(),
                );
            }
            if path != "/metrics" && path != "/" {
                return crate::http::Reply::not_found();
            }
            let mut body = String::new();
            if let Some(query) = zk {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let answered = query(tx);
                match tokio::time::timeout(ZK_QUERY_TIMEOUT, rx).await {
                    Ok(Ok(text)) if answered => body.push_str(&text),
                    _ => warn!("metrics: the service did not answer; ZooKeeper's names left out"),
                }
            }
            body.push_str(&render(&status));
            crate::http::Reply::ok("text/plain; version=0.0.4; charset=utf-8", body)
        })
    });
    crate::http::serve(listener, "metrics endpoint", handler).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        for v in [10, 60, 60, 2_000_000] {
            h.record(v);
        }
        let mut out = String::new();
        h.render("x", "help", &mut out);
        assert!(out.contains("x_bucket{le=\"0.00005\"} 1"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.0001\"} 3"), "{out}");
        assert!(out.contains("x_bucket{le=\"+Inf\"} 4"), "{out}");
        assert!(out.contains("x_count 4"));
    }

    #[test]
    fn the_exposition_names_every_required_metric() {
        let s = Status::default();
        s.fsync_micros.record(300);
        let text = render(&s);
        for m in [
            "zab_role{role=\"looking\"} 1",
            "zab_epoch",
            "zab_last_zxid",
            "zab_durable_zxid",
            "zab_committed_txns_total",
            "zab_outstanding_proposals",
            "zab_synced_followers",
            "zab_fsync_seconds_bucket",
        ] {
            assert!(text.contains(m), "{m} missing");
        }
    }
}
