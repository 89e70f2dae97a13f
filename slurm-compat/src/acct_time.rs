//! sacct's `-S`/`-E` times: the grammar of `--begin` ([`crate::begin`]: `2026-11-23`,
//! `2026-11-23T05:49[:44]`, `11/23[/26]`, `now-1hour`, `today`, `midnight`, `uts…`, …)
//! resolved looking back, as sacct does: a time of day without a date is today, a date
//! without a year is this year. UTC (see [`crate::format`]).

use gangway_api::time::days_from_civil;
use gangway_api::Timestamp;

use crate::begin::{parse_begin, BeginTime, DateSpec};
use crate::format::civil_date;

/// Midnight (UTC) of the day of `now`: sacct's default `-S`.
pub fn midnight(now: Timestamp) -> Timestamp {
    let (y, m, d) = civil_date(now);
    Timestamp(days_from_civil(y, m, d).saturating_mul(86_400).saturating_mul(1_000_000))
}

/// Reads a `-S`/`-E` value against `now`. The error is sacct's wording.
pub fn parse_acct_time(value: &str, now: Timestamp) -> Result<Timestamp, String> {
    let invalid = || format!("Invalid time specification: {value}");
    let secs = match parse_begin(value).map_err(|_| invalid())? {
        BeginTime::Epoch(s) => s,
        BeginTime::Relative(delta) => now.0.div_euclid(1_000_000).saturating_add(delta),
        BeginTime::Local { date, time } => {
            let (y, m, d) = civil_date(now);
            let day = match date {
                None | Some(DateSpec::Today) => days_from_civil(y, m, d),
                Some(DateSpec::Tomorrow) => days_from_civil(y, m, d) + 1,
                Some(DateSpec::Date { year, month, day }) => {
                    days_from_civil(year.map_or(y, i64::from), u32::from(month), u32::from(day))
                }
            };
            let (h, mi, s) = time.unwrap_or((0, 0, 0));
            day.saturating_mul(86_400) + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s)
        }
    };
    Ok(Timestamp(secs.saturating_mul(1_000_000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-23T09:40:00Z
    const NOW: Timestamp = Timestamp(1_795_426_800_000_000);

    fn check(value: &str, expected: &str) {
        let got = parse_acct_time(value, NOW).map(crate::format::iso_time);
        assert_eq!(got.as_deref(), Ok(expected), "{value:?}");
    }

    #[test]
    fn forms() {
        assert_eq!(crate::format::iso_time(NOW), "2026-11-23T09:40:00");
        check("2026-11-23", "2026-11-23T00:00:00");
        check("2026-11-20T05:49", "2026-11-20T05:49:00");
        check("2026-11-20T05:49:44", "2026-11-20T05:49:44");
        check("11/20", "2026-11-20T00:00:00");
        check("11/20/25", "2025-11-20T00:00:00");
        check("now-1hour", "2026-11-23T08:40:00");
        check("now-2days", "2026-11-21T09:40:00");
        check("now", "2026-11-23T09:40:00");
        check("today", "2026-11-23T00:00:00");
        check("midnight", "2026-11-23T00:00:00");
        check("05:00", "2026-11-23T05:00:00");
        check("uts1795426800", "2026-11-23T09:40:00");
        assert_eq!(crate::format::iso_time(midnight(NOW)), "2026-11-23T00:00:00");
    }

    #[test]
    fn errors() {
        assert_eq!(parse_acct_time("yesterdayish", NOW), Err("Invalid time specification: yesterdayish".into()));
        assert!(parse_acct_time("", NOW).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_acct_time(&s, NOW);
        }
    }
}
