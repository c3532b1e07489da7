//! All integration tests of `drivers` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-drivers --test it <module>::`.

mod evdev_device;
mod framing_properties;
mod serial_pty;
