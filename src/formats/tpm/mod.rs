//! Trusted Platform Module evidence: the TCG event log a measured boot leaves ([`eventlog`]).
//!
//! Not a flash format: nothing here builds regions. The log is parsed on its own, for `fwscan eventlog`,
//! which replays it and binds its measurements to a dump's region tree (`crate::evidence`).
#![deny(clippy::arithmetic_side_effects)]

pub mod eventlog;
