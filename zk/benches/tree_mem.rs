//! Memory and snapshot-capture figures of the DataTree (issue 12): bytes per znode for
//! 100 k znodes of 100 B under 1,000 parents, as the growth of the process's resident set
//! (VmRSS: what the operator sees, malloc's overhead included; the workspace forbids the
//! `unsafe` a counting allocator needs), and the time
//! the replica thread spends capturing a snapshot (`DataTree::capture`) against serializing it
//! (done on another thread by `zabd`). A bench binary, not a criterion bench: the figures
//! are bytes and single timings of large operations, printed as text.
//!
//! `cargo bench -p zab-zk --bench tree_mem [-- ZNODES [PARENTS [DATA_BYTES]]]`

use bytes::Bytes;
use std::time::{Duration, Instant};
use zab_spec::{SessionId, Zxid};
use zab_zk::proto::ids;
use zab_zk::txn::{CreateTxn, NodeKind, TxnBody, TxnHeader};
use zab_zk::{DataTree, Txn};

/// This process's resident set (VmRSS), bytes (Linux).
fn held() -> isize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<isize>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn create(path: String, data: Option<Bytes>, parent_cversion: i32) -> Txn {
    Txn {
        header: TxnHeader {
            session: SessionId(1),
            cxid: 1,
            time: 1_700_000_000_000,
        },
        body: TxnBody::Create(CreateTxn {
            path,
            data,
            acl: ids::open_acl_unsafe(),
            kind: NodeKind::Persistent,
            parent_cversion,
            sequential: false,
            with_stat: false,
        }),
    }
}

/// CLI output of the bench binary.
fn say(line: String) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let znodes = args.first().copied().unwrap_or(100_000);
    let parents = args.get(1).copied().unwrap_or(1_000).max(1);
    let size = args.get(2).copied().unwrap_or(100);
    let per_parent = znodes.div_ceil(parents);

    let mut tree = DataTree::new();
    let mut counter = 0u32;
    let mut zxid = || {
        counter += 1;
        Zxid::new(1, counter)
    };
    for p in 0..parents {
        tree.apply(&create(format!("/p{p:04}"), Some(Bytes::new()), 0), zxid());
    }
    let before = held();
    let mut made = 0usize;
    'outer: for p in 0..parents {
        for c in 0..per_parent {
            if made == znodes {
                break 'outer;
            }
            // As a decoded transaction carries it (`jute::Reader::read_buffer`).
            let data = Bytes::copy_from_slice(&vec![b'v'; size]);
            let cv = i32::try_from(c + 1).unwrap_or(i32::MAX);
            tree.apply(&create(format!("/p{p:04}/c{c:06}"), Some(data), cv), zxid());
            made += 1;
        }
    }
    let grown = held() - before;
    let per = grown as f64 / made as f64;
    say(format!(
        "tree: {made} znodes of {size} B under {parents} parents: {grown} B more resident, {per:.1} B per znode ({:.1} B over the data)",
        per - size as f64
    ));

    let mut capture = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let snap = tree.capture();
        capture.push(t.elapsed());
        drop(snap);
    }
    let snap = tree.capture();
    let t = Instant::now();
    let bytes = snap.serialize();
    let serialize = t.elapsed();
    say(format!(
        "snapshot: capture on the replica thread {:?} (median of 5); serialize (another thread in zabd) {:?}, {} B",
        median(capture),
        serialize,
        bytes.len()
    ));
    // What the first writes after a capture pay (copy-on-write of what the capture shares).
    let mut writes = Vec::new();
    for i in 0..1_000usize {
        let p = i % parents;
        let path = format!("/p{p:04}/c{:06}", i / parents);
        let t = Instant::now();
        tree.apply(
            &Txn {
                header: TxnHeader {
                    session: SessionId(1),
                    cxid: 1,
                    time: 1,
                },
                body: TxnBody::SetData {
                    path,
                    data: Some(Bytes::from_static(b"x")),
                    version: 1,
                },
            },
            zxid(),
        );
        writes.push(t.elapsed());
    }
    writes.sort();
    say(format!(
        "setData while a capture is held: median {:?}, p99 {:?}, max {:?} (1,000 writes)",
        writes[writes.len() / 2],
        writes[writes.len() * 99 / 100],
        writes[writes.len() - 1]
    ));
    drop(snap);
}
