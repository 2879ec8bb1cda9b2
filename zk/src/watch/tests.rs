//! Watch trigger tables: which events each change fires for which watch, one-shot removal,
//! persistent and recursive watches (incl. the verified recursive event sequence),
//! check/removeWatches, setWatches on reconnect, and notification frames.

use super::*;
use crate::proto::{
    ExistsRequest, GetChildrenRequest, Request, Response, encode_notification, perms,
};
use crate::testkit::*;
use zab_spec::Zxid;

const CREATED: i32 = event_type::NODE_CREATED;
const DELETED: i32 = event_type::NODE_DELETED;
const CHANGED: i32 = event_type::NODE_DATA_CHANGED;
const CHILD: i32 = event_type::NODE_CHILDREN_CHANGED;

fn ev(s: i64, t: i32, p: &str) -> (i64, i32, String) {
    (s, t, p.to_owned())
}

fn exists(path: &str, watch: bool) -> Request {
    Request::Exists(ExistsRequest {
        path: path.into(),
        watch,
    })
}

fn children(path: &str, watch: bool) -> Request {
    Request::GetChildren(GetChildrenRequest {
        path: path.into(),
        watch,
    })
}

fn sim() -> Sim {
    let mut s = Sim::new();
    s.open(1);
    s.open(2);
    s.created(1, &create("/a", 0));
    s
}

