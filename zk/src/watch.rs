//! The watch manager: one-shot data/exist and child watches, persistent and
//! persistent-recursive watches (`addWatch`), which notifications each committed change
//! triggers for which session, `checkWatches`/`removeWatches`, `setWatches`/`setWatches2` on
//! reconnect, and dropping a session's watches.
//!
//! Like ZooKeeper's `DataTree` it keeps two tables, data watches and child watches. As in
//! ZooKeeper 3.8, `addWatch` puts a watch of either mode in both tables (so checkWatches /
//! removeWatches of type Children or Data see it); a persistent-recursive watch never fires
//! NodeChildrenChanged, from either table. Per (session, path) a table keeps a set of modes, as
//! ZooKeeper 3.9 does (ZOOKEEPER-4466): a one-shot watch added on a path with a persistent
//! watch does not replace it (3.8 overwrote the mode — a bug).
//!
//! Triggers (`DataTree.createNode/deleteNode/setData`):
//! - create P: data table NodeCreated on P; child table NodeChildrenChanged on parent(P);
//! - delete P: data table NodeDeleted on P; child table NodeDeleted on P (minus the sessions
//!   already notified); child table NodeChildrenChanged on parent(P);
//! - setData P: data table NodeDataChanged on P.
//!
//! At the triggering path every watch fires and one-shot ones are removed; at its ancestors
//! only persistent-recursive watches fire. A session gets one event per trigger even if it
//! holds several watches that match.

use crate::proto::watcher_type;
use crate::proto::{SetWatches2, WatcherEvent, add_watch_mode, event_type, keeper_state};
use crate::tree::{DataTree, Trigger, split_path};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use zab_spec::{ErrorCode, SessionId};

const STANDARD: u8 = 1;
const PERSISTENT: u8 = 2;
const RECURSIVE: u8 = 4;

/// A notification for one session.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Whom to send it to.
    pub session: SessionId,
    /// What to send (state is always SyncConnected).
    pub event: WatcherEvent,
}

/// A watch a read asks to register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WatchRegistration {
    /// `getData` / `exists` with `watch = true` (exists also on a missing node).
    Data(String),
    /// `getChildren` / `getChildren2` with `watch = true`.
    Child(String),
}

#[derive(Clone, Debug, Default)]
struct Table {
    by_path: HashMap<String, BTreeMap<SessionId, u8>>,
    by_session: HashMap<SessionId, BTreeSet<String>>,
    recursive: usize,
}

impl Table {
    fn add(&mut self, path: &str, session: SessionId, mode: u8) {
        let bits = self
            .by_path
            .entry(path.to_owned())
            .or_default()
            .entry(session)
            .or_insert(0);
        if mode & RECURSIVE != 0 && *bits & RECURSIVE == 0 {
            self.recursive += 1;
        }
        *bits |= mode;
        self.by_session
            .entry(session)
            .or_default()
            .insert(path.to_owned());
    }

    /// Clears `mask` bits of (session, path); whether any was set.
    fn remove(&mut self, path: &str, session: SessionId, mask: u8) -> bool {
        let Some(ws) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(bits) = ws.get_mut(&session) else {
            return false;
        };
        let had = *bits & mask != 0;
        if *bits & mask & RECURSIVE != 0 {
            self.recursive = self.recursive.saturating_sub(1);
        }
        *bits &= !mask;
        if *bits == 0 {
            ws.remove(&session);
            if ws.is_empty() {
                self.by_path.remove(path);
            }
            if let Some(paths) = self.by_session.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_session.remove(&session);
                }
            }
        }
        had
    }

    /// The sessions a trigger on `path` notifies; removes their one-shot watches on `path`.
    /// For NodeChildrenChanged (`children_changed`) persistent-recursive watches do not fire
    /// (ZooKeeper's `WatchManager.triggerWatch`).
    fn trigger(&mut self, path: &str, children_changed: bool) -> BTreeSet<SessionId> {
        let mut fired = BTreeSet::new();
        if let Some(ws) = self.by_path.get(path) {
            let sessions: Vec<(SessionId, u8)> = ws.iter().map(|(s, b)| (*s, *b)).collect();
            for (s, bits) in sessions {
                if children_changed && bits & (STANDARD | PERSISTENT) == 0 {
                    continue;
                }
                fired.insert(s);
                self.remove(path, s, STANDARD);
            }
        }
        if self.recursive > 0 && !children_changed {
            let mut p = path;
            while let Some((parent, _)) = split_path(p) {
                if parent == p {
                    break;
                }
                if let Some(ws) = self.by_path.get(parent) {
                    for (s, bits) in ws {
                        if bits & RECURSIVE != 0 {
                            fired.insert(*s);
                        }
                    }
                }
                p = parent;
            }
        }
        fired
    }

    fn drop_session(&mut self, session: SessionId) {
        if let Some(paths) = self.by_session.remove(&session) {
            for p in paths {
                if let Some(ws) = self.by_path.get_mut(&p) {
                    if let Some(bits) = ws.remove(&session) {
                        if bits & RECURSIVE != 0 {
                            self.recursive = self.recursive.saturating_sub(1);
                        }
                    }
                    if ws.is_empty() {
                        self.by_path.remove(&p);
                    }
                }
            }
        }
    }

    fn count(&self) -> usize {
        self.by_path.values().map(BTreeMap::len).sum()
    }
}

