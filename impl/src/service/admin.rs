//! ZooKeeper's AdminServer commands (`/commands/<name>`), answered as JSON with ZooKeeper
//! 3.8's keys, `command` and `error` included, for the commands zabd can answer honestly;
//! rendered on the replica thread from the service's [`StatsView`], tree and watches. The
//! HTTP side is `crate::admin`; the key sets are compared with a real ZooKeeper 3.8's by
//! impl/tests/admin_server.rs.

use super::StatsView;
use super::fourlw::{VERSION, mntr_pairs, mode};
use crate::config::ServerConfig;
use crate::runtime::AppCx;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use zab_spec::{ServerState, SessionId, ZabState, Zxid};
use zab_zk::{DataTree, WatchManager};

/// ZooKeeper 3.8's commands and aliases (`Commands.java`) that zabd answers: (name, aliases).
pub const COMMANDS: &[(&str, &[&str])] = &[
    ("configuration", &["conf", "config"]),
    ("connections", &["cons"]),
    ("dirs", &[]),
    ("dump", &[]),
    ("environment", &["env", "envi"]),
    ("is_read_only", &["isro"]),
    ("leader", &["lead"]),
    ("monitor", &["mntr"]),
    ("ruok", &[]),
    ("server_stats", &["srvr"]),
    ("stats", &["stat"]),
    ("voting_view", &[]),
    ("watch_summary", &["wchs"]),
    ("watches", &["wchc"]),
    ("watches_by_path", &["wchp"]),
];

/// ZooKeeper 3.8's commands zabd does not answer, with the reason (docs and the answer's
/// `error`).
pub const NOT_SUPPORTED: &[(&str, &str)] = &[
    ("connection_stat_reset", "zabd's statistics cannot be reset"),
    (
        "get_trace_mask",
        "zabd has no trace mask (it logs with tracing)",
    ),
    ("hash", "zabd keeps no tree digests"),
    (
        "initial_configuration",
        "zabd does not keep the zoo.cfg text",
    ),
    ("last_snapshot", "not reported by zabd"),
    ("observer_connection_stat_reset", "zabd has no observers"),
    ("observers", "zabd has no observers"),
    (
        "set_trace_mask",
        "zabd has no trace mask (it logs with tracing)",
    ),
    ("stat_reset", "zabd's statistics cannot be reset"),
    (
        "system_properties",
        "Java system properties; zabd is not a JVM",
    ),
    (
        "zabstate",
        "ZooKeeper's QuorumPeer address objects have no zabd equivalent",
    ),
];

/// ZooKeeper's aliases of the commands zabd does not answer.
const NOT_SUPPORTED_ALIASES: &[(&str, &str)] = &[
    ("crst", "connection_stat_reset"),
    ("gtmk", "get_trace_mask"),
    ("icfg", "initial_configuration"),
    ("lsnp", "last_snapshot"),
    ("orst", "observer_connection_stat_reset"),
    ("obsr", "observers"),
    ("stmk", "set_trace_mask"),
    ("srst", "stat_reset"),
    ("sysp", "system_properties"),
];

/// What the commands read.
pub struct AdminCx<'a, 'c> {
    /// The configuration.
    pub cfg: &'a ServerConfig,
    /// The service's statistics.
    pub view: &'a StatsView,
    /// The tree (ephemerals).
    pub tree: &'a DataTree,
    /// The watches.
    pub watches: &'a WatchManager,
    /// The leader's session deadlines (empty elsewhere).
    pub deadlines: BTreeMap<i64, Vec<SessionId>>,
    /// The runtime.
    pub cx: &'a AppCx<'c, zab_zk::Txn>,
}

/// The primary name of a command or alias zabd answers.
#[must_use]
pub fn resolve(name: &str) -> Option<&'static str> {
    COMMANDS
        .iter()
        .find(|(n, aliases)| *n == name || aliases.contains(&name))
        .map(|(n, _)| *n)
}

fn error(command: &str, message: &str) -> Value {
    json!({ "command": command, "error": message })
}

