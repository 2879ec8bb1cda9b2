//! Unit tests of the protocol core: exact action lists for the handlers whose order matters
//! (persist before send), and whole clusters run in memory (`Cluster`): elections, commits,
//! crashes and the three kinds of sync.

use super::*;
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use zab_spec::{ErrorCode, SessionId, Vote, ZnodeTxn};

type P = ZnodeTxn;

fn sid(k: u64) -> ServerId {
    ServerId(k)
}

fn cfg(me: u64, n: u64) -> PeerConfig {
    let mut c = PeerConfig::new(sid(me), (1..=n).map(sid).collect());
    c.tick_ms = 100;
    c.trace = true;
    c
}

fn payload(k: i64) -> P {
    ZnodeTxn::CreateSession {
        session: SessionId(k),
    }
}

fn z(e: u32, c: u32) -> Zxid {
    Zxid::new(e, c)
}

fn txn(e: u32, c: u32) -> Txn<P> {
    Txn {
        zxid: z(e, c),
        payload: payload(i64::from(c)),
    }
}

fn fresh(me: u64, n: u64) -> Peer<P> {
    Peer::new(
        cfg(me, n),
        Epoch(0),
        Epoch(0),
        ReplicaLog::recovered(Zxid::ZERO, vec![]),
    )
}

/// A fresh peer made leader by hand, as if the election had run (a fresh peer of an
/// ensemble is unsure whether it was wiped until it hears every member, §7.1).
fn fresh_leader(me: u64, n: u64) -> Peer<P> {
    let mut p = fresh(me, n);
    p.wipe_check = None;
    p.role = Role::Leading(Leader::new(sid(me), Epoch(0)));
    p
}

fn non_trace(actions: Vec<Action<P>>) -> Vec<Action<P>> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Trace(_) | Action::RoleChanged(_)))
        .collect()
}

fn traces(actions: &[Action<P>]) -> Vec<ActionKind> {
    actions
        .iter()
        .filter_map(|a| {
            if let Action::Trace(t) = a {
                Some(t.action)
            } else {
                None
            }
        })
        .collect()
}

/// A follower of `leader` in SYNCHRONIZATION, having acked epoch `epoch`.
fn syncing_follower(me: u64, leader: u64, epoch: u32, log: Vec<Txn<P>>) -> Peer<P> {
    let mut p = Peer::new(
        cfg(me, 3),
        Epoch(epoch - 1),
        Epoch(epoch - 1),
        ReplicaLog::recovered(Zxid::ZERO, log),
    );
    p.role = Role::Looking {
        connecting_to: Some(sid(leader)),
        ticks: 0,
    };
    let mut out = vec![];
    p.step(
        Input::Connected {
            leader: sid(leader),
        },
        &mut out,
    );
    p.step(
        Input::Message {
            from: sid(leader),
            msg: QuorumMessage::LeaderInfo {
                new_epoch: Epoch(epoch),
            },
        },
        &mut out,
    );
    assert_eq!(p.role().zab_state, ZabState::Synchronization);
    p
}

#[test]
fn leaderinfo_is_accepted_durably_before_ackepoch() {
    let mut p = Peer::new(
        cfg(1, 3),
        Epoch(0),
        Epoch(0),
        ReplicaLog::recovered(Zxid::ZERO, vec![txn(0, 1)]),
    );
    p.role = Role::Looking {
        connecting_to: Some(sid(3)),
        ticks: 0,
    };
    let mut out = vec![];
    p.step(Input::Connected { leader: sid(3) }, &mut out);
    assert_eq!(
        non_trace(std::mem::take(&mut out)),
        vec![Action::Send {
            to: sid(3),
            msg: QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(0),
                recovering: false,
            }
        }]
    );
    p.step(
        Input::Message {
            from: sid(3),
            msg: QuorumMessage::LeaderInfo {
                new_epoch: Epoch(1),
            },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![
            Action::Persist(Persist::AcceptedEpoch(Epoch(1))),
            Action::Send {
                to: sid(3),
                msg: QuorumMessage::AckEpoch {
                    current_epoch: Some(Epoch(0)),
                    last_zxid: z(0, 1)
                }
            },
        ]
    );
}

#[test]
fn newleader_logs_then_writes_the_epoch_then_acks() {
    // The order that fixes ZOOKEEPER-4646 and 4643.
    let mut p = syncing_follower(1, 3, 2, vec![txn(1, 1)]);
    let mut out = vec![];
    let l = sid(3);
    for msg in [
        QuorumMessage::Diff { last_zxid: z(1, 1) },
        QuorumMessage::Proposal(txn(1, 2)),
        QuorumMessage::Commit { zxid: z(1, 2) },
        QuorumMessage::Proposal(txn(1, 3)),
    ] {
        p.step(Input::Message { from: l, msg }, &mut out);
    }
    assert_eq!(
        non_trace(std::mem::take(&mut out)),
        vec![],
        "nothing is logged or sent before NEWLEADER"
    );
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::NewLeader { zxid: z(2, 0) },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![
            Action::Persist(Persist::Append {
                txns: vec![txn(1, 2), txn(1, 3)],
                wait: true
            }),
            Action::Persist(Persist::CurrentEpoch(Epoch(2))),
            Action::Send {
                to: l,
                msg: QuorumMessage::AckNewLeader { zxid: z(2, 0) }
            },
            // 0x100000003 was not committed by the sync: it is acknowledged now.
            Action::Send {
                to: l,
                msg: QuorumMessage::Ack { zxid: z(1, 3) }
            },
        ]
    );
    let mut out = vec![];
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::UpToDate,
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![Action::Deliver(txn(1, 1)), Action::Deliver(txn(1, 2))]
    );
    assert_eq!(p.log().committed(), z(1, 2));
}

#[test]
fn a_proposal_is_acked_only_after_its_fsync() {
    let mut p = syncing_follower(1, 3, 1, vec![]);
    let l = sid(3);
    let mut out = vec![];
    for msg in [
        QuorumMessage::Diff {
            last_zxid: Zxid::ZERO,
        },
        QuorumMessage::NewLeader { zxid: z(1, 0) },
        QuorumMessage::UpToDate,
    ] {
        p.step(Input::Message { from: l, msg }, &mut out);
    }
    let mut out = vec![];
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::Proposal(txn(1, 1)),
        },
        &mut out,
    );
    assert_eq!(
        non_trace(std::mem::take(&mut out)),
        vec![Action::Persist(Persist::Append {
            txns: vec![txn(1, 1)],
            wait: false
        })]
    );
    p.step(Input::Durable { zxid: z(1, 1) }, &mut out);
    assert_eq!(
        non_trace(out.clone()),
        vec![Action::Send {
            to: l,
            msg: QuorumMessage::Ack { zxid: z(1, 1) }
        }]
    );
    assert_eq!(traces(&out), vec![ActionKind::SyncProcessorLogRequest]);
}

