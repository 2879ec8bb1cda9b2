//! Stage 5 of the chain, final apply and reply: every server applies every committed
//! transaction to its tree in zxid order, and the server the client is connected to answers
//! the write (ZooKeeper's `FinalRequestProcessor` with `ZKDatabase.processTxn`); it also
//! holds the `/zookeeper/config` node and the snapshots of the tree.

use super::ConnId;
use super::connections::Connections;
use super::queue::WriteAnswer;
use bytes::Bytes;
use zab_spec::{ErrorCode, Txn, Zxid};
use zab_zk::tree::TxnResult;
use zab_zk::{ApplyOutcome, DataTree, WatchManager, reply};

/// The replicated tree and the zxid it is at.
pub(super) struct FinalApply {
    pub(super) tree: DataTree,
    pub(super) applied: Zxid,
}

impl FinalApply {
    /// The recovered tree (the snapshot's state, at `applied`), with its config node set.
    pub(super) fn new(
        mut tree: DataTree,
        applied: Zxid,
        cfg: &crate::config::ServerConfig,
        now_ms: i64,
    ) -> FinalApply {
        set_config_node(&mut tree, cfg, now_ms);
        FinalApply { tree, applied }
    }

    /// Applies the next committed transaction.
    pub(super) fn apply(&mut self, txn: &Txn<zab_zk::Txn>) -> ApplyOutcome {
        let out = self.tree.apply(&txn.payload, txn.zxid);
        self.applied = txn.zxid;
        out
    }

    /// Answers the write `cxid` of `conn` if it heads the connection's queue; a write whose
    /// session moved closes the connection instead, as ZooKeeper does.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn answer_write(
        conns: &mut Connections,
        watches: &mut WatchManager,
        conn: ConnId,
        cxid: i32,
        zxid: Zxid,
        result: &TxnResult,
        now_ms: i64,
    ) {
        let Some(c) = conns.get_mut(conn) else {
            return;
        };
        let (now, later) = match c.queue.pop_write(cxid) {
            Some(start) => (Some(start), None),
            None => (None, c.queue.queued_write(cxid)),
        };
        let (err, body) = reply::write_reply(result);
        if (now.is_some() || later.is_some()) && err == ErrorCode::SessionMoved {
            // ZooKeeper closes a connection whose session moved, without replying.
            conns.close(conn, watches);
            return;
        }
        if let Some(start_ms) = later {
            // Requests before it are held back (backpressure): answered in order, by drain.
            c.queue.defer_answer(WriteAnswer {
                xid: cxid,
                zxid: zxid.to_u64() as i64,
                err,
                body,
                start_ms,
            });
            return;
        }
        let Some(start_ms) = now else {
            return;
        };
        conns.reply(
            conn,
            cxid,
            zxid.to_u64() as i64,
            err,
            body,
            (start_ms, now_ms),
        );
        conns.traffic.update_answered((start_ms, now_ms));
    }

    /// A function serializing the tree as of now (it may run on another thread). The
    /// capture is O(1) in the nodes (the persistent tree shares them), so the replica thread
    /// does no O(data) work for a snapshot; the serialization is in the returned function.
    pub(super) fn snapshot_job(&self) -> Box<dyn FnOnce() -> Bytes + Send> {
        let snapshot = self.tree.capture();
        Box::new(move || Bytes::from(snapshot.serialize()))
    }

    /// Replaces the tree by one rebuilt from a snapshot (SNAP from the leader).
    pub(super) fn restore(
        &mut self,
        zxid: Zxid,
        mut tree: DataTree,
        cfg: &crate::config::ServerConfig,
        started_ms: i64,
    ) {
        set_config_node(&mut tree, cfg, started_ms);
        self.tree = tree;
        self.applied = zxid;
    }
}

/// Keeps the `/zookeeper/config` node like ZooKeeper: the ensemble's membership, set locally.
/// A standalone server (no ensemble, or a single member: ZooKeeper then runs
/// `ZooKeeperServerMain`) leaves the node as the tree created it — empty data, version 0
/// (found by the differential test).
fn set_config_node(tree: &mut DataTree, cfg: &crate::config::ServerConfig, now_ms: i64) {
    if cfg.members.len() <= 1 {
        return;
    }
    // ZooKeeper's `/zookeeper/config` carries the configuration's version as its mzxid.
    let version = i64::try_from(cfg.config_version).unwrap_or(i64::MAX);
    tree.set_config(Bytes::from(cfg.membership_text()), version, now_ms);
}
