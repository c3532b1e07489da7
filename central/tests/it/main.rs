//! All integration tests of `central` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-central --test it <module>::`.

mod admin;
mod api;
mod apply;
mod backend;
mod channel;
mod concurrent;
mod embedded;
mod exactly_once;
