//! Bounds on the DataTree's memory (issue 12), measured as the growth of the resident set:
//! bytes held per znode of 100 B (under 100 parents), that capturing a snapshot copies
//! nothing, and that a write after a capture copies only a path's worth of branches. Bytes
//! and counts, never timings. One test function: the resident set is process-wide, so no
//! other test may allocate concurrently.

use bytes::Bytes;
use zab_spec::{SessionId, Zxid};
use zab_zk::proto::{Acl, ids};
use zab_zk::txn::{CreateTxn, NodeKind, TxnBody, TxnHeader};
use zab_zk::{DataTree, Txn};

/// This process's resident set (VmRSS), bytes (Linux's /proc; the workspace forbids the
/// `unsafe` a counting allocator needs).
fn held() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok());
    assert!(kb.is_some(), "no VmRSS in /proc/self/status");
    kb.unwrap_or(0) * 1024
}

fn txn(body: TxnBody) -> Txn {
    Txn {
        header: TxnHeader {
            session: SessionId(1),
            cxid: 1,
            time: 1_700_000_000_000,
        },
        body,
    }
}

fn create(path: String, data: Option<Bytes>, parent_cversion: i32, acl: Vec<Acl>) -> Txn {
    txn(TxnBody::Create(CreateTxn {
        path,
        data,
        acl,
        kind: NodeKind::Persistent,
        parent_cversion,
        sequential: false,
        with_stat: false,
    }))
}

/// Resident bytes a znode of 100 B may add beyond its data: its name, stat, ACL reference,
/// its entry in its parent's children, its share of the branches, the data's `Bytes`
/// bookkeeping and malloc's overhead on each. Measured by `tree_mem` (100 k znodes): 259 B
/// with the persistent trie; 357 B with the flat path map it replaced (the path stored as
/// the key and again as the parent's child name, the hash table's spare slots).
const OVERHEAD_PER_ZNODE: f64 = 300.0;

#[test]
fn tree_memory_is_bounded_per_znode_and_a_capture_copies_nothing() {
    const PARENTS: usize = 100;
    const PER_PARENT: usize = 200;
    const DATA: usize = 100;
    let mut tree = DataTree::new();
    let mut counter = 0u32;
    let mut zxid = || {
        counter += 1;
        Zxid::new(1, counter)
    };
    // A custom ACL, equal for every node: interned, so it is held once.
    let digest = vec![Acl::new(31, "digest", "user:c2VjcmV0c2VjcmV0c2VjcmV0c2U=")];
    for p in 0..PARENTS {
        tree.apply(
            &create(
                format!("/p{p:03}"),
                Some(Bytes::new()),
                0,
                ids::open_acl_unsafe(),
            ),
            zxid(),
        );
    }
    let before = held();
    for c in 0..PER_PARENT {
        for p in 0..PARENTS {
            // As a decoded transaction carries it (`jute::Reader::read_buffer`).
            let data = Bytes::copy_from_slice(&[b'v'; DATA]);
            let acl = if c % 2 == 0 {
                digest.clone()
            } else {
                ids::open_acl_unsafe()
            };
            let t = create(format!("/p{p:03}/c{c:05}"), Some(data), c as i32 + 1, acl);
            tree.apply(&t, zxid());
        }
    }
    let znodes = (PARENTS * PER_PARENT) as f64;
    let per = (held() - before) as f64 / znodes;
    assert!(
        per <= DATA as f64 + OVERHEAD_PER_ZNODE,
        "{per:.1} B per znode of {DATA} B: more than {OVERHEAD_PER_ZNODE} B over its data"
    );
    assert_eq!(tree.node_count(), 4 + PARENTS + PARENTS * PER_PARENT);

    // A capture shares the nodes: it allocates a constant amount, not O(znodes).
    let before = held();
    let snapshot = tree.capture();
    let capture = held() - before;
    assert!(
        capture < 4096,
        "capturing {znodes} znodes allocated {capture} B"
    );

    // A write after the capture copies the branches on its path only.
    let before = held();
    tree.apply(
        &txn(TxnBody::SetData {
            path: "/p007/c00042".into(),
            data: Some(Bytes::from_static(b"new")),
            version: 1,
        }),
        zxid(),
    );
    let copied = held() - before;
    assert!(
        copied < 32 * 1024,
        "one setData after a capture copied {copied} B"
    );
    // The capture still serializes the tree as it was, and reads back.
    let old = DataTree::from_snapshot(&snapshot.serialize());
    assert!(old.as_ref().is_ok_and(|t| {
        t.get("/p007/c00042")
            .and_then(|n| n.data.as_ref())
            .is_some_and(|d| d.len() == DATA)
    }));
    drop(old);
    drop(snapshot);

    // Deleting every znode gives its memory back to the allocator: creating them again
    // after the deletes grows the resident set by little (a leak would grow it by as much
    // as the first time).
    let before_cycle = held();
    let mut cycle = |tree: &mut DataTree, kind: u8| {
        for c in 0..PER_PARENT {
            for p in 0..PARENTS {
                let path = format!("/p{p:03}/c{c:05}");
                let body = if kind == 0 {
                    TxnBody::Delete { path }
                } else {
                    return_create(path, c)
                };
                tree.apply(&txn(body), zxid());
            }
        }
    };
    cycle(&mut tree, 0);
    assert_eq!(tree.node_count(), 4 + PARENTS);
    cycle(&mut tree, 1);
    assert_eq!(tree.node_count(), 4 + PARENTS + PARENTS * PER_PARENT);
    let regrown = (held() - before_cycle) as f64 / znodes;
    assert!(
        regrown < per / 4.0,
        "deleting and creating again grew {regrown:.1} B per znode (first time: {per:.1})"
    );
}

fn return_create(path: String, c: usize) -> TxnBody {
    TxnBody::Create(CreateTxn {
        path,
        data: Some(Bytes::copy_from_slice(&[b'w'; 100])),
        acl: ids::open_acl_unsafe(),
        kind: NodeKind::Persistent,
        parent_cversion: i32::try_from(c).unwrap_or(i32::MAX) + 1000,
        sequential: false,
        with_stat: false,
    })
}
