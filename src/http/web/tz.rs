//! The store's time zone on the pages: times are shown, and schedules typed, in the store's
//! local time. The offsets come from the system's zone database (TZif files under
//! `/usr/share/zoneinfo`, or `$TZDIR`), read once per zone; the binary embeds none. A zone the
//! system does not have is shown as UTC and says so, rather than guessing an offset.

use crate::domain::time::{parse_rfc3339, rfc3339};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// One zone's UTC offsets: `offsets[i]` applies from `starts[i]` (epoch seconds) on; before the
/// first transition, `initial`. Past the table's end (tzdata lists them to 2037) the last offset stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// The IANA name, or "UTC" when the system does not know the store's zone.
    pub name: String,
    starts: Vec<i64>,
    offsets: Vec<i32>,
    initial: i32,
}

impl Zone {
    pub fn utc() -> Zone {
        Zone { name: "UTC".into(), starts: Vec::new(), offsets: Vec::new(), initial: 0 }
    }

    /// The store's zone, from the cache or the zone database; UTC when it cannot be read.
    pub fn named(name: &str) -> Arc<Zone> {
        static CACHE: OnceLock<Mutex<HashMap<String, Arc<Zone>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(z) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return z.clone();
        }
        let zone = Arc::new(load(name).unwrap_or_else(Zone::utc));
        cache.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), zone.clone());
        zone
    }

    /// Seconds east of UTC at instant `ms`.
    pub fn offset_at(&self, ms: i64) -> i32 {
        let secs = ms.div_euclid(1000);
        match self.starts.partition_point(|&s| s <= secs) {
            0 => self.initial,
            i => self.offsets[i - 1],
        }
    }

    /// `ms` as local wall-clock time, `2026-12-07T14:05:00.000` (RFC 3339 without the zone).
    fn wall(&self, ms: i64) -> String {
        let mut s = rfc3339(ms + i64::from(self.offset_at(ms)) * 1000);
        s.pop();
        s
    }

    /// `2026-12-07 14:05`: what the pages show (the zone's name is said once per page).
    pub fn minute(&self, ms: i64) -> String {
        self.wall(ms)[..16].replace('T', " ")
    }

    /// `2026-12-07`: the local date.
    pub fn date(&self, ms: i64) -> String {
        self.wall(ms)[..10].to_string()
    }

    /// The value of a `datetime-local` field: `2026-12-07T14:05`.
    pub fn input_value(&self, ms: i64) -> String {
        self.wall(ms)[..16].to_string()
    }

    /// A `datetime-local` value (`2026-12-07T14:05`, seconds optional) read as local time, as
    /// the instant it names. A time the clocks skip (spring forward) is read with the offset
    /// before the change; a time that happens twice (fall back), as the first of the two.
    pub fn from_local(&self, value: &str) -> Option<i64> {
        let v = value.trim();
        let full = match v.len() {
            16 => format!("{v}:00Z"),
            19 => format!("{v}Z"),
            _ => return None,
        };
        let wall = parse_rfc3339(&full)?;
        // The offset at the earliest instant the wall time can be, then checked once more.
        let early = self.offset_at(wall - 86_400_000 / 2);
        let late = self.offset_at(wall + 86_400_000 / 2);
        let first = wall - i64::from(early.max(late)) * 1000;
        if self.offset_at(first) == early.max(late) {
            return Some(first);
        }
        Some(wall - i64::from(early.min(late)) * 1000)
    }

    /// Midnight of `now`'s local day and of the first of its month, as instants.
    pub fn day_and_month_start(&self, now: i64) -> (i64, i64) {
        let today = self.date(now);
        let day = self.from_local(&format!("{today}T00:00")).unwrap_or(now);
        let month = self.from_local(&format!("{}-01T00:00", &today[..7])).unwrap_or(day);
        (day, month)
    }
}

/// Reads `name` from the zone database. The name has already passed `validate_timezone` when
/// it was stored; it is checked again here because it becomes a path.
fn load(name: &str) -> Option<Zone> {
    if name == "UTC" || name.is_empty() || name.split('/').any(|p| p.is_empty() || p.starts_with('.')) {
        return None;
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "/_-+".contains(c)) {
        return None;
    }
    let dir = std::env::var("TZDIR").unwrap_or_else(|_| "/usr/share/zoneinfo".into());
    let bytes = std::fs::read(std::path::Path::new(&dir).join(name)).ok()?;
    parse_tzif(name, &bytes)
}

