//! The ZNode and session vocabulary: [`ZnodeTxn`], [`CreateMode`], [`ErrorCode`], [`SessionId`]
//! and ZooKeeper's path rules.
//!
//! [`ZnodeTxn`] is the canonical form of a state-changing transaction, stripped of what the
//! ZNode invariants do not look at (data bytes, ACLs, times). The model uses it as its payload;
//! the server's full transactions convert to it.

use std::fmt;
use std::sync::Arc;

/// A client session id (ZooKeeper's 64-bit `sessionId`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub i64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 < 16 {
            write!(f, "session{}", self.0)
        } else {
            write!(f, "0x{:x}", self.0)
        }
    }
}

/// A ZNode path, shared cheaply between histories (`/a/b`).
pub type ZPath = Arc<str>;

/// A state-changing transaction in canonical form (what ZooKeeper's `TxnHeader.type` and the
/// txn record say, minus data, ACLs and times).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ZnodeTxn {
    /// A session was opened (`createSession`).
    CreateSession {
        /// The new session.
        session: SessionId,
    },
    /// A session was closed by its client or expired by the leader; its ephemeral nodes go
    /// with it (`closeSession`).
    CloseSession {
        /// The closed session.
        session: SessionId,
    },
    /// A node was created. `path` is final: a sequential create's suffix is already in it.
    Create {
        /// The full path of the new node.
        path: ZPath,
        /// The owning session of an ephemeral node.
        ephemeral_owner: Option<SessionId>,
        /// Whether the name carries a sequence suffix (the last 10 characters).
        sequential: bool,
    },
    /// A node was deleted.
    Delete {
        /// The deleted node.
        path: ZPath,
    },
    /// A node's data was replaced; `version` is the node's new data version.
    SetData {
        /// The changed node.
        path: ZPath,
        /// The new data version.
        version: i32,
    },
    /// A failed write, replicated so that every server answers the client the same way.
    Error {
        /// Why it failed.
        code: ErrorCode,
    },
    /// Several transactions applied atomically (`multi`).
    Multi(Vec<ZnodeTxn>),
}

impl fmt::Display for ZnodeTxn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZnodeTxn::CreateSession { session } => write!(f, "createSession({session})"),
            ZnodeTxn::CloseSession { session } => write!(f, "closeSession({session})"),
            ZnodeTxn::Create {
                path,
                ephemeral_owner,
                ..
            } => match ephemeral_owner {
                Some(s) => write!(f, "create({path}, ephemeral of {s})"),
                None => write!(f, "create({path})"),
            },
            ZnodeTxn::Delete { path } => write!(f, "delete({path})"),
            ZnodeTxn::SetData { path, version } => write!(f, "setData({path}, v{version})"),
            ZnodeTxn::Error { code } => write!(f, "error({code:?})"),
            ZnodeTxn::Multi(txns) => {
                write!(f, "multi(")?;
                for (k, t) in txns.iter().enumerate() {
                    if k > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{t}")?;
                }
                write!(f, ")")
            }
        }
    }
}

/// How a node is created (ZooKeeper `CreateMode`, with its wire flag values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CreateMode {
    /// Flag 0.
    Persistent,
    /// Flag 1: deleted with its session.
    Ephemeral,
    /// Flag 2: a 10-digit counter is appended to the name.
    PersistentSequential,
    /// Flag 3.
    EphemeralSequential,
    /// Flag 4: deleted by the leader once it had children and has none left.
    Container,
    /// Flag 5: deleted by the leader once childless and unmodified for its TTL.
    PersistentWithTtl,
    /// Flag 6.
    PersistentSequentialWithTtl,
}

impl CreateMode {
    /// Decodes ZooKeeper's create flag; anything else is `BadArguments`.
    pub fn from_flag(flag: i32) -> Result<CreateMode, ErrorCode> {
        Ok(match flag {
            0 => CreateMode::Persistent,
            1 => CreateMode::Ephemeral,
            2 => CreateMode::PersistentSequential,
            3 => CreateMode::EphemeralSequential,
            4 => CreateMode::Container,
            5 => CreateMode::PersistentWithTtl,
            6 => CreateMode::PersistentSequentialWithTtl,
            _ => return Err(ErrorCode::BadArguments),
        })
    }

