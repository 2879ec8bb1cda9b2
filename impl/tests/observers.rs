//! Observers (`spec/PROTOCOL.md` §10.2) with real `zabd` processes: 3 voters and 1 observer on
//! loopback. The observer serves reads, forwards writes, reports `Mode: observer`, and counts
//! in no quorum: killing it changes nothing, and with two voters down the ensemble stops even
//! though the observer is up. No acknowledged write is lost.

#![allow(clippy::print_stderr)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{Ensemble, dump_tree, with_any_server};
use zab_spec::ErrorCode;
use zab_zk::client::{ClientError, four_letter_word};

const STABLE: Duration = Duration::from_secs(60);
const SERVE: Duration = Duration::from_secs(60);
const OBSERVER: u64 = 4;

fn create_acked(e: &Ensemble, servers: &[u64], path: &str) {
    with_any_server(e, servers, SERVE, |c| match c.create(path, b"v", 0)? {
        Ok(_) | Err(ErrorCode::NodeExists) => Ok(()),
        Err(code) => Err(ClientError::Protocol(format!("create {path}: {code:?}"))),
    });
}

/// The children of `dir` on server `id`, read after a `sync` through that server.
fn children(e: &Ensemble, id: u64, dir: &str) -> BTreeSet<String> {
    let mut c = e.client(id, SERVE);
    c.sync(dir).expect("sync").expect("sync ok");
    let kids = c.get_children(dir, false).expect("io").expect("children");
    let _ = c.close();
    kids.into_iter().collect()
}

fn mntr(e: &Ensemble, id: u64) -> String {
    four_letter_word(e.node(id).client, "mntr", Duration::from_secs(5)).unwrap_or_default()
}

/// Waits until `id`'s `srvr` says `mode` (`None`: not serving).
fn wait_mode(e: &Ensemble, id: u64, mode: Option<&str>, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while e.mode(id).as_deref() != mode {
        if Instant::now() > deadline {
            e.dump_logs();
            panic!("server {id}: mode {:?}, expected {mode:?}", e.mode(id));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_observer_serves_reads_forwards_writes_and_counts_in_no_quorum() {
    let mut e = Ensemble::start_with_observers(4, &[OBSERVER], |_| String::new());
    let leader = e.wait_stable(STABLE);
    assert_ne!(leader, OBSERVER, "an observer never leads");
    assert_eq!(e.mode(OBSERVER).as_deref(), Some("observer"));
    let m = mntr(&e, OBSERVER);
    assert!(m.contains("zk_server_state\tobserver"), "{m}");
    assert!(m.contains("zk_peer_state\tobserving - broadcast"), "{m}");
    assert!(m.contains("zk_quorum_size\t3"), "{m}");
    assert_eq!(e.metric(OBSERVER, "zab_role{role=\"observer\"}"), Some(1.0));
    assert_eq!(e.metric(leader, "zab_synced_followers"), Some(2.0));
    assert_eq!(e.metric(leader, "zab_synced_observers"), Some(1.0));
    let lm = mntr(&e, leader);
    assert!(lm.contains("zk_synced_observers\t1"), "{lm}");
    let conf =
        four_letter_word(e.node(OBSERVER).client, "conf", Duration::from_secs(5)).expect("conf");
    assert!(conf.contains("peerType=1"), "{conf}");
    assert!(conf.contains(&format!("server.{OBSERVER}=")) && conf.contains(":observer"));

    // `/zookeeper/config` (what `zkCli.sh config` reads) lists the observer as one.
    let mut c = e.client(OBSERVER, SERVE);
    let (data, _) = c
        .get_data("/zookeeper/config", false)
        .expect("io")
        .expect("/zookeeper/config");
    let _ = c.close();
    let text = String::from_utf8(data).expect("utf-8");
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("server.{OBSERVER}=")) && l.ends_with(":observer")),
        "{text}"
    );
    assert_eq!(text.matches(":participant").count(), 3, "{text}");
    assert!(text.ends_with("\nversion=0"), "{text}");

    // Writes through the observer reach every voter; reads on the observer see them.
    create_acked(&e, &[OBSERVER], "/obs");
    let mut want = BTreeSet::new();
    for k in 0..20 {
        create_acked(&e, &[OBSERVER], &format!("/obs/o{k}"));
        want.insert(format!("o{k}"));
    }
    for id in 1..=4 {
        assert_eq!(children(&e, id, "/obs"), want, "server {id}");
    }
    // A write through a voter is applied by the observer (INFORM), without a sync too.
    create_acked(&e, &[leader], "/obs/from-leader");
    want.insert("from-leader".into());
    let deadline = Instant::now() + SERVE;
    loop {
        let mut c = e.client(OBSERVER, SERVE);
        let seen = c.exists("/obs/from-leader", false).expect("io");
        let _ = c.close();
        if seen.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the observer never applied the write"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // The observer down: the three voters go on, with no new election.
    e.kill(OBSERVER);
    for k in 0..10 {
        create_acked(&e, &[1, 2, 3], &format!("/obs/v{k}"));
        want.insert(format!("v{k}"));
    }
    assert_eq!(e.leader(), Some(leader));
    // Back up, it catches up and serves again.
    e.start_node(OBSERVER);
    wait_mode(&e, OBSERVER, Some("observer"), STABLE);
    assert_eq!(children(&e, OBSERVER, "/obs"), want);

    // One voter (not the leader) down: 2 of 3 voters are a quorum; writes through the
    // observer go on.
    let follower = (1..=3).find(|k| *k != leader).expect("a follower");
    e.kill(follower);
    for k in 0..10 {
        create_acked(&e, &[OBSERVER], &format!("/obs/q{k}"));
        want.insert(format!("q{k}"));
    }
    assert_eq!(children(&e, OBSERVER, "/obs"), want);
    // A second voter down: the leader and the observer are no quorum; nobody serves.
    let other = (1..=3)
        .find(|k| *k != leader && *k != follower)
        .expect("another");
    e.kill(other);
    wait_mode(&e, leader, None, STABLE);
    wait_mode(&e, OBSERVER, None, STABLE);
    // Voters back: the ensemble recovers with every acknowledged write.
    e.start_node(follower);
    e.start_node(other);
    let leader = e.wait_stable(STABLE);
    assert_ne!(leader, OBSERVER);
    assert_eq!(e.mode(OBSERVER).as_deref(), Some("observer"));
    for id in 1..=4 {
        assert_eq!(children(&e, id, "/obs"), want, "server {id}");
    }
    let reference = dump_tree(&e, 1, "/");
    for id in 2..=4 {
        assert!(
            dump_tree(&e, id, "/") == reference,
            "server {id} differs from server 1"
        );
    }
}

#[test]
fn two_voters_and_an_observer_stop_when_a_voter_is_down() {
    // Were the observer counted, 3 servers would tolerate one down; 2 voters do not.
    let mut e = Ensemble::start_with_observers(3, &[3], |_| String::new());
    let leader = e.wait_stable(STABLE);
    assert_ne!(leader, 3, "an observer never leads");
    assert_eq!(e.mode(3).as_deref(), Some("observer"));
    create_acked(&e, &[3], "/two");
    let follower = if leader == 1 { 2 } else { 1 };
    e.kill(follower);
    wait_mode(&e, leader, None, STABLE);
    wait_mode(&e, 3, None, STABLE);
    e.start_node(follower);
    e.wait_stable(STABLE);
    assert!(children(&e, 3, "/").contains("two"));
}
