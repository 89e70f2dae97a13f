//! `srun` outside an allocation: as Slurm's srun does, it first asks for an allocation (a
//! job sized by `-N`/`-n`/`-c` and the allocation options `-p`, `-t`, `-J`, …), then runs its
//! step inside it, and gives the allocation back when the step ends. The allocation is
//! salloc's ([`crate::salloc::Allocation`]): a holder on its first node runs this same srun
//! inside it, whose output, input and signals are relayed as for an srun under salloc.

use std::process::ExitCode;

use crate::salloc::{forward_srun_to, Allocation};
use crate::step::{Failure, StepRequest};

/// sbatch's options for the allocation `r` asks for.
pub fn allocation_options(r: &StepRequest) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = r.ntasks {
        out.push(format!("--ntasks={n}"));
    }
    if let Some(n) = r.nodes {
        out.push(format!("--nodes={n}"));
    }
    if let Some(c) = r.cpus_per_task {
        out.push(format!("--cpus-per-task={c}"));
    }
    out.extend(r.allocation.iter().cloned());
    if !r.allocation.iter().any(|a| a.starts_with("--job-name=")) {
        let name = r.command.first().map(|c| c.rsplit('/').next().unwrap_or(c)).unwrap_or("srun");
        out.push(format!("--job-name={name}"));
    }
    out
}

/// Allocates, runs the step inside, gives the allocation back; the step's exit code.
pub fn run(r: &StepRequest, args: &[String]) -> Result<ExitCode, Failure> {
    let alloc = Allocation::get("srun", &allocation_options(r))?;
    // --pty: raw only once the allocation is granted (while it is pending, Ctrl-C cancels it).
    let raw = r.pty.then(crate::terminal::Raw::enter);
    let ran = forward_srun_to(&alloc.addr, alloc.key.clone(), args);
    drop(raw);
    alloc.release(ran.as_ref().map_or(1, |c| i32::from(*c)));
    Ok(ran.map(ExitCode::from)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocation_is_sized_and_named_by_srun_s_options() {
        let args: Vec<String> = ["-n", "2", "-p", "gpu", "-l", "sh", "-c", "echo hi"].map(String::from).into();
        let r = crate::step::parse(&args).unwrap();
        assert_eq!(allocation_options(&r), ["--ntasks=2", "--partition=gpu", "--job-name=sh"]);
        let named = crate::step::parse(&["-J".into(), "mine".into(), "true".into()]).unwrap();
        let opts = allocation_options(&named);
        assert!(opts.contains(&"--job-name=mine".to_owned()) && !opts.contains(&"--job-name=true".to_owned()));
    }
}
