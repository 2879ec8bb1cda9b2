//! Reading the trace files `zabd --trace-file` writes (one JSON object per line, see
//! `zab_server::server::trace_json`) and merging the files of several servers into one trace.
//!
//! Servers on one machine share its clock, and a server records a step before it sends what
//! the step produced, so ordering the records of all files by time puts every send before its
//! receipt.

use base64::Engine as _;
use std::path::Path;
use zab_server::core::{Summary, TraceEvent};
use zab_spec::{ActionKind, Epoch, ServerId, ServerState, ZabState, Zxid};
use zab_zk::txn::Txn;

fn zxid(v: &serde_json::Value) -> Result<Zxid, String> {
    let s = v.as_str().ok_or("a zxid must be a string")?;
    let hex = s
        .strip_prefix("0x")
        .ok_or_else(|| format!("bad zxid {s}"))?;
    u64::from_str_radix(hex, 16)
        .map(Zxid::from_u64)
        .map_err(|e| format!("bad zxid {s}: {e}"))
}

fn state(s: &str) -> Result<ServerState, String> {
    match s {
        "Looking" => Ok(ServerState::Looking),
        "Following" => Ok(ServerState::Following),
        "Leading" => Ok(ServerState::Leading),
        _ => Err(format!("bad state {s}")),
    }
}

fn phase(s: &str) -> Result<ZabState, String> {
    match s {
        "Election" => Ok(ZabState::Election),
        "Discovery" => Ok(ZabState::Discovery),
        "Synchronization" => Ok(ZabState::Synchronization),
        "Broadcast" => Ok(ZabState::Broadcast),
        _ => Err(format!("bad phase {s}")),
    }
}

/// One parsed line: its time and the record.
pub type Timed = (u128, TraceEvent<Txn>);

/// Parses one line.
pub fn parse_line(line: &str) -> Result<Timed, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let field = |k: &str| v.get(k).ok_or_else(|| format!("missing field {k}"));
    let text = |k: &str| -> Result<&str, String> {
        field(k)?
            .as_str()
            .ok_or_else(|| format!("{k} must be a string"))
    };
    let num = |k: &str| -> Result<u64, String> {
        field(k)?
            .as_u64()
            .ok_or_else(|| format!("{k} must be a number"))
    };
    let epoch = |k: &str| -> Result<u32, String> {
        u32::try_from(num(k)?).map_err(|_| format!("{k} out of range"))
    };
    let t: u128 = text("t")?.parse().map_err(|e| format!("bad time: {e}"))?;
    // The model's actions and the trace-only `ConnectionLost` and `NodeRestart`, by name.
    let action = serde_json::from_value::<ActionKind>(field("action")?.clone())
        .map_err(|e| format!("action: {e}"))?;
    let j = match field("j")? {
        serde_json::Value::Null => None,
        x => Some(ServerId(x.as_u64().ok_or("j must be a number")?)),
    };
    let payload = match field("payload")? {
        serde_json::Value::Null => None,
        x => {
            let b64 = x.as_str().ok_or("payload must be a string")?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("payload: {e}"))?;
            Some(Txn::decode(&raw).map_err(|e| format!("payload: {e}"))?)
        }
    };
    let log = field("log")?
        .as_array()
        .ok_or("log must be an array")?
        .iter()
        .map(zxid)
        .collect::<Result<Vec<_>, _>>()?;
    let summary = Summary {
        state: state(text("state")?)?,
        zab_state: phase(text("zab_state")?)?,
        accepted_epoch: Epoch(epoch("accepted_epoch")?),
        current_epoch: Epoch(epoch("current_epoch")?),
        snapshot: zxid(field("snapshot")?)?,
        log,
        persisted: zxid(field("persisted")?)?,
        committed: zxid(field("committed")?)?,
        // Absent in traces written before storage recovery (`spec/PROTOCOL.md` §7.1).
        recovering: match v.get("recovering") {
            None | Some(serde_json::Value::Null) => false,
            Some(x) => x.as_bool().ok_or("recovering must be a boolean")?,
        },
    };
    Ok((
        t,
        TraceEvent {
            action,
            i: ServerId(num("i")?),
            j,
            payload,
            summary,
        },
    ))
}

/// Reads one server's trace file.
pub fn read_file(path: &Path) -> Result<Vec<Timed>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| parse_line(l).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// Reads and merges the trace files of an ensemble, in time order (stable for equal times).
pub fn merge(paths: &[&Path]) -> Result<Vec<TraceEvent<Txn>>, String> {
    let mut all = Vec::new();
    for p in paths {
        all.extend(read_file(p)?);
    }
    all.sort_by_key(|(t, _)| *t);
    Ok(all.into_iter().map(|(_, ev)| ev).collect())
}
