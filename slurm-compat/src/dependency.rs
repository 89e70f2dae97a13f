//! Job dependencies (`--dependency`), as slurmctld's `update_job_dependency` reads them.
//!
//! `TYPE:JOB[:JOB…]` conditions joined by `,` (all must hold) or `?` (any may hold), never
//! both; `TYPE` is `after`, `afterany`, `afterok`, `afternotok`, `aftercorr` or
//! `afterburstbuffer` (any case), and `singleton` stands alone. A job is `123`, an array task
//! `123_4`, or every task of an array `123_*`; `after` takes a delay in minutes, `after:123+10`.
//! A bare job id (`-d 123`) is Slurm's old form of `afterany:123`. An empty value or `0`
//! means no dependency.
//!
//! Where we are stricter than Slurm: it matches type names by prefix (`afterokay:1` passes as
//! `afterok`); we want the exact name.

use std::fmt;

use serde::{Serialize, Serializer};

/// All the conditions of a `--dependency`, and how they combine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dependencies {
    /// `all` for `,`-joined conditions, `any` for `?`-joined ones.
    pub combine: Combine,
    /// The conditions, in the order given.
    pub conditions: Vec<Condition>,
}

/// How conditions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// Every condition must hold (`,`).
    All,
    /// One condition is enough (`?`).
    Any,
}

/// One condition; serialised as `{"type": "afterok", "job": "16", "delay_minutes": null}` or
/// `{"type": "singleton"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Waits on another job.
    After {
        /// Which of the `after*` tests.
        kind: AfterKind,
        /// The job waited on.
        job: JobRef,
        /// For `after` only: minutes to wait after the job started.
        delay_minutes: Option<u32>,
    },
    /// Waits until no other job of the same name and user runs.
    Singleton,
}

/// The `after*` tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterKind {
    /// `after`: the job has started (or been cancelled).
    After,
    /// `afterany`: the job has ended, however.
    AfterAny,
    /// `afterok`: the job ended with exit code 0.
    AfterOk,
    /// `afternotok`: the job failed, timed out or was cancelled.
    AfterNotOk,
    /// `aftercorr`: the array task with the same index succeeded.
    AfterCorr,
    /// `afterburstbuffer`: the job's burst buffer stage-out finished.
    AfterBurstBuffer,
}

/// A job named in a dependency: `123`, `123_4` or `123_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRef {
    /// The job id.
    pub job_id: u32,
    /// Which array task, if any.
    pub array_task: Option<ArrayTask>,
}

/// The array task part of a [`JobRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayTask {
    /// `_N`.
    Index(u32),
    /// `_*`: every task.
    All,
}

/// Why a `--dependency` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DependencyError {
    /// A condition that does not start with a known test.
    #[error(
        "unknown dependency `{condition}`: expected after, afterany, afterok, afternotok, aftercorr, \
         afterburstbuffer or singleton"
    )]
    UnknownType {
        /// The condition as written.
        condition: String,
    },
    /// A job id that is not `N`, `N_M` or `N_*` (or is 0).
    #[error("invalid job id `{job}` in dependency `{condition}`")]
    JobId {
        /// The id as written.
        job: String,
        /// The condition it is part of.
        condition: String,
    },
    /// A `+delay` on a test other than `after`, or a malformed one.
    #[error("invalid delay in `{job}`: only `after` takes `+MINUTES`")]
    Delay {
        /// The job id with its delay, as written.
        job: String,
    },
    /// `,` and `?` in the same value.
    #[error("`,` (all) and `?` (any) cannot be mixed in one dependency")]
    Mixed,
    /// A test with no job after it (`afterok:`, `afterok`).
    #[error("dependency `{condition}` names no job")]
    NoJob {
        /// The condition as written.
        condition: String,
    },
}

/// Parses a `--dependency` value; `None` for `""` or `"0"` (no dependency).
pub fn parse_dependencies(spec: &str) -> Result<Option<Dependencies>, DependencyError> {
    if spec.is_empty() || spec == "0" {
        return Ok(None);
    }
    let combine = match (spec.contains(','), spec.contains('?')) {
        (true, true) => return Err(DependencyError::Mixed),
        (false, true) => Combine::Any,
        _ => Combine::All,
    };
    let separator = if combine == Combine::Any { '?' } else { ',' };
    let mut conditions = Vec::new();
    for condition in spec.split(separator) {
        parse_condition(condition, &mut conditions)?;
    }
    Ok(Some(Dependencies { combine, conditions }))
}

