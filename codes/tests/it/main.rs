//! All integration tests of `codes` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-codes --test it <module>::`.

mod properties;
