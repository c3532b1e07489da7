//! End-to-end tests (in `tests/it`): they run the real `pos-agent` and
//! `pos-central` binaries, never the libraries. Their harnesses live in
//! `pos-testkit`, shared with every other crate's tests; this library is
//! empty and only gives the package a target.
