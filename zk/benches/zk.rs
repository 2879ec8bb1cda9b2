//! Criterion microbenchmarks of zab-zk's hot paths: jute encoding and decoding of client
//! requests, replies and transactions, and DataTree create / setData apply and getData reads.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};
use zab_spec::{SessionId, Zxid};
use zab_zk::proto::{
    self, CreateRequest, GetDataRequest, GetDataResponse, ReplyHeader, Request, Response,
    SetDataRequest, Stat, ids,
};
use zab_zk::{DataTree, PrepConfig, PrepContext, Preparer, Txn, read};

fn value(n: usize) -> Bytes {
    Bytes::from(vec![b'v'; n])
}

fn requests() -> Vec<(&'static str, Request)> {
    vec![
        (
            "getData",
            Request::GetData(GetDataRequest {
                path: "/zab-bench/k/123".into(),
                watch: false,
            }),
        ),
        (
            "setData_1KiB",
            Request::SetData(SetDataRequest {
                path: "/zab-bench/k/123".into(),
                data: Some(value(1024)),
                version: -1,
            }),
        ),
        (
            "create_1KiB",
            Request::Create(CreateRequest {
                path: "/zab-bench/c/1-2-3".into(),
                data: Some(value(1024)),
                acl: ids::open_acl_unsafe(),
                flags: 0,
            }),
        ),
    ]
}

fn jute(c: &mut Criterion) {
    let mut g = c.benchmark_group("jute");
    for (name, req) in requests() {
        g.bench_function(format!("encode_request/{name}"), |b| {
            b.iter(|| proto::encode_request(black_box(7), black_box(&req)));
        });
        let frame = proto::encode_request(7, &req);
        g.bench_function(format!("decode_request/{name}"), |b| {
            b.iter(|| proto::decode_request(black_box(&frame[4..]), 0xfffff));
        });
    }
    let stat = Stat {
        czxid: 0x1_0000_0001,
        mzxid: 0x1_0000_0042,
        version: 7,
        data_length: 1024,
        ..Stat::default()
    };
    let header = ReplyHeader {
        xid: 7,
        zxid: 0x1_0000_0042,
        err: 0,
    };
    let get_reply = Response::GetData(GetDataResponse {
        data: Some(value(1024)),
        stat: stat.clone(),
    });
    g.bench_function("encode_reply/getData_1KiB", |b| {
        b.iter(|| proto::encode_reply(black_box(&header), Some(black_box(&get_reply))));
    });
    let frame = proto::encode_reply(&header, Some(&get_reply));
    g.bench_function("decode_reply/getData_1KiB", |b| {
        b.iter(|| proto::decode_reply(black_box(&frame[4..]), |_| proto::op::GET_DATA));
    });
    let set_reply = Response::SetData(proto::SetDataResponse { stat });
    g.bench_function("encode_reply/setData", |b| {
        b.iter(|| proto::encode_reply(black_box(&header), Some(black_box(&set_reply))));
    });
    // The replicated transaction of a setData (what the leader logs and proposes).
    let (tree, mut prep, session) = tree_with_keys(1);
    let txn = prep_one(
        &mut prep,
        &tree,
        session,
        Zxid::new(1, 100),
        &set_req(0, 1024),
    );
    g.bench_function("txn_encode/setData_1KiB", |b| {
        b.iter(|| black_box(&txn).encode())
    });
    let bytes = txn.encode();
    g.bench_function("txn_decode/setData_1KiB", |b| {
        b.iter(|| Txn::decode(black_box(&bytes)));
    });
    g.finish();
}

fn key(i: usize) -> String {
    format!("/k/{i}")
}

fn set_req(i: usize, n: usize) -> Request {
    Request::SetData(SetDataRequest {
        path: key(i),
        data: Some(value(n)),
        version: -1,
    })
}

fn prep_one(
    prep: &mut Preparer,
    tree: &DataTree,
    session: SessionId,
    zxid: Zxid,
    req: &Request,
) -> Txn {
    let auth = [proto::Id::new("ip", "127.0.0.1")];
    let ctx = PrepContext {
        session,
        cxid: 1,
        time: 1,
        auth: &auth,
        session_moved: false,
    };
    prep.prep(tree, &ctx, zxid, req)
        .unwrap_or_else(|| panic!("{req:?} is a write"))
}

