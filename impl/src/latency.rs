//! The write path's latency breakdown (issue 20): per write, the time at which it reached each
//! stage, aggregated into HdrHistograms, always on. Timestamps are taken by the runtime and
//! I/O layers (client connection tasks, peer connection tasks, the log writer's report, the
//! replica thread around the core) — never inside the deterministic core.
//!
//! Three views, each measured from its own origin:
//! - `origin` (the server the client is connected to), from the request frame decoded by the
//!   connection task: `prepared` (the write proposed, when that server leads), `write_replied`
//!   and `read_replied` (the reply written to the client's socket).
//! - `leader`, per proposal, from its proposal on the replica thread: `proposal_sent` (the
//!   PROPOSAL written to the first follower's socket), `durable` (the leader's own fsync
//!   returned), `ack_received` (the first follower ACK decoded), `committed` (the quorum's ACK
//!   processed on the replica thread), `applied` (the transaction applied to the tree).
//! - `follower`, per proposal, from the PROPOSAL decoded by the peer connection task:
//!   `proposal_accepted` (the replica thread queued the append), `durable` (the fsync
//!   returned), `ack_sent` (the ACK written to the leader's socket), `commit_received` (the
//!   COMMIT decoded), `applied`.
//!
//! Plus durations that explain tails: `log.fsync` (each group commit's fsync), `replica.event`
//! (the replica thread busy with one event: everything queued behind it waits) and
//! `replica.snapshot_capture` (the replica thread capturing the state for a periodic snapshot,
//! which it cannot apply transactions during).
//!
//! Each stage is recorded at most once per write (the first time it is reached). Proposals in
//! flight are remembered in a bounded table (the newest [`IN_FLIGHT`]); a proposal older than
//! that, or one of a history cut since, is simply not measured further.

use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;
use zab_spec::Zxid;

/// Proposals remembered per role (leader, follower) while in flight.
pub const IN_FLIGHT: usize = 8192;

/// Largest recorded value, microseconds (larger ones are clamped): 60 s.
const MAX_MICROS: u64 = 60_000_000;

/// A stage of the breakdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Stage {
    /// origin: the write proposed (this server leads).
    OriginPrepared,
    /// origin: a write's reply written to the client.
    OriginWriteReplied,
    /// origin: a read's reply written to the client.
    OriginReadReplied,
    /// leader: PROPOSAL written to the first follower's socket.
    LeaderProposalSent,
    /// leader: its own append durable.
    LeaderDurable,
    /// leader: the first follower ACK decoded.
    LeaderAckReceived,
    /// leader: committed (quorum ACK processed on the replica thread).
    LeaderCommitted,
    /// leader: applied to the tree.
    LeaderApplied,
    /// follower: the replica thread queued the append.
    FollowerProposalAccepted,
    /// follower: durable.
    FollowerDurable,
    /// follower: ACK written to the leader's socket.
    FollowerAckSent,
    /// follower: COMMIT decoded.
    FollowerCommitReceived,
    /// follower: applied to the tree.
    FollowerApplied,
    /// log: one group commit's fsync.
    LogFsync,
    /// replica: the replica thread handling one event (input, timers, and the writes after).
    ReplicaEvent,
    /// replica: capturing the state for a periodic snapshot.
    ReplicaSnapshotCapture,
}

impl Stage {
    /// Every stage, in export order.
    pub const ALL: [Stage; 16] = [
        Stage::OriginPrepared,
        Stage::OriginWriteReplied,
        Stage::OriginReadReplied,
        Stage::LeaderProposalSent,
        Stage::LeaderDurable,
        Stage::LeaderAckReceived,
        Stage::LeaderCommitted,
        Stage::LeaderApplied,
        Stage::FollowerProposalAccepted,
        Stage::FollowerDurable,
        Stage::FollowerAckSent,
        Stage::FollowerCommitReceived,
        Stage::FollowerApplied,
        Stage::LogFsync,
        Stage::ReplicaEvent,
        Stage::ReplicaSnapshotCapture,
    ];

