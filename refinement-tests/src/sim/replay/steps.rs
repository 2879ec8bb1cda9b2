//! The model steps of a replay: the simulator event each model action calls for, and the
//! match of the server's trace records against the action (`super` describes the replay).

use super::*;

impl Sim {
    fn rec(&self, (kind, i, j): (ActionKind, ServerId, Option<ServerId>)) -> Rec {
        Rec {
            kind,
            i: self.index(i),
            j: j.map(|j| self.index(j)),
        }
    }

    /// Takes the records the model's step covers without a record of its own: a connection
    /// loss the model already broke in `after` (both ends break at once in the model), a
    /// restart after a crash.
    fn rp_absorb(&mut self, after: &MState<ZnodeTxn>) {
        while let Some(&front) = self.held().observed.front() {
            let r = self.rec(front);
            let stutter = match (r.kind, r.j) {
                (ActionKind::NodeRestart, _) => true,
                (ActionKind::ConnectionLost, Some(j)) => !after.connected(r.i as u8, j as u8),
                _ => false,
            };
            if !stutter {
                return;
            }
            self.held().observed.pop_front();
        }
    }

    /// One model step: perform its event (unless the server took it already), then match the
    /// record.
    pub(super) fn rp_step(
        &mut self,
        model: &ZabModel<ZnodeTxn>,
        before: &MState<ZnodeTxn>,
        after: &MState<ZnodeTxn>,
        a: &MAction<ZnodeTxn>,
        rest: &[MAction<ZnodeTxn>],
    ) -> Result<(), Halt> {
        let (i, j) = a.servers();
        let (i, j) = (usize::from(i), j.map(usize::from));
        let expected = match a {
            MAction::PartitionStart { .. } | MAction::PartitionRecover { .. } => None,
            _ => Some(Rec {
                kind: a.kind(),
                i,
                j,
            }),
        };
        self.rp_absorb(after);
        if self.held().observed.is_empty() {
            self.rp_drive(model, before, a, rest)?;
            self.rp_absorb(after);
        }
        if let Some(want) = expected {
            let Some(&front) = self.held().observed.front() else {
                return Err(stuck(StuckReason::NoAction));
            };
            let got = self.rec(front);
            if got != want {
                return Err(stuck(StuckReason::OtherAction(got)));
            }
            self.held().observed.pop_front();
            self.rp_absorb(after);
        }
        if self.held().observed.is_empty() {
            self.rp_compare(after)?;
        }
        Ok(())
    }

    /// Performs the simulator event that makes the server take `a`.
    fn rp_drive(
        &mut self,
        model: &ZabModel<ZnodeTxn>,
        before: &MState<ZnodeTxn>,
        a: &MAction<ZnodeTxn>,
        rest: &[MAction<ZnodeTxn>],
    ) -> Result<(), Halt> {
        let (i, j) = a.servers();
        let (iu, ju) = (usize::from(i), j.map(usize::from));
        if self.nodes[iu].up.is_none() {
            return Err(stuck(StuckReason::ServerDown(iu)));
        }
        let seen = |sim: &mut Sim| !sim.held().observed.is_empty();
        match a {
            MAction::ElectLeader { .. } => {
                let among = election_members(model, before, i, rest);
                for _ in 0..BUDGET {
                    if seen(self) {
                        return Ok(());
                    }
                    if !self.rp_election_round(&among)? {
                        break;
                    }
                }
                if seen(self) {
                    Ok(())
                } else {
                    Err(stuck(StuckReason::NotElected))
                }
            }
            MAction::FollowLeader { .. } => {
                // `i` hears the leader and its followers (they answer a LOOKING server with
                // the leader they follow: FLE's out-of-election path).
                let l = ju.unwrap_or(iu);
                let mut among = vec![iu, l];
                if let Some(lv) = &before.srv(l as u8).leader {
                    among.extend(lv.learners.iter().map(usize::from).filter(|&f| f != l));
                }
                // ... and the servers that chose it and are connecting (they say FOLLOWING).
                let choosing: Vec<usize> = self
                    .wanting
                    .iter()
                    .filter(|&&(f, t)| t == l && f != iu && !among.contains(&f))
                    .map(|&(f, _)| f)
                    .collect();
                among.extend(choosing);
                let mut budget = BUDGET;
                while !self.wanting.contains(&(iu, l)) {
                    budget = budget
                        .checked_sub(1)
                        .ok_or(stuck(StuckReason::DidNotChoose))?;
                    if seen(self) || !self.rp_election_round(&among)? {
                        return if seen(self) {
                            Ok(())
                        } else {
                            Err(stuck(StuckReason::DidNotChoose))
                        };
                    }
                }
                if !(self.linked(iu, l) && self.is_leading(l)) {
                    return Err(stuck(StuckReason::ConnectionRefused));
                }
                self.connect_attempt(iu, l)?;
                Ok(())
            }
            MAction::LeaderProcessRequest { .. } => Ok(self.rp_open_session(iu)?),
            MAction::SyncProcessorLogRequest { .. } => {
                if self.rp_fsync(iu)? {
                    Ok(())
                } else {
                    Err(stuck(StuckReason::NothingToSync))
                }
            }
            MAction::LeaderTimeout { .. }
            | MAction::FollowerProcessNewLeaderAfterCurrentEpochUpdated { .. }
            | MAction::LeaderBroadcastProposal { .. } => {
                for _ in 0..BUDGET {
                    if seen(self) || !self.rp_fire(&[iu])? {
                        break;
                    }
                }
                Ok(())
            }
            MAction::NodeCrash { .. } => {
                self.crash_with(iu, CrashMode::DropUnsynced, "crash", |_, _| {
                    Some((ActionKind::NodeCrash, None))
                })?;
                self.boot(iu)?;
                Ok(())
            }
            MAction::LoseEpochFiles { .. }
            | MAction::LoseLogSuffix { .. }
            | MAction::LoseDataDir { .. } => self.rp_storage_fault(before, a),
            MAction::PartitionStart { .. } => {
                let l = ju.unwrap_or(iu);
                self.partitions.insert(Self::conn_key(iu, l));
                self.break_conn(iu, l)?;
                Ok(())
            }
            MAction::PartitionRecover { .. } => {
                let l = ju.unwrap_or(iu);
                self.partitions.remove(&Self::conn_key(iu, l));
                Ok(())
            }
            MAction::TakeSnapshot { .. } => Err(stuck(StuckReason::Unsupported(a.kind()))),
            _ => {
                // A message handler: `i` receives from `j`.
                let from = ju.unwrap_or(iu);
                let mut any = false;
                while !seen(self) {
                    if !self.rp_deliver(from, iu)? {
                        break;
                    }
                    any = true;
                }
                if any {
                    Ok(())
                } else {
                    Err(stuck(StuckReason::NoMessage { from, to: iu }))
                }
            }
        }
    }

