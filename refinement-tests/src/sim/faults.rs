//! The faults of the safety phase, drawn from the seed (crashes, partitions, slow fsyncs,
//! storage faults), and the calm of the liveness phase.

use super::*;
use zab_model::state::Sid;
use zab_server::storage::damage;

impl Sim {
    pub(super) fn fault(&mut self) -> Result<(), Box<Failure>> {
        if !self.faulty {
            return Ok(());
        }
        let n = self.nodes.len();
        let f = self.cfg.faults;
        let roll: u32 = self.rng.random_range(0..100);
        match roll {
            0..=24 if f.crash => {
                let k = self.rng.random_range(0..n);
                if !self.has_joined(k) {
                    // A server that never joined restarts empty, and an empty server does
                    // not know whether it was wiped: it waits to hear from the others and
                    // becomes recovering if any holds durable state. The model knows it was
                    // not wiped (§7.1); not crashing it keeps the two comparable.
                    let gap = self.rng.random_range(1..=2 * self.cfg.fault_interval_ms);
                    let at = self.now() + gap;
                    self.schedule(at, Ev::Fault);
                    return Ok(());
                }
                self.crash(k)?;
                let down = self.rng.random_range(100..3_000);
                let at = self.now() + down;
                self.schedule(at, Ev::Restart { node: k });
            }
            25..=44 if f.partition => {
                let a = self.rng.random_range(0..n);
                let b = (a + self.rng.random_range(1..n)) % n;
                if self.partitions.insert(Self::conn_key(a, b)) {
                    *self.report.faults.entry("partition").or_default() += 1;
                    self.break_conn(a, b)?;
                }
            }
            45..=64 if f.partition => {
                if let Some(p) = self.partitions.iter().next().copied() {
                    self.partitions.remove(&p);
                }
            }
            65..=79 if f.delay => {
                self.max_delay_ms = *[1u64, 5, 20, 80, 250]
                    .get(self.rng.random_range(0..5))
                    .unwrap_or(&5);
                *self.report.faults.entry("delay change").or_default() += 1;
            }
            80..=89 if f.slow_fsync => {
                let k = self.rng.random_range(0..n);
                self.nodes[k].fsync_ms = *[0u64, 1, 10, 50, 300]
                    .get(self.rng.random_range(0..5))
                    .unwrap_or(&1);
                *self.report.faults.entry("fsync speed change").or_default() += 1;
            }
            90..=99 if f.storage => self.storage_fault()?,
            _ => {}
        }
        let gap = self.rng.random_range(1..=2 * self.cfg.fault_interval_ms);
        let at = self.now() + gap;
        self.schedule(at, Ev::Fault);
        Ok(())
    }

    /// Whether server `k` has joined the ensemble in the model: it accepted an epoch or
    /// persisted a transaction (its disk is not empty).
    fn has_joined(&self, k: usize) -> bool {
        let srv = self.refiner.state().srv(k as Sid);
        srv.accepted_epoch.0 > 0 || srv.persisted > 0
    }