#[test]
fn trunc_and_snap_are_durable_before_the_next_packet() {
    let mut p = syncing_follower(1, 3, 3, vec![txn(1, 1), txn(1, 2)]);
    let mut out = vec![];
    p.step(
        Input::Message {
            from: sid(3),
            msg: QuorumMessage::Trunc {
                truncate_to: z(1, 1),
            },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![Action::Persist(Persist::Truncate { after: z(1, 1) })]
    );
    assert_eq!(p.log().last_zxid(), z(1, 1));

    let mut p = syncing_follower(1, 3, 3, vec![txn(1, 1)]);
    let mut out = vec![];
    let data = SnapData::from(Bytes::from_static(b"state"));
    p.step(
        Input::Message {
            from: sid(3),
            msg: QuorumMessage::Snap {
                last_zxid: z(2, 5),
                snapshot: data.clone(),
            },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![Action::Persist(Persist::InstallSnapshot {
            last_zxid: z(2, 5),
            data
        })]
    );
    assert_eq!(
        (p.log().snapshot(), p.log().committed()),
        (z(2, 5), z(2, 5))
    );
}

#[test]
fn a_leader_accepts_the_new_epoch_durably_before_leaderinfo() {
    let mut p = fresh(3, 3);
    let mut out = vec![];
    p.step(Input::Start, &mut out);
    // Votes from 1 and 2 for server 3: it leads after finalizeWait.
    let vote = Vote {
        peer_epoch: Epoch(0),
        zxid: Zxid::ZERO,
        leader: sid(3),
    };
    let n = Notification {
        vote,
        election_epoch: 1,
        state: ServerState::Looking,
        recovering: false,
        empty: true,
    };
    for from in [sid(1), sid(2)] {
        p.step(
            Input::Notification {
                from,
                notification: n,
            },
            &mut out,
        );
    }
    p.step(Input::Timer(Timer::ElectionFinalize), &mut out);
    assert_eq!(p.role().state, ServerState::Leading);
    p.step(Input::LearnerConnected { learner: sid(1) }, &mut out);
    let mut out = vec![];
    p.step(
        Input::Message {
            from: sid(1),
            msg: QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(4),
                recovering: false,
            },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![
            Action::Persist(Persist::AcceptedEpoch(Epoch(5))),
            Action::Send {
                to: sid(1),
                msg: QuorumMessage::LeaderInfo {
                    new_epoch: Epoch(5)
                }
            },
        ]
    );
}

// ----- a deterministic in-memory cluster -------------------------------------------------------

/// What a server has on disk.
#[derive(Clone, Debug, Default)]
struct Disk {
    accepted: Epoch,
    current: Epoch,
    snapshot: Zxid,
    log: Vec<Txn<P>>,
    /// The durable `recovering` flag (§7.1).
    recovering: bool,
}

struct Node {
    peer: Peer<P>,
    disk: Disk,
    /// Appended but not yet fsynced by the (simulated) log thread.
    unsynced: Vec<Txn<P>>,
    applied: Vec<Txn<P>>,
}

/// Runs whole clusters of cores with atomic connections, FIFO delivery, a simulated clock and
/// a simulated disk whose async appends become durable when the harness says so.
struct Cluster {
    nodes: BTreeMap<ServerId, Node>,
    queue: VecDeque<(ServerId, Input<P>)>,
    links: BTreeSet<(ServerId, ServerId)>,
    /// Connection attempts still retrying: (follower, leader).
    connecting: BTreeSet<(ServerId, ServerId)>,
    timers: BTreeMap<(ServerId, Timer), u64>,
    now: u64,
    trace: Vec<TraceEvent<P>>,
    n: u64,
    /// `commitLogCount` of the servers booted from now on.
    commit_log_count: usize,
    /// `SendLogged` actions executed: (leader, follower, after, through).
    logged: Vec<(ServerId, ServerId, Zxid, Zxid)>,
    /// Observers (§10.2), with ids after the `n` voters.
    observers: Vec<ServerId>,
    /// Every quorum message sent: (from, to, message name).
    sent: Vec<(ServerId, ServerId, &'static str)>,
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        Cluster::with_commit_log_count(n, DEFAULT_COMMIT_LOG_COUNT)
    }

    fn with_commit_log_count(n: u64, commit_log_count: usize) -> Cluster {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            links: BTreeSet::new(),
            connecting: BTreeSet::new(),
            timers: BTreeMap::new(),
            now: 0,
            trace: vec![],
            n,
            commit_log_count,
            logged: vec![],
            observers: vec![],
            sent: vec![],
        };
        for k in 1..=n {
            c.boot(sid(k), Disk::default());
        }
        c
    }

    /// `n` voters and `m` observers (ids `n+1..=n+m`).
    fn with_observers(n: u64, m: u64) -> Cluster {
        let mut c = Cluster {
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            links: BTreeSet::new(),
            connecting: BTreeSet::new(),
            timers: BTreeMap::new(),
            now: 0,
            trace: vec![],
            n,
            commit_log_count: DEFAULT_COMMIT_LOG_COUNT,
            logged: vec![],
            observers: (n + 1..=n + m).map(sid).collect(),
            sent: vec![],
        };
        for k in 1..=n + m {
            c.boot(sid(k), Disk::default());
        }
        c
    }

    fn boot(&mut self, id: ServerId, disk: Disk) {
        let log = ReplicaLog::recovered(disk.snapshot, disk.log.clone());
        let mut config = cfg(id.0, self.n);
        config.commit_log_count = self.commit_log_count;
        config.observers.clone_from(&self.observers);
        let peer =
            Peer::new(config, disk.accepted, disk.current, log).with_recovering(disk.recovering);
        let applied = vec![];
        self.nodes.insert(
            id,
            Node {
                peer,
                disk,
                unsynced: vec![],
                applied,
            },
        );
        self.queue.push_back((id, Input::Start));
    }

    /// Crashes `id` and restarts it from its disk at once.
    fn crash(&mut self, id: ServerId) {
        let disk = self.down(id);
        self.boot(id, disk);
    }

    /// Restarts a server that was down, from its disk.
    fn up(&mut self, id: ServerId, disk: Disk) {
        self.boot(id, disk);
    }

    /// Crashes `id` and keeps it down; returns its disk.
    fn down(&mut self, id: ServerId) -> Disk {
        let node = self.nodes.remove(&id).expect("node");
        self.queue.retain(|(to, _)| *to != id);
        self.timers.retain(|(s, _), _| *s != id);
        for (a, b) in self.links.clone() {
            if a == id || b == id {
                self.links.remove(&(a, b));
                let other = if a == id { b } else { a };
                self.queue
                    .push_back((other, Input::Disconnected { peer: id }));
            }
        }
        self.connecting.retain(|(f, l)| *f != id && *l != id);
        node.disk
    }

    fn linked(&self, a: ServerId, b: ServerId) -> bool {
        self.links.contains(&(a.min(b), a.max(b)))
    }

    fn execute(&mut self, id: ServerId, actions: Vec<Action<P>>) {
        for a in actions {
            match a {
                Action::SendNotification { to, notification } => {
                    if self.nodes.contains_key(&to) {
                        self.queue.push_back((
                            to,
                            Input::Notification {
                                from: id,
                                notification,
                            },
                        ));
                    }
                }
                Action::Connect { leader } => {
                    // Like a runtime, keep retrying until the leader accepts or the core gives up.
                    self.connecting.insert((id, leader));
                }
                Action::Disconnect { peer } => {
                    self.connecting.remove(&(id, peer));
                    if self.links.remove(&(id.min(peer), id.max(peer))) {
                        // Messages in flight on the connection are gone with it.
                        self.queue.retain(|(to, i)| {
                            !(*to == peer && matches!(i, Input::Message { from, .. } | Input::Heartbeat { from } | Input::Restored { from } if *from == id))
                        });
                        self.queue
                            .push_back((peer, Input::Disconnected { peer: id }));
                    }
                }
                Action::Send { to, msg } => {
                    self.sent.push((id, to, msg.name()));
                    if self.linked(id, to) {
                        self.queue.push_back((to, Input::Message { from: id, msg }));
                    }
                }
                Action::SendSnapshot { to, last_zxid } => {
                    let node = &self.nodes[&id];
                    assert_eq!(
                        node.applied
                            .last()
                            .map_or(node.disk.snapshot, |t| t.zxid)
                            .max(node.disk.snapshot),
                        last_zxid
                    );
                    let bytes: Vec<u8> = node
                        .applied
                        .iter()
                        .flat_map(|t| t.zxid.to_u64().to_be_bytes())
                        .collect();
                    if self.linked(id, to) {
                        let msg = QuorumMessage::Snap {
                            last_zxid,
                            snapshot: Bytes::from(bytes).into(),
                        };
                        self.queue.push_back((to, Input::Message { from: id, msg }));
                    }
                }
                Action::SendLogged {
                    to,
                    after,
                    through,
                    committed,
                } => {
                    // Read back from the leader's disk, as the runtime does.
                    self.logged.push((id, to, after, through));
                    let node = &self.nodes[&id];
                    let txns: Vec<Txn<P>> = node
                        .disk
                        .log
                        .iter()
                        .filter(|t| t.zxid > after && t.zxid <= through)
                        .cloned()
                        .collect();
                    assert_eq!(
                        txns.last().map(|t| t.zxid),
                        Some(through),
                        "everything sent from disk is on disk"
                    );
                    if self.linked(id, to) {
                        for t in txns {
                            let zxid = t.zxid;
                            self.queue.push_back((
                                to,
                                Input::Message {
                                    from: id,
                                    msg: QuorumMessage::Proposal(t),
                                },
                            ));
                            if zxid <= committed {
                                self.queue.push_back((
                                    to,
                                    Input::Message {
                                        from: id,
                                        msg: QuorumMessage::Commit { zxid },
                                    },
                                ));
                            }
                        }
                    }
                }
                Action::SendHeartbeat { to } => {
                    if self.linked(id, to) {
                        self.queue.push_back((to, Input::Heartbeat { from: id }));
                    }
                }
                Action::SendRestored { to } => {
                    if self.linked(id, to) {
                        self.queue.push_back((to, Input::Restored { from: id }));
                    }
                }
                Action::Persist(p) => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    match p {
                        Persist::Append { txns, wait: true } => node.disk.log.extend(txns),
                        Persist::Append { txns, wait: false } => {
                            let last = txns.last().map(|t| t.zxid);
                            node.unsynced.extend(txns);
                            if let Some(zxid) = last {
                                // The log thread syncs soon: the durability report is queued.
                                self.queue.push_back((id, Input::Durable { zxid }));
                            }
                        }
                        Persist::Flush => {
                            let u = std::mem::take(&mut node.unsynced);
                            node.disk.log.extend(u);
                        }
                        Persist::Truncate { after } => {
                            node.disk.log.extend(std::mem::take(&mut node.unsynced));
                            node.disk.log.retain(|t| t.zxid <= after);
                        }
                        Persist::InstallSnapshot { last_zxid, data } => {
                            node.unsynced.clear();
                            node.disk.log.clear();
                            node.disk.snapshot = last_zxid;
                            node.applied = data
                                .to_bytes()
                                .unwrap_or_default()
                                .chunks(8)
                                .map(|c| Txn {
                                    zxid: Zxid::from_u64(u64::from_be_bytes(c.try_into().unwrap())),
                                    payload: payload(0),
                                })
                                .collect();
                        }
                        Persist::AcceptedEpoch(e) => node.disk.accepted = e,
                        Persist::CurrentEpoch(e) => node.disk.current = e,
                        Persist::Recovering(on) => node.disk.recovering = on,
                    }
                }
                Action::SetTimer { timer, after_ms } => {
                    self.timers.insert((id, timer), self.now + after_ms);
                }
                Action::CancelTimer(timer) => {
                    self.timers.remove(&(id, timer));
                }
                Action::Deliver(t) => {
                    let node = self.nodes.get_mut(&id).expect("node");
                    if let Some(last) = node.applied.last() {
                        assert!(t.zxid > last.zxid, "deliveries in zxid order");
                    }
                    node.applied.push(t);
                }
                Action::RoleChanged(_) => {}
                Action::Trace(t) => self.trace.push(t),
            }
        }
    }

    /// Moves a node's async appends to disk when its Durable input is processed.
    fn sync_unsynced(&mut self, id: ServerId, upto: Zxid) {
        let node = self.nodes.get_mut(&id).expect("node");
        let (done, rest): (Vec<_>, Vec<_>) = node.unsynced.drain(..).partition(|t| t.zxid <= upto);
        node.disk.log.extend(done);
        node.unsynced = rest;
    }

    /// Completes the connection attempts whose leader now leads; drops abandoned ones.
    fn retry_connects(&mut self) {
        for (f, l) in self.connecting.clone() {
            let still_wanted = self.nodes.get(&f).is_some_and(
                |n| matches!(n.peer.role, Role::Looking { connecting_to: Some(x), .. } if x == l),
            );
            if !still_wanted {
                self.connecting.remove(&(f, l));
                continue;
            }
            if self
                .nodes
                .get(&l)
                .is_some_and(|n| n.peer.role().state == ServerState::Leading)
            {
                self.connecting.remove(&(f, l));
                self.links.insert((f.min(l), f.max(l)));
                self.queue
                    .push_back((l, Input::LearnerConnected { learner: f }));
                self.queue.push_back((f, Input::Connected { leader: l }));
            }
        }
    }

    fn step_one(&mut self) -> bool {
        self.retry_connects();
        if let Some((to, input)) = self.queue.pop_front() {
            if !self.nodes.contains_key(&to) {
                return true;
            }
            if let Input::Durable { zxid } = &input {
                self.sync_unsynced(to, *zxid);
            }
            let mut out = vec![];
            self.nodes
                .get_mut(&to)
                .expect("node")
                .peer
                .step(input, &mut out);
            self.execute(to, out);
            return true;
        }
        let Some((&(id, timer), &at)) = self.timers.iter().min_by_key(|(_, at)| **at) else {
            return false;
        };
        self.timers.remove(&(id, timer));
        self.now = self.now.max(at);
        let mut out = vec![];
        self.nodes
            .get_mut(&id)
            .expect("node")
            .peer
            .step(Input::Timer(timer), &mut out);
        self.execute(id, out);
        true
    }

    fn run_until(&mut self, mut done: impl FnMut(&Cluster) -> bool) {
        for _ in 0..200_000 {
            if done(self) {
                return;
            }
            assert!(
                self.step_one(),
                "the cluster stopped before the condition held"
            );
        }
        panic!("condition not reached; roles: {:?}", self.roles());
    }

    fn roles(&self) -> Vec<(ServerId, RoleInfo)> {
        self.nodes
            .iter()
            .map(|(k, n)| (*k, n.peer.role()))
            .collect()
    }

    fn leader(&self) -> Option<ServerId> {
        self.nodes
            .iter()
            .find(|(_, n)| {
                n.peer.role().state == ServerState::Leading
                    && n.peer.role().zab_state == ZabState::Broadcast
            })
            .map(|(k, _)| *k)
    }

    fn all_broadcasting(&self) -> bool {
        self.nodes
            .values()
            .all(|n| n.peer.role().zab_state == ZabState::Broadcast)
    }

    fn propose(&mut self, k: i64) -> Zxid {
        let l = self.leader().expect("a leader");
        let mut out = vec![];
        let node = self.nodes.get_mut(&l).expect("node");
        let zxid = node
            .peer
            .leader_process_request(payload(k), &mut out)
            .expect("accepted");
        self.execute(l, out);
        zxid
    }

    fn applied(&self, id: ServerId) -> Vec<Zxid> {
        self.nodes[&id].applied.iter().map(|t| t.zxid).collect()
    }
}

