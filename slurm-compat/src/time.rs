//! Slurm time limits (`--time`, `--time-min`) and durations (`--switches=N@TIME`).
//!
//! The grammar is Slurm's `time_str2secs` (`src/common/parse_time.c`): `M`, `M:S`, `H:M:S`,
//! `D-H`, `D-H:M`, `D-H:M:S`, plus `UNLIMITED`, `INFINITE` and `-1` (any case). Fields are not
//! range-checked (`90` is 90 minutes, `1:99` is a minute and 99 seconds), and a time limit is
//! kept in whole minutes, rounded up, as `time_str2mins` does: `0:30` is one minute. sbatch
//! reads a limit of `0` as no limit at all, and so does [`parse_time_limit`].
//!
//! Where we differ on purpose: Slurm also takes `D-` (a day count and a dash) and reads `-5`
//! as minus five days; we take `D-` and reject a leading dash, and we reject values too large
//! for Slurm's 32-bit minute count instead of letting them wrap.

use std::fmt;

// The grammar itself is shared with the head, which reads slurm.conf-style durations too.
use gangway_api::time::slurm_duration_secs as parse_fields;

/// Slurm's `INFINITE` minus one: minute counts at or above it mean something else to Slurm.
const MAX_MINUTES: u64 = 0xffff_fffd;

/// A job time limit as Slurm keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeLimit {
    /// No limit: `UNLIMITED`, `INFINITE`, `-1` or `0`.
    Unlimited,
    /// A limit in whole minutes (never zero).
    Minutes(u32),
}

impl TimeLimit {
    /// The limit in seconds, `None` when unlimited.
    pub fn as_secs(self) -> Option<u64> {
        match self {
            TimeLimit::Unlimited => None,
            TimeLimit::Minutes(m) => Some(u64::from(m) * 60),
        }
    }
}

impl fmt::Display for TimeLimit {
    /// Slurm's `mins2time_str`: `UNLIMITED`, `HH:MM:SS` or `D-HH:MM:SS`, as `scontrol` shows it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TimeLimit::Unlimited => f.write_str("UNLIMITED"),
            TimeLimit::Minutes(m) => format_secs(u64::from(m) * 60, f),
        }
    }
}

/// Writes seconds as Slurm's `secs2time_str` does (`00:00:30`, `1-02:00:00`).
fn format_secs(secs: u64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let (days, hours, minutes, seconds) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        write!(f, "{days}-{hours:02}:{minutes:02}:{seconds:02}")
    } else {
        write!(f, "{hours:02}:{minutes:02}:{seconds:02}")
    }
}

/// Why a time limit or duration could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not one of the accepted forms.
    #[error(
        "Invalid time limit specification `{value}`: expected M, M:S, H:M:S, D-H, D-H:M, D-H:M:S \
         or UNLIMITED"
    )]
    Invalid {
        /// The text as given.
        value: String,
    },
    /// Well formed, but more minutes than Slurm can hold.
    #[error("Invalid time limit specification `{value}`: more than {MAX_MINUTES} minutes")]
    OutOfRange {
        /// The text as given.
        value: String,
    },
}

/// A duration in seconds as Slurm's `time_str2secs` reads it; `None` for `UNLIMITED`.
pub fn parse_duration_secs(s: &str) -> Result<Option<u64>, TimeError> {
    if is_unlimited_word(s) {
        return Ok(None);
    }
    let secs = parse_fields(s).ok_or_else(|| TimeError::Invalid { value: s.to_string() })?;
    if secs > MAX_MINUTES * 60 {
        return Err(TimeError::OutOfRange { value: s.to_string() });
    }
    Ok(Some(secs))
}

/// A job time limit as sbatch reads `--time`: whole minutes rounded up, `0` meaning no limit.
pub fn parse_time_limit(s: &str) -> Result<TimeLimit, TimeError> {
    let Some(secs) = parse_duration_secs(s)? else {
        return Ok(TimeLimit::Unlimited);
    };
    let minutes = secs.div_ceil(60);
    match u32::try_from(minutes) {
        Ok(0) => Ok(TimeLimit::Unlimited),
        Ok(m) if u64::from(m) <= MAX_MINUTES => Ok(TimeLimit::Minutes(m)),
        _ => Err(TimeError::OutOfRange { value: s.to_string() }),
    }
}

