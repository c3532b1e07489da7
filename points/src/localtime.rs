//! The exact date and time spellings of the spec, parsed strictly.
//!
//! jiff does the calendar work (valid dates, weekdays), but its parsers accept
//! the wider Temporal/ISO 8601 grammar (basic format, missing seconds, zone
//! annotations). The spec fixes one spelling per field, and two
//! implementations must accept the same inputs, so the shape is checked here
//! by hand, byte by byte, before jiff sees the numbers.

use jiff::civil::{Date, DateTime, Time};

/// Reads a run of exactly `N` ASCII digits at `at` as a number.
fn digits<const N: usize>(bytes: &[u8], at: usize) -> Option<i32> {
    let run = bytes.get(at..at + N)?;
    run.iter().try_fold(0i32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + i32::from(b - b'0'))
    })
}

fn expect(bytes: &[u8], at: usize, want: u8) -> Option<()> {
    (bytes.get(at) == Some(&want)).then_some(())
}

/// `YYYY-MM-DD` at the start of `bytes`.
fn date_prefix(bytes: &[u8]) -> Option<Date> {
    let year = digits::<4>(bytes, 0)?;
    expect(bytes, 4, b'-')?;
    let month = digits::<2>(bytes, 5)?;
    expect(bytes, 7, b'-')?;
    let day = digits::<2>(bytes, 8)?;
    Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()
}

/// `HH:MM` or `HH:MM:SS` at `at`; seconds 60 (a leap second) only when `leap_ok`.
fn time_at(bytes: &[u8], at: usize, with_seconds: bool, leap_ok: bool) -> Option<Time> {
    let hour = digits::<2>(bytes, at)?;
    expect(bytes, at + 2, b':')?;
    let minute = digits::<2>(bytes, at + 3)?;
    let mut second = 0;
    if with_seconds {
        expect(bytes, at + 5, b':')?;
        second = digits::<2>(bytes, at + 6)?;
        if second == 60 && leap_ok {
            second = 59;
        }
    }
    Time::new(
        i8::try_from(hour).ok()?,
        i8::try_from(minute).ok()?,
        i8::try_from(second).ok()?,
        0,
    )
    .ok()
}

/// A calendar date `YYYY-MM-DD` (member birthdays).
pub fn parse_date(text: &str) -> Option<Date> {
    let bytes = text.as_bytes();
    (bytes.len() == 10).then_some(())?;
    date_prefix(bytes)
}

/// A local date-time `YYYY-MM-DDTHH:MM:SS` (rule `when.from` / `when.to`).
pub fn parse_local_datetime(text: &str) -> Option<DateTime> {
    let bytes = text.as_bytes();
    (bytes.len() == 19).then_some(())?;
    let date = date_prefix(bytes)?;
    expect(bytes, 10, b'T')?;
    let time = time_at(bytes, 11, true, false)?;
    Some(date.to_datetime(time))
}

/// A time of day `HH:MM` (rule `when.hours`); `24:00` is not a time of day.
pub fn parse_hours_minutes(text: &str) -> Option<Time> {
    let bytes = text.as_bytes();
    (bytes.len() == 5).then_some(())?;
    time_at(bytes, 0, false, false)
}

/// The local wall clock of an RFC 3339 timestamp, as written: the offset is
/// checked but **not applied** (spec §2: time conditions use the local wall
/// clock). Grammar: `YYYY-MM-DD(T|t)HH:MM:SS[.fraction](Z|z|±HH:MM)`, with
/// 1–9 fraction digits (jiff's nanosecond precision). A leap second `:60`
/// reads as `:59` with its fraction, so it stays inside its minute.
pub fn parse_rfc3339_wall_clock(text: &str) -> Option<DateTime> {
    let bytes = text.as_bytes();
    let date = date_prefix(bytes)?;
    matches!(bytes.get(10), Some(b'T' | b't')).then_some(())?;
    let time = time_at(bytes, 11, true, true)?;
    let mut at = 19;
    let mut nanos: i32 = 0;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        let count = at - start;
        if count == 0 || count > 9 {
            return None;
        }
        let fraction = bytes[start..at]
            .iter()
            .fold(0i32, |acc, &b| acc * 10 + i32::from(b - b'0'));
        nanos = (count..9).fold(fraction, |acc, _| acc * 10);
    }
    match bytes.get(at) {
        Some(b'Z' | b'z') => at += 1,
        Some(b'+' | b'-') => {
            let hours = digits::<2>(bytes, at + 1)?;
            expect(bytes, at + 3, b':')?;
            let minutes = digits::<2>(bytes, at + 4)?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            at += 6;
        }
        _ => return None,
    }
    (at == bytes.len()).then_some(())?;
    let time = time.with().subsec_nanosecond(nanos).build().ok()?;
    Some(date.to_datetime(time))
}

/// `YYYY-MM-DDTHH:MM:SS`, the inverse of [`parse_local_datetime`].
pub fn format_local_datetime(value: &DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        value.year(),
        value.month(),
        value.day(),
        value.hour(),
        value.minute(),
        value.second()
    )
}

/// `HH:MM`, the inverse of [`parse_hours_minutes`].
pub fn format_hours_minutes(value: &Time) -> String {
    format!("{:02}:{:02}", value.hour(), value.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_clock_ignores_the_offset() {
        let t = parse_rfc3339_wall_clock("2026-11-28T23:30:00-05:00").expect("valid");
        assert_eq!((t.day(), t.hour(), t.minute()), (28, 23, 30));
        let z = parse_rfc3339_wall_clock("2026-11-28t00:00:01.25z").expect("valid");
        assert_eq!((z.second(), z.subsec_nanosecond()), (1, 250_000_000));
        let leap = parse_rfc3339_wall_clock("2016-12-31T23:59:60Z").expect("valid");
        assert_eq!(leap.second(), 59);
    }

    #[test]
    fn wall_clock_refuses_other_shapes() {
        for bad in [
            "2026-11-28T11:05:00",
            "2026-11-28 11:05:00Z",
            "2026-11-28T11:05Z",
            "20261128T110500Z",
            "2026-11-28T11:05:00+0100",
            "2026-11-28T11:05:00+24:00",
            "2026-02-30T11:05:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T11:05:00.Z",
            "2026-11-28T11:05:00.1234567890Z",
            "2026-11-28T11:05:00Z[Europe/Paris]",
            "2026-11-28T11:05:00Z ",
        ] {
            assert!(
                parse_rfc3339_wall_clock(bad).is_none(),
                "{bad:?} must be refused"
            );
        }
    }

    #[test]
    fn local_formats_round_trip() {
        let dt = parse_local_datetime("2026-11-01T09:08:07").expect("valid");
        assert_eq!(format_local_datetime(&dt), "2026-11-01T09:08:07");
        let hm = parse_hours_minutes("09:30").expect("valid");
        assert_eq!(format_hours_minutes(&hm), "09:30");
        assert!(parse_hours_minutes("24:00").is_none());
        assert!(parse_hours_minutes("9:30").is_none());
        assert!(parse_local_datetime("2026-11-01T09:08").is_none());
        assert!(parse_local_datetime("2026-11-01T09:08:60").is_none());
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
    }
}
