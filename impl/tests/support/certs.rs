//! Certificates for TLS tests, made with rcgen (no private key is ever committed): a CA and
//! the leaves it signs ([`Ca`], [`Leaf`]; also used by `src/tls_tests.rs`, which includes
//! this file), and, in a scratch directory, member certificates for `server.N` on 127.0.0.1
//! (with the `zab:server.N` URI that tells members on one host apart) and the `zoo.cfg` lines.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair, SanType,
    string::Ia5String,
};
use rustls::pki_types::CertificateDer;
use std::path::{Path, PathBuf};

/// A CA and the certificates it signs.
pub struct Ca {
    pub issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub pem: String,
    /// The CA certificate, DER.
    pub der: CertificateDer<'static>,
}

impl Ca {
    /// A fresh self-signed CA called `name`.
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with subject `dn` for `sans` (DNS names or IP literals), signed by this CA.
    pub fn leaf(&self, dn: DistinguishedName, sans: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params.distinguished_name = dn;
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        }
    }
}

/// A leaf certificate and its key, PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub cert: CertificateDer<'static>,
    /// The key, PKCS#8 DER.
    pub key: Vec<u8>,
}

/// A subject with only a common name.
pub fn cn(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// A CA whose files live in a scratch directory.
pub struct Pki {
    authority: Ca,
    /// The CA certificate (PEM): the trust store.
    pub ca: PathBuf,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Pki {
    /// A fresh CA called `name`.
    pub fn new(name: &str) -> Pki {
        let tmp = tempfile::tempdir().expect("tempdir");
        let authority = Ca::new(name);
        let dir = tmp.path().to_path_buf();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, &authority.pem).expect("write ca.pem");
        Pki {
            authority,
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
        let cert = params
            .signed_by(&key, &self.authority.issuer)
            .expect("sign");
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