fn parse_condition(condition: &str, out: &mut Vec<Condition>) -> Result<(), DependencyError> {
    if condition.eq_ignore_ascii_case("singleton") {
        out.push(Condition::Singleton);
        return Ok(());
    }
    let Some((test, jobs)) = condition.split_once(':') else {
        // Slurm's old form: a bare job id means afterany.
        if condition.starts_with(|c: char| c.is_ascii_digit()) {
            let job = parse_job(condition, condition)?;
            out.push(Condition::After { kind: AfterKind::AfterAny, job, delay_minutes: None });
            return Ok(());
        }
        if kind_named(condition).is_some() {
            return Err(DependencyError::NoJob { condition: condition.to_string() });
        }
        return Err(DependencyError::UnknownType { condition: condition.to_string() });
    };
    let kind = kind_named(test).ok_or_else(|| DependencyError::UnknownType { condition: condition.to_string() })?;
    if jobs.is_empty() {
        return Err(DependencyError::NoJob { condition: condition.to_string() });
    }
    for job in jobs.split(':') {
        let (id, delay_minutes) = match job.split_once('+') {
            Some((id, delay)) if kind == AfterKind::After => {
                let minutes = delay.parse::<u32>().ok().filter(|_| delay.bytes().all(|b| b.is_ascii_digit()));
                (id, Some(minutes.ok_or_else(|| DependencyError::Delay { job: job.to_string() })?))
            }
            Some(_) => return Err(DependencyError::Delay { job: job.to_string() }),
            None => (job, None),
        };
        out.push(Condition::After { kind, job: parse_job(id, condition)?, delay_minutes });
    }
    Ok(())
}

fn kind_named(name: &str) -> Option<AfterKind> {
    const KINDS: [(&str, AfterKind); 6] = [
        ("after", AfterKind::After),
        ("afterany", AfterKind::AfterAny),
        ("afterok", AfterKind::AfterOk),
        ("afternotok", AfterKind::AfterNotOk),
        ("aftercorr", AfterKind::AfterCorr),
        ("afterburstbuffer", AfterKind::AfterBurstBuffer),
    ];
    KINDS.into_iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, k)| k)
}

fn parse_job(text: &str, condition: &str) -> Result<JobRef, DependencyError> {
    let bad = || DependencyError::JobId { job: text.to_string(), condition: condition.to_string() };
    let (id, task) = match text.split_once('_') {
        Some((id, "*")) => (id, Some(ArrayTask::All)),
        Some((id, task)) => (id, Some(ArrayTask::Index(number(task).ok_or_else(bad)?))),
        None => (text, None),
    };
    match number(id) {
        Some(job_id) if job_id > 0 => Ok(JobRef { job_id, array_task: task }),
        _ => Err(bad()),
    }
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl AfterKind {
    /// The name Slurm uses.
    pub fn as_str(self) -> &'static str {
        match self {
            AfterKind::After => "after",
            AfterKind::AfterAny => "afterany",
            AfterKind::AfterOk => "afterok",
            AfterKind::AfterNotOk => "afternotok",
            AfterKind::AfterCorr => "aftercorr",
            AfterKind::AfterBurstBuffer => "afterburstbuffer",
        }
    }
}

impl fmt::Display for JobRef {
    /// `123`, `123_4` or `123_*`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.job_id)?;
        match self.array_task {
            Some(ArrayTask::Index(i)) => write!(f, "_{i}"),
            Some(ArrayTask::All) => f.write_str("_*"),
            None => Ok(()),
        }
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            Condition::Singleton => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("type", "singleton")?;
                map.end()
            }
            Condition::After { kind, job, delay_minutes } => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("type", kind.as_str())?;
                map.serialize_entry("job", job)?;
                map.serialize_entry("delay_minutes", delay_minutes)?;
                map.end()
            }
        }
    }
}