/// The transitions of a TZif file (RFC 8536): the 64-bit block of version 2+ files, else the
/// 32-bit one.
fn parse_tzif(name: &str, b: &[u8]) -> Option<Zone> {
    struct Header {
        isutc: usize,
        isstd: usize,
        leap: usize,
        time: usize,
        typ: usize,
        chars: usize,
    }
    let header = |b: &[u8]| -> Option<Header> {
        if b.get(..4)? != b"TZif" {
            return None;
        }
        let n = |i: usize| -> Option<usize> { Some(u32::from_be_bytes(b.get(20 + 4 * i..24 + 4 * i)?.try_into().ok()?) as usize) };
        Some(Header { isutc: n(0)?, isstd: n(1)?, leap: n(2)?, time: n(3)?, typ: n(4)?, chars: n(5)? })
    };
    let h1 = header(b)?;
    let v1_len = 44 + h1.time * 5 + h1.typ * 6 + h1.chars + h1.leap * 8 + h1.isstd + h1.isutc;
    let (data, h, width) = if b[4] >= b'2' {
        let rest = b.get(v1_len..)?;
        (rest, header(rest)?, 8)
    } else {
        (b, h1, 4)
    };
    let body = data.get(44..)?;
    let times = body.get(..h.time * width)?;
    let idx = body.get(h.time * width..h.time * width + h.time)?;
    let types = body.get(h.time * (width + 1)..h.time * (width + 1) + h.typ * 6)?;
    let offset_of = |t: usize| -> Option<i32> { Some(i32::from_be_bytes(types.get(t * 6..t * 6 + 4)?.try_into().ok()?)) };
    let mut starts = Vec::with_capacity(h.time);
    let mut offsets = Vec::with_capacity(h.time);
    for i in 0..h.time {
        let t = &times[i * width..(i + 1) * width];
        starts.push(if width == 8 { i64::from_be_bytes(t.try_into().ok()?) } else { i64::from(i32::from_be_bytes(t.try_into().ok()?)) });
        offsets.push(offset_of(usize::from(idx[i]))?);
    }
    // Before the first transition: the first standard-time type (RFC 8536 §3.2: type 0).
    let initial = offset_of(0)?;
    Some(Zone { name: name.to_string(), starts, offsets, initial })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn athens() -> Zone {
        // EET/EEST: +2 in winter, +3 from the last Sunday of March to the last of October.
        let t = |s: &str| parse_rfc3339(s).unwrap() / 1000;
        Zone {
            name: "Europe/Athens".into(),
            starts: vec![t("2026-03-29T01:00:00Z"), t("2026-10-25T01:00:00Z")],
            offsets: vec![10_800, 7_200],
            initial: 7_200,
        }
    }

    #[test]
    fn local_times_both_ways() {
        let z = athens();
        let winter = parse_rfc3339("2026-12-07T22:30:00Z").unwrap();
        assert_eq!(z.minute(winter), "2026-12-08 00:30");
        assert_eq!(z.date(winter), "2026-12-08");
        assert_eq!(z.from_local("2026-12-08T00:30"), Some(winter));
        let summer = parse_rfc3339("2026-07-01T09:00:00Z").unwrap();
        assert_eq!(z.input_value(summer), "2026-07-01T12:00");
        assert_eq!(z.from_local("2026-07-01T12:00"), Some(summer));
        // 03:30 on 29 March does not exist (03:00 → 04:00); 03:30 on 25 October happens twice.
        assert_eq!(z.from_local("2026-03-29T03:30"), parse_rfc3339("2026-03-29T01:30:00Z"));
        assert_eq!(z.from_local("2026-10-25T03:30"), parse_rfc3339("2026-10-25T00:30:00Z"));
        assert_eq!(z.from_local("soon"), None);
        let (day, month) = z.day_and_month_start(winter);
        assert_eq!(rfc3339(day), "2026-12-07T22:00:00.000Z");
        assert_eq!(rfc3339(month), "2026-11-30T22:00:00.000Z");
    }

    #[test]
    fn reads_the_system_zone_database() {
        let z = Zone::named("Europe/Athens");
        if z.name == "UTC" {
            // A system without tzdata: the page says UTC, never a guessed offset.
            assert!(!std::path::Path::new("/usr/share/zoneinfo/Europe/Athens").exists());
            return;
        }
        assert_eq!(z.offset_at(parse_rfc3339("2026-01-15T12:00:00Z").unwrap()), 7_200);
        assert_eq!(z.offset_at(parse_rfc3339("2026-07-15T12:00:00Z").unwrap()), 10_800);
        assert_eq!(*Zone::named("Nowhere/Atlantis"), Zone::utc());
        assert_eq!(Zone::named("../../etc/passwd").name, "UTC");
    }
}
