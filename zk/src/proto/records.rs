//! Every record of ZooKeeper 3.8's client protocol (`zookeeper.jute`, packages
//! `org.apache.zookeeper.data` and `org.apache.zookeeper.proto`), field for field, plus the
//! connect records with their trailing `readOnly` byte that is not in the jute file.

use crate::jute::{JuteError, Reader, Record, Writer};
use bytes::Bytes;

/// A field type of a jute record.
pub trait Field: Sized {
    /// Appends the field.
    fn put(&self, w: &mut Writer);
    /// Reads the field.
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError>;
}

impl Field for i32 {
    fn put(&self, w: &mut Writer) {
        w.write_i32(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_i32()
    }
}

impl Field for i64 {
    fn put(&self, w: &mut Writer) {
        w.write_i64(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_i64()
    }
}

impl Field for bool {
    fn put(&self, w: &mut Writer) {
        w.write_bool(*self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_bool()
    }
}

/// A `ustring` the server needs: null is a marshalling error.
impl Field for String {
    fn put(&self, w: &mut Writer) {
        w.write_str(self);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_string("ustring")
    }
}

/// A nullable `ustring`.
impl Field for Option<String> {
    fn put(&self, w: &mut Writer) {
        w.write_ustring(self.as_deref());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_ustring()
    }
}

/// A nullable `buffer` (znode data: null and empty are different to clients).
impl Field for Option<Bytes> {
    fn put(&self, w: &mut Writer) {
        w.write_buffer(self.as_deref());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        r.read_buffer()
    }
}

/// A `buffer` whose null reads as empty (passwords, auth data, SASL tokens).
impl Field for Bytes {
    fn put(&self, w: &mut Writer) {
        w.write_buffer(Some(self));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(r.read_buffer()?.unwrap_or_default())
    }
}

/// A `vector<T>` whose null reads as empty.
impl<T: Field> Field for Vec<T> {
    fn put(&self, w: &mut Writer) {
        w.write_vec(self, |w, x| x.put(w));
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(r.read_vec(T::get)?.unwrap_or_default())
    }
}

macro_rules! record {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        ///
        /// Fields are the jute fields, in order (Rust names in snake case).
        #[allow(missing_docs)]
        #[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty,)*
        }

        impl Record for $name {
            #[allow(unused_variables)]
            fn write(&self, w: &mut Writer) {
                $(Field::put(&self.$field, w);)*
            }
            #[allow(unused_variables)]
            fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
                Ok($name { $($field: Field::get(r)?,)* })
            }
        }

        impl Field for $name {
            fn put(&self, w: &mut Writer) {
                Record::write(self, w);
            }
            fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
                Record::read(r)
            }
        }
    };
}

// ---- org.apache.zookeeper.data ------------------------------------------------------------

/// `Id { ustring scheme; ustring id; }`. A null string reads as empty: kazoo writes the `id`
/// of its `CREATOR_ALL_ACL` (`auth`, `""`) as null, which ZooKeeper's jute reads as `null` and
/// `fixupACL` ignores for `auth`; elsewhere an empty id is an invalid ACL id.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id {
    /// The scheme (`world`, `auth`, `digest`, `ip`, `x509`, `super`).
    pub scheme: String,
    /// The id within the scheme.
    pub id: String,
}

impl Record for Id {
    fn write(&self, w: &mut Writer) {
        Field::put(&self.scheme, w);
        Field::put(&self.id, w);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(Id {
            scheme: r.read_ustring()?.unwrap_or_default(),
            id: r.read_ustring()?.unwrap_or_default(),
        })
    }
}

impl Field for Id {
    fn put(&self, w: &mut Writer) {
        Record::write(self, w);
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Record::read(r)
    }
}

impl Id {
    /// An id.
    #[must_use]
    pub fn new(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }
}

record! {
    /// `ACL { int perms; Id id; }`.
    Acl { perms: i32, id: Id }
}

impl Acl {
    /// An ACL entry.
    #[must_use]
    pub fn new(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id::new(scheme, id),
        }
    }
}

record! {
    /// `Stat`, as clients see it (68 bytes).
    Stat {
        /// zxid of the create.
        czxid: i64,
        /// zxid of the last setData (or the create).
        mzxid: i64,
        /// Create time, ms.
        ctime: i64,
        /// Last setData time, ms.
        mtime: i64,
        /// Data version.
        version: i32,
        /// Child version as clients see it (creations + deletions).
        cversion: i32,
        /// ACL version.
        aversion: i32,
        /// Owning session of an ephemeral, else 0 (also for containers and TTL nodes).
        ephemeral_owner: i64,
        /// Data length.
        data_length: i32,
        /// Number of children.
        num_children: i32,
        /// zxid of the last child create or delete.
        pzxid: i64,
    }
}

