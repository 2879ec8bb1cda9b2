//! The faults of the safety phase, drawn from the seed (crashes, partitions, slow fsyncs), and
//! the calm of the liveness phase.

use super::*;

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
            _ => {}
        }
        let gap = self.rng.random_range(1..=2 * self.cfg.fault_interval_ms);
        let at = self.now() + gap;
        self.schedule(at, Ev::Fault);
        Ok(())
    }

    /// Ends the faults: heal, restore delays and fsyncs, restart every server.
    pub(super) fn calm(&mut self) -> Result<(), Box<Failure>> {
        self.faulty = false;
        self.partitions.clear();
        self.max_delay_ms = 5;
        for k in 0..self.nodes.len() {
            self.nodes[k].fsync_ms = 1;
            if self.nodes[k].up.is_none() {
                self.boot(k)?;
            }
        }
        Ok(())
    }
}
