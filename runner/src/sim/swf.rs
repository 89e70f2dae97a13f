//! The Standard Workload Format of the Parallel Workloads Archive: `;` header lines (`MaxNodes:`,
//! `MaxProcs:`), then one job per line in 18 whitespace-separated fields, `-1` for unknown.
//!
//! What a simulation needs of a job is read with the archive's usual conventions: its
//! processors are field 5 (allocated), else field 8 (requested); its estimate is field 9 (the
//! user's request), never less than what it actually ran (field 4), and its run time when
//! field 9 is missing. Lines that cannot be used are skipped and counted by reason, never an
//! error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One job of a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Field 1.
    pub id: u64,
    /// Seconds from the log's start (field 2).
    pub submit: u64,
    /// Seconds it actually ran (field 4).
    pub run: u64,
    /// Processors (field 5, else field 8).
    pub procs: u64,
    /// The user's estimate, seconds (field 9 if known and not below `run`, else `run`).
    pub estimate: u64,
    /// Its user (field 12; 0 when unknown).
    pub user: u32,
}

/// A trace, as read.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Its usable jobs, in file order.
    pub jobs: Vec<Job>,
    /// `; MaxNodes:` from the header.
    pub max_nodes: Option<u64>,
    /// `; MaxProcs:` from the header.
    pub max_procs: Option<u64>,
    /// Lines skipped, by reason.
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Trace {
    /// Reads `path` (gzip'ed when it starts with gzip's magic bytes).
    pub fn open(path: &Path) -> anyhow::Result<Trace> {
        let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let mut reader = BufReader::new(file);
        let gz = reader.fill_buf().map(|b| b.starts_with(&[0x1f, 0x8b])).unwrap_or(false);
        let input: Box<dyn Read> =
            if gz { Box::new(flate2::read::MultiGzDecoder::new(reader)) } else { Box::new(reader) };
        Trace::read(BufReader::new(input)).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Reads a trace from `input`.
    pub fn read(input: impl BufRead) -> std::io::Result<Trace> {
        let mut t = Trace::default();
        for line in input.lines() {
            let line = line?;
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if let Some(header) = line.strip_prefix(';') {
                let (key, value) = header.split_once(':').unwrap_or(("", ""));
                let value = value.trim().parse().ok();
                match key.trim() {
                    "MaxNodes" => t.max_nodes = value,
                    "MaxProcs" => t.max_procs = value,
                    _ => {}
                }
                continue;
            }
            match parse_job(line) {
                Ok(job) => t.jobs.push(job),
                Err(why) => *t.skipped.entry(why).or_default() += 1,
            }
        }
        Ok(t)
    }

    /// Lines skipped, in all.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// One job line, or why it cannot be used.
fn parse_job(line: &str) -> Result<Job, &'static str> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() != 18 {
        return Err("not 18 fields");
    }
    let mut num = [0i64; 18];
    for (n, f) in num.iter_mut().zip(&fields) {
        *n = match f.parse::<i64>() {
            Ok(v) => v,
            // Some archives write fractional seconds; the rest is not a number.
            Err(_) => f.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or("a field is not a number")? as i64,
        };
    }
    let [id, submit, _wait, run, allocated, _cpu, _mem, requested, estimate, _req_mem, _status, user, ..] = num;
    if id < 0 {
        return Err("negative job number");
    }
    if submit < 0 {
        return Err("missing or negative submit time");
    }
    if run < 0 {
        return Err("missing or negative run time");
    }
    let procs = if allocated > 0 { allocated } else { requested };
    if procs <= 0 {
        return Err("no processor count");
    }
    let estimate = if estimate > 0 { estimate.max(run) } else { run };
    let user = u32::try_from(user).unwrap_or(0);
    Ok(Job {
        id: id as u64,
        submit: submit as u64,
        run: run as u64,
        procs: procs as u64,
        estimate: estimate as u64,
        user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_header_and_the_conventions() {
        let text = "; MaxNodes: 4\n; MaxProcs: 8\n\
            1 0 5 100 2 -1 -1 2 50 -1 1 1 1 1 1 1 -1 -1\n\
            2 10 -1 30 -1 -1 -1 4 -1 -1 1 1 1 1 1 1 -1 -1\n\
            3 20 -1 30 8 -1 -1 8 3600 -1 1 1 1 1 1 1 -1 -1\n";
        let t = Trace::read(text.as_bytes()).unwrap();
        assert_eq!((t.max_nodes, t.max_procs), (Some(4), Some(8)));
        let jobs: Vec<(u64, u64, u64)> = t.jobs.iter().map(|j| (j.id, j.procs, j.estimate)).collect();
        // An estimate below the run time is the run time; a missing one too; procs from field 8.
        assert_eq!(jobs, vec![(1, 2, 100), (2, 4, 30), (3, 8, 3600)]);
    }

    #[test]
    fn bad_lines_are_skipped_and_counted() {
        let text = "1 0 5 100 2\n\
            2 x -1 30 1 -1 -1 1 -1 -1 1 1 1 1 1 1 -1 -1\n\
            3 -1 -1 30 1 -1 -1 1 -1 -1 1 1 1 1 1 1 -1 -1\n\
            4 5 -1 -3 1 -1 -1 1 -1 -1 1 1 1 1 1 1 -1 -1\n\
            5 5 -1 3 -1 -1 -1 -1 -1 -1 1 1 1 1 1 1 -1 -1\n\
            6 5 -1 3 1 -1 -1 1 -1 -1 1 1 1 1 1 1 -1 -1\n";
        let t = Trace::read(text.as_bytes()).unwrap();
        assert_eq!(t.jobs.len(), 1);
        assert_eq!(t.skipped_total(), 5);
        assert_eq!(t.skipped["not 18 fields"], 1);
        assert_eq!(t.skipped["a field is not a number"], 1);
        assert_eq!(t.skipped["missing or negative submit time"], 1);
        assert_eq!(t.skipped["missing or negative run time"], 1);
        assert_eq!(t.skipped["no processor count"], 1);
    }
}
