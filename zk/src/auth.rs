//! Authentication: the per-connection auth ids ([`AuthInfo`]: implicit `ip:<remote>`, plus
//! what `auth` packets add), the `digest` scheme (`user:password` → `user:base64(sha1)`, like
//! `DigestAuthenticationProvider`), the `x509` scheme (a TLS client certificate's subject, set
//! when the TLS handshake completes, like `X509AuthenticationProvider`), the configured super
//! users, and `whoAmI`.

use crate::acl::SUPER_SCHEME;
use crate::proto::{AuthPacket, ClientInfo, Id};
use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use zab_spec::ErrorCode;

/// `DigestAuthenticationProvider.generateDigest`: `user + ":" + base64(sha1("user:password"))`
/// (the digest is over the whole string; the user is the part before the first `:`).
#[must_use]
pub fn generate_digest(id_password: &str) -> String {
    let user = id_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(id_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// Server-wide authentication settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `zookeeper.DigestAuthenticationProvider.superDigest`: `super:<base64 sha1>`; a digest
    /// auth producing exactly this id also gets `Id("super", "")`.
    pub super_digest: Option<String>,
    /// `zookeeper.X509AuthenticationProvider.superUser`: a subject DN (as
    /// [`crate::x509::rfc2253_from_der`] writes it); a client whose certificate has exactly
    /// this subject also gets `Id("super", dn)`.
    pub x509_super_user: Option<String>,
}

/// The auth ids of one connection (`ServerCnxn.authInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthInfo {
    remote_ip: String,
    /// The subject of the client's verified TLS certificate, if it presented one.
    x509: Option<String>,
    ids: Vec<Id>,
}

impl AuthInfo {
    /// A new connection from `remote_ip` (every connection has `Id("ip", remote_ip)`).
    #[must_use]
    pub fn new(remote_ip: &str) -> AuthInfo {
        AuthInfo {
            remote_ip: remote_ip.to_owned(),
            x509: None,
            ids: vec![Id::new("ip", remote_ip)],
        }
    }

    /// A new TLS connection whose client presented a certificate the server verified, with
    /// subject `dn`: authenticated as `x509:<dn>` at once, and as the super user when `dn` is
    /// the configured one (ZooKeeper runs `X509AuthenticationProvider.handleAuthentication`
    /// when the handshake completes).
    #[must_use]
    pub fn with_certificate(remote_ip: &str, dn: &str, config: &AuthConfig) -> AuthInfo {
        let mut a = AuthInfo::new(remote_ip);
        a.x509 = Some(dn.to_owned());
        a.add_x509(config);
        a
    }

    fn add_x509(&mut self, config: &AuthConfig) {
        let Some(dn) = self.x509.clone() else { return };
        if config.x509_super_user.as_deref() == Some(dn.as_str()) {
            self.add(Id::new(SUPER_SCHEME, &dn));
        }
        self.add(Id::new("x509", &dn));
    }

    /// The subject of the client's certificate, if it presented one.
    #[must_use]
    pub fn certificate_subject(&self) -> Option<&str> {
        self.x509.as_deref()
    }

    /// Auth ids carried by a request forwarded from another server (the leader sees the
    /// ids, not the connection).
    #[must_use]
    pub fn from_ids(ids: Vec<Id>) -> AuthInfo {
        let remote_ip = ids
            .iter()
            .find(|i| i.scheme == "ip")
            .map(|i| i.id.clone())
            .unwrap_or_default();
        AuthInfo {
            remote_ip,
            x509: None,
            ids,
        }
    }

    /// The ids, in ZooKeeper's iteration order (see [`java_set_bin`]).
    #[must_use]
    pub fn ids(&self) -> &[Id] {
        &self.ids
    }

    /// Whether the super user authenticated on this connection.
    #[must_use]
    pub fn is_super(&self) -> bool {
        crate::acl::is_super(&self.ids)
    }

    fn add(&mut self, id: Id) {
        if !self.ids.contains(&id) {
            // Kept in the order ZooKeeper iterates its set of auth ids (whoAmI, `auth` ACL
            // expansion): by hash bin, then insertion order within a bin.
            let bin = java_set_bin(&id);
            let at = self
                .ids
                .iter()
                .position(|i| java_set_bin(i) > bin)
                .unwrap_or(self.ids.len());
            self.ids.insert(at, id);
        }
    }

    /// Handles an `auth` packet (xid -4). `digest` always succeeds; `ip` re-adds the remote
    /// address; `x509` re-adds the certificate's ids and fails without a certificate (as
    /// `X509AuthenticationProvider` does with no chain); any other scheme is `AuthFailed`
    /// (ZooKeeper replies -115 and closes the connection).
    pub fn authenticate(
        &mut self,
        config: &AuthConfig,
        packet: &AuthPacket,
    ) -> Result<(), ErrorCode> {
        match packet.scheme.as_str() {
            "digest" => {
                let digest = generate_digest(&String::from_utf8_lossy(&packet.auth));
                if config.super_digest.as_deref() == Some(digest.as_str()) {
                    self.add(Id::new(SUPER_SCHEME, ""));
                }
                self.add(Id::new("digest", &digest));
                Ok(())
            }
            "ip" => {
                let ip = self.remote_ip.clone();
                self.add(Id::new("ip", &ip));
                Ok(())
            }
            "x509" if self.x509.is_some() => {
                self.add_x509(config);
                Ok(())
            }
            _ => Err(ErrorCode::AuthFailed),
        }
    }

