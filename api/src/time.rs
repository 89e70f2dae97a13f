//! Timestamps and durations as Azure Batch writes them on the wire: RFC 3339 UTC
//! timestamps (`2026-11-23T07:00:12.123Z`) and ISO 8601 durations (`PT10M`, `P1DT2H`).
//!
//! Written by hand rather than pulled from a date crate: gangway needs exactly these two
//! formats, and every dependency costs every developer build minutes.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }

    /// Milliseconds elapsed from `earlier` to `self` (0 when `earlier` is later).
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        self.micros_since(earlier) / 1000
    }

    /// Microseconds elapsed from `earlier` to `self` (0 when `earlier` is later).
    pub fn micros_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0).max(0) as u64
    }

    /// From milliseconds since the epoch.
    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp(ms.saturating_mul(1000))
    }

    /// `self` moved forward by `d`.
    pub fn plus(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_micros().min(i64::MAX as u128) as i64))
    }

    /// Parses an RFC 3339 timestamp (`Z` or a numeric offset, optional fraction).
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        parse_rfc3339(s).ok_or_else(|| format!("'{s}' is not an RFC 3339 timestamp (like 2026-11-23T07:00:12.123Z)"))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.rem_euclid(1_000_000);
        let secs = self.0.div_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{us:06}Z", sod / 3600, (sod / 60) % 60, sod % 60)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

// Howard Hinnant's days-from-civil algorithms: exact for the proleptic Gregorian calendar.

/// The (year, month, day) of a day counted from 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a civil date; a day past the end of its month counts on into the
/// next, as `mktime` normalises it.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut us = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        let padded: String = digits.chars().chain("000000".chars()).take(6).collect();
        us = padded.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().ok()? * 60 + rest[4..6].parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(Timestamp(secs * 1_000_000 + us))
}

/// An ISO 8601 duration such as `PT10M`; Azure's maximum (`P10675199DT2H48M5.4775807S`)
/// means "no limit" and reads as `None` where the field is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoDuration(pub Duration);

/// The largest duration Azure Batch accepts; it stands for "unlimited".
pub const UNLIMITED_SECS: u64 = 10_675_199 * 86_400 + 2 * 3600 + 48 * 60 + 5;

impl IsoDuration {
    /// Whether this is Azure's "unlimited" value (or beyond).
    pub fn is_unlimited(&self) -> bool {
        self.0.as_secs() >= UNLIMITED_SECS
    }

    /// Parses `PnDTnHnMnS` (weeks `PnW` too; fractional seconds allowed).
    pub fn parse(s: &str) -> Result<IsoDuration, String> {
        parse_iso_duration(s).ok_or_else(|| format!("'{s}' is not an ISO 8601 duration (like PT10M, PT1H30M or P2D)"))
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.0.as_secs();
        let millis = self.0.subsec_millis();
        let (d, h, m, s) = (total / 86_400, (total / 3600) % 24, (total / 60) % 60, total % 60);
        f.write_str("P")?;
        if d > 0 {
            write!(f, "{d}D")?;
        }
        if h == 0 && m == 0 && s == 0 && millis == 0 {
            return if d == 0 { f.write_str("T0S") } else { Ok(()) };
        }
        f.write_str("T")?;
        if h > 0 {
            write!(f, "{h}H")?;
        }
        if m > 0 {
            write!(f, "{m}M")?;
        }
        if millis > 0 {
            write!(f, "{s}.{millis:03}S")?;
        } else if s > 0 {
            write!(f, "{s}S")?;
        }
        Ok(())
    }
}

impl Serialize for IsoDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IsoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        IsoDuration::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn parse_iso_duration(s: &str) -> Option<IsoDuration> {
    let rest = s.strip_prefix('P').or_else(|| s.strip_prefix('p'))?;
    if rest.is_empty() {
        return None;
    }
    let mut secs = 0f64;
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'T' | 't' if !in_time && num.is_empty() => in_time = true,
            _ => {
                let v: f64 = num.parse().ok()?;
                num.clear();
                any = true;
                secs += v * match (in_time, c.to_ascii_uppercase()) {
                    (false, 'W') => 7.0 * 86_400.0,
                    (false, 'D') => 86_400.0,
                    (true, 'H') => 3600.0,
                    (true, 'M') => 60.0,
                    (true, 'S') => 1.0,
                    _ => return None,
                };
            }
        }
    }
    if !num.is_empty() || !any || !secs.is_finite() {
        return None;
    }
    let secs = secs.min(UNLIMITED_SECS as f64 + 1.0);
    Some(IsoDuration(Duration::from_millis((secs * 1000.0).round() as u64)))
}

