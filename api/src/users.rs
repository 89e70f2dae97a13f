//! The passwd and group databases: users' names, ids and groups (through libc, so NSS
//! sources such as LDAP or SSSD answer too). These may block; async callers run them off
//! their workers.

/// This machine's host name (`gethostname`), when it has one.
pub fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; the name is NUL-terminated when it fits.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned()).filter(|h| !h.is_empty())
}

/// The name of the user `uid`.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: getpwuid_r writes into the `passwd` and buffer `passwd` gives it.
    passwd(|pwd, buf, out| unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), out) })
        .map(|p| p.name)
}

/// The uid of the user `name`.
pub fn user_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes into the `passwd` and buffer `passwd` gives it.
    passwd(|pwd, buf, out| unsafe { libc::getpwnam_r(name.as_ptr(), pwd, buf.as_mut_ptr().cast(), buf.len(), out) })
        .map(|p| p.uid)
}

/// The gid of the group `name`.
pub fn group_id(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: getgrnam_r writes into `grp` and `buf`, both ours; ERANGE says `buf` is too small.
        unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut out: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(name.as_ptr(), &mut grp, buf.as_mut_ptr().cast(), buf.len(), &mut out);
            if rc == libc::ERANGE && buf.len() < 1 << 20 {
                buf.resize(buf.len() * 4, 0);
                continue;
            }
            return (rc == 0 && !out.is_null()).then_some(grp.gr_gid);
        }
    }
}

/// Every group of the user `uid` (primary group `gid`): its supplementary groups and `gid`.
pub fn groups_of(uid: u32, gid: u32) -> Vec<u32> {
    let Some(name) = user_name(uid).and_then(|n| std::ffi::CString::new(n).ok()) else { return vec![gid] };
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: getgrouplist writes at most `n` gids into `groups` and sets `n` to the count.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if groups.len() >= 1 << 16 {
            return vec![gid];
        }
        groups.resize((n.max(0) as usize).max(groups.len() * 2), 0);
    }
}

/// The primary gid of the user `uid`.
pub fn primary_group(uid: u32) -> Option<u32> {
    // SAFETY: getpwuid_r writes into the `passwd` and buffer `passwd` gives it.
    passwd(|pwd, buf, out| unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), out) })
        .map(|p| p.gid)
}

/// Every group of the user `uid` (primary and supplementary), or none when it has no passwd entry.
pub fn user_groups(uid: u32) -> Vec<u32> {
    primary_group(uid).map_or_else(Vec::new, |gid| groups_of(uid, gid))
}

/// How long users' entries and groups are remembered (Slurm's `GroupUpdateTime` default).
pub const REMEMBER_FOR: std::time::Duration = std::time::Duration::from_secs(600);

/// What was found in the databases, by what was asked, remembered for [`REMEMBER_FOR`]: so a
/// submission or a task start does not read them each time.
#[derive(Debug)]
pub struct Remembered<K, V>(std::sync::Mutex<std::collections::HashMap<K, (std::time::Instant, V)>>);

impl<K, V> Default for Remembered<K, V> {
    fn default() -> Self {
        Remembered(std::sync::Mutex::new(std::collections::HashMap::new()))
    }
}

impl<K: Eq + std::hash::Hash, V: Clone> Remembered<K, V> {
    /// What was found for `key`, if it was not too long ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let map = self.0.lock().expect("remembered lock");
        map.get(key).filter(|(at, _)| at.elapsed() < REMEMBER_FOR).map(|(_, v)| v.clone())
    }

    /// Remembers `value` for `key` from now.
    pub fn put(&self, key: K, value: V) {
        self.0.lock().expect("remembered lock").insert(key, (std::time::Instant::now(), value));
    }
}

/// A user's passwd entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// The passwd entry of the user `uid`.
pub fn passwd_entry(uid: u32) -> Option<Passwd> {
    // SAFETY: getpwuid_r writes into the `passwd` and buffer `passwd` gives it.
    passwd(|pwd, buf, out| unsafe { libc::getpwuid_r(uid, pwd, buf.as_mut_ptr().cast(), buf.len(), out) })
}

/// A passwd entry from `call` (a `getpw*_r`), growing the buffer it is given until it fits.
fn passwd(call: impl Fn(&mut libc::passwd, &mut [u8], &mut *mut libc::passwd) -> libc::c_int) -> Option<Passwd> {
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: a zeroed passwd is a valid out-parameter; `call` fills it from `buf`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, &mut buf, &mut out);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || out.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: the strings point into `buf`, NUL-terminated, while `buf` lives (or are null).
        let text = |p: *const libc::c_char| {
            if p.is_null() {
                String::new()
            } else {
                unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned()
            }
        };
        return Some(Passwd {
            name: text(pwd.pw_name),
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: text(pwd.pw_dir),
            shell: text(pwd.pw_shell),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_groups_come_from_the_databases() {
        assert_eq!(user_id("root"), Some(0));
        assert_eq!(user_id("no-such-user-here"), None);
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("no-such-group-here"), None);
        assert!(groups_of(0, 0).contains(&0));
        assert_eq!(groups_of(4_000_000_000, 7), vec![7], "an unknown user has its primary group only");
        let root = passwd_entry(0).unwrap();
        assert_eq!((root.name.as_str(), root.uid, root.gid, root.home.as_str()), ("root", 0, 0, "/root"));
        assert!(passwd_entry(4_000_000_000).is_none());
    }
}
