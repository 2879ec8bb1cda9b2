//! The client side of `ci/migrate.sh` (the ZooKeeper ⇄ zabd round trip):
//!
//! - `migrate_probe load HOST:PORT` gives a server every kind of node and a transaction history:
//!   persistent, sequential, ephemeral (of a session kept open, of a session that expires, of
//!   a session closed), containers, TTL nodes, null/empty/binary data, ACL changes, a multi
//!   that commits and one that fails, deletes, and enough writes to make ZooKeeper (with a
//!   small `snapCount`) take several snapshots and roll its log. It leaves its last session
//!   open: it prints that session's id and password and keeps it alive (so that ZooKeeper is
//!   stopped with a live session and its ephemerals).
//! - `migrate_probe dump HOST:PORT` prints every node, one JSON line each in path order:
//!   getData (data, stat), getACL (ACL, stat) and getChildren2 (children sorted, stat), read
//!   as the super user — the differential test's normalisation (children sorted) without its
//!   renaming of zxids, times and sessions, because a migration must keep them exactly.
//! - `migrate_probe resume HOST:PORT SESSION PASSWD [resumed|refused]` re-attaches to the
//!   session `load` left open (as its client would after the migration): `resumed` checks that
//!   its ephemeral is still there, `refused` that the server refuses ZooKeeper's password.
//! - `migrate_probe continues HOST:PORT DUMP` creates a node and checks that its zxid comes
//!   after every zxid in the dump (the ensemble continues the zxid sequence).

#![allow(clippy::print_stdout, clippy::print_stderr)]

use bytes::Bytes;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use zab_zk::client::{Client, ConnectOptions};
use zab_zk::proto::{
    Acl, AuthPacket, CheckVersionRequest, CreateRequest, CreateTtlRequest, DeleteRequest,
    GetAclRequest, GetChildren2Request, GetDataRequest, MultiOp, Request, Response, SetAclRequest,
    SetDataRequest, Stat, ids, op, perms,
};

/// The super user the servers are started with (`super:diff`, as in the differential test).
const SUPER: &str = "super:diff";
/// `alice:secret`'s digest id.
const ALICE: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

type R<T> = Result<T, String>;

fn connect(addr: SocketAddr, timeout_ms: i32) -> R<Client> {
    let opts = ConnectOptions {
        session_timeout_ms: timeout_ms,
        ..ConnectOptions::default()
    };
    Client::connect(addr, &opts).map_err(|e| format!("connect {addr}: {e}"))
}

fn call(c: &mut Client, req: Request) -> R<(i32, Option<Response>)> {
    let (h, body) = c.request(&req).map_err(|e| format!("{req:?}: {e}"))?;
    Ok((h.err, body))
}

fn ok(c: &mut Client, req: Request) -> R<Option<Response>> {
    let what = format!("{req:?}");
    match call(c, req)? {
        (0, body) => Ok(body),
        (err, _) => Err(format!("{what}: error {err}")),
    }
}

fn create_req(path: &str, data: Option<&[u8]>, acl: Vec<Acl>, flags: i32) -> CreateRequest {
    CreateRequest {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        acl,
        flags,
    }
}

fn create(c: &mut Client, path: &str, data: Option<&[u8]>, flags: i32) -> R<String> {
    match ok(
        c,
        Request::Create(create_req(path, data, ids::open_acl_unsafe(), flags)),
    )? {
        Some(Response::Create(r)) => Ok(r.path),
        other => Err(format!("create {path}: {other:?}")),
    }
}

fn set(c: &mut Client, path: &str, data: &[u8]) -> R<()> {
    ok(
        c,
        Request::SetData(SetDataRequest {
            path: path.into(),
            data: Some(Bytes::copy_from_slice(data)),
            version: -1,
        }),
    )
    .map(drop)
}

fn delete(c: &mut Client, path: &str) -> R<()> {
    ok(
        c,
        Request::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        }),
    )
    .map(drop)
}

