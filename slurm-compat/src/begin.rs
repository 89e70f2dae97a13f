//! `--begin` times, as Slurm's `parse_time` reads them (`src/common/parse_time.c`).
//!
//! Accepted, in local time: `HH:MM[:SS] [AM|PM]`, `YYYY-MM-DD[THH:MM[:SS]]`, `MMDD[YY]`,
//! `MM/DD[/YY]`, `MM.DD[.YY]`, `MM/DD[/YY]-HH:MM[:SS]`, the words `today`, `tomorrow`,
//! `midnight`, `noon`, `elevenses` (11:00), `fika` (15:00), `teatime` (16:00), in any order
//! (`tomorrow noon`); `now[{+|-}COUNT[seconds|minutes|hours|days|weeks]]` (seconds by default);
//! and `uts<SECONDS>`, a Unix time.
//!
//! Parsing is pure: [`parse_begin`] gives a [`BeginTime`], and [`BeginTime::at`] works out the
//! wall-clock time against a given "now", with Slurm's rules: a time without a date is today if
//! it is still ahead, else tomorrow; a date without a year is this year if still ahead, else
//! next year; a date without a time is midnight. Out-of-range days roll over as `mktime` does.
//!
//! Not supported, with an explicit error: `now` combined with a date or time word
//! (`now+1hour noon`, which Slurm resolves by letting the last word win).
//! Slurm skips every `T` before looking for a word, so it rejects `Today` and `TEATIME`; we
//! accept any case.

use gangway_api::time::{civil_from_days, days_from_civil};

/// A parsed `--begin` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeginTime {
    /// `uts<SECONDS>`: an absolute Unix time.
    Epoch(i64),
    /// `now` with an offset in seconds (negative for `now-…`).
    Relative(i64),
    /// A local date and/or time of day.
    Local {
        /// The day, if one was given.
        date: Option<DateSpec>,
        /// Hour, minute, second, if a time of day was given.
        time: Option<(u8, u8, u8)>,
    },
}

/// The day part of a [`BeginTime::Local`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSpec {
    /// `today`.
    Today,
    /// `tomorrow`.
    Tomorrow,
    /// A calendar date; without a year, the next one to come.
    Date {
        /// Four-digit year, or `None` when not given.
        year: Option<i32>,
        /// 1–12.
        month: u8,
        /// 1–31 (rolled over into the next month when the month is shorter).
        day: u8,
    },
}

/// A local wall-clock time, to second precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CivilTime {
    /// Year, e.g. 2026.
    pub year: i32,
    /// 1–12.
    pub month: u8,
    /// 1–31.
    pub day: u8,
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// 0–59.
    pub second: u8,
}

/// Why a `--begin` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BeginError {
    /// Not a time Slurm would accept.
    #[error("Invalid time specification (pos={pos}): {value}")]
    Invalid {
        /// The text as given.
        value: String,
        /// Byte offset of the first character that could not be read.
        pos: usize,
    },
    /// A form Slurm accepts that gangway does not.
    #[error("unsupported --begin time `{value}`: {reason}")]
    Unsupported {
        /// The text as given.
        value: String,
        /// What is not supported.
        reason: &'static str,
    },
}

const WORDS: [(&str, u8); 5] = [("midnight", 0), ("noon", 12), ("elevenses", 11), ("fika", 15), ("teatime", 16)];
const UNITS: [(&str, i64); 10] = [
    ("seconds", 1),
    ("second", 1),
    ("minutes", 60),
    ("minute", 60),
    ("hours", 3600),
    ("hour", 3600),
    ("days", 86_400),
    ("day", 86_400),
    ("weeks", 604_800),
    ("week", 604_800),
];

