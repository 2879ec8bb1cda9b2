//! The simulated network: quorum connections with the model's semantics (FIFO; a break loses
//! what was in flight and both ends hear of it first), partitions, and the runtime's network
//! commands turned into scheduled deliveries (in place of `zab_server::net`).

use super::*;

impl Sim {
    pub(super) fn conn_key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    pub(super) fn linked(&self, a: usize, b: usize) -> bool {
        !self.partitions.contains(&Self::conn_key(a, b))
    }

    pub(super) fn net_command(
        &mut self,
        k: usize,
        cmd: NetCommand<Txn>,
        work: &mut VecDeque<usize>,
    ) -> Result<(), Box<Failure>> {
        let from = self.nodes[k].id;
        match cmd {
            NetCommand::Election { to, frame } => {
                let t = self.index(to);
                if self.held.is_some() {
                    self.hold_election(k, t, frame);
                    return Ok(());
                }
                let lost = self.faulty && self.cfg.faults.loss && self.rng.random_bool(0.05);
                if self.linked(k, t) && !lost {
                    let at = self.now() + self.delay();
                    let life = self.nodes[t].life;
                    self.schedule(
                        at,
                        Ev::Election {
                            to: t,
                            life,
                            from,
                            frame,
                        },
                    );
                }
            }
            NetCommand::Quorum { to, frame } => {
                let t = self.index(to);
                let key = Self::conn_key(k, t);
                if let (Some(c), true) = (self.conns.get(&key).copied(), self.held.is_some()) {
                    self.hold_quorum(k, t, c.id, frame);
                } else if let Some(c) = self.conns.get(&key).copied() {
                    let dir = usize::from(t > k);
                    let at = (self.now() + self.delay()).max(c.last[dir]);
                    if let Some(c) = self.conns.get_mut(&key) {
                        c.last[dir] = at;
                    }
                    let acknowledges = matches!(
                        frame,
                        Frame::Zab(
                            zab_spec::QuorumMessage::Ack { .. }
                                | zab_spec::QuorumMessage::AckNewLeader { .. }
                                | zab_spec::QuorumMessage::AckEpoch { .. }
                        )
                    );
                    self.schedule(
                        at,
                        Ev::Quorum {
                            conn: c.id,
                            to: t,
                            from,
                            frame,
                        },
                    );
                    if acknowledges {
                        self.aim_after_ack(k, t, at);
                    }
                }
            }
            NetCommand::Stream { to, what, producer } => {
                // Produced at once (the simulation has no threads); a SNAP's chunks are
                // checked and reassembled as a follower's network layer does, and the
                // frames travel like any other, in order.
                let t = self.index(to);
                let mut frames = Vec::new();
                let mut snap = SnapAssembler::new(u64::MAX);
                let mut bad = None;
                let made = (producer.0)(&mut |f| match snap.push(f) {
                    Ok(f) => {
                        frames.extend(f);
                        true
                    }
                    Err(e) => {
                        bad = Some(e.to_string());
                        false
                    }
                });
                if made.is_err() || bad.is_some() {
                    // As the real network does: the connection breaks, the peer resyncs.
                    return self.break_conn(k, t);
                }
                if what == zab_server::runtime::DIFF_FROM_DISK {
                    self.report.syncs_from_disk += 1;
                }
                for frame in frames {
                    self.net_command(k, NetCommand::Quorum { to, frame }, work)?;
                }
            }
            NetCommand::Connect { leader } => {
                let t = self.index(leader);
                self.wanting.insert((k, t));
                if self.held.is_some() {
                    // The replay connects when the model's FollowLeader says so.
                    return Ok(());
                }
                let at = self.now() + self.delay();
                self.schedule(at, Ev::ConnectAttempt { from: k, to: t });
            }
            NetCommand::Disconnect { peer } => {
                let t = self.index(peer);
                self.wanting.remove(&(k, t));
                if self.conns.remove(&Self::conn_key(k, t)).is_some() {
                    self.hear_disconnect(t, from)?;
                    work.push_back(t);
                }
            }
        }
        Ok(())
    }

    /// Server `t` learns that its quorum connection with `peer` is gone.
    pub(super) fn hear_disconnect(&mut self, t: usize, peer: ServerId) -> Result<(), Box<Failure>> {
        self.on_node(t, |r| r.handle(Event::Net(NetEvent::Disconnected { peer })))
    }

    pub(super) fn index(&self, id: ServerId) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .unwrap_or(usize::MAX)
    }

    /// Breaks the quorum connection between `a` and `b`, if any: in-flight frames are lost
    /// and both ends hear of it now.
    pub(super) fn break_conn(&mut self, a: usize, b: usize) -> Result<(), Box<Failure>> {
        if self.conns.remove(&Self::conn_key(a, b)).is_some() {
            let (ida, idb) = (self.nodes[a].id, self.nodes[b].id);
            self.hear_disconnect(a, idb)?;
            self.hear_disconnect(b, ida)?;
        }
        self.wanting.remove(&(a, b));
        self.wanting.remove(&(b, a));
        Ok(())
    }
}
