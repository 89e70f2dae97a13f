//! GPU requests: `--gres=gpu[:type][:N][,…]` (per node), `-G/--gpus=[type:]N` (per job),
//! `--gpus-per-node=[type:]N` and `--gpus-per-task=[type:]N`.
//!
//! gangway schedules one GPU type per job, so a request naming two types is refused; GRES
//! other than `gpu` (`mps`, `shard`, site-defined ones) are accepted and ignored with a
//! warning. `--gres=none` asks for no GPU; `--gres=gpu:0` asks for zero per node (no GPU, but
//! shown as Slurm shows it, `TresPerNode=gres:gpu:0`).

use serde::Serialize;

use crate::error::SlurmError;

/// The GPUs a job asks for, as `parse` reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GpuRequest {
    /// `-G/--gpus`: GPUs for the whole job.
    pub per_job: Option<u32>,
    /// `--gpus-per-node` or `--gres=gpu:N`.
    pub per_node: Option<u32>,
    /// `--gpus-per-task`.
    pub per_task: Option<u32>,
    /// The GPU type (`a100`), if one was named.
    #[serde(rename = "type")]
    pub gpu_type: Option<String>,
}

impl GpuRequest {
    /// The variables sbatch sets for the job from these options (`SLURM_GPUS`,
    /// `SLURM_GPUS_PER_TASK`), which an `srun` inside reads as its defaults.
    pub fn env(&self) -> Vec<(String, String)> {
        let with_type = |n: u32| self.gpu_type.as_ref().map_or_else(|| n.to_string(), |t| format!("{t}:{n}"));
        let mut env = Vec::new();
        if let Some(n) = self.per_job {
            env.push(("SLURM_GPUS".to_owned(), with_type(n)));
        }
        if let Some(n) = self.per_task {
            env.push(("SLURM_GPUS_PER_TASK".to_owned(), with_type(n)));
        }
        env
    }
}

/// A count of GPUs, possibly of a named type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuCount {
    /// How many.
    pub count: u32,
    /// Of which type, if named.
    pub gpu_type: Option<String>,
}

fn gres_error(value: &str, reason: impl Into<String>) -> SlurmError {
    SlurmError::Gres { value: value.to_string(), reason: reason.into() }
}

/// `[type:]N` as `--gpus`, `--gpus-per-node` and `--gpus-per-task` take it.
pub fn gpu_count(value: &str) -> Result<GpuCount, SlurmError> {
    if value.contains(',') {
        return Err(gres_error(value, "gangway supports one GPU type per job"));
    }
    let (gpu_type, count) = match value.rsplit_once(':') {
        Some((t, n)) => (Some(t), n),
        None => (None, value),
    };
    let count = count_of(count).filter(|&n| n > 0).ok_or_else(|| gres_error(value, "expected [type:]N with N ≥ 1"))?;
    if let Some(t) = gpu_type {
        check_type(value, t)?;
    }
    Ok(GpuCount { count, gpu_type: gpu_type.map(String::from) })
}

fn check_type(value: &str, t: &str) -> Result<(), SlurmError> {
    if t.is_empty() || t.contains(':') || t.chars().any(char::is_whitespace) {
        return Err(gres_error(value, format!("`{t}` is not a GPU type")));
    }
    Ok(())
}

/// A GRES count: digits with an optional `k`, `m`, `g` multiplier (powers of 1024).
fn count_of(s: &str) -> Option<u32> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult).and_then(|n| u32::try_from(n).ok())
}

/// `--gres`: the GPUs per node it asks for (`None` for none), and the other GRES names it
/// names, which gangway ignores.
pub fn gres(value: &str) -> Result<(Option<GpuCount>, Vec<String>), SlurmError> {
    if value.eq_ignore_ascii_case("none") {
        return Ok((None, Vec::new()));
    }
    let (mut gpu, mut ignored) = (None, Vec::new());
    for token in value.split(',') {
        let token = token.strip_prefix("gres/").or_else(|| token.strip_prefix("gres:")).unwrap_or(token);
        let parts: Vec<&str> = token.split(':').collect();
        let (name, gpu_type, count) = match parts.as_slice() {
            [name] => (*name, None, Some(1)),
            [name, n] if count_of(n).is_some() => (*name, None, count_of(n)),
            [name, t] => (*name, Some(*t), Some(1)),
            [name, t, n] => (*name, Some(*t), count_of(n)),
            _ => (token, None, None),
        };
        if name.is_empty() {
            return Err(gres_error(value, "expected NAME[:TYPE][:COUNT][,...]"));
        }
        let Some(count) = count else {
            return Err(gres_error(value, format!("`{token}` has no valid count")));
        };
        if name != "gpu" {
            ignored.push(name.to_string());
            continue;
        }
        if let Some(t) = gpu_type {
            check_type(value, t)?;
        }
        if gpu.is_some() {
            return Err(gres_error(value, "gpu is named twice; gangway supports one GPU type per job"));
        }
        gpu = Some(GpuCount { count, gpu_type: gpu_type.map(String::from) });
    }
    Ok((gpu, ignored))
}

