//! `srun --cpu-bind` and `--gpu-bind`: parsing (srun checks the option before it starts
//! anything) and each local task's CPUs and GPUs (the node part computes them from the CPUs
//! its node allows and the GPUs it sees). Pure functions, shared by both sides.

/// How tasks are bound to CPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuBind {
    /// `none`: tasks keep the node's CPUs.
    None,
    /// `threads`: `-c` hardware threads per task.
    Threads,
    /// `cores`: `-c` cores per task, with all their threads.
    Cores,
    /// `sockets`: one socket per task.
    Sockets,
    /// `rank`: the CPU at the task's local id.
    Rank,
    /// `map_cpu:L`: task `i` gets CPU `L[i % len]`.
    MapCpu(Vec<u32>),
    /// `mask_cpu:L`: task `i` gets the CPUs of mask `L[i % len]`.
    MaskCpu(Vec<Vec<u32>>),
}

/// A parsed `--cpu-bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuBindSpec {
    /// What to bind to.
    pub bind: CpuBind,
    /// `verbose`: report each task's mask on its standard error.
    pub verbose: bool,
}

/// One CPU the node allows, with what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSlot {
    /// OS CPU number.
    pub cpu: u32,
    /// Its core (any key unique per core).
    pub core: u32,
    /// Its socket.
    pub socket: u32,
}

/// Splits `verbose,`/`quiet,` prefixes off a bind option.
fn options(spec: &str) -> (bool, &str) {
    let mut verbose = false;
    let mut rest = spec;
    loop {
        if let Some(r) = rest.strip_prefix("verbose").filter(|r| r.is_empty() || r.starts_with(',')) {
            verbose = true;
            rest = r.strip_prefix(',').unwrap_or(r);
        } else if let Some(r) = rest.strip_prefix("quiet").filter(|r| r.is_empty() || r.starts_with(',')) {
            rest = r.strip_prefix(',').unwrap_or(r);
        } else {
            return (verbose, rest);
        }
    }
}

/// The most CPUs (and GPUs) a bind list may name: beyond any machine, small enough to build
/// a mask from.
const MAX_ID: u32 = 1 << 16;

/// A CPU or GPU number in decimal or `0x` hex, below [`MAX_ID`].
fn number(s: &str) -> Option<u32> {
    let n = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    };
    n.filter(|n| *n < MAX_ID)
}

/// A list `a,b*3,c`: an item followed by `*N` repeats N times.
fn list<T: Clone>(s: &str, item: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let mut out = Vec::new();
    for word in s.split(',') {
        let (v, times) = match word.split_once('*') {
            Some((v, n)) => (v, n.parse::<usize>().ok().filter(|n| *n > 0 && *n <= MAX_ID as usize)?),
            None => (word, 1),
        };
        let v = item(v)?;
        out.extend(std::iter::repeat_n(v, times));
    }
    (!out.is_empty()).then_some(out)
}

