//! ISO/IEC 7813 magnetic-stripe tracks as card readers send them in ASCII:
//! track 1 `%` format-code data `?` (fields separated by `^`), track 2 `;` PAN `=` data `?`.
//! A reader may send several tracks in one frame (`%...?;...?`), and some readers strip
//! the sentinels, which we accept for track 2 (`PAN=data` or digits alone).
//!
//! This module only parses; the payment-card guard runs before it (see
//! [`crate::payment_card`]), so what is parsed here is never a payment card.

use crate::error::{Error, Result};
use crate::payment_card::PAN_DIGITS_MAX;

/// Longest track 1 data between the sentinels (ISO/IEC 7813: 79 characters including
/// the sentinels and the LRC).
pub const TRACK1_DATA_CHARS_MAX: usize = 76;
/// Longest track 2 data between the sentinels (40 including sentinels and LRC).
pub const TRACK2_DATA_CHARS_MAX: usize = 37;

/// A track 1 that is not format B (format B is a payment card and never gets here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track1 {
    /// The format code after `%`: A is reserved, C–M for ANSI, N–Z for private use.
    pub format_code: char,
    /// The data after the format code, without the end sentinel.
    pub data: String,
}

/// A track 2: the account number and whatever follows the field separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track2 {
    /// The primary account number (for us: a member or gift card number).
    pub pan: String,
    /// Digits after the `=` separator (expiry, service code, discretionary data), if any.
    pub additional: Option<String>,
}

/// The tracks found in one swipe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    pub track1: Option<Track1>,
    pub track2: Option<Track2>,
}

fn track_error(track: u8, message: impl Into<String>) -> Error {
    Error::Track {
        track,
        message: message.into(),
    }
}

fn parse_track1(body: &str, offset: usize) -> Result<Track1> {
    let mut chars = body.chars();
    let format_code = chars
        .next()
        .ok_or_else(|| track_error(1, format!("no format code at position {offset}")))?;
    if !format_code.is_ascii_uppercase() {
        return Err(track_error(
            1,
            format!("format code {format_code:?} at position {offset} is not A-Z"),
        ));
    }
    let data = chars.as_str();
    if body.chars().count() > TRACK1_DATA_CHARS_MAX {
        return Err(track_error(
            1,
            format!("longer than {TRACK1_DATA_CHARS_MAX} characters"),
        ));
    }
    // Track 1 is a 6-bit code: space to underscore, without the sentinels.
    if let Some((i, c)) = data
        .char_indices()
        .find(|&(_, c)| !(' '..='_').contains(&c) || c == '%' || c == '?')
    {
        return Err(track_error(
            1,
            format!(
                "character {c:?} at position {} is not track 1 data",
                offset + 1 + i
            ),
        ));
    }
    Ok(Track1 {
        format_code,
        data: data.to_string(),
    })
}

fn parse_track2(body: &str, offset: usize) -> Result<Track2> {
    if body.len() > TRACK2_DATA_CHARS_MAX {
        return Err(track_error(
            2,
            format!("longer than {TRACK2_DATA_CHARS_MAX} characters"),
        ));
    }
    let (pan, additional) = match body.split_once('=') {
        Some((pan, rest)) => (pan, Some(rest)),
        None => (body, None),
    };
    if pan.is_empty() || pan.len() > PAN_DIGITS_MAX {
        return Err(track_error(
            2,
            format!(
                "account number has {} digits, expected 1-{PAN_DIGITS_MAX}",
                pan.len()
            ),
        ));
    }
    if let Some((i, c)) = body
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (c == '=' && i == pan.len())))
    {
        return Err(track_error(
            2,
            format!(
                "character {c:?} at position {} is not track 2 data",
                offset + i
            ),
        ));
    }
    Ok(Track2 {
        pan: pan.to_string(),
        additional: additional.map(str::to_string),
    })
}

/// Splits a swipe into its tracks and parses them.
pub fn parse_tracks(data: &str) -> Result<Tracks> {
    let data = data.trim_matches(|c: char| c.is_ascii_whitespace());
    let mut tracks = Tracks::default();
    if !data.starts_with(['%', ';']) {
        // Sentinels stripped by the reader: only track 2 can be recognised this way.
        tracks.track2 = Some(parse_track2(data, 0)?);
        return Ok(tracks);
    }
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        let (track, start) = match rest.chars().next() {
            Some('%') => (1u8, pos + 1),
            Some(';') => (2u8, pos + 1),
            Some(c) if c.is_ascii_whitespace() => {
                pos += 1;
                continue;
            }
            Some(c) => {
                return Err(track_error(
                    2,
                    format!("character {c:?} at position {pos} is not a start sentinel"),
                ));
            }
            None => break,
        };
        let end = rest.find('?').ok_or_else(|| {
            track_error(track, format!("no end sentinel `?` after position {pos}"))
        })?;
        let body = &data[start..pos + end];
        match track {
            1 if tracks.track1.is_none() => tracks.track1 = Some(parse_track1(body, start)?),
            // A second `;` track is track 3 (same sentinels); its content is not needed.
            2 if tracks.track2.is_none() => tracks.track2 = Some(parse_track2(body, start)?),
            _ => {}
        }
        pos += end + 1;
        // An LRC character may follow the end sentinel.
        if let Some(c) = data[pos..].chars().next()
            && !matches!(c, '%' | ';')
            && !c.is_ascii_whitespace()
        {
            pos += c.len_utf8();
        }
    }
    Ok(tracks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track2_with_sentinels_and_separator() {
        let tracks = parse_tracks(";6012345678901234=49121010000?").unwrap();
        let t2 = tracks.track2.unwrap();
        assert_eq!(t2.pan, "6012345678901234");
        assert_eq!(t2.additional.as_deref(), Some("49121010000"));
        assert!(tracks.track1.is_none());
    }

    #[test]
    fn track2_without_sentinels_or_separator() {
        assert_eq!(
            parse_tracks("9990001234").unwrap().track2.unwrap().pan,
            "9990001234"
        );
        assert_eq!(
            parse_tracks(";9990001234?").unwrap().track2.unwrap().pan,
            "9990001234"
        );
    }

    #[test]
    fn both_tracks_in_one_frame() {
        let tracks = parse_tracks("%NMEMBER^SMITH/ANN^?;9990001234=2912?").unwrap();
        let t1 = tracks.track1.unwrap();
        assert_eq!(t1.format_code, 'N');
        assert_eq!(t1.data, "MEMBER^SMITH/ANN^");
        assert_eq!(tracks.track2.unwrap().pan, "9990001234");
    }

    #[test]
    fn errors_name_track_and_position() {
        let err = parse_tracks(";99900E1234?").unwrap_err();
        assert!(
            err.to_string().contains("track 2") && err.to_string().contains("position 6"),
            "{err}"
        );
        assert!(parse_tracks(";9990001234").is_err(), "no end sentinel");
        assert!(parse_tracks(";?").is_err(), "empty account number");
        assert!(
            parse_tracks(&format!(";{}?", "1".repeat(20))).is_err(),
            "20 digits"
        );
        assert!(
            parse_tracks("%1ABC?").is_err(),
            "format code must be a letter"
        );
        assert!(
            parse_tracks("%Nabc?").is_err(),
            "lower case is not track 1 data"
        );
        assert!(parse_tracks(";1=2=3?").is_err());
    }
}