    /// The view (`origin`, `leader`, `follower`, `log`) and the stage's name.
    #[must_use]
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Stage::OriginPrepared => ("origin", "prepared"),
            Stage::OriginWriteReplied => ("origin", "write_replied"),
            Stage::OriginReadReplied => ("origin", "read_replied"),
            Stage::LeaderProposalSent => ("leader", "proposal_sent"),
            Stage::LeaderDurable => ("leader", "durable"),
            Stage::LeaderAckReceived => ("leader", "ack_received"),
            Stage::LeaderCommitted => ("leader", "committed"),
            Stage::LeaderApplied => ("leader", "applied"),
            Stage::FollowerProposalAccepted => ("follower", "proposal_accepted"),
            Stage::FollowerDurable => ("follower", "durable"),
            Stage::FollowerAckSent => ("follower", "ack_sent"),
            Stage::FollowerCommitReceived => ("follower", "commit_received"),
            Stage::FollowerApplied => ("follower", "applied"),
            Stage::LogFsync => ("log", "fsync"),
            Stage::ReplicaEvent => ("replica", "event"),
            Stage::ReplicaSnapshotCapture => ("replica", "snapshot_capture"),
        }
    }

    fn bit(self) -> u16 {
        1 << (self as u16 % 16)
    }
}

/// Which table a proposal is remembered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Proposals this server made as leader.
    Leader,
    /// Proposals this server received as follower.
    Follower,
}

#[derive(Debug)]
struct Entry {
    zxid: u64,
    t0: Instant,
    marked: u16,
}

struct Inner {
    hist: Vec<Histogram<u64>>,
    leader: VecDeque<Entry>,
    follower: VecDeque<Entry>,
}

impl Inner {
    fn table(&mut self, side: Side) -> &mut VecDeque<Entry> {
        match side {
            Side::Leader => &mut self.leader,
            Side::Follower => &mut self.follower,
        }
    }
}

fn record(hist: &mut [Histogram<u64>], stage: Stage, micros: u64) {
    if let Some(h) = hist.get_mut(stage as usize) {
        h.saturating_record(micros.clamp(1, MAX_MICROS));
    }
}

fn micros(from: Instant, to: Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_micros()).unwrap_or(u64::MAX)
}

/// The breakdown: histograms per stage and the proposals in flight. Shared (`Arc`) by the
/// threads that observe stages; every method takes one short lock.
pub struct Breakdown {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Breakdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Breakdown").finish_non_exhaustive()
    }
}

impl Default for Breakdown {
    fn default() -> Breakdown {
        let hist = Stage::ALL
            .iter()
            .map(|_| {
                // 2 significant digits (1 % resolution) keeps each histogram ~20 KiB.
                Histogram::new_with_bounds(1, MAX_MICROS, 2)
                    .expect("constant bounds: 1 <= 1 µs < 60 s, 2 significant digits")
            })
            .collect();
        Breakdown {
            inner: Mutex::new(Inner {
                hist,
                leader: VecDeque::new(),
                follower: VecDeque::new(),
            }),
        }
    }
}

impl Breakdown {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Only histograms and timestamps behind it: a poisoned lock leaves them usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a duration measured elsewhere (`origin` stages, the fsync).
    pub fn record_micros(&self, stage: Stage, micros: u64) {
        record(&mut self.lock().hist, stage, micros);
    }

    /// Records `stage` as reached at `now` by something that started at `since`.
    pub fn record_since(&self, stage: Stage, since: Instant, now: Instant) {
        self.record_micros(stage, micros(since, now));
    }

    /// A proposal starts being measured on `side`, at `t0`. A zxid not above the newest one
    /// remembered means the history was cut (or the role changed): the table starts over.
    pub fn start(&self, side: Side, zxid: Zxid, t0: Instant) {
        let mut inner = self.lock();
        let table = inner.table(side);
        let z = zxid.to_u64();
        if table.back().is_some_and(|e| e.zxid >= z) {
            table.clear();
        }
        if table.len() >= IN_FLIGHT {
            table.pop_front();
        }
        table.push_back(Entry {
            zxid: z,
            t0,
            marked: 0,
        });
    }

    /// `zxid` reached `stage` at `now` (recorded the first time only).
    pub fn mark(&self, side: Side, zxid: Zxid, stage: Stage, now: Instant) {
        let mut inner = self.lock();
        let z = zxid.to_u64();
        let table = inner.table(side);
        let Ok(k) = table.binary_search_by_key(&z, |e| e.zxid) else {
            return;
        };
        let e = &mut table[k];
        if e.marked & stage.bit() != 0 {
            return;
        }
        e.marked |= stage.bit();
        let us = micros(e.t0, now);
        record(&mut inner.hist, stage, us);
    }

