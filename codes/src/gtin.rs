//! EAN-13, EAN-8, UPC-A and UPC-E numbers: check digits, UPC-E expansion and GTIN-14
//! normalisation (GS1 General Specifications §3.3.2, §5.2.1 and Figure 5.2.2.4.2-1).

use crate::check_digit::{digit_values, verify_gs1};
use crate::error::{Error, Result};

/// Length of a normalised GTIN: every GTIN is carried as 14 digits in GS1 element strings
/// and in our product keys.
pub const GTIN14_DIGITS: usize = 14;

/// Pads a GTIN-8, -12, -13 or -14 with leading zeros to 14 digits after checking its
/// length, digits and check digit.
pub fn normalise_gtin14(what: &str, digits: &str) -> Result<String> {
    if !matches!(digits.len(), 8 | 12 | 13 | 14) {
        return Err(Error::Length {
            what: what.to_string(),
            expected: "8, 12, 13 or 14 digits".into(),
            found: digits.chars().count(),
        });
    }
    verify_gs1(what, digits)?;
    Ok(format!("{digits:0>GTIN14_DIGITS$}"))
}

/// Expands an 8-digit UPC-E (number system 0 or 1, six digits, check digit) to its
/// 12-digit UPC-A and checks the check digit, which is the UPC-A's.
///
/// The expansion depends on the sixth UPC-E digit X6 (X1..X6 are the six body digits):
/// * 0, 1, 2: `NS X1 X2 X6 0000 X3 X4 X5`
/// * 3: `NS X1 X2 X3 00000 X4 X5`
/// * 4: `NS X1 X2 X3 X4 00000 X5`
/// * 5–9: `NS X1 X2 X3 X4 X5 0000 X6`
pub fn expand_upce(upce: &str) -> Result<String> {
    const WHAT: &str = "UPC-E";
    if upce.len() != 8 {
        return Err(Error::Length {
            what: WHAT.into(),
            expected: "8 digits (number system, 6 digits, check digit)".into(),
            found: upce.chars().count(),
        });
    }
    let d = digit_values(WHAT, upce)?;
    let ns = d[0];
    if ns > 1 {
        return Err(Error::Character {
            what: WHAT.into(),
            position: 0,
            found: char::from(b'0' + ns),
            allowed: "number system 0 or 1",
        });
    }
    let x = &d[1..7];
    let body: Vec<u8> = match x[5] {
        0..=2 => [
            &[ns, x[0], x[1], x[5]][..],
            &[0, 0, 0, 0],
            &[x[2], x[3], x[4]],
        ]
        .concat(),
        3 => [&[ns, x[0], x[1], x[2]][..], &[0, 0, 0, 0, 0], &[x[3], x[4]]].concat(),
        4 => [&[ns, x[0], x[1], x[2], x[3]][..], &[0, 0, 0, 0, 0], &[x[4]]].concat(),
        _ => [
            &[ns, x[0], x[1], x[2], x[3], x[4]][..],
            &[0, 0, 0, 0],
            &[x[5]],
        ]
        .concat(),
    };
    let mut upca: String = body.iter().map(|&v| char::from(b'0' + v)).collect();
    upca.push(char::from(b'0' + d[7]));
    verify_gs1(WHAT, &upca)?;
    Ok(upca)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_each_gtin_length() {
        assert_eq!(
            normalise_gtin14("EAN-13", "4006381333931").unwrap(),
            "04006381333931"
        );
        assert_eq!(
            normalise_gtin14("UPC-A", "036000291452").unwrap(),
            "00036000291452"
        );
        assert_eq!(
            normalise_gtin14("EAN-8", "96385074").unwrap(),
            "00000096385074"
        );
        assert_eq!(
            normalise_gtin14("GTIN-14", "10614141000415").unwrap(),
            "10614141000415"
        );
        assert!(matches!(
            normalise_gtin14("EAN-13", "40063813339"),
            Err(Error::Length { found: 11, .. })
        ));
        assert!(matches!(
            normalise_gtin14("EAN-13", "4006381333930"),
            Err(Error::CheckDigit { .. })
        ));
    }

    /// One example per rule of the expansion table (last body digit 0–9). The expected
    /// UPC-A numbers are written out by hand from the table, check digits from GS1.
    #[test]
    fn upce_expansion_for_each_last_digit_rule() {
        let cases = [
            ("01234505", "012000003455"), // X6=0 → NS X1 X2 0 0000 X3 X4 X5
            ("01234514", "012100003454"), // X6=1
            ("01234523", "012200003453"), // X6=2
            ("01234531", "012300000451"), // X6=3 → NS X1 X2 X3 00000 X4 X5
            ("01234543", "012340000053"), // X6=4 → NS X1 X2 X3 X4 00000 X5
            ("01234558", "012345000058"), // X6=5 → NS X1..X5 0000 X6
            ("01234565", "012345000065"), // X6=6
            ("01234572", "012345000072"), // X6=7
            ("01234589", "012345000089"), // X6=8
            ("01234596", "012345000096"), // X6=9
            ("04252614", "042100005264"), // widely published example (UPC-E 04252614)
            ("10123454", "101234000054"), // number system 1
        ];
        for (upce, upca) in cases {
            assert_eq!(expand_upce(upce).unwrap(), upca, "UPC-E {upce}");
            assert!(verify_gs1("UPC-A", upca).is_ok(), "{upca}");
        }
    }

    #[test]
    fn upce_errors() {
        assert!(matches!(
            expand_upce("21234565"),
            Err(Error::Character { position: 0, .. })
        ));
        assert!(matches!(
            expand_upce("01234566"),
            Err(Error::CheckDigit { .. })
        ));
        assert!(matches!(expand_upce("0123456"), Err(Error::Length { .. })));
    }
}
