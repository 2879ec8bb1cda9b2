//! Client replies for applied write transactions (`FinalRequestProcessor`): the reply error
//! code and body from a [`TxnResult`].
//!
//! An error transaction is `(code, no body)`; a multi is always `(Ok, results)`, its failures
//! being per-op error results; a create is answered with the path only (`create`, and a
//! multi's create/create2) or path and stat (`create2`, `createContainer`, `createTTL`).
//! delete, check, createSession and closeSession have no body.

use crate::proto::{
    Create2Response, CreateResponse, MultiResult, Response, SetAclResponse, SetDataResponse,
};
use crate::tree::TxnResult;
use zab_spec::ErrorCode;

/// The reply `(err, body)` for an applied write.
#[must_use]
pub fn write_reply(result: &TxnResult) -> (ErrorCode, Option<Response>) {
    match result {
        TxnResult::SessionCreated
        | TxnResult::SessionClosed
        | TxnResult::Deleted { .. }
        | TxnResult::Checked { .. } => (ErrorCode::Ok, None),
        TxnResult::Created {
            path,
            stat,
            with_stat,
        } => (
            ErrorCode::Ok,
            Some(if *with_stat {
                Response::Create2(Create2Response {
                    path: path.clone(),
                    stat: stat.clone(),
                })
            } else {
                Response::Create(CreateResponse { path: path.clone() })
            }),
        ),
        TxnResult::DataSet { stat, .. } => (
            ErrorCode::Ok,
            Some(Response::SetData(SetDataResponse { stat: stat.clone() })),
        ),
        TxnResult::AclSet { stat, .. } => (
            ErrorCode::Ok,
            Some(Response::SetAcl(SetAclResponse { stat: stat.clone() })),
        ),
        TxnResult::Multi(results) => (
            ErrorCode::Ok,
            Some(Response::Multi(results.iter().map(multi_result).collect())),
        ),
        TxnResult::Error(code) => (*code, None),
    }
}

fn multi_result(r: &TxnResult) -> MultiResult {
    match r {
        TxnResult::Created {
            path,
            stat,
            with_stat,
        } => {
            if *with_stat {
                MultiResult::Create2 {
                    path: path.clone(),
                    stat: stat.clone(),
                }
            } else {
                MultiResult::Create { path: path.clone() }
            }
        }
        TxnResult::Deleted { .. } => MultiResult::Delete,
        TxnResult::DataSet { stat, .. } => MultiResult::SetData { stat: stat.clone() },
        TxnResult::Checked { .. } => MultiResult::Check,
        TxnResult::Error(code) => MultiResult::Error { err: code.code() },
        // Not valid inside a multi ("Invalid type of op").
        TxnResult::AclSet { .. }
        | TxnResult::Multi(_)
        | TxnResult::SessionCreated
        | TxnResult::SessionClosed => MultiResult::Error {
            err: ErrorCode::MarshallingError.code(),
        },
    }
}
