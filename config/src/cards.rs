//! `[cards]`: which scanned numbers are this chain's member cards.

use crate::reader::{Ctx, Field, Table, quote, strings};

pub(crate) const KEYS: &[&str] = &["loyalty_prefixes", "track_prefixes"];

/// A chain has a few card ranges; a long list is a mistake.
pub const PREFIXES_MAX: usize = 32;
/// Longest prefix: the decoder's limit ([`pos_codes::decode::MEMBER_PREFIX_DIGITS_MAX`]),
/// so a config that loads never holds a prefix the decoder refuses.
pub const PREFIX_DIGITS_MAX: usize = pos_codes::decode::MEMBER_PREFIX_DIGITS_MAX;

/// Member-card recognition. Anything that looks like a payment card is
/// rejected by the drivers whatever these say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cards {
    /// Barcodes starting with one of these are member cards.
    pub loyalty_prefixes: Vec<String>,
    /// Track 2 numbers (magnetic stripe) starting with one of these are member cards.
    pub track_prefixes: Vec<String>,
}

fn prefixes(ctx: &mut Ctx<'_>, field: Option<Field<'_, '_>>) -> Vec<String> {
    let Some(field) = field else {
        return Vec::new();
    };
    let entries = strings(ctx, &field);
    if entries.len() > PREFIXES_MAX {
        field.invalid(
            ctx,
            format!("at most {PREFIXES_MAX} prefixes, got {}", entries.len()),
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    for (index, (text, span)) in entries.into_iter().enumerate() {
        if !pos_codes::decode::is_member_prefix(text) {
            ctx.report(
                Some(span),
                Some(field.key().to_string()),
                format!(
                    "entry {} must be 1 to {PREFIX_DIGITS_MAX} digits, got {}",
                    index + 1,
                    quote(text)
                ),
            );
        } else {
            out.push(text.to_string());
        }
    }
    out
}

pub(crate) fn read(ctx: &mut Ctx<'_>, table: Table<'_, '_>) -> Cards {
    let loyalty_prefixes = prefixes(ctx, table.field("loyalty_prefixes"));
    let track_prefixes = prefixes(ctx, table.field("track_prefixes"));
    table.finish(ctx);
    Cards {
        loyalty_prefixes,
        track_prefixes,
    }
}
