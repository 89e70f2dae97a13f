//! `sinfo`: partitions and nodes, in Slurm 22.05's columns (node states: see
//! [`crate::nodes`]).
//!
//! [`parse_sinfo_args`] reads the command line; [`render_sinfo`] prints with no I/O.
//! Supported: the default view (one line per partition and group of nodes that print the
//! same), `-N` (node-oriented), `-l` (long, with the date line), `-s` (summary),
//! `-R` (reasons of down and drained nodes), `-o/--format` (the letters below, `%#X` as wide
//! as the widest value and at least the header), `-h`, `-p`, `-n`, `-t`. Accepted and
//! ignored: `-a`, `-M`, `-v`, `-r`, `--local`, `--federation`, `--noconvert`, `-e`, `-d`.
//!
//! Letters: `%P` (partition, `*` for the default), `%R`, `%a`, `%l`, `%s`, `%r`, `%h`, `%g`,
//! `%D`, `%t`, `%T`, `%N`, `%n`, `%o`, `%c`, `%C` (A/I/O/T CPUs), `%F` (A/I/O/T nodes), `%m`,
//! `%e`, `%O`, `%G`, `%z`, `%X`, `%Y`, `%Z`, `%d`, `%w`, `%f`, `%b`, `%E`, `%u`, `%H`.

use gangway_api::slurm::SlurmJob;
use gangway_api::{ComputeNode, Pool, Timestamp};

use crate::format::{
    comma_list, date_line, nodes_str, pad, parse_percent_format, scan_permuted, usage_error, Output, PercentField,
    PercentFormat,
};
use crate::getopt::{HasArg, OptDef};
use crate::nodes::{cpus, memory_mb, partitions, sct, Base, NodeView, PartitionView, NODE_STATE_WORDS};

const DEFAULT_FORMAT: &str = "%#P %.5a %.10l %.6D %.6t %N";
const LONG_FORMAT: &str = "%#P %.5a %.10l %.10s %.4r %.8h %.10g %.6D %.11T %N";
const NODE_FORMAT: &str = "%#N %.6D %.9P %6t";
const NODE_LONG_FORMAT: &str = "%#N %.6D %.9P %.11T %.4c %.8z %.6m %.8d %.6w %.8f %20E";
const SUMMARY_FORMAT: &str = "%#P %.5a %.10l %.16F  %N";
const REASON_FORMAT: &str = "%20E %9u %19H %N";

/// A parsed sinfo command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinfoOptions {
    /// `-N`.
    pub node_oriented: bool,
    /// `-l`.
    pub long: bool,
    /// `-s`.
    pub summarize: bool,
    /// `-R`.
    pub reasons: bool,
    /// `-h`.
    pub no_header: bool,
    /// `-o`.
    pub format: Option<String>,
    /// `-O`, read into the same fields as `-o`.
    pub big_format: Option<PercentFormat>,
    /// `-p`.
    pub partitions: Option<Vec<String>>,
    /// `-n`, expanded.
    pub nodes: Option<Vec<String>>,
    /// `-t`.
    pub states: Option<Vec<String>>,
    /// `--help`/`--usage`/`--version`: print this and exit 0.
    pub help: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    BigFormat,
    Format,
    Help,
    Ignored,
    Long,
    Nodes,
    NodeOriented,
    NoHeader,
    Partition,
    Reasons,
    States,
    Summarize,
    Unsupported,
    Version,
}

const fn opt(long: &'static str, short: Option<char>, has_arg: HasArg, key: Opt) -> OptDef<Opt> {
    OptDef { long, short, has_arg, key }
}

