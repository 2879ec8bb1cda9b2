//! Certificates for TLS tests, made with rcgen in a scratch directory (no private key is ever
//! committed): a CA, member certificates for `server.N` on 127.0.0.1 (with the
//! `zab:server.N` URI that tells members on one host apart), and the `zoo.cfg` lines.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType, string::Ia5String,
};
use std::path::{Path, PathBuf};

/// A CA whose files live in a scratch directory.
pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate (PEM): the trust store.
    pub ca: PathBuf,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Pki {
    /// A fresh CA called `name`.
    pub fn new(name: &str) -> Pki {
        let tmp = tempfile::tempdir().expect("tempdir");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = tmp.path().to_path_buf();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write ca.pem");
        Pki {
            issuer: Issuer::new(params, key),
            ca,
            dir,
            _tmp: tmp,
        }
    }

    /// A PEM key store (chain and key in one file, as ZooKeeper's `type=PEM`) for a
    /// certificate naming 127.0.0.1, `localhost` and, if given, `zab:server.{member}`.
    pub fn key_store(&self, file: &str, member: Option<u64>) -> PathBuf {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("zab {file}"));
        if let Some(id) = member {
            params.subject_alt_names.push(SanType::URI(
                Ia5String::try_from(format!("zab:server.{id}")).expect("uri"),
            ));
        }
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let path = self.dir.join(file);
        std::fs::write(&path, format!("{}{}", cert.pem(), key.serialize_pem()))
            .expect("write key store");
        path
    }

    /// Member `id`'s key store (`member{id}.pem`), made on first use.
    pub fn member(&self, id: u64) -> PathBuf {
        let path = self.dir.join(format!("member{id}.pem"));
        if path.exists() {
            path
        } else {
            self.key_store(&format!("member{id}.pem"), Some(id))
        }
    }
}

/// The `zoo.cfg` lines of quorum TLS with `key_store` and `trust_store`.
pub fn quorum_tls_cfg(key_store: &Path, trust_store: &Path) -> String {
    format!(
        "sslQuorum=true\nssl.quorum.keyStore.location={}\nssl.quorum.trustStore.location={}\n",
        key_store.display(),
        trust_store.display()
    )
}
