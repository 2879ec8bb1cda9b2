//! zabd's write-path latency breakdown around one run: `GET /latency` from every server's
//! metrics endpoint before and after, the difference per stage (HdrHistogram counts, summed
//! over the servers), and its percentiles. The stages and their origins are zabd's
//! (`impl/src/latency.rs`): `origin.*` from the request decoded on the client's server,
//! `leader.*` from the proposal, `follower.*` from the PROPOSAL received, `log.fsync` each
//! group commit's fsync.

use crate::result::StageStats;
use anyhow::{Context as _, anyhow, bail};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Every stage's recorded values (µs → count), summed over servers.
pub type Snapshot = BTreeMap<String, BTreeMap<u64, u64>>;

/// The stages in the order of a write's path (the order they are printed in).
pub const ORDER: [&str; 16] = [
    "origin.prepared",
    "leader.proposal_sent",
    "follower.proposal_accepted",
    "leader.durable",
    "follower.durable",
    "follower.ack_sent",
    "leader.ack_received",
    "leader.committed",
    "leader.applied",
    "follower.commit_received",
    "follower.applied",
    "origin.write_replied",
    "origin.read_replied",
    "log.fsync",
    "replica.event",
    "replica.snapshot_capture",
];

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await?;
    let text = String::from_utf8(body).context("not UTF-8")?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("no HTTP head"))?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("{}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_string())
}

/// Adds one server's `/latency` JSON to `into`.
fn add(into: &mut Snapshot, json: &serde_json::Value) -> anyhow::Result<()> {
    let stages = json["stages"]
        .as_object()
        .ok_or_else(|| anyhow!("no \"stages\" object"))?;
    for (name, values) in stages {
        let m = into.entry(name.clone()).or_default();
        for pair in values.as_array().into_iter().flatten() {
            let (Some(v), Some(n)) = (pair[0].as_u64(), pair[1].as_u64()) else {
                bail!("bad value in {name}: {pair}");
            };
            *m.entry(v).or_default() += n;
        }
    }
    Ok(())
}

/// The breakdown of every endpoint, summed (`Err` if one does not answer).
pub async fn snapshot(endpoints: &[SocketAddr]) -> anyhow::Result<Snapshot> {
    let mut out = Snapshot::new();
    for &a in endpoints {
        let body = tokio::time::timeout(Duration::from_secs(5), get(a, "/latency"))
            .await
            .map_err(|_| anyhow!("{a}: /latency timed out"))?
            .with_context(|| format!("{a}: GET /latency"))?;
        let json: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("{a}: /latency is not JSON"))?;
        add(&mut out, &json)?;
    }
    Ok(out)
}

/// What was recorded between `before` and `after`: count and percentiles per stage.
pub fn between(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, StageStats> {
    let mut out = BTreeMap::new();
    for (name, values) in after {
        let Ok(mut h) = Histogram::<u64>::new_with_bounds(1, 60_000_000, 2) else {
            continue;
        };
        let old = before.get(name);
        for (&v, &n) in values {
            let prior = old.and_then(|o| o.get(&v)).copied().unwrap_or(0);
            let d = n.saturating_sub(prior);
            if d > 0 {
                let _ = h.record_n(v.clamp(1, 60_000_000), d);
            }
        }
        if h.is_empty() {
            continue;
        }
        out.insert(
            name.clone(),
            StageStats {
                count: h.len(),
                p50_us: h.value_at_quantile(0.5) as f64,
                p99_us: h.value_at_quantile(0.99) as f64,
                p999_us: h.value_at_quantile(0.999) as f64,
            },
        );
    }
    out
}

/// The breakdown as text lines, in path order: `stage  count  p50  p99  p99.9` (µs).
pub fn lines(b: &BTreeMap<String, StageStats>) -> Vec<String> {
    let mut names: Vec<&String> = ORDER
        .iter()
        .filter_map(|o| b.get_key_value(*o).map(|(k, _)| k))
        .collect();
    names.extend(b.keys().filter(|k| !ORDER.contains(&k.as_str())));
    names
        .into_iter()
        .filter_map(|n| {
            let s = b.get(n)?;
            Some(format!(
                "    {n:<28} n {:>8}  p50 {:>8.0} µs  p99 {:>8.0} µs  p99.9 {:>8.0} µs",
                s.count, s.p50_us, s.p99_us, s.p999_us
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_the_difference_of_two_snapshots_summed_over_servers() {
        let mut before = Snapshot::new();
        add(
            &mut before,
            &serde_json::json!({"stages": {"leader.durable": [[100, 5]]}}),
        )
        .expect("add");
        let mut after = Snapshot::new();
        for j in [
            serde_json::json!({"stages": {"leader.durable": [[100, 7], [400, 1]]}}),
            serde_json::json!({"stages": {"follower.durable": [[90, 3]], "leader.durable": []}}),
        ] {
            add(&mut after, &j).expect("add");
        }
        let d = between(&before, &after);
        assert_eq!(d["leader.durable"].count, 3);
        assert!((99.0..=101.0).contains(&d["leader.durable"].p50_us));
        assert!((398.0..=402.0).contains(&d["leader.durable"].p99_us));
        assert_eq!(d["follower.durable"].count, 3);
        let text = lines(&d);
        assert!(text[0].contains("leader.durable"), "path order: {text:?}");
        assert!(add(&mut after, &serde_json::json!({"x": 1})).is_err());
    }
}
