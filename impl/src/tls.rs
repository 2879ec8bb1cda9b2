//! TLS configuration shared by the quorum (`ssl.quorum.*`) and the client port (`ssl.*`):
//! ZooKeeper 3.8's keys, key and trust stores (PEM or PKCS#12), and the rustls server and
//! client configurations built from them, on the `ring` provider.
//!
//! Keys read under a prefix (`ssl.quorum.` or `ssl.`), as ZooKeeper's `X509Util` reads them:
//!
//! | key | meaning |
//! |---|---|
//! | `keyStore.location` | this server's certificate chain and private key |
//! | `keyStore.password`, `keyStore.passwordPath` | the PKCS#12 password (or a file holding it) |
//! | `keyStore.type` | `PEM` or `PKCS12`; unset: inferred from the file name's extension |
//! | `trustStore.location`, `.password`, `.passwordPath`, `.type` | the CA certificates trusted |
//! | `protocol` | `TLSv1.2` or `TLSv1.3`: the one version enabled (unset: both) |
//! | `enabledProtocols` | a comma-separated list of those, overriding `protocol` |
//! | `ciphersuites` | comma-separated Java (IANA) names; unset: rustls' defaults |
//! | `hostnameVerification` | `true` (default) or `false` |
//! | `clientAuth` | `none`, `want` or `need` (default), for a server |
//!
//! A PEM key store is one file holding the certificate chain (leaf first) and an unencrypted
//! PKCS#8, PKCS#1 or SEC1 private key, as ZooKeeper's `PemReader` reads it; an encrypted PEM
//! key is refused with a message (use PKCS#12 for a password-protected key). A PEM trust store
//! holds CA certificates. A PKCS#12 file is read with its password (PBES2/AES and the legacy
//! PBES1 3DES/RC2 encryptions); JKS is refused with the `keytool` command that converts it.
//!
//! Use: [`TlsSettings::new`] with a prefix, [`TlsSettings::apply`] for each `zoo.cfg` key (it
//! says whether it took the key), then [`TlsSettings::server_config`] or
//! [`TlsSettings::client_config`]. [`CertNames::of`] reads a peer certificate's names and
//! [`CertNames::matches_host`] checks one against a host as ZooKeeper's hostname
//! verification does.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, CipherSuite, DigitallySignedStruct, RootCertStore, SignatureScheme,
    SupportedProtocolVersion,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The prefix of the quorum's keys (`sslQuorum=true`).
pub const QUORUM_PREFIX: &str = "ssl.quorum.";
/// The prefix of the client port's keys (`secureClientPort`).
pub const CLIENT_PREFIX: &str = "ssl.";

/// A TLS configuration problem, naming the key or file.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    /// A key with a value of the wrong shape.
    #[error("{key}: {message} (got {value:?})")]
    Value {
        /// The full key (prefix included).
        key: String,
        /// The value (never a password).
        value: String,
        /// What was expected.
        message: String,
    },
    /// A store that cannot be used.
    #[error("{what} {path}: {message}")]
    Store {
        /// `key store` or `trust store`, with the prefix.
        what: String,
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// An inconsistent whole (a missing key, suites that fit no enabled protocol).
    #[error("{0}")]
    Invalid(String),
}

/// A store's file format (`keyStore.type`, `trustStore.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreType {
    /// PEM: certificates (and, in a key store, the private key) in one text file.
    Pem,
    /// PKCS#12, with a password.
    Pkcs12,
}

impl StoreType {
    /// Parses a `*.type` value as ZooKeeper's `KeyStoreFileType` does (case-insensitive).
    pub fn parse(key: &str, value: &str) -> Result<StoreType, TlsError> {
        match value.trim().to_ascii_uppercase().as_str() {
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "JKS" | "BCFKS" => Err(TlsError::Value {
                key: key.into(),
                value: value.into(),
                message: "zabd reads PEM and PKCS12 stores only; convert a JKS store with \
                          `keytool -importkeystore -srckeystore F.jks -destkeystore F.p12 \
                          -deststoretype PKCS12`"
                    .into(),
            }),
            _ => Err(TlsError::Value {
                key: key.into(),
                value: value.into(),
                message: "expected PEM or PKCS12".into(),
            }),
        }
    }

