//! Bearer tokens (central's and the local TCP API's): where the config says
//! they are ([`TokenSource`]), and reading one into a [`SecretString`]:
//! bounded, refused when other users can read the file (as ssh refuses a
//! private key), and every buffer that held its text wiped (the read buffer
//! on drop, the secret itself when it is dropped).

use std::io::Read;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::env::Env;
use crate::error::{Error, Problem};
use crate::reader::{Ctx, Field, Table, quote};
use crate::values::path;

/// Largest token file read: a bearer token is tens of bytes; anything huge
/// is the wrong file.
pub const TOKEN_BYTES_MAX: u64 = 4096;
/// Longest systemd credential name (a file name).
pub const CREDENTIAL_NAME_CHARS_MAX: usize = 255;
/// Mode bits a token file must not have: any access by group or others.
/// A token another local user can read lets that user act as this register.
pub const TOKEN_FILE_FORBIDDEN_MODE: u32 = 0o077;

/// Where a bearer token is read from. Never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `token_file`: a file holding the token (trimmed of surrounding
    /// whitespace), readable by its owner only (mode 0600 or 0400).
    File(PathBuf),
    /// `credential`: a systemd credential name, read from
    /// `$CREDENTIALS_DIRECTORY/<name>` (set by `LoadCredential=`).
    Credential(String),
}

/// A place in the config file, kept for problems found after parsing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Origin {
    file: PathBuf,
    line: Option<usize>,
    key: String,
    /// What the secret is, for messages: "token" or "password".
    what: &'static str,
    /// The key naming a file, suggested when a credential cannot be read.
    file_key: &'static str,
}

impl Origin {
    pub(crate) fn problem(&self, message: String) -> Error {
        Error::single(Problem {
            file: self.file.clone(),
            line: self.line,
            key: Some(self.key.clone()),
            message,
        })
    }
}

/// The `token_file` or `credential` key of `table` (at most one of them),
/// and where it was said. `(None, _)` when neither is set (the caller
/// decides whether that is a problem) or the one set is invalid (reported).
pub(crate) fn read_source(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
) -> (Option<TokenSource>, Origin) {
    read_source_keys(ctx, table, SecretKeys::TOKEN)
}

/// The keys a secret is named by in one table.
#[derive(Clone, Copy)]
pub(crate) struct SecretKeys {
    pub(crate) file: &'static str,
    pub(crate) credential: &'static str,
    pub(crate) what: &'static str,
}

impl SecretKeys {
    /// A bearer token: `token_file` or `credential`.
    pub(crate) const TOKEN: SecretKeys = SecretKeys {
        file: "token_file",
        credential: "credential",
        what: "token",
    };
}

/// [`read_source`] for a secret named by other keys.
pub(crate) fn read_source_keys(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    keys: SecretKeys,
) -> (Option<TokenSource>, Origin) {
    let token_file = table.field(keys.file);
    let credential = table.field(keys.credential);
    let token = match (&token_file, &credential) {
        (Some(file), None) => path(ctx, file).map(TokenSource::File),
        (None, Some(name)) => read_credential(ctx, name).map(TokenSource::Credential),
        (Some(_), Some(name)) => {
            name.misplaced(
                ctx,
                format!(
                    "set exactly one of {} and {}, not both",
                    keys.file, keys.credential
                ),
            );
            None
        }
        (None, None) => None,
    };
    let said = token_file.as_ref().or(credential.as_ref());
    let token_span: Option<Range<usize>> = said.map(|f| f.span());
    let origin = Origin {
        file: ctx.source().to_path_buf(),
        line: token_span.map(|s| ctx.line_of(s.start)),
        key: said.map_or_else(|| table.key_label(keys.file), |f| f.key().to_string()),
        what: keys.what,
        file_key: keys.file,
    };
    (token, origin)
}

/// A systemd credential name: a plain file name inside the credentials directory.
fn read_credential(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<String> {
    let name = field.string(ctx)?;
    let ok = !name.is_empty()
        && name.len() <= CREDENTIAL_NAME_CHARS_MAX
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.chars().any(char::is_control);
    if !ok {
        field.invalid(
            ctx,
            format!(
                "must be a credential name (a file name: no '/', not '.' or '..', 1 to {CREDENTIAL_NAME_CHARS_MAX} characters), got {}",
                quote(name)
            ),
        );
        return None;
    }
    Some(name.to_string())
}

/// Reads the token `source` names, trimmed of surrounding whitespace.
/// Errors name the config line at `origin`, never the token's content.
pub(crate) fn load(
    source: &TokenSource,
    origin: &Origin,
    env: &Env,
) -> Result<SecretString, Error> {
    let (file, private) = match source {
        TokenSource::File(file) => (file.clone(), true),
        // systemd owns a credential's mode (0400, or an ACL whose mask shows
        // as group bits) and its directory is the service's alone.
        TokenSource::Credential(name) => match &env.credentials_directory {
            Some(dir) => (dir.join(name), false),
            None => {
                return Err(origin.problem(format!(
                    "credential {} needs $CREDENTIALS_DIRECTORY, which is not set \
                     (run under systemd with LoadCredential={name}:PATH, or use {})",
                    quote(name),
                    origin.file_key
                )));
            }
        },
    };
    let secret = read_trimmed(&file, TOKEN_BYTES_MAX, private).map_err(|message| {
        origin.problem(format!(
            "cannot read {} from {}: {message}",
            origin.what,
            file.display()
        ))
    })?;
    let token = secret.expose_secret();
    if token.is_empty() {
        return Err(origin.problem(format!("{} file {} is empty", origin.what, file.display())));
    }
    // The token goes into an HTTP header: visible ASCII only. The
    // message does not say which character, to leak nothing of it.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(origin.problem(format!(
            "{} in {} must be printable ASCII without spaces",
            origin.what,
            file.display()
        )));
    }
    Ok(secret)
}

/// Reads at most `bytes_max` bytes of UTF-8 text from `file`, trimmed of
/// surrounding whitespace. With `private`, a file that group or others may
/// access is refused before a byte is read (the mode is the opened file's,
/// so it cannot change between the check and the read). The error says what
/// is wrong with the file, never what it holds.
pub(crate) fn read_trimmed(
    file: &Path,
    bytes_max: u64,
    private: bool,
) -> Result<SecretString, String> {
    let opened = std::fs::File::open(file).map_err(|e| e.to_string())?;
    if private {
        let mode = opened
            .metadata()
            .map_err(|e| e.to_string())?
            .permissions()
            .mode();
        if mode & TOKEN_FILE_FORBIDDEN_MODE != 0 {
            return Err(format!(
                "other users can read it (mode {:04o}); a token must be private to its owner: \
                 run `chmod 600 {}`",
                mode & 0o7777,
                file.display()
            ));
        }
    }
    let capacity = usize::try_from(bytes_max.saturating_add(1)).unwrap_or(usize::MAX);
    // Allocated once at full size, so no copy of the text is left behind
    // by a growing buffer.
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity));
    opened
        .take(bytes_max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > bytes_max {
        return Err(format!(
            "larger than {bytes_max} bytes, so not a token file"
        ));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8 text".to_string())?;
    Ok(SecretString::from(text.trim()))
}
