//! The JSON shapes zab-bench writes and reads: one [`RunResult`] per measured run, a
//! [`ResultFile`] per sweep (one system, one round), and [`Extra`] lines (failover, restart,
//! memory) appended to an NDJSON file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

/// Latency percentiles of a run, microseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// One measured run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunResult {
    /// A short stable name of the run's shape (`mix-r90-c32x8`, ...): rounds and systems are
    /// matched on it.
    pub key: String,
    /// `create`, `set`, `get`, `exists` or `mix`.
    pub workload: String,
    /// Percentage of reads (getData) in a mix; 100 for get/exists, 0 for create/set.
    pub read_pct: f64,
    /// Sessions.
    pub clients: usize,
    /// Outstanding requests per session (closed loop).
    pub depth: usize,
    /// Value size, bytes.
    pub payload: usize,
    /// Target rate, operations per second, in open-loop mode.
    pub target_rate: Option<f64>,
    /// The measured window, seconds (after warm-up).
    pub seconds: f64,
    /// Successful operations in the window.
    pub ops: u64,
    /// Operations answered with an error code in the window.
    pub errors: u64,
    /// Open loop: operations due that were not sent because too many were outstanding.
    pub dropped: u64,
    /// Pings the sessions sent because nothing was sent for the ping interval (9 s with the
    /// default 30 s session timeout) while a reply was awaited: each one is a reply that took
    /// that long (ZooKeeper 3.8.0's lost commit wake-up, ZOOKEEPER-4537; see README).
    #[serde(default)]
    pub pings: u64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Latency of successful operations (open loop: from the intended send time).
    pub latency: Latency,
    /// Open loop: how late the client sent requests after their intended time (p50, p99), µs.
    pub send_lag_us: Option<(f64, f64)>,
    /// The 1-minute load average when the run started.
    #[serde(default)]
    pub loadavg: Option<f64>,
    /// zabd's write-path breakdown recorded during the run (`--breakdown`): per stage, summed
    /// over the servers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub breakdown: BTreeMap<String, StageStats>,
}

/// One stage of zabd's latency breakdown over a run: how many writes reached it and when
/// (µs from the stage's origin, `impl/src/latency.rs`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct StageStats {
    /// Writes (or fsyncs) recorded.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
}

/// What `zab-bench sweep` writes: every run of one system in one round.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultFile {
    /// The system under test (`zabd`, `zookeeper`).
    pub system: String,
    /// The round number.
    pub round: u32,
    /// The servers driven.
    pub servers: Vec<String>,
    /// The 1-minute load average before the sweep.
    pub loadavg_before: Option<f64>,
    /// The 1-minute load average after the sweep.
    pub loadavg_after: Option<f64>,
    /// The runs.
    pub runs: Vec<RunResult>,
}

/// A single measurement that is not a load run: `failover_ms`, `restart_ms`, `rss_mib`, ...
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Extra {
    /// The system.
    pub system: String,
    /// The round (or trial group).
    pub round: u32,
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: String,
}

/// Appends one [`Extra`] as a JSON line to `path`.
pub fn append_extra(path: &Path, extra: &Extra) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{}", serde_json::to_string(extra)?)?;
    Ok(())
}

/// The 1-minute load average (`/proc/loadavg`).
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunResult {
        RunResult {
            key: "mix-r90-c32x8-p1024".into(),
            workload: "mix".into(),
            read_pct: 90.0,
            clients: 32,
            depth: 8,
            payload: 1024,
            target_rate: None,
            seconds: 8.0,
            ops: 80_000,
            errors: 1,
            dropped: 0,
            pings: 0,
            throughput: 10_000.0,
            latency: Latency {
                p50_us: 500.0,
                p90_us: 900.0,
                p99_us: 2_000.0,
                p999_us: 9_000.0,
                max_us: 12_000.0,
                mean_us: 600.5,
            },
            send_lag_us: Some((40.0, 300.0)),
            loadavg: Some(0.5),
            breakdown: BTreeMap::new(),
        }
    }

    #[test]
    fn a_result_file_round_trips_through_json() {
        let f = ResultFile {
            system: "zabd".into(),
            round: 2,
            servers: vec!["127.0.0.1:23181".into()],
            loadavg_before: Some(1.5),
            loadavg_after: None,
            runs: vec![run()],
        };
        let text = serde_json::to_string_pretty(&f).expect("serialize");
        let back: ResultFile = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back.system, f.system);
        assert_eq!(back.round, f.round);
        assert_eq!(back.servers, f.servers);
        assert_eq!(back.loadavg_before, f.loadavg_before);
        assert_eq!(back.loadavg_after, None);
        assert_eq!(back.runs, f.runs);
    }

    #[test]
    fn extras_append_as_json_lines() {
        let dir = std::env::temp_dir().join(format!("zab-bench-extra-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let p = dir.join("extras.ndjson");
        let _ = std::fs::remove_file(&p);
        for (i, v) in [360.5, 1068.7].into_iter().enumerate() {
            let e = Extra {
                system: ["zabd", "zookeeper"][i].into(),
                round: 1,
                name: "failover_ms".into(),
                value: v,
                unit: "ms".into(),
            };
            append_extra(&p, &e).expect("append");
        }
        let text = std::fs::read_to_string(&p).expect("read");
        let back: Vec<Extra> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].system, "zookeeper");
        assert_eq!(back[1].value, 1068.7);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
