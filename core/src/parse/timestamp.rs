//! Timestamp readers for the formats logs actually use, hand-written because
//! they run once per line on the hot path and chrono's generic format parser
//! costs several times more than these byte scans.
//!
//! * BSD syslog (RFC 3164): `Mmm dd hh:mm:ss` — no year, no zone. The year is
//!   inferred by [`resolve_bsd`]; the zone is a configured fixed offset.
//! * ISO 8601 / RFC 3339: `2024-03-01T10:00:00.123456+06:00` (RFC 5424,
//!   rsyslog's high-precision format, JSON logs).
//! * Common Log Format: `10/Oct/2000:13:55:36 -0700` (web access logs).
//! * Epoch numbers (JSON, CEF `rt`): seconds, milliseconds, microseconds or
//!   nanoseconds, told apart by magnitude.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, TimeZone, Utc};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Month number (1–12) for an English three-letter abbreviation, in the
/// capitalisation logs use (`Mar`) or upper case (`MAR`).
pub(crate) fn month_from_abbrev(b: &[u8]) -> Option<u32> {
    if b.len() < 3 {
        return None;
    }
    let key = [
        b[0].to_ascii_uppercase(),
        b[1].to_ascii_lowercase(),
        b[2].to_ascii_lowercase(),
    ];
    MONTHS
        .iter()
        .position(|m| **m == key)
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// The parts of a BSD syslog timestamp, before year and zone are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BsdStamp {
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
    /// Some devices (Cisco) write `Mmm dd yyyy hh:mm:ss`.
    pub year: Option<i32>,
}

/// Reads `Mmm dd hh:mm:ss[.frac]` (day space- or zero-padded, or a single
/// digit) or `Mmm dd yyyy hh:mm:ss` at the start of `s`. Returns the stamp
/// and the number of bytes it took.
pub(crate) fn parse_bsd(s: &[u8]) -> Option<(BsdStamp, usize)> {
    let month = month_from_abbrev(s.get(..3)?)?;
    if s.get(3) != Some(&b' ') {
        return None;
    }
    let mut i = 4;
    if s.get(i) == Some(&b' ') {
        i += 1; // "Mar  1"
    }
    let (day, n) = digits(s.get(i..)?, 1, 2)?;
    i += n;
    if s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let mut year = None;
    if let Some((y, 4)) = digits(s.get(i..)?, 4, 4) {
        if s.get(i + 4) == Some(&b' ') {
            year = i32::try_from(y).ok();
            i += 5;
        }
    }
    let (hour, minute, second, n) = hms(s.get(i..)?)?;
    i += n;
    let (nanos, n) = fraction(s.get(i..).unwrap_or_default());
    i += n;
    if !(1..=31).contains(&day) {
        return None;
    }
    Some((
        BsdStamp {
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            year,
        },
        i,
    ))
}

/// Turns a BSD stamp into an instant.
///
/// **Zone:** the stamp is read as local time at `offset` (RFC 3164 carries
/// no zone; configure the offset the senders' clocks use, default UTC).
///
/// **Year:** `year` (a configured fixed year, for replaying old files) wins,
/// then a year written in the stamp itself. Otherwise the year is inferred
/// from `received`: of the candidate years (the receive year + 1 down to
/// − 8, which is enough for any date incl. 29 February), the first whose
/// instant is **not more than one day after** `received`. That is the
/// candidate closest to the receive time that is not in the future beyond
/// clock skew, which handles the December→January rollover both ways: a
/// `Dec 31 23:59:58` line received on 1 January belongs to the old year, and a
/// `Jan  1 00:00:01` line received a few seconds before midnight on
/// 31 December (sender clock ahead) belongs to the new year.
///
/// Returns `None` when the date does not exist in any candidate year
/// (e.g. `Feb 30`).
pub(crate) fn resolve_bsd(
    stamp: &BsdStamp,
    offset: FixedOffset,
    year: Option<i32>,
    received: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if let Some(y) = year.or(stamp.year) {
        return instant(y, stamp, offset);
    }
    let limit = received + Duration::days(1);
    let local = received.with_timezone(&offset);
    let received_year = local.year();
    // Next year's date can only be within a day when a January stamp
    // arrives in late December; skip computing it otherwise.
    let newest = if stamp.month == 1 && local.month() == 12 {
        received_year + 1
    } else {
        received_year
    };
    (received_year - 8..=newest)
        .rev()
        .filter_map(|y| instant(y, stamp, offset))
        .find(|t| *t <= limit)
}

