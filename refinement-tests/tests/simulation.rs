//! The deterministic simulation in CI: fixed seeds of 3- and 5-server ensembles with every
//! fault, byte-identical traces for equal seeds, and the known-bug switches found by
//! simulation plus refinement. `zab-sim sweep` runs thousands of seeds (README).

use zab_refinement::refine::DivergenceKind;
use zab_refinement::sim::{self, Faults, SimConfig};
use zab_spec::Bug;

/// Simulated ms of the phase with faults in the CI runs (the sweep's default is 20 s).
const SAFETY_MS: u64 = 3000;

fn config(seed: u64, servers: usize) -> SimConfig {
    let mut c = SimConfig::new(seed, servers);
    c.safety_ms = SAFETY_MS;
    c
}

fn must_pass(cfg: SimConfig) -> sim::Report {
    match sim::run(cfg) {
        Ok(r) => {
            assert!(r.committed > 0, "the run committed nothing: {r:?}");
            assert!(r.ops_completed > 0, "no client operation completed: {r:?}");
            r
        }
        Err(f) => panic!("{f}"),
    }
}

#[test]
fn three_server_seeds_pass_every_check_with_faults_injected() {
    let mut faults = 0;
    for seed in 1..=2 {
        let r = must_pass(config(seed, 3));
        faults += r.faults.values().sum::<usize>();
    }
    assert!(faults > 0, "no fault was injected");
}

/// With `commitLogCount` 5 (the simulation's default) a learner that fell behind is
/// synchronized by a DIFF whose older part the leader reads back from its log on disk
/// (`Action::SendLogged`), and the trace of that sync refines the model like any other.
/// Seeds chosen among 1..=30 at 3 s of faults, where 7, 24, 27 and 28 do such a sync (seeds
/// 1 and 2 do not); if the simulation changes so that these no longer do, pick new ones
/// (print `r.syncs_from_disk` for seeds 1..=30).
#[test]
fn a_learner_is_synced_by_a_diff_read_back_from_disk_and_refines() {
    let mut from_disk = 0;
    for seed in [7, 27] {
        from_disk += must_pass(config(seed, 3)).syncs_from_disk;
    }
    assert!(from_disk > 0, "no seed synced a learner from the disk");
}

#[test]
fn five_server_seed_passes_every_check() {
    let mut c = config(1, 5);
    c.safety_ms = 2000;
    must_pass(c);
}

#[test]
fn a_run_without_faults_injects_none() {
    let mut c = config(1, 3);
    c.safety_ms = 1000;
    c.faults = Faults::NONE;
    let r = must_pass(c);
    assert!(r.faults.is_empty(), "faults without faults: {:?}", r.faults);
}

#[test]
fn the_same_seed_gives_a_byte_identical_trace() {
    let run = |seed| {
        let mut c = config(seed, 3);
        c.safety_ms = 1500;
        c.keep_trace = true;
        sim::run(c).unwrap_or_else(|f| panic!("{f}"))
    };
    let (a, b) = (run(7), run(7));
    assert!(!a.trace.is_empty());
    assert_eq!(a.trace_digest, b.trace_digest);
    assert_eq!(a.trace, b.trace);
    let c = run(8);
    assert_ne!(
        a.trace_digest, c.trace_digest,
        "different seeds, same trace"
    );
}

/// Each switch that the simulation finds, with the first seed (from 0) that finds it: what
/// `zab-sim sweep --from 0 --safety-ms 3000 --bug NAME` measured (README, "Trace refinement and
/// deterministic simulation"); the seeds before it pass. CI runs only the finding seed (the
/// sweep from 0 is the deep run). ZOOKEEPER-4646 and 4643 exist in the server but need a crash
/// inside a window of a few ms and were not found within 200 seeds of 3 s; `tests/replay.rs`
/// breaks them by driving the server along the model's counterexample; README says so.
const FOUND: [(Bug, u64); 7] = [
    // Measured with `zab-sim sweep --from 0 --safety-ms 3000 --bug NAME` after FLE's
    // connecting servers began to say FOLLOWING (which moved every seed's schedule).
    (Bug::Zk4394, 2),
    (Bug::PaperRedundantPropose, 1),
    (Bug::PaperCommitldZxid, 2),
    (Bug::PaperProposeRecipients, 4),
    // Found by random simulation since connecting servers say FOLLOWING (a LOOKING server
    // with a stale last zxid can now follow on the out-of-election path).
    (Bug::Zk2845, 2),
    // ZOOKEEPER-4685 (CheckAckConsistent) and 4712 (CheckProposalConsistent).
    (Bug::Zk4685, 5),
    (Bug::Zk4712, 35),
];

#[test]
fn known_bug_switches_are_found_by_simulation_and_refinement() {
    for (bug, seed) in FOUND {
        let mut c = config(seed, 3);
        c.bug = Some(bug);
        let Err(f) = sim::run(c) else {
            panic!("--bug {bug} not found at seed {seed}");
        };
        assert!(
            matches!(f.divergence, Some(DivergenceKind::InvariantViolated(_))),
            "--bug {bug} must break a model invariant, not diverge: {f}"
        );
        assert!(
            f.repro.contains(&format!("--bug {}", bug.cli_name())),
            "the failure names its reproduction: {}",
            f.repro
        );
    }
}

