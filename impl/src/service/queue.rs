//! Stage 2 of the chain, the per-session queue: a session's requests are answered in the
//! order they were sent, so a read waits behind the session's writes in flight and a `sync`
//! behind the leader's barrier (ZooKeeper's `CommitProcessor`, which holds a session's reads
//! behind its pending writes).

use std::collections::VecDeque;
use zab_spec::{ErrorCode, Zxid};
use zab_zk::proto::{Request, Response};

/// A write's answer, ready once its transaction is applied.
#[derive(Debug)]
pub(super) struct WriteAnswer {
    pub(super) xid: i32,
    pub(super) zxid: i64,
    pub(super) err: ErrorCode,
    pub(super) body: Option<Response>,
    pub(super) start_ms: i64,
}

/// A request of the session, waiting for its answer.
#[derive(Debug)]
enum Waiting {
    /// A write in flight (forwarded or proposed).
    Write { xid: i32, start_ms: i64 },
    /// A write applied while requests before it were still held back (backpressure: the
    /// connection's replies past the soft limit); answered when it reaches the head.
    Answered(WriteAnswer),
    /// A sync barrier: answered once `target` (from the leader) is delivered here.
    Sync {
        xid: i32,
        path: String,
        target: Option<Zxid>,
        start_ms: i64,
    },
    /// A read or local request waiting behind earlier writes.
    Local {
        xid: i32,
        request: Result<Request, ErrorCode>,
        start_ms: i64,
    },
}

/// A request at the head of the queue that can be answered now.
#[derive(Debug)]
pub(super) enum Ready {
    /// A read or local request, for stage 4.
    Local {
        xid: i32,
        request: Result<Request, ErrorCode>,
        start_ms: i64,
    },
    /// A `sync` whose barrier is delivered here.
    Sync {
        xid: i32,
        path: String,
        start_ms: i64,
    },
    /// A write answered while it waited behind held-back requests.
    Answered(WriteAnswer),
}

/// One session's requests in flight, in the order they were sent.
#[derive(Debug, Default)]
pub(super) struct SessionQueue {
    waiting: VecDeque<Waiting>,
}

impl SessionQueue {
    /// Requests waiting (`cons`'s and `stat`'s `queued`).
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// A write went to the leader.
    pub(super) fn push_write(&mut self, xid: i32, start_ms: i64) {
        self.waiting.push_back(Waiting::Write { xid, start_ms });
    }

    /// A `sync` went to the leader; its barrier is not known yet.
    pub(super) fn push_sync(&mut self, xid: i32, path: String, start_ms: i64) {
        self.waiting.push_back(Waiting::Sync {
            xid,
            path,
            target: None,
            start_ms,
        });
    }

    /// A read or local request.
    pub(super) fn push_local(
        &mut self,
        xid: i32,
        request: Result<Request, ErrorCode>,
        start_ms: i64,
    ) {
        self.waiting.push_back(Waiting::Local {
            xid,
            request,
            start_ms,
        });
    }

    /// The leader's barrier for the `sync` with `xid`: the first such sync without one.
    pub(super) fn set_sync_target(&mut self, xid: i32, zxid: Zxid) {
        for w in &mut self.waiting {
            if let Waiting::Sync { xid: x, target, .. } = w {
                if *x == xid && target.is_none() {
                    *target = Some(zxid);
                    break;
                }
            }
        }
    }

    /// Whether the head is a `sync` whose barrier `zxid` satisfies.
    pub(super) fn sync_ready(&self, zxid: Zxid) -> bool {
        matches!(self.waiting.front(), Some(Waiting::Sync { target: Some(t), .. }) if *t <= zxid)
    }

