//! Tests of `tls.rs`: stores in both formats, the keys, and real handshakes between the
//! configurations built (certificates made here with rcgen; no key is committed).

use super::*;
use certs::Ca;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The CA and leaves of the integration tests' support (one helper for both).
#[allow(dead_code)]
#[path = "../tests/support/certs.rs"]
mod certs;

/// A leaf for `names` (DNS names or IP literals): (certificate PEM, key PEM, cert DER, key DER).
fn leaf(ca: &Ca, names: &[&str]) -> (String, String, Vec<u8>, Vec<u8>) {
    let l = ca.leaf(certs::cn(names[0]), names);
    (l.cert_pem, l.key_pem, l.cert.to_vec(), l.key)
}

fn pkcs12_key_store(cert_der: &[u8], key_der: &[u8], ca_der: &[u8], password: &str) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    let chain = p12_keystore::PrivateKeyChain::new(
        vec![1u8; 20],
        p12_keystore::PrivateKey::from_der(key_der).expect("key"),
        vec![
            p12_keystore::Certificate::from_der(cert_der).expect("cert"),
            p12_keystore::Certificate::from_der(ca_der).expect("ca"),
        ],
    );
    store.add_entry(
        "server",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
    );
    store.writer(password).write().expect("write pkcs12")
}

fn pkcs12_trust_store(ca_der: &[u8], password: &str) -> Vec<u8> {
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "ca",
        p12_keystore::KeyStoreEntry::Certificate(
            p12_keystore::Certificate::from_der(ca_der).expect("ca"),
        ),
    );
    store.writer(password).write().expect("write pkcs12")
}

/// Writes a PEM key store and trust store for `names` under `dir`; returns settings for them.
fn pem_settings(dir: &Path, ca: &Ca, tag: &str, names: &[&str]) -> TlsSettings {
    let (cert, key, _, _) = leaf(ca, names);
    let ks = dir.join(format!("{tag}.pem"));
    std::fs::write(&ks, format!("{cert}{key}")).expect("write");
    let ts = dir.join(format!("{tag}-ca.pem"));
    std::fs::write(&ts, &ca.pem).expect("write");
    let mut s = TlsSettings::new(QUORUM_PREFIX);
    for (k, v) in [
        ("ssl.quorum.keyStore.location", ks.display().to_string()),
        ("ssl.quorum.trustStore.location", ts.display().to_string()),
    ] {
        assert!(s.apply(k, &v).expect("apply"));
    }
    s
}

/// Runs one handshake over a socket pair and one byte each way; the error of either side.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let srv = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        tls.write_all(&b).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    });
    let connector = tokio_rustls::TlsConnector::from(client);
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let client_side = async {
        let mut tls = connector
            .connect(server_name(name).map_err(|e| e.to_string())?, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"x").await.map_err(|e| e.to_string())?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    let c = client_side.await;
    let s = srv.await.expect("join");
    c.and(s)
}

#[tokio::test]
async fn pem_stores_make_a_mutually_authenticated_connection() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("zab CA");
    let a = pem_settings(dir.path(), &ca, "a", &["127.0.0.1", "a.example"]);
    let b = pem_settings(dir.path(), &ca, "b", &["127.0.0.1", "b.example"]);
    let server = a.server_config().expect("server");
    let client = b.client_config().expect("client");
    handshake(Arc::clone(&server), Arc::clone(&client), "127.0.0.1")
        .await
        .expect("handshake");
    handshake(Arc::clone(&server), Arc::clone(&client), "a.example")
        .await
        .expect("by name");
    // Hostname verification: a name the certificate does not carry is refused...
    let err = handshake(Arc::clone(&server), client, "c.example")
        .await
        .expect_err("wrong name");
    assert!(err.contains("not valid for name"), "{err}");
    // ...unless it is off (the chain is still checked).
    let mut lax = b.clone();
    assert!(
        lax.apply("ssl.quorum.hostnameVerification", "false")
            .expect("apply")
    );
    handshake(server, lax.client_config().expect("client"), "c.example")
        .await
        .expect("no name check");
}