const TABLE: &[OptDef<Opt>] = &[
    opt("all", Some('a'), HasArg::No, Opt::Ignored),
    opt("dead", Some('d'), HasArg::No, Opt::Ignored),
    opt("exact", Some('e'), HasArg::No, Opt::Ignored),
    opt("federation", None, HasArg::No, Opt::Ignored),
    opt("format", Some('o'), HasArg::Required, Opt::Format),
    opt("Format", Some('O'), HasArg::Required, Opt::BigFormat),
    opt("help", None, HasArg::No, Opt::Help),
    opt("hide", None, HasArg::No, Opt::Ignored),
    opt("iterate", Some('i'), HasArg::Required, Opt::Unsupported),
    opt("local", None, HasArg::No, Opt::Ignored),
    opt("long", Some('l'), HasArg::No, Opt::Long),
    opt("cluster", Some('M'), HasArg::Required, Opt::Ignored),
    opt("clusters", Some('M'), HasArg::Required, Opt::Ignored),
    opt("nodes", Some('n'), HasArg::Required, Opt::Nodes),
    opt("noconvert", None, HasArg::No, Opt::Ignored),
    opt("Node", Some('N'), HasArg::No, Opt::NodeOriented),
    opt("noheader", Some('h'), HasArg::No, Opt::NoHeader),
    opt("partition", Some('p'), HasArg::Required, Opt::Partition),
    opt("responding", Some('r'), HasArg::No, Opt::Ignored),
    opt("list-reasons", Some('R'), HasArg::No, Opt::Reasons),
    opt("summarize", Some('s'), HasArg::No, Opt::Summarize),
    opt("sort", Some('S'), HasArg::Required, Opt::Ignored),
    opt("states", Some('t'), HasArg::Required, Opt::States),
    opt("reservation", Some('T'), HasArg::No, Opt::Unsupported),
    opt("usage", None, HasArg::No, Opt::Help),
    opt("verbose", Some('v'), HasArg::No, Opt::Ignored),
    opt("version", Some('V'), HasArg::No, Opt::Version),
];

const HELP: &str = "\
Usage: sinfo [OPTIONS]
  -h, --noheader             no headers on output
  -l, --long                 long output - displays more information
  -n, --nodes=NODES          report on specific node(s)
  -N, --Node                 Node-centric format
  -o, --format=format        format specification
  -p, --partition=PARTITION  report on specific partition
  -R, --list-reasons         list reason nodes are down or drained
  -s, --summarize            report state summary only
  -t, --states=node_state    specify the what states of nodes to view
";

/// Reads sinfo's command line.
pub fn parse_sinfo_args(args: &[String]) -> Result<SinfoOptions, Output> {
    let (found, words) = scan_permuted(args, TABLE).map_err(|e| usage_error("sinfo", &e))?;
    let fail = |m: String| Output::fail(format!("sinfo: error: {m}"));
    let mut o = SinfoOptions::default();
    for f in found {
        let value = f.value.unwrap_or_default();
        match f.key {
            Opt::Format => o.format = Some(value),
            Opt::BigFormat => o.big_format = Some(parse_big_format(&value).map_err(fail)?),
            Opt::Help => o.help = Some(HELP),
            Opt::Version => o.help = Some("slurm 22.05.8 (gangway)\n"),
            Opt::Ignored => {}
            Opt::Long => o.long = true,
            Opt::Nodes => {
                let hosts = gangway_topology::hostlist::expand_hostlist(&value)
                    .map_err(|_| fail(format!("Invalid node name specified: {value}")))?;
                o.nodes = Some(hosts);
            }
            Opt::NodeOriented => o.node_oriented = true,
            Opt::NoHeader => o.no_header = true,
            Opt::Partition => o.partitions = Some(comma_list(&value)),
            Opt::Reasons => o.reasons = true,
            Opt::States => {
                let words = comma_list(&value.to_ascii_lowercase());
                if let Some(bad) = words.iter().find(|w| !NODE_STATE_WORDS.contains(&w.as_str()) && *w != "all") {
                    return Err(fail(format!("Invalid node state specified: {bad}")));
                }
                o.states = if words.iter().any(|w| w == "all") { None } else { Some(words) };
            }
            Opt::Summarize => o.summarize = true,
            Opt::Unsupported => return Err(fail(format!("--{} is not supported by gangway's sinfo", f.name))),
        }
    }
    if let Some(extra) = words.first() {
        return Err(fail(format!("Unrecognized option: {extra}")));
    }
    Ok(o)
}

/// `-O`'s fields that have no `-o` letter, as private letters.
const ALLOC_MEM: char = '\u{e000}';
const GRES_USED: char = '\u{e001}';