/// The four GPU options together. Two per-node counts must agree, and at most one type may be
/// named.
pub fn combine(
    gres: Option<(&str, GpuCount)>,
    per_job: Option<(&str, GpuCount)>,
    per_node: Option<(&str, GpuCount)>,
    per_task: Option<(&str, GpuCount)>,
) -> Result<Option<GpuRequest>, SlurmError> {
    let per_node = match (gres, per_node) {
        (Some((_, a)), Some((text, b))) if a != b => {
            return Err(gres_error(text, "--gres=gpu and --gpus-per-node ask for different GPUs per node"));
        }
        (a, b) => b.or(a),
    };
    let mut gpu_type: Option<String> = None;
    for (text, count) in [&per_job, &per_node, &per_task].into_iter().flatten() {
        if let Some(t) = count.gpu_type.as_deref() {
            match gpu_type.as_deref() {
                Some(seen) if seen != t => {
                    return Err(gres_error(
                        text,
                        format!("GPUs of types {seen} and {t}: gangway supports one GPU type per job"),
                    ));
                }
                _ => gpu_type = Some(t.to_string()),
            }
        }
    }
    if per_job.is_none() && per_node.is_none() && per_task.is_none() {
        return Ok(None);
    }
    Ok(Some(GpuRequest {
        per_job: per_job.map(|(_, c)| c.count),
        per_node: per_node.map(|(_, c)| c.count),
        per_task: per_task.map(|(_, c)| c.count),
        gpu_type,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_gets_the_gpu_variables_sbatch_sets() {
        let req = |per_job, per_node, per_task| GpuRequest { per_job, per_node, per_task, gpu_type: None };
        let typed = GpuRequest { per_job: Some(2), per_task: Some(1), gpu_type: Some("h100".into()), per_node: None };
        assert_eq!(
            typed.env(),
            [("SLURM_GPUS".to_owned(), "h100:2".to_owned()), ("SLURM_GPUS_PER_TASK".to_owned(), "h100:1".to_owned())]
        );
        assert!(req(None, Some(2), None).env().is_empty());
    }

    fn gpus(count: u32, t: Option<&str>) -> GpuCount {
        GpuCount { count, gpu_type: t.map(String::from) }
    }

    #[test]
    fn counts() {
        assert_eq!(gpu_count("2").unwrap(), gpus(2, None));
        assert_eq!(gpu_count("a100:4").unwrap(), gpus(4, Some("a100")));
        for bad in ["", "0", "x", "a100:", ":2", "a100:x", "a100:2,v100:1", "a:b:2", "-1"] {
            assert!(gpu_count(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gres_lists() {
        let check = |v: &str, gpu: Option<GpuCount>, ignored: &[&str]| {
            assert_eq!(gres(v).unwrap(), (gpu, ignored.iter().map(|s| s.to_string()).collect()), "{v:?}");
        };
        check("gpu:2", Some(gpus(2, None)), &[]);
        check("gpu", Some(gpus(1, None)), &[]);
        check("gpu:a100:2", Some(gpus(2, Some("a100"))), &[]);
        check("gpu:a100", Some(gpus(1, Some("a100"))), &[]);
        check("gres/gpu:4", Some(gpus(4, None)), &[]);
        check("gpu:0", Some(gpus(0, None)), &[]);
        check("none", None, &[]);
        check("gpu:tesla:2,mps:100", Some(gpus(2, Some("tesla"))), &["mps"]);
        check("shard:2", None, &["shard"]);
        check("tmpdisk:10G", None, &["tmpdisk"]);
        for bad in ["", "gpu:a:b:c", "gpu:a100:x", "gpu:1,gpu:2", ":2", "gpu:a100:2,gpu:v100:1", "gpu::2"] {
            assert!(gres(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn combining() {
        let got = combine(Some(("gpu:2", gpus(2, Some("a100")))), None, None, Some(("1", gpus(1, None)))).unwrap();
        assert_eq!(
            got,
            Some(GpuRequest { per_job: None, per_node: Some(2), per_task: Some(1), gpu_type: Some("a100".into()) })
        );
        assert_eq!(combine(None, None, None, None).unwrap(), None);
        assert!(combine(None, Some(("a100:2", gpus(2, Some("a100")))), Some(("v100:1", gpus(1, Some("v100")))), None)
            .is_err());
        assert!(combine(Some(("gpu:2", gpus(2, None))), None, Some(("4", gpus(4, None))), None).is_err());
        assert!(combine(Some(("gpu:2", gpus(2, None))), None, Some(("2", gpus(2, None))), None).is_ok());
    }
}