record! {
    /// `ClientInfo { ustring authScheme; ustring user; }` (whoAmI).
    ClientInfo { auth_scheme: String, user: String }
}

// ---- org.apache.zookeeper.proto: connect ---------------------------------------------------

/// `ConnectRequest` plus the trailing `readOnly` byte (absent from "old clients").
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectRequest {
    /// Always 0.
    pub protocol_version: i32,
    /// The last zxid the client saw.
    pub last_zxid_seen: i64,
    /// Requested session timeout, ms.
    pub timeout: i32,
    /// 0 for a new session, else the session to re-attach.
    pub session_id: i64,
    /// The session password (16 zero bytes for a new session).
    pub passwd: Bytes,
    /// The trailing `readOnly` byte; `None` when the client did not send it.
    pub read_only: Option<bool>,
}

impl Record for ConnectRequest {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i64(self.last_zxid_seen);
        w.write_i32(self.timeout);
        w.write_i64(self.session_id);
        self.passwd.put(w);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(ConnectRequest {
            protocol_version: r.read_i32()?,
            last_zxid_seen: r.read_i64()?,
            timeout: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: Bytes::get(r)?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
}

/// `ConnectResponse` plus the trailing `readOnly` byte (sent only to clients that sent one).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectResponse {
    /// Always 0 (the Rust client rejects anything else).
    pub protocol_version: i32,
    /// Negotiated timeout, ms; 0 for a refused (expired/invalid) session.
    pub timeout: i32,
    /// The session; 0 when refused.
    pub session_id: i64,
    /// The session password (16 bytes; zeros when refused).
    pub passwd: Bytes,
    /// The trailing `readOnly` byte; `None` for old clients.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    /// The response ZooKeeper sends for an expired or invalid session before closing:
    /// `(0, 0, 0, 16 zero bytes)` and `readOnly = false` if the client sent the byte.
    #[must_use]
    pub fn refused(client_sent_read_only: bool) -> ConnectResponse {
        ConnectResponse {
            protocol_version: 0,
            timeout: 0,
            session_id: 0,
            passwd: Bytes::from_static(&[0u8; 16]),
            read_only: client_sent_read_only.then_some(false),
        }
    }
}

impl Record for ConnectResponse {
    fn write(&self, w: &mut Writer) {
        w.write_i32(self.protocol_version);
        w.write_i32(self.timeout);
        w.write_i64(self.session_id);
        self.passwd.put(w);
        if let Some(ro) = self.read_only {
            w.write_bool(ro);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, JuteError> {
        Ok(ConnectResponse {
            protocol_version: r.read_i32()?,
            timeout: r.read_i32()?,
            session_id: r.read_i64()?,
            passwd: Bytes::get(r)?,
            read_only: if r.is_empty() {
                None
            } else {
                Some(r.read_bool()?)
            },
        })
    }
}

// ---- headers ---------------------------------------------------------------------------------

record! {
    /// `RequestHeader { int xid; int type; }`.
    RequestHeader { xid: i32, op: i32 }
}

record! {
    /// `ReplyHeader { int xid; long zxid; int err; }` (16 bytes).
    ReplyHeader { xid: i32, zxid: i64, err: i32 }
}

record! {
    /// `MultiHeader { int type; boolean done; int err; }`.
    MultiHeader { op: i32, done: bool, err: i32 }
}

record! {
    /// `AuthPacket { int type; ustring scheme; buffer auth; }`.
    AuthPacket { auth_type: i32, scheme: String, auth: Bytes }
}

record! {
    /// `SetWatches` (opcode 101, xid -8).
    SetWatches {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
    }
}

record! {
    /// `SetWatches2` (opcode 105, xid -8).
    SetWatches2 {
        relative_zxid: i64,
        data_watches: Vec<String>,
        exist_watches: Vec<String>,
        child_watches: Vec<String>,
        persistent_watches: Vec<String>,
        persistent_recursive_watches: Vec<String>,
    }
}

impl From<SetWatches> for SetWatches2 {
    fn from(s: SetWatches) -> SetWatches2 {
        SetWatches2 {
            relative_zxid: s.relative_zxid,
            data_watches: s.data_watches,
            exist_watches: s.exist_watches,
            child_watches: s.child_watches,
            persistent_watches: Vec::new(),
            persistent_recursive_watches: Vec::new(),
        }
    }
}

// ---- requests --------------------------------------------------------------------------------

record! {
    /// `GetDataRequest { ustring path; boolean watch; }`.
    GetDataRequest { path: String, watch: bool }
}

record! {
    /// `SetDataRequest { ustring path; buffer data; int version; }`.
    SetDataRequest { path: String, data: Option<Bytes>, version: i32 }
}

record! {
    /// `ReconfigRequest`.
    ReconfigRequest {
        joining_servers: Option<String>,
        leaving_servers: Option<String>,
        new_members: Option<String>,
        cur_config_id: i64,
    }
}

record! {
    /// `GetSASLRequest { buffer token; }`.
    GetSaslRequest { token: Bytes }
}

record! {
    /// `SetSASLResponse { buffer token; }`.
    SetSaslResponse { token: Bytes }
}

record! {
    /// `CreateRequest { ustring path; buffer data; vector<ACL> acl; int flags; }` (opcodes 1,
    /// 15, 19). A null ACL vector reads as empty (both are INVALIDACL).
    CreateRequest { path: String, data: Option<Bytes>, acl: Vec<Acl>, flags: i32 }
}

record! {
    /// `CreateTTLRequest { ...; int flags; long ttl; }` (opcode 21).
    CreateTtlRequest { path: String, data: Option<Bytes>, acl: Vec<Acl>, flags: i32, ttl: i64 }
}

record! {
    /// `DeleteRequest { ustring path; int version; }`.
    DeleteRequest { path: String, version: i32 }
}

record! {
    /// `GetChildrenRequest { ustring path; boolean watch; }`.
    GetChildrenRequest { path: String, watch: bool }
}

record! {
    /// `GetAllChildrenNumberRequest { ustring path; }`.
    GetAllChildrenNumberRequest { path: String }
}

record! {
    /// `GetChildren2Request { ustring path; boolean watch; }`.
    GetChildren2Request { path: String, watch: bool }
}

record! {
    /// `CheckVersionRequest { ustring path; int version; }`.
    CheckVersionRequest { path: String, version: i32 }
}

record! {
    /// `SyncRequest { ustring path; }`.
    SyncRequest { path: String }
}

record! {
    /// `SyncResponse { ustring path; }`.
    SyncResponse { path: String }
}

record! {
    /// `GetACLRequest { ustring path; }`.
    GetAclRequest { path: String }
}

record! {
    /// `SetACLRequest { ustring path; vector<ACL> acl; int version; }`.
    SetAclRequest { path: String, acl: Vec<Acl>, version: i32 }
}

record! {
    /// `AddWatchRequest { ustring path; int mode; }`.
    AddWatchRequest { path: String, mode: i32 }
}

record! {
    /// `ExistsRequest { ustring path; boolean watch; }`.
    ExistsRequest { path: String, watch: bool }
}

record! {
    /// `CheckWatchesRequest { ustring path; int type; }`.
    CheckWatchesRequest { path: String, watcher_type: i32 }
}

record! {
    /// `RemoveWatchesRequest { ustring path; int type; }`.
    RemoveWatchesRequest { path: String, watcher_type: i32 }
}

record! {
    /// `GetEphemeralsRequest { ustring prefixPath; }` (null = all).
    GetEphemeralsRequest { prefix_path: Option<String> }
}

// ---- responses -------------------------------------------------------------------------------

record! {
    /// `WatcherEvent { int type; int state; ustring path; }`.
    WatcherEvent { event_type: i32, state: i32, path: String }
}

record! {
    /// `ErrorResponse { int err; }` (also the body of an addWatch reply).
    ErrorResponse { err: i32 }
}

record! {
    /// `CreateResponse { ustring path; }`.
    CreateResponse { path: String }
}

record! {
    /// `Create2Response { ustring path; Stat stat; }`.
    Create2Response { path: String, stat: Stat }
}

record! {
    /// `ExistsResponse { Stat stat; }`.
    ExistsResponse { stat: Stat }
}

record! {
    /// `SetDataResponse { Stat stat; }`.
    SetDataResponse { stat: Stat }
}

record! {
    /// `SetACLResponse { Stat stat; }`.
    SetAclResponse { stat: Stat }
}

record! {
    /// `GetDataResponse { buffer data; Stat stat; }`.
    GetDataResponse { data: Option<Bytes>, stat: Stat }
}

record! {
    /// `GetChildrenResponse { vector<ustring> children; }`.
    GetChildrenResponse { children: Vec<String> }
}

record! {
    /// `GetAllChildrenNumberResponse { int totalNumber; }`.
    GetAllChildrenNumberResponse { total_number: i32 }
}

record! {
    /// `GetChildren2Response { vector<ustring> children; Stat stat; }`.
    GetChildren2Response { children: Vec<String>, stat: Stat }
}

record! {
    /// `GetACLResponse { vector<ACL> acl; Stat stat; }`.
    GetAclResponse { acl: Vec<Acl>, stat: Stat }
}

record! {
    /// `GetEphemeralsResponse { vector<ustring> ephemerals; }`.
    GetEphemeralsResponse { ephemerals: Vec<String> }
}

record! {
    /// `WhoAmIResponse { vector<ClientInfo> clientInfo; }`.
    WhoAmIResponse { client_info: Vec<ClientInfo> }
}