fn auth_super(c: &mut Client) -> R<()> {
    ok(
        c,
        Request::Auth(AuthPacket {
            auth_type: 0,
            scheme: "digest".into(),
            auth: Bytes::from_static(SUPER.as_bytes()),
        }),
    )
    .map(drop)
}

fn load(addr: SocketAddr, keep_s: u64) -> R<()> {
    let mut a = connect(addr, 40_000)?;
    auth_super(&mut a)?; // to change ACLs that lock the session out
    create(&mut a, "/app", Some(b"app-data"), 0)?;
    create(&mut a, "/app/config", Some(b"v1"), 0)?;
    for v in [b"v2", b"v3", b"v4"] {
        set(&mut a, "/app/config", v)?;
    }
    create(&mut a, "/app/null", None, 0)?;
    create(&mut a, "/app/empty", Some(b""), 0)?;
    let binary: Vec<u8> = (0..=255u8).collect();
    create(&mut a, "/app/binary", Some(&binary), 0)?;
    for p in ["/app/a", "/app/a/b", "/app/a/b/c", "/app/a/b/c/d"] {
        create(&mut a, p, Some(p.as_bytes()), 0)?;
    }
    for _ in 0..3 {
        create(&mut a, "/app/seq-", Some(b"s"), 2)?; // PERSISTENT_SEQUENTIAL
    }
    create(&mut a, "/app/eph-a", Some(b"owned by a"), 1)?; // EPHEMERAL
    create(&mut a, "/app/eph-seq-", None, 3)?; // EPHEMERAL_SEQUENTIAL
    create(&mut a, "/containers", None, 0)?;
    for c in ["/containers/c1", "/containers/c2"] {
        ok(
            &mut a,
            Request::CreateContainer(create_req(c, Some(b"c"), ids::open_acl_unsafe(), 4)),
        )?;
        create(&mut a, &format!("{c}/x"), Some(b"x"), 0)?;
    }
    delete(&mut a, "/containers/c1/x")?; // c1: an empty container that had a child
    for (path, flags) in [("/ttl", 5), ("/ttl-seq-", 6)] {
        ok(
            &mut a,
            Request::CreateTtl(CreateTtlRequest {
                path: path.into(),
                data: Some(Bytes::from_static(b"ttl")),
                acl: ids::open_acl_unsafe(),
                flags,
                ttl: 3_600_000,
            }),
        )?;
    }
    // ACLs: one given at create, one changed twice.
    ok(
        &mut a,
        Request::Create(create_req(
            "/app/ro",
            Some(b"read only"),
            vec![Acl::new(perms::READ, "world", "anyone")],
            0,
        )),
    )?;
    create(&mut a, "/app/secure", Some(b"secret"), 0)?;
    for acl in [
        vec![Acl::new(perms::ALL, "digest", ALICE)],
        vec![
            Acl::new(perms::ALL, "digest", ALICE),
            Acl::new(perms::READ, "world", "anyone"),
        ],
    ] {
        ok(
            &mut a,
            Request::SetAcl(SetAclRequest {
                path: "/app/secure".into(),
                acl,
                version: -1,
            }),
        )?;
    }
    // A multi that commits and one that fails (an error transaction).
    create(&mut a, "/m", None, 0)?;
    ok(
        &mut a,
        Request::Multi(vec![
            MultiOp::Create {
                op: op::CREATE,
                req: create_req("/m/x", Some(b"in a multi"), ids::open_acl_unsafe(), 0),
            },
            MultiOp::SetData(SetDataRequest {
                path: "/app/config".into(),
                data: Some(Bytes::from_static(b"v5 by multi")),
                version: -1,
            }),
            MultiOp::Delete(DeleteRequest {
                path: "/app/a/b/c/d".into(),
                version: -1,
            }),
            MultiOp::Check(CheckVersionRequest {
                path: "/app".into(),
                version: 0,
            }),
        ]),
    )?;
    let (err, body) = call(
        &mut a,
        Request::Multi(vec![
            MultiOp::Create {
                op: op::CREATE,
                req: create_req("/m/y", None, ids::open_acl_unsafe(), 0),
            },
            MultiOp::Delete(DeleteRequest {
                path: "/does/not/exist".into(),
                version: -1,
            }),
        ]),
    )?;
    let failed = err != 0
        || matches!(&body, Some(Response::Multi(rs))
            if rs.iter().any(|r| matches!(r, zab_zk::proto::MultiResult::Error { .. })));
    if !failed {
        return Err("the failing multi succeeded".into());
    }
    // Deletes.
    create(&mut a, "/tmp", None, 0)?;
    create(&mut a, "/tmp/child", None, 0)?;
    delete(&mut a, "/tmp/child")?;
    delete(&mut a, "/tmp")?;
    // A session closed by its client, and one that expires.
    let mut c = connect(addr, 30_000)?;
    create(&mut c, "/app/eph-c", None, 1)?;
    c.close().map_err(|e| format!("close: {e}"))?;
    let mut b = connect(addr, 2_000)?;
    create(&mut b, "/app/eph-b1", None, 1)?;
    create(&mut b, "/app/eph-b2", None, 1)?;
    drop(b); // no closeSession: the server expires it
    // Enough writes for several snapshots and log rolls (snapCount is small in the test).
    create(&mut a, "/counter", Some(b"0"), 0)?;
    for k in 1..=60 {
        set(&mut a, "/counter", k.to_string().as_bytes())?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (err, _) = call(
            &mut a,
            Request::Exists(zab_zk::proto::ExistsRequest {
                path: "/app/eph-b1".into(),
                watch: false,
            }),
        )?;
        if err != 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("session b did not expire within 30 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
        // Keep session a alive meanwhile.
    }
    create(&mut a, "/done", Some(b"loaded"), 0)?;
    println!(
        "loaded; session {:#x} passwd {} stays open",
        a.session_id,
        hex(&a.passwd)
    );
    // Keep `a` (and its ephemerals) alive until the server is stopped under us.
    let until = Instant::now() + Duration::from_secs(keep_s);
    while Instant::now() < until {
        if a.request(&Request::Ping).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1000));
    }
    Ok(())
}

