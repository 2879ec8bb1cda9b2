//! ZooKeeper's AdminServer on zabd: the keys of every command's JSON answer, from a standalone
//! server and from the leader and a follower of a three-server ensemble (each with a client
//! session holding an ephemeral node and watches), compared with a real ZooKeeper 3.8's
//! (`tests/fixtures/zookeeper-3.8-admin-keys.json`, recorded by `ci/admin-keys.sh` from
//! Debian's ZooKeeper under the same load). zabd may leave a ZooKeeper key out only where
//! [`OMITTED`] says so (the reasons are in README's AdminServer section); it never adds one.

#![allow(clippy::print_stderr)]

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use support::{Ensemble, free_ports, http_get_path};
use zab_server::service::admin::{COMMANDS, NOT_SUPPORTED};
use zab_zk::client::Client;

const STABLE: Duration = Duration::from_secs(60);

/// ZooKeeper's keys zabd leaves out, by command (prefix match on the key path).
const OMITTED: &[(&str, &[&str])] = &[
    // Java NIO selection-key interest set: no equivalent in zabd's tokio connections.
    ("connections", &["connections.[].interest_ops"]),
    (
        "stats",
        &[
            "connections.[].interest_ops",
            "client_response",
            "server_stats.client_response_stats",
            "server_stats.fsync_threshold_exceed_count",
            "server_stats.non_mtls",
            "server_stats.provider_null",
        ],
    ),
    (
        "server_stats",
        &[
            "client_response",
            "server_stats.client_response_stats",
            "server_stats.fsync_threshold_exceed_count",
            "server_stats.non_mtls",
            "server_stats.provider_null",
        ],
    ),
    // The JVM's properties and heap.
    ("environment", &["java.", "os.memory.", "os.version"]),
];

fn fixture() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/zookeeper-3.8-admin-keys.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture JSON");
    serde_json::from_value(v["servers"].clone()).expect("servers")
}

fn is_data(k: &str) -> bool {
    k.bytes().all(|b| b.is_ascii_digit()) || k.starts_with('/')
}

/// The key paths of an answer, as `ci/admin-keys.sh` records them.
fn keys(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}{}", if is_data(k) { "*" } else { k });
                out.insert(p.clone());
                keys(x, &format!("{p}."), out);
            }
        }
        Value::Array(a) => {
            for x in a {
                keys(x, &format!("{prefix}[]."), out);
            }
        }
        _ => {}
    }
}

