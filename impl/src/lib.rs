//! `zab-server`: the production Zab replica, `zabd`.
//!
//! `core` is the deterministic protocol core (no I/O); `storage` owns the durable state (log,
//! snapshots, epoch files); `wire` is the server-to-server format.
//!
//! Under `--cfg zab_loom` only the parts with loom checks build, with loom's primitives in the
//! log writer's hand-off: `RUSTFLAGS="--cfg zab_loom" cargo test -p zab-server --release --lib
//! loom`. (Our own cfg name: the common `--cfg loom` would also switch tokio and other
//! dependencies into their own loom modes.)

#[cfg(not(zab_loom))]
pub mod admin;
pub mod bounds;
pub mod config;
pub mod core;
#[cfg(not(zab_loom))]
pub mod http;
#[cfg(not(zab_loom))]
pub mod inspect;
#[cfg(not(zab_loom))]
pub mod latency;
#[cfg(not(zab_loom))]
pub mod metrics;
#[cfg(not(zab_loom))]
pub mod migrate;
#[cfg(not(zab_loom))]
pub mod net;
#[cfg(not(zab_loom))]
mod net_out;
#[cfg(not(zab_loom))]
pub mod quorum_tls;
#[cfg(not(zab_loom))]
pub mod runtime;
#[cfg(not(zab_loom))]
pub mod server;
#[cfg(not(zab_loom))]
pub mod service;
pub mod snap_stream;
pub mod storage;
pub mod tls;
pub mod wire;