fn is_unlimited_word(s: &str) -> bool {
    s == "-1" || s.eq_ignore_ascii_case("UNLIMITED") || s.eq_ignore_ascii_case("INFINITE")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<u64>) {
        let got = parse_time_limit(input).map(TimeLimit::as_secs);
        assert_eq!(got, Ok(expected), "input {input:?}");
    }

    fn check_err(input: &str) {
        assert!(parse_time_limit(input).is_err(), "{input:?} should be rejected, got {:?}", parse_time_limit(input));
    }

    #[test]
    fn every_slurm_form() {
        check("10", Some(600)); // M
        check("90", Some(5400)); // minutes are not range-checked
        check("1:30", Some(120)); // M:S, rounded up to whole minutes
        check("0:30", Some(60));
        check("2:00", Some(120));
        check("1:00:00", Some(3600)); // H:M:S
        check("01:02:03", Some(3780)); // 3723 s rounds up to 63 min
        check("25:00:00", Some(90_000));
        check("1-0", Some(86_400)); // D-H
        check("2-12", Some(2 * 86_400 + 12 * 3600));
        check("1-2:30", Some(86_400 + 2 * 3600 + 30 * 60)); // D-H:M
        check("1-02:30:00", Some(86_400 + 2 * 3600 + 30 * 60)); // D-H:M:S
        check("7-00:00:01", Some(7 * 86_400 + 60));
        check("3-", Some(3 * 86_400)); // Slurm's sscanf takes a bare day count
    }

    #[test]
    fn unlimited_and_zero() {
        check("UNLIMITED", None);
        check("unlimited", None);
        check("INFINITE", None);
        check("Infinite", None);
        check("-1", None);
        check("0", None); // sbatch: a limit of 0 is no limit
        check("0:00", None);
        check("0-0:0:0", None);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "abc",
            "1h",
            "10m",
            " 10",
            "10 ",
            "1:",
            ":1",
            "1::2",
            "1:2:",
            "1:2:3:4",
            "1-2-3",
            "1-2:",
            "1-:2",
            "1:2-3",
            "-5",
            "-",
            "--1",
            "1.5",
            "+5",
            "1-2:3:4:5",
            "0x10",
            "１",
        ] {
            check_err(bad);
        }
    }

    #[test]
    fn too_large() {
        assert!(matches!(parse_time_limit("99999999999"), Err(TimeError::OutOfRange { .. })));
        assert!(matches!(parse_time_limit("99999999999999999999999"), Err(TimeError::Invalid { .. })));
        assert!(parse_time_limit("4294967293").is_ok());
        assert!(parse_time_limit("4294967294").is_err());
    }

    #[test]
    fn durations_keep_seconds() {
        assert_eq!(parse_duration_secs("0:30"), Ok(Some(30)));
        assert_eq!(parse_duration_secs("00:00:20"), Ok(Some(20)));
        assert_eq!(parse_duration_secs("0"), Ok(Some(0)));
        assert_eq!(parse_duration_secs("UNLIMITED"), Ok(None));
        assert!(parse_duration_secs("x").is_err());
    }

    #[test]
    fn displays_like_scontrol() {
        assert_eq!(TimeLimit::Unlimited.to_string(), "UNLIMITED");
        assert_eq!(TimeLimit::Minutes(30).to_string(), "00:30:00");
        assert_eq!(TimeLimit::Minutes(61).to_string(), "01:01:00");
        assert_eq!(TimeLimit::Minutes(1440).to_string(), "1-00:00:00");
        assert_eq!(TimeLimit::Minutes(2 * 1440 + 90).to_string(), "2-01:30:00");
    }

    #[test]
    fn error_names_the_forms() {
        let msg = parse_time_limit("abc").unwrap_err().to_string();
        assert!(msg.starts_with("Invalid time limit specification `abc`"), "{msg}");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_time_limit(&s);
            let _ = parse_duration_secs(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "[0-9:\\-]{0,16}") {
            let _ = parse_time_limit(&s);
        }

        #[test]
        fn display_round_trips(m in 1u32..=0xffff_fffd) {
            let limit = TimeLimit::Minutes(m);
            prop_assert_eq!(parse_time_limit(&limit.to_string()), Ok(limit));
        }

        #[test]
        fn forms_agree(d in 0u64..400, h in 0u64..48, m in 0u64..120, s in 0u64..120) {
            let want = |secs: u64| Ok(Some(secs));
            prop_assert_eq!(parse_duration_secs(&format!("{d}-{h}:{m}:{s}")), want(d * 86_400 + h * 3600 + m * 60 + s));
            prop_assert_eq!(parse_duration_secs(&format!("{d}-{h}:{m}")), want(d * 86_400 + h * 3600 + m * 60));
            prop_assert_eq!(parse_duration_secs(&format!("{d}-{h}")), want(d * 86_400 + h * 3600));
            prop_assert_eq!(parse_duration_secs(&format!("{h}:{m}:{s}")), want(h * 3600 + m * 60 + s));
            prop_assert_eq!(parse_duration_secs(&format!("{m}:{s}")), want(m * 60 + s));
            prop_assert_eq!(parse_duration_secs(&format!("{m}")), want(m * 60));
        }

        #[test]
        fn limits_round_up_to_minutes(secs in 1u64..10_000_000) {
            let text = format!("{}:{}:{}", secs / 3600, secs / 60 % 60, secs % 60);
            prop_assert_eq!(parse_time_limit(&text).map(TimeLimit::as_secs), Ok(Some(secs.div_ceil(60) * 60)));
        }
    }
}