    /// ZooKeeper's create flag.
    #[must_use]
    pub fn flag(self) -> i32 {
        self as i32
    }

    /// Whether the node dies with its session.
    #[must_use]
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            CreateMode::Ephemeral | CreateMode::EphemeralSequential
        )
    }

    /// Whether a sequence suffix is appended to the name.
    #[must_use]
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl
        )
    }

    /// Whether the node is a container.
    #[must_use]
    pub fn is_container(self) -> bool {
        self == CreateMode::Container
    }

    /// Whether the node has a time to live.
    #[must_use]
    pub fn is_ttl(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl
        )
    }
}

macro_rules! error_codes {
    ($($name:ident = $value:literal, $doc:literal;)*) => {
        /// ZooKeeper's error codes (`KeeperException.Code`), with their exact wire values.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum ErrorCode {
            $(#[doc = $doc] $name,)*
        }

        impl ErrorCode {
            /// The wire value.
            #[must_use]
            pub fn code(self) -> i32 {
                match self { $(ErrorCode::$name => $value,)* }
            }

            /// Decodes a wire value; `None` for values ZooKeeper does not define.
            #[must_use]
            pub fn from_code(code: i32) -> Option<ErrorCode> {
                match code { $($value => Some(ErrorCode::$name),)* _ => None }
            }
        }
    };
}

error_codes! {
    Ok = 0, "Success.";
    SystemError = -1, "A system or server-side error.";
    RuntimeInconsistency = -2, "A runtime inconsistency was found.";
    DataInconsistency = -3, "A data inconsistency was found.";
    ConnectionLoss = -4, "Connection to the server was lost.";
    MarshallingError = -5, "Error while marshalling or unmarshalling data.";
    Unimplemented = -6, "Operation is unimplemented.";
    OperationTimeout = -7, "Operation timeout.";
    BadArguments = -8, "Invalid arguments.";
    UnknownSession = -12, "Unknown session (internal server use only).";
    NewConfigNoQuorum = -13, "No quorum of the new config is connected.";
    ReconfigInProgress = -14, "Another reconfiguration is in progress.";
    ApiError = -100, "API error.";
    NoNode = -101, "Node does not exist.";
    NoAuth = -102, "Not authenticated.";
    BadVersion = -103, "Version conflict.";
    NoChildrenForEphemerals = -108, "Ephemeral nodes may not have children.";
    NodeExists = -110, "The node already exists.";
    NotEmpty = -111, "The node has children.";
    SessionExpired = -112, "The session has been expired by the server.";
    InvalidCallback = -113, "Invalid callback specified.";
    InvalidAcl = -114, "Invalid ACL specified.";
    AuthFailed = -115, "Client authentication failed.";
    SessionMoved = -118, "Session moved to another server.";
    NotReadOnly = -119, "State-changing request passed to a read-only server.";
    EphemeralOnLocalSession = -120, "Attempt to create an ephemeral node on a local session.";
    NoWatcher = -121, "Attempt to remove a watcher that does not exist.";
    RequestTimeout = -122, "Request not completed within the max allowed time.";
    ReconfigDisabled = -123, "Reconfiguration is disabled.";
    SessionClosedRequireSaslAuth = -124, "The session was closed because SASL is required.";
    QuotaExceeded = -125, "Exceeded the quota set on the path.";
    ThrottledOp = -127, "Operation was throttled.";
}