#[test]
fn three_servers_elect_the_highest_id_and_replicate_in_order() {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    assert_eq!(c.leader(), Some(sid(3)), "equal logs: the highest id wins");
    let zxids: Vec<Zxid> = (1..=5).map(|k| c.propose(k)).collect();
    c.run_until(|c| (1..=3).all(|k| c.applied(sid(k)) == zxids));
    assert_eq!(zxids, (1..=5).map(|k| z(1, k)).collect::<Vec<_>>());
    let actions: BTreeSet<ActionKind> = c.trace.iter().map(|t| t.action).collect();
    for a in [
        ActionKind::ElectLeader,
        ActionKind::FollowLeader,
        ActionKind::LeaderProcessFollowerInfo,
        ActionKind::LeaderProcessAckEpoch,
        ActionKind::LeaderSyncFollower,
        ActionKind::FollowerProcessNewLeader,
        ActionKind::LeaderProcessAckLd,
        ActionKind::FollowerProcessUpToDate,
        ActionKind::LeaderProcessRequest,
        ActionKind::SyncProcessorLogRequest,
        ActionKind::LeaderProcessAck,
        ActionKind::FollowerProcessCommit,
    ] {
        assert!(actions.contains(&a), "{a} never happened");
    }
}

#[test]
fn a_crashed_leader_is_replaced_and_no_committed_transaction_is_lost() {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    let first: Vec<Zxid> = (1..=3).map(|k| c.propose(k)).collect();
    c.run_until(|c| (1..=3).all(|k| c.applied(sid(k)) == first));
    let disk = c.down(sid(3));
    c.run_until(|c| c.leader().is_some() && c.all_broadcasting());
    let second = c.propose(10);
    assert_eq!(second.epoch, Epoch(2));
    c.up(sid(3), disk);
    c.run_until(|c| (1..=3).all(|k| c.applied(sid(k)).last() == Some(&second)));
    for k in 1..=3 {
        assert_eq!(
            &c.applied(sid(k))[..3],
            &first[..],
            "server {k} lost a committed transaction"
        );
    }
}