/// ZOOKEEPER-4646 with the faults aimed at durability boundaries (`zab-sim --aimed`): the
/// first seed of `zab-sim sweep --from 0 --safety-ms 3000 --aimed --bug zk4646`; without a
/// switch, the seeds up to it pass with the same faults (200 did when measured, README).
#[test]
fn aimed_faults_find_zk4646_and_zk3911() {
    for seed in 0..=2 {
        let mut c = config(seed, 3);
        c.faults.aimed = true;
        if let Err(f) = sim::run(c) {
            panic!("aimed faults without a switch: {f}");
        }
    }
    let mut c = config(2, 3);
    c.faults.aimed = true;
    c.bug = Some(Bug::Zk4646);
    let Err(f) = sim::run(c) else {
        panic!("--aimed --bug zk4646 not found at seed 2");
    };
    assert_eq!(
        f.divergence,
        Some(DivergenceKind::InvariantViolated("LeaderLogCompleteness")),
        "{f}"
    );
    assert!(f.repro.contains("--aimed"), "{}", f.repro);
    // ZOOKEEPER-3911 (a crash between the ACK of NEWLEADER and UPTODATE): not found by random
    // faults in 150 seeds; the aimed crash after an ACK sent ahead of the disk finds it.
    let mut c = config(58, 3);
    c.faults.aimed = true;
    c.bug = Some(Bug::Zk3911);
    let Err(f) = sim::run(c) else {
        panic!("--aimed --bug zk3911 not found at seed 58");
    };
    assert_eq!(
        f.divergence,
        Some(DivergenceKind::InvariantViolated("LeaderLogCompleteness")),
        "{f}"
    );
}

/// The storage faults a run injected (the model's `LoseLogSuffix`, `LoseEpochFiles`,
/// `LoseDataDir`), by kind.
fn storage_faults(
    faults: &std::collections::BTreeMap<&'static str, usize>,
) -> std::collections::BTreeMap<&'static str, usize> {
    faults
        .iter()
        .filter(|(k, _)| ["LoseLogSuffix", "LoseEpochFiles", "LoseDataDir"].contains(k))
        .map(|(k, v)| (*k, *v))
        .collect()
}

/// The CI-sized storage-fault run: the checks of the deep run below (refinement against the
/// model, `recovering` included; linearizability; replica agreement) over short runs (1.5 s of
/// faults, a fault decision every 150 ms on average) of seeds chosen so that each kind of
/// storage fault lands: 3 loses epoch files, 4 a fsynced log suffix (a bit flip), 9 a whole
/// data directory (`zab-sim`'s runs are deterministic per seed). Under a second in the debug
/// build. If a change to the simulation moves the faults, the assertion says which kind no
/// longer lands: pick new seeds (print `r.faults` for seeds 1..=20).
#[test]
fn each_storage_fault_loses_no_acknowledged_write() {
    let mut injected = std::collections::BTreeMap::new();
    for (seed, kind) in [
        (3, "LoseEpochFiles"),
        (4, "LoseLogSuffix"),
        (9, "LoseDataDir"),
    ] {
        let (_, storage) = must_inject(config(seed, 3), kind);
        injected.extend(storage);
    }
    assert_eq!(injected.len(), 3, "{injected:?}");
}

/// Runs `c` with storage faults at the CI storage run's sizes (1.5 s, a fault every 150 ms),
/// asserts it passes and that `kind` was injected; returns the report and its storage faults.
fn must_inject(
    mut c: SimConfig,
    kind: &str,
) -> (sim::Report, std::collections::BTreeMap<&'static str, usize>) {
    let seed = c.seed;
    c.faults = Faults::WITH_STORAGE;
    c.safety_ms = 1500;
    c.fault_interval_ms = 150;
    let r = must_pass(c);
    let storage = storage_faults(&r.faults);
    assert!(
        storage.contains_key(kind),
        "seed {seed}: no {kind} injected: {:?}",
        r.faults
    );
    (r, storage)
}

/// FLE's out-of-election path (`spec/PROTOCOL.md` §3): in this seed s3 follows s2, elected by
/// s1 and s2 while s3's vote beat s2's and s2 had no follower yet. The model used to refuse that
/// `FollowLeader` (the refiner's false alarm "FollowLeader(s3, s2) is not enabled in the
/// model"); now the run refines to its end (no bug shows within the 3 s of faults).
#[test]
fn a_follower_with_a_better_vote_joins_an_elected_leader() {
    let mut c = config(0, 3);
    c.bug = Some(Bug::PaperRedundantPropose);
    match sim::run(c) {
        Ok(r) => assert!(r.actions.get("FollowLeader").is_some_and(|n| *n > 0)),
        Err(f) => panic!("{f}"),
    }
}

