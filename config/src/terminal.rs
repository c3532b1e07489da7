//! `[terminal]`: who this register is and where (its time zone).

use jiff::tz::TimeZone;

use crate::reader::{Ctx, Table, quote};
use crate::values::identifier;

pub(crate) const KEYS: &[&str] = &["id", "store_id", "timezone"];

/// This register's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    /// The terminal id: the ledger's per-terminal `seq` and the central's
    /// token are tied to it.
    pub id: String,
    /// The store the register belongs to (rules and reports are per store).
    pub store_id: String,
    /// The store's time zone: "today" for daily limits and birthdays is the
    /// store's day, not the machine's.
    pub timezone: TimeZone,
    /// The IANA name as written (`Europe/Berlin`), for display.
    pub timezone_name: String,
}

/// `None` when `[terminal]` has problems (they are reported).
pub(crate) fn read(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Option<Terminal> {
    let id = table.required(ctx, "id").and_then(|f| identifier(ctx, &f));
    let store_id = table
        .required(ctx, "store_id")
        .and_then(|f| identifier(ctx, &f));
    let timezone = table.required(ctx, "timezone").and_then(|f| {
        let name = f.string(ctx)?;
        match TimeZone::get(name) {
            Ok(tz) => Some((tz, name.to_string())),
            Err(err) => {
                f.invalid(
                    ctx,
                    format!("not a known IANA time zone name: {} ({err})", quote(name)),
                );
                None
            }
        }
    });
    table.finish(ctx);
    let (Some(id), Some(store_id), Some((timezone, timezone_name))) = (id, store_id, timezone)
    else {
        return None;
    };
    Some(Terminal {
        id,
        store_id,
        timezone,
        timezone_name,
    })
}
