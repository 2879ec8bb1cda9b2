//! The faults: each one starts, lasts a bounded time, and is healed; schedules (every kind
//! once, or random kinds and combinations) come from a seed.

use crate::cluster::{self, Cluster, Damage, SESSION_TIMEOUT};
use crate::topology::Topology;
use anyhow::Result;
use rand::Rng;
use rand::seq::IndexedRandom;
use std::time::Duration;

/// A fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `kill -9` of a random server, restarted at heal.
    KillRandom,
    /// `kill -9` of the leader.
    KillLeader,
    /// `kill -9` of every server.
    KillAll,
    /// SIGSTOP of the leader for longer than the session and sync timeouts.
    PauseLeader,
    /// The leader cut off from every other server.
    PartitionLeader,
    /// A random minority cut off from the majority.
    PartitionMinority,
    /// Two groups that only one server (the bridge) connects.
    PartitionBridge,
    /// The leader receives nothing from the followers (they still hear it).
    PartitionOneWay,
    /// 20% of packets dropped on every server.
    PacketLoss,
    /// A stopped server's newest log loses its tail.
    StorageTruncate,
    /// A stopped server's newest log gets one bit flipped.
    StorageBitflip,
    /// A stopped server loses `currentEpoch`.
    StorageEpoch,
    /// A stopped server loses its whole data directory (`myid` kept).
    StorageWipe,
    /// Issue 13's operator's bad day (not in [`ALL`]; `--only` runs it): a follower C is
    /// stopped, writes go on, the other two A, B are killed, B loses `currentEpoch`, B and C
    /// start without A; A starts at heal.
    EpochQuorum,
}

/// Every kind, in the order of the CI round.
pub const ALL: [Kind; 13] = [
    Kind::KillRandom,
    Kind::KillLeader,
    Kind::PauseLeader,
    Kind::PartitionLeader,
    Kind::PartitionMinority,
    Kind::PartitionBridge,
    Kind::PartitionOneWay,
    Kind::PacketLoss,
    Kind::StorageTruncate,
    Kind::StorageBitflip,
    Kind::StorageEpoch,
    Kind::StorageWipe,
    Kind::KillAll,
];

/// Kinds that combine (run at the same time) in random schedules.
const COMBINABLE: [Kind; 6] = [
    Kind::KillRandom,
    Kind::PauseLeader,
    Kind::PartitionLeader,
    Kind::PartitionMinority,
    Kind::PartitionOneWay,
    Kind::PacketLoss,
];

impl Kind {
    /// Its name in reports.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillRandom => "kill-random",
            Kind::KillLeader => "kill-leader",
            Kind::KillAll => "kill-all",
            Kind::PauseLeader => "pause-leader",
            Kind::PartitionLeader => "partition-leader",
            Kind::PartitionMinority => "partition-minority",
            Kind::PartitionBridge => "partition-bridge",
            Kind::PartitionOneWay => "partition-one-way",
            Kind::PacketLoss => "packet-loss",
            Kind::StorageTruncate => "storage-truncate",
            Kind::StorageBitflip => "storage-bitflip",
            Kind::StorageEpoch => "storage-epoch",
            Kind::StorageWipe => "storage-wipe",
            Kind::EpochQuorum => "storage-epoch-quorum",
        }
    }

    /// Parses a name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Kind> {
        ALL.iter()
            .copied()
            .chain([Kind::EpochQuorum])
            .find(|k| k.name() == s)
    }

    fn storage(self) -> Option<Damage> {
        match self {
            Kind::StorageTruncate => Some(Damage::TruncateLog),
            Kind::StorageBitflip => Some(Damage::FlipBit),
            Kind::StorageEpoch => Some(Damage::DeleteCurrentEpoch),
            Kind::StorageWipe => Some(Damage::Wipe),
            _ => None,
        }
    }
}

/// One step of a schedule: faults started together, healed together.
#[derive(Clone, Debug)]
pub struct Step {
    /// The faults.
    pub kinds: Vec<Kind>,
    /// How long they last.
    pub duration: Duration,
}

