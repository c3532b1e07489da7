//! All integration tests of the `pos-agent` binary's package in one test
//! binary (`CARGO_BIN_EXE_pos-agent` exists only here): the command line as
//! a user runs it. Run one group with
//! `cargo test -p pos-agent-cli --test it <module>::`.

// The store tests' fixtures (bundle, snapshots, a store on a test clock),
// shared with the library's tests rather than copied.
#[path = "../../../agent/tests/it/store_common/mod.rs"]
mod store_common;

mod store_cli;
