//! Client-port TLS against a real `zabd`: `secureClientPort` with the `ssl.*` keys, clients
//! authenticated by their certificates (`x509` ids as Java writes the subject, x509 ACLs, the
//! x509 super user), `ssl.clientAuth` none / want / need, `client.portUnification`, and bad
//! handshakes that are closed without harming the server. Certificates are made here with
//! rcgen; no key is committed.

mod support;

use rcgen::{DistinguishedName, DnType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::certs::{Ca, Leaf};
use support::free_ports;
use support::standalone::Standalone;
use zab_spec::ErrorCode;
use zab_zk::client::{Client, ClientError, ConnectOptions, Transport, four_letter_word};
use zab_zk::proto::{Acl, CreateRequest, GetAclRequest, Request, Response, ids, perms};

fn dn(parts: &[(DnType, &str)]) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    for (t, v) in parts {
        d.push(t.clone(), *v);
    }
    d
}

/// Everything a test needs: the CA, the server's and the clients' certificates, written as
/// PEM files, and an untrusted CA's client.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    alice: Leaf,
    bob: Leaf,
    admin: Leaf,
    stranger: Leaf,
}

/// Alice's subject as Java's `X500Principal.getName()` writes it (rcgen encodes the
/// attributes in the order pushed; Java writes them last first, escaping the comma).
const ALICE: &str = "CN=alice,OU=dev\\+ops,O=Acme\\, Inc.,C=US";
const BOB: &str = "CN=bob,O=Acme\\, Inc.,C=US";
const ADMIN: &str = "CN=admin,O=Acme\\, Inc.,C=US";

fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("zab test CA");
    let server = ca.leaf(
        dn(&[(DnType::CommonName, "localhost")]),
        &["localhost", "127.0.0.1"],
    );
    let acme = |cn: &str| {
        dn(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::CommonName, cn),
        ])
    };
    let alice = ca.leaf(
        dn(&[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::OrganizationalUnitName, "dev+ops"),
            (DnType::CommonName, "alice"),
        ]),
        &[],
    );
    let bob = ca.leaf(acme("bob"), &[]);
    let admin = ca.leaf(acme("admin"), &[]);
    let other = Ca::new("another CA");
    let stranger = other.leaf(acme("alice"), &[]);
    std::fs::write(
        dir.path().join("server.pem"),
        format!("{}{}", server.cert_pem, server.key_pem),
    )
    .expect("write");
    std::fs::write(dir.path().join("ca.pem"), &ca.pem).expect("write");
    Pki {
        dir,
        ca,
        alice,
        bob,
        admin,
        stranger,
    }
}