    /// The type of a store whose `type` is unset, from its file name's extension, as
    /// ZooKeeper's `KeyStoreFileType.fromFilename` does (`.pem`, `.crt`, `.cer`, `.key` for PEM;
    /// `.p12`, `.pfx` for PKCS12).
    pub fn infer(key: &str, path: &Path) -> Result<StoreType, TlsError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "pem" | "crt" | "cer" | "key" => Ok(StoreType::Pem),
            "p12" | "pfx" => Ok(StoreType::Pkcs12),
            "jks" | "bcfks" => StoreType::parse(key, &ext),
            _ => Err(TlsError::Value {
                key: key.into(),
                value: path.display().to_string(),
                message: "cannot tell the store type from the file name (.pem, .crt, .cer, \
                          .key, .p12 or .pfx): set the matching .type key"
                    .into(),
            }),
        }
    }
}

/// One store's location, password and type.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct StoreSettings {
    /// The file.
    pub location: Option<PathBuf>,
    /// The password (PKCS#12).
    pub password: Option<String>,
    /// The format; `None`: inferred from the file name.
    pub kind: Option<StoreType>,
}

impl std::fmt::Debug for StoreSettings {
    /// Never prints the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSettings")
            .field("location", &self.location)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("kind", &self.kind)
            .finish()
    }
}

/// ZooKeeper's `ssl.clientAuth`: whether a server asks for, or requires, a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is requested.
    None,
    /// Requested; a client without one is accepted (a certificate sent is still verified).
    Want,
    /// Required and verified (ZooKeeper's default).
    #[default]
    Need,
}

/// A TLS protocol version (`protocol`, `enabledProtocols`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `TLSv1.2`.
    Tls12,
    /// `TLSv1.3`.
    Tls13,
}

impl Protocol {
    fn parse(key: &str, value: &str) -> Result<Protocol, TlsError> {
        match value.trim() {
            "TLSv1.2" => Ok(Protocol::Tls12),
            "TLSv1.3" => Ok(Protocol::Tls13),
            // ZooKeeper's default `protocol` names the context, which enables 1.3 and 1.2.
            other => Err(TlsError::Value {
                key: key.into(),
                value: other.into(),
                message: "expected TLSv1.2 or TLSv1.3 (older versions are not supported)".into(),
            }),
        }
    }

    fn rustls(self) -> &'static SupportedProtocolVersion {
        match self {
            Protocol::Tls12 => &rustls::version::TLS12,
            Protocol::Tls13 => &rustls::version::TLS13,
        }
    }
}

