//! `sprio` and `sshare`: the waiting jobs' priority factors and the fair-share tree, as Slurm
//! 22.05 prints them. The numbers are the head's scheduler's (`GET /slurm/priorities`,
//! `GET /slurm/shares`); this module only reads command lines and formats (pure, no I/O).

use gangway_api::slurm::{PriorityFactors, PriorityList, ShareList, ShareRow};

use crate::format::{comma_list, pad, parse_percent_format, scan_permuted, usage_error, Output, PercentFormat};
use crate::getopt::{HasArg, OptDef};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Help,
    Usage,
    Version,
    NoHeader,
    Jobs,
    Long,
    Norm,
    Format,
    Partition,
    Users,
    Weights,
    All,
    Accounts,
    Parsable,
    Parsable2,
    Ignored,
}

const fn opt(long: &'static str, short: Option<char>, has_arg: HasArg, key: Opt) -> OptDef<Opt> {
    OptDef { long, short, has_arg, key }
}

const SPRIO: &[OptDef<Opt>] = &[
    opt("help", None, HasArg::No, Opt::Help),
    opt("usage", None, HasArg::No, Opt::Usage),
    opt("version", Some('V'), HasArg::No, Opt::Version),
    opt("noheader", Some('h'), HasArg::No, Opt::NoHeader),
    opt("jobs", Some('j'), HasArg::Optional, Opt::Jobs),
    opt("long", Some('l'), HasArg::No, Opt::Long),
    opt("norm", Some('n'), HasArg::No, Opt::Norm),
    opt("format", Some('o'), HasArg::Required, Opt::Format),
    opt("partition", Some('p'), HasArg::Required, Opt::Partition),
    opt("user", Some('u'), HasArg::Required, Opt::Users),
    opt("weights", Some('w'), HasArg::No, Opt::Weights),
    opt("verbose", Some('v'), HasArg::No, Opt::Ignored),
    opt("local", None, HasArg::No, Opt::Ignored),
    opt("federation", None, HasArg::No, Opt::Ignored),
    opt("cluster", Some('M'), HasArg::Required, Opt::Ignored),
    opt("clusters", Some('M'), HasArg::Required, Opt::Ignored),
];

const SPRIO_HELP: &str = "\
Usage: sprio [OPTIONS]
  -h, --noheader                  no headers on output
  -j, --jobs                      comma separated list of jobs
                                  to view, default is all
  -l, --long                      long report
  -n, --norm                      display normalized values
  -o, --format=format             format specification
  -p, --partition=partition_name  comma separated list of partitions
                                  to view, default is all partitions
  -u, --user=user_name            comma separated list of users to view
  -w, --weights                   show the weights for each priority factor

Help options:
  --help                          show this help message
  --usage                         display a brief summary of sprio options
";

/// What sprio was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SprioOptions {
    pub help: Option<&'static str>,
    pub no_header: bool,
    pub jobs: Option<Vec<u64>>,
    pub long: bool,
    pub norm: bool,
    pub format: Option<String>,
    pub partitions: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub weights: bool,
}

/// Reads sprio's command line (without the program name).
pub fn parse_sprio_args(args: &[String]) -> Result<SprioOptions, Output> {
    let (found, words) = scan_permuted(args, SPRIO).map_err(|e| usage_error("sprio", &e))?;
    if let Some(w) = words.first() {
        return Err(Output::fail(format!(
            "sprio: error: Unrecognized option: {w}\nTry \"sprio --help\" for more information"
        )));
    }
    let mut o = SprioOptions::default();
    for f in found {
        let value = f.value.unwrap_or_default();
        match f.key {
            Opt::Help => o.help = Some(SPRIO_HELP),
            Opt::Usage => {
                o.help =
                    Some("Usage: sprio [-j jid[s]] [-u user_name[s]] [-o format] [-p partitions] [--usage] [-hlnvVw]\n")
            }
            Opt::Version => o.help = Some("slurm 22.05.8 (gangway)\n"),
            Opt::NoHeader => o.no_header = true,
            Opt::Jobs if value.is_empty() => {}
            Opt::Jobs => {
                let mut ids = Vec::new();
                for w in comma_list(&value) {
                    let id = w.parse().map_err(|_| Output::fail(format!("sprio: error: Invalid job id: {w}")))?;
                    ids.push(id);
                }
                o.jobs = Some(ids);
            }
            Opt::Long => o.long = true,
            Opt::Norm => o.norm = true,
            Opt::Format => o.format = Some(value),
            Opt::Partition => o.partitions = Some(comma_list(&value)),
            Opt::Users => o.users = Some(comma_list(&value)),
            Opt::Weights => o.weights = true,
            _ => {}
        }
    }
    Ok(o)
}

