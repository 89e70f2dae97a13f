//! What gangway's MPI programs read from the kernel: allowed CPUs, memory policy, current CPU.
//!
//! The programs report what the kernel actually applied to a rank, not what the launcher meant
//! to apply, so the tests can compare the two.

use std::io;

/// The CPUs this process may run on (`sched_getaffinity`), in increasing order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; the kernel fills at most `size_of::<cpu_set_t>()` bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize).filter(|&cpu| libc::CPU_ISSET(cpu, &set)).collect())
    }
}

/// The calling thread's NUMA memory policy (`get_mempolicy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPolicy {
    /// `default`, `preferred`, `bind`, `interleave`, `local`, `preferred_many`,
    /// `weighted_interleave`, or `unknown(N)`.
    pub mode: String,
    /// Mode flags the kernel reports in the upper bits (`static_nodes`, `relative_nodes`,
    /// `numa_balancing`).
    pub flags: Vec<&'static str>,
    /// NUMA nodes in the policy's node mask (empty for `default` and `local`).
    pub nodes: Vec<usize>,
}

/// Bits of node mask passed to the kernel; more than any machine gangway meets has nodes.
const MAX_NODES: usize = 1024;

/// Reads the calling thread's memory policy through the raw system call (no libnuma needed).
pub fn mem_policy() -> io::Result<MemPolicy> {
    let mut mode: libc::c_int = 0;
    let mut mask = [0u64; MAX_NODES / 64];
    // SAFETY: `mask` holds MAX_NODES bits, which is what `maxnode` tells the kernel; addr is
    // unused without MPOL_F_ADDR.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &mut mode as *mut libc::c_int,
            mask.as_mut_ptr(),
            MAX_NODES as libc::c_ulong,
            std::ptr::null_mut::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    const FLAGS: [(libc::c_int, &str); 3] =
        [(1 << 15, "static_nodes"), (1 << 14, "relative_nodes"), (1 << 13, "numa_balancing")];
    let flags = FLAGS.iter().filter(|(bit, _)| mode & bit != 0).map(|&(_, name)| name).collect();
    let base = mode & !FLAGS.iter().fold(0, |acc, (bit, _)| acc | bit);
    let mode = match base {
        0 => "default".to_string(),
        1 => "preferred".to_string(),
        2 => "bind".to_string(),
        3 => "interleave".to_string(),
        4 => "local".to_string(),
        5 => "preferred_many".to_string(),
        6 => "weighted_interleave".to_string(),
        other => format!("unknown({other})"),
    };
    let nodes = (0..MAX_NODES).filter(|&n| mask[n / 64] & (1u64 << (n % 64)) != 0).collect();
    Ok(MemPolicy { mode, flags, nodes })
}

/// The CPU this thread runs on now and its NUMA node (`getcpu`).
pub fn current_cpu_and_node() -> io::Result<(u32, u32)> {
    let (mut cpu, mut node) = (0u32, 0u32);
    // SAFETY: both pointers are valid u32s; the third argument (tcache) is unused since 2.6.24.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &mut cpu as *mut u32,
            &mut node as *mut u32,
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cpu, node))
}

/// This machine's host name (`gethostname`).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length; the name is NUL-terminated when it fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return String::from("unknown");
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Compresses a sorted CPU list into `0-3,8,10-11`, the kernel's cpulist format.
pub fn cpu_list_string(cpus: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let start = cpus[i];
        let mut end = start;
        while i + 1 < cpus.len() && cpus[i + 1] == end + 1 {
            i += 1;
            end = cpus[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_compress_runs() {
        assert_eq!(cpu_list_string(&[]), "");
        assert_eq!(cpu_list_string(&[3]), "3");
        assert_eq!(cpu_list_string(&[0, 1, 2, 3, 8, 10, 11]), "0-3,8,10-11");
    }

    #[test]
    fn the_kernel_answers() {
        assert!(!allowed_cpus().unwrap().is_empty());
        let policy = mem_policy().unwrap();
        assert!(!policy.mode.starts_with("unknown"), "{policy:?}");
        let (cpu, _node) = current_cpu_and_node().unwrap();
        assert!(allowed_cpus().unwrap().contains(&(cpu as usize)));
    }
}
