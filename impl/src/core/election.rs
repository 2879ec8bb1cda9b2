//! Fast leader election (ZooKeeper `FastLeaderElection.lookForLeader`), and the two ways it
//! ends: `ElectLeader` (this server leads) and `FollowLeader` (it follows; recorded when the
//! connection to the leader is up and FOLLOWERINFO leaves). `spec/PROTOCOL.md` §3.
//!
//! Votes are `(currentEpoch, last zxid, id)` and compare like ZooKeeper's
//! `totalOrderPredicate`. A round ends when a quorum's votes in this round equal ours
//! (`termPredicate`) and no better vote arrives within `finalizeWait`, or when a quorum reports
//! following a leader that itself reports LEADING (the out-of-election path).

use super::{Action, Ignored, Peer, Persist, Role, Timer};
use crate::core::leader::Leader;
use std::collections::{BTreeMap, BTreeSet};
use zab_spec::message::Notification;
use zab_spec::{ActionKind, Payload, QuorumMessage, ServerId, ServerState, Vote};

/// Fast-leader-election state; meaningful while LOOKING.
#[derive(Clone, Debug)]
pub(crate) struct Fle {
    /// The election round (`logicalclock`).
    pub(crate) round: u64,
    /// Our current proposal.
    pub(crate) vote: Vote,
    /// Votes of LOOKING servers in this round (`recvset`).
    recv: BTreeMap<ServerId, Vote>,
    /// Votes of servers that already follow or lead (`outofelection`): vote, round, state.
    out_of_election: BTreeMap<ServerId, (Vote, u64, ServerState)>,
    /// Current notification timeout (doubles up to the maximum).
    timeout_ms: u64,
    /// Whether `finalizeWait` is running.
    finalizing: bool,
    /// Servers whose last notification said they are recovering (§7.1): their votes are
    /// neither counted nor adopted.
    recovering: BTreeSet<ServerId>,
}

impl Fle {
    pub(crate) fn new(id: ServerId) -> Fle {
        Fle {
            round: 0,
            vote: Vote {
                peer_epoch: zab_spec::Epoch(0),
                zxid: zab_spec::Zxid::ZERO,
                leader: id,
            },
            recv: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            timeout_ms: 0,
            finalizing: false,
            recovering: BTreeSet::new(),
        }
    }
}

impl<P: Payload> Peer<P> {
    /// This server's own vote: `(currentEpoch, last logged zxid, id)`.
    pub(crate) fn own_vote(&self) -> Vote {
        Vote {
            peer_epoch: self.current_epoch,
            zxid: self.reported_zxid(),
            leader: self.cfg.id,
        }
    }

    /// This server's notification: its state and its vote (a follower or leader reports the
    /// leader it settled on, which is the vote it decided).
    fn notification(&self) -> Notification {
        // A server that has chosen its leader and is connecting says FOLLOWING, as
        // ZooKeeper's peer does from the moment `lookForLeader` returns: a LOOKING server
        // can then count it on the out-of-election path, and two such servers do not answer
        // each other's LOOKING notifications forever.
        let state = match &self.role {
            Role::Looking {
                connecting_to: Some(_),
                ..
            } => ServerState::Following,
            _ => self.role().state,
        };
        Notification {
            vote: self.fle.vote,
            election_epoch: self.fle.round,
            state,
            recovering: self.is_recovering(),
            empty: self.is_empty(),
        }
    }

    fn send_notifications(&self, out: &mut Vec<Action<P>>) {
        let n = self.notification();
        for to in self.cfg.servers.iter().filter(|s| **s != self.cfg.id) {
            out.push(Action::SendNotification {
                to: *to,
                notification: n,
            });
        }
    }

    /// A new election round (`lookForLeader`): vote for ourselves, tell everyone.
    pub(crate) fn start_election(&mut self, out: &mut Vec<Action<P>>) {
        self.fle.round += 1;
        self.fle.vote = self.own_vote();
        self.fle.recv.clear();
        self.fle.out_of_election.clear();
        self.fle.recv.insert(self.cfg.id, self.fle.vote);
        self.fle.finalizing = false;
        self.fle.timeout_ms = self.cfg.finalize_wait_ms;
        out.push(Action::CancelTimer(Timer::ElectionFinalize));
        out.push(Action::SetTimer {
            timer: Timer::ElectionNotify,
            after_ms: self.fle.timeout_ms,
        });
        out.push(Action::SetTimer {
            timer: Timer::Tick,
            after_ms: self.cfg.tick_ms,
        });
        self.send_notifications(out);
        // A one-server ensemble is its own quorum.
        self.check_round(out);
    }

