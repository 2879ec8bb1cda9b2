//! The leader's session tracker: when each session was last heard of, through which server,
//! and which ones expired (ZooKeeper `SessionTrackerImpl`, with tick-granular expiry).

use std::collections::BTreeMap;
use zab_spec::{ServerId, SessionId};

#[derive(Clone, Debug)]
struct Tracked {
    timeout_ms: i64,
    last_seen_ms: i64,
    owner: Option<ServerId>,
    expiring: bool,
}

/// Sessions the leader tracks.
#[derive(Debug, Default)]
pub struct SessionTracker {
    sessions: BTreeMap<SessionId, Tracked>,
}

impl SessionTracker {
    /// Starts tracking every open session as just heard of (a new leader gives every session
    /// a full timeout, as ZooKeeper does).
    pub fn reset(&mut self, open: impl IntoIterator<Item = (SessionId, i32)>, now_ms: i64) {
        self.sessions = open
            .into_iter()
            .map(|(s, t)| {
                (
                    s,
                    Tracked {
                        timeout_ms: i64::from(t),
                        last_seen_ms: now_ms,
                        owner: None,
                        expiring: false,
                    },
                )
            })
            .collect();
    }

    /// Stops tracking everything (no longer leading).
    pub fn clear(&mut self) {
        self.sessions.clear();
    }

    /// A session was created (committed).
    pub fn add(
        &mut self,
        session: SessionId,
        timeout_ms: i32,
        owner: Option<ServerId>,
        now_ms: i64,
    ) {
        let owner = owner.or_else(|| self.sessions.get(&session).and_then(|t| t.owner));
        self.sessions.insert(
            session,
            Tracked {
                timeout_ms: i64::from(timeout_ms),
                last_seen_ms: now_ms,
                owner,
                expiring: false,
            },
        );
    }

    /// A session was closed (committed).
    pub fn remove(&mut self, session: SessionId) {
        self.sessions.remove(&session);
    }

    /// A session was heard of through `via`, which now owns it.
    pub fn touch(&mut self, session: SessionId, via: ServerId, now_ms: i64) {
        if let Some(t) = self.sessions.get_mut(&session) {
            t.last_seen_ms = now_ms;
            t.owner = Some(via);
        }
    }

    /// The server that owns a session (the last one it was heard through).
    #[must_use]
    pub fn owner(&self, session: SessionId) -> Option<ServerId> {
        self.sessions.get(&session).and_then(|t| t.owner)
    }

    /// Remembers the owner of a session about to be created.
    pub fn pre_own(&mut self, session: SessionId, owner: ServerId, timeout_ms: i32, now_ms: i64) {
        self.sessions.entry(session).or_insert(Tracked {
            timeout_ms: i64::from(timeout_ms),
            last_seen_ms: now_ms,
            owner: Some(owner),
            expiring: false,
        });
    }

    /// Sessions whose timeout elapsed, rounded up to the tick like ZooKeeper's expiry queue;
    /// each is returned once (it is then marked as expiring until its close commits).
    pub fn expire(&mut self, now_ms: i64, tick_ms: i64) -> Vec<SessionId> {
        let tick = tick_ms.max(1);
        let mut out = Vec::new();
        for (s, t) in &mut self.sessions {
            let deadline = (t.last_seen_ms + t.timeout_ms + tick - 1) / tick * tick;
            if !t.expiring && now_ms > deadline {
                t.expiring = true;
                out.push(*s);
            }
        }
        out
    }

    /// Each tracked session's expiry deadline (ms, rounded up to the tick like ZooKeeper's
    /// expiry queue), grouped by deadline (the AdminServer's `dump`).
    #[must_use]
    pub fn deadlines(&self, tick_ms: i64) -> BTreeMap<i64, Vec<SessionId>> {
        let tick = tick_ms.max(1);
        let mut out: BTreeMap<i64, Vec<SessionId>> = BTreeMap::new();
        for (s, t) in &self.sessions {
            let deadline = (t.last_seen_ms + t.timeout_ms + tick - 1) / tick * tick;
            out.entry(deadline).or_default().push(*s);
        }
        out
    }

    /// Number of sessions tracked.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether nothing is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_once_after_their_timeout_rounded_to_the_tick() {
        let mut t = SessionTracker::default();
        t.add(SessionId(1), 4000, Some(ServerId(2)), 0);
        t.add(SessionId(2), 10_000, None, 0);
        assert!(t.expire(4000, 2000).is_empty());
        assert_eq!(t.expire(4001, 2000), vec![SessionId(1)]);
        assert!(t.expire(5000, 2000).is_empty(), "reported once");
        t.touch(SessionId(2), ServerId(3), 9000);
        assert!(t.expire(12_000, 2000).is_empty());
        assert_eq!(t.owner(SessionId(2)), Some(ServerId(3)));
        assert_eq!(t.expire(20_001, 2000), vec![SessionId(2)]);
    }
}
