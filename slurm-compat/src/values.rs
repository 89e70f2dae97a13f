//! Readers for sbatch option values, each as Slurm's (`src/common/proc_args.c`,
//! `slurm_opt.c`) reads them, with its error message.

use serde::Serialize;

use crate::error::SlurmError;
use crate::time::parse_duration_secs;

/// Slurm's `parse_int(name, value, positive=true)`: a positive decimal `int`.
pub fn positive_int(option: &'static str, value: &str) -> Result<u32, SlurmError> {
    let bad = || SlurmError::Number { option, value: value.to_string() };
    let (n, rest) = strtol(value).ok_or_else(bad)?;
    if !rest.is_empty() || n <= 0 || n > i64::from(i32::MAX) {
        return Err(bad());
    }
    Ok(n as u32)
}

/// C's `strtol` in base 10: leading blanks, a sign, digits; the number and what follows.
/// `None` when there are no digits or the number overflows.
fn strtol(s: &str) -> Option<(i64, &str)> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n: i64 = t[..digits].parse().ok()?;
    Some((if negative { -n } else { n }, &t[digits..]))
}

/// `--nodes=MIN[-MAX]` as `verify_node_count` reads it: counts may carry a `k` (×1024) or `m`
/// (×1048576) suffix; a range's minimum of 0 counts as 1 and an empty maximum as none; a
/// single count of 0 is refused. Returns (min, max).
pub fn node_count(value: &str) -> Result<(u32, Option<u32>), SlurmError> {
    match value.split_once('-') {
        Some((min, max)) => {
            let min = nodes(min)?.max(1);
            let max = nodes(max)?;
            match max {
                0 => Ok((min, None)),
                max if max < min => Err(SlurmError::NodeRange { max, min }),
                max => Ok((min, Some(max))),
            }
        }
        None => match nodes(value)? {
            0 => Err(SlurmError::NodeCount { value: value.to_string() }),
            n => Ok((n, Some(n))),
        },
    }
}

/// One side of a node count: empty is 0, as Slurm's `_str_to_nodes` has it.
fn nodes(text: &str) -> Result<u32, SlurmError> {
    let bad = || SlurmError::NodeCount { value: text.to_string() };
    if text.trim().is_empty() {
        return Ok(0);
    }
    let (n, rest) = strtol(text).ok_or_else(bad)?;
    let (mult, rest) = match rest.as_bytes().first() {
        Some(b'k' | b'K') => (1024, &rest[1..]),
        Some(b'm' | b'M') => (1024 * 1024, &rest[1..]),
        _ => (1, rest),
    };
    if !rest.trim().is_empty() || n < 0 {
        return Err(bad());
    }
    n.checked_mul(mult).and_then(|n| u32::try_from(n).ok()).filter(|&n| n <= i32::MAX as u32).ok_or_else(bad)
}

/// `--mem`-style sizes as `str_to_mbytes` reads them: megabytes by default, `K` (rounded up),
/// `M`, `G`, `T` suffixes in either case; like Slurm, whatever follows the suffix letter is
/// ignored (`4GB` is 4096). `0` means all the memory of a node.
pub fn megabytes(option: &'static str, value: &str) -> Result<u64, SlurmError> {
    let bad = || SlurmError::Memory { option, value: value.to_string() };
    let (n, rest) = strtol(value).ok_or_else(bad)?;
    let n = u64::try_from(n).map_err(|_| bad())?;
    let mb = match rest.as_bytes().first() {
        None | Some(b'm' | b'M') => Some(n),
        Some(b'k' | b'K') => Some(n.div_ceil(1024)),
        Some(b'g' | b'G') => n.checked_mul(1024),
        Some(b't' | b'T') => n.checked_mul(1024 * 1024),
        Some(_) => None,
    };
    mb.filter(|&mb| mb < i64::MAX as u64).ok_or_else(bad)
}

/// A `--signal=[{R|B}:]SIG[@SECONDS]` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalSpec {
    /// The signal number.
    pub signal: u16,
    /// Seconds before the time limit (60 unless given).
    pub seconds_before: u16,
    /// `B:`: signal only the batch shell.
    pub batch_only: bool,
    /// `R:`: also when a reservation ends.
    pub reservation: bool,
}