/// All watches of one server (watches are local to the server a client is connected to).
#[derive(Clone, Debug, Default)]
pub struct WatchManager {
    data: Table,
    child: Table,
}

fn event(session: SessionId, kind: i32, path: &str) -> Notification {
    Notification {
        session,
        event: WatcherEvent {
            event_type: kind,
            state: keeper_state::SYNC_CONNECTED,
            path: path.to_owned(),
        },
    }
}

impl WatchManager {
    /// No watches.
    #[must_use]
    pub fn new() -> WatchManager {
        WatchManager::default()
    }

    /// A one-shot data watch (`getData`/`exists` with `watch`).
    pub fn add_data_watch(&mut self, session: SessionId, path: &str) {
        self.data.add(path, session, STANDARD);
    }

    /// A one-shot child watch (`getChildren`/`getChildren2` with `watch`).
    pub fn add_child_watch(&mut self, session: SessionId, path: &str) {
        self.child.add(path, session, STANDARD);
    }

    /// Registers what a read asked for.
    pub fn register(&mut self, session: SessionId, reg: &WatchRegistration) {
        match reg {
            WatchRegistration::Data(p) => self.add_data_watch(session, p),
            WatchRegistration::Child(p) => self.add_child_watch(session, p),
        }
    }

    /// `addWatch` (opcode 106): mode 0 persistent, 1 persistent-recursive; any other mode is
    /// a marshalling error (ZooKeeper's `IllegalArgumentException`). The node need not exist.
    pub fn add_watch(
        &mut self,
        session: SessionId,
        path: &str,
        mode: i32,
    ) -> Result<(), ErrorCode> {
        match mode {
            add_watch_mode::PERSISTENT => {
                self.data.add(path, session, PERSISTENT);
                self.child.add(path, session, PERSISTENT);
            }
            add_watch_mode::PERSISTENT_RECURSIVE => {
                self.data.add(path, session, RECURSIVE);
                self.child.add(path, session, RECURSIVE);
            }
            _ => return Err(ErrorCode::MarshallingError),
        }
        Ok(())
    }

    /// The notifications one change triggers, in ZooKeeper's order (data table first, then
    /// child table; sessions in id order within a table).
    pub fn trigger(&mut self, trigger: &Trigger) -> Vec<Notification> {
        let mut out = Vec::new();
        match trigger {
            Trigger::Created(path) => {
                for s in self.data.trigger(path, false) {
                    out.push(event(s, event_type::NODE_CREATED, path));
                }
                if let Some((parent, _)) = split_path(path) {
                    for s in self.child.trigger(parent, true) {
                        out.push(event(s, event_type::NODE_CHILDREN_CHANGED, parent));
                    }
                }
            }
            Trigger::Deleted(path) => {
                let processed = self.data.trigger(path, false);
                for s in &processed {
                    out.push(event(*s, event_type::NODE_DELETED, path));
                }
                for s in self.child.trigger(path, false) {
                    if !processed.contains(&s) {
                        out.push(event(s, event_type::NODE_DELETED, path));
                    }
                }
                if let Some((parent, _)) = split_path(path) {
                    for s in self.child.trigger(parent, true) {
                        out.push(event(s, event_type::NODE_CHILDREN_CHANGED, parent));
                    }
                }
            }
            Trigger::DataChanged(path) => {
                for s in self.data.trigger(path, false) {
                    out.push(event(s, event_type::NODE_DATA_CHANGED, path));
                }
            }
        }
        out
    }

    /// The notifications of several changes (an applied transaction's triggers), in order.
    pub fn trigger_all(&mut self, triggers: &[Trigger]) -> Vec<Notification> {
        triggers.iter().flat_map(|t| self.trigger(t)).collect()
    }

    fn type_masks(watcher_type: i32) -> Result<(u8, u8), ErrorCode> {
        // (data table mask, child table mask). ZooKeeper 3.8 knows types 1-3 only
        // (`WatcherType.fromInt`); 4 and 5 came with 3.9 and are a marshalling error here too.
        const ALL: u8 = STANDARD | PERSISTENT | RECURSIVE;
        Ok(match watcher_type {
            watcher_type::CHILDREN => (0, ALL),
            watcher_type::DATA => (ALL, 0),
            watcher_type::ANY => (ALL, ALL),
            _ => return Err(ErrorCode::MarshallingError),
        })
    }