impl Step {
    /// Its name in reports (`a+b` for combinations).
    #[must_use]
    pub fn name(&self) -> String {
        self.kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// Every kind once (the CI round), `fault` long each (pauses outlast the session timeout),
/// then one random combination.
pub fn round(rng: &mut impl Rng, fault: Duration) -> Vec<Step> {
    let mut steps = only(&ALL, fault);
    steps.push(combination(rng, fault));
    steps
}

/// The given kinds once each, in order.
#[must_use]
pub fn only(kinds: &[Kind], fault: Duration) -> Vec<Step> {
    kinds
        .iter()
        .map(|&k| Step {
            kinds: vec![k],
            duration: duration_of(k, fault),
        })
        .collect()
}

fn duration_of(k: Kind, fault: Duration) -> Duration {
    if k == Kind::PauseLeader {
        fault.max(SESSION_TIMEOUT + Duration::from_secs(1))
    } else {
        fault
    }
}

fn combination(rng: &mut impl Rng, fault: Duration) -> Step {
    let a = *COMBINABLE.choose(rng).unwrap_or(&Kind::KillRandom);
    let mut b = *COMBINABLE.choose(rng).unwrap_or(&Kind::PacketLoss);
    if b == a {
        b = Kind::PacketLoss;
    }
    let duration = if a == Kind::PauseLeader || b == Kind::PauseLeader {
        duration_of(Kind::PauseLeader, fault)
    } else {
        fault
    };
    Step {
        kinds: if a == b { vec![a] } else { vec![a, b] },
        duration,
    }
}

/// A random step of a soak: a single kind (2/3) or a combination (1/3), 2–12 s long.
pub fn random_step(rng: &mut impl Rng) -> Step {
    let fault = Duration::from_millis(rng.random_range(2000..12000));
    if rng.random_range(0..3) == 0 {
        combination(rng, fault)
    } else {
        let k = *ALL.choose(rng).unwrap_or(&Kind::KillRandom);
        Step {
            kinds: vec![k],
            duration: duration_of(k, fault),
        }
    }
}

/// What a started fault needs at heal time.
#[derive(Debug, Default)]
pub struct Active {
    /// What was done, for the report.
    pub notes: Vec<String>,
    /// Servers whose storage was damaged (stopped; restarted at heal).
    pub damaged: Vec<u64>,
}

fn pick(rng: &mut impl Rng, ids: &[u64]) -> u64 {
    *ids.choose(rng).unwrap_or(&1)
}

/// Starts `kind`.
pub fn start(
    kind: Kind,
    topo: &Topology,
    cluster: &mut Cluster,
    rng: &mut impl Rng,
    active: &mut Active,
) -> Result<()> {
    let ids = cluster.ids();
    let leader = cluster::leader(&ids);
    let leader_or_random = |rng: &mut _| leader.unwrap_or_else(|| pick(rng, &ids));
    match kind {
        Kind::KillRandom => {
            let id = pick(rng, &ids);
            cluster.kill9(id);
            active.notes.push(format!("killed s{id}"));
        }
        Kind::KillLeader => {
            let id = leader_or_random(rng);
            cluster.kill9(id);
            active.notes.push(format!("killed leader s{id}"));
        }
        Kind::KillAll => {
            for &id in &ids {
                cluster.kill9(id);
            }
            active.notes.push("killed all".into());
        }
        Kind::EpochQuorum => epoch_quorum(&ids, leader, cluster, rng, active)?,
        Kind::PauseLeader => {
            let id = leader_or_random(rng);
            cluster.pause(id);
            active.notes.push(format!("paused leader s{id}"));
        }
        Kind::PartitionLeader => {
            let id = leader_or_random(rng);
            for &o in ids.iter().filter(|&&o| o != id) {
                topo.cut(id, o)?;
            }
            active.notes.push(format!("isolated leader s{id}"));
        }
        Kind::PartitionMinority => {
            let mut shuffled = ids.clone();
            rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), rng);
            let minority = &shuffled[..(ids.len() - 1) / 2];
            let majority = &shuffled[(ids.len() - 1) / 2..];
            for &a in minority {
                for &b in majority {
                    topo.cut(a, b)?;
                }
            }
            active
                .notes
                .push(format!("minority {minority:?} | majority {majority:?}"));
        }
        Kind::PartitionBridge => {
            let mut shuffled = ids.clone();
            rand::seq::SliceRandom::shuffle(shuffled.as_mut_slice(), rng);
            let bridge = shuffled[0];
            let rest = &shuffled[1..];
            let (left, right) = rest.split_at(rest.len() / 2);
            for &a in left {
                for &b in right {
                    topo.cut(a, b)?;
                }
            }
            active
                .notes
                .push(format!("bridge s{bridge} between {left:?} and {right:?}"));
        }
        Kind::PartitionOneWay => {
            let id = leader_or_random(rng);
            for &o in ids.iter().filter(|&&o| o != id) {
                topo.drop_from(o, id)?;
            }
            active
                .notes
                .push(format!("s{id} (leader) hears no follower; they hear it"));
        }
        Kind::PacketLoss => {
            topo.lossy(20)?;
            active.notes.push(format!(
                "20% loss ({})",
                if topo.has_netem() {
                    "netem"
                } else {
                    "iptables statistic"
                }
            ));
        }
        Kind::StorageTruncate | Kind::StorageBitflip | Kind::StorageEpoch | Kind::StorageWipe => {
            let id = pick(rng, &ids);
            cluster.kill9(id);
            let data = cluster.servers[(id - 1) as usize].data_dir();
            let what = cluster::damage(&data, kind.storage().unwrap_or(Damage::FlipBit), rng)?;
            active.notes.push(format!("s{id} stopped; {what}"));
            active.damaged.push(id);
        }
    }
    Ok(())
}

