//! Command-line scanning as glibc's `getopt_long` does it with an option string starting with
//! `+`, which is how sbatch reads both its command line and the arguments of its `#SBATCH`
//! lines: short options may be grouped (`-Hv`) and take their value attached or as the next
//! word (`-N2`, `-N 2`); long options take `--opt=value` or `--opt value` (optional values only
//! the first way); a long option may be shortened to any unambiguous prefix (`--ntasks-per-n`);
//! scanning stops at `--` or at the first word that is not an option (the script name).

use std::fmt;

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasArg {
    /// A flag.
    No,
    /// `--opt=value`, `--opt value`, `-ovalue`, `-o value`.
    Required,
    /// `--opt` or `--opt=value`; `-o` or `-ovalue`.
    Optional,
}

/// One entry of an option table.
#[derive(Debug, Clone, Copy)]
pub struct OptDef<K: 'static> {
    /// The long name, without `--`.
    pub long: &'static str,
    /// The short letter, if any.
    pub short: Option<char>,
    /// Whether it takes a value.
    pub has_arg: HasArg,
    /// What the caller uses to tell options apart; two names with the same key are aliases.
    pub key: K,
}

/// One option found on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found<K> {
    /// The key of its table entry.
    pub key: K,
    /// The long name of its table entry (`time` for `-t`, `ntasks-per-node` for `--ntasks-per-n`).
    pub name: &'static str,
    /// Its value, if it has one.
    pub value: Option<String>,
}

/// A command-line error, worded as glibc words it (the program name goes in front).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetoptError {
    /// `--bogus`.
    #[error("unrecognized option '{0}'")]
    Unrecognized(String),
    /// `--mem-per=1` with both `--mem-per-cpu` and `--mem-per-gpu` known.
    #[error("option '{option}' is ambiguous; possibilities:{}", Possibilities(.candidates))]
    Ambiguous {
        /// The option as written.
        option: String,
        /// The long names it could mean.
        candidates: Vec<&'static str>,
    },
    /// `--time` as the last word.
    #[error("option '--{0}' requires an argument")]
    MissingArgument(&'static str),
    /// `--hold=yes`.
    #[error("option '--{0}' doesn't allow an argument")]
    UnexpectedArgument(&'static str),
    /// `-Z`.
    #[error("invalid option -- '{0}'")]
    InvalidShort(char),
    /// `-t` as the last word.
    #[error("option requires an argument -- '{0}'")]
    MissingShortArgument(char),
}

struct Possibilities<'a>(&'a [&'static str]);

impl fmt::Display for Possibilities<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in self.0 {
            write!(f, " '--{name}'")?;
        }
        Ok(())
    }
}

/// Scans `args` (without a program name) for options; returns them and the index of the first
/// word that is not an option (`args.len()` if there is none).
pub fn scan<K: Copy + PartialEq>(args: &[String], table: &[OptDef<K>]) -> Result<(Vec<Found<K>>, usize), GetoptError> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        if arg == "--" {
            return Ok((found, i + 1));
        }
        if let Some(body) = arg.strip_prefix("--") {
            i += 1;
            let (name, inline) = match body.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (body, None),
            };
            let def = long_def(arg, name, table)?;
            let value = match (def.has_arg, inline) {
                (HasArg::No, Some(_)) => return Err(GetoptError::UnexpectedArgument(def.long)),
                (HasArg::No, None) | (HasArg::Optional, None) => None,
                (_, Some(v)) => Some(v.to_string()),
                (HasArg::Required, None) => {
                    let v = args.get(i).ok_or(GetoptError::MissingArgument(def.long))?;
                    i += 1;
                    Some(v.clone())
                }
            };
            found.push(Found { key: def.key, name: def.long, value });
        } else if arg.len() > 1 && arg.starts_with('-') {
            i += 1;
            let letters = &arg[1..];
            for (at, c) in letters.char_indices() {
                let def = table.iter().find(|d| d.short == Some(c)).ok_or(GetoptError::InvalidShort(c))?;
                let rest = &letters[at + c.len_utf8()..];
                match def.has_arg {
                    HasArg::No => {
                        found.push(Found { key: def.key, name: def.long, value: None });
                        continue;
                    }
                    HasArg::Optional => {
                        let value = (!rest.is_empty()).then(|| rest.to_string());
                        found.push(Found { key: def.key, name: def.long, value });
                    }
                    HasArg::Required if !rest.is_empty() => {
                        found.push(Found { key: def.key, name: def.long, value: Some(rest.to_string()) });
                    }
                    HasArg::Required => {
                        let v = args.get(i).ok_or(GetoptError::MissingShortArgument(c))?;
                        i += 1;
                        found.push(Found { key: def.key, name: def.long, value: Some(v.clone()) });
                    }
                }
                break;
            }
        } else {
            return Ok((found, i));
        }
    }
    Ok((found, i))
}

