//! Transactions ([`Txn`]) and the [`Payload`] trait that makes them generic.
//!
//! The model instantiates transactions with [`ZnodeTxn`], the canonical ZNode/session
//! vocabulary; the server with its real ZooKeeper transaction, which converts to a `ZnodeTxn`
//! so that the same ZNode invariants apply to both.

use crate::ids::Zxid;
use crate::znode::ZnodeTxn;
use std::borrow::Cow;
use std::fmt;
use std::hash::Hash;

/// What a transaction carries: anything that can be compared, hashed, and seen as a ZNode
/// transaction by the ZNode and session invariants.
pub trait Payload:
    Clone + fmt::Debug + fmt::Display + Eq + Ord + Hash + Send + Sync + 'static
{
    /// The transaction in the canonical vocabulary the ZNode invariants are written against.
    fn znode_txn(&self) -> Cow<'_, ZnodeTxn>;
}

impl Payload for ZnodeTxn {
    fn znode_txn(&self) -> Cow<'_, ZnodeTxn> {
        Cow::Borrowed(self)
    }
}

/// A transaction in a Zab history: its zxid and its payload (TLA+ `[zxid, value]`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Txn<P> {
    /// Where the transaction sits in the total order.
    pub zxid: Zxid,
    /// What it does.
    pub payload: P,
}

impl<P: fmt::Display> fmt::Display for Txn<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.zxid, self.payload)
    }
}
