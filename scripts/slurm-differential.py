#!/usr/bin/env python3
"""Records Slurm 22.05's answer to each sbatch option combination of the differential test.

Run against the Slurm peer (../shared/tools/slurm-peer: `PEER_NODES=4 PEER_CPUS=16 ./start.sh`,
partition `debug`, 4 nodes of 16 CPUs and 16 GiB, DefMemPerCPU=128):

    SLURM_CONF=/tmp/slurm-peer/etc/slurm.conf scripts/slurm-differential.py > tests/fixtures/slurm-differential.txt

and with GPUs (`PEER_NODES=4 PEER_CPUS=16 PEER_GPUS=8 ./start.sh`), for the GPU request fields:

    SLURM_CONF=… scripts/slurm-differential.py --gpus > tests/fixtures/slurm-differential-gpus.txt

and the batch environment of jobs that run (the sizes and memory variables scripts read):

    SLURM_CONF=… scripts/slurm-differential.py --env > tests/fixtures/slurm-differential-env.txt

Each case is submitted held (`sbatch --hold -p debug OPTIONS --wrap true`: a held job is not
placed, so what is compared is the request as resolved; what only a placement refuses, such as
more memory than any node has, and dependencies, which a held job does not evaluate, are tested
elsewhere); the fixture keeps,
per case, either `REFUSED <exit code>` or the core fields of `scontrol show job`. The test
`tests/tests/slurm_differential.rs` submits the same cases to gangway and compares.
"""
import itertools
import re
import subprocess
import sys

FIELDS = ["NumNodes", "NumCPUs", "NumTasks", "CPUs/Task", "ReqB:S:C:T", "TRES", "NtasksPerN:B:S:C",
          "MinCPUsNode", "MinMemoryNode", "MinMemoryCPU", "OverSubscribe", "Dependency", "ArrayTaskId",
          "ArrayTaskThrottle", "Comment", "TimeLimit", "JobState", "Reason", "Features", "Requeue", "Nice",
          "JobName"]


def cases():
    nodes = ["", "-N 1", "-N 2", "-N 1-3", "-N 4"]
    tasks = ["", "-n 1", "-n 4", "-n 16", "-n 33"]
    cpus = ["", "-c 2", "-c 8"]
    per_node = ["", "--ntasks-per-node=2"]
    mem = ["", "--mem=1G", "--mem-per-cpu=256", "--mem=0"]
    combos = [" ".join(p for p in c if p) for c in itertools.product(nodes, tasks, cpus, per_node, mem)]
    # Every fourth combination keeps the run short while covering each value with each other.
    picked = [c for i, c in enumerate(combos) if i % 4 == 0 or c.count(" ") <= 1]
    more = [
        "--exclusive", "-N 2 --exclusive -n 4", "--exclusive --mem=0", "--hint=nomultithread",
        "--hint=nomultithread -n 4", "--hint=compute_bound", "--threads-per-core=1", "--comment=hello",
        "--array=1-10%2", "--array=0-20", "--array=1,3,5", "--array=0-15:4", "--array=1-100%10",
        "-t 10", "-t 1:00:00", "-t 2-00:00:00", "-t 0:30", "--time=UNLIMITED", "-J named", "--nice=10",
        "--requeue", "--no-requeue", "--mem=4000", "--mem=16G", "--mem-per-cpu=1G",
        "-n 4 --mem-per-cpu=500M", "-N 2 --mem=8G", "-N 4 --ntasks-per-node=1 -c 16", "-n 64",
        "--nodes=1 --ntasks=1 --cpus-per-task=4 --mem=8G", "--nodes=2 --ntasks=32 --cpus-per-task=1",
        "-n 16 -N 2 --ntasks-per-node=16 -c 8", "-N 3 -c 30", "--begin=now+1hour",
        "--mail-type=END --mail-user=a@b.c",
        "-o out.%j", "-o /tmp/x-%A_%a.out --array=1-3", "-e err.%j", "--export=NONE", "--open-mode=append",
        "--signal=USR1@60", "--distribution=cyclic -n 4", "--spread-job -N 2", "-A acct", "--gres=gpu:1",
        "--gpus=1", "--time=abc", "--array=5-1", "--bogus", "--dependency=foo:1",
        "--ntasks-per-node=2 -n 6", "-N 2 -n 1",
    ]
    return picked + more


GPU_FIELDS = ["TresPerJob", "TresPerNode", "TresPerTask", "CpusPerTres", "MemPerTres", "NumTasks", "JobState"]


