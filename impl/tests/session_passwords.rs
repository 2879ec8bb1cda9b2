//! Session passwords (issue 11): a new session's password is keyed with a random secret of
//! the server that created it (not computable from the session id) and travels in the
//! `createSession` transaction, so the session moves to any other server with it, and no
//! guessed password opens it.

mod support;

use bytes::Bytes;
use std::time::Duration;
use support::{Ensemble, client_options};
use zab_spec::{ErrorCode, ServerId, SessionId};
use zab_zk::client::{Client, ClientError};

const SERVE: Duration = Duration::from_secs(60);

fn resume(e: &Ensemble, id: u64, session: i64, passwd: &[u8]) -> Result<Client, ClientError> {
    let mut opts = client_options();
    opts.session = Some((session, Bytes::copy_from_slice(passwd)));
    Client::connect(e.node(id).client, &opts)
}

#[test]
fn a_session_moves_to_another_server_with_its_password_and_a_guessed_one_fails() {
    let e = Ensemble::start(3, "");
    e.wait_stable(SERVE);
    let mut c = e.client(1, SERVE);
    c.create("/owned", b"x", 1)
        .expect("io")
        .expect("ephemeral create");
    let (sid, passwd) = (c.session_id, c.passwd.clone());
    // What an outsider could compute from the session id: ZooKeeper's `Random(sid ^
    // 0xB3415C00)`, and this project's former key (the ensemble's server ids).
    let fingerprint =
        zab_server::wire::ensemble_fingerprint(&[ServerId(1), ServerId(2), ServerId(3)]);
    let mut flipped = passwd.to_vec();
    flipped[0] ^= 1;
    let guesses: Vec<Vec<u8>> = vec![
        zab_zk::session::zookeeper_password(SessionId(sid)).to_vec(),
        zab_zk::session::keyed_password(
            SessionId(sid),
            format!("zab-session-{fingerprint:x}").as_bytes(),
        )
        .to_vec(),
        vec![0; 16],
        flipped,
    ];
    for guess in &guesses {
        assert_ne!(
            guess.as_slice(),
            passwd.as_ref(),
            "the password is not derivable"
        );
        for id in 1..=3 {
            assert!(
                matches!(resume(&e, id, sid, guess), Err(ClientError::SessionRefused)),
                "a guessed password opened the session on server {id}"
            );
        }
    }
    // The real password opens it on every other server; the session (and its ephemeral) is
    // the same one.
    for id in [2, 3, 1] {
        let mut moved = resume(&e, id, sid, &passwd).expect("resume with the password");
        assert_eq!(moved.session_id, sid);
        assert_eq!(moved.passwd, passwd, "the same password on server {id}");
        moved.sync("/owned").expect("io").expect("sync");
        let (data, stat) = moved.get_data("/owned", false).expect("io").expect("get");
        assert_eq!((data.as_slice(), stat.ephemeral_owner), (&b"x"[..], sid));
        if id == 1 {
            moved.close().expect("close");
        }
    }
    // Closed: the password opens nothing any more. (Server 2 first syncs: the close was
    // answered by server 1, and ZooKeeper promises another server has applied it only after
    // a sync there.)
    let mut check = e.client(2, SERVE);
    check.sync("/owned").expect("io").expect("sync");
    assert!(matches!(
        resume(&e, 2, sid, &passwd),
        Err(ClientError::SessionRefused)
    ));
    assert_eq!(
        check.exists("/owned", false).expect("io").err(),
        Some(ErrorCode::NoNode)
    );
}