    fn is_looking_free(&self) -> bool {
        matches!(
            self.role,
            Role::Looking {
                connecting_to: None,
                ..
            }
        )
    }

    /// A notification arrived (ZooKeeper `WorkerReceiver` + `lookForLeader`).
    pub(crate) fn on_notification(
        &mut self,
        from: ServerId,
        n: Notification,
        out: &mut Vec<Action<P>>,
    ) {
        if self.cfg.observers.contains(&from) {
            // §10.2: an observer's vote is neither adopted nor counted. A settled voter
            // answers it with the leader it chose, which is how the observer learns it.
            if !self.is_looking_free() && !self.cfg.is_observer() {
                out.push(Action::SendNotification {
                    to: from,
                    notification: self.notification(),
                });
            }
            self.ignore(Ignored::VoteOfObserver, Some(from), None);
            return;
        }
        if !self.cfg.servers.contains(&from) {
            self.ignore(Ignored::NotificationFromStranger, Some(from), None);
            return;
        }
        if n.recovering {
            self.fle.recovering.insert(from);
        } else {
            self.fle.recovering.remove(&from);
        }
        self.check_wipe(from, n.empty, out);
        if self.cfg.is_observer() && (n.state == ServerState::Looking || !self.is_looking_free()) {
            // §10.2: an observer takes no part in a round; it follows the leader that
            // FOLLOWING and LEADING voters report (below), and answers nobody.
            self.ignore(Ignored::VoteOfObserver, Some(from), None);
            return;
        }
        if !self.is_looking_free() {
            // Settled (or settling) servers answer LOOKING ones with the leader they chose.
            if n.state == ServerState::Looking {
                out.push(Action::SendNotification {
                    to: from,
                    notification: self.notification(),
                });
            }
            return;
        }
        match n.state {
            ServerState::Looking if n.recovering => {
                // §7.1: a recovering server's vote is neither adopted nor counted; a sender
                // in an older round learns ours.
                if n.election_epoch < self.fle.round {
                    out.push(Action::SendNotification {
                        to: from,
                        notification: self.notification(),
                    });
                }
                self.ignore(Ignored::VoteOfRecovering, Some(from), None);
            }
            ServerState::Looking => {
                if n.election_epoch > self.fle.round {
                    self.fle.round = n.election_epoch;
                    self.fle.recv.clear();
                    let own = self.own_vote();
                    self.fle.vote = if n.vote > own { n.vote } else { own };
                    self.fle.recv.insert(self.cfg.id, self.fle.vote);
                    self.fle.finalizing = false;
                    self.send_notifications(out);
                } else if n.election_epoch < self.fle.round {
                    // A stale round: tell the sender where we are.
                    out.push(Action::SendNotification {
                        to: from,
                        notification: self.notification(),
                    });
                    return;
                } else if n.vote > self.fle.vote {
                    self.fle.vote = n.vote;
                    self.fle.recv.insert(self.cfg.id, self.fle.vote);
                    self.fle.finalizing = false;
                    out.push(Action::CancelTimer(Timer::ElectionFinalize));
                    self.send_notifications(out);
                }
                self.fle.recv.insert(from, n.vote);
                self.check_round(out);
            }
            ServerState::Following | ServerState::Leading => {
                if n.election_epoch == self.fle.round {
                    self.fle.recv.insert(from, n.vote);
                    if self.term(&self.fle.recv, n.vote)
                        && self.check_leader(n.vote.leader, n.election_epoch)
                    {
                        self.decide(n.vote, out);
                        return;
                    }
                }
                self.fle
                    .out_of_election
                    .insert(from, (n.vote, n.election_epoch, n.state));
                let votes: BTreeMap<ServerId, Vote> = self
                    .fle
                    .out_of_election
                    .iter()
                    .filter(|(s, _)| !self.fle.recovering.contains(s))
                    .map(|(s, (v, _, _))| (*s, *v))
                    .collect();
                if self.term(&votes, n.vote) && self.check_leader(n.vote.leader, n.election_epoch) {
                    self.fle.round = n.election_epoch;
                    self.decide(n.vote, out);
                }
            }
        }
    }