/// The CPUs of a hex mask (`0x5` or `5`): 0 and 2.
fn mask(s: &str) -> Option<Vec<u32>> {
    let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    if hex.is_empty() || hex.len() > (MAX_ID / 4) as usize || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut cpus = Vec::new();
    for (i, d) in hex.bytes().rev().enumerate() {
        let v = (d as char).to_digit(16).expect("checked hex");
        cpus.extend((0..4).filter(|b| v & (1 << b) != 0).map(|b| i as u32 * 4 + b));
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Reads `--cpu-bind=[quiet|verbose,]TYPE`.
pub fn parse_cpu_bind(spec: &str) -> Result<CpuBindSpec, String> {
    let (verbose, rest) = options(spec);
    let bad = || {
        format!(
            "invalid --cpu-bind '{spec}': expected [verbose,]none|threads|cores|sockets|rank|map_cpu:<list>|mask_cpu:<list>"
        )
    };
    let bind = match rest.split_once(':') {
        Some(("map_cpu", l)) => CpuBind::MapCpu(list(l, number).ok_or_else(bad)?),
        Some(("mask_cpu", l)) => CpuBind::MaskCpu(list(l, mask).ok_or_else(bad)?),
        Some(_) => return Err(bad()),
        None => match rest {
            "none" | "no" | "" => CpuBind::None,
            "threads" => CpuBind::Threads,
            "cores" => CpuBind::Cores,
            "sockets" => CpuBind::Sockets,
            "rank" => CpuBind::Rank,
            "ldoms" | "boards" | "rank_ldom" => {
                return Err(format!("--cpu-bind={rest} is not supported by gangway (use cores, sockets or masks)"))
            }
            _ => return Err(bad()),
        },
    };
    Ok(CpuBindSpec { bind, verbose })
}

/// Units of `slots` grouped by `key`, in the order they first appear.
fn groups(slots: &[CpuSlot], key: impl Fn(&CpuSlot) -> u32) -> Vec<Vec<u32>> {
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    for s in slots {
        match out.iter_mut().find(|(k, _)| *k == key(s)) {
            Some((_, cpus)) => cpus.push(s.cpu),
            None => out.push((key(s), vec![s.cpu])),
        }
    }
    out.into_iter().map(|(_, c)| c).collect()
}

/// Each of `tasks` local tasks' CPUs (`None`: leave the task unbound), on the CPUs `slots`.
pub fn cpu_sets(bind: &CpuBind, slots: &[CpuSlot], tasks: u32, cpus_per_task: u32) -> Vec<Option<Vec<u32>>> {
    let per = cpus_per_task.max(1) as usize;
    let take = |units: &[Vec<u32>], i: usize, n: usize| -> Option<Vec<u32>> {
        if units.is_empty() {
            return None;
        }
        let mut cpus: Vec<u32> = (0..n).flat_map(|k| units[(i * n + k) % units.len()].clone()).collect();
        cpus.sort_unstable();
        cpus.dedup();
        Some(cpus)
    };
    let threads: Vec<Vec<u32>> = slots.iter().map(|s| vec![s.cpu]).collect();
    (0..tasks as usize)
        .map(|i| match bind {
            CpuBind::None => None,
            CpuBind::Threads => take(&threads, i, per),
            CpuBind::Cores => take(&groups(slots, |s| s.core), i, per),
            CpuBind::Sockets => take(&groups(slots, |s| s.socket), i, 1),
            CpuBind::Rank => take(&threads, i, 1),
            CpuBind::MapCpu(l) => Some(vec![l[i % l.len()]]),
            CpuBind::MaskCpu(l) => Some(l[i % l.len()].clone()),
        })
        .collect()
}

/// A CPU set as Slurm writes a mask: `0x5`.
pub fn mask_text(cpus: &[u32]) -> String {
    let top = cpus.iter().copied().max().unwrap_or(0) as usize;
    let mut nibbles = vec![0u8; top / 4 + 1];
    for c in cpus {
        nibbles[*c as usize / 4] |= 1 << (c % 4);
    }
    let hex: String = nibbles.iter().rev().map(|n| char::from_digit(u32::from(*n), 16).expect("nibble")).collect();
    format!("0x{hex}")
}

/// The `SLURM_CPU_BIND*` variables of a step whose local tasks got `sets`.
pub fn cpu_bind_env(spec: &CpuBindSpec, sets: &[Option<Vec<u32>>]) -> Vec<(String, String)> {
    let verbose = if spec.verbose { "verbose" } else { "quiet" };
    let (kind, list) = match &spec.bind {
        CpuBind::None => ("none".to_owned(), String::new()),
        CpuBind::MapCpu(l) => ("map_cpu:".to_owned(), l.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
        _ => {
            let masks: Vec<String> = sets.iter().map(|s| mask_text(s.as_deref().unwrap_or(&[]))).collect();
            ("mask_cpu:".to_owned(), masks.join(","))
        }
    };
    let whole = if list.is_empty() { format!("{verbose},{kind}") } else { format!("{verbose},{kind}{list}") };
    vec![
        ("SLURM_CPU_BIND".into(), whole),
        ("SLURM_CPU_BIND_LIST".into(), list),
        ("SLURM_CPU_BIND_TYPE".into(), kind),
        ("SLURM_CPU_BIND_VERBOSE".into(), verbose.into()),
    ]
}

/// How tasks are given GPUs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuBind {
    /// `none`: every task sees the step's GPUs.
    None,
    /// `closest`: the GPUs split evenly between the tasks (gangway does not know which GPU is
    /// nearest a task's CPUs here, so the split is in order).
    Closest,
    /// `map_gpu:L`: task `i` gets GPU `L[i % len]` of the step's.
    MapGpu(Vec<u32>),
    /// `mask_gpu:L`: task `i` gets the GPUs of mask `L[i % len]`.
    MaskGpu(Vec<Vec<u32>>),
    /// `single:N`: `N` tasks per GPU.
    Single(u32),
}

/// A parsed `--gpu-bind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuBindSpec {
    /// What to bind to.
    pub bind: GpuBind,
    /// `verbose`.
    pub verbose: bool,
}

/// Reads `--gpu-bind=[verbose,]TYPE`.
pub fn parse_gpu_bind(spec: &str) -> Result<GpuBindSpec, String> {
    let (verbose, rest) = options(spec);
    let bad = || {
        format!(
            "invalid --gpu-bind '{spec}': expected [verbose,]none|closest|single:<n>|map_gpu:<list>|mask_gpu:<list>"
        )
    };
    let bind = match rest.split_once(':') {
        Some(("map_gpu", l)) => GpuBind::MapGpu(list(l, number).ok_or_else(bad)?),
        Some(("mask_gpu", l)) => GpuBind::MaskGpu(list(l, mask).ok_or_else(bad)?),
        Some(("single", n)) => GpuBind::Single(n.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?),
        Some(_) => return Err(bad()),
        None => match rest {
            "none" | "" => GpuBind::None,
            "closest" => GpuBind::Closest,
            _ => return Err(bad()),
        },
    };
    Ok(GpuBindSpec { bind, verbose })
}

/// Each local task's GPUs (`None`: the tasks keep the step's GPU variables), from the step's
/// GPUs on this node `gpus` (names as `CUDA_VISIBLE_DEVICES` lists them).
pub fn gpu_sets(
    bind: Option<&GpuBind>,
    gpus_per_task: Option<u32>,
    gpus: &[String],
    tasks: u32,
) -> Result<Option<Vec<Vec<String>>>, String> {
    let pick = |indices: &[u32]| -> Result<Vec<String>, String> {
        indices
            .iter()
            .map(|i| {
                gpus.get(*i as usize).cloned().ok_or_else(|| {
                    format!("GPU index {i} is out of range: the step has {} GPU(s) on this node", gpus.len())
                })
            })
            .collect()
    };
    let even = |per: u32| -> Result<Option<Vec<Vec<String>>>, String> {
        if u64::from(per) * u64::from(tasks) > gpus.len() as u64 {
            return Err(format!(
                "{tasks} task(s) with {per} GPU(s) each need more than the {} GPU(s) the step has on this node",
                gpus.len()
            ));
        }
        (0..tasks).map(|i| pick(&(i * per..(i + 1) * per).collect::<Vec<_>>())).collect::<Result<Vec<_>, _>>().map(Some)
    };
    let tasks_n = tasks.max(1);
    match (bind, gpus_per_task) {
        (Some(GpuBind::None), _) => Ok(None),
        (Some(GpuBind::MapGpu(l)), _) => {
            (0..tasks).map(|i| pick(&[l[i as usize % l.len()]])).collect::<Result<_, _>>().map(Some)
        }
        (Some(GpuBind::MaskGpu(l)), _) => {
            (0..tasks).map(|i| pick(&l[i as usize % l.len()])).collect::<Result<_, _>>().map(Some)
        }
        (Some(GpuBind::Single(n)), _) => (0..tasks).map(|i| pick(&[i / n])).collect::<Result<_, _>>().map(Some),
        (_, Some(per)) => even(per),
        (Some(GpuBind::Closest), None) if gpus.is_empty() => Ok(None),
        (Some(GpuBind::Closest), None) => even((gpus.len() as u32 / tasks_n).max(1)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(n: u32, threads_per_core: u32) -> Vec<CpuSlot> {
        (0..n).map(|cpu| CpuSlot { cpu, core: cpu / threads_per_core, socket: cpu / 4 }).collect()
    }

    #[test]
    fn cpu_bind_options_parse_as_srun_reads_them() {
        let check = |s: &str, bind: CpuBind, verbose: bool| {
            assert_eq!(parse_cpu_bind(s), Ok(CpuBindSpec { bind, verbose }), "{s}")
        };
        check("cores", CpuBind::Cores, false);
        check("verbose,cores", CpuBind::Cores, true);
        check("quiet,none", CpuBind::None, false);
        check("map_cpu:1,0", CpuBind::MapCpu(vec![1, 0]), false);
        check("verbose,map_cpu:0x2,3*2", CpuBind::MapCpu(vec![2, 3, 3]), true);
        check("mask_cpu:0x1,0x6", CpuBind::MaskCpu(vec![vec![0], vec![1, 2]]), false);
        for bad in ["bogus", "map_cpu:", "map_cpu:x", "mask_cpu:0xg", "ldoms", "map_cpu:1*0", "map_cpu:4000000000"] {
            assert!(parse_cpu_bind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tasks_get_their_cpus_in_order() {
        let s = slots(8, 2);
        let sets = |b: CpuBind, tasks, c| cpu_sets(&b, &s, tasks, c);
        assert_eq!(sets(CpuBind::Threads, 2, 1), [Some(vec![0]), Some(vec![1])]);
        assert_eq!(sets(CpuBind::Cores, 2, 1), [Some(vec![0, 1]), Some(vec![2, 3])]);
        assert_eq!(sets(CpuBind::Cores, 2, 2), [Some(vec![0, 1, 2, 3]), Some(vec![4, 5, 6, 7])]);
        assert_eq!(
            sets(CpuBind::Sockets, 3, 1),
            [Some(vec![0, 1, 2, 3]), Some(vec![4, 5, 6, 7]), Some(vec![0, 1, 2, 3])]
        );
        assert_eq!(sets(CpuBind::MapCpu(vec![1, 0]), 2, 1), [Some(vec![1]), Some(vec![0])]);
        assert_eq!(sets(CpuBind::None, 2, 1), [None, None]);
        // More tasks than CPUs wrap around, as Slurm's masks do.
        assert_eq!(sets(CpuBind::Threads, 10, 1)[9], Some(vec![1]));
    }

    #[test]
    fn bind_variables_as_in_the_reference() {
        // gpu-binding.txt: srun -n2 --cpu-bind=verbose,cores on a 2-CPU node.
        let spec = parse_cpu_bind("verbose,cores").unwrap();
        let env = cpu_bind_env(&spec, &cpu_sets(&spec.bind, &slots(2, 1), 2, 1));
        assert_eq!(env[0], ("SLURM_CPU_BIND".into(), "verbose,mask_cpu:0x1,0x2".into()));
        assert_eq!(env[1], ("SLURM_CPU_BIND_LIST".into(), "0x1,0x2".into()));
        assert_eq!(env[2], ("SLURM_CPU_BIND_TYPE".into(), "mask_cpu:".into()));
        let spec = parse_cpu_bind("map_cpu:1,0").unwrap();
        assert_eq!(cpu_bind_env(&spec, &[])[0].1, "quiet,map_cpu:1,0");
        assert_eq!(mask_text(&[0, 1]), "0x3");
        assert_eq!(mask_text(&[9]), "0x200");
    }

    #[test]
    fn gpus_are_shared_out_as_in_the_reference() {
        let gpus: Vec<String> = ["0", "1"].map(String::from).to_vec();
        let g = |b: &str, per: Option<u32>| {
            let spec = (!b.is_empty()).then(|| parse_gpu_bind(b).unwrap().bind);
            gpu_sets(spec.as_ref(), per, &gpus, 2).unwrap()
        };
        let two = |a: &str, b: &str| Some(vec![vec![a.to_owned()], vec![b.to_owned()]]);
        assert_eq!(g("closest", None), two("0", "1"));
        assert_eq!(g("verbose,map_gpu:1,0", None), two("1", "0"));
        assert_eq!(g("single:1", None), two("0", "1"));
        assert_eq!(g("", Some(1)), two("0", "1"));
        assert_eq!(g("mask_gpu:0x2,0x1", None), two("1", "0"));
        assert_eq!(g("none", Some(1)), None);
        assert_eq!(g("", None), None);
        assert!(gpu_sets(Some(&GpuBind::MapGpu(vec![5])), None, &gpus, 1).is_err());
        assert!(gpu_sets(None, Some(u32::MAX), &gpus, 2).is_err(), "refused before anything is built");
        assert!(parse_gpu_bind("single:0").is_err());
    }
}
