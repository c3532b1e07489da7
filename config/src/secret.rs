//! Reading the central token into a [`SecretString`]: bounded, and every
//! buffer that held its text wiped (the read buffer on drop, the secret
//! itself when it is dropped).

use std::io::Read;
use std::path::Path;

use secrecy::SecretString;
use zeroize::Zeroizing;

/// Reads at most `bytes_max` bytes of UTF-8 text from `file`, trimmed of
/// surrounding whitespace. The error says what is wrong with the file,
/// never what it holds.
pub(crate) fn read_trimmed(file: &Path, bytes_max: u64) -> Result<SecretString, String> {
    let opened = std::fs::File::open(file).map_err(|e| e.to_string())?;
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
