//! The event loop of the simulation: scheduled events dispatched to servers and clients, the
//! replicas settled after each, and every trace record refined against the model as it is
//! produced.

use super::*;

impl Sim {
    pub(super) fn push_trace(&mut self, ev: TraceEvent<Txn>) {
        self.trace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(ev);
    }

    /// Runs `f` on server `k` (if up), then everything it caused.
    pub(super) fn on_node(
        &mut self,
        k: usize,
        f: impl FnOnce(&mut SimReplica) -> Result<(), zab_server::storage::StorageError>,
    ) -> Result<(), Box<Failure>> {
        let Some(up) = self.nodes[k].up.as_mut() else {
            return Ok(());
        };
        if let Err(e) = f(&mut up.replica) {
            return Err(self.fail("storage", format!("s{} stopped: {e}", k + 1)));
        }
        self.settle(k)
    }

    /// Drains what server `k` produced: network commands, background results, client frames;
    /// schedules its fsync and background jobs; refines the new trace records.
    pub(super) fn settle(&mut self, first: usize) -> Result<(), Box<Failure>> {
        let mut work = VecDeque::from([first]);
        while let Some(k) = work.pop_front() {
            while let Some(Ok(cmd)) = self.nodes[k].up.as_mut().map(|up| up.net_rx.try_recv()) {
                self.net_command(k, cmd, &mut work)?;
            }
            let now = self.now();
            let life = self.nodes[k].life;
            let fsync_ms = self.nodes[k].fsync_ms;
            let mut fsync = false;
            let mut background = false;
            // A replay completes fsyncs and runs background jobs only when a step asks.
            let replaying = self.held.is_some();
            if let Some(up) = self.nodes[k].up.as_mut().filter(|_| !replaying) {
                if !up.fsync_scheduled && up.log.has_unsynced() {
                    up.fsync_scheduled = true;
                    fsync = true;
                }
                let has_jobs = !up
                    .jobs
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .is_empty();
                if !up.background_scheduled && has_jobs {
                    up.background_scheduled = true;
                    background = true;
                }
            }
            if fsync {
                self.schedule(now + fsync_ms, Ev::Fsync { node: k, life });
            }
            self.aim_after_epoch(k);
            if background {
                let d = self.rng.random_range(1..40);
                self.schedule(now + d, Ev::Background { node: k, life });
            }
        }
        self.drain_clients()?;
        self.refine()
    }

