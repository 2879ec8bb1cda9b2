//! Quorum TLS (`sslQuorum=true`): TLS with mutual authentication on every peer link (the
//! quorum and the election ports), and the binding of a peer's certificate to the
//! `server.N` it claims, so that one member cannot pose as another.
//!
//! Identity: a certificate speaks for `server.N` when
//! - it chains to `ssl.quorum.trustStore` (rustls, during the handshake), and
//! - with `ssl.quorum.hostnameVerification` (the default), it names `server.N`'s host as
//!   HTTPS does ([`CertNames::matches_host`]: an IP entry for an IP, a DNS entry for a name),
//!   and
//! - if it carries `subjectAltName` URIs `zab:server.M`, `N` is one of those `M`s; such a URI
//!   is required when `server.N` shares its host with another member (an ensemble on one
//!   machine), where the host alone cannot tell the members apart.
//!
//! The accepting side checks the id in the peer's `Hello`; the connecting side checks the id
//! it dialled. `portUnification=true` makes the accepting side also take plaintext peers on the
//! same port (told apart by the first byte: a TLS record starts with 22), for a rolling switch
//! between plaintext and TLS; connections out use TLS exactly when `sslQuorum=true`.

use crate::tls::{CertNames, TlsError, TlsSettings};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use zab_spec::ServerId;

/// A peer connection: plaintext TCP or TLS over it (`Any`: the network writes a plaintext
/// socket directly, `net_out.rs`, and tells it apart by its type).
pub trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send + std::any::Any {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> PeerIo for T {}

/// A boxed peer connection.
pub type PeerStream = Box<dyn PeerIo>;

/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 22;

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The URI prefix that names a member in a certificate (`zab:server.N`).
pub const MEMBER_URI_PREFIX: &str = "zab:server.";

/// Where a member is reached: its `server.N` host as written, and the IP it resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberHost {
    /// The host of `server.N=host:...`.
    pub host: String,
    /// The address it resolved to.
    pub ip: IpAddr,
}

/// The quorum's TLS: the acceptor, the connector and the members' hosts.
pub struct QuorumTls {
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    members: BTreeMap<ServerId, MemberHost>,
    hostname_verification: bool,
    /// `sslQuorum`: connect out over TLS (and, without unification, accept only TLS).
    ssl_quorum: bool,
    /// `portUnification`: accept plaintext peers too.
    port_unification: bool,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls")
            .field("members", &self.members)
            .field("hostname_verification", &self.hostname_verification)
            .field("ssl_quorum", &self.ssl_quorum)
            .field("port_unification", &self.port_unification)
            .finish_non_exhaustive()
    }
}

impl QuorumTls {
    /// Builds both sides from the `ssl.quorum.*` settings; client certificates are always
    /// required on the quorum (whatever `clientAuth` says), as in ZooKeeper.
    pub fn new(
        settings: &TlsSettings,
        members: BTreeMap<ServerId, MemberHost>,
        ssl_quorum: bool,
        port_unification: bool,
    ) -> Result<QuorumTls, TlsError> {
        let mut settings = settings.clone();
        settings.client_auth = crate::tls::ClientAuth::Need;
        let server = settings.server_config()?;
        let client = settings.client_config()?;
        Ok(QuorumTls {
            acceptor: tokio_rustls::TlsAcceptor::from(server),
            connector: tokio_rustls::TlsConnector::from(client),
            members,
            hostname_verification: settings.hostname_verification,
            ssl_quorum,
            port_unification,
        })
    }

    /// Whether plaintext peers are still accepted (`portUnification`) or dialled (no
    /// `sslQuorum`): the ensemble is then not closed to outsiders yet.
    #[must_use]
    pub fn accepts_plaintext(&self) -> bool {
        self.port_unification || !self.ssl_quorum
    }

    /// Whether a certificate is trusted for any member without naming its host
    /// (`hostnameVerification=false`).
    #[must_use]
    pub fn hostname_verification(&self) -> bool {
        self.hostname_verification
    }

    /// The accepting side: a TLS handshake (or, under `portUnification`, plaintext when the
    /// peer does not start one). Returns the stream and the peer certificate's names (`None`
    /// for plaintext).
    pub async fn accept(&self, tcp: TcpStream) -> Result<(PeerStream, Option<CertNames>), String> {
        let tls_first = if self.port_unification {
            let mut first = [0u8; 1];
            let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.peek(&mut first))
                .await
                .map_err(|_| "handshake timed out".to_string())?
                .map_err(|e| e.to_string())?;
            n == 1 && first[0] == TLS_HANDSHAKE_RECORD
        } else {
            self.ssl_quorum
        };
        if !tls_first {
            // Only under portUnification, or while sslQuorum is still off.
            return Ok((Box::new(tcp), None));
        }
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let names = leaf_names(tls.get_ref().1.peer_certificates())?;
        Ok((Box::new(tls), Some(names)))
    }

    /// The connecting side, to member `peer`: TLS (hostname checked by rustls against
    /// `server.N`'s host) when `sslQuorum`, plaintext otherwise; the server certificate is
    /// then bound to `peer` ([`QuorumTls::check_identity`]).
    pub async fn connect(
        &self,
        tcp: TcpStream,
        peer: ServerId,
    ) -> Result<(PeerStream, Option<CertNames>), String> {
        if !self.ssl_quorum {
            return Ok((Box::new(tcp), None));
        }
        let member = self
            .members
            .get(&peer)
            .ok_or_else(|| format!("server {peer} is not a member"))?;
        let name = crate::tls::server_name(&member.host).map_err(|e| e.to_string())?;
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.connector.connect(name, tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake failed: {e}"))?;
        let names = leaf_names(tls.get_ref().1.peer_certificates())?;
        self.check_identity(&names, peer)?;
        Ok((Box::new(tls), Some(names)))
    }

    /// Whether a certificate with `names` speaks for `claimed` (module doc).
    pub fn check_identity(&self, names: &CertNames, claimed: ServerId) -> Result<(), String> {
        bind_identity(&self.members, self.hostname_verification, names, claimed)
    }
}

