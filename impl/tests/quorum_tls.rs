//! Quorum TLS (`sslQuorum=true`, issue 11) against real `zabd` processes on loopback, with
//! certificates made here: a 3-node TLS ensemble replicates; the attacks of
//! `peer_attacks.rs` and the issue (posing as a member on the election or quorum port, in
//! plaintext or with an untrusted, missing or another member's certificate; a 1 GiB frame; a
//! rogue that wins an election and sends a garbage SNAP) are all refused at the handshake:
//! nothing applied, no follower displaced, no server exits; a member restarted with an
//! untrusted or another member's certificate cannot join, and joins with its own.

#![allow(clippy::print_stderr)]

mod support;

use bytes::BytesMut;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::certs::{Pki, quorum_tls_cfg};
use support::{Ensemble, with_any_server};
use zab_server::tls::{QUORUM_PREFIX, TlsSettings};
use zab_server::wire::{self, Frame, HandshakeStatus, Hello, Purpose, WELCOME_LEN};
use zab_spec::ErrorCode;
use zab_spec::message::Notification;
use zab_spec::{Epoch, ServerId, ServerState, Vote, Zxid};

type P = zab_zk::Txn;

const SERVE: Duration = Duration::from_secs(60);

fn log_of(e: &Ensemble, id: u64) -> String {
    std::fs::read_to_string(&e.node(id).log).unwrap_or_default()
}

fn tls_ensemble(pki: &Pki) -> Ensemble {
    Ensemble::start_each(3, |id| quorum_tls_cfg(&pki.member(id), &pki.ca))
}

fn hello(purpose: Purpose, sid: u64) -> Vec<u8> {
    wire::encode_hello(&Hello {
        purpose,
        sid: ServerId(sid),
        ensemble: wire::ensemble_fingerprint(&[ServerId(1), ServerId(2), ServerId(3)]),
    })
}

/// How a handshake attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// The server welcomed the hello with this status.
    Welcome(HandshakeStatus),
    /// The connection failed or closed before a welcome (the TLS handshake failed).
    Closed(String),
}

/// A byte stream, plaintext or TLS.
trait Rw: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> Rw for T {}

/// Writes `first` on `s` and reads the welcome.
fn exchange(s: &mut impl Rw, first: &[u8]) -> Outcome {
    if let Err(e) = s.write_all(first).and_then(|()| s.flush()) {
        return Outcome::Closed(e.to_string());
    }
    let mut w = [0u8; WELCOME_LEN];
    match s.read_exact(&mut w) {
        Ok(()) => match wire::decode_welcome(&w) {
            Ok(w) => Outcome::Welcome(w.status),
            Err(e) => Outcome::Closed(format!("not a welcome: {e}")),
        },
        Err(e) => Outcome::Closed(e.to_string()),
    }
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// A plaintext hello posing as `sid`.
fn plain_attempt(addr: SocketAddr, purpose: Purpose, sid: u64) -> Outcome {
    exchange(&mut tcp(addr), &hello(purpose, sid))
}

/// A TLS client configuration presenting `key_store` (or nothing) and trusting `trust`; it
/// does not check the server's name (an attacker would not).
fn client_config(key_store: Option<&Path>, trust: &Path) -> Arc<rustls::ClientConfig> {
    let mut s = TlsSettings::new(QUORUM_PREFIX);
    if let Some(k) = key_store {
        s.apply("ssl.quorum.keyStore.location", &k.display().to_string())
            .expect("key store");
    }
    s.apply(
        "ssl.quorum.trustStore.location",
        &trust.display().to_string(),
    )
    .expect("trust store");
    s.apply("ssl.quorum.hostnameVerification", "false")
        .expect("hv");
    s.client_config().expect("client config")
}

/// A TLS connection with `config`, then a hello posing as `sid`.
fn tls_attempt(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    purpose: Purpose,
    sid: u64,
) -> Outcome {
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).expect("client");
    let mut s = rustls::StreamOwned::new(conn, tcp(addr));
    exchange(&mut s, &hello(purpose, sid))
}

fn refused(o: &Outcome) -> bool {
    !matches!(o, Outcome::Welcome(HandshakeStatus::Accepted))
}