/// The format sprio prints by default: Slurm's, less the factors whose weight is zero (as
/// Slurm leaves them out) and those gangway does not have (site, association, partition,
/// QOS, TRES).
fn sprio_default_format(list: &PriorityList, o: &SprioOptions) -> String {
    let mut f = String::from("%.15i %9r ");
    if o.long {
        f.push_str("%.8u ");
    }
    f.push_str("%.10Y");
    for (weight, letter) in [(list.weight_age, 'A'), (list.weight_fairshare, 'F'), (list.weight_job_size, 'J')] {
        if weight > 0 {
            f.push_str(&format!(" %.10{letter}"));
        }
    }
    if o.long {
        f.push_str(" %.11N");
    }
    if o.norm {
        // -n: the same columns, normalized.
        f = f.replace('Y', "y").replace('A', "a").replace('F', "f").replace('J', "j");
    }
    f
}

/// sprio's output for `list` (the jobs the head let the caller see).
pub fn render_sprio(list: &PriorityList, o: &SprioOptions) -> Output {
    if let Some(help) = o.help {
        return Output { stdout: help.to_owned(), ..Output::default() };
    }
    let format = parse_percent_format(&o.format.clone().unwrap_or_else(|| sprio_default_format(list, o)));
    let mut out = String::new();
    if !o.no_header {
        out.push_str(&line(&format, |l| sprio_header(l).to_owned()));
    }
    if o.weights {
        out.push_str(&line(&format, |l| sprio_weight(l, list)));
    }
    let shown = list.jobs.iter().filter(|p| {
        o.jobs.as_ref().is_none_or(|ids| ids.contains(&p.job_id))
            && o.partitions.as_ref().is_none_or(|ps| ps.contains(&p.partition))
            && o.users.as_ref().is_none_or(|us| us.iter().any(|u| *u == p.user || *u == p.uid.to_string()))
    });
    for p in shown {
        out.push_str(&line(&format, |l| sprio_field(l, p)));
    }
    if let Some(ids) = &o.jobs {
        if !list.jobs.iter().any(|p| ids.contains(&p.job_id)) {
            // Slurm's words when none of the named jobs is pending.
            return Output {
                stdout: out,
                stderr: "Unable to find jobs matching user/id(s) specified\n".into(),
                code: 0,
            };
        }
    }
    Output { stdout: out, ..Output::default() }
}

/// One line of `format`, each field's value from `value`.
fn line(format: &PercentFormat, value: impl Fn(char) -> String) -> String {
    let mut s = format.prefix.clone();
    for f in &format.fields {
        s.push_str(&pad(&value(f.letter), f.width, f.right, true));
        s.push_str(&f.suffix);
    }
    s.push('\n');
    s
}

fn sprio_header(letter: char) -> &'static str {
    match letter {
        'i' => "JOBID",
        'r' => "PARTITION",
        'u' => "USER",
        'o' => "ACCOUNT",
        'Y' | 'y' => "PRIORITY",
        'A' | 'a' => "AGE",
        'F' | 'f' => "FAIRSHARE",
        'J' | 'j' => "JOBSIZE",
        'N' => "NICE",
        'S' | 's' => "SITE",
        'B' | 'b' => "ASSOC",
        'P' | 'p' => "PARTITION",
        'Q' | 'q' => "QOS",
        'T' | 't' => "TRES",
        _ => "",
    }
}

