//! Per-task cgroups for the node launcher (the equivalent of Slurm's proctrack/cgroup).
//!
//! Why cgroups rather than process groups: a task may fork, daemonize or call setsid(), and
//! then its processes are no longer reachable through the process group the launcher created.
//! Cgroup membership is inherited on fork and an unprivileged process cannot leave it, so every
//! process a task starts lives in the task's cgroup. Terminating a task, or the launcher exiting,
//! can therefore kill exactly that set and leave no orphans behind.
//!
//! Children join their cgroup from a `pre_exec` hook ([`TaskCgroup::join_in_child`]) rather than
//! being added by the parent after spawn: otherwise a child could fork before being moved and the
//! grandchild would escape.
//!
//! On cgroup v1 the hierarchies `pids` (tracking), `cpuset` and `memory` are used when mounted;
//! on v2 a single unified directory. The layout is `<mount>/gangway.<node>/<task>/`.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod sys {
    unsafe extern "C" {
        pub fn kill(pid: i32, sig: i32) -> i32;
        pub fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    }
}

pub const SIGKILL: i32 = 9;
const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EINTR: i32 = 4;
const EACCES: i32 = 13;
const EBUSY: i32 = 16;
const EROFS: i32 = 30;

/// How long `kill_all` waits for a cgroup to become empty before giving up.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

#[derive(Debug)]
pub enum CgroupError {
    Create { path: PathBuf, source: io::Error },
    Write { path: PathBuf, source: io::Error },
    Unavailable(String),
}

impl fmt::Display for CgroupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupError::Create { path, .. } => {
                write!(f, "cannot create cgroup {}", path.display())
            }
            CgroupError::Write { path, .. } => write!(f, "cannot write {}", path.display()),
            CgroupError::Unavailable(why) => write!(f, "cgroups unavailable: {why}"),
        }
    }
}

impl std::error::Error for CgroupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CgroupError::Create { source, .. } | CgroupError::Write { source, .. } => Some(source),
            CgroupError::Unavailable(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

const PIDS: u8 = 1;
const CPUSET: u8 = 2;
const MEMORY: u8 = 4;
/// v1 only: v2 controls devices with BPF programs, not files.
const DEVICES: u8 = 8;
const ALL: u8 = PIDS | CPUSET | MEMORY;

/// One directory of a (node or task) cgroup; on v1 there is one per hierarchy, and `ctl` says
/// which of the controllers we use that hierarchy carries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Dir {
    path: PathBuf,
    ctl: u8,
}

impl Dir {
    fn new(path: PathBuf, ctl: u8) -> Dir {
        Dir { path, ctl }
    }
}

/// The launcher's own subtree `gangway.<node>` in each hierarchy used.
#[derive(Debug)]
pub struct NodeCgroups {
    version: CgroupVersion,
    dirs: Vec<Dir>,
    /// Made by this process (removed on drop), not only attached to.
    owned: bool,
}

/// One task's cgroup; dropping it kills everything inside and removes the directories.
#[derive(Debug)]
pub struct TaskCgroup {
    version: CgroupVersion,
    dirs: Vec<Dir>,
}

/// Returns the v1 hierarchies carrying pids/cpuset/memory, and the v2 mount if any.
fn parse_mountinfo(text: &str) -> (Vec<Dir>, Option<PathBuf>) {
    let (mut v1, mut v2) = (Vec::<Dir>::new(), None);
    for line in text.lines() {
        // The optional fields before " - " vary in number, so split there first.
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        let (Some(mnt), Some(fstype)) = (pre.split(' ').nth(4), post.next()) else {
            continue;
        };
        let opts = post.nth(1).unwrap_or("");
        // mountinfo escapes spaces as \040; other escaped characters never occur in practice.
        let path = PathBuf::from(mnt.replace("\\040", " "));
        if fstype == "cgroup2" && (v2.is_none() || path == Path::new("/sys/fs/cgroup")) {
            v2 = Some(path);
        } else if fstype == "cgroup" {
            let has = |c: &str, bit: u8| bit * u8::from(opts.split(',').any(|o| o == c));
            let ctl = has("pids", PIDS) | has("cpuset", CPUSET) | has("memory", MEMORY) | has("devices", DEVICES);
            // A hierarchy mounted twice must be used once, or the second mkdir would "reuse"
            // the first directory and wipe it.
            if ctl != 0 && v1.iter().all(|d| d.ctl & ctl == 0) {
                v1.push(Dir { path, ctl });
            }
        }
    }
    (v1, v2)
}