/// Slurm's `get_signal_opts`.
pub fn signal(value: &str) -> Result<SignalSpec, SlurmError> {
    let bad = || SlurmError::Spec {
        option: "signal",
        value: value.to_string(),
        expected: "[{R|B}:]<sig_num|sig_name>[@sig_time] (e.g. B:USR1@120)",
    };
    let upper = value.to_ascii_uppercase();
    let (batch_only, reservation, rest) = if upper.starts_with("RB:") || upper.starts_with("BR:") {
        (true, true, &value[3..])
    } else if upper.starts_with("B:") {
        (true, false, &value[2..])
    } else if upper.starts_with("R:") {
        (false, true, &value[2..])
    } else {
        (false, false, value)
    };
    let (sig, time) = match rest.split_once('@') {
        Some((sig, time)) => (sig, Some(time)),
        None => (rest, None),
    };
    let signal = signal_number(sig).ok_or_else(bad)?;
    let seconds_before = match time {
        None => 60,
        Some(t) => match strtol(t) {
            Some((n, "")) => u16::try_from(n).map_err(|_| bad())?,
            _ => return Err(bad()),
        },
    };
    Ok(SignalSpec { signal, seconds_before, batch_only, reservation })
}

/// Slurm's `sig_name2num`: a number, or a name with or without `SIG`, any case.
fn signal_number(s: &str) -> Option<u16> {
    const SIGNALS: [(&str, u16); 15] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ABRT", 6),
        ("KILL", 9),
        ("USR1", 10),
        ("USR2", 12),
        ("ALRM", 14),
        ("TERM", 15),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
    ];
    if let Some((n, rest)) = strtol(s) {
        return u16::try_from(n).ok().filter(|&n| n >= 1 && rest.trim().is_empty());
    }
    let name = s.trim_start();
    let name = match name.get(..3) {
        Some(sig) if sig.eq_ignore_ascii_case("SIG") => &name[3..],
        _ => name,
    };
    SIGNALS.iter().find(|(n, _)| name.trim_end().eq_ignore_ascii_case(n)).map(|&(_, v)| v)
}

/// `--mail-type` as `parse_mail_type` reads it: comma-separated events; unknown ones are
/// skipped unless none is known; `NONE` clears. Returns the events, upper case.
pub fn mail_types(value: &str) -> Result<Vec<String>, SlurmError> {
    const KNOWN: [&str; 12] = [
        "ARRAY_TASKS",
        "BEGIN",
        "END",
        "FAIL",
        "INVALID_DEPEND",
        "REQUEUE",
        "ALL",
        "STAGE_OUT",
        "TIME_LIMIT",
        "TIME_LIMIT_90",
        "TIME_LIMIT_80",
        "TIME_LIMIT_50",
    ];
    let mut events = Vec::new();
    for token in value.split(',').filter(|t| !t.is_empty()) {
        if token.eq_ignore_ascii_case("NONE") {
            return Ok(Vec::new());
        }
        if let Some(known) = KNOWN.iter().find(|k| k.eq_ignore_ascii_case(token)) {
            events.push(known.to_string());
        }
    }
    if events.is_empty() {
        return Err(SlurmError::Spec {
            option: "mail-type",
            value: value.to_string(),
            expected: "NONE, BEGIN, END, FAIL, REQUEUE, ALL, INVALID_DEPEND, STAGE_OUT, TIME_LIMIT, \
                       TIME_LIMIT_90, TIME_LIMIT_80, TIME_LIMIT_50 or ARRAY_TASKS",
        });
    }
    Ok(events)
}

/// `--hint`: checks the words (`compute_bound`, `memory_bound`, `multithread`,
/// `nomultithread`, comma-separated).
pub fn hint(value: &str) -> Result<(), SlurmError> {
    const KNOWN: [&str; 4] = ["compute_bound", "memory_bound", "multithread", "nomultithread"];
    if value.is_empty() || !value.split(',').all(|w| KNOWN.iter().any(|k| k.eq_ignore_ascii_case(w))) {
        return Err(SlurmError::Hint { value: value.to_string() });
    }
    Ok(())
}

/// A `--switches=COUNT[@MAX-WAIT]` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switches {
    /// The most leaf switches the job may span.
    pub count: u32,
    /// How long to wait for that, in seconds; `None` when not given or unlimited.
    pub max_wait_secs: Option<u64>,
}

/// `--switches`.
pub fn switches(value: &str) -> Result<Switches, SlurmError> {
    let (count, wait) = match value.split_once('@') {
        Some((count, wait)) => (count, Some(wait)),
        None => (value, None),
    };
    let count = positive_int("switches", count)?;
    let max_wait_secs = match wait {
        None => None,
        Some(w) => parse_duration_secs(w).map_err(|_| SlurmError::Spec {
            option: "switches",
            value: value.to_string(),
            expected: "COUNT[@TIME] with TIME in a --time format",
        })?,
    };
    Ok(Switches { count, max_wait_secs })
}