/// `-O`'s field names (case-insensitive) and the `-o` letters they print.
const BIG_FIELDS: &[(&str, char)] = &[
    ("allocmem", ALLOC_MEM),
    ("available", 'a'),
    ("cores", 'Y'),
    ("cpus", 'c'),
    ("cpusstate", 'C'),
    ("freemem", 'e'),
    ("gres", 'G'),
    ("gresused", GRES_USED),
    ("memory", 'm'),
    ("nodeaddr", 'o'),
    ("nodehost", 'n'),
    ("nodelist", 'N'),
    ("nodes", 'D'),
    ("nodeaiot", 'F'),
    ("partition", 'P'),
    ("partitionname", 'R'),
    ("reason", 'E'),
    ("sockets", 'X'),
    ("statecompact", 't'),
    ("statelong", 'T'),
    ("threads", 'Z'),
    ("timelimit", 'l'),
];

/// Reads `-O`: comma-separated `type[:[.][size]]`, 20 wide unless sized, `.` right-justifies.
pub fn parse_big_format(spec: &str) -> Result<PercentFormat, String> {
    let mut fields = Vec::new();
    for item in spec.split(',').filter(|i| !i.is_empty()) {
        let (name, size) = item.split_once(':').unwrap_or((item, ""));
        let letter = BIG_FIELDS
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, l)| *l)
            .ok_or_else(|| format!("Invalid node format specification: {name}"))?;
        let right = size.starts_with('.');
        let digits = size.trim_start_matches('.');
        let width = if digits.is_empty() {
            20
        } else {
            digits.parse().map_err(|_| format!("Invalid node format specification: {item}"))?
        };
        fields.push(PercentField { letter, width, right, suffix: String::new() });
    }
    Ok(PercentFormat { prefix: String::new(), fields })
}

fn header(letter: char) -> Option<&'static str> {
    Some(match letter {
        ALLOC_MEM => "ALLOCMEM",
        GRES_USED => "GRES_USED",
        'a' => "AVAIL",
        'b' => "ACTIVE_FEATURES",
        'c' => "CPUS",
        'C' => "CPUS(A/I/O/T)",
        'd' => "TMP_DISK",
        'D' => "NODES",
        'e' => "FREE_MEM",
        'E' => "REASON",
        'f' => "AVAIL_FEATURES",
        'F' => "NODES(A/I/O/T)",
        'g' => "GROUPS",
        'G' => "GRES",
        'h' => "OVERSUBSCRIBE",
        'H' => "TIMESTAMP",
        'l' => "TIMELIMIT",
        'm' => "MEMORY",
        'n' => "HOSTNAMES",
        'N' => "NODELIST",
        'o' => "NODE_ADDR",
        'O' => "CPU_LOAD",
        'P' | 'R' => "PARTITION",
        'r' => "ROOT",
        's' => "JOB_SIZE",
        't' | 'T' => "STATE",
        'u' => "USER",
        'w' => "WEIGHT",
        'X' => "SOCKETS",
        'Y' => "CORES",
        'z' => "S:C:T",
        'Z' => "THREADS",
        _ => return None,
    })
}

/// Letters whose value sums or lists a group rather than describing each node alike.
fn aggregated(letter: char) -> bool {
    matches!(letter, 'D' | 'N' | 'n' | 'o' | 'C' | 'F')
}

/// A per-node value (partition-wide letters included).
fn node_value(letter: char, part: &PartitionView<'_>, v: &NodeView<'_>) -> String {
    let n = v.node;
    let (s, c, t) = sct(n);
    match letter {
        'a' => part.avail().into(),
        'b' | 'f' => "(null)".into(),
        'c' => cpus(n).to_string(),
        'd' => "0".into(),
        'e' | 'O' => "N/A".into(),
        'E' => v.reason.into(),
        'g' => "all".into(),
        'G' => match n.resources.gpus.len() {
            0 => "(null)".into(),
            g => format!("gpu:{g}"),
        },
        'h' => "NO".into(),
        // Who set the reason and when: the head, when the node entered its state.
        'H' if v.reason != "none" => crate::format::iso_time(n.state_transition_time),
        'u' if v.reason != "none" => "root".into(),
        'H' | 'u' => "Unknown".into(),
        'l' => part.time_limits().0.map_or_else(|| "infinite".into(), |s| crate::format::squeue_secs(s as i64)),
        'm' => memory_mb(n).to_string(),
        ALLOC_MEM => n.allocated.memory_mib.to_string(),
        GRES_USED => match (n.resources.gpus.len(), n.allocated.gpus.as_slice()) {
            (0, _) => "(null)".into(),
            (_, []) => "gpu:0(IDX:N/A)".into(),
            (_, used) => format!("gpu:{}(IDX:{})", used.len(), crate::format::id_ranges(used)),
        },
        'P' => part.display_name(),
        'R' => part.name.clone(),
        'r' => "no".into(),
        's' => "1-infinite".into(),
        't' => v.state.compact(),
        'T' => v.state.long(),
        'w' => "1".into(),
        'X' => s.to_string(),
        'Y' => c.to_string(),
        'z' => format!("{s}:{c}:{t}"),
        'Z' => t.to_string(),
        _ => String::new(),
    }
}