/// Parses a `--begin` value.
pub fn parse_begin(s: &str) -> Result<BeginTime, BeginError> {
    let b = s.as_bytes();
    let invalid = |pos: usize| BeginError::Invalid { value: s.to_string(), pos };
    if starts_with_ci(b, 0, "uts") {
        return match s[3..].parse::<i64>() {
            Ok(uts) if uts >= 1_000_000 => Ok(BeginTime::Epoch(uts)),
            _ => Err(invalid(3)),
        };
    }
    let (mut date, mut time, mut relative) = (None, None, None);
    let mut pos = 0;
    while pos < b.len() && b[pos] != b'\n' {
        let c = b[pos];
        if let Some(word) = ["today", "tomorrow"].into_iter().find(|w| starts_with_ci(b, pos, w)) {
            date = Some(if word == "today" { DateSpec::Today } else { DateSpec::Tomorrow });
            pos += word.len();
        } else if let Some((word, hour)) = WORDS.into_iter().find(|(w, _)| starts_with_ci(b, pos, w)) {
            time = Some((hour, 0, 0));
            pos += word.len();
        } else if starts_with_ci(b, pos, "now") {
            let (delta, end) = now_offset(b, pos + 3).map_err(invalid)?;
            relative = Some(delta);
            pos = end;
        } else if c == b' ' || c == b'\t' || c == b'-' || c == b'T' {
            pos += 1;
        } else if !c.is_ascii_digit() {
            return Err(invalid(pos));
        } else if b.get(pos + 1) == Some(&b':') || b.get(pos + 2) == Some(&b':') {
            let (t, end) = time_of_day(b, pos).map_err(invalid)?;
            time = Some(t);
            pos = end;
        } else {
            let (d, end) = calendar_date(b, pos).map_err(invalid)?;
            date = Some(d);
            pos = end;
        }
    }
    match (relative, date, time) {
        (Some(delta), None, None) => Ok(BeginTime::Relative(delta)),
        (Some(_), _, _) => {
            Err(BeginError::Unsupported { value: s.to_string(), reason: "`now` combined with a date or a time of day" })
        }
        (None, None, None) => Err(invalid(0)),
        (None, date, time) => Ok(BeginTime::Local { date, time }),
    }
}

fn starts_with_ci(b: &[u8], pos: usize, word: &str) -> bool {
    b.get(pos..pos + word.len()).is_some_and(|s| s.eq_ignore_ascii_case(word.as_bytes()))
}

/// After `now`: blanks, then `+COUNT[unit]`, `-COUNT[unit]` or the end. Returns the offset in
/// seconds and the position after it.
fn now_offset(b: &[u8], mut pos: usize) -> Result<(i64, usize), usize> {
    while pos < b.len() && (b[pos] == b' ' || b[pos] == b'\t') {
        pos += 1;
    }
    let sign = match b.get(pos) {
        None | Some(b'\n') => return Ok((0, pos)),
        Some(b'+') => 1,
        Some(b'-') => -1,
        Some(_) => return Err(pos),
    };
    pos += 1;
    let (mut count, mut digits) = (0i64, 0);
    while pos < b.len() && b[pos] != b'\n' {
        if b[pos] == b' ' || b[pos] == b'\t' {
            pos += 1;
        } else if b[pos].is_ascii_digit() {
            count = count.checked_mul(10).and_then(|c| c.checked_add(i64::from(b[pos] - b'0'))).ok_or(pos)?;
            digits += 1;
            pos += 1;
        } else if let Some((unit, mult)) = UNITS.into_iter().find(|(u, _)| starts_with_ci(b, pos, u)) {
            count = count.checked_mul(mult).ok_or(pos)?;
            pos += unit.len();
            break;
        } else {
            return Err(pos);
        }
    }
    if digits == 0 {
        return Err(pos);
    }
    Ok((sign * count, pos))
}

