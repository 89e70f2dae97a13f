//! Output and error file name patterns (`--output`, `--error`, `srun --output`), as slurmd's
//! `fname_create` expands them (checked against `shared/reference/slurm-22.05/patterns.txt`).
//!
//! | pattern | becomes |
//! | --- | --- |
//! | `%j` | job id (for an array task, its own job id) |
//! | `%J` | `jobid.stepid`; just the job id in the batch step |
//! | `%A` | array master job id; the job id outside arrays |
//! | `%a` | array task id (`4294967294` outside arrays, as Slurm writes `NO_VAL`) |
//! | `%x` | job name |
//! | `%u` | user name |
//! | `%N` | short host name of the node |
//! | `%n` | node index within the step |
//! | `%t` | task rank within the step |
//! | `%s` | step id; `batch` in the batch step |
//! | `%%` | `%` |
//!
//! A number between `%` and the letter zero-pads numeric fields (`%3a` → `005`, at most 10
//! wide). Any backslash in the pattern turns substitution off and is itself removed
//! (`%x\%j.out` → `%x%j.out`). Other `%` sequences are kept as written. A relative result is
//! relative to the job's working directory.

/// The default `--output` of a job.
pub const DEFAULT_OUTPUT: &str = "slurm-%j.out";
/// The default `--output` of a job array.
pub const DEFAULT_ARRAY_OUTPUT: &str = "slurm-%A_%a.out";

/// Slurm's `NO_VAL`, which `%a` shows outside job arrays.
const NO_VAL: u32 = 0xffff_fffe;
/// The widest zero padding Slurm applies.
const MAX_WIDTH: usize = 10;

/// Which step a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The batch script itself.
    Batch,
    /// An `srun` step, numbered from 0.
    Id(u32),
}

/// Everything a pattern can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatternContext<'a> {
    /// `%j`: the job's own id.
    pub job_id: u32,
    /// For an array task, `%A` (the array's master id) and `%a` (the task index).
    pub array: Option<(u32, u32)>,
    /// `%x`.
    pub job_name: &'a str,
    /// `%u`.
    pub user: &'a str,
    /// `%N`.
    pub node_name: &'a str,
    /// `%n`.
    pub node_id: u32,
    /// `%t`.
    pub task_id: u32,
    /// `%s`, and the suffix of `%J`.
    pub step: Step,
}

/// Expands a pattern into a file name (not yet joined to the working directory).
pub fn expand_pattern(pattern: &str, ctx: &PatternContext<'_>) -> String {
    if pattern.contains('\\') {
        return pattern.replace('\\', "");
    }
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let spec = &rest[at + 1..];
        let digits = spec.bytes().take_while(u8::is_ascii_digit).count();
        let width =
            spec[..digits].parse::<usize>().map_or(if digits > 0 { MAX_WIDTH } else { 0 }, |w| w.min(MAX_WIDTH));
        let Some(letter) = spec[digits..].chars().next() else {
            // A trailing `%` or `%3`: kept as written.
            out.push_str(&rest[at..]);
            return out;
        };
        let number = |n: u32| format!("{n:0width$}");
        match letter {
            'j' => out.push_str(&number(ctx.job_id)),
            'J' => {
                out.push_str(&number(ctx.job_id));
                if let Step::Id(step) = ctx.step {
                    out.push_str(&format!(".{step}"));
                }
            }
            'A' => out.push_str(&number(ctx.array.map_or(ctx.job_id, |(job, _)| job))),
            'a' => out.push_str(&number(ctx.array.map_or(NO_VAL, |(_, task)| task))),
            's' => match ctx.step {
                Step::Batch => out.push_str("batch"),
                Step::Id(step) => out.push_str(&number(step)),
            },
            't' => out.push_str(&number(ctx.task_id)),
            'n' => out.push_str(&number(ctx.node_id)),
            'N' => out.push_str(ctx.node_name),
            'u' => out.push_str(ctx.user),
            'x' => out.push_str(ctx.job_name),
            '%' => out.push('%'),
            other => {
                out.push('%');
                out.push_str(&spec[..digits]);
                out.push(other);
            }
        }
        rest = &spec[digits + letter.len_utf8()..];
    }
    out.push_str(rest);
    out
}

