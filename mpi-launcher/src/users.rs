//! Tasks as their owners: who a task runs as on this node, and doing things with that
//! user's permissions rather than the launcher's.
//!
//! The head sends the job owner's uid (and, for a Slurm job, the group it was submitted in);
//! the node looks the user up in its own passwd and group databases, as slurmd does. A
//! launcher running as root becomes that user in each task's child before `execve` (raw
//! `setgroups`/`setresgid`/`setresuid`, see `spawn.rs`); files the task names (its
//! `--output`/`--error`) are opened on a thread that has become the user, so the kernel checks
//! them as it would for the user. A launcher that is not root runs only its own user's tasks.

use std::io;
use std::path::Path;

use gangway_api::messages::RunAs;

/// A user a task runs as, as this node knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskUser {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// The group the task runs in.
    pub gid: u32,
    /// Every group of the user (supplementary groups and `gid`), as `initgroups` would set.
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl TaskUser {
    /// Who a task owned by `run_as` runs as here: None to run as the launcher's own user (the
    /// owner is that user, or unknown); an error naming the problem when this node cannot
    /// run it (no such user here, a group the user is not in, or a launcher that is not root
    /// asked to run another user's task).
    pub fn resolve(run_as: Option<&RunAs>) -> Result<Option<TaskUser>, String> {
        let Some(r) = run_as else { return Ok(None) };
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if r.uid == me {
            return Ok(None);
        }
        if me != 0 {
            return Err(format!(
                "this node's launcher runs as uid {me}, not root, and runs only its own user's tasks; \
                 this one belongs to {} (uid {})",
                r.name, r.uid
            ));
        }
        let entry = gangway_api::users::passwd_entry(r.uid)
            .ok_or_else(|| format!("user {} (uid {}) does not exist on this node", r.name, r.uid))?;
        let groups = gangway_api::users::groups_of(entry.uid, entry.gid);
        let gid = r.gid.unwrap_or(entry.gid);
        if !groups.contains(&gid) {
            return Err(format!("user {} (uid {}) is not in group {gid} on this node", entry.name, entry.uid));
        }
        Ok(Some(TaskUser { name: entry.name, uid: entry.uid, gid, groups, home: entry.home, shell: entry.shell }))
    }

    /// The login variables a task of this user gets (from the passwd database).
    pub fn env(&self) -> [(String, String); 4] {
        [
            ("HOME".into(), self.home.clone()),
            ("USER".into(), self.name.clone()),
            ("LOGNAME".into(), self.name.clone()),
            ("SHELL".into(), self.shell.clone()),
        ]
    }

    /// Runs `f` on a new thread that has become this user (its groups, gid and uid, for good:
    /// the thread ends after), so what `f` opens is opened with the user's permissions.
    pub fn with_permissions<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        with_ids(self.uid, self.gid, &self.groups, f)
    }

    /// Gives `path`, which the launcher just made, to this user (a link there is not
    /// followed; nothing below it is touched).
    pub fn give(&self, path: &Path) -> io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }
}

/// Users found by [`TaskUser::resolve`], by what the head asked for, remembered for a while:
/// starting a task does not read the databases each time.
#[derive(Debug, Default)]
pub struct KnownUsers(gangway_api::users::Remembered<(u32, Option<u32>), TaskUser>);

impl KnownUsers {
    /// [`TaskUser::resolve`], remembered when it finds a user.
    pub fn resolve(&self, run_as: Option<&RunAs>) -> Result<Option<TaskUser>, String> {
        let Some(r) = run_as else { return Ok(None) };
        if let Some(u) = self.0.get(&(r.uid, r.gid)) {
            return Ok(Some(u));
        }
        let found = TaskUser::resolve(run_as)?;
        if let Some(u) = &found {
            self.0.put((r.uid, r.gid), u.clone());
        }
        Ok(found)
    }
}

/// Runs `f` with `user`'s permissions when there is one (see
/// [`TaskUser::with_permissions`]), else on the calling thread as the launcher.
pub fn as_user<T: Send>(user: Option<&TaskUser>, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    match user {
        Some(u) => u.with_permissions(f),
        None => f(),
    }
}

/// Writes `data` to a new file at `path`, replacing what is there (a link included) instead
/// of writing through it: the launcher's own files in a task directory its user owns.
pub fn write_fresh(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write as _;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::File::options().write(true).create_new(true).open(path)?.write_all(data)
}

/// Runs `f` on a new thread that has become `uid` in `gid` with `groups` (for good: the thread
/// ends after).
pub fn with_ids<T: Send>(
    uid: u32,
    gid: u32,
    groups: &[u32],
    f: impl FnOnce() -> io::Result<T> + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            become_user(uid, gid, groups)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the thread acting as the task's user panicked")))
    })
}

/// Makes the calling thread (only it: raw system calls, not the libc wrappers that change
/// every thread of the process) the user `uid` in group `gid` with `groups`.
pub fn become_user(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: plain system calls on the calling thread's credentials; `groups` outlives them.
    unsafe {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) != 0
            || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
            || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_files_replace_links_instead_of_writing_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let at = dir.path().join("marker");
        std::os::unix::fs::symlink(&victim, &at).unwrap();
        write_fresh(&at, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&at).unwrap(), "new");
        write_fresh(&at, b"again").unwrap();
        assert_eq!(std::fs::read_to_string(&at).unwrap(), "again");
    }

    #[test]
    fn the_launchers_own_user_and_unknown_users() {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        assert_eq!(TaskUser::resolve(None), Ok(None));
        assert_eq!(TaskUser::resolve(Some(&RunAs { uid: me, gid: None, name: "me".into() })), Ok(None));
        let ghost = RunAs { uid: 3_999_999_999, gid: None, name: "ghost".into() };
        let err = TaskUser::resolve(Some(&ghost)).unwrap_err();
        if me == 0 {
            assert_eq!(err, "user ghost (uid 3999999999) does not exist on this node");
        } else {
            assert!(err.contains("runs only its own user's tasks"), "{err}");
        }
    }
}
