//! The final checks of a run: the servers converge, their trees are identical, and the client
//! history is linearizable for writes and follows ZooKeeper's read guarantees.

use super::*;

impl Sim {
    /// Where the replicated trees of servers `a` and `b` differ, if they delivered the same
    /// transactions. `/zookeeper/config` is each server's own (ZooKeeper does not replicate it).
    pub(super) fn tree_difference(&self, a: usize, b: usize) -> Option<String> {
        let (ua, ub) = (self.nodes[a].up.as_ref()?, self.nodes[b].up.as_ref()?);
        let (za, zb) = (
            ua.replica.peer().log().committed(),
            ub.replica.peer().log().committed(),
        );
        if za != zb {
            return None;
        }
        let (ta, tb) = (ua.replica.app().tree(), ub.replica.app().tree());
        let view = |t: &DataTree| {
            let mut v: Vec<(String, String)> = t
                .iter()
                .filter(|(p, _)| *p != "/zookeeper/config")
                .map(|(p, n)| {
                    (
                        p.to_string(),
                        format!("{:?} {:?} {:?} {:?}", n.data, n.stat(), n.acl, n.children),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let (va, vb) = (view(ta), view(tb));
        if va == vb && ta.sessions() == tb.sessions() {
            return None;
        }
        let first = va.iter().zip(vb.iter()).find(|(x, y)| x != y).map_or_else(
            || {
                format!(
                    "{} nodes vs {} (sessions {:?} vs {:?})",
                    va.len(),
                    vb.len(),
                    ta.sessions(),
                    tb.sessions()
                )
            },
            |(x, y)| format!("{} = {}\n  vs {} = {}", x.0, x.1, y.0, y.1),
        );
        Some(format!(
            "s{} and s{} delivered up to {za} but their trees differ: {first}",
            a + 1,
            b + 1
        ))
    }

    pub(super) fn roles(&self) -> String {
        let r: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match &n.up {
                Some(u) => {
                    let s = u.replica.peer().summary();
                    format!(
                        "s{} {:?}/{:?} committed={}",
                        n.id.0, s.state, s.zab_state, s.committed
                    )
                }
                None => format!("s{} down", n.id.0),
            })
            .collect();
        r.join(", ")
    }

    /// Runs without clients until every server is in BROADCAST with the same delivered zxid.
    pub(super) fn converge(&mut self, until: u64) -> Result<(), Box<Failure>> {
        loop {
            let states: Vec<(ServerState, ZabState, Zxid)> = self
                .nodes
                .iter()
                .filter_map(|n| n.up.as_ref())
                .map(|u| {
                    let s = u.replica.peer().summary();
                    (s.state, s.zab_state, s.committed)
                })
                .collect();
            let leader_committed = states
                .iter()
                .find(|s| s.0 == ServerState::Leading)
                .map(|s| s.2);
            let converged = states.len() == self.nodes.len()
                && leader_committed.is_some()
                && states
                    .iter()
                    .all(|s| s.1 == ZabState::Broadcast && Some(s.2) == leader_committed);
            if converged {
                return Ok(());
            }
            if !self.advance(until)? {
                let roles = self.roles();
                return Err(self.fail(
                    "liveness",
                    format!("the servers did not converge without faults: {roles}"),
                ));
            }
        }
    }

    pub(super) fn final_checks(mut self) -> Result<Report, Box<Failure>> {
        // Identical trees at the same zxid.
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|k| self.nodes[*k].up.is_some())
            .collect();
        for w in up.windows(2) {
            if let Some(diff) = self.tree_difference(w[0], w[1]) {
                return Err(self.fail("replica agreement", diff));
            }
        }
        for c in &mut self.clients {
            c.abandon(&mut self.history);
        }
        history::check_linearizable(&self.history).map_err(|e| self.fail("linearizability", e))?;
        let keys = client::keys();
        let committed =
            KeyHistory::from_committed(&self.refiner.state().ghost.committed_log, &keys);
        history::check_reads(&self.history, &committed).map_err(|e| self.fail("reads", e))?;
        let mut report = std::mem::take(&mut self.report);
        report.records = self.traced;
        report.ops_completed = self.history.iter().filter(|o| o.returned.is_some()).count();
        report.ops_unknown = self.history.len() - report.ops_completed;
        report.actions = self.refiner.counts.clone();
        report.committed = self.refiner.state().ghost.committed_log.len();
        report.end_ms = self.now();
        let digest = sha1::Digest::finalize(self.hasher.clone());
        report.trace_digest = digest.iter().map(|b| format!("{b:02x}")).collect();
        Ok(report)
    }
}