    /// `checkWatches` (17): `Ok` if the table(s) of that type hold a watch on `path`, else
    /// `NoWatcher`; an unknown type is a marshalling error.
    ///
    /// Like ZooKeeper 3.8 (`WatchManager.containsWatcher` returns true when *any* watcher
    /// watches the path; verified: a session is told it watches a path another session
    /// watches), the watch need not be `session`'s own. removeWatches does check the owner.
    pub fn check_watches(
        &self,
        session: SessionId,
        path: &str,
        watcher_type: i32,
    ) -> Result<(), ErrorCode> {
        let _ = session;
        let (d, c) = Self::type_masks(watcher_type)?;
        let any = |t: &Table, mask: u8| {
            mask != 0
                && t.by_path
                    .get(path)
                    .is_some_and(|ws| ws.values().any(|b| b & mask != 0))
        };
        if any(&self.data, d) || any(&self.child, c) {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// `removeWatches` (18): removes the session's watches of that type on `path`; `NoWatcher`
    /// if there was none. No event is sent (clients synthesize the *WatchRemoved events).
    pub fn remove_watches(
        &mut self,
        session: SessionId,
        path: &str,
        watcher_type: i32,
    ) -> Result<(), ErrorCode> {
        let (d, c) = Self::type_masks(watcher_type)?;
        let removed_c = c != 0 && self.child.remove(path, session, c);
        let removed_d = d != 0 && self.data.remove(path, session, d);
        if removed_c || removed_d {
            Ok(())
        } else {
            Err(ErrorCode::NoWatcher)
        }
    }

    /// `setWatches`/`setWatches2` on reconnect (`DataTree.setWatches`), given the client's last
    /// zxid: a data watch on a missing node fires NodeDeleted, on a node modified after
    /// `relative_zxid` NodeDataChanged, else is re-registered; an exist watch on an existing
    /// node fires NodeCreated, else is re-registered; a child watch on a missing node fires
    /// NodeDeleted, on a node whose pzxid is after `relative_zxid` NodeChildrenChanged, else
    /// is re-registered; persistent watches are re-added. Returns the events to send now.
    pub fn set_watches(
        &mut self,
        tree: &DataTree,
        session: SessionId,
        w: &SetWatches2,
    ) -> Vec<Notification> {
        let rel = w.relative_zxid;
        let mut out = Vec::new();
        for p in &w.data_watches {
            match tree.get(p) {
                None => out.push(event(session, event_type::NODE_DELETED, p)),
                Some(n) if n.stat.mzxid > rel => {
                    out.push(event(session, event_type::NODE_DATA_CHANGED, p));
                }
                Some(_) => self.add_data_watch(session, p),
            }
        }
        for p in &w.exist_watches {
            if tree.contains(p) {
                out.push(event(session, event_type::NODE_CREATED, p));
            } else {
                self.add_data_watch(session, p);
            }
        }
        for p in &w.child_watches {
            match tree.get(p) {
                None => out.push(event(session, event_type::NODE_DELETED, p)),
                Some(n) if n.stat.pzxid > rel => {
                    out.push(event(session, event_type::NODE_CHILDREN_CHANGED, p));
                }
                Some(_) => self.add_child_watch(session, p),
            }
        }
        for p in &w.persistent_watches {
            let _ = self.add_watch(session, p, add_watch_mode::PERSISTENT);
        }
        for p in &w.persistent_recursive_watches {
            let _ = self.add_watch(session, p, add_watch_mode::PERSISTENT_RECURSIVE);
        }
        out
    }

    /// Forgets every watch of a session (connection closed, session closed or expired).
    pub fn drop_session(&mut self, session: SessionId) {
        self.data.drop_session(session);
        self.child.drop_session(session);
    }

    /// Number of (session, path) watch entries over both tables (`wchs` "Total watches").
    #[must_use]
    pub fn watch_count(&self) -> usize {
        self.data.count() + self.child.count()
    }

    /// Number of watched paths.
    #[must_use]
    pub fn path_count(&self) -> usize {
        let mut paths: BTreeSet<&String> = self.data.by_path.keys().collect();
        paths.extend(self.child.by_path.keys());
        paths.len()
    }

    /// The paths a session watches (`wchc`).
    #[must_use]
    pub fn paths_of(&self, session: SessionId) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for t in [&self.data, &self.child] {
            if let Some(p) = t.by_session.get(&session) {
                out.extend(p.iter().cloned());
            }
        }
        out
    }

    /// Sessions that hold at least one watch.
    #[must_use]
    pub fn sessions(&self) -> BTreeSet<SessionId> {
        self.data
            .by_session
            .keys()
            .chain(self.child.by_session.keys())
            .copied()
            .collect()
    }
}

#[cfg(test)]
mod tests;
