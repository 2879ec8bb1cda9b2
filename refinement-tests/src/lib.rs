//! `zab-refinement`: the real server checked against the model.
//!
//! | module | owns |
//! |---|---|
//! | [`refine`] | trace refinement: server trace records replayed through the model, invariants on every step |
//! | [`history`] | client histories: linearizability of writes, ZooKeeper's read guarantees |
//! | [`sim`] | deterministic simulation of whole ensembles of the real server code with faults from a seed |
//! | [`ndjson`] | reading the trace files `zabd --trace-file` writes |
//! | [`report`] | the HTML report of a failure, with the model's message sequence chart |

pub mod history;
pub mod ndjson;
pub mod refine;
pub mod report;
pub mod sim;