    /// Every remembered proposal up to `zxid` reached `stage` at `now` (a group commit's
    /// durability report covers a batch).
    pub fn mark_through(&self, side: Side, zxid: Zxid, stage: Stage, now: Instant) {
        let mut inner = self.lock();
        let z = zxid.to_u64();
        let Inner {
            hist,
            leader,
            follower,
        } = &mut *inner;
        let table = match side {
            Side::Leader => leader,
            Side::Follower => follower,
        };
        let end = table.partition_point(|e| e.zxid <= z);
        // Newest first: stop at the first one already marked (everything before it is).
        for e in table.range_mut(..end).rev() {
            if e.marked & stage.bit() != 0 {
                break;
            }
            e.marked |= stage.bit();
            record(hist, stage, micros(e.t0, now));
        }
    }

    /// The log writer's report that everything up to `zxid` is durable, after an fsync of
    /// `fsync_micros` (called on the writer thread as the fsync returns): `log.fsync`, and
    /// `durable` for every remembered proposal up to `zxid` in either table.
    pub fn durable_through(&self, zxid: Zxid, fsync_micros: u64, now: Instant) {
        self.record_micros(Stage::LogFsync, fsync_micros);
        self.mark_through(Side::Leader, zxid, Stage::LeaderDurable, now);
        self.mark_through(Side::Follower, zxid, Stage::FollowerDurable, now);
    }

    /// Forgets the proposals in flight (role change, history cut).
    pub fn clear_in_flight(&self) {
        let mut inner = self.lock();
        inner.leader.clear();
        inner.follower.clear();
    }

    /// Count and quantiles (µs) of one stage: `(count, p50, p99, p99.9, max, sum)`.
    #[must_use]
    pub fn summary(&self, stage: Stage) -> (u64, u64, u64, u64, u64, f64) {
        let inner = self.lock();
        let Some(h) = inner.hist.get(stage as usize) else {
            return (0, 0, 0, 0, 0, 0.0);
        };
        (
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.mean() * h.len() as f64,
        )
    }

    /// The Prometheus exposition: a summary per stage (`zab_write_stage_seconds`, labels
    /// `view` and `stage`, quantiles 0.5, 0.99, 0.999).
    pub fn render(&self, out: &mut String) {
        out.push_str(
            "# HELP zab_write_stage_seconds Time from a write's origin in each view (origin: \
             request decoded; leader: proposed; follower: PROPOSAL received) until it reached \
             the stage; log/fsync, replica/event and replica/snapshot_capture are durations.\n\
             # TYPE zab_write_stage_seconds summary\n",
        );
        for stage in Stage::ALL {
            let (view, name) = stage.names();
            let (n, p50, p99, p999, _, sum) = self.summary(stage);
            for (q, v) in [("0.5", p50), ("0.99", p99), ("0.999", p999)] {
                let _ = writeln!(
                    out,
                    "zab_write_stage_seconds{{view=\"{view}\",stage=\"{name}\",quantile=\"{q}\"}} {}",
                    v as f64 / 1e6
                );
            }
            let _ = writeln!(
                out,
                "zab_write_stage_seconds_sum{{view=\"{view}\",stage=\"{name}\"}} {}",
                sum / 1e6
            );
            let _ = writeln!(
                out,
                "zab_write_stage_seconds_count{{view=\"{view}\",stage=\"{name}\"}} {n}"
            );
        }
    }

    /// Every stage's recorded values as JSON (`GET /latency`): `{"stages": {"leader.durable":
    /// [[µs, count], ...], ...}}`, each value the highest equivalent of its HdrHistogram
    /// bucket. Cumulative since start: a benchmark takes one before and one after a run and
    /// subtracts.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let inner = self.lock();
        let mut stages = serde_json::Map::new();
        for stage in Stage::ALL {
            let (view, name) = stage.names();
            let Some(h) = inner.hist.get(stage as usize) else {
                continue;
            };
            let values: Vec<serde_json::Value> = h
                .iter_recorded()
                .map(|v| {
                    serde_json::json!([
                        h.highest_equivalent(v.value_iterated_to()),
                        v.count_at_value()
                    ])
                })
                .collect();
            stages.insert(format!("{view}.{name}"), serde_json::Value::Array(values));
        }
        serde_json::json!({ "unit": "us", "stages": stages })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn z(c: u32) -> Zxid {
        Zxid::new(1, c)
    }

