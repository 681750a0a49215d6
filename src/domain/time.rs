//! Epoch-millisecond timestamps, formatted as RFC 3339 UTC for people and JSON.

/// Formats epoch milliseconds as `2026-11-25T18:12:00.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", sod / 3600, (sod % 3600) / 60, sod % 60)
}

/// Parses RFC 3339 (`2026-11-25T18:12:00Z`, optional fraction, `Z` or `±hh:mm`) to epoch ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.trim().as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b[13] != b':' || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { std::str::from_utf8(&b[r]).ok()?.parse().ok() };
    let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = std::str::from_utf8(&b[start..i]).ok()?;
        if frac.is_empty() {
            return None;
        }
        millis = format!("{frac:0<3}")[..3].parse().ok()?;
    }
    let offset_secs = match &b[i..] {
        [b'Z'] | [b'z'] => 0,
        // Digits only: a byte below '0' underflowed here.
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()) => {
            let hh = (h1 - b'0') as i64 * 10 + (h2 - b'0') as i64;
            let mm = (m1 - b'0') as i64 * 10 + (m2 - b'0') as i64;
            let v = hh * 3600 + mm * 60;
            if *sign == b'+' { v } else { -v }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) - offset_secs) * 1000 + millis)
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        let ms = 1_795_630_320_123;
        assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        assert_eq!(parse_rfc3339("2026-11-25T20:00:00+02:00"), parse_rfc3339("2026-11-25T18:00:00Z"));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    /// Found by fuzzing: an offset whose "digits" sort below '0' underflowed (a panic, so a 500
    /// from the delivery-report webhook and from segment rules).
    #[test]
    fn offsets_that_are_not_digits_are_refused() {
        for s in ["2026-11-25T18:00:00+ !:00", "2026-11-25T18:00:00-0/:00", "2026-11-25T18:00:00+00: 0", "2026-11-25T18:00:00+ab:cd"] {
            assert_eq!(parse_rfc3339(s), None, "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_never_panics(s in crate::domain::fuzz::nasty_text(40)) {
            let _ = parse_rfc3339(&s);
        }

        #[test]
        fn parsing_near_misses_never_panics(s in "[0-9+-]{4}-[0-9 ]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,9})?([Zz]|[+-][ -~]{2}:[ -~]{2})?") {
            let _ = parse_rfc3339(&s);
        }

        /// Every instant from year 0 to 9999 reads back as itself, with any offset written.
        #[test]
        fn format_then_parse_is_the_identity(ms in -62_167_132_800_000i64..253_402_214_399_999, offset_min in -(23 * 60 + 59)..=(23 * 60 + 59i64)) {
            let text = rfc3339(ms);
            proptest::prop_assert_eq!(parse_rfc3339(&text), Some(ms));
            // The same instant as local time at an offset.
            let local = rfc3339(ms + offset_min * 60_000);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let with_offset = format!("{}{sign}{:02}:{:02}", &local[..local.len() - 1], offset_min.abs() / 60, offset_min.abs() % 60);
            proptest::prop_assert_eq!(parse_rfc3339(&with_offset), Some(ms), "{}", with_offset);
        }

        #[test]
        fn formatting_any_instant_never_panics(ms: i64) {
            let _ = rfc3339(ms);
        }
    }
}