/// A tree with a session, `/k` and `/c`, and `keys` keys of 1 KiB; the next zxid counter is
/// `keys + 4`.
fn tree_with_keys(keys: usize) -> (DataTree, Preparer, SessionId) {
    let mut tree = DataTree::new();
    let mut prep = Preparer::new(PrepConfig::default());
    let session = SessionId(0x0100_0000_0000_0001);
    let z = Zxid::new(1, 1);
    let t = prep.create_session(session, (30_000, [0; 16]), 0, z);
    tree.apply(&t, z);
    prep.committed(z);
    let mut n = 2;
    let mut apply = |tree: &mut DataTree, prep: &mut Preparer, req: Request| {
        let z = Zxid::new(1, n);
        let t = prep_one(prep, tree, session, z, &req);
        tree.apply(&t, z);
        prep.committed(z);
        n += 1;
    };
    for p in ["/k", "/c"] {
        let req = Request::Create(CreateRequest {
            path: p.into(),
            data: None,
            acl: ids::open_acl_unsafe(),
            flags: 0,
        });
        apply(&mut tree, &mut prep, req);
    }
    for i in 0..keys {
        let req = Request::Create(CreateRequest {
            path: key(i),
            data: Some(value(1024)),
            acl: ids::open_acl_unsafe(),
            flags: 0,
        });
        apply(&mut tree, &mut prep, req);
    }
    (tree, prep, session)
}

/// Applies `iters` transactions made by `make(i)`, prepared (untimed) in chunks, timing only
/// `DataTree::apply`.
fn time_apply(iters: u64, keys: usize, make: impl Fn(u64) -> Request) -> Duration {
    let (mut tree, mut prep, session) = tree_with_keys(keys);
    let mut counter = u32::try_from(keys).unwrap_or(u32::MAX) + 4;
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < iters {
        let chunk = (iters - i).min(4096);
        let txns: Vec<(Zxid, Txn)> = (0..chunk)
            .map(|k| {
                counter += 1;
                let z = Zxid::new(1, counter);
                (z, prep_one(&mut prep, &tree, session, z, &make(i + k)))
            })
            .collect();
        let t0 = Instant::now();
        for (z, t) in &txns {
            black_box(tree.apply(t, *z));
        }
        total += t0.elapsed();
        if let Some((z, _)) = txns.last() {
            prep.committed(*z);
        }
        i += chunk;
    }
    total
}

fn tree(c: &mut Criterion) {
    let mut g = c.benchmark_group("tree");
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_create_128B", |b| {
        b.iter_custom(|iters| {
            time_apply(iters, 0, |i| {
                Request::Create(CreateRequest {
                    path: format!("/c/n{i}"),
                    data: Some(value(128)),
                    acl: ids::open_acl_unsafe(),
                    flags: 0,
                })
            })
        });
    });
    g.bench_function("apply_setData_1KiB_1000_keys", |b| {
        b.iter_custom(|iters| time_apply(iters, 1000, |i| set_req(i as usize % 1000, 1024)));
    });
    let (tree, mut prep, session) = tree_with_keys(1000);
    let mut z: u32 = 2000;
    g.bench_function("prep_setData_1KiB", |b| {
        let reqs: Vec<Request> = (0..1000).map(|i| set_req(i, 1024)).collect();
        b.iter(|| {
            z += 1;
            let zx = Zxid::new(1, z);
            let t = prep_one(&mut prep, &tree, session, zx, &reqs[z as usize % 1000]);
            prep.committed(zx);
            t
        });
    });
    let auth = [proto::Id::new("ip", "127.0.0.1")];
    let get = Request::GetData(GetDataRequest {
        path: key(500),
        watch: false,
    });
    g.bench_function("getData_1KiB", |b| {
        b.iter(|| read::serve(black_box(&tree), session, &auth, black_box(&get)));
    });
    let exists = Request::Exists(proto::ExistsRequest {
        path: key(500),
        watch: false,
    });
    g.bench_function("exists", |b| {
        b.iter(|| read::serve(black_box(&tree), session, &auth, black_box(&exists)));
    });
    g.finish();
}

criterion_group!(benches, jute, tree);
criterion_main!(benches);
