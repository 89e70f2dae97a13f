//! Starting a task process cheaply and safely: `clone(CLONE_VM | CLONE_VFORK)` the way
//! `posix_spawn` does, plus the two things `posix_spawn` cannot do — join the task's cgroup and
//! set a parent-death signal — before `execve`.
//!
//! A plain `fork` copies the launcher's page tables and then pays copy-on-write faults on every
//! page either side touches; at hundreds of tasks a second that was the launcher's largest cost.
//! With `CLONE_VM` the child borrows the parent's memory until it execs, so everything it needs
//! (paths, argv, envp, file descriptors) is prepared beforehand and the child only makes
//! async-signal-safe system calls. Waiting uses a pidfd, so a task's exit wakes the launcher at once.

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tokio::io::unix::AsyncFd;

/// Everything the child needs, prepared before the clone.
pub struct SpawnSpec {
    /// Absolute (or cwd-relative, when it contains `/`) path of the program.
    pub program: CString,
    /// argv, argv[0] included.
    pub argv: Vec<CString>,
    /// `NAME=value` strings.
    pub envp: Vec<CString>,
    /// Working directory.
    pub cwd: CString,
    /// Becomes fd 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// `cgroup.procs` files to write "0" to.
    pub cgroup_fds: Vec<RawFd>,
    /// A descriptor the program inherits (an MPI rank's `PMI_FD`); all others close on exec.
    pub keep_fd: Option<RawFd>,
    /// CPUs (OS numbers) the process is bound to, from its rank's placement.
    pub cpus: Option<Vec<u32>>,
    /// NUMA nodes (OS numbers) its memory comes from: one node is preferred, several bound.
    pub mems: Option<Vec<u32>>,
    /// A variable set to the process's own pid (`SLURM_TASK_PID`: slurmd's name for the batch
    /// script's pid), which only the child knows before it execs.
    pub pid_env: Option<&'static str>,
    /// The user the program runs as (uid, gid, every group), set after it joins its cgroup;
    /// None: the launcher's own.
    pub user: Option<(u32, u32, Vec<libc::gid_t>)>,
    /// Whether the process may outlive the launcher (a task's supervisor): no parent-death
    /// signal. Everything else dies with the process that started it.
    pub outlive_parent: bool,
}

/// Room for a pid's digits and the terminating NUL after `NAME=`.
const PID_ROOM: usize = 12;

/// Finds `program` the way `execvp` would, using `path` (the task's `PATH`).
pub fn resolve_program(program: &str, path: Option<&OsStr>, cwd: &Path) -> io::Result<PathBuf> {
    let not_found = || io::Error::new(io::ErrorKind::NotFound, format!("'{program}' was not found"));
    if program.contains('/') {
        let p = if Path::new(program).is_absolute() { PathBuf::from(program) } else { cwd.join(program) };
        return if p.exists() { Ok(PathBuf::from(program)) } else { Err(not_found()) };
    }
    let path = path.map(|p| p.as_bytes().to_vec()).unwrap_or_else(|| b"/usr/local/bin:/usr/bin:/bin".to_vec());
    for dir in path.split(|b| *b == b':') {
        let dir = if dir.is_empty() { cwd.to_path_buf() } else { PathBuf::from(OsStr::from_bytes(dir)) };
        let candidate = dir.join(program);
        let Ok(c) = CString::new(candidate.as_os_str().as_bytes()) else { continue };
        // SAFETY: access(2) on a NUL-terminated path.
        if candidate.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return Ok(candidate);
        }
    }
    Err(not_found())
}

/// Turns a string into a C string, refusing interior NULs with a clear error.
pub fn cstring(what: &str, s: impl AsRef<[u8]>) -> io::Result<CString> {
    CString::new(s.as_ref())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{what} contains a NUL byte")))
}

struct ChildArgs {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    stdio: [RawFd; 3],
    cgroup_fds: *const RawFd,
    cgroup_len: usize,
    parent: libc::pid_t,
    keep_fd: RawFd,
    cpus: libc::cpu_set_t,
    bind: bool,
    mem_mode: i32,
    mem_mask: [libc::c_ulong; 16],
    /// Where the child writes its pid's digits (`pid_env`'s value), or null.
    pid_digits: *mut u8,
    /// Whether to become `uid`/`gid` with `groups` (`groups_len` of them).
    set_user: bool,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: *const libc::gid_t,
    groups_len: usize,
    /// Whether to set SIGKILL as the parent-death signal.
    parent_death: bool,
    /// Set by the child when something failed before or at exec; shared thanks to CLONE_VM.
    errno: i32,
}