/// Parses the kernel's cpu list format ("0-3,8,10-11"); sorted and deduplicated.
pub fn parse_cpu_list(s: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u32>().ok()?, b.trim().parse::<u32>().ok()?),
            None => {
                let v = part.parse::<u32>().ok()?;
                (v, v)
            }
        };
        // Bound the expansion so a corrupt file cannot make us allocate gigabytes.
        if lo > hi || out.len() as u64 + u64::from(hi - lo) > 1 << 20 {
            return None;
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// A CPU list as cpusets take it (`0-3,8`).
pub use gangway_topology::ids::compress_ids as format_cpu_list;

fn check_name(name: &str) -> Result<(), CgroupError> {
    let safe = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    if name.len() <= 200 && !matches!(name, "" | "." | "..") && name.bytes().all(safe) {
        return Ok(());
    }
    let source = io::Error::new(io::ErrorKind::InvalidInput, "name must match [A-Za-z0-9._-]+");
    Err(CgroupError::Create { path: PathBuf::from(name), source })
}

/// Errors that mean "this machine does not let us use cgroups", as opposed to a real failure.
fn is_unavailable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EPERM | EACCES | EROFS | ENOENT))
}

/// Cgroup files need one write(2) per value and must not be created, hence no `fs::write`.
fn write_str(path: &Path, s: &str) -> Result<(), CgroupError> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(s.as_bytes()))
        .map_err(|source| CgroupError::Write { path: path.to_path_buf(), source })
}

fn read_trim(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The processes in a cgroup given by its directories (union over hierarchies).
pub(crate) fn procs_of_paths(dirs: &[PathBuf]) -> Vec<i32> {
    procs_of(&dirs.iter().map(PathBuf::as_path).collect::<Vec<_>>())
}

fn procs_of(dirs: &[&Path]) -> Vec<i32> {
    let mut pids = Vec::new();
    for d in dirs {
        let text = fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        // kill(0) or kill(-1) would hit our own group or every process on the machine.
        pids.extend(text.split_whitespace().filter_map(|p| p.parse().ok()).filter(|&p: &i32| p > 0));
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// SIGKILLs every process in `dirs` until they are all gone (or the timeout passes).
/// Repeating matters on v1: a process may fork between our read of cgroup.procs and the kill.
fn kill_procs(dirs: &[&Path], version: CgroupVersion) -> bool {
    if version == CgroupVersion::V2 {
        for d in dirs {
            // Atomic against concurrent forks; absent before Linux 5.14, then the loop does it.
            let _ = write_str(&d.join("cgroup.kill"), "1");
        }
    }
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let pids = procs_of(dirs);
        if pids.is_empty() {
            return true;
        }
        // A pid read here could in theory be reused before the kill; freezing first would close
        // that window, but the interval is microseconds and the pid must cycle the whole space.
        for p in pids {
            // SAFETY: plain syscall; p > 0 is guaranteed by procs_of.
            unsafe { sys::kill(p, SIGKILL) };
        }
        if Instant::now() >= deadline {
            return procs_of(dirs).is_empty();
        }
        std::thread::sleep(POLL);
    }
}

/// rmdir, tolerating ENOENT and retrying EBUSY briefly: the kernel may still be tearing down
/// the last killed process when we get here.
fn rmdir(path: &Path) -> io::Result<()> {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(ENOENT) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(EBUSY) && Instant::now() < deadline => std::thread::sleep(POLL),
            Err(e) => return Err(e),
        }
    }
}

