//! `zab-zk`: ZooKeeper's data model and client wire protocol, without I/O.
//!
//! | module | owns |
//! |---|---|
//! | [`jute`] | the jute binary encoding (reader, writer, `jute.maxbuffer`) |
//! | [`proto`] | every client-protocol record, opcodes and constants, typed requests, replies, framing |
//! | [`txn`] | the replicated transaction (Zab payload), its binary encoding, its canonical view |
//! | [`tree`] | the DataTree: nodes, stats, ephemerals, containers/TTL, sessions, apply, snapshots |
//! | [`prep`] | write request → transaction against the speculative (outstanding) view |
//! | [`acl`] | ACL checks and fix-up (`world`, `auth`, `digest`, `ip`, `x509`, super) |
//! | [`auth`] | per-connection auth ids, digest and x509 auth, super users, whoAmI |
//! | [`client`] | a minimal blocking client for tests, benchmarks and trace harnesses |
//! | [`read`] | read operations with ACL checks and watch registration |
//! | [`reply`] | client replies for applied writes |
//! | [`session`] | handshake helpers: timeout negotiation, session ids, passwords |
//! | [`x509`] | certificate subjects as Java's RFC 2253 names (`x509` ids), DN validity |
//! | [`watch`] | the watch manager: one-shot, persistent and recursive watches, triggers, SetWatches |
//!
//! How a server uses it:
//!
//! 1. **Frames**: [`proto::FrameDecoder`] splits the byte stream (refusing negative or
//!    oversized lengths; check [`proto::four_letter_word`] on a fresh connection first). The
//!    first frame is a [`proto::ConnectRequest`] ([`proto::decode_connect_request`]; answer
//!    with [`proto::encode_connect_response`], see [`session`]); later frames go through
//!    [`proto::decode_request`], which gives the header and the typed [`proto::Request`] or
//!    a [`proto::RequestError`] (answer `-6` with zxid -1, or `-5`; a malformed *write* still
//!    becomes [`prep::Preparer::error_txn`]).
//! 2. **Writes** (leader): [`prep::Preparer::prep`] turns a write request into a
//!    [`txn::Txn`] with the zxid it will carry (failures become error transactions);
//!    [`prep::Preparer::create_session`] for new sessions; `Request::CloseSession` for
//!    closes and expiry; `Request::DeleteContainer` (session 0) for each path of
//!    [`tree::DataTree::expired_containers`]. Replicate with [`txn::Txn::encode`] /
//!    [`txn::Txn::decode`]; Zab sees it as a [`zab_spec::Payload`].
//! 3. **Commit** (every server, in zxid order): [`tree::DataTree::apply`] returns the
//!    [`tree::TxnResult`] and the [`tree::Trigger`]s; the leader then calls
//!    [`prep::Preparer::committed`]. Send the notifications of
//!    [`watch::WatchManager::trigger_all`] ([`proto::encode_notification`]) before the reply
//!    [`reply::write_reply`] (`ReplyHeader { xid, zxid: txn zxid, err }`,
//!    [`proto::encode_reply`]).
//! 4. **Reads** (any server): [`read::serve_and_watch`]; watch management requests go to
//!    [`watch::WatchManager`] (`add_watch`, `check_watches`, `remove_watches`,
//!    `set_watches`); auth packets and whoAmI to [`auth::AuthInfo`].
//! 5. **Snapshots**: [`tree::DataTree::snapshot`] / [`tree::DataTree::from_snapshot`].
//!
//! ```
//! use zab_spec::{SessionId, Zxid};
//! use zab_zk::proto::{self, CreateRequest, Request, ids};
//! use zab_zk::{DataTree, PrepConfig, PrepContext, Preparer, WatchManager, reply};
//!
//! let (mut tree, mut prep, mut watches) =
//!     (DataTree::new(), Preparer::new(PrepConfig::default()), WatchManager::new());
//! let session = SessionId(0x0100_0000_0000_0001);
//! let z1 = Zxid::new(1, 1);
//! let t = prep.create_session(session, (30_000, [0; 16]), 0, z1);
//! tree.apply(&t, z1);
//! prep.committed(z1);
//!
//! // A client frame: create2 /a.
//! let req = Request::Create2(CreateRequest {
//!     path: "/a".into(), data: None, acl: ids::open_acl_unsafe(), flags: 0,
//! });
//! let frame = proto::encode_request(7, &req);
//! let (header, body) = proto::decode_request(&frame[4..], 0xfffff).unwrap();
//! let auth = [proto::Id::new("ip", "127.0.0.1")];
//! let ctx = PrepContext { session, cxid: header.xid, time: 5, auth: &auth, session_moved: false };
//! let z2 = Zxid::new(1, 2);
//! let txn = prep.prep(&tree, &ctx, z2, &body.unwrap()).unwrap();
//! let bytes = txn.encode(); // replicate...
//! let out = tree.apply(&zab_zk::Txn::decode(&bytes).unwrap(), z2);
//! prep.committed(z2);
//! let events = watches.trigger_all(&out.triggers);
//! let (err, resp) = reply::write_reply(&out.result);
//! let reply = proto::encode_reply(
//!     &proto::ReplyHeader { xid: header.xid, zxid: z2.to_u64() as i64, err: err.code() },
//!     resp.as_ref(),
//! );
//! assert!(events.is_empty());
//! assert_eq!(reply.len(), 4 + 16 + 4 + 2 + 68);
//! ```

#![warn(missing_docs)]

pub mod acl;
pub mod auth;
pub mod client;
pub mod jute;
pub mod prep;
pub mod proto;
pub mod read;
pub mod reply;
pub mod session;
pub mod tree;
pub mod txn;
pub mod watch;
pub mod x509;

#[cfg(test)]
mod testkit;

pub use prep::{PrepConfig, PrepContext, Preparer};
pub use tree::{ApplyOutcome, DataTree, Trigger, TriggerAcl, TxnResult};
pub use txn::{Txn, TxnBody, TxnHeader};
pub use watch::{Notification, WatchManager};