/// The Java (IANA) cipher suite names zabd accepts, and the rustls suite of each.
const CIPHER_SUITES: &[(&str, CipherSuite)] = &[
    (
        "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_128_GCM_SHA256,
    ),
    (
        "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_AES_256_GCM_SHA384,
    ),
    (
        "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Everything one prefix's keys say. Plain data (no file is read until a config is built).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// `ssl.quorum.` or `ssl.`: error messages name the full keys.
    pub prefix: String,
    /// This side's certificate chain and key.
    pub key_store: StoreSettings,
    /// The CA certificates a peer's certificate must chain to.
    pub trust_store: StoreSettings,
    /// The versions enabled; empty: TLSv1.3 and TLSv1.2.
    pub protocols: Vec<Protocol>,
    /// Java names of the suites enabled; empty: rustls' defaults.
    pub cipher_suites: Vec<String>,
    /// Whether a peer's certificate must name the host it was reached at (or claims).
    pub hostname_verification: bool,
    /// For a server: whether a client certificate is requested or required.
    pub client_auth: ClientAuth,
}

impl TlsSettings {
    /// ZooKeeper's defaults under `prefix`: no stores yet, both versions, hostname
    /// verification on, client certificates required.
    #[must_use]
    pub fn new(prefix: &str) -> TlsSettings {
        TlsSettings {
            prefix: prefix.into(),
            key_store: StoreSettings::default(),
            trust_store: StoreSettings::default(),
            protocols: Vec::new(),
            cipher_suites: Vec::new(),
            hostname_verification: true,
            client_auth: ClientAuth::Need,
        }
    }

    /// Takes `key` (a full `zoo.cfg` key) if it is one of this prefix's TLS keys; `Ok(false)`
    /// for any other key. `*.passwordPath` reads the password from that file now.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, TlsError> {
        let Some(name) = key.strip_prefix(self.prefix.as_str()) else {
            return Ok(false);
        };
        let bad = |message: &str| TlsError::Value {
            key: key.into(),
            value: value.into(),
            message: message.into(),
        };
        let value = value.trim();
        match name {
            "keyStore.location" => self.key_store.location = Some(PathBuf::from(value)),
            "keyStore.password" => self.key_store.password = Some(value.into()),
            "keyStore.passwordPath" => self.key_store.password = Some(read_password(key, value)?),
            "keyStore.type" => self.key_store.kind = Some(StoreType::parse(key, value)?),
            "trustStore.location" => self.trust_store.location = Some(PathBuf::from(value)),
            "trustStore.password" => self.trust_store.password = Some(value.into()),
            "trustStore.passwordPath" => {
                self.trust_store.password = Some(read_password(key, value)?);
            }
            "trustStore.type" => self.trust_store.kind = Some(StoreType::parse(key, value)?),
            "protocol" => self.protocols = vec![Protocol::parse(key, value)?],
            "enabledProtocols" => {
                self.protocols = value
                    .split(',')
                    .map(|p| Protocol::parse(key, p))
                    .collect::<Result<_, _>>()?;
            }
            "ciphersuites" => {
                self.cipher_suites = value
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for s in &self.cipher_suites {
                    java_suite(key, s)?;
                }
            }
            "hostnameVerification" => self.hostname_verification = parse_bool(key, value)?,
            "clientAuth" => {
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    "none" => ClientAuth::None,
                    "want" => ClientAuth::Want,
                    "need" | "" => ClientAuth::Need,
                    _ => return Err(bad("expected none, want or need")),
                }
            }
            "crl" | "ocsp" => {
                if parse_bool(key, value)? {
                    return Err(bad(
                        "certificate revocation checks are not supported by zabd",
                    ));
                }
            }
            // ZooKeeper's engine-level knobs with no rustls counterpart to set.
            "handshakeDetectionTimeoutMillis" | "context.supplier.class" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The crypto provider with only the configured suites, and the versions enabled.
    fn provider(
        &self,
    ) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsError> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !self.cipher_suites.is_empty() {
            let key = self.key("ciphersuites");
            let wanted: Vec<CipherSuite> = self
                .cipher_suites
                .iter()
                .map(|s| java_suite(&key, s))
                .collect::<Result<_, _>>()?;
            provider
                .cipher_suites
                .retain(|s| wanted.contains(&s.suite()));
        }
        let protocols = if self.protocols.is_empty() {
            vec![Protocol::Tls13, Protocol::Tls12]
        } else {
            self.protocols.clone()
        };
        let usable = provider
            .cipher_suites
            .iter()
            .any(|s| protocols.iter().any(|p| s.version() == p.rustls()));
        if !usable {
            return Err(TlsError::Invalid(format!(
                "{}ciphersuites: none of {:?} belongs to an enabled protocol ({protocols:?}); \
                 TLSv1.3 suites are TLS_AES_*/TLS_CHACHA20_*, TLSv1.2 ones TLS_ECDHE_*",
                self.prefix, self.cipher_suites
            )));
        }
        let versions = protocols.iter().map(|p| p.rustls()).collect();
        Ok((Arc::new(provider), versions))
    }

    fn what(&self, store: &str) -> String {
        format!("{}{store}", self.prefix)
    }

    /// Reads the key store (required).
    pub fn load_key_store(&self) -> Result<KeyPair, TlsError> {
        load_key_store(
            &self.key_store,
            &self.key("keyStore"),
            &self.what("keyStore"),
        )
    }

    /// Reads the trust store (required).
    pub fn load_trust_store(&self) -> Result<RootCertStore, TlsError> {
        load_trust_store(
            &self.trust_store,
            &self.key("trustStore"),
            &self.what("trustStore"),
        )
    }

    /// A server configuration: the key store's chain and key; client certificates as
    /// [`TlsSettings::client_auth`] says, verified against the trust store (needed unless
    /// `none`). Hostnames of clients are not checked here (a caller that binds an identity to
    /// the certificate checks [`CertNames`] after the handshake).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let (provider, versions) = self.provider()?;
        let pair = self.load_key_store()?;
        let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Invalid(format!("{}protocol: {e}", self.prefix)))?;
        let builder = match self.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            auth => {
                let roots = Arc::new(self.load_trust_store()?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if auth == ClientAuth::Want {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| TlsError::Invalid(format!("{}trustStore: {e}", self.prefix)))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(pair.chain, pair.key)
            .map_err(|e| TlsError::Store {
                what: self.what("keyStore"),
                path: display(&self.key_store.location),
                message: format!("the key does not fit the certificate: {e}"),
            })?;
        Ok(Arc::new(config))
    }

    /// A client configuration: the server's certificate must chain to the trust store and,
    /// with `hostnameVerification`, name the host connected to (the `ServerName` the caller
    /// gives); the key store's chain is presented when the server asks for one (a key store
    /// is optional here).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let (provider, versions) = self.provider()?;
        let roots = Arc::new(self.load_trust_store()?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| TlsError::Invalid(format!("{}trustStore: {e}", self.prefix)))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError::Invalid(format!("{}protocol: {e}", self.prefix)))?;
        let builder = if self.hostname_verification {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
        };
        let config = if self.key_store.location.is_some() {
            let pair = self.load_key_store()?;
            builder
                .with_client_auth_cert(pair.chain, pair.key)
                .map_err(|e| TlsError::Store {
                    what: self.what("keyStore"),
                    path: display(&self.key_store.location),
                    message: format!("the key does not fit the certificate: {e}"),
                })?
        } else {
            builder.with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}