/// Expands a pattern and, when the result is relative, puts it in `workdir`: the path slurmd
/// opens (and `scontrol show job` reports as `StdOut`/`StdErr`).
pub fn expand_path(pattern: &str, workdir: &str, ctx: &PatternContext<'_>) -> String {
    let name = expand_pattern(pattern, ctx);
    if name.starts_with('/') {
        return name;
    }
    let dir = workdir.replace('\\', "");
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: PatternContext<'static> = PatternContext {
        job_id: 24,
        array: None,
        job_name: "patjob",
        user: "root",
        node_name: "vm",
        node_id: 0,
        task_id: 0,
        step: Step::Batch,
    };

    fn check(pattern: &str, ctx: PatternContext<'_>, expected: &str) {
        assert_eq!(expand_pattern(pattern, &ctx), expected, "pattern {pattern:?}");
    }

    #[test]
    fn every_field() {
        check("%j", BATCH, "24");
        check("%J", BATCH, "24");
        check("%J", PatternContext { step: Step::Id(3), ..BATCH }, "24.3");
        check("%A", BATCH, "24");
        check("%a", BATCH, "4294967294");
        check("%A_%a", PatternContext { job_id: 28, array: Some((25, 1)), ..BATCH }, "25_1");
        check("%x", BATCH, "patjob");
        check("%u", BATCH, "root");
        check("%N", BATCH, "vm");
        check("%n.%t", PatternContext { node_id: 2, task_id: 7, ..BATCH }, "2.7");
        check("%s", BATCH, "batch");
        check("%s", PatternContext { step: Step::Id(0), ..BATCH }, "0");
        check("100%%", BATCH, "100%");
    }

    #[test]
    fn zero_padding() {
        check("%3a", PatternContext { array: Some((26, 5)), job_id: 26, ..BATCH }, "005");
        check("%5j", BATCH, "00024");
        check("%1j", BATCH, "24");
        check("%0j", BATCH, "24");
        check("%12j", BATCH, "0000000024"); // capped at 10
        check("%99999999999999999999j", BATCH, "0000000024");
        check("%3J", PatternContext { step: Step::Id(1), ..BATCH }, "024.1");
        check("%4s", PatternContext { step: Step::Id(1), ..BATCH }, "0001");
        check("%4s", BATCH, "batch");
        check("%5x", BATCH, "patjob"); // names are not padded
    }

    #[test]
    fn escapes_and_oddities() {
        check("%x\\%j-escaped.out", BATCH, "%x%j-escaped.out");
        check("a\\b%j", BATCH, "ab%j");
        check("%q", BATCH, "%q");
        check("%3q", BATCH, "%3q");
        check("out%", BATCH, "out%");
        check("out%7", BATCH, "out%7");
        check("plain.out", BATCH, "plain.out");
        check("é%jü", BATCH, "é24ü");
        check("%é", BATCH, "%é");
    }

    #[test]
    fn paths() {
        let ctx = PatternContext { job_id: 23, job_name: "refjob", ..BATCH };
        assert_eq!(
            expand_path(DEFAULT_OUTPUT, "/srv/slurm-peer/refwork", &ctx),
            "/srv/slurm-peer/refwork/slurm-23.out"
        );
        assert_eq!(expand_path("/tmp/%x.out", "/home/u", &ctx), "/tmp/refjob.out");
        assert_eq!(expand_path("o", "/", &ctx), "/o");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn never_panics(pattern in ".{0,40}", job_id in any::<u32>(), task in proptest::option::of(any::<u32>())) {
            let ctx = PatternContext { job_id, array: task.map(|t| (job_id, t)), ..tests_ctx() };
            let _ = expand_pattern(&pattern, &ctx);
        }

        #[test]
        fn text_without_percent_or_backslash_is_kept(s in "[^%\\\\]{0,40}") {
            prop_assert_eq!(expand_pattern(&s, &tests_ctx()), s);
        }
    }

    fn tests_ctx() -> PatternContext<'static> {
        PatternContext {
            job_id: 1,
            array: None,
            job_name: "n",
            user: "u",
            node_name: "h",
            node_id: 0,
            task_id: 0,
            step: Step::Batch,
        }
    }
}