#[test]
fn a_restarted_follower_catches_up_by_diff() {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    c.crash(sid(1));
    c.run_until(|c| c.all_broadcasting());
    let zxids: Vec<Zxid> = (1..=4).map(|k| c.propose(k)).collect();
    c.run_until(|c| (1..=3).all(|k| c.applied(sid(k)) == zxids));
    let diffs = c
        .trace
        .iter()
        .filter(|t| t.action == ActionKind::FollowerProcessSyncMessage && t.i == sid(1))
        .count();
    assert!(diffs >= 1);
}

/// `commitLogCount` 2: the servers keep only the last two committed payloads in memory; a
/// follower that missed ten transactions is DIFFed with the older ones read back from the
/// leader's disk (`SendLogged`), the newer ones from memory, and ends with the same history.
#[test]
fn a_follower_older_than_commit_log_count_is_diffed_from_disk() {
    let mut c = Cluster::with_commit_log_count(3, 2);
    c.run_until(|c| c.all_broadcasting());
    let l = c.leader().expect("leader");
    let victim = if l == sid(1) { sid(2) } else { sid(1) };
    let before = c.propose(1);
    c.run_until(|c| (1..=3).all(|k| c.applied(sid(k)).last() == Some(&before)));
    let disk = c.down(victim);
    let zxids: Vec<Zxid> = (2..=11).map(|k| c.propose(k)).collect();
    c.run_until(|c| c.applied(l).last() == zxids.last());
    // The leader holds two committed payloads in memory, the rest on disk only.
    let log = c.nodes[&l].peer.log();
    assert_eq!(log.entries().len(), 2, "commitLogCount payloads in memory");
    assert_eq!(log.on_disk_end(), zxids[zxids.len() - 3]);
    assert!(log.contains(before) && log.contains(zxids[0]));
    assert_eq!(
        log.zxids().len(),
        11,
        "the sync decision still sees every zxid"
    );
    c.up(victim, disk);
    c.run_until(|c| c.all_broadcasting() && c.applied(victim).last() == zxids.last());
    assert_eq!(
        c.logged,
        vec![(l, victim, before, zxids[zxids.len() - 3])],
        "one DIFF read back from disk, from the victim's last zxid to the in-memory window"
    );
    let mut expected = vec![before];
    expected.extend(&zxids);
    assert!(c.applied(victim).ends_with(&expected));
    assert_eq!(
        c.nodes[&victim]
            .disk
            .log
            .iter()
            .map(|t| t.zxid)
            .collect::<Vec<_>>(),
        c.nodes[&l]
            .disk
            .log
            .iter()
            .map(|t| t.zxid)
            .collect::<Vec<_>>(),
        "the victim's log is the leader's"
    );
    // Nothing outstanding is ever evicted: proposals not yet committed stay in memory.
    c.links.clear();
    let pending = c.propose(99);
    let log = c.nodes[&l].peer.log();
    assert_eq!(log.entries().last().map(|t| t.zxid), Some(pending));
    assert!(log.entries().len() <= 3);
}

#[test]
fn an_uncommitted_suffix_is_truncated() {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    let l = c.leader().expect("leader");
    // Cut the leader off: its proposal reaches no follower; it logs it and goes down.
    c.links.clear();
    let lost = c.propose(99);
    c.run_until(|c| c.nodes[&l].disk.log.iter().any(|t| t.zxid == lost));
    let disk = c.down(l);
    c.run_until(|c| c.leader().is_some() && c.all_broadcasting());
    let kept = c.propose(7);
    c.up(l, disk);
    c.run_until(|c| c.all_broadcasting() && c.applied(l).last() == Some(&kept));
    assert!(
        c.nodes[&l].disk.log.iter().all(|t| t.zxid != lost),
        "the uncommitted proposal was truncated"
    );
    assert!(c.applied(l).iter().all(|z| *z != lost));
}

#[test]
fn a_follower_behind_the_leaders_snapshot_gets_snap() {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    let l = c.leader().expect("leader");
    let victim = if l == sid(1) { sid(2) } else { sid(1) };
    c.crash(victim);
    // Keep the victim away while the others commit and the leader snapshots.
    c.nodes.remove(&victim);
    c.queue.retain(|(to, _)| *to != victim);
    let zxids: Vec<Zxid> = (1..=3).map(|k| c.propose(k)).collect();
    c.run_until(|c| c.applied(l) == zxids);
    let mut out = vec![];
    c.nodes
        .get_mut(&l)
        .expect("leader")
        .peer
        .step(Input::SnapshotWritten { zxid: zxids[2] }, &mut out);
    c.execute(l, out);
    assert_eq!(c.nodes[&l].peer.log().snapshot(), zxids[2]);
    c.boot(victim, Disk::default());
    c.run_until(|c| c.applied(victim) == zxids);
    assert!(
        c.nodes[&victim].peer.log().snapshot() == zxids[2],
        "the victim's log starts at the snapshot"
    );
}

#[test]
fn a_single_server_broadcasts_alone() {
    let mut c = Cluster::new(1);
    c.run_until(|c| c.all_broadcasting());
    let zx = c.propose(1);
    c.run_until(|c| c.applied(sid(1)) == vec![zx]);
}

#[test]
fn proposals_are_refused_off_the_leader() {
    let p = fresh(1, 3);
    assert_eq!(p.can_propose(), Err(NotLeader::Follower(None)));
    let _ = ErrorCode::Ok;
}

// ----- the known-bug switches (tests only; the simulation shows refinement finds them) -------

/// A syncing follower with the bug on that got DIFF and two proposals, before NEWLEADER.
fn buggy_follower(bug: Bug) -> (Peer<P>, ServerId) {
    let mut p = syncing_follower(1, 3, 2, vec![txn(1, 1)]);
    p.cfg.bug = Some(bug);
    let l = sid(3);
    let mut out = vec![];
    for msg in [
        QuorumMessage::Diff { last_zxid: z(1, 1) },
        QuorumMessage::Proposal(txn(1, 2)),
        QuorumMessage::Proposal(txn(1, 3)),
    ] {
        p.step(Input::Message { from: l, msg }, &mut out);
    }
    (p, l)
}

#[test]
fn zk4646_acks_newleader_before_the_packets_are_durable() {
    let (mut p, l) = buggy_follower(Bug::Zk4646);
    let mut out = vec![];
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::NewLeader { zxid: z(2, 0) },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(out),
        vec![
            Action::Persist(Persist::CurrentEpoch(Epoch(2))),
            Action::Persist(Persist::Append {
                txns: vec![txn(1, 2), txn(1, 3)],
                wait: false
            }),
            Action::Send {
                to: l,
                msg: QuorumMessage::AckNewLeader { zxid: z(2, 0) }
            },
        ]
    );
    assert_eq!(
        p.log().persisted(),
        z(1, 1),
        "the packets are not durable yet"
    );
}