#[tokio::test]
async fn an_untrusted_or_missing_client_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca1 = Ca::new("zab CA");
    let ca2 = Ca::new("rogue CA");
    let server = pem_settings(dir.path(), &ca1, "s", &["127.0.0.1"]);
    // A client whose certificate comes from another CA, but which trusts the server's.
    let mut rogue = pem_settings(dir.path(), &ca2, "r", &["127.0.0.1"]);
    rogue.trust_store = server.trust_store.clone();
    let err = handshake(
        server.server_config().expect("server"),
        rogue.client_config().expect("client"),
        "127.0.0.1",
    )
    .await
    .expect_err("untrusted client");
    assert!(!err.is_empty());
    // No client certificate at all: refused under `need`, accepted under `want`.
    let mut anonymous = server.clone();
    anonymous.key_store = StoreSettings::default();
    let anonymous = anonymous.client_config().expect("client");
    handshake(
        server.server_config().expect("server"),
        Arc::clone(&anonymous),
        "127.0.0.1",
    )
    .await
    .expect_err("need");
    let mut want = server.clone();
    assert!(want.apply("ssl.quorum.clientAuth", "want").expect("apply"));
    handshake(
        want.server_config().expect("server"),
        anonymous,
        "127.0.0.1",
    )
    .await
    .expect("want");
    // The server's certificate from another CA: the client refuses it.
    let mut rogue_server = rogue.clone();
    rogue_server.trust_store = server.trust_store.clone();
    handshake(
        rogue_server.server_config().expect("server"),
        server.client_config().expect("client"),
        "127.0.0.1",
    )
    .await
    .expect_err("untrusted server");
}

#[tokio::test]
async fn pkcs12_stores_with_a_password() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("zab CA");
    let (_, _, cert, key) = leaf(&ca, &["127.0.0.1"]);
    std::fs::write(
        dir.path().join("k.p12"),
        pkcs12_key_store(&cert, &key, &ca.der, "s3cret"),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("t.pfx"),
        pkcs12_trust_store(&ca.der, "tpass"),
    )
    .expect("write");
    let mut s = TlsSettings::new(CLIENT_PREFIX);
    for (k, v) in [
        (
            "ssl.keyStore.location",
            dir.path().join("k.p12").display().to_string(),
        ),
        ("ssl.keyStore.password", "s3cret".into()),
        (
            "ssl.trustStore.location",
            dir.path().join("t.pfx").display().to_string(),
        ),
        ("ssl.trustStore.password", "tpass".into()),
    ] {
        assert!(s.apply(k, &v).expect("apply"));
    }
    let pair = s.load_key_store().expect("key store");
    assert_eq!(pair.chain.len(), 2, "leaf and CA");
    assert_eq!(pair.chain[0].as_ref(), cert.as_slice(), "leaf first");
    handshake(
        s.server_config().expect("server"),
        s.client_config().expect("client"),
        "127.0.0.1",
    )
    .await
    .expect("handshake");
    // A wrong password is a clear error naming the store.
    let mut wrong = s.clone();
    assert!(wrong.apply("ssl.keyStore.password", "nope").expect("apply"));
    let err = wrong
        .server_config()
        .expect_err("wrong password")
        .to_string();
    assert!(
        err.contains("ssl.keyStore") && err.contains("k.p12"),
        "{err}"
    );
    assert!(err.contains("wrong password"), "{err}");
    // The type given explicitly wins over the extension.
    let mut typed = s.clone();
    std::fs::copy(dir.path().join("k.p12"), dir.path().join("k.bin")).expect("copy");
    typed.key_store.location = Some(dir.path().join("k.bin"));
    assert!(matches!(
        typed.load_key_store(),
        Err(TlsError::Value { .. })
    ));
    assert!(typed.apply("ssl.keyStore.type", "pkcs12").expect("apply"));
    typed.load_key_store().expect("typed");
}

#[test]
fn bad_keys_are_clear_errors() {
    let mut s = TlsSettings::new(QUORUM_PREFIX);
    assert!(
        !s.apply("ssl.keyStore.location", "x.pem")
            .expect("other prefix")
    );
    assert!(!s.apply("ssl.quorum.nonsense", "1").expect("unknown key"));
    let e = s
        .apply(
            "ssl.quorum.ciphersuites",
            "TLS_AES_128_GCM_SHA256,TLS_RSA_WITH_RC4_128_MD5",
        )
        .expect_err("unknown suite")
        .to_string();
    assert!(
        e.contains("TLS_RSA_WITH_RC4_128_MD5") && e.contains("TLS_AES_256_GCM_SHA384"),
        "{e}"
    );
    let e = s.apply("ssl.quorum.protocol", "TLSv1.1").expect_err("old");
    assert!(e.to_string().contains("ssl.quorum.protocol"), "{e}");
    let e = s.apply("ssl.quorum.keyStore.type", "JKS").expect_err("jks");
    assert!(e.to_string().contains("keytool"), "{e}");
    let e = s
        .apply("ssl.quorum.hostnameVerification", "yes")
        .expect_err("bool");
    assert!(e.to_string().contains("true or false"), "{e}");
    assert!(s.apply("ssl.quorum.clientAuth", "sometimes").is_err());
    assert!(s.apply("ssl.quorum.ocsp", "true").is_err());
    // Inferred types, and a name that says nothing.
    assert_eq!(
        StoreType::infer("k", Path::new("/a/b.P12")).expect("p12"),
        StoreType::Pkcs12
    );
    assert_eq!(
        StoreType::infer("k", Path::new("b.crt")).expect("crt"),
        StoreType::Pem
    );
    assert!(StoreType::infer("k", Path::new("b.jks")).is_err());
    assert!(StoreType::infer("k", Path::new("store")).is_err());
    // Missing stores.
    let fresh = TlsSettings::new(QUORUM_PREFIX);
    let e = fresh.server_config().expect_err("no key store").to_string();
    assert!(
        e.contains("ssl.quorum.keyStore.location is required"),
        "{e}"
    );
    // Suites that fit no enabled version.
    let mut only12 = TlsSettings::new(QUORUM_PREFIX);
    only12
        .apply("ssl.quorum.ciphersuites", "TLS_AES_128_GCM_SHA256")
        .expect("apply");
    only12
        .apply("ssl.quorum.protocol", "TLSv1.2")
        .expect("apply");
    let e = only12.client_config().expect_err("no suite").to_string();
    assert!(e.contains("enabled protocol"), "{e}");
    // A password never shows in Debug output.
    let mut p = TlsSettings::new(QUORUM_PREFIX);
    p.apply("ssl.quorum.keyStore.password", "hunter2")
        .expect("apply");
    assert!(!format!("{p:?}").contains("hunter2"));
}