/// Whether a certificate with `names` speaks for member `claimed` of `members` (module doc).
fn bind_identity(
    members: &BTreeMap<ServerId, MemberHost>,
    hostname_verification: bool,
    names: &CertNames,
    claimed: ServerId,
) -> Result<(), String> {
    let member = members
        .get(&claimed)
        .ok_or_else(|| format!("server {claimed} is not a member"))?;
    let marked: Vec<u64> = names
        .uris
        .iter()
        .filter_map(|u| u.strip_prefix(MEMBER_URI_PREFIX)?.parse().ok())
        .collect();
    if !marked.is_empty() && !marked.contains(&claimed.0) {
        return Err(format!(
            "the certificate is for server(s) {marked:?}, not server.{}",
            claimed.0
        ));
    }
    if !hostname_verification {
        return Ok(());
    }
    if !names.matches_host(&member.host) {
        return Err(format!(
            "the certificate does not name server.{}'s host {} (it names {:?} {:?})",
            claimed.0, member.host, names.dns, names.ips
        ));
    }
    let shared = members.iter().any(|(id, m)| {
        *id != claimed && (m.ip == member.ip || m.host.eq_ignore_ascii_case(&member.host))
    });
    if shared && marked.is_empty() {
        return Err(format!(
            "server.{} shares its host {} with another member, so its certificate must \
             carry the subjectAltName URI {MEMBER_URI_PREFIX}{}",
            claimed.0, member.host, claimed.0
        ));
    }
    Ok(())
}

fn leaf_names(
    certs: Option<&[rustls_pki_types::CertificateDer<'static>]>,
) -> Result<CertNames, String> {
    let leaf = certs
        .and_then(<[_]>::first)
        .ok_or_else(|| "the peer presented no certificate".to_string())?;
    CertNames::of(leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(hosts: &[&str]) -> BTreeMap<ServerId, MemberHost> {
        hosts
            .iter()
            .enumerate()
            .map(|(k, h)| {
                let ip = h.parse().unwrap_or(IpAddr::from([10, 0, 0, k as u8 + 1]));
                (
                    ServerId(k as u64 + 1),
                    MemberHost {
                        host: (*h).to_string(),
                        ip,
                    },
                )
            })
            .collect()
    }

    fn names(dns: &[&str], ips: &[&str], uris: &[&str]) -> CertNames {
        CertNames {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            ips: ips.iter().map(|s| s.parse().expect("ip")).collect(),
            common_names: Vec::new(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn a_certificate_speaks_for_the_member_whose_host_it_names() {
        let m = members(&["zk1.example.com", "zk2.example.com", "10.0.0.3"]);
        let zk1 = names(&["zk1.example.com"], &[], &[]);
        assert!(bind_identity(&m, true, &zk1, ServerId(1)).is_ok());
        let e = bind_identity(&m, true, &zk1, ServerId(2)).expect_err("another host");
        assert!(e.contains("zk2.example.com"), "{e}");
        assert!(bind_identity(&m, true, &names(&[], &["10.0.0.3"], &[]), ServerId(3)).is_ok());
        assert!(bind_identity(&m, true, &names(&["zk3"], &[], &[]), ServerId(3)).is_err());
        assert!(
            bind_identity(&m, true, &zk1, ServerId(9)).is_err(),
            "not a member"
        );
        // A member URI for another id is refused even when the host fits, and with
        // hostnameVerification off.
        let marked = names(&["zk1.example.com"], &[], &["zab:server.2"]);
        assert!(bind_identity(&m, true, &marked, ServerId(1)).is_err());
        assert!(bind_identity(&m, false, &marked, ServerId(1)).is_err());
        // Without hostname verification an unmarked trusted certificate fits any member
        // (ZooKeeper's behaviour; zabd warns at start).
        assert!(bind_identity(&m, false, &zk1, ServerId(2)).is_ok());
    }

    #[test]
    fn members_on_one_host_are_told_apart_by_their_uri() {
        let m = members(&["127.0.0.1", "127.0.0.1", "127.0.0.1"]);
        let host_only = names(&[], &["127.0.0.1"], &[]);
        let e = bind_identity(&m, true, &host_only, ServerId(2)).expect_err("ambiguous");
        assert!(e.contains("zab:server.2"), "{e}");
        let two = names(&[], &["127.0.0.1"], &["zab:server.2"]);
        assert!(bind_identity(&m, true, &two, ServerId(2)).is_ok());
        assert!(bind_identity(&m, true, &two, ServerId(3)).is_err());
    }
}
