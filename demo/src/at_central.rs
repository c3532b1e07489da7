//! What central holds, read from its storage for the story and the
//! summary (as `GET /v1/admin/...` would show it).
//!
//! The storage trait is blocking (SQLite). These are small reads on a
//! central serving two registers, so they run on the caller's task rather
//! than through `spawn_blocking`: a few milliseconds of a worker thread.

use pos_central::storage::{Conflict, LISTING_ROWS_MAX, LedgerFilter, StoredEntry};

use crate::DemoError;
use crate::data::{OVERDRAWN_MEMBER, PROGRAM};
use crate::world::World;

pub fn central_entry_count(world: &World) -> Result<usize, DemoError> {
    let mut count = 0;
    for register in &world.registers {
        count += central_ledger(world, &register.id)?.len();
    }
    Ok(count)
}

fn central_program(
    world: &World,
    member: &str,
) -> Result<pos_sync::protocol::ProgramBalance, DemoError> {
    let (_, programs) = world
        .central()?
        .storage()
        .member_balances(member, jiff::Timestamp::now())?
        .ok_or_else(|| DemoError::Script(format!("central does not know {member}")))?;
    programs
        .into_iter()
        .find(|p| p.program == PROGRAM)
        .ok_or_else(|| DemoError::Script(format!("{member} has no {PROGRAM} balance at central")))
}

pub fn central_balance(world: &World, member: &str) -> Result<i64, DemoError> {
    Ok(central_program(world, member)?.balance)
}

pub fn central_available(world: &World, member: &str) -> Result<i64, DemoError> {
    Ok(central_program(world, member)?.available)
}

pub fn overdrafts_at_central(world: &World) -> Result<Vec<Conflict>, DemoError> {
    Ok(world
        .central()?
        .storage()
        .conflicts(LISTING_ROWS_MAX)?
        .into_iter()
        .filter(|c| c.kind == "overdraft" && c.member.as_deref() == Some(OVERDRAWN_MEMBER))
        .collect())
}

/// Central's stored entries of one terminal.
pub fn central_ledger(world: &World, terminal: &str) -> Result<Vec<StoredEntry>, DemoError> {
    Ok(world.central()?.storage().ledger(&LedgerFilter {
        terminal: Some(terminal.to_string()),
        member: None,
        limit: LISTING_ROWS_MAX,
    })?)
}