def gpu_cases():
    return [
        "-G 1", "--gpus=3", "--gpus-per-node=2", "--gres=gpu:2", "--gres=gpu:1 -N 2", "-n 2 --gpus-per-task=2",
        "-N 2 --gpus-per-node=1", "-N 2 -G 3", "--gpus-per-task=1 -n 4 -N 2", "--cpus-per-gpu=4 --gpus=2",
        "--mem-per-gpu=1G --gpus-per-node=2", "--gpus-per-node=8", "--gres=gpu:8 --exclusive", "-G 2 -c 4",
        "--gpus-per-task=1 --ntasks-per-node=4", "--gres=gpu:0", "--gpus=9", "--gres=gpu:9",
    ]


ENV = ["SLURM_NTASKS", "SLURM_NPROCS", "SLURM_NNODES", "SLURM_JOB_NUM_NODES", "SLURM_CPUS_ON_NODE",
       "SLURM_TASKS_PER_NODE", "SLURM_JOB_CPUS_PER_NODE", "SLURM_CPUS_PER_TASK", "SLURM_NTASKS_PER_NODE",
       "SLURM_MEM_PER_CPU", "SLURM_MEM_PER_NODE"]


def env_cases():
    return [
        "", "-n 4", "-N 2", "-N 2 -n 3", "-N 2 -n 8", "-n 8 -c 2", "-c 4", "-N 2 --ntasks-per-node=3",
        "-n 20", "-n 16 -c 2", "--mem=1G", "--mem-per-cpu=256 -n 2", "-N 3 -n 4", "-n 5 -N 2 -c 3",
        "--exclusive", "-N 2 --exclusive", "--ntasks-per-node=4", "-N 4", "-n 33", "--mem=0",
    ]


def run_env(case):
    """The job's batch environment (the variables in ENV), once it has run."""
    import os
    import tempfile
    import time
    out = os.path.join(tempfile.mkdtemp(prefix="slurm-diff-"), "env.out")
    wrap = "env | grep -E '^(" + "|".join(ENV) + ")=' | sort"
    sub = subprocess.run(["sbatch", "--parsable", "-p", "debug", "-o", out] + case.split() + ["--wrap", wrap],
                         capture_output=True, text=True, cwd="/tmp")
    if sub.returncode != 0:
        return None
    job = sub.stdout.strip().split(";")[0]
    for _ in range(600):
        state = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True).stdout
        if not state.strip():
            break
        time.sleep(0.1)
    with open(out) as f:
        return " ".join(line.strip() for line in f if line.strip())


def parse(text):
    d = {}
    for line in text.splitlines():
        for m in re.finditer(r"(\S+?)=(\S*)", line):
            d.setdefault(m.group(1), m.group(2))
    return d


# squeue's columns for a held job (`%i` with the job's own id written as ID).
SQUEUE = "%i|%t|%l|%D|%C|%m|%R|%c|%E|%b|%h"


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--squeue":
        for case in cases():
            out = subprocess.run(["sbatch", "--parsable", "--hold", "-p", "debug"] + case.split() + ["--wrap", "true"],
                                 capture_output=True, text=True, cwd="/tmp")
            if out.returncode != 0:
                continue
            job = out.stdout.strip().split(";")[0]
            line = subprocess.run(["squeue", "-h", "-j", job, "-o", SQUEUE], capture_output=True, text=True).stdout
            first, _, rest = line.strip().partition("|")
            print(case + "\t" + first.replace(job, "ID", 1) + "|" + rest)
            subprocess.run(["scancel", job], capture_output=True)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--env":
        for case in env_cases():
            got = run_env(case)
            print(f"{case}\t" + ("REFUSED" if got is None else got))
        return 0
    gpus = len(sys.argv) > 1 and sys.argv[1] == "--gpus"
    fields_of = GPU_FIELDS if gpus else FIELDS
    for case in gpu_cases() if gpus else cases():
        out = subprocess.run(["sbatch", "--parsable", "--hold", "-p", "debug"] + case.split() + ["--wrap", "true"],
                             capture_output=True, text=True, cwd="/tmp")
        if out.returncode != 0:
            print(f"{case}\tREFUSED {out.returncode}")
            continue
        job = out.stdout.strip().split(";")[0]
        show = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
        fields = parse(show)
        print(case + "\t" + " ".join(f"{f}={fields.get(f, '')}" for f in fields_of))
        subprocess.run(["scancel", job], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