    pub(super) fn refine(&mut self) -> Result<(), Box<Failure>> {
        // The records are taken, not copied: `traced` counts them.
        let records: Vec<TraceEvent<Txn>> = std::mem::take(
            &mut *self
                .trace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for ev in records {
            self.traced += 1;
            let text = record_text(&ev);
            sha1::Digest::update(&mut self.hasher, text.as_bytes());
            sha1::Digest::update(&mut self.hasher, b"\n");
            if self.cfg.keep_trace {
                self.report.trace.push(text.clone());
            }
            self.recent.push_back(text);
            if self.recent.len() > self.recent_limit {
                self.recent.pop_front();
            }
            if let Some(h) = self.held.as_mut() {
                h.observe(&ev);
            }
            if ev.action.is_restart() {
                // The crashed server has no state to compare until it restarts.
                if let Err(d) = self.refiner.step_unchecked(&ev) {
                    return Err(self.diverged(&d));
                }
            } else if let Err(d) = self.refiner.step(&ev) {
                return Err(self.diverged(&d));
            }
        }
        Ok(())
    }

    pub(super) fn diverged(&self, d: &Divergence) -> Box<Failure> {
        let mut f = self.fail("refinement", d.to_string());
        f.divergence = Some(d.kind.clone());
        f
    }

    pub(super) fn dispatch(&mut self, ev: Ev) -> Result<(), Box<Failure>> {
        match ev {
            Ev::Election {
                to,
                life,
                from,
                frame,
            } => {
                let f = self.index(from);
                if life == self.nodes[to].life && self.linked(f, to) {
                    self.on_node(to, |r| {
                        r.handle(Event::Net(NetEvent::Election { from, frame }))
                    })?;
                }
            }
            Ev::Quorum {
                conn,
                to,
                from,
                frame,
            } => {
                let f = self.index(from);
                if self
                    .conns
                    .get(&Self::conn_key(f, to))
                    .is_some_and(|c| c.id == conn)
                {
                    self.on_node(to, |r| {
                        r.handle(Event::Net(NetEvent::Quorum { from, frame }))
                    })?;
                }
            }
            Ev::ConnectAttempt { from, to } => self.connect_attempt(from, to)?,
            Ev::Fsync { node, life } => self.fsync_done(node, life)?,
            Ev::Background { node, life } => self.background(node, life)?,
            Ev::ToServer { node, life, event } => {
                if life == self.nodes[node].life {
                    self.on_node(node, |r| r.handle(Event::Client(event)))?;
                }
            }
            Ev::ClientWake { client, token } => self.client_woken(client, token)?,
            Ev::Fault => self.fault()?,
            Ev::Restart { node } => {
                if self.nodes[node].up.is_none() {
                    self.boot(node)?;
                }
            }
            Ev::AimedCrash {
                node,
                life,
                receiver,
            } => self.aimed_crash(node, life, receiver)?,
        }
        Ok(())
    }

    /// A follower's connection attempt to the leader it chose: accepted while the other end
    /// leads and the two are not partitioned, retried otherwise.
    pub(super) fn connect_attempt(&mut self, from: usize, to: usize) -> Result<(), Box<Failure>> {
        if !self.wanting.contains(&(from, to)) || self.nodes[from].up.is_none() {
            return Ok(());
        }
        let accepts = self.linked(from, to)
            && self.nodes[to].up.as_ref().is_some_and(|u| {
                u.net_state
                    .leading
                    .load(std::sync::atomic::Ordering::SeqCst)
            });
        if accepts {
            self.wanting.remove(&(from, to));
            let id = self.next_conn;
            self.next_conn += 1;
            let now = self.now();
            self.conns.insert(
                Self::conn_key(from, to),
                Conn {
                    id,
                    last: [now, now],
                },
            );
            let (learner, leader) = (self.nodes[from].id, self.nodes[to].id);
            self.on_node(to, |r| {
                r.handle(Event::Net(NetEvent::LearnerConnected { learner }))
            })?;
            self.on_node(from, |r| {
                r.handle(Event::Net(NetEvent::Connected { leader }))
            })?;
        } else {
            let at = self.now() + 50 + self.delay();
            self.schedule(at, Ev::ConnectAttempt { from, to });
        }
        Ok(())
    }

    /// A simulated fsync completed: the log's durability report reaches the replica.
    pub(super) fn fsync_done(&mut self, node: usize, life: u64) -> Result<(), Box<Failure>> {
        if life != self.nodes[node].life {
            return Ok(());
        }
        if self.nodes[node].aimed_crash {
            // The aimed crash comes first: this fsync waits for it (and is lost with it).
            let at = self.now() + 1;
            self.schedule(at, Ev::Fsync { node, life });
            return Ok(());
        }
        let Some(up) = self.nodes[node].up.as_mut() else {
            return Ok(());
        };
        up.fsync_scheduled = false;
        if std::mem::take(&mut self.nodes[node].fail_next_fsync) {
            return self.fsync_fails(node);
        }
        let Some(up) = self.nodes[node].up.as_mut() else {
            return Ok(());
        };
        let r = up.log.complete_fsync();
        let (zxid, generation) =
            r.map_err(|e| self.fail("storage", format!("s{} fsync: {e}", node + 1)))?;
        self.on_node(node, |r| {
            r.handle(Event::Writer(WriterEvent::Durable {
                zxid,
                generation,
                fsync_micros: 0,
            }))
        })?;
        Ok(())
    }

    /// The background jobs (snapshots) run now, and what they reported is handled at once.
    fn background(&mut self, node: usize, life: u64) -> Result<(), Box<Failure>> {
        if life != self.nodes[node].life {
            return Ok(());
        }
        let Some(up) = self.nodes[node].up.as_mut() else {
            return Ok(());
        };
        up.background_scheduled = false;
        let jobs: Vec<BackgroundJob> = up
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect();
        for job in jobs {
            job();
        }
        // Whatever the jobs reported is handled now, before anything else happens.
        while let Some(Ok(ev)) = self.nodes[node]
            .up
            .as_mut()
            .map(|up| up.events_rx.try_recv())
        {
            self.on_node(node, |r| r.handle(ev))?;
        }
        self.settle(node)?;
        Ok(())
    }

    pub(super) fn next_time(&self) -> u64 {
        let q = self.queue.peek().map_or(u64::MAX, |Reverse((t, _))| *t);
        let timers = self
            .nodes
            .iter()
            .filter_map(|n| n.up.as_ref().map(|u| u.replica.next_deadline()))
            .min()
            .unwrap_or(u64::MAX);
        q.min(timers)
    }

    /// Advances to the next event or timer and handles it.
    pub(super) fn advance(&mut self, until: u64) -> Result<bool, Box<Failure>> {
        let t = self.next_time();
        if t == self.spin.0 {
            self.spin.1 += 1;
            if self.spin.1 > 1_000_000 {
                let what = self
                    .queue
                    .peek()
                    .and_then(|Reverse((_, seq))| self.events.get(seq))
                    .map(|e| format!("{e:?}"))
                    .unwrap_or_default();
                let roles = self.roles();
                return Err(self.fail(
                    "simulation",
                    format!(
                        "time stands still at {t} ms (next event {what:.300}; servers {roles})"
                    ),
                ));
            }
        } else {
            self.spin = (t, 0);
        }
        if t > until {
            self.clock.advance_to(until);
            return Ok(false);
        }
        self.clock.advance_to(t);
        let now = self.now();
        if let Some(Reverse((at, seq))) = self.queue.peek().copied() {
            if at <= now {
                self.queue.pop();
                if let Some(ev) = self.events.remove(&seq) {
                    self.dispatch(ev)?;
                }
                return Ok(true);
            }
        }
        for k in 0..self.nodes.len() {
            let due = self.nodes[k]
                .up
                .as_ref()
                .is_some_and(|u| u.replica.next_deadline() <= now);
            if due {
                self.on_node(k, |r| r.fire_due())?;
            }
        }
        Ok(true)
    }
}