fn sprio_weight(letter: char, list: &PriorityList) -> String {
    match letter {
        'i' => "Weights".into(),
        'A' | 'a' => list.weight_age.to_string(),
        'F' | 'f' => list.weight_fairshare.to_string(),
        'J' | 'j' => list.weight_job_size.to_string(),
        _ => String::new(),
    }
}

fn sprio_field(letter: char, p: &PriorityFactors) -> String {
    let norm = |v: f64| format!("{v:.7}");
    match letter {
        'i' => p.job_id.to_string(),
        'r' => p.partition.clone(),
        'u' => p.user.clone(),
        'o' => p.account.clone(),
        'Y' => p.priority.to_string(),
        // The priority over Slurm's largest (a 32-bit number).
        'y' => norm(p.priority.max(0) as f64 / f64::from(u32::MAX)),
        'A' => p.weighted_age.to_string(),
        'a' => norm(p.age),
        'F' => p.weighted_fairshare.to_string(),
        'f' => norm(p.fairshare),
        'J' => p.weighted_job_size.to_string(),
        'j' => norm(p.job_size),
        'N' => p.nice.to_string(),
        'S' | 'B' | 'P' | 'Q' => "0".into(),
        's' | 'b' | 'p' | 'q' => norm(0.0),
        'T' | 't' => String::new(),
        _ => String::new(),
    }
}

const SSHARE: &[OptDef<Opt>] = &[
    opt("help", None, HasArg::No, Opt::Help),
    opt("usage", None, HasArg::No, Opt::Usage),
    opt("version", Some('V'), HasArg::No, Opt::Version),
    opt("noheader", Some('h'), HasArg::No, Opt::NoHeader),
    opt("all", Some('a'), HasArg::No, Opt::All),
    opt("accounts", Some('A'), HasArg::Required, Opt::Accounts),
    opt("users", Some('u'), HasArg::Required, Opt::Users),
    opt("parsable", Some('p'), HasArg::No, Opt::Parsable),
    opt("parsable2", Some('P'), HasArg::No, Opt::Parsable2),
    opt("verbose", Some('v'), HasArg::No, Opt::Ignored),
    opt("noconvert", Some('n'), HasArg::No, Opt::Ignored),
    opt("cluster", Some('M'), HasArg::Required, Opt::Ignored),
    opt("clusters", Some('M'), HasArg::Required, Opt::Ignored),
    opt("long", Some('l'), HasArg::No, Opt::Long),
    opt("format", Some('o'), HasArg::Required, Opt::Format),
];

const SSHARE_HELP: &str = "\
Usage:  sshare [OPTION]
  Valid OPTIONs are:
    -a or --all            list all users
    -A or --accounts=      display specific accounts (comma separated list)
    -h or --noheader       omit header from output
    -p or --parsable       '|' delimited output with a trailing '|'
    -P or --parsable2      '|' delimited output without a trailing '|'
    -u or --users=         display specific users (comma separated list)
    -V or --version        display tool version number
          --help           display this usage description
          --usage          display this usage description
";

/// What sshare was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshareOptions {
    pub help: Option<&'static str>,
    pub no_header: bool,
    pub all: bool,
    pub accounts: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    /// `|` between fields; with a trailing one (`-p`) or not (`-P`).
    pub parsable: Option<bool>,
}

/// Reads sshare's command line (without the program name).
pub fn parse_sshare_args(args: &[String]) -> Result<SshareOptions, Output> {
    let (found, words) = scan_permuted(args, SSHARE).map_err(|e| usage_error("sshare", &e))?;
    if let Some(w) = words.first() {
        return Err(Output::fail(format!("sshare: error: Unrecognized option: {w}")));
    }
    let mut o = SshareOptions::default();
    for f in found {
        let value = f.value.unwrap_or_default();
        match f.key {
            Opt::Help | Opt::Usage => o.help = Some(SSHARE_HELP),
            Opt::Version => o.help = Some("slurm 22.05.8 (gangway)\n"),
            Opt::NoHeader => o.no_header = true,
            Opt::All => o.all = true,
            Opt::Accounts => o.accounts = Some(comma_list(&value)),
            Opt::Users => o.users = Some(comma_list(&value)),
            Opt::Parsable => o.parsable = Some(true),
            Opt::Parsable2 => o.parsable = Some(false),
            Opt::Long | Opt::Format => {
                return Err(Output::fail(format!("sshare: error: --{} is not supported by gangway's sshare", f.name)))
            }
            _ => {}
        }
    }
    Ok(o)
}

