//! Compatibility tests with a ZooKeeper client we did not write: the Rust crate
//! `zookeeper-client` (crates.io) against real `zabd` processes, standalone and as a 3-server
//! ensemble — CRUD with Stat fields, one-shot and persistent watches, ephemeral and sequential
//! nodes, multi, ACLs, session expiry and reconnection to another server.

#![allow(clippy::print_stderr)]

mod support;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::Ensemble;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use zab_zk::client::four_letter_word;
use zookeeper_client::{
    Acl, Acls, AddWatchMode, AuthId, Client, CreateMode, CreateOptions, Error, EventType,
    MultiReadResult, MultiWriteError, MultiWriteResult, Permission, SessionState, Stat,
    WatchedEvent,
};

const STABLE: Duration = Duration::from_secs(90);
/// How long any single client step may take (elections, a loaded 2-core machine).
const STEP: Duration = Duration::from_secs(60);

const OPEN: CreateOptions<'static> = CreateMode::Persistent.with_acls(Acls::anyone_all());
const EPHEMERAL: CreateOptions<'static> = CreateMode::Ephemeral.with_acls(Acls::anyone_all());

// ----- helpers -----------------------------------------------------------------------------

/// Runs blocking harness code (process control, four-letter words) from an async test.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {STEP:?}"),
    }
}