#[test]
fn zk4643_writes_the_epoch_first_and_logs_the_packets_a_tick_later() {
    let (mut p, l) = buggy_follower(Bug::Zk4643);
    let mut out = vec![];
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::NewLeader { zxid: z(2, 0) },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(std::mem::take(&mut out)),
        vec![Action::Persist(Persist::CurrentEpoch(Epoch(2)))]
    );
    // Messages in between wait for the second half.
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::UpToDate,
        },
        &mut out,
    );
    assert_eq!(non_trace(std::mem::take(&mut out)), vec![]);
    p.step(Input::Timer(Timer::Tick), &mut out);
    let actions: Vec<Action<P>> = non_trace(out)
        .into_iter()
        .filter(|a| !matches!(a, Action::SetTimer { .. } | Action::SendHeartbeat { .. }))
        .collect();
    assert_eq!(
        actions[..4],
        [
            Action::Persist(Persist::Append {
                txns: vec![txn(1, 2), txn(1, 3)],
                wait: true
            }),
            Action::Send {
                to: l,
                msg: QuorumMessage::AckNewLeader { zxid: z(2, 0) }
            },
            Action::Send {
                to: l,
                msg: QuorumMessage::Ack { zxid: z(1, 2) }
            },
            Action::Send {
                to: l,
                msg: QuorumMessage::Ack { zxid: z(1, 3) }
            },
        ]
    );
    assert_eq!(
        p.role().zab_state,
        ZabState::Broadcast,
        "the deferred UPTODATE ran"
    );
}

#[test]
fn zk4394_a_commit_after_newleader_finds_nothing_to_commit() {
    for (bug, committed) in [(None, z(1, 2)), (Some(Bug::Zk4394), z(1, 1))] {
        let (mut p, l) = buggy_follower(Bug::Zk4394);
        p.cfg.bug = bug;
        let mut out = vec![];
        for msg in [
            QuorumMessage::NewLeader { zxid: z(2, 0) },
            QuorumMessage::Commit { zxid: z(1, 2) },
            QuorumMessage::UpToDate,
        ] {
            p.step(Input::Message { from: l, msg }, &mut out);
        }
        assert_eq!(p.log().committed(), committed, "with {bug:?}");
    }
}

#[test]
fn zk2845_a_server_going_looking_reports_its_last_applied_zxid() {
    // Nothing was applied since the start (no UPTODATE): the stale zxid is the recovery point.
    for (bug, reported) in [(None, z(1, 3)), (Some(Bug::Zk2845), Zxid::ZERO)] {
        let (mut p, l) = buggy_follower(Bug::Zk2845);
        p.cfg.bug = bug;
        let mut out = vec![];
        p.step(
            Input::Message {
                from: l,
                msg: QuorumMessage::NewLeader { zxid: z(2, 0) },
            },
            &mut out,
        );
        p.step(Input::Disconnected { peer: l }, &mut out);
        assert_eq!(p.role().state, ServerState::Looking);
        assert_eq!(p.own_vote().zxid, reported, "with {bug:?}");
    }
}

fn sends(actions: Vec<Action<P>>) -> Vec<Message<P>> {
    actions
        .into_iter()
        .filter_map(|a| match a {
            Action::Send { msg, .. } => Some(msg),
            _ => None,
        })
        .collect()
}

#[test]
fn zk3911_acks_newleader_and_logs_the_packets_only_at_uptodate() {
    let (mut p, l) = buggy_follower(Bug::Zk3911);
    let mut out = vec![];
    p.step(
        Input::Message {
            from: l,
            msg: QuorumMessage::NewLeader { zxid: z(2, 0) },
        },
        &mut out,
    );
    assert_eq!(
        non_trace(std::mem::take(&mut out)),
        vec![
            Action::Persist(Persist::CurrentEpoch(Epoch(2))),
            Action::Send {
                to: l,
                msg: QuorumMessage::AckNewLeader { zxid: z(2, 0) }
            },
        ]
    );
    assert_eq!(
        p.log().last_zxid(),
        z(1, 1),
        "the packets are in memory only"
    );
    for msg in [
        QuorumMessage::Commit { zxid: z(1, 2) },
        QuorumMessage::UpToDate,
    ] {
        p.step(Input::Message { from: l, msg }, &mut out);
    }
    assert!(non_trace(out).contains(&Action::Persist(Persist::Append {
        txns: vec![txn(1, 2), txn(1, 3)],
        wait: false
    })));
    assert_eq!(p.log().last_zxid(), z(1, 3));
    assert_eq!(
        p.log().persisted(),
        z(1, 1),
        "handed to the log thread at UPTODATE"
    );
    assert_eq!(p.log().committed(), z(1, 2));
}

#[test]
fn zk4685_acks_the_synced_proposals_before_newleader() {
    // (1, 2) is committed in the sync: only the log thread of the bug acknowledges it.
    let ack_ld = QuorumMessage::AckNewLeader { zxid: z(2, 0) };
    let acks = [
        QuorumMessage::Ack { zxid: z(1, 2) },
        QuorumMessage::Ack { zxid: z(1, 3) },
    ];
    for (bug, expected) in [
        (None, vec![ack_ld.clone(), acks[1].clone()]),
        (
            Some(Bug::Zk4685),
            vec![acks[0].clone(), acks[1].clone(), ack_ld.clone()],
        ),
    ] {
        let (mut p, l) = buggy_follower(Bug::Zk4685);
        p.cfg.bug = bug;
        let mut out = vec![];
        for msg in [
            QuorumMessage::Commit { zxid: z(1, 2) },
            QuorumMessage::NewLeader { zxid: z(2, 0) },
        ] {
            p.step(Input::Message { from: l, msg }, &mut out);
        }
        assert_eq!(sends(out), expected, "with {bug:?}");
    }
}

#[test]
fn zk4712_a_follower_going_looking_leaves_its_log_thread_running() {
    for (bug, reported, flushed) in [(None, z(1, 4), true), (Some(Bug::Zk4712), z(1, 3), false)] {
        let (mut p, l) = buggy_follower(Bug::Zk4712);
        p.cfg.bug = bug;
        let mut out = vec![];
        for msg in [
            QuorumMessage::NewLeader { zxid: z(2, 0) },
            QuorumMessage::UpToDate,
            QuorumMessage::Proposal(txn(1, 4)),
        ] {
            p.step(Input::Message { from: l, msg }, &mut out);
        }
        assert_eq!(p.log().persisted(), z(1, 3), "with {bug:?}");
        out.clear();
        p.step(Input::Disconnected { peer: l }, &mut out);
        assert_eq!(p.role().state, ServerState::Looking);
        assert_eq!(
            out.contains(&Action::Persist(Persist::Flush)),
            flushed,
            "with {bug:?}"
        );
        assert_eq!(p.own_vote().zxid, reported, "with {bug:?}");
    }
}

// ----- what the core ignores ---------------------------------------------------------------