fn get(admin: SocketAddr, path: &str) -> (String, String) {
    http_get_path(admin, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A session like the recording's: an ephemeral `/adm-e`, a data watch on it, a child watch
/// on `/`.
fn session(e: &Ensemble, id: u64) -> Client {
    let mut c = e.client(id, STABLE);
    let p = c.create("/adm-e", b"x", 1).expect("io");
    assert_eq!(p, Ok("/adm-e".to_string()));
    c.get_data("/adm-e", true).expect("io").expect("getData");
    c.get_children("/", true).expect("io").expect("getChildren");
    c
}

fn compare(role: &str, admin: SocketAddr, zk: &BTreeMap<String, BTreeSet<String>>) {
    let (status, listing) = get(admin, "/commands");
    assert!(status.contains("200"), "{status}");
    for (name, _) in COMMANDS {
        assert!(
            listing.contains(&format!("/commands/{name}\"")),
            "{listing}"
        );
    }
    for (command, want) in zk {
        let (status, body) = get(admin, &format!("/commands/{command}"));
        assert!(status.contains("200"), "{role} {command}: {status}");
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{role} {command}: {e}: {body}"));
        let mut got = BTreeSet::new();
        keys(&v, "", &mut got);
        if let Some((_, why)) = NOT_SUPPORTED.iter().find(|(n, _)| n == command) {
            assert_eq!(v["command"], Value::from(command.as_str()), "{body}");
            assert!(
                v["error"].as_str().is_some_and(|e| e.contains(why)),
                "{body}"
            );
            continue;
        }
        assert_eq!(
            v["command"],
            Value::from(command.as_str()),
            "{role}: {body}"
        );
        let extra: Vec<&String> = got.difference(want).collect();
        assert!(
            extra.is_empty(),
            "{role} {command}: keys ZooKeeper has not: {extra:?}"
        );
        if command == "monitor" {
            // mntr's keys: zabd's are ZooKeeper's (checked above); the metrics it does not
            // compute are listed in docs/zookeeper-metrics.md.
            for k in [
                "version",
                "server_state",
                "znode_count",
                "watch_count",
                "command",
            ] {
                assert!(got.contains(k), "{role} monitor lacks {k}");
            }
            continue;
        }
        let omitted = OMITTED
            .iter()
            .find(|(c, _)| c == command)
            .map_or(&[][..], |(_, o)| *o);
        let missing: Vec<&String> = want
            .difference(&got)
            .filter(|k| !omitted.iter().any(|o| k.starts_with(o)))
            .collect();
        assert!(
            missing.is_empty(),
            "{role} {command}: ZooKeeper's keys missing: {missing:?}\n{body}"
        );
    }
}

fn admin_cfg(port: u16) -> String {
    format!("admin.enableServer=true\nadmin.serverAddress=127.0.0.1\nadmin.serverPort={port}\n")
}

#[test]
fn a_standalone_server_answers_with_zookeepers_keys() {
    let zk = fixture();
    let port = free_ports(1)[0];
    let e = Ensemble::start(1, &admin_cfg(port));
    e.wait_stable(STABLE);
    let c = session(&e, 1);
    let admin = SocketAddr::from(([127, 0, 0, 1], port));
    compare("standalone", admin, &zk["standalone"]);
    // Values: the session's ephemeral and watches are there.
    let (_, body) = get(admin, "/commands/dump");
    let dump: Value = serde_json::from_str(&body).expect("json");
    let sid = c.session_id.to_string();
    assert_eq!(
        dump["session_id_to_ephemeral_paths"][&sid][0], "/adm-e",
        "{body}"
    );
    let (_, body) = get(admin, "/commands/wchs");
    let w: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        (w["command"].clone(), w["num_total_watches"].clone()),
        ("watch_summary".into(), 2.into())
    );
    let (_, body) = get(admin, "/commands/leader");
    assert!(body.contains("server is not initialized"), "{body}");
    drop(c);
}

#[test]
fn an_ensembles_leader_and_follower_answer_with_zookeepers_keys() {
    let zk = fixture();
    let ports = free_ports(3);
    let e = Ensemble::start_each(3, |id| admin_cfg(ports[(id - 1) as usize]));
    let leader = e.wait_stable(STABLE);
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let admin = |id: u64| SocketAddr::from(([127, 0, 0, 1], ports[(id - 1) as usize]));
    let c = session(&e, leader);
    compare("leader", admin(leader), &zk["leader"]);
    c.close().expect("close");
    let c = session(&e, follower);
    compare("follower", admin(follower), &zk["follower"]);
    let (_, body) = get(admin(follower), "/commands/leader");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(v["leader_id"], Value::from(leader), "{body}");
    assert_eq!(v["is_leader"], Value::from(false), "{body}");
    let (_, body) = get(admin(follower), "/commands/voting_view");
    let v: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v["current_config"].as_object().map(|m| m.len()),
        Some(3),
        "{body}"
    );
    drop(c);
}

#[test]
fn admin_enable_server_false_starts_none() {
    let port = free_ports(1)[0];
    let e = Ensemble::start(
        1,
        &format!("admin.enableServer=false\nadmin.serverPort={port}\n"),
    );
    e.wait_stable(STABLE);
    assert!(http_get_path(SocketAddr::from(([127, 0, 0, 1], port)), "/commands").is_err());
}