    /// `termPredicate`: the servers whose vote equals `vote` form a quorum. Only servers
    /// that are not recovering count (§7.1), this one included.
    fn term(&self, votes: &BTreeMap<ServerId, Vote>, vote: Vote) -> bool {
        let me = self.cfg.id;
        // Only voters count (§10.2), and of them only those not recovering (§7.1).
        let counted = |s: &ServerId| {
            self.cfg.is_voter(*s)
                && if *s == me {
                    !self.is_recovering()
                } else {
                    !self.fle.recovering.contains(s)
                }
        };
        self.cfg.is_quorum(
            votes
                .iter()
                .filter(|(s, v)| counted(s) && **v == vote)
                .count(),
        )
    }

    /// §7.1, "detects the damage": a server that started with no durable state learns from
    /// the other members whether the ensemble is fresh. One that reports durable state
    /// means the ensemble ran, so this server may have been a member whose data directory
    /// was wiped: it becomes recovering, durably, before anything else. When every other
    /// member reports empty, the ensemble is fresh and this server votes normally.
    fn check_wipe(&mut self, from: ServerId, empty: bool, out: &mut Vec<Action<P>>) {
        let Some(heard) = self.wipe_check.as_mut() else {
            return;
        };
        heard.insert(from, empty);
        if !empty {
            tracing::error!(
                server = self.cfg.id.0,
                peer = from.0,
                "this server started with an empty data directory, but server {} holds \
                 durable state: the ensemble has run, so this data directory may have been \
                 wiped; recovering (not a candidate, votes and ACKs not counted) until a \
                 leader restores it",
                from.0
            );
            self.wipe_check = None;
            self.recovering = true;
            out.push(Action::Persist(Persist::Recovering(true)));
            return;
        }
        let others = self.cfg.servers.iter().filter(|s| **s != self.cfg.id);
        if others.clone().all(|s| heard.get(s) == Some(&true)) {
            tracing::info!(
                server = self.cfg.id.0,
                "every member reports an empty data directory: a fresh ensemble"
            );
            self.wipe_check = None;
            // Our vote counts from now on: tell everyone, and see whether a round is won.
            if self.is_looking_free() {
                self.send_notifications(out);
                self.check_round(out);
            }
        }
    }

    /// `checkLeader`: the proposed leader must itself report LEADING (or be us, in this round).
    fn check_leader(&self, leader: ServerId, round: u64) -> bool {
        if leader == self.cfg.id {
            return round == self.fle.round;
        }
        self.fle
            .out_of_election
            .get(&leader)
            .is_some_and(|(_, _, st)| *st == ServerState::Leading)
    }

    fn check_round(&mut self, out: &mut Vec<Action<P>>) {
        if self.term(&self.fle.recv, self.fle.vote) && !self.fle.finalizing {
            self.fle.finalizing = true;
            out.push(Action::SetTimer {
                timer: Timer::ElectionFinalize,
                after_ms: self.cfg.finalize_wait_ms,
            });
        }
    }

    pub(crate) fn on_election_timer(&mut self, timer: Timer, out: &mut Vec<Action<P>>) {
        if !self.is_looking_free() {
            return;
        }
        match timer {
            Timer::ElectionFinalize => {
                if self.fle.finalizing && self.term(&self.fle.recv, self.fle.vote) {
                    self.decide(self.fle.vote, out);
                } else {
                    self.fle.finalizing = false;
                }
            }
            Timer::ElectionNotify => {
                self.send_notifications(out);
                // An observer learns the leader only from the answers to its notifications
                // (voters send theirs to voters): it asks at least every tick.
                let cap = if self.cfg.is_observer() {
                    self.cfg
                        .max_notification_interval_ms
                        .min(self.cfg.tick_ms.max(self.cfg.finalize_wait_ms))
                } else {
                    self.cfg.max_notification_interval_ms
                };
                self.fle.timeout_ms = (self.fle.timeout_ms * 2).min(cap);
                out.push(Action::SetTimer {
                    timer: Timer::ElectionNotify,
                    after_ms: self.fle.timeout_ms,
                });
            }
            Timer::Tick => {}
        }
    }

