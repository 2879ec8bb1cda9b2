//! Observers (`spec/PROTOCOL.md` §10.2): the bounded check with its state count pinned
//! (`tla/MCObserver.cfg` counts the same), one scripted run through every observer step, and
//! the `ObserversNeverCount` invariant shown to catch an observer that counts.

mod common;

use zab_model::checker::{self, CheckOptions, workload_model};
use zab_model::invariants::invariants;
use zab_model::state::{ModelState, ServerSet, Sid};
use zab_model::{Action, Config, ZabModel};
use zab_spec::{ActionKind, QuorumMessage, ServerState, ZabState, ZnodeTxn};

type M = ZabModel<ZnodeTxn>;
type S = ModelState<ZnodeTxn>;

/// Unique states of `common::observer_small()`.
const OBSERVER_SMALL_STATES: usize = 8_539;

#[test]
fn two_voters_and_an_observer_explore_everything() {
    let cfg = common::observer_small();
    let r = checker::check(
        &cfg,
        &CheckOptions {
            threads: 2,
            ..CheckOptions::default()
        },
    );
    if let Some(d) = r.failures.first() {
        panic!(
            "{}",
            checker::format_discovery(&cfg, d, "http://127.0.0.1:3000")
        );
    }
    assert!(r.complete);
    assert_eq!(
        r.unique_states, OBSERVER_SMALL_STATES,
        "{cfg}: unique states"
    );
    assert!(
        r.examples_found.contains(&"TxnCommitted"),
        "{:?}",
        r.examples_found
    );
}

#[test]
fn zero_observers_is_the_default_everywhere() {
    assert_eq!(Config::default().observers, 0);
    assert_eq!(common::fresh_small().observers, 0);
    assert_eq!(
        workload_model(&Config::default()).initial_state().observers,
        ServerSet::EMPTY
    );
}

#[test]
fn bad_observer_bounds_are_refused() {
    let two = Config {
        servers: 2,
        ..common::observer_small()
    };
    assert!(
        two.validate().is_err(),
        "an observer needs 2 voters besides it"
    );
    let many = Config {
        servers: 5,
        observers: 2,
        ..common::observer_small()
    };
    assert!(many.validate().is_err(), "at most one observer");
    assert!(common::observer_small().validate().is_ok());
}

/// Takes the enabled action of `kind` for `i` (and `j`), checking every invariant after it.
fn take(m: &M, s: &S, kind: ActionKind, i: Sid, j: Option<Sid>) -> S {
    let mut candidates = Vec::new();
    m.candidate_actions(s, &mut candidates);
    let a = candidates
        .into_iter()
        .find(|a| a.kind() == kind && a.servers() == (i, j))
        .unwrap_or_else(|| panic!("{kind}(s{}) is no candidate in\n{s}", i + 1));
    let t = m
        .step(s, &a)
        .unwrap_or_else(|| panic!("{a} not enabled in\n{s}"));
    for inv in invariants::<ZnodeTxn>() {
        assert!((inv.holds)(&t), "{} broken after {a}:\n{t}", inv.id);
    }
    t
}

const L: Sid = 1; // s2, the leader
const F: Sid = 0; // s1, the other voter
const O: Sid = 2; // s3, the observer

