//! The faults of the safety phase, drawn from the seed (crashes, partitions, slow fsyncs,
//! storage faults, and the faults aimed at durability boundaries), and the calm of the
//! liveness phase.

use super::*;
use zab_model::state::Sid;
use zab_server::storage::damage;

/// The probability that an acknowledgement sent ahead of the disk is followed by a crash.
const AIM_ACK: f64 = 1.0;
/// The probability that a `currentEpoch` write is followed by a crash within two ticks.
const AIM_EPOCH: f64 = 0.3;

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
                    if self.is_observer(a) || self.is_observer(b) {
                        self.report.observer_faults += 1;
                    }
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

    /// Aimed fault: server `k` sent an acknowledgement that is delivered at `at`. If its log
    /// holds unsynced writes, with probability [`AIM_ACK`] it crashes right after the
    /// delivery, before its next fsync completes: the window of an acknowledgement that
    /// runs ahead of the disk (ZOOKEEPER-4646's ACK of NEWLEADER). The receiver `to` crashes
    /// soon after, so that the next election is held without it.
    pub(super) fn aim_after_ack(&mut self, k: usize, to: usize, at: u64) {
        if !(self.faulty && self.cfg.faults.aimed && self.cfg.faults.crash) {
            return;
        }
        let unsynced = self.nodes[k]
            .up
            .as_ref()
            .is_some_and(|u| u.log.has_unsynced());
        if !unsynced || self.nodes[k].aimed_crash || !self.has_joined(k) {
            return;
        }
        if self.aim_rng.random_bool(AIM_ACK) {
            self.nodes[k].aimed_crash = true;
            let life = self.nodes[k].life;
            self.schedule(
                at + 1,
                Ev::AimedCrash {
                    node: k,
                    life,
                    receiver: Some(to),
                },
            );
            *self
                .report
                .faults
                .entry("aimed crash after an ACK")
                .or_default() += 1;
        }
    }

    /// Aimed fault: if server `k` wrote `currentEpoch` since the last look, with probability
    /// [`AIM_EPOCH`] it crashes within two ticks, before its next fsync completes: the
    /// window between the epoch and the log it vouches for (ZOOKEEPER-4643 writes the
    /// epoch a tick before it logs the synced transactions). Its leader crashes soon after.
    pub(super) fn aim_after_epoch(&mut self, k: usize) {
        if !(self.faulty && self.cfg.faults.aimed && self.cfg.faults.crash) {
            return;
        }
        let Some(writes) = self.nodes[k].up.as_ref().map(|u| u.log.epoch_writes()) else {
            return;
        };
        if writes == self.nodes[k].epoch_writes {
            return;
        }
        self.nodes[k].epoch_writes = writes;
        if self.nodes[k].aimed_crash || !self.has_joined(k) {
            return;
        }
        if self.aim_rng.random_bool(AIM_EPOCH) {
            self.nodes[k].aimed_crash = true;
            let life = self.nodes[k].life;
            let at = self.now() + self.aim_rng.random_range(1..=2 * self.cfg.tick_ms);
            // Its leader goes down a little later too, as after an acknowledgement.
            let leader = self
                .refiner
                .state()
                .srv(k as Sid)
                .follower
                .as_ref()
                .map(|f| usize::from(f.leader));
            self.schedule(
                at,
                Ev::AimedCrash {
                    node: k,
                    life,
                    receiver: leader,
                },
            );
            *self
                .report
                .faults
                .entry("aimed crash after currentEpoch")
                .or_default() += 1;
        }
    }

    /// The aimed crash of server `k` (if it is still in the life it was aimed at), and its
    /// restart later.
    pub(super) fn aimed_crash(
        &mut self,
        k: usize,
        life: u64,
        receiver: Option<usize>,
    ) -> Result<(), Box<Failure>> {
        self.nodes[k].aimed_crash = false;
        if life != self.nodes[k].life || self.nodes[k].up.is_none() || !self.faulty {
            return Ok(());
        }
        self.crash(k)?;
        let down = self.aim_rng.random_range(100..3_000);
        let at = self.now() + down;
        self.schedule(at, Ev::Restart { node: k });
        if let Some(r) = receiver.filter(|&r| self.nodes[r].up.is_some()) {
            let later = self.now() + self.aim_rng.random_range(1..=2 * self.cfg.tick_ms);
            let life = self.nodes[r].life;
            self.schedule(
                later,
                Ev::AimedCrash {
                    node: r,
                    life,
                    receiver: None,
                },
            );
        }
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
        for node in &mut self.nodes {
            node.aimed_crash = false;
        }
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
