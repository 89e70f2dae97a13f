//! Scripts written the way public batch scripts are (habits seen across GitHub: trailing
//! comments, several options on a line, abbreviated options, disabled `##SBATCH` lines, site
//! options gangway ignores), resolved as Slurm would.

use gangway_slurm::{resolve_source, Resolved};

fn resolve(text: &str) -> Resolved {
    resolve_source(Some(("run.sh", text)), &[]).unwrap_or_else(|e| panic!("{}\n{text}", e.render("sbatch")))
}

#[test]
fn gpu_training_job() {
    let job = resolve(
        "#!/bin/bash\n\
         #SBATCH --job-name=train        # a short name\n\
         #SBATCH --nodes=2                # node count\n\
         #SBATCH --ntasks-per-node=4      # one task per GPU\n\
         #SBATCH --cpus-per-task=16\n\
         #SBATCH --mem=480G\n\
         #SBATCH --gres=gpu:4             # GPUs per node\n\
         #SBATCH --time=6-00:00:00\n\
         #SBATCH --error=logs/job.%J.err\n\
         #SBATCH --output=logs/job.%J.out\n\
         #SBATCH --cluster=gpu\n\
         \n\
         # #SBATCH --signal=B:TERM@05:00   (disabled)\n\
         source ~/.bashrc\n\
         srun python -u train.py\n",
    );
    assert_eq!((job.name.as_str(), job.nodes.min, job.ntasks, job.cpus_per_task), ("train", 2, 8, 16));
    assert_eq!(job.gpus.as_ref().and_then(|g| g.per_node), Some(4));
    assert_eq!(job.mem_mb.and_then(|m| m.per_node), Some(480 * 1024));
    assert_eq!(job.time_limit_s, Some(6 * 86_400));
    assert_eq!((job.output.as_str(), job.error.as_str()), ("logs/job.%J.out", "logs/job.%J.err"));
    assert_eq!(job.warnings, ["--cluster is accepted but ignored"]);
}

#[test]
fn array_sweep_with_short_options_on_one_line() {
    let job = resolve(
        "#!/bin/bash\n#SBATCH -p gpu\n#SBATCH --gres=gpu:1\n#SBATCH -t 5-00:00:00 -o log.%a\n#SBATCH --array=1-100\n\
         module load anaconda3\npython main.py $(awk \"NR==$SLURM_ARRAY_TASK_ID\" in)\n",
    );
    assert_eq!(job.partition.as_deref(), Some("gpu"));
    assert_eq!(job.array.as_ref().map(|a| a.indices.len()), Some(100));
    assert_eq!(job.output, "log.%a");
    assert_eq!(job.time_limit_s, Some(5 * 86_400));
}

#[test]
fn abbreviated_options() {
    // getopt_long takes unambiguous prefixes: --tasks is --tasks-per-node, --err/--out are
    // --error/--output.
    let job = resolve("#!/bin/bash\n#SBATCH --tasks=1\n#SBATCH --nodes=1\n#SBATCH --err=err\n#SBATCH --out=out\nrun\n");
    assert_eq!((job.ntasks_per_node, job.ntasks), (Some(1), 1));
    assert_eq!((job.output.as_str(), job.error.as_str()), ("out", "err"));
}

#[test]
fn preemptible_job_with_site_options() {
    let job = resolve(
        "#!/bin/bash\n\n#SBATCH -A m3562_g\n#SBATCH --time=10:00:00\n#SBATCH -C gpu\n#SBATCH -N 1\n#SBATCH -J sig      # name\n\
         #SBATCH -L SCRATCH\n#SBATCH -q preempt\n#SBATCH --gpus-per-node=4\n#SBATCH --ntasks-per-gpu=1\n\
         #SBATCH --cpus-per-task=32\n#SBATCH -o %j.out\n#SBATCH -e %j.err\n#SBATCH --signal=SIGUSR1@60\n#SBATCH --requeue\n\
         #SBATCH --open-mode=append\n\nsrun python test.py\n",
    );
    assert_eq!(
        (job.account.as_deref(), job.constraint.as_deref(), job.qos.as_deref()),
        (Some("m3562_g"), Some("gpu"), Some("preempt"))
    );
    assert_eq!(job.gpus.as_ref().and_then(|g| g.per_node), Some(4));
    assert_eq!(job.submit.signal.map(|s| (s.signal, s.seconds_before)), Some((10, 60)));
    for option in ["--licenses", "--ntasks-per-gpu", "--open-mode", "--signal", "--requeue"] {
        assert!(job.warnings.iter().any(|w| w.starts_with(option)), "{option}: {:?}", job.warnings);
    }
}

#[test]
fn a_broken_directive_block_stops_where_slurm_stops() {
    // "#SBATCH" alone, then "--mem=32G" on its own line: that line is a command, so Slurm reads
    // nothing after it.
    let job = resolve(
        "#!/bin/bash\n#SBATCH --job-name=test\n#SBATCH --cpus-per-task=16\n#SBATCH\n--mem=32G\n#SBATCH --gres=gpu:1\n",
    );
    assert_eq!((job.name.as_str(), job.cpus_per_task, job.mem_mb, job.gpus.as_ref()), ("test", 16, None, None));
    assert!(job.warnings.iter().any(|w| w.contains("line 6: #SBATCH after the first command (line 5)")));
}

#[test]
fn directives_after_a_command_are_ignored() {
    let job = resolve("#!/bin/bash\nmkdir -p out\n#SBATCH --time=168:0:00\n#SBATCH --array=0-14\npython job.py\n");
    assert_eq!((job.time_limit_s, job.array.as_ref()), (None, None));
    assert_eq!(job.warnings.len(), 2, "{:?}", job.warnings);
}

#[test]
fn mpi_job_with_per_cpu_memory_and_mail() {
    let job = resolve(
        "#!/bin/bash -l\n#SBATCH -J po_rp\n#SBATCH -o RP__%j\n#SBATCH --mem-per-cpu=2gb\n#SBATCH -t 5-00:00:00\n#SBATCH -n 64\n\
         #SBATCH -c 1\n#SBATCH --mail-type=all          # mail on start, end, fault\n#SBATCH --mail-user=someone@example.org\n\
         #SBATCH --export=ALL,OMP_NUM_THREADS=1\nmpirun ./a.out\n",
    );
    assert_eq!((job.ntasks, job.mem_mb.and_then(|m| m.per_cpu)), (64, Some(2048)));
    assert_eq!(job.submit.mail_types, ["ALL"]);
    assert_eq!(job.export.vars.len(), 1);
}

#[test]
fn zero_gpus_and_gb_suffixes() {
    let job = resolve("#!/bin/bash\n#SBATCH --array=0-999%100\n#SBATCH --time=8:00:00\n#SBATCH --gres=gpu:0  # none\n#SBATCH --mem=4000M\nrun\n");
    // Zero GPUs per node: asked for and shown (`TresPerNode=gres:gpu:0`), none given.
    assert_eq!(job.gpus.as_ref().map(|g| (g.per_node, g.per_job)), Some((Some(0), None)));
    assert_eq!(job.mem_mb.and_then(|m| m.per_node), Some(4000));
    assert_eq!(job.array.as_ref().map(|a| (a.indices.len(), a.max_running)), Some((1000, Some(100))));
}
