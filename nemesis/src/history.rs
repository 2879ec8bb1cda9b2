//! The run's history: every client operation logged (JSON lines) before it is sent and when it
//! completes, kept in memory for the checkers.

use crate::check::linear::{RegCall, RegOp, RegRet};
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

/// What an operation asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Call {
    /// An operation of the register workload.
    Reg(RegCall),
    /// A unique create of the set workload (the child name under `/set`).
    Add(String),
    /// An ephemeral node created by a session.
    EphCreate(String),
    /// A session checks (`sync` then `exists`) that its own ephemeral node is there.
    EphCheck(String),
    /// A write through one chosen server after heal (serving check).
    Probe(u64),
}

impl Call {
    /// Whether an acknowledgement of this call is an acknowledged write.
    #[must_use]
    pub fn is_write(&self) -> bool {
        match self {
            Call::Reg(c) => !matches!(c, RegCall::Read),
            Call::Add(_) | Call::EphCreate(_) => true,
            Call::EphCheck(_) | Call::Probe(_) => false,
        }
    }
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Status {
    /// Acknowledged: it happened.
    Ok,
    /// A definite failure: it did not happen (`BadVersion`, `NodeExists`, `NoNode`).
    Fail,
    /// Unknown (timeout, connection loss, session expiry): it may or may not have happened.
    Info,
}

/// The reply, when there was one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Reply {
    /// A register reply.
    Reg(RegRet),
    /// Success of a non-register call.
    Done,
    /// `exists` said the node is absent.
    Absent,
    /// A definite error code.
    Error(String),
}

/// One operation.
#[derive(Clone, Debug, Serialize)]
pub struct Op {
    /// Its id (index in the history).
    pub id: u64,
    /// The client (worker) that sent it.
    pub client: String,
    /// The path it is about.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// µs since the run started, before sending.
    pub invoked: u64,
    /// µs since the run started at completion; status; reply or error text.
    pub done: Option<(u64, Status, Option<Reply>, String)>,
}

#[derive(Serialize)]
struct Line<'a> {
    t_us: u64,
    event: &'static str,
    op: &'a Op,
}

/// The shared history of a run.
pub struct History {
    start: Instant,
    file: Mutex<BufWriter<File>>,
    ops: Mutex<Vec<Op>>,
}

impl History {
    /// A history written to `path` (JSON lines).
    pub fn create(path: &Path, start: Instant) -> anyhow::Result<History> {
        Ok(History {
            start,
            file: Mutex::new(BufWriter::new(File::create(path)?)),
            ops: Mutex::new(Vec::new()),
        })
    }

    /// µs since the run started.
    #[must_use]
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn log(&self, event: &'static str, op: &Op) {
        let line = Line {
            t_us: self.now_us(),
            event,
            op,
        };
        if let (Ok(mut f), Ok(text)) = (self.file.lock(), serde_json::to_string(&line)) {
            let _ = writeln!(f, "{text}");
        }
    }

    /// Logs an invocation; returns its id.
    pub fn invoke(&self, client: &str, key: &str, call: Call) -> u64 {
        let mut ops = self
            .ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let op = Op {
            id: ops.len() as u64,
            client: client.to_string(),
            key: key.to_string(),
            call,
            invoked: self.now_us(),
            done: None,
        };
        self.log("invoke", &op);
        ops.push(op);
        ops.len() as u64 - 1
    }

    /// Logs a completion.
    pub fn complete(&self, id: u64, status: Status, reply: Option<Reply>, text: String) {
        let mut ops = self
            .ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.now_us();
        if let Some(op) = ops.get_mut(id as usize) {
            op.done = Some((now, status, reply, text));
            let op = op.clone();
            drop(ops);
            self.log("complete", &op);
        }
    }

    /// A copy of every operation so far.
    #[must_use]
    pub fn ops(&self) -> Vec<Op> {
        self.ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Flushes the file.
    pub fn flush(&self) {
        if let Ok(mut f) = self.file.lock() {
            let _ = f.flush();
        }
    }

    /// Completion time (µs) of the first acknowledged write invoked at or after `t_us`.
    #[must_use]
    pub fn first_ack_after(&self, t_us: u64) -> Option<u64> {
        self.ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|o| o.invoked >= t_us && o.call.is_write())
            .filter_map(|o| match &o.done {
                Some((t, Status::Ok, ..)) => Some(*t),
                _ => None,
            })
            .min()
    }
}

/// The register operations of a history, for the linearizability checker.
#[must_use]
pub fn register_ops(ops: &[Op]) -> Vec<RegOp> {
    ops.iter()
        .filter_map(|o| {
            let Call::Reg(call) = o.call else {
                return None;
            };
            let ret = match &o.done {
                Some((t, Status::Ok | Status::Fail, Some(Reply::Reg(r)), _)) => Some((*t, *r)),
                _ => None,
            };
            Some(RegOp {
                id: o.id,
                key: o.key.clone(),
                call,
                invoked: o.invoked,
                ret,
            })
        })
        .collect()
}