/// The value of an aggregated letter over a group of nodes.
fn group_value(letter: char, part: &PartitionView<'_>, group: &[&NodeView<'_>]) -> String {
    let names: Vec<String> = group.iter().map(|v| v.node.id.clone()).collect();
    match letter {
        'D' => group.len().to_string(),
        'N' | 'n' if group.is_empty() && part.nodes.is_empty() => String::new(),
        'N' | 'n' => nodes_str(&names),
        'o' => nodes_str(&group.iter().map(|v| v.node.ip_address.clone()).collect::<Vec<_>>()),
        'C' => {
            let (mut a, mut i, mut o, mut t) = (0u64, 0u64, 0u64, 0u64);
            for v in group {
                let total = u64::from(cpus(v.node));
                t += total;
                match v.state.base {
                    Base::Down | Base::Drained | Base::PoweringUp => o += total,
                    _ if v.state.no_respond => o += total,
                    _ => {
                        a += u64::from(v.alloc_cpus);
                        i += total - u64::from(v.alloc_cpus).min(total);
                    }
                }
            }
            format!("{a}/{i}/{o}/{t}")
        }
        _ => {
            let (mut a, mut i, mut o) = (0, 0, 0);
            for v in group {
                match v.state.base {
                    Base::Allocated | Base::Mixed | Base::Draining if !v.state.no_respond => a += 1,
                    Base::Idle if !v.state.no_respond => i += 1,
                    _ => o += 1,
                }
            }
            format!("{a}/{i}/{o}/{}", group.len())
        }
    }
}

/// Whether a node passes `-n` and `-t`.
fn node_selected(v: &NodeView<'_>, o: &SinfoOptions) -> bool {
    o.nodes.as_ref().is_none_or(|n| n.contains(&v.node.id))
        && o.states.as_ref().is_none_or(|s| s.iter().any(|w| v.state.is_named(w)))
        && (!o.reasons || v.reason != "none")
}

