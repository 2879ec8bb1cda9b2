//! `zab-model`: a Stateright model of Zab 1.0 as ZooKeeper implements it.
//!
//! The state ([`state::ModelState`]) mirrors the variables of `tla/Zab.tla` one to one, the
//! actions ([`action::Action`]) its actions, so that TLC and Stateright count the same states.
//! The model covers abstract leader election, discovery, synchronization (DIFF / TRUNC /
//! SNAP), broadcast with asynchronous logging, crashes that keep only durable state,
//! partitions, the ZNode tree and sessions each replica derives from what it delivered, and
//! switches that re-introduce ZooKeeper's known bugs ([`config::Bug`]).
//!
//! The invariants are defined once, in [`invariants`], and used by the model checker, the
//! simulation checkers and the refinement checker of `zab-refinement`; the latter two check
//! them incrementally along a path ([`invariants::Monitor`], tested equal to the whole-state
//! definitions on random walks).
//! `spec/PROTOCOL.md` is the normative description of every action and invariant.

pub mod action;
pub mod chart;
pub mod checker;
pub mod config;
pub mod instrument;
pub mod invariants;
pub mod next;
pub mod path_file;
pub mod state;
pub mod tracked;
pub mod workload;
pub mod znode;

pub use action::Action;
pub use config::{Bug, Config, InitKind, WorkloadKind};
pub use next::{NoRequests, RequestSource, ZabModel};
pub use state::ModelState;