/// The answer to `/commands/<name>`.
#[must_use]
pub fn answer(name: &str, a: &AdminCx<'_, '_>) -> Value {
    let Some(command) = resolve(name) else {
        let known = NOT_SUPPORTED_ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, n)| *n);
        return match NOT_SUPPORTED.iter().find(|(n, _)| *n == known) {
            Some((n, why)) => error(n, &format!("Command not supported by zabd: {why}")),
            None => error(name, &format!("Unknown command: {name}")),
        };
    };
    let serving = a.cx.role().zab_state == ZabState::Broadcast;
    if !serving && !matches!(command, "ruok" | "environment" | "configuration") {
        return error(
            command,
            "This ZooKeeper instance is not currently serving requests",
        );
    }
    let mut out = match command {
        "configuration" => configuration(a),
        "connections" => connections(a),
        "dirs" => json!({
            "datadir_size": a.cx.status().disk.dir_sizes().0,
            "logdir_size": a.cx.status().disk.dir_sizes().1,
        }),
        "dump" => dump(a),
        "environment" => environment(),
        "is_read_only" => json!({ "read_only": false }),
        "leader" => return leader(a),
        "monitor" => monitor(a),
        "ruok" => json!({}),
        "server_stats" => server_stats(a, false),
        "stats" => server_stats(a, true),
        "voting_view" => voting_view(a),
        "watch_summary" => json!({
            "num_connections": a.view.watching_sessions,
            "num_paths": a.view.watched_paths,
            "num_total_watches": a.view.watch_count,
        }),
        "watches" => watches(a),
        _ => watches_by_path(a),
    };
    if let Value::Object(m) = &mut out {
        m.insert("command".into(), Value::from(command));
        m.insert("error".into(), Value::Null);
    }
    out
}

fn standalone(a: &AdminCx<'_, '_>) -> bool {
    a.cfg.members.len() <= 1
}

fn configuration(a: &AdminCx<'_, '_>) -> Value {
    let c = a.cfg;
    json!({
        "client_port": c.client_addr.port(),
        "data_dir": c.data_dir.display().to_string(),
        "data_log_dir": c.data_log_dir.display().to_string(),
        "tick_time": c.tick_ms,
        "max_client_cnxns": c.max_client_cnxns,
        "min_session_timeout": c.min_session_timeout_ms,
        "max_session_timeout": c.max_session_timeout_ms,
        "server_id": if standalone(a) { 0 } else { c.myid.0 },
        // ZooKeeper's "not set": the operating system's default backlog, as zabd uses.
        "client_port_listen_backlog": -1,
    })
}

fn avg(l: (i64, i64, i64, u64)) -> f64 {
    if l.3 == 0 {
        0.0
    } else {
        ((l.2 as f64 / l.3 as f64) * 10_000.0).round() / 10_000.0
    }
}

fn connections(a: &AdminCx<'_, '_>) -> Value {
    let now = a.cx.now_ms;
    let conns: Vec<Value> = a
        .view
        .conns
        .iter()
        .map(|c| {
            let s = &c.stats;
            let mut m = Map::new();
            m.insert("remote_socket_address".into(), json!(c.remote.to_string()));
            m.insert("outstanding_requests".into(), json!(c.queued));
            m.insert("packets_received".into(), json!(s.received));
            m.insert("packets_sent".into(), json!(s.sent));
            if let Some(sid) = c.session {
                m.insert("session_id".into(), json!(sid.0));
                m.insert("last_operation".into(), json!(s.last_op));
                m.insert("established".into(), json!(s.established_ms));
                m.insert("session_timeout".into(), json!(c.timeout));
                m.insert("last_cxid".into(), json!(s.last_cxid));
                m.insert("last_zxid".into(), json!(s.last_zxid));
                m.insert("last_response_time".into(), json!(now));
                m.insert("last_latency".into(), json!(0));
                m.insert("min_latency".into(), json!(s.lat.0));
                m.insert("avg_latency".into(), json!(avg(s.lat) as i64));
                m.insert("max_latency".into(), json!(s.lat.1));
            }
            Value::Object(m)
        })
        .collect();
    json!({ "connections": conns, "secure_connections": [] })
}

fn dump(a: &AdminCx<'_, '_>) -> Value {
    let mut expiry = Map::new();
    for (deadline, sessions) in &a.deadlines {
        let ids: Vec<i64> = sessions.iter().map(|s| s.0).collect();
        expiry.insert(deadline.to_string(), json!(ids));
    }
    let mut eph = Map::new();
    let mut owners: Vec<_> = a.tree.all_ephemerals().collect();
    owners.sort_by_key(|(s, _)| *s);
    for (s, paths) in owners {
        let paths: Vec<&String> = paths.iter().collect();
        eph.insert(s.0.to_string(), json!(paths));
    }
    json!({
        "expiry_time_to_session_ids": expiry,
        "session_id_to_ephemeral_paths": eph,
    })
}

fn environment() -> Value {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let dir = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    json!({
        "zookeeper.version": VERSION,
        "host.name": host,
        "os.name": std::env::consts::OS,
        "os.arch": std::env::consts::ARCH,
        "user.name": var("USER"),
        "user.home": var("HOME"),
        "user.dir": dir,
    })
}

