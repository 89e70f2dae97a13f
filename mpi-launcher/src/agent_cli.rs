//! The two short-lived helpers of an Open MPI launch, run as `gangway-node SUBCOMMAND`:
//!
//! - `rsh-agent [ssh options] HOST WORDS…`: Open MPI's `plm_rsh_agent`. It asks its own node's
//!   launcher (over the Unix socket in `GANGWAY_AGENT_SOCKET`) to run the words with `sh -c`
//!   in the task's cgroup on HOST, stays alive while that command runs, and exits with its
//!   exit code (255 when it could not be started, as ssh does). Its stdin is not forwarded and
//!   the remote command's output goes to that instance's stdout.txt/stderr.txt: orted needs
//!   neither (it talks to mpirun over its own TCP connection).
//! - `rank-step -- PROGRAM ARGS…`: what `mpirun` starts for every rank. It finds the rank's
//!   part of its node's plan (`GANGWAY_RANK_PLAN`, by `OMPI_COMM_WORLD_LOCAL_RANK`), sets the
//!   rank's CPUs, memory policy and device variables (`CUDA_VISIBLE_DEVICES`,
//!   `UCX_NET_DEVICES`, …) and `GANGWAY_RANK`/`LOCAL_RANK`/`NODE_RANK`/`SIZE`, moves into its
//!   node's working directory, and execs the program.
//!
//! Both are synchronous and start no runtime: they sit on every rank's and daemon's start path.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use crate::openmpi_files::agent_words;

/// The variable naming the launcher's agent socket for this task.
pub const SOCKET_ENV: &str = "GANGWAY_AGENT_SOCKET";
/// The variable naming this node's plan file for the rank step.
pub const PLAN_ENV: &str = "GANGWAY_RANK_PLAN";

/// Runs a helper subcommand when `args[1]` names one; returns its exit code (None: not a helper).
pub fn run_helper(args: &[OsString]) -> Option<i32> {
    match args.get(1).and_then(|a| a.to_str()) {
        // Words for a shell: anything not UTF-8 is replaced, as a shell would garble it anyway.
        Some("rsh-agent") => {
            Some(rsh_agent(&args[2..].iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>()))
        }
        Some("rank-step") => Some(rank_step(&args[2..])),
        Some("slurm-step") => Some(crate::slurm_step::main(&args[2..])),
        _ => None,
    }
}

/// The most a Unix socket address holds (108 bytes with the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// A path to `socket` that fits a socket address: itself, or — task directories of long job
/// and task ids do not fit — the same file through `/proc/self/fd` of its open directory,
/// which must be kept open while the path is used.
pub fn short_socket_path(socket: &Path) -> std::io::Result<(Option<std::fs::File>, PathBuf)> {
    use std::os::fd::AsRawFd;
    if socket.as_os_str().len() <= MAX_SOCKET_PATH {
        return Ok((None, socket.to_path_buf()));
    }
    let (Some(dir), Some(name)) = (socket.parent(), socket.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a socket path needs a directory and a name",
        ));
    };
    let dir = std::fs::File::open(dir)?;
    // The calling thread's own view: one that became a task's user may not read the
    // process's `/proc/self/fd` (root's), but its own.
    let short = PathBuf::from(format!("/proc/thread-self/fd/{}", dir.as_raw_fd())).join(name);
    Ok((Some(dir), short))
}

/// `gangway-node rsh-agent …`; returns the exit code.
fn rsh_agent(args: &[String]) -> i32 {
    // srun passes its words in the environment, where they hold a key nobody else may read.
    let from_env = std::env::var(gangway_api::slurm_step::AGENT_COMMAND_ENV).ok().filter(|_| args.len() == 1);
    let words = match from_env {
        Some(command) => Ok((args[0].clone(), command)),
        None => agent_words(args),
    };
    let (host, command) = match words {
        Ok(w) => w,
        Err(e) => {
            gangway_api::errln!("{e}");
            return 255;
        }
    };
    match ask_launcher(&host, &command) {
        Ok(code) => code,
        Err(e) => {
            gangway_api::errln!("gangway-node rsh-agent: running on '{host}': {e}");
            255
        }
    }
}