/// Kills and removes every child cgroup of `dir` (depth first), then kills what is in `dir`.
fn clear_tree(dir: &Path, version: CgroupVersion) {
    clear_tree_keeping(dir, version, &[]);
}

/// [`clear_tree`], except for the child cgroups named in `keep` (tasks that outlived an
/// earlier run of the launcher, re-adopted by this one).
fn clear_tree_keeping(dir: &Path, version: CgroupVersion, keep: &[String]) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            // A kept unit's own cgroup, and those its helpers made (`NAME-…`).
            let kept = e.file_name().to_str().is_some_and(|n| {
                keep.iter().any(|k| n == k || n.strip_prefix(k.as_str()).is_some_and(|rest| rest.starts_with('-')))
            });
            if !kept && e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let sub = e.path();
                clear_tree(&sub, version);
                let _ = rmdir(&sub);
            }
        }
    }
    kill_procs(&[dir], version);
}

/// mkdir that treats an existing directory as success, so a crashed run's dir is reused.
fn make_dir(path: &Path) -> io::Result<()> {
    match fs::create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// A new v1 cpuset cgroup starts with empty cpus/mems, and the kernel refuses to let any
/// process join it until both are set.
fn copy_cpuset(parent: &Path, dir: &Path) -> Result<(), CgroupError> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let v = read_trim(&parent.join(f)).unwrap_or_default();
        write_str(&dir.join(f), &format!("{v}\n"))?;
    }
    Ok(())
}

/// v2 only exposes a controller's files in a child when the parent enables it; each is written
/// separately because one the parent does not offer makes the whole write fail.
fn enable_controllers(dir: &Path) {
    let file = dir.join("cgroup.subtree_control");
    let on = fs::read_to_string(&file).unwrap_or_default();
    for c in ["cpuset", "memory", "pids"] {
        if !on.split_whitespace().any(|x| x == c) {
            let _ = write_str(&file, &format!("+{c}"));
        }
    }
}

impl NodeCgroups {
    /// Creates (or reuses, after cleaning) `gangway.<name>` under the first usable cgroup mount.
    pub fn create(name: &str) -> Result<NodeCgroups, CgroupError> {
        Self::create_keeping(name, &[])
    }

    /// [`NodeCgroups::create`], keeping the task cgroups named in `keep` and what runs in them.
    pub fn create_keeping(name: &str, keep: &[String]) -> Result<NodeCgroups, CgroupError> {
        let (dir_name, hierarchies) = Self::hierarchies(name)?;
        let mut why = Vec::new();
        for (version, bases) in hierarchies {
            if !bases.is_empty() {
                match Self::create_in(version, &bases, &dir_name, keep) {
                    Err(CgroupError::Unavailable(w)) => why.push(w),
                    r => return r,
                }
            }
        }
        if why.is_empty() {
            why.push("no cgroup filesystem mounted".to_string());
        }
        Err(CgroupError::Unavailable(why.join("; ")))
    }

