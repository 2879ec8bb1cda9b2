//! A rogue peer for tests: poses as servers 2 and 3 of a 3-server ensemble on server 1's
//! election port, votes server 1 onto a fake leader listening on server 3's quorum port, and
//! speaks raw quorum frames to it (the attacks of `peer_attacks.rs` and `learner_sync.rs`).

use bytes::BytesMut;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};
use zab_server::wire::{
    self, Frame, FrameLimits, HELLO_LEN, HandshakeStatus, Hello, Purpose, WELCOME_LEN, Welcome,
};
use zab_spec::message::Notification;
use zab_spec::{Epoch, QuorumMessage, ServerId, ServerState, Vote};

/// The payload type of the frames a rogue speaks.
pub type P = zab_zk::Txn;

/// The ensemble fingerprint of servers 1, 2 and 3 (no observers).
pub fn fingerprint() -> u64 {
    wire::ensemble_fingerprint(&[ServerId(1), ServerId(2), ServerId(3)])
}

/// Writes `frames` to `s` as one buffer.
pub fn send_frames(s: &mut TcpStream, frames: &[Frame<P>]) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    for f in frames {
        wire::encode_frame(f, &mut buf);
    }
    s.write_all(&buf)
}

/// Reads the next whole frame from `s` (what `buf` holds first); panics if `s` closes.
pub fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Frame<P> {
    let limits = FrameLimits::from_learner(0xfffff);
    loop {
        if let Some(body) = wire::take_frame(buf, &limits).expect("frame") {
            return wire::decode_frame(&body).expect("decodable");
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "the follower closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Poses as `sid` on `target`'s election port and votes `vote` (for server 3) in round
/// `election_epoch`, as an intact member (server 1 is not unsure: the flags do not matter).
/// `None` while `target` does not listen or answer yet; otherwise the connection, kept open
/// so that the vote stands, and the handshake's status.
pub fn vote_for_3_as(
    sid: u64,
    target: SocketAddr,
    vote: Vote,
    election_epoch: u64,
) -> Option<(TcpStream, HandshakeStatus)> {
    let mut s = TcpStream::connect(target).ok()?;
    s.write_all(&wire::encode_hello(&Hello {
        purpose: Purpose::Election,
        sid: ServerId(sid),
        ensemble: fingerprint(),
    }))
    .ok()?;
    let mut w = [0u8; WELCOME_LEN];
    s.read_exact(&mut w).ok()?;
    let status = wire::decode_welcome(&w).expect("welcome").status;
    // The follower may close before reading it.
    let _ = send_frames(
        &mut s,
        &[Frame::Notification(Notification {
            vote,
            election_epoch,
            state: ServerState::Looking,
            recovering: false,
            empty: true,
        })],
    );
    Some((s, status))
}

/// A follower the rogue leads: its quorum connection, read up to its FOLLOWERINFO.
pub struct RogueFollower {
    pub stream: TcpStream,
    /// What was read past FOLLOWERINFO.
    pub buf: BytesMut,
    /// The epoch the FOLLOWERINFO says the follower accepted.
    pub accepted_epoch: Epoch,
    /// The election connections whose votes made server 1 follow the rogue.
    pub votes: Vec<TcpStream>,
}

/// Waits (30 s at most) for server 1 to connect to `rogue` (server 3's quorum port, a
/// non-blocking listener), calling `vote` every 100 ms until it does (at most 40 connections
/// kept), then answers its handshake as server 3 and reads its FOLLOWERINFO.
pub fn accept_rogue_follower(
    rogue: &TcpListener,
    mut vote: impl FnMut() -> Vec<TcpStream>,
) -> RogueFollower {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut votes = Vec::new();
    let mut stream = loop {
        if let Ok((s, _)) = rogue.accept() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "server 1 never followed the rogue"
        );
        if votes.len() < 40 {
            votes.extend(vote());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut hello = [0u8; HELLO_LEN];
    stream.read_exact(&mut hello).expect("hello");
    assert_eq!(wire::decode_hello(&hello).expect("hello").sid, ServerId(1));
    stream
        .write_all(&wire::encode_welcome(&Welcome {
            status: HandshakeStatus::Accepted,
            sid: ServerId(3),
        }))
        .expect("welcome");
    let mut buf = BytesMut::new();
    let Frame::Zab(QuorumMessage::FollowerInfo { accepted_epoch, .. }) =
        read_frame(&mut stream, &mut buf)
    else {
        panic!("FOLLOWERINFO expected");
    };
    RogueFollower {
        stream,
        buf,
        accepted_epoch,
        votes,
    }
}

/// Reads frames until the follower's ACKEPOCH.
pub fn await_ack_epoch(f: &mut RogueFollower) {
    loop {
        if let Frame::Zab(QuorumMessage::AckEpoch { .. }) = read_frame(&mut f.stream, &mut f.buf) {
            break;
        }
    }
}