    /// The `whoAmI` answer: one `ClientInfo` per id, the user being the digest's user name,
    /// the ip address, or empty for `super`; in ZooKeeper's set order (verified with the
    /// differential test: `alice:secret` comes before `ip:127.0.0.1`, `alice:wrong` after).
    #[must_use]
    pub fn who_am_i(&self) -> Vec<ClientInfo> {
        self.ids
            .iter()
            .map(|id| ClientInfo {
                auth_scheme: id.scheme.clone(),
                user: match id.scheme.as_str() {
                    "digest" => id.id.split(':').next().unwrap_or("").to_owned(),
                    "ip" | "x509" => id.id.clone(),
                    _ => String::new(),
                },
            })
            .collect()
    }
}

/// The bin of `id` in ZooKeeper's per-connection auth set (`ServerCnxn.authInfo`, a set
/// backed by a `ConcurrentHashMap` of the default 16 bins): Java's `Id.hashCode` (jute:
/// `37 * (37 * 17 + scheme.hashCode()) + id.hashCode()`), spread as `ConcurrentHashMap` does.
/// The set iterates bin by bin, and in insertion order within a bin (a connection never
/// holds the 13 ids that would make the map grow).
#[must_use]
pub fn java_set_bin(id: &Id) -> u32 {
    fn string_hash(s: &str) -> i32 {
        s.encode_utf16()
            .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
    }
    let h = 17i32
        .wrapping_mul(37)
        .wrapping_add(string_hash(&id.scheme))
        .wrapping_mul(37)
        .wrapping_add(string_hash(&id.id));
    let h = h as u32;
    ((h ^ (h >> 16)) & 0x7fff_ffff) & 15
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn packet(scheme: &str, auth: &str) -> AuthPacket {
        AuthPacket {
            auth_type: 0,
            scheme: scheme.to_owned(),
            auth: Bytes::copy_from_slice(auth.as_bytes()),
        }
    }

    #[test]
    fn digest_matches_zookeeper() {
        // Verified against DigestAuthenticationProvider and python hashlib (wire doc §6.3).
        assert_eq!(
            generate_digest("alice:secret"),
            "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
        );
    }

    #[test]
    fn whoami_before_and_after_digest_auth() {
        let mut a = AuthInfo::new("127.0.0.1");
        assert_eq!(
            a.who_am_i(),
            vec![ClientInfo {
                auth_scheme: "ip".into(),
                user: "127.0.0.1".into()
            }]
        );
        a.authenticate(&AuthConfig::default(), &packet("digest", "alice:secret"))
            .unwrap_or_default();
        assert_eq!(
            a.who_am_i(),
            vec![
                ClientInfo {
                    auth_scheme: "digest".into(),
                    user: "alice".into()
                },
                ClientInfo {
                    auth_scheme: "ip".into(),
                    user: "127.0.0.1".into()
                }
            ]
        );
        assert!(!a.is_super());
    }

    /// ZooKeeper 3.8 answered whoAmI with `ip` before `digest:alice` after authenticating as
    /// `alice:wrong` (and the other way round for `alice:secret`): its auth set's hash order.
    #[test]
    fn whoami_lists_ids_in_zookeepers_hash_set_order() {
        let mut a = AuthInfo::new("127.0.0.1");
        a.authenticate(&AuthConfig::default(), &packet("digest", "alice:wrong"))
            .unwrap_or_default();
        let schemes: Vec<String> = a.who_am_i().into_iter().map(|c| c.auth_scheme).collect();
        assert_eq!(schemes, ["ip", "digest"]);
        assert_eq!(java_set_bin(&Id::new("ip", "127.0.0.1")), 12);
        assert_eq!(java_set_bin(&Id::new("super", "")), 7);
        assert_eq!(
            java_set_bin(&Id::new("digest", "bob:ikIaKsbtGweaHnb/jKn7OHqbunM=")),
            0
        );
    }

    #[test]
    fn unknown_scheme_fails_and_super_is_recognised() {
        let mut a = AuthInfo::new("10.0.0.1");
        assert_eq!(
            a.authenticate(&AuthConfig::default(), &packet("sasl", "x")),
            Err(ErrorCode::AuthFailed)
        );
        let config = AuthConfig {
            super_digest: Some(generate_digest("super:pw")),
            ..AuthConfig::default()
        };
        assert_eq!(
            a.authenticate(&config, &packet("digest", "super:pw")),
            Ok(())
        );
        assert!(a.is_super());
        // Adding the same id twice keeps one.
        assert_eq!(
            a.authenticate(&config, &packet("digest", "super:pw")),
            Ok(())
        );
        assert_eq!(a.ids().len(), 3);
    }

    #[test]
    fn a_certificate_authenticates_as_x509_and_the_configured_dn_is_super() {
        let dn = "CN=admin,O=Example";
        let config = AuthConfig {
            x509_super_user: Some(dn.into()),
            ..AuthConfig::default()
        };
        let a = AuthInfo::with_certificate("127.0.0.1", "CN=client,O=Example", &config);
        assert!(!a.is_super());
        assert!(a.ids().contains(&Id::new("x509", "CN=client,O=Example")));
        let users: Vec<(String, String)> = a
            .who_am_i()
            .into_iter()
            .map(|c| (c.auth_scheme, c.user))
            .collect();
        assert!(users.contains(&("x509".into(), "CN=client,O=Example".into())));
        let mut admin = AuthInfo::with_certificate("127.0.0.1", dn, &config);
        assert!(admin.is_super());
        assert!(admin.ids().contains(&Id::new("super", dn)));
        assert_eq!(admin.certificate_subject(), Some(dn));
        // `addauth x509` re-adds the certificate's ids; without a certificate it fails.
        assert_eq!(admin.authenticate(&config, &packet("x509", "")), Ok(()));
        assert_eq!(admin.ids().len(), 3);
        let mut plain = AuthInfo::new("127.0.0.1");
        assert_eq!(
            plain.authenticate(&config, &packet("x509", "")),
            Err(ErrorCode::AuthFailed)
        );
    }
}