fn stat_json(s: &Stat) -> serde_json::Value {
    serde_json::json!([
        s.czxid,
        s.mzxid,
        s.ctime,
        s.mtime,
        s.version,
        s.cversion,
        s.aversion,
        format!("{:#x}", s.ephemeral_owner),
        s.data_length,
        s.num_children,
        s.pzxid
    ])
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn dump(addr: SocketAddr) -> R<Vec<serde_json::Value>> {
    let mut c = connect(addr, 30_000)?;
    auth_super(&mut c)?;
    let mut out = Vec::new();
    let mut todo = vec!["/".to_owned()];
    while let Some(path) = todo.pop() {
        let data = match ok(
            &mut c,
            Request::GetData(GetDataRequest {
                path: path.clone(),
                watch: false,
            }),
        )? {
            Some(Response::GetData(d)) => (d.data.map(|d| hex(&d)), stat_json(&d.stat)),
            other => return Err(format!("getData {path}: {other:?}")),
        };
        let acl = match ok(
            &mut c,
            Request::GetAcl(GetAclRequest { path: path.clone() }),
        )? {
            Some(Response::GetAcl(a)) => (
                a.acl
                    .iter()
                    .map(|a| format!("{}:{}:{}", a.id.scheme, a.id.id, a.perms))
                    .collect::<Vec<_>>(),
                stat_json(&a.stat),
            ),
            other => return Err(format!("getACL {path}: {other:?}")),
        };
        let children = match ok(
            &mut c,
            Request::GetChildren2(GetChildren2Request {
                path: path.clone(),
                watch: false,
            }),
        )? {
            Some(Response::GetChildren2(mut r)) => {
                r.children.sort();
                (r.children, stat_json(&r.stat))
            }
            other => return Err(format!("getChildren2 {path}: {other:?}")),
        };
        for ch in children.0.iter().rev() {
            todo.push(if path == "/" {
                format!("/{ch}")
            } else {
                format!("{path}/{ch}")
            });
        }
        out.push(serde_json::json!({
            "path": path,
            "data": data.0,
            "stat": data.1,
            "acl": acl.0,
            "acl_stat": acl.1,
            "children": children.0,
            "children_stat": children.1,
        }));
    }
    out.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    c.close().map_err(|e| format!("close: {e}"))?;
    Ok(out)
}

fn continues(addr: SocketAddr, dump_file: &str) -> R<()> {
    let text = std::fs::read_to_string(dump_file).map_err(|e| format!("{dump_file}: {e}"))?;
    let mut max = 0i64;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        for k in [0, 1, 10] {
            max = max.max(v["stat"][k].as_i64().unwrap_or(0));
        }
    }
    let mut c = connect(addr, 30_000)?;
    match ok(
        &mut c,
        Request::Create2(create_req(
            "/after-migration",
            None,
            ids::open_acl_unsafe(),
            0,
        )),
    )? {
        Some(Response::Create2(r)) if r.stat.czxid > max => {
            println!(
                "new zxid {:#x} follows the migrated history (last {max:#x})",
                r.stat.czxid
            );
            delete(&mut c, "/after-migration")
        }
        other => Err(format!(
            "create after migration: {other:?} does not follow {max:#x}"
        )),
    }
}