fn epoch_quorum(
    ids: &[u64],
    leader: Option<u64>,
    cluster: &mut Cluster,
    rng: &mut impl Rng,
    active: &mut Active,
) -> Result<()> {
    let a = leader.unwrap_or_else(|| pick(rng, ids));
    let others: Vec<u64> = ids.iter().copied().filter(|&i| i != a).collect();
    let (c, b) = (others[0], others[1]);
    cluster.kill9(c);
    // Writes acknowledged by A and B alone.
    std::thread::sleep(Duration::from_secs(2));
    cluster.kill9(a);
    cluster.kill9(b);
    let data = cluster.servers[(b - 1) as usize].data_dir();
    let what = cluster::damage(&data, Damage::DeleteCurrentEpoch, rng)?;
    cluster.start(b)?;
    cluster.start(c)?;
    active.notes.push(format!(
        "s{c} stopped; 2 s later s{a} (leader) and s{b} killed; s{b}: {what}; s{b} and s{c} started without s{a}"
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        for (id, status) in cluster.reap() {
            if id == b {
                active
                    .notes
                    .push(format!("s{b} refused to start ({status})"));
                active.damaged.push(b);
            } else {
                cluster.record_crashes(vec![(id, status)]);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Heals everything: network rules removed, paused servers continued, stopped servers
/// started. Returns the notes about damaged servers (started, or refused to start).
pub fn heal(topo: &Topology, cluster: &mut Cluster, active: &Active) -> Result<Vec<String>> {
    topo.heal()?;
    cluster.resume_all();
    let mut notes = Vec::new();
    // Where each damaged server's log stands before it starts: its refusal comes after.
    let offsets: Vec<(u64, u64)> = active
        .damaged
        .iter()
        .map(|&id| {
            let log = cluster.servers[(id - 1) as usize].log();
            (id, std::fs::metadata(log).map_or(0, |m| m.len()))
        })
        .collect();
    for id in cluster.ids() {
        cluster.start(id)?;
    }
    if active.damaged.is_empty() {
        return Ok(notes);
    }
    // A damaged server either starts or refuses; watch it for a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    let mut refused = Vec::new();
    while std::time::Instant::now() < deadline {
        for (id, status) in cluster.reap() {
            if active.damaged.contains(&id) {
                refused.push(id);
                let from = offsets
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map_or(0, |(_, o)| *o);
                let text =
                    std::fs::read(cluster.servers[(id - 1) as usize].log()).unwrap_or_default();
                let start = usize::try_from(from).unwrap_or(0).min(text.len());
                let log = String::from_utf8_lossy(&text[start..]).into_owned();
                let tail = log
                    .lines()
                    .find(|l| l.contains("ERROR") || l.contains("Exception"))
                    .unwrap_or_else(|| log.lines().last().unwrap_or(""))
                    .to_string();
                notes.push(format!(
                    "s{id} refused to start after damage ({status}): {tail}"
                ));
            } else {
                cluster.record_crashes(vec![(id, status)]);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for id in &active.damaged {
        if refused.contains(id) {
            // The operator's way back: an empty data directory; the server resyncs.
            cluster.wipe(*id)?;
            cluster.start(*id)?;
            notes.push(format!(
                "s{id}: data wiped and restarted (operator recovery)"
            ));
        } else {
            notes.push(format!("s{id} started on its damaged data"));
        }
    }
    Ok(notes)
}
