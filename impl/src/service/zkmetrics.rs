//! ZooKeeper's metric names on `/metrics` (with `metricsProvider.className` set to ZooKeeper's
//! `PrometheusMetricsProvider`): the gauges, counters and summaries ZooKeeper 3.8 registers
//! (`ZooKeeperServer.registerMetrics`, `QuorumZooKeeperServer`, `LeaderZooKeeperServer`,
//! `ServerMetrics`) that zabd can compute honestly, with the Prometheus types that provider
//! gives them. Rendered on the replica thread from the service's [`StatsView`]; the names
//! ZooKeeper has and zabd does not are listed, with the reason, in docs/zookeeper-metrics.md.

use super::StatsView;
use crate::config::ServerConfig;
use crate::metrics::Histogram;
use crate::runtime::AppCx;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use zab_spec::ServerState;

/// A Prometheus metric type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `gauge`.
    Gauge,
    /// `counter`.
    Counter,
    /// `summary` with quantile 0.5 (ZooKeeper's `DetailLevel.BASIC`).
    SummaryBasic,
    /// `summary` with quantiles 0.5, 0.9, 0.99 (`DetailLevel.ADVANCED`).
    SummaryAdvanced,
}

impl Kind {
    /// The `# TYPE` word.
    #[must_use]
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::SummaryBasic | Kind::SummaryAdvanced => "summary",
        }
    }
}

/// Every ZooKeeper metric zabd exports, with its type (as ZooKeeper 3.8's provider exports
/// it). The leader-only ones appear while this server leads, the quorum ones when it is not
/// standalone, as in ZooKeeper.
pub const EXPORTED: &[(&str, Kind)] = &[
    ("approximate_data_size", Kind::Gauge),
    ("auth_failed_count", Kind::Gauge),
    ("avg_latency", Kind::Gauge),
    ("commit_count", Kind::Counter),
    ("diff_count", Kind::Counter),
    ("ephemerals_count", Kind::Gauge),
    ("fsynctime", Kind::SummaryBasic),
    ("global_sessions", Kind::Gauge),
    ("last_proposal_size", Kind::Gauge),
    ("leader_uptime", Kind::Gauge),
    ("local_sessions", Kind::Gauge),
    ("max_file_descriptor_count", Kind::Gauge),
    ("max_latency", Kind::Gauge),
    ("max_proposal_size", Kind::Gauge),
    ("min_latency", Kind::Gauge),
    ("min_proposal_size", Kind::Gauge),
    ("num_alive_connections", Kind::Gauge),
    ("open_file_descriptor_count", Kind::Gauge),
    ("outstanding_requests", Kind::Gauge),
    ("packets_received", Kind::Gauge),
    ("packets_sent", Kind::Gauge),
    ("proposal_count", Kind::Counter),
    ("quorum_size", Kind::Gauge),
    ("readlatency", Kind::SummaryAdvanced),
    ("snap_count", Kind::Counter),
    ("synced_followers", Kind::Gauge),
    ("updatelatency", Kind::SummaryAdvanced),
    ("uptime", Kind::Gauge),
    ("watch_count", Kind::Gauge),
    ("znode_count", Kind::Gauge),
];

/// Exported only while this server leads (ZooKeeper registers them in
/// `LeaderZooKeeperServer`).
pub const LEADER_ONLY: &[&str] = &[
    "synced_followers",
    "leader_uptime",
    "last_proposal_size",
    "max_proposal_size",
    "min_proposal_size",
];

fn kind_of(name: &str) -> Kind {
    EXPORTED
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Kind::Gauge, |(_, k)| *k)
}

fn value(out: &mut String, name: &str, v: impl std::fmt::Display) {
    let kind = kind_of(name);
    let _ = writeln!(
        out,
        "# HELP {name} {name}\n# TYPE {name} {}\n{name} {v}",
        kind.type_name()
    );
}

/// A summary in milliseconds from a microsecond histogram (quantiles estimated at bucket
/// resolution; `NaN` before the first observation, as Prometheus's Java client reports).
fn summary(out: &mut String, name: &str, h: &Histogram) {
    let kind = kind_of(name);
    let _ = writeln!(out, "# HELP {name} {name}\n# TYPE {name} summary");
    let quantiles: &[f64] = if kind == Kind::SummaryAdvanced {
        &[0.5, 0.9, 0.99]
    } else {
        &[0.5]
    };
    for q in quantiles {
        let v = h.quantile_micros(*q).map_or(f64::NAN, |us| us / 1000.0);
        let _ = writeln!(out, "{name}{{quantile=\"{q}\"}} {v}");
    }
    let _ = writeln!(out, "{name}_count {}", h.count());
    let _ = writeln!(out, "{name}_sum {}", h.sum_micros() as f64 / 1000.0);
}

/// The latency histograms of the client port (reads and writes answered).
pub struct Latencies<'a> {
    /// Reads.
    pub read: &'a Histogram,
    /// Writes.
    pub update: &'a Histogram,
}

/// The Prometheus text of ZooKeeper's metrics that zabd computes.
pub fn render(
    view: &StatsView,
    lat: &Latencies<'_>,
    cfg: &ServerConfig,
    cx: &AppCx<'_, zab_zk::Txn>,
) -> String {
    let mut out = String::new();
    let o = &mut out;
    let (s, st) = (&view.stats, cx.status());
    let (min, max, total, n) = s.latency;
    value(o, "approximate_data_size", view.approximate_data_size);
    value(o, "auth_failed_count", s.auth_failed);
    let avg = if n == 0 { 0.0 } else { total as f64 / n as f64 };
    value(o, "avg_latency", avg);
    value(o, "commit_count", st.delivered.load(Ordering::Relaxed));
    value(o, "diff_count", st.syncs[0].load(Ordering::Relaxed));
    value(o, "ephemerals_count", view.ephemerals);
    summary(o, "fsynctime", &st.fsync_micros);
    value(o, "global_sessions", view.global_sessions);
    // zabd has no local sessions (every session is global).
    value(o, "local_sessions", 0);
    if let Some((open, max_fd)) = st.disk.file_descriptors() {
        value(o, "max_file_descriptor_count", max_fd);
        value(o, "open_file_descriptor_count", open);
    }
    value(o, "max_latency", max);
    value(o, "min_latency", min);
    value(o, "num_alive_connections", view.conns.len());
    value(o, "outstanding_requests", view.outstanding());
    value(o, "packets_received", s.packets_received);
    value(o, "packets_sent", s.packets_sent);
    value(o, "proposal_count", st.proposals.load(Ordering::Relaxed));
    if cfg.members.len() > 1 {
        value(o, "quorum_size", cfg.members.len());
    }
    summary(o, "readlatency", lat.read);
    value(o, "snap_count", st.syncs[2].load(Ordering::Relaxed));
    summary(o, "updatelatency", lat.update);
    value(o, "uptime", (cx.now_ms - view.started_ms).max(0));
    value(o, "watch_count", view.watch_count);
    value(o, "znode_count", view.znode_count);
    if cx.role().state == ServerState::Leading {
        let (last, smallest, largest) = s.proposal_sizes;
        value(o, "last_proposal_size", last);
        value(o, "max_proposal_size", largest);
        value(o, "min_proposal_size", smallest);
        let since = st.role_since.lock().ok().and_then(|t| *t);
        let up = since.map_or(0, |t| t.elapsed().as_millis());
        value(o, "leader_uptime", up);
        value(
            o,
            "synced_followers",
            st.synced_followers.load(Ordering::Relaxed),
        );
    }
    out
}
