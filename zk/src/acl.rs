//! ACL checks and ACL fix-up, as ZooKeeper 3.8 does them (`ZooKeeperServer.checkACL`,
//! `PrepRequestProcessor.fixupACL`) for the schemes `world`, `auth`, `digest`, `ip` and `x509`
//! (a TLS client certificate's subject, `X509AuthenticationProvider`), with the `super` id
//! bypassing every check.

use crate::proto::perms;
use crate::proto::{Acl, Id};
use zab_spec::ErrorCode;

/// The scheme and id of the super user's auth id (`Id("super", "")`).
pub const SUPER_SCHEME: &str = "super";

/// Whether `auth` contains the super user's id.
#[must_use]
pub fn is_super(auth: &[Id]) -> bool {
    auth.iter().any(|a| a.scheme == SUPER_SCHEME)
}

/// `checkACL`: an empty ACL allows everything; a `super` id allows everything; otherwise some
/// entry holding `perm` must be `world:anyone` or match one of the caller's ids of its scheme
/// (`digest` and `x509`: equal strings, `ip`: address or CIDR match). Else `NoAuth`. (The
/// x509 super user's own rule, that its DN matches every `x509` entry, needs no case here: its
/// connection also holds the `super` id.)
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || is_super(auth) {
        return Ok(());
    }
    for a in acl {
        if a.perms & perm == 0 {
            continue;
        }
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return Ok(());
        }
        let matches = |candidate: &Id| match a.id.scheme.as_str() {
            "digest" | "x509" => candidate.id == a.id.id,
            "ip" => ip_matches(&candidate.id, &a.id.id),
            _ => false,
        };
        if auth
            .iter()
            .any(|candidate| candidate.scheme == a.id.scheme && matches(candidate))
        {
            return Ok(());
        }
    }
    Err(ErrorCode::NoAuth)
}

/// Whether an ACL id is valid for its scheme's provider (`isValid`): `digest` ids are
/// `user:hash` (exactly two `:`-separated parts, Java `split` semantics), `ip` ids an IPv4
/// address with an optional `/bits`, `x509` ids a distinguished name `X500Principal` would
/// accept. `world` (other than `anyone`), `super`, `auth` and unknown schemes have no
/// provider here.
#[must_use]
pub fn is_valid_id(id: &Id) -> bool {
    match id.scheme.as_str() {
        "digest" => java_split_len(&id.id, ':') == 2,
        "ip" => ip_valid(&id.id),
        "x509" => crate::x509::is_valid_dn(&id.id),
        _ => false,
    }
}

/// Number of parts of Java's `s.split(String.valueOf(sep))` (trailing empty strings removed).
fn java_split_len(s: &str, sep: char) -> usize {
    if s.is_empty() {
        return 1;
    }
    // Java drops trailing empty strings ("a:" has one part, "::" none).
    let parts: Vec<&str> = s.split(sep).collect();
    let trailing_empty = parts.iter().rev().take_while(|p| p.is_empty()).count();
    parts.len() - trailing_empty
}

