//! Attacks on the peer protocol by a process that reaches the peer ports, against real `zabd`
//! processes on loopback (issue 11): what a plaintext ensemble must survive even without
//! authentication. Here: a rogue that wins an election (by posing as two members) and sends
//! a garbage SNAP; the follower drops it and keeps running.
//! The same attacks against an ensemble with quorum TLS, all refused at the handshake, are in
//! `quorum_tls.rs`.

#![allow(clippy::print_stderr)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use support::Ensemble;
use support::rogue::{
    P, accept_rogue_follower, await_ack_epoch, fingerprint, send_frames, vote_for_3_as,
};
use zab_server::wire::{self, Frame, HandshakeStatus, Hello, Purpose, WELCOME_LEN};
use zab_spec::{Epoch, QuorumMessage, ServerId, Vote, Zxid};

fn send_frame(s: &mut TcpStream, f: &Frame<P>) {
    send_frames(s, std::slice::from_ref(f)).expect("write frame");
}

/// Votes for server 3 as servers 2 and 3 with a history far ahead (a later epoch than any
/// the real ensemble reached), in a far later round.
fn votes_for_3(election1: SocketAddr) -> Vec<TcpStream> {
    let vote = Vote {
        peer_epoch: Epoch(1000),
        zxid: Zxid::new(1000, 1000),
        leader: ServerId(3),
    };
    [2, 3]
        .into_iter()
        .filter_map(|sid| vote_for_3_as(sid, election1, vote, 1_000_000))
        .map(|(s, status)| {
            assert_eq!(status, HandshakeStatus::Accepted);
            s
        })
        .collect()
}

fn log_of(e: &Ensemble, id: u64) -> String {
    std::fs::read_to_string(&e.node(id).log).unwrap_or_default()
}

#[test]
fn a_garbage_snap_from_a_rogue_leader_drops_it_and_the_follower_keeps_running() {
    let mut e = Ensemble::start(3, "");
    // The members form their ensemble first, so that each holds durable state. Killed before
    // they joined, servers 2 and 3 would restart empty beside a server 1 that accepted the
    // rogue's epoch: exactly what a wiped data directory looks like (spec/PROTOCOL.md
    // §7.1.1), so both would rightly wait to be restored, and two of three recovering
    // servers are no quorum: the ensemble would never form again.
    e.wait_stable(Duration::from_secs(60));
    let addrs = e.peer_addrs();
    let (_, quorum3, _) = addrs[2];
    let (_, _, election1) = addrs[0];
    let (_, quorum1, _) = addrs[0];
    // A 1 GiB length prefix, on the election port and on the quorum port: refused on the
    // prefix and type byte, the connection closed, nothing buffered.
    for (addr, purpose) in [(election1, Purpose::Election), (quorum1, Purpose::Quorum)] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut s = loop {
            if let Ok(s) = TcpStream::connect(addr) {
                break s;
            }
            assert!(Instant::now() < deadline, "server 1 never listened");
            std::thread::sleep(Duration::from_millis(50));
        };
        s.write_all(&wire::encode_hello(&Hello {
            purpose,
            sid: ServerId(2),
            ensemble: fingerprint(),
        }))
        .expect("hello");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut w = [0u8; WELCOME_LEN];
        s.read_exact(&mut w).expect("welcome");
        let mut huge = (1u32 << 30).to_be_bytes().to_vec();
        huge.push(15); // SNAP
        huge.extend_from_slice(&[0u8; 1024]);
        let _ = s.write_all(&huge);
        let mut rest = [0u8; 64];
        assert!(
            matches!(s.read(&mut rest), Ok(0) | Err(_)),
            "a 1 GiB frame closes the connection ({purpose:?})"
        );
    }
    // Only server 1 runs (it goes LOOKING); the rogue takes server 3's quorum port.
    e.kill(2);
    e.kill(3);
    let rogue = TcpListener::bind(quorum3).expect("bind server 3's quorum port");
    rogue.set_nonblocking(true).expect("nonblocking");
    // Votes from "2" and "3" for 3 until server 1 follows 3 (it may not be LOOKING yet).
    let mut f = accept_rogue_follower(&rogue, || votes_for_3(election1));
    let accepted_epoch = f.accepted_epoch;
    // The epoch server 1 already accepted (answered with an uncounted ACKEPOCH): a higher
    // epoch accepted from a rogue would keep server 1 out of the real leader's epoch until
    // the next election (the weakness quorum TLS closes), which is not what this test is
    // about.
    send_frame(
        &mut f.stream,
        &Frame::Zab(QuorumMessage::LeaderInfo {
            new_epoch: accepted_epoch,
        }),
    );
    await_ack_epoch(&mut f);
    let (mut stream, votes) = (f.stream, f.votes);
    send_frame(
        &mut stream,
        &Frame::Zab(QuorumMessage::Snap {
            last_zxid: Zxid::new(accepted_epoch.0, 0),
            snapshot: bytes::Bytes::from_static(b"not a snapshot at all").into(),
        }),
    );
    // The follower drops the rogue: its connection closes, an error names the leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_of(&e, 1).contains("bad SNAP from the leader") {
        assert!(Instant::now() < deadline, "no error about the bad SNAP");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = [0u8; 64];
    assert!(
        matches!(stream.read(&mut rest), Ok(0) | Err(_)),
        "the rogue's connection is closed"
    );
    let log = log_of(&e, 1);
    assert!(log.contains("leader=3"), "the error names the leader");
    assert!(!log.contains("storage failure"), "the server did not stop");
    assert!(
        log.contains("SECURITY: the quorum and election ports are PLAINTEXT"),
        "a plaintext ensemble warns at start"
    );
    // Still alive: once the real members are back, server 1 serves again.
    drop((stream, rogue, votes));
    e.start_node(2);
    e.start_node(3);
    let leader = e.wait_stable(Duration::from_secs(60));
    assert!(e.mode(1).is_some(), "server 1 serves (leader {leader})");
}