    fn decide(&mut self, vote: Vote, out: &mut Vec<Action<P>>) {
        if self.wipe_check.is_some()
            || (vote.leader == self.cfg.id && (self.is_recovering() || self.cfg.is_observer()))
        {
            // §7.1: a recovering server is never a candidate, and one that does not know yet
            // whether it was wiped does not settle before it knows.
            self.fle.finalizing = false;
            return;
        }
        self.fle.vote = vote;
        self.fle.finalizing = false;
        out.push(Action::CancelTimer(Timer::ElectionNotify));
        out.push(Action::CancelTimer(Timer::ElectionFinalize));
        if vote.leader == self.cfg.id {
            self.elect_leader(out);
        } else {
            self.role = Role::Looking {
                connecting_to: Some(vote.leader),
                ticks: 0,
            };
            out.push(Action::Connect {
                leader: vote.leader,
            });
        }
    }

    /// TLA+: `ElectLeader(i)`: this server leads, in DISCOVERY, with itself as its only
    /// learner; its own FOLLOWERINFO proposes `acceptedEpoch + 1`.
    fn elect_leader(&mut self, out: &mut Vec<Action<P>>) {
        self.role = Role::Leading(Leader::new(self.cfg.id, self.accepted_epoch));
        self.role_changed(out);
        self.trace(ActionKind::ElectLeader, None, None, out);
        // A one-server ensemble decides its epoch at once.
        self.leader_try_decide_epoch(out);
    }

    /// TLA+: `FollowLeader(i, j)`: the connection to the chosen leader is up; this server
    /// follows it in DISCOVERY and sends FOLLOWERINFO(acceptedEpoch).
    pub(crate) fn follow_leader(&mut self, leader: ServerId, out: &mut Vec<Action<P>>) {
        match &self.role {
            Role::Looking {
                connecting_to: Some(l),
                ..
            } if *l == leader => {}
            _ => {
                // A connection we did not ask for (any more): close it.
                out.push(Action::Disconnect { peer: leader });
                return;
            }
        }
        self.role = Role::Following(super::follower::Follower::new(leader));
        self.role_changed(out);
        let msg = if self.cfg.is_observer() {
            QuorumMessage::ObserverInfo {
                accepted_epoch: self.accepted_epoch,
            }
        } else {
            QuorumMessage::FollowerInfo {
                accepted_epoch: self.accepted_epoch,
                recovering: self.is_recovering(),
            }
        };
        out.push(Action::Send { to: leader, msg });
        self.trace(ActionKind::FollowLeader, Some(leader), None, out);
    }

    /// A learner's connection is up: it joins the learners (the leader's half of
    /// `FollowLeader`). Anyone else's connection is refused.
    pub(crate) fn on_learner_connected(&mut self, learner: ServerId, out: &mut Vec<Action<P>>) {
        match &mut self.role {
            Role::Leading(l)
                if (self.cfg.servers.contains(&learner)
                    || self.cfg.observers.contains(&learner))
                    && learner != self.cfg.id =>
            {
                l.learners.insert(learner);
                l.silent_ticks.insert(learner, 0);
            }
            _ => out.push(Action::Disconnect { peer: learner }),
        }
    }

    /// TLA+: `LeaderTimeout(i)`: a leader not yet in BROADCAST gives up; it and its learners
    /// go back to LOOKING.
    pub(crate) fn leader_timeout(&mut self, out: &mut Vec<Action<P>>) {
        self.go_looking(out);
        self.trace(ActionKind::LeaderTimeout, None, None, out);
    }

    /// Writes `acceptedEpoch` durably (before anything later in the batch).
    pub(crate) fn persist_accepted_epoch(
        &mut self,
        epoch: zab_spec::Epoch,
        out: &mut Vec<Action<P>>,
    ) {
        self.accepted_epoch = epoch;
        out.push(Action::Persist(Persist::AcceptedEpoch(epoch)));
    }

    /// Writes `currentEpoch` durably (before anything later in the batch).
    pub(crate) fn persist_current_epoch(
        &mut self,
        epoch: zab_spec::Epoch,
        out: &mut Vec<Action<P>>,
    ) {
        self.current_epoch = epoch;
        out.push(Action::Persist(Persist::CurrentEpoch(epoch)));
    }
}