/// What `--exclusive[=…]` asks for: `Some(true)` for whole nodes, `None` for the shared modes
/// gangway does not have (`user`, `mcs`, `topo`), `Some(false)` for `oversubscribe`.
pub fn exclusive(value: Option<&str>) -> Result<Option<bool>, SlurmError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("exclusive") => Ok(Some(true)),
        Some("oversubscribe") => Ok(Some(false)),
        Some("user" | "mcs" | "topo") => Ok(None),
        Some(_) => Err(SlurmError::Spec {
            option: "exclusive",
            value: value.unwrap_or_default().to_string(),
            expected: "nothing, exclusive, oversubscribe, user, mcs or topo",
        }),
    }
}

/// Which environment a job gets (`--export`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Export {
    /// `all`: the whole submission environment; `none`: only the listed variables (and
    /// `SLURM_*`).
    pub mode: ExportMode,
    /// Variables named in `--export`, in order; `value: null` takes the submission value.
    pub vars: Vec<ExportVar>,
}

/// The base of an [`Export`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExportMode {
    /// `ALL` (sbatch's default).
    All,
    /// `NONE`, or a list of variables without `ALL`.
    None,
}

/// One variable of an [`Export`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportVar {
    /// Its name.
    pub name: String,
    /// `VAR=value`; `None` for a bare `VAR`.
    pub value: Option<String>,
}

impl Export {
    /// The environment this export gives, from `all` (the submitter's): all of it (`ALL`) or
    /// only the variables `keep` names (`NONE`), then each listed variable with its given value
    /// or, for a bare name, its value in `all`.
    pub fn apply(&self, all: Vec<(String, String)>, keep: impl Fn(&str) -> bool) -> Vec<(String, String)> {
        let own = |name: &str| all.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let values: Vec<(String, Option<String>)> =
            self.vars.iter().map(|v| (v.name.clone(), v.value.clone().or_else(|| own(&v.name)))).collect();
        let mut env: Vec<(String, String)> = match self.mode {
            ExportMode::All => all,
            ExportMode::None => all.into_iter().filter(|(k, _)| keep(k)).collect(),
        };
        for (name, value) in values {
            if let Some(v) = value {
                env.retain(|(k, _)| *k != name);
                env.push((name, v));
            }
        }
        env
    }
}

impl Default for Export {
    fn default() -> Export {
        Export { mode: ExportMode::All, vars: Vec::new() }
    }
}

/// `--export=ALL|NONE|[ALL,]VAR[=value][,…]`. Commas inside quotes do not split, and quotes
/// around a value are removed.
pub fn export(value: &str) -> Result<Export, SlurmError> {
    let bad = || SlurmError::Spec {
        option: "export",
        value: value.to_string(),
        expected: "ALL, NONE, or [ALL,]VAR[=value][,VAR[=value]...]",
    };
    let (mut all, mut none, mut vars) = (false, false, Vec::new());
    for token in split_unquoted_commas(value).ok_or_else(bad)? {
        if token.eq_ignore_ascii_case("ALL") {
            all = true;
        } else if token.eq_ignore_ascii_case("NONE") || token.eq_ignore_ascii_case("NIL") {
            none = true;
        } else {
            let (name, value) = match token.split_once('=') {
                Some((name, value)) => (name, Some(unquote(value).to_string())),
                None => (token.as_str(), None),
            };
            if name.is_empty() || name.chars().any(char::is_whitespace) {
                return Err(bad());
            }
            vars.push(ExportVar { name: name.to_string(), value });
        }
    }
    if (all && none) || (!all && !none && vars.is_empty()) {
        return Err(bad());
    }
    Ok(Export { mode: if all { ExportMode::All } else { ExportMode::None }, vars })
}