/// A server name for a `server.N` host or a client's target: an IP literal or a DNS name.
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|e| TlsError::Value {
        key: "host".into(),
        value: host.into(),
        message: format!("not a usable TLS server name: {e}"),
    })
}

/// A certificate chain (leaf first) and its private key.
#[derive(Debug)]
pub struct KeyPair {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

fn display(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "(unset)".into(), |p| p.display().to_string())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, TlsError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(TlsError::Value {
            key: key.into(),
            value: value.into(),
            message: "expected true or false".into(),
        }),
    }
}

fn read_password(key: &str, path: &str) -> Result<String, TlsError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
        .map_err(|e| TlsError::Value {
            key: key.into(),
            value: path.into(),
            message: format!("cannot read the password file: {e}"),
        })
}

/// The rustls suite of a Java name; an unknown or unsupported name is an error listing the
/// names accepted.
fn java_suite(key: &str, name: &str) -> Result<CipherSuite, TlsError> {
    CIPHER_SUITES
        .iter()
        .find(|(java, _)| java.eq_ignore_ascii_case(name.trim()))
        .map(|(_, s)| *s)
        .ok_or_else(|| TlsError::Value {
            key: key.into(),
            value: name.into(),
            message: format!(
                "unknown or unsupported cipher suite (zabd offers only AEAD suites with forward \
                 secrecy: {})",
                CIPHER_SUITES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

fn store_kind(s: &StoreSettings, key: &str) -> Result<(PathBuf, StoreType), TlsError> {
    let path = s
        .location
        .clone()
        .ok_or_else(|| TlsError::Invalid(format!("{key}.location is required")))?;
    let kind = match s.kind {
        Some(k) => k,
        None => StoreType::infer(&format!("{key}.location"), &path)?,
    };
    Ok((path, kind))
}

fn read_store(path: &Path, what: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Store {
        what: what.into(),
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })
}

fn pkcs12(
    bytes: &[u8],
    s: &StoreSettings,
    path: &Path,
    what: &str,
    policy: p12_keystore::Pkcs12ImportPolicy,
) -> Result<p12_keystore::KeyStore, TlsError> {
    let password = s.password.as_deref().unwrap_or("");
    p12_keystore::KeyStore::from_pkcs12(bytes, password, policy).map_err(|e| TlsError::Store {
        what: what.into(),
        path: path.display().to_string(),
        message: format!("not a readable PKCS#12 file, or a wrong password: {e}"),
    })
}

/// Reads a key store: the certificate chain (leaf first) and the private key.
pub fn load_key_store(s: &StoreSettings, key: &str, what: &str) -> Result<KeyPair, TlsError> {
    let (path, kind) = store_kind(s, key)?;
    let bytes = read_store(&path, what)?;
    let err = |message: String| TlsError::Store {
        what: what.into(),
        path: path.display().to_string(),
        message,
    };
    match kind {
        StoreType::Pem => {
            let text = String::from_utf8_lossy(&bytes);
            if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
                return Err(err(
                    "an encrypted PEM private key is not supported: use a PKCS12 key store \
                     for a password-protected key, or an unencrypted key in a file only the \
                     server's user can read"
                        .into(),
                ));
            }
            let chain = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| err(format!("bad PEM: {e}")))?;
            if chain.is_empty() {
                return Err(err("no CERTIFICATE in the PEM file".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| err(format!("no usable PRIVATE KEY in the PEM file: {e}")))?;
            Ok(KeyPair { chain, key })
        }
        StoreType::Pkcs12 => {
            let store = pkcs12(
                &bytes,
                s,
                &path,
                what,
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )?;
            let (_, chain) = store
                .private_key_chain()
                .ok_or_else(|| err("no private key with its certificate in the file".into()))?;
            let certs: Vec<CertificateDer<'static>> = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            if certs.is_empty() {
                return Err(err("the private key has no certificate".into()));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
            Ok(KeyPair { chain: certs, key })
        }
    }
}

/// Reads a trust store: every certificate in it is a trust anchor.
pub fn load_trust_store(
    s: &StoreSettings,
    key: &str,
    what: &str,
) -> Result<RootCertStore, TlsError> {
    let (path, kind) = store_kind(s, key)?;
    let bytes = read_store(&path, what)?;
    let err = |message: String| TlsError::Store {
        what: what.into(),
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = match kind {
        StoreType::Pem => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(format!("bad PEM: {e}")))?,
        StoreType::Pkcs12 => {
            let store = pkcs12(
                &bytes,
                s,
                &path,
                what,
                p12_keystore::Pkcs12ImportPolicy::Raw,
            )?;
            store
                .entries()
                .filter_map(|(_, e)| match e {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        Some(CertificateDer::from(c.as_der().to_vec()))
                    }
                    _ => None,
                })
                .collect()
        }
    };
    let mut roots = RootCertStore::empty();
    for (k, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            err(format!(
                "certificate {k} is not usable as a trust anchor: {e}"
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(err("no CA certificate in the trust store".into()));
    }
    Ok(roots)
}

/// The names in a certificate that identify its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertNames {
    /// `subjectAltName` DNS entries.
    pub dns: Vec<String>,
    /// `subjectAltName` IP addresses.
    pub ips: Vec<IpAddr>,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// `subjectAltName` URIs (the quorum's `zab:server.N` member names).
    pub uris: Vec<String>,
}

impl CertNames {
    /// Reads the names of a DER certificate.
    pub fn of(cert: &CertificateDer<'_>) -> Result<CertNames, String> {
        let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
            .map_err(|e| format!("unparsable certificate: {e}"))?;
        let mut names = CertNames::default();
        if let Ok(Some(san)) = x509.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        names.dns.push(d.to_ascii_lowercase());
                    }
                    x509_parser::extensions::GeneralName::URI(u) => names.uris.push((*u).into()),
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            names.ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            names.ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        for cn in x509.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.common_names.push(s.to_ascii_lowercase());
            }
        }
        Ok(names)
    }

    /// Whether the certificate names `host` (an IP literal or a DNS name), as HTTPS hostname
    /// verification (RFC 2818, Java's `HostnameChecker`, ZooKeeper's `ZKHostnameVerifier`)
    /// decides: an IP must be one of the IP entries; a DNS name must equal a DNS entry or
    /// match a wildcard one (`*.example.com`, one leftmost label), and the common name counts
    /// only when the certificate has no DNS entry.
    #[must_use]
    pub fn matches_host(&self, host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = bare.trim_end_matches('.').to_ascii_lowercase();
        let pattern_matches = |pattern: &str| {
            let pattern = pattern.trim_end_matches('.');
            match pattern.strip_prefix("*.") {
                Some(rest) => host
                    .split_once('.')
                    .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
                None => pattern == host,
            }
        };
        if self.dns.is_empty() {
            self.common_names.iter().any(|cn| pattern_matches(cn))
        } else {
            self.dns.iter().any(|d| pattern_matches(d))
        }
    }
}

/// A server-certificate verifier that checks the chain and signatures as webpki does but not
/// the name (`hostnameVerification=false`).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
