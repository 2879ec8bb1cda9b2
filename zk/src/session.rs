//! Session helpers for the handshake (wire doc §6.1): timeout negotiation, ZooKeeper's
//! session id layout, and session passwords every server can check without shared state.

use sha1::{Digest as _, Sha1};
use zab_spec::SessionId;

/// `ZooKeeperServer.processConnectRequest`: the requested timeout clamped to
/// `[min, max]` (defaults `2*tickTime`, `20*tickTime`; verified 100000 → 40000, 1000 → 4000
/// with tickTime 2000).
#[must_use]
pub fn negotiate_timeout(requested: i32, min: i32, max: i32) -> i32 {
    if requested < min {
        min
    } else if requested > max {
        max
    } else {
        requested
    }
}

/// `SessionTrackerImpl.initializeNextSessionId`: `((now_ms << 24) >>> 8) | (server_id << 56)`,
/// never the container marker. Later sessions of the server are this plus 1, 2, ...
#[must_use]
pub fn initial_session_id(server_id: u8, now_ms: i64) -> SessionId {
    let mut sid = (((now_ms as u64) << 24) >> 8) as i64 | (i64::from(server_id) << 56);
    if sid == i64::MIN {
        sid += 1;
    }
    SessionId(sid)
}

/// The password ZooKeeper gives a session: 16 bytes of `new java.util.Random(sessionId ^
/// 0xB3415C00L).nextBytes()`. Deterministic per session (any server can check it) but
/// guessable; prefer [`keyed_password`] when compatibility with ZooKeeper's passwords is not
/// needed.
#[must_use]
pub fn zookeeper_password(session: SessionId) -> [u8; 16] {
    const MULT: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;
    let mut seed = (session.0 ^ 0xB341_5C00) ^ MULT;
    seed &= MASK;
    let mut out = [0u8; 16];
    for chunk in out.chunks_mut(4) {
        seed = seed.wrapping_mul(MULT).wrapping_add(0xB) & MASK;
        let mut rnd = (seed >> 16) as i32;
        for b in chunk {
            *b = rnd as u8;
            rnd >>= 8;
        }
    }
    out
}

/// A password derived from the session id and a secret shared by the ensemble:
/// the first 16 bytes of `SHA-1(secret || session id)`.
#[must_use]
pub fn keyed_password(session: SessionId, secret: &[u8]) -> [u8; 16] {
    let mut h = Sha1::new();
    h.update(secret);
    h.update(session.0.to_be_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 16];
    for (o, d) in out.iter_mut().zip(digest.iter()) {
        *o = *d;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_clamped() {
        assert_eq!(negotiate_timeout(100_000, 4000, 40000), 40000);
        assert_eq!(negotiate_timeout(1000, 4000, 40000), 4000);
        assert_eq!(negotiate_timeout(30000, 4000, 40000), 30000);
    }

    #[test]
    fn session_ids_carry_the_server_id_in_the_top_byte() {
        let s = initial_session_id(1, 0x0014_f448);
        assert_eq!(s.0 >> 56, 1);
        // verified shape: 0x01000014f4480003 is server 1's third session.
        assert_eq!(s.0, 0x0100_0014_f448_0000);
        assert_ne!(initial_session_id(0x80, 0).0, i64::MIN);
    }

    #[test]
    fn passwords_are_deterministic_per_session() {
        let a = zookeeper_password(SessionId(0x0100_0014_f448_0003));
        assert_eq!(a, zookeeper_password(SessionId(0x0100_0014_f448_0003)));
        assert_ne!(a, zookeeper_password(SessionId(0x0100_0014_f448_0004)));
        assert_ne!(
            keyed_password(SessionId(1), b"k1"),
            keyed_password(SessionId(1), b"k2")
        );
    }

    #[test]
    fn java_random_matches_a_known_sequence() {
        // new java.util.Random(0).nextInt() == -1155484576 (0xbb20b460), so with seed
        // sessionId ^ 0xB3415C00 == 0 the first four bytes are 60 b4 20 bb (little end first).
        let p = zookeeper_password(SessionId(0xB341_5C00));
        assert_eq!(&p[..4], &[0x60, 0xb4, 0x20, 0xbb]);
    }
}