#[test]
fn ignored_inputs_take_their_ignore_path_and_keep_the_trace() {
    // A follower in SYNCHRONIZATION: a gap in the proposals, a COMMIT of something else and
    // a NEWLEADER twice; each is counted, and each still leaves its model action's record.
    let mut p = syncing_follower(1, 3, 1, vec![]);
    let msg = |m| Input::Message {
        from: sid(3),
        msg: m,
    };
    let mut out = vec![];
    p.step(
        msg(QuorumMessage::Diff {
            last_zxid: Zxid::ZERO,
        }),
        &mut out,
    );
    p.step(msg(QuorumMessage::Proposal(txn(1, 2))), &mut out);
    assert_eq!(
        p.ignored().get(Ignored::OutOfOrderProposal),
        1,
        "1 is missing"
    );
    p.step(msg(QuorumMessage::Commit { zxid: z(1, 7) }), &mut out);
    assert_eq!(p.ignored().get(Ignored::CommitWrongZxid), 1);
    p.step(msg(QuorumMessage::Proposal(txn(1, 1))), &mut out);
    p.step(msg(QuorumMessage::NewLeader { zxid: z(1, 0) }), &mut out);
    assert_eq!(p.ignored().get(Ignored::OutOfPhase), 0);
    p.step(msg(QuorumMessage::NewLeader { zxid: z(1, 0) }), &mut out);
    assert_eq!(p.ignored().get(Ignored::OutOfPhase), 1, "NEWLEADER twice");
    assert_eq!(
        traces(&out),
        vec![
            ActionKind::FollowerProcessSyncMessage,
            ActionKind::FollowerProcessProposalInSync,
            ActionKind::FollowerProcessCommitInSync,
            ActionKind::FollowerProcessProposalInSync,
            ActionKind::FollowerProcessNewLeader,
            ActionKind::FollowerProcessNewLeader,
        ]
    );
    // A message from a server that is not the leader, and a heartbeat from one.
    p.step(
        Input::Message {
            from: sid(2),
            msg: QuorumMessage::UpToDate,
        },
        &mut out,
    );
    p.step(Input::Heartbeat { from: sid(2) }, &mut out);
    assert_eq!(p.ignored().get(Ignored::MessageFromStranger), 1);
    assert_eq!(p.ignored().get(Ignored::HeartbeatFromStranger), 1);
    let total: u64 = p.ignored().iter().map(|(_, n)| n).sum();
    assert_eq!(total, 5, "nothing else was ignored");
}

#[test]
fn a_leader_ignores_acks_it_has_no_proposal_for() {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    let l = c.leader().expect("leader");
    let f = if l == sid(1) { sid(2) } else { sid(1) };
    let zx = c.propose(1);
    c.run_until(|c| c.applied(l) == vec![zx]);
    let peer = &mut c.nodes.get_mut(&l).expect("leader").peer;
    let before = peer.ignored().get(Ignored::AckUnknownZxid);
    let mut out = vec![];
    let unknown = Zxid::new(zx.epoch.0, zx.counter + 5);
    peer.step(
        Input::Message {
            from: f,
            msg: QuorumMessage::Ack { zxid: unknown },
        },
        &mut out,
    );
    assert_eq!(peer.ignored().get(Ignored::AckUnknownZxid), before + 1);
    assert_eq!(
        traces(&out),
        vec![ActionKind::LeaderProcessAck],
        "the model action is still recorded"
    );
    peer.step(
        Input::Message {
            from: f,
            msg: QuorumMessage::Ack { zxid: zx },
        },
        &mut out,
    );
    assert!(peer.ignored().get(Ignored::AckAlreadyCommitted) >= 1);
}

#[test]
fn a_followerinfo_at_the_last_epoch_is_refused_not_a_panic() {
    let mut p = fresh_leader(3, 3);
    let mut out = vec![];
    p.step(Input::LearnerConnected { learner: sid(1) }, &mut out);
    let mut out = vec![];
    p.step(
        Input::Message {
            from: sid(1),
            msg: QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(u32::MAX),
                recovering: false,
            },
        },
        &mut out,
    );
    assert_eq!(p.ignored().get(Ignored::EpochOverflow), 1);
    assert!(
        !non_trace(out)
            .iter()
            .any(|a| matches!(a, Action::Send { .. } | Action::Persist(_))),
        "nothing sent or persisted for an overflowing epoch"
    );
}

#[test]
fn a_leader_at_the_last_epoch_never_decides_an_epoch() {
    let mut p = Peer::<P>::new(
        cfg(3, 3),
        Epoch(u32::MAX),
        Epoch(u32::MAX),
        ReplicaLog::recovered(Zxid::ZERO, vec![]),
    );
    p.role = Role::Leading(Leader::new(sid(3), Epoch(u32::MAX)));
    let mut out = vec![];
    p.step(Input::LearnerConnected { learner: sid(1) }, &mut out);
    p.step(
        Input::Message {
            from: sid(1),
            msg: QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(3),
                recovering: false,
            },
        },
        &mut out,
    );
    assert_eq!(p.role().zab_state, ZabState::Discovery);
    assert!(p.ignored().get(Ignored::EpochOverflow) >= 1);
}

#[test]
fn zk1277_a_leader_at_zxid_counter_rollover_gives_up_for_a_new_epoch() {
    let mut p = Peer::<P>::new(
        cfg(1, 1),
        Epoch(1),
        Epoch(1),
        ReplicaLog::recovered(Zxid::ZERO, vec![txn(1, u32::MAX - 1)]),
    );
    let mut leader = Leader::new(sid(1), Epoch(1));
    leader.zab_state = ZabState::Broadcast;
    p.role = Role::Leading(leader);
    // The next zxid would be 0x1ffffffff: refused, and the leader goes back to LOOKING.
    assert_eq!(p.next_proposal_zxid(), Ok(z(1, u32::MAX)));
    let mut out = vec![];
    p.step(
        Input::Propose {
            payload: payload(1),
        },
        &mut out,
    );
    assert_eq!(p.role().state, ServerState::Looking);
    assert_eq!(p.log().last_zxid(), z(1, u32::MAX - 1));
    assert_eq!(p.ignored().get(Ignored::ProposalRefused), 1);
}

#[test]
fn a_bad_diff_or_trunc_drops_the_leader_and_goes_looking() {
    for msg in [
        // DIFF from a point this log does not have.
        QuorumMessage::Diff { last_zxid: z(7, 9) },
        // TRUNC below what this follower has committed... or to a point it never logged.
        QuorumMessage::Trunc {
            truncate_to: z(7, 9),
        },
    ] {
        let mut p = syncing_follower(1, 3, 3, vec![txn(1, 1), txn(1, 2)]);
        let mut out = vec![];
        p.step(
            Input::Message {
                from: sid(3),
                msg: msg.clone(),
            },
            &mut out,
        );
        assert_eq!(p.role().state, ServerState::Looking, "{msg}");
        assert!(
            out.contains(&Action::Disconnect { peer: sid(3) }),
            "{msg}: the leader's connection is closed"
        );
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::Persist(Persist::Truncate { .. }))),
            "{msg}: nothing of it is applied"
        );
        assert_eq!(p.log().last_zxid(), z(1, 2));
        assert_eq!(p.ignored().get(Ignored::SyncMessageMisfit), 1);
    }
}

// ----- storage faults and the recovering state (spec/PROTOCOL.md §7.1) --------------------------

impl Cluster {
    /// Runs `steps` steps (or until nothing is left to do).
    fn run_steps(&mut self, steps: usize) {
        for _ in 0..steps {
            if !self.step_one() {
                return;
            }
        }
    }

    /// Whether any server leads an established epoch (BROADCAST) or is past discovery.
    fn anyone_established(&self) -> bool {
        self.nodes.values().any(|n| {
            n.peer.role().state == ServerState::Leading
                && n.peer.role().zab_state != ZabState::Discovery
        })
    }
}

/// The scenario, on three servers 1 (C), 2 (B), 3 (A, the leader): C is down; X is
/// committed by A and B; A and B go down; B restarts with damaged storage (`damage` turns its
/// disk into what recovery hands the core); B and C start. Returns the cluster after A
/// rejoins, and whether B and C established a leader without A.
fn bc_without_a(damage: impl FnOnce(&mut Disk)) -> (Cluster, bool, Zxid) {
    let mut c = Cluster::new(3);
    c.run_until(|c| c.all_broadcasting());
    assert_eq!(c.leader(), Some(sid(3)));
    let c_disk = c.down(sid(1));
    let x = c.propose(1);
    c.run_until(|c| c.applied(sid(2)).contains(&x) && c.applied(sid(3)).contains(&x));
    let a_disk = c.down(sid(3));
    let mut b_disk = c.down(sid(2));
    damage(&mut b_disk);
    c.up(sid(2), b_disk);
    c.up(sid(1), c_disk);
    c.run_steps(20_000);
    let established = c.anyone_established();
    c.up(sid(3), a_disk);
    (c, established, x)
}

