//! Peer links are bounded (issue 12): a follower that cannot keep up is dropped by its leader
//! once `peerSendQueueLimitBytes` of frames wait for it, instead of being buffered without
//! limit, and it is resynchronized when it is back, with no acknowledged write lost.

#![allow(clippy::print_stderr)]

mod support;

use std::time::{Duration, Instant};
use support::{Ensemble, dump_tree, with_any_server};
use zab_spec::ErrorCode;
use zab_zk::client::ClientError;

const STABLE: Duration = Duration::from_secs(60);
const SERVE: Duration = Duration::from_secs(60);

fn create_acked(e: &Ensemble, servers: &[u64], path: &str, data: &[u8]) {
    with_any_server(e, servers, SERVE, |c| match c.create(path, data, 0)? {
        Ok(_) | Err(ErrorCode::NodeExists) => Ok(()),
        Err(code) => Err(ClientError::Protocol(format!("create {path}: {code:?}"))),
    });
}

#[test]
fn a_follower_that_does_not_keep_up_is_dropped_and_resynchronized() {
    // A 2 MiB send queue per peer; a long syncLimit (10 s) so that the leader's queue bound,
    // not its follower timeout, is what drops the frozen follower.
    let mut e = Ensemble::start(3, "peerSendQueueLimitBytes=2097152\nsyncLimit=50\n");
    let leader = e.wait_stable(STABLE);
    let followers: Vec<u64> = (1..=3).filter(|id| *id != leader).collect();
    create_acked(&e, &[leader], "/p", b"");
    // Frozen (SIGSTOP): it keeps its socket but reads nothing, so once the kernel's buffers
    // are full the leader's queue for it grows.
    e.pause(followers[0]);
    let data = vec![5u8; 500_000];
    let started = Instant::now();
    let log = &e.node(leader).log;
    let mut dropped = false;
    for k in 0..120 {
        create_acked(&e, &[leader], &format!("/p/{k}"), &data);
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("dropping a peer that does not keep up") {
            dropped = true;
            eprintln!(
                "dropped after {} writes of 500 kB, {:?}",
                k + 1,
                started.elapsed()
            );
            break;
        }
    }
    assert!(
        dropped,
        "the leader never dropped the frozen follower (60 MB written to it)"
    );
    e.resume(followers[0]);
    e.wait_stable(STABLE);
    // Back in the ensemble, it catches up: the same tree everywhere.
    create_acked(&e, &[followers[0]], "/p/after", b"a");
    let reference = dump_tree(&e, leader, "/");
    for id in &followers {
        let deadline = Instant::now() + SERVE;
        loop {
            let other = dump_tree(&e, *id, "/");
            if other == reference {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "server {id} differs from the leader: {} vs {} nodes",
                other.len(),
                reference.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // Its resynchronization, a DIFF carrying more than the 2 MiB limit, is queued whole and
    // not counted: once back, it was not dropped again at every attempt to catch up (which,
    // on a loaded machine, kept it out past the timeout before).
    let drops: usize = (1..=3)
        .map(|id| {
            std::fs::read_to_string(&e.node(id).log)
                .unwrap_or_default()
                .matches("dropping a peer that does not keep up")
                .count()
        })
        .sum();
    assert_eq!(drops, 1, "dropped once, while frozen");
}