impl Serialize for JobRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Dependencies {
    /// The canonical form, as `SLURM_JOB_DEPENDENCY` shows it: `afterok:16`, `afterok:1:2,singleton`
    /// (with `,`, consecutive conditions with the same test share it; with `?` each is written
    /// out, so that a lone group is not read back as "all").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let separator = if self.combine == Combine::Any { "?" } else { "," };
        let mut previous: Option<AfterKind> = None;
        for (i, condition) in self.conditions.iter().enumerate() {
            match condition {
                Condition::Singleton => {
                    if i > 0 {
                        f.write_str(separator)?;
                    }
                    f.write_str("singleton")?;
                    previous = None;
                }
                Condition::After { kind, job, delay_minutes } => {
                    if previous == Some(*kind) && self.combine == Combine::All {
                        write!(f, ":{job}")?;
                    } else {
                        if i > 0 {
                            f.write_str(separator)?;
                        }
                        write!(f, "{}:{job}", kind.as_str())?;
                    }
                    if let Some(d) = delay_minutes {
                        write!(f, "+{d}")?;
                    }
                    previous = Some(*kind);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(kind: AfterKind, job_id: u32) -> Condition {
        Condition::After { kind, job: JobRef { job_id, array_task: None }, delay_minutes: None }
    }

    fn check(input: &str, combine: Combine, conditions: Vec<Condition>) {
        let got = parse_dependencies(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(got, Some(Dependencies { combine, conditions }), "input {input:?}");
    }

    #[test]
    fn every_test() {
        use AfterKind::*;
        check("after:5", Combine::All, vec![after(After, 5)]);
        check("afterok:16", Combine::All, vec![after(AfterOk, 16)]);
        check("afternotok:16", Combine::All, vec![after(AfterNotOk, 16)]);
        check("afterany:16", Combine::All, vec![after(AfterAny, 16)]);
        check("aftercorr:16", Combine::All, vec![after(AfterCorr, 16)]);
        check("afterburstbuffer:16", Combine::All, vec![after(AfterBurstBuffer, 16)]);
        check("AFTEROK:16", Combine::All, vec![after(AfterOk, 16)]);
        check("singleton", Combine::All, vec![Condition::Singleton]);
        check("16", Combine::All, vec![after(AfterAny, 16)]); // old form
    }

    #[test]
    fn lists_and_combinators() {
        use AfterKind::*;
        check("afterok:1:2:3", Combine::All, vec![after(AfterOk, 1), after(AfterOk, 2), after(AfterOk, 3)]);
        check("afterok:1,afternotok:2", Combine::All, vec![after(AfterOk, 1), after(AfterNotOk, 2)]);
        check("afterok:1?afternotok:2", Combine::Any, vec![after(AfterOk, 1), after(AfterNotOk, 2)]);
        check("afterany:1,singleton", Combine::All, vec![after(AfterAny, 1), Condition::Singleton]);
        check("12,13", Combine::All, vec![after(AfterAny, 12), after(AfterAny, 13)]);
    }

    #[test]
    fn array_tasks_and_delays() {
        let got = parse_dependencies("afterok:123_4:123_*,after:9+10").unwrap().unwrap();
        assert_eq!(
            got.conditions,
            vec![
                Condition::After {
                    kind: AfterKind::AfterOk,
                    job: JobRef { job_id: 123, array_task: Some(ArrayTask::Index(4)) },
                    delay_minutes: None
                },
                Condition::After {
                    kind: AfterKind::AfterOk,
                    job: JobRef { job_id: 123, array_task: Some(ArrayTask::All) },
                    delay_minutes: None
                },
                Condition::After {
                    kind: AfterKind::After,
                    job: JobRef { job_id: 9, array_task: None },
                    delay_minutes: Some(10)
                },
            ]
        );
    }

    #[test]
    fn nothing() {
        assert_eq!(parse_dependencies(""), Ok(None));
        assert_eq!(parse_dependencies("0"), Ok(None));
    }

    #[test]
    fn malformed() {
        for bad in [
            "afterok",
            "afterok:",
            "afterok:abc",
            "afterok:0",
            "afterok:1,",
            "afterok:1::2",
            "afterok:1+5",
            "after:1+",
            "after:1+x",
            "afterok:1,afterok:2?afterok:3",
            "before:1",
            "afterokay:1",
            "singleton:1",
            "afterok:1_",
            "afterok:1_x",
            "afterok:_1",
            ",",
            "?",
            "afterok:-1",
            "afterok:99999999999",
            " afterok:1",
        ] {
            assert!(parse_dependencies(bad).is_err(), "{bad:?} should be rejected, got {:?}", parse_dependencies(bad));
        }
        assert_eq!(parse_dependencies("afterok:1?afterok:2,afterok:3"), Err(DependencyError::Mixed));
    }

    #[test]
    fn canonical_form() {
        for (input, canonical) in [
            ("afterok:16", "afterok:16"),
            ("afterok:1:2,singleton", "afterok:1:2,singleton"),
            ("AfterOK:1,afterok:2", "afterok:1:2"),
            ("16", "afterany:16"),
            ("afterok:1_2?after:3+5:4", "afterok:1_2?after:3+5?after:4"),
        ] {
            assert_eq!(parse_dependencies(input).unwrap().unwrap().to_string(), canonical, "input {input:?}");
        }
    }

    #[test]
    fn serialises_with_test_names() {
        let deps = parse_dependencies("afterok:16_2").unwrap().unwrap();
        let json = serde_json::to_value(&deps).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"combine": "all", "conditions": [
                {"type": "afterok", "job": "16_2", "delay_minutes": null}
            ]})
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn condition() -> impl Strategy<Value = Condition> {
        let kinds = prop_oneof![
            Just(AfterKind::After),
            Just(AfterKind::AfterAny),
            Just(AfterKind::AfterOk),
            Just(AfterKind::AfterNotOk),
            Just(AfterKind::AfterCorr),
            Just(AfterKind::AfterBurstBuffer),
        ];
        let task = proptest::option::of(prop_oneof![(0u32..2000).prop_map(ArrayTask::Index), Just(ArrayTask::All)]);
        prop_oneof![
            1 => Just(Condition::Singleton),
            8 => (kinds, 1u32..1_000_000, task, proptest::option::of(0u32..1000)).prop_map(|(kind, job_id, array_task, delay)| {
                Condition::After {
                    kind,
                    job: JobRef { job_id, array_task },
                    delay_minutes: if kind == AfterKind::After { delay } else { None },
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = parse_dependencies(&s);
        }

        #[test]
        fn canonical_form_round_trips(conditions in proptest::collection::vec(condition(), 1..6), any in any::<bool>()) {
            // One condition reads back as "all": it is the same thing.
            let any = any && conditions.len() > 1;
            let deps = Dependencies { combine: if any { Combine::Any } else { Combine::All }, conditions };
            prop_assert_eq!(parse_dependencies(&deps.to_string()), Ok(Some(deps)));
        }
    }
}
