//! `zabd inspect log|snapshot FILE [--json]`: what is inside zabd's own storage files, as
//! ZooKeeper's `TxnLogToolkit` and `SnapshotFormatter` show theirs: every record (zxid, type,
//! paths, session, cxid, time) and a summary, or every node (stat, ACL, data length) and the
//! sessions with their ephemerals. Damage is reported with its byte offset, never a panic.

use crate::storage::format::{
    HeaderState, LOG_HEADER_LEN, LOG_PREFIX, SNAP_PREFIX, check_snapshot, parse_name, scan_segment,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use zab_spec::Zxid;
use zab_zk::{DataTree, Txn, TxnBody};

/// The largest record `inspect` reads (zabd's own limit is 16 MiB by default).
const MAX_RECORD: u32 = 256 << 20;

fn zxid_of(path: &Path, prefix: &str, bytes: &[u8], at: usize) -> Zxid {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| parse_name(n, prefix))
        .or_else(|| {
            bytes
                .get(at..at + 8)
                .and_then(|b| b.try_into().ok())
                .map(|b: [u8; 8]| Zxid::from_u64(u64::from_le_bytes(b)))
        })
        .unwrap_or(Zxid::ZERO)
}

/// A transaction's type name (ZooKeeper's `op2String` names) and the paths it touches.
#[must_use]
pub fn describe(body: &TxnBody) -> (&'static str, Vec<String>) {
    match body {
        TxnBody::CreateSession { .. } => ("createSession", vec![]),
        TxnBody::CloseSession { ephemerals } => ("closeSession", ephemerals.clone()),
        TxnBody::Create(c) => (
            match c.kind {
                zab_zk::txn::NodeKind::Container => "createContainer",
                zab_zk::txn::NodeKind::Ttl(_) => "createTtl",
                _ if c.with_stat => "create2",
                _ => "create",
            },
            vec![c.path.clone()],
        ),
        TxnBody::Delete { path } => ("delete", vec![path.clone()]),
        TxnBody::DeleteContainer { path } => ("deleteContainer", vec![path.clone()]),
        TxnBody::SetData { path, .. } => ("setData", vec![path.clone()]),
        TxnBody::SetAcl { path, .. } => ("setACL", vec![path.clone()]),
        TxnBody::Check { path, .. } => ("check", vec![path.clone()]),
        TxnBody::Multi(ops) => ("multi", ops.iter().flat_map(|o| describe(o).1).collect()),
        TxnBody::Error(_) => ("error", vec![]),
    }
}

/// Reads a zabd log segment and renders it (`json`: one JSON document).
///
/// # Errors
/// The file cannot be read.
pub fn log(path: &Path, json: bool) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let first = zxid_of(path, LOG_PREFIX, &bytes, 16);
    let scan = scan_segment(&bytes, first, MAX_RECORD);
    let mut records = Vec::new();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut undecodable = Vec::new();
    for rec in &scan.records {
        let payload = &bytes[rec.payload.clone()];
        match Txn::decode(payload) {
            Ok(txn) => {
                let (kind, paths) = describe(&txn.body);
                *counts.entry(kind).or_default() += 1;
                records.push(json!({
                    "offset": rec.start,
                    "zxid": rec.zxid.to_string(),
                    "type": kind,
                    "paths": paths,
                    "session": format!("{:#x}", txn.header.session.0),
                    "cxid": txn.header.cxid,
                    "time": txn.header.time,
                    "bytes": payload.len(),
                    "txn": txn.body.to_string(),
                }));
            }
            Err(e) => {
                undecodable.push(json!({"offset": rec.start, "zxid": rec.zxid.to_string(), "error": e.to_string()}));
            }
        }
    }
    let header = match &scan.header {
        HeaderState::Valid => Value::from("valid"),
        HeaderState::Torn => Value::from(format!(
            "torn (shorter than {LOG_HEADER_LEN} bytes or all zeros)"
        )),
        HeaderState::Bad(why) => Value::from(format!("bad: {why}")),
        HeaderState::Unsupported(why) => Value::from(format!("unsupported: {why}")),
    };
    let damage = scan.damage.as_ref().map(|d| {
        json!({
            "offset": d.offset,
            "reason": d.reason,
            "kind": if d.valid_after.is_some() {
                "corrupt (valid records follow)"
            } else if d.torn {
                "torn tail"
            } else {
                "corrupt (a complete record fails its checksum)"
            },
            "valid_record_after": d.valid_after,
        })
    });
    let doc = json!({
        "file": path.display().to_string(),
        "first_zxid": first.to_string(),
        "header": header,
        "records": records,
        "undecodable": undecodable,
        "summary": {
            "count": scan.records.len(),
            "first": scan.records.first().map(|r| r.zxid.to_string()),
            "last": scan.records.last().map(|r| r.zxid.to_string()),
            "by_type": counts,
            "valid_bytes": scan.valid_end(),
            "file_bytes": bytes.len(),
            "damage": damage,
        },
    });
    if json {
        return Ok(format!("{doc:#}\n"));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "zabd log segment {} (first zxid {first}), header {}",
        path.display(),
        doc["header"].as_str().unwrap_or("")
    );
    for r in &records {
        let _ = writeln!(
            out,
            "{} time {} session {} cxid {} {} {}",
            r["zxid"].as_str().unwrap_or(""),
            r["time"],
            r["session"].as_str().unwrap_or(""),
            r["cxid"],
            r["type"].as_str().unwrap_or(""),
            r["txn"].as_str().unwrap_or(""),
        );
    }
    for u in &undecodable {
        let _ = writeln!(
            out,
            "undecodable record at byte {}: {}",
            u["offset"], u["error"]
        );
    }
    let s = &doc["summary"];
    let _ = writeln!(
        out,
        "{} records ({} .. {}), {} of {} bytes valid",
        s["count"], s["first"], s["last"], s["valid_bytes"], s["file_bytes"]
    );
    for (k, n) in &counts {
        let _ = writeln!(out, "  {k}: {n}");
    }
    if let Some(d) = &scan.damage {
        let _ = writeln!(
            out,
            "damage at byte offset {}: {} ({})",
            d.offset,
            d.reason,
            if d.valid_after.is_some() {
                "corrupt: valid records follow"
            } else {
                "torn tail"
            }
        );
    }
    Ok(out)
}

