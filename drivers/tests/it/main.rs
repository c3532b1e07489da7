//! All integration tests of `drivers` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-drivers --test it <module>::`.

mod evdev_device;
mod framing_properties;
/// pos-codes' independent Luhn check, shared rather than written out again.
#[path = "../../../codes/tests/it/luhn.rs"]
mod luhn;
mod serial_pty;
