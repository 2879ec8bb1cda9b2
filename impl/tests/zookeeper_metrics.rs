//! ZooKeeper's metric names on zabd's `/metrics` (`metricsProvider.className` set to
//! ZooKeeper's `PrometheusMetricsProvider`): a three-server ensemble under a little load is
//! scraped, and its names, types and summary quantiles are compared with the list of
//! ZooKeeper 3.8.0's metrics (`tests/fixtures/zookeeper-3.8-metrics.txt`, recorded by
//! `ci/zk-metric-names.sh` from Debian's jar, which has no Prometheus provider to scrape
//! live); every name of that list zabd does not export is in docs/zookeeper-metrics.md with
//! its reason.

#![allow(clippy::print_stderr)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use support::Ensemble;
use zab_server::config::PROMETHEUS_PROVIDER;
use zab_server::service::zkmetrics::{EXPORTED, LEADER_ONLY};

const STABLE: Duration = Duration::from_secs(60);

/// name -> (type, quantiles) of the fixture.
fn fixture() -> BTreeMap<String, (String, Option<String>)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/zookeeper-3.8-metrics.txt"
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let name = f.next().expect("name").to_string();
            let kind = f.next().expect("type").to_string();
            let q = f
                .find_map(|x| x.strip_prefix("quantiles="))
                .map(str::to_string);
            (name, (kind, q))
        })
        .collect()
}

/// The names the doc lists as not exported.
fn documented_absent() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/zookeeper-metrics.md");
    let text = std::fs::read_to_string(path).expect("doc");
    let absent = text
        .split_once("## Not exported")
        .map(|(_, t)| t)
        .expect("the doc has a Not exported section");
    absent
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(n, _)| n.to_string()))
        .collect()
}

/// name -> (type, quantile labels seen) of every non-`zab_` metric in a scrape.
fn scrape(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            if !name.starts_with("zab_") {
                out.insert(name.into(), (kind.into(), BTreeSet::new()));
            }
        } else if let Some((name, rest)) = l.split_once("{quantile=\"") {
            let q = rest.split('"').next().unwrap_or("").to_string();
            if let Some(e) = out.get_mut(name) {
                e.1.insert(q);
            }
        }
    }
    out
}

fn value(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[test]
fn zookeeper_names_and_types_match_zookeeper_3_8() {
    let fix = fixture();
    let absent = documented_absent();
    // The code's list, the fixture and the doc agree.
    for (name, kind) in EXPORTED {
        let (t, q) = fix
            .get(*name)
            .unwrap_or_else(|| panic!("{name}: not ZooKeeper's"));
        assert_eq!(kind.type_name(), t, "{name}");
        assert!(
            !absent.contains(*name),
            "{name} is exported and listed absent"
        );
        let _ = q;
    }
    for name in fix.keys() {
        assert!(
            EXPORTED.iter().any(|(n, _)| n == name) || absent.contains(name),
            "{name}: neither exported nor listed with a reason in docs/zookeeper-metrics.md"
        );
    }
    for name in &absent {
        assert!(
            fix.contains_key(name),
            "the doc lists {name}, not a ZooKeeper metric"
        );
    }

    let e = Ensemble::start(
        3,
        &format!("metricsProvider.className={PROMETHEUS_PROVIDER}\n"),
    );
    let leader = e.wait_stable(STABLE);
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let mut c = e.client(follower, STABLE);
    for k in 0..5 {
        let p = format!("/m{k}");
        assert_eq!(c.create(&p, b"v", 0).expect("io"), Ok(p.clone()));
        c.get_data(&p, true).expect("io").expect("getData");
    }
    let ftext = e.metrics_text(follower);
    let ltext = e.metrics_text(leader);
    for (id, text) in [(follower, &ftext), (leader, &ltext)] {
        let got = scrape(text);
        for (name, (kind, quantiles)) in &got {
            let (t, q) = fix
                .get(name)
                .unwrap_or_else(|| panic!("server {id} exports {name}, not a ZooKeeper name"));
            assert_eq!(kind, t, "server {id}: type of {name}");
            let want: BTreeSet<String> = q
                .as_deref()
                .map(|q| q.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            assert_eq!(quantiles, &want, "server {id}: quantiles of {name}");
        }
        let expected: BTreeSet<&str> = EXPORTED
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| id == leader || !LEADER_ONLY.contains(n))
            .collect();
        let names: BTreeSet<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(names, expected, "server {id}'s ZooKeeper names");
        assert!(
            text.contains("# TYPE zab_role gauge"),
            "zab's own metrics beside"
        );
    }
    // Values that follow from the load: the follower answered the reads and writes.
    assert!(value(&ftext, "znode_count") >= 5.0 + 5.0);
    assert_eq!(value(&ftext, "quorum_size"), 3.0);
    assert!(value(&ftext, "readlatency_count") >= 5.0);
    assert!(value(&ftext, "updatelatency_count") >= 5.0);
    assert_eq!(
        value(&ltext, "updatelatency_count"),
        0.0,
        "the leader answered none"
    );
    assert!(value(&ftext, "watch_count") >= 5.0);
    assert!(value(&ftext, "num_alive_connections") >= 1.0);
    assert!(value(&ftext, "global_sessions") >= 1.0);
    assert!(
        value(&ltext, "proposal_count") >= 6.0,
        "a session and five creates"
    );
    assert_eq!(value(&ltext, "synced_followers"), 2.0);
    assert!(value(&ltext, "commit_count") >= 6.0);
    c.close().expect("close");
}

#[test]
fn without_the_provider_only_zab_metrics_are_exported() {
    let e = Ensemble::start(1, "");
    e.wait_stable(STABLE);
    let text = e.metrics_text(1);
    assert!(text.contains("# TYPE zab_role gauge"), "{text}");
    assert!(scrape(&text).is_empty(), "{text}");
}