    /// A storage fault at a random server, if no server is damaged and not yet restored.
    fn storage_fault(&mut self) -> Result<(), Box<Failure>> {
        if let Some(d) = self.damaged {
            let restored = self.nodes[d]
                .up
                .as_ref()
                .is_some_and(|u| !u.replica.peer().is_recovering());
            if !restored {
                return Ok(());
            }
            self.damaged = None;
        }
        let n = self.nodes.len();
        let k = self.rng.random_range(0..n);
        let kind: u32 = self.rng.random_range(0..4);
        let pick: u64 = self.rng.random();
        if self.nodes[k].up.is_none() {
            return Ok(());
        }
        let (persisted, snapshot, joined) = {
            let srv = self.refiner.state().srv(k as Sid);
            (srv.persisted, srv.last_snapshot, self.has_joined(k))
        };
        // A wiped server finds out from a peer holding durable state (§7.1).
        let others_joined = (0..n).any(|o| o != k && self.has_joined(o));
        let cfg = self.server_config(k);
        match kind {
            0 if persisted > snapshot => {
                // A bit flip in a fsynced record after the snapshot: LoseLogSuffix(k, t - 1).
                let t = snapshot + 1 + (pick % u64::from(persisted - snapshot)) as u32;
                let (zxid, kept) = {
                    let srv = self.refiner.state().srv(k as Sid);
                    (srv.zxid_at(t as usize), srv.zxid_at(t as usize - 1))
                };
                let log_dir = cfg.data_log_dir.clone();
                self.crash_with(k, CrashMode::DropUnsynced, "", move |sim, k| {
                    damage::flip_bit_in_log_record(
                        &sim.nodes[k].fs,
                        &log_dir,
                        zxid,
                        pick,
                        StorageConfig::new("/", "/").max_record_bytes,
                    )
                    .then_some((ActionKind::LoseLogSuffix, Some(kept)))
                })?;
            }
            1 if persisted > 0 => {
                let data_dir = cfg.data_dir.clone();
                self.crash_with(k, CrashMode::DropUnsynced, "", move |sim, k| {
                    damage::lose_epoch_files(&sim.nodes[k].fs, &data_dir);
                    Some((ActionKind::LoseEpochFiles, None))
                })?;
            }
            2 if joined && others_joined => {
                let (data_dir, log_dir) = (cfg.data_dir.clone(), cfg.data_log_dir.clone());
                self.crash_with(k, CrashMode::DropUnsynced, "", move |sim, k| {
                    damage::wipe(&sim.nodes[k].fs, &[&data_dir, &log_dir]);
                    Some((ActionKind::LoseDataDir, None))
                })?;
            }
            3 => {
                self.nodes[k].fail_next_fsync = true;
                return Ok(());
            }
            _ => return Ok(()),
        }
        let down = self.rng.random_range(100..3_000);
        let at = self.now() + down;
        self.schedule(at, Ev::Restart { node: k });
        Ok(())
    }

    /// The group-commit fsync of server `k` fails: the runtime must stop (`zabd` exits), the
    /// log must refuse every later fsync (never retried: fsyncgate), and the server restarts
    /// from what is durable, like after a crash.
    pub(super) fn fsync_fails(&mut self, k: usize) -> Result<(), Box<Failure>> {
        let node = &mut self.nodes[k];
        let Some(up) = node.up.as_mut() else {
            return Ok(());
        };
        node.fs.fail_syncs(true);
        let first = up.log.complete_fsync();
        node.fs.fail_syncs(false);
        let Err(e) = first else {
            return Err(self.fail(
                "storage",
                format!("s{}: an fsync that fails succeeded", k + 1),
            ));
        };
        if up.log.complete_fsync().is_ok() {
            return Err(self.fail(
                "storage",
                format!(
                    "s{}: after a failed fsync, a second fsync was accepted ({e})",
                    k + 1
                ),
            ));
        }
        let stopped = up
            .replica
            .handle(Event::Writer(WriterEvent::Failed(e.clone())))
            .is_err();
        if !stopped {
            return Err(self.fail(
                "storage",
                format!(
                    "s{}: the runtime kept running after a failed fsync ({e})",
                    k + 1
                ),
            ));
        }
        self.crash_with(
            k,
            CrashMode::DropUnsynced,
            "failed fsync (server stopped)",
            |_, _| Some((ActionKind::NodeCrash, None)),
        )?;
        let down = self.rng.random_range(100..3_000);
        let at = self.now() + down;
        self.schedule(at, Ev::Restart { node: k });
        Ok(())
    }

    /// Ends the faults: heal, restore delays and fsyncs, restart every server.
    pub(super) fn calm(&mut self) -> Result<(), Box<Failure>> {
        self.faulty = false;
        self.partitions.clear();
        self.max_delay_ms = 5;
        for k in 0..self.nodes.len() {
            self.nodes[k].fsync_ms = 1;
            self.nodes[k].fail_next_fsync = false;
            if self.nodes[k].up.is_none() {
                self.boot(k)?;
            }
        }
        Ok(())
    }
}