/// The table entry a long option names: an exact match, else the one entry (up to aliases)
/// whose name starts with it.
fn long_def<'t, K: Copy + PartialEq>(
    arg: &str,
    name: &str,
    table: &'t [OptDef<K>],
) -> Result<&'t OptDef<K>, GetoptError> {
    if name.is_empty() {
        return Err(GetoptError::Unrecognized(arg.to_string()));
    }
    if let Some(def) = table.iter().find(|d| d.long == name) {
        return Ok(def);
    }
    let matches: Vec<&OptDef<K>> = table.iter().filter(|d| d.long.starts_with(name)).collect();
    match matches.as_slice() {
        [] => Err(GetoptError::Unrecognized(arg.to_string())),
        [first, rest @ ..] if rest.iter().all(|d| d.key == first.key && d.has_arg == first.has_arg) => Ok(first),
        _ => Err(GetoptError::Ambiguous {
            option: arg.to_string(),
            candidates: matches.iter().map(|d| d.long).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[OptDef<u8>] = &[
        OptDef { long: "nodes", short: Some('N'), has_arg: HasArg::Required, key: 1 },
        OptDef { long: "ntasks", short: Some('n'), has_arg: HasArg::Required, key: 2 },
        OptDef { long: "ntasks-per-node", short: None, has_arg: HasArg::Required, key: 3 },
        OptDef { long: "tasks-per-node", short: None, has_arg: HasArg::Required, key: 3 },
        OptDef { long: "hold", short: Some('H'), has_arg: HasArg::No, key: 4 },
        OptDef { long: "verbose", short: Some('v'), has_arg: HasArg::No, key: 5 },
        OptDef { long: "exclusive", short: None, has_arg: HasArg::Optional, key: 6 },
        OptDef { long: "mem-per-cpu", short: None, has_arg: HasArg::Required, key: 7 },
        OptDef { long: "mem-per-gpu", short: None, has_arg: HasArg::Required, key: 8 },
        OptDef { long: "no-kill", short: Some('k'), has_arg: HasArg::Optional, key: 9 },
    ];

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn check(input: &str, expected: &[(&str, Option<&str>)], stop: usize) {
        let (found, at) = scan(&words(input), TABLE).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        let got: Vec<(&str, Option<&str>)> = found.iter().map(|f| (f.name, f.value.as_deref())).collect();
        assert_eq!(got, expected, "input {input:?}");
        assert_eq!(at, stop, "input {input:?}");
    }

    fn check_err(input: &str, expected: &str) {
        let err = scan(&words(input), TABLE).unwrap_err();
        assert_eq!(err.to_string(), expected, "input {input:?}");
    }

    #[test]
    fn forms() {
        check("-N2", &[("nodes", Some("2"))], 1);
        check("-N 2", &[("nodes", Some("2"))], 2);
        check("--nodes=2", &[("nodes", Some("2"))], 1);
        check("--nodes 2", &[("nodes", Some("2"))], 2);
        check("--nodes=", &[("nodes", Some(""))], 1);
        check("-HvN3", &[("hold", None), ("verbose", None), ("nodes", Some("3"))], 1);
        check("-Hv -N 3", &[("hold", None), ("verbose", None), ("nodes", Some("3"))], 3);
        check("--exclusive", &[("exclusive", None)], 1);
        check("--exclusive=user", &[("exclusive", Some("user"))], 1);
        check("--exclusive user", &[("exclusive", None)], 1); // optional values attach only
        check("-k -kyes", &[("no-kill", None), ("no-kill", Some("yes"))], 2);
        check("-N -5", &[("nodes", Some("-5"))], 2); // a required value may start with '-'
    }

    #[test]
    fn stops_at_the_script() {
        check("-N2 job.sh -n 4", &[("nodes", Some("2"))], 1);
        check("job.sh", &[], 0);
        check("-H -- -n", &[("hold", None)], 2);
        check("- -n1", &[], 0); // "-" alone is a file name (stdin)
        check("", &[], 0);
    }

    #[test]
    fn abbreviations() {
        check("--nod=2", &[("nodes", Some("2"))], 1);
        check("--ntasks-per-n=2", &[("ntasks-per-node", Some("2"))], 1);
        check("--ntasks 3", &[("ntasks", Some("3"))], 2); // exact beats prefix
        check("--tasks=2", &[("tasks-per-node", Some("2"))], 1);
        check("--ho", &[("hold", None)], 1);
    }

    #[test]
    fn errors_as_glibc_words_them() {
        check_err("--bogus", "unrecognized option '--bogus'");
        check_err("--bogus=1", "unrecognized option '--bogus=1'");
        check_err("--=1", "unrecognized option '--=1'");
        check_err("-Z", "invalid option -- 'Z'");
        check_err("-HZ", "invalid option -- 'Z'");
        check_err("--nodes", "option '--nodes' requires an argument");
        check_err("--nod", "option '--nodes' requires an argument");
        check_err("-N", "option requires an argument -- 'N'");
        check_err("--hold=1", "option '--hold' doesn't allow an argument");
        check_err("--mem-per=4", "option '--mem-per=4' is ambiguous; possibilities: '--mem-per-cpu' '--mem-per-gpu'");
        check_err(
            "--n=1",
            "option '--n=1' is ambiguous; possibilities: '--nodes' '--ntasks' '--ntasks-per-node' '--no-kill'",
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(args in proptest::collection::vec(".{0,12}", 0..6)) {
            let _ = scan(&args, TABLE);
        }
    }
}