    /// The subtree's directory name (`gangway.<name>`) and the mounted hierarchies that may
    /// hold it, in the order they are tried: hybrid systems keep the controllers on v1 and an
    /// empty v2 alongside, so v1 first.
    #[allow(clippy::type_complexity)]
    fn hierarchies(name: &str) -> Result<(String, [(CgroupVersion, Vec<Dir>); 2]), CgroupError> {
        check_name(name)?;
        let text = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| CgroupError::Unavailable(format!("reading mountinfo: {e}")))?;
        let (v1, v2) = parse_mountinfo(&text);
        let v2: Vec<Dir> = v2.into_iter().map(|p| Dir::new(p, ALL)).collect();
        Ok((format!("gangway.{name}"), [(CgroupVersion::V1, v1), (CgroupVersion::V2, v2)]))
    }

    fn create_in(
        version: CgroupVersion,
        bases: &[Dir],
        dir_name: &str,
        keep: &[String],
    ) -> Result<NodeCgroups, CgroupError> {
        // Dirs are recorded as soon as they exist so that an error below removes them on drop.
        let mut node = NodeCgroups { version, dirs: Vec::new(), owned: true };
        let mut skipped = Vec::new();
        for base in bases {
            let path = base.path.join(dir_name);
            match make_dir(&path) {
                Ok(()) => {}
                Err(e) if is_unavailable(&e) => {
                    skipped.push(format!("{}: {e}", path.display()));
                    continue;
                }
                Err(source) => return Err(CgroupError::Create { path, source }),
            }
            node.dirs.push(Dir::new(path.clone(), base.ctl));
            // On v2 leftover processes would also block subtree_control (no internal processes).
            clear_tree_keeping(&path, version, keep);
            match version {
                CgroupVersion::V1 if base.ctl & CPUSET != 0 => copy_cpuset(&base.path, &path)?,
                CgroupVersion::V1 => {}
                CgroupVersion::V2 => {
                    enable_controllers(&base.path);
                    enable_controllers(&path);
                }
            }
        }
        if node.dirs.is_empty() {
            return Err(CgroupError::Unavailable(format!("cannot create {dir_name}: {}", skipped.join(", "))));
        }
        Ok(node)
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The node directories (one per v1 hierarchy, or the single v2 one), for logging.
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    /// A child cgroup for one task; a stale one of the same name is killed and recreated.
    /// On v1 only the `pids` hierarchy is used (tracking is all a task needs by default, and
    /// each extra hierarchy costs a mkdir/rmdir per task); `with_cpuset` adds `cpuset` for
    /// tasks that are bound to CPUs, `with_memory` adds `memory` for tasks with a limit, and
    /// `with_devices` adds `devices` (v1) for tasks kept off some of the node's devices.
    pub fn create_task(
        &self,
        name: &str,
        with_cpuset: bool,
        with_memory: bool,
        with_devices: bool,
    ) -> Result<TaskCgroup, CgroupError> {
        check_name(name)?;
        let mut task = TaskCgroup { version: self.version, dirs: Vec::new() };
        let want = PIDS
            | if with_cpuset { CPUSET } else { 0 }
            | if with_memory { MEMORY } else { 0 }
            | if with_devices { DEVICES } else { 0 };
        let has_pids = self.dirs.iter().any(|d| d.ctl & PIDS != 0);
        let use_dir = |d: &&Dir| self.version == CgroupVersion::V2 || !has_pids || d.ctl & want != 0;
        for nd in self.dirs.iter().filter(use_dir) {
            let path = nd.path.join(name);
            if path.exists() {
                clear_tree(&path, self.version);
                let _ = rmdir(&path);
            }
            if let Err(source) = fs::create_dir(&path) {
                return Err(CgroupError::Create { path, source });
            }
            task.dirs.push(Dir::new(path.clone(), nd.ctl));
            if nd.ctl & CPUSET != 0 && self.version == CgroupVersion::V1 {
                copy_cpuset(&nd.path, &path)?;
            }
        }
        Ok(task)
    }
}

impl NodeCgroups {
    /// Kills and removes the task cgroups whose names start with `prefix` (what a unit's
    /// helper made and left, when the unit ends).
    pub fn remove_children_named(&self, prefix: &str) {
        for d in &self.dirs {
            let Ok(entries) = fs::read_dir(&d.path) else { continue };
            for e in entries.flatten() {
                if e.file_name().to_str().is_some_and(|n| n.starts_with(prefix)) {
                    clear_tree(&e.path(), self.version);
                    let _ = rmdir(&e.path());
                }
            }
        }
    }

    /// The launcher's subtree `gangway.<name>` as it is, for a helper process that makes task
    /// cgroups in it (a supervised rank group): nothing is cleaned, and dropping it removes
    /// nothing.
    pub fn attach(name: &str) -> Result<NodeCgroups, CgroupError> {
        let (dir_name, hierarchies) = Self::hierarchies(name)?;
        for (version, bases) in hierarchies {
            let dirs: Vec<Dir> =
                bases.iter().map(|b| Dir::new(b.path.join(&dir_name), b.ctl)).filter(|d| d.path.is_dir()).collect();
            if !dirs.is_empty() {
                return Ok(NodeCgroups { version, dirs, owned: false });
            }
        }
        Err(CgroupError::Unavailable(format!("the launcher's cgroup {dir_name} does not exist")))
    }