    /// A storage fault: `i` crashes with its disk damaged as the model's action says, and
    /// restarts.
    fn rp_storage_fault(
        &mut self,
        before: &MState<ZnodeTxn>,
        a: &MAction<ZnodeTxn>,
    ) -> Result<(), Halt> {
        use zab_server::storage::damage;
        let (i, _) = a.servers();
        let k = usize::from(i);
        let cfg = self.server_config(k);
        let srv = before.srv(i);
        let done = match *a {
            MAction::LoseEpochFiles { .. } => {
                let data_dir = cfg.data_dir.clone();
                self.crash_with(k, CrashMode::DropUnsynced, "", move |sim, k| {
                    damage::lose_epoch_files(&sim.nodes[k].fs, &data_dir);
                    Some((ActionKind::LoseEpochFiles, None))
                })?;
                true
            }
            MAction::LoseDataDir { .. } => {
                let (data_dir, log_dir) = (cfg.data_dir.clone(), cfg.data_log_dir.clone());
                self.crash_with(k, CrashMode::DropUnsynced, "", move |sim, k| {
                    damage::wipe(&sim.nodes[k].fs, &[&data_dir, &log_dir]);
                    Some((ActionKind::LoseDataDir, None))
                })?;
                true
            }
            MAction::LoseLogSuffix { k: kept, .. } if (kept as usize) < srv.history.len() => {
                let zxid = srv.zxid_at(kept as usize + 1);
                let kept_zxid = srv.zxid_at(kept as usize);
                let log_dir = cfg.data_log_dir.clone();
                let mut ok = false;
                self.crash_with(k, CrashMode::DropUnsynced, "", |sim, k| {
                    ok = damage::flip_bit_in_log_record(
                        &sim.nodes[k].fs,
                        &log_dir,
                        zxid,
                        0,
                        StorageConfig::new("/", "/").max_record_bytes,
                    );
                    ok.then_some((ActionKind::LoseLogSuffix, Some(kept_zxid)))
                })?;
                ok
            }
            _ => false,
        };
        if self.nodes[k].up.is_none() {
            self.boot(k)?;
        }
        if done {
            Ok(())
        } else {
            Err(stuck(StuckReason::DamageImpossible))
        }
    }
}

/// The servers that take part in `ElectLeader(i)`: `i`, the model's supporters of `i` (LOOKING
/// servers that count, whose vote `i`'s beats, on links that are not cut) that the rest of
/// the path has follow `i` before `i` crashes or is elected again, and, if those are no
/// quorum, other supporters. A server that follows `i` later with a better vote than `i`'s
/// takes no part: it would win this election; it follows on FLE's out-of-election path.
fn election_members(
    model: &ZabModel<ZnodeTxn>,
    before: &MState<ZnodeTxn>,
    i: u8,
    rest: &[MAction<ZnodeTxn>],
) -> Vec<usize> {
    let mine = model.vote(before, i);
    let supports = |s: u8| {
        s == i
            || (before.srv(s).state == ServerState::Looking
                && !before.partitioned(i, s)
                && model.counts(before, s)
                && model.vote(before, s) <= mine)
    };
    let mut set = ServerSet::single(i);
    for a in rest {
        match *a {
            MAction::FollowLeader { i: f, j } if j == i && supports(f) => set = set.with(f),
            MAction::NodeCrash { i: c }
            | MAction::LoseEpochFiles { i: c }
            | MAction::LoseDataDir { i: c }
            | MAction::LoseLogSuffix { i: c, .. }
            | MAction::ElectLeader { i: c }
                if c == i =>
            {
                break;
            }
            _ => {}
        }
    }
    let n = before.n();
    for s in 0..n {
        if set.is_quorum(n) {
            break;
        }
        if supports(s) {
            set = set.with(s);
        }
    }
    set.iter().map(usize::from).collect()
}