#[test]
fn a_recovering_server_neither_elects_nor_establishes_and_is_restored_by_intact_peers() {
    // B's currentEpoch file is lost: recovery takes the last logged epoch and sets the flag.
    let (mut c, established, x) = bc_without_a(|b| {
        b.current = b.log.last().map_or(Epoch(0), |t| t.zxid.epoch);
        b.recovering = true;
    });
    assert!(
        !established,
        "B (recovering) and C formed a quorum without an intact server that holds X"
    );
    c.run_until(|c| c.all_broadcasting() && (1..=3).all(|k| c.applied(sid(k)).contains(&x)));
    // Restored at UPTODATE, durably.
    c.run_until(|c| !c.nodes[&sid(2)].peer.is_recovering());
    assert!(!c.nodes[&sid(2)].disk.recovering);
    assert!(
        c.trace
            .iter()
            .any(|t| t.action == ActionKind::FollowerProcessUpToDate
                && t.i == sid(2)
                && !t.summary.recovering)
    );
}

#[test]
fn without_the_recovering_flag_the_lost_current_epoch_loses_the_committed_write() {
    // The control: the same damage read as ZooKeeper 3.8 reads it (currentEpoch 0, no flag)
    // lets B and C establish a leader without X; the committed X is then truncated away.
    let (mut c, established, x) = bc_without_a(|b| b.current = Epoch(0));
    assert!(established, "B and C elect a leader without A");
    c.run_until(|c| c.all_broadcasting());
    assert!(
        (1..=3).all(|k| !c.applied(sid(k)).contains(&x)),
        "X survived: the control does not show the loss"
    );
}

#[test]
fn a_wiped_server_waits_for_an_intact_quorum() {
    // B's whole data directory is lost: it starts empty, learns from C (non-empty) that the
    // ensemble has run, and becomes recovering durably.
    let (mut c, established, x) = bc_without_a(|b| *b = Disk::default());
    assert!(!established, "a wiped B counted towards a quorum");
    assert!(
        c.nodes[&sid(2)].disk.recovering,
        "the wipe was detected durably"
    );
    c.run_until(|c| c.all_broadcasting() && (1..=3).all(|k| c.applied(sid(k)).contains(&x)));
    c.run_until(|c| !c.nodes[&sid(2)].peer.is_recovering());
}

#[test]
fn an_empty_server_is_unsure_until_every_member_answers() {
    let notification = |empty: bool| Notification {
        vote: Vote {
            peer_epoch: Epoch(0),
            zxid: Zxid::ZERO,
            leader: sid(3),
        },
        election_epoch: 1,
        state: ServerState::Looking,
        recovering: false,
        empty,
    };
    // A fresh ensemble: every member reports empty.
    let mut p = fresh(1, 3);
    let mut out = vec![];
    p.step(Input::Start, &mut out);
    assert!(p.is_recovering() && p.summary().recovering);
    for (from, is_unsure) in [(2, true), (3, false)] {
        p.step(
            Input::Notification {
                from: sid(from),
                notification: notification(true),
            },
            &mut out,
        );
        assert_eq!(p.is_recovering(), is_unsure, "after hearing from {from}");
    }
    assert!(!out.iter().any(|a| matches!(a, Action::Persist(_))));
    // One member reports durable state: this server may have been wiped.
    let mut p = fresh(1, 3);
    let mut out = vec![];
    p.step(Input::Start, &mut out);
    out.clear();
    p.step(
        Input::Notification {
            from: sid(3),
            notification: notification(false),
        },
        &mut out,
    );
    assert!(p.is_recovering());
    assert_eq!(
        out.first(),
        Some(&Action::Persist(Persist::Recovering(true))),
        "the flag is durable before anything else"
    );
    // A single server is never unsure (it has no one to ask; zabd refuses damage instead).
    assert!(!fresh(1, 1).is_recovering());
}

#[test]
fn a_leader_records_but_does_not_count_a_recovering_followers_ackepoch_and_ignores_its_acks() {
    // Lead epoch 1 with server 1 (intact) and server 2 (recovering).
    let mut p = fresh_leader(3, 3);
    let mut out = vec![];
    for (j, recovering) in [(2, true), (1, false)] {
        p.step(Input::LearnerConnected { learner: sid(j) }, &mut out);
        p.step(
            Input::Message {
                from: sid(j),
                msg: QuorumMessage::FollowerInfo {
                    accepted_epoch: Epoch(0),
                    recovering,
                },
            },
            &mut out,
        );
    }
    assert_eq!(p.accepted_epoch(), Epoch(1));
    let ack_epoch = |p: &mut Peer<P>, j: u64, out: &mut Vec<Action<P>>| {
        p.step(
            Input::Message {
                from: sid(j),
                msg: QuorumMessage::AckEpoch {
                    current_epoch: Some(Epoch(0)),
                    // Ahead of the leader: an intact follower would make it step down.
                    last_zxid: if j == 2 { z(0, 9) } else { Zxid::ZERO },
                },
            },
            out,
        );
    };
    ack_epoch(&mut p, 2, &mut out);
    assert_eq!(
        p.role().state,
        ServerState::Leading,
        "no step-down for a recovering follower"
    );
    assert_eq!(p.role().zab_state, ZabState::Discovery, "not counted");
    ack_epoch(&mut p, 1, &mut out);
    assert_eq!(p.role().zab_state, ZabState::Synchronization);
    // ACK of NEWLEADER: server 2 joins the live set only; server 1 establishes.
    let nl = QuorumMessage::AckNewLeader { zxid: z(1, 0) };
    p.step(
        Input::Message {
            from: sid(2),
            msg: nl.clone(),
        },
        &mut out,
    );
    assert_eq!(p.role().zab_state, ZabState::Synchronization);
    out.clear();
    p.step(
        Input::Message {
            from: sid(1),
            msg: nl,
        },
        &mut out,
    );
    assert_eq!(p.role().zab_state, ZabState::Broadcast);
    for j in [1, 2] {
        assert!(
            out.contains(&Action::Send {
                to: sid(j),
                msg: QuorumMessage::UpToDate
            }),
            "UPTODATE to {j}"
        );
    }
    // Broadcast: server 2's ACK is ignored until it reports RESTORED, then counted.
    let zxid = p
        .leader_process_request(payload(1), &mut out)
        .expect("accepted");
    p.step(
        Input::Message {
            from: sid(2),
            msg: QuorumMessage::Ack { zxid },
        },
        &mut out,
    );
    assert_eq!(p.ignored().get(Ignored::AckOfRecovering), 1);
    p.step(Input::Durable { zxid }, &mut out);
    assert!(
        p.log().committed() < zxid,
        "the leader and an ignored ACK are no quorum"
    );
    p.step(Input::Restored { from: sid(2) }, &mut out);
    p.step(
        Input::Message {
            from: sid(2),
            msg: QuorumMessage::Ack { zxid },
        },
        &mut out,
    );
    assert_eq!(p.log().committed(), zxid, "counted once restored");
}

