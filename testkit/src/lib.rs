//! Test support for the whole workspace, in one place so that no test
//! carries its own copy of a harness or an oracle.
//!
//! - [`agent_proc`] / [`central_proc`]: real `pos-agent` / `pos-central`
//!   processes on temporary directories, with [`bins`] finding (and if need
//!   be building) the binaries; a harness takes the binary path, so the
//!   binary's own package can pass `CARGO_BIN_EXE_pos-agent`.
//! - [`bounded`]: one-shot commands with a time limit, so a hung CLI
//!   fails its test instead of stalling the run.
//! - [`pty`]: pseudo-terminal pairs standing in for serial scanners.
//! - [`check_digit`]: Luhn and GS1 check digits written out independently
//!   of `pos-codes`, so tests never trust the code they test.
//! - [`proxy`]: a fault-injecting TCP proxy for sync over a bad network.
//! - [`postgres`]: a real PostgreSQL server per test process, a fresh
//!   database per test.
//! - [`seed`]: every random choice of a test seeded, the seed printed.
//!
//! A dev-dependency only: no shipped crate depends on it, and it depends on
//! no crate of the workspace (any crate's tests may use it).

pub mod agent_proc;
pub mod balancer;
pub mod bins;
pub mod bounded;
pub mod central_proc;
pub mod check_digit;
pub mod postgres;
pub mod proxy;
pub mod pty;
pub mod seed;
