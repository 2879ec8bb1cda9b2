//! Metrics: the [`Status`] the runtime publishes, a lock-free latency histogram, and the
//! Prometheus text endpoint (`GET /metrics`) with role, epoch, last zxid, committed
//! transactions, outstanding proposals, synced followers, elections, ignored inputs and the
//! synchronous-persistence (fsync) latency histogram.

use crate::core::{Ignored, RoleInfo};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::{info, warn};
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
    /// Transactions delivered since start.
    pub delivered: AtomicU64,
    /// Proposals this server made as leader.
    pub proposals: AtomicU64,
    /// Outstanding (uncommitted) proposals of this leader.
    pub outstanding: AtomicU64,
    /// Synced followers of this leader.
    pub synced_followers: AtomicU64,
    /// Elections won or joined.
    pub elections: AtomicU64,
    /// Time of the last role change, ms since the epoch of the process.
    pub role_since: Mutex<Option<Instant>>,
    /// Synchronous persistence latency, microseconds (histogram buckets).
    pub fsync_micros: Histogram,
    /// Learners this leader synchronized, by mode: DIFF, TRUNC, SNAP.
    pub syncs: [AtomicU64; 3],
    /// Inputs the core ignored, by `ignore_*` path (in [`Ignored::ALL`] order).
    pub ignored: [AtomicU64; Ignored::ALL.len()],
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
    for (name, state) in [
        ("looking", ServerState::Looking),
        ("follower", ServerState::Following),
        ("leader", ServerState::Leading),
    ] {
        let _ = writeln!(
            out,
            "zab_role{{role=\"{name}\"}} {}",
            u8::from(role.state == state)
        );
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
    out
}

/// Serves `GET /metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, status: Arc<Status>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    info!(%addr, "metrics endpoint listening");
    loop {
        let (mut stream, _) = listener.accept().await?;
        let status = Arc::clone(&status);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                stream.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (code, body) =
                if request.starts_with("GET /metrics") || request.starts_with("GET / ") {
                    ("200 OK", render(&status))
                } else {
                    ("404 Not Found", "not found\n".to_string())
                };
            let reply = format!(
                "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            if let Err(e) = stream.write_all(reply.as_bytes()).await {
                warn!("metrics reply failed: {e}");
            }
        });
    }
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
            "zab_committed_txns_total",
            "zab_outstanding_proposals",
            "zab_synced_followers",
            "zab_fsync_seconds_bucket",
        ] {
            assert!(text.contains(m), "{m} missing");
        }
    }
}