/// Parses a user-friendly duration for the CLI: `90`, `90s`, `250ms`, `10m`, `2h`, `1d`, `1h30m`, or ISO 8601.
pub fn parse_human_duration(s: &str) -> Result<Duration, String> {
    if s.starts_with(['P', 'p']) {
        return IsoDuration::parse(s).map(|d| d.0);
    }
    let err = || format!("'{s}' is not a duration (like 250ms, 90s, 10m, 2h, 1d, 1h30m or PT10M)");
    if s.is_empty() {
        return Err(err());
    }
    let mut total_ms = 0u64;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let v: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let ms = match &rest[..unit_len] {
            "" | "s" => 1000,
            "ms" => 1,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        total_ms = v.checked_mul(ms).and_then(|x| x.checked_add(total_ms)).ok_or_else(err)?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Seconds for a duration in Slurm's `time_str2secs` forms: `M`, `M:S`, `H:M:S`, `D-`, `D-H`,
/// `D-H:M`, `D-H:M:S`; `None` if malformed or so large that it overflows.
pub fn slurm_duration_secs(s: &str) -> Option<u64> {
    let (days, rest) = match s.split_once('-') {
        Some((d, rest)) => (Some(number(d)?), rest),
        None => (None, s),
    };
    let parts: Vec<&str> = if rest.is_empty() && days.is_some() { Vec::new() } else { rest.split(':').collect() };
    if parts.len() > 3 {
        return None;
    }
    let nums = parts.iter().map(|p| number(p)).collect::<Option<Vec<u64>>>()?;
    let (h, m, sec) = match (days.is_some(), nums.as_slice()) {
        // After a dash the fields are hours[:minutes[:seconds]].
        (true, []) => (0, 0, 0),
        (true, [h]) => (*h, 0, 0),
        (true, [h, m]) => (*h, *m, 0),
        (true, [h, m, s]) => (*h, *m, *s),
        // Without one: minutes, minutes:seconds, hours:minutes:seconds.
        (false, [m]) => (0, *m, 0),
        (false, [m, s]) => (0, *m, *s),
        (false, [h, m, s]) => (*h, *m, *s),
        _ => return None,
    };
    days.unwrap_or(0)
        .checked_mul(86_400)?
        .checked_add(h.checked_mul(3600)?)?
        .checked_add(m.checked_mul(60)?)?
        .checked_add(sec)
}

/// A non-empty run of ASCII digits.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        for s in [
            "1970-01-01T00:00:00.000000Z",
            "2026-11-23T07:00:12.123456Z",
            "2000-02-29T23:59:59.999000Z",
            "1969-12-31T23:59:59.000000Z",
        ] {
            let t = Timestamp::parse(s).unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(
            Timestamp::parse("2026-11-23T08:00:12+01:00").unwrap(),
            Timestamp::parse("2026-11-23T07:00:12Z").unwrap()
        );
        assert_eq!(Timestamp::parse("1970-01-01T00:00:01.5Z").unwrap(), Timestamp::from_millis(1500));
        assert_eq!(Timestamp::parse("1970-01-01T00:00:01.1234567Z").unwrap(), Timestamp(1_123_456));
        for bad in ["", "2026-13-01T00:00:00Z", "2026-11-23", "2026-11-23T07:00:12", "2026-11-23T07:00:12.Z"] {
            assert!(Timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let check = |s: &str, secs: u64, back: &str| {
            let d = IsoDuration::parse(s).unwrap();
            assert_eq!(d.0.as_secs(), secs, "{s}");
            assert_eq!(d.to_string(), back, "{s}");
        };
        check("PT10M", 600, "PT10M");
        check("PT1H30M", 5400, "PT1H30M");
        check("P1DT2H", 93_600, "P1DT2H");
        check("P1W", 604_800, "P7D");
        check("PT0S", 0, "PT0S");
        check("PT90S", 90, "PT1M30S");
        assert!(IsoDuration::parse("P10675199DT2H48M5.4775807S").unwrap().is_unlimited());
        for bad in ["", "P", "10M", "PT", "P1H", "PT1D", "PTxS"] {
            assert!(IsoDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn human_durations() {
        assert_eq!(parse_human_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_human_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_human_duration("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(parse_human_duration("PT2H").unwrap().as_secs(), 7200);
        assert_eq!(parse_human_duration("250ms").unwrap().as_millis(), 250);
        assert_eq!(parse_human_duration("1m30s").unwrap().as_secs(), 90);
        for bad in ["", "m", "10x", "1.5h", "10mss"] {
            assert!(parse_human_duration(bad).is_err(), "{bad}");
        }
    }
}
