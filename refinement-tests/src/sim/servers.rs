//! Simulated servers: their configuration, booting one from its simulated disk (the real
//! storage recovery, replica runtime and service), and crashing one (unsynced writes lost or
//! torn).

use super::*;

impl Sim {
    pub(super) fn server_config(&self, k: usize) -> ServerConfig {
        let mut c = ServerConfig::standalone_default();
        c.myid = self.nodes[k].id;
        c.members = self
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| Member {
                id: node.id,
                host: "127.0.0.1".into(),
                quorum_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 12_000 + n as u16)),
                election_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 13_000 + n as u16)),
                client_addr: None,
                observer: self.is_observer(n),
            })
            .collect();
        c.tick_ms = self.cfg.tick_ms;
        c.data_dir = format!("/s{}/data", c.myid.0).into();
        c.data_log_dir = format!("/s{}/log", c.myid.0).into();
        c.snap_count = self.cfg.snap_count;
        c.snap_retain_count = 2;
        c.min_session_timeout_ms = 2 * self.cfg.tick_ms;
        c.max_session_timeout_ms = self.cfg.max_session_ticks * self.cfg.tick_ms;
        c
    }

    /// Starts (or restarts) server `k` from its disk.
    pub(super) fn boot(&mut self, k: usize) -> Result<(), Box<Failure>> {
        let server_cfg = self.server_config(k);
        let mut storage_cfg = StorageConfig::new(&server_cfg.data_dir, &server_cfg.data_log_dir);
        storage_cfg.snap_retain_count = server_cfg.snap_retain_count;
        let fs: Arc<dyn zab_server::storage::FileSystem> = Arc::new(self.nodes[k].fs.clone());
        let (storage, recovered) = Storage::open(fs, &storage_cfg)
            .map_err(|e| self.fail("recovery", format!("s{} cannot start: {e}", k + 1)))?;
        let tree = match &recovered.snapshot {
            Some(s) => zab_server::service::tree_from_snapshot(&s.data)
                .map_err(|e| self.fail("recovery", format!("s{}'s snapshot: {e}", k + 1)))?,
            None => DataTree::new(),
        };
        // As `zabd` does (`server.rs`): the voters, and the observers apart.
        let mut pc = PeerConfig::new(self.nodes[k].id, server_cfg.server_ids());
        pc.observers = server_cfg.observer_ids();
        pc.tick_ms = self.cfg.tick_ms;
        pc.init_limit = 10;
        pc.sync_limit = 5;
        pc.finalize_wait_ms = 50;
        pc.max_notification_interval_ms = 1_600;
        pc.trace = true;
        pc.bug = self.cfg.bug;
        pc.commit_log_count = self.cfg.commit_log_count;
        let peer = recover_peer::<Txn>(pc, &recovered)
            .map_err(|e| self.fail("recovery", format!("s{}: {e}", k + 1)))?;
        let restart = self.nodes[k].life > 0;
        let summary: Summary = peer.summary();
        let log = Arc::new(SimLog::new(storage));
        // The simulation takes every command after each event, and one event queues at most
        // a few per transaction of a synchronization: far below this bound, at which the
        // replica would wait for the (single-threaded) simulation forever.
        let (net_tx, net_rx) = Commands::channel(1 << 20);
        let (events_tx, events_rx): (Sender<_>, Receiver<_>) = std::sync::mpsc::channel();
        let net_state = Arc::new(NetState::default());
        let jobs: Arc<Mutex<VecDeque<BackgroundJob>>> = Arc::default();
        let service = ZkService::new(
            ServiceConfig {
                server: server_cfg.clone(),
                super_digest: None,
                session_secret: b"zab-sim".to_vec(),
                container_check_ms: 60_000,
            },
            tree,
            recovered.snapshot_zxid(),
            zab_server::runtime::Clock::wall_ms(&self.clock),
        );
        let trace = Arc::clone(&self.trace);
        let queued = Arc::clone(&jobs);
        let replica = Replica::new(
            peer,
            service,
            Arc::clone(&log),
            net_tx,
            Arc::clone(&net_state),
            events_tx,
            Arc::new(Status::default()),
            server_cfg.snap_count,
        )
        .with_clock(Box::new(self.clock.clone()))
        .with_spawner(Box::new(move |job| {
            queued
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push_back(job);
        }))
        .with_trace(Box::new(move |ev| {
            trace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(ev.clone());
        }));
        if restart {
            self.push_trace(TraceEvent {
                action: ActionKind::NodeRestart,
                i: self.nodes[k].id,
                j: None,
                payload: None,
                summary,
            });
        }
        self.nodes[k].up = Some(Up {
            replica,
            log,
            net_rx,
            events_rx,
            net_state,
            jobs,
            fsync_scheduled: false,
            background_scheduled: false,
        });
        self.on_node(k, |r| r.start())
    }

    /// Crashes server `k`: its volatile state is gone, its unsynced writes lost (or torn).
    pub(super) fn crash(&mut self, k: usize) -> Result<(), Box<Failure>> {
        let torn = self.cfg.faults.torn_tail && self.rng.random_bool(0.5);
        let mode = if torn {
            CrashMode::TornTail {
                seed: self.rng.random(),
            }
        } else {
            CrashMode::DropUnsynced
        };
        let fault = if torn { "crash (torn tail)" } else { "crash" };
        self.crash_with(k, mode, fault, |_, _| Some((ActionKind::NodeCrash, None)))
    }

    /// Crashes server `k` with `mode`, then `damage` may damage its disk (storage faults):
    /// it returns the trace action to record (`NodeCrash`, or the model's storage fault) and,
    /// for `LoseLogSuffix`, the last zxid the log keeps (carried as the record's `persisted`;
    /// the refiner turns it into the model's index). `None`: the damage could not be done,
    /// and nothing happened.
    pub(super) fn crash_with(
        &mut self,
        k: usize,
        mode: CrashMode,
        fault: &'static str,
        damage: impl FnOnce(&mut Sim, usize) -> Option<(ActionKind, Option<Zxid>)>,
    ) -> Result<(), Box<Failure>> {
        if self.nodes[k].up.is_none() {
            return Ok(());
        }
        let id = self.nodes[k].id;
        let summary = self.nodes[k]
            .up
            .as_ref()
            .map(|u| u.replica.peer().summary());
        self.nodes[k].up = None;
        self.nodes[k].life += 1;
        self.nodes[k].fs.crash(mode);
        let (action, kept) = damage(self, k).unwrap_or((ActionKind::NodeCrash, None));
        if let Some(mut summary) = summary {
            if let Some(z) = kept {
                summary.persisted = z;
            }
            self.push_trace(TraceEvent {
                action,
                i: id,
                j: None,
                payload: None,
                summary,
            });
        }
        self.refine()?;
        for other in 0..self.nodes.len() {
            if other != k {
                self.break_conn(k, other)?;
            }
        }
        self.close_clients_of(k);
        let fault = if action == ActionKind::NodeCrash {
            fault
        } else {
            self.damaged = Some(k);
            action.tla_name()
        };
        *self.report.faults.entry(fault).or_default() += 1;
        if self.is_observer(k) {
            self.report.observer_faults += 1;
        }
        Ok(())
    }
}
