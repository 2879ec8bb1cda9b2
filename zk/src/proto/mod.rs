//! ZooKeeper 3.8's client wire protocol: constants (opcodes, special xids, permissions, event
//! types and states, watcher types, add-watch modes), the jute records ([`records`]), the typed
//! [`Request`] decoded from a request frame ([`request`]), the [`Response`] bodies and reply
//! encoding ([`response`]), and length-prefixed framing ([`frame`]).

pub mod frame;
pub mod records;
pub mod request;
pub mod response;

pub use frame::{FrameDecoder, FrameError, four_letter_word};
pub use records::*;
pub use request::{
    MultiOp, MultiReadOp, Request, RequestError, decode_connect_request, decode_request,
    encode_connect_request, encode_request,
};
pub use response::{
    MultiResult, Reply, Response, decode_connect_response, decode_reply, encode_connect_response,
    encode_notification, encode_reply,
};

/// `ZooDefs.OpCode`.
pub mod op {
    /// Server → client notification (never sent as an opcode; notifications use xid -1).
    pub const NOTIFICATION: i32 = 0;
    /// `create`.
    pub const CREATE: i32 = 1;
    /// `delete`.
    pub const DELETE: i32 = 2;
    /// `exists`.
    pub const EXISTS: i32 = 3;
    /// `getData`.
    pub const GET_DATA: i32 = 4;
    /// `setData`.
    pub const SET_DATA: i32 = 5;
    /// `getACL`.
    pub const GET_ACL: i32 = 6;
    /// `setACL`.
    pub const SET_ACL: i32 = 7;
    /// `getChildren`.
    pub const GET_CHILDREN: i32 = 8;
    /// `sync`.
    pub const SYNC: i32 = 9;
    /// `ping`.
    pub const PING: i32 = 11;
    /// `getChildren2`.
    pub const GET_CHILDREN2: i32 = 12;
    /// `check`.
    pub const CHECK: i32 = 13;
    /// `multi`.
    pub const MULTI: i32 = 14;
    /// `create2`.
    pub const CREATE2: i32 = 15;
    /// `reconfig`.
    pub const RECONFIG: i32 = 16;
    /// `checkWatches`.
    pub const CHECK_WATCHES: i32 = 17;
    /// `removeWatches`.
    pub const REMOVE_WATCHES: i32 = 18;
    /// `createContainer`.
    pub const CREATE_CONTAINER: i32 = 19;
    /// `deleteContainer`.
    pub const DELETE_CONTAINER: i32 = 20;
    /// `createTTL`.
    pub const CREATE_TTL: i32 = 21;
    /// `multiRead`.
    pub const MULTI_READ: i32 = 22;
    /// `auth`.
    pub const AUTH: i32 = 100;
    /// `setWatches`.
    pub const SET_WATCHES: i32 = 101;
    /// `sasl`.
    pub const SASL: i32 = 102;
    /// `getEphemerals`.
    pub const GET_EPHEMERALS: i32 = 103;
    /// `getAllChildrenNumber`.
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    /// `setWatches2`.
    pub const SET_WATCHES2: i32 = 105;
    /// `addWatch`.
    pub const ADD_WATCH: i32 = 106;
    /// `whoAmI`.
    pub const WHO_AM_I: i32 = 107;
    /// `createSession` (internal).
    pub const CREATE_SESSION: i32 = -10;
    /// `closeSession`.
    pub const CLOSE_SESSION: i32 = -11;
    /// `error` (txn type and multi error result).
    pub const ERROR: i32 = -1;

    /// Whether a request of this opcode is a write, i.e. goes through request preparation
    /// and the replicated log (a malformed one still becomes an error transaction, as in
    /// ZooKeeper's `PrepRequestProcessor`).
    #[must_use]
    pub fn is_write(op: i32) -> bool {
        matches!(
            op,
            CREATE
                | CREATE2
                | CREATE_CONTAINER
                | CREATE_TTL
                | DELETE
                | DELETE_CONTAINER
                | SET_DATA
                | SET_ACL
                | CHECK
                | MULTI
                | RECONFIG
                | CLOSE_SESSION
        )
    }
}