/// sshare's columns: header, width, and the value of a row.
type Column = (&'static str, usize, fn(&ShareRow) -> String);

const SSHARE_COLUMNS: [Column; 7] = [
    ("Account", 20, |r| if r.user.is_some() { format!("  {}", r.account) } else { format!(" {}", r.account) }),
    ("User", 10, |r| r.user.clone().unwrap_or_default()),
    ("RawShares", 10, |r| r.raw_shares.to_string()),
    ("NormShares", 11, |r| format!("{:.6}", r.norm_shares)),
    ("RawUsage", 11, |r| r.raw_usage.to_string()),
    ("EffectvUsage", 13, |r| format!("{:.6}", r.effective_usage)),
    ("FairShare", 10, |r| format!("{:.6}", r.fairshare)),
];

/// sshare's output for `list`, as uid `me` runs it: the accounts, and (without `-a` or
/// `-u`) only `me`'s own rows among the users; the tree's root first.
pub fn render_sshare(list: &ShareList, o: &SshareOptions, me: u32) -> Output {
    if let Some(help) = o.help {
        return Output { stdout: help.to_owned(), ..Output::default() };
    }
    let user_shown = |r: &ShareRow| match &o.users {
        Some(users) => users
            .iter()
            .any(|x| Some(x) == r.user.as_ref() || Some(x) == r.uid.map(|u| u.to_string()).as_ref() || x == "all"),
        None => o.all || r.uid == Some(me),
    };
    let rows: Vec<&ShareRow> = list
        .rows
        .iter()
        .filter(|r| o.accounts.as_ref().is_none_or(|a| a.contains(&r.account)))
        .filter(|r| r.user.is_none() || user_shown(r))
        .collect();
    let total: u64 = list.rows.iter().filter(|r| r.user.is_none()).map(|r| r.raw_usage).sum();
    let root = ShareRow {
        account: "root".into(),
        user: None,
        uid: None,
        raw_shares: 0,
        norm_shares: 0.0,
        raw_usage: total,
        effective_usage: 1.0,
        fairshare: 0.0,
    };
    let mut out = String::new();
    let sep = o.parsable.map(|_| "|").unwrap_or(" ");
    let end = if o.parsable == Some(true) { "|" } else { "" };
    // Names left-justified (indented by their depth in the tree), numbers right-justified.
    let cells = |r: &ShareRow, root: bool| -> String {
        let v: Vec<String> = SSHARE_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, (_, w, f))| {
                let v = match (root, i) {
                    (true, 0) => "root".to_owned(),
                    (true, 2 | 6) => String::new(),
                    _ => f(r),
                };
                match o.parsable {
                    Some(_) => v.trim_start().to_owned(),
                    None => pad(&v, *w, i != 0, true),
                }
            })
            .collect();
        format!("{}{end}\n", v.join(sep))
    };
    if !o.no_header {
        let h: Vec<String> = SSHARE_COLUMNS
            .iter()
            .map(|(name, w, _)| if o.parsable.is_some() { (*name).to_owned() } else { pad(name, *w, true, true) })
            .collect();
        out.push_str(&format!("{}{end}\n", h.join(sep)));
        if o.parsable.is_none() {
            let d: Vec<String> = SSHARE_COLUMNS.iter().map(|(_, w, _)| "-".repeat(*w)).collect();
            out.push_str(&format!("{}\n", d.join(" ")));
        }
    }
    if o.accounts.is_none() {
        out.push_str(&cells(&root, true));
    }
    for r in rows {
        out.push_str(&cells(r, false));
    }
    Output { stdout: out, ..Output::default() }
}

#[cfg(test)]
#[path = "fairshare_tests.rs"]
mod tests;