fn instant(year: i32, s: &BsdStamp, offset: FixedOffset) -> Option<DateTime<Utc>> {
    let naive = NaiveDate::from_ymd_opt(year, s.month, s.day)?
        .and_hms_nano_opt(s.hour, s.minute, s.second, s.nanos)?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// Reads an ISO 8601 / RFC 3339 timestamp at the start of `s`:
/// `YYYY-MM-DD[T| ]hh:mm:ss[.frac][Z|±hh:mm|±hhmm|±hh]`. A missing zone
/// means local time at `default_offset`. Returns the instant and the number
/// of bytes it took.
pub(crate) fn parse_iso(s: &[u8], default_offset: FixedOffset) -> Option<(DateTime<Utc>, usize)> {
    let (year, _) = digits(s.get(0..4)?, 4, 4)?;
    if s.get(4) != Some(&b'-') || s.get(7) != Some(&b'-') {
        return None;
    }
    let (month, _) = digits(s.get(5..7)?, 2, 2)?;
    let (day, _) = digits(s.get(8..10)?, 2, 2)?;
    if !matches!(s.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let mut i = 11;
    let (hour, minute, second, n) = hms(s.get(i..)?)?;
    i += n;
    let (nanos, n) = fraction(s.get(i..).unwrap_or_default());
    i += n;
    let (offset, n) = match s.get(i) {
        Some(b'Z' | b'z') => (Some(0), 1),
        Some(b'+' | b'-') => {
            let (secs, n) = zone_offset(&s[i..])?;
            (Some(secs), n)
        }
        _ => (None, 0),
    };
    i += n;
    let offset = match offset {
        Some(secs) => FixedOffset::east_opt(secs)?,
        None => default_offset,
    };
    // A leap second (:60) is folded onto :59.999999999 rather than rejected.
    let (second, nanos) = if second == 60 {
        (59, 999_999_999)
    } else {
        (second, nanos)
    };
    let year = i32::try_from(year).ok()?;
    let naive =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nanos)?;
    let t = offset.from_local_datetime(&naive).single()?;
    Some((t.with_timezone(&Utc), i))
}

/// Reads the Common Log Format time `dd/Mon/yyyy:hh:mm:ss ±hhmm` (the text
/// between the brackets of an access-log line).
pub(crate) fn parse_clf(s: &[u8], default_offset: FixedOffset) -> Option<DateTime<Utc>> {
    let (day, _) = digits(s.get(0..2)?, 2, 2)?;
    if s.get(2) != Some(&b'/') || s.get(6) != Some(&b'/') || s.get(11) != Some(&b':') {
        return None;
    }
    let month = month_from_abbrev(s.get(3..6)?)?;
    let (year, _) = digits(s.get(7..11)?, 4, 4)?;
    let (hour, minute, second, n) = hms(s.get(12..)?)?;
    let mut i = 12 + n;
    let (nanos, n) = fraction(s.get(i..).unwrap_or_default());
    i += n;
    let offset = if s.get(i) == Some(&b' ') {
        match s.get(i + 1..).and_then(zone_offset) {
            Some((secs, _)) => FixedOffset::east_opt(secs)?,
            None => default_offset,
        }
    } else {
        default_offset
    };
    let naive = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?.and_hms_nano_opt(
        hour,
        minute,
        second.min(59),
        nanos,
    )?;
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// An epoch number as an instant. Magnitude decides the unit: below 1e11
/// seconds (until year 5138), below 1e14 milliseconds, below 1e17
/// microseconds, else nanoseconds.
pub(crate) fn from_epoch(x: f64) -> Option<DateTime<Utc>> {
    if !x.is_finite() || x < 0.0 {
        return None;
    }
    let nanos = if x < 1e11 {
        x * 1e9
    } else if x < 1e14 {
        x * 1e6
    } else if x < 1e17 {
        x * 1e3
    } else {
        x
    };
    if nanos >= i64::MAX as f64 {
        return None;
    }
    // Round to microseconds, the precision qalqan keeps.
    let micros = (nanos / 1e3).round() as i64;
    DateTime::from_timestamp_micros(micros)
}

/// An epoch number written as text (digits, optionally with a fraction).
pub(crate) fn from_epoch_text(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.is_empty() || !b.iter().all(|c| c.is_ascii_digit() || *c == b'.') || b[0] == b'.' {
        return None;
    }
    s.parse::<f64>().ok().and_then(from_epoch)
}

/// `hh:mm:ss` at the start of `s` (exactly two digits each).
fn hms(s: &[u8]) -> Option<(u32, u32, u32, usize)> {
    if s.get(2) != Some(&b':') || s.get(5) != Some(&b':') {
        return None;
    }
    let (h, _) = digits(s.get(0..2)?, 2, 2)?;
    let (m, _) = digits(s.get(3..5)?, 2, 2)?;
    let (sec, _) = digits(s.get(6..8)?, 2, 2)?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some((h, m, sec, 8))
}

/// `.ddd…` (or `,ddd…`) at the start of `s` as nanoseconds; (0, 0) if absent.
fn fraction(s: &[u8]) -> (u32, usize) {
    if !matches!(s.first(), Some(b'.' | b',')) {
        return (0, 0);
    }
    let mut nanos: u32 = 0;
    let mut scale: u32 = 100_000_000;
    let mut i = 1;
    while let Some(c) = s.get(i).filter(|c| c.is_ascii_digit()) {
        nanos += u32::from(c - b'0') * scale;
        scale /= 10;
        i += 1;
    }
    if i == 1 {
        return (0, 0); // a lone dot is not a fraction
    }
    (nanos, i)
}

/// `±hh:mm`, `±hhmm` or `±hh` at the start of `s`: (offset seconds, bytes).
fn zone_offset(s: &[u8]) -> Option<(i32, usize)> {
    let sign = match s.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, _) = digits(s.get(1..3)?, 2, 2)?;
    let (m, n) = match s.get(3) {
        Some(b':') => (digits(s.get(4..6)?, 2, 2)?.0, 6),
        Some(c) if c.is_ascii_digit() => (digits(s.get(3..5)?, 2, 2)?.0, 5),
        _ => (0, 3),
    };
    if h > 23 || m > 59 {
        return None;
    }
    let secs = i32::try_from(h * 3600 + m * 60).ok()?;
    Some((sign * secs, n))
}

/// Between `min` and `max` ASCII digits at the start of `s`: (value, count).
fn digits(s: &[u8], min: usize, max: usize) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    let mut n = 0;
    while n < max {
        match s.get(n) {
            Some(c) if c.is_ascii_digit() => {
                v = v * 10 + u32::from(c - b'0');
                n += 1;
            }
            _ => break,
        }
    }
    (n >= min).then_some((v, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid")
    }

    fn bsd(s: &str) -> BsdStamp {
        parse_bsd(s.as_bytes()).expect("parses").0
    }

    #[test]
    fn bsd_day_padding_variants() {
        assert_eq!(bsd("Mar  1 10:00:00 x").day, 1);
        assert_eq!(bsd("Mar 01 10:00:00 x").day, 1);
        assert_eq!(bsd("Mar 1 10:00:00 x").day, 1);
        assert_eq!(
            parse_bsd(b"Dec 10 06:55:46 LabSZ").map(|(_, n)| n),
            Some(15)
        );
        let frac = parse_bsd(b"Dec 10 06:55:46.123456 host").expect("fraction");
        assert_eq!(frac.0.nanos, 123_456_000);
        assert_eq!(frac.1, 22);
        let cisco = bsd("Mar  1 2024 10:00:00: %SYS");
        assert_eq!(cisco.year, Some(2024));
        assert_eq!((cisco.hour, cisco.minute), (10, 0));
    }

    #[test]
    fn bsd_rejects_garbage() {
        for s in [
            "Foo 10 06:55:46",
            "Dec 10 6:55:46",
            "Dec 10 26:55:46",
            "Dec 00 06:55:46",
            "Dec 10",
            "Dec",
            "",
            "Dec 10 06:55",
        ] {
            assert!(parse_bsd(s.as_bytes()).is_none(), "{s:?}");
        }
    }

    #[test]
    fn year_inferred_from_receive_time() {
        let utc0 = FixedOffset::east_opt(0).expect("offset");
        // Same year, in the past.
        let t = resolve_bsd(
            &bsd("Mar  1 10:00:00"),
            utc0,
            None,
            utc(2026, 6, 1, 0, 0, 0),
        );
        assert_eq!(t, Some(utc(2026, 3, 1, 10, 0, 0)));
        // More than a day in the future this year → last year.
        let t = resolve_bsd(
            &bsd("Jun  5 10:00:00"),
            utc0,
            None,
            utc(2026, 6, 1, 0, 0, 0),
        );
        assert_eq!(t, Some(utc(2025, 6, 5, 10, 0, 0)));
        // Less than a day ahead (clock skew) → this year.
        let t = resolve_bsd(
            &bsd("Jun  1 20:00:00"),
            utc0,
            None,
            utc(2026, 6, 1, 0, 0, 0),
        );
        assert_eq!(t, Some(utc(2026, 6, 1, 20, 0, 0)));
    }

    #[test]
    fn year_rollover_both_directions() {
        let utc0 = FixedOffset::east_opt(0).expect("offset");
        // December line received in early January: previous year.
        let t = resolve_bsd(
            &bsd("Dec 31 23:59:58"),
            utc0,
            None,
            utc(2027, 1, 1, 0, 0, 5),
        );
        assert_eq!(t, Some(utc(2026, 12, 31, 23, 59, 58)));
        // January line received just before midnight on 31 Dec: next year.
        let t = resolve_bsd(
            &bsd("Jan  1 00:00:01"),
            utc0,
            None,
            utc(2026, 12, 31, 23, 59, 50),
        );
        assert_eq!(t, Some(utc(2027, 1, 1, 0, 0, 1)));
    }

    #[test]
    fn leap_day_and_impossible_dates() {
        let utc0 = FixedOffset::east_opt(0).expect("offset");
        // 29 Feb received in 2027 → the last leap year, 2024.
        let t = resolve_bsd(
            &bsd("Feb 29 12:00:00"),
            utc0,
            None,
            utc(2027, 3, 1, 0, 0, 0),
        );
        assert_eq!(t, Some(utc(2024, 2, 29, 12, 0, 0)));
        assert_eq!(
            resolve_bsd(
                &bsd("Feb 30 12:00:00"),
                utc0,
                None,
                utc(2027, 3, 1, 0, 0, 0)
            ),
            None
        );
    }

    #[test]
    fn configured_zone_and_fixed_year() {
        let almaty = FixedOffset::east_opt(5 * 3600).expect("offset");
        let t = resolve_bsd(
            &bsd("Mar  1 10:00:00"),
            almaty,
            None,
            utc(2026, 6, 1, 0, 0, 0),
        );
        assert_eq!(t, Some(utc(2026, 3, 1, 5, 0, 0)));
        let t = resolve_bsd(
            &bsd("Dec 10 06:55:46"),
            almaty,
            Some(2015),
            utc(2026, 6, 1, 0, 0, 0),
        );
        assert_eq!(t, Some(utc(2015, 12, 10, 1, 55, 46)));
        // The zone also decides the receive year: 31 Dec 20:00 UTC is already
        // 1 Jan 01:00 at +05:00.
        let t = resolve_bsd(
            &bsd("Jan  1 00:30:00"),
            almaty,
            None,
            utc(2026, 12, 31, 20, 0, 0),
        );
        assert_eq!(t, Some(utc(2026, 12, 31, 19, 30, 0)));
    }

    #[test]
    fn iso_variants() {
        let utc0 = FixedOffset::east_opt(0).expect("offset");
        let (t, n) = parse_iso(b"2024-03-01T10:00:00.123456+06:00 host", utc0).expect("iso");
        assert_eq!(n, 32);
        assert_eq!(
            t,
            utc(2024, 3, 1, 4, 0, 0) + Duration::microseconds(123_456)
        );
        let (t, n) = parse_iso(b"2024-03-01T10:00:00Z", utc0).expect("z");
        assert_eq!((t, n), (utc(2024, 3, 1, 10, 0, 0), 20));
        let (t, _) = parse_iso(b"2024-03-01 10:00:00-0130", utc0).expect("compact zone");
        assert_eq!(t, utc(2024, 3, 1, 11, 30, 0));
        let plus5 = FixedOffset::east_opt(5 * 3600).expect("offset");
        let (t, n) = parse_iso(b"2024-03-01T10:00:00", plus5).expect("no zone");
        assert_eq!((t, n), (utc(2024, 3, 1, 5, 0, 0), 19));
        for bad in [
            "2024-13-01T10:00:00Z",
            "2024-02-30T10:00:00Z",
            "2024-03-01X10:00:00Z",
            "2024-03-01T10:00",
            "2024-03-01T10:00:00+2",
            "24-03-01T10:00:00Z",
        ] {
            assert!(parse_iso(bad.as_bytes(), utc0).is_none(), "{bad}");
        }
    }

    #[test]
    fn clf_and_epochs() {
        let utc0 = FixedOffset::east_opt(0).expect("offset");
        assert_eq!(
            parse_clf(b"10/Oct/2000:13:55:36 -0700", utc0),
            Some(utc(2000, 10, 10, 20, 55, 36))
        );
        assert_eq!(parse_clf(b"10/Oct/2000:13:55", utc0), None);
        let t = utc(2024, 3, 1, 10, 0, 0);
        let secs = t.timestamp();
        assert_eq!(from_epoch(secs as f64), Some(t));
        assert_eq!(from_epoch((secs * 1000) as f64), Some(t));
        assert_eq!(from_epoch_text(&format!("{}", secs * 1_000_000)), Some(t));
        assert_eq!(
            from_epoch_text(&format!("{}", secs * 1_000_000_000)),
            Some(t)
        );
        assert_eq!(from_epoch_text("12ab"), None);
        assert_eq!(from_epoch(f64::NAN), None);
        assert_eq!(from_epoch(-1.0), None);
    }
}
