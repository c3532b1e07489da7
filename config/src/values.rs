//! Checks shared by several sections: identifiers and file paths.

use std::path::{Path, PathBuf};

use crate::reader::{Ctx, Field, quote};

/// Longest identifier (terminal id, store id, device name): ids travel in
/// every ledger entry and log line, so they stay short.
pub(crate) const IDENTIFIER_CHARS_MAX: usize = 64;

/// Longest path accepted: Linux's `PATH_MAX`, beyond which `open` fails anyway.
pub(crate) const PATH_BYTES_MAX: usize = 4096;

/// `[A-Za-z0-9._-]{1,64}`: safe in file names, URLs, log lines and SQL
/// without quoting.
pub(crate) fn identifier(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<String> {
    let text = field.string(ctx)?;
    let charset_ok = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if text.is_empty() || text.len() > IDENTIFIER_CHARS_MAX || !charset_ok {
        field.invalid(
            ctx,
            format!(
                "must be 1 to {IDENTIFIER_CHARS_MAX} characters of A-Z a-z 0-9 . _ -, got {}",
                quote(text)
            ),
        );
        return None;
    }
    Some(text.to_string())
}

/// A file path. A relative path is taken relative to the config file's
/// directory, not to the working directory, so that the same config means
/// the same files whoever starts the agent from wherever.
pub(crate) fn path(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<PathBuf> {
    let text = field.string(ctx)?;
    if text.is_empty() {
        field.invalid(ctx, "must not be empty");
        return None;
    }
    if text.contains('\0') {
        field.invalid(ctx, "must not contain a NUL character");
        return None;
    }
    if text.len() > PATH_BYTES_MAX {
        field.invalid(
            ctx,
            format!("must be at most {PATH_BYTES_MAX} bytes, got {}", text.len()),
        );
        return None;
    }
    let path = Path::new(text);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    let base = ctx.source().parent().unwrap_or_else(|| Path::new(""));
    Some(base.join(path))
}
