//! Stage 6 of the chain, expiry and containers: the leader tracks every session's activity
//! (followers report theirs each tick) and closes the expired ones, and it deletes empty
//! containers and expired TTL nodes (ZooKeeper's `SessionTrackerImpl`, `LearnerSessionTracker`
//! and `ContainerManager`).

use super::frames::ServiceFrame;
use super::prep::LeaderPrep;
use super::sessions::SessionTracker;
use crate::runtime::AppCx;
use std::collections::BTreeSet;
use tracing::info;
use zab_spec::{ServerId, SessionId};
use zab_zk::proto::Request;
use zab_zk::txn::TxnBody;
use zab_zk::{DataTree, PrepContext};

/// Session activity and container deletion.
pub(super) struct Expiry {
    /// The leader's view of every session (empty on a follower).
    pub(super) tracker: SessionTracker,
    /// A follower's sessions heard of since its last report to the leader.
    touched: BTreeSet<SessionId>,
    /// Containers whose deletion is proposed and not applied yet.
    containers_pending: BTreeSet<String>,
    last_container_check: i64,
    container_check_ms: i64,
    tick_ms: i64,
}

impl Expiry {
    pub(super) fn new(container_check_ms: i64, tick_ms: i64, now_ms: i64) -> Expiry {
        Expiry {
            tracker: SessionTracker::default(),
            touched: BTreeSet::new(),
            containers_pending: BTreeSet::new(),
            last_container_check: now_ms,
            container_check_ms,
            tick_ms,
        }
    }

    /// A session was heard of here: the leader tracks it, a follower reports it.
    pub(super) fn touch(&mut self, session: SessionId, leading: bool, me: ServerId, now_ms: i64) {
        if leading {
            self.tracker.touch(session, me, now_ms);
        } else {
            self.touched.insert(session);
        }
    }

    /// This server starts leading: it tracks every open session from now.
    pub(super) fn start_leading(&mut self, tree: &DataTree, now_ms: i64) {
        let open: Vec<(SessionId, i32)> = tree.sessions().iter().map(|(s, t)| (*s, *t)).collect();
        self.tracker.reset(open, now_ms);
        self.containers_pending.clear();
    }

    /// This server does not lead: it tracks nothing.
    pub(super) fn not_leading(&mut self) {
        self.tracker.clear();
    }

    /// The leader applied `body` of `session`.
    pub(super) fn committed(&mut self, session: SessionId, body: &TxnBody, now_ms: i64) {
        match body {
            TxnBody::CreateSession { timeout, .. } => {
                self.tracker.add(session, *timeout, None, now_ms)
            }
            TxnBody::CloseSession { .. } => self.tracker.remove(session),
            TxnBody::DeleteContainer { path } => {
                self.containers_pending.remove(path);
            }
            _ => {}
        }
    }

    /// The leader's tick: closes expired sessions, deletes empty containers.
    pub(super) fn leader_tick(
        &mut self,
        tree: &DataTree,
        prep: &mut LeaderPrep,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let now = cx.now_ms;
        for session in self.tracker.expire(now, self.tick_ms) {
            let Ok(zxid) = cx.next_zxid() else { return };
            info!(session = %session, "session expired");
            prep.prep_and_propose(tree, &ctx(session, now), zxid, &Request::CloseSession, cx);
        }
        if now - self.last_container_check >= self.container_check_ms {
            self.last_container_check = now;
            for path in tree.expired_containers(now, 0) {
                if !self.containers_pending.insert(path.clone()) {
                    continue;
                }
                let Ok(zxid) = cx.next_zxid() else { return };
                let request = Request::DeleteContainer { path };
                prep.prep_and_propose(tree, &ctx(SessionId(0), now), zxid, &request, cx);
            }
        }
    }

    /// A follower's tick: reports the sessions heard of since the last one to the leader.
    pub(super) fn follower_tick(
        &mut self,
        leader: Option<ServerId>,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        if self.touched.is_empty() {
            return;
        }
        if let Some(l) = leader {
            let sessions: Vec<SessionId> = std::mem::take(&mut self.touched).into_iter().collect();
            // In frames of at most TOUCH_BATCH sessions (512 KiB), well inside what a leader
            // accepts from a learner (`wire::FrameLimits::from_learner`).
            for batch in sessions.chunks(TOUCH_BATCH) {
                let (kind, data) = ServiceFrame::Touch {
                    sessions: batch.to_vec(),
                }
                .encode();
                cx.send_frame(l, kind, data);
            }
        }
    }
}

/// The most sessions one `Touch` frame reports.
const TOUCH_BATCH: usize = 65_536;

/// The context of a transaction the server itself issues.
fn ctx(session: SessionId, now: i64) -> PrepContext<'static> {
    PrepContext {
        session,
        cxid: 0,
        time: now,
        auth: &[],
        session_moved: false,
    }
}

#[cfg(test)]
mod touch_tests {
    use super::*;
    use bytes::BytesMut;

    /// A full batch of session touches fits what a leader accepts from a learner at the default
    /// `jute.maxbuffer`, so a follower with many sessions is never cut off for reporting them.
    #[test]
    fn a_full_touch_batch_fits_the_learner_frame_limit() {
        let sessions = (0..TOUCH_BATCH as i64).map(SessionId).collect();
        let (kind, data) = ServiceFrame::Touch { sessions }.encode();
        let mut buf = BytesMut::new();
        crate::wire::encode_frame::<zab_zk::Txn>(&crate::wire::Frame::App(kind, data), &mut buf);
        let limits = crate::wire::FrameLimits::from_learner(zab_zk::jute::DEFAULT_MAX_BUFFER);
        let frame = crate::wire::take_frame(&mut buf, &limits).expect("within the limit");
        assert!(frame.is_some());
    }
}