/// §10.2 with an observer: it syncs, receives every committed transaction as INFORM (never
/// PROPOSAL or COMMIT in BROADCAST), never ACKs, never leads, and its absence does not
/// matter to the quorum, while a voter's absence is tolerated as in a 3-voter ensemble.
#[test]
fn an_observer_is_informed_never_acks_and_counts_in_no_quorum() {
    let mut c = Cluster::with_observers(3, 1);
    let obs = sid(4);
    c.run_until(|c| c.all_broadcasting());
    // The observer has the highest id, and would win a vote among equals: it never leads.
    assert_eq!(c.leader(), Some(sid(3)));
    let o = c.nodes[&obs].peer.role();
    assert_eq!(
        (o.state, o.observer, o.leader),
        (ServerState::Following, true, Some(sid(3)))
    );
    let start = c.sent.len();
    let zxids: Vec<Zxid> = (1..=4).map(|k| c.propose(k)).collect();
    c.run_until(|c| (1..=4).all(|k| c.applied(sid(k)) == zxids));
    let after: Vec<(ServerId, ServerId, &str)> = c.sent[start..].to_vec();
    assert!(
        after
            .iter()
            .all(|(_, t, m)| !(*t == obs && (*m == "PROPOSAL" || *m == "COMMIT"))),
        "the observer got a PROPOSAL or COMMIT in BROADCAST: {after:?}"
    );
    assert_eq!(
        after
            .iter()
            .filter(|(_, t, m)| *t == obs && *m == "INFORM")
            .count(),
        4,
        "one INFORM per committed transaction"
    );
    assert!(
        c.sent.iter().all(|(f, _, m)| !(*f == obs && *m == "ACK")),
        "an observer never ACKs"
    );
    assert!(
        c.sent
            .iter()
            .any(|(f, _, m)| *f == obs && *m == "OBSERVERINFO")
    );
    assert!(
        c.sent
            .iter()
            .all(|(f, _, m)| !(*f == obs && *m == "FOLLOWERINFO"))
    );
    let kinds: BTreeSet<ActionKind> = c.trace.iter().map(|t| t.action).collect();
    assert!(kinds.contains(&ActionKind::LeaderProcessObserverInfo));
    assert!(kinds.contains(&ActionKind::ObserverProcessInform));
    // The leader never counted the observer anywhere.
    if let Role::Leading(l) = &c.nodes[&sid(3)].peer.role {
        assert!(l.observers.contains(&obs) && l.forwarding.contains(&obs));
        assert!(!l.connecting.contains(&obs) && !l.ackld_recv.contains(&obs));
        assert!(!l.electing.get(&obs).is_some_and(|e| e.in_quorum));
    } else {
        panic!("server 3 leads");
    }
    assert_eq!(c.nodes[&sid(3)].peer.synced_observers(), 1);

    // One voter down: the leader with the other voter is a quorum of 3; writes go on and
    // reach the observer.
    let disk1 = c.down(sid(1));
    let more = c.propose(10);
    c.run_until(|c| {
        c.applied(obs).last() == Some(&more) && c.applied(sid(2)).last() == Some(&more)
    });
    // Two voters down: the observer does not make a quorum, the leader steps down.
    let disk2 = c.down(sid(2));
    c.run_until(|c| c.nodes[&sid(3)].peer.role().state == ServerState::Looking);
    c.up(sid(1), disk1);
    c.up(sid(2), disk2);
    c.run_until(|c| c.leader().is_some() && c.all_broadcasting());
    let last = c.propose(11);
    c.run_until(|c| (1..=4).all(|k| c.applied(sid(k)).last() == Some(&last)));
}

/// An ACK from an observer (which never sends one) is ignored: a leader with one voter
/// follower and an observer does not commit on the observer's ACK.
#[test]
fn a_leader_never_counts_an_observers_ack() {
    let mut c = Cluster::with_observers(3, 1);
    let obs = sid(4);
    c.run_until(|c| c.all_broadcasting());
    let l = c.leader().expect("leader");
    let _d1 = c.down(sid(1));
    let _d2 = c.down(sid(2));
    // Before the leader notices, a proposal is outstanding; only the observer "acks" it.
    let mut out = vec![];
    let node = c.nodes.get_mut(&l).expect("node");
    // The disconnects are still queued: the leader has not seen them.
    let zxid = node
        .peer
        .leader_process_request(payload(1), &mut out)
        .expect("the leader still broadcasts");
    node.peer.step(Input::Durable { zxid }, &mut out);
    node.peer.step(
        Input::Message {
            from: obs,
            msg: QuorumMessage::Ack { zxid },
        },
        &mut out,
    );
    assert!(
        !out.iter().any(|a| matches!(a, Action::Deliver(_))),
        "committed with the observer's ACK: {out:?}"
    );
    assert_eq!(node.peer.ignored().get(Ignored::AckOfObserver), 1);
    assert_eq!(node.peer.outstanding_proposals(), 1);
}

/// Messages that do not fit the roles (§10.2): an INFORM to a voting follower, a FOLLOWERINFO
/// from a server configured as an observer, and an observer's election votes are each
/// ignored on their `ignore_*` path, never counted, never a panic.
#[test]
fn misplaced_observer_messages_take_their_ignore_paths() {
    // A voter following 3 in BROADCAST ignores INFORM: it logs PROPOSALs only.
    let mut p = syncing_follower(1, 3, 1, vec![]);
    let l = sid(3);
    let mut out = vec![];
    for msg in [
        QuorumMessage::Diff {
            last_zxid: Zxid::ZERO,
        },
        QuorumMessage::NewLeader { zxid: z(1, 0) },
        QuorumMessage::UpToDate,
        QuorumMessage::Inform(txn(1, 1)),
    ] {
        p.step(Input::Message { from: l, msg }, &mut out);
    }
    assert_eq!(p.ignored().get(Ignored::UnexpectedMessage), 1);
    assert_eq!(p.log().last_zxid(), Zxid::ZERO, "the INFORM was not logged");

    // A leader of voters 1..3 with observer 4: 4's FOLLOWERINFO is refused (disconnected),
    // its votes neither adopted nor counted; its OBSERVERINFO is taken.
    let mut c = cfg(3, 3);
    c.observers = vec![sid(4)];
    let mut p: Peer<P> = Peer::new(
        c,
        Epoch(0),
        Epoch(0),
        ReplicaLog::recovered(Zxid::ZERO, vec![]),
    );
    p.wipe_check = None;
    p.role = Role::Leading(Leader::new(sid(3), Epoch(0)));
    let mut out = vec![];
    p.step(Input::LearnerConnected { learner: sid(4) }, &mut out);
    p.step(
        Input::Message {
            from: sid(4),
            msg: QuorumMessage::FollowerInfo {
                accepted_epoch: Epoch(0),
                recovering: false,
            },
        },
        &mut out,
    );
    assert!(out.contains(&Action::Disconnect { peer: sid(4) }));
    assert_eq!(p.ignored().get(Ignored::UnexpectedMessage), 1);
    let mut out = vec![];
    p.step(Input::LearnerConnected { learner: sid(4) }, &mut out);
    p.step(
        Input::Message {
            from: sid(4),
            msg: QuorumMessage::ObserverInfo {
                accepted_epoch: Epoch(7),
            },
        },
        &mut out,
    );
    if let Role::Leading(l) = &p.role {
        assert!(l.observers.contains(&sid(4)) && l.observers_waiting.contains(&sid(4)));
        assert!(!l.connecting.contains(&sid(4)));
        assert_eq!(
            l.temp_max_epoch,
            Epoch(8),
            "its epoch raises the proposed one"
        );
    } else {
        panic!("still leading");
    }
    // A LOOKING voter never adopts an observer's (higher) vote.
    let mut v = fresh(1, 3);
    v.cfg.observers = vec![sid(4)];
    v.wipe_check = None;
    let mut out = vec![];
    v.step(Input::Start, &mut out);
    let mine = v.fle.vote;
    v.step(
        Input::Notification {
            from: sid(4),
            notification: Notification {
                vote: Vote {
                    peer_epoch: Epoch(9),
                    zxid: z(9, 9),
                    leader: sid(4),
                },
                election_epoch: 5,
                state: ServerState::Looking,
                recovering: false,
                empty: false,
            },
        },
        &mut out,
    );
    assert_eq!(v.fle.vote, mine);
    assert_eq!(v.ignored().get(Ignored::VoteOfObserver), 1);
}