/// Prints sinfo's view of `pools`, `nodes` and the running `jobs` at `now`.
pub fn render_sinfo(
    pools: &[Pool],
    nodes: &[ComputeNode],
    jobs: &[SlurmJob],
    o: &SinfoOptions,
    now: Timestamp,
) -> Output {
    if let Some(help) = o.help {
        return Output { stdout: help.to_string(), ..Output::default() };
    }
    let spec = o.format.clone().unwrap_or_else(|| {
        let f = match (o.reasons, o.summarize, o.node_oriented, o.long) {
            (true, ..) => REASON_FORMAT,
            (false, true, ..) => SUMMARY_FORMAT,
            (false, false, true, true) => NODE_LONG_FORMAT,
            (false, false, true, false) => NODE_FORMAT,
            (false, false, false, true) => LONG_FORMAT,
            (false, false, false, false) => DEFAULT_FORMAT,
        };
        f.to_string()
    });
    let format = o.big_format.clone().unwrap_or_else(|| parse_percent_format(&spec));
    let mut out = Output::default();
    for f in &format.fields {
        if header(f.letter).is_none() {
            out.stderr.push_str(&format!("sinfo: error: Invalid node format specification: {}\n", f.letter));
        }
    }
    let parts: Vec<PartitionView<'_>> = partitions(pools, nodes, jobs)
        .into_iter()
        .filter(|p| o.partitions.as_ref().is_none_or(|l| l.contains(&p.name)))
        .collect();
    // Rows: (partition, nodes of the row). A partition without nodes still gets a line, unless
    // a node filter is in force; -N gives every node its own line.
    let mut rows: Vec<(&PartitionView<'_>, Vec<&NodeView<'_>>)> = Vec::new();
    let filtering = o.nodes.is_some() || o.states.is_some() || o.reasons;
    for part in &parts {
        let members: Vec<&NodeView<'_>> = part.nodes.iter().filter(|v| node_selected(v, o)).collect();
        if members.is_empty() {
            if !filtering && !o.node_oriented {
                rows.push((part, Vec::new()));
            }
            continue;
        }
        if o.node_oriented {
            rows.extend(members.into_iter().map(|v| (part, vec![v])));
            continue;
        }
        let mut groups: Vec<(Vec<String>, Vec<&NodeView<'_>>)> = Vec::new();
        for v in members {
            let key: Vec<String> = format
                .fields
                .iter()
                .filter(|f| !(aggregated(f.letter) || o.summarize && matches!(f.letter, 't' | 'T')))
                .map(|f| node_value(f.letter, part, v))
                .collect();
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(v),
                None => groups.push((key, vec![v])),
            }
        }
        // sinfo's default sort within a partition is by node state, highest first; the
        // drain and not-responding flags weigh more than any base state.
        groups.sort_by_key(|(_, g)| std::cmp::Reverse(g.first().map_or(0, |v| state_rank(v))));
        rows.extend(groups.into_iter().map(|(_, g)| (part, g)));
    }
    let cell = |f: &PercentField, part: &PartitionView<'_>, group: &[&NodeView<'_>]| -> String {
        if header(f.letter).is_none() {
            return String::new();
        }
        match group.first() {
            _ if aggregated(f.letter) => group_value(f.letter, part, group),
            Some(v) => node_value(f.letter, part, v),
            // A partition with no nodes: Slurm prints `n/a` for its state.
            None if matches!(f.letter, 't' | 'T') => "n/a".into(),
            None if matches!(f.letter, 'P' | 'R' | 'a' | 'l' | 's' | 'r' | 'h' | 'g') => {
                node_value_partition(f.letter, part)
            }
            None => "0".into(),
        }
    };
    let table: Vec<Vec<String>> =
        rows.iter().map(|(part, group)| format.fields.iter().map(|f| cell(f, part, group)).collect()).collect();
    if o.long {
        out.stdout.push_str(&date_line(now));
        out.stdout.push('\n');
    }
    let widths: Vec<usize> = format
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.width != usize::MAX {
                return f.width;
            }
            // sinfo's auto width: the widest value, and at least 9 for names (its minimum).
            let widest = table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
            widest.max(if f.letter == 'E' { 20 } else { 9 })
        })
        .collect();
    let mut line = |values: &mut dyn Iterator<Item = String>| {
        out.stdout.push_str(&format.prefix);
        for ((f, w), v) in format.fields.iter().zip(&widths).zip(values) {
            if header(f.letter).is_none() {
                out.stdout.push_str(&format!("%{}", f.letter));
            } else {
                out.stdout.push_str(&pad(&v, *w, f.right, !matches!(f.letter, 'N' | 'n' | 'o')));
            }
            out.stdout.push_str(&f.suffix);
        }
        out.stdout.push('\n');
    };
    if !o.no_header {
        line(&mut format.fields.iter().map(|f| header(f.letter).unwrap_or_default().to_string()));
    }
    for row in table {
        line(&mut row.into_iter());
    }
    out
}

/// Slurm's numeric node state (base plus flags), which sinfo sorts on.
fn state_rank(v: &NodeView<'_>) -> u32 {
    let busy = |b: Base| match b {
        Base::Mixed => 5,
        Base::Allocated => 3,
        _ => 2,
    };
    let base = match v.state.base {
        Base::Down => 1,
        Base::Drained | Base::Draining => busy(v.busy) | 0x200,
        Base::PoweringUp => 2 | 0x8000,
        b => busy(b),
    };
    base | if v.state.no_respond { 0x800 } else { 0 }
}

/// Partition-wide letters for a partition with no nodes.
fn node_value_partition(letter: char, part: &PartitionView<'_>) -> String {
    match letter {
        'P' => part.display_name(),
        'R' => part.name.clone(),
        'a' => part.avail().into(),
        'l' => "infinite".into(),
        's' => "1-infinite".into(),
        'r' => "no".into(),
        'h' => "NO".into(),
        _ => "all".into(),
    }
}

#[cfg(test)]
#[path = "info_tests.rs"]
mod tests;
