//! All integration tests of `config` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-config --test it <module>::`.

mod common;

mod central_service;
mod devices;
mod examples;
mod sections;
mod shared_rules;
mod token;
mod validation;