/// `HH:MM[:SS] [AM|PM]` at `pos`.
fn time_of_day(b: &[u8], mut pos: usize) -> Result<((u8, u8, u8), usize), usize> {
    let digit = |pos: usize| b.get(pos).filter(|c| c.is_ascii_digit()).map(|c| c - b'0');
    let mut hour = digit(pos).ok_or(pos)?;
    pos += 1;
    if b.get(pos) != Some(&b':') {
        hour = hour * 10 + digit(pos).ok_or(pos)?;
        pos += 1;
    }
    if hour > 23 || b.get(pos) != Some(&b':') {
        return Err(pos);
    }
    let two = |pos: usize, max: u8| match (digit(pos), digit(pos + 1)) {
        (Some(a), Some(b)) if a * 10 + b <= max => Ok(a * 10 + b),
        _ => Err(pos),
    };
    let minute = two(pos + 1, 59)?;
    pos += 3;
    let mut second = 0;
    if b.get(pos) == Some(&b':') {
        second = two(pos + 1, 59)?;
        pos += 3;
    }
    let mut after = pos;
    while after < b.len() && (b[after] == b' ' || b[after] == b'\t') {
        after += 1;
    }
    if starts_with_ci(b, after, "pm") {
        hour = match hour {
            12 => 12,
            h if h < 12 => h + 12,
            _ => return Err(after),
        };
        pos = after + 2;
    } else if starts_with_ci(b, after, "am") {
        hour = match hour {
            12 => 0,
            h if h < 12 => h,
            _ => return Err(after),
        };
        pos = after + 2;
    }
    Ok(((hour, minute, second), pos))
}

/// `YYYY-MM-DD`, `MMDD[YY]`, `MM/DD[/YY]` or `MM.DD[.YY]` at `pos`.
fn calendar_date(b: &[u8], pos: usize) -> Result<(DateSpec, usize), usize> {
    let digit = |pos: usize| b.get(pos).filter(|c| c.is_ascii_digit()).map(|c| c - b'0');
    // One or two digits in 1..=max.
    let small = |pos: usize, max: u8| -> Result<(u8, usize), usize> {
        let mut v = digit(pos).ok_or(pos)?;
        let mut end = pos + 1;
        if let Some(d) = digit(end) {
            v = v * 10 + d;
            end += 1;
        }
        if v == 0 || v > max {
            return Err(pos);
        }
        Ok((v, end))
    };
    if b.get(pos + 4) == Some(&b'-') && b.get(pos + 7) == Some(&b'-') {
        let mut year = 0i32;
        for i in 0..4 {
            year = year * 10 + i32::from(digit(pos + i).ok_or(pos + i)?);
        }
        let (month, end) = small(pos + 5, 12)?;
        if b.get(end) != Some(&b'-') {
            return Err(end);
        }
        let (day, end) = small(end + 1, 31)?;
        return Ok((DateSpec::Date { year: Some(year), month, day }, end));
    }
    let (month, mut end) = small(pos, 12)?;
    if matches!(b.get(end), Some(b'.' | b'/')) {
        end += 1;
    }
    let (day, mut end) = small(end, 31)?;
    if matches!(b.get(end), Some(b'.' | b'/')) {
        end += 1;
    }
    let mut year = None;
    if let Some(tens) = digit(end) {
        let ones = digit(end + 1).ok_or(end + 1)?;
        year = Some(2000 + i32::from(tens * 10 + ones));
        end += 2;
    }
    Ok((DateSpec::Date { year, month, day }, end))
}

impl BeginTime {
    /// The local wall-clock time this asks for, given the local time now; `None` for
    /// [`BeginTime::Epoch`], which is already absolute.
    pub fn at(&self, now: CivilTime) -> Option<CivilTime> {
        match *self {
            BeginTime::Epoch(_) => None,
            BeginTime::Relative(delta) => Some(from_secs(to_secs(now).saturating_add(delta))),
            BeginTime::Local { date, time } => Some(local_at(date, time, now)),
        }
    }
}