/// Special xids (`ClientCnxn`).
pub mod xid {
    /// Watch notifications.
    pub const NOTIFICATION: i32 = -1;
    /// Pings.
    pub const PING: i32 = -2;
    /// Auth packets.
    pub const AUTH: i32 = -4;
    /// SetWatches / SetWatches2.
    pub const SET_WATCHES: i32 = -8;
}

/// `ZooDefs.Perms`.
pub mod perms {
    /// Read data and list children.
    pub const READ: i32 = 1;
    /// Set data.
    pub const WRITE: i32 = 2;
    /// Create children.
    pub const CREATE: i32 = 4;
    /// Delete children.
    pub const DELETE: i32 = 8;
    /// Set ACLs.
    pub const ADMIN: i32 = 16;
    /// Everything.
    pub const ALL: i32 = READ | WRITE | CREATE | DELETE | ADMIN;
}

/// `Watcher.Event.EventType`.
pub mod event_type {
    /// No event (connection state changes).
    pub const NONE: i32 = -1;
    /// A watched node was created.
    pub const NODE_CREATED: i32 = 1;
    /// A watched node was deleted.
    pub const NODE_DELETED: i32 = 2;
    /// A watched node's data changed.
    pub const NODE_DATA_CHANGED: i32 = 3;
    /// A watched node's children changed.
    pub const NODE_CHILDREN_CHANGED: i32 = 4;
    /// Client-side only.
    pub const DATA_WATCH_REMOVED: i32 = 5;
    /// Client-side only.
    pub const CHILD_WATCH_REMOVED: i32 = 6;
    /// Client-side only.
    pub const PERSISTENT_WATCH_REMOVED: i32 = 7;
}

/// `Watcher.Event.KeeperState` (the `state` of a [`WatcherEvent`]).
pub mod keeper_state {
    /// The state of every server-sent notification.
    pub const SYNC_CONNECTED: i32 = 3;
    /// Disconnected.
    pub const DISCONNECTED: i32 = 0;
    /// Authentication failed.
    pub const AUTH_FAILED: i32 = 4;
    /// Connected to a read-only server.
    pub const CONNECTED_READ_ONLY: i32 = 5;
    /// Session expired.
    pub const EXPIRED: i32 = -112;
    /// Client closed.
    pub const CLOSED: i32 = 7;
}

/// `Watcher.WatcherType` (checkWatches / removeWatches).
pub mod watcher_type {
    /// Child watches.
    pub const CHILDREN: i32 = 1;
    /// Data (and exist) watches.
    pub const DATA: i32 = 2;
    /// Any watch.
    pub const ANY: i32 = 3;
    /// Persistent watches (ZooKeeper 3.9; 3.8 — and so zabd — answers it with -5).
    pub const PERSISTENT: i32 = 4;
    /// Persistent recursive watches (ZooKeeper 3.9; 3.8 — and so zabd — answers it with -5).
    pub const PERSISTENT_RECURSIVE: i32 = 5;
}

/// `ZooDefs.AddWatchModes`.
pub mod add_watch_mode {
    /// Persistent: data and child events on the path, not removed when triggered.
    pub const PERSISTENT: i32 = 0;
    /// Persistent recursive: data events on the path and every descendant.
    pub const PERSISTENT_RECURSIVE: i32 = 1;
}

/// `ZooDefs.Ids` as ACL lists.
pub mod ids {
    use super::{Acl, perms};

    /// `OPEN_ACL_UNSAFE`: `world:anyone` may do everything.
    #[must_use]
    pub fn open_acl_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, "world", "anyone")]
    }

    /// `CREATOR_ALL_ACL`: every permission for the creator's authenticated ids.
    #[must_use]
    pub fn creator_all_acl() -> Vec<Acl> {
        vec![Acl::new(perms::ALL, "auth", "")]
    }

    /// `READ_ACL_UNSAFE`: `world:anyone` may read.
    #[must_use]
    pub fn read_acl_unsafe() -> Vec<Acl> {
        vec![Acl::new(perms::READ, "world", "anyone")]
    }
}

#[cfg(test)]
mod tests;