/// Splits on commas outside quotes, dropping empty parts; `None` on an unmatched quote.
fn split_unquoted_commas(s: &str) -> Option<Vec<String>> {
    let (mut parts, mut current, mut quote) = (Vec::new(), String::new(), None);
    for c in s.chars() {
        match (quote, c) {
            (None, ',') => parts.push(std::mem::take(&mut current)),
            (None, '"' | '\'') => {
                quote = Some(c);
                current.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            _ => current.push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    parts.push(current);
    Some(parts.into_iter().filter(|p| !p.is_empty()).collect())
}

fn unquote(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_ints() {
        assert_eq!(positive_int("ntasks", "4").unwrap(), 4);
        assert_eq!(positive_int("ntasks", " +4").unwrap(), 4);
        for bad in ["0", "-1", "x", "4x", "", "2147483648", "99999999999999999999", "4 "] {
            let err = positive_int("ntasks", bad).unwrap_err();
            assert_eq!(err.to_string(), format!("Invalid numeric value \"{bad}\" for --ntasks."));
        }
    }

    #[test]
    fn node_counts() {
        let check = |v: &str, want: (u32, Option<u32>)| assert_eq!(node_count(v).unwrap(), want, "{v:?}");
        check("2", (2, Some(2)));
        check("2-4", (2, Some(4)));
        check("0-4", (1, Some(4)));
        check("2-", (2, None));
        check("1k", (1024, Some(1024)));
        check("4-4", (4, Some(4)));
        for bad in ["0", "x", "2x", "", "4-2", "2-x", "2-4-6", "9999999999"] {
            assert!(node_count(bad).is_err(), "{bad:?}");
        }
        assert_eq!(node_count("0").unwrap_err().to_string(), "\"0\" is not a valid node count");
        assert_eq!(
            node_count("4-2").unwrap_err().to_string(),
            "Maximum node count 2 is less than minimum node count 4"
        );
    }

    #[test]
    fn sizes() {
        let check = |v: &str, want: u64| assert_eq!(megabytes("mem", v).unwrap(), want, "{v:?}");
        check("4096", 4096);
        check("4096M", 4096);
        check("4G", 4096);
        check("4g", 4096);
        check("4GB", 4096);
        check("1T", 1024 * 1024);
        check("1500K", 2);
        check("0", 0);
        for bad in ["", "G", "4X", "-1", "lots", "99999999999999999999T"] {
            assert_eq!(megabytes("mem", bad).unwrap_err().to_string(), "Invalid --mem specification", "{bad:?}");
        }
    }

    #[test]
    fn signals() {
        let s = signal("B:USR1@120").unwrap();
        assert_eq!((s.signal, s.seconds_before, s.batch_only, s.reservation), (10, 120, true, false));
        assert_eq!(signal("SIGTERM").unwrap().signal, 15);
        assert_eq!(signal("term").unwrap().seconds_before, 60);
        assert_eq!(signal("10@30").unwrap().signal, 10);
        assert!(signal("RB:HUP").unwrap().reservation);
        for bad in ["", "FOO", "USR1@x", "USR1@-1", "0", "B:", "USR1@70000"] {
            assert!(signal(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mail() {
        assert_eq!(mail_types("END,FAIL").unwrap(), ["END", "FAIL"]);
        assert_eq!(mail_types("all").unwrap(), ["ALL"]);
        assert_eq!(mail_types("BEGIN,bogus").unwrap(), ["BEGIN"]);
        assert!(mail_types("NONE").unwrap().is_empty());
        assert!(mail_types("bogus").is_err());
    }

    #[test]
    fn exports() {
        let check = |v: &str, mode: ExportMode, vars: &[(&str, Option<&str>)]| {
            let got = export(v).unwrap();
            let want: Vec<ExportVar> =
                vars.iter().map(|(n, val)| ExportVar { name: n.to_string(), value: val.map(String::from) }).collect();
            assert_eq!(got, Export { mode, vars: want }, "{v:?}");
        };
        check("ALL", ExportMode::All, &[]);
        check("all", ExportMode::All, &[]);
        check("NONE", ExportMode::None, &[]);
        check("ALL,FOO=bar", ExportMode::All, &[("FOO", Some("bar"))]);
        check("FOO=bar,BAZ", ExportMode::None, &[("FOO", Some("bar")), ("BAZ", None)]);
        check("FOO='a,b',X=", ExportMode::None, &[("FOO", Some("a,b")), ("X", Some(""))]);
        check("NONE,PATH", ExportMode::None, &[("PATH", None)]);
        for bad in ["", ",", "ALL,NONE", "=x", "FOO='a", "A B=1"] {
            assert!(export(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn others() {
        assert!(hint("nomultithread").is_ok());
        assert!(hint("compute_bound,multithread").is_ok());
        assert!(hint("fast").is_err());
        assert_eq!(switches("2@1:00:00").unwrap(), Switches { count: 2, max_wait_secs: Some(3600) });
        assert_eq!(switches("1").unwrap(), Switches { count: 1, max_wait_secs: None });
        assert!(switches("0").is_err());
        assert!(switches("1@x").is_err());
        assert_eq!(exclusive(None).unwrap(), Some(true));
        assert_eq!(exclusive(Some("user")).unwrap(), None);
        assert_eq!(exclusive(Some("OVERSUBSCRIBE")).unwrap(), Some(false));
        assert!(exclusive(Some("yes")).is_err());
    }
}