impl Pki {
    /// `zoo.cfg` lines: a secure client port with this PKI's stores, then `extra`.
    fn zoo_cfg(&self, port: u16, extra: &str) -> String {
        format!(
            "secureClientPort={port}\nsecureClientPortAddress=127.0.0.1\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
             ssl.trustStore.location={}\nssl.trustStore.type=PEM\n{extra}",
            self.path("server.pem"),
            self.path("ca.pem"),
        )
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A blocking rustls stream as the test client's transport.
#[derive(Debug)]
struct Tls(rustls::StreamOwned<rustls::ClientConnection, TcpStream>);

impl Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for Tls {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Transport for Tls {
    fn read_timeout(&self) -> std::io::Result<Option<Duration>> {
        self.0.sock.read_timeout()
    }
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        self.0.sock.set_read_timeout(t)
    }
}

fn client_config(ca: &CertificateDer<'static>, cert: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).expect("root");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match cert {
        Some(l) => builder
            .with_client_auth_cert(
                vec![l.cert.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(l.key.clone())),
            )
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A TLS stream to `addr`, the handshake driven to its end (a server that refuses the
/// client's certificate may only say so on the first read: that error comes later).
fn tls_stream(addr: SocketAddr, config: Arc<rustls::ClientConfig>) -> Result<Tls, ClientError> {
    let opts = ConnectOptions::default();
    let tcp = Client::tcp(addr, &opts)?;
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(config, name)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Tls(s))
}

/// A session over TLS, presenting `cert` if given.
fn tls_client(addr: SocketAddr, ca: &Ca, cert: Option<&Leaf>) -> Result<Client, ClientError> {
    let stream = tls_stream(addr, client_config(&ca.der, cert))?;
    Client::over(Box::new(stream), &ConnectOptions::default())
}

fn who_am_i(c: &mut Client) -> Vec<(String, String)> {
    match c.request(&Request::WhoAmI).expect("whoAmI") {
        (h, Some(Response::WhoAmI(r))) if h.err == 0 => r
            .client_info
            .into_iter()
            .map(|i| (i.auth_scheme, i.user))
            .collect(),
        other => panic!("whoAmI answered {other:?}"),
    }
}

fn create_with_acl(c: &mut Client, path: &str, acl: Vec<Acl>) -> Result<String, ErrorCode> {
    let r = c
        .request(&Request::Create(CreateRequest {
            path: path.into(),
            data: Some(bytes::Bytes::from_static(b"secret")),
            acl,
            flags: 0,
        }))
        .expect("create");
    match r {
        (h, _) if h.err != 0 => Err(ErrorCode::from_code(h.err).expect("known code")),
        (_, Some(Response::Create(c))) => Ok(c.path),
        other => panic!("create answered {other:?}"),
    }
}

fn get_acl(c: &mut Client, path: &str) -> Vec<Acl> {
    match c
        .request(&Request::GetAcl(GetAclRequest { path: path.into() }))
        .expect("getAcl")
    {
        (h, Some(Response::GetAcl(r))) if h.err == 0 => r.acl,
        other => panic!("getAcl answered {other:?}"),
    }
}

fn secure_addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn log_of(s: &Standalone) -> String {
    std::fs::read_to_string(&s.log).unwrap_or_default()
}

#[test]
fn certificates_authenticate_as_x509_and_x509_acls_are_enforced() {
    let p = pki();
    let port = free_ports(1)[0];
    let server = Standalone::start(
        &p.zoo_cfg(
            port,
            &format!("X509AuthenticationProvider.superUser={ADMIN}\n"),
        ),
        &[],
    );
    let addr = secure_addr(port);
    let mut alice = tls_client(addr, &p.ca, Some(&p.alice)).expect("alice over TLS");
    let me = who_am_i(&mut alice);
    assert!(
        me.contains(&("x509".into(), ALICE.into())),
        "whoAmI of alice: {me:?}"
    );
    assert!(me.contains(&("ip".into(), "127.0.0.1".into())), "{me:?}");
    assert!(!me.iter().any(|(s, _)| s == "super"), "{me:?}");

    // An explicit x509 ACL, and `auth` expanded to the certificate's id.
    let only_alice = vec![Acl::new(perms::ALL, "x509", ALICE)];
    assert_eq!(
        create_with_acl(&mut alice, "/alice", only_alice.clone()),
        Ok("/alice".into())
    );
    assert_eq!(
        create_with_acl(&mut alice, "/alice-auth", ids::creator_all_acl()),
        Ok("/alice-auth".into())
    );
    assert_eq!(get_acl(&mut alice, "/alice-auth"), only_alice);
    assert_eq!(
        alice.get_data("/alice", false).expect("io").map(|(d, _)| d),
        Ok(b"secret".to_vec())
    );
    // An id that is not a distinguished name is refused, as X500Principal refuses it.
    assert_eq!(
        create_with_acl(
            &mut alice,
            "/bad-acl",
            vec![Acl::new(perms::ALL, "x509", "alice")]
        ),
        Err(ErrorCode::InvalidAcl)
    );

    // Bob (same CA, another subject) and a plaintext client are refused; the super user's
    // certificate reads everything.
    let mut bob = tls_client(addr, &p.ca, Some(&p.bob)).expect("bob over TLS");
    assert!(who_am_i(&mut bob).contains(&("x509".into(), BOB.into())));
    for path in ["/alice", "/alice-auth"] {
        assert_eq!(
            bob.get_data(path, false).expect("io").map(|(d, _)| d),
            Err(ErrorCode::NoAuth),
            "{path}"
        );
    }
    let mut plain = Client::connect(server.addr, &ConnectOptions::default()).expect("plain");
    assert_eq!(
        plain.get_data("/alice", false).expect("io").map(|(d, _)| d),
        Err(ErrorCode::NoAuth)
    );
    let mut admin = tls_client(addr, &p.ca, Some(&p.admin)).expect("admin over TLS");
    let admin_ids = who_am_i(&mut admin);
    assert!(
        admin_ids.contains(&("x509".into(), ADMIN.into())),
        "{admin_ids:?}"
    );
    assert!(admin_ids.iter().any(|(s, _)| s == "super"), "{admin_ids:?}");
    assert_eq!(
        admin.get_data("/alice", false).expect("io").map(|(d, _)| d),
        Ok(b"secret".to_vec())
    );
    // `addauth x509` re-adds the certificate's ids on TLS; on plaintext it fails and closes.
    let auth = Request::Auth(zab_zk::proto::AuthPacket {
        auth_type: 0,
        scheme: "x509".into(),
        auth: bytes::Bytes::new(),
    });
    assert_eq!(alice.request(&auth).expect("addauth").0.err, 0);
    assert_eq!(
        plain.request(&auth).expect("addauth").0.err,
        ErrorCode::AuthFailed.code()
    );
    // Four-letter words work over TLS too.
    let mut s = tls_stream(addr, client_config(&p.ca.der, Some(&p.alice))).expect("tls");
    s.write_all(b"srvr").expect("send");
    s.flush().expect("flush");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.contains("Mode: standalone"), "srvr over TLS: {text:?}");
    assert!(log_of(&server).contains("authenticated by TLS client certificate"));
}

#[test]
fn bad_handshakes_are_logged_and_closed_and_the_server_keeps_serving() {
    let p = pki();
    let port = free_ports(1)[0];
    let mut server = Standalone::start(&p.zoo_cfg(port, ""), &[]);
    let addr = secure_addr(port);
    // ssl.clientAuth defaults to need: no certificate, no session.
    assert!(
        tls_client(addr, &p.ca, None).is_err(),
        "a client without a certificate was served"
    );
    // A certificate from a CA the server does not trust.
    assert!(
        tls_client(addr, &p.ca, Some(&p.stranger)).is_err(),
        "an untrusted certificate was accepted"
    );
    // A plaintext ZooKeeper handshake, then garbage, sent to the TLS port.
    for bytes in [
        zab_zk::proto::encode_connect_request(&support::wire::new_session_request()).to_vec(),
        vec![0x16, 0x03, 0x01, 0xff, 0xff, 0, 1, 2, 3],
        b"ruok".to_vec(),
    ] {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(&bytes).expect("send");
        let mut buf = Vec::new();
        // The server answers with at most a TLS alert and closes.
        let _ = s.read_to_end(&mut buf);
        assert!(
            buf.len() < 16 && !buf.starts_with(b"imok"),
            "answer to {bytes:?}: {buf:?}"
        );
    }
    assert!(server.alive(), "zabd exited after bad handshakes");
    let mut alice = tls_client(addr, &p.ca, Some(&p.alice)).expect("alice after the bad ones");
    assert!(alice.exists("/", false).expect("io").is_ok());
    assert!(four_letter_word(server.addr, "ruok", Duration::from_secs(5)).is_ok());
    let log = log_of(&server);
    assert!(
        log.matches("TLS handshake with a client failed").count() >= 4,
        "expected a log line per failed handshake:\n{log}"
    );
}

#[test]
fn client_auth_want_and_none_and_port_unification() {
    let p = pki();
    let ports = free_ports(2);
    // want: a client without a certificate is served unauthenticated, one with is x509.
    let want = Standalone::start(&p.zoo_cfg(ports[0], "ssl.clientAuth=want\n"), &[]);
    let addr = secure_addr(ports[0]);
    let mut anon = tls_client(addr, &p.ca, None).expect("no certificate, want");
    let ids = who_am_i(&mut anon);
    assert!(!ids.iter().any(|(s, _)| s == "x509"), "{ids:?}");
    let mut alice = tls_client(addr, &p.ca, Some(&p.alice)).expect("alice, want");
    assert!(who_am_i(&mut alice).contains(&("x509".into(), ALICE.into())));
    assert!(
        tls_client(addr, &p.ca, Some(&p.stranger)).is_err(),
        "want still verifies a certificate that is sent"
    );
    drop(want);

    // none, with client.portUnification on the plaintext port: a certificate is not even
    // asked for; TLS and plaintext clients share the port.
    let none = Standalone::start(
        &p.zoo_cfg(
            ports[1],
            "ssl.clientAuth=none\nclient.portUnification=true\n",
        ),
        &[],
    );
    let mut alice = tls_client(none.addr, &p.ca, Some(&p.alice)).expect("TLS on the unified port");
    let ids = who_am_i(&mut alice);
    assert!(!ids.iter().any(|(s, _)| s == "x509"), "{ids:?}");
    let mut plain = Client::connect(none.addr, &ConnectOptions::default()).expect("plaintext");
    assert!(plain.exists("/", false).expect("io").is_ok());
    assert!(four_letter_word(none.addr, "ruok", Duration::from_secs(5)).is_ok());
    let conf = four_letter_word(none.addr, "conf", Duration::from_secs(5)).expect("conf");
    assert!(
        conf.contains(&format!("secureClientPort={}", ports[1])),
        "{conf}"
    );
}

#[test]
fn a_tls_configuration_that_does_not_load_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_ports(2);
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "dataDir={}\nclientPort={}\nclientPortAddress=127.0.0.1\nsecureClientPort={}\n\
             secureClientPortAddress=127.0.0.1\nssl.keyStore.location={}\n\
             ssl.trustStore.location={}\nadmin.enableServer=false\n",
            dir.path().join("data").display(),
            port[0],
            port[1],
            Path::new("/nonexistent/server.pem").display(),
            Path::new("/nonexistent/ca.pem").display(),
        ),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_zabd"))
        .arg("--config")
        .arg(&cfg)
        .env("NO_COLOR", "1")
        .output()
        .expect("run zabd");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "zabd started without its key store");
    assert!(
        err.contains("TLS for the client port") && err.contains("/nonexistent/server.pem"),
        "{err}"
    );
}