/// Reads a zabd snapshot and renders it.
///
/// # Errors
/// The file cannot be read; a corrupt snapshot is reported in the output, not as an error.
pub fn snapshot(path: &Path, json: bool) -> std::io::Result<String> {
    let bytes = std::fs::read(path)?;
    let zxid = zxid_of(path, SNAP_PREFIX, &bytes, 16);
    let tree = check_snapshot(&bytes, zxid).and_then(|range| {
        DataTree::from_snapshot(&bytes[range]).map_err(|e| format!("snapshot data: {e}"))
    });
    let tree = match tree {
        Ok(t) => t,
        Err(why) => {
            let doc =
                json!({"file": path.display().to_string(), "zxid": zxid.to_string(), "error": why});
            return Ok(if json {
                format!("{doc:#}\n")
            } else {
                format!("{}: not a valid zabd snapshot: {why}\n", path.display())
            });
        }
    };
    let mut nodes: Vec<(String, &zab_zk::tree::Node)> = tree.iter().collect();
    nodes.sort_by(|a, b| a.0.cmp(&b.0));
    let node_docs: Vec<Value> = nodes
        .iter()
        .map(|(p, n)| {
            let s = n.stat();
            json!({
                "path": p,
                "czxid": format!("{:#x}", s.czxid),
                "ctime": s.ctime,
                "mzxid": format!("{:#x}", s.mzxid),
                "mtime": s.mtime,
                "pzxid": format!("{:#x}", s.pzxid),
                "cversion": s.cversion,
                "dataVersion": s.version,
                "aclVersion": s.aversion,
                "ephemeralOwner": format!("{:#x}", n.stat.ephemeral_owner),
                "dataLength": s.data_length,
                "numChildren": s.num_children,
                "acl": n.acl.iter().map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sessions: Vec<Value> = tree
        .sessions()
        .iter()
        .map(|(s, t)| json!({"id": format!("{:#x}", s.0), "timeout": t, "ephemerals": tree.ephemerals(*s)}))
        .collect();
    let doc = json!({
        "file": path.display().to_string(),
        "zxid": zxid.to_string(),
        "nodes": node_docs,
        "sessions": sessions,
        "summary": {
            "nodes": tree.node_count(),
            "approximate_data_size": tree.approximate_data_size(),
            "sessions": tree.sessions().len(),
            "ephemerals": tree.ephemeral_count(),
            "containers": tree.containers().len(),
            "ttl_nodes": tree.ttls().len(),
        },
    });
    if json {
        return Ok(format!("{doc:#}\n"));
    }
    let mut out = String::new();
    let _ = writeln!(out, "zabd snapshot {} at zxid {zxid}", path.display());
    for n in &node_docs {
        let _ = writeln!(out, "{}", n["path"].as_str().unwrap_or(""));
        for k in [
            "czxid",
            "ctime",
            "mzxid",
            "mtime",
            "pzxid",
            "cversion",
            "dataVersion",
            "aclVersion",
            "ephemeralOwner",
            "dataLength",
        ] {
            let _ = writeln!(
                out,
                "  {k} = {}",
                n[k].as_str()
                    .map_or_else(|| n[k].to_string(), str::to_owned)
            );
        }
    }
    let _ = writeln!(out, "Session Details (sid, timeout, ephemeralCount):");
    for s in &sessions {
        let _ = writeln!(
            out,
            "{}, {}, {}",
            s["id"].as_str().unwrap_or(""),
            s["timeout"],
            s["ephemerals"].as_array().map_or(0, Vec::len)
        );
    }
    let s = &doc["summary"];
    let _ = writeln!(
        out,
        "Summary: {} nodes, {} bytes of data and paths, {} sessions, {} ephemerals, {} containers, {} TTL nodes",
        s["nodes"],
        s["approximate_data_size"],
        s["sessions"],
        s["ephemerals"],
        s["containers"],
        s["ttl_nodes"]
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{StdFs, Storage, StorageConfig};
    use std::sync::Arc;
    use zab_spec::SessionId;
    use zab_zk::TxnHeader;

    fn txn(body: TxnBody) -> Vec<u8> {
        Txn::new(
            TxnHeader {
                session: SessionId(0x42),
                cxid: 3,
                time: 1000,
            },
            body,
        )
        .encode()
        .to_vec()
    }

    fn files() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = StorageConfig::new(dir.path(), dir.path());
        let (mut s, _) = Storage::open(Arc::new(StdFs), &cfg).expect("open");
        let bodies = [
            TxnBody::CreateSession {
                timeout: 5000,
                passwd: None,
            },
            TxnBody::Delete { path: "/a".into() },
            TxnBody::SetData {
                path: "/b".into(),
                data: None,
                version: 2,
            },
        ];
        for (k, b) in bodies.into_iter().enumerate() {
            s.append(Zxid::new(1, k as u32 + 1), &txn(b))
                .expect("append");
        }
        s.sync().expect("sync");
        let t = s.snapshot_ticket();
        s.save_snapshot(t, Zxid::new(1, 3), &DataTree::new().snapshot())
            .expect("snapshot");
        let layout = dir.path().join(crate::storage::LAYOUT_DIR);
        let log = layout.join("log.0000000100000001");
        let snap = layout.join("snapshot.0000000100000003");
        (dir, log, snap)
    }

    #[test]
    fn a_log_segment_lists_its_records_and_reports_damage_by_offset() {
        let (_dir, log, _) = files();
        let doc: Value =
            serde_json::from_str(&super::log(&log, true).expect("read")).expect("json");
        assert_eq!(doc["summary"]["count"], 3);
        assert_eq!(doc["records"][1]["type"], "delete");
        assert_eq!(doc["records"][1]["paths"][0], "/a");
        assert_eq!(doc["records"][2]["zxid"], "0x100000003");
        assert_eq!(doc["records"][0]["session"], "0x42");
        assert!(doc["summary"]["damage"].is_null());
        let text = super::log(&log, false).expect("text");
        assert!(text.contains("3 records"), "{text}");
        // Damage in the middle record: corrupt (a valid record follows), with its offset.
        let mut bytes = std::fs::read(&log).expect("read");
        let second = doc["records"][1]["offset"].as_u64().expect("offset") as usize;
        bytes[second + 20] ^= 1;
        std::fs::write(&log, &bytes).expect("write");
        let doc: Value =
            serde_json::from_str(&super::log(&log, true).expect("read")).expect("json");
        assert_eq!(doc["summary"]["count"], 1);
        assert_eq!(doc["summary"]["damage"]["offset"], second);
        assert_eq!(
            doc["summary"]["damage"]["kind"],
            "corrupt (valid records follow)"
        );
        // Garbage that is not a segment at all.
        std::fs::write(&log, b"hello").expect("write");
        let doc: Value =
            serde_json::from_str(&super::log(&log, true).expect("read")).expect("json");
        assert_eq!(doc["summary"]["count"], 0);
    }

    #[test]
    fn a_snapshot_lists_its_nodes_and_sessions() {
        let (_dir, _, snap) = files();
        let doc: Value = serde_json::from_str(&snapshot(&snap, true).expect("read")).expect("json");
        assert_eq!(doc["summary"]["nodes"], 4);
        assert_eq!(doc["nodes"][0]["path"], "/");
        let text = snapshot(&snap, false).expect("text");
        assert!(text.contains("/zookeeper/quota"), "{text}");
        let mut bytes = std::fs::read(&snap).expect("read");
        let n = bytes.len();
        bytes[n - 3] ^= 1;
        std::fs::write(&snap, &bytes).expect("write");
        let doc: Value = serde_json::from_str(&snapshot(&snap, true).expect("read")).expect("json");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{doc}"
        );
    }
}