fn wait_for_log(e: &Ensemble, ids: &[u64], needle: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !ids.iter().any(|&id| log_of(e, id).contains(needle)) {
        if Instant::now() > deadline {
            e.dump_logs();
            panic!("no log line {needle:?} on servers {ids:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create(e: &Ensemble, servers: &[u64], path: &str, data: &[u8]) {
    with_any_server(e, servers, SERVE, |c| match c.create(path, data, 0)? {
        Ok(_) | Err(ErrorCode::NodeExists) => Ok(()),
        Err(code) => Err(zab_zk::client::ClientError::Protocol(format!(
            "create {path}: {code:?}"
        ))),
    });
}

fn read_on(e: &Ensemble, id: u64, path: &str) -> Option<Vec<u8>> {
    let mut c = e.client(id, SERVE);
    c.sync(path).expect("sync").expect("sync ok");
    c.get_data(path, false).expect("get").ok().map(|(d, _)| d)
}

#[test]
fn a_tls_ensemble_replicates_and_refuses_every_outsider() {
    let pki = Pki::new("zab test CA");
    let rogue_ca = Pki::new("rogue CA");
    let mut e = tls_ensemble(&pki);
    let leader = e.wait_stable(SERVE);
    for id in 1..=3 {
        let log = log_of(&e, id);
        assert!(log.contains("quorum TLS: every peer link is TLS"), "{log}");
        assert!(!log.contains("PLAINTEXT"), "no plaintext warning under TLS");
    }
    create(&e, &[1, 2, 3], "/tls", b"replicated");
    for id in 1..=3 {
        assert_eq!(read_on(&e, id, "/tls").as_deref(), Some(&b"replicated"[..]));
    }

    let addrs = e.peer_addrs();
    let follower = (1..=3).find(|&id| id != leader).expect("a follower");
    let other = (1..=3)
        .find(|&id| id != leader && id != follower)
        .expect("another");
    let (_, leader_quorum, leader_election) = addrs[(leader - 1) as usize];
    let untrusted = client_config(
        Some(&rogue_ca.key_store("rogue.pem", Some(follower))),
        &pki.ca,
    );
    let anonymous = client_config(None, &pki.ca);
    let stolen = client_config(Some(&pki.member(follower)), &pki.ca);
    for (addr, purpose) in [
        (leader_quorum, Purpose::Quorum),
        (leader_election, Purpose::Election),
    ] {
        // (1)-(4) of the issue start with a handshake as a member: in plaintext, with a
        // certificate from another CA, or with none, it fails before any frame is read.
        let o = plain_attempt(addr, purpose, follower);
        assert!(matches!(o, Outcome::Closed(_)), "plaintext: {o:?}");
        let o = tls_attempt(addr, &untrusted, purpose, follower);
        assert!(matches!(o, Outcome::Closed(_)), "untrusted: {o:?}");
        let o = tls_attempt(addr, &anonymous, purpose, follower);
        assert!(matches!(o, Outcome::Closed(_)), "no certificate: {o:?}");
        // A member's own certificate (and key) cannot pose as another member.
        let o = tls_attempt(addr, &stolen, purpose, other);
        assert_eq!(o, Outcome::Welcome(HandshakeStatus::Refused), "{purpose:?}");
        // (5) A 1 GiB length prefix, in plaintext, on a TLS port: not a TLS record; closed.
        let mut s = tcp(addr);
        let mut huge = (1u32 << 30).to_be_bytes().to_vec();
        huge.push(15);
        huge.extend_from_slice(&[0u8; 1024]);
        let _ = s.write_all(&huge);
        // At most a TLS alert (record type 21) comes back before the close.
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(
            rest.is_empty() || (rest[0] == 21 && rest.len() < 64),
            "{purpose:?}: {rest:?}"
        );
    }
    // The control: the follower's certificate as itself gets through the election handshake
    // (so the refusals above are the certificates', not the harness's).
    assert_eq!(
        tls_attempt(leader_election, &stolen, Purpose::Election, follower),
        Outcome::Welcome(HandshakeStatus::Accepted)
    );
    wait_for_log(
        &e,
        &[leader],
        "refusing a peer whose certificate is not that server's",
        Duration::from_secs(5),
    );
    wait_for_log(
        &e,
        &[leader],
        "TLS handshake failed",
        Duration::from_secs(5),
    );
    // Nothing displaced, nothing stopped: the same leader, every server serving, writes work.
    assert_eq!(
        e.wait_stable(SERVE),
        leader,
        "the leader kept its followers"
    );
    create(&e, &[1, 2, 3], "/tls-after", b"still");
    for id in 1..=3 {
        assert!(e.alive(id), "server {id} still runs");
        assert_eq!(
            read_on(&e, id, "/tls-after").as_deref(),
            Some(&b"still"[..])
        );
        assert!(!log_of(&e, id).contains("storage failure"));
    }
}

/// Votes for server 3 as `sid`, in plaintext (the peer_attacks rogue): refused under TLS.
fn vote_for_3_as(sid: u64, target: SocketAddr) -> Outcome {
    let Ok(mut s) = TcpStream::connect(target) else {
        return Outcome::Closed("not listening".into());
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let o = exchange(&mut s, &hello(Purpose::Election, sid));
    if o == Outcome::Welcome(HandshakeStatus::Accepted) {
        let mut buf = BytesMut::new();
        wire::encode_frame::<P>(
            &Frame::Notification(Notification {
                vote: Vote {
                    peer_epoch: Epoch(1),
                    zxid: Zxid::new(1, 1000),
                    leader: ServerId(3),
                },
                election_epoch: 1_000_000,
                state: ServerState::Looking,
                // Posing as a member of a fresh ensemble, as in peer_attacks.rs.
                recovering: false,
                empty: true,
            }),
            &mut buf,
        );
        let _ = s.write_all(&buf);
    }
    o
}

#[test]
fn a_rogue_cannot_win_an_election_or_send_a_snap_under_tls() {
    let pki = Pki::new("zab test CA");
    let mut e = tls_ensemble(&pki);
    e.wait_stable(SERVE);
    let addrs = e.peer_addrs();
    let (_, quorum3, _) = addrs[2];
    let (_, _, election1) = addrs[0];
    // As in peer_attacks.rs: only server 1 runs, the rogue holds server 3's quorum port and
    // votes for "3" as 2 and 3. Under TLS no vote gets in, so server 1 never dials the rogue.
    e.kill(2);
    e.kill(3);
    let rogue = TcpListener::bind(quorum3).expect("bind server 3's quorum port");
    rogue.set_nonblocking(true).expect("nonblocking");
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        for sid in [2, 3] {
            let o = vote_for_3_as(sid, election1);
            assert!(refused(&o), "a plaintext vote got in: {o:?}");
        }
        assert!(
            rogue.accept().is_err(),
            "server 1 followed the rogue (it dialled its quorum port)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(e.mode(1), None, "server 1 follows no one");
    assert!(e.alive(1), "server 1 still runs");
    drop(rogue);
    e.start_node(2);
    e.start_node(3);
    e.wait_stable(SERVE);
    create(&e, &[1, 2, 3], "/after-rogue", b"ok");
    assert!(!log_of(&e, 1).contains("bad SNAP"));
    assert!(!log_of(&e, 1).contains("storage failure"));
}

/// Rewrites server `id`'s key store line and restarts it.
fn restart_with_key_store(e: &mut Ensemble, id: u64, key_store: &Path) {
    e.kill(id);
    let path = e.node(id).dir.join("zoo.cfg");
    let cfg = std::fs::read_to_string(&path).expect("zoo.cfg");
    let cfg: String = cfg
        .lines()
        .map(|l| {
            if l.starts_with("ssl.quorum.keyStore.location=") {
                format!("ssl.quorum.keyStore.location={}\n", key_store.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&path, cfg).expect("write zoo.cfg");
    e.start_node(id);
}

/// Server `id` does not serve for `secs` seconds while the others do.
fn stays_out(e: &Ensemble, id: u64, secs: u64) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        assert_eq!(e.mode(id), None, "server {id} joined");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_member_with_an_untrusted_or_another_members_certificate_cannot_join() {
    let pki = Pki::new("zab test CA");
    let rogue_ca = Pki::new("rogue CA");
    let mut e = tls_ensemble(&pki);
    e.wait_stable(SERVE);
    // Server 3 with a certificate from another CA (naming it correctly).
    restart_with_key_store(&mut e, 3, &rogue_ca.key_store("rogue3.pem", Some(3)));
    stays_out(&e, 3, 6);
    create(&e, &[1, 2], "/without-3", b"a");
    wait_for_log(&e, &[1, 2], "TLS handshake failed", Duration::from_secs(5));
    // Server 3 with server 2's certificate (and key): trusted, but not server 3's.
    restart_with_key_store(&mut e, 3, &pki.member(2));
    stays_out(&e, 3, 6);
    wait_for_log(
        &e,
        &[1, 2],
        "refusing a peer whose certificate is not that server's",
        Duration::from_secs(5),
    );
    wait_for_log(
        &e,
        &[1, 2],
        "the certificate is for server(s) [2], not server.3",
        Duration::from_secs(5),
    );
    // With its own certificate it joins and catches up.
    restart_with_key_store(&mut e, 3, &pki.member(3));
    e.wait_stable(SERVE);
    assert_eq!(read_on(&e, 3, "/without-3").as_deref(), Some(&b"a"[..]));
}

#[test]
fn members_sharing_a_host_need_their_id_in_the_certificate() {
    // Certificates that name only the host (127.0.0.1, shared by all three members) cannot
    // tell the members apart: refused, with a message saying what the certificate lacks.
    let pki = Pki::new("zab test CA");
    let e = Ensemble::start_each(3, |id| {
        quorum_tls_cfg(&pki.key_store(&format!("host-only{id}.pem"), None), &pki.ca)
    });
    stays_out(&e, 1, 4);
    wait_for_log(
        &e,
        &[1, 2, 3],
        "shares its host 127.0.0.1 with another member, so its certificate must carry the subjectAltName URI zab:server.",
        Duration::from_secs(5),
    );
}

/// Rewrites server `id`'s TLS keys (`sslQuorum`, `portUnification`, its key store) and
/// restarts it.
fn restart_with_mode(e: &mut Ensemble, pki: &Pki, id: u64, ssl_quorum: bool, unification: bool) {
    e.stop(id);
    let path = e.node(id).dir.join("zoo.cfg");
    let cfg = std::fs::read_to_string(&path).expect("zoo.cfg");
    let mut cfg: String = cfg
        .lines()
        .filter(|l| {
            !(l.starts_with("sslQuorum")
                || l.starts_with("portUnification")
                || l.starts_with("ssl."))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    cfg.push_str(&quorum_tls_cfg(&pki.member(id), &pki.ca).replace(
        "sslQuorum=true",
        &format!("sslQuorum={ssl_quorum}\nportUnification={unification}"),
    ));
    std::fs::write(&path, cfg).expect("write zoo.cfg");
    e.start_node(id);
    e.wait_stable(SERVE);
}

#[test]
fn a_rolling_switch_from_plaintext_to_tls_keeps_the_ensemble_serving() {
    let pki = Pki::new("zab test CA");
    let mut e = Ensemble::start(3, "");
    e.wait_stable(SERVE);
    // The README's three steps, one member at a time, a write after each step.
    for (step, ssl_quorum, unification) in [(1, false, true), (2, true, true), (3, true, false)] {
        for id in 1..=3 {
            restart_with_mode(&mut e, &pki, id, ssl_quorum, unification);
        }
        let path = format!("/step{step}");
        create(&e, &[1, 2, 3], &path, b"x");
        for id in 1..=3 {
            assert_eq!(read_on(&e, id, &path).as_deref(), Some(&b"x"[..]), "{path}");
        }
        if step < 3 {
            assert!(log_of(&e, 1).contains("still accept PLAINTEXT peers"));
        }
    }
    // Closed now: a plaintext hello is refused on every peer port.
    for (_, quorum, election) in e.peer_addrs() {
        for (addr, purpose) in [(quorum, Purpose::Quorum), (election, Purpose::Election)] {
            let o = plain_attempt(addr, purpose, 2);
            assert!(matches!(o, Outcome::Closed(_)), "{addr} {purpose:?}: {o:?}");
        }
    }
}