#[test]
fn pem_key_store_problems_name_the_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("zab CA");
    let (cert, _, _, _) = leaf(&ca, &["127.0.0.1"]);
    let only_cert = dir.path().join("only-cert.pem");
    std::fs::write(&only_cert, &cert).expect("write");
    let encrypted = dir.path().join("enc.pem");
    std::fs::write(
        &encrypted,
        format!("{cert}-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"),
    )
    .expect("write");
    for (path, want) in [
        (&only_cert, "PRIVATE KEY"),
        (&encrypted, "encrypted PEM private key"),
        (&dir.path().join("absent.pem"), "cannot read"),
    ] {
        let mut s = TlsSettings::new(QUORUM_PREFIX);
        s.key_store.location = Some(path.clone());
        let e = s.load_key_store().expect_err("refused").to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(want),
            "{e}"
        );
    }
}

#[test]
fn cipher_suites_and_protocols_restrict_the_handshake() {
    let dir = tempfile::tempdir().expect("tmp");
    let ca = Ca::new("zab CA");
    let s = pem_settings(dir.path(), &ca, "s", &["127.0.0.1"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let mut v12 = s.clone();
    v12.apply("ssl.quorum.protocol", "TLSv1.2").expect("apply");
    let mut v13 = s.clone();
    v13.apply("ssl.quorum.protocol", "TLSv1.3").expect("apply");
    rt.block_on(handshake(
        v12.server_config().expect("server"),
        s.client_config().expect("client"),
        "127.0.0.1",
    ))
    .expect("1.2 against both");
    rt.block_on(handshake(
        v12.server_config().expect("server"),
        v13.client_config().expect("client"),
        "127.0.0.1",
    ))
    .expect_err("1.2 against 1.3");
    let mut aes256 = s.clone();
    aes256
        .apply("ssl.quorum.ciphersuites", "TLS_AES_256_GCM_SHA384")
        .expect("apply");
    let mut chacha = s.clone();
    chacha
        .apply("ssl.quorum.ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")
        .expect("apply");
    rt.block_on(handshake(
        aes256.server_config().expect("server"),
        chacha.client_config().expect("client"),
        "127.0.0.1",
    ))
    .expect_err("no common suite");
    rt.block_on(handshake(
        aes256.server_config().expect("server"),
        s.client_config().expect("client"),
        "127.0.0.1",
    ))
    .expect("a common suite");
}

#[test]
fn certificate_names_match_hosts_as_https_does() {
    let ca = Ca::new("zab CA");
    let (_, _, der, _) = leaf(
        &ca,
        &["zk1.example.com", "*.zk.example.com", "10.0.0.1", "::1"],
    );
    let names = CertNames::of(&CertificateDer::from(der)).expect("names");
    assert!(names.matches_host("zk1.example.com"));
    assert!(names.matches_host("ZK1.example.com."));
    assert!(names.matches_host("a.zk.example.com"));
    assert!(!names.matches_host("a.b.zk.example.com"), "one label only");
    assert!(!names.matches_host("zk.example.com"));
    assert!(names.matches_host("10.0.0.1"));
    assert!(names.matches_host("[::1]"));
    assert!(!names.matches_host("10.0.0.2"));
    assert!(!names.matches_host("zk2.example.com"));
    // The common name counts only without DNS entries.
    let (_, _, ip_only, _) = leaf(&ca, &["127.0.0.1"]);
    let n = CertNames::of(&CertificateDer::from(ip_only)).expect("names");
    assert_eq!(n.common_names, vec!["127.0.0.1".to_string()]);
    assert!(n.matches_host("127.0.0.1"));
    assert!(CertNames::of(&CertificateDer::from(vec![1, 2, 3])).is_err());
}