/// Writes `pid` in decimal at `out`, NUL-terminated (at most 11 bytes). Async-signal-safe.
///
/// # Safety
/// `out` must have room for 11 bytes.
unsafe fn write_pid(pid: libc::pid_t, out: *mut u8) {
    let mut digits = [0u8; 11];
    let mut n = pid.max(0) as u32;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // SAFETY: the caller gives room for 11 bytes; a u32 has at most 10 digits.
    unsafe {
        for i in 0..len {
            *out.add(i) = digits[len - 1 - i];
        }
        *out.add(len) = 0;
    }
}

extern "C" fn child_main(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` points at the parent's ChildArgs, alive until the child execs or exits
    // (CLONE_VFORK suspends the parent). Only async-signal-safe calls follow.
    unsafe {
        let a = &mut *(arg as *mut ChildArgs);
        let fail = |a: &mut ChildArgs| -> ! {
            a.errno = *libc::__errno_location();
            libc::_exit(127)
        };
        // The handler table is the child's own copy (no CLONE_SIGHAND): reset every signal
        // to its default (this also undoes Rust's SIGPIPE ignore), then unblock them all.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        if libc::setpgid(0, 0) != 0 {
            fail(a);
        }
        for i in 0..a.cgroup_len {
            if libc::write(*a.cgroup_fds.add(i), b"0".as_ptr().cast(), 1) != 1 {
                fail(a);
            }
        }
        // The task's user, from here on: raw system calls change this process only (the
        // libc wrappers would signal the launcher's threads, whose memory the child shares).
        // Before the parent-death signal, which a change of credentials clears.
        if a.set_user
            && (libc::syscall(libc::SYS_setgroups, a.groups_len, a.groups) != 0
                || libc::syscall(libc::SYS_setresgid, a.gid, a.gid, a.gid) != 0
                || libc::syscall(libc::SYS_setresuid, a.uid, a.uid, a.uid) != 0)
        {
            fail(a);
        }
        // Nothing a task starts may outlive its parent (the launcher, or the task's
        // supervisor) when that is killed outright.
        if a.parent_death && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(a);
        }
        if a.parent_death && libc::getppid() != a.parent {
            libc::_exit(127);
        }
        if a.keep_fd >= 0 && libc::fcntl(a.keep_fd, libc::F_SETFD, 0) != 0 {
            fail(a);
        }
        if a.bind && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &a.cpus) != 0 {
            fail(a);
        }
        // A kernel without NUMA support refuses this; the rank still runs, its memory unplaced.
        if a.mem_mode != 0 {
            let maxnode = (a.mem_mask.len() * 8 * std::mem::size_of::<libc::c_ulong>()) as libc::c_ulong;
            libc::syscall(libc::SYS_set_mempolicy, a.mem_mode, a.mem_mask.as_ptr(), maxnode);
        }
        for (target, fd) in a.stdio.iter().enumerate() {
            if libc::dup2(*fd, target as i32) < 0 {
                fail(a);
            }
        }
        if libc::chdir(a.cwd) != 0 {
            fail(a);
        }
        if !a.pid_digits.is_null() {
            write_pid(libc::getpid(), a.pid_digits);
        }
        libc::execve(a.program, a.argv, a.envp);
        fail(a)
    }
}

/// `MPOL_PREFERRED` for one node, `MPOL_BIND` for several, 0 (leave it) for none.
fn mem_mode(mems: Option<&[u32]>) -> i32 {
    match mems.map_or(0, <[u32]>::len) {
        0 => 0,
        1 => 1, // MPOL_PREFERRED
        _ => 2, // MPOL_BIND
    }
}

/// The node mask `set_mempolicy` takes (nodes past 1023 are left out).
fn node_mask(mems: &[u32]) -> [libc::c_ulong; 16] {
    let bits = 8 * std::mem::size_of::<libc::c_ulong>();
    let mut mask = [0 as libc::c_ulong; 16];
    for &n in mems {
        if let Some(word) = mask.get_mut(n as usize / bits) {
            *word |= 1 << (n as usize % bits);
        }
    }
    mask
}

/// A kernel CPU set holding `cpus` (numbers past the set's size are left out).
fn cpu_set(cpus: &[u32]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain bits; CPU_SET only sets one of them.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if (c as usize) < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c as usize, &mut set);
            }
        }
        set
    }
}

/// Starts the process; returns its pid (which is also its process group id).
pub fn spawn(spec: &SpawnSpec) -> io::Result<i32> {
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = spec.envp.iter().map(|e| e.as_ptr()).collect();
    // `NAME=` and room for the digits the child writes (this buffer is shared with it).
    let mut pid_var: Vec<u8> = spec.pid_env.map(|n| format!("{n}=").into_bytes()).unwrap_or_default();
    let prefix = pid_var.len();
    if spec.pid_env.is_some() {
        pid_var.resize(prefix + PID_ROOM, 0);
        envp.push(pid_var.as_ptr().cast());
    }
    envp.push(std::ptr::null());
    let mut args = ChildArgs {
        program: spec.program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: spec.cwd.as_ptr(),
        stdio: spec.stdio,
        cgroup_fds: spec.cgroup_fds.as_ptr(),
        cgroup_len: spec.cgroup_fds.len(),
        // SAFETY: getpid(2) cannot fail.
        parent: unsafe { libc::getpid() },
        keep_fd: spec.keep_fd.unwrap_or(-1),
        cpus: cpu_set(spec.cpus.as_deref().unwrap_or(&[])),
        bind: spec.cpus.as_ref().is_some_and(|c| !c.is_empty()),
        mem_mode: mem_mode(spec.mems.as_deref()),
        mem_mask: node_mask(spec.mems.as_deref().unwrap_or(&[])),
        // SAFETY: `prefix + PID_ROOM` bytes were reserved above.
        pid_digits: if spec.pid_env.is_some() {
            unsafe { pid_var.as_mut_ptr().add(prefix) }
        } else {
            std::ptr::null_mut()
        },
        set_user: spec.user.is_some(),
        uid: spec.user.as_ref().map_or(0, |u| u.0),
        gid: spec.user.as_ref().map_or(0, |u| u.1),
        groups: spec.user.as_ref().map_or(std::ptr::null(), |u| u.2.as_ptr()),
        groups_len: spec.user.as_ref().map_or(0, |u| u.2.len()),
        parent_death: !spec.outlive_parent,
        errno: 0,
    };
    // The child runs on its own stack inside our address space until it execs.
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: signals are blocked around the clone so no handler of ours runs on the child's
    // stack; the stack outlives the child's use of it (the parent is suspended until exec/exit).
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(stack.len()) as *mut libc::c_void;
        let pid = libc::clone(
            child_main,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&mut args as *mut ChildArgs).cast(),
        );
        let clone_err = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_err);
        }
        pid
    };
    drop(stack);
    if args.errno != 0 {
        // It never became the program: reap it and report why.
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
        return Err(io::Error::from_raw_os_error(args.errno));
    }
    Ok(pid)
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, or 128+N when killed by signal N.
    pub code: i32,
    /// Peak resident memory of the process (and of descendants it waited for), in bytes.
    pub max_rss_bytes: u64,
}

/// A started child, waited for through a pidfd.
pub struct Child {
    pid: i32,
    pidfd: AsyncFd<OwnedFd>,
    exited: Option<Exit>,
}

impl Child {
    /// Wraps `pid` (our child) for waiting.
    pub fn new(pid: i32) -> io::Result<Child> {
        // SAFETY: pidfd_open(2) on our own child; the result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            let e = io::Error::last_os_error();
            // SAFETY: we must not leave a zombie behind.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
            return Err(e);
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: the AsyncFd owns the only copy of the pidfd, so it stays open while registered.
        let pidfd = unsafe { AsyncFd::register(owned) }.map_err(io::Error::from)?;
        Ok(Child { pid, pidfd, exited: None })
    }

    /// The pid (and process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Waits for the process to end and reaps it.
    pub async fn wait(&mut self) -> io::Result<Exit> {
        if let Some(e) = self.exited {
            return Ok(e);
        }
        loop {
            let mut guard = self.pidfd.readable().await?;
            let mut status = 0;
            // SAFETY: rusage is plain data filled in by the kernel.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: wait4(2) on our own child, non-blocking.
            let r = unsafe { libc::wait4(self.pid, &mut status, libc::WNOHANG, &mut usage) };
            if r == self.pid {
                let code =
                    if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
                let exit = Exit { code, max_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024 };
                self.exited = Some(exit);
                return Ok(exit);
            }
            if r < 0 {
                return Err(io::Error::last_os_error());
            }
            guard.clear_ready();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.exited.is_none() {
            // SAFETY: kill and reap our own child so no zombie is left.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn spec(args: &[&str], out: RawFd) -> SpawnSpec {
        let program = resolve_program(args[0], Some(OsStr::new("/usr/bin:/bin")), Path::new("/")).unwrap();
        SpawnSpec {
            program: cstring("program", program.as_os_str().as_bytes()).unwrap(),
            argv: args.iter().map(|a| cstring("arg", a).unwrap()).collect(),
            envp: vec![cstring("env", "GREETING=hi").unwrap()],
            cwd: cstring("cwd", "/tmp").unwrap(),
            stdio: [out, out, out],
            cgroup_fds: Vec::new(),
            keep_fd: None,
            cpus: None,
            mems: None,
            pid_env: None,
            user: None,
            outlive_parent: false,
        }
    }

    #[tokio::test]
    async fn the_child_becomes_the_tasks_user_and_the_launcher_stays_itself() {
        // The tests run as root (CI does), as a launcher that switches users.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root");
        let f = tempfile::NamedTempFile::new().unwrap();
        std::os::unix::fs::chown(f.path(), Some(65534), None).unwrap();
        let spec = SpawnSpec {
            user: Some((65534, 65534, vec![65534])),
            ..spec(&["sh", "-c", "id -u; id -g; id -G"], f.as_file().as_raw_fd())
        };
        let pid = spawn(&spec).unwrap();
        assert_eq!(Child::new(pid).unwrap().wait().await.unwrap().code, 0);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "65534\n65534\n65534\n");
        // The child shared the launcher's memory until it exec'd: its credentials did not.
        assert_eq!(unsafe { (libc::getuid(), libc::geteuid(), libc::getegid()) }, (0, 0, 0));
        let std_thread_uid = std::thread::spawn(|| unsafe { libc::geteuid() }).join().unwrap();
        assert_eq!(std_thread_uid, 0, "no other thread of the launcher changed either");
        // A user who may not enter the working directory does not start.
        let s = SpawnSpec { cwd: cstring("cwd", "/root").unwrap(), ..spec };
        let root_home = std::fs::metadata("/root").map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()));
        if root_home.is_ok_and(|m| m & 0o001 == 0) {
            assert_eq!(spawn(&s).unwrap_err().kind(), io::ErrorKind::PermissionDenied);
        }
    }

    #[tokio::test]
    async fn the_child_gets_its_own_pid_in_the_named_variable() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let spec =
            SpawnSpec { pid_env: Some("MY_PID"), ..spec(&["sh", "-c", "echo $MY_PID $$"], f.as_file().as_raw_fd()) };
        let pid = spawn(&spec).unwrap();
        assert_eq!(Child::new(pid).unwrap().wait().await.unwrap().code, 0);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), format!("{pid} {pid}\n"));
    }

    #[tokio::test]
    async fn runs_waits_and_reports_exit_codes_and_signals() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let fd = f.as_file().as_raw_fd();
        let pid = spawn(&spec(&["sh", "-c", "echo $GREETING $(pwd); exit 3"], fd)).unwrap();
        let exit = Child::new(pid).unwrap().wait().await.unwrap();
        assert_eq!(exit.code, 3);
        assert!(exit.max_rss_bytes > 0);
        assert_eq!(std::fs::read_to_string(f.path()).unwrap(), "hi /tmp\n");
        let pid = spawn(&spec(&["sleep", "30"], fd)).unwrap();
        // Its own process group.
        assert_eq!(unsafe { libc::getpgid(pid) }, pid);
        let mut child = Child::new(pid).unwrap();
        unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(child.wait().await.unwrap().code, 128 + libc::SIGTERM);
    }

    #[test]
    fn missing_programs_and_bad_directories_are_errors() {
        let err =
            resolve_program("no-such-program-xyz", Some(OsStr::new("/usr/bin:/bin")), Path::new("/")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let mut s = spec(&["true"], 2);
        s.cwd = cstring("cwd", "/nonexistent-dir").unwrap();
        assert_eq!(spawn(&s).unwrap_err().raw_os_error(), Some(libc::ENOENT));
    }
}