    /// The task cgroup `name` that an earlier run of the launcher made (kept by
    /// [`NodeCgroups::create_keeping`]), or None when none of its directories exists.
    pub fn adopt_task(&self, name: &str) -> Option<TaskCgroup> {
        check_name(name).ok()?;
        let dirs: Vec<Dir> =
            self.dirs.iter().map(|nd| Dir::new(nd.path.join(name), nd.ctl)).filter(|d| d.path.is_dir()).collect();
        (!dirs.is_empty()).then_some(TaskCgroup { version: self.version, dirs })
    }
}

impl Drop for NodeCgroups {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        for d in &self.dirs {
            clear_tree(&d.path, self.version);
            let _ = rmdir(&d.path);
        }
    }
}

impl TaskCgroup {
    pub fn paths(&self) -> Vec<&Path> {
        self.dirs.iter().map(|d| d.path.as_path()).collect()
    }

    fn dir_with(&self, ctl: u8) -> Option<&Path> {
        self.dirs.iter().find(|d| d.ctl & ctl != 0).map(|d| d.path.as_path())
    }

    /// Opened by the parent because the child, after fork, must not allocate or resolve paths.
    /// The fds are close-on-exec, so they never leak into the task's program.
    pub fn open_join_fds(&self) -> Result<Vec<OwnedFd>, CgroupError> {
        let open = |d: &Dir| {
            let path = d.path.join("cgroup.procs");
            match fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => Ok(OwnedFd::from(f)),
                Err(source) => Err(CgroupError::Write { path, source }),
            }
        };
        self.dirs.iter().map(open).collect()
    }

    /// Async-signal-safe: writes "0" (meaning "the calling process") to each fd.
    pub fn join_in_child(fds: &[RawFd]) -> io::Result<()> {
        for &fd in fds {
            // SAFETY: the buffer is a valid 1-byte static; fd validity is the caller's contract.
            while unsafe { sys::write(fd, b"0".as_ptr(), 1) } < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(EINTR) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            write_str(&d.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Union over hierarchies: a process may have been moved out of one of them by hand.
    pub fn pids(&self) -> Vec<i32> {
        procs_of(&self.paths())
    }

    pub fn signal_all(&self, sig: i32) -> usize {
        // SAFETY: plain syscall; procs_of only returns positive pids.
        self.pids().into_iter().filter(|&p| unsafe { sys::kill(p, sig) } == 0).count()
    }

    /// SIGKILLs everything and waits (up to ~2 s) until cgroup.procs is empty.
    pub fn kill_all(&self) -> bool {
        kill_procs(&self.paths(), self.version)
    }

    pub fn memory_peak(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
            CgroupVersion::V2 => "memory.peak",
        };
        read_trim(&self.dir_with(MEMORY)?.join(file))?.parse().ok()
    }

    pub fn cpus(&self) -> Option<Vec<u32>> {
        let d = self.dir_with(CPUSET)?;
        let text = match self.version {
            CgroupVersion::V1 => read_trim(&d.join("cpuset.cpus"))?,
            // On v2 an empty cpuset.cpus means "inherit"; effective is what the task really gets.
            CgroupVersion::V2 => {
                read_trim(&d.join("cpuset.cpus.effective")).or_else(|| read_trim(&d.join("cpuset.cpus")))?
            }
        };
        parse_cpu_list(&text)
    }

    pub fn set_cpus(&self, cpus: &[u32]) -> Result<(), CgroupError> {
        let Some(d) = self.dir_with(CPUSET) else {
            return Err(CgroupError::Unavailable("no cpuset controller".to_string()));
        };
        // The newline makes an empty list a real write (clearing), not a zero-length no-op.
        write_str(&d.join("cpuset.cpus"), &(format_cpu_list(cpus) + "\n"))
    }

    /// Denies it the character devices `(major, minor)` (v1's devices controller; on v2 that
    /// takes a BPF program, which gangway does not load: Unavailable).
    pub fn deny_char_devices(&self, devices: &[(u32, u32)]) -> Result<(), CgroupError> {
        let Some(d) = self.dir_with(DEVICES).filter(|_| self.version == CgroupVersion::V1) else {
            return Err(CgroupError::Unavailable("no devices controller (v1)".to_string()));
        };
        for (major, minor) in devices {
            write_str(&d.join("devices.deny"), &format!("c {major}:{minor} rwm"))?;
        }
        Ok(())
    }

    /// At most `n` processes and threads at once (forks past it fail with EAGAIN).
    pub fn set_pids_max(&self, n: u64) -> Result<(), CgroupError> {
        let Some(d) = self.dir_with(PIDS) else {
            return Err(CgroupError::Unavailable("no pids controller".to_string()));
        };
        write_str(&d.join("pids.max"), &n.to_string())
    }

    /// The NUMA nodes (OS numbers) its memory may come from.
    pub fn set_mems(&self, mems: &[u32]) -> Result<(), CgroupError> {
        let Some(d) = self.dir_with(CPUSET) else {
            return Err(CgroupError::Unavailable("no cpuset controller".to_string()));
        };
        write_str(&d.join("cpuset.mems"), &(format_cpu_list(mems) + "\n"))
    }

    /// Limits its memory to `bytes` (swap included where the kernel accounts for it): past
    /// it, the kernel's OOM killer kills inside the cgroup.
    pub fn set_memory_limit(&self, bytes: u64) -> Result<(), CgroupError> {
        let Some(d) = self.dir_with(MEMORY) else {
            return Err(CgroupError::Unavailable("no memory controller".to_string()));
        };
        match self.version {
            CgroupVersion::V1 => {
                write_str(&d.join("memory.limit_in_bytes"), &bytes.to_string())?;
                // Only with swap accounting; without it swap is not limited.
                let _ = write_str(&d.join("memory.memsw.limit_in_bytes"), &bytes.to_string());
            }
            CgroupVersion::V2 => {
                let max = d.join("memory.max");
                if !max.exists() {
                    return Err(CgroupError::Unavailable("the memory controller is not enabled here".to_string()));
                }
                write_str(&max, &bytes.to_string())?;
                let _ = write_str(&d.join("memory.swap.max"), "0");
            }
        }
        Ok(())
    }

    /// Processes the kernel's OOM killer killed in it (None: not known here).
    pub fn oom_kills(&self) -> Option<u64> {
        let d = self.dir_with(MEMORY)?;
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        let text = fs::read_to_string(d.join(file)).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for TaskCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for d in &self.dirs {
            let _ = rmdir(&d.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command};

    unsafe extern "C" {
        fn prctl(option: i32, ...) -> i32;
        fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
    }

    /// Makes killed grandchildren re-parent to us and reaps them on drop, so they do not
    /// linger as zombies under a PID 1 that may not reap.
    struct Reaper;
    impl Reaper {
        fn new() -> Reaper {
            // SAFETY: PR_SET_CHILD_SUBREAPER (36) with integer arguments.
            unsafe { prctl(36, 1u64, 0u64, 0u64, 0u64) };
            Reaper
        }
    }
    impl Drop for Reaper {
        fn drop(&mut self) {
            let mut status = 0;
            // SAFETY: status is a valid out pointer; 1 is WNOHANG.
            while unsafe { waitpid(-1, &mut status, 1) } > 0 {}
        }
    }

    struct ChildGuard(Child);
    impl Drop for ChildGuard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn owned(paths: Vec<&Path>) -> Vec<PathBuf> {
        paths.into_iter().map(Path::to_path_buf).collect()
    }

    fn node(tag: &str) -> Option<NodeCgroups> {
        match NodeCgroups::create(&format!("test-{}-{tag}", std::process::id())) {
            Ok(n) => Some(n),
            Err(CgroupError::Unavailable(w)) => {
                gangway_api::errln!("skipping: {w}");
                None
            }
            Err(e) => panic!("{e}: {:?}", std::error::Error::source(&e)),
        }
    }

    fn spawn_in(task: &TaskCgroup, prog: &str, args: &[&str]) -> ChildGuard {
        let fds = task.open_join_fds().unwrap();
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let mut cmd = Command::new(prog);
        cmd.args(args);
        // SAFETY: join_in_child only calls write(2).
        unsafe { cmd.pre_exec(move || TaskCgroup::join_in_child(&raw)) };
        ChildGuard(cmd.spawn().unwrap())
    }

    #[test]
    fn cpu_list_round_trip() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(vec![0, 1, 2, 3, 8, 10, 11]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("5,1,1-2"), Some(vec![1, 2, 5]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
        assert_eq!(parse_cpu_list("0-4294967295"), None);
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
        assert_eq!(format_cpu_list(&[7, 5, 5, 6, 1]), "1,5-7");
        assert_eq!(format_cpu_list(&[]), "");
        let v = vec![0, 2, 3, 4, 9, 63, 64];
        assert_eq!(parse_cpu_list(&format_cpu_list(&v)), Some(v));
    }

    #[test]
    fn mountinfo_detection() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755\n\
            32 31 0:29 / /sys/fs/cgroup/cpu rw shared:5 - cgroup cgroup rw,cpu\n\
            34 31 0:31 / /sys/fs/cgroup/cpuset,mem rw - cgroup cgroup rw,cpuset,memory\n\
            39 31 0:36 / /sys/fs/cgroup/p\\040ids rw - cgroup cgroup rw,pids\n\
            99 31 0:36 / /mnt/pids2 rw - cgroup cgroup rw,pids\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let (v1, v2) = parse_mountinfo(text);
        let dir = |p: &str, ctl| Dir::new(PathBuf::from(p), ctl);
        let want = [dir("/sys/fs/cgroup/cpuset,mem", CPUSET | MEMORY), dir("/sys/fs/cgroup/p ids", PIDS)];
        assert_eq!(v1, want);
        assert_eq!(v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        let (v1, v2) = parse_mountinfo("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(v1.is_empty() && v2.as_deref() == Some(Path::new("/sys/fs/cgroup")));
        assert!(check_name("a/b").is_err() && check_name("..").is_err());
        assert!(check_name("n-1.x_y").is_ok());
    }

    /// Spawns a child and a shell with a background grandchild into a task, kills them all,
    /// and checks that nothing survives and every directory is removed.
    fn join_track_kill(node: NodeCgroups) {
        let reaper = Reaper::new();
        gangway_api::errln!("{:?} node dirs {:?}", node.version(), node.paths());
        let task = node.create_task("t1", true, false, false).unwrap();
        let mut child = spawn_in(&task, "sleep", &["30"]);
        let pids = task.pids();
        assert!(pids.contains(&(child.0.id() as i32)), "{pids:?}");

        let mut sh = spawn_in(&task, "/bin/sh", &["-c", "sleep 30 & sleep 30"]);
        let deadline = Instant::now() + Duration::from_secs(3);
        // sleep + sh (or the sleep it execs into) + the background sleep.
        while task.pids().len() < 3 && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let pids = task.pids();
        assert!(pids.len() >= 3 && pids.contains(&(sh.0.id() as i32)), "{pids:?}");
        assert_eq!(task.signal_all(0), pids.len());

        assert!(task.kill_all());
        assert!(task.pids().is_empty());
        assert_eq!(child.0.wait().unwrap().signal(), Some(SIGKILL));
        assert_eq!(sh.0.wait().unwrap().signal(), Some(SIGKILL));
        drop(reaper);
        // SAFETY: signal 0 only probes for existence.
        let alive = pids.iter().filter(|&&p| unsafe { sys::kill(p, 0) } == 0);
        let alive: Vec<_> = alive.collect();
        assert!(alive.is_empty(), "survivors {alive:?}");

        let task_dirs = owned(task.paths());
        drop(task);
        assert!(task_dirs.iter().all(|d| !d.exists()), "{task_dirs:?}");
        let node_dirs = owned(node.paths());
        drop(node);
        assert!(node_dirs.iter().all(|d| !d.exists()), "{node_dirs:?}");
    }

    #[test]
    fn join_track_kill_and_remove() {
        if let Some(node) = node("join") {
            join_track_kill(node);
        }
    }

    /// The v2 code path, exercised here only where a hybrid system mounts both versions.
    #[test]
    fn join_track_kill_v2_if_mounted() {
        let (v1, v2) = parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
        let (Some(path), false) = (v2, v1.is_empty()) else {
            return;
        };
        let base = [Dir { path, ctl: PIDS | CPUSET | MEMORY }];
        let name = format!("gangway.test-{}-v2", std::process::id());
        match NodeCgroups::create_in(CgroupVersion::V2, &base, &name, &[]) {
            Ok(node) => join_track_kill(node),
            Err(e) => gangway_api::errln!("skipping: {e}"),
        }
    }

    #[test]
    fn cpus_memory_and_add_pid() {
        let Some(node) = node("cpus") else { return };
        let task = node.create_task("t2", true, false, false).unwrap();
        let all = task.cpus().expect("cpuset in use");
        assert!(!all.is_empty());
        task.set_cpus(&all[..1]).unwrap();
        assert_eq!(task.cpus(), Some(all[..1].to_vec()));
        task.set_cpus(&all).unwrap();
        assert_eq!(task.cpus(), Some(all.clone()));

        let mut child = ChildGuard(Command::new("sleep").arg("30").spawn().unwrap());
        task.add_pid(child.0.id() as i32).unwrap();
        assert_eq!(task.pids(), vec![child.0.id() as i32]);
        gangway_api::errln!("memory peak: {:?}", task.memory_peak());
        assert!(task.kill_all());
        assert_eq!(child.0.wait().unwrap().signal(), Some(SIGKILL));
    }

    #[test]
    fn stale_node_dir_is_reused_and_cleaned() {
        let Some(first) = node("stale") else { return };
        let task = first.create_task("old", false, false, false).unwrap();
        let mut child = spawn_in(&task, "sleep", &["30"]);
        let old_dirs = owned(task.paths());
        // Like a restart after a crash: the dirs and a task process are still there.
        let second = node("stale").unwrap();
        assert_eq!(child.0.wait().unwrap().signal(), Some(SIGKILL));
        assert!(old_dirs.iter().all(|d| !d.exists()), "{old_dirs:?}");
        let t = second.create_task("old", false, false, false).unwrap();
        assert!(t.pids().is_empty());
        // The first handles now only find already-removed dirs, which their drops tolerate.
        drop((t, second, task, first));
    }

    #[test]
    fn a_restarted_launcher_keeps_and_adopts_the_task_cgroups_it_is_told_to() {
        let Some(first) = node("keep") else { return };
        let kept = first.create_task("t7", false, false, false).unwrap();
        let swept = first.create_task("t8", false, false, false).unwrap();
        let mut kept_child = spawn_in(&kept, "sleep", &["30"]);
        let mut swept_child = spawn_in(&swept, "sleep", &["30"]);
        let (kept_dirs, swept_dirs) = (owned(kept.paths()), owned(swept.paths()));
        // The first launcher crashed: nothing of it was dropped.
        std::mem::forget((kept, swept, first));
        let second = NodeCgroups::create_keeping(&format!("test-{}-keep", std::process::id()), &["t7".into()]).unwrap();
        assert_eq!(swept_child.0.wait().unwrap().signal(), Some(SIGKILL));
        assert!(swept_dirs.iter().all(|d| !d.exists()), "{swept_dirs:?}");
        let adopted = second.adopt_task("t7").expect("the kept cgroup");
        assert_eq!(owned(adopted.paths()), kept_dirs);
        assert_eq!(adopted.pids(), vec![kept_child.0.id() as i32]);
        assert!(second.adopt_task("t8").is_none());
        assert!(second.adopt_task("../t7").is_none(), "names are checked");
        drop(adopted);
        assert_eq!(kept_child.0.wait().unwrap().signal(), Some(SIGKILL));
        drop(second);
    }
}