/// Checks a path the way ZooKeeper's `PathUtils.validatePath` does.
///
/// Characters outside the Basic Multilingual Plane are refused, as ZooKeeper refuses the
/// UTF-16 surrogate halves Java sees for them.
pub fn validate_path(path: &str) -> Result<(), ErrorCode> {
    let chars: Vec<char> = path.chars().collect();
    if chars.first() != Some(&'/') {
        return Err(ErrorCode::BadArguments);
    }
    if chars.len() == 1 {
        return Ok(());
    }
    if chars.last() == Some(&'/') {
        return Err(ErrorCode::BadArguments);
    }
    for i in 1..chars.len() {
        let c = chars[i];
        let last = chars[i - 1];
        let next_is_boundary = i + 1 == chars.len() || chars[i + 1] == '/';
        let bad = c == '\0'
            || (c == '/' && last == '/')
            || (c == '.' && last == '.' && i >= 2 && chars[i - 2] == '/' && next_is_boundary)
            || (c == '.' && last == '/' && next_is_boundary)
            || ('\u{1}'..='\u{1f}').contains(&c)
            || ('\u{7f}'..='\u{9f}').contains(&c)
            || ('\u{e000}'..='\u{f8ff}').contains(&c)
            || c >= '\u{fff0}';
        if bad {
            return Err(ErrorCode::BadArguments);
        }
    }
    Ok(())
}

/// The parent of a valid path (`None` for `/`).
#[must_use]
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(k) => Some(&path[..k]),
        None => None,
    }
}

/// The name a sequential create gets: the requested path and the parent's counter as ten
/// digits (Java's `String.format("%010d", counter)`, negative after 2^31 creations).
#[must_use]
pub fn sequential_name(requested: &str, counter: i32) -> String {
    format!("{requested}{counter:010}")
}

/// The counter encoded at the end of a sequential node's name, if any.
#[must_use]
pub fn sequence_suffix(path: &str) -> Option<i32> {
    let cut = path.len().checked_sub(10)?;
    if let Some(tail) = path.get(cut..) {
        if let Ok(v) = tail.parse::<i32>() {
            return Some(v);
        }
    }
    // Negative counters are eleven characters long.
    path.get(path.len().checked_sub(11)?..)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated_like_zookeeper() {
        for ok in [
            "/",
            "/a",
            "/a/b",
            "/a.b",
            "/a/.b",
            "/a/..b",
            "/zookeeper",
            "/ü",
        ] {
            assert_eq!(validate_path(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "a", "/a/", "//a", "/a//b", "/.", "/..", "/a/./b", "/a/../b", "/a\0b",
        ] {
            assert_eq!(validate_path(bad), Err(ErrorCode::BadArguments), "{bad:?}");
        }
        assert_eq!(validate_path("/a\u{1}"), Err(ErrorCode::BadArguments));
        assert_eq!(validate_path("/\u{1F600}"), Err(ErrorCode::BadArguments));
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
    }

    #[test]
    fn sequential_names_match_java_formatting() {
        assert_eq!(sequential_name("/q-", 3), "/q-0000000003");
        assert_eq!(sequential_name("/a/", -5), "/a/-000000005");
        assert_eq!(sequence_suffix("/q-0000000003"), Some(3));
        assert_eq!(
            sequence_suffix(&sequential_name("/x", i32::MIN)),
            Some(i32::MIN)
        );
        assert_eq!(sequence_suffix("/short"), None);
    }

    #[test]
    fn error_codes_round_trip() {
        for code in [0, -1, -8, -101, -110, -112, -127] {
            assert_eq!(ErrorCode::from_code(code).map(ErrorCode::code), Some(code));
        }
        assert_eq!(ErrorCode::from_code(-9), None);
        assert_eq!(ErrorCode::NoNode.code(), -101);
    }

    #[test]
    fn create_modes_round_trip() {
        for flag in 0..=6 {
            assert_eq!(CreateMode::from_flag(flag).map(CreateMode::flag), Ok(flag));
        }
        assert_eq!(CreateMode::from_flag(7), Err(ErrorCode::BadArguments));
        assert!(CreateMode::EphemeralSequential.is_ephemeral());
        assert!(CreateMode::EphemeralSequential.is_sequential());
    }
}
