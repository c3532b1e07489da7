//! All integration tests of `points` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-points --test it <module>::`.

mod common;

mod cases;
mod examples;
mod invalid;
mod properties;
mod redeem_returns;