fn leader(a: &AdminCx<'_, '_>) -> Value {
    let role = a.cx.role();
    if standalone(a) {
        return error("leader", "server is not initialized");
    }
    let Some(l) = role.leader else {
        return error(
            "leader",
            "This ZooKeeper instance is not currently serving requests",
        );
    };
    let ip = a
        .cfg
        .members
        .iter()
        .find(|m| m.id == l)
        .map(|m| m.quorum_addr.ip().to_string())
        .unwrap_or_default();
    json!({
        "is_leader": role.state == ServerState::Leading,
        "leader_id": l.0,
        "leader_ip": ip,
        "command": "leader",
        "error": null,
    })
}

/// `mntr` keys of zabd's that ZooKeeper's `monitor` does not have (zab's own figures, also
/// on `/metrics` as `zab_*`): left out of `monitor`, which answers ZooKeeper's keys only.
const MNTR_ONLY: &[&str] = &["fsync_count", "last_zxid", "outstanding_proposals"];

fn monitor(a: &AdminCx<'_, '_>) -> Value {
    let mut m = Map::new();
    for (k, v) in mntr_pairs(a.cfg, a.view, a.cx) {
        let key = k.trim_start_matches("zk_").to_string();
        if MNTR_ONLY.contains(&key.as_str()) {
            continue;
        }
        let value = if let Ok(n) = v.parse::<i64>() {
            json!(n)
        } else if let Ok(f) = v.parse::<f64>() {
            json!(f)
        } else {
            json!(v)
        };
        m.insert(key, value);
    }
    Value::Object(m)
}

fn server_stats(a: &AdminCx<'_, '_>, with_connections: bool) -> Value {
    let (v, s) = (a.view, &a.view.stats);
    let zxid = Zxid::from_u64(a.cx.status().last_zxid.load(Ordering::Relaxed));
    let stats = json!({
        "packets_sent": s.packets_sent,
        "packets_received": s.packets_received,
        "data_dir_size": a.cx.status().disk.dir_sizes().0,
        "log_dir_size": a.cx.status().disk.dir_sizes().1,
        "server_state": mode(a.cx, standalone(a)),
        "last_processed_zxid": zxid.to_u64(),
        "outstanding_requests": v.outstanding(),
        "avg_latency": avg(s.latency),
        "max_latency": s.latency.1,
        "min_latency": s.latency.0,
        "num_alive_client_connections": v.conns.len(),
        "auth_failed_count": s.auth_failed,
        "uptime": (a.cx.now_ms - v.started_ms).max(0),
    });
    let mut out = json!({
        "version": VERSION,
        "read_only": false,
        "server_stats": stats,
        "node_count": v.znode_count,
    });
    let Value::Object(m) = &mut out else {
        return out;
    };
    if !standalone(a) && a.cx.role().state == ServerState::Leading {
        let (last, min, max) = s.proposal_sizes;
        m.insert(
            "proposal_stats".into(),
            json!({ "last_buffer_size": last, "min_buffer_size": min, "max_buffer_size": max }),
        );
    }
    if with_connections {
        let conns: Vec<Value> = v
            .conns
            .iter()
            .map(|c| {
                json!({
                    "remote_socket_address": c.remote.to_string(),
                    "outstanding_requests": c.queued,
                    "packets_received": c.stats.received,
                    "packets_sent": c.stats.sent,
                })
            })
            .collect();
        m.insert("connections".into(), json!(conns));
        m.insert("secure_connections".into(), json!([]));
    }
    out
}

fn voting_view(a: &AdminCx<'_, '_>) -> Value {
    let mut current = Map::new();
    if !standalone(a) {
        for m in &a.cfg.members {
            let client = m
                .client_addr
                .or((m.id == a.cfg.myid).then_some(a.cfg.client_addr));
            current.insert(
                m.id.0.to_string(),
                json!({
                    "server_addresses": [m.quorum_addr.to_string()],
                    "election_addresses": [m.election_addr.to_string()],
                    "client_address": client.map(|c| c.to_string()),
                    "learner_type": m.role(),
                }),
            );
        }
    }
    json!({ "current_config": current })
}

fn watches(a: &AdminCx<'_, '_>) -> Value {
    let mut m = Map::new();
    for s in a.watches.sessions() {
        let paths: Vec<String> = a.watches.paths_of(s).into_iter().collect();
        m.insert(s.0.to_string(), json!(paths));
    }
    json!({ "session_id_to_watched_paths": m })
}

fn watches_by_path(a: &AdminCx<'_, '_>) -> Value {
    let mut by_path: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for s in a.watches.sessions() {
        for p in a.watches.paths_of(s) {
            by_path.entry(p).or_default().push(s.0);
        }
    }
    json!({ "path_to_session_ids": by_path })
}
