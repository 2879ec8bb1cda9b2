//! `zab-spec`: the vocabulary shared by the model (`zab-model`) and the server (`zab-server`).
//!
//! This crate owns the names of things: the protocol's actions ([`action`]), server ids,
//! epochs and zxids ([`ids`]), the Zab 1.0 messages as ZooKeeper implements them
//! ([`message`]), transactions and the payload trait that lets the model use a tiny payload
//! and the server the real ZooKeeper transaction ([`txn`]), and the canonical ZNode/session
//! transaction vocabulary the ZNode invariants are written against ([`znode`]). The only behaviour here is the pure decision rules the model
//! and the server must share exactly ([`sync`]).
//!
//! The normative prose specification is `spec/PROTOCOL.md`; every protocol action and invariant
//! named in code is defined there.

#![warn(missing_docs)]

pub mod action;
pub mod bug;
pub mod ids;
pub mod message;
pub mod sync;
pub mod txn;
pub mod znode;

pub use action::{ActionKind, Arity};
pub use bug::Bug;
pub use ids::{Epoch, ServerId, Zxid};
pub use message::{QuorumMessage, ServerState, SyncMode, Vote, ZabState};
pub use txn::{Payload, Txn};
pub use znode::{CreateMode, ErrorCode, SessionId, ZnodeTxn};