/// The trigger table: (watch set up by session 2, change by session 1, expected events).
#[test]
fn one_shot_trigger_table() {
    type Step = fn(&mut Sim);
    type Case = (&'static str, Step, Step, Vec<(i64, i32, String)>);
    let cases: Vec<Case> = vec![
        (
            "data watch, setData",
            |s| {
                s.read(2, &get_data("/a", true)).ok();
            },
            |s| {
                s.code(1, &set_data("/a", b"x", -1));
            },
            vec![ev(2, CHANGED, "/a")],
        ),
        (
            "data watch, delete",
            |s| {
                s.read(2, &get_data("/a", true)).ok();
            },
            |s| {
                s.code(1, &delete("/a", -1));
            },
            vec![ev(2, DELETED, "/a")],
        ),
        (
            "data watch, child created: nothing",
            |s| {
                s.read(2, &get_data("/a", true)).ok();
            },
            |s| {
                s.created(1, &create("/a/c", 0));
            },
            vec![],
        ),
        (
            "exists watch on missing node, create",
            |s| {
                assert_eq!(s.read(2, &exists("/b", true)), Err(ErrorCode::NoNode));
            },
            |s| {
                s.created(1, &create("/b", 0));
            },
            vec![ev(2, CREATED, "/b")],
        ),
        (
            "exists watch on existing node, setData",
            |s| {
                assert!(s.read(2, &exists("/a", true)).is_ok());
            },
            |s| {
                s.code(1, &set_data("/a", b"", -1));
            },
            vec![ev(2, CHANGED, "/a")],
        ),
        (
            "child watch, child created",
            |s| {
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.created(1, &create("/a/c", 0));
            },
            vec![ev(2, CHILD, "/a")],
        ),
        (
            "child watch, node itself deleted",
            |s| {
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.code(1, &delete("/a", -1));
            },
            vec![ev(2, DELETED, "/a")],
        ),
        (
            "child watch, setData: nothing",
            |s| {
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.code(1, &set_data("/a", b"", -1));
            },
            vec![],
        ),
        (
            "child watch on parent, child deleted",
            |s| {
                s.created(1, &create("/a/c", 0));
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.code(1, &delete("/a/c", -1));
            },
            vec![ev(2, CHILD, "/a")],
        ),
        (
            "data + child watch, delete: one NodeDeleted",
            |s| {
                s.read(2, &get_data("/a", true)).ok();
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.code(1, &delete("/a", -1));
            },
            vec![ev(2, DELETED, "/a")],
        ),
        (
            "ephemeral deleted by closeSession",
            |s| {
                s.created(1, &create("/a/e", 1));
                s.read(2, &exists("/a/e", true)).ok();
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.code(1, &Request::CloseSession);
            },
            vec![ev(2, DELETED, "/a/e"), ev(2, CHILD, "/a")],
        ),
        (
            "getData on a missing node registers nothing",
            |s| {
                assert_eq!(s.read(2, &get_data("/b", true)), Err(ErrorCode::NoNode));
                assert_eq!(s.read(2, &children("/b", true)), Err(ErrorCode::NoNode));
            },
            |s| {
                s.created(1, &create("/b", 0));
                s.created(1, &create("/b/c", 0));
            },
            vec![],
        ),
        (
            "setACL fires nothing",
            |s| {
                s.read(2, &get_data("/a", true)).ok();
                s.read(2, &children("/a", true)).ok();
            },
            |s| {
                s.code(
                    1,
                    &Request::SetAcl(crate::proto::SetAclRequest {
                        path: "/a".into(),
                        acl: crate::proto::ids::open_acl_unsafe(),
                        version: -1,
                    }),
                );
            },
            vec![],
        ),
        (
            "failed multi fires nothing, successful multi fires each op",
            |s| {
                s.read(2, &children("/a", true)).ok();
                s.read(2, &exists("/x", true)).ok();
            },
            |s| {
                s.write(
                    1,
                    &Request::Multi(vec![m_create("/a/m", 0), m_check("/a", 9)]),
                );
                s.write(
                    1,
                    &Request::Multi(vec![m_create("/a/m", 0), m_create("/x", 0)]),
                );
            },
            vec![ev(2, CHILD, "/a"), ev(2, CREATED, "/x")],
        ),
    ];
    for (name, setup, change, expected) in cases {
        let mut s = sim();
        setup(&mut s);
        s.take_events();
        change(&mut s);
        let fired = !expected.is_empty();
        assert_eq!(s.take_events(), expected, "{name}");
        if fired {
            // One-shot: every watch that fired is gone.
            assert_eq!(
                s.watches.paths_of(SessionId(2)).len(),
                0,
                "{name}: removed after firing"
            );
        }
    }
}

#[test]
fn verified_probe_notifications() {
    // §10 "A notifications: type=3 /probe ; type=1 /probe/w ; type=4 /probe".
    let mut s = sim();
    s.created(1, &create("/probe", 0));
    s.read(2, &get_data("/probe", true)).ok();
    s.read(2, &exists("/probe/w", true)).ok();
    s.code(1, &set_data("/probe", b"1", -1));
    s.read(2, &children("/probe", true)).ok();
    s.created(1, &create("/probe/w", 0));
    assert_eq!(
        s.take_events(),
        vec![
            ev(2, CHANGED, "/probe"),
            ev(2, CREATED, "/probe/w"),
            ev(2, CHILD, "/probe")
        ]
    );
}

#[test]
fn persistent_watches_stay_and_see_children() {
    let mut s = sim();
    assert_eq!(s.watches.add_watch(SessionId(2), "/a", 0), Ok(()));
    s.code(1, &set_data("/a", b"1", -1));
    s.code(1, &set_data("/a", b"2", -1));
    s.created(1, &create("/a/c", 0));
    s.created(1, &create("/a/c/d", 0));
    s.code(1, &delete("/a/c/d", -1));
    s.code(1, &delete("/a/c", -1));
    s.code(1, &delete("/a", -1));
    s.created(1, &create("/a", 0));
    assert_eq!(
        s.take_events(),
        vec![
            ev(2, CHANGED, "/a"),
            ev(2, CHANGED, "/a"),
            ev(2, CHILD, "/a"),
            ev(2, CHILD, "/a"),
            ev(2, DELETED, "/a"),
            ev(2, CREATED, "/a"),
        ]
    );
}

#[test]
fn recursive_watches_verified_sequence_and_no_child_events() {
    // §9/§10: addWatch PERSISTENT_RECURSIVE on /probe → (3,/probe/w), (2,/probe/w), (3,/probe).
    let mut s = sim();
    s.created(1, &create("/probe", 0));
    s.created(1, &create("/probe/w", 0));
    assert_eq!(s.watches.add_watch(SessionId(2), "/probe", 1), Ok(()));
    s.code(1, &set_data("/probe/w", b"1", -1));
    s.code(1, &delete("/probe/w", -1));
    s.code(1, &set_data("/probe", b"1", -1));
    assert_eq!(
        s.take_events(),
        vec![
            ev(2, CHANGED, "/probe/w"),
            ev(2, DELETED, "/probe/w"),
            ev(2, CHANGED, "/probe")
        ]
    );
    // Deep descendants, creates; never NodeChildrenChanged.
    s.created(1, &create("/probe/x", 0));
    s.created(1, &create("/probe/x/y", 0));
    s.created(1, &create("/other", 0));
    assert_eq!(
        s.take_events(),
        vec![ev(2, CREATED, "/probe/x"), ev(2, CREATED, "/probe/x/y")]
    );
    // A recursive watch on / sees everything.
    s.watches.add_watch(SessionId(1), "/", 1).ok();
    s.created(2, &create("/z", 0));
    assert_eq!(s.take_events(), vec![ev(1, CREATED, "/z")]);
    assert_eq!(
        s.watches.add_watch(SessionId(1), "/", 7),
        Err(ErrorCode::MarshallingError)
    );
}

#[test]
fn one_shot_and_persistent_watches_on_the_same_path_coexist() {
    let mut s = sim();
    s.watches.add_watch(SessionId(2), "/a", 0).ok();
    s.read(2, &get_data("/a", true)).ok();
    s.code(1, &set_data("/a", b"1", -1));
    s.code(1, &set_data("/a", b"2", -1));
    // One event per change (not two), and the persistent watch survives the one-shot's removal.
    assert_eq!(
        s.take_events(),
        vec![ev(2, CHANGED, "/a"), ev(2, CHANGED, "/a")]
    );
    // The persistent watch is in the data table: checkWatches of type Data finds it.
    assert_eq!(
        s.watches
            .check_watches(SessionId(2), "/a", watcher_type::DATA),
        Ok(())
    );
    assert_eq!(
        s.watches
            .check_watches(SessionId(2), "/a", watcher_type::PERSISTENT),
        Err(ErrorCode::MarshallingError),
        "type 4 is ZooKeeper 3.9's"
    );
}

#[test]
fn several_sessions_are_notified_in_id_order_and_recursive_plus_child_both_fire() {
    let mut s = sim();
    s.open(3);
    s.read(3, &get_data("/a", true)).ok();
    s.read(2, &get_data("/a", true)).ok();
    s.watches.add_watch(SessionId(1), "/", 1).ok();
    s.read(1, &children("/a", true)).ok();
    s.created(2, &create("/a/k", 0));
    s.code(2, &set_data("/a", b"", -1));
    assert_eq!(
        s.take_events(),
        vec![
            ev(1, CREATED, "/a/k"),
            ev(1, CHILD, "/a"),
            ev(1, CHANGED, "/a"),
            ev(2, CHANGED, "/a"),
            ev(3, CHANGED, "/a"),
        ]
    );
}

#[test]
fn check_and_remove_watches() {
    let mut w = WatchManager::new();
    let s = SessionId(2);
    w.add_data_watch(s, "/a");
    w.add_child_watch(s, "/b");
    w.add_watch(s, "/p", 0).ok();
    w.add_watch(s, "/r", 1).ok();
    assert_eq!(w.check_watches(s, "/a", watcher_type::DATA), Ok(()));
    assert_eq!(
        w.check_watches(s, "/a", watcher_type::CHILDREN),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(w.check_watches(s, "/a", watcher_type::ANY), Ok(()));
    assert_eq!(w.check_watches(s, "/b", watcher_type::CHILDREN), Ok(()));
    assert_eq!(w.check_watches(s, "/p", watcher_type::ANY), Ok(()));
    // ZooKeeper 3.8 (verified): a recursive watch is in both tables, so type Children finds it.
    assert_eq!(w.check_watches(s, "/r", watcher_type::CHILDREN), Ok(()));
    assert_eq!(
        w.check_watches(s, "/r", watcher_type::PERSISTENT_RECURSIVE),
        Err(ErrorCode::MarshallingError)
    );
    // ZooKeeper 3.8 (verified): checkWatches finds another session's watch on the path...
    assert_eq!(
        w.check_watches(SessionId(9), "/a", watcher_type::ANY),
        Ok(())
    );
    // ...but removeWatches removes only the caller's own.
    assert_eq!(
        w.remove_watches(SessionId(9), "/a", watcher_type::ANY),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.check_watches(SessionId(9), "/nothing", watcher_type::ANY),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.check_watches(s, "/a", 9),
        Err(ErrorCode::MarshallingError)
    );
    assert_eq!(w.watch_count(), 6, "addWatch watches sit in both tables");
    // verified: removeWatches 0, removeWatches again -121.
    assert_eq!(w.remove_watches(s, "/a", watcher_type::DATA), Ok(()));
    assert_eq!(
        w.remove_watches(s, "/a", watcher_type::DATA),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(
        w.remove_watches(s, "/b", watcher_type::DATA),
        Err(ErrorCode::NoWatcher)
    );
    assert_eq!(w.remove_watches(s, "/b", watcher_type::ANY), Ok(()));
    // Type Data removes the persistent watch's data-table half only.
    assert_eq!(w.remove_watches(s, "/p", watcher_type::DATA), Ok(()));
    assert_eq!(w.check_watches(s, "/p", watcher_type::ANY), Ok(()));
    assert_eq!(w.remove_watches(s, "/p", watcher_type::ANY), Ok(()));
    assert_eq!(w.remove_watches(s, "/r", watcher_type::ANY), Ok(()));
    assert_eq!(w.watch_count(), 0);
    // Nothing fires any more.
    assert!(w.trigger(&Trigger::DataChanged("/r/x".into())).is_empty());
    assert!(w.sessions().is_empty());
}

#[test]
fn drop_session_forgets_everything() {
    let mut w = WatchManager::new();
    let s = SessionId(2);
    w.add_data_watch(s, "/a");
    w.add_child_watch(s, "/a");
    w.add_watch(s, "/", 1).ok();
    w.add_data_watch(SessionId(3), "/a");
    assert_eq!(w.path_count(), 2);
    w.drop_session(s);
    assert_eq!(w.paths_of(s).len(), 0);
    let n = w.trigger(&Trigger::DataChanged("/a".into()));
    assert_eq!(n.len(), 1);
    assert_eq!(n.first().map(|n| n.session), Some(SessionId(3)));
    assert!(
        w.trigger(&Trigger::Created("/q".into())).is_empty(),
        "no recursive left"
    );
}

#[test]
fn set_watches_fires_what_the_client_missed() {
    let mut s = sim();
    s.created(1, &create("/same", 0));
    s.created(1, &create("/kids", 0));
    s.created(1, &create("/gone", 0));
    let rel = Zxid::new(1, s.counter).to_u64() as i64;
    // Changes while the client was away.
    s.code(1, &set_data("/a", b"new", -1));
    s.created(1, &create("/kids/k", 0));
    s.code(1, &delete("/gone", -1));
    s.created(1, &create("/born", 0));
    let w = SetWatches2 {
        relative_zxid: rel,
        data_watches: vec!["/a".into(), "/same".into(), "/gone".into()],
        exist_watches: vec!["/born".into(), "/unborn".into()],
        child_watches: vec!["/kids".into(), "/same".into(), "/gone".into()],
        persistent_watches: vec!["/p".into()],
        persistent_recursive_watches: vec!["/r".into()],
    };
    let fired = s.watches.set_watches(&s.tree, SessionId(2), &w);
    let fired: Vec<_> = fired
        .into_iter()
        .map(|n| (n.session.0, n.event.event_type, n.event.path))
        .collect();
    assert_eq!(
        fired,
        vec![
            ev(2, CHANGED, "/a"),
            ev(2, DELETED, "/gone"),
            ev(2, CREATED, "/born"),
            ev(2, CHILD, "/kids"),
            ev(2, DELETED, "/gone"),
        ]
    );
    // Re-registered: /same (data + child), /unborn (exist), /p, /r.
    assert_eq!(
        s.watches
            .paths_of(SessionId(2))
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["/p", "/r", "/same", "/unborn"]
    );
    s.created(1, &create("/unborn", 0));
    s.created(1, &create("/same/x", 0));
    s.created(1, &create("/r", 0));
    assert_eq!(
        s.take_events(),
        vec![
            ev(2, CREATED, "/unborn"),
            ev(2, CHILD, "/same"),
            ev(2, CREATED, "/r")
        ]
    );
    // SetWatches (v1) converts.
    let v1 = crate::proto::SetWatches {
        relative_zxid: 0,
        data_watches: vec!["/a".into()],
        exist_watches: vec![],
        child_watches: vec![],
    };
    let fired = s.watches.set_watches(&s.tree, SessionId(1), &v1.into());
    assert_eq!(fired.len(), 1, "mzxid > 0");
}

#[test]
fn notification_frames_match_the_wire() {
    // §9: ReplyHeader(-1, -1, 0) + WatcherEvent(type, 3, path); 34–36 byte frames verified.
    let n = encode_notification(&WatcherEvent {
        event_type: CREATED,
        state: keeper_state::SYNC_CONNECTED,
        path: "/probe/w".into(),
    });
    let mut expected = vec![0, 0, 0, 36, 0xff, 0xff, 0xff, 0xff];
    expected.extend_from_slice(&[0xff; 8]);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 8]);
    expected.extend_from_slice(b"/probe/w");
    assert_eq!(n.as_ref(), expected.as_slice());
}

#[test]
fn a_read_registers_only_with_the_watch_flag() {
    let mut s = sim();
    s.read(2, &get_data("/a", false)).ok();
    s.read(2, &exists("/a", false)).ok();
    s.read(2, &children("/a", false)).ok();
    assert_eq!(s.watches.watch_count(), 0);
    assert!(matches!(
        s.read(2, &children("/a", true)),
        Ok(Response::GetChildren(_))
    ));
    assert_eq!(s.watches.watch_count(), 1);
    // NoAuth reads register nothing.
    s.write(
        1,
        &create_acl(
            "/locked",
            vec![crate::proto::Acl::new(perms::WRITE, "world", "anyone")],
        ),
    );
    assert_eq!(
        s.read(2, &get_data("/locked", true)),
        Err(ErrorCode::NoAuth)
    );
    assert_eq!(s.watches.watch_count(), 1);
}

/// ZooKeeper 3.8 (verified against 3.8.0): `addWatch` in recursive mode also enters the child
/// table, so removing its data half leaves NodeDeleted of descendants firing (through the
/// child table), while NodeChildrenChanged never fires for it.
#[test]
fn a_recursive_watch_is_in_both_tables_like_zookeeper_3_8() {
    let mut w = WatchManager::new();
    let s = SessionId(2);
    w.add_watch(s, "/r", 1).ok();
    assert_eq!(w.remove_watches(s, "/r", watcher_type::DATA), Ok(()));
    assert_eq!(w.check_watches(s, "/r", watcher_type::CHILDREN), Ok(()));
    assert!(w.trigger(&Trigger::Created("/r/x".into())).is_empty());
    assert!(w.trigger(&Trigger::DataChanged("/r/x".into())).is_empty());
    let n = w.trigger(&Trigger::Deleted("/r/x".into()));
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0].event.event_type, DELETED);
    assert_eq!(n[0].event.path, "/r/x");
}
