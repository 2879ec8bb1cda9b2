//! `zab-server`: the production Zab replica, `zabd`.
//!
//! `core` is the deterministic protocol core (no I/O); `storage` owns the durable state (log,
//! snapshots, epoch files); `wire` is the server-to-server format.

pub mod config;
pub mod core;
pub mod metrics;
pub mod net;
pub mod runtime;
pub mod server;
pub mod service;
pub mod storage;
pub mod wire;
