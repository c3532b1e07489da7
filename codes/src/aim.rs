//! AIM symbology identifiers (ISO/IEC 15424): the `]Cm` prefix a scanner puts before the
//! data to say which barcode symbology it read, and with which options.
//!
//! The identifier matters because the same digits mean different things in different
//! symbologies: 13 digits in an EAN-13 are a GTIN, in a Code 128 they are just text; and
//! a GS1-128 (`]C1`) carries GS1 element strings while a plain Code 128 (`]C0`) does not.

use serde::Serialize;

use crate::error::{Error, Result};

/// A parsed AIM identifier: `]` + symbology code character + modifier character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aim {
    /// The symbology code character, e.g. `E` (EAN/UPC), `C` (Code 128), `d` (Data Matrix).
    pub code: char,
    /// The modifier character, e.g. `0` or `1`; its meaning depends on the symbology.
    pub modifier: char,
}

/// What the symbology (and modifier) says about how to read the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// EAN-13, UPC-A or UPC-E (`]E0`), told apart by length.
    EanUpc,
    /// EAN-8 (`]E4`).
    Ean8,
    /// EAN/UPC with its 2- or 5-digit add-on in one transmission (`]E3`).
    EanUpcWithAddOn,
    /// An add-on alone (`]E1`, `]E2`).
    AddOn,
    /// ITF (Interleaved 2 of 5): 14 digits are an ITF-14 GTIN.
    Itf,
    /// A symbology carrying GS1 element strings (FNC1 in first position).
    Gs1(Symbology),
    /// Any other symbology: the data is text.
    Other(Symbology),
}

/// The symbology names printed by `pos-agent decode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Symbology {
    Ean13,
    Ean8,
    Upca,
    Upce,
    /// An EAN/UPC add-on alone.
    EanAddon,
    Itf,
    Itf14,
    #[serde(rename = "gs1_128")]
    Gs1_128,
    Code128,
    Code39,
    Code93,
    Codabar,
    Pdf417,
    DataMatrix,
    Gs1Datamatrix,
    Qr,
    Gs1Qr,
    Gs1Databar,
    Aztec,
    Gs1Aztec,
    /// GS1 element strings without an AIM identifier (human-readable or with GS bytes).
    Gs1,
    /// ISO/IEC 7813 track 1.
    Track1,
    /// ISO/IEC 7813 track 2.
    Track2,
    /// A symbology we have no name for.
    Unknown,
}

impl Aim {
    /// The identifier as transmitted, e.g. `"]E0"`.
    pub fn text(&self) -> String {
        format!("]{}{}", self.code, self.modifier)
    }

    /// True when the identifier says the data is GS1 element strings ("GS1 data" flag):
    /// GS1-128 `]C1`, GS1 DataBar `]e0`, GS1 Data Matrix `]d2`, GS1 QR `]Q3`, GS1 Aztec
    /// `]z1` (and their ECI variants `]d5`, `]Q4`, `]z4`).
    pub fn is_gs1(&self) -> bool {
        matches!(self.carrier(), Carrier::Gs1(_))
    }

    /// How to read the data that follows.
    pub fn carrier(&self) -> Carrier {
        match (self.code, self.modifier) {
            ('E', '0') => Carrier::EanUpc,
            ('E', '1' | '2') => Carrier::AddOn,
            ('E', '3') => Carrier::EanUpcWithAddOn,
            ('E', '4') => Carrier::Ean8,
            ('I', _) => Carrier::Itf,
            ('C', '1') => Carrier::Gs1(Symbology::Gs1_128),
            ('C', _) => Carrier::Other(Symbology::Code128),
            ('e', _) => Carrier::Gs1(Symbology::Gs1Databar),
            ('d', '2' | '5') => Carrier::Gs1(Symbology::Gs1Datamatrix),
            ('d', _) => Carrier::Other(Symbology::DataMatrix),
            ('Q', '3' | '4') => Carrier::Gs1(Symbology::Gs1Qr),
            ('Q', _) => Carrier::Other(Symbology::Qr),
            ('z', '1' | '4') => Carrier::Gs1(Symbology::Gs1Aztec),
            ('z', _) => Carrier::Other(Symbology::Aztec),
            ('A', _) => Carrier::Other(Symbology::Code39),
            ('G', _) => Carrier::Other(Symbology::Code93),
            ('F', _) => Carrier::Other(Symbology::Codabar),
            ('L', _) => Carrier::Other(Symbology::Pdf417),
            _ => Carrier::Other(Symbology::Unknown),
        }
    }
}

/// Splits an AIM identifier off the front of `data`.
///
/// No leading `]` means no identifier (scanners can be set to send none). A `]` that is
/// not followed by a letter and a modifier character is an error rather than data: no
/// barcode we decode starts with `]`, so it is a scanner sending a truncated prefix.
pub fn split_aim(data: &str) -> Result<(Option<Aim>, &str)> {
    let Some(rest) = data.strip_prefix(']') else {
        return Ok((None, data));
    };
    let mut chars = rest.chars();
    let code = chars
        .next()
        .ok_or_else(|| Error::Aim("`]` at position 0 with nothing after it".into()))?;
    if !code.is_ascii_alphabetic() {
        return Err(Error::Aim(format!(
            "symbology code character {code:?} at position 1 is not a letter"
        )));
    }
    let modifier = chars
        .next()
        .ok_or_else(|| Error::Aim("modifier character missing at position 2".into()))?;
    if !modifier.is_ascii_alphanumeric() {
        return Err(Error::Aim(format!(
            "modifier character {modifier:?} at position 2 is not a digit or letter"
        )));
    }
    Ok((Some(Aim { code, modifier }), &rest[2..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_common_identifiers() {
        let cases = [
            ("]E04006381333931", 'E', '0', Carrier::EanUpc),
            ("]E496385074", 'E', '4', Carrier::Ean8),
            (
                "]C1010400638133393",
                'C',
                '1',
                Carrier::Gs1(Symbology::Gs1_128),
            ),
            ("]C0ABC", 'C', '0', Carrier::Other(Symbology::Code128)),
            ("]d2010", 'd', '2', Carrier::Gs1(Symbology::Gs1Datamatrix)),
            ("]d1x", 'd', '1', Carrier::Other(Symbology::DataMatrix)),
            ("]Q3010", 'Q', '3', Carrier::Gs1(Symbology::Gs1Qr)),
            ("]Q1hello", 'Q', '1', Carrier::Other(Symbology::Qr)),
            ("]e0010", 'e', '0', Carrier::Gs1(Symbology::Gs1Databar)),
            ("]A0CODE39", 'A', '0', Carrier::Other(Symbology::Code39)),
            ("]I110614141000415", 'I', '1', Carrier::Itf),
        ];
        for (data, code, modifier, carrier) in cases {
            let (aim, rest) = split_aim(data).unwrap();
            let aim = aim.unwrap();
            assert_eq!((aim.code, aim.modifier), (code, modifier), "{data}");
            assert_eq!(aim.carrier(), carrier, "{data}");
            assert_eq!(format!("{}{rest}", aim.text()), data);
        }
        assert!(split_aim("]C1").unwrap().0.unwrap().is_gs1());
        assert!(!split_aim("]C0").unwrap().0.unwrap().is_gs1());
    }

    #[test]
    fn no_identifier_and_malformed_identifiers() {
        assert_eq!(split_aim("4006381333931").unwrap(), (None, "4006381333931"));
        for bad in ["]", "]E", "]1A", "]E-"] {
            assert!(matches!(split_aim(bad), Err(Error::Aim(_))), "{bad}");
        }
    }
}
