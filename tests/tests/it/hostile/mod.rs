//! Issue 10's attacks on the real binaries, one file per attack family.

mod card_guard;