/// Re-attaches to a session opened on ZooKeeper before the migration with ZooKeeper's password
/// (`expect`: `resumed`, then checks that its ephemeral is still its own, and leaves without
/// closing it; or `refused`).
fn resume(addr: SocketAddr, session: &str, passwd: &str, expect: &str) -> R<()> {
    let id =
        i64::from_str_radix(session.trim_start_matches("0x"), 16).map_err(|e| e.to_string())?;
    let pw: Vec<u8> = (0..passwd.len() / 2)
        .map(|k| u8::from_str_radix(&passwd[2 * k..2 * k + 2], 16).unwrap_or(0))
        .collect();
    let opts = ConnectOptions {
        session_timeout_ms: 40_000,
        session: Some((id, Bytes::from(pw))),
        ..ConnectOptions::default()
    };
    let mut c = match (Client::connect(addr, &opts), expect) {
        (Err(zab_zk::client::ClientError::SessionRefused), "refused") => {
            println!("session {session} with ZooKeeper's password: refused, as expected");
            return Ok(());
        }
        (Ok(_), "refused") => return Err(format!("session {session} was resumed")),
        (Ok(c), _) => c,
        (Err(e), _) => return Err(format!("resume {session}: {e}")),
    };
    if c.session_id != id {
        return Err(format!("resumed as {:#x}, not {session}", c.session_id));
    }
    match c.exists("/app/eph-a", false).map_err(|e| e.to_string())? {
        Ok(stat) if stat.ephemeral_owner == id => {
            println!("session {session} resumed with its ephemerals");
            Ok(())
        }
        other => Err(format!("/app/eph-a after resuming: {other:?}")),
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let addr = |k: usize| -> R<SocketAddr> {
        args.get(k)
            .ok_or("missing HOST:PORT")?
            .parse()
            .map_err(|e| format!("address: {e}"))
    };
    let result = match args.get(1).map(String::as_str) {
        Some("load") => addr(2).and_then(|a| load(a, 600)),
        Some("dump") => addr(2).and_then(dump).map(|nodes| {
            for n in nodes {
                println!("{n}");
            }
        }),
        Some("resume") => addr(2).and_then(|a| {
            resume(
                a,
                args.get(3).map_or("", String::as_str),
                args.get(4).map_or("", String::as_str),
                args.get(5).map_or("resumed", String::as_str),
            )
        }),
        Some("continues") => {
            addr(2).and_then(|a| continues(a, args.get(3).map_or("", String::as_str)))
        }
        _ => Err("usage: migrate_probe load|dump HOST:PORT | continues HOST:PORT DUMP".into()),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("migrate_probe: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