fn connect_string(e: &Ensemble, ids: &[u64]) -> String {
    ids.iter()
        .map(|id| e.node(*id).client.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A session on `cluster` with the given timeout, retrying while no server serves.
async fn connect_with(cluster: &str, session_timeout: Duration) -> Client {
    let deadline = Instant::now() + STEP;
    loop {
        let attempt = Client::connector()
            .with_session_timeout(session_timeout)
            .connect(cluster);
        match tokio::time::timeout(Duration::from_secs(20), attempt).await {
            Ok(Ok(c)) => return c,
            Ok(Err(e)) if Instant::now() > deadline => panic!("connect to {cluster}: {e}"),
            Err(_) if Instant::now() > deadline => panic!("connect to {cluster}: timed out"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn connect(cluster: &str) -> Client {
    connect_with(cluster, Duration::from_secs(4)).await
}

async fn next_event(what: &str, w: zookeeper_client::OneshotWatcher) -> WatchedEvent {
    within(what, w.changed()).await
}

/// `Total watches:` of `wchs` on a server.
fn total_watches(addr: SocketAddr) -> usize {
    let text = four_letter_word(addr, "wchs", Duration::from_secs(5)).expect("wchs");
    text.lines()
        .find_map(|l| l.strip_prefix("Total watches:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no watch count in {text:?}"))
}

/// Waits until `wchs` on `addr` reports `n` watches.
async fn wait_watches(addr: SocketAddr, n: usize) {
    let deadline = Instant::now() + STEP;
    loop {
        let now = blocking(|| total_watches(addr));
        if now == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr}: {now} watches, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The running server whose `cons` lists the session.
fn server_of(e: &Ensemble, session: i64) -> Option<u64> {
    let needle = format!("sid=0x{session:x},");
    e.nodes
        .iter()
        .filter(|n| e.running(n.id))
        .find(|n| {
            four_letter_word(n.client, "cons", Duration::from_secs(5))
                .is_ok_and(|t| t.contains(&needle))
        })
        .map(|n| n.id)
}

async fn wait_state(what: &str, client: &Client, want: SessionState) {
    let mut w = client.state_watcher();
    within(what, async {
        let mut s = w.state();
        while s != want {
            assert!(
                !(s.is_terminated() && want != s),
                "{what}: reached {s} instead of {want}"
            );
            s = w.changed().await;
        }
    })
    .await;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn assert_fresh_stat(stat: &Stat, data_len: usize, before_ms: i64) {
    assert!(stat.czxid > 0, "{stat:?}");
    assert_eq!(stat.mzxid, stat.czxid, "{stat:?}");
    assert_eq!(stat.pzxid, stat.czxid, "{stat:?}");
    assert_eq!(stat.ctime, stat.mtime, "{stat:?}");
    assert!(
        stat.ctime >= before_ms - 60_000 && stat.ctime <= now_ms() + 60_000,
        "ctime {} is not about now ({before_ms})",
        stat.ctime
    );
    assert_eq!(
        (stat.version, stat.cversion, stat.aversion),
        (0, 0, 0),
        "{stat:?}"
    );
    assert_eq!(stat.ephemeral_owner, 0, "{stat:?}");
    assert_eq!(stat.data_length as usize, data_len, "{stat:?}");
    assert_eq!(stat.num_children, 0, "{stat:?}");
}

// ----- scenarios shared by standalone and ensemble runs ------------------------------------

/// create / get / set / delete with every Stat field checked.
async fn crud(a: &Client, b: &Client, root: &str) {
    let before = now_ms();
    let (root_stat, _) = a.create(root, b"", &OPEN).await.expect("create root");
    assert_fresh_stat(&root_stat, 0, before);
    let path = format!("{root}/node");
    let (created, seq) = a.create(&path, b"hello", &OPEN).await.expect("create");
    assert_eq!(seq.into_i64(), -1, "not sequential");
    assert_fresh_stat(&created, 5, before);
    assert!(created.czxid > root_stat.czxid);

    // The other client (possibly on another server) reads what was written after a sync.
    b.sync(&path).await.expect("sync");
    let (data, stat) = b.get_data(&path).await.expect("get");
    assert_eq!(data, b"hello");
    assert_eq!(stat, created);
    let (_, parent) = b.get_data(root).await.expect("get parent");
    assert_eq!(parent.num_children, 1);
    assert_eq!(parent.cversion, 1);
    assert_eq!(parent.pzxid, created.czxid, "pzxid is the child's create");
    assert_eq!(
        parent.mzxid, root_stat.mzxid,
        "a child does not change data"
    );

    assert_eq!(
        a.create(&path, b"x", &OPEN).await.unwrap_err(),
        Error::NodeExists
    );
    assert_eq!(
        a.create(&format!("{root}/none/x"), b"", &OPEN)
            .await
            .unwrap_err(),
        Error::NoNode
    );
    assert_eq!(
        a.set_data(&path, b"x", Some(7)).await.unwrap_err(),
        Error::BadVersion
    );

    let set = a
        .set_data(&path, b"hello world", Some(0))
        .await
        .expect("set v0");
    assert_eq!(set.version, 1);
    assert_eq!(set.czxid, created.czxid);
    assert!(set.mzxid > created.mzxid);
    assert_eq!(set.pzxid, created.pzxid);
    assert_eq!(set.ctime, created.ctime);
    assert!(set.mtime >= created.mtime);
    assert_eq!(set.data_length, 11);
    let set2 = a.set_data(&path, b"", None).await.expect("set any");
    assert_eq!(set2.version, 2);
    assert_eq!(set2.data_length, 0);
    b.sync(&path).await.expect("sync");
    let (data, stat) = b.get_data(&path).await.expect("get");
    assert!(data.is_empty());
    assert_eq!(stat, set2);
    assert_eq!(b.check_stat(&path).await.expect("exists"), Some(set2));

    assert_eq!(a.delete(root, None).await.unwrap_err(), Error::NotEmpty);
    assert_eq!(
        a.delete(&path, Some(1)).await.unwrap_err(),
        Error::BadVersion
    );
    a.delete(&path, Some(2)).await.expect("delete");
    assert_eq!(a.get_data(&path).await.unwrap_err(), Error::NoNode);
    assert_eq!(a.check_stat(&path).await.expect("exists"), None);
    assert_eq!(a.delete(&path, None).await.unwrap_err(), Error::NoNode);
    let (_, parent) = a.get_data(root).await.expect("get parent");
    assert_eq!(parent.num_children, 0);
    assert_eq!(
        parent.cversion, 2,
        "client cversion counts creates and deletes"
    );
    assert!(parent.pzxid > created.czxid, "pzxid is the child's delete");
    let (kids, stat) = a.get_children(root).await.expect("children");
    assert!(kids.is_empty());
    assert_eq!(stat, parent);
}

/// One-shot data, exists and child watches set by `w` (on `w_server`) and fired by changes `a`
/// makes: each fires exactly once, and the server forgets it when it fires.
async fn watches(a: &Client, w: &Client, w_server: SocketAddr, root: &str) {
    a.create(root, b"", &OPEN).await.expect("create root");
    let node = format!("{root}/n");
    w.sync(root).await.expect("sync");
    let base = blocking(|| total_watches(w_server));

    // exists on a missing node registers a watch that fires on creation.
    let (stat, exists) = w.check_and_watch_stat(&node).await.expect("exists watch");
    assert_eq!(stat, None);
    let (kids, children) = w.list_and_watch_children(root).await.expect("child watch");
    assert!(kids.is_empty());
    wait_watches(w_server, base + 2).await;
    a.create(&node, b"1", &OPEN).await.expect("create");
    let ev = next_event("exists watch", exists).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, &*node)
    );
    let ev = next_event("child watch", children).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeChildrenChanged, root)
    );
    wait_watches(w_server, base).await;

    // A data watch fires once on the first change only.
    let (data, _, data_w) = w.get_and_watch_data(&node).await.expect("data watch");
    assert_eq!(data, b"1");
    wait_watches(w_server, base + 1).await;
    a.set_data(&node, b"2", None).await.expect("set");
    let ev = next_event("data watch", data_w).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, &*node)
    );
    wait_watches(w_server, base).await;
    a.set_data(&node, b"3", None).await.expect("set again");
    // A fresh watch sees the next change, not a stale one.
    w.sync(&node).await.expect("sync");
    let (data, _, data_w) = w.get_and_watch_data(&node).await.expect("data watch 2");
    assert_eq!(data, b"3");
    let (_, _, child_w) = w
        .get_and_watch_children(&node)
        .await
        .expect("child watch on node");
    let (_, exists_w) = w.check_and_watch_stat(&node).await.expect("exists watch 2");
    // Deleting the node fires the data, exists and child watches with NodeDeleted.
    a.delete(&node, None).await.expect("delete");
    for (what, watcher) in [
        ("data watch on delete", data_w),
        ("child watch on delete", child_w),
        ("exists watch on delete", exists_w),
    ] {
        let ev = next_event(what, watcher).await;
        assert_eq!(
            (ev.event_type, ev.path.as_str()),
            (EventType::NodeDeleted, &*node),
            "{what}"
        );
    }
    wait_watches(w_server, base).await;
    // getData on a missing node registers nothing.
    assert_eq!(
        w.get_and_watch_data(&node).await.unwrap_err(),
        Error::NoNode
    );
    assert_eq!(blocking(|| total_watches(w_server)), base);
}

/// Ephemeral and sequential nodes: owners, sequence numbers from the parent's child counter,
/// no children under ephemerals, ephemerals gone when the session closes.
async fn ephemeral_and_sequential(a: &Client, cluster_b: &str, root: &str) {
    a.create(root, b"", &OPEN).await.expect("create root");
    let b = connect(cluster_b).await;
    let eph = format!("{root}/eph");
    let (stat, _) = b.create(&eph, b"e", &EPHEMERAL).await.expect("ephemeral");
    assert_eq!(stat.ephemeral_owner, b.session_id().0);
    assert_eq!(
        b.create(&format!("{eph}/child"), b"", &OPEN)
            .await
            .unwrap_err(),
        Error::NoChildrenForEphemerals
    );
    let eph_seq = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (_, s1) = b
        .create(&format!("{root}/es-"), b"", &eph_seq)
        .await
        .expect("ephemeral sequential");
    assert_eq!(s1.into_i64(), 1, "the parent already had one child created");
    let mut mine = b.list_ephemerals(root).await.expect("getEphemerals");
    mine.sort();
    assert_eq!(mine, vec![eph.clone(), format!("{root}/es-0000000001")]);

    // Sequence numbers come from the count of children ever created (deletes do not reuse).
    let seq = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
    let (st, s2) = a
        .create(&format!("{root}/p-"), b"", &seq)
        .await
        .expect("sequential");
    assert_eq!(s2.into_i64(), 2);
    assert_eq!(st.ephemeral_owner, 0);
    a.delete(&format!("{root}/p-0000000002"), None)
        .await
        .expect("delete seq");
    let (_, s3) = a
        .create(&format!("{root}/p-"), b"", &seq)
        .await
        .expect("sequential 2");
    assert_eq!(s3.into_i64(), 3);
    let (_, s4) = a
        .create(&format!("{root}/"), b"", &seq)
        .await
        .expect("sequential without a prefix");
    assert_eq!(s4.into_i64(), 4);
    a.sync(root).await.expect("sync");
    let mut kids = a.list_children(root).await.expect("children");
    kids.sort();
    assert_eq!(
        kids,
        vec!["0000000004", "eph", "es-0000000001", "p-0000000003"]
    );

    // Closing b's session (dropping its last handle) deletes its ephemerals everywhere.
    let (_, gone) = a.check_and_watch_stat(&eph).await.expect("exists watch");
    drop(b);
    let ev = next_event("ephemeral deleted on close", gone).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    a.sync(root).await.expect("sync");
    let mut kids = a.list_children(root).await.expect("children");
    kids.sort();
    assert_eq!(kids, vec!["0000000004", "p-0000000003"]);
}

/// multi: a successful one with every op's result, a failing one with per-op errors and no
/// effect, and multiRead.
async fn multi(a: &Client, b: &Client, root: &str) {
    a.create(root, b"", &OPEN).await.expect("create root");
    let x = format!("{root}/x");
    let y = format!("{root}/y");
    a.create(&y, b"y0", &OPEN).await.expect("create y");
    let mut m = a.new_multi_writer();
    m.add_create(&x, b"x0", &OPEN).expect("add create");
    m.add_set_data(&y, b"y1", Some(0)).expect("add set");
    m.add_check_version(&y, 1).expect("add check");
    m.add_create(
        &format!("{root}/s-"),
        b"",
        &CreateMode::PersistentSequential.with_acls(Acls::anyone_all()),
    )
    .expect("add seq");
    m.add_delete(&y, Some(1)).expect("add delete");
    let results = within("multi", m.commit()).await.expect("multi commits");
    assert_eq!(results.len(), 5);
    match &results[0] {
        MultiWriteResult::Create { path, stat } => {
            assert_eq!(path, &x);
            // ZooKeeper 3.8 answers a create inside multi as a plain create (no Stat,
            // ZOOKEEPER-4026); the client then reports an invalid Stat.
            assert_eq!(stat.czxid, -1, "{stat:?}");
        }
        other => panic!("expected a create result, got {other:?}"),
    }
    let created_zxid = a.get_data(&x).await.expect("get x").1.czxid;
    let set_zxid = match &results[1] {
        MultiWriteResult::SetData { stat } => {
            assert_eq!(stat.version, 1);
            stat.mzxid
        }
        other => panic!("expected a setData result, got {other:?}"),
    };
    assert_eq!(created_zxid, set_zxid, "one zxid for the whole multi");
    assert_eq!(results[2], MultiWriteResult::Check);
    match &results[3] {
        MultiWriteResult::Create { path, .. } => assert_eq!(path, &format!("{root}/s-0000000002")),
        other => panic!("expected a create result, got {other:?}"),
    }
    assert_eq!(results[4], MultiWriteResult::Delete);
    b.sync(root).await.expect("sync");
    assert_eq!(b.check_stat(&y).await.expect("exists"), None);
    let (data, stat) = b.get_data(&x).await.expect("get x");
    assert_eq!((data.as_slice(), stat.czxid), (&b"x0"[..], created_zxid));

    // A failing multi: the op at index 1 fails, nothing is applied.
    let mut m = a.new_multi_writer();
    m.add_create(&format!("{root}/z"), b"", &OPEN)
        .expect("add create");
    m.add_set_data(&x, b"x1", Some(5)).expect("add set");
    m.add_delete(&x, None).expect("add delete");
    match within("failing multi", m.commit()).await {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (1, Error::BadVersion));
        }
        other => panic!("expected OperationFailed at index 1, got {other:?}"),
    }
    b.sync(root).await.expect("sync");
    assert_eq!(
        b.check_stat(&format!("{root}/z")).await.expect("exists"),
        None
    );
    let (data, stat) = b.get_data(&x).await.expect("x unchanged");
    assert_eq!((data.as_slice(), stat.version), (&b"x0"[..], 0));

    // A check that fails first.
    let mut m = a.new_multi_writer();
    m.add_check_version(&x, 3).expect("add check");
    m.add_delete(&x, None).expect("add delete");
    match within("failing check", m.commit()).await {
        Err(MultiWriteError::OperationFailed { index, source }) => {
            assert_eq!((index, source), (0, Error::BadVersion));
        }
        other => panic!("expected OperationFailed at index 0, got {other:?}"),
    }

    // multiRead: each op answers independently.
    let mut r = b.new_multi_reader();
    r.add_get_data(&x).expect("add get");
    r.add_get_children(root).expect("add children");
    r.add_get_data(&format!("{root}/missing"))
        .expect("add get missing");
    let results = within("multiRead", r.commit()).await.expect("multiRead");
    assert_eq!(results.len(), 3);
    match &results[0] {
        MultiReadResult::Data { data, stat } => {
            assert_eq!((data.as_slice(), stat.czxid), (&b"x0"[..], created_zxid));
        }
        other => panic!("expected data, got {other:?}"),
    }
    match &results[1] {
        MultiReadResult::Children { children } => {
            let mut c = children.clone();
            c.sort();
            assert_eq!(c, vec!["s-0000000002", "x"]);
        }
        other => panic!("expected children, got {other:?}"),
    }
    match &results[2] {
        MultiReadResult::Error { err } => assert_eq!(err, &Error::NoNode),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// addWatch: persistent (node's data and children, not removed when fired) and
/// persistent-recursive (every descendant; never NodeChildrenChanged).
async fn persistent_watches(a: &Client, w: &Client, w_server: SocketAddr, root: &str) {
    a.create(root, b"", &OPEN).await.expect("create root");
    w.sync(root).await.expect("sync");
    let base = blocking(|| total_watches(w_server));
    let p = format!("{root}/p");
    let mut persistent = w
        .watch(&p, AddWatchMode::Persistent)
        .await
        .expect("addWatch persistent");
    // (How many `wchs` entries a persistent watch makes depends on ZooKeeper's data and child
    // tables; only that it makes some, and that they go away with it, is checked.)
    let with_persistent = blocking(|| total_watches(w_server));
    assert!(with_persistent > base, "addWatch registered nothing");
    let mut recursive = w
        .watch(root, AddWatchMode::PersistentRecursive)
        .await
        .expect("addWatch recursive");
    let with_both = blocking(|| total_watches(w_server));
    assert!(
        with_both > with_persistent,
        "addWatch recursive registered nothing"
    );

    let child = format!("{p}/c");
    let grandchild = format!("{child}/g");
    a.create(&p, b"", &OPEN).await.expect("create p");
    a.set_data(&p, b"1", None).await.expect("set p");
    a.create(&child, b"", &OPEN).await.expect("create c");
    a.create(&grandchild, b"", &OPEN).await.expect("create g");
    a.set_data(&grandchild, b"1", None).await.expect("set g");
    a.set_data(&p, b"2", None).await.expect("set p again");
    a.delete(&grandchild, None).await.expect("delete g");
    a.delete(&child, None).await.expect("delete c");
    a.delete(&p, None).await.expect("delete p");

    let mut got = Vec::new();
    for _ in 0..6 {
        let ev = within("persistent watch", persistent.changed()).await;
        got.push((ev.event_type, ev.path));
    }
    assert_eq!(
        got,
        vec![
            (EventType::NodeCreated, p.clone()),
            (EventType::NodeDataChanged, p.clone()),
            (EventType::NodeChildrenChanged, p.clone()),
            (EventType::NodeDataChanged, p.clone()),
            (EventType::NodeChildrenChanged, p.clone()),
            (EventType::NodeDeleted, p.clone()),
        ],
        "persistent watch on {p}"
    );
    let mut got = Vec::new();
    for _ in 0..9 {
        let ev = within("recursive watch", recursive.changed()).await;
        got.push((ev.event_type, ev.path));
    }
    assert_eq!(
        got,
        vec![
            (EventType::NodeCreated, p.clone()),
            (EventType::NodeDataChanged, p.clone()),
            (EventType::NodeCreated, child.clone()),
            (EventType::NodeCreated, grandchild.clone()),
            (EventType::NodeDataChanged, grandchild.clone()),
            (EventType::NodeDataChanged, p.clone()),
            (EventType::NodeDeleted, grandchild.clone()),
            (EventType::NodeDeleted, child.clone()),
            (EventType::NodeDeleted, p.clone()),
        ],
        "recursive watch on {root}"
    );
    // Still registered after firing; dropping a watcher removes it on the server.
    assert_eq!(blocking(|| total_watches(w_server)), with_both);
    drop(persistent);
    wait_watches(w_server, base + with_both - with_persistent).await;
    a.create(&p, b"", &OPEN).await.expect("create p again");
    let ev = within("recursive watch after", recursive.changed()).await;
    assert_eq!(
        (ev.event_type, ev.path),
        (EventType::NodeCreated, p.clone())
    );
    drop(recursive);
    wait_watches(w_server, base).await;
}

/// Digest authentication and ACLs.
async fn acls(cluster: &str, root: &str) {
    let alice = connect(cluster).await;
    alice
        .auth("digest", b"alice:secret")
        .await
        .expect("addauth digest");
    let users = alice.list_auth_users().await.expect("whoami");
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "digest" && u.user() == "alice"),
        "{users:?}"
    );
    let creator = CreateMode::Persistent.with_acls(Acls::creator_all());
    alice
        .create(root, b"secret", &creator)
        .await
        .expect("create with creator_all");
    let (acl, stat) = alice.get_acl(root).await.expect("getAcl");
    assert_eq!(acl.len(), 1);
    assert_eq!(acl[0].scheme(), "digest");
    assert_eq!(acl[0].id(), "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=");
    assert_eq!(acl[0].permission(), Permission::ALL);
    assert_eq!(stat.aversion, 0);

    let eve = connect(cluster).await;
    eve.sync(root).await.expect("sync");
    assert_eq!(eve.get_data(root).await.unwrap_err(), Error::NoAuth);
    assert_eq!(
        eve.set_data(root, b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    // exists needs no permission.
    assert!(eve.check_stat(root).await.expect("exists").is_some());

    let read_all = [
        Acl::new(Permission::READ, AuthId::anyone()),
        Acl::new(
            Permission::ALL,
            AuthId::new("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
        ),
    ];
    let st = alice
        .set_acl(root, &Acls::new(&read_all), Some(0))
        .await
        .expect("setAcl");
    assert_eq!(st.aversion, 1);
    assert_eq!(
        alice
            .set_acl(root, &Acls::new(&read_all), Some(0))
            .await
            .unwrap_err(),
        Error::BadVersion
    );
    eve.sync(root).await.expect("sync");
    let (data, _) = eve.get_data(root).await.expect("world may read now");
    assert_eq!(data, b"secret");
    assert_eq!(
        eve.set_data(root, b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
    assert_eq!(
        eve.auth("digest", b"alice:wrong").await.map(|()| "ok"),
        Ok("ok"),
        "a wrong password is a different digest identity, not a failure"
    );
    assert_eq!(
        eve.set_data(root, b"x", None).await.unwrap_err(),
        Error::NoAuth
    );
}

/// Requests pipelined on one session are answered in order, and a read sent right behind a
/// write sees it (ZooKeeper's FIFO client order), also when the write goes to the leader
/// through another server.
async fn pipelined(a: &Client, root: &str) {
    a.create(root, b"", &OPEN).await.expect("create root");
    let paths: Vec<String> = (0..150).map(|k| format!("{root}/{k}")).collect();
    let mut creates = Vec::new();
    let mut reads = Vec::new();
    // Every request is sent when its method is called; the futures only wait for answers.
    for (k, path) in paths.iter().enumerate() {
        creates.push(a.create(path, k.to_string().as_bytes(), &OPEN));
        reads.push(a.get_data(path));
        if k % 3 == 0 {
            reads.push(a.get_data(path));
        }
    }
    let mut last = 0;
    for (k, create) in creates.into_iter().enumerate() {
        let (stat, _) = within("pipelined create", create)
            .await
            .unwrap_or_else(|e| panic!("create {k}: {e}"));
        assert!(stat.czxid > last, "creates applied in the order sent");
        last = stat.czxid;
    }
    for (n, read) in reads.into_iter().enumerate() {
        let (data, _) = within("pipelined read", read)
            .await
            .unwrap_or_else(|e| panic!("read #{n} did not see the create sent before it: {e}"));
        assert!(!data.is_empty());
    }
    assert_eq!(a.count_descendants_number(root).await.expect("count"), 150);
}

fn lock_options() -> zookeeper_client::LockOptions<'static> {
    zookeeper_client::LockOptions::new(Acls::anyone_all())
        .with_ancestor_options(OPEN)
        .expect("ancestor options")
}

fn curator(dir: &str) -> zookeeper_client::LockPrefix<'_> {
    zookeeper_client::LockPrefix::new_curator(dir, "lock-").expect("prefix")
}

/// Odds and ends real applications use: chroot, Curator-style locks, containers, TTL nodes
/// refused while extended types are off, whoami, /zookeeper/config.
async fn misc(cluster: &str, root: &str, ensemble: bool) {
    let a = connect(cluster).await;
    a.create(root, b"", &OPEN).await.expect("create root");

    // chroot: the client prefixes paths and strips them from answers and events.
    let chrooted = connect(&format!("{cluster}{root}")).await;
    let (_, w) = chrooted
        .check_and_watch_stat("/x")
        .await
        .expect("exists watch");
    chrooted
        .create("/x", b"in", &OPEN)
        .await
        .expect("chroot create");
    let ev = next_event("chroot watch", w).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeCreated, "/x")
    );
    let (data, _) = a.get_data(&format!("{root}/x")).await.expect("real path");
    assert_eq!(data, b"in");
    let (_, seq) = chrooted
        .create(
            "/s-",
            b"",
            &CreateMode::PersistentSequential.with_acls(Acls::anyone_all()),
        )
        .await
        .expect("chroot sequential");
    assert_eq!(seq.into_i64(), 1);

    // A Curator-compatible lock: the second contender waits for the first to let go.
    let b = connect(cluster).await;
    let dir = format!("{root}/lock");
    let held = within("first lock", a.lock(curator(&dir), b"a", lock_options()))
        .await
        .expect("lock");
    assert!(
        held.lock_path().starts_with(&format!("{dir}/_c_")),
        "{}",
        held.lock_path()
    );
    let second = {
        let b = b.clone();
        let dir = dir.clone();
        tokio::spawn(async move {
            let l = b
                .lock(curator(&dir), b"b", lock_options())
                .await
                .expect("second lock");
            l.lock_path().to_string()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "the lock is held");
    drop(held);
    let second_path = within("second lock", second).await.expect("join");
    assert!(second_path.ends_with("lock-0000000001"), "{second_path}");

    // Containers are shown as persistent; TTL nodes need extendedTypesEnabled.
    let container = CreateMode::Container.with_acls(Acls::anyone_all());
    let (st, _) = a
        .create(&format!("{root}/box"), b"", &container)
        .await
        .expect("container");
    assert_eq!(st.ephemeral_owner, 0);
    let ttl = OPEN.clone().with_ttl(Duration::from_secs(60));
    assert_eq!(
        a.create(&format!("{root}/ttl"), b"", &ttl)
            .await
            .unwrap_err(),
        Error::Unimplemented
    );

    let users = b.list_auth_users().await.expect("whoami");
    assert!(
        users
            .iter()
            .any(|u| u.scheme() == "ip" && u.user() == "127.0.0.1"),
        "{users:?}"
    );
    let (config, _) = a.get_config().await.expect("/zookeeper/config");
    let config = String::from_utf8_lossy(&config).to_string();
    if ensemble {
        assert!(config.contains("server.1=127.0.0.1:"), "{config}");
        assert!(config.contains("server.3=127.0.0.1:"), "{config}");
    }
}

// ----- tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_server_serves_the_rust_client() {
    let e = blocking(|| Ensemble::start(1, ""));
    blocking(|| e.wait_stable(STABLE));
    let cluster = connect_string(&e, &[1]);
    let server = e.node(1).client;
    let a = connect(&cluster).await;
    let b = connect(&cluster).await;
    crud(&a, &b, "/crud").await;
    watches(&a, &b, server, "/watches").await;
    ephemeral_and_sequential(&a, &cluster, "/eph").await;
    multi(&a, &b, "/multi").await;
    persistent_watches(&a, &b, server, "/persistent").await;
    acls(&cluster, "/acl").await;
    pipelined(&a, "/pipe").await;
    misc(&cluster, "/misc", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_serve_the_rust_client_across_servers() {
    let e = blocking(|| Ensemble::start(3, ""));
    let leader = blocking(|| e.wait_stable(STABLE));
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let other = (1..=3)
        .find(|id| *id != leader && *id != follower)
        .expect("another follower");
    // Writes from a follower, reads and watches on the other follower and on the leader.
    let on_follower = connect(&connect_string(&e, &[follower])).await;
    let on_other = connect(&connect_string(&e, &[other])).await;
    let on_leader = connect(&connect_string(&e, &[leader])).await;
    crud(&on_follower, &on_other, "/crud").await;
    crud(&on_leader, &on_follower, "/crud2").await;
    watches(&on_follower, &on_other, e.node(other).client, "/watches").await;
    watches(&on_other, &on_leader, e.node(leader).client, "/watches2").await;
    ephemeral_and_sequential(&on_follower, &connect_string(&e, &[other]), "/eph").await;
    multi(&on_other, &on_leader, "/multi").await;
    persistent_watches(
        &on_leader,
        &on_follower,
        e.node(follower).client,
        "/persistent",
    )
    .await;
    acls(&connect_string(&e, &[other]), "/acl").await;
    pipelined(&on_follower, "/pipe").await;
    pipelined(&on_leader, "/pipe2").await;
    misc(&connect_string(&e, &[follower]), "/misc", true).await;
}

/// A loopback TCP relay that can cut a client off its server (drop every connection and
/// refuse new ones) without touching either process.
struct Relay {
    addr: SocketAddr,
    blocked: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let blocked = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (b, c) = (Arc::clone(&blocked), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if b.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().expect("relay lock").push(task);
            }
        });
        Relay {
            addr,
            blocked,
            conns,
            accept,
        }
    }

    fn block(&self) {
        self.blocked.store(true, Ordering::SeqCst);
        for t in self.conns.lock().expect("relay lock").drain(..) {
            t.abort();
        }
    }

    fn unblock(&self) {
        self.blocked.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.block();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_loses_its_ephemerals_and_its_client_sees_expired() {
    let e = blocking(|| Ensemble::start(1, ""));
    blocking(|| e.wait_stable(STABLE));
    let cluster = connect_string(&e, &[1]);
    let observer = connect(&cluster).await;

    // 1. A live client cut off from the server: the server expires its session.
    let relay = Relay::start(e.node(1).client).await;
    let timeout = Duration::from_millis(2000);
    let victim = connect_with(&relay.addr.to_string(), timeout).await;
    assert!(
        victim.session_timeout() <= timeout,
        "negotiated {:?}",
        victim.session_timeout()
    );
    victim
        .create("/victim", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    let (stat, gone) = observer
        .check_and_watch_stat("/victim")
        .await
        .expect("exists watch");
    assert_eq!(stat.map(|s| s.ephemeral_owner), Some(victim.session_id().0));
    let cut = Instant::now();
    relay.block();
    let ev = next_event("ephemeral deleted on expiry", gone).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDeleted, "/victim")
    );
    let took = cut.elapsed();
    assert!(
        took >= timeout / 2,
        "the session expired after {took:?}, before its timeout {timeout:?}"
    );
    assert_eq!(observer.check_stat("/victim").await.expect("exists"), None);
    relay.unblock();
    wait_state("victim expired", &victim, SessionState::Expired).await;
    assert_eq!(
        victim.create("/again", b"", &OPEN).await.unwrap_err(),
        Error::SessionExpired
    );

    // 2. A session left without a client expires; re-attaching to it is refused with a
    //    SessionExpired answer from the server.
    let detached = Client::connector()
        .with_session_timeout(timeout)
        .with_detached()
        .connect(&cluster)
        .await
        .expect("detached session");
    detached
        .create("/detached", b"", &EPHEMERAL)
        .await
        .expect("ephemeral");
    let info = detached.session().clone();
    // Re-attaching while it lives works and keeps the session id.
    let again = Client::connector()
        .with_session(info.clone())
        .with_detached()
        .connect(&cluster)
        .await
        .expect("re-attach a live session");
    assert_eq!(again.session_id(), info.id());
    let (_, gone) = observer
        .check_and_watch_stat("/detached")
        .await
        .expect("exists watch");
    drop(detached);
    drop(again);
    let ev = next_event("detached ephemeral deleted on expiry", gone).await;
    assert_eq!(ev.event_type, EventType::NodeDeleted);
    let refused = Client::connector()
        .with_session(info)
        .connect(&cluster)
        .await;
    assert!(
        matches!(refused, Err(Error::SessionExpired)),
        "re-attaching an expired session: {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_server_dies_moves_to_another_with_its_session_and_watches() {
    // A session timeout long enough to ride out a leader election on a loaded machine.
    let e = blocking(|| Ensemble::start(3, "maxSessionTimeout=30000\n"));
    let mut e = e;
    blocking(|| e.wait_stable(STABLE));
    let all = connect_string(&e, &[1, 2, 3]);
    let client = connect_with(&all, Duration::from_secs(20)).await;
    assert!(client.session_timeout() >= Duration::from_secs(10));
    let session = client.session_id().0;
    client.create("/r", b"", &OPEN).await.expect("create /r");
    let (eph, _) = client
        .create("/r/eph", b"mine", &EPHEMERAL)
        .await
        .expect("ephemeral");
    // A one-shot watch and a persistent watch, to be re-registered after the move.
    let (_, _, data_w) = client.get_and_watch_data("/r").await.expect("data watch");
    let mut recursive = client
        .watch("/r", AddWatchMode::PersistentRecursive)
        .await
        .expect("recursive watch");
    let first = {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(id) = blocking(|| server_of(&e, session)) {
                break id;
            }
            assert!(
                Instant::now() < deadline,
                "no server lists session {session:x}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    eprintln!("session 0x{session:x} is on server {first}; killing it");
    blocking(|| e.kill(first));
    let survivors: Vec<u64> = (1..=3).filter(|id| *id != first).collect();
    // The client continues, on another server, with the same session.
    let node = within("a write after the move", async {
        loop {
            match client.create("/r/after", b"", &OPEN).await {
                Ok(_) | Err(Error::NodeExists) => break,
                Err(Error::ConnectionLoss) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(err) => panic!("write after the move: {err}"),
            }
        }
        client.get_data("/r/eph").await
    })
    .await
    .expect("the ephemeral survived the move");
    assert_eq!(node.0, b"mine");
    assert_eq!(node.1, eph);
    assert_eq!(client.session_id().0, session);
    let now_on = blocking(|| server_of(&e, session));
    assert!(
        now_on.is_some_and(|id| survivors.contains(&id)),
        "session is on {now_on:?}, not one of {survivors:?}"
    );
    // Another client, on a surviving server, still sees the ephemeral with its owner.
    let other = connect(&connect_string(&e, &survivors)).await;
    other.sync("/r").await.expect("sync");
    let st = other
        .check_stat("/r/eph")
        .await
        .expect("exists")
        .expect("ephemeral still there");
    assert_eq!(st.ephemeral_owner, session);
    // The watches set before the move still fire (re-registered with SetWatches2).
    other
        .set_data("/r", b"changed", None)
        .await
        .expect("set /r");
    let ev = next_event("data watch after the move", data_w).await;
    assert_eq!(
        (ev.event_type, ev.path.as_str()),
        (EventType::NodeDataChanged, "/r")
    );
    let mut seen = Vec::new();
    within("recursive watch after the move", async {
        loop {
            let ev = recursive.changed().await;
            if ev.event_type == EventType::Session {
                continue;
            }
            let done = ev.path == "/r" && ev.event_type == EventType::NodeDataChanged;
            seen.push((ev.event_type, ev.path));
            if done {
                break;
            }
        }
    })
    .await;
    // The write after the move may or may not have been observed (it raced the SetWatches).
    assert!(
        seen.iter().all(|(t, p)| {
            (*t, p.as_str()) == (EventType::NodeCreated, "/r/after")
                || (*t, p.as_str()) == (EventType::NodeDataChanged, "/r")
        }),
        "{seen:?}"
    );
    // The killed server comes back and catches up; the session's ephemeral is there too.
    blocking(|| e.start_node(first));
    blocking(|| e.wait_stable(STABLE));
    let back = connect(&connect_string(&e, &[first])).await;
    back.sync("/r").await.expect("sync");
    let st = back
        .check_stat("/r/eph")
        .await
        .expect("exists")
        .expect("ephemeral on the restarted server");
    assert_eq!(st.ephemeral_owner, session);
    // Closing the session removes the ephemeral on every server.
    drop(recursive);
    drop(client);
    let deadline = Instant::now() + STEP;
    loop {
        back.sync("/r").await.expect("sync");
        if back.check_stat("/r/eph").await.expect("exists").is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ephemeral survived its session's close"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
