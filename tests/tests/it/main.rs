//! All integration tests of `tests` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-tests --test it <module>::`.

mod central_admin;
mod central_service;
mod central_sync;
mod crash;
mod demo;
mod hostile;
mod intake_attacks;
mod layering;
mod load;
mod proxy;
mod scanners;
mod sync_e2e;
mod systemd_notify;
mod systemd_unit;
mod two_centrals;