/// s2 leads epoch 1 with s1 following and s3 observing, all in BROADCAST; on the way, the
/// observer's FOLLOWERINFO, ACKEPOCH and ACK of NEWLEADER are each processed first and shown
/// to count for nothing.
fn established(m: &M) -> S {
    use ActionKind as K;
    let mut s = m.initial_state();
    assert_eq!(s.observers, ServerSet::single(O));
    // The observer has the highest vote but never leads, and its vote elects no one.
    assert!(m.step(&s, &Action::ElectLeader { i: O }).is_none());
    s = take(m, &s, K::ElectLeader, L, None);
    s = take(m, &s, K::FollowLeader, F, Some(L));
    s = take(m, &s, K::FollowLeader, O, Some(L));
    s = take(m, &s, K::LeaderProcessFollowerInfo, L, Some(O));
    assert_eq!(
        s.srv(L).accepted_epoch.0,
        0,
        "the observer decided the epoch"
    );
    s = take(m, &s, K::LeaderProcessFollowerInfo, L, Some(F));
    assert_eq!(s.srv(L).accepted_epoch.0, 1);
    s = take(m, &s, K::FollowerProcessLeaderInfo, F, Some(L));
    s = take(m, &s, K::FollowerProcessLeaderInfo, O, Some(L));
    s = take(m, &s, K::LeaderProcessAckEpoch, L, Some(O));
    assert_eq!(
        s.srv(L).zab_state,
        ZabState::Discovery,
        "the observer's ACKEPOCH counted"
    );
    s = take(m, &s, K::LeaderProcessAckEpoch, L, Some(F));
    assert_eq!(s.srv(L).zab_state, ZabState::Synchronization);
    for j in [F, O] {
        s = take(m, &s, K::LeaderSyncFollower, L, Some(j));
        s = take(m, &s, K::FollowerProcessSyncMessage, j, Some(L));
        s = take(m, &s, K::FollowerProcessNewLeader, j, Some(L));
    }
    s = take(m, &s, K::LeaderProcessAckLd, L, Some(O));
    assert_eq!(
        s.srv(L).zab_state,
        ZabState::Synchronization,
        "the observer's ACKLD counted"
    );
    s = take(m, &s, K::LeaderProcessAckLd, L, Some(F));
    assert_eq!(s.srv(L).zab_state, ZabState::Broadcast);
    s = take(m, &s, K::FollowerProcessUpToDate, F, Some(L));
    s = take(m, &s, K::FollowerProcessUpToDate, O, Some(L));
    assert_eq!(s.srv(O).zab_state, ZabState::Broadcast);
    s
}

#[test]
fn an_observer_learns_commits_from_inform_and_never_acknowledges() {
    use ActionKind as K;
    let m = workload_model(&common::observer_small());
    let mut s = established(&m);
    s = take(&m, &s, K::LeaderProcessRequest, L, None);
    assert!(
        s.channel(L, O).is_empty(),
        "an observer gets no PROPOSAL: {:?}",
        s.channel(L, O)
    );
    s = take(&m, &s, K::SyncProcessorLogRequest, L, None);
    s = take(&m, &s, K::FollowerProcessProposal, F, Some(L));
    s = take(&m, &s, K::SyncProcessorLogRequest, F, None);
    s = take(&m, &s, K::LeaderProcessAck, L, Some(F));
    assert_eq!(s.srv(L).last_committed, 1, "two voters of two committed it");
    let txn = s.srv(L).history[0].clone();
    assert_eq!(
        s.channel(L, O).iter().collect::<Vec<_>>(),
        vec![&QuorumMessage::Inform(txn.clone())]
    );
    s = take(&m, &s, K::ObserverProcessInform, O, Some(L));
    assert_eq!(s.srv(O).delivered(), std::slice::from_ref(&txn));
    s = take(&m, &s, K::SyncProcessorLogRequest, O, None);
    assert_eq!(s.srv(O).persisted, 1);
    assert!(s.channel(O, L).is_empty(), "the observer acknowledged");
}

#[test]
fn an_observer_does_not_keep_a_leader_up() {
    let m = workload_model(&common::observer_small());
    let s = established(&m);
    // s1 crashes: s2 still has s3 connected, but s3 is no voter, so s2 steps down.
    let t = m
        .step(&s, &Action::NodeCrash { i: F })
        .expect("a crash is in budget");
    assert_eq!(t.srv(L).state, ServerState::Looking);
    assert_eq!(t.srv(O).state, ServerState::Looking);
}

#[test]
fn observers_never_count_catches_an_observer_that_counts() {
    let m = workload_model(&common::observer_small());
    let s = established(&m);
    let inv = invariants::<ZnodeTxn>()
        .into_iter()
        .find(|i| i.id == "ObserversNeverCount")
        .expect("the invariant is defined");
    assert!((inv.holds)(&s));
    let mut counted = s.clone();
    if let Some(l) = counted.srv_mut(L).leader.as_mut() {
        l.ackld_recv = l.ackld_recv.with(O);
    }
    assert!(!(inv.holds)(&counted), "an observer in ackldRecv");
    let mut acked = s.clone();
    let zxid = zab_spec::Zxid::new(1, 1);
    acked.send(O, L, QuorumMessage::Ack { zxid });
    assert!(!(inv.holds)(&acked), "an ACK from an observer");
    let mut votes = s;
    if let Some(l) = votes.srv_mut(L).leader.as_mut() {
        l.electing[usize::from(O)] = Some(zab_model::state::Electing {
            peer_last_zxid: None,
            in_quorum: true,
        });
    }
    assert!(!(inv.holds)(&votes), "an observer's counted ACKEPOCH");
}