/// `fixupACL`: removes duplicates (keeping the first), refuses an empty list, keeps
/// `world:anyone`, expands `auth` into the caller's authenticated ids (digest and x509 ids,
/// the providers whose `isAuthenticated` is true; an `auth` entry with none is invalid) and checks every other id with its scheme's provider. Any
/// problem is `InvalidAcl`.
pub fn fixup(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let mut uniq: Vec<&Acl> = Vec::with_capacity(acl.len());
    for a in acl {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::with_capacity(uniq.len());
    for a in uniq {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            out.push(a.clone());
        } else if a.id.scheme == "auth" {
            let mut any = false;
            for cid in auth {
                // Only providers that authenticate (digest, x509) count; `ip` does not and
                // `super` has no provider.
                if cid.scheme == "digest" || cid.scheme == "x509" {
                    any = true;
                    out.push(Acl {
                        perms: a.perms,
                        id: cid.clone(),
                    });
                }
            }
            if !any {
                return Err(ErrorCode::InvalidAcl);
            }
        } else if is_valid_id(&a.id) {
            out.push(a.clone());
        } else {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(out)
}

/// What `getACL` returns to a caller without ADMIN on the node: digest ids masked as
/// `user:x` (Java `replaceAll(":.*", ":x")`).
#[must_use]
pub fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                let user = a.id.id.split(':').next().unwrap_or("");
                let id = if a.id.id.contains(':') {
                    format!("{user}:x")
                } else {
                    a.id.id.clone()
                };
                Acl {
                    perms: a.perms,
                    id: Id {
                        scheme: a.id.scheme.clone(),
                        id,
                    },
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Whether `perm` is a subset of [`perms::ALL`].
#[must_use]
pub fn perms_valid(perm: i32) -> bool {
    perm & !perms::ALL == 0
}

/// `IPAuthenticationProvider.v4addr2Bytes` (3.8 has no IPv6 support).
fn v4(addr: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in addr.split('.') {
        let slot = out.get_mut(n)?;
        let v: i32 = part.parse().ok()?;
        *slot = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then_some(out)
}

fn split_cidr(expr: &str) -> Option<([u8; 4], u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => {
            let bits: i32 = b.parse().ok()?;
            if !(0..=32).contains(&bits) {
                return None;
            }
            (a, u32::try_from(bits).ok()?)
        }
        None => (expr, 32),
    };
    Some((v4(addr)?, bits))
}

fn ip_valid(expr: &str) -> bool {
    split_cidr(expr).is_some()
}

/// `IPAuthenticationProvider.matches`: `remote` against an address or CIDR.
#[must_use]
pub fn ip_matches(remote: &str, expr: &str) -> bool {
    let Some((acl_addr, bits)) = split_cidr(expr) else {
        return false;
    };
    let Some(remote) = v4(remote) else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from_be_bytes(acl_addr) & mask == u32::from_be_bytes(remote) & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ids;

    fn digest(id: &str) -> Id {
        Id::new("digest", id)
    }

    #[test]
    fn world_anyone_allows_and_empty_acl_allows() {
        assert_eq!(check(&ids::open_acl_unsafe(), perms::ADMIN, &[]), Ok(()));
        assert_eq!(check(&[], perms::ADMIN, &[]), Ok(()));
        assert_eq!(
            check(&ids::read_acl_unsafe(), perms::WRITE, &[]),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(check(&ids::read_acl_unsafe(), perms::READ, &[]), Ok(()));
    }

    #[test]
    fn digest_matches_exactly_and_super_bypasses() {
        let acl = vec![Acl::new(
            perms::ALL,
            "digest",
            "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=",
        )];
        let alice = [digest("alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=")];
        let bob = [digest("bob:xyz")];
        assert_eq!(check(&acl, perms::READ, &alice), Ok(()));
        assert_eq!(check(&acl, perms::READ, &bob), Err(ErrorCode::NoAuth));
        assert_eq!(check(&acl, perms::READ, &[Id::new("super", "")]), Ok(()));
        // The perm bit must be there.
        let ro = vec![Acl::new(perms::READ, "digest", "bob:xyz")];
        assert_eq!(check(&ro, perms::WRITE, &bob), Err(ErrorCode::NoAuth));
    }

    #[test]
    fn ip_acls_match_addresses_and_cidrs() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("10.1.2.3", "10.0.0.0/8"));
        assert!(!ip_matches("11.1.2.3", "10.0.0.0/8"));
        assert!(ip_matches("1.2.3.4", "0.0.0.0/0"));
        assert!(!ip_matches("::1", "127.0.0.1"));
        assert!(!ip_matches("1.2.3.4", "1.2.3.4/33"));
        let acl = vec![Acl::new(perms::READ, "ip", "127.0.0.0/24")];
        assert_eq!(
            check(&acl, perms::READ, &[Id::new("ip", "127.0.0.9")]),
            Ok(())
        );
    }

    #[test]
    fn fixup_expands_auth_and_rejects_invalid() {
        let alice = digest("alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
        let auth = vec![Id::new("ip", "127.0.0.1"), alice.clone()];
        assert_eq!(
            fixup(&ids::creator_all_acl(), &auth),
            Ok(vec![Acl {
                perms: perms::ALL,
                id: alice
            }])
        );
        // auth with no authenticated id: INVALIDACL.
        assert_eq!(
            fixup(&ids::creator_all_acl(), &[Id::new("ip", "127.0.0.1")]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(fixup(&[], &auth), Err(ErrorCode::InvalidAcl));
        for bad in [
            Acl::new(31, "world", "someone"),
            Acl::new(31, "digest", "nocolon"),
            Acl::new(31, "digest", "a:b:c"),
            Acl::new(31, "ip", "300.0.0.1"),
            Acl::new(31, "super", ""),
            Acl::new(31, "nosuch", "x"),
            Acl::new(31, "", ""),
        ] {
            assert_eq!(
                fixup(std::slice::from_ref(&bad), &auth),
                Err(ErrorCode::InvalidAcl),
                "{bad:?}"
            );
        }
        // duplicates removed, order kept
        let dup = vec![
            Acl::new(1, "ip", "10.0.0.1"),
            Acl::new(31, "world", "anyone"),
            Acl::new(1, "ip", "10.0.0.1"),
        ];
        assert_eq!(fixup(&dup, &[]).map(|v| v.len()), Ok(2));
    }

    #[test]
    fn x509_ids_match_exactly_expand_auth_and_are_validated() {
        let dn = "CN=client,O=Example,C=US";
        let acl = vec![Acl::new(perms::READ, "x509", dn)];
        let me = [Id::new("ip", "127.0.0.1"), Id::new("x509", dn)];
        assert_eq!(check(&acl, perms::READ, &me), Ok(()));
        assert_eq!(check(&acl, perms::WRITE, &me), Err(ErrorCode::NoAuth));
        let other = [Id::new("x509", "CN=client,O=Example")];
        assert_eq!(check(&acl, perms::READ, &other), Err(ErrorCode::NoAuth));
        // The same string under another scheme does not match.
        assert_eq!(
            check(&acl, perms::READ, &[Id::new("digest", dn)]),
            Err(ErrorCode::NoAuth)
        );
        // `auth` expands to the certificate's id (X509AuthenticationProvider.isAuthenticated).
        assert_eq!(
            fixup(&ids::creator_all_acl(), &me),
            Ok(vec![Acl::new(perms::ALL, "x509", dn)])
        );
        assert_eq!(fixup(&acl, &[]), Ok(acl.clone()));
        assert_eq!(
            fixup(&[Acl::new(31, "x509", "not a dn")], &[]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn get_acl_masks_digests() {
        let acl = vec![
            Acl::new(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
            Acl::new(1, "world", "anyone"),
        ];
        assert_eq!(
            mask_digests(&acl),
            vec![
                Acl::new(31, "digest", "alice:x"),
                Acl::new(1, "world", "anyone")
            ]
        );
    }
}