    #[test]
    fn stages_are_recorded_once_from_their_origin() {
        let b = Breakdown::default();
        let t0 = Instant::now();
        b.start(Side::Leader, z(1), t0);
        b.start(Side::Leader, z(2), t0 + Duration::from_micros(100));
        b.mark(
            Side::Leader,
            z(1),
            Stage::LeaderProposalSent,
            t0 + Duration::from_micros(50),
        );
        b.mark(
            Side::Leader,
            z(1),
            Stage::LeaderProposalSent,
            t0 + Duration::from_micros(900),
        );
        assert_eq!(b.summary(Stage::LeaderProposalSent).0, 1, "first mark only");
        let (_, p50, ..) = b.summary(Stage::LeaderProposalSent);
        assert!((49..=51).contains(&p50), "{p50}");
        // One durability report covers both.
        b.mark_through(
            Side::Leader,
            z(2),
            Stage::LeaderDurable,
            t0 + Duration::from_micros(300),
        );
        b.mark_through(
            Side::Leader,
            z(2),
            Stage::LeaderDurable,
            t0 + Duration::from_micros(999),
        );
        let (n, _, _, _, max, _) = b.summary(Stage::LeaderDurable);
        assert_eq!(n, 2);
        assert!((298..=302).contains(&max), "{max}");
        // The follower table is separate: nothing there to mark.
        b.mark(Side::Follower, z(1), Stage::FollowerAckSent, t0);
        assert_eq!(b.summary(Stage::FollowerAckSent).0, 0);
    }

    #[test]
    fn a_cut_history_starts_the_table_over_and_the_table_is_bounded() {
        let b = Breakdown::default();
        let t0 = Instant::now();
        for c in 1..=(IN_FLIGHT as u32 + 10) {
            b.start(Side::Follower, z(c), t0);
        }
        b.mark(Side::Follower, z(1), Stage::FollowerApplied, t0);
        assert_eq!(b.summary(Stage::FollowerApplied).0, 0, "evicted");
        b.mark(Side::Follower, z(20), Stage::FollowerApplied, t0);
        assert_eq!(b.summary(Stage::FollowerApplied).0, 1);
        b.start(Side::Follower, z(5), t0);
        b.mark(Side::Follower, z(30), Stage::FollowerApplied, t0);
        assert_eq!(b.summary(Stage::FollowerApplied).0, 1, "cut: 30 forgotten");
    }

    #[test]
    fn a_durability_report_stamps_the_fsync_and_both_tables_up_to_its_zxid() {
        let b = Breakdown::default();
        let t0 = Instant::now();
        for c in 1..=3 {
            b.start(Side::Leader, z(c), t0);
            b.start(Side::Follower, z(c), t0);
        }
        b.durable_through(z(2), 40, t0 + Duration::from_micros(500));
        assert_eq!(b.summary(Stage::LogFsync).0, 1);
        assert_eq!(b.summary(Stage::LeaderDurable).0, 2, "1 and 2, not 3");
        assert_eq!(b.summary(Stage::FollowerDurable).0, 2);
        b.durable_through(z(3), 40, t0 + Duration::from_micros(900));
        assert_eq!(
            b.summary(Stage::LeaderDurable).0,
            3,
            "3 once, 1 and 2 not again"
        );
        assert_eq!(b.summary(Stage::LogFsync).0, 2);
        let (_, p50, _, _, max, _) = b.summary(Stage::LeaderDurable);
        assert!(
            (495..=505).contains(&p50) && (895..=905).contains(&max),
            "{p50} {max}"
        );
        // Rendered where /metrics reads it.
        let mut text = String::new();
        b.render(&mut text);
        assert!(
            text.contains("zab_write_stage_seconds_count{view=\"leader\",stage=\"durable\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn the_exports_name_every_stage() {
        let b = Breakdown::default();
        b.record_micros(Stage::LogFsync, 130);
        let mut text = String::new();
        b.render(&mut text);
        assert!(text.contains("zab_write_stage_seconds_count{view=\"log\",stage=\"fsync\"} 1"));
        assert!(text.contains("view=\"follower\",stage=\"ack_sent\",quantile=\"0.99\""));
        let json = b.to_json();
        let fsync = &json["stages"]["log.fsync"];
        assert_eq!(fsync[0][1], 1);
        let v = fsync[0][0].as_u64().unwrap_or(0);
        assert!((129..=131).contains(&v), "{v}");
    }
}
