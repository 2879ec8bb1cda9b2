//! Differential test of `zabd` against Apache ZooKeeper 3.8: generated sequences of client
//! operations (every opcode a client sends, failing ones included) from up to three
//! interleaved sessions, with every reply and watch notification normalised and compared.
//!
//! - **Corpus mode** (default, what `cargo test` runs): replays
//!   `tests/corpus/differential.jsonl` — cases recorded with ZooKeeper's normalised replies —
//!   against a standalone `zabd`.
//! - **Live mode** (`ZAB_REFERENCE_ZK=host:port`, see `ci/differential.sh`): runs
//!   `ZAB_DIFF_CASES` proptest cases against that ZooKeeper and a `zabd`, shrinking any
//!   divergence; with `ZAB_RECORD_CORPUS=1` it rewrites the corpus from ZooKeeper's replies.
//!
//! Each case works under `/r` (created fresh by a super-user admin session, which removes
//! everything the case left at the end), so cases are independent of each other.
//! Normalisation: zxids become `Z<n>` in order of first appearance within the case; session
//! ids become `s<n>` in order of opening; times become `0` or `t`, with `c=m` / `c!=m` when
//! `czxid == mzxid` (the same transaction must stamp the same time); the root's `cversion` is
//! taken relative to the case start; children and ephemerals lists are sorted (ZooKeeper
//! lists them in hash order). Every reply also records its frame length.

#![allow(clippy::print_stderr)]

#[path = "differential/generator.rs"]
mod generator;
#[path = "differential/ops.rs"]
mod ops;
#[path = "differential/run.rs"]
mod run;
mod support;

use generator::*;
use ops::*;
use run::*;

use bytes::Bytes;
use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, Union};
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::standalone::Standalone;
use support::wire::{Reply, Wire, WireError, new_session_request};
use zab_zk::proto::{
    Acl, AddWatchRequest, AuthPacket, CheckVersionRequest, CheckWatchesRequest, ConnectRequest,
    ConnectResponse, CreateRequest, CreateTtlRequest, DeleteRequest, ExistsRequest, GetAclRequest,
    GetAllChildrenNumberRequest, GetChildren2Request, GetChildrenRequest, GetDataRequest,
    GetEphemeralsRequest, MultiOp, MultiReadOp, MultiResult, RemoveWatchesRequest, Request,
    Response, SetAclRequest, SetDataRequest, SetWatches, SetWatches2, Stat, SyncRequest, op, perms,
};

/// The super user both servers are configured with (`super:diff`).
const SUPER_DIGEST: &str = "super:rUwANJCpjJIrnxzFdZozglgBlpw=";
const ALICE: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";
const BOB: &str = "bob:ikIaKsbtGweaHnb/jKn7OHqbunM=";
const IO: Duration = Duration::from_secs(10);

fn corpus_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/differential.jsonl")
}

// ----- comparing ----------------------------------------------------------------------------------

fn describe(steps: &[Step], expected: &[String], actual: &[String], who: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut out = String::from("steps:\n");
    for (i, s) in steps.iter().enumerate() {
        let _ = writeln!(
            out,
            "  {i}: {}",
            serde_json::to_string(s).expect("serialise")
        );
    }
    let first = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let _ = writeln!(out, "first divergence at trace line {first}:");
    for i in 0..expected.len().max(actual.len()) {
        let e = expected.get(i).map_or("<none>", String::as_str);
        let a = actual.get(i).map_or("<none>", String::as_str);
        if e == a {
            let _ = writeln!(out, "    {e}");
        } else {
            let _ = writeln!(out, "  - zookeeper: {e}\n  + {who}: {a}");
        }
    }
    Some(out)
}

fn zabd() -> Standalone {
    Standalone::start(
        "extendedTypesEnabled=true\nmaxClientCnxns=60\n",
        &[
            "--super-digest",
            SUPER_DIGEST,
            "--container-check-ms",
            "2000000000",
        ],
    )
}