    /// Takes the head if it can be answered now, `applied` being the state's zxid.
    pub(super) fn pop_ready(&mut self, applied: Zxid) -> Option<Ready> {
        match self.waiting.front()? {
            Waiting::Answered(_) => match self.waiting.pop_front() {
                Some(Waiting::Answered(a)) => Some(Ready::Answered(a)),
                _ => None,
            },
            Waiting::Local { .. } => match self.waiting.pop_front() {
                Some(Waiting::Local {
                    xid,
                    request,
                    start_ms,
                }) => Some(Ready::Local {
                    xid,
                    request,
                    start_ms,
                }),
                _ => None,
            },
            Waiting::Sync {
                target: Some(t), ..
            } if *t <= applied => match self.waiting.pop_front() {
                Some(Waiting::Sync {
                    xid,
                    path,
                    start_ms,
                    ..
                }) => Some(Ready::Sync {
                    xid,
                    path,
                    start_ms,
                }),
                _ => None,
            },
            _ => None,
        }
    }

    /// Takes the head if it is the write `cxid` (its transaction was applied); returns when
    /// it started.
    pub(super) fn pop_write(&mut self, cxid: i32) -> Option<i64> {
        let matches =
            matches!(self.waiting.front(), Some(Waiting::Write { xid, .. }) if *xid == cxid);
        if !matches {
            return None;
        }
        match self.waiting.pop_front() {
            Some(Waiting::Write { start_ms, .. }) => Some(start_ms),
            _ => None,
        }
    }

    /// When the write `cxid` started, if it waits behind other requests (not at the head).
    pub(super) fn queued_write(&self, cxid: i32) -> Option<i64> {
        self.waiting.iter().skip(1).find_map(|w| match w {
            Waiting::Write { xid, start_ms } if *xid == cxid => Some(*start_ms),
            _ => None,
        })
    }

    /// Stores the answer of a write that waits behind other requests, to be sent in order.
    pub(super) fn defer_answer(&mut self, answer: WriteAnswer) {
        let slot = self
            .waiting
            .iter_mut()
            .find(|w| matches!(w, Waiting::Write { xid, .. } if *xid == answer.xid));
        if let Some(w) = slot {
            *w = Waiting::Answered(answer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_waits_behind_a_write_and_a_sync_behind_its_barrier() {
        let mut q = SessionQueue::default();
        q.push_write(1, 0);
        q.push_local(2, Ok(Request::Ping), 0);
        q.push_sync(3, "/".into(), 0);
        assert!(q.pop_ready(Zxid::from_u64(9)).is_none(), "the write heads");
        assert_eq!(
            q.pop_write(7),
            None,
            "another write's answer does not pop it"
        );
        assert_eq!(q.pop_write(1), Some(0));
        assert!(matches!(
            q.pop_ready(Zxid::ZERO),
            Some(Ready::Local { xid: 2, .. })
        ));
        assert!(q.pop_ready(Zxid::from_u64(9)).is_none(), "no barrier yet");
        q.set_sync_target(3, Zxid::from_u64(5));
        assert!(!q.sync_ready(Zxid::from_u64(4)));
        assert!(q.sync_ready(Zxid::from_u64(5)));
        assert!(q.pop_ready(Zxid::from_u64(4)).is_none());
        assert!(matches!(
            q.pop_ready(Zxid::from_u64(5)),
            Some(Ready::Sync { xid: 3, .. })
        ));
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_write_answered_behind_a_held_read_keeps_its_place() {
        let mut q = SessionQueue::default();
        q.push_local(1, Ok(Request::Ping), 0);
        q.push_write(2, 0);
        assert_eq!(q.pop_write(2), None, "the read heads");
        assert_eq!(q.queued_write(2), Some(0));
        q.defer_answer(WriteAnswer {
            xid: 2,
            zxid: 7,
            err: ErrorCode::Ok,
            body: None,
            start_ms: 0,
        });
        assert!(matches!(
            q.pop_ready(Zxid::ZERO),
            Some(Ready::Local { xid: 1, .. })
        ));
        assert!(matches!(
            q.pop_ready(Zxid::ZERO),
            Some(Ready::Answered(WriteAnswer {
                xid: 2,
                zxid: 7,
                ..
            }))
        ));
        assert_eq!(q.len(), 0);
    }
}