fn ask_launcher(host: &str, command: &str) -> Result<i32, String> {
    let path = std::env::var_os(SOCKET_ENV)
        .ok_or_else(|| format!("{SOCKET_ENV} is not set: the agent works only inside a gangway Open MPI task"))?;
    let connect = |p: &Path| {
        let (_dir, short) = short_socket_path(p)?;
        std::os::unix::net::UnixStream::connect(short)
    };
    let mut stream = connect(Path::new(&path))
        .map_err(|e| format!("connecting to the launcher at {}: {e}", path.to_string_lossy()))?;
    let mut line = serde_json::json!({ "host": host, "command": command }).to_string();
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(|e| format!("asking the launcher: {e}"))?;
    // The answer comes when the remote command ends; until then this process is its stand-in.
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(|e| format!("waiting for the launcher: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(answer.trim())
        .map_err(|_| format!("the launcher ended the request without an answer ({:?})", answer.trim()))?;
    if let Some(code) = v.get("exit_code").and_then(serde_json::Value::as_i64) {
        return Ok(code.clamp(0, 255) as i32);
    }
    Err(v.get("error").and_then(serde_json::Value::as_str).unwrap_or("no exit code in the answer").to_owned())
}

/// One rank's part of its node's plan file.
#[derive(Debug, Default, PartialEq)]
pub struct StepPlan {
    /// `GANGWAY_*` and device variables to set.
    pub env: Vec<(String, String)>,
    /// CPUs to bind to (empty: leave the affinity as it is).
    pub cpus: Vec<u32>,
    /// NUMA nodes (OS numbers) for the memory policy (empty: leave it).
    pub mems: Vec<u32>,
    /// The node's working directory.
    pub wd: String,
}

/// The part of `plan` (a plan file's text) for the rank with these `OMPI_COMM_WORLD_*` values.
pub fn step_plan(plan: &str, world_rank: u32, local_rank: u32) -> Result<StepPlan, String> {
    let v: serde_json::Value = serde_json::from_str(plan).map_err(|e| format!("the plan file is not JSON: {e}"))?;
    let ranks = v["ranks"].as_array().ok_or("the plan file has no ranks")?;
    let r = ranks
        .get(local_rank as usize)
        .ok_or_else(|| format!("local rank {local_rank} is not in this node's plan of {} ranks", ranks.len()))?;
    let nums = |x: &serde_json::Value| -> Vec<u32> {
        x.as_array().map(|a| a.iter().filter_map(|n| n.as_u64().map(|n| n as u32)).collect()).unwrap_or_default()
    };
    let node_rank = v["node_rank"].as_u64().ok_or("the plan file has no node_rank")?;
    // Ranks are numbered node by node (the rankfile, or ppr:K:node): anything else would give
    // this rank another rank's variables, so it is an error, not a guess.
    if u64::from(world_rank) / ranks.len() as u64 != node_rank {
        return Err(format!(
            "mpirun started rank {world_rank} on node {node_rank}, whose ranks are {}..{}",
            node_rank * ranks.len() as u64,
            (node_rank + 1) * ranks.len() as u64
        ));
    }
    let mut env: Vec<(String, String)> = r["env"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default();
    env.extend([
        ("GANGWAY_RANK".to_owned(), world_rank.to_string()),
        ("GANGWAY_LOCAL_RANK".to_owned(), local_rank.to_string()),
        ("GANGWAY_NODE_RANK".to_owned(), node_rank.to_string()),
        ("GANGWAY_SIZE".to_owned(), v["size"].as_u64().unwrap_or_default().to_string()),
    ]);
    Ok(StepPlan { env, cpus: nums(&r["cpus"]), mems: nums(&r["mems"]), wd: v["wd"].as_str().unwrap_or("").to_owned() })
}

/// `gangway-node rank-step -- PROGRAM ARGS…`; returns only when the program cannot be started.
fn rank_step(args: &[OsString]) -> i32 {
    let fail = |msg: String| {
        gangway_api::errln!("gangway-node rank-step: {msg}");
        127
    };
    let program = match args.split_first() {
        Some((dashes, rest)) if dashes == "--" && !rest.is_empty() => rest,
        _ => return fail("usage: gangway-node rank-step -- PROGRAM [ARGS...]".into()),
    };
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u32>().ok());
    let (Some(world), Some(local)) = (var("OMPI_COMM_WORLD_RANK"), var("OMPI_COMM_WORLD_LOCAL_RANK")) else {
        return fail("OMPI_COMM_WORLD_RANK and OMPI_COMM_WORLD_LOCAL_RANK are not set: run by mpirun only".into());
    };
    let Some(path) = std::env::var_os(PLAN_ENV) else {
        return fail(format!("{PLAN_ENV} is not set: run by a gangway Open MPI task only"));
    };
    let plan = match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| step_plan(&t, world, local))
    {
        Ok(p) => p,
        Err(e) => return fail(format!("reading the plan {}: {e}", path.to_string_lossy())),
    };
    if let Err(e) = apply_binding(&plan.cpus, &plan.mems) {
        return fail(format!("binding rank {world} to CPUs {:?}: {e}", plan.cpus));
    }
    let mut cmd = std::process::Command::new(&program[0]);
    cmd.args(&program[1..]).envs(plan.env.iter().map(|(k, v)| (k, v)));
    // The primary's directory (mpirun's) need not exist here: ranks work in their own node's.
    if std::path::Path::new(&plan.wd).is_dir() {
        cmd.current_dir(&plan.wd);
    }
    let e = cmd.exec();
    fail(format!("starting '{}': {e}", program[0].to_string_lossy()))
}

/// This process's CPUs and memory policy, as the launcher's spawn sets them for PMI ranks.
pub(crate) fn apply_binding(cpus: &[u32], mems: &[u32]) -> std::io::Result<()> {
    if !cpus.is_empty() {
        // SAFETY: cpu_set_t is plain bits; CPU_SET only sets bits inside it.
        let rc = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            for &c in cpus.iter().filter(|c| (**c as usize) < libc::CPU_SETSIZE as usize) {
                libc::CPU_SET(c as usize, &mut set);
            }
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    if !mems.is_empty() {
        let bits = 8 * std::mem::size_of::<libc::c_ulong>();
        let mut mask = [0 as libc::c_ulong; 16];
        for &n in mems {
            if let Some(w) = mask.get_mut(n as usize / bits) {
                *w |= 1 << (n as usize % bits);
            }
        }
        // MPOL_PREFERRED for one node, MPOL_BIND for several; a kernel without NUMA refuses
        // it and the rank runs with its memory unplaced, as PMI ranks do.
        let mode = if mems.len() == 1 { 1 } else { 2 };
        // SAFETY: set_mempolicy(2) with a mask of `maxnode` bits that we own.
        unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, mask.as_ptr(), (mask.len() * bits) as libc::c_ulong) };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_in_deep_task_directories_are_reached_through_their_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("j".repeat(64)).join("job-1").join("t".repeat(64));
        std::fs::create_dir_all(&deep).unwrap();
        let socket = deep.join(".gangway-agent.sock");
        assert!(socket.as_os_str().len() > MAX_SOCKET_PATH);
        let (_dir, short) = short_socket_path(&socket).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(&short).unwrap();
        assert!(socket.exists(), "bound in the task directory itself");
        let (_dir2, short2) = short_socket_path(&socket).unwrap();
        let mut client = std::os::unix::net::UnixStream::connect(short2).unwrap();
        client.write_all(b"x").unwrap();
        let (server, _) = listener.accept().unwrap();
        drop(server);
        let near = tmp.path().join("s.sock");
        assert_eq!(short_socket_path(&near).unwrap().1, near);
    }

    #[test]
    fn each_rank_takes_its_own_part_of_the_plan() {
        let plan = r#"{"node_rank":1,"size":4,"wd":"/t/wd","ranks":[
            {"cpus":[0,1],"mems":[0],"env":{"CUDA_VISIBLE_DEVICES":"0"}},
            {"cpus":[2,3],"mems":[1],"env":{"CUDA_VISIBLE_DEVICES":"1","UCX_NET_DEVICES":"mlx5_1:1"}}]}"#;
        let p = step_plan(plan, 3, 1).unwrap();
        assert_eq!((p.cpus.as_slice(), p.mems.as_slice(), p.wd.as_str()), (&[2, 3][..], &[1][..], "/t/wd"));
        let env: std::collections::HashMap<_, _> = p.env.into_iter().collect();
        for (k, v) in [
            ("CUDA_VISIBLE_DEVICES", "1"),
            ("UCX_NET_DEVICES", "mlx5_1:1"),
            ("GANGWAY_RANK", "3"),
            ("GANGWAY_LOCAL_RANK", "1"),
            ("GANGWAY_NODE_RANK", "1"),
            ("GANGWAY_SIZE", "4"),
        ] {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(step_plan(plan, 4, 2).unwrap_err().contains("local rank 2"));
        assert!(step_plan(plan, 1, 1).unwrap_err().contains("ranks are 2..4"));
        assert!(step_plan("nope", 0, 0).is_err());
    }
}
