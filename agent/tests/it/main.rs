//! All integration tests of `agent` in one binary: one link instead of
//! one per file, which keeps a test build small on disk and quick to link.
//! Run one group with `cargo test -p pos-agent --test it <module>::`.

mod common;
mod store_common;
mod store_documents;

mod api_daemon;
mod api_errors;
mod api_inprocess;
mod api_quote;
mod api_sales;
mod devices_inprocess;
mod store_full_disk;
mod store_ledger;
mod store_open;
mod store_returns;
mod store_sales;
mod store_signed_rules;