fn local_at(date: Option<DateSpec>, time: Option<(u8, u8, u8)>, now: CivilTime) -> CivilTime {
    let tomorrow = from_secs(to_secs(now) + 86_400);
    let (hour, minute, second) = time.unwrap_or((0, 0, 0));
    let at = |year: i32, month: u8, day: u8| normalize(year, month, day, hour, minute, second);
    match date {
        Some(DateSpec::Today) => at(now.year, now.month, now.day),
        Some(DateSpec::Tomorrow) => at(tomorrow.year, tomorrow.month, tomorrow.day),
        Some(DateSpec::Date { year: Some(year), month, day }) => at(year, month, day),
        Some(DateSpec::Date { year: None, month, day }) => {
            let ahead = (month, day, hour, minute) > (now.month, now.day, now.hour, now.minute);
            at(if ahead { now.year } else { now.year + 1 }, month, day)
        }
        None if (hour, minute) > (now.hour, now.minute) => at(now.year, now.month, now.day),
        None => at(tomorrow.year, tomorrow.month, tomorrow.day),
    }
}

/// The time a possibly out-of-range date names (a day past its month's end counts on).
fn normalize(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> CivilTime {
    from_secs(to_secs(CivilTime { year, month, day, hour, minute, second }))
}

fn to_secs(t: CivilTime) -> i64 {
    let days = days_from_civil(i64::from(t.year), u32::from(t.month), u32::from(t.day));
    days * 86_400 + i64::from(t.hour) * 3600 + i64::from(t.minute) * 60 + i64::from(t.second)
}

fn from_secs(secs: i64) -> CivilTime {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    CivilTime {
        year: i32::try_from(year).unwrap_or(if year < 0 { i32::MIN } else { i32::MAX }),
        month: month as u8,
        day: day as u8,
        hour: (rem / 3600) as u8,
        minute: (rem / 60 % 60) as u8,
        second: (rem % 60) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tuesday 2026-11-24 14:30:15.
    const NOW: CivilTime = CivilTime { year: 2026, month: 11, day: 24, hour: 14, minute: 30, second: 15 };

    fn civil(year: i32, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> CivilTime {
        CivilTime { year, month, day, hour, minute, second }
    }

    fn check(input: &str, expected: CivilTime) {
        let parsed = parse_begin(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(parsed.at(NOW), Some(expected), "input {input:?} parsed as {parsed:?}");
    }

    #[test]
    fn relative_to_now() {
        check("now", NOW);
        check("now+60", civil(2026, 11, 24, 14, 31, 15));
        check("now+1hour", civil(2026, 11, 24, 15, 30, 15));
        check("now+2hours", civil(2026, 11, 24, 16, 30, 15));
        check("now+ 10 minutes", civil(2026, 11, 24, 14, 40, 15));
        check("now+1day", civil(2026, 11, 25, 14, 30, 15));
        check("NOW+1WEEK", civil(2026, 12, 1, 14, 30, 15));
        check("now-30seconds", civil(2026, 11, 24, 14, 29, 45));
        check("now+10days", civil(2026, 12, 4, 14, 30, 15));
    }

    #[test]
    fn times_of_day() {
        check("16:00", civil(2026, 11, 24, 16, 0, 0)); // still ahead: today
        check("09:00", civil(2026, 11, 25, 9, 0, 0)); // passed: tomorrow
        check("14:30", civil(2026, 11, 25, 14, 30, 0)); // this minute counts as passed
        check("14:31:05", civil(2026, 11, 24, 14, 31, 5));
        check("4:15pm", civil(2026, 11, 24, 16, 15, 0));
        check("12:00 AM", civil(2026, 11, 25, 0, 0, 0));
        check("12:00pm", civil(2026, 11, 25, 12, 0, 0));
        check("teatime", civil(2026, 11, 24, 16, 0, 0));
        check("noon", civil(2026, 11, 25, 12, 0, 0));
        check("midnight", civil(2026, 11, 25, 0, 0, 0));
        check("elevenses", civil(2026, 11, 25, 11, 0, 0));
        check("fika", civil(2026, 11, 24, 15, 0, 0));
    }

    #[test]
    fn dates() {
        check("2026-12-25", civil(2026, 12, 25, 0, 0, 0));
        check("2027-01-02T10:30", civil(2027, 1, 2, 10, 30, 0));
        check("2027-01-02T10:30:45", civil(2027, 1, 2, 10, 30, 45));
        check("2026-11-20", civil(2026, 11, 20, 0, 0, 0)); // in the past: eligible at once
        check("1225", civil(2026, 12, 25, 0, 0, 0));
        check("0101", civil(2027, 1, 1, 0, 0, 0)); // no year and passed: next year
        check("12/25", civil(2026, 12, 25, 0, 0, 0));
        check("12/25/27", civil(2027, 12, 25, 0, 0, 0));
        check("12.25.27", civil(2027, 12, 25, 0, 0, 0));
        check("122527", civil(2027, 12, 25, 0, 0, 0));
        check("12/25-10:00", civil(2026, 12, 25, 10, 0, 0));
        check("2026-02-31", civil(2026, 3, 3, 0, 0, 0)); // rolled over as mktime does
    }

    #[test]
    fn words_combine() {
        check("today", civil(2026, 11, 24, 0, 0, 0));
        check("tomorrow", civil(2026, 11, 25, 0, 0, 0));
        check("tomorrow noon", civil(2026, 11, 25, 12, 0, 0));
        check("noon tomorrow", civil(2026, 11, 25, 12, 0, 0));
        check("today 18:00", civil(2026, 11, 24, 18, 0, 0));
        check("Today", civil(2026, 11, 24, 0, 0, 0));
    }

    #[test]
    fn epoch() {
        assert_eq!(parse_begin("uts1800000000"), Ok(BeginTime::Epoch(1_800_000_000)));
        assert_eq!(parse_begin("uts1800000000").unwrap().at(NOW), None);
        assert!(parse_begin("uts12").is_err());
        assert!(parse_begin("uts").is_err());
    }

    #[test]
    fn year_end_rollover() {
        let now = civil(2026, 12, 31, 23, 59, 0);
        assert_eq!(parse_begin("now+2minutes").unwrap().at(now), Some(civil(2027, 1, 1, 0, 1, 0)));
        assert_eq!(parse_begin("tomorrow").unwrap().at(now), Some(civil(2027, 1, 1, 0, 0, 0)));
        assert_eq!(parse_begin("10:00").unwrap().at(now), Some(civil(2027, 1, 1, 10, 0, 0)));
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            " ",
            "later",
            "now+",
            "now+hour",
            "now+1h",
            "now 5",
            "25:00",
            "12:60",
            "12:5",
            "1:00:6",
            "13:00pm",
            "13/01",
            "00/10",
            "12/32",
            "2026-13-01",
            "2026-1x-01",
            "abc",
            "12:00 pmx",
            "now+1hourfoo",
        ] {
            assert!(parse_begin(bad).is_err(), "{bad:?} should be rejected, got {:?}", parse_begin(bad));
        }
    }

    #[test]
    fn now_with_a_date_is_unsupported() {
        assert!(matches!(parse_begin("now+1hour noon"), Err(BeginError::Unsupported { .. })));
        assert!(matches!(parse_begin("tomorrow now"), Err(BeginError::Unsupported { .. })));
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 59, 365, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(s in ".{0,32}") {
            if let Ok(t) = parse_begin(&s) {
                let _ = t.at(CivilTime { year: 2026, month: 2, day: 28, hour: 23, minute: 59, second: 59 });
            }
        }

        #[test]
        fn never_panics_on_near_misses(s in "[0-9:/.\\- TtnowuspmaPMAod+]{0,20}") {
            if let Ok(t) = parse_begin(&s) {
                let _ = t.at(CivilTime { year: 2026, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
            }
        }

        #[test]
        fn full_dates_round_trip(y in 1970i32..2100, m in 1u8..=12, d in 1u8..=28, h in 0u8..24, mi in 0u8..60, s in 0u8..60) {
            let text = format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
            let now = CivilTime { year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
            let want = CivilTime { year: y, month: m, day: d, hour: h, minute: mi, second: s };
            prop_assert_eq!(parse_begin(&text).map(|t| t.at(now)), Ok(Some(want)));
        }
    }
}