/// Storage faults (`spec/PROTOCOL.md` §7.1) on one server at a time: bit flips in fsynced log
/// records, lost epoch files, wiped data directories, failing fsyncs. Every check stays green:
/// the restarted server must be `recovering` where the model says so (refinement), and no
/// acknowledged write is lost (linearizability, replica agreement).
///
/// Deep (`ci/test.sh --deep`): a seed takes minutes (about 3 in release on the 2-core
/// machine), too long for the CI budget; CI runs `each_storage_fault_loses_no_acknowledged_write`.
#[test]
#[ignore = "deep: minutes per seed; ci/test.sh --deep runs it"]
fn storage_faults_lose_no_acknowledged_write() {
    let mut injected = std::collections::BTreeMap::new();
    for seed in 1..=3 {
        let mut c = config(seed, 3);
        c.faults = Faults::WITH_STORAGE;
        c.safety_ms = 6000;
        c.fault_interval_ms = 300;
        let r = must_pass(c);
        for (k, v) in r.faults {
            *injected.entry(k).or_insert(0) += v;
        }
    }
    assert!(
        !storage_faults(&injected).is_empty(),
        "no storage fault was injected: {injected:?}"
    );
}

/// 3 voters and 1 observer (`spec/PROTOCOL.md` §10.2), `SimConfig::observers`.
fn observer_config(seed: u64) -> SimConfig {
    let mut c = config(seed, 4);
    c.observers = 1;
    c
}

/// Observers in the simulation: the real core as an observer (OBSERVERINFO, INFORM, no ACK,
/// no vote) among 3 voters, with every fault, refined step by step against the model run with
/// `--observers 1` (every invariant, `ObserversNeverCount` included). Each seed must refine
/// at least one OBSERVERINFO and one INFORM, and client 0 must have read from the observer
/// and written through it. Over the seeds, faults hit the observer (crashes, partitions) and
/// it reconnects: seeds chosen among 1..=10 at 3 s of faults, where each of these three does (print
/// `r.observer_faults` and the OBSERVERINFO count for seeds 1..=10 to pick new ones if the
/// simulation's schedule moves).
#[test]
fn an_observer_serves_reads_and_refines_under_every_fault() {
    let (mut observer_faults, mut rejoined) = (0, false);
    for seed in [3, 6, 7] {
        let r = must_pass(observer_config(seed));
        let count = |name: &str| r.actions.get(name).copied().unwrap_or(0);
        assert!(
            count("LeaderProcessOBSERVERINFO") > 0,
            "seed {seed}: no OBSERVERINFO refined: {:?}",
            r.actions
        );
        assert!(
            count("ObserverProcessINFORM") > 0,
            "seed {seed}: no INFORM refined: {:?}",
            r.actions
        );
        assert!(
            r.observer_reads > 0,
            "seed {seed}: the observer served no read"
        );
        assert!(
            r.observer_writes > 0,
            "seed {seed}: no write was forwarded by the observer"
        );
        observer_faults += r.observer_faults;
        rejoined |= count("LeaderProcessOBSERVERINFO") > 1;
    }
    assert!(observer_faults > 0, "no fault hit the observer");
    assert!(
        rejoined,
        "the observer never connected to a second leader or again"
    );
}

/// Storage faults with an observer: every kind lands once over these seeds (chosen among
/// 1..=20 at the CI storage run's sizes, 2 loses epoch files, 4 a whole data directory, 7 a
/// fsynced log suffix), refined against the model with an observer, and no acknowledged write
/// is lost (linearizability, replica agreement).
#[test]
fn an_observer_ensemble_loses_no_acknowledged_write_to_storage_faults() {
    let mut injected = std::collections::BTreeMap::new();
    for (seed, kind) in [
        (2, "LoseEpochFiles"),
        (4, "LoseDataDir"),
        (7, "LoseLogSuffix"),
    ] {
        let (r, storage) = must_inject(observer_config(seed), kind);
        assert!(
            r.actions
                .get("ObserverProcessINFORM")
                .is_some_and(|n| *n > 0)
        );
        injected.extend(storage);
    }
    assert_eq!(injected.len(), 3, "{injected:?}");
}

/// ZOOKEEPER-1551 (§10.6) in the server, found by simulation and refinement: the leader
/// sends an observer the outstanding proposals while it syncs it, and their INFORM then
/// repeats a zxid (`CheckProposalConsistent`). The first seed of `zab-sim sweep --from 0
/// --safety-ms 3000 --servers 4 --observers 1 --bug zk1551`; the seeds before it pass.
#[test]
fn zk1551_is_found_with_an_observer() {
    let mut c = observer_config(ZK1551_SEED);
    c.bug = Some(Bug::Zk1551);
    let Err(f) = sim::run(c) else {
        panic!("--bug zk1551 not found at seed {ZK1551_SEED}");
    };
    assert!(
        matches!(f.divergence, Some(DivergenceKind::InvariantViolated(_))),
        "--bug zk1551 must break a model invariant, not diverge: {f}"
    );
    assert!(f.repro.contains("--observers 1"), "{}", f.repro);
}

const ZK1551_SEED: u64 = 1;
