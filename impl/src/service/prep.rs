//! Stage 3 of the chain, prep on the leader: a write (forwarded by the server its client is
//! connected to, or the leader's own) is prepared into a transaction against the leader's
//! speculative view of the tree and proposed through Zab (ZooKeeper's `PrepRequestProcessor`,
//! with `ProposalRequestProcessor` handing the result to the `Leader`).

use super::sessions::SessionTracker;
use crate::runtime::AppCx;
use bytes::Bytes;
use tracing::warn;
use zab_spec::{ServerId, SessionId, Zxid};
use zab_zk::proto::{self, Id, Request};
use zab_zk::{DataTree, PrepConfig, PrepContext, Preparer};

/// The leader's request preparation.
pub(super) struct LeaderPrep {
    prep: Preparer,
    /// Size of the last, smallest and largest proposal, bytes.
    pub(super) proposal_sizes: (i64, i64, i64),
}

impl LeaderPrep {
    pub(super) fn new(cfg: PrepConfig) -> LeaderPrep {
        LeaderPrep {
            prep: Preparer::new(cfg),
            proposal_sizes: (0, 0, 0),
        }
    }

    /// This server starts leading: nothing is outstanding.
    pub(super) fn reset(&mut self) {
        self.prep.reset();
    }

    /// `zxid` was committed and applied: the speculative view catches up.
    pub(super) fn committed(&mut self, zxid: Zxid) {
        self.prep.committed(zxid);
    }

    /// Proposes a prepared transaction through Zab.
    fn propose(&mut self, txn: zab_zk::Txn, cx: &mut AppCx<'_, zab_zk::Txn>) {
        let size = crate::wire::encoded_len(&txn) as i64;
        let p = &mut self.proposal_sizes;
        *p = (
            size,
            if p.1 == 0 { size } else { p.1.min(size) },
            p.2.max(size),
        );
        if cx.propose(txn).is_none() {
            warn!("proposal refused: not an established leader");
        }
    }

    /// Prepares `request` in `ctx` and proposes it (a request that needs no transaction is
    /// dropped by the preparer).
    pub(super) fn prep_and_propose(
        &mut self,
        tree: &DataTree,
        ctx: &PrepContext<'_>,
        zxid: Zxid,
        request: &Request,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        if let Some(txn) = self.prep.prep(tree, ctx, zxid, request) {
            self.propose(txn, cx);
        }
    }

    /// A client write, forwarded by `from` (this server included) as the client sent it.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward(
        &mut self,
        from: ServerId,
        (session, auth, payload): (SessionId, &[Id], &Bytes),
        tree: &DataTree,
        tracker: &mut SessionTracker,
        max_frame: usize,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let now = cx.now_ms;
        tracker.touch(session, from, now);
        let moved = tracker.owner(session).is_some_and(|o| o != from);
        let Ok(zxid) = cx.next_zxid() else { return };
        let Ok((header, body)) = proto::decode_request(payload, max_frame) else {
            warn!(%from, "dropping an undecodable forwarded request");
            return;
        };
        let ctx = PrepContext {
            session,
            cxid: header.xid,
            time: now,
            auth,
            session_moved: moved,
        };
        let txn = match body {
            Ok(req) => self.prep.prep(tree, &ctx, zxid, &req),
            Err(e) => Some(Preparer::error_txn(&ctx, e.code())),
        };
        if let Some(txn) = txn {
            self.propose(txn, cx);
        }
    }

    /// A new session, asked for by `from`.
    pub(super) fn create_session(
        &mut self,
        from: ServerId,
        (session, timeout, passwd): (SessionId, i32, [u8; 16]),
        tracker: &mut SessionTracker,
        cx: &mut AppCx<'_, zab_zk::Txn>,
    ) {
        let now = cx.now_ms;
        let Ok(zxid) = cx.next_zxid() else { return };
        tracker.pre_own(session, from, timeout, now);
        let txn = self
            .prep
            .create_session(session, (timeout, passwd), now, zxid);
        self.propose(txn, cx);
    }
}