fn coverage(cases: &[Recorded]) -> BTreeMap<String, (usize, usize)> {
    // kind -> (count, failing count)
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for c in cases {
        for (i, st) in c.steps.iter().enumerate() {
            let prefix = format!("{i} ");
            let failed = c
                .trace
                .iter()
                .find(|l| l.starts_with(&prefix))
                .is_some_and(|l| !l.contains("err=0 "));
            let e = out.entry(st.op.kind()).or_default();
            e.0 += 1;
            e.1 += usize::from(failed);
            match &st.op {
                Op::Multi { ops } | Op::MultiRead { ops } => {
                    for o in ops {
                        let e = out.entry(format!("  in multi: {}", o.kind())).or_default();
                        e.0 += 1;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn print_coverage(cases: &[Recorded]) {
    eprintln!("operations (count, of which failed):");
    for (k, (n, f)) in coverage(cases) {
        eprintln!("  {k:<40} {n:>5} {f:>5}");
    }
}

#[test]
fn zabd_answers_like_zookeeper() {
    match std::env::var("ZAB_REFERENCE_ZK") {
        Ok(addr) if !addr.is_empty() => live(&addr),
        _ => replay_corpus(),
    }
}

fn replay_corpus() {
    let text = std::fs::read_to_string(corpus_path()).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (record it with ci/differential.sh --record)",
            corpus_path().display()
        )
    });
    let cases: Vec<Recorded> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a corpus line"))
        .collect();
    assert!(
        cases.len() >= 200,
        "the corpus holds only {} cases",
        cases.len()
    );
    // Every operation the test generates is in the corpus, succeeding and failing.
    let cov = coverage(&cases);
    for kind in [
        "create(op 1, flags 0)",
        "create(op 15, flags 1)",
        "create(op 1, flags 2)",
        "create(op 15, flags 3)",
        "create(op 19, flags 4)",
        "create(op 21, flags 5)",
        "create(op 21, flags 6)",
        "delete",
        "exists",
        "getData",
        "setData",
        "getAcl",
        "setAcl",
        "getChildren",
        "getChildren2",
        "getAllChildrenNumber",
        "getEphemerals",
        "sync",
        "check",
        "multi",
        "multiRead",
        "auth",
        "setWatches",
        "setWatches2",
        "addWatch",
        "removeWatches",
        "checkWatches",
        "whoAmI",
        "closeSession",
    ] {
        let (n, _) = cov.get(kind).copied().unwrap_or_default();
        assert!(n >= 3, "the corpus has {n} {kind} operations");
    }
    let server = zabd();
    let mut sys = System::connect("zabd", server.addr);
    let start = Instant::now();
    let mut failures = Vec::new();
    for (k, c) in cases.iter().enumerate() {
        let actual = run_case(&mut sys, &c.steps);
        if let Some(d) = describe(&c.steps, &c.trace, &actual, "zabd") {
            failures.push(format!("corpus case {k}:\n{d}"));
        }
    }
    eprintln!(
        "replayed {} cases ({} steps) in {:.1?}",
        cases.len(),
        cases.iter().map(|c| c.steps.len()).sum::<usize>(),
        start.elapsed()
    );
    if !failures.is_empty() {
        for f in failures.iter().take(5) {
            eprintln!("{f}");
        }
        panic!(
            "{} of {} corpus cases diverge from ZooKeeper",
            failures.len(),
            cases.len()
        );
    }
}

fn live(addr: &str) {
    let zk_addr: SocketAddr = addr.parse().expect("ZAB_REFERENCE_ZK=host:port");
    let cases: u32 = std::env::var("ZAB_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let seed: u64 = std::env::var("ZAB_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_d1ff);
    let record = std::env::var("ZAB_RECORD_CORPUS").is_ok_and(|v| v == "1");
    let server = zabd();
    let zk = std::cell::RefCell::new(System::connect("zookeeper", zk_addr));
    let zab = std::cell::RefCell::new(System::connect("zabd", server.addr));
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let recorded = std::cell::RefCell::new(Vec::new());
    let current = std::cell::RefCell::new(String::new());
    let start = Instant::now();
    let result = runner.run(&case(), |steps| {
        if zk.borrow().broken.is_some() || zab.borrow().broken.is_some() {
            return Ok(());
        }
        *current.borrow_mut() = serde_json::to_string(&steps).expect("serialise");
        let expected = run_case(&mut zk.borrow_mut(), &steps);
        let actual = run_case(&mut zab.borrow_mut(), &steps);
        let diff = describe(&steps, &expected, &actual, "zabd");
        recorded.borrow_mut().push(Recorded {
            steps,
            trace: expected,
        });
        match diff {
            None => Ok(()),
            Some(d) => Err(TestCaseError::fail(d)),
        }
    });
    let recorded = recorded.into_inner();
    for sys in [&zk, &zab] {
        if let Some(b) = &sys.borrow().broken {
            panic!(
                "a server stopped answering: {b}\nduring the case {}",
                current.borrow()
            );
        }
    }
    eprintln!(
        "ran {} cases against ZooKeeper at {addr} and zabd in {:.1?} (seed {seed})",
        recorded.len(),
        start.elapsed()
    );
    if let Err(e) = result {
        panic!("zabd diverges from ZooKeeper (shrunk):\n{e}");
    }
    print_coverage(&recorded);
    if record {
        let mut text = String::new();
        for c in &recorded {
            text.push_str(&serde_json::to_string(c).expect("serialise"));
            text.push('\n');
        }
        std::fs::create_dir_all(corpus_path().parent().expect("dir")).expect("mkdir");
        std::fs::write(corpus_path(), text).expect("write the corpus");
        eprintln!(
            "recorded {} cases in {}",
            recorded.len(),
            corpus_path().display()
        );
    }
}
